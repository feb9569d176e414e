//! System test: the real monitor image in QEMU with the gVNIC model attached over QEMU's
//! multi-process proxy. `gvnic describe` shows the model's MAC and options; `gvnic txdhcp`
//! puts a DISCOVER on the wire that tshark (an independent decoder) reads as a DHCP DISCOVER
//! from that MAC with valid IPv4 and UDP checksums, and the monitor reports the model's
//! OFFER; `teardown` releases everything (every step ok, DMA ledger empty); then `gvnic
//! describe` works again. Finally the model's own view, taken when QEMU is gone, must agree:
//! the device reset by the driver, no pages registered, no violations, every admin command
//! passed, the teardown commands in reverse bring-up order.
//! Needs target/bringup.img (`make image`; `make test` builds it first) and tshark.

use std::time::Duration;

#[path = "support/tshark.rs"]
mod tshark;
use tshark::tshark_dhcp_rows;

use evidence::{Body, Frame};
use gvnic_model::adminq::{opcode, status};
use gvnic_model::ResetCause;
use host_client::{GvnicOptions, QemuConfig, Session};

/// A MAC that is not the model's default, so the test proves it is read from the device.
const MAC: [u8; 6] = [0x42, 0x01, 0x0a, 0x80, 0x07, 0x2a];
const MAC_TEXT: &str = "42:01:0a:80:07:2a";

fn bodies(frames: &[Frame]) -> Vec<&Body> {
    frames.iter().map(|f| &f.body).collect()
}

