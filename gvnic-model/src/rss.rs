//! CONFIGURE_RSS (0x0A) and QUERY_RSS (0x12): the receive-side-scaling hash key, hash types
//! and indirection table (LUT) a driver programs, and reads back. Layouts from Linux
//! gve_adminq.h (`struct gve_adminq_configure_rss`, `gve_adminq_query_rss`,
//! `gve_query_rss_descriptor`) and gve_adminq.c (`gve_adminq_configure_rss`,
//! `gve_adminq_process_rss_query`), all BE.
//!
//! Linux 6.15+ sends CONFIGURE_RSS during probe on every DQO device that does not offer the
//! RSS_CONFIG option (`gve_init_rss_config` with `cache_rss_config`: a 40-byte key and a
//! 128-entry LUT of `i % rx_queues`) and fails the probe if the device answers anything but
//! PASSED, so both profiles implement it in every format (issue 19: Linux 7.3 fails probe on
//! UNIMPLEMENTED). The configuration is kept with the device resources (CONFIGURE ..
//! DECONFIGURE or reset); the model does not steer frames by it (every frame still goes to
//! the lowest RX queue).
//!
//! CONFIGURE_RSS: +8 hash_types BE16, +10 hash_alg u8, +11 reserved, +12 hash_key_size BE16,
//! +14 hash_lut_size BE16, +16 hash_key_addr BE64, +24 hash_lut_addr BE64 (LUT entries BE32).
//! "Zero-valued fields instruct the device to not update those fields" (Linux).
//! QUERY_RSS: +8 available_length BE64, +16 rss_descriptor_addr BE64; the device writes
//! {total_length BE32, hash_types BE16, hash_alg u8, reserved u8}, the key, then the LUT.

use crate::codes::status;
use crate::record::ViolationKind;
use crate::{be16, be32, be64, GuestMemory, Gvnic};

/// Hash key bytes (Linux `GVE_RSS_KEY_SIZE`, which 6.15+ assumes for DQO devices without the
/// RSS_CONFIG option and which works on GCE; the 2026 profile's RSS_CONFIG says the same).
pub const RSS_KEY_BYTES: u16 = 40;
/// Indirection-table entries (Linux `GVE_RSS_INDIR_SIZE`, as above).
pub const RSS_LUT_ENTRIES: u16 = 128;
/// hash_alg: Toeplitz (Linux sends `ETH_RSS_HASH_TOP` = 1 and refuses any other function).
pub const HASH_ALG_TOEPLITZ: u8 = 1;
/// The nine hash types Linux names (`enum gve_rss_hash_type`, bits 0..=8).
pub const HASH_TYPES_KNOWN: u16 = 0x1FF;
/// Bytes of the query descriptor before the key.
pub const QUERY_RSS_HEADER_BYTES: usize = 8;

/// The device's RSS state (per configured device).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    pub hash_types: u16,
    pub hash_alg: u8,
    pub key: Vec<u8>,
    pub lut: Vec<u32>,
}

impl RssConfig {
    /// What the device uses before any CONFIGURE_RSS (guess: the four types Linux asks for
    /// (TCPv4, TCPv6, UDPv4, UDPv6), Toeplitz, a zero key, the LUT spread over `rx_queues`).
    pub fn initial(rx_queues: u32) -> Self {
        RssConfig {
            hash_types: (1 << 1) | (1 << 4) | (1 << 6) | (1 << 7),
            hash_alg: HASH_ALG_TOEPLITZ,
            key: vec![0; usize::from(RSS_KEY_BYTES)],
            lut: (0..u32::from(RSS_LUT_ENTRIES))
                .map(|i| i % rx_queues.max(1))
                .collect(),
        }
    }
}

