//! FLOW_STEERING (0xB): the device steers flows to RX queues by rule (Linux `struct
//! gve_device_option_flow_steering`: mask BE32, reserved BE32, max_flow_rules BE32; 12
//! bytes). Linux 6.11+ offers ntuple filters when max_flow_rules is not 0 and resets the
//! rules (CONFIGURE_FLOW_RULE RESET) when it tears the device down. The commands are in
//! flow.rs.

use super::{body_with_mask, feature, id, DeviceOption};

pub const BODY_LEN: usize = 12;

/// Rules the device holds (guess: GCE's number is not public).
pub const MAX_FLOW_RULES: u32 = 32;

pub fn option(max_rules: u32) -> DeviceOption {
    let mut rest = 0u32.to_be_bytes().to_vec();
    rest.extend_from_slice(&max_rules.to_be_bytes());
    DeviceOption {
        id: id::FLOW_STEERING,
        body: body_with_mask(feature::FLOW_STEERING, &rest),
    }
}
