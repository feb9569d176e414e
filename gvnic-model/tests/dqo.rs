//! DQO-RDA and DQO-QPL data paths (gvnic-dqo.md §1): LE descriptors, generation bits, the
//! 128-byte completion write-back, the dummy MSI-X vector that flushes it, and the faults
//! a DQO driver must survive.

mod common;
use common::dqo::*;
use common::*;
use gvnic_model::{Direction, Faults, GuestMemory, ModelConfig, ViolationKind};

fn dqo(faults: Faults) -> H {
    H::new(ModelConfig {
        formats: gvnic_model::Formats::only(&[
            gvnic_model::QueueFormat::DqoRda,
            gvnic_model::QueueFormat::DqoQpl,
        ]),
        faults,
        ..Default::default()
    })
}

#[test]
fn a_lone_tx_completion_is_held_until_its_128_byte_line_fills() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    let f = udp_test_frame(100, 7);
    h.dqo_send(&mut q, &f, 1);
    h.settle();
    assert_eq!(h.dev.wire()[0].bytes, f, "the frame left at once");
    assert_eq!(
        h.dqo_tx_completion(&mut q),
        None,
        "but its completion is held"
    );
    // 16 completions of 8 bytes fill the line: all 16 are written, generation 1.
    for tag in 2..=16 {
        h.dqo_send(&mut q, &f, tag);
    }
    h.settle();
    for tag in 1..=16 {
        assert_eq!(
            h.dqo_tx_completion(&mut q),
            Some((2, tag)),
            "packet completion {tag}"
        );
    }
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    assert!(
        h.dev.record().violations.is_empty(),
        "{:?}",
        h.dev.record().violations
    );
}

#[test]
fn the_armed_dummy_vector_flushes_held_completions_and_is_a_dma_write() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    let f = udp_test_frame(60, 1);
    h.dqo_send(&mut q, &f, 5);
    h.settle();
    // MSI-X on, function unmasked, but the vector masked and the block not armed: held.
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    h.unmask_vector(0);
    h.settle();
    assert_eq!(h.dqo_tx_completion(&mut q), None, "not armed yet");
    let db = h.irq_db(0);
    h.db_le(db, 0x19);
    assert_eq!(
        h.dqo_tx_completion(&mut q),
        Some((2, 5)),
        "the interrupt wrote it back"
    );
    let irq = h
        .dev
        .record()
        .interrupts
        .last()
        .cloned()
        .expect("a message");
    assert_eq!(
        (irq.vector, irq.address, irq.data, irq.written_to_ram),
        (0, DUMMY_MSI, 0x100, true)
    );
    assert_eq!(h.mem_read(DUMMY_MSI, 4), 0x100u32.to_le_bytes());
    // The arm is spent: the next lone completion waits for the next 0x19.
    h.dqo_send(&mut q, &f, 6);
    h.settle();
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    h.db_le(db, 0x19);
    assert_eq!(h.dqo_tx_completion(&mut q), Some((2, 6)));
}

#[test]
fn a_masked_vector_sets_its_pending_bit_and_fires_when_unmasked() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    let db = h.irq_db(0);
    h.db_le(db, 0x19);
    h.dqo_send(&mut q, &udp_test_frame(60, 1), 9);
    h.settle();
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    // PBA at BAR1 + 0x800: vector 0 pending.
    assert_eq!(h.dev.bar_read(1, 0x800, 4, &h.mem) & 1, 1);
    h.unmask_vector(0);
    assert_eq!(h.dqo_tx_completion(&mut q), Some((2, 9)));
    assert_eq!(h.dev.bar_read(1, 0x800, 4, &h.mem) & 1, 0);
    // With the function masked nothing goes out either.
    h.dev.config_write(MSIX_CAP + 2, 2, (1 << 15) | (1 << 14));
    h.db_le(db, 0x19);
    h.dqo_send(&mut q, &udp_test_frame(60, 1), 10);
    h.settle();
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    h.dev.config_write(MSIX_CAP + 2, 2, 1 << 15);
    h.tick();
    assert_eq!(h.dqo_tx_completion(&mut q), Some((2, 10)));
}

