//! The data path against the gVNIC model: a DHCP DISCOVER goes out byte-exact with valid
//! checksums (verified here by code independent of the driver's), the model's responder
//! OFFERs, and the RX ring keeps working across sequence-number wraps and buffer reuse.

mod gvnic_support;

use drivers::gvnic::State;
use drivers::net::dhcp;
use gvnic_model::{Direction, ModelConfig};
use gvnic_support::{rig, Rig};

const MAC: [u8; 6] = [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02];

/// RFC 1071, written out again so a bug in drivers::net::checksum cannot hide itself.
fn ones_complement_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(chunk);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u64 = 0;
    for pair in bytes.chunks(2) {
        sum += (u64::from(pair[0]) << 8) | u64::from(pair[1]);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn up(rig: &mut Rig) {
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .expect("bring-up");
}

/// Checks a DISCOVER frame field by field, by offsets from the RFCs.
fn assert_is_discover(frame: &[u8], mac: [u8; 6], xid: u32) {
    assert_eq!(&frame[0..6], &[0xff; 6], "broadcast destination");
    assert_eq!(&frame[6..12], &mac, "source MAC");
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
    let ip = &frame[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[9], 17, "UDP");
    assert_eq!(&ip[12..16], &[0, 0, 0, 0]);
    assert_eq!(&ip[16..20], &[255, 255, 255, 255]);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(total, frame.len() - 14);
    assert_eq!(ones_complement_sum(&[ip]), 0xffff, "IPv4 header checksum");
    let udp = &frame[34..14 + total];
    assert_eq!(&udp[0..4], &[0, 68, 0, 67], "ports 68 -> 67");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    assert_ne!(&udp[6..8], &[0, 0], "UDP checksum present");
    let pseudo = [
        &[0u8, 0, 0, 0][..],
        &[255, 255, 255, 255],
        &[0, 17],
        &(udp.len() as u16).to_be_bytes(),
    ];
    let mut parts: Vec<&[u8]> = pseudo.to_vec();
    parts.push(udp);
    assert_eq!(ones_complement_sum(&parts), 0xffff, "UDP checksum");
    let bootp = &udp[8..];
    assert_eq!(bootp[0], 1, "BOOTREQUEST");
    assert_eq!(&bootp[4..8], &xid.to_be_bytes());
    assert_eq!(&bootp[28..34], &mac, "chaddr");
    assert_eq!(&bootp[236..240], &[99, 130, 83, 99], "magic cookie");
    // Walk the options ourselves.
    let mut options = std::collections::BTreeMap::new();
    let mut at = 240;
    while bootp[at] != 255 {
        if bootp[at] == 0 {
            at += 1;
            continue;
        }
        let len = usize::from(bootp[at + 1]);
        options.insert(bootp[at], bootp[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    assert_eq!(options[&53], [1], "DHCPDISCOVER");
    assert_eq!(options[&61][0], 1);
    assert_eq!(&options[&61][1..], &mac, "client id");
    assert!(
        options[&55].contains(&3) && options[&55].contains(&6),
        "parameter list"
    );
}

#[test]
fn discover_goes_out_and_the_offer_comes_back() {
    for revision in [0, 1] {
        let mut rig = rig(ModelConfig {
            revision,
            ..ModelConfig::default()
        });
        up(&mut rig);
        let mac = rig.nic.info().unwrap().descriptor.mac;
        assert_eq!(mac, MAC);
        let xid = dhcp::xid_from_seed(12345);
        let frame = dhcp::discover_frame(mac, xid);
        let done = rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
        assert_eq!(done.bytes, frame.len());
        {
            let model = rig.model();
            let sent: Vec<_> = model
                .wire()
                .iter()
                .filter(|f| f.direction == Direction::Tx)
                .collect();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].bytes, frame, "the wire carries exactly our frame");
            assert_is_discover(&sent[0].bytes, MAC, xid);
        }
        let reply = rig
            .nic
            .receive(&rig.clock, &mut rig.pool, 3_000_000)
            .unwrap();
        let inbound = dhcp::classify(&reply, xid);
        assert_eq!(inbound.kind, "dhcp-offer", "{inbound:?}");
        assert!(inbound.is_offer_for(xid));
        assert_eq!(inbound.ip_checksum_ok, Some(true));
        assert_ne!(inbound.udp_checksum_ok, Some(false));
        let offer = inbound.dhcp.unwrap();
        assert_eq!(offer.yiaddr, [10, 128, 0, 2]);
        assert_eq!(offer.server_id, Some([169, 254, 169, 254]));
        assert_eq!(offer.lease_secs, Some(86400));
        // The frame we got is the one the model put on the wire (pad stripped).
        {
            let model = rig.model();
            let received: Vec<_> = model
                .wire()
                .iter()
                .filter(|f| f.direction == Direction::Rx && f.dropped.is_none())
                .collect();
            assert_eq!(received[0].bytes, reply);
        }
        let mut steps = Vec::new();
        rig.nic
            .teardown(&rig.pci, &rig.clock, &mut rig.pool, &mut |s| steps.push(s))
            .unwrap();
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn rx_survives_sequence_wraps_and_buffer_reuse() {
    // 128: the ring wraps too, not only the 64 buffers. 32: a ring smaller than the 64
    // buffers, where slot and buffer numbering part ways.
    for entries in [128, 32] {
        rx_round_trips(entries);
    }
}

fn rx_round_trips(rx_queue_entries: u16) {
    let mut rig = rig(ModelConfig {
        rx_queue_entries,
        ..ModelConfig::default()
    });
    up(&mut rig);
    // 300 frames: the sequence number wraps ~43 times, every buffer is reused ~4 times,
    // the 128-entry ring wraps twice. Each frame is distinct and must come back intact.
    for n in 0..300u32 {
        let mut frame = vec![0u8; 60 + (n as usize % 900)];
        frame[0..6].copy_from_slice(&MAC);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        frame[14..18].copy_from_slice(&n.to_be_bytes());
        for (i, byte) in frame.iter_mut().enumerate().skip(18) {
            *byte = (i as u32 ^ n) as u8;
        }
        rig.model_mut().inject_rx(&frame);
        let got = rig.nic.receive(&rig.clock, &mut rig.pool, 100_000).unwrap();
        assert!(
            got == frame,
            "frame {n} differs (ring of {rx_queue_entries})"
        );
    }
    assert_eq!(rig.nic.rx_dropped(), 0);
    rig.assert_no_violations();
}

#[test]
fn a_burst_larger_than_the_posted_buffers_is_received_in_order() {
    let mut rig = rig(ModelConfig::default());
    up(&mut rig);
    // 100 frames at once: more than the 64 buffers posted; the rest arrive as we refill.
    let frames: Vec<Vec<u8>> = (0..100u8)
        .map(|n| {
            let mut f = vec![n; 64];
            f[0..6].copy_from_slice(&MAC);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            f
        })
        .collect();
    for frame in &frames {
        rig.model_mut().inject_rx(frame);
    }
    for (n, frame) in frames.iter().enumerate() {
        let got = rig.nic.receive(&rig.clock, &mut rig.pool, 100_000).unwrap();
        assert_eq!(&got, frame, "frame {n}");
    }
    let model = rig.model();
    let dropped = model.wire().iter().filter(|f| f.dropped.is_some()).count();
    assert_eq!(dropped, 0);
}

/// With a jumbo MTU the device spreads a frame over several 2 KiB buffers, every descriptor
/// but the last flagged PKT_CONT and only the first carrying the 2-byte pad: the driver must
/// join them back into exactly the frame that was sent, and drop a damaged one as one frame.
#[test]
fn jumbo_frames_are_joined_from_their_fragments() {
    let mut rig = rig(ModelConfig {
        mtu: 9000,
        faults: gvnic_model::Faults {
            rx_error_frames: 1,
            ..gvnic_model::Faults::default()
        },
        ..ModelConfig::default()
    });
    rig.nic
        .bring_up(&rig.pci, &rig.clock, &mut rig.pool, State::QueuesUp)
        .unwrap();
    let damaged = vec![0xee; 6000];
    let jumbo: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
    let small: Vec<u8> = (0..64u8).collect();
    rig.model_mut().inject_rx(&damaged);
    rig.model_mut().inject_rx(&jumbo);
    rig.model_mut().inject_rx(&small);
    let first = rig.nic.receive(&rig.clock, &mut rig.pool, 300_000).unwrap();
    assert_eq!(first.len(), jumbo.len());
    assert!(first == jumbo, "the joined frame differs from the one sent");
    assert_eq!(
        rig.nic.rx_dropped(),
        1,
        "a damaged 3-fragment frame is one drop"
    );
    // The frame after the jumbo starts fresh: its pad is stripped again.
    let second = rig.nic.receive(&rig.clock, &mut rig.pool, 300_000).unwrap();
    assert_eq!(second, small);
    rig.assert_no_violations();
}
