//! Registers, PCI identity, the admin queue and every admin command, in both revisions.

mod common;
use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::regs::*;
use gvnic_model::{Formats, ModelConfig, QueueFormat, ResetCause, ViolationKind};

#[test]
fn pci_identity_bars_and_msix_capability() {
    let mut h = H::rev(1);
    assert_eq!(h.dev.config_read(0x00, 4), 0x0042_1ae0);
    assert_eq!(
        h.dev.config_read(0x08, 4),
        0x0200_0001,
        "class 0x020000, revision 1"
    );
    assert_eq!(h.dev.config_read(0x2C, 4), 0x0058_1ae0);
    assert_eq!(h.dev.config_read(0x06, 2) & 0x10, 0x10, "capability list");
    // BAR sizing: write all ones, read back the size mask; 32-bit memory BARs.
    for (bar, size) in [(0u16, 0x1000u32), (1, 0x1000), (2, 0x10000)] {
        let off = 0x10 + bar * 4;
        h.dev.config_write(off, 4, 0xffff_ffff);
        assert_eq!(h.dev.config_read(off, 4), !(size - 1), "BAR{bar}");
        h.dev
            .config_write(off, 4, 0xfebf_0000 + u32::from(bar) * 0x1_0000 + 0x123);
        assert_eq!(h.dev.config_read(off, 4) & 0xfff, 0, "low bits hard-wired");
    }
    assert_eq!(h.dev.config_read(0x1C, 4), 0, "no BAR3");
    // MSI-X capability: id 0x11 at 0x40, table in BAR1 at 0, PBA in BAR1 at 0x800.
    assert_eq!(h.dev.config_read(0x34, 1), 0x40);
    assert_eq!(h.dev.config_read(0x40, 1), 0x11);
    let vectors = (h.dev.config_read(0x42, 2) & 0x7ff) + 1;
    assert_eq!(vectors, 9, "2 * 4 queues + management");
    assert_eq!(h.dev.config_read(0x44, 4), 1);
    assert_eq!(h.dev.config_read(0x48, 4), 0x801);
    assert_eq!(h.dev.decode_bar(0xfebf_0004), Some((0, 4)));
    assert_eq!(h.dev.decode_bar(0xfec1_0008), Some((2, 8)));
    h.dev.config_write(0x04, 2, 0);
    assert_eq!(h.dev.decode_bar(0xfebf_0004), None, "memory decoding off");
}

#[test]
fn bar0_reset_values_both_revisions() {
    for rev in [0u8, 1] {
        let mut h = H::rev(rev);
        let ds = h.r32(DEVICE_STATUS);
        assert_eq!(ds & device_status::LINK_STATUS, device_status::LINK_STATUS);
        let is_reset = if rev == 1 {
            device_status::DEVICE_IS_RESET
        } else {
            0
        };
        assert_eq!(ds & device_status::DEVICE_IS_RESET, is_reset, "rev {rev}");
        assert_eq!(h.r32(MAX_TX_QUEUES), 4);
        assert_eq!(h.r32(MAX_RX_QUEUES), 4);
        assert_eq!(h.r32(ADMINQ_PFN), 0);
        assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 0);
        // The raw bus value is byte-swapped: MAX_TX_QUEUES = 4 arrives as 0x04000000.
        assert_eq!(h.dev.bar_read(0, MAX_TX_QUEUES, 4, &h.mem), 0x0400_0000);
        assert_eq!(h.dev.bar_read(0, DMA_MASK, 1, &h.mem), 64);
        assert_eq!(
            h.dev.bar_read(0, MAX_TX_QUEUES + 3, 1, &h.mem),
            4,
            "BE: LSB at the highest address"
        );
    }
    assert!(H::rev(0).dev.record().violations.is_empty());
}

