//! GQI TX (facts §4.1): doorbell -> 16-byte packet/segment descriptors -> gather (QPL
//! offsets in GQI-QPL, DMA addresses in GQI-RDA: addressing.rs) -> the wire -> after the TX
//! completion latency, BE32 event counter = descriptors completed.

use crate::format::{TxDone, TxDoneKind};
use crate::record::ViolationKind;
use crate::{be16, be64, GuestMemory, Gvnic};

/// Descriptor type (upper nibble of byte 0) and flags (lower nibble), facts §4.1.
pub mod tx_desc {
    pub const TYPE_STD: u8 = 0x0;
    pub const TYPE_TSO: u8 = 0x1;
    pub const TYPE_SEG: u8 = 0x2;
    pub const TYPE_MTD: u8 = 0x3;
    pub const FLAG_L4CSUM: u8 = 0x01;
    pub const FLAG_TSTAMP: u8 = 0x04;
    pub const SIZE: u64 = 16;
}

/// Linux puts at least min(182, len) bytes in the first descriptor (facts §4.1).
pub const MIN_FIRST_SEGMENT: usize = 182;
/// Ethernet header (the MTU counts the L3 packet only).
const ETH_HLEN: usize = 14;

impl Gvnic {
    pub(crate) fn tx_doorbell(&mut self, qid: u32, value: u32, mem: &dyn GuestMemory) {
        let Some(q) = self.tx.get(&qid) else { return };
        let (head, posted, entries) = (q.head, q.posted, q.ring_size);
        if value.wrapping_sub(posted) > entries || value.wrapping_sub(head) > entries {
            self.record.violation(
                ViolationKind::DoorbellBeyondRing,
                format!("TX{qid} doorbell {value}: posted {posted}, consumed {head}, ring {entries} (ignored)"),
            );
            return;
        }
        if let Some(q) = self.tx.get_mut(&qid) {
            q.posted = value;
        }
        self.process_tx(qid, mem);
    }

    fn read_tx_desc(
        &mut self,
        mem: &dyn GuestMemory,
        q: &crate::queues::TxQueue,
        idx: u32,
    ) -> Option<[u8; 16]> {
        let (ring, mask) = (q.ring, q.ring_size - 1);
        let mut d = [0u8; 16];
        let at = ring + u64::from(idx & mask) * tx_desc::SIZE;
        self.dma_read(mem, at, &mut d, "TX descriptor").then_some(d)
    }

    fn process_tx(&mut self, qid: u32, mem: &dyn GuestMemory) {
        loop {
            let Some(q) = self.tx.get(&qid).cloned() else {
                return;
            };
            let avail = q.posted.wrapping_sub(q.head);
            if avail == 0 {
                return;
            }
            let Some(first) = self.read_tx_desc(mem, &q, q.head) else {
                return;
            };
            let consumed = match self.tx_packet(qid, &q, &first, avail, mem) {
                Some(n) => n,
                // The packet's later descriptors are not posted yet: wait for the doorbell.
                None => return,
            };
            let head = q.head.wrapping_add(consumed);
            if let Some(q) = self.tx.get_mut(&qid) {
                q.head = head;
            }
            self.complete_tx_later(qid, TxDoneKind::GqiCounter(head), mem);
            self.count_tx_packet();
        }
    }

