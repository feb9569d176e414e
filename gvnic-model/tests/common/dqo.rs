//! A DQO test driver over the public API (gvnic-dqo.md §1): LE descriptors, completion rings
//! with generation bits, MSI-X through BAR1 and config space, IRQ doorbells.

use super::*;

pub const TX_COMP_RING: u64 = 0x30000;
/// Where a driver points its dummy MSI-X vectors (gvnic-dqo.md §1.10).
pub const DUMMY_MSI: u64 = 0x8000;
pub const MSIX_CAP: u16 = 0x40;

pub struct Dqo {
    pub ring: u32,
    pub comp: u32,
    pub tx_tail: u32,
    pub tx_comp_seen: u32,
    pub rx_buf_tail: u32,
    pub rx_comp_seen: u32,
}

pub fn le32_bus(v: u32) -> u64 {
    u64::from(v)
}

impl H {
    /// CONFIGURE in `format` (3 DQO-RDA, 4 DQO-QPL), then TX and RX queues with rings of
    /// `ring` descriptors and completion rings of `comp` entries. RDA unless QPLs given.
    pub fn dqo_bring_up(&mut self, format: u8, ring: u32, comp: u32) -> Dqo {
        self.start_aq();
        assert_eq!(self.describe(), status::PASSED);
        let n = u32::from(self.dev.config().counters);
        assert_eq!(self.submit(self.configure_cmd(n, format)), status::PASSED);
        let (txq, rxq) = if format == 4 {
            assert_eq!(
                self.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES),
                status::PASSED
            );
            assert_eq!(
                self.register(RX_QPL_ID, RX_QPL_BASE, RX_PAGES),
                status::PASSED
            );
            (TX_QPL_ID, RX_QPL_ID)
        } else {
            (0xffff_ffff, 0xffff_ffff)
        };
        let mut c = self.create_tx_cmd(0, txq);
        put64(&mut c, 40, TX_COMP_RING);
        put16(&mut c, 48, ring as u16);
        put16(&mut c, 50, comp as u16);
        assert_eq!(self.submit(c), status::PASSED);
        self.tx_db = self.mem_be32(TX_RES);
        let mut c = be_cmd(opcode::CREATE_RX_QUEUE);
        put32(&mut c, 8, 0);
        put32(&mut c, 20, 1);
        put64(&mut c, 24, RX_RES);
        put64(&mut c, 32, RX_DESC_RING); // completion ring
        put64(&mut c, 40, RX_DATA_RING); // buffer ring
        put32(&mut c, 48, rxq);
        put16(&mut c, 52, comp as u16);
        put16(&mut c, 54, 2048);
        put16(&mut c, 56, ring as u16);
        assert_eq!(self.submit(c), status::PASSED);
        self.rx_db = self.mem_be32(RX_RES);
        Dqo {
            ring,
            comp,
            tx_tail: 0,
            tx_comp_seen: 0,
            rx_buf_tail: 0,
            rx_comp_seen: 0,
        }
    }

    /// A DQO doorbell: a plain LE32 store.
    pub fn db_le(&mut self, index: u32, v: u32) {
        self.dev
            .bar_write(2, u64::from(index) * 4, 4, le32_bus(v), &self.mem);
    }

    /// IRQ doorbell index of notification block k (written by CONFIGURE).
    pub fn irq_db(&self, k: u64) -> u32 {
        self.mem_be32(IRQ_DBS + k * 64)
    }

    /// iPXE's dummy-vector step: every vector at DUMMY_MSI with data `0x100 + v`, function
    /// unmasked, MSI-X on; vectors stay masked until `unmask_vector`.
    pub fn msix_dummy(&mut self) {
        let vectors = (self.dev.config_read(MSIX_CAP + 2, 2) & 0x7ff) + 1;
        for v in 0..u64::from(vectors) {
            let e = v * 16;
            self.dev.bar_write(1, e, 4, DUMMY_MSI, &self.mem);
            self.dev.bar_write(1, e + 4, 4, 0, &self.mem);
            self.dev.bar_write(1, e + 8, 4, 0x100 + v, &self.mem);
        }
        self.dev.config_write(MSIX_CAP + 2, 2, 1 << 15);
    }

    pub fn unmask_vector(&mut self, v: u64) {
        self.dev.bar_write(1, v * 16 + 12, 4, 0, &self.mem);
    }

    /// Post a frame as one data descriptor at DMA address `addr` with tag `tag`.
    pub fn dqo_send_at(&mut self, q: &mut Dqo, addr: u64, frame: &[u8], tag: u16, report: bool) {
        self.mem.write(addr, frame).unwrap();
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8] = 0x0C | 0x20 | if report { 0x80 } else { 0 };
        d[12..14].copy_from_slice(&tag.to_le_bytes());
        d[14..16].copy_from_slice(&(frame.len() as u16).to_le_bytes());
        self.mem
            .write(TX_RING + u64::from(q.tx_tail) * 16, &d)
            .unwrap();
        q.tx_tail = (q.tx_tail + 1) % q.ring;
        self.db_le(self.tx_db, q.tx_tail);
    }

    pub fn dqo_send(&mut self, q: &mut Dqo, frame: &[u8], tag: u16) {
        let addr = TX_QPL_BASE + u64::from(tag % 8) * 2048;
        self.dqo_send_at(q, addr, frame, tag, false);
    }

    /// The next TX completion if its generation says it is new: (type, tag or head).
    pub fn dqo_tx_completion(&mut self, q: &mut Dqo) -> Option<(u16, u16)> {
        let slot = q.tx_comp_seen % q.comp;
        let e = self.mem_read(TX_COMP_RING + u64::from(slot) * 8, 8);
        let word = u16::from_le_bytes([e[0], e[1]]);
        let expected = (q.tx_comp_seen / q.comp).is_multiple_of(2);
        if (word & 0x8000 != 0) != expected {
            return None;
        }
        q.tx_comp_seen += 1;
        Some(((word >> 11) & 7, u16::from_le_bytes([e[2], e[3]])))
    }

    /// Post `n` RX buffers (buf_id = index, 2 KiB each in the RX area) and ring.
    pub fn dqo_post_rx(&mut self, q: &mut Dqo, n: u32) {
        for _ in 0..n {
            let id = q.rx_buf_tail;
            let mut d = [0u8; 32];
            d[0..2].copy_from_slice(&(id as u16).to_le_bytes());
            let addr = RX_QPL_BASE + u64::from(id % 64) * 2048;
            d[8..16].copy_from_slice(&addr.to_le_bytes());
            self.mem
                .write(RX_DATA_RING + u64::from(id % q.ring) * 32, &d)
                .unwrap();
            q.rx_buf_tail += 1;
        }
        self.db_le(self.rx_db, q.rx_buf_tail % q.ring);
    }

    /// The next RX completion if new: (buf_id, len, eop, error, ptype).
    pub fn dqo_rx_completion(&mut self, q: &mut Dqo) -> Option<(u16, usize, bool, bool, u16)> {
        let slot = q.rx_comp_seen % q.comp;
        let e = self.mem_read(RX_DESC_RING + u64::from(slot) * 32, 32);
        let lw = u16::from_le_bytes([e[4], e[5]]);
        let expected = (q.rx_comp_seen / q.comp).is_multiple_of(2);
        if (lw & 0x4000 != 0) != expected {
            return None;
        }
        q.rx_comp_seen += 1;
        Some((
            u16::from_le_bytes([e[12], e[13]]),
            usize::from(lw & 0x3fff),
            e[8] & 2 != 0,
            e[1] & 4 != 0,
            u16::from_le_bytes([e[2], e[3]]) & 0x3ff,
        ))
    }
}