#[test]
fn aq_rev0_by_pfn_and_rev1_by_base_length_run() {
    let mut h = H::rev(0);
    h.start_aq();
    assert_eq!(h.r32(ADMINQ_PFN), (AQ >> 12) as u32);
    assert_eq!(h.describe(), status::PASSED);

    let mut h = H::rev(1);
    h.w32(ADMINQ_BASE_ADDRESS_LO, AQ as u32);
    assert_eq!(h.r32(ADMINQ_PFN), 0, "not running before RUN");
    h.start_aq();
    assert_eq!(
        h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET,
        0,
        "RUN clears IS_RESET"
    );
    assert_eq!(h.r32(ADMINQ_PFN), (AQ >> 12) as u32);
    assert_eq!(h.describe(), status::PASSED);
    assert!(
        h.dev.record().violations.is_empty(),
        "{:?}",
        h.dev.record().violations
    );

    // iPXE's 32-bit write form of ADMINQ_LENGTH is accepted too.
    let mut h = H::rev(1);
    h.dev.bar_write(
        0,
        ADMINQ_LENGTH,
        4,
        u64::from(u32::from_be_bytes([0x10, 0, 0, 0]).to_be()),
        &h.mem,
    );
    assert_eq!(
        h.dev.bar_read(0, ADMINQ_LENGTH, 2, &h.mem),
        u64::from(4096u16.to_be())
    );

    // Revision 0 ignores DRIVER_STATUS: RUN alone starts nothing.
    let mut h = H::rev(0);
    h.w32(ADMINQ_BASE_ADDRESS_LO, AQ as u32);
    h.dev
        .bar_write(0, ADMINQ_LENGTH, 2, u64::from(4096u16.to_be()), &h.mem);
    h.w32(DRIVER_STATUS, driver_status::RUN);
    assert_eq!(h.r32(ADMINQ_PFN), 0);
}

#[test]
fn describe_reports_the_configured_descriptor() {
    let cfg = ModelConfig {
        mac: [2, 0, 0, 0, 0, 7],
        mtu: 1500,
        profile: gvnic_model::Profile::Y2024,
        ..Default::default()
    };
    let mut h = H::new(cfg);
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let d = h.mem_read(DESC, 64);
    assert_eq!(
        u64::from_be_bytes(d[0..8].try_into().unwrap()),
        gvnic_model::config::MAX_REGISTERED_PAGES
    );
    assert_eq!(u16::from_be_bytes([d[10], d[11]]), 1024);
    assert_eq!(u16::from_be_bytes([d[12], d[13]]), 1024);
    assert_eq!(u16::from_be_bytes([d[14], d[15]]), 4);
    assert_eq!(u16::from_be_bytes([d[16], d[17]]), 1500);
    assert_eq!(u16::from_be_bytes([d[18], d[19]]), 32);
    assert_eq!(&d[24..30], &[2, 0, 0, 0, 0, 7]);
    assert_eq!(u16::from_be_bytes([d[30], d[31]]), 1, "one option: GQI_QPL");
    assert_eq!(
        u16::from_be_bytes([d[32], d[33]]),
        40 + 8 + 4,
        "total_length"
    );
    assert_eq!(&d[40..44], &[0, 3, 0, 4], "option id 3, length 4");
}

