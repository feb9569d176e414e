//! MODIFY_RING (0x6): the ring sizes a driver may choose (Linux `struct
//! gve_device_option_modify_ring`: mask, max_rx_ring_size, max_tx_ring_size,
//! min_rx_ring_size, min_tx_ring_size, all BE16 after the BE32 mask; 12 bytes, 8 meaning "no
//! minimums"). Linux 6.9+ reads it (`ethtool -G` within [min, max], powers of two); 6.1
//! does not know it and skips it.

use super::{body_with_mask, feature, id, DeviceOption};

/// The 12-byte body with minimums.
pub const BODY_LEN: usize = 12;

/// Ring-size limits in descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLimits {
    pub max_rx: u16,
    pub max_tx: u16,
    pub min_rx: u16,
    pub min_tx: u16,
}

/// The 2026 profile's limits. Maximum 4096 (guess: no public number; DPDK's gve caps DQO
/// rings at 4096, `GVE_MAX_QUEUE_SIZE_DQO`); minimums 512 RX and 256 TX, the values Linux,
/// FreeBSD and DPDK all assume when a device gives none (`GVE_DEFAULT_MIN_*_RING_SIZE`).
pub const LIMITS: RingLimits = RingLimits {
    max_rx: 4096,
    max_tx: 4096,
    min_rx: 512,
    min_tx: 256,
};

pub fn option(l: RingLimits) -> DeviceOption {
    let mut rest = Vec::with_capacity(8);
    for v in [l.max_rx, l.max_tx, l.min_rx, l.min_tx] {
        rest.extend_from_slice(&v.to_be_bytes());
    }
    DeviceOption {
        id: id::MODIFY_RING,
        body: body_with_mask(feature::MODIFY_RING, &rest),
    }
}
