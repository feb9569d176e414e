//! An in-memory NVMe controller for host tests: registers over a shared device state, DMA
//! into the test's bounce pool, strict PRP checking, and fault injection for what QEMU
//! cannot show (fatal status, RDY that never comes, lost completions, error statuses).
//!
//! Commands are processed when the driver polls (`Clock::relax`), so several can be
//! outstanding at once, as on a real controller.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use drivers::platform::{Clock, MapError, Mapping, MemoryAccess, MmioMapper, RegisterWindow};

pub const PAGE: u64 = 4096;
pub const BAR0: u64 = 0xe0_0000_0000;
pub const BAR0_SIZE: u64 = 0x4000;

#[derive(Default, Clone)]
pub struct Faults {
    pub cfs_on_enable: bool,
    pub never_ready: bool,
    pub never_disable: bool,
    pub never_shutdown: bool,
    /// I/O opcode whose commands are taken but never completed.
    pub swallow_io_opcode: Option<u8>,
    /// (SCT, SC) returned for every READ at or after this LBA.
    pub read_status_from_lba: Option<(u64, u8, u8)>,
    /// (opcode, CNS) of an admin IDENTIFY to fail with Invalid Field.
    pub fail_identify_cns: Option<u32>,
    /// Set CFS on the first READ.
    pub cfs_on_read: bool,
}

pub struct Namespace {
    pub nsid: u32,
    pub lbads: u8,
    pub data: Vec<u8>,
}

struct Sq {
    base: u64,
    entries: u32,
    cqid: u16,
    head: u32,
    tail: u32,
}

struct Cq {
    base: u64,
    entries: u32,
    tail: u32,
    phase: bool,
}

pub struct Dev {
    mem: *mut u8,
    mem_base: u64,
    mem_len: u64,
    pub cap: u64,
    pub cc: u32,
    pub csts: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    sqs: BTreeMap<u16, Sq>,
    cqs: BTreeMap<u16, Cq>,
    pub serial: &'static str,
    pub mdts: u8,
    /// NSIDs listed as active (including ones of size 0, like GCE's phantoms).
    pub active: Vec<u32>,
    pub namespaces: Vec<Namespace>,
    pub faults: Faults,
    /// Every register write (offset, value) and admin/I/O opcode seen, in order.
    pub log: Vec<String>,
    /// DMA outside the pool, bad PRPs, doorbell misuse: anything a real device would punish.
    pub violations: Vec<String>,
    /// Most commands seen waiting in one I/O SQ at once.
    pub max_io_outstanding: u32,
    pub reads: u32,
}

impl Dev {
    fn dstrd(&self) -> u32 {
        ((self.cap >> 32) & 0xf) as u32
    }

    fn host(&mut self, phys: u64, len: u64) -> Option<*mut u8> {
        if phys < self.mem_base || phys + len > self.mem_base + self.mem_len {
            self.violations
                .push(format!("DMA outside the pool: {phys:#x}+{len}"));
            return None;
        }
        // SAFETY: inside the leaked pool allocation the test created.
        Some(unsafe { self.mem.add((phys - self.mem_base) as usize) })
    }

    fn read_mem(&mut self, phys: u64, out: &mut [u8]) -> bool {
        match self.host(phys, out.len() as u64) {
            Some(p) => {
                // SAFETY: `host` checked that the whole range lies in the pool's memory.
                unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
                true
            }
            None => false,
        }
    }

    fn write_mem(&mut self, phys: u64, data: &[u8]) -> bool {
        match self.host(phys, data.len() as u64) {
            Some(p) => {
                // SAFETY: `host` checked that the whole range lies in the pool's memory.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
                true
            }
            None => false,
        }
    }

    fn read_u64(&mut self, phys: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_mem(phys, &mut b).then(|| u64::from_le_bytes(b))
    }

    fn reg_read32(&self, offset: usize) -> u32 {
        match offset {
            0x00 => self.cap as u32,
            0x04 => (self.cap >> 32) as u32,
            0x08 => 0x0001_0400,
            0x14 => self.cc,
            0x1c => self.csts,
            0x24 => self.aqa,
            0x28 => self.asq as u32,
            0x2c => (self.asq >> 32) as u32,
            0x30 => self.acq as u32,
            0x34 => (self.acq >> 32) as u32,
            _ => 0,
        }
    }

