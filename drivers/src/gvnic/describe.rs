//! DESCRIBE_DEVICE: the device descriptor, its option list, and the queue-format choice
//! (facts §3.1).

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout};

use super::GvnicError;

/// The buffer we offer the device for the descriptor. Linux passes 4096; iPXE's 256 leaves
/// only 216 bytes for options, which a future device could outgrow.
pub const DESCRIPTOR_BUF_BYTES: usize = 4096;
pub const DESCRIPTOR_VERSION: u32 = 1;

/// The fixed 40-byte header the device writes.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RawDescriptor {
    max_registered_pages: U64,
    reserved1: U16,
    tx_queue_entries: U16,
    rx_queue_entries: U16,
    default_num_queues: U16,
    mtu: U16,
    counters: U16,
    tx_pages_per_qpl: U16,
    rx_pages_per_qpl: U16,
    mac: [u8; 6],
    num_device_options: U16,
    total_length: U16,
    reserved2: [u8; 6],
}
const HEADER_BYTES: usize = 40;
const _: () = assert!(core::mem::size_of::<RawDescriptor>() == HEADER_BYTES);

/// The 8-byte header before each option body.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RawOptionHeader {
    option_id: U16,
    option_length: U16,
    required_features_mask: U32,
}
const OPTION_HEADER_BYTES: usize = 8;

/// Known option ids (facts §3.1).
pub mod option_id {
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

/// Name and minimum body length (Linux's checks) of a known option.
fn option_facts(id: u16) -> Option<(&'static str, usize)> {
    use option_id::*;
    Some(match id {
        GQI_RAW_ADDRESSING => ("GQI_RAW_ADDRESSING", 0),
        GQI_RDA => ("GQI_RDA", 4),
        GQI_QPL => ("GQI_QPL", 4),
        DQO_RDA => ("DQO_RDA", 8),
        MODIFY_RING => ("MODIFY_RING", 8),
        DQO_QPL => ("DQO_QPL", 8),
        JUMBO_FRAMES => ("JUMBO_FRAMES", 8),
        BUFFER_SIZES => ("BUFFER_SIZES", 8),
        FLOW_STEERING => ("FLOW_STEERING", 12),
        NIC_TIMESTAMP => ("NIC_TIMESTAMP", 4),
        RSS_CONFIG => ("RSS_CONFIG", 8),
        _ => return None,
    })
}

/// A printable name for any option id ("option 0x1f" for unknown ones).
pub fn option_name(id: u16) -> String {
    match option_facts(id) {
        Some((name, _)) => String::from(name),
        None => alloc::format!("option {id:#x}"),
    }
}

/// Queue formats, with the value CONFIGURE_DEVICE_RESOURCES takes (facts §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFormat {
    GqiRda = 1,
    GqiQpl = 2,
    DqoRda = 3,
    DqoQpl = 4,
}

/// The descriptor family: GQI (in-order, big-endian, one completion counter) or DQO
/// (out-of-order, little-endian, completion rings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gqi,
    Dqo,
}

impl QueueFormat {
    /// Every format, in our order of preference: iPXE's (commit ce30ba14f). GQI leaves the
    /// RX ring untouched for the device's lifetime (a refill is one doorbell write), and
    /// QPL spares the hypervisor the page-table work RDA needs (policy).
    pub const PREFERENCE: [QueueFormat; 4] = [
        QueueFormat::GqiQpl,
        QueueFormat::GqiRda,
        QueueFormat::DqoQpl,
        QueueFormat::DqoRda,
    ];

    pub fn family(self) -> Family {
        match self {
            QueueFormat::GqiRda | QueueFormat::GqiQpl => Family::Gqi,
            QueueFormat::DqoRda | QueueFormat::DqoQpl => Family::Dqo,
        }
    }

    pub fn addressing(self) -> super::addressing::Addressing {
        match self {
            QueueFormat::GqiQpl | QueueFormat::DqoQpl => super::addressing::Addressing::Qpl,
            QueueFormat::GqiRda | QueueFormat::DqoRda => super::addressing::Addressing::Rda,
        }
    }

