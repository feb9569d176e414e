//! Device generations: what a 2024 or a 2026 gVNIC describes. A profile is a constant record
//! of the optional device options it sends (like iPXE's queue kinds); the queue-format
//! options come from `Formats` in either profile.
//!
//! - **2024**: the queue-format options only, each with a supported_features_mask of 0: the
//!   device our driver, Linux 6.1 and iPXE met first (issue 19).
//! - **2026** (default): also MODIFY_RING, JUMBO_FRAMES, BUFFER_SIZES, FLOW_STEERING,
//!   NIC_TIMESTAMP and RSS_CONFIG, with their bits set in every format option's mask, as
//!   drivers of 2024+ parse them and real NICs send them (Linux gve_adminq.h; issue 19).
//!   The numbers each option carries are in options/, each with its source or "(guess)".

use crate::options::{buffers, flow, jumbo, ring, rss};

/// A device generation (`--profile 2024|2026`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    Y2024,
    #[default]
    Y2026,
}

/// The optional options a generation sends, with the values they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation {
    pub modify_ring: Option<ring::RingLimits>,
    pub max_mtu: Option<u16>,
    pub buffer_sizes: Option<buffers::BufferSizes>,
    pub max_flow_rules: Option<u32>,
    pub nic_timestamp: bool,
    pub rss: Option<rss::RssSizes>,
}

const GEN_2024: Generation = Generation {
    modify_ring: None,
    max_mtu: None,
    buffer_sizes: None,
    max_flow_rules: None,
    nic_timestamp: false,
    rss: None,
};

const GEN_2026: Generation = Generation {
    modify_ring: Some(ring::LIMITS),
    max_mtu: Some(jumbo::GCE_MAX_MTU),
    buffer_sizes: Some(buffers::SIZES),
    max_flow_rules: Some(flow::MAX_FLOW_RULES),
    nic_timestamp: true,
    rss: Some(rss::SIZES),
};

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Y2024, Profile::Y2026];

    pub fn generation(self) -> &'static Generation {
        match self {
            Profile::Y2024 => &GEN_2024,
            Profile::Y2026 => &GEN_2026,
        }
    }

    /// The name `--profile` and `--gvnic-profile` use.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Y2024 => "2024",
            Profile::Y2026 => "2026",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| format!("unknown gVNIC profile {s:?}: expected 2024 or 2026"))
    }
}

impl Generation {
    /// The supported_features_mask every queue-format option carries: one bit per optional
    /// option sent (Linux enables an option only when the chosen format's mask has its bit).
    pub fn feature_mask(&self) -> u32 {
        use crate::options::feature;
        let mut m = 0;
        if self.modify_ring.is_some() {
            m |= feature::MODIFY_RING;
        }
        if self.max_mtu.is_some() {
            m |= feature::JUMBO_FRAMES;
        }
        if self.buffer_sizes.is_some() {
            m |= feature::BUFFER_SIZES;
        }
        if self.max_flow_rules.is_some() {
            m |= feature::FLOW_STEERING;
        }
        if self.rss.is_some() {
            m |= feature::RSS_CONFIG;
        }
        if self.nic_timestamp {
            m |= feature::NIC_TIMESTAMP;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_masks_follow_the_options() {
        assert_eq!("2024".parse::<Profile>(), Ok(Profile::Y2024));
        assert_eq!(Profile::default().to_string(), "2026");
        assert!("2025".parse::<Profile>().is_err());
        assert_eq!(Profile::Y2024.generation().feature_mask(), 0);
        // MODIFY_RING 1<<0, JUMBO 1<<2, BUFFER_SIZES 1<<4, FLOW 1<<5, RSS 1<<7, TS 1<<8.
        assert_eq!(Profile::Y2026.generation().feature_mask(), 0x1B5);
    }
}
