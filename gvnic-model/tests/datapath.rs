//! GQI-QPL TX and RX, the sequence-number wrap, the responder and the pcap file.

mod common;
use common::*;
use gvnic_model::rx::rx_flags;
use gvnic_model::{Direction, GuestMemory, ModelConfig, ViolationKind};

#[test]
fn tx_single_descriptor_reaches_the_wire_and_completes() {
    let mut h = H::rev(0);
    h.bring_up();
    let f = udp_test_frame(300, 0xab);
    h.send(&f, 3);
    assert_eq!(h.tx_completed(), 1);
    let w = h.dev.wire();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].direction, &w[0].bytes), (Direction::Tx, &f));
    h.send(&f, 0);
    assert_eq!(h.tx_completed(), 2);
    assert!(
        h.dev.record().violations.is_empty(),
        "{:?}",
        h.dev.record().violations
    );
}

#[test]
fn tx_multi_segment_gathers_across_qpl_pages() {
    let mut h = H::rev(1);
    h.bring_up();
    let f = udp_test_frame(1000, 0x5a);
    // First segment 200 bytes at QPL offset 4000 (crosses into page 1), rest at 8192.
    h.mem.write(TX_QPL_BASE + 4000, &f[..200]).unwrap();
    h.mem.write(TX_QPL_BASE + 8192, &f[200..]).unwrap();
    let mut d = [0u8; 32];
    d[3] = 2;
    d[4..6].copy_from_slice(&(f.len() as u16).to_be_bytes());
    d[6..8].copy_from_slice(&200u16.to_be_bytes());
    d[8..16].copy_from_slice(&4000u64.to_be_bytes());
    d[16] = 0x20;
    d[22..24].copy_from_slice(&((f.len() - 200) as u16).to_be_bytes());
    d[24..32].copy_from_slice(&8192u64.to_be_bytes());
    h.mem.write(TX_RING, &d).unwrap();
    // Ring with only the first descriptor: the packet is incomplete, nothing happens yet.
    h.db(h.tx_db, 1);
    assert_eq!(h.dev.wire().len(), 0);
    h.db(h.tx_db, 2);
    h.settle();
    assert_eq!(h.dev.wire()[0].bytes, f);
    assert_eq!(h.tx_completed(), 2, "counts descriptors, not packets");
}

#[test]
fn tx_qpl_offset_outside_registered_pages_is_a_violation_and_not_sent() {
    let mut h = H::rev(0);
    h.bring_up();
    let f = udp_test_frame(100, 1);
    // TX QPL is 4 pages = 16 KiB; buffer 8 starts at 16 KiB.
    h.send(&f, 8);
    assert!(h.dev.wire().is_empty());
    assert_eq!(
        h.tx_completed(),
        1,
        "descriptor consumed (the driver is not wedged)"
    );
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::QplOffsetOutOfRange)
            .len(),
        1
    );
}

#[test]
fn tx_malformed_descriptors_are_recorded() {
    let mut h = H::rev(0);
    h.bring_up();
    let mut d = [0u8; 16];
    d[3] = 1;
    d[4..6].copy_from_slice(&100u16.to_be_bytes());
    d[6..8].copy_from_slice(&90u16.to_be_bytes()); // seg_len != len
    h.mem.write(TX_RING, &d).unwrap();
    d[0] = 0x20; // a segment where a packet must start
    h.mem.write(TX_RING + 16, &d).unwrap();
    d = [0u8; 16]; // desc_cnt 0
    h.mem.write(TX_RING + 32, &d).unwrap();
    h.db(h.tx_db, 3);
    h.settle();
    assert!(h.dev.wire().is_empty());
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::BadDescriptor)
            .len(),
        3
    );
    assert_eq!(h.tx_completed(), 3);
    // Oversized frame (above the largest MTU the device carries + Ethernet header).
    h.tx_posted = 3;
    h.send(&vec![0u8; usize::from(h.dev.max_mtu()) + 19], 0);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::BadDescriptor)
            .len(),
        4
    );
}

