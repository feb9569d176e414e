//! The driver in every queue format against the model, on both admin-queue revisions (and,
//! on revision 1, both ways a device may clear DEVICE_IS_RESET): bring-up, a DHCP DISCOVER
//! out and the OFFER back, frames spanning several RX buffers, flagged frames dropped, and a
//! teardown in the format's order that leaves the model reset, no pages registered, MSI-X
//! disabled, and no violations.

mod gvnic_support;

use drivers::gvnic::{GvnicError, QueueFormat, State};
use drivers::net::dhcp;
use gvnic_model::{DeviceIsReset, Direction, Faults, Formats, ModelConfig};
use gvnic_support::{rig, Rig};

const ALL: [QueueFormat; 4] = QueueFormat::PREFERENCE;

fn model_format(format: QueueFormat) -> gvnic_model::QueueFormat {
    match format {
        QueueFormat::GqiQpl => gvnic_model::QueueFormat::GqiQpl,
        QueueFormat::GqiRda => gvnic_model::QueueFormat::GqiRda,
        QueueFormat::DqoRda => gvnic_model::QueueFormat::DqoRda,
        QueueFormat::DqoQpl => gvnic_model::QueueFormat::DqoQpl,
    }
}

fn only(format: QueueFormat, revision: u8, mode: DeviceIsReset, faults: Faults) -> Rig {
    rig(ModelConfig {
        revision,
        mtu: 9000,
        formats: Formats::only(&[model_format(format)]),
        device_is_reset: mode,
        faults,
        ..ModelConfig::default()
    })
}

/// Every (revision, DEVICE_IS_RESET behaviour) the driver must work with.
const DEVICES: [(u8, DeviceIsReset); 3] = [
    (0, DeviceIsReset::ClearedByRun),
    (1, DeviceIsReset::ClearedByRun),
    (1, DeviceIsReset::ClearedByResetRequest),
];

fn step_names(steps: &[drivers::gvnic::TeardownStep]) -> Vec<&'static str> {
    steps.iter().map(|s| s.step).collect()
}

fn expected_steps(format: QueueFormat) -> Vec<&'static str> {
    let mut names = Vec::new();
    let dqo = matches!(format, QueueFormat::DqoRda | QueueFormat::DqoQpl);
    if dqo {
        names.push("msix-mask");
    }
    names.extend(["destroy-rx-queue", "destroy-tx-queue"]);
    if matches!(format, QueueFormat::GqiQpl | QueueFormat::DqoQpl) {
        names.extend(["unregister-rx-qpl", "unregister-tx-qpl"]);
    }
    names.push("deconfigure");
    if dqo {
        names.push("msix-disable");
    }
    names.extend(["reset", "release-dma"]);
    names
}

fn full_cycle(format: QueueFormat, revision: u8, mode: DeviceIsReset) {
    let label = format!("{} rev {revision} {mode:?}", format.name());
    let mut rig = only(format, revision, mode, Faults::default());
    rig.bring_up(State::QueuesUp)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(rig.nic.format(), Some(format), "{label}");
    let dqo = matches!(format, QueueFormat::DqoRda | QueueFormat::DqoQpl);
    assert_eq!(rig.msix_enabled(), dqo, "{label}: MSI-X only for DQO");
    let report = rig.nic.msix_report(&rig.pci).unwrap();
    // DQO: TX and RX vectors unmasked, the management vector never.
    assert_eq!(report.unmasked, if dqo { 2 } else { 0 }, "{label}");

    // DISCOVER out, OFFER back.
    let mac = rig.nic.info().unwrap().descriptor.mac;
    let xid = 0x1234_5678;
    let discover = dhcp::discover_frame(mac, xid);
    rig.nic
        .transmit(&rig.clock, &mut rig.pool, &discover)
        .unwrap_or_else(|e| panic!("{label}: TX {e}"));
    let offer = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 2_000_000)
        .unwrap_or_else(|e| panic!("{label}: RX {e}"));
    assert!(dhcp::classify(&offer, xid).is_offer_for(xid), "{label}");
    {
        let model = rig.model();
        let sent: Vec<_> = model
            .wire()
            .iter()
            .filter(|f| f.direction == Direction::Tx)
            .collect();
        assert_eq!(sent.len(), 1, "{label}");
        assert_eq!(&sent[0].bytes[..discover.len()], &discover[..], "{label}");
    }

    // Frames over several buffers (3 and 5 of 2 KiB) and a small one, back in order.
    let damaged = vec![0xee; 5000];
    let jumbo: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
    let small: Vec<u8> = (0..64u8).collect();
    rig.model_mut().inject_rx(&damaged);
    rig.model_mut().inject_rx(&jumbo);
    rig.model_mut().inject_rx(&small);
    let first = rig.nic.receive(&rig.clock, &mut rig.pool, 2_000_000);
    let first = first.unwrap_or_else(|e| panic!("{label}: jumbo {e}"));
    assert_eq!(first, damaged, "{label}");
    let second = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 2_000_000)
        .unwrap();
    assert!(second == jumbo, "{label}: joined frame differs");
    let third = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 2_000_000)
        .unwrap();
    assert_eq!(third, small, "{label}");

    let (result, steps) = rig.teardown_steps();
    result.unwrap_or_else(|e| panic!("{label}: teardown {e}"));
    assert_eq!(step_names(&steps), expected_steps(format), "{label}");
    assert!(steps.iter().all(|s| s.ok), "{label}: {steps:?}");
    {
        let model = rig.model();
        assert!(model.is_reset(), "{label}");
        assert_eq!(model.registered_pages(), 0, "{label}");
    }
    assert!(!rig.msix_enabled(), "{label}: MSI-X disabled again");
    assert_eq!(rig.nic.msix_report(&rig.pci).unwrap().unmasked, 0);
    rig.assert_ledger_clean();
    rig.assert_no_violations();
}

