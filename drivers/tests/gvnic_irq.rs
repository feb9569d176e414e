//! Issue 20 items 5: `irq test` on a gVNIC, against the in-process model. The model's MSI-X
//! messages stand in for the local APIC: an interrupt "reaches the CPU" when the model
//! writes the armed message (address and data). A second APIC that never sees anything is
//! QEMU 7.2's proxy, which has no interrupt path.

mod gvnic_support;

use std::cell::Cell;
use std::rc::Rc;

use drivers::gvnic::irq_test::IrqTestError;
use drivers::gvnic::{QueueFormat, State};
use drivers::net::dhcp;
use drivers::pci::msix::MsixCap;
use drivers::pci::regs::COMMAND;
use drivers::platform::{ConfigSpace, Delivery, Interrupts, IrqError, MsiMessage};
use gvnic_model::{Formats, ModelConfig, TICK_US};
use gvnic_support::{rig, Rig, Sim, BDF};

/// The boot CPU's local APIC as the model's message record shows it.
struct ModelApic {
    sim: Rc<Sim>,
    /// False: a machine whose interrupts never arrive (QEMU 7.2's proxy).
    delivers: bool,
    since: Cell<usize>,
    /// Simulated clock minus model time at `arm` (the model's ticks started later).
    offset_us: Cell<u64>,
}

const APIC_MESSAGE: MsiMessage = MsiMessage {
    address: 0xfee0_0000,
    data: 0x41,
};

impl Interrupts for ModelApic {
    fn arm(&self) -> Result<(MsiMessage, u8), IrqError> {
        let model = self.sim.model.borrow();
        self.since.set(model.record().interrupts.len());
        self.offset_us
            .set(self.sim.time_us.get().saturating_sub(model.now_us()));
        Ok((APIC_MESSAGE, 0x41))
    }
    fn delivery(&self) -> Delivery {
        if !self.delivers {
            return Delivery::default();
        }
        let model = self.sim.model.borrow();
        let all = &model.record().interrupts[self.since.get()..];
        let ours: Vec<_> = all
            .iter()
            .filter(|r| r.address == APIC_MESSAGE.address && r.data == APIC_MESSAGE.data)
            .collect();
        Delivery {
            count: ours.len() as u32,
            first_us: ours
                .first()
                .map_or(0, |r| r.tick * TICK_US + self.offset_us.get()),
            // Dummy-target writes (DQO's other queue) are RAM writes, not interrupts.
            other: all
                .iter()
                .filter(|r| r.address != APIC_MESSAGE.address && !r.written_to_ram)
                .count() as u32,
        }
    }
    fn disarm(&self) {}
}

fn apic(rig: &Rig, delivers: bool) -> ModelApic {
    ModelApic {
        sim: rig.sim.clone(),
        delivers,
        since: Cell::new(0),
        offset_us: Cell::new(0),
    }
}

/// The MSI-X table, control word and command register, as config space and BAR1 read.
fn snapshot(rig: &Rig) -> (Vec<Option<drivers::pci::msix::MsixEntry>>, u16, u16) {
    let cap = MsixCap::find(&rig.pci, BDF).unwrap();
    let entries = {
        let model = rig.sim.clone();
        (0..cap.table_size)
            .map(|v| {
                let base = u64::from(cap.table_offset) + u64::from(v) * 16;
                let mut m = model.model.borrow_mut();
                let word = |m: &mut gvnic_model::Gvnic, off: u64| {
                    m.bar_read(cap.table_bar, base + off, 4, &model.mem) as u32
                };
                Some(drivers::pci::msix::MsixEntry {
                    message: MsiMessage {
                        address: u64::from(word(&mut m, 4)) << 32 | u64::from(word(&mut m, 0)),
                        data: word(&mut m, 8),
                    },
                    vector_control: word(&mut m, 12),
                })
            })
            .collect()
    };
    (
        entries,
        cap.control(&rig.pci, BDF),
        rig.pci.read16(BDF, COMMAND),
    )
}

