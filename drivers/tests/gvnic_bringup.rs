//! Bring-up and teardown against the gVNIC model: both admin-queue revisions, the
//! format choice, and the ledger/model state afterwards.

mod gvnic_support;

use drivers::gvnic::{GvnicError, QueueFormat, State, TeardownStep};
use gvnic_model::{Formats, ModelConfig, ResetCause};
use gvnic_support::{rig, Rig};

/// Opcodes of a full bring-up, in the order the reference gives.
const BRING_UP: [u32; 6] = [0x1, 0x2, 0x3, 0x3, 0x5, 0x6];
const TEARDOWN: [u32; 5] = [0x8, 0x7, 0x4, 0x4, 0x9];
const IRQ_MASK: u32 = 1 << 30;

fn teardown(rig: &mut Rig) -> (Result<(), GvnicError>, Vec<TeardownStep>) {
    let mut steps = Vec::new();
    let result = rig
        .nic
        .teardown(&rig.pci, &rig.clock, &mut rig.pool, &mut |step| {
            steps.push(step)
        });
    (result, steps)
}

fn full_cycle(revision: u8) {
    let mut rig = rig(ModelConfig {
        revision,
        ..ModelConfig::default()
    });
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .expect("bring-up");
    assert_eq!(rig.nic.state(), State::QueuesUp);
    assert_eq!(rig.nic.last_attempts, 1);
    assert_eq!(rig.opcodes(), BRING_UP);
    {
        let model = rig.model();
        let record = model.record();
        assert!(record.commands.iter().all(|c| c.status == 1), "{record:?}");
        // A fresh device reads reset: the driver must not reset it again.
        assert!(record.resets.is_empty(), "{:?}", record.resets);
        // 4 TX pages + 32 RX pages (64 RX buffers of 2 KiB).
        assert_eq!(model.registered_pages(), 36);
        // Both notification blocks masked.
        assert_eq!(record.irq_doorbells.len(), 2, "{:?}", record.irq_doorbells);
        assert!(record.irq_doorbells.iter().all(|(_, v)| *v == IRQ_MASK));
    }
    let info = rig.nic.info().unwrap();
    assert_eq!(info.revision, revision);
    assert_eq!(info.descriptor.mac, [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02]);
    assert_eq!(info.descriptor.mtu, 1460);
    assert_eq!(info.descriptor.counters, 32);
    assert_eq!(info.max_tx_queues, 4);
    assert_eq!(info.format, Ok(QueueFormat::GqiQpl));
    assert_eq!(info.descriptor.options[0].name(), "GQI_QPL");

    let (result, steps) = teardown(&mut rig);
    result.expect("teardown");
    let names: Vec<&str> = steps.iter().map(|s| s.step).collect();
    assert_eq!(
        names,
        [
            "destroy-rx-queue",
            "destroy-tx-queue",
            "unregister-rx-qpl",
            "unregister-tx-qpl",
            "deconfigure",
            "reset",
            "release-dma"
        ]
    );
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert_eq!(rig.opcodes()[6..], TEARDOWN);
    {
        let model = rig.model();
        assert!(model.is_reset());
        assert_eq!(model.registered_pages(), 0);
        // iPXE's reset on every revision (issue 22): PFN = 0, never DRIVER_STATUS.
        assert_eq!(model.record().resets.len(), 1, "revision {revision}");
        assert_eq!(model.record().resets[0].cause, ResetCause::PfnZero);
    }
    rig.assert_ledger_clean();
    rig.assert_no_violations();
    assert_eq!(rig.nic.state(), State::TornDown { quarantined: false });

    // And up again: the device reads reset, so no redundant reset is issued.
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::Described)
        .expect("describe after teardown");
    assert_eq!(rig.model().record().resets.len(), 1);
    let (result, _) = teardown(&mut rig);
    result.unwrap();
    rig.assert_ledger_clean();
    rig.assert_no_violations();
}

#[test]
fn revision_0_uses_the_pfn_register() {
    full_cycle(0);
}

#[test]
fn revision_1_uses_base_length_and_run() {
    full_cycle(1);
}

#[test]
fn a_format_the_device_does_not_offer_is_refused_with_the_offered_formats() {
    let mut rig = rig(ModelConfig {
        formats: Formats::dqo_only(),
        ..ModelConfig::default()
    });
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::Described)
        .expect("describe works on any device");
    let info = rig.nic.info().unwrap();
    let names: Vec<String> = info.descriptor.options.iter().map(|o| o.name()).collect();
    assert!(names.contains(&"DQO_RDA".to_string()), "{names:?}");
    // Without --format a DQO-only device gets DQO-RDA; --format gqi-qpl is refused by name.
    assert_eq!(info.format, Ok(QueueFormat::DqoRda));
    rig.nic.want_format(Some(QueueFormat::GqiQpl)).unwrap();
    let err = rig
        .nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-format-not-offered");
    assert_eq!(
        err.to_string(),
        "the device does not offer queue format gqi-qpl; it offers dqo-rda"
    );
    // Nothing was configured: only DESCRIBE ran.
    assert_eq!(rig.opcodes(), [0x1]);
    let (result, steps) = teardown(&mut rig);
    result.unwrap();
    assert_eq!(steps[0].step, "reset");
    rig.assert_ledger_clean();
    assert!(rig.model().is_reset());
}

#[test]
fn device_without_format_options_gets_gqi_qpl() {
    let mut rig = rig(ModelConfig {
        formats: Formats {
            none: true,
            ..Formats::default()
        },
        ..ModelConfig::default()
    });
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .expect("bring-up without format options");
    assert_eq!(rig.nic.info().unwrap().format, Ok(QueueFormat::GqiQpl));
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
    rig.assert_no_violations();
}

#[test]
fn teardown_of_an_unbound_nic_does_nothing() {
    let mut rig = rig(ModelConfig::default());
    let (result, steps) = teardown(&mut rig);
    result.unwrap();
    assert!(steps.is_empty());
    assert!(rig.model().record().resets.is_empty());
}

#[test]
fn small_page_budget_is_a_clear_error() {
    let mut rig = rig(ModelConfig {
        max_registered_pages: 16,
        ..ModelConfig::default()
    });
    let err = rig
        .nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap_err();
    assert_eq!(
        err,
        GvnicError::PageBudget {
            wanted: 36,
            max: 16
        }
    );
    teardown(&mut rig).0.unwrap();
    rig.assert_ledger_clean();
}
