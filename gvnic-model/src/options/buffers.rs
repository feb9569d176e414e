//! BUFFER_SIZES (0xA): the RX packet and header buffer sizes the device accepts (Linux
//! `struct gve_device_option_buffer_sizes`: mask BE32, packet_buffer_size BE16,
//! header_buffer_size BE16; 8 bytes). Linux 6.8+ DQO uses packet_buffer_size for its RX
//! buffers when it exceeds the default 2048, and header_buffer_size when the user turns on
//! header split (`ethtool -G tcp-data-split on`).

use super::{body_with_mask, feature, id, DeviceOption};

pub const BODY_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    pub packet: u16,
    pub header: u16,
}

/// 4096-byte packet buffers (Linux's `GVE_MAX_RX_BUFFER_SIZE`: gvnic-dqo.md §1.12, Linux
/// accepts powers of two 2048..=4096) and 128-byte header buffers (Linux's
/// `GVE_DEFAULT_HEADER_BUFFER_SIZE`; which header size GCE offers is a guess).
pub const SIZES: BufferSizes = BufferSizes {
    packet: 4096,
    header: 128,
};

pub fn option(s: BufferSizes) -> DeviceOption {
    let mut rest = s.packet.to_be_bytes().to_vec();
    rest.extend_from_slice(&s.header.to_be_bytes());
    DeviceOption {
        id: id::BUFFER_SIZES,
        body: body_with_mask(feature::BUFFER_SIZES, &rest),
    }
}