    /// The format named `name` ("gqi-qpl", ...), as `--format` takes it.
    pub fn from_name(name: &str) -> Option<QueueFormat> {
        QueueFormat::PREFERENCE
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            QueueFormat::GqiRda => "gqi-rda",
            QueueFormat::GqiQpl => "gqi-qpl",
            QueueFormat::DqoRda => "dqo-rda",
            QueueFormat::DqoQpl => "dqo-qpl",
        }
    }

    fn from_option(id: u16) -> Option<QueueFormat> {
        use option_id::*;
        match id {
            GQI_RAW_ADDRESSING | GQI_RDA => Some(QueueFormat::GqiRda),
            GQI_QPL => Some(QueueFormat::GqiQpl),
            DQO_RDA => Some(QueueFormat::DqoRda),
            DQO_QPL => Some(QueueFormat::DqoQpl),
            _ => None,
        }
    }
}

/// One option as the device listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOption {
    pub id: u16,
    pub length: u16,
    pub required_features_mask: u32,
    /// The first BE32 of the body (the supported-features mask of format options), if any.
    pub features: Option<u32>,
    /// Known option whose body is shorter than Linux requires: ignored for decisions.
    pub malformed: bool,
}

impl DeviceOption {
    pub fn name(&self) -> String {
        option_name(self.id)
    }

    /// Usable for decisions: well formed and with no required features (every
    /// `GVE_DEV_OPT_REQ_FEAT_MASK_*` in Linux is 0; it ignores options that demand more).
    pub fn usable(&self) -> bool {
        !self.malformed && self.required_features_mask == 0
    }
}

/// What DESCRIBE_DEVICE told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDescriptor {
    pub max_registered_pages: u64,
    pub tx_queue_entries: u16,
    pub rx_queue_entries: u16,
    pub default_num_queues: u16,
    pub mtu: u16,
    pub counters: u16,
    pub tx_pages_per_qpl: u16,
    pub rx_pages_per_qpl: u16,
    pub mac: [u8; 6],
    pub total_length: u16,
    pub options: Vec<DeviceOption>,
}

/// Linux rejects an MTU below ETH_MIN_MTU.
const MIN_MTU: u16 = 68;

impl DeviceDescriptor {
    /// Parses the buffer the device filled. The option walk is bounded by both
    /// num_device_options and total_length, and never past the buffer (facts §3.1).
    pub fn parse(buf: &[u8]) -> Result<DeviceDescriptor, GvnicError> {
        let bad = |why: String| GvnicError::BadDescriptor(why);
        let (raw, _) = RawDescriptor::read_from_prefix(buf)
            .map_err(|_| bad(String::from("buffer shorter than the 40-byte header")))?;
        let total = raw.total_length.get() as usize;
        if total < HEADER_BYTES || total > buf.len() {
            return Err(bad(alloc::format!(
                "total_length {total} is outside {HEADER_BYTES}..={}",
                buf.len()
            )));
        }
        let mut options = Vec::new();
        let mut at = HEADER_BYTES;
        for index in 0..raw.num_device_options.get() {
            let header_end = at + OPTION_HEADER_BYTES;
            if header_end > total {
                return Err(bad(alloc::format!(
                    "option {index} header at byte {at} runs past total_length {total}"
                )));
            }
            let (header, _) = RawOptionHeader::read_from_prefix(&buf[at..header_end])
                .map_err(|_| bad(String::from("option header")))?;
            let length = header.option_length.get() as usize;
            let body_end = header_end + length;
            if body_end > total {
                return Err(bad(alloc::format!(
                    "option {index} ({}) body of {length} bytes runs past total_length {total}",
                    option_name(header.option_id.get())
                )));
            }
            let body = &buf[header_end..body_end];
            let id = header.option_id.get();
            let malformed = match option_facts(id) {
                // The legacy raw-addressing option must have an empty body.
                Some((_, 0)) => length != 0,
                Some((_, min)) => length < min,
                None => false,
            };
            options.push(DeviceOption {
                id,
                length: length as u16,
                required_features_mask: header.required_features_mask.get(),
                features: body
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                malformed,
            });
            at = body_end;
        }
        let descriptor = DeviceDescriptor {
            max_registered_pages: raw.max_registered_pages.get(),
            tx_queue_entries: raw.tx_queue_entries.get(),
            rx_queue_entries: raw.rx_queue_entries.get(),
            default_num_queues: raw.default_num_queues.get(),
            mtu: raw.mtu.get(),
            counters: raw.counters.get(),
            tx_pages_per_qpl: raw.tx_pages_per_qpl.get(),
            rx_pages_per_qpl: raw.rx_pages_per_qpl.get(),
            mac: raw.mac,
            total_length: raw.total_length.get(),
            options,
        };
        descriptor.check()?;
        Ok(descriptor)
    }

