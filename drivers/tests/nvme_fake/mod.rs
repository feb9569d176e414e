//! An in-memory NVMe controller for host tests: registers over a shared device state, DMA
//! into the test's bounce pool, strict PRP checking, and fault injection for what QEMU
//! cannot show (fatal status, RDY that never comes, lost completions, error statuses).
//!
//! Time is the fake's own: the simulated clock advances 50 µs per `relax` and the device
//! acts on its deadlines there. Nothing is instantaneous ([`Latencies`]): CSTS.RDY follows
//! CC.EN (both ways), CSTS.SHST follows CC.SHN, and every command completes some time after
//! it was fetched (its data is written then, too), so a driver that forgets a wait, or frees
//! a buffer before its completion, fails here. Commands still running when CC.EN goes to 0
//! may complete (and write their buffers) until CSTS.RDY reads 0; then they are gone.
#![allow(dead_code)]

pub mod bench;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use drivers::platform::{Clock, MapError, Mapping, MmioMapper, RegisterWindow};

pub const PAGE: u64 = 4096;
pub const BAR0: u64 = 0xe0_0000_0000;
pub const BAR0_SIZE: u64 = 0x4000;

/// How long the device takes for each thing it does, in microseconds of simulated time.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// CC.EN 0 -> 1 until CSTS.RDY = 1.
    pub ready_us: u64,
    /// CC.EN 1 -> 0 until CSTS.RDY = 0 (commands still running may complete meanwhile).
    pub disable_us: u64,
    /// CC.SHN = normal until CSTS.SHST = complete.
    pub shutdown_us: u64,
    /// Fetch of an admin command until its completion.
    pub admin_us: u64,
    /// Fetch of an I/O command until its completion.
    pub io_us: u64,
}

impl Default for Latencies {
    /// Small but never zero, and each longer than one poll (50 µs).
    fn default() -> Self {
        Latencies {
            ready_us: 1_000,
            disable_us: 600,
            shutdown_us: 800,
            admin_us: 150,
            io_us: 250,
        }
    }
}

#[derive(Default, Clone)]
pub struct Faults {
    /// CSTS.CFS instead of RDY after CC.EN = 1.
    pub cfs_on_enable: bool,
    /// CSTS.RDY never becomes 1 after CC.EN = 1.
    pub never_ready: bool,
    /// CSTS.RDY never becomes 0 after CC.EN = 0 (the reset is never confirmed).
    pub never_disable: bool,
    /// CSTS.SHST never reports complete after CC.SHN.
    pub never_shutdown: bool,
    /// I/O opcode whose commands are taken but never completed.
    pub swallow_io_opcode: Option<u8>,
    /// (SCT, SC) returned for every READ at or after this LBA.
    pub read_status_from_lba: Option<(u64, u8, u8)>,
    /// (opcode, CNS) of an admin IDENTIFY to fail with Invalid Field.
    pub fail_identify_cns: Option<u32>,
    /// Set CFS on the first READ.
    pub cfs_on_read: bool,
    /// Extra time the next this-many READs take (a stalled Persistent Disk): (count, µs).
    pub stall_reads: Option<(u32, u64)>,
    /// Extra time the next this-many WRITEs take: (count, µs).
    pub stall_writes: Option<(u32, u64)>,
    /// (SCT, SC) returned for every WRITE that reaches this LBA (nothing is written).
    pub write_status_from_lba: Option<(u64, u8, u8)>,
    /// Namespaces that refuse writes with Namespace is Write Protected (SCT 0, SC 20h).
    pub write_protected: Vec<u32>,
}

pub struct Namespace {
    pub nsid: u32,
    pub lbads: u8,
    pub data: Vec<u8>,
    /// Separate metadata bytes per block (LBAF.MS, FLBAS bit 4 = 0): written to MPTR.
    pub metadata_size: u16,
}

impl Namespace {
    pub fn new(nsid: u32, lbads: u8, data: Vec<u8>) -> Namespace {
        Namespace {
            nsid,
            lbads,
            data,
            metadata_size: 0,
        }
    }

    /// The metadata the device holds for `lba` (deterministic, never all zero).
    pub fn metadata(&self, lba: u64) -> Vec<u8> {
        (0..self.metadata_size as u64)
            .map(|i| (lba.wrapping_mul(31) ^ i ^ 0xa5) as u8)
            .collect()
    }
}