#[test]
fn tx_doorbell_beyond_ring_is_ignored() {
    let mut h = H::rev(0);
    h.bring_up();
    h.db(h.tx_db, 1025);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::DoorbellBeyondRing)
            .len(),
        1
    );
    assert_eq!(h.tx_completed(), 0);
    assert!(h.dev.wire().is_empty());
}

#[test]
fn rx_frame_lands_with_pad_len_and_flags() {
    let mut h = H::rev(0);
    h.bring_up();
    let f = udp_test_frame(200, 0x77);
    h.dev.inject_rx(&f);
    assert!(h.poll_rx().is_none(), "nothing before time passes");
    h.tick();
    let desc = h.mem_read(RX_DESC_RING, 64);
    assert_eq!(
        u16::from_be_bytes([desc[60], desc[61]]) as usize,
        f.len() + 2,
        "len includes the pad"
    );
    assert_eq!(&h.mem_read(RX_QPL_BASE, 2), &[0, 0]);
    let (got, flags) = h.poll_rx().unwrap();
    assert_eq!(got, f);
    assert_eq!(flags & !7, rx_flags::IPV4 | rx_flags::UDP);
    assert_eq!(
        h.mem_be32(COUNTERS + u64::from(h.rx_counter) * 4),
        1,
        "RX event counter (nanos)"
    );
    assert_eq!(h.dev.wire().last().unwrap().direction, Direction::Rx);
}

#[test]
fn rx_waits_for_posted_slots() {
    let mut h = H::rev(0);
    h.bring_up(); // 64 slots posted
    for i in 0..66u8 {
        h.dev.inject_rx(&udp_test_frame(60, i));
    }
    h.tick();
    for i in 0..64u8 {
        let (f, _) = h.poll_rx().unwrap();
        assert_eq!(f, udp_test_frame(60, i));
    }
    assert!(h.poll_rx().is_none(), "slot 64 not posted");
    h.tick();
    assert!(h.poll_rx().is_none());
    h.db(h.rx_db, 66);
    assert_eq!(h.poll_rx().unwrap().0, udp_test_frame(60, 64));
    assert_eq!(h.poll_rx().unwrap().0, udp_test_frame(60, 65));
    // A fill count more than a ring ahead, or backwards, is refused.
    h.db(h.rx_db, 66 + 1025);
    h.db(h.rx_db, 10);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::DoorbellBeyondRing)
            .len(),
        2
    );
}

#[test]
fn rx_sequence_numbers_cycle_1_to_7_skipping_0() {
    let mut h = H::new(ModelConfig {
        rx_queue_entries: 16,
        ..Default::default()
    });
    h.bring_up(); // ring of 16, 64 posted -> clamp: post 16
    let mut seqs = Vec::new();
    let mut posted = 0u32;
    for i in 0..40u32 {
        if posted <= i {
            posted = i + 16;
            h.db(h.rx_db, posted);
        }
        h.dev.inject_rx(&udp_test_frame(50, i as u8));
        h.tick();
        let slot = u64::from(i % 16);
        let desc = h.mem_read(RX_DESC_RING + slot * 64, 64);
        seqs.push(desc[63] & 7);
        assert_eq!(
            h.poll_rx().unwrap().0,
            udp_test_frame(50, i as u8),
            "frame {i}"
        );
    }
    let expect: Vec<u8> = (0..40).map(|i| (i % 7) as u8 + 1).collect();
    assert_eq!(seqs, expect);
    assert!(!seqs.contains(&0));
}

