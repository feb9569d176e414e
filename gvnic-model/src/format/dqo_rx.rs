//! DQO RX (gvnic-dqo.md §1.3, §1.5-§1.7): the driver posts 32-byte LE buffer descriptors
//! (buf_id, DMA address) and rings the LE32 doorbell with the new buffer-ring tail. iPXE
//! writes its free-running count unmasked, so the device reduces it modulo the ring size.
//! An inbound frame takes buffers from the ring's head in order, packet_buffer_size bytes
//! each (no pad in DQO: the 2-byte pad is GQI's, facts §4.2), and for each buffer the device
//! produces a 32-byte completion: rxdid 1, packet_type (an index into the map GET_PTYPE_MAP
//! returns, ptype.rs), this buffer's length, end_of_packet on the last, the buf_id, and
//! rx_error for a damaged frame. Completions are written back per 128-byte line or when the
//! block interrupts (format/completion.rs, notify.rs).

use crate::layout::DqoRxBuf;
use crate::queues::DQO_RX_BUFFER_DESC_BYTES;
use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic};

/// RX completion bits (gvnic-dqo.md §1.6).
pub mod rx_completion {
    /// +0 bits 0-3: "must be 1".
    pub const RXDID: u8 = 1;
    /// +1 bit 2.
    pub const RX_ERROR: u8 = 1 << 2;
    /// +8 bit 0 descriptor_done, bit 1 end_of_packet.
    pub const DESCRIPTOR_DONE: u8 = 1 << 0;
    pub const END_OF_PACKET: u8 = 1 << 1;
    /// +4..5 bits 0-13: this buffer's length.
    pub const LEN_MASK: u16 = 0x3fff;
}

/// One RX completion entry (generation bit left 0 for the ring to set).
pub fn completion_entry(buf_id: u16, len: u16, ptype: u16, eop: bool, error: bool) -> Vec<u8> {
    use rx_completion::*;
    let mut e = vec![0u8; 32];
    e[0] = RXDID;
    e[1] = if error { RX_ERROR } else { 0 };
    e[2..4].copy_from_slice(&(ptype & 0x3ff).to_le_bytes());
    e[4..6].copy_from_slice(&(len & LEN_MASK).to_le_bytes());
    e[8] = DESCRIPTOR_DONE | if eop { END_OF_PACKET } else { 0 };
    e[12..14].copy_from_slice(&buf_id.to_le_bytes());
    e
}

impl Gvnic {
    pub(crate) fn dqo_rx_doorbell(&mut self, qid: u32, value: u32, mem: &dyn GuestMemory) {
        let Some(q) = self.rx.get_mut(&qid) else {
            return;
        };
        q.fill = value % q.ring_size;
        self.deliver_rx(mem);
    }

    /// Buffers posted and not yet used, modulo the ring (one slot stays empty: a full ring
    /// is indistinguishable from an empty one by head and tail alone).
    fn dqo_rx_posted(&self, qid: u32) -> u32 {
        self.rx
            .get(&qid)
            .map_or(0, |q| q.fill.wrapping_sub(q.head) & (q.ring_size - 1))
    }

    pub(crate) fn dqo_rx_room(&self, qid: u32, frame_len: usize) -> bool {
        let Some(q) = self.rx.get(&qid) else {
            return false;
        };
        let need = frame_len.div_ceil(usize::from(q.buffer_size)).max(1) as u32;
        self.dqo_rx_posted(qid) >= need
    }

    pub(crate) fn dqo_rx_one(&mut self, qid: u32, frame: Vec<u8>, mem: &dyn GuestMemory) {
        let Some(q) = self.rx.get(&qid).cloned() else {
            return;
        };
        let mut error = false;
        let mut note = None;
        if self.rx_errors_injected < self.cfg.faults.rx_error_frames {
            self.rx_errors_injected += 1;
            error = true;
            note = Some("rx_error_frames fault: delivered with rx_error");
        }
        let ptype = crate::ptype::ptype_of(&frame);
        let chunks: Vec<&[u8]> = frame.chunks(usize::from(q.buffer_size)).collect();
        let mut head = q.head;
        let mut entries = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut d = [0u8; 32];
            let at = q.data_ring + u64::from(head) * DQO_RX_BUFFER_DESC_BYTES;
            if !self.dma_read(mem, at, &mut d, "DQO RX buffer descriptor") {
                self.wire.record_rx(
                    frame,
                    self.now_ticks(),
                    Some("RX buffer descriptor unreadable"),
                );
                return;
            }
            let b = DqoRxBuf::parse(&d);
            if b.header_addr != 0 {
                self.record.violation(
                    ViolationKind::Tolerated,
                    format!(
                        "DQO RX{qid} buffer {} has a header address but header split is off",
                        b.buf_id
                    ),
                );
            }
            let written = self.buffer_write(mem, q.addressing, b.addr, chunk, "DQO RX buffer");
            // Guess: a buffer the device cannot write completes with rx_error and length 0.
            let len = if written { chunk.len() as u16 } else { 0 };
            if !written && note.is_none() {
                note = Some("buffer outside what the format allows: rx_error completion");
            }
            let eop = i + 1 == chunks.len();
            entries.push(completion_entry(
                b.buf_id,
                len,
                ptype,
                eop,
                error || !written,
            ));
            head = (head + 1) & (q.ring_size - 1);
        }
        if let Some(q) = self.rx.get_mut(&qid) {
            q.head = head;
        }
        self.dqo_rx_completions(qid, entries, mem);
        self.wire.record_rx(frame, self.now_ticks(), note);
    }

    fn dqo_rx_completions(&mut self, qid: u32, entries: Vec<Vec<u8>>, mem: &dyn GuestMemory) {
        let stuck = self.cfg.faults.dqo_generation_stuck;
        let Some(q) = self.rx.get_mut(&qid) else {
            return;
        };
        let block = q.ntfy;
        let Some(mut ring) = q.compl.take() else {
            return;
        };
        for e in entries {
            if ring.push(e, stuck) {
                self.write_back(&mut ring, mem, "RX completion");
            }
        }
        if let Some(q) = self.rx.get_mut(&qid) {
            q.compl = Some(ring);
        }
        self.completion_event(block, mem);
    }
}
