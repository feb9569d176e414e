//! GQI-RDA, the format switch, GQI interrupts, the optional admin commands Linux sends, and
//! the two DEVICE_IS_RESET behaviours.

mod common;
use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::regs::*;
use gvnic_model::{DeviceIsReset, Formats, GuestMemory, ModelConfig, QueueFormat, ViolationKind};

fn gqi_rda_up() -> H {
    let mut h = H::new(ModelConfig {
        formats: Formats::only(&[QueueFormat::GqiRda]),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let n = u32::from(h.dev.config().counters);
    assert_eq!(
        h.submit(h.configure_cmd(n, 2)),
        status::INVALID_ARGUMENT,
        "no GQI-QPL"
    );
    assert_eq!(h.submit(h.configure_cmd(n, 1)), status::PASSED);
    assert_eq!(
        h.submit(h.create_tx_cmd(0, 7)),
        status::INVALID_ARGUMENT,
        "a QPL id in RDA"
    );
    assert_eq!(h.submit(h.create_tx_cmd(0, 0xffff_ffff)), status::PASSED);
    h.tx_db = h.mem_be32(TX_RES);
    h.tx_counter = h.mem_be32(TX_RES + 4);
    // Data slots carry DMA addresses in GQI-RDA (facts §4.2).
    for i in 0..1024u64 {
        let addr = RX_QPL_BASE + (i % 64) * 2048;
        h.mem
            .write(RX_DATA_RING + i * 8, &addr.to_be_bytes())
            .unwrap();
    }
    assert_eq!(h.submit(h.create_rx_cmd(0, 0xffff_ffff)), status::PASSED);
    h.rx_db = h.mem_be32(RX_RES);
    h.rx_counter = h.mem_be32(RX_RES + 4);
    h.db(h.rx_db, 64);
    h
}

fn gqi_desc(h: &mut H, addr: u64, len: usize) {
    let mut d = [0u8; 16];
    d[3] = 1;
    d[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    d[6..8].copy_from_slice(&(len as u16).to_be_bytes());
    d[8..16].copy_from_slice(&addr.to_be_bytes());
    h.mem
        .write(TX_RING + u64::from(h.tx_posted) * 16, &d)
        .unwrap();
    h.tx_posted += 1;
    h.db(h.tx_db, h.tx_posted);
    h.settle();
}

#[test]
fn gqi_rda_tx_reads_dma_addresses_and_rx_writes_to_them() {
    let mut h = gqi_rda_up();
    let f = udp_test_frame(200, 0x33);
    h.mem.write(0x300000, &f).unwrap();
    gqi_desc(&mut h, 0x300000, f.len());
    assert_eq!(h.dev.wire()[0].bytes, f);
    assert_eq!(h.tx_completed(), 1);
    // Outside guest RAM: recorded, not sent, descriptor consumed.
    gqi_desc(&mut h, RAM as u64 + 0x10000, f.len());
    assert_eq!(h.dev.wire().len(), 1);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::OutsideGuestRam)
            .len(),
        1
    );
    assert_eq!(h.tx_completed(), 2);
    // RX lands at the slot's DMA address + 2 pad bytes.
    let r = udp_test_frame(90, 0x44);
    h.dev.inject_rx(&r);
    h.settle();
    let desc = h.mem_read(RX_DESC_RING, 64);
    assert_eq!(desc[63] & 7, 1, "sequence 1");
    let len = usize::from(u16::from_be_bytes([desc[60], desc[61]]));
    assert_eq!(
        h.mem_read(RX_QPL_BASE + 2, len - 2),
        r,
        "slot 0's DMA address + pad"
    );
}

#[test]
fn gqi_interrupts_follow_the_block_mask_and_msix() {
    let mut h = H::rev(0);
    h.bring_up(); // masks both blocks (iPXE)
    h.msix_dummy();
    h.unmask_vector(0);
    h.send(&udp_test_frame(60, 1), 0);
    assert!(h.dev.record().interrupts.is_empty(), "block masked");
    let db = h.irq_db(0);
    h.db(db, 0); // Linux's turn-up: unmask
    h.send(&udp_test_frame(60, 1), 1);
    let irq = h
        .dev
        .record()
        .interrupts
        .last()
        .cloned()
        .expect("a message");
    assert_eq!((irq.vector, irq.written_to_ram), (0, true));
    assert_eq!(h.tx_completed(), 2, "GQI writes completions regardless");
}

#[test]
fn formats_parse_and_print_like_the_cli() {
    let f: Formats = "gqi-qpl,dqo-rda".parse().unwrap();
    assert_eq!(
        f,
        Formats::only(&[QueueFormat::GqiQpl, QueueFormat::DqoRda])
    );
    assert_eq!(f.to_string(), "gqi-qpl,dqo-rda");
    let none: Formats = "none".parse().unwrap();
    assert!(none.none && none.offers(QueueFormat::GqiQpl) && !none.offers(QueueFormat::DqoRda));
    assert_eq!(none.to_string(), "none");
    assert!("gqi-qpl,bogus".parse::<Formats>().is_err());
    assert!("dqo-qpl,dqo-qpl".parse::<Formats>().is_err());
    // DESCRIBE lists exactly the offered options (ids 3 and 4 here; the 2024 device sends
    // no other option).
    let mut h = H::new(ModelConfig {
        formats: f,
        profile: gvnic_model::Profile::Y2024,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let d = h.mem_read(DESC, 80);
    assert_eq!(u16::from_be_bytes([d[30], d[31]]), 2);
    assert_eq!(u16::from_be_bytes([d[40], d[41]]), 3);
    assert_eq!(u16::from_be_bytes([d[52], d[53]]), 4);
    // The DQO_RDA body gives the ring sizes Linux 6.1 reads from it.
    assert_eq!(u16::from_be_bytes([d[64], d[65]]), 1024);
    assert_eq!(u16::from_be_bytes([d[66], d[67]]), 1024);
}

fn cmd_len_addr(op: u32, len: u64, addr: u64) -> [u8; 64] {
    let mut c = be_cmd(op);
    put64(&mut c, 8, len);
    put64(&mut c, 16, addr);
    c
}

#[test]
fn linux_probe_commands_are_accepted_and_answered() {
    let mut h = H::rev(0);
    h.start_aq();
    // VERIFY_DRIVER_COMPATIBILITY: the device reads Linux's driver info.
    let mut info = vec![0u8; 48 + 256];
    info[0] = 1;
    info[1..4].copy_from_slice(&[1, 4, 2]);
    info[16..24].copy_from_slice(&0b1011u64.to_be_bytes());
    info[48..53].copy_from_slice(b"6.1.0");
    h.mem.write(0x9000, &info).unwrap();
    assert_eq!(
        h.submit(cmd_len_addr(0x0F, info.len() as u64, 0x9000)),
        status::PASSED
    );
    let di = h.dev.record().driver_infos[0].clone();
    assert_eq!(
        (di.os_type, di.driver_version, di.capability_flags[0]),
        (1, [1, 4, 2], 0b1011)
    );
    assert_eq!(di.os_version_str1, "6.1.0");
    // GET_PTYPE_MAP: 1024 entries.
    assert_eq!(h.submit(cmd_len_addr(0x0E, 2048, 0xA000)), status::PASSED);
    assert_eq!(h.mem_read(0xA000, 2048), gvnic_model::ptype::map_bytes());
    assert_eq!(
        h.submit(cmd_len_addr(0x0E, 100, 0xA000)),
        status::INVALID_ARGUMENT
    );
    // REPORT_LINK_SPEED: a BE64 in Mbit/s.
    let mut c = be_cmd(0x0D);
    put64(&mut c, 8, 0xB000);
    assert_eq!(h.submit(c), status::PASSED);
    let speed = u64::from_be_bytes(h.mem_read(0xB000, 8).try_into().unwrap());
    assert_eq!(speed, h.dev.config().link_speed_mbps);
    // SET_DRIVER_PARAMETER MTU.
    let mut c = be_cmd(0x0B);
    put32(&mut c, 8, 1);
    put64(&mut c, 16, 1460);
    assert_eq!(h.submit(c), status::PASSED);
    put64(&mut c, 16, 9000);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT);
}

#[test]
fn report_stats_gets_nic_entries_after_the_drivers_and_detaches() {
    let mut h = H::rev(0);
    h.bring_up();
    let report = 0xC000u64;
    let mut c = cmd_len_addr(0x0C, 4096, report);
    put64(&mut c, 24, 20); // interval 20 ms
    assert_eq!(h.submit(c), status::PASSED);
    // One TX and one RX queue: the driver owns 6 + 2 entries, the NIC's 4 follow.
    let at = report + 8 + 8 * 16;
    let names: Vec<u32> = (0..4).map(|i| h.mem_be32(at + i * 16)).collect();
    assert_eq!(names, [65, 66, 67, 68]);
    // An oversized frame is dropped and counted at the next report.
    h.dev
        .inject_rx(&vec![0u8; usize::from(h.dev.max_mtu()) + 19]);
    h.run_us(25_000);
    let over = u64::from_be_bytes(h.mem_read(at + 2 * 16 + 8, 8).try_into().unwrap());
    assert_eq!(over, 1);
    // Detach (Linux, before DECONFIGURE): nothing is written any more.
    assert_eq!(h.submit(cmd_len_addr(0x0C, 0, 0)), status::PASSED);
    h.mem.write(at, &[0u8; 64]).unwrap();
    h.run_us(25_000);
    assert_eq!(h.mem_be32(at), 0);
}

#[test]
fn device_is_reset_cleared_by_run_by_the_next_request_or_never() {
    for (mode, running) in [
        (DeviceIsReset::ClearedByRun, 0),
        (
            DeviceIsReset::ClearedByResetRequest,
            device_status::DEVICE_IS_RESET,
        ),
        (DeviceIsReset::NeverCleared, device_status::DEVICE_IS_RESET),
    ] {
        let mut h = H::new(ModelConfig {
            revision: 1,
            device_is_reset: mode,
            ..Default::default()
        });
        assert_ne!(
            h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET,
            0,
            "power-on"
        );
        h.bring_up();
        assert_eq!(
            h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET,
            running,
            "{mode:?}"
        );
        // Request and poll: every behaviour answers the documented sequence.
        h.w32(DRIVER_STATUS, driver_status::RESET);
        if mode == DeviceIsReset::ClearedByResetRequest {
            assert_eq!(
                h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET,
                0,
                "in progress"
            );
        }
        if mode == DeviceIsReset::NeverCleared {
            assert_ne!(
                h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET,
                0,
                "stale"
            );
            assert!(
                !h.dev.is_reset(),
                "the bit says set, the reset has not finished"
            );
            assert!(h.wait(|h| h.r32(ADMINQ_PFN) == 0), "PFN tells the truth");
        }
        assert!(h.wait(|h| h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET != 0));
        assert!(h.wait(|h| h.dev.is_reset()));
    }
}

#[test]
fn admin_commands_take_the_admin_latency() {
    let mut h = H::rev(0);
    h.start_aq();
    let mut c = be_cmd(opcode::DESCRIBE_DEVICE);
    put64(&mut c, 8, DESC);
    put32(&mut c, 16, 1);
    put32(&mut c, 20, 4096);
    h.mem.write(AQ, &c).unwrap();
    h.w32(ADMINQ_DOORBELL, 1);
    assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 0, "not at once");
    assert_eq!(h.mem_be32(AQ + 4), status::UNSET);
    h.run_us(gvnic_model::Latencies::default().admin_us);
    assert_eq!(h.r32(ADMINQ_EVENT_COUNTER), 1);
    assert_eq!(h.mem_be32(AQ + 4), status::PASSED);
}