    /// Values the rest of bring-up relies on.
    fn check(&self) -> Result<(), GvnicError> {
        let bad = |why: String| Err(GvnicError::BadDescriptor(why));
        for (what, entries) in [
            ("tx_queue_entries", self.tx_queue_entries),
            ("rx_queue_entries", self.rx_queue_entries),
        ] {
            if entries == 0 || !entries.is_power_of_two() {
                return bad(alloc::format!("{what} {entries} is not a power of two"));
            }
        }
        if self.mtu < MIN_MTU {
            return bad(alloc::format!("mtu {} is below {MIN_MTU}", self.mtu));
        }
        // One counter for TX and one for RX at the very least.
        if self.counters < 2 {
            return bad(alloc::format!("counters {} is below 2", self.counters));
        }
        Ok(())
    }

    /// The formats the device offers, in its order (usable options only).
    pub fn offered_formats(&self) -> Vec<QueueFormat> {
        let mut formats = Vec::new();
        for option in self.options.iter().filter(|o| o.usable()) {
            if let Some(format) = QueueFormat::from_option(option.id) {
                if !formats.contains(&format) {
                    formats.push(format);
                }
            }
        }
        formats
    }

    /// The format to drive: `wanted` if the device offers it (else a
    /// `FormatNotOffered` error naming what it does offer), otherwise the first offered
    /// one in [`QueueFormat::PREFERENCE`]. A device that advertises no format at all means
    /// GQI-QPL (old devices predate the format options; Linux and iPXE both fall back to it).
    pub fn choose_format(&self, wanted: Option<QueueFormat>) -> Result<QueueFormat, GvnicError> {
        let mut offered = self.offered_formats();
        if offered.is_empty() {
            offered.push(QueueFormat::GqiQpl);
        }
        match wanted {
            Some(format) if offered.contains(&format) => Ok(format),
            Some(format) => Err(GvnicError::FormatNotOffered {
                wanted: format.name(),
                offered: offered.iter().map(|f| f.name()).collect(),
            }),
            None => Ok(QueueFormat::PREFERENCE
                .into_iter()
                .find(|f| offered.contains(f))
                .unwrap_or(QueueFormat::GqiQpl)),
        }
    }

