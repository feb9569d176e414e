//! The device options DESCRIBE_DEVICE lists after the 40-byte descriptor, one file per
//! option with its layout, limits and source (Linux gve_adminq.h `struct
//! gve_device_option_*`, `enum gve_dev_opt_id`, `enum gve_sup_feature_mask`; facts §3.1).
//! Every body is big-endian. Each option has an 8-byte header {id BE16, body length BE16,
//! required_features_mask BE32 = 0} (Linux ignores an option whose required mask is not its
//! `GVE_DEV_OPT_REQ_FEAT_MASK_*`, all 0, or whose body is shorter than its struct; a longer
//! body only makes it warn).
//!
//! Order: the queue-format options first (GQI_RDA, GQI_QPL, DQO_RDA, DQO_QPL), then the
//! others by ascending id. Linux finds options by id, so the order is the model's choice
//! (guess: a real device's order is not public).

pub mod buffers;
pub mod flow;
pub mod formats;
pub mod jumbo;
pub mod ring;
pub mod rss;
pub mod timestamp;

use crate::ModelConfig;

/// Option ids (Linux `enum gve_dev_opt_id`; facts §3.1).
pub mod id {
    pub const GQI_RAW_ADDRESSING: u16 = 0x1;
    pub const GQI_RDA: u16 = 0x2;
    pub const GQI_QPL: u16 = 0x3;
    pub const DQO_RDA: u16 = 0x4;
    pub const MODIFY_RING: u16 = 0x6;
    pub const DQO_QPL: u16 = 0x7;
    pub const JUMBO_FRAMES: u16 = 0x8;
    pub const BUFFER_SIZES: u16 = 0xA;
    pub const FLOW_STEERING: u16 = 0xB;
    pub const NIC_TIMESTAMP: u16 = 0xD;
    pub const RSS_CONFIG: u16 = 0xE;
}

/// supported_features_mask bits in the queue-format options (Linux `enum
/// gve_sup_feature_mask`): an optional option is used only when the chosen format's mask
/// carries its bit.
pub mod feature {
    pub const MODIFY_RING: u32 = 1 << 0;
    pub const JUMBO_FRAMES: u32 = 1 << 2;
    pub const BUFFER_SIZES: u32 = 1 << 4;
    pub const FLOW_STEERING: u32 = 1 << 5;
    pub const RSS_CONFIG: u32 = 1 << 7;
    pub const NIC_TIMESTAMP: u32 = 1 << 8;
}

/// One option as the device lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOption {
    pub id: u16,
    pub body: Vec<u8>,
}

/// Every option this configuration describes, in order.
pub fn list(cfg: &ModelConfig) -> Vec<DeviceOption> {
    let gen = cfg.profile.generation();
    let mut opts = formats::options(cfg, gen.feature_mask());
    if let Some(l) = gen.modify_ring {
        opts.push(ring::option(l));
    }
    if let Some(mtu) = gen.max_mtu {
        opts.push(jumbo::option(mtu));
    }
    if let Some(b) = gen.buffer_sizes {
        opts.push(buffers::option(b));
    }
    if let Some(n) = gen.max_flow_rules {
        opts.push(flow::option(n));
    }
    if gen.nic_timestamp {
        opts.push(timestamp::option());
    }
    if let Some(r) = gen.rss {
        opts.push(rss::option(r));
    }
    opts
}

/// A body that starts with a supported_features_mask. The optional options carry their own
/// feature bit there (Linux reads only the format option's mask; gve_adminq.h says of
/// BUFFER_SIZES "GVE_SUP_BUFFER_SIZES_MASK bit should be set", the model does the same for
/// every optional option: guess).
pub(crate) fn body_with_mask(mask: u32, rest: &[u8]) -> Vec<u8> {
    let mut b = mask.to_be_bytes().to_vec();
    b.extend_from_slice(rest);
    b
}
