//! The 2026 profile's device options, byte for byte (layouts from Linux gve_adminq.h), and
//! what the device then accepts: jumbo MTUs, MODIFY_RING's ring sizes, BUFFER_SIZES.

mod common;

use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::{Formats, ModelConfig, Profile, QueueFormat, ViolationKind};

fn h_with(profile: Profile, formats: &str) -> H {
    let mut h = H::new(ModelConfig {
        profile,
        formats: formats.parse().unwrap(),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    h
}

/// (id, required mask, body) of every option, walked the way Linux does.
fn options(h: &H) -> Vec<(u16, u32, Vec<u8>)> {
    let d = h.mem_read(DESC, 512);
    let n = u16::from_be_bytes([d[30], d[31]]);
    let total = usize::from(u16::from_be_bytes([d[32], d[33]]));
    let mut at = 40;
    let mut out = Vec::new();
    for _ in 0..n {
        let id = u16::from_be_bytes([d[at], d[at + 1]]);
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        let req = u32::from_be_bytes(d[at + 4..at + 8].try_into().unwrap());
        out.push((id, req, d[at + 8..at + 8 + len].to_vec()));
        at += 8 + len;
    }
    assert_eq!(at, total, "options end at total_length");
    out
}

#[test]
fn profile_2026_sends_every_option_with_linux_layouts() {
    let h = h_with(Profile::Y2026, "gqi-qpl");
    let opts = options(&h);
    let expect: Vec<(u16, Vec<u8>)> = vec![
        // GQI_QPL: supported_features_mask with MODIFY_RING, JUMBO, BUFFER_SIZES, FLOW,
        // RSS and NIC_TIMESTAMP (bits 0, 2, 4, 5, 7, 8).
        (0x3, vec![0, 0, 0x01, 0xB5]),
        // MODIFY_RING: mask, max_rx 4096, max_tx 4096, min_rx 512, min_tx 256.
        (0x6, vec![0, 0, 0, 1, 0x10, 0, 0x10, 0, 0x02, 0, 0x01, 0]),
        // JUMBO_FRAMES: mask, max_mtu 8896, 2 bytes padding.
        (0x8, vec![0, 0, 0, 4, 0x22, 0xC0, 0, 0]),
        // BUFFER_SIZES: mask, packet 4096, header 128.
        (0xA, vec![0, 0, 0, 0x10, 0x10, 0, 0, 0x80]),
        // FLOW_STEERING: mask, reserved, max_flow_rules 32.
        (0xB, vec![0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 32]),
        // NIC_TIMESTAMP: mask only.
        (0xD, vec![0, 0, 1, 0]),
        // RSS_CONFIG: mask, key 40 bytes, LUT 128 entries.
        (0xE, vec![0, 0, 0, 0x80, 0, 40, 0, 128]),
    ];
    assert_eq!(
        opts.iter()
            .map(|(i, _, b)| (*i, b.clone()))
            .collect::<Vec<_>>(),
        expect
    );
    assert!(opts.iter().all(|(_, req, _)| *req == 0), "required masks 0");
}

#[test]
fn every_format_option_carries_the_feature_mask_and_2024_carries_none() {
    let all = "gqi-qpl,gqi-rda,dqo-rda,dqo-qpl";
    for (profile, mask) in [(Profile::Y2026, 0x1B5u32), (Profile::Y2024, 0)] {
        let opts = options(&h_with(profile, all));
        let formats: Vec<_> = opts
            .iter()
            .filter(|(id, _, _)| matches!(id, 2 | 3 | 4 | 7))
            .collect();
        assert_eq!(formats.len(), 4);
        for (id, _, body) in formats {
            let m = u32::from_be_bytes(body[0..4].try_into().unwrap());
            assert_eq!(m, mask, "option {id} in profile {profile}");
        }
        let others = opts.len() - 4;
        assert_eq!(others, if profile == Profile::Y2026 { 6 } else { 0 });
    }
}

fn set_mtu(h: &mut H, mtu: u64) -> u32 {
    let mut c = be_cmd(opcode::SET_DRIVER_PARAMETER);
    put32(&mut c, 8, 1);
    put64(&mut c, 16, mtu);
    h.submit(c)
}

/// Linux with JUMBO_FRAMES in GQI caps its max MTU at PAGE_SIZE and first tells the device
/// its current MTU, 1500, which is above the descriptor's 1460 but within max_mtu.
#[test]
fn jumbo_frames_let_the_driver_set_mtus_up_to_max_mtu() {
    let mut h = h_with(Profile::Y2026, "gqi-qpl");
    assert_eq!(set_mtu(&mut h, 1500), status::PASSED);
    assert_eq!(set_mtu(&mut h, 8896), status::PASSED);
    assert_eq!(set_mtu(&mut h, 8897), status::INVALID_ARGUMENT);
    let mut h = h_with(Profile::Y2024, "gqi-qpl");
    assert_eq!(set_mtu(&mut h, 1460), status::PASSED);
    assert_eq!(set_mtu(&mut h, 1500), status::INVALID_ARGUMENT);
}

#[test]
fn modify_ring_allows_other_gqi_ring_sizes_up_to_its_max() {
    for (profile, want) in [
        (Profile::Y2026, status::PASSED),
        (Profile::Y2024, status::INVALID_ARGUMENT),
    ] {
        let mut h = h_with(profile, "gqi-qpl");
        assert_eq!(h.configure(), status::PASSED);
        assert_eq!(h.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES), status::PASSED);
        let mut c = h.create_tx_cmd(0, TX_QPL_ID);
        put16(&mut c, 48, 512);
        assert_eq!(h.submit(c), want, "512-entry TX ring in {profile}");
    }
    let mut h = h_with(Profile::Y2026, "gqi-qpl");
    assert_eq!(h.configure(), status::PASSED);
    assert_eq!(h.register(TX_QPL_ID, TX_QPL_BASE, TX_PAGES), status::PASSED);
    let mut c = h.create_tx_cmd(0, TX_QPL_ID);
    put16(&mut c, 48, 8192);
    assert_eq!(
        h.submit(c),
        status::INVALID_ARGUMENT,
        "above MODIFY_RING's max"
    );
    put16(&mut c, 48, 768);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "not a power of two");
}

