//! A tiny test driver over the public API: what a GQI-QPL driver does, step by step, with
//! every field visible so tests can break exactly one thing.
#![allow(dead_code)]

use gvnic_model::adminq::{opcode, status};
use gvnic_model::regs::*;
use gvnic_model::{GuestMemory, Gvnic, ModelConfig, VecMemory};

pub const RAM: usize = 4 << 20;
pub const AQ: u64 = 0x1000;
pub const DESC: u64 = 0x2000;
pub const COUNTERS: u64 = 0x3000;
pub const IRQ_DBS: u64 = 0x4000;
pub const PAGE_LIST: u64 = 0x5000;
pub const TX_RES: u64 = 0x6000;
pub const RX_RES: u64 = 0x7000;
pub const TX_RING: u64 = 0x10000;
pub const RX_DESC_RING: u64 = 0x20000;
pub const RX_DATA_RING: u64 = 0x40000;
pub const TX_QPL_BASE: u64 = 0x100000;
pub const RX_QPL_BASE: u64 = 0x200000;
pub const TX_QPL_ID: u32 = 0x18ae5458;
pub const RX_QPL_ID: u32 = 0x18ae5258;
pub const TX_PAGES: u32 = 4;
pub const RX_PAGES: u32 = 32;

pub struct H {
    pub dev: Gvnic,
    pub mem: VecMemory,
    /// Driver's free-running AQ producer count.
    pub aq_count: u32,
    pub tx_db: u32,
    pub tx_counter: u32,
    pub rx_db: u32,
    pub rx_counter: u32,
    pub tx_posted: u32,
    pub rx_expected_seq: u8,
    pub rx_cons: u32,
}