#[test]
fn report_event_asks_for_a_descriptor_completion_with_the_ring_head() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    h.unmask_vector(0);
    let f = udp_test_frame(60, 1);
    h.dqo_send_at(&mut q, TX_QPL_BASE, &f, 3, true);
    h.settle();
    h.db_le(h.irq_db(0), 0x19);
    assert_eq!(h.dqo_tx_completion(&mut q), Some((2, 3)));
    assert_eq!(
        h.dqo_tx_completion(&mut q),
        Some((4, 1)),
        "tx_head after the packet"
    );
}

#[test]
fn rx_fills_posted_buffers_and_reports_len_eop_buf_id_and_ptype() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.dqo_post_rx(&mut q, 32);
    let f = udp_test_frame(300, 0x42);
    h.dev.inject_rx(&f);
    h.settle();
    assert_eq!(
        h.dqo_rx_completion(&mut q),
        None,
        "one 32-byte completion is held"
    );
    h.msix_dummy();
    h.unmask_vector(1);
    h.db_le(h.irq_db(1), 0x19);
    let (id, len, eop, err, ptype) = h.dqo_rx_completion(&mut q).expect("written back");
    assert_eq!((id, len, eop, err), (0, f.len(), true, false));
    assert_eq!(h.mem_read(RX_QPL_BASE, len), f, "no pad in DQO");
    // The ptype indexes the map GET_PTYPE_MAP returns: IPv4 (2), UDP (3).
    let map = gvnic_model::ptype::map_bytes();
    let p = usize::from(ptype) * 2;
    assert_eq!((map[p], map[p + 1]), (2, 3));
    // Four completions fill a line without any interrupt.
    for i in 0..4 {
        h.dev.inject_rx(&udp_test_frame(100 + i, 1));
    }
    h.settle();
    for i in 0..3 {
        let c = h.dqo_rx_completion(&mut q).expect("line written");
        assert_eq!((c.0, c.1), (1 + i as u16, udp_test_frame(100 + i, 1).len()));
    }
    assert_eq!(
        h.dqo_rx_completion(&mut q),
        None,
        "the 5th opens a new line"
    );
}

#[test]
fn a_frame_spans_buffers_and_waits_for_enough_of_them() {
    let mut h = H::new(ModelConfig {
        formats: gvnic_model::Formats::dqo_only(),
        mtu: 4000,
        ..Default::default()
    });
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    h.unmask_vector(1);
    let f = udp_test_frame(3000, 9);
    h.dev.inject_rx(&f);
    h.settle();
    assert!(
        h.dev.wire().iter().all(|w| w.direction != Direction::Rx),
        "no buffer yet"
    );
    h.dqo_post_rx(&mut q, 1);
    h.settle();
    assert!(
        h.dev.wire().iter().all(|w| w.direction != Direction::Rx),
        "one is not enough"
    );
    h.dqo_post_rx(&mut q, 1);
    h.settle();
    h.db_le(h.irq_db(1), 0x19);
    let a = h.dqo_rx_completion(&mut q).unwrap();
    let b = h.dqo_rx_completion(&mut q).unwrap();
    assert_eq!((a.1, a.2, b.1, b.2), (2048, false, f.len() - 2048, true));
}

#[test]
fn generation_flips_on_every_wrap_of_the_completion_ring() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 32, 32);
    let f = udp_test_frame(60, 1);
    for tag in 0..48 {
        h.dqo_send(&mut q, &f, tag);
        h.settle();
        // The driver consumes in lines of 16.
        while h.dqo_tx_completion(&mut q).is_some() {}
    }
    assert_eq!(q.tx_comp_seen, 48, "second pass read with generation 0");
    let e = h.mem_read(TX_COMP_RING, 8);
    assert_eq!(e[1] & 0x80, 0, "slot 0 rewritten with generation 0");
}

