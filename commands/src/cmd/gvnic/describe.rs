//! `gvnic describe`'s renderers: the descriptor, every device option (name, length,
//! features, decoded limits, whether the driver applies it), the format and MSI-X, as text
//! and as a `gvnic.describe` frame. Pure functions, tested without a `Ctx`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::gvnic::limits::{MtuPlan, RingPlan};
use drivers::gvnic::options::{feature, DeviceLimits, OptionBody};
use drivers::gvnic::{DeviceInfo, DeviceOption, MsixReport, State};
use drivers::platform::Bdf;

/// The limits the options set for the chosen format (none when no format is usable).
fn limits_of(info: &DeviceInfo) -> DeviceLimits {
    info.format
        .as_ref()
        .map(|f| info.descriptor.limits(*f))
        .unwrap_or_default()
}

/// Whether the driver applies `option`, in words (empty for options without a limit).
fn applied_text(option: &DeviceOption, limits: &DeviceLimits, info: &DeviceInfo) -> String {
    let Some(bit) = option.feature_bit() else {
        return String::new();
    };
    if limits.honours(option) {
        return String::from(" [applied]");
    }
    if !option.usable() {
        return String::from(" [not applied: ignored]");
    }
    match &info.format {
        Ok(format) => alloc::format!(
            " [not applied: {}'s features lack {}]",
            format.name(),
            feature::names(bit)
        ),
        Err(_) => String::from(" [not applied: no usable format]"),
    }
}

/// One option: name, id, length, features, decoded limits and whether it applies.
fn option_line(option: &DeviceOption, limits: &DeviceLimits, info: &DeviceInfo) -> String {
    let mut line = alloc::format!(
        "{:<20} id {:#x}, {} bytes",
        option.name(),
        option.id,
        option.length
    );
    if let Some(features) = option.features {
        let _ = write!(line, ", features {features:#x}");
        let names = feature::names(features);
        if option.feature_bit().is_none() && !names.is_empty() && option.decoded_text().is_empty() {
            let _ = write!(line, " ({names})");
        }
    }
    if option.required_features_mask != 0 {
        let _ = write!(
            line,
            ", REQUIRES {:#x} (ignored)",
            option.required_features_mask
        );
    }
    let decoded = option.decoded_text();
    if !decoded.is_empty() {
        let _ = write!(line, ": {decoded}");
    }
    line.push_str(&applied_text(option, limits, info));
    line
}

fn option_frame(option: &DeviceOption, limits: &DeviceLimits) -> evidence::GvnicOption {
    evidence::GvnicOption {
        id: option.id,
        name: option.name(),
        length: option.length,
        required_features_mask: option.required_features_mask,
        features: option.features,
        decoded: option.decoded_text().chars().take(200).collect(),
        applied: limits.honours(option),
        raw: match &option.body {
            OptionBody::Unknown(raw) => raw.iter().take(64).copied().collect(),
            _ => Vec::new(),
        },
    }
}

fn format_text(info: &DeviceInfo) -> String {
    match &info.format {
        Ok(format) => String::from(format.name()),
        Err(err) => alloc::format!("none usable: {err}"),
    }
}