#[test]
fn every_format_on_every_revision_brings_up_sends_receives_and_tears_down() {
    for format in ALL {
        for (revision, mode) in DEVICES {
            full_cycle(format, revision, mode);
        }
    }
}

#[test]
fn flagged_frames_are_dropped_and_counted_in_every_format() {
    for format in ALL {
        let mut rig = only(
            format,
            0,
            DeviceIsReset::ClearedByRun,
            Faults {
                rx_error_frames: 2,
                ..Faults::default()
            },
        );
        rig.bring_up(State::QueuesUp).unwrap();
        let bad = vec![0xaa; 3000];
        let good: Vec<u8> = (0..200u8).collect();
        rig.model_mut().inject_rx(&bad);
        rig.model_mut().inject_rx(&bad[..100]);
        rig.model_mut().inject_rx(&good);
        let got = rig
            .nic
            .receive(&rig.clock, &mut rig.pool, 2_000_000)
            .unwrap();
        assert_eq!(got, good, "{}", format.name());
        assert_eq!(rig.nic.rx_dropped(), 2, "{}", format.name());
        let (result, _) = rig.teardown_steps();
        result.unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn the_default_order_is_gqi_qpl_gqi_rda_dqo_qpl_dqo_rda() {
    use gvnic_model::QueueFormat as M;
    let cases: [(&[M], QueueFormat); 5] = [
        (
            &[M::DqoRda, M::DqoQpl, M::GqiRda, M::GqiQpl],
            QueueFormat::GqiQpl,
        ),
        (&[M::DqoRda, M::DqoQpl, M::GqiRda], QueueFormat::GqiRda),
        (&[M::DqoRda, M::DqoQpl], QueueFormat::DqoQpl),
        (&[M::DqoRda], QueueFormat::DqoRda),
        (&[], QueueFormat::GqiQpl),
    ];
    for (offered, want) in cases {
        let formats = if offered.is_empty() {
            Formats::none()
        } else {
            Formats::only(offered)
        };
        let mut rig = rig(ModelConfig {
            formats,
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        assert_eq!(rig.nic.format(), Some(want), "{offered:?}");
        let (result, _) = rig.teardown_steps();
        result.unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn format_override_picks_an_offered_format_and_names_the_offered_ones_otherwise() {
    let mut rig = rig(ModelConfig {
        formats: Formats::only(&[
            gvnic_model::QueueFormat::GqiQpl,
            gvnic_model::QueueFormat::DqoRda,
        ]),
        ..ModelConfig::default()
    });
    rig.nic.want_format(Some(QueueFormat::DqoQpl)).unwrap();
    let err = rig.bring_up(State::QueuesUp).unwrap_err();
    assert_eq!(
        err,
        GvnicError::FormatNotOffered {
            wanted: "dqo-qpl",
            offered: vec!["gqi-qpl", "dqo-rda"],
        }
    );
    // Nothing beyond DESCRIBE happened; the NIC is still usable with an offered format.
    assert_eq!(rig.opcodes(), [0x1]);
    rig.nic.want_format(Some(QueueFormat::DqoRda)).unwrap();
    rig.bring_up(State::QueuesUp).unwrap();
    assert_eq!(rig.nic.format(), Some(QueueFormat::DqoRda));
    // Another format while the queues run in this one: refused by name.
    let err = rig.nic.want_format(Some(QueueFormat::GqiQpl)).unwrap_err();
    assert_eq!(err.code(), "gvnic-format-in-use");
    let (result, _) = rig.teardown_steps();
    result.unwrap();
    rig.assert_ledger_clean();
    rig.assert_no_violations();
}
