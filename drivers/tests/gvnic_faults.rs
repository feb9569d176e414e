//! Every fault the gVNIC model can inject gives a named error, no success, and leaves the
//! DMA ledger clean (the device confirmed its reset) or quarantined (it did not).

mod gvnic_support;

use drivers::gvnic::{GvnicError, Opcode, State, TeardownStep};
use drivers::net::dhcp;
use gvnic_model::{Faults, ModelConfig, ResetCause};
use gvnic_support::{rig, Rig, OWNER};

const INTERNAL_ERROR: u32 = 0xFFFF_FFF6;

fn with_faults(revision: u8, faults: Faults) -> Rig {
    rig(ModelConfig {
        revision,
        faults,
        ..ModelConfig::default()
    })
}

fn teardown(rig: &mut Rig) -> (Result<(), GvnicError>, Vec<TeardownStep>) {
    let mut steps = Vec::new();
    let result = rig
        .nic
        .teardown(&rig.pci, &rig.clock, &mut rig.pool, &mut |step| {
            steps.push(step)
        });
    (result, steps)
}

fn assert_all_quarantined(rig: &Rig) {
    let ledger = rig.pool.ledger();
    assert!(!ledger.is_empty());
    assert!(
        ledger
            .iter()
            .all(|a| a.owner == OWNER && a.quarantine.is_some()),
        "{ledger:#?}"
    );
    assert_eq!(rig.pool.usage().used_pages, 0);
}

#[test]
fn an_error_status_on_any_bring_up_command_is_named_and_released() {
    let opcodes = [
        Opcode::DescribeDevice,
        Opcode::ConfigureDeviceResources,
        Opcode::RegisterPageList,
        Opcode::CreateTxQueue,
        Opcode::CreateRxQueue,
    ];
    for revision in [0, 1] {
        for opcode in opcodes {
            let mut rig = with_faults(
                revision,
                Faults {
                    status_for_opcode: Some((opcode as u32, INTERNAL_ERROR)),
                    ..Faults::default()
                },
            );
            let err = rig
                .nic
                .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
                .unwrap_err();
            assert_eq!(
                err,
                GvnicError::AdminStatus {
                    opcode,
                    status: INTERNAL_ERROR
                },
                "revision {revision}"
            );
            assert_eq!(err.code(), "gvnic-admin-status");
            assert!(err.to_string().contains("INTERNAL_ERROR"), "{err}");
            // The device was reset (it confirmed) and every page is back in the pool.
            assert_eq!(rig.nic.state(), State::Unbound);
            assert!(rig.model().is_reset(), "{opcode:?}");
            rig.assert_ledger_clean();
            rig.assert_no_violations();
            // No retry for a device that answered: one attempt.
            assert_eq!(rig.nic.last_attempts, 1);
        }
    }
}

#[test]
fn an_error_status_during_teardown_is_reported_but_the_reset_still_releases() {
    for opcode in [
        Opcode::DestroyRxQueue,
        Opcode::DestroyTxQueue,
        Opcode::UnregisterPageList,
        Opcode::DeconfigureDeviceResources,
    ] {
        let mut rig = with_faults(
            0,
            Faults {
                status_for_opcode: Some((opcode as u32, INTERNAL_ERROR)),
                ..Faults::default()
            },
        );
        rig.nic
            .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
            .unwrap();
        let (result, steps) = teardown(&mut rig);
        let err = result.unwrap_err();
        assert_eq!(err.code(), "gvnic-admin-status", "{opcode:?}");
        assert!(steps.iter().any(|s| !s.ok));
        let reset = steps.iter().find(|s| s.step == "reset").unwrap();
        assert!(reset.ok);
        assert!(rig.model().is_reset());
        assert_eq!(rig.model().registered_pages(), 0);
        rig.assert_ledger_clean();
    }
}

