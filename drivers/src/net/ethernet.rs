//! Ethernet II framing (no FCS: the NIC adds and strips it).

use zerocopy::byteorder::big_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const HEADER_LEN: usize = 14;
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy)]
#[repr(C)]
pub struct Header {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: U16,
}
const _: () = assert!(core::mem::size_of::<Header>() == HEADER_LEN);

impl Header {
    pub fn new(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Header {
        Header {
            dst,
            src,
            ethertype: U16::new(ethertype),
        }
    }

    /// Splits a frame into its header and payload; None when shorter than a header.
    pub fn parse(frame: &[u8]) -> Option<(Header, &[u8])> {
        Header::read_from_prefix(frame).ok()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> alloc::string::String {
    alloc::format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    )
}

pub fn ethertype_name(ethertype: u16) -> &'static str {
    match ethertype {
        ETHERTYPE_IPV4 => "ipv4",
        ETHERTYPE_ARP => "arp",
        ETHERTYPE_IPV6 => "ipv6",
        _ => "other",
    }
}