    /// The MAC as `42:01:0a:80:00:02` (one formatter for the whole crate).
    pub fn mac_string(&self) -> String {
        crate::net::ethernet::mac_string(&self.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(options: &[(u16, &[u8])], total_slack: isize) -> Vec<u8> {
        let mut buf = alloc::vec![0u8; 256];
        buf[0..8].copy_from_slice(&1024u64.to_be_bytes());
        buf[10..12].copy_from_slice(&256u16.to_be_bytes());
        buf[12..14].copy_from_slice(&512u16.to_be_bytes());
        buf[14..16].copy_from_slice(&1u16.to_be_bytes());
        buf[16..18].copy_from_slice(&1460u16.to_be_bytes());
        buf[18..20].copy_from_slice(&32u16.to_be_bytes());
        buf[20..22].copy_from_slice(&512u16.to_be_bytes());
        buf[22..24].copy_from_slice(&2048u16.to_be_bytes());
        buf[24..30].copy_from_slice(&[0x42, 0x01, 0x0a, 0x80, 0x00, 0x02]);
        buf[30..32].copy_from_slice(&(options.len() as u16).to_be_bytes());
        let mut at = 40;
        for (id, body) in options {
            buf[at..at + 2].copy_from_slice(&id.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&(body.len() as u16).to_be_bytes());
            buf[at + 8..at + 8 + body.len()].copy_from_slice(body);
            at += 8 + body.len();
        }
        let total = (at as isize + total_slack) as u16;
        buf[32..34].copy_from_slice(&total.to_be_bytes());
        buf
    }

    #[test]
    fn parses_header_and_options() {
        let buf = descriptor(&[(3, &[0, 0, 0, 0]), (4, &[0; 8]), (0x1f, &[1, 2])], 0);
        let d = DeviceDescriptor::parse(&buf).unwrap();
        assert_eq!(d.mtu, 1460);
        assert_eq!(d.counters, 32);
        assert_eq!(d.mac_string(), "42:01:0a:80:00:02");
        let names: Vec<String> = d.options.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["GQI_QPL", "DQO_RDA", "option 0x1f"]);
        assert_eq!(d.choose_format(None).unwrap(), QueueFormat::GqiQpl);
    }

    #[test]
    fn no_format_option_means_gqi_qpl() {
        let d = DeviceDescriptor::parse(&descriptor(&[(8, &[0; 8])], 0)).unwrap();
        assert_eq!(d.choose_format(None).unwrap(), QueueFormat::GqiQpl);
        assert_eq!(
            d.choose_format(Some(QueueFormat::GqiQpl)).unwrap(),
            QueueFormat::GqiQpl
        );
    }

    #[test]
    fn preference_is_ipxe_order() {
        type Options<'a> = &'a [(u16, &'a [u8])];
        let all: Options = &[(4, &[0; 8]), (7, &[0; 8]), (2, &[0; 4]), (3, &[0; 4])];
        let cases: [(Options, QueueFormat); 4] = [
            (all, QueueFormat::GqiQpl),
            (&all[..3], QueueFormat::GqiRda),
            (&all[..2], QueueFormat::DqoQpl),
            (&all[..1], QueueFormat::DqoRda),
        ];
        for (options, want) in cases {
            let d = DeviceDescriptor::parse(&descriptor(options, 0)).unwrap();
            assert_eq!(d.choose_format(None).unwrap(), want);
        }
        // The legacy raw-addressing option (empty body) also offers GQI-RDA.
        let d = DeviceDescriptor::parse(&descriptor(&[(1, &[]), (4, &[0; 8])], 0)).unwrap();
        assert_eq!(d.choose_format(None).unwrap(), QueueFormat::GqiRda);
    }

    #[test]
    fn a_format_not_offered_names_the_offered_ones() {
        let d = DeviceDescriptor::parse(&descriptor(&[(4, &[0; 8]), (7, &[0; 8])], 0)).unwrap();
        assert_eq!(
            d.choose_format(Some(QueueFormat::DqoRda)).unwrap(),
            QueueFormat::DqoRda
        );
        let err = d.choose_format(Some(QueueFormat::GqiQpl)).unwrap_err();
        assert_eq!(
            err,
            GvnicError::FormatNotOffered {
                wanted: "gqi-qpl",
                offered: alloc::vec!["dqo-rda", "dqo-qpl"]
            }
        );
        assert_eq!(err.code(), "gvnic-format-not-offered");
        assert!(
            alloc::format!("{err}").contains("dqo-rda, dqo-qpl"),
            "{err}"
        );
        assert_eq!(QueueFormat::from_name("DQO-QPL"), Some(QueueFormat::DqoQpl));
        assert_eq!(QueueFormat::from_name("dqo"), None);
    }

    #[test]
    fn option_overrunning_total_length_is_rejected() {
        let buf = descriptor(&[(3, &[0, 0, 0, 0])], -2);
        assert!(matches!(
            DeviceDescriptor::parse(&buf),
            Err(GvnicError::BadDescriptor(_))
        ));
        let mut huge = descriptor(&[(3, &[0, 0, 0, 0])], 0);
        huge[32..34].copy_from_slice(&4000u16.to_be_bytes());
        assert!(DeviceDescriptor::parse(&huge).is_err());
    }

    #[test]
    fn malformed_format_option_is_not_chosen() {
        // A GQI_QPL option with a 2-byte body is ignored, leaving only DQO.
        let d = DeviceDescriptor::parse(&descriptor(&[(3, &[0, 0]), (4, &[0; 8])], 0)).unwrap();
        assert!(d.options[0].malformed);
        assert_eq!(d.choose_format(None).unwrap(), QueueFormat::DqoRda);
    }
}