#[test]
fn rx_slot_outside_the_qpl_gets_an_err_descriptor() {
    let mut h = H::rev(0);
    h.bring_up();
    // Slot 0 points past the 32-page RX QPL.
    h.mem
        .write(RX_DATA_RING, &(32u64 * 4096).to_be_bytes())
        .unwrap();
    h.dev.inject_rx(&udp_test_frame(60, 1));
    h.tick();
    let desc = h.mem_read(RX_DESC_RING, 64);
    let fs = u16::from_be_bytes([desc[62], desc[63]]);
    assert_eq!(fs, rx_flags::ERR | 1);
    assert_eq!(
        h.dev
            .record()
            .violations_of(ViolationKind::QplOffsetOutOfRange)
            .len(),
        1
    );
}

#[test]
fn responder_offers_dhcp_with_the_same_xid_and_answers_arp() {
    let mut h = H::rev(0);
    h.bring_up();
    let mac = h.dev.config().mac;
    h.send(&dhcp_discover(mac, 0xdead_beef), 0);
    h.tick();
    let (offer, flags) = h.poll_rx().expect("an OFFER");
    assert_eq!(flags & !7, rx_flags::IPV4 | rx_flags::UDP);
    let bootp = &offer[14 + 20 + 8..];
    assert_eq!(bootp[0], 2);
    assert_eq!(&bootp[4..8], &0xdead_beefu32.to_be_bytes());
    assert_eq!(&bootp[16..20], &[10, 128, 0, 2], "yiaddr from the MAC");
    let opts = gvnic_model::responder::parse_options(&bootp[240..]);
    assert!(opts.contains(&(53, vec![2])));
    assert!(opts.contains(&(54, vec![169, 254, 169, 254])));
    // IP header checksum verifies.
    assert_eq!(gvnic_model::responder::inet_checksum(&[&offer[14..34]]), 0);

    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&[10, 128, 0, 2, 0, 0, 0, 0, 0, 0, 10, 128, 0, 1]);
    h.send(&arp, 1);
    h.tick();
    let (reply, _) = h.poll_rx().expect("an ARP reply");
    assert_eq!(&reply[0..6], &mac);
    assert_eq!(&reply[20..22], &[0, 2]);
    assert_eq!(&reply[22..28], &[0x42, 1, 10, 128, 0, 1], "gateway MAC");
    assert_eq!(&reply[28..32], &[10, 128, 0, 1]);
}

#[test]
fn no_responder_means_silence() {
    let mut cfg = ModelConfig::default();
    cfg.responder.enabled = false;
    let mut h = H::new(cfg);
    h.bring_up();
    let mac = h.dev.config().mac;
    h.send(&dhcp_discover(mac, 1), 0);
    h.tick();
    h.tick();
    assert!(h.poll_rx().is_none());
}

#[test]
fn pcap_holds_every_tx_and_rx_frame() {
    let dir = std::env::temp_dir().join(format!("gvnic-model-pcap-{}", std::process::id()));
    let mut h = H::rev(0);
    h.dev.set_pcap(&dir).unwrap();
    h.bring_up();
    let mac = h.dev.config().mac;
    let d = dhcp_discover(mac, 7);
    h.send(&d, 0);
    h.tick();
    let bytes = std::fs::read(&dir).unwrap();
    std::fs::remove_file(&dir).ok();
    assert_eq!(&bytes[0..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(&bytes[20..24], &1u32.to_le_bytes(), "LINKTYPE_ETHERNET");
    let mut at = 24;
    let mut frames = Vec::new();
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], d);
    assert_eq!(frames[1], h.dev.wire()[1].bytes);
}

#[test]
fn peer_socket_exchanges_frames() {
    let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let mut cfg = ModelConfig::default();
    cfg.responder.enabled = false;
    let mut h = H::new(cfg);
    h.dev.set_peer(gvnic_model::wire::Peer::Unix(a)).unwrap();
    h.bring_up();
    let f = udp_test_frame(80, 9);
    h.send(&f, 0);
    let mut buf = [0u8; 2048];
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &f[..]);
    let back = udp_test_frame(90, 3);
    b.send(&back).unwrap();
    h.tick();
    h.tick();
    assert_eq!(h.poll_rx().unwrap().0, back);
}
