//! Issue 11 for the gVNIC driver: a Ctrl-C aborts the wait the user is in and nothing else
//! (reset and release waits run their whole deadline), a quarantine is released once a
//! later reset of the device is confirmed, and a revision-1 device that never clears
//! DEVICE_IS_RESET still works.

mod gvnic_support;

use drivers::gvnic::device::RESET_TIMEOUT_US;
use drivers::gvnic::{GvnicError, QueueFormat, State};
use drivers::net::dhcp;
use gvnic_model::{DeviceIsReset, Faults, Formats, Latencies, ModelConfig};
use gvnic_support::{rig, Rig, OWNER};

fn with(config: ModelConfig) -> Rig {
    rig(config)
}

fn assert_quarantined(rig: &Rig) {
    let ledger = rig.pool.ledger();
    assert!(!ledger.is_empty());
    assert!(
        ledger
            .iter()
            .all(|a| a.owner == OWNER && a.quarantine.is_some()),
        "{ledger:#?}"
    );
}

#[test]
fn ctrl_c_during_an_admin_command_aborts_it_but_not_the_reset_after_it() {
    for revision in [0, 1] {
        let mut rig = with(ModelConfig {
            revision,
            faults: Faults {
                admin_never_completes: true,
                ..Faults::default()
            },
            // A reset that takes a while: the Ctrl-C is still held while we wait for it.
            latencies: Latencies {
                reset_us: 50_000,
                ..Latencies::default()
            },
            ..ModelConfig::default()
        });
        rig.sim.press_ctrl_c(10_000);
        let err = rig.bring_up(State::Described).unwrap_err();
        assert_eq!(err, GvnicError::Interrupted, "revision {revision}");
        // Cut short: far below the 500 ms admin deadline.
        assert!(rig.sim.time_us.get() < 200_000, "{}", rig.sim.time_us.get());
        // The reset after it ran to its confirmation: a healthy device keeps nothing.
        assert_eq!(rig.nic.state(), State::Unbound);
        assert!(rig.model().is_reset());
        rig.assert_ledger_clean();
    }
}