/// The 2024 device: format options only (profile 2026's are in tests/options.rs).
fn options_of(formats: Formats) -> (Vec<u16>, u16) {
    let mut h = H::new(ModelConfig {
        formats,
        profile: gvnic_model::Profile::Y2024,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let d = h.mem_read(DESC, 256);
    let n = u16::from_be_bytes([d[30], d[31]]);
    let total = u16::from_be_bytes([d[32], d[33]]);
    let mut at = 40;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(u16::from_be_bytes([d[at], d[at + 1]]));
        at += 8 + usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
    }
    assert_eq!(
        at,
        usize::from(total),
        "options end exactly at total_length"
    );
    (ids, total)
}

#[test]
fn describe_options_follow_formats() {
    assert_eq!(options_of(Formats::dqo_only()).0, vec![4]);
    let all = Formats {
        gqi_qpl: true,
        gqi_rda: true,
        dqo_rda: true,
        dqo_qpl: true,
        none: false,
    };
    assert_eq!(options_of(all), (vec![2, 3, 4, 7], 40 + 12 + 12 + 16 + 16));
    assert_eq!(
        options_of(Formats {
            none: true,
            ..Default::default()
        }),
        (vec![], 40)
    );
}

#[test]
fn describe_rejects_bad_version_short_buffer_and_misalignment() {
    let mut h = H::rev(0);
    h.start_aq();
    let mut c = be_cmd(opcode::DESCRIBE_DEVICE);
    put64(&mut c, 8, DESC);
    put32(&mut c, 16, 2);
    put32(&mut c, 20, 4096);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT);
    put32(&mut c, 16, 1);
    put32(&mut c, 20, 39);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT);
    put32(&mut c, 20, 256);
    put64(&mut c, 8, DESC + 8);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT);
    put64(&mut c, 8, 1 << 40);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT);
    let r = h.dev.record();
    assert_eq!(r.violations_of(ViolationKind::BadCommand).len(), 2);
    assert_eq!(r.violations_of(ViolationKind::NotPageAligned).len(), 1);
    assert_eq!(r.violations_of(ViolationKind::OutsideGuestRam).len(), 1);
    assert_eq!(
        h.mem_read(DESC, 40),
        vec![0; 40],
        "nothing written on failure"
    );
}

#[test]
fn configure_writes_irq_doorbell_indexes_and_checks_its_fields() {
    let mut h = H::rev(0);
    h.start_aq();
    assert_eq!(
        h.submit(h.configure_cmd(32, 3)),
        status::INVALID_ARGUMENT,
        "DQO_RDA not offered"
    );
    assert_eq!(
        h.submit(h.configure_cmd(33, 2)),
        status::INVALID_ARGUMENT,
        "more counters than described"
    );
    assert_eq!(h.submit(h.configure_cmd(0, 2)), status::INVALID_ARGUMENT);
    let mut c = h.configure_cmd(32, 2);
    put32(&mut c, 32, 2);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "stride 2");
    assert_eq!(h.submit(h.configure_cmd(32, 2)), status::PASSED);
    let a = h.mem_be32(IRQ_DBS);
    let b = h.mem_be32(IRQ_DBS + 64);
    assert_ne!(a, b);
    assert_eq!(
        h.submit(h.configure_cmd(32, 2)),
        status::FAILED_PRECONDITION,
        "configured twice"
    );
    // Only the accepted CONFIGURE is in the record's formats.
    assert_eq!(h.dev.record().configured_formats, [QueueFormat::GqiQpl]);
    // Format 0 (legacy) is GQI-QPL.
    let mut h = H::rev(0);
    h.start_aq();
    assert_eq!(h.submit(h.configure_cmd(32, 0)), status::PASSED);
    assert_eq!(h.dev.record().configured_formats, [QueueFormat::GqiQpl]);
}

#[test]
fn fewer_counters_than_described_fails_queue_creation_like_gce() {
    let mut h = H::rev(0);
    h.start_aq();
    assert_eq!(
        h.submit(h.configure_cmd(16, 2)),
        status::PASSED,
        "GCE accepts it"
    );
    assert_eq!(
        h.dev.record().violations_of(ViolationKind::Tolerated).len(),
        1
    );
    assert_eq!(h.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES), status::PASSED);
    assert_eq!(
        h.submit(h.create_tx_cmd(0, TX_QPL_ID)),
        status::FAILED_PRECONDITION
    );
}