#[test]
fn admin_queue_that_never_completes_times_out_and_is_reset() {
    for revision in [0, 1] {
        let mut rig = with_faults(
            revision,
            Faults {
                admin_never_completes: true,
                ..Faults::default()
            },
        );
        let err = rig
            .nic
            .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::Described)
            .unwrap_err();
        assert_eq!(
            err,
            GvnicError::AdminTimeout {
                opcode: Opcode::DescribeDevice
            }
        );
        assert_eq!(err.code(), "gvnic-admin-timeout");
        // The deadline is 500 ms of (simulated) time, not more.
        let elapsed = rig.sim.time_us.get();
        assert!((500_000..600_000).contains(&elapsed), "{elapsed}");
        assert!(rig.model().is_reset());
        rig.assert_ledger_clean();
    }
}

#[test]
fn a_reset_that_never_completes_quarantines_every_page() {
    for revision in [0, 1] {
        let mut rig = with_faults(
            revision,
            Faults {
                reset_never_completes: true,
                ..Faults::default()
            },
        );
        // A fresh device reads reset, so bring-up needs no reset and works.
        rig.nic
            .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
            .unwrap();
        let (result, steps) = teardown(&mut rig);
        let err = result.unwrap_err();
        assert_eq!(err.code(), "gvnic-reset-timeout");
        let GvnicError::ResetTimeout { quarantined } = err else {
            unreachable!()
        };
        assert_eq!(quarantined, rig.pool.ledger().len());
        let last: Vec<(&str, bool)> = steps.iter().rev().take(2).map(|s| (s.step, s.ok)).collect();
        assert_eq!(last, [("release-dma", false), ("reset", false)]);
        assert_all_quarantined(&rig);
        assert_eq!(rig.nic.state(), State::TornDown { quarantined: true });
        // Nothing further is freed, and a second teardown says the same thing.
        let (again, _) = teardown(&mut rig);
        assert_eq!(again.unwrap_err().code(), "gvnic-reset-timeout");
        assert_all_quarantined(&rig);
    }
}

#[test]
fn an_admin_timeout_with_a_stuck_reset_quarantines() {
    let mut rig = with_faults(
        0,
        Faults {
            admin_never_completes: true,
            reset_never_completes: true,
            ..Faults::default()
        },
    );
    let err = rig
        .nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::Described)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-reset-timeout");
    // The admin queue page and the descriptor buffer the device may still write.
    assert_eq!(rig.pool.ledger().len(), 2);
    assert_all_quarantined(&rig);
}

#[test]
fn a_spurious_reset_during_bring_up_is_survived() {
    for revision in [0, 1] {
        for after in 1..=5 {
            let mut rig = with_faults(
                revision,
                Faults {
                    spurious_reset_after_commands: Some(after),
                    ..Faults::default()
                },
            );
            rig.nic
                .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
                .unwrap_or_else(|e| panic!("revision {revision}, reset after {after}: {e}"));
            assert_eq!(rig.nic.last_attempts, 2);
            {
                let model = rig.model();
                let resets = &model.record().resets;
                assert!(resets.iter().any(|r| r.cause == ResetCause::Spurious));
                // The device read reset after the spurious reset: not reset again.
                assert!(resets.iter().all(|r| !r.already_reset), "{resets:?}");
            }
            // It works: a frame goes out.
            let frame = dhcp::discover_frame([2, 0, 0, 0, 0, 1], 1);
            rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
            teardown(&mut rig).0.unwrap();
            rig.assert_ledger_clean();
        }
    }
}

#[test]
fn a_spurious_reset_after_bring_up_is_noticed_by_tx() {
    // DESCRIBE, CONFIGURE, 2x REGISTER, 2x CREATE = 6 commands; then the device resets.
    let mut rig = with_faults(
        1,
        Faults {
            spurious_reset_after_commands: Some(6),
            ..Faults::default()
        },
    );
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    // The reset fires on the model's next tick.
    use drivers::platform::Clock;
    rig.clock.relax();
    let frame = dhcp::discover_frame([2, 0, 0, 0, 0, 1], 1);
    let err = rig
        .nic
        .transmit(&rig.clock, &mut rig.pool, &frame)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-device-reset");
    // Recovery: bring up again (the device already reads reset: no redundant reset).
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
    assert!(rig.model().record().resets.iter().all(|r| !r.already_reset));
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
}