    fn reg_write32(&mut self, offset: usize, value: u32) {
        if offset < 0x1000 {
            self.log.push(format!("w {offset:#x}={value:#x}"));
        }
        match offset {
            0x14 => self.write_cc(value),
            0x24 => self.aqa = value,
            0x28 => self.asq = (self.asq & !0xffff_ffff) | value as u64,
            0x2c => self.asq = (self.asq & 0xffff_ffff) | (value as u64) << 32,
            0x30 => self.acq = (self.acq & !0xffff_ffff) | value as u64,
            0x34 => self.acq = (self.acq & 0xffff_ffff) | (value as u64) << 32,
            o if o >= 0x1000 => self.doorbell(o, value),
            _ => {}
        }
    }

    fn write_cc(&mut self, value: u32) {
        let was = self.cc & 1;
        let now = value & 1;
        if was == 0 && now == 1 {
            let ok = self.asq & (PAGE - 1) == 0
                && self.acq & (PAGE - 1) == 0
                && self.aqa & 0xfff != 0
                && (self.aqa >> 16) & 0xfff != 0
                && (value >> 7) & 0xf == 0;
            if self.faults.cfs_on_enable || !ok {
                self.csts |= 2;
            } else if !self.faults.never_ready {
                self.sqs.insert(
                    0,
                    Sq {
                        base: self.asq,
                        entries: (self.aqa & 0xfff) + 1,
                        cqid: 0,
                        head: 0,
                        tail: 0,
                    },
                );
                self.cqs.insert(
                    0,
                    Cq {
                        base: self.acq,
                        entries: ((self.aqa >> 16) & 0xfff) + 1,
                        tail: 0,
                        phase: true,
                    },
                );
                self.csts |= 1;
            }
        } else if was == 1 && now == 0 {
            if self.faults.never_disable {
                self.cc = value;
                return;
            }
            self.csts = 0;
            self.sqs.clear();
            self.cqs.clear();
        }
        if (value >> 14) & 3 == 1 && !self.faults.never_shutdown {
            self.csts = (self.csts & !0xc) | 0x8;
        }
        self.cc = value;
    }

    fn doorbell(&mut self, offset: usize, value: u32) {
        let stride = 4usize << self.dstrd();
        let index = (offset - 0x1000) / stride;
        if (offset - 0x1000) & (stride - 1) != 0 {
            self.violations
                .push(format!("doorbell write at unaligned offset {offset:#x}"));
            return;
        }
        let qid = (index / 2) as u16;
        if index % 2 == 1 {
            if !self.cqs.contains_key(&qid) {
                self.violations
                    .push(format!("CQ head doorbell for unknown queue {qid}"));
            }
            return;
        }
        match self.sqs.get_mut(&qid) {
            Some(sq) if value < sq.entries => sq.tail = value,
            _ => self
                .violations
                .push(format!("bad SQ tail doorbell q{qid}={value}")),
        }
    }

    /// I/O commands handed to the device so far: executed, or submitted and still waiting.
    pub fn io_submitted(&self) -> u32 {
        let waiting: u32 = self
            .sqs
            .iter()
            .filter(|(qid, _)| **qid != 0)
            .map(|(_, sq)| (sq.tail + sq.entries - sq.head) % sq.entries)
            .sum();
        self.reads + waiting
    }

    /// Runs every submitted command (called from the clock's relax).
    pub fn process(&mut self) {
        if self.csts & 1 == 0 || self.csts & 2 != 0 {
            return;
        }
        let qids: Vec<u16> = self.sqs.keys().copied().collect();
        for qid in qids {
            while let Some(sq) = self.sqs.get(&qid) {
                if sq.head == sq.tail {
                    break;
                }
                if qid != 0 {
                    let waiting = (sq.tail + sq.entries - sq.head) % sq.entries;
                    self.max_io_outstanding = self.max_io_outstanding.max(waiting);
                }
                let (base, head, entries, cqid) = (sq.base, sq.head, sq.entries, sq.cqid);
                let mut sqe = [0u8; 64];
                self.read_mem(base + head as u64 * 64, &mut sqe);
                let new_head = (head + 1) % entries;
                self.sqs.get_mut(&qid).unwrap().head = new_head;
                let dw = |i: usize| u32::from_le_bytes(sqe[4 * i..4 * i + 4].try_into().unwrap());
                let cid = (dw(0) >> 16) as u16;
                let result = if qid == 0 {
                    self.admin(&sqe)
                } else {
                    self.io(&sqe)
                };
                if self.csts & 2 != 0 {
                    return;
                }
                if let Some((status, dw0)) = result {
                    self.post(cqid, qid, new_head, cid, status, dw0);
                }
            }
        }
    }