#[test]
fn page_lists_register_unregister_and_limits() {
    let mut h = H::new(ModelConfig {
        max_registered_pages: 40,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(
        h.register(1, TX_QPL_BASE, 4),
        status::FAILED_PRECONDITION,
        "before CONFIGURE"
    );
    assert_eq!(h.configure(), status::PASSED);
    assert_eq!(h.register(1, TX_QPL_BASE, 4), status::PASSED);
    assert_eq!(h.dev.registered_pages(), 4);
    assert_eq!(h.register(1, TX_QPL_BASE, 4), status::ALREADY_EXISTS);
    assert_eq!(h.register(2, RX_QPL_BASE, 37), status::RESOURCE_EXHAUSTED);
    assert_eq!(
        h.register(2, RX_QPL_BASE, 36),
        status::PASSED,
        "exactly the limit"
    );
    assert_eq!(
        h.register(0xffff_ffff, RX_QPL_BASE, 1),
        status::INVALID_ARGUMENT
    );
    assert_eq!(h.unregister(2), status::PASSED);
    assert_eq!(
        h.register(3, RX_QPL_BASE + 0x800, 1),
        status::INVALID_ARGUMENT,
        "page not aligned"
    );
    assert_eq!(
        h.register(3, (RAM as u64) - 4096, 2),
        status::INVALID_ARGUMENT,
        "page outside RAM"
    );
    assert_eq!(h.register(3, RX_QPL_BASE, 0), status::INVALID_ARGUMENT);
    assert_eq!(h.unregister(3), status::NOT_FOUND);
    assert_eq!(h.unregister(1), status::PASSED);
    assert_eq!(h.dev.registered_pages(), 0);
    let r = h.dev.record();
    assert_eq!(r.violations_of(ViolationKind::NotPageAligned).len(), 1);
    assert_eq!(r.violations_of(ViolationKind::OutsideGuestRam).len(), 1);
}

#[test]
fn queues_create_destroy_and_their_errors() {
    // The 2024 device: no MODIFY_RING, so the ring size is the described one.
    let mut h = H::new(ModelConfig {
        profile: gvnic_model::Profile::Y2024,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(
        h.submit(h.create_tx_cmd(0, TX_QPL_ID)),
        status::FAILED_PRECONDITION,
        "before CONFIGURE"
    );
    assert_eq!(h.configure(), status::PASSED);
    assert_eq!(
        h.submit(h.create_tx_cmd(0, TX_QPL_ID)),
        status::NOT_FOUND,
        "QPL not registered"
    );
    assert_eq!(h.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES), status::PASSED);
    assert_eq!(h.register(RX_QPL_ID, RX_QPL_BASE, RX_PAGES), status::PASSED);
    assert_eq!(
        h.submit(h.create_tx_cmd(4, TX_QPL_ID)),
        status::INVALID_ARGUMENT,
        "queue id >= max"
    );
    let mut c = h.create_tx_cmd(0, TX_QPL_ID);
    put64(&mut c, 24, TX_RING + 64);
    assert_eq!(
        h.submit(c),
        status::INVALID_ARGUMENT,
        "ring not page aligned"
    );
    let mut c = h.create_tx_cmd(0, TX_QPL_ID);
    put16(&mut c, 48, 512);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "ring size mismatch");
    assert_eq!(
        h.submit(h.create_tx_cmd(0, 0xffff_ffff)),
        status::INVALID_ARGUMENT,
        "RDA in QPL mode"
    );
    assert_eq!(h.submit(h.create_tx_cmd(0, TX_QPL_ID)), status::PASSED);
    let (db, counter) = (h.mem_be32(TX_RES), h.mem_be32(TX_RES + 4));
    assert!(counter < 32);
    assert_eq!(
        h.submit(h.create_tx_cmd(0, TX_QPL_ID)),
        status::ALREADY_EXISTS
    );
    assert_eq!(
        h.submit(h.create_tx_cmd(1, TX_QPL_ID)),
        status::FAILED_PRECONDITION,
        "QPL in use"
    );
    let mut c = h.create_rx_cmd(0, RX_QPL_ID);
    put32(&mut c, 12, 1);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "index != queue id");
    let mut c = h.create_rx_cmd(0, RX_QPL_ID);
    put16(&mut c, 54, 4096);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "packet buffer size");
    assert_eq!(h.submit(h.create_rx_cmd(0, RX_QPL_ID)), status::PASSED);
    let (rdb, rcounter) = (h.mem_be32(RX_RES), h.mem_be32(RX_RES + 4));
    assert_ne!(db, rdb);
    assert_ne!(counter, rcounter);
    assert_eq!(
        h.unregister(TX_QPL_ID),
        status::FAILED_PRECONDITION,
        "QPL in use by a queue"
    );
    assert_eq!(
        h.submit(be_cmd(opcode::DECONFIGURE_DEVICE_RESOURCES)),
        status::FAILED_PRECONDITION
    );
    assert_eq!(h.destroy(opcode::DESTROY_RX_QUEUE, 0), status::PASSED);
    assert_eq!(h.destroy(opcode::DESTROY_RX_QUEUE, 0), status::NOT_FOUND);
    assert_eq!(h.destroy(opcode::DESTROY_TX_QUEUE, 0), status::PASSED);
    assert_eq!(h.destroy(opcode::DESTROY_TX_QUEUE, 3), status::NOT_FOUND);
    assert_eq!(h.unregister(RX_QPL_ID), status::PASSED);
    assert_eq!(h.unregister(TX_QPL_ID), status::PASSED);
    assert_eq!(
        h.submit(be_cmd(opcode::DECONFIGURE_DEVICE_RESOURCES)),
        status::PASSED
    );
    assert_eq!(
        h.submit(be_cmd(opcode::DECONFIGURE_DEVICE_RESOURCES)),
        status::FAILED_PRECONDITION
    );
}