fn dqo_rx_cmd(buf: u16, header: u16) -> [u8; 64] {
    let mut c = be_cmd(opcode::CREATE_RX_QUEUE);
    put32(&mut c, 8, 0);
    put32(&mut c, 20, 1);
    put64(&mut c, 24, RX_RES);
    put64(&mut c, 32, RX_DESC_RING);
    put64(&mut c, 40, RX_DATA_RING);
    put32(&mut c, 48, 0xffff_ffff);
    put16(&mut c, 52, 1024);
    put16(&mut c, 54, buf);
    put16(&mut c, 56, 1024);
    put16(&mut c, 60, header);
    c
}

#[test]
fn buffer_sizes_allow_4096_byte_dqo_buffers_and_header_split() {
    let n = |h: &H| u32::from(h.dev.config().counters);
    let mut h = h_with(Profile::Y2026, "dqo-rda");
    assert_eq!(h.submit(h.configure_cmd(n(&h), 3)), status::PASSED);
    assert_eq!(h.submit(dqo_rx_cmd(8192, 0)), status::INVALID_ARGUMENT);
    assert_eq!(h.submit(dqo_rx_cmd(3072, 0)), status::INVALID_ARGUMENT);
    assert_eq!(h.submit(dqo_rx_cmd(4096, 64)), status::INVALID_ARGUMENT);
    assert_eq!(h.submit(dqo_rx_cmd(4096, 0)), status::PASSED);
    assert!(h
        .dev
        .record()
        .violations_of(ViolationKind::Unmodelled)
        .is_empty());
    assert_eq!(h.destroy(opcode::DESTROY_RX_QUEUE, 0), status::PASSED);
    // Header split is accepted at the described size, and recorded as not modelled.
    assert_eq!(h.submit(dqo_rx_cmd(2048, 128)), status::PASSED);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::Unmodelled)
            .len(),
        1
    );

    let mut h = H::new(ModelConfig {
        profile: Profile::Y2024,
        formats: Formats::only(&[QueueFormat::DqoRda]),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.submit(h.configure_cmd(n(&h), 3)), status::PASSED);
    assert_eq!(h.submit(dqo_rx_cmd(4096, 0)), status::INVALID_ARGUMENT);
    assert_eq!(h.submit(dqo_rx_cmd(2048, 0)), status::PASSED);
}