    fn post(&mut self, cqid: u16, sqid: u16, sq_head: u32, cid: u16, status: u16, dw0: u32) {
        let Some(cq) = self.cqs.get_mut(&cqid) else {
            self.violations
                .push(format!("completion for missing CQ {cqid}"));
            return;
        };
        let addr = cq.base + cq.tail as u64 * 16;
        let phase = cq.phase as u32;
        cq.tail += 1;
        if cq.tail == cq.entries {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
        let mut cqe = [0u8; 16];
        cqe[0..4].copy_from_slice(&dw0.to_le_bytes());
        cqe[8..12].copy_from_slice(&(sq_head | (sqid as u32) << 16).to_le_bytes());
        let dw3 = cid as u32 | phase << 16 | (status as u32) << 17;
        cqe[12..16].copy_from_slice(&dw3.to_le_bytes());
        self.write_mem(addr, &cqe);
    }

    /// Returns (status field without phase: SC | SCT << 8 | DNR << 14, dw0) or None to swallow.
    fn admin(&mut self, sqe: &[u8; 64]) -> Option<(u16, u32)> {
        let dw = |i: usize| u32::from_le_bytes(sqe[4 * i..4 * i + 4].try_into().unwrap());
        let opcode = sqe[0];
        let prp1 = dw(6) as u64 | (dw(7) as u64) << 32;
        self.log
            .push(format!("admin {opcode:#04x} cdw10={:#x}", dw(10)));
        const INVALID_FIELD: u16 = 0x02;
        let ok = Some((0, 0));
        match opcode {
            0x06 => {
                let cns = dw(10) & 0xff;
                if self.faults.fail_identify_cns == Some(cns) {
                    return Some((INVALID_FIELD | 1 << 14, 0));
                }
                if prp1 & (PAGE - 1) != 0 {
                    self.violations
                        .push("identify PRP1 not page aligned".into());
                }
                let data = match cns {
                    1 => self.identify_controller(),
                    2 => {
                        let mut d = vec![0u8; 4096];
                        let after = dw(1);
                        for (i, nsid) in self.active.iter().filter(|n| **n > after).enumerate() {
                            d[4 * i..4 * i + 4].copy_from_slice(&nsid.to_le_bytes());
                        }
                        d
                    }
                    0 => self.identify_namespace(dw(1)),
                    _ => return Some((INVALID_FIELD, 0)),
                };
                self.write_mem(prp1, &data);
                ok
            }
            0x09 => Some((0, 0)),
            0x05 => {
                let qid = dw(10) as u16;
                let entries = (dw(10) >> 16) + 1;
                if dw(11) & 1 == 0 || prp1 & (PAGE - 1) != 0 || (self.cc >> 20) & 0xf != 4 {
                    return Some((INVALID_FIELD, 0));
                }
                if dw(11) & 2 != 0 || dw(11) >> 16 != 0 {
                    return Some((0x08 | 1 << 8, 0));
                }
                if entries > (self.cap & 0xffff) as u32 + 1
                    || qid == 0
                    || self.cqs.contains_key(&qid)
                {
                    return Some((0x01 | 1 << 8, 0));
                }
                self.cqs.insert(
                    qid,
                    Cq {
                        base: prp1,
                        entries,
                        tail: 0,
                        phase: true,
                    },
                );
                ok
            }
            0x01 => {
                let qid = dw(10) as u16;
                let entries = (dw(10) >> 16) + 1;
                let cqid = (dw(11) >> 16) as u16;
                if !self.cqs.contains_key(&cqid) {
                    // Completion Queue Invalid (SCT 1, SC 0).
                    return Some((1 << 8, 0));
                }
                if (self.cc >> 16) & 0xf != 6 || prp1 & (PAGE - 1) != 0 {
                    return Some((INVALID_FIELD, 0));
                }
                self.sqs.insert(
                    qid,
                    Sq {
                        base: prp1,
                        entries,
                        cqid,
                        head: 0,
                        tail: 0,
                    },
                );
                ok
            }
            0x00 => {
                let qid = dw(10) as u16;
                if qid == 0 || self.sqs.remove(&qid).is_none() {
                    return Some((0x01 | 1 << 8, 0));
                }
                ok
            }
            0x04 => {
                let qid = dw(10) as u16;
                if self.sqs.values().any(|sq| sq.cqid == qid) {
                    return Some((0x0c | 1 << 8, 0));
                }
                if qid == 0 || self.cqs.remove(&qid).is_none() {
                    return Some((0x01 | 1 << 8, 0));
                }
                ok
            }
            _ => Some((0x01, 0)),
        }
    }

    fn identify_controller(&self) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        d[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        d[2..4].copy_from_slice(&0x1af4u16.to_le_bytes());
        let field = |d: &mut [u8], range: std::ops::Range<usize>, text: &str| {
            d[range.clone()].fill(b' ');
            d[range.start..range.start + text.len()].copy_from_slice(text.as_bytes());
        };
        field(&mut d, 4..24, self.serial);
        field(&mut d, 24..64, "QEMU NVMe Ctrl");
        field(&mut d, 64..72, "fake-1.0");
        d[77] = self.mdts;
        d[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
        d[512] = 0x66;
        d[513] = 0x44;
        d[516..520].copy_from_slice(&256u32.to_le_bytes());
        d
    }

    fn identify_namespace(&self, nsid: u32) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        if let Some(ns) = self.namespaces.iter().find(|n| n.nsid == nsid) {
            let blocks = ns.data.len() as u64 >> ns.lbads;
            d[0..8].copy_from_slice(&blocks.to_le_bytes());
            d[8..16].copy_from_slice(&blocks.to_le_bytes());
            d[25] = 1;
            // Format 0 is 512 B, format 1 is 4 KiB; FLBAS picks the one in use.
            d[26] = if ns.lbads == 12 { 1 } else { 0 };
            d[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
            d[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes());
            let json = format!("{{\"device_name\":\"disk-{nsid}\"}}");
            d[384..384 + json.len()].copy_from_slice(json.as_bytes());
        }
        d
    }

    fn io(&mut self, sqe: &[u8; 64]) -> Option<(u16, u32)> {
        let dw = |i: usize| u32::from_le_bytes(sqe[4 * i..4 * i + 4].try_into().unwrap());
        let opcode = sqe[0];
        if self.faults.swallow_io_opcode == Some(opcode) {
            return None;
        }
        if opcode != 0x02 {
            return Some((0x01, 0));
        }
        self.reads += 1;
        if self.faults.cfs_on_read {
            self.csts |= 2;
            return None;
        }
        let nsid = dw(1);
        let slba = dw(10) as u64 | (dw(11) as u64) << 32;
        let nlb = (dw(12) & 0xffff) as u64 + 1;
        let prp1 = dw(6) as u64 | (dw(7) as u64) << 32;
        let prp2 = dw(8) as u64 | (dw(9) as u64) << 32;
        let Some(index) = self.namespaces.iter().position(|n| n.nsid == nsid) else {
            return Some((0x0b, 0));
        };
        let lbads = self.namespaces[index].lbads;
        let blocks = self.namespaces[index].data.len() as u64 >> lbads;
        if slba + nlb > blocks {
            return Some((0x80 | 1 << 14, 0));
        }
        if let Some((from, sct, sc)) = self.faults.read_status_from_lba {
            if slba + nlb > from {
                return Some((sc as u16 | (sct as u16) << 8, 0));
            }
        }
        let len = nlb << lbads;
        if self.mdts != 0 && len > PAGE << self.mdts {
            return Some((0x02, 0));
        }
        let Some(segments) = self.walk_prps(prp1, prp2, len) else {
            return Some((0x13, 0));
        };
        let start = (slba << lbads) as usize;
        let data = self.namespaces[index].data[start..start + len as usize].to_vec();
        let mut at = 0usize;
        for (addr, seg_len) in segments {
            if !self.write_mem(addr, &data[at..at + seg_len]) {
                return Some((0x04, 0));
            }
            at += seg_len;
        }
        Some((0, 0))
    }

    /// Follows PRP1/PRP2/lists exactly as the specification says, independently of the
    /// driver's builder; any rule broken is a violation.
    pub fn walk_prps(&mut self, prp1: u64, prp2: u64, len: u64) -> Option<Vec<(u64, usize)>> {
        if prp1 & 3 != 0 {
            self.violations
                .push(format!("PRP1 {prp1:#x} not dword aligned"));
            return None;
        }
        let first = (PAGE - prp1 % PAGE).min(len);
        let mut segments = vec![(prp1, first as usize)];
        let mut remaining = len - first;
        if remaining == 0 {
            return Some(segments);
        }
        if remaining <= PAGE {
            if prp2 & (PAGE - 1) != 0 {
                self.violations
                    .push(format!("PRP2 entry {prp2:#x} not page aligned"));
                return None;
            }
            segments.push((prp2, remaining as usize));
            return Some(segments);
        }
        if prp2 & 7 != 0 || prp2 == 0 {
            self.violations
                .push(format!("PRP list pointer {prp2:#x} bad"));
            return None;
        }
        let mut list = prp2;
        while remaining > 0 {
            let entry = self.read_u64(list)?;
            if list % PAGE == PAGE - 8 && remaining > PAGE {
                if entry & 7 != 0 {
                    self.violations
                        .push(format!("PRP chain pointer {entry:#x} misaligned"));
                    return None;
                }
                list = entry;
                continue;
            }
            if entry & (PAGE - 1) != 0 {
                self.violations
                    .push(format!("PRP list entry {entry:#x} not page aligned"));
                return None;
            }
            let seg = remaining.min(PAGE);
            segments.push((entry, seg as usize));
            remaining -= seg;
            list += 8;
        }
        Some(segments)
    }
}

/// The device's BAR0 as the driver sees it.
pub struct Regs(pub Rc<RefCell<Dev>>);

impl RegisterWindow for Regs {
    fn len(&self) -> usize {
        BAR0_SIZE as usize
    }
    fn read8(&self, offset: usize) -> u8 {
        (self.read32(offset & !3) >> (8 * (offset & 3))) as u8
    }
    fn read16(&self, offset: usize) -> u16 {
        (self.read32(offset & !3) >> (8 * (offset & 2))) as u16
    }
    fn read32(&self, offset: usize) -> u32 {
        self.0.borrow().reg_read32(offset)
    }
    fn write8(&self, offset: usize, _: u8) {
        self.0
            .borrow_mut()
            .violations
            .push(format!("8-bit register write at {offset:#x}"));
    }
    fn write16(&self, offset: usize, _: u16) {
        self.0
            .borrow_mut()
            .violations
            .push(format!("16-bit register write at {offset:#x}"));
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.borrow_mut().reg_write32(offset, value)
    }
}

pub struct Mapper {
    pub dev: Rc<RefCell<Dev>>,
    pub mapped: Vec<(u64, u64)>,
    pub unmapped: Vec<(u64, u64)>,
}

impl MmioMapper for Mapper {
    fn map(&mut self, phys: u64, len: u64) -> Result<Mapping, MapError> {
        if phys != BAR0 || len != BAR0_SIZE {
            return Err(MapError::BadRange);
        }
        let newly_mapped = !self.mapped.contains(&(phys, len));
        if newly_mapped {
            self.mapped.push((phys, len));
        }
        Ok(Mapping {
            window: 0xffff_c000_0000_0000,
            newly_mapped,
            regs: Box::new(Regs(self.dev.clone())),
        })
    }
    fn unmap(&mut self, phys: u64, len: u64) {
        self.unmapped.push((phys, len));
        self.mapped.retain(|m| *m != (phys, len));
    }
}

/// Simulated time: every relax is 50 µs and lets the device run.
pub struct SimClock {
    pub now: Cell<u64>,
    pub dev: Rc<RefCell<Dev>>,
    /// Report Ctrl-C after this many relaxes.
    pub interrupt_after: Cell<Option<u32>>,
    pub relaxes: Cell<u32>,
}

impl Clock for SimClock {
    fn now_us(&self) -> u64 {
        self.now.get()
    }
    fn relax(&self) {
        self.now.set(self.now.get() + 50);
        self.relaxes.set(self.relaxes.get() + 1);
        self.dev.borrow_mut().process();
    }
    fn interrupted(&self) -> bool {
        self.interrupt_after
            .get()
            .is_some_and(|n| self.relaxes.get() >= n)
    }
}

pub struct NoMemory;
impl MemoryAccess for NoMemory {
    fn read(&self, _: u64, _: &mut [u8]) -> bool {
        false
    }
}

/// CAP for the fake: MQES 255, CQR, TO 2 (1 s), DSTRD as given, NVM set, MPS 4K..64K.
pub fn cap(dstrd: u64) -> u64 {
    255 | 1 << 16 | 2 << 24 | dstrd << 32 | 1 << 37 | 4 << 52
}

pub fn new_dev(
    mem: *mut u8,
    mem_base: u64,
    mem_len: u64,
    namespaces: Vec<Namespace>,
) -> Rc<RefCell<Dev>> {
    let active = namespaces.iter().map(|n| n.nsid).collect();
    Rc::new(RefCell::new(Dev {
        mem,
        mem_base,
        mem_len,
        cap: cap(0),
        cc: 0,
        csts: 0,
        aqa: 0,
        asq: 0,
        acq: 0,
        sqs: BTreeMap::new(),
        cqs: BTreeMap::new(),
        serial: "fake-serial-1",
        mdts: 5,
        active,
        namespaces,
        faults: Faults::default(),
        log: Vec::new(),
        violations: Vec::new(),
        max_io_outstanding: 0,
        reads: 0,
    }))
}

/// Deterministic pseudo-random bytes (xorshift), so disks differ block to block.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