fn exchange(rig: &mut Rig, xid: u32) {
    let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], xid);
    rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
    let offer = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 1_000_000)
        .unwrap();
    assert!(dhcp::classify(&offer, xid).is_offer_for(xid));
}

#[test]
fn the_rx_blocks_vector_reaches_the_cpu_in_every_format_and_everything_is_restored() {
    for format in [
        gvnic_model::QueueFormat::GqiQpl,
        gvnic_model::QueueFormat::GqiRda,
        gvnic_model::QueueFormat::DqoRda,
        gvnic_model::QueueFormat::DqoQpl,
    ] {
        for revision in [0u8, 1] {
            let what = format!("{format} revision {revision}");
            let mut rig = rig(ModelConfig {
                revision,
                formats: Formats::only(&[format]),
                ..ModelConfig::default()
            });
            rig.bring_up(State::QueuesUp).unwrap();
            exchange(&mut rig, 1);
            let before = snapshot(&rig);
            let apic = apic(&rig, true);
            let report = rig
                .nic
                .irq_test(&rig.pci, &rig.clock, &mut rig.pool, &apic)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(report.vector, 0x41);
            assert_eq!(report.rx.entry, 1, "{what}: RX is notification block 1");
            assert_eq!(report.rx.delivery.count, 1, "{what}: {report:?}");
            assert!(report.rx.latency_us > 0, "{what}: {report:?}");
            assert_eq!(report.rx.delivery.other, 0, "{what}");
            // The model raises the management vector only for a status change: none here.
            assert_eq!(report.management.entry, 2);
            assert_eq!(report.management.delivery.count, 0, "{what}");
            // Every entry, the control word and the command register as before.
            assert_eq!(snapshot(&rig), before, "{what}");
            // The NIC still works by polling, and tears down cleanly.
            assert_eq!(rig.nic.format().map(QueueFormat::name), Some(format.name()));
            exchange(&mut rig, 2);
            let (result, steps) = rig.teardown_steps();
            result.unwrap_or_else(|e| panic!("{what}: {e} {steps:?}"));
            rig.assert_ledger_clean();
            rig.assert_no_violations();
        }
    }
}

#[test]
fn a_machine_without_an_interrupt_path_is_named_never_passed() {
    for format in [
        gvnic_model::QueueFormat::GqiQpl,
        gvnic_model::QueueFormat::DqoRda,
    ] {
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let before = snapshot(&rig);
        let apic = apic(&rig, false);
        let err = rig
            .nic
            .irq_test(&rig.pci, &rig.clock, &mut rig.pool, &apic)
            .unwrap_err();
        assert!(
            matches!(err, IrqTestError::NotDelivered { entry: 1, .. }),
            "{format}: {err}"
        );
        assert_eq!(err.code(), "irq-not-delivered");
        assert!(
            err.to_string()
                .contains("does not deliver device interrupts"),
            "{err}"
        );
        // The model did send the message: only the platform dropped it.
        assert!(rig
            .model()
            .record()
            .interrupts
            .iter()
            .any(|r| r.address == APIC_MESSAGE.address));
        assert_eq!(snapshot(&rig), before, "{format}");
        exchange(&mut rig, 3);
        rig.teardown_steps().0.unwrap();
        rig.assert_ledger_clean();
    }
}

#[test]
fn irq_test_needs_the_queues_up() {
    let mut rig = rig(ModelConfig::default());
    rig.bring_up(State::Described).unwrap();
    let apic = apic(&rig, true);
    let err = rig
        .nic
        .irq_test(&rig.pci, &rig.clock, &mut rig.pool, &apic)
        .unwrap_err();
    assert_eq!(err.code(), "gvnic-wrong-state");
}