#[test]
fn ctrl_c_during_teardown_does_not_quarantine_a_healthy_nic() {
    for revision in [0, 1] {
        let mut rig = with(ModelConfig {
            revision,
            latencies: Latencies {
                reset_us: 300_000,
                ..Latencies::default()
            },
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        rig.sim.press_ctrl_c(0);
        let (result, steps) = rig.teardown_steps();
        result.unwrap_or_else(|e| panic!("revision {revision}: {e} {steps:?}"));
        assert!(steps.iter().all(|s| s.ok), "{steps:?}");
        assert!(rig.model().is_reset());
        assert_eq!(rig.model().registered_pages(), 0);
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn ctrl_c_does_not_cut_short_the_wait_for_a_reset_that_never_comes() {
    let mut rig = with(ModelConfig {
        faults: Faults {
            reset_never_completes: true,
            ..Faults::default()
        },
        ..ModelConfig::default()
    });
    rig.bring_up(State::QueuesUp).unwrap();
    rig.sim.press_ctrl_c(0);
    let started = rig.sim.time_us.get();
    let (result, _) = rig.teardown_steps();
    assert!(
        matches!(result, Err(GvnicError::ResetTimeout { .. })),
        "{result:?}"
    );
    // The whole deadline was waited for, and only then was the memory quarantined.
    assert!(rig.sim.time_us.get() - started >= RESET_TIMEOUT_US);
    assert_quarantined(&rig);
}

#[test]
fn ctrl_c_aborts_the_tx_and_rx_waits_and_the_nic_stays_usable() {
    for format in [QueueFormat::GqiQpl, QueueFormat::DqoRda] {
        let model_format = match format {
            QueueFormat::GqiQpl => gvnic_model::QueueFormat::GqiQpl,
            _ => gvnic_model::QueueFormat::DqoRda,
        };
        let mut rig = with(ModelConfig {
            formats: Formats::only(&[model_format]),
            latencies: Latencies {
                tx_completion_us: 600_000,
                ..Latencies::default()
            },
            faults: Faults {
                no_rx: true,
                ..Faults::default()
            },
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], 7);
        rig.sim.press_ctrl_c(20_000);
        let started = rig.sim.time_us.get();
        let err = rig
            .nic
            .transmit(&rig.clock, &mut rig.pool, &frame)
            .unwrap_err();
        assert_eq!(err, GvnicError::Interrupted, "{}", format.name());
        assert!(rig.sim.time_us.get() - started < 100_000);
        rig.sim.ctrl_c_from_us.set(None);
        // The frame still completes; the NIC is as it was.
        assert_eq!(rig.nic.state(), State::QueuesUp);

        rig.sim.press_ctrl_c(20_000);
        let started = rig.sim.time_us.get();
        let err = rig
            .nic
            .receive(&rig.clock, &mut rig.pool, 5_000_000)
            .unwrap_err();
        assert_eq!(err, GvnicError::Interrupted);
        assert!(rig.sim.time_us.get() - started < 100_000);
        rig.sim.ctrl_c_from_us.set(None);
        assert_eq!(rig.nic.state(), State::QueuesUp);

        // Ctrl-C held through the whole teardown: it completes, nothing quarantined.
        rig.sim.press_ctrl_c(0);
        let (result, _) = rig.teardown_steps();
        result.unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn a_quarantine_is_released_when_a_later_reset_is_confirmed() {
    // The reset takes 3 s, longer than the 2 s we wait: the first teardown quarantines, and
    // by the next bind the device has finished and reads reset.
    let mut rig = with(ModelConfig {
        latencies: Latencies {
            reset_us: 3_000_000,
            ..Latencies::default()
        },
        ..ModelConfig::default()
    });
    rig.bring_up(State::QueuesUp).unwrap();
    let (result, _) = rig.teardown_steps();
    assert!(matches!(result, Err(GvnicError::ResetTimeout { .. })));
    assert_quarantined(&rig);
    let held = rig.pool.usage().quarantined_pages;
    assert!(held > 0);
    // Time passes (the user types the next command); the device finishes its reset.
    for _ in 0..20_000 {
        use drivers::platform::Clock;
        rig.clock.relax();
    }
    assert!(rig.model().is_reset());
    rig.bring_up(State::Described).unwrap();
    let (allocations, pages) = rig
        .nic
        .take_released_quarantine()
        .expect("the confirmed reset released the quarantine");
    assert!(allocations > 0);
    assert_eq!(pages, held);
    assert_eq!(rig.pool.usage().quarantined_pages, 0);
    assert!(rig.pool.ledger().iter().all(|a| a.quarantine.is_none()));
}

#[test]
fn revision_1_never_relies_on_run_clearing_device_is_reset() {
    // The model's option, and a stricter emulation: the bit never clears at all.
    for sticky in [false, true] {
        let mut rig = with(ModelConfig {
            revision: 1,
            device_is_reset: DeviceIsReset::ClearedByResetRequest,
            ..ModelConfig::default()
        });
        rig.sim.sticky_device_is_reset.set(sticky);
        rig.bring_up(State::QueuesUp)
            .unwrap_or_else(|e| panic!("sticky {sticky}: {e}"));
        assert_eq!(rig.nic.last_attempts, 1);
        let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], 9);
        rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
        let offer = rig
            .nic
            .receive(&rig.clock, &mut rig.pool, 1_000_000)
            .unwrap();
        assert!(dhcp::classify(&offer, 9).is_offer_for(9));
        let (result, steps) = rig.teardown_steps();
        result.unwrap();
        // The reset was requested (never skipped on the word of a stale bit) and confirmed.
        assert!(
            steps
                .iter()
                .any(|s| s.step == "reset" && s.detail.contains("confirmed")),
            "{steps:?}"
        );
        let model = rig.model();
        assert!(model.is_reset());
        assert_eq!(model.registered_pages(), 0);
        assert!(!model.record().resets.is_empty());
        drop(model);
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn a_reset_under_a_revision_1_device_is_still_noticed() {
    for mode in [
        DeviceIsReset::ClearedByRun,
        DeviceIsReset::ClearedByResetRequest,
    ] {
        let mut rig = with(ModelConfig {
            revision: 1,
            device_is_reset: mode,
            // (The model counts packets for this fault on the DQO path.)
            formats: Formats::only(&[gvnic_model::QueueFormat::DqoRda]),
            faults: Faults {
                spurious_reset_after_tx_packets: Some(1),
                ..Faults::default()
            },
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], 9);
        // The device resets right after the packet leaves: its completion never comes,
        // and the wait names the reset instead of timing out blind.
        let err = rig
            .nic
            .transmit(&rig.clock, &mut rig.pool, &frame)
            .unwrap_err();
        assert!(
            matches!(err, GvnicError::DeviceReset { .. }),
            "{mode:?}: {err}"
        );
        // Our side was released with it: nothing left to quarantine, nothing leaked.
        assert_eq!(rig.nic.state(), State::Unbound);
        rig.assert_ledger_clean();
        rig.bring_up(State::QueuesUp).unwrap();
        let (result, _) = rig.teardown_steps();
        result.unwrap();
        rig.assert_ledger_clean();
    }
}