#[test]
fn dqo_queues_need_their_completion_rings() {
    let mut h = H::new(ModelConfig {
        formats: Formats::dqo_only(),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(
        h.submit(h.configure_cmd(32, 2)),
        status::INVALID_ARGUMENT,
        "GQI-QPL not offered"
    );
    assert_eq!(h.submit(h.configure_cmd(32, 3)), status::PASSED);
    // A GQI-shaped create (no completion ring, size 0) is not a DQO queue.
    assert_eq!(
        h.submit(h.create_tx_cmd(0, 0xffff_ffff)),
        status::INVALID_ARGUMENT
    );
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::BadCommand)
            .len(),
        2
    );
}

#[test]
fn unknown_opcode_is_unimplemented_and_statuses_are_recorded() {
    // The 2024 device has no flow steering: QUERY_FLOW_RULES is UNIMPLEMENTED there.
    let mut h = H::new(ModelConfig {
        profile: gvnic_model::Profile::Y2024,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.submit(be_cmd(0x10)), status::UNIMPLEMENTED);
    assert_eq!(h.submit(be_cmd(0x77)), status::UNIMPLEMENTED);
    assert_eq!(
        h.dev.record().statuses_of(0x77),
        vec![status::UNIMPLEMENTED]
    );
}

#[test]
fn free_running_counter_wraps_slots_not_the_count() {
    for rev in [0u8, 1] {
        let mut h = H::rev(rev);
        h.start_aq();
        for _ in 0..150 {
            assert_eq!(h.describe(), status::PASSED);
        }
        assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 150);
        // Several commands queued with one doorbell.
        for i in 0..3u32 {
            let slot = AQ + u64::from((150 + i) % 64) * 64;
            let mut c = be_cmd(0x7e);
            put32(&mut c, 4, 0);
            h.mem.write_slot(slot, &c);
        }
        h.w32(ADMINQ_DOORBELL, 153);
        assert!(h.wait(|h| h.r32(ADMINQ_EVENT_COUNTER) == 153));
        assert_eq!(h.dev.record().commands.len(), 153);
    }
}