fn run(revision: u8) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join(format!("gvnic-rev{revision}.pcap"));
    let cfg = QemuConfig {
        gvnic: Some(GvnicOptions {
            pcap: Some(pcap.clone()),
            revision,
            mac: Some(MAC),
            ..GvnicOptions::default()
        }),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\nQEMU said: {}", s.qemu_stderr()));
    let t = Duration::from_secs(120);

    // describe: the configured MAC, GQI_QPL offered and chosen.
    let describe = s.command("gvnic describe", t).unwrap();
    assert!(describe.is_ok(), "{}\n{:?}", describe.text, describe.result);
    assert!(describe.text.contains(MAC_TEXT), "{}", describe.text);
    assert!(describe.text.contains("GQI_QPL"), "{}", describe.text);
    let descriptor = bodies(&describe.frames)
        .into_iter()
        .find_map(|b| match b {
            Body::GvnicDescriptor(d) => Some(d.clone()),
            _ => None,
        })
        .expect("gvnic.describe frame");
    assert_eq!(descriptor.mac, MAC);
    assert_eq!(descriptor.revision, revision);
    assert_eq!(descriptor.mtu, 1460);
    assert!(descriptor.options.contains(&0x3), "{descriptor:?}");
    assert_eq!(descriptor.queue_format, "gqi-qpl");

    // txdhcp: TX evidence, and the model's OFFER reported.
    let tx = s.command("gvnic txdhcp --timeout 5000", t).unwrap();
    assert!(tx.is_ok(), "{}\n{:?}", tx.text, tx.result);
    let sent = bodies(&tx.frames)
        .into_iter()
        .find_map(|b| match b {
            Body::GvnicTx(t) => Some(t.clone()),
            _ => None,
        })
        .expect("gvnic.tx frame");
    assert_eq!(sent.kind, "dhcp-discover");
    assert_eq!(sent.src_mac, MAC);
    let offer = bodies(&tx.frames)
        .into_iter()
        .find_map(|b| match b {
            Body::GvnicRx(r) if r.kind == "dhcp-offer" => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no dhcp-offer frame: {}", tx.text));
    assert_eq!(offer.xid, sent.xid);
    // The model offers the address GCE encodes in the MAC's last four bytes.
    assert_eq!(offer.offered_ip, [MAC[2], MAC[3], MAC[4], MAC[5]]);
    assert_eq!(offer.server_ip, [169, 254, 169, 254]);
    assert_eq!(offer.lease_secs, 86400);
    assert!(tx.text.contains("DHCP OFFER"), "{}", tx.text);
    assert!(tx.text.contains("10.128.7.42"), "{}", tx.text);

    // teardown: every step ok, the device reset, the ledger empty.
    let down = s.command("teardown", t).unwrap();
    assert!(down.is_ok(), "{}\n{:?}", down.text, down.result);
    let steps: Vec<(String, bool)> = bodies(&down.frames)
        .into_iter()
        .filter_map(|b| match b {
            Body::TeardownStep(step) if step.device == "gvnic" => {
                Some((step.step.clone(), step.ok))
            }
            _ => None,
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "destroy-rx-queue",
            "destroy-tx-queue",
            "unregister-rx-qpl",
            "unregister-tx-qpl",
            "deconfigure",
            "reset",
            "release-dma",
            "bus-master-off",
            "intx-restore",
            "unmap",
            "unmap",
            "unmap"
        ],
        "{}",
        down.text
    );
    assert!(steps.iter().all(|(_, ok)| *ok), "{}", down.text);
    let ledger = bodies(&down.frames)
        .into_iter()
        .find_map(|b| match b {
            Body::DmaLedger(l) => Some(l.clone()),
            _ => None,
        })
        .expect("dma.ledger frame");
    assert!(ledger.entries.is_empty(), "{ledger:?}");
    assert_eq!((ledger.used_pages, ledger.quarantined_pages), (0, 0));

    // And again: the device came back to a state from which it can be described.
    let again = s.command("gvnic describe", t).unwrap();
    assert!(again.is_ok(), "{}\n{:?}", again.text, again.result);
    assert!(again.text.contains(MAC_TEXT), "{}", again.text);
    let last = s.command("teardown gvnic", t).unwrap();
    assert!(last.is_ok(), "{}\n{:?}", last.text, last.result);
    assert!(s.damaged_frames().is_empty());
    // The human side, for whoever reads the test log (`--nocapture`).
    for outcome in [&describe, &tx, &down] {
        eprintln!("bringup> {}\n{}", outcome.line, outcome.text);
    }
    let model = s
        .close_with_gvnic_state()
        .unwrap()
        .expect("the gVNIC model's final state");
    check_model_after_teardown(&model, revision);

    // The wire, read by tshark: our DISCOVER (type 1) from MAC with good checksums
    // (status 1 = good), then the model's OFFER (type 2), same xid.
    let rows = tshark_dhcp_rows(&pcap);
    let xid = format!("{:#010x}", sent.xid);
    let discover = rows
        .iter()
        .find(|r| r[0] == "1")
        .unwrap_or_else(|| panic!("no DISCOVER in the capture: {rows:?}"));
    assert_eq!(discover[1], MAC_TEXT, "{rows:?}");
    assert_eq!(discover[2], "1", "IPv4 checksum status: {rows:?}");
    assert_eq!(discover[3], "1", "UDP checksum status: {rows:?}");
    assert_eq!(discover[4], xid, "{rows:?}");
    assert!(
        rows.iter().any(|r| r[0] == "2" && r[4] == xid),
        "no OFFER for our xid in the capture: {rows:?}"
    );
}

/// The model's view after the last `teardown gvnic`: what the monitor claimed, seen from the
/// device side.
fn check_model_after_teardown(model: &host_client::gvnic::ModelState, _revision: u8) {
    assert!(
        model.is_reset,
        "the model still holds resources: {model:#?}"
    );
    assert_eq!(model.registered_pages, 0, "{model:#?}");
    assert!(
        model.violations.is_empty(),
        "model violations: {:#?}",
        model.violations
    );
    assert!(
        model
            .admin_commands
            .iter()
            .all(|c| c.status == status::PASSED),
        "an admin command failed: {:#?}",
        model.admin_commands
    );
    // The whole run: bring-up, the first teardown (reverse order), describe, second teardown.
    let opcodes: Vec<u32> = model.admin_commands.iter().map(|c| c.opcode).collect();
    assert_eq!(
        opcodes,
        [
            opcode::DESCRIBE_DEVICE,
            opcode::CONFIGURE_DEVICE_RESOURCES,
            opcode::REGISTER_PAGE_LIST,
            opcode::REGISTER_PAGE_LIST,
            opcode::CREATE_TX_QUEUE,
            opcode::CREATE_RX_QUEUE,
            opcode::DESTROY_RX_QUEUE,
            opcode::DESTROY_TX_QUEUE,
            opcode::UNREGISTER_PAGE_LIST,
            opcode::UNREGISTER_PAGE_LIST,
            opcode::DECONFIGURE_DEVICE_RESOURCES,
            opcode::DESCRIBE_DEVICE,
        ],
        "{model:#?}"
    );
    // The device is reset because the driver reset it (once per teardown, and it completed),
    // not because of a PCI reset from QEMU: those only happen at power-on, before any command.
    // iPXE's reset on every revision (issue 22): PFN = 0.
    let driver_cause = ResetCause::PfnZero;
    let after_boot: Vec<_> = model
        .resets
        .iter()
        .skip_while(|r| r.cause == ResetCause::Pci)
        .collect();
    assert_eq!(after_boot.len(), 2, "{:#?}", model.resets);
    assert!(
        after_boot
            .iter()
            .all(|r| r.cause == driver_cause && r.completed && !r.already_reset),
        "{:#?}",
        model.resets
    );
}

#[test]
fn gvnic_revision_0_in_qemu() {
    run(0);
}

#[test]
fn gvnic_revision_1_in_qemu() {
    run(1);
}
