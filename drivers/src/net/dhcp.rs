//! DHCP (RFC 2131/2132) over BOOTP: the DISCOVER we send, and reading what comes back.

use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::{ipv4, udp};

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const OP_BOOTREQUEST: u8 = 1;
const OP_BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
/// Ask the server to broadcast its reply: we have no address to receive unicast on.
const FLAG_BROADCAST: u16 = 0x8000;
/// RFC 1542: relay agents may drop BOOTP messages shorter than 300 bytes.
const MIN_BOOTP_LEN: usize = 300;

/// Option codes (RFC 2132).
pub mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST_ADDRESS: u8 = 28;
    pub const NTP_SERVERS: u8 = 42;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// Message types (option 53).
pub mod message_type {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
}

/// What we ask for: the basics a GCE guest gets (mask, router, DNS, domain, MTU 1460,
/// broadcast, lease, server, NTP).
const PARAMETERS: [u8; 9] = [
    option::SUBNET_MASK,
    option::ROUTER,
    option::DNS,
    option::DOMAIN_NAME,
    option::INTERFACE_MTU,
    option::BROADCAST_ADDRESS,
    option::LEASE_TIME,
    option::SERVER_ID,
    option::NTP_SERVERS,
];

/// The fixed BOOTP part (236 bytes), then the magic cookie and options follow.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Bootp {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: U32,
    pub secs: U16,
    pub flags: U16,
    pub ciaddr: [u8; 4],
    pub yiaddr: [u8; 4],
    pub siaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub chaddr: [u8; 16],
    pub sname: [u8; 64],
    pub file: [u8; 128],
}
pub const BOOTP_LEN: usize = 236;
const _: () = assert!(core::mem::size_of::<Bootp>() == BOOTP_LEN);

/// The BOOTP/DHCP payload of a DISCOVER from `mac` with transaction id `xid`.
pub fn discover_payload(mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let bootp = Bootp {
        op: OP_BOOTREQUEST,
        htype: HTYPE_ETHERNET,
        hlen: 6,
        hops: 0,
        xid: U32::new(xid),
        secs: U16::new(0),
        flags: U16::new(FLAG_BROADCAST),
        ciaddr: [0; 4],
        yiaddr: [0; 4],
        siaddr: [0; 4],
        giaddr: [0; 4],
        chaddr,
        sname: [0; 64],
        file: [0; 128],
    };
    let mut out = Vec::with_capacity(MIN_BOOTP_LEN);
    out.extend_from_slice(bootp.as_bytes());
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&[option::MESSAGE_TYPE, 1, message_type::DISCOVER]);
    // Client identifier: hardware type 1 (Ethernet) followed by the MAC (RFC 2132 9.14).
    out.extend_from_slice(&[option::CLIENT_ID, 7, HTYPE_ETHERNET]);
    out.extend_from_slice(&mac);
    out.extend_from_slice(&[option::PARAMETER_REQUEST_LIST, PARAMETERS.len() as u8]);
    out.extend_from_slice(&PARAMETERS);
    out.push(option::END);
    out.resize(out.len().max(MIN_BOOTP_LEN), option::PAD);
    out
}

/// The whole Ethernet frame of a DISCOVER: broadcast from `mac`, 0.0.0.0:68 ->
/// 255.255.255.255:67, IPv4 and UDP checksums filled in.
pub fn discover_frame(mac: [u8; 6], xid: u32) -> Vec<u8> {
    let payload = discover_payload(mac, xid);
    let segment = udp::build([0; 4], [255; 4], CLIENT_PORT, SERVER_PORT, &payload);
    let ip = ipv4::Header::new([0; 4], [255; 4], ipv4::PROTO_UDP, segment.len());
    let eth = ethernet::Header::new(ethernet::BROADCAST, mac, ETHERTYPE_IPV4);
    let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + ipv4::HEADER_LEN + segment.len());
    frame.extend_from_slice(eth.as_bytes());
    frame.extend_from_slice(ip.as_bytes());
    frame.extend_from_slice(&segment);
    frame
}