#[test]
fn fault_generation_stuck_hides_everything_after_the_first_wrap() {
    let mut h = dqo(Faults {
        dqo_generation_stuck: true,
        ..Default::default()
    });
    let mut q = h.dqo_bring_up(3, 32, 32);
    let f = udp_test_frame(60, 1);
    for tag in 0..48 {
        h.dqo_send(&mut q, &f, tag);
        h.settle();
        while h.dqo_tx_completion(&mut q).is_some() {}
    }
    assert_eq!(q.tx_comp_seen, 32, "nothing new after the wrap");
}

#[test]
fn fault_completions_never_written_survives_interrupts() {
    let mut h = dqo(Faults {
        dqo_completions_never_written: true,
        ..Default::default()
    });
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    h.unmask_vector(0);
    let f = udp_test_frame(60, 1);
    for tag in 0..20 {
        h.dqo_send(&mut q, &f, tag);
    }
    h.settle();
    h.db_le(h.irq_db(0), 0x19);
    assert_eq!(h.dqo_tx_completion(&mut q), None);
    assert_eq!(h.dev.wire().len(), 20, "the frames still left");
}

#[test]
fn rx_error_frames_fault_sets_rx_error() {
    let mut h = dqo(Faults {
        rx_error_frames: 1,
        ..Default::default()
    });
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.dqo_post_rx(&mut q, 32);
    for _ in 0..4 {
        h.dev.inject_rx(&udp_test_frame(80, 3));
    }
    h.settle();
    let errs: Vec<bool> = (0..4)
        .map(|_| h.dqo_rx_completion(&mut q).unwrap().3)
        .collect();
    assert_eq!(errs, [true, false, false, false]);
}

#[test]
fn a_reset_under_a_running_tx_path_after_n_packets() {
    let mut h = dqo(Faults {
        spurious_reset_after_tx_packets: Some(3),
        ..Default::default()
    });
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.msix_dummy();
    let f = udp_test_frame(60, 1);
    for tag in 0..3 {
        h.dqo_send(&mut q, &f, tag);
    }
    h.tick();
    assert!(h.dev.is_reset());
    assert_ne!(
        h.r32(gvnic_model::regs::DEVICE_STATUS) & 0x2,
        0,
        "RESET requested"
    );
    // The management vector (the last: 2 blocks, base 0) was asserted; masked, so pending.
    assert_eq!(h.dev.bar_read(1, 0x800, 4, &h.mem) & 0b100, 0b100);
    h.dqo_send(&mut q, &f, 4);
    assert_eq!(h.dev.wire().len(), 3, "no queue any more");
}

#[test]
fn dqo_qpl_buffers_must_be_inside_the_registered_pages() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(4, 1024, 1024);
    let f = udp_test_frame(60, 1);
    // A DMA address inside the TX QPL's pages (not an offset: gvnic-dqo.md §1.9).
    h.dqo_send_at(&mut q, TX_QPL_BASE + 4096, &f, 1, false);
    h.settle();
    assert_eq!(h.dev.wire().len(), 1);
    // Guest RAM, but not a page of this QPL (it is the RX QPL's).
    h.dqo_send_at(&mut q, RX_QPL_BASE, &f, 2, false);
    h.settle();
    assert_eq!(h.dev.wire().len(), 1);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::QplOffsetOutOfRange)
            .len(),
        1
    );
    // A QPL offset as GQI-QPL would give it is not an address inside the pages either.
    h.dqo_send_at(&mut q, 0, &f, 3, false);
    h.settle();
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::QplOffsetOutOfRange)
            .len(),
        2
    );
}

