//! DQO TX (gvnic-dqo.md §1.3, §1.6-§1.8): the LE32 doorbell carries the new tail index; the
//! device fetches 16-byte LE descriptors from its head up to the tail, a packet being data
//! descriptors (dtype 0x0C) up to the one with end_of_packet, optionally preceded by a
//! general-context descriptor (dtype 0x04, Linux) that carries no data. After the TX
//! latency it produces a packet completion (type 2) returning the EOP descriptor's
//! compl_tag, and a descriptor completion (type 4, tx_head = index after the packet) when
//! the EOP descriptor asked for one with report_event. Completions go through the completion
//! ring's write-back (format/completion.rs) and may be held there.

use crate::format::TxDoneKind;
use crate::layout::{dqo_dtype, DqoTxDesc};
use crate::queues::DQO_TX_DESC_BYTES;
use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic};

/// TX completion types (bits 11-13 of the LE16 at +0).
pub mod completion_type {
    pub const PACKET: u16 = 2;
    pub const DESCRIPTOR: u16 = 4;
}

/// At most 10 data descriptors per packet (`GVE_TX_MAX_DATA_DESCS`, gvnic-dqo.md §1.6).
pub const MAX_DATA_DESCS: usize = 10;
const ETH_HLEN: usize = 14;

/// One TX completion entry (generation bit left 0 for the ring to set).
pub fn completion_entry(qid: u32, kind: u16, tag_or_head: u16) -> Vec<u8> {
    let word = (qid as u16 & 0x7ff) | (kind << 11);
    let mut e = vec![0u8; 8];
    e[0..2].copy_from_slice(&word.to_le_bytes());
    e[2..4].copy_from_slice(&tag_or_head.to_le_bytes());
    e
}

impl Gvnic {
    pub(crate) fn dqo_tx_doorbell(&mut self, qid: u32, tail: u32, mem: &dyn GuestMemory) {
        let Some(q) = self.tx.get_mut(&qid) else {
            return;
        };
        if tail >= q.ring_size {
            let size = q.ring_size;
            self.record.violation(
                ViolationKind::DoorbellBeyondRing,
                format!("DQO TX{qid} doorbell {tail}: the tail must be an index below the ring size {size} (ignored)"),
            );
            return;
        }
        q.posted = tail;
        self.dqo_process_tx(qid, mem);
    }

    fn dqo_read_desc(&mut self, mem: &dyn GuestMemory, ring: u64, idx: u32) -> Option<DqoTxDesc> {
        let mut d = [0u8; 16];
        let at = ring + u64::from(idx) * DQO_TX_DESC_BYTES;
        self.dma_read(mem, at, &mut d, "DQO TX descriptor")
            .then(|| DqoTxDesc::parse(&d))
    }

    fn dqo_process_tx(&mut self, qid: u32, mem: &dyn GuestMemory) {
        loop {
            let Some(q) = self.tx.get(&qid).cloned() else {
                return;
            };
            let mask = q.ring_size - 1;
            let avail = q.posted.wrapping_sub(q.head) & mask;
            if avail == 0 {
                return;
            }
            // Find the packet's end; a packet whose EOP is not posted yet waits.
            let mut descs = Vec::new();
            let mut eop = false;
            for n in 0..avail {
                let Some(d) = self.dqo_read_desc(mem, q.ring, (q.head + n) & mask) else {
                    return;
                };
                descs.push(d);
                if d.dtype == dqo_dtype::PACKET && d.eop {
                    eop = true;
                    break;
                }
            }
            if !eop {
                return;
            }
            let used = descs.len() as u32;
            let next = (q.head + used) & mask;
            let mut done = Vec::new();
            if let Some(last) = self.dqo_tx_packet(qid, &q, &descs, mem) {
                done.push(completion_entry(
                    qid,
                    completion_type::PACKET,
                    last.compl_tag,
                ));
                if last.report_event {
                    done.push(completion_entry(
                        qid,
                        completion_type::DESCRIPTOR,
                        next as u16,
                    ));
                }
            }
            if let Some(q) = self.tx.get_mut(&qid) {
                q.head = next;
            }
            if !done.is_empty() {
                self.complete_tx_later(qid, TxDoneKind::Dqo(done), mem);
            }
            self.count_tx_packet();
        }
    }

