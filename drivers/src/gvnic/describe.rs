//! DESCRIBE_DEVICE: the device descriptor, its option list, and the queue-format choice
//! (facts §3.1).

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U16, U64};
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

use super::options::parse_options;
pub use super::options::{option_id, option_name, DeviceLimits, DeviceOption};

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
        let options = parse_options(buf, HEADER_BYTES, total, raw.num_device_options.get())
            .map_err(GvnicError::TruncatedOption)?;
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

    /// The limits the device options set for `format` (Linux's rule: an option counts
    /// when the format option's supported-features word carries its bit).
    pub fn limits(&self, format: QueueFormat) -> DeviceLimits {
        let ids: Vec<u16> = [
            option_id::GQI_RAW_ADDRESSING,
            option_id::GQI_RDA,
            option_id::GQI_QPL,
            option_id::DQO_RDA,
            option_id::DQO_QPL,
        ]
        .into_iter()
        .filter(|id| QueueFormat::from_option(*id) == Some(format))
        .collect();
        DeviceLimits::for_format(&self.options, &ids)
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
        let err = DeviceDescriptor::parse(&buf).unwrap_err();
        assert_eq!(err.code(), "gvnic-truncated-option");
        assert!(
            alloc::format!("{err}").contains(
                "option 0 (GQI_QPL body) at byte 40 needs 12 bytes but the descriptor ends at 50"
            ),
            "{err}"
        );
        let mut huge = descriptor(&[(3, &[0, 0, 0, 0])], 0);
        huge[32..34].copy_from_slice(&4000u16.to_be_bytes());
        assert!(matches!(
            DeviceDescriptor::parse(&huge),
            Err(GvnicError::BadDescriptor(_))
        ));
    }

    #[test]
    fn malformed_format_option_is_not_chosen() {
        // A GQI_QPL option with a 2-byte body is ignored, leaving only DQO.
        let d = DeviceDescriptor::parse(&descriptor(&[(3, &[0, 0]), (4, &[0; 8])], 0)).unwrap();
        assert!(d.options[0].malformed);
        assert_eq!(d.choose_format(None).unwrap(), QueueFormat::DqoRda);
    }
}