/// `gvnic describe`'s human output.
pub(super) fn describe_text(
    bdf: Bdf,
    info: &DeviceInfo,
    state: State,
    msix: Option<&MsixReport>,
) -> String {
    let d = &info.descriptor;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "gVNIC {bdf}: PCI revision {} (admin queue via {}), link {}, state {}",
        info.revision,
        info.aq_mode.name(),
        if info.link_up { "up" } else { "down" },
        state.name()
    );
    let _ = writeln!(text, "  MAC {}  MTU {}", d.mac_string(), d.mtu);
    let _ = writeln!(
        text,
        "  queues: max {} TX / {} RX (default {}); ring sizes {} TX / {} RX entries",
        info.max_tx_queues,
        info.max_rx_queues,
        d.default_num_queues,
        d.tx_queue_entries,
        d.rx_queue_entries
    );
    let _ = writeln!(
        text,
        "  event counters {}; pages per QPL {} TX / {} RX; max registered pages {}; DMA mask {} bits",
        d.counters, d.tx_pages_per_qpl, d.rx_pages_per_qpl, d.max_registered_pages, info.dma_mask_bits
    );
    let limits = limits_of(info);
    let _ = writeln!(text, "  device options ({}):", d.options.len());
    for option in &d.options {
        let _ = writeln!(text, "    {}", option_line(option, &limits, info));
    }
    let offered: Vec<&str> = d.offered_formats().iter().map(|f| f.name()).collect();
    let _ = writeln!(
        text,
        "  queue formats offered: {}",
        if offered.is_empty() {
            String::from("none listed (gqi-qpl assumed)")
        } else {
            offered.join(", ")
        }
    );
    let _ = writeln!(text, "  queue format: {}", format_text(info));
    if let Ok(format) = &info.format {
        let _ = writeln!(
            text,
            "  {} uses: {}; MTU up to {}",
            format.name(),
            match RingPlan::new(d, &limits) {
                Ok(p) => alloc::format!(
                    "rings {} TX / {} RX entries, RX packet buffers {} bytes",
                    p.tx_entries,
                    p.rx_entries,
                    p.packet_buffer_bytes
                ),
                Err(err) => alloc::format!("nothing ({err})"),
            },
            MtuPlan::new(d, &limits, None).device_max
        );
    }
    match msix {
        Some(m) => {
            let _ = writeln!(
                text,
                "  MSI-X: {} vectors, {}{}, {} unmasked{}",
                m.vectors,
                if m.function.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                if m.function.function_masked {
                    " (function masked)"
                } else {
                    ""
                },
                m.unmasked,
                if m.programmed {
                    "; every vector at the dummy DMA target (DQO)"
                } else {
                    ""
                }
            );
        }
        None => text.push_str("  MSI-X: no table mapped (DQO formats need it)\n"),
    }
    text
}