/// A command fetched from an SQ, running until `due`.
struct Running {
    due: u64,
    sqid: u16,
    cqid: u16,
    sq_head: u32,
    sqe: [u8; 64],
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
    pub writes: u32,
    /// WRITEs that carried FUA (CDW12 bit 30).
    pub fua_writes: u32,
    /// FLUSH commands executed, by NSID.
    pub flushes: Vec<u32>,
    pub latencies: Latencies,
    /// The device's time (the simulated clock's, updated on every poll).
    pub now: u64,
    /// When CSTS.RDY becomes 1 (after CC.EN = 1) or 0 (after CC.EN = 0).
    ready_at: Option<u64>,
    not_ready_at: Option<u64>,
    shutdown_at: Option<u64>,
    running: Vec<Running>,
    /// Completions posted after the host disabled the controller, before RDY cleared.
    pub completed_while_disabling: u32,
}

impl Dev {
    /// CC.EN = 1 written, CSTS.RDY not yet 1.
    pub fn enabling(&self) -> bool {
        self.ready_at.is_some()
    }
    /// CC.EN = 0 written, CSTS.RDY not yet 0.
    pub fn disabling(&self) -> bool {
        self.not_ready_at.is_some()
    }
    /// CC.SHN written, CSTS.SHST not yet complete.
    pub fn shutting_down(&self) -> bool {
        self.shutdown_at.is_some()
    }
    /// A command with this opcode runs on an admin (`admin = true`) or I/O queue.
    pub fn running(&self, admin: bool, opcode: u8) -> bool {
        self.running
            .iter()
            .any(|r| (r.sqid == 0) == admin && r.sqe[0] == opcode)
    }
    /// Commands fetched and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.running.len()
    }

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
        if was != now && (self.ready_at.is_some() || self.not_ready_at.is_some()) {
            self.violations
                .push("CC.EN changed while CSTS.RDY had not followed the last change".into());
        }
        if was == 0 && now == 1 {
            let ok = self.asq & (PAGE - 1) == 0
                && self.acq & (PAGE - 1) == 0
                && self.aqa & 0xfff != 0
                && (self.aqa >> 16) & 0xfff != 0
                && (value >> 7) & 0xf == 0;
            if self.faults.cfs_on_enable || !ok {
                self.csts |= 2;
            } else if !self.faults.never_ready {
                self.ready_at = Some(self.now + self.latencies.ready_us);
            }
        } else if was == 1 && now == 0 {
            // Fetching stops at once; what already runs may still complete until RDY = 0.
            self.ready_at = None;
            self.shutdown_at = None;
            if !self.faults.never_disable {
                self.not_ready_at = Some(self.now + self.latencies.disable_us);
            }
        }
        if (value >> 14) & 3 == 1 && (self.cc >> 14) & 3 != 1 && !self.faults.never_shutdown {
            // SHST = 01b (processing) until the shutdown completes.
            self.csts = (self.csts & !0xc) | 0x4;
            self.shutdown_at = Some(self.now + self.latencies.shutdown_us);
        }
        self.cc = value;
    }

    /// Moves the device's time to `now` and does everything that became due.
    pub fn advance(&mut self, now: u64) {
        self.now = now;
        if self.ready_at.is_some_and(|t| t <= now) {
            self.ready_at = None;
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
        self.complete_due();
        if self.shutdown_at.is_some_and(|t| t <= now) {
            self.shutdown_at = None;
            self.csts = (self.csts & !0xc) | 0x8;
        }
        if self.not_ready_at.is_some_and(|t| t <= now) {
            // The reset is done: queues and whatever still ran are gone.
            self.not_ready_at = None;
            self.csts = 0;
            self.sqs.clear();
            self.cqs.clear();
            self.running.clear();
        }
        self.process();
    }

    /// Executes and posts every running command whose time has come, oldest first.
    fn complete_due(&mut self) {
        loop {
            let Some(index) = self
                .running
                .iter()
                .enumerate()
                .filter(|(_, r)| r.due <= self.now)
                .min_by_key(|(_, r)| r.due)
                .map(|(i, _)| i)
            else {
                return;
            };
            let run = self.running.remove(index);
            if self.csts & 2 != 0 {
                return;
            }
            let cid = u16::from_le_bytes([run.sqe[2], run.sqe[3]]);
            let result = if run.sqid == 0 {
                self.admin(&run.sqe)
            } else {
                self.io(&run.sqe)
            };
            if self.csts & 2 != 0 {
                return;
            }
            if let Some((status, dw0)) = result {
                if self.cc & 1 == 0 {
                    self.completed_while_disabling += 1;
                }
                self.post(run.cqid, run.sqid, run.sq_head, cid, status, dw0);
            }
        }
    }

    fn doorbell(&mut self, offset: usize, value: u32) {
        if self.csts & 1 == 0 {
            // A real controller ignores doorbells until it is ready (and may do worse).
            self.violations
                .push(format!("doorbell write at {offset:#x} while CSTS.RDY=0"));
            return;
        }
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

    /// I/O commands handed to the device so far: executed, running (fetched, not yet due), or
    /// submitted and still waiting in the SQ.
    pub fn io_submitted(&self) -> u32 {
        let waiting: u32 = self
            .sqs
            .iter()
            .filter(|(qid, _)| **qid != 0)
            .map(|(_, sq)| (sq.tail + sq.entries - sq.head) % sq.entries)
            .sum();
        let running = self.running.iter().filter(|r| r.sqid != 0).count() as u32;
        self.reads + self.writes + self.flushes.len() as u32 + running + waiting
    }

    /// Fetches every submitted command; each completes after its latency (`advance`).
    fn process(&mut self) {
        if self.csts & 1 == 0 || self.csts & 2 != 0 || self.cc & 1 == 0 {
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
                    let running = self.running.iter().filter(|r| r.sqid == qid).count() as u32;
                    self.max_io_outstanding = self.max_io_outstanding.max(waiting + running);
                }
                let (base, head, entries, cqid) = (sq.base, sq.head, sq.entries, sq.cqid);
                let mut sqe = [0u8; 64];
                self.read_mem(base + head as u64 * 64, &mut sqe);
                let new_head = (head + 1) % entries;
                self.sqs.get_mut(&qid).unwrap().head = new_head;
                let mut latency = if qid == 0 {
                    self.latencies.admin_us
                } else {
                    self.latencies.io_us
                };
                if qid != 0 && sqe[0] == 0x02 {
                    if let Some((count, extra)) = self.faults.stall_reads {
                        latency += extra;
                        self.faults.stall_reads = (count > 1).then_some((count - 1, extra));
                    }
                }
                if qid != 0 && sqe[0] == 0x01 {
                    if let Some((count, extra)) = self.faults.stall_writes {
                        latency += extra;
                        self.faults.stall_writes = (count > 1).then_some((count - 1, extra));
                    }
                }
                self.running.push(Running {
                    due: self.now + latency,
                    sqid: qid,
                    cqid,
                    sq_head: new_head,
                    sqe,
                });
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
            // The format in use carries the namespace's separate metadata (FLBAS bit 4 = 0).
            let ms = |lbads: u8| {
                if lbads == ns.lbads {
                    ns.metadata_size as u32
                } else {
                    0
                }
            };
            d[128..132].copy_from_slice(&(9u32 << 16 | ms(9)).to_le_bytes());
            d[132..136].copy_from_slice(&(12u32 << 16 | ms(12)).to_le_bytes());
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
        if opcode == 0x00 {
            // FLUSH: nothing volatile here; only the NSID must exist.
            let nsid = dw(1);
            if !self.namespaces.iter().any(|n| n.nsid == nsid) {
                return Some((0x0b, 0));
            }
            self.flushes.push(nsid);
            return Some((0, 0));
        }
        if opcode == 0x01 {
            return self.write(sqe);
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
        let ms = self.namespaces[index].metadata_size as u64;
        if ms != 0 {
            // Separate metadata: one contiguous buffer at MPTR (PSDT = 00), MS bytes a block.
            let mptr = dw(4) as u64 | (dw(5) as u64) << 32;
            let meta: Vec<u8> = (slba..slba + nlb)
                .flat_map(|lba| self.namespaces[index].metadata(lba))
                .collect();
            if !self.write_mem(mptr, &meta) {
                return Some((0x04, 0));
            }
        }
        Some((0, 0))
    }

    /// WRITE: the data is taken from host memory when the command executes (as a device
    /// DMAs it), so a driver that reuses a buffer before the completion writes garbage.
    fn write(&mut self, sqe: &[u8; 64]) -> Option<(u16, u32)> {
        let dw = |i: usize| u32::from_le_bytes(sqe[4 * i..4 * i + 4].try_into().unwrap());
        self.writes += 1;
        let nsid = dw(1);
        let slba = dw(10) as u64 | (dw(11) as u64) << 32;
        let nlb = (dw(12) & 0xffff) as u64 + 1;
        if dw(12) & 1 << 30 != 0 {
            self.fua_writes += 1;
        }
        let prp1 = dw(6) as u64 | (dw(7) as u64) << 32;
        let prp2 = dw(8) as u64 | (dw(9) as u64) << 32;
        let Some(index) = self.namespaces.iter().position(|n| n.nsid == nsid) else {
            return Some((0x0b, 0));
        };
        if self.faults.write_protected.contains(&nsid) {
            return Some((0x20, 0));
        }
        let lbads = self.namespaces[index].lbads;
        let blocks = self.namespaces[index].data.len() as u64 >> lbads;
        if slba + nlb > blocks {
            return Some((0x80 | 1 << 14, 0));
        }
        if let Some((from, sct, sc)) = self.faults.write_status_from_lba {
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
        let mut data = vec![0u8; len as usize];
        let mut at = 0usize;
        for (addr, seg_len) in segments {
            if !self.read_mem(addr, &mut data[at..at + seg_len]) {
                return Some((0x04, 0));
            }
            at += seg_len;
        }
        let start = (slba << lbads) as usize;
        self.namespaces[index].data[start..start + len as usize].copy_from_slice(&data);
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

/// A condition on the device that makes the user press Ctrl-C.
pub type CtrlCWhen = Box<dyn Fn(&Dev) -> bool>;

/// Simulated time: every relax is 50 µs and lets the device run.
pub struct SimClock {
    pub now: Cell<u64>,
    pub dev: Rc<RefCell<Dev>>,
    /// Report Ctrl-C after this many relaxes.
    pub interrupt_after: Cell<Option<u32>>,
    pub relaxes: Cell<u32>,
    /// Press Ctrl-C as soon as the device is in this state (then it stays pressed, as the
    /// monitor's does until the next command, until `release_ctrl_c`).
    pub ctrl_c_when: RefCell<Option<CtrlCWhen>>,
    pub ctrl_c_pressed: Cell<bool>,
}

impl SimClock {
    pub fn new(dev: Rc<RefCell<Dev>>) -> SimClock {
        SimClock {
            now: Cell::new(0),
            dev,
            interrupt_after: Cell::new(None),
            relaxes: Cell::new(0),
            ctrl_c_when: RefCell::new(None),
            ctrl_c_pressed: Cell::new(false),
        }
    }

    pub fn press_ctrl_c_when(&self, when: impl Fn(&Dev) -> bool + 'static) {
        *self.ctrl_c_when.borrow_mut() = Some(Box::new(when));
    }

    /// Forgets the Ctrl-C (the monitor does this before each command).
    pub fn release_ctrl_c(&self) {
        *self.ctrl_c_when.borrow_mut() = None;
        self.ctrl_c_pressed.set(false);
        self.interrupt_after.set(None);
    }
}

impl Clock for SimClock {
    fn now_us(&self) -> u64 {
        self.now.get()
    }
    fn relax(&self) {
        self.now.set(self.now.get() + 50);
        self.relaxes.set(self.relaxes.get() + 1);
        self.dev.borrow_mut().advance(self.now.get());
        // The user presses the key whenever the device is in that state, whether or not
        // the driver is looking.
        if let Some(when) = &*self.ctrl_c_when.borrow() {
            if when(&self.dev.borrow()) {
                self.ctrl_c_pressed.set(true);
            }
        }
    }
    fn interrupted(&self) -> bool {
        self.ctrl_c_pressed.get()
            || self
                .interrupt_after
                .get()
                .is_some_and(|n| self.relaxes.get() >= n)
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
        writes: 0,
        fua_writes: 0,
        flushes: Vec::new(),
        latencies: Latencies::default(),
        now: 0,
        ready_at: None,
        not_ready_at: None,
        shutdown_at: None,
        running: Vec::new(),
        completed_while_disabling: 0,
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
