//! System test: `proofs/gvnic.bringup` against the real image in QEMU, with the gVNIC model
//! offering exactly one queue format, for each of the four formats, under SeaBIOS and OVMF.
//! Per run: every command and expectation of the proof holds, the format reported is the
//! one offered, tshark reads a valid DISCOVER from the reported MAC (and the OFFER for its
//! xid) in the model's capture, and the model's own final state (taken once QEMU is gone)
//! is reset, with no pages registered and no violations. MSI-X is enabled while DQO queues
//! run and disabled again after teardown (the proof's last describe reads it from config
//! space). The eight boots run four at a time.
//! Needs target/bringup.img (`make image`; `make test` builds it first) and tshark.

use std::time::Duration;

#[path = "support/tshark.rs"]
mod tshark;
use tshark::tshark_dhcp_rows;

use evidence::Body;
use gvnic_model::{Formats, QueueFormat};
use host_client::runner::{run_script, NoProgress, RunOptions};
use host_client::script::parse_script;
use host_client::{GvnicOptions, QemuConfig, Session};

const FORMATS: [(QueueFormat, &str); 4] = [
    (QueueFormat::GqiQpl, "gqi-qpl"),
    (QueueFormat::GqiRda, "gqi-rda"),
    (QueueFormat::DqoQpl, "dqo-qpl"),
    (QueueFormat::DqoRda, "dqo-rda"),
];

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn run_one(format: QueueFormat, name: &str, uefi: bool) {
    let label = format!("{name} {}", if uefi { "OVMF" } else { "SeaBIOS" });
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("gvnic.pcap");
    let cfg = QemuConfig {
        uefi,
        gvnic: Some(GvnicOptions {
            pcap: Some(pcap.clone()),
            formats: Some(Formats::only(&[format])),
            ..GvnicOptions::default()
        }),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let proof = host_client::qemu::workspace_root().join("proofs/gvnic.bringup");
    let script = parse_script(&std::fs::read_to_string(proof).unwrap()).unwrap();
    let mut session = Session::start_qemu(&cfg).unwrap();
    let opts = RunOptions {
        default_timeout: Duration::from_secs(60),
        boot_timeout: Duration::from_secs(240),
        fresh_boot: true,
        strict_frames: true,
        script_name: "gvnic.bringup".into(),
        transport: "qemu".into(),
    };
    let report = run_script(&mut session, &script, &opts, &mut NoProgress);
    assert!(
        report.passed,
        "{label}: the proof failed: {:?} {:?}\n{}",
        report.error, report.summary, report.transcript
    );
    // The format the device offered is the one used, in the describe and the TX frames.
    let json = serde_json::to_string(&report.frames).unwrap();
    assert!(
        json.contains(&format!("\"queue_format\":\"{name}\"")),
        "{label}: {json}"
    );
    // MSI-X while the queues run: bring them up again and look.
    let t = Duration::from_secs(60);
    let tx = session.command("gvnic txdhcp --timeout 5000", t).unwrap();
    assert!(tx.is_ok(), "{label}: {}", tx.text);
    let sent = tx
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::GvnicTx(t) => Some(t.clone()),
            _ => None,
        })
        .expect("gvnic.tx frame");
    assert_eq!(sent.queue_format, name, "{label}");
    let up = session.command("gvnic describe", t).unwrap();
    let descriptor = up
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::GvnicDescriptor(d) => Some(d.clone()),
            _ => None,
        })
        .expect("gvnic.describe frame");
    let dqo = name.starts_with("dqo");
    assert_eq!(descriptor.msix_enabled, dqo, "{label}: {}", up.text);
    assert_eq!(descriptor.msix_unmasked, if dqo { 2 } else { 0 }, "{label}");
    let down = session.command("teardown gvnic", t).unwrap();
    assert!(down.is_ok(), "{label}: {}", down.text);
    let after = session.command("gvnic describe", t).unwrap();
    let descriptor = after
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::GvnicDescriptor(d) => Some(d.clone()),
            _ => None,
        })
        .expect("gvnic.describe frame");
    assert!(!descriptor.msix_enabled, "{label}: MSI-X left enabled");
    assert!(session.command("teardown gvnic", t).unwrap().is_ok());
    let model = session
        .close_with_gvnic_state()
        .unwrap()
        .expect("the model's final state");
    assert!(model.is_reset, "{label}: {model:#?}");
    assert_eq!(model.registered_pages, 0, "{label}");
    assert!(
        model.violations.is_empty(),
        "{label}: {:#?}",
        model.violations
    );

    // tshark: a valid DISCOVER from the MAC the device reported, and the OFFER for its xid.
    let rows = tshark_dhcp_rows(&pcap);
    let mac = mac_text(descriptor.mac);
    let xid = format!("{:#010x}", sent.xid);
    let discover = rows
        .iter()
        .find(|r| r[0] == "1" && r[4] == xid)
        .unwrap_or_else(|| panic!("{label}: no DISCOVER for {xid}: {rows:?}"));
    assert_eq!(discover[1], mac, "{label}: {rows:?}");
    assert_eq!(discover[2], "1", "{label}: IPv4 checksum: {rows:?}");
    assert_eq!(discover[3], "1", "{label}: UDP checksum: {rows:?}");
    assert!(
        rows.iter().any(|r| r[0] == "2" && r[4] == xid),
        "{label}: no OFFER for {xid}: {rows:?}"
    );
}

fn run_all(uefi: bool) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = FORMATS
            .iter()
            .map(|(format, name)| scope.spawn(move || run_one(*format, name, uefi)))
            .collect();
        let failures: Vec<String> = runs
            .into_iter()
            .filter_map(|run| run.join().err())
            .map(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    });
}

#[test]
fn gvnic_proof_passes_in_every_format_under_seabios() {
    run_all(false);
}

#[test]
fn gvnic_proof_passes_in_every_format_under_ovmf() {
    run_all(true);
}
