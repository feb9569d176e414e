//! Fault injection and strictness rules.

mod common;
use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::regs::*;
use gvnic_model::{Faults, ModelConfig, ResetCause, ViolationKind};

fn with_faults(rev: u8, faults: Faults) -> H {
    H::new(ModelConfig {
        revision: rev,
        faults,
        ..Default::default()
    })
}

#[test]
fn status_for_opcode_answers_without_executing() {
    let mut h = with_faults(
        0,
        Faults {
            status_for_opcode: Some((opcode::DESCRIBE_DEVICE, status::UNAVAILABLE)),
            ..Default::default()
        },
    );
    h.start_aq();
    assert_eq!(h.describe(), status::UNAVAILABLE);
    assert_eq!(h.mem_read(DESC, 40), vec![0; 40], "descriptor not written");
    assert_eq!(h.configure(), status::PASSED, "other opcodes unaffected");
}

#[test]
fn reset_never_completes_keeps_everything() {
    for rev in [0u8, 1] {
        let mut h = with_faults(
            rev,
            Faults {
                reset_never_completes: true,
                ..Default::default()
            },
        );
        h.bring_up();
        if rev == 0 {
            h.w32(ADMINQ_PFN, 0);
        } else {
            h.w32(DRIVER_STATUS, driver_status::RESET);
        }
        assert_ne!(h.r32(ADMINQ_PFN), 0);
        assert_eq!(h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET, 0);
        assert_eq!(
            h.dev.registered_pages(),
            36,
            "the device still holds the QPL pages"
        );
        assert!(!h.dev.record().resets.last().unwrap().completed);
    }
}

#[test]
fn spurious_reset_after_n_commands() {
    let mut h = with_faults(
        0,
        Faults {
            spurious_reset_after_commands: Some(3),
            ..Default::default()
        },
    );
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    assert_eq!(h.configure(), status::PASSED);
    assert_eq!(
        h.register(TX_QPL_ID, TX_QPL_BASE, 1),
        status::PASSED,
        "the 3rd command completes"
    );
    // Next doorbell: the device has reset itself instead.
    assert_eq!(h.describe(), status::UNSET);
    assert_eq!(
        h.r32(ADMINQ_PFN),
        0,
        "PFN reads 0 (iPXE's ECONNRESET check)"
    );
    assert_ne!(
        h.r32(DEVICE_STATUS) & device_status::RESET,
        0,
        "device asks for a reset"
    );
    assert!(h.dev.is_reset());
    assert_eq!(
        h.dev.record().resets.last().unwrap().cause,
        ResetCause::Spurious
    );
    // Recovery: reset + bring-up works, and the request bit clears.
    h.w32(ADMINQ_PFN, 0);
    assert_eq!(h.r32(DEVICE_STATUS) & device_status::RESET, 0);
    h.bring_up();

    // The reset also fires on a tick when no further command comes.
    let mut h = with_faults(
        1,
        Faults {
            spurious_reset_after_commands: Some(1),
            ..Default::default()
        },
    );
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    h.tick();
    assert_eq!(h.r32(ADMINQ_PFN), 0);
    assert_ne!(h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET, 0);
}

#[test]
fn no_rx_drops_inbound_frames() {
    let mut h = with_faults(
        0,
        Faults {
            no_rx: true,
            ..Default::default()
        },
    );
    h.bring_up();
    h.dev.inject_rx(&udp_test_frame(60, 1));
    h.tick();
    assert!(h.poll_rx().is_none());
    assert_eq!(h.dev.wire().last().unwrap().dropped, Some("no_rx fault"));
}

#[test]
fn tx_completion_delay() {
    let mut h = with_faults(
        0,
        Faults {
            tx_completion_delay_ticks: 3,
            ..Default::default()
        },
    );
    h.bring_up();
    h.send(&udp_test_frame(60, 1), 0);
    assert_eq!(h.dev.wire().len(), 1, "on the wire at once");
    for _ in 0..2 {
        assert_eq!(h.tx_completed(), 0);
        h.tick();
    }
    assert_eq!(h.tx_completed(), 0);
    h.tick();
    assert_eq!(h.tx_completed(), 1);
}