/// A parsed BOOTP/DHCP message (the fields a monitor reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub flags: u16,
    pub yiaddr: [u8; 4],
    pub siaddr: [u8; 4],
    pub chaddr: [u8; 6],
    pub message_type: Option<u8>,
    pub server_id: Option<[u8; 4]>,
    pub lease_secs: Option<u32>,
    pub subnet_mask: Option<[u8; 4]>,
    pub router: Option<[u8; 4]>,
    pub client_id: Option<Vec<u8>>,
    pub parameter_requests: Option<Vec<u8>>,
}

fn four(value: &[u8]) -> Option<[u8; 4]> {
    value.get(..4).map(|v| [v[0], v[1], v[2], v[3]])
}

/// Parses a BOOTP payload with a DHCP magic cookie; None when it is not one. The option
/// walk stops at END, at the end of the data, or at an option that overruns it.
pub fn parse(data: &[u8]) -> Option<Message> {
    let (bootp, rest) = Bootp::read_from_prefix(data).ok()?;
    if rest.get(..4)? != MAGIC_COOKIE {
        return None;
    }
    let mut message = Message {
        op: bootp.op,
        xid: bootp.xid.get(),
        flags: bootp.flags.get(),
        yiaddr: bootp.yiaddr,
        siaddr: bootp.siaddr,
        chaddr: [
            bootp.chaddr[0],
            bootp.chaddr[1],
            bootp.chaddr[2],
            bootp.chaddr[3],
            bootp.chaddr[4],
            bootp.chaddr[5],
        ],
        message_type: None,
        server_id: None,
        lease_secs: None,
        subnet_mask: None,
        router: None,
        client_id: None,
        parameter_requests: None,
    };
    let mut options = &rest[4..];
    while let Some((&code, tail)) = options.split_first() {
        match code {
            option::PAD => {
                options = tail;
                continue;
            }
            option::END => break,
            _ => {}
        }
        let (&len, tail) = tail.split_first()?;
        let value = tail.get(..usize::from(len))?;
        match code {
            option::MESSAGE_TYPE => message.message_type = value.first().copied(),
            option::SERVER_ID => message.server_id = four(value),
            option::LEASE_TIME => message.lease_secs = four(value).map(u32::from_be_bytes),
            option::SUBNET_MASK => message.subnet_mask = four(value),
            option::ROUTER => message.router = four(value),
            option::CLIENT_ID => message.client_id = Some(value.to_vec()),
            option::PARAMETER_REQUEST_LIST => message.parameter_requests = Some(value.to_vec()),
            _ => {}
        }
        options = &tail[usize::from(len)..];
    }
    Some(message)
}

/// What an inbound frame was, for the `gvnic txdhcp` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// "dhcp-offer" (an OFFER for our xid), "dhcp", "arp", "ipv4", "ipv6", "other", or
    /// "runt" (shorter than an Ethernet header).
    pub kind: &'static str,
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub ethertype: u16,
    pub ip_checksum_ok: Option<bool>,
    pub udp_checksum_ok: Option<bool>,
    pub dhcp: Option<Message>,
}

impl Inbound {
    /// True for a DHCP OFFER answering transaction `xid`.
    pub fn is_offer_for(&self, xid: u32) -> bool {
        self.dhcp.as_ref().is_some_and(|m| {
            m.op == OP_BOOTREPLY && m.xid == xid && m.message_type == Some(message_type::OFFER)
        })
    }
}