#[test]
fn the_driver_never_resets_an_already_reset_device() {
    // iPXE: a redundant reset schedules a delayed one on GCE. With the model's version of
    // that quirk armed, a full cycle twice must see no delayed reset at all.
    let mut rig = with_faults(
        0,
        Faults {
            delayed_reset_after_redundant_reset: Some(10),
            ..Faults::default()
        },
    );
    for _ in 0..2 {
        rig.nic
            .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
            .unwrap();
        teardown(&mut rig).0.unwrap();
    }
    let model = rig.model();
    assert!(model.record().resets.iter().all(|r| !r.already_reset));
    assert!(model
        .record()
        .resets
        .iter()
        .all(|r| r.cause != ResetCause::Spurious));
}

#[test]
fn a_late_tx_completion_is_waited_for_and_a_missing_one_times_out() {
    let frame = dhcp::discover_frame([2, 0, 0, 0, 0, 1], 9);
    // 50 ticks = 5 ms of simulated time: well inside the 1 s deadline.
    let mut rig = with_faults(
        0,
        Faults {
            tx_completion_delay_ticks: 50,
            ..Faults::default()
        },
    );
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    let done = rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
    assert!(done.elapsed_us >= 5_000, "{done:?}");

    // 20000 ticks = 2 s: past the deadline.
    let mut rig = with_faults(
        0,
        Faults {
            tx_completion_delay_ticks: 20_000,
            ..Faults::default()
        },
    );
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    let err = rig
        .nic
        .transmit(&rig.clock, &mut rig.pool, &frame)
        .unwrap_err();
    assert_eq!(
        err,
        GvnicError::TxTimeout {
            posted: 1,
            completed: 0
        }
    );
    // The frame is still in flight: a second send is refused, not piled on.
    let err = rig
        .nic
        .transmit(&rig.clock, &mut rig.pool, &frame)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-tx-busy");
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
}

#[test]
fn no_rx_gives_a_named_timeout() {
    let mut rig = with_faults(
        0,
        Faults {
            no_rx: true,
            ..Faults::default()
        },
    );
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], 5);
    rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
    let err = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 300_000)
        .unwrap_err();
    assert_eq!(err, GvnicError::RxTimeout);
    assert_eq!(err.code(), "gvnic-rx-timeout");
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
}

#[test]
fn commands_in_the_wrong_state_are_refused() {
    let mut rig = with_faults(0, Faults::default());
    let err = rig
        .nic
        .transmit(&rig.clock, &mut rig.pool, &[0u8; 60])
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-wrong-state");
    let err = rig.nic.receive(&rig.clock, &mut rig.pool, 10).unwrap_err();
    assert_eq!(err.code(), "gvnic-wrong-state");
    assert!(rig.pool.ledger().is_empty());
}

#[test]
fn frames_the_device_flags_with_err_are_dropped_and_counted() {
    let mut rig = with_faults(
        0,
        Faults {
            rx_error_frames: 2,
            ..Faults::default()
        },
    );
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    let damaged = [0xeeu8; 60];
    let good: Vec<u8> = (0..60u8).collect();
    rig.model_mut().inject_rx(&damaged);
    rig.model_mut().inject_rx(&damaged);
    rig.model_mut().inject_rx(&good);
    // The two ERR frames are passed over: the first frame handed up is the good one.
    let frame = rig.nic.receive(&rig.clock, &mut rig.pool, 300_000).unwrap();
    assert_eq!(frame, good);
    assert_eq!(rig.nic.rx_dropped(), 2);
    // Nothing else is pending: the dropped frames were not queued behind the good one.
    let err = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 50_000)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-rx-timeout");
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
    rig.assert_no_violations();
}
