//! The device options DESCRIBE_DEVICE lists after its 40-byte header, each decoded into a
//! typed limit ([`RingLimits`], [`BufferSizes`], [`MaxMtu`], ...), unknown ones kept as raw
//! bytes for `gvnic describe`.
//!
//! Layouts, in our words, from Linux's gve_adminq.h (struct gve_device_option_*; every
//! field big-endian). Each option is an 8-byte header (id BE16, body length BE16, required
//! features BE32) followed by its body; every known body starts with a BE32 "supported
//! features" word:
//!
//! | id  | option             | body after the features word                          | bytes |
//! |-----|--------------------|-------------------------------------------------------|-------|
//! | 0x1 | GQI_RAW_ADDRESSING | (empty body, no features word)                        | 0     |
//! | 0x2 | GQI_RDA            | -                                                     | 4     |
//! | 0x3 | GQI_QPL            | -                                                     | 4     |
//! | 0x4 | DQO_RDA            | reserved BE32                                         | 8     |
//! | 0x6 | MODIFY_RING        | max RX, max TX, min RX, min TX ring size (BE16 each)  | 12 (8: no minimums) |
//! | 0x7 | DQO_QPL            | TX pages per QPL, RX pages per QPL (BE16)             | 8     |
//! | 0x8 | JUMBO_FRAMES       | max MTU BE16, 2 padding bytes                         | 8     |
//! | 0xa | BUFFER_SIZES       | packet buffer size, header buffer size (BE16)         | 8     |
//! | 0xb | FLOW_STEERING      | reserved BE32, max flow rules BE32                    | 12    |
//! | 0xd | NIC_TIMESTAMP      | -                                                     | 4     |
//! | 0xe | RSS_CONFIG         | hash key size, hash LUT size (BE16)                   | 8     |
//!
//! What this module does not decide: which format runs ([`super::describe`]) and whether a
//! limit applies. Linux (gve_enable_supported_features) honours MODIFY_RING, JUMBO_FRAMES,
//! BUFFER_SIZES, FLOW_STEERING, RSS_CONFIG and NIC_TIMESTAMP only when the *chosen format
//! option's* supported-features word carries the option's bit ([`feature`]); we follow it
//! ([`DeviceLimits::for_format`]).
//!
//! The walk never reads past the buffer or `total_length`: an option whose header or body
//! would run past it is a [`TruncatedOption`] (named, with where it stopped), whatever the
//! option count claims. A body longer than its layout is fine (a newer device; Linux warns
//! and uses the prefix); shorter than Linux requires marks the option malformed (ignored).

use alloc::string::String;
use alloc::vec::Vec;

/// The 8-byte header before each option body.
pub const OPTION_HEADER_BYTES: usize = 8;

/// Option ids (Linux enum gve_dev_opt_id).
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

/// Supported-features bits (Linux enum gve_sup_feature_mask): the chosen format option's
/// features word must carry an option's bit for the driver to use that option.
pub mod feature {
    pub const MODIFY_RING: u32 = 1 << 0;
    pub const JUMBO_FRAMES: u32 = 1 << 2;
    pub const BUFFER_SIZES: u32 = 1 << 4;
    pub const FLOW_STEERING: u32 = 1 << 5;
    pub const RSS_CONFIG: u32 = 1 << 7;
    pub const NIC_TIMESTAMP: u32 = 1 << 8;

    /// Names of the bits set in `mask`, for `describe` ("MODIFY_RING|JUMBO_FRAMES").
    pub fn names(mask: u32) -> alloc::string::String {
        let known = [
            (MODIFY_RING, "MODIFY_RING"),
            (JUMBO_FRAMES, "JUMBO_FRAMES"),
            (BUFFER_SIZES, "BUFFER_SIZES"),
            (FLOW_STEERING, "FLOW_STEERING"),
            (RSS_CONFIG, "RSS_CONFIG"),
            (NIC_TIMESTAMP, "NIC_TIMESTAMP"),
        ];
        let mut parts: alloc::vec::Vec<alloc::string::String> = known
            .iter()
            .filter(|(bit, _)| mask & bit != 0)
            .map(|(_, name)| alloc::string::String::from(*name))
            .collect();
        let rest = known.iter().fold(mask, |m, (bit, _)| m & !bit);
        if rest != 0 {
            parts.push(alloc::format!("{rest:#x}"));
        }
        parts.join("|")
    }
}