/// One DISCOVER out and its OFFER back, by interrupt when `apic` is given.
fn exchange_with(rig: &mut Rig, xid: u32, apic: Option<&ModelApic>) -> Result<Vec<u8>, String> {
    let irq = apic.map(|a| a as &dyn Interrupts);
    let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], xid);
    rig.nic
        .transmit_with(&rig.clock, &mut rig.pool, &frame, irq)
        .map_err(|e| format!("{}: {e}", e.code()))?;
    rig.nic
        .receive_with(&rig.clock, &mut rig.pool, 1_000_000, irq)
        .map_err(|e| format!("{}: {e}", e.code()))
}

const ALL_FORMATS: [gvnic_model::QueueFormat; 4] = [
    gvnic_model::QueueFormat::GqiQpl,
    gvnic_model::QueueFormat::GqiRda,
    gvnic_model::QueueFormat::DqoRda,
    gvnic_model::QueueFormat::DqoQpl,
];

#[test]
fn irq_waits_get_the_frames_polling_gets_in_every_format_and_restore_everything() {
    for format in ALL_FORMATS {
        let config = || ModelConfig {
            formats: Formats::only(&[format]),
            ..ModelConfig::default()
        };
        // The same exchange by polling, on an identical model: the oracle.
        let mut polled = rig(config());
        polled.bring_up(State::QueuesUp).unwrap();
        let by_polling = exchange_with(&mut polled, 7, None).unwrap();

        let mut rig = rig(config());
        rig.bring_up(State::QueuesUp).unwrap();
        let before = snapshot(&rig);
        let apic = apic(&rig, true);
        let (vector, message) = rig.nic.begin_irq_waits(&rig.pci, &apic).unwrap();
        assert!(rig.nic.irq_waits());
        let by_irq =
            exchange_with(&mut rig, 7, Some(&apic)).unwrap_or_else(|e| panic!("{format}: {e}"));
        let during = apic.delivery();
        let report = rig
            .nic
            .end_irq_waits(&rig.pci, &apic, vector, message)
            .unwrap();
        assert_eq!(by_irq, by_polling, "{format}: the same OFFER either way");
        assert!(dhcp::classify(&by_irq, 7).is_offer_for(7), "{format}");
        // The interrupt path ran: the model sent messages to the APIC, and they were counted.
        assert!(report.interrupts >= 1, "{format}: {report:?}");
        assert_eq!(report.interrupts, during.count, "{format}");
        assert_eq!(report.entries, [0, 1], "{format}: TX block 0, RX block 1");
        assert_eq!(report.other, 0, "{format}");
        assert!(report.restored, "{format}");
        assert!(!rig.nic.irq_waits());
        assert_eq!(snapshot(&rig), before, "{format}: MSI-X as before");
        // Polling afterwards still works, and teardown is clean.
        assert!(exchange_with(&mut rig, 8, None).is_ok(), "{format}");
        rig.teardown_steps().0.unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn irq_waits_on_a_machine_without_an_interrupt_path_fail_by_name_and_restore() {
    for format in ALL_FORMATS {
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let before = snapshot(&rig);
        let apic = apic(&rig, false);
        let (vector, message) = rig.nic.begin_irq_waits(&rig.pci, &apic).unwrap();
        let err = exchange_with(&mut rig, 9, Some(&apic)).unwrap_err();
        assert!(err.starts_with("irq-not-delivered:"), "{format}: {err}");
        let report = rig
            .nic
            .end_irq_waits(&rig.pci, &apic, vector, message)
            .unwrap();
        assert_eq!(report.interrupts, 0);
        assert_eq!(snapshot(&rig), before, "{format}");
        // The NIC still works by polling.
        assert!(exchange_with(&mut rig, 10, None).is_ok(), "{format}");
        rig.teardown_steps().0.unwrap();
        rig.assert_ledger_clean();
    }
}

#[test]
fn irq_waits_need_the_queues_up_and_an_interrupt_path() {
    let mut rig = rig(ModelConfig::default());
    rig.bring_up(State::Described).unwrap();
    let apic = apic(&rig, true);
    let err = rig.nic.begin_irq_waits(&rig.pci, &apic).unwrap_err();
    assert_eq!(err.code(), "gvnic-wrong-state");
    rig.bring_up(State::QueuesUp).unwrap();
    let err = rig
        .nic
        .begin_irq_waits(&rig.pci, &drivers::platform::NoInterrupts)
        .unwrap_err();
    assert_eq!(err.code(), "no-interrupts");
    assert!(!rig.nic.irq_waits());
}

#[test]
fn irq_waits_keep_the_deadline_and_ctrl_c_of_polling() {
    for format in [
        gvnic_model::QueueFormat::GqiQpl,
        gvnic_model::QueueFormat::DqoRda,
    ] {
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let before = snapshot(&rig);
        let apic = apic(&rig, true);
        let (vector, message) = rig.nic.begin_irq_waits(&rig.pci, &apic).unwrap();
        // Nothing is sent, so nothing arrives: the deadline ends the wait, on time.
        let t0 = rig.sim.time_us.get();
        let err = rig
            .nic
            .receive_with(&rig.clock, &mut rig.pool, 30_000, Some(&apic))
            .unwrap_err();
        let took = rig.sim.time_us.get() - t0;
        assert_eq!(err.code(), "gvnic-rx-timeout", "{format}");
        assert!((30_000..45_000).contains(&took), "{format}: {took} us");
        // Ctrl-C (COM1 is polled: its interrupt stays off) ends a long wait at once.
        rig.sim.press_ctrl_c(20_000);
        let t0 = rig.sim.time_us.get();
        let err = rig
            .nic
            .receive_with(&rig.clock, &mut rig.pool, 5_000_000, Some(&apic))
            .unwrap_err();
        let took = rig.sim.time_us.get() - t0;
        assert_eq!(err, drivers::gvnic::GvnicError::Interrupted, "{format}");
        assert!(took < 40_000, "{format}: {took} us");
        rig.sim.ctrl_c_from_us.set(None);
        let report = rig
            .nic
            .end_irq_waits(&rig.pci, &apic, vector, message)
            .unwrap();
        assert!(report.restored);
        assert_eq!(snapshot(&rig), before, "{format}");
        assert!(exchange_with(&mut rig, 11, None).is_ok(), "{format}");
        rig.teardown_steps().0.unwrap();
        rig.assert_ledger_clean();
    }
}

#[test]
fn a_dropped_frame_before_the_good_one_owes_no_second_interrupt() {
    // A damaged frame (dropped by the driver) and the good one land before the wait looks:
    // consuming the first does not show the ring empty, so the second is not owed an
    // interrupt of its own (one interrupt may cover both).
    for format in [
        gvnic_model::QueueFormat::GqiQpl,
        gvnic_model::QueueFormat::DqoRda,
    ] {
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            faults: gvnic_model::Faults {
                rx_error_frames: 1,
                ..Default::default()
            },
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp).unwrap();
        let apic = apic(&rig, true);
        let (vector, message) = rig.nic.begin_irq_waits(&rig.pci, &apic).unwrap();
        let irq: Option<&dyn Interrupts> = Some(&apic);
        for xid in [21, 22] {
            let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], xid);
            rig.nic
                .transmit_with(&rig.clock, &mut rig.pool, &frame, irq)
                .unwrap_or_else(|e| panic!("{format}: {e}"));
        }
        // Both OFFERs arrive (the first flagged damaged) before the driver looks.
        let _ = drivers::platform::wait_for(&rig.clock, 50_000, || None::<()>);
        let offer = rig
            .nic
            .receive_with(&rig.clock, &mut rig.pool, 1_000_000, irq)
            .unwrap_or_else(|e| panic!("{format}: {}: {e}", e.code()));
        assert!(dhcp::classify(&offer, 22).is_offer_for(22), "{format}");
        assert_eq!(rig.nic.rx_dropped(), 1, "{format}");
        rig.nic
            .end_irq_waits(&rig.pci, &apic, vector, message)
            .unwrap();
        rig.teardown_steps().0.unwrap();
        rig.assert_ledger_clean();
    }
}