trait WriteSlot {
    fn write_slot(&self, gpa: u64, c: &[u8; 64]);
}
impl WriteSlot for gvnic_model::VecMemory {
    fn write_slot(&self, gpa: u64, c: &[u8; 64]) {
        gvnic_model::GuestMemory::write(self, gpa, c).unwrap();
    }
}

#[test]
fn admin_doorbell_rules() {
    let mut h = H::rev(0);
    h.w32(ADMINQ_DOORBELL, 1);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::AdminQueueNotRunning)
            .len(),
        1
    );
    h.start_aq();
    h.w32(ADMINQ_DOORBELL, 65);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::DoorbellBeyondRing)
            .len(),
        1
    );
    assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 0);
    // A misaligned AQ never starts.
    let mut h = H::rev(0);
    h.w32(ADMINQ_PFN, 0xfff_ffff);
    assert_eq!(h.r32(ADMINQ_PFN), 0);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::OutsideGuestRam)
            .len(),
        1
    );
    let mut h = H::rev(1);
    h.w32(ADMINQ_BASE_ADDRESS_LO, AQ as u32 + 0x100);
    h.dev
        .bar_write(0, ADMINQ_LENGTH, 2, u64::from(4096u16.to_be()), &h.mem);
    h.w32(DRIVER_STATUS, driver_status::RUN);
    assert_eq!(h.r32(ADMINQ_PFN), 0);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::NotPageAligned)
            .len(),
        1
    );
}

#[test]
fn reset_releases_everything_in_both_revisions() {
    for rev in [0u8, 1] {
        let mut h = H::rev(rev);
        h.bring_up();
        assert_eq!(h.dev.registered_pages(), 36);
        assert!(!h.dev.is_reset());
        if rev == 0 {
            h.w32(ADMINQ_PFN, 0);
            assert_ne!(h.r32(ADMINQ_PFN), 0, "the release takes the reset latency");
        } else {
            h.w32(DRIVER_STATUS, driver_status::RESET);
            assert!(h.wait(|h| h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET != 0));
        }
        assert!(h.wait(|h| h.r32(ADMINQ_PFN) == 0));
        assert!(h.dev.is_reset());
        assert_eq!(h.dev.registered_pages(), 0);
        assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 0);
        let cause = if rev == 0 {
            ResetCause::PfnZero
        } else {
            ResetCause::DriverStatusReset
        };
        let last = h.dev.record().resets.last().unwrap().clone();
        assert_eq!(
            (last.cause, last.already_reset, last.completed),
            (cause, false, true)
        );
        // The old queues' doorbells are gone.
        h.db(h.tx_db, 1);
        assert_eq!(
            h.dev
                .record()
                .violations_of(ViolationKind::UnknownDoorbell)
                .len(),
            1
        );
        // And the device comes back up from scratch.
        h.bring_up();
    }
    // PFN reset works on revision 1 too (facts §2).
    let mut h = H::rev(1);
    h.bring_up();
    h.w32(ADMINQ_PFN, 0);
    h.settle();
    assert!(h.dev.is_reset());
}

#[test]
fn driver_version_register_collects_lines() {
    let mut h = H::rev(0);
    for b in b"GVE-1.0\nbringup\n" {
        h.dev.bar_write(0, DRIVER_VERSION, 1, u64::from(*b), &h.mem);
        assert_eq!(
            h.dev.bar_read(0, DRIVER_VERSION, 1, &h.mem),
            0,
            "reads 0: ready for the next byte"
        );
    }
    assert_eq!(
        h.dev.record().driver_versions,
        vec!["GVE-1.0".to_string(), "bringup".to_string()]
    );
}