    /// Check and send one packet; returns its EOP descriptor (for the completion), or None
    /// when the descriptors are unusable (recorded; consumed without a completion, a guess).
    fn dqo_tx_packet(
        &mut self,
        qid: u32,
        q: &crate::queues::TxQueue,
        descs: &[DqoTxDesc],
        mem: &dyn GuestMemory,
    ) -> Option<DqoTxDesc> {
        use ViolationKind::{BadDescriptor, Unmodelled};
        let at = q.head;
        let mut data = Vec::new();
        for (i, d) in descs.iter().enumerate() {
            match d.dtype {
                dqo_dtype::PACKET => {
                    if d.report_event && i + 1 != descs.len() {
                        self.record.violation(
                            BadDescriptor,
                            format!("DQO TX{qid} packet at {at}: report_event on a descriptor that is not the last"),
                        );
                    }
                    data.push(*d);
                }
                // Metadata only (Linux emits one per packet; iPXE none): no data.
                dqo_dtype::GENERAL_CONTEXT => {}
                dqo_dtype::TSO_CONTEXT => {
                    self.record.violation(
                        Unmodelled,
                        format!("DQO TX{qid} TSO packet at {at} (not modelled; dropped)"),
                    );
                    return descs.last().copied();
                }
                t => {
                    self.record.violation(
                        BadDescriptor,
                        format!(
                            "DQO TX{qid} descriptor {} has dtype {t:#x}",
                            (at + i as u32) & (q.ring_size - 1)
                        ),
                    );
                    return None;
                }
            }
        }
        if data.len() > MAX_DATA_DESCS {
            self.record.violation(
                BadDescriptor,
                format!("DQO TX{qid} packet at {at} has {} data descriptors (at most {MAX_DATA_DESCS}; dropped)", data.len()),
            );
            return descs.last().copied();
        }
        let len: usize = data.iter().map(|d| usize::from(d.buf_size)).sum();
        if !(ETH_HLEN..=ETH_HLEN + usize::from(self.max_mtu()) + 4).contains(&len) {
            self.record.violation(
                BadDescriptor,
                format!(
                    "DQO TX{qid} packet at {at}: {len} bytes, MTU {} (dropped)",
                    self.max_mtu()
                ),
            );
            return descs.last().copied();
        }
        let mut frame = Vec::with_capacity(len);
        for d in &data {
            let mut buf = vec![0u8; usize::from(d.buf_size)];
            if !self.buffer_read(mem, q.addressing, d.addr, &mut buf, "DQO TX buffer") {
                return descs.last().copied();
            }
            frame.extend_from_slice(&buf);
        }
        if data.iter().any(|d| d.csum) && !super::csum::complete_parsed(&mut frame) {
            self.record.violation(
                Unmodelled,
                format!("DQO TX{qid} checksum offload for a frame that is not TCP/UDP over IPv4/IPv6 (sent as is)"),
            );
        }
        self.emit_tx(frame);
        descs.last().copied()
    }

    /// Completions reach the ring (after the TX latency): held, or written per full line.
    pub(crate) fn dqo_tx_completions(
        &mut self,
        qid: u32,
        entries: Vec<Vec<u8>>,
        mem: &dyn GuestMemory,
    ) {
        let stuck = self.cfg.faults.dqo_generation_stuck;
        let Some(q) = self.tx.get_mut(&qid) else {
            return;
        };
        let block = q.ntfy;
        let Some(mut ring) = q.compl.take() else {
            return;
        };
        for e in entries {
            if ring.push(e, stuck) {
                self.write_back(&mut ring, mem, "TX completion");
            }
        }
        if let Some(q) = self.tx.get_mut(&qid) {
            q.compl = Some(ring);
        }
        self.completion_event(block, mem);
    }
}
