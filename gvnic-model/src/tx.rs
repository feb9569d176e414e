//! GQI TX (facts §4.1): doorbell -> 16-byte packet/segment descriptors -> gather from the QPL
//! -> the wire -> BE32 event counter = descriptors completed.

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
        let entries = u32::from(self.cfg.tx_queue_entries);
        let Some(q) = self.tx.get(&qid) else { return };
        let (head, posted) = (q.head, q.posted);
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

    fn read_tx_desc(&mut self, mem: &dyn GuestMemory, ring: u64, idx: u32) -> Option<[u8; 16]> {
        let mask = u32::from(self.cfg.tx_queue_entries) - 1;
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
            let Some(first) = self.read_tx_desc(mem, q.ring, q.head) else {
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
            let delay = u64::from(self.cfg.faults.tx_completion_delay_ticks);
            if delay == 0 {
                self.write_tx_counter(qid, head, mem);
            } else {
                self.tx_pending.push_back((self.now + delay, qid, head));
            }
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
        let entries = u32::from(self.cfg.tx_queue_entries);
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
            let d = self.read_tx_desc(mem, q.ring, q.head.wrapping_add(i))?;
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
        if flags & tx_desc::FLAG_L4CSUM != 0 {
            self.record.violation(
                Unmodelled,
                format!("TX{qid} L4 checksum offload requested (not modelled; sent as is)"),
            );
        }
        let total: usize = segs.iter().map(|s| s.0).sum();
        if total != len || len < ETH_HLEN || len > ETH_HLEN + usize::from(self.cfg.mtu) + 4 {
            self.record.violation(
                BadDescriptor,
                format!(
                    "TX{qid} packet at {}: len {len}, segments sum to {total}, MTU {} (dropped)",
                    q.head, self.cfg.mtu
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
            if !self.qpl_read(mem, q.qpl, off, &mut buf, "TX segment") {
                return Some(cnt);
            }
            frame.extend_from_slice(&buf);
        }
        self.emit_tx(frame);
        Some(cnt)
    }

    fn write_tx_counter(&mut self, qid: u32, value: u32, mem: &dyn GuestMemory) {
        let (Some(q), Some(conf)) = (self.tx.get(&qid), self.configured.as_ref()) else {
            return;
        };
        let at = conf.counter_array + u64::from(q.counter_index) * 4;
        self.dma_write(mem, at, &value.to_be_bytes(), "TX event counter");
    }

    pub(crate) fn flush_tx_completions(&mut self, mem: &dyn GuestMemory) {
        while let Some(&(due, qid, value)) = self.tx_pending.front() {
            if due > self.now {
                break;
            }
            self.tx_pending.pop_front();
            self.write_tx_counter(qid, value, mem);
        }
    }
}