/// Linux 6.12 in DQO-QPL registers tx_pages_per_qpl (512) per TX queue and 2 x the RX ring
/// (2 x 1024) per RX queue: 4 x 512 + 4 x 2048 = 10 240 pages, which the device's budget
/// must allow (issue 19: the old 8192 made `ip link set up` fail with EINVAL).
#[test]
fn linux_6_12_dqo_qpl_queues_fit_the_page_budget() {
    let mut h = H::new(ModelConfig {
        formats: gvnic_model::Formats::only(&[gvnic_model::QueueFormat::DqoQpl]),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let budget = u64::from_be_bytes(h.mem_read(DESC, 8).try_into().unwrap());
    assert!(budget >= 10_240, "described budget {budget}");
    let n = u32::from(h.dev.config().counters);
    assert_eq!(h.submit(h.configure_cmd(n, 4)), status::PASSED);
    // The pages themselves may repeat here: only the count matters to the budget.
    let register = |h: &mut H, id: u32, pages: u32| {
        let list: Vec<u8> = (0..u64::from(pages))
            .flat_map(|i| (TX_QPL_BASE + (i % 16) * 4096).to_be_bytes())
            .collect();
        gvnic_model::GuestMemory::write(&h.mem, PAGE_LIST, &list).unwrap();
        let mut c = be_cmd(opcode::REGISTER_PAGE_LIST);
        put32(&mut c, 8, id);
        put32(&mut c, 12, pages);
        put64(&mut c, 16, PAGE_LIST);
        put64(&mut c, 24, 4096);
        h.submit(c)
    };
    for q in 0..4 {
        assert_eq!(register(&mut h, q, 512), status::PASSED, "TX QPL {q}");
    }
    for q in 0..4 {
        assert_eq!(register(&mut h, 4 + q, 2048), status::PASSED, "RX QPL {q}");
    }
    assert_eq!(h.dev.registered_pages(), 10_240);
}

fn describe_with(h: &mut H, avail: u32) -> u32 {
    let mut c = be_cmd(opcode::DESCRIBE_DEVICE);
    put64(&mut c, 8, DESC);
    put32(&mut c, 16, 1);
    put32(&mut c, 20, avail);
    h.submit(c)
}

/// iPXE (Debian trixie) gives DESCRIBE_DEVICE a 40-byte buffer: the descriptor without
/// options, which it does not parse. The device writes the header and no option, with
/// counts that describe what it wrote, and never a byte past the buffer (issue 19).
#[test]
fn describe_into_the_40_byte_buffer_ipxe_gives() {
    let mut h = H::new(ModelConfig {
        formats: "gqi-qpl,dqo-rda".parse().unwrap(),
        ..Default::default()
    });
    h.start_aq();
    gvnic_model::GuestMemory::write(&h.mem, DESC, &[0xEE; 256]).unwrap();
    assert_eq!(describe_with(&mut h, 40), status::PASSED);
    let d = h.mem_read(DESC, 64);
    assert_eq!(&d[24..30], &h.dev.config().mac);
    assert_eq!(u16::from_be_bytes([d[30], d[31]]), 0, "num_device_options");
    assert_eq!(u16::from_be_bytes([d[32], d[33]]), 40, "total_length");
    assert_eq!(&d[40..64], &[0xEE; 24], "nothing past the buffer");
    assert!(
        h.dev.record().violations.is_empty(),
        "legitimate: no violation"
    );
    // Two format options and the 2026 profile's six.
    assert_eq!(h.dev.record().describe_options_left_out, 8, "counted");

    // Room for the first option (GQI_QPL: 8 + 4 bytes) but not the second: only whole
    // options are written.
    gvnic_model::GuestMemory::write(&h.mem, DESC, &[0xEE; 256]).unwrap();
    assert_eq!(describe_with(&mut h, 40 + 12 + 4), status::PASSED);
    let d = h.mem_read(DESC, 64);
    assert_eq!(u16::from_be_bytes([d[30], d[31]]), 1);
    assert_eq!(u16::from_be_bytes([d[32], d[33]]), 52);
    assert_eq!(u16::from_be_bytes([d[40], d[41]]), 0x3, "GQI_QPL first");
    assert_eq!(&d[52..64], &[0xEE; 12]);

    assert_eq!(describe_with(&mut h, 39), status::INVALID_ARGUMENT);
}
