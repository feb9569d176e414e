//! System test: the real monitor image in QEMU with the gVNIC model attached through
//! x-pci-proxy-dev. SeaBIOS must enumerate 1ae0:0042 and assign its three BARs, BAR0 must read
//! back the model's reset values, and DESCRIBE_DEVICE through the real driver must return the
//! configured descriptor; a DHCP DISCOVER must come back as an OFFER and land in the pcap.
//! Needs target/bringup.img (`make image`; or BRINGUP_IMAGE).

use std::time::Duration;

use evidence::Body;
use host_client::{GvnicOptions, QemuConfig, Session};

const BDF: &str = "00:05.0";
const T: Duration = Duration::from_secs(60);

fn boot(opts: GvnicOptions) -> Session {
    let cfg = QemuConfig {
        gvnic: Some(GvnicOptions {
            slot: Some(5),
            ..opts
        }),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "{} is missing: run `make image` (or set BRINGUP_IMAGE)",
        cfg.image.display()
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    if let Err(e) = s.wait_for_prompt(Duration::from_secs(120)) {
        panic!("no prompt: {e:#}\nQEMU said: {}", s.qemu_stderr());
    }
    s
}

#[test]
fn seabios_enumerates_the_model_and_describe_returns_its_descriptor() {
    let pcap = std::env::temp_dir().join(format!("gvnic-model-test-{}.pcap", std::process::id()));
    let mac = [0x42, 0x01, 0x0a, 0x80, 0x00, 0x2a];
    let mut s = boot(GvnicOptions {
        pcap: Some(pcap.clone()),
        revision: 0,
        mac: Some(mac),
        ..Default::default()
    });

    // lspci: identity and the three 32-bit memory BARs SeaBIOS assigned.
    let l = s.command("lspci", T).unwrap();
    assert!(l.is_ok(), "{l:?}");
    let f = l
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::PciFunction(p) if p.vendor_id == 0x1ae0 => Some(p.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no 1ae0 function in lspci:\n{}", l.text));
    assert_eq!((f.bus, f.device, f.function), (0, 5, 0));
    assert_eq!(
        (f.device_id, f.class_code >> 8, f.revision),
        (0x0042, 0x0200, 0)
    );
    assert_eq!((f.subsystem_vendor, f.subsystem_id), (0x1ae0, 0x0058));
    assert!(
        f.capabilities.contains(&0x11),
        "MSI-X capability: {:?}",
        f.capabilities
    );
    let sizes: Vec<(u8, u64)> = f
        .bars
        .iter()
        .filter(|b| b.size > 0)
        .map(|b| (b.index, b.size))
        .collect();
    assert_eq!(sizes, vec![(0, 0x1000), (1, 0x1000), (2, 0x10000)]);
    assert!(f
        .bars
        .iter()
        .filter(|b| b.size > 0)
        .all(|b| b.memory && !b.is_64bit && b.address != 0));
    assert!(l.text.contains("1ae0:0042"), "{}", l.text);

    // BAR0 through the monitor's own mapping: the reset values.
    let m = s.command(&format!("bar map {BDF} 0"), T).unwrap();
    assert!(m.is_ok(), "{m:?}");
    let window = m
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::BarMapping(b) => Some(b.window),
            _ => None,
        })
        .expect("bar.map frame");
    let p = s.command(&format!("peek {window:#x} 32"), T).unwrap();
    assert!(p.is_ok(), "{p:?}");
    // On a BAR window `peek` reads 32-bit registers at their own width (one access each);
    // the reg.read frame carries the values as the little-endian bus delivered them.
    let regs: Vec<u8> = p
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::RegRead(r) => Some(r.clone()),
            _ => None,
        })
        .map(|r| {
            assert_eq!((r.width, r.count), (4, 8), "{}", p.text);
            r.values
                .iter()
                .flat_map(|v| (*v as u32).to_le_bytes())
                .collect()
        })
        .expect("reg.read frame");
    assert_eq!(regs.len(), 32, "{}", p.text);
    assert_eq!(
        &regs[0x00..0x04],
        &[0, 0, 0, 0x04],
        "DEVICE_STATUS: link up, BE"
    );
    assert_eq!(&regs[0x08..0x0c], &[0, 0, 0, 4], "MAX_TX_QUEUES");
    assert_eq!(&regs[0x0c..0x10], &[0, 0, 0, 4], "MAX_RX_QUEUES");
    assert_eq!(&regs[0x10..0x14], &[0, 0, 0, 0], "ADMINQ_PFN: no AQ");
    assert_eq!(regs[0x1e], 64, "DMA mask");

    // DESCRIBE_DEVICE through the real driver.
    let d = s.command("gvnic describe", T).unwrap();
    assert!(d.is_ok(), "{d:?}");
    let desc = d
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::GvnicDescriptor(g) => Some(g.clone()),
            _ => None,
        })
        .expect("gvnic.describe frame");
    assert_eq!(desc.mac, mac);
    assert_eq!(desc.mtu, 1460);
    assert_eq!(
        (desc.max_tx_queues, desc.tx_queue_entries, desc.counters),
        (4, 1024, 32)
    );
    // GQI_QPL, then the 2026 profile's MODIFY_RING, JUMBO_FRAMES, BUFFER_SIZES,
    // FLOW_STEERING, NIC_TIMESTAMP and RSS_CONFIG: the driver walked every option.
    assert_eq!(desc.options, vec![3, 6, 8, 10, 11, 13, 14]);
    assert_eq!(desc.queue_format, "gqi-qpl");

    // A DHCP DISCOVER through GQI TX; the model's responder OFFERs through GQI RX.
    let t = s.command("gvnic txdhcp", T).unwrap();
    assert!(t.is_ok(), "{t:?}");
    let rx: Vec<_> = t
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::GvnicRx(r) => Some(r.kind.clone()),
            _ => None,
        })
        .collect();
    assert!(
        rx.iter().any(|k| k == "dhcp-offer"),
        "rx frames: {rx:?}\n{}",
        t.text
    );
    let td = s.command("teardown", T).unwrap();
    assert!(td.is_ok(), "{td:?}");
    drop(s);

    // The pcap holds the DISCOVER (from our MAC) and the OFFER.
    let bytes = std::fs::read(&pcap).unwrap();
    std::fs::remove_file(&pcap).ok();
    let mut at = 24;
    let mut frames = Vec::new();
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    assert!(frames.len() >= 2, "{} frames", frames.len());
    assert_eq!(&frames[0][6..12], &mac, "first frame is the guest's");
}

#[test]
fn revision_1_and_dqo_only_are_reported_through_the_real_image() {
    let mut s = boot(GvnicOptions {
        revision: 1,
        formats: Some(gvnic_model::Formats::dqo_only()),
        ..Default::default()
    });
    let l = s.command("lspci", T).unwrap();
    let rev = l.frames.iter().find_map(|f| match &f.body {
        Body::PciFunction(p) if p.vendor_id == 0x1ae0 => Some(p.revision),
        _ => None,
    });
    assert_eq!(rev, Some(1));
    let d = s.command("gvnic describe", T).unwrap();
    let desc = d.frames.iter().find_map(|f| match &f.body {
        Body::GvnicDescriptor(g) => Some(g.clone()),
        _ => None,
    });
    let desc = desc.unwrap_or_else(|| panic!("no descriptor: {d:?}"));
    let formats: Vec<u16> = desc
        .options
        .iter()
        .copied()
        .filter(|id| matches!(id, 1..=4 | 7))
        .collect();
    assert_eq!(formats, vec![4], "only DQO_RDA among the format options");
    assert_ne!(
        desc.queue_format, "gqi-qpl",
        "a GQI driver must not pick a format that is not offered"
    );
}