/// MODIFY_RING: the ring sizes the device accepts. Without minimums in the body (an 8-byte
/// body), Linux assumes 256 TX / 512 RX (GVE_DEFAULT_MIN_*_RING_SIZE); so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    pub max_rx: u16,
    pub max_tx: u16,
    pub min_rx: u16,
    pub min_tx: u16,
    /// False when the body had no minimums and the defaults above were assumed.
    pub min_from_device: bool,
}

/// Linux's minimums for a MODIFY_RING option without them (gve.h).
pub const DEFAULT_MIN_TX_RING: u16 = 256;
pub const DEFAULT_MIN_RX_RING: u16 = 512;

/// BUFFER_SIZES: the largest RX packet buffer and the header-split buffer size the device
/// accepts (Linux stores them as max_rx_buffer_size and header_buf_size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizes {
    pub packet_buffer_bytes: u16,
    pub header_buffer_bytes: u16,
}

/// JUMBO_FRAMES: the true largest MTU (the descriptor's mtu is capped by the page size;
/// Linux overwrites it with this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMtu(pub u16);

/// What one option's body says, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionBody {
    /// A queue-format option (GQI_RAW_ADDRESSING, GQI_RDA, GQI_QPL, DQO_RDA): nothing
    /// beyond the features word.
    Format,
    DqoQpl {
        tx_pages_per_qpl: u16,
        rx_pages_per_qpl: u16,
    },
    ModifyRing(RingLimits),
    JumboFrames(MaxMtu),
    BufferSizes(BufferSizes),
    FlowSteering {
        max_flow_rules: u32,
    },
    RssConfig {
        hash_key_bytes: u16,
        hash_lut_entries: u16,
    },
    NicTimestamp,
    /// Known id with a body shorter than its layout: ignored for every decision.
    Malformed {
        needed: usize,
    },
    /// An id this driver does not know: the body, kept as it came.
    Unknown(Vec<u8>),
}

/// One option as the device listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOption {
    pub id: u16,
    pub length: u16,
    pub required_features_mask: u32,
    /// The first BE32 of the body (the supported-features word of known options), if any.
    pub features: Option<u32>,
    /// Known option whose body is shorter than Linux requires: ignored for decisions.
    pub malformed: bool,
    pub body: OptionBody,
}

/// An option whose header or body runs past `total_length` (or the buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedOption {
    /// Which option (0-based) in the device's list.
    pub index: u16,
    /// Its id, when its header was whole.
    pub id: Option<u16>,
    /// Byte offset where it starts.
    pub at: usize,
    /// Bytes it needs from `at` (header, or header + body).
    pub needs: usize,
    /// Where the descriptor ends.
    pub end: usize,
}

impl core::fmt::Display for TruncatedOption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.id {
            Some(id) => alloc::format!("{} body", option_name(id)),
            None => String::from("header"),
        };
        write!(
            f,
            "device option {} ({what}) at byte {} needs {} bytes but the descriptor ends at {}",
            self.index, self.at, self.needs, self.end
        )
    }
}

