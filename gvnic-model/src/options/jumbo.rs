//! JUMBO_FRAMES (0x8): the largest MTU the device carries (Linux `struct
//! gve_device_option_jumbo_frames`: mask BE32, max_mtu BE16, 2 bytes padding; 8 bytes).
//! Linux (6.1 and later) replaces the descriptor's MTU with max_mtu as the netdev's
//! max_mtu; in GQI (and 6.1 DQO) it caps that at PAGE_SIZE and first sends
//! SET_DRIVER_PARAMETER MTU with its current MTU, so the device accepts MTUs up to max_mtu.

use super::{body_with_mask, feature, id, DeviceOption};

pub const BODY_LEN: usize = 8;

/// GCE's largest VPC MTU, 8896 bytes (docs.cloud.google.com/vpc/docs/mtu: "any value between
/// 1,300 bytes and 8,896 bytes (inclusive)"). The descriptor's MTU stays the VPC's (1460 by
/// default), which DHCP also announces.
pub const GCE_MAX_MTU: u16 = 8896;

pub fn option(max_mtu: u16) -> DeviceOption {
    let mut rest = max_mtu.to_be_bytes().to_vec();
    rest.extend_from_slice(&[0, 0]);
    DeviceOption {
        id: id::JUMBO_FRAMES,
        body: body_with_mask(feature::JUMBO_FRAMES, &rest),
    }
}
