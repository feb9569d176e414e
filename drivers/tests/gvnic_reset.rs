//! Issue 22: the gVNIC reset the way iPXE proved it on GCE. PFN reading 0 means the device
//! is reset (never reset it again: that schedules a delayed reset a few seconds later);
//! reset by writing PFN = 0 and polling for it. Every combination of revision, power-on
//! DEVICE_IS_RESET and reset-bit behaviour, with the delayed reset armed: a pristine
//! device is not reset, and no bind ever meets a delayed reset.

mod gvnic_support;

use drivers::gvnic::{State, TeardownStep};
use drivers::net::dhcp;
use gvnic_model::{
    DeviceIsReset, Faults, ModelConfig, ResetCause, REDUNDANT_RESET_DELAY_TICKS, TICK_US,
};
use gvnic_support::{rig, Rig};

/// Lets `us` of simulated time pass (the driver idle, the model running).
fn idle(rig: &Rig, us: u64) {
    use drivers::platform::Clock;
    for _ in 0..us / gvnic_support::US_PER_RELAX {
        rig.clock.relax();
    }
}

/// The delayed reset's delay, and then some.
fn past_delay() -> u64 {
    u64::from(REDUNDANT_RESET_DELAY_TICKS) * TICK_US + 1_000_000
}

fn combinations() -> Vec<ModelConfig> {
    let mut all = Vec::new();
    for revision in [0, 1] {
        for at_power_on in [true, false] {
            for bit in [
                DeviceIsReset::ClearedByRun,
                DeviceIsReset::ClearedByResetRequest,
                DeviceIsReset::NeverCleared,
            ] {
                all.push(ModelConfig {
                    revision,
                    device_is_reset_at_power_on: at_power_on,
                    device_is_reset: bit,
                    faults: Faults {
                        delayed_reset_after_redundant_reset: Some(REDUNDANT_RESET_DELAY_TICKS),
                        ..Faults::default()
                    },
                    ..ModelConfig::default()
                });
            }
        }
    }
    all
}

fn label(c: &ModelConfig) -> String {
    format!(
        "revision {}, DEVICE_IS_RESET at power-on {}, {:?}",
        c.revision, c.device_is_reset_at_power_on, c.device_is_reset
    )
}

/// A DISCOVER out, the OFFER back: the bound NIC works.
fn exchange(rig: &mut Rig, xid: u32, what: &str) {
    let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], xid);
    rig.nic
        .transmit(&rig.clock, &mut rig.pool, &frame)
        .unwrap_or_else(|e| panic!("{what}: transmit: {e}"));
    let offer = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 1_000_000)
        .unwrap_or_else(|e| panic!("{what}: receive: {e}"));
    assert!(dhcp::classify(&offer, xid).is_offer_for(xid), "{what}");
}

fn redundant_resets(rig: &Rig) -> usize {
    let model = rig.model();
    model
        .record()
        .resets
        .iter()
        .filter(|r| r.already_reset)
        .count()
}

fn self_resets(rig: &Rig) -> usize {
    let model = rig.model();
    model
        .record()
        .resets
        .iter()
        .filter(|r| r.cause == ResetCause::Spurious)
        .count()
}

