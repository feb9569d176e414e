//! RSS_CONFIG (0xE): the device's RSS key and indirection-table sizes (Linux `struct
//! gve_device_option_rss_config`: mask BE32, hash_key_size BE16, hash_lut_size BE16; 8
//! bytes). With it Linux 6.11+ reads the sizes from here and stops programming a default
//! configuration at probe (`cache_rss_config` off); the commands are in rss.rs.

use super::{body_with_mask, feature, id, DeviceOption};

pub const BODY_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssSizes {
    pub key_bytes: u16,
    pub lut_entries: u16,
}

/// The sizes the device's CONFIGURE_RSS checks (crate::rss).
pub const SIZES: RssSizes = RssSizes {
    key_bytes: crate::rss::RSS_KEY_BYTES,
    lut_entries: crate::rss::RSS_LUT_ENTRIES,
};

pub fn option(s: RssSizes) -> DeviceOption {
    let mut rest = s.key_bytes.to_be_bytes().to_vec();
    rest.extend_from_slice(&s.lut_entries.to_be_bytes());
    DeviceOption {
        id: id::RSS_CONFIG,
        body: body_with_mask(feature::RSS_CONFIG, &rest),
    }
}