impl Gvnic {
    pub(crate) fn cmd_configure_rss(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        use ViolationKind::{BadCommand, WrongState};
        let (types, alg) = (be16(cmd, 8), cmd[10]);
        let (key_len, lut_len) = (be16(cmd, 12), be16(cmd, 14));
        let (key_addr, lut_addr) = (be64(cmd, 16), be64(cmd, 24));
        let Some(current) = self.configured.as_ref().map(|c| c.rss.clone()) else {
            // Guess: RSS state belongs to the device resources (Linux sends it after CONFIGURE).
            return self.refuse(
                WrongState,
                status::FAILED_PRECONDITION,
                "CONFIGURE_RSS before CONFIGURE_DEVICE_RESOURCES",
            );
        };
        // Every refusal below is INVALID_ARGUMENT (guess: the device's choice is not public).
        let bad = if types & !HASH_TYPES_KNOWN != 0 {
            Some(format!(
                "CONFIGURE_RSS hash_types {types:#x}: bits above 8 name no hash type"
            ))
        } else if alg != 0 && alg != HASH_ALG_TOEPLITZ {
            Some(format!(
                "CONFIGURE_RSS hash_alg {alg}: the device hashes with Toeplitz (1) only"
            ))
        } else if key_len != 0 && key_len != RSS_KEY_BYTES {
            Some(format!(
                "CONFIGURE_RSS hash_key_size {key_len}: the device's key is {RSS_KEY_BYTES} bytes"
            ))
        } else if lut_len != 0 && lut_len != RSS_LUT_ENTRIES {
            Some(format!("CONFIGURE_RSS hash_lut_size {lut_len}: the device's table has {RSS_LUT_ENTRIES} entries"))
        } else {
            None
        };
        if let Some(detail) = bad {
            return self.refuse(BadCommand, status::INVALID_ARGUMENT, detail);
        }
        let mut next = current;
        if key_len != 0 {
            let mut key = vec![0u8; usize::from(key_len)];
            if !self.dma_read(mem, key_addr, &mut key, "RSS hash key") {
                return status::INVALID_ARGUMENT;
            }
            next.key = key;
        }
        if lut_len != 0 {
            let mut raw = vec![0u8; usize::from(lut_len) * 4];
            if !self.dma_read(mem, lut_addr, &mut raw, "RSS indirection table") {
                return status::INVALID_ARGUMENT;
            }
            let lut: Vec<u32> = (0..usize::from(lut_len))
                .map(|i| be32(&raw, 4 * i))
                .collect();
            let queues = self.cfg.max_rx_queues;
            if let Some((i, q)) = lut.iter().enumerate().find(|(_, q)| **q >= queues) {
                return self.refuse(
                    BadCommand,
                    status::INVALID_ARGUMENT,
                    format!(
                        "CONFIGURE_RSS LUT entry {i} names RX queue {q}, the device has {queues}"
                    ),
                );
            }
            next.lut = lut;
        }
        if types != 0 {
            next.hash_types = types;
        }
        if alg != 0 {
            next.hash_alg = alg;
        }
        if let Some(c) = self.configured.as_mut() {
            c.rss = next;
        }
        status::PASSED
    }

    pub(crate) fn cmd_query_rss(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let (avail, addr) = (be64(cmd, 8), be64(cmd, 16));
        let Some(rss) = self.configured.as_ref().map(|c| c.rss.clone()) else {
            return self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                "QUERY_RSS before CONFIGURE_DEVICE_RESOURCES",
            );
        };
        let total = QUERY_RSS_HEADER_BYTES + rss.key.len() + 4 * rss.lut.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&rss.hash_types.to_be_bytes());
        out.extend_from_slice(&[rss.hash_alg, 0]);
        out.extend_from_slice(&rss.key);
        for e in &rss.lut {
            out.extend_from_slice(&e.to_be_bytes());
        }
        if avail < total as u64 {
            // Guess: a buffer that cannot hold the answer is refused (Linux gives 4096).
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("QUERY_RSS available_length {avail} < {total}"),
            );
        }
        if !self.dma_write(mem, addr, &out, "RSS query descriptor") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }
}