#[test]
fn dqo_rda_outside_guest_ram_is_recorded_and_not_sent() {
    let mut h = dqo(Faults::default());
    let _q = h.dqo_bring_up(3, 1024, 1024);
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&(RAM as u64 + 0x1000).to_le_bytes());
    d[8] = 0x0C | 0x20;
    d[14..16].copy_from_slice(&60u16.to_le_bytes());
    h.mem.write(TX_RING, &d).unwrap();
    h.db_le(h.tx_db, 1);
    h.settle();
    assert!(h.dev.wire().is_empty());
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::OutsideGuestRam)
            .len(),
        1
    );
}

#[test]
fn descriptors_beyond_the_tail_are_ignored() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    let f = udp_test_frame(60, 1);
    h.dqo_send(&mut q, &f, 1);
    h.dqo_send(&mut q, &f, 2);
    // Back to tail 1 is not allowed to resend; a stale doorbell of the same tail is a no-op.
    h.db_le(h.tx_db, 2);
    h.settle();
    assert_eq!(h.dev.wire().len(), 2);
    // A third descriptor written but not rung stays where it is.
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&TX_QPL_BASE.to_le_bytes());
    d[8] = 0x0C | 0x20;
    d[14..16].copy_from_slice(&60u16.to_le_bytes());
    h.mem.write(TX_RING + 2 * 16, &d).unwrap();
    h.settle();
    assert_eq!(h.dev.wire().len(), 2);
}

#[test]
fn dqo_doorbells_are_checked() {
    let mut h = dqo(Faults::default());
    let q = h.dqo_bring_up(3, 1024, 1024);
    h.db_le(h.tx_db, 1024);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::DoorbellBeyondRing)
            .len(),
        1
    );
    // iPXE's unmasked free-running RX tail is reduced modulo the ring: 1024 + 5 posts 5.
    let mut q = q;
    h.dqo_post_rx(&mut q, 5);
    h.db_le(h.rx_db, 1024 + 5);
    h.dev.inject_rx(&udp_test_frame(60, 1));
    h.settle();
    assert!(h
        .dev
        .wire()
        .iter()
        .any(|w| w.direction == Direction::Rx && w.dropped.is_none()));
    assert_eq!(
        h.dev.record().violations.len(),
        1,
        "{:?}",
        h.dev.record().violations
    );
}

#[test]
fn dqo_creates_check_ring_sizes_and_completion_rings() {
    let mut h = dqo(Faults::default());
    h.start_aq();
    assert_eq!(h.describe(), gvnic_model::adminq::status::PASSED);
    let n = u32::from(h.dev.config().counters);
    assert_eq!(
        h.submit(h.configure_cmd(n, 3)),
        gvnic_model::adminq::status::PASSED
    );
    let mut c = h.create_tx_cmd(0, 0);
    put64(&mut c, 40, TX_COMP_RING);
    put16(&mut c, 48, 1000); // not a power of two
    put16(&mut c, 50, 1024);
    assert_eq!(h.submit(c), gvnic_model::adminq::status::INVALID_ARGUMENT);
    put16(&mut c, 48, 1024);
    put64(&mut c, 40, TX_COMP_RING + 8); // not page aligned
    assert_eq!(h.submit(c), gvnic_model::adminq::status::INVALID_ARGUMENT);
    put64(&mut c, 40, TX_COMP_RING);
    // qpl_id 0 is ignored in DQO-RDA (DPDK and Linux 6.1 send it).
    assert_eq!(h.submit(c), gvnic_model::adminq::status::PASSED);
}

#[test]
fn an_armed_block_fires_once_msix_is_enabled() {
    let mut h = dqo(Faults::default());
    let mut q = h.dqo_bring_up(3, 1024, 1024);
    h.db_le(h.irq_db(0), 0x19);
    h.dqo_send(&mut q, &udp_test_frame(60, 1), 4);
    h.settle();
    assert_eq!(h.dqo_tx_completion(&mut q), None, "MSI-X still off");
    h.msix_dummy();
    h.unmask_vector(0);
    h.tick();
    assert_eq!(h.dqo_tx_completion(&mut q), Some((2, 4)));
}