/// Classifies a received frame; `xid` is the transaction we wait for.
pub fn classify(frame: &[u8], xid: u32) -> Inbound {
    let Some((eth, payload)) = ethernet::Header::parse(frame) else {
        return Inbound {
            kind: "runt",
            src: [0; 6],
            dst: [0; 6],
            ethertype: 0,
            ip_checksum_ok: None,
            udp_checksum_ok: None,
            dhcp: None,
        };
    };
    let ethertype = eth.ethertype.get();
    let mut inbound = Inbound {
        kind: match ethertype {
            ETHERTYPE_IPV4 => "ipv4",
            ETHERTYPE_ARP => "arp",
            ETHERTYPE_IPV6 => "ipv6",
            _ => "other",
        },
        src: eth.src,
        dst: eth.dst,
        ethertype,
        ip_checksum_ok: None,
        udp_checksum_ok: None,
        dhcp: None,
    };
    if ethertype != ETHERTYPE_IPV4 {
        return inbound;
    }
    let Some(ip) = ipv4::parse(payload) else {
        return inbound;
    };
    inbound.ip_checksum_ok = Some(ip.checksum_ok);
    if ip.header.protocol != ipv4::PROTO_UDP {
        return inbound;
    }
    let Some(datagram) = udp::parse(ip.header.src, ip.header.dst, ip.payload) else {
        return inbound;
    };
    inbound.udp_checksum_ok = datagram.checksum_ok;
    if datagram.src_port == SERVER_PORT && datagram.dst_port == CLIENT_PORT {
        if let Some(message) = parse(datagram.payload) {
            inbound.kind = "dhcp";
            inbound.dhcp = Some(message);
            if inbound.is_offer_for(xid) {
                inbound.kind = "dhcp-offer";
            }
        }
    }
    inbound
}

/// A transaction id from a time stamp: splitmix64's finaliser spreads the entropy of the
/// low (fast-moving) clock bits over all 32 bits, so two boots or two commands a
/// microsecond apart get unrelated xids.
pub fn xid_from_seed(seed: u64) -> u32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mixed = z ^ (z >> 31);
    (mixed ^ (mixed >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::checksum;

    const MAC: [u8; 6] = [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02];

    #[test]
    fn discover_frame_is_well_formed() {
        let frame = discover_frame(MAC, 0xdead_beef);
        assert_eq!(&frame[0..6], &[0xff; 6]);
        assert_eq!(&frame[6..12], &MAC);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        // IPv4 header sums to zero with its checksum, independently recomputed here.
        assert_eq!(checksum::checksum(&frame[14..34]), 0);
        assert_eq!(&frame[26..30], &[0, 0, 0, 0]);
        assert_eq!(&frame[30..34], &[255, 255, 255, 255]);
        let inbound = classify(&frame, 0);
        assert_eq!(inbound.ip_checksum_ok, Some(true));
        assert_eq!(inbound.udp_checksum_ok, Some(true));
        // Client -> server ports: not taken for a reply.
        assert_eq!(inbound.kind, "ipv4");
        let ip = ipv4::parse(&frame[14..]).unwrap();
        let udp = udp::parse([0; 4], [255; 4], ip.payload).unwrap();
        assert_eq!((udp.src_port, udp.dst_port), (68, 67));
        assert_eq!(udp.checksum_ok, Some(true));
        let message = parse(udp.payload).unwrap();
        assert_eq!(message.xid, 0xdead_beef);
        assert_eq!(message.message_type, Some(message_type::DISCOVER));
        assert_eq!(message.chaddr, MAC);
        assert_eq!(
            message.client_id.as_deref(),
            Some(&[1, 0x42, 0x01, 0x0a, 0x80, 0x00, 0x02][..])
        );
        assert!(message
            .parameter_requests
            .unwrap()
            .contains(&option::ROUTER));
        assert!(udp.payload.len() >= MIN_BOOTP_LEN);
    }

    #[test]
    fn corrupted_udp_byte_fails_the_checksum() {
        let mut frame = discover_frame(MAC, 7);
        let last = frame.len() - 1;
        frame[last] ^= 0x01;
        let ip = ipv4::parse(&frame[14..]).unwrap();
        assert_eq!(
            udp::parse([0; 4], [255; 4], ip.payload)
                .unwrap()
                .checksum_ok,
            Some(false)
        );
    }

    #[test]
    fn xids_differ() {
        assert_ne!(xid_from_seed(1), xid_from_seed(2));
        assert_ne!(xid_from_seed(1_000_000), xid_from_seed(1_000_001));
    }
}