#[test]
fn a_pristine_device_is_not_reset_and_no_bind_meets_a_delayed_reset() {
    for config in combinations() {
        let what = label(&config);
        let mut rig = rig(config);
        rig.bring_up(State::QueuesUp)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(rig.nic.last_attempts, 1, "{what}");
        // A pristine device reads PFN 0: the driver did not reset it at all.
        assert!(
            rig.model().record().resets.is_empty(),
            "{what}: {:?}",
            rig.model().record().resets
        );
        // Seconds later the NIC still works: no delayed reset was ever scheduled.
        idle(&rig, past_delay());
        assert_eq!(self_resets(&rig), 0, "{what}");
        exchange(&mut rig, 7, &what);
        // Teardown resets a device that holds our queues: a real reset, confirmed.
        let (result, steps) = rig.teardown_steps();
        result.unwrap_or_else(|e| panic!("{what}: teardown {e}: {steps:?}"));
        let reset: Vec<&TeardownStep> = steps.iter().filter(|s| s.step == "reset").collect();
        assert!(
            reset.len() == 1 && reset[0].ok && reset[0].detail.contains("confirmed"),
            "{what}: {steps:?}"
        );
        rig.assert_ledger_clean();
        // A second bind right after finds the device reset (PFN 0) and leaves it alone.
        rig.bring_up(State::QueuesUp)
            .unwrap_or_else(|e| panic!("{what}: rebind {e}"));
        assert_eq!(rig.nic.last_attempts, 1, "{what}");
        idle(&rig, past_delay());
        exchange(&mut rig, 8, &what);
        assert_eq!(redundant_resets(&rig), 0, "{what}");
        assert_eq!(self_resets(&rig), 0, "{what}");
        // Every reset the model saw came from the PFN register (iPXE's way, every revision).
        assert!(
            rig.model()
                .record()
                .resets
                .iter()
                .all(|r| r.cause == ResetCause::PfnZero && r.completed),
            "{what}: {:?}",
            rig.model().record().resets
        );
        let (result, _) = rig.teardown_steps();
        result.unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn the_model_schedules_a_delayed_reset_after_a_redundant_one() {
    // The model behaves as iPXE documents: a reset of an already-reset device resets it
    // again a few seconds later (so the test above would catch a driver that does it).
    for revision in [0u8, 1] {
        let config = combinations()
            .into_iter()
            .find(|c| c.revision == revision)
            .unwrap();
        let rig = rig(config);
        {
            let mut model = rig.model_mut();
            let mem = &rig.sim.mem;
            // PFN = 0 on a device that holds nothing: redundant.
            model.bar_write(0, 0x10, 4, 0, mem);
        }
        assert_eq!(redundant_resets(&rig), 1);
        idle(&rig, u64::from(REDUNDANT_RESET_DELAY_TICKS) * TICK_US / 2);
        assert_eq!(self_resets(&rig), 0, "not yet: a few seconds later");
        idle(&rig, past_delay());
        assert_eq!(self_resets(&rig), 1, "revision {revision}");
    }
}

#[test]
fn a_teardown_after_the_device_reset_itself_reports_what_happened() {
    // DESCRIBE, CONFIGURE, 2x REGISTER, 2x CREATE = 6 commands; then the device resets
    // itself (a host reset or live migration) while the queues are up.
    for revision in [0u8, 1] {
        let mut rig = rig(ModelConfig {
            revision,
            faults: Faults {
                spurious_reset_after_commands: Some(6),
                ..Faults::default()
            },
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        idle(&rig, 1_000);
        assert_eq!(self_resets(&rig), 1, "revision {revision}");
        let (result, steps) = rig.teardown_steps();
        // The device let go of everything and our side was released: that is a success,
        // and the report says why no destroy command ran.
        result.unwrap_or_else(|e| panic!("revision {revision}: {e}: {steps:#?}"));
        assert!(
            steps.iter().all(|s| s.ok),
            "revision {revision}: {steps:#?}"
        );
        let first = &steps[0];
        assert_eq!(first.step, "device-reset", "{steps:#?}");
        assert!(
            first.detail.contains("the device reset itself"),
            "{steps:#?}"
        );
        let skipped: Vec<&str> = steps
            .iter()
            .filter(|s| s.detail.starts_with("not needed"))
            .map(|s| s.step)
            .collect();
        assert_eq!(
            skipped,
            [
                "destroy-rx-queue",
                "destroy-tx-queue",
                "unregister-rx-qpl",
                "unregister-tx-qpl",
                "deconfigure"
            ],
            "{steps:#?}"
        );
        let release = steps.iter().find(|s| s.step == "release-dma").unwrap();
        assert!(release.detail.contains("freed"), "{steps:#?}");
        // Nothing was sent to the device after its reset, and it was not reset again.
        assert_eq!(rig.opcodes().len(), 6, "revision {revision}");
        assert_eq!(redundant_resets(&rig), 0);
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}
