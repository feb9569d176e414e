//! DESCRIBE_DEVICE (facts §3.1): the 40-byte descriptor followed by the device options
//! (options/, chosen by the profile and the formats).

use crate::adminq::status;
use crate::record::ViolationKind;
use crate::{be32, be64, GuestMemory, Gvnic};

/// Device option ids (facts §3.1), kept here under their old path.
pub use crate::options::id as option_id;

/// The only descriptor version (cmd+16 must be 1).
pub const DESCRIPTOR_VERSION: u32 = 1;
pub const DESCRIPTOR_HEADER_LEN: usize = 40;
/// Bytes of each option's header (id, length, required_features_mask).
pub const OPTION_HEADER_LEN: usize = 8;

impl Gvnic {
    /// The descriptor as written into a buffer of `avail` bytes (at least the 40-byte
    /// header): the header, then the whole options that fit, in order; num_device_options and
    /// total_length count only what was written, so a driver that walks the options stays
    /// inside its buffer. Also returns how many options were left out.
    pub(crate) fn descriptor_fitting(&self, avail: usize) -> (Vec<u8>, usize) {
        let c = &self.cfg;
        let opts = crate::options::list(c);
        let mut d = vec![0u8; DESCRIPTOR_HEADER_LEN];
        d[0..8].copy_from_slice(&c.max_registered_pages.to_be_bytes());
        d[10..12].copy_from_slice(&c.tx_queue_entries.to_be_bytes());
        d[12..14].copy_from_slice(&c.rx_queue_entries.to_be_bytes());
        d[14..16].copy_from_slice(&c.default_num_queues.to_be_bytes());
        d[16..18].copy_from_slice(&c.mtu.to_be_bytes());
        d[18..20].copy_from_slice(&c.counters.to_be_bytes());
        d[20..22].copy_from_slice(&c.tx_pages_per_qpl.to_be_bytes());
        d[22..24].copy_from_slice(&c.rx_pages_per_qpl.to_be_bytes());
        d[24..30].copy_from_slice(&c.mac);
        let mut written = 0u16;
        for o in &opts {
            if d.len() + OPTION_HEADER_LEN + o.body.len() > avail {
                break;
            }
            d.extend_from_slice(&o.id.to_be_bytes());
            d.extend_from_slice(&(o.body.len() as u16).to_be_bytes());
            // required_features_mask: 0 for every option (Linux ignores others).
            d.extend_from_slice(&0u32.to_be_bytes());
            d.extend_from_slice(&o.body);
            written += 1;
        }
        let total = d.len() as u16;
        d[30..32].copy_from_slice(&written.to_be_bytes());
        d[32..34].copy_from_slice(&total.to_be_bytes());
        (d, opts.len() - usize::from(written))
    }

    pub(crate) fn cmd_describe(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let addr = be64(cmd, 8);
        let version = be32(cmd, 16);
        let avail = be32(cmd, 20) as usize;
        // The real device's answers to these mistakes are not in the reference: INVALID_ARGUMENT
        // is the model's guess throughout.
        if version != DESCRIPTOR_VERSION {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("DESCRIBE_DEVICE version {version}, expected 1"),
            );
        }
        // The buffer must hold the 40-byte header (iPXE gives exactly that: it parses no
        // options). Options that do not fit are left out whole (see descriptor_fitting).
        if avail < DESCRIPTOR_HEADER_LEN {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!(
                    "DESCRIBE_DEVICE available_length {avail} < the {DESCRIPTOR_HEADER_LEN}-byte descriptor"
                ),
            );
        }
        // A driver that parses no option (iPXE) may give no room for them: legitimate, so
        // counted, not a violation.
        let (desc, dropped) = self.descriptor_fitting(avail);
        self.record.describe_options_left_out += dropped as u64;
        if !self.check_region(mem, addr, avail as u64, "device descriptor buffer") {
            return status::INVALID_ARGUMENT;
        }
        if !self.dma_write(mem, addr, &desc, "device descriptor") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }
}