/// Name and the body length Linux requires of a known option.
fn option_facts(id: u16) -> Option<(&'static str, usize)> {
    use option_id::*;
    Some(match id {
        GQI_RAW_ADDRESSING => ("GQI_RAW_ADDRESSING", 0),
        GQI_RDA => ("GQI_RDA", 4),
        GQI_QPL => ("GQI_QPL", 4),
        DQO_RDA => ("DQO_RDA", 8),
        // 8 is the "no minimums" form (Linux GVE_DEVICE_OPTION_NO_MIN_RING_SIZE).
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

fn be16(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([body[at], body[at + 1]])
}

fn be32(body: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
}

/// Decodes one body (already bounded by the walk).
fn decode(id: u16, body: &[u8]) -> OptionBody {
    use option_id::*;
    let Some((_, needed)) = option_facts(id) else {
        return OptionBody::Unknown(body.to_vec());
    };
    // The legacy raw-addressing option must have an empty body (Linux checks equality).
    let short = if needed == 0 {
        !body.is_empty()
    } else {
        body.len() < needed
    };
    if short {
        return OptionBody::Malformed { needed };
    }
    match id {
        MODIFY_RING => {
            let min_from_device = body.len() >= 12;
            OptionBody::ModifyRing(RingLimits {
                max_rx: be16(body, 4),
                max_tx: be16(body, 6),
                min_rx: if min_from_device {
                    be16(body, 8)
                } else {
                    DEFAULT_MIN_RX_RING
                },
                min_tx: if min_from_device {
                    be16(body, 10)
                } else {
                    DEFAULT_MIN_TX_RING
                },
                min_from_device,
            })
        }
        DQO_QPL => OptionBody::DqoQpl {
            tx_pages_per_qpl: be16(body, 4),
            rx_pages_per_qpl: be16(body, 6),
        },
        JUMBO_FRAMES => OptionBody::JumboFrames(MaxMtu(be16(body, 4))),
        BUFFER_SIZES => OptionBody::BufferSizes(BufferSizes {
            packet_buffer_bytes: be16(body, 4),
            header_buffer_bytes: be16(body, 6),
        }),
        FLOW_STEERING => OptionBody::FlowSteering {
            max_flow_rules: be32(body, 8),
        },
        RSS_CONFIG => OptionBody::RssConfig {
            hash_key_bytes: be16(body, 4),
            hash_lut_entries: be16(body, 6),
        },
        NIC_TIMESTAMP => OptionBody::NicTimestamp,
        _ => OptionBody::Format,
    }
}

/// Walks `count` options starting at byte `start` of `buf`, never past `end` (the
/// descriptor's total_length, already checked to lie within `buf`).
pub fn parse_options(
    buf: &[u8],
    start: usize,
    end: usize,
    count: u16,
) -> Result<Vec<DeviceOption>, TruncatedOption> {
    let end = end.min(buf.len());
    let mut options = Vec::new();
    let mut at = start;
    for index in 0..count {
        let truncated = |id, needs| TruncatedOption {
            index,
            id,
            at,
            needs,
            end,
        };
        let header = at
            .checked_add(OPTION_HEADER_BYTES)
            .filter(|&e| e <= end)
            .map(|e| &buf[at..e])
            .ok_or_else(|| truncated(None, OPTION_HEADER_BYTES))?;
        let id = be16(header, 0);
        let length = be16(header, 2);
        let needs = OPTION_HEADER_BYTES + usize::from(length);
        let body_end = at + needs;
        if body_end > end {
            return Err(truncated(Some(id), needs));
        }
        let body = &buf[at + OPTION_HEADER_BYTES..body_end];
        let decoded = decode(id, body);
        options.push(DeviceOption {
            id,
            length,
            required_features_mask: be32(header, 4),
            features: (body.len() >= 4).then(|| be32(body, 0)),
            malformed: matches!(decoded, OptionBody::Malformed { .. }),
            body: decoded,
        });
        at = body_end;
    }
    Ok(options)
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

    /// The supported-features bit the chosen format must carry for this option to apply
    /// (None for format options and unknown ones).
    pub fn feature_bit(&self) -> Option<u32> {
        match self.body {
            OptionBody::ModifyRing(_) => Some(feature::MODIFY_RING),
            OptionBody::JumboFrames(_) => Some(feature::JUMBO_FRAMES),
            OptionBody::BufferSizes(_) => Some(feature::BUFFER_SIZES),
            OptionBody::FlowSteering { .. } => Some(feature::FLOW_STEERING),
            OptionBody::RssConfig { .. } => Some(feature::RSS_CONFIG),
            OptionBody::NicTimestamp => Some(feature::NIC_TIMESTAMP),
            _ => None,
        }
    }

    /// The decoded limits in words ("rings RX 512..4096, TX 256..4096"), empty for
    /// options with nothing beyond their features word.
    pub fn decoded_text(&self) -> String {
        match &self.body {
            OptionBody::Format => String::new(),
            OptionBody::DqoQpl {
                tx_pages_per_qpl,
                rx_pages_per_qpl,
            } => alloc::format!("pages per QPL {tx_pages_per_qpl} TX / {rx_pages_per_qpl} RX"),
            OptionBody::ModifyRing(r) => alloc::format!(
                "ring sizes RX {}..{}, TX {}..{}{}",
                r.min_rx,
                r.max_rx,
                r.min_tx,
                r.max_tx,
                if r.min_from_device {
                    ""
                } else {
                    " (minimums not sent: Linux's defaults)"
                }
            ),
            OptionBody::JumboFrames(MaxMtu(mtu)) => alloc::format!("max MTU {mtu}"),
            OptionBody::BufferSizes(b) => alloc::format!(
                "packet buffer up to {} bytes, header buffer {} bytes",
                b.packet_buffer_bytes,
                b.header_buffer_bytes
            ),
            OptionBody::FlowSteering { max_flow_rules } => {
                alloc::format!("max flow rules {max_flow_rules}")
            }
            OptionBody::RssConfig {
                hash_key_bytes,
                hash_lut_entries,
            } => alloc::format!("RSS key {hash_key_bytes} bytes, LUT {hash_lut_entries} entries"),
            OptionBody::NicTimestamp => String::from("NIC timestamps"),
            OptionBody::Malformed { needed } => {
                alloc::format!("MALFORMED: body shorter than {needed} bytes (ignored)")
            }
            OptionBody::Unknown(raw) => {
                let mut text = alloc::format!("unknown, {} raw bytes", raw.len());
                if !raw.is_empty() {
                    text.push(':');
                    for b in raw.iter().take(16) {
                        text.push_str(&alloc::format!(" {b:02x}"));
                    }
                    if raw.len() > 16 {
                        text.push_str(" ..");
                    }
                }
                text
            }
        }
    }
}

/// The limits the driver applies for one queue format: an option counts only when it is
/// usable and the chosen format's features word carries its bit (Linux's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceLimits {
    pub rings: Option<RingLimits>,
    pub buffers: Option<BufferSizes>,
    pub max_mtu: Option<MaxMtu>,
    /// The chosen format option's supported-features word (0 when none was listed).
    pub format_features: u32,
}

impl DeviceLimits {
    /// `format_option_ids`: the option ids that offer the chosen format (GQI-RDA has two).
    pub fn for_format(options: &[DeviceOption], format_option_ids: &[u16]) -> DeviceLimits {
        let format_features = options
            .iter()
            .filter(|o| o.usable() && format_option_ids.contains(&o.id))
            .find_map(|o| o.features)
            .unwrap_or(0);
        let mut limits = DeviceLimits {
            format_features,
            ..DeviceLimits::default()
        };
        for option in options.iter().filter(|o| o.usable()) {
            let enabled = option
                .feature_bit()
                .is_some_and(|bit| format_features & bit != 0);
            if !enabled {
                continue;
            }
            match option.body {
                OptionBody::ModifyRing(r) => limits.rings = Some(r),
                OptionBody::BufferSizes(b) => limits.buffers = Some(b),
                OptionBody::JumboFrames(m) => limits.max_mtu = Some(m),
                _ => {}
            }
        }
        limits
    }

    /// Whether `option` applies under these limits (for `describe`).
    pub fn honours(&self, option: &DeviceOption) -> bool {
        option.usable()
            && option
                .feature_bit()
                .is_some_and(|bit| self.format_features & bit != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One option as bytes: header then body.
    fn option(id: u16, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn words(features: u32, rest: &[u16]) -> Vec<u8> {
        let mut out = features.to_be_bytes().to_vec();
        for w in rest {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn every_known_option_decodes_from_its_layout() {
        let mut buf = Vec::new();
        buf.extend(option(0x6, &words(1, &[4096, 2048, 512, 256])));
        buf.extend(option(0x8, &words(4, &[8896, 0])));
        buf.extend(option(0xa, &words(0x10, &[4096, 128])));
        buf.extend(option(0xb, &words(0x20, &[0, 0, 0, 1024])));
        buf.extend(option(0xe, &words(0x80, &[40, 128])));
        buf.extend(option(0xd, &words(0x100, &[])));
        buf.extend(option(0x7, &words(0x1b5, &[512, 2048])));
        let end = buf.len();
        let options = parse_options(&buf, 0, end, 7).unwrap();
        let bodies: Vec<&OptionBody> = options.iter().map(|o| &o.body).collect();
        assert_eq!(
            bodies,
            [
                &OptionBody::ModifyRing(RingLimits {
                    max_rx: 4096,
                    max_tx: 2048,
                    min_rx: 512,
                    min_tx: 256,
                    min_from_device: true
                }),
                &OptionBody::JumboFrames(MaxMtu(8896)),
                &OptionBody::BufferSizes(BufferSizes {
                    packet_buffer_bytes: 4096,
                    header_buffer_bytes: 128
                }),
                &OptionBody::FlowSteering {
                    max_flow_rules: 1024
                },
                &OptionBody::RssConfig {
                    hash_key_bytes: 40,
                    hash_lut_entries: 128
                },
                &OptionBody::NicTimestamp,
                &OptionBody::DqoQpl {
                    tx_pages_per_qpl: 512,
                    rx_pages_per_qpl: 2048
                },
            ]
        );
        assert_eq!(options[0].features, Some(1));
        assert_eq!(
            options[0].decoded_text(),
            "ring sizes RX 512..4096, TX 256..2048"
        );
        assert_eq!(options[1].decoded_text(), "max MTU 8896");
    }

    #[test]
    fn modify_ring_without_minimums_takes_linux_defaults() {
        let buf = option(0x6, &words(1, &[1024, 1024]));
        let options = parse_options(&buf, 0, buf.len(), 1).unwrap();
        assert_eq!(
            options[0].body,
            OptionBody::ModifyRing(RingLimits {
                max_rx: 1024,
                max_tx: 1024,
                min_rx: 512,
                min_tx: 256,
                min_from_device: false
            })
        );
    }

    #[test]
    fn unknown_options_of_any_length_are_kept_raw_and_skipped() {
        let mut buf = Vec::new();
        buf.extend(option(0x1f, &[]));
        buf.extend(option(0x77, &[9; 300]));
        buf.extend(option(0x8, &words(4, &[9000, 0])));
        let options = parse_options(&buf, 0, buf.len(), 3).unwrap();
        assert_eq!(options[0].body, OptionBody::Unknown(Vec::new()));
        assert_eq!(options[1].body, OptionBody::Unknown(alloc::vec![9; 300]));
        assert!(options[1]
            .decoded_text()
            .starts_with("unknown, 300 raw bytes: 09"));
        assert_eq!(options[2].body, OptionBody::JumboFrames(MaxMtu(9000)));
    }

    #[test]
    fn a_truncated_last_option_is_named_never_overrun() {
        let mut buf = option(0x3, &words(0, &[]));
        buf.extend(option(0x8, &words(4, &[8896, 0])));
        let whole = buf.len();
        // Body cut short by total_length.
        let err = parse_options(&buf, 0, whole - 1, 2).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.id, Some(0x8));
        assert_eq!((err.at, err.needs, err.end), (12, 16, whole - 1));
        assert!(
            alloc::format!("{err}").contains("JUMBO_FRAMES body"),
            "{err}"
        );
        // Header cut short: count claims a third option.
        let err = parse_options(&buf, 0, whole + 4, 3).unwrap_err();
        assert_eq!((err.index, err.id), (2, None));
        // total_length past the buffer is clamped to the buffer.
        let err = parse_options(&buf[..whole - 2], 0, whole, 2).unwrap_err();
        assert_eq!(err.end, whole - 2);
    }

    #[test]
    fn a_short_body_is_malformed_and_ignored() {
        let buf = option(0x6, &words(1, &[]));
        let options = parse_options(&buf, 0, buf.len(), 1).unwrap();
        assert!(options[0].malformed);
        assert!(!options[0].usable());
    }

    #[test]
    fn limits_apply_only_with_the_formats_feature_bit() {
        let mut buf = Vec::new();
        buf.extend(option(0x3, &words(feature::JUMBO_FRAMES, &[])));
        buf.extend(option(
            0x4,
            &words(feature::MODIFY_RING | feature::BUFFER_SIZES, &[0, 0]),
        ));
        buf.extend(option(0x6, &words(1, &[4096, 4096, 64, 64])));
        buf.extend(option(0x8, &words(4, &[8896, 0])));
        buf.extend(option(0xa, &words(0x10, &[4096, 0])));
        let options = parse_options(&buf, 0, buf.len(), 5).unwrap();
        let gqi = DeviceLimits::for_format(&options, &[0x3]);
        assert_eq!(gqi.max_mtu, Some(MaxMtu(8896)));
        assert_eq!((gqi.rings, gqi.buffers), (None, None));
        assert!(gqi.honours(&options[3]) && !gqi.honours(&options[2]));
        let dqo = DeviceLimits::for_format(&options, &[0x4]);
        assert_eq!(dqo.max_mtu, None);
        assert_eq!(dqo.rings.map(|r| r.min_rx), Some(64));
        assert_eq!(dqo.buffers.map(|b| b.packet_buffer_bytes), Some(4096));
        assert_eq!(
            feature::names(dqo.format_features | 1 << 30),
            "MODIFY_RING|BUFFER_SIZES|0x40000000"
        );
    }
}
