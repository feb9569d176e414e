//! NIC_TIMESTAMP (0xD): the device can report its clock (Linux `struct
//! gve_device_option_nic_timestamp`: the mask BE32 only; 4 bytes). Linux 6.16+ then reads
//! the clock with REPORT_NIC_TIMESTAMP (timestamp.rs) at setup and every 250 ms. Linux 6.1
//! and 6.12 do not know the option and skip it.

use super::{body_with_mask, feature, id, DeviceOption};

pub const BODY_LEN: usize = 4;

pub fn option() -> DeviceOption {
    DeviceOption {
        id: id::NIC_TIMESTAMP,
        body: body_with_mask(feature::NIC_TIMESTAMP, &[]),
    }
}
