//! System test: Ctrl-C on the serial line stops `gvnic txdhcp`'s wait for a reply in the real
//! monitor (DQO-RDA, a peer that never answers). The command ends with one `interrupted`
//! error and no rx frame; the NIC stays bound with nothing quarantined; `teardown gvnic`
//! then releases everything with every step ok, and the model confirms it holds nothing.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::time::{Duration, Instant};

use evidence::{Body, Outcome};
use gvnic_model::{Formats, ModelConfig, QueueFormat, Responder};
use host_client::{GvnicOptions, QemuConfig, Session};

#[test]
fn ctrl_c_stops_the_dhcp_wait_and_teardown_still_releases_everything() {
    let cfg = QemuConfig {
        gvnic: Some(GvnicOptions {
            formats: Some(Formats::only(&[QueueFormat::DqoRda])),
            extra: Some(ModelConfig {
                responder: Responder {
                    enabled: false,
                    ..Responder::default()
                },
                ..ModelConfig::default()
            }),
            ..GvnicOptions::default()
        }),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    let t = Duration::from_secs(60);

    let before = s.frames().len();
    let started = Instant::now();
    s.send_raw(b"gvnic txdhcp --timeout 30000\r").unwrap();
    // Wait until the DISCOVER is out (its gvnic.tx frame): the RX wait has begun.
    while !s.frames()[before..]
        .iter()
        .any(|f| matches!(f.body, Body::GvnicTx(_)))
    {
        assert!(started.elapsed() < t, "no DISCOVER:\n{}", s.transcript());
        s.poll_output(Duration::from_millis(50)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    s.interrupt().unwrap();
    let (outcome, monitor_elapsed_us) = loop {
        let result = s.frames()[before..].iter().find_map(|f| match &f.body {
            Body::CommandResult(r) => Some((r.outcome.clone(), r.elapsed_us)),
            _ => None,
        });
        if let Some(result) = result {
            break result;
        }
        assert!(
            started.elapsed() < t,
            "txdhcp never ended:\n{}",
            s.transcript()
        );
        s.poll_output(Duration::from_millis(100)).unwrap();
    };
    match &outcome {
        Outcome::Error { code, .. } => assert_eq!(code, "interrupted", "{outcome:?}"),
        Outcome::Ok => panic!("txdhcp ended ok with no peer and a 30 s wait"),
    }
    // Measured by the monitor's own clock (its command.result), not the host's: a loaded
    // machine may delay the host's view by many seconds, while the guest's wait would have
    // run its whole 30 s without the Ctrl-C.
    assert!(
        monitor_elapsed_us < 30_000_000,
        "the wait ran on after Ctrl-C: {monitor_elapsed_us} us by the monitor's clock"
    );
    assert!(!s.frames()[before..]
        .iter()
        .any(|f| matches!(f.body, Body::GvnicRx(_))));
    s.resync(t).unwrap();

    // Still bound, nothing quarantined.
    let dma = s.command("dma", t).unwrap();
    let ledger = dma
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::DmaLedger(l) => Some(l.clone()),
            _ => None,
        })
        .expect("dma.ledger frame");
    assert!(
        ledger.used_pages > 0,
        "the NIC's memory went away: {}",
        dma.text
    );
    assert_eq!(ledger.quarantined_pages, 0, "{}", dma.text);

    let down = s.command("teardown gvnic", t).unwrap();
    assert!(down.is_ok(), "{}", down.text);
    let steps: Vec<(String, bool)> = down
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::TeardownStep(step) => Some((step.step.clone(), step.ok)),
            _ => None,
        })
        .collect();
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:?}");
    assert!(steps.iter().any(|(s, _)| s == "msix-disable"), "{steps:?}");
    let dma = s.command("dma", t).unwrap();
    let ledger = dma
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::DmaLedger(l) => Some(l.clone()),
            _ => None,
        })
        .expect("dma.ledger frame");
    assert_eq!(
        (ledger.used_pages, ledger.quarantined_pages),
        (0, 0),
        "{}",
        dma.text
    );
    assert!(s.damaged_frames().is_empty() && s.sequence_gaps().is_empty());
    let model = s.close_with_gvnic_state().unwrap().expect("model state");
    assert!(model.is_reset, "{model:#?}");
    assert_eq!(model.registered_pages, 0);
    assert!(model.violations.is_empty(), "{:#?}", model.violations);
}