pub(super) fn describe_frame(
    bdf: Bdf,
    info: &DeviceInfo,
    msix: Option<&MsixReport>,
) -> evidence::GvnicDescriptor {
    let d = &info.descriptor;
    let limits = limits_of(info);
    let plan = info
        .format
        .as_ref()
        .ok()
        .and_then(|_| RingPlan::new(d, &limits).ok());
    evidence::GvnicDescriptor {
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
        revision: info.revision,
        mac: d.mac,
        mtu: d.mtu,
        max_tx_queues: info.max_tx_queues,
        max_rx_queues: info.max_rx_queues,
        tx_queue_entries: d.tx_queue_entries,
        rx_queue_entries: d.rx_queue_entries,
        counters: d.counters,
        tx_pages_per_qpl: d.tx_pages_per_qpl,
        rx_pages_per_qpl: d.rx_pages_per_qpl,
        max_registered_pages: d.max_registered_pages,
        options: d.options.iter().map(|o| o.id).collect(),
        queue_format: format_text(info).chars().take(120).collect(),
        msix_vectors: msix.map_or(0, |m| m.vectors),
        msix_enabled: msix.is_some_and(|m| m.function.enabled),
        msix_unmasked: msix.map_or(0, |m| m.unmasked),
        offered_formats: d
            .offered_formats()
            .iter()
            .map(|f| String::from(f.name()))
            .collect(),
        device_options: d.options.iter().map(|o| option_frame(o, &limits)).collect(),
        device_max_mtu: MtuPlan::new(d, &limits, None).device_max,
        ring_tx_entries: plan.map_or(0, |p| p.tx_entries),
        ring_rx_entries: plan.map_or(0, |p| p.rx_entries),
        packet_buffer_bytes: plan.map_or(0, |p| p.packet_buffer_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::gvnic::regs::AqMode;
    use drivers::gvnic::{DeviceDescriptor, DeviceOption};
    use drivers::gvnic::{GvnicError, QueueFormat};
    use drivers::pci::msix::FunctionState;

    fn info(options: &[u16], format: Result<QueueFormat, GvnicError>) -> DeviceInfo {
        DeviceInfo {
            revision: 1,
            aq_mode: AqMode::BaseLength,
            max_tx_queues: 4,
            max_rx_queues: 4,
            dma_mask_bits: 64,
            link_up: true,
            descriptor: DeviceDescriptor {
                max_registered_pages: 8192,
                tx_queue_entries: 1024,
                rx_queue_entries: 1024,
                default_num_queues: 4,
                mtu: 1460,
                counters: 32,
                tx_pages_per_qpl: 512,
                rx_pages_per_qpl: 1024,
                mac: [0x42, 1, 10, 128, 0, 2],
                total_length: 64,
                options: options
                    .iter()
                    .map(|&id| DeviceOption {
                        id,
                        length: 8,
                        required_features_mask: 0,
                        features: Some(0),
                        malformed: false,
                        body: drivers::gvnic::options::OptionBody::Format,
                    })
                    .collect(),
            },
            format,
        }
    }

    #[test]
    fn describe_shows_offered_and_chosen_format_and_msix() {
        let bdf = Bdf::new(0, 4, 0);
        let info = info(&[4, 7], Ok(QueueFormat::DqoQpl));
        let msix = MsixReport {
            vectors: 9,
            function: FunctionState {
                enabled: true,
                function_masked: false,
            },
            unmasked: 2,
            programmed: true,
        };
        let text = describe_text(bdf, &info, State::QueuesUp, Some(&msix));
        assert!(
            text.contains("queue formats offered: dqo-rda, dqo-qpl"),
            "{text}"
        );
        assert!(text.contains("queue format: dqo-qpl"), "{text}");
        assert!(
            text.contains("MSI-X: 9 vectors, enabled, 2 unmasked; every vector at the dummy"),
            "{text}"
        );
        let frame = describe_frame(bdf, &info, Some(&msix));
        assert_eq!(frame.queue_format, "dqo-qpl");
        assert_eq!(frame.offered_formats, ["dqo-rda", "dqo-qpl"]);
        assert_eq!(
            (frame.msix_vectors, frame.msix_enabled, frame.msix_unmasked),
            (9, true, 2)
        );
    }

    #[test]
    fn describe_names_a_refused_format_and_a_missing_msix_table() {
        let bdf = Bdf::new(0, 4, 0);
        let refused = GvnicError::FormatNotOffered {
            wanted: "gqi-rda",
            offered: alloc::vec!["gqi-qpl"],
        };
        let info = info(&[], Err(refused));
        let text = describe_text(bdf, &info, State::Described, None);
        assert!(text.contains("none listed (gqi-qpl assumed)"), "{text}");
        assert!(
            text.contains(
                "queue format: none usable: the device does not offer queue format gqi-rda"
            ),
            "{text}"
        );
        assert!(text.contains("MSI-X: no table mapped"), "{text}");
        let frame = describe_frame(bdf, &info, None);
        assert_eq!((frame.msix_vectors, frame.msix_enabled), (0, false));
        assert!(frame.offered_formats.is_empty());
    }

    /// A descriptor as a 2026 device sends it, built from the layouts (gve_adminq.h).
    fn every_option_descriptor() -> DeviceInfo {
        let opt = |id: u16, body: &[u8]| {
            let mut out = Vec::new();
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(body);
            out
        };
        let words = |features: u32, rest: &[u16]| {
            let mut out = features.to_be_bytes().to_vec();
            rest.iter()
                .for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
            out
        };
        // GQI_QPL advertises every limit but FLOW_STEERING; DQO_RDA none.
        let gqi_features = feature::MODIFY_RING
            | feature::JUMBO_FRAMES
            | feature::BUFFER_SIZES
            | feature::RSS_CONFIG
            | feature::NIC_TIMESTAMP;
        let options = [
            opt(0x3, &words(gqi_features, &[])),
            opt(0x4, &words(0, &[0, 0])),
            opt(0x6, &words(1, &[4096, 4096, 512, 256])),
            opt(0x8, &words(4, &[8896, 0])),
            opt(0xa, &words(0x10, &[4096, 0])),
            opt(0xb, &words(0x20, &[0, 0, 0, 4096])),
            opt(0xe, &words(0x80, &[40, 128])),
            opt(0xd, &words(0x100, &[])),
            opt(0x2a, &[0xde, 0xad, 0xbe]),
        ];
        let mut buf = alloc::vec![0u8; 40];
        buf[0..8].copy_from_slice(&8192u64.to_be_bytes());
        buf[10..12].copy_from_slice(&1024u16.to_be_bytes());
        buf[12..14].copy_from_slice(&1024u16.to_be_bytes());
        buf[14..16].copy_from_slice(&4u16.to_be_bytes());
        buf[16..18].copy_from_slice(&1460u16.to_be_bytes());
        buf[18..20].copy_from_slice(&32u16.to_be_bytes());
        buf[30..32].copy_from_slice(&(options.len() as u16).to_be_bytes());
        options.iter().for_each(|o| buf.extend_from_slice(o));
        let total = buf.len() as u16;
        buf[32..34].copy_from_slice(&total.to_be_bytes());
        let descriptor = DeviceDescriptor::parse(&buf).unwrap();
        let mut info = info(&[], Ok(QueueFormat::GqiQpl));
        info.descriptor = descriptor;
        info
    }

    #[test]
    fn describe_shows_every_option_decoded_and_whether_it_applies() {
        let bdf = Bdf::new(0, 4, 0);
        let info = every_option_descriptor();
        let text = describe_text(bdf, &info, State::Described, None);
        for want in [
            "device options (9):",
            "GQI_QPL              id 0x3, 4 bytes, features 0x195 (MODIFY_RING|JUMBO_FRAMES|BUFFER_SIZES|RSS_CONFIG|NIC_TIMESTAMP)",
            "MODIFY_RING          id 0x6, 12 bytes, features 0x1: ring sizes RX 512..4096, TX 256..4096 [applied]",
            "JUMBO_FRAMES         id 0x8, 8 bytes, features 0x4: max MTU 8896 [applied]",
            "BUFFER_SIZES         id 0xa, 8 bytes, features 0x10: packet buffer up to 4096 bytes, header buffer 0 bytes [applied]",
            "FLOW_STEERING        id 0xb, 12 bytes, features 0x20: max flow rules 4096 [not applied: gqi-qpl's features lack FLOW_STEERING]",
            "RSS_CONFIG           id 0xe, 8 bytes, features 0x80: RSS key 40 bytes, LUT 128 entries [applied]",
            "NIC_TIMESTAMP        id 0xd, 4 bytes, features 0x100: NIC timestamps [applied]",
            "option 0x2a          id 0x2a, 3 bytes: unknown, 3 raw bytes: de ad be",
            "gqi-qpl uses: rings 1024 TX / 1024 RX entries, RX packet buffers 2048 bytes; MTU up to 8896",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let frame = describe_frame(bdf, &info, None);
        assert_eq!(frame.device_options.len(), 9);
        let jumbo = &frame.device_options[3];
        assert_eq!((jumbo.name.as_str(), jumbo.length), ("JUMBO_FRAMES", 8));
        assert_eq!((jumbo.features, jumbo.applied), (Some(4), true));
        assert!(!frame.device_options[5].applied);
        assert_eq!(frame.device_options[8].raw, [0xde, 0xad, 0xbe]);
        assert_eq!(frame.device_max_mtu, 8896);
        assert_eq!(
            (
                frame.ring_tx_entries,
                frame.ring_rx_entries,
                frame.packet_buffer_bytes
            ),
            (1024, 1024, 2048)
        );
        // Under DQO-RDA (features 0) nothing applies and the MTU stays the descriptor's.
        let mut dqo = info.clone();
        dqo.format = Ok(QueueFormat::DqoRda);
        let text = describe_text(bdf, &dqo, State::Described, None);
        assert!(
            text.contains("max MTU 8896 [not applied: dqo-rda's features lack JUMBO_FRAMES]"),
            "{text}"
        );
        assert!(text.contains("MTU up to 1460"), "{text}");
    }
}