    /// Parse and send one packet starting at `first`; returns descriptors consumed, or None
    /// when it needs more than are posted. Malformed packets are consumed and dropped (the
    /// real device's behaviour here is not public: a guess that keeps the driver unblocked).
    fn tx_packet(
        &mut self,
        qid: u32,
        q: &crate::queues::TxQueue,
        first: &[u8; 16],
        avail: u32,
        mem: &dyn GuestMemory,
    ) -> Option<u32> {
        use ViolationKind::{BadDescriptor, Tolerated, Unmodelled};
        let ty = first[0] >> 4;
        let flags = first[0] & 0xf;
        let cnt = u32::from(first[3]);
        let entries = q.ring_size;
        if ty != tx_desc::TYPE_STD && ty != tx_desc::TYPE_TSO {
            self.record.violation(
                BadDescriptor,
                format!(
                    "TX{qid} descriptor {} has type {ty:#x} where a packet starts",
                    q.head
                ),
            );
            return Some(1);
        }
        if cnt == 0 || cnt > entries {
            self.record.violation(
                BadDescriptor,
                format!("TX{qid} packet descriptor {} desc_cnt {cnt}", q.head),
            );
            return Some(1);
        }
        if cnt > avail {
            return None;
        }
        let len = usize::from(be16(first, 4));
        let mut segs = vec![(usize::from(be16(first, 6)), be64(first, 8))];
        for i in 1..cnt {
            let d = self.read_tx_desc(mem, q, q.head.wrapping_add(i))?;
            match d[0] >> 4 {
                tx_desc::TYPE_SEG => segs.push((usize::from(be16(&d, 6)), be64(&d, 8))),
                // Metadata descriptors carry no data (facts §4.1: optional, skip).
                tx_desc::TYPE_MTD => {}
                t => {
                    self.record.violation(
                        BadDescriptor,
                        format!(
                            "TX{qid} descriptor {} of a packet has type {t:#x}",
                            q.head.wrapping_add(i)
                        ),
                    );
                    return Some(cnt);
                }
            }
        }
        if ty == tx_desc::TYPE_TSO {
            self.record.violation(
                Unmodelled,
                format!("TX{qid} TSO packet (not modelled; dropped)"),
            );
            return Some(cnt);
        }
        let total: usize = segs.iter().map(|s| s.0).sum();
        if total != len || len < ETH_HLEN || len > ETH_HLEN + usize::from(self.max_mtu()) + 4 {
            self.record.violation(
                BadDescriptor,
                format!(
                    "TX{qid} packet at {}: len {len}, segments sum to {total}, MTU {} (dropped)",
                    q.head,
                    self.max_mtu()
                ),
            );
            return Some(cnt);
        }
        if segs[0].0 < len.min(MIN_FIRST_SEGMENT) {
            self.record.violation(
                Tolerated,
                format!("TX{qid} first segment {} bytes < min(182, len)", segs[0].0),
            );
        }
        let mut frame = Vec::with_capacity(len);
        for (seg_len, off) in segs {
            if off % 2 != 0 {
                self.record.violation(
                    Tolerated,
                    format!("TX{qid} seg_addr {off:#x} is odd (Fuchsia: must be even)"),
                );
            }
            let mut buf = vec![0u8; seg_len];
            if !self.buffer_read(mem, q.addressing, off, &mut buf, "TX segment") {
                return Some(cnt);
            }
            frame.extend_from_slice(&buf);
        }
        if flags & tx_desc::FLAG_L4CSUM != 0
            && !super::csum::complete_gqi(&mut frame, first[2], first[1])
        {
            self.record.violation(
                BadDescriptor,
                format!(
                    "TX{qid} checksum offload at words {}/{} outside the {len}-byte frame (sent as is)",
                    first[2], first[1]
                ),
            );
        }
        self.emit_tx(frame);
        Some(cnt)
    }

    pub(crate) fn write_tx_counter(&mut self, qid: u32, value: u32, mem: &dyn GuestMemory) {
        let (Some(q), Some(conf)) = (self.tx.get(&qid), self.configured.as_ref()) else {
            return;
        };
        let at = conf.counter_array + u64::from(q.counter_index) * 4;
        let block = q.ntfy;
        if self.dma_write(mem, at, &value.to_be_bytes(), "TX event counter") {
            self.completion_event(block, mem);
        }
    }

    /// A TX completion becomes visible after the TX latency (plus the delay fault).
    pub(crate) fn complete_tx_later(&mut self, qid: u32, what: TxDoneKind, mem: &dyn GuestMemory) {
        let delay = self.cfg.latencies.tx_completion_us
            + u64::from(self.cfg.faults.tx_completion_delay_ticks) * crate::device::TICK_US;
        if delay == 0 {
            self.complete_tx(qid, what, mem);
        } else {
            self.tx_pending.push_back(TxDone {
                due: self.now + delay,
                qid,
                what,
            });
        }
    }

    fn complete_tx(&mut self, qid: u32, what: TxDoneKind, mem: &dyn GuestMemory) {
        match what {
            TxDoneKind::GqiCounter(v) => self.write_tx_counter(qid, v, mem),
            TxDoneKind::Dqo(entries) => self.dqo_tx_completions(qid, entries, mem),
        }
    }

    pub(crate) fn flush_tx_completions(&mut self, mem: &dyn GuestMemory) {
        while self.tx_pending.front().is_some_and(|p| p.due <= self.now) {
            if let Some(p) = self.tx_pending.pop_front() {
                self.complete_tx(p.qid, p.what, mem);
            }
        }
    }
}
