//! What independent drivers written on GCE hardware rely on across close/reopen and host
//! resets (issue 19): a new GQI queue's event counter reads 0; a host reset can be injected
//! under a GQI data path; doorbells a driver rings before it can notice a host reset are
//! counted, not violations.

mod common;
use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::regs::DEVICE_STATUS;
use gvnic_model::{Faults, ModelConfig, ViolationKind};

/// iPXE's ifclose/ifopen: destroy both queues, unregister both QPLs, then register and create
/// them again over the same counter array, which it never clears. Its poll loop asserts the
/// counter reads 0 after CREATE (gve.c).
#[test]
fn gqi_event_counters_read_zero_after_close_and_reopen() {
    let mut h = H::new(ModelConfig::default());
    h.bring_up();
    let f = udp_test_frame(60, 1);
    for b in 0..3 {
        h.send(&f, b);
    }
    assert_eq!(h.tx_completed(), 3);
    // A stale value in the RX queue's counter too (as if the device had counted there).
    let rx_counter_at = COUNTERS + u64::from(h.rx_counter) * 4;
    gvnic_model::GuestMemory::write(&h.mem, rx_counter_at, &7u32.to_be_bytes()).unwrap();

    assert_eq!(h.destroy(opcode::DESTROY_TX_QUEUE, 0), status::PASSED);
    assert_eq!(h.destroy(opcode::DESTROY_RX_QUEUE, 0), status::PASSED);
    assert_eq!(h.unregister(TX_QPL_ID), status::PASSED);
    assert_eq!(h.unregister(RX_QPL_ID), status::PASSED);
    assert_eq!(
        h.tx_completed(),
        3,
        "the device leaves the counter alone on destroy"
    );

    assert_eq!(h.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES), status::PASSED);
    assert_eq!(h.register(RX_QPL_ID, RX_QPL_BASE, RX_PAGES), status::PASSED);
    assert_eq!(h.submit(h.create_tx_cmd(0, TX_QPL_ID)), status::PASSED);
    assert_eq!(h.submit(h.create_rx_cmd(0, RX_QPL_ID)), status::PASSED);
    assert_eq!(h.tx_completed(), 0, "TX counter zeroed by CREATE_TX_QUEUE");
    assert_eq!(
        h.mem_be32(rx_counter_at),
        0,
        "RX counter zeroed by CREATE_RX_QUEUE"
    );
    assert!(h.dev.record().violations.is_empty());
}

/// `spurious_reset_after_tx_packets` in GQI: the device resets itself after the Nth packet,
/// raises DEVICE_STATUS.RESET, and the TX doorbells the driver keeps ringing until it
/// notices are counted as `after_reset_doorbells`.
#[test]
fn gqi_host_reset_after_n_packets_and_the_doorbells_after_it() {
    let mut h = H::new(ModelConfig {
        faults: Faults {
            spurious_reset_after_tx_packets: Some(2),
            ..Default::default()
        },
        ..Default::default()
    });
    h.bring_up();
    let f = udp_test_frame(60, 1);
    h.send(&f, 0);
    assert!(!h.dev.is_reset());
    h.send(&f, 1);
    h.tick();
    assert!(h.dev.is_reset(), "reset after the second packet");
    assert_ne!(h.r32(DEVICE_STATUS) & 0x2, 0, "RESET requested");
    for b in 2..6 {
        h.send(&f, b);
    }
    assert_eq!(h.dev.wire().len(), 2, "nothing sent after the reset");
    let r = h.dev.record();
    assert_eq!(r.after_reset_doorbells, 4);
    assert!(r.violations_of(ViolationKind::UnknownDoorbell).is_empty());

    // Once the driver has reset the device itself, a stray doorbell is a violation again.
    h.w32(gvnic_model::regs::ADMINQ_PFN, 0);
    h.settle();
    h.send(&f, 7);
    assert_eq!(h.dev.record().after_reset_doorbells, 4);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::UnknownDoorbell)
            .len(),
        1
    );
}
