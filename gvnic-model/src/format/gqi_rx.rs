//! GQI RX (facts §4.2): data-ring slots made available by the RX doorbell's fill count; an
//! inbound frame takes the next slot (a QPL offset in GQI-QPL, a DMA address in GQI-RDA),
//! lands at the slot's address + 2 pad bytes, and a 64-byte descriptor with len (pad
//! included) and flags_seq (seq 1..7, skipping 0) is written.

use crate::queues::RX_BUFFER_SIZE;
use crate::record::ViolationKind;
use crate::{be64, GuestMemory, Gvnic};

/// The 2 bytes of padding in front of every received frame (facts §4.2, GVE_RX_PAD).
pub const RX_PAD: usize = 2;
/// Bytes per RX descriptor.
pub const RX_DESC_SIZE: u64 = 64;
/// Frames the device holds while the guest has no free buffer (guess; beyond this, drops).
pub const RX_BACKLOG: usize = 256;

/// flags_seq bits (BE16 value, facts §4.2).
pub mod rx_flags {
    pub const FRAG: u16 = 0x0040;
    pub const IPV4: u16 = 0x0080;
    pub const IPV6: u16 = 0x0100;
    pub const TCP: u16 = 0x0200;
    pub const UDP: u16 = 0x0400;
    pub const ERR: u16 = 0x0800;
    pub const PKT_CONT: u16 = 0x2000;
    pub const SEQ_MASK: u16 = 0x0007;
}

/// The next sequence number: 1..=7 cycling, never 0 (facts §4.2).
pub fn next_seq(seq: u8) -> u8 {
    if seq >= 7 {
        1
    } else {
        seq + 1
    }
}

/// The L3/L4 flags a GQI device reports for a frame.
pub fn frame_flags(f: &[u8]) -> u16 {
    let mut et_off = 12;
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        et_off = 16; // one 802.1Q tag
    }
    if f.len() < et_off + 2 {
        return 0;
    }
    let ip = et_off + 2;
    match [f[et_off], f[et_off + 1]] {
        [0x08, 0x00] if f.len() >= ip + 20 => {
            let mut fl = rx_flags::IPV4;
            let frag = u16::from_be_bytes([f[ip + 6], f[ip + 7]]);
            if frag & 0x3fff != 0 {
                fl |= rx_flags::FRAG;
            }
            fl | l4_flag(f[ip + 9])
        }
        [0x86, 0xdd] if f.len() >= ip + 40 => rx_flags::IPV6 | l4_flag(f[ip + 6]),
        _ => 0,
    }
}

fn l4_flag(proto: u8) -> u16 {
    match proto {
        6 => rx_flags::TCP,
        17 => rx_flags::UDP,
        _ => 0,
    }
}

impl Gvnic {
    pub(crate) fn rx_doorbell(&mut self, qid: u32, value: u32, mem: &dyn GuestMemory) {
        let Some(q) = self.rx.get_mut(&qid) else {
            return;
        };
        let entries = q.ring_size;
        if value.wrapping_sub(q.fill) > entries || value.wrapping_sub(q.head) > entries {
            let (fill, head) = (q.fill, q.head);
            self.record.violation(
                ViolationKind::DoorbellBeyondRing,
                format!("RX{qid} doorbell {value}: fill was {fill}, device used {head}, ring {entries} (ignored)"),
            );
            return;
        }
        q.fill = value;
        self.deliver_rx(mem);
    }

    /// GQI: slots the frame needs vs slots posted and free.
    pub(crate) fn gqi_rx_room(&self, qid: u32, frame_len: usize) -> bool {
        let Some(q) = self.rx.get(&qid) else {
            return false;
        };
        // A frame bigger than one 2 KiB buffer (jumbo MTU) spans several slots, each a
        // descriptor with PKT_CONT but the last (facts §4.2); it waits until all are posted.
        let fragments = (frame_len + RX_PAD).div_ceil(usize::from(RX_BUFFER_SIZE)) as u32;
        q.fill.wrapping_sub(q.head) >= fragments
    }

    /// Writes one frame into as many slots as it needs and records it on the wire.
    pub(crate) fn rx_one(&mut self, qid: u32, frame: Vec<u8>, mem: &dyn GuestMemory) {
        let mut padded = vec![0u8; RX_PAD];
        padded.extend_from_slice(&frame);
        let mut flags = frame_flags(&frame);
        let mut note = None;
        if self.rx_errors_injected < self.cfg.faults.rx_error_frames {
            self.rx_errors_injected += 1;
            flags |= rx_flags::ERR;
            note = Some("rx_error_frames fault: delivered with ERR");
        }
        let chunks: Vec<&[u8]> = padded.chunks(usize::from(RX_BUFFER_SIZE)).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.iter().enumerate() {
            let cont = if i < last { rx_flags::PKT_CONT } else { 0 };
            if let Err(why) = self.rx_fragment(qid, chunk, flags | cont, mem) {
                self.wire.record_rx(frame, self.now_ticks(), Some(why));
                return;
            }
        }
        self.wire.record_rx(frame, self.now_ticks(), note);
    }

    /// One descriptor's worth: `data` (pad included for a first fragment) into the next slot.
    fn rx_fragment(
        &mut self,
        qid: u32,
        data: &[u8],
        mut flags: u16,
        mem: &dyn GuestMemory,
    ) -> Result<(), &'static str> {
        let Some(q) = self.rx.get(&qid).cloned() else {
            return Err("no RX queue");
        };
        let mask = q.ring_size - 1;
        let slot = u64::from(q.head & mask);
        let mut slot_bytes = [0u8; 8];
        if !self.dma_read(mem, q.data_ring + slot * 8, &mut slot_bytes, "RX data slot") {
            // Cannot fetch the slot: the frame is lost, the slot stays (device stall).
            return Err("RX data slot unreadable");
        }
        let offset = be64(&slot_bytes, 0);
        let written = self.buffer_write(mem, q.addressing, offset, data, "RX buffer");
        if !written {
            // Guess: the device reports the error through the descriptor's ERR flag and
            // moves on, rather than stalling the ring.
            flags = rx_flags::ERR;
        }
        let mut desc = [0u8; RX_DESC_SIZE as usize];
        let len = if written { data.len() as u16 } else { 0 };
        desc[60..62].copy_from_slice(&len.to_be_bytes());
        desc[62..64].copy_from_slice(&(flags | u16::from(q.seq)).to_be_bytes());
        if !self.dma_write(
            mem,
            q.desc_ring + slot * RX_DESC_SIZE,
            &desc,
            "RX descriptor",
        ) {
            return Err("RX descriptor unwritable");
        }
        let head = q.head.wrapping_add(1);
        if let Some(q) = self.rx.get_mut(&qid) {
            q.head = head;
            q.seq = next_seq(q.seq);
        }
        // nanos detects RX through this counter and that works on GCE (facts §4.2).
        if let Some(conf) = self.configured.as_ref() {
            let at = conf.counter_array + u64::from(q.counter_index) * 4;
            self.dma_write(mem, at, &head.to_be_bytes(), "RX event counter");
        }
        self.completion_event(q.ntfy, mem);
        if written {
            Ok(())
        } else {
            Err("QPL offset outside registered pages: ERR descriptor")
        }
    }
}