pub fn be_cmd(op: u32) -> [u8; 64] {
    let mut c = [0u8; 64];
    c[0..4].copy_from_slice(&op.to_be_bytes());
    c
}
pub fn put32(c: &mut [u8], off: usize, v: u32) {
    c[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
pub fn put64(c: &mut [u8], off: usize, v: u64) {
    c[off..off + 8].copy_from_slice(&v.to_be_bytes());
}
pub fn put16(c: &mut [u8], off: usize, v: u16) {
    c[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

impl H {
    pub fn new(cfg: ModelConfig) -> H {
        let mut dev = Gvnic::new(cfg);
        // Memory space + bus master, as a driver must set (facts §0.1).
        dev.config_write(0x04, 2, 0x0006);
        H {
            dev,
            mem: VecMemory::new(0, RAM),
            aq_count: 0,
            tx_db: 0,
            tx_counter: 0,
            rx_db: 0,
            rx_counter: 0,
            tx_posted: 0,
            rx_expected_seq: 1,
            rx_cons: 0,
        }
    }

    pub fn rev(rev: u8) -> H {
        H::new(ModelConfig {
            revision: rev,
            ..Default::default()
        })
    }

    /// A BE32 register read the way a driver does it: `u32::from_be(readl())`.
    pub fn r32(&mut self, off: u64) -> u32 {
        u32::from_be(self.dev.bar_read(0, off, 4, &self.mem) as u32)
    }
    pub fn w32(&mut self, off: u64, v: u32) {
        self.dev
            .bar_write(0, off, 4, u64::from(v.to_be()), &self.mem);
    }
    pub fn db(&mut self, index: u32, v: u32) {
        self.dev
            .bar_write(2, u64::from(index) * 4, 4, u64::from(v.to_be()), &self.mem);
    }
    pub fn mem_be32(&self, gpa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.mem.read(gpa, &mut b).unwrap();
        u32::from_be_bytes(b)
    }
    pub fn mem_read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read(gpa, &mut b).unwrap();
        b
    }
    pub fn tick(&mut self) {
        self.dev.tick(&self.mem);
    }

    /// Tick until `cond` holds, at most 50 ms of model time; false on timeout.
    pub fn wait(&mut self, cond: impl Fn(&mut H) -> bool) -> bool {
        for _ in 0..500 {
            if cond(self) {
                return true;
            }
            self.tick();
        }
        cond(self)
    }

    /// Let `us` of model time pass.
    pub fn run_us(&mut self, us: u64) {
        for _ in 0..us.div_ceil(gvnic_model::TICK_US) {
            self.tick();
        }
    }

    /// Long enough for any default latency (a reset, a completion, an arrival).
    pub fn settle(&mut self) {
        self.run_us(5_000);
    }

    /// Admin queue setup in the revision's own way (facts §2.1).
    pub fn start_aq(&mut self) {
        if self.dev.config().revision == 0 {
            self.w32(ADMINQ_PFN, (AQ >> 12) as u32);
        } else {
            self.dev
                .bar_write(0, ADMINQ_LENGTH, 2, u64::from(4096u16.to_be()), &self.mem);
            self.w32(ADMINQ_BASE_ADDRESS_HI, (AQ >> 32) as u32);
            self.w32(ADMINQ_BASE_ADDRESS_LO, AQ as u32);
            self.w32(DRIVER_STATUS, driver_status::RUN);
        }
        self.aq_count = 0;
    }

    /// Submit one command, ring, and return its status (UNSET if it did not complete).
    pub fn submit(&mut self, cmd: [u8; 64]) -> u32 {
        let slot = AQ + u64::from(self.aq_count % 64) * 64;
        self.mem.write(slot, &cmd).unwrap();
        self.aq_count = self.aq_count.wrapping_add(1);
        self.w32(ADMINQ_DOORBELL, self.aq_count);
        // Poll like a driver: the device answers after its admin latency.
        if !self.wait(|h| h.r32(ADMINQ_EVENT_COUNTER) == h.aq_count) {
            return status::UNSET;
        }
        self.mem_be32(slot + 4)
    }

    pub fn describe(&mut self) -> u32 {
        let mut c = be_cmd(opcode::DESCRIBE_DEVICE);
        put64(&mut c, 8, DESC);
        put32(&mut c, 16, 1);
        put32(&mut c, 20, 4096);
        self.submit(c)
    }

    pub fn configure_cmd(&self, num_counters: u32, format: u8) -> [u8; 64] {
        let mut c = be_cmd(opcode::CONFIGURE_DEVICE_RESOURCES);
        put64(&mut c, 8, COUNTERS);
        put64(&mut c, 16, IRQ_DBS);
        put32(&mut c, 24, num_counters);
        put32(&mut c, 28, 2);
        put32(&mut c, 32, 64);
        c[40] = format;
        c
    }

    pub fn configure(&mut self) -> u32 {
        let n = u32::from(self.dev.config().counters);
        self.submit(self.configure_cmd(n, 2))
    }

    /// REGISTER_PAGE_LIST of `n` pages starting at `base`, contiguous.
    pub fn register(&mut self, id: u32, base: u64, n: u32) -> u32 {
        let list: Vec<u8> = (0..u64::from(n))
            .flat_map(|i| (base + i * 4096).to_be_bytes())
            .collect();
        self.mem.write(PAGE_LIST, &list).unwrap();
        let mut c = be_cmd(opcode::REGISTER_PAGE_LIST);
        put32(&mut c, 8, id);
        put32(&mut c, 12, n);
        put64(&mut c, 16, PAGE_LIST);
        put64(&mut c, 24, 4096);
        self.submit(c)
    }

    pub fn unregister(&mut self, id: u32) -> u32 {
        let mut c = be_cmd(opcode::UNREGISTER_PAGE_LIST);
        put32(&mut c, 8, id);
        self.submit(c)
    }

    pub fn create_tx_cmd(&self, qid: u32, qpl: u32) -> [u8; 64] {
        let mut c = be_cmd(opcode::CREATE_TX_QUEUE);
        put32(&mut c, 8, qid);
        put64(&mut c, 16, TX_RES);
        put64(&mut c, 24, TX_RING);
        put32(&mut c, 32, qpl);
        put32(&mut c, 36, 0);
        put16(&mut c, 48, self.dev.config().tx_queue_entries);
        c
    }

    pub fn create_rx_cmd(&self, qid: u32, qpl: u32) -> [u8; 64] {
        let mut c = be_cmd(opcode::CREATE_RX_QUEUE);
        put32(&mut c, 8, qid);
        put32(&mut c, 12, qid);
        put32(&mut c, 20, 1);
        put64(&mut c, 24, RX_RES);
        put64(&mut c, 32, RX_DESC_RING);
        put64(&mut c, 40, RX_DATA_RING);
        put32(&mut c, 48, qpl);
        put16(&mut c, 52, self.dev.config().rx_queue_entries);
        put16(&mut c, 54, 2048);
        c
    }

    pub fn destroy(&mut self, op: u32, qid: u32) -> u32 {
        let mut c = be_cmd(op);
        put32(&mut c, 8, qid);
        self.submit(c)
    }

    /// iPXE's bring-up (facts §5): AQ, describe, configure, mask IRQs, register TX+RX QPLs,
    /// create TX+RX, fill RX slots with (i & 63) * 2048 and ring with 64.
    pub fn bring_up(&mut self) {
        self.start_aq();
        assert_eq!(self.describe(), status::PASSED);
        assert_eq!(self.configure(), status::PASSED);
        for k in 0..2 {
            let idx = self.mem_be32(IRQ_DBS + k * 64);
            self.db(idx, 1 << 30);
        }
        assert_eq!(
            self.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES),
            status::PASSED
        );
        assert_eq!(
            self.register(RX_QPL_ID, RX_QPL_BASE, RX_PAGES),
            status::PASSED
        );
        assert_eq!(
            self.submit(self.create_tx_cmd(0, TX_QPL_ID)),
            status::PASSED
        );
        self.tx_db = self.mem_be32(TX_RES);
        self.tx_counter = self.mem_be32(TX_RES + 4);
        let entries = u64::from(self.dev.config().rx_queue_entries);
        for i in 0..entries {
            self.mem
                .write(RX_DATA_RING + i * 8, &((i & 63) * 2048).to_be_bytes())
                .unwrap();
        }
        assert_eq!(
            self.submit(self.create_rx_cmd(0, RX_QPL_ID)),
            status::PASSED
        );
        self.rx_db = self.mem_be32(RX_RES);
        self.rx_counter = self.mem_be32(RX_RES + 4);
        self.db(self.rx_db, 64);
    }

    /// Put a frame in TX buffer `buf` (2 KiB each) as one descriptor and ring the doorbell.
    pub fn send(&mut self, frame: &[u8], buf: u64) {
        let off = buf * 2048;
        self.mem.write(TX_QPL_BASE + off, frame).unwrap();
        let mask = u32::from(self.dev.config().tx_queue_entries) - 1;
        let mut d = [0u8; 16];
        d[0] = 0x00;
        d[3] = 1;
        d[4..6].copy_from_slice(&(frame.len() as u16).to_be_bytes());
        d[6..8].copy_from_slice(&(frame.len() as u16).to_be_bytes());
        d[8..16].copy_from_slice(&off.to_be_bytes());
        self.mem
            .write(TX_RING + u64::from(self.tx_posted & mask) * 16, &d)
            .unwrap();
        self.tx_posted += 1;
        self.db(self.tx_db, self.tx_posted);
        // The completion arrives after the TX latency.
        self.run_us(gvnic_model::Latencies::default().tx_completion_us);
    }

    pub fn tx_completed(&self) -> u32 {
        self.mem_be32(COUNTERS + u64::from(self.tx_counter) * 4)
    }

    /// Poll the RX descriptor ring the way Linux/iPXE do; returns the frame (pad stripped).
    pub fn poll_rx(&mut self) -> Option<(Vec<u8>, u16)> {
        let mask = u32::from(self.dev.config().rx_queue_entries) - 1;
        let slot = u64::from(self.rx_cons & mask);
        let desc = self.mem_read(RX_DESC_RING + slot * 64, 64);
        let flags_seq = u16::from_be_bytes([desc[62], desc[63]]);
        if (flags_seq & 7) as u8 != self.rx_expected_seq {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([desc[60], desc[61]]));
        let mut off = [0u8; 8];
        self.mem.read(RX_DATA_RING + slot * 8, &mut off).unwrap();
        let off = u64::from_be_bytes(off);
        let data = self.mem_read(RX_QPL_BASE + off, len);
        self.rx_cons += 1;
        self.rx_expected_seq = if self.rx_expected_seq == 7 {
            1
        } else {
            self.rx_expected_seq + 1
        };
        Some((data[2..].to_vec(), flags_seq))
    }
}

/// A DHCP DISCOVER from `mac` with `xid` (Ethernet/IPv4/UDP/BOOTP, checksums right).
pub fn dhcp_discover(mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10] = 0x80; // broadcast flag
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    b.extend_from_slice(&[53, 1, 1, 255]);
    gvnic_model::responder::udp_frame(
        &[0xff; 6],
        &mac,
        std::net::Ipv4Addr::UNSPECIFIED,
        std::net::Ipv4Addr::BROADCAST,
        68,
        67,
        &b,
    )
}

/// A UDP frame for RX tests.
pub fn udp_test_frame(len: usize, fill: u8) -> Vec<u8> {
    gvnic_model::responder::udp_frame(
        &[0x42, 1, 10, 128, 0, 2],
        &[0x42, 1, 10, 128, 0, 1],
        std::net::Ipv4Addr::new(10, 128, 0, 1),
        std::net::Ipv4Addr::new(10, 128, 0, 2),
        1234,
        5678,
        &vec![fill; len],
    )
}

pub mod dqo;