#[test]
fn admin_never_completes() {
    let mut h = with_faults(
        0,
        Faults {
            admin_never_completes: true,
            ..Default::default()
        },
    );
    h.start_aq();
    assert_eq!(h.describe(), status::UNSET);
    h.tick();
    assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 0);
    assert!(h.dev.record().commands.is_empty());
}

#[test]
fn redundant_reset_schedules_a_delayed_reset() {
    let mut h = with_faults(
        0,
        Faults {
            delayed_reset_after_redundant_reset: Some(30),
            ..Default::default()
        },
    );
    // Resetting a device that is already reset (power-on state): iPXE's reset loop.
    h.w32(ADMINQ_PFN, 0);
    assert!(h.dev.record().resets[0].already_reset);
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    assert_ne!(h.r32(ADMINQ_PFN), 0);
    h.run_us(30 * gvnic_model::TICK_US);
    assert_eq!(h.r32(ADMINQ_PFN), 0, "the delayed reset hit");
    // Without the fault a redundant reset is only recorded.
    let mut h = H::rev(0);
    h.w32(ADMINQ_PFN, 0);
    h.start_aq();
    for _ in 0..10 {
        h.tick();
    }
    assert_ne!(h.r32(ADMINQ_PFN), 0);
}

#[test]
fn bus_master_off_blocks_dma() {
    let mut h = H::rev(0);
    h.dev.config_write(0x04, 2, 0x0002); // memory only
    h.start_aq();
    assert_eq!(
        h.describe(),
        status::UNSET,
        "the device cannot fetch the command"
    );
    assert!(!h
        .dev
        .record()
        .violations_of(ViolationKind::BusMasterDisabled)
        .is_empty());
}

#[test]
fn memory_space_off_reads_all_ones() {
    let mut h = H::rev(0);
    h.dev.config_write(0x04, 2, 0);
    assert_eq!(h.dev.bar_read(0, MAX_TX_QUEUES, 4, &h.mem), 0xffff_ffff);
    h.w32(ADMINQ_PFN, 1);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::MemorySpaceDisabled)
            .len(),
        2
    );
}

#[test]
fn bad_register_accesses_are_recorded_never_panic() {
    let mut h = H::rev(0);
    h.w32(MAX_TX_QUEUES, 9);
    assert_eq!(h.r32(MAX_TX_QUEUES), 4, "read-only");
    assert_eq!(
        h.dev.bar_read(0, 0x1001, 4, &h.mem),
        0xffff_ffff,
        "past the BAR"
    );
    assert_eq!(h.dev.bar_read(0, 0x2, 4, &h.mem), 0xffff_ffff, "misaligned");
    assert_eq!(h.dev.bar_read(0, 0x0, 3, &h.mem), u64::MAX, "size 3");
    assert_eq!(h.dev.bar_read(7, 0x0, 4, &h.mem), 0xffff_ffff, "no BAR7");
    h.dev.bar_write(0, ADMINQ_PFN, 2, 1, &h.mem);
    h.dev.bar_write(2, 2, 4, 1, &h.mem);
    h.dev.bar_write(1, 0xf00, 4, 1, &h.mem);
    h.db(5, 1);
    let r = h.dev.record();
    assert_eq!(r.violations_of(ViolationKind::BadRegisterAccess).len(), 8);
    assert_eq!(r.violations_of(ViolationKind::UnknownDoorbell).len(), 1);
    assert!(h.dev.is_reset());
}

#[test]
fn irq_doorbells_are_recorded() {
    let mut h = H::rev(0);
    h.bring_up();
    let r = &h.dev.record().irq_doorbells;
    assert_eq!(r, &vec![(0, 1 << 30), (1, 1 << 30)], "both blocks masked");
    assert!(
        h.dev.record().violations.is_empty(),
        "{:?}",
        h.dev.record().violations
    );
}

#[test]
fn pci_reset_clears_config_and_device() {
    let mut h = H::rev(0);
    h.dev.config_write(0x10, 4, 0xfebf_0000);
    h.bring_up();
    h.dev.pci_reset();
    assert_eq!(h.dev.config_read(0x10, 4), 0);
    assert_eq!(h.dev.config_read(0x04, 2), 0);
    assert!(h.dev.is_reset());
}
