//! The queue-format options (facts §3.1; Linux `struct gve_device_option_gqi_rda`,
//! `_gqi_qpl`, `_dqo_rda`, `_dqo_qpl`): which formats the device offers, each carrying the
//! supported_features_mask that switches on the optional options.

use super::{body_with_mask, id, DeviceOption};
use crate::ModelConfig;

/// Body lengths (Linux static_asserts).
pub const GQI_BODY_LEN: usize = 4;
pub const DQO_RDA_BODY_LEN: usize = 8;
pub const DQO_QPL_BODY_LEN: usize = 8;

/// The format options of `cfg.formats` (none for an old device), with `mask`.
pub fn options(cfg: &ModelConfig, mask: u32) -> Vec<DeviceOption> {
    let f = &cfg.formats;
    let mut opts = Vec::new();
    if f.none {
        return opts;
    }
    if f.gqi_rda {
        opts.push(DeviceOption {
            id: id::GQI_RDA,
            body: body_with_mask(mask, &[]),
        });
    }
    if f.gqi_qpl {
        opts.push(DeviceOption {
            id: id::GQI_QPL,
            body: body_with_mask(mask, &[]),
        });
    }
    if f.dqo_rda {
        // The 4 bytes after the mask: Linux >= 6.8 calls them reserved, Linux 6.1 and DPDK
        // read tx_comp_ring_entries and rx_buff_ring_entries (gvnic-dqo.md §1.1): the
        // described ring sizes, which both readings then agree on.
        let mut rest = cfg.tx_queue_entries.to_be_bytes().to_vec();
        rest.extend_from_slice(&cfg.rx_queue_entries.to_be_bytes());
        opts.push(DeviceOption {
            id: id::DQO_RDA,
            body: body_with_mask(mask, &rest),
        });
    }
    if f.dqo_qpl {
        // tx_pages_per_qpl, rx_pages_per_qpl (0 would mean Linux's defaults 512/2048).
        let mut rest = cfg.tx_pages_per_qpl.to_be_bytes().to_vec();
        rest.extend_from_slice(&cfg.rx_pages_per_qpl.to_be_bytes());
        opts.push(DeviceOption {
            id: id::DQO_QPL,
            body: body_with_mask(mask, &rest),
        });
    }
    opts
}
