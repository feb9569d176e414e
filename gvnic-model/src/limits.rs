//! The ring and buffer sizes a queue create may ask for: the described sizes, widened by
//! the profile's MODIFY_RING (ring sizes) and BUFFER_SIZES (DQO RX buffers) options
//! (options/ring.rs, options/buffers.rs). queues.rs asks; this module knows only sizes.

use crate::queues::{DQO_MIN_RING, RX_BUFFER_SIZE};
use crate::Gvnic;

/// A power of two in `lo..=hi`.
pub(crate) fn pow2_in(v: u32, lo: u32, hi: u32) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

impl Gvnic {
    /// The largest ring the device takes: MODIFY_RING's maximum when it offers that option,
    /// else the described size. Smaller rings down to `DQO_MIN_RING` are taken even below
    /// MODIFY_RING's minimum (guess: a minimum the device states is not known to be enforced).
    pub(crate) fn max_ring(&self, described: u32, rx: bool) -> u32 {
        let lim = self.generation().modify_ring;
        lim.map_or(described, |l| {
            u32::from(if rx { l.max_rx } else { l.max_tx })
        })
        .max(described)
    }

    /// A GQI ring: the described size, or with MODIFY_RING a power of two up to `max`.
    pub(crate) fn gqi_ring_ok(&self, size: u32, described: u32, max: u32) -> bool {
        size == described
            || (self.generation().modify_ring.is_some() && pow2_in(size, DQO_MIN_RING, max))
    }

    /// What is wrong with a DQO CREATE_RX_QUEUE's sizes, if anything: completion ring up to
    /// 4x `max` and buffer ring up to `max` (powers of two); packet buffers of 2048 or, with
    /// BUFFER_SIZES, a power of two up to its packet size (gvnic-dqo.md §1.12: Linux uses
    /// 2048..=4096); header buffers 0 (no split) or BUFFER_SIZES' header size.
    pub(crate) fn dqo_rx_sizes_problem(
        &self,
        ring: u32,
        buff: u32,
        max: u32,
        buf_size: u16,
        hdr: u16,
    ) -> Option<String> {
        let sizes = self.generation().buffer_sizes;
        let buf_ok = buf_size == RX_BUFFER_SIZE
            || sizes.is_some_and(|s| {
                buf_size.is_power_of_two() && (RX_BUFFER_SIZE..=s.packet).contains(&buf_size)
            });
        let hdr_ok = hdr == 0 || sizes.is_some_and(|s| hdr == s.header);
        if !pow2_in(ring, DQO_MIN_RING, 4 * max) {
            Some(format!(
                "CREATE_RX_QUEUE DQO rx_ring_size {ring}: a power of two in {DQO_MIN_RING}..={}",
                4 * max
            ))
        } else if !pow2_in(buff, DQO_MIN_RING, max) {
            Some(format!("CREATE_RX_QUEUE DQO rx_buff_ring_size {buff}: a power of two in {DQO_MIN_RING}..={max}"))
        } else if !buf_ok {
            let more = sizes.map_or(String::new(), |s| {
                format!("..={} (powers of two)", s.packet)
            });
            Some(format!(
                "CREATE_RX_QUEUE DQO packet_buffer_size {buf_size}: the device takes 2048{more}"
            ))
        } else if !hdr_ok {
            let why = sizes.map_or("header split is not offered".into(), |s| {
                format!("the device's header buffers are {} bytes", s.header)
            });
            Some(format!(
                "CREATE_RX_QUEUE DQO header_buffer_size {hdr}: {why}"
            ))
        } else {
            None
        }
    }
}
