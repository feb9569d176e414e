//! IPv4 headers without options: building (with the header checksum) and parsing (with the
//! checksum verified).

use zerocopy::byteorder::big_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::checksum;

pub const HEADER_LEN: usize = 20;
pub const PROTO_UDP: u8 = 17;
/// Version 4, header length 5 words (no options).
const VERSION_IHL: u8 = 0x45;
const DEFAULT_TTL: u8 = 64;

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy)]
#[repr(C)]
pub struct Header {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: U16,
    pub id: U16,
    pub flags_fragment: U16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: U16,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<Header>() == HEADER_LEN);

impl Header {
    /// A header for `payload_len` bytes of `protocol`, checksum filled in.
    pub fn new(src: [u8; 4], dst: [u8; 4], protocol: u8, payload_len: usize) -> Header {
        let mut header = Header {
            version_ihl: VERSION_IHL,
            tos: 0,
            total_len: U16::new((HEADER_LEN + payload_len) as u16),
            id: U16::new(0),
            flags_fragment: U16::new(0),
            ttl: DEFAULT_TTL,
            protocol,
            checksum: U16::new(0),
            src,
            dst,
        };
        header.checksum = U16::new(checksum::checksum(header.as_bytes()));
        header
    }
}

/// A parsed IPv4 packet.
#[derive(Debug)]
pub struct Packet<'a> {
    pub header: Header,
    /// The header checksum verified (summing the header, checksum included, gives 0).
    pub checksum_ok: bool,
    /// The payload, cut to total_len (Ethernet may have padded the frame).
    pub payload: &'a [u8],
}

/// Parses an IPv4 packet; None when it is not a well-formed one.
pub fn parse(data: &[u8]) -> Option<Packet<'_>> {
    let (header, _) = Header::read_from_prefix(data).ok()?;
    if header.version_ihl >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(header.version_ihl & 0xf) * 4;
    let total = usize::from(header.total_len.get());
    if header_len < HEADER_LEN || total < header_len || total > data.len() {
        return None;
    }
    Some(Packet {
        header,
        checksum_ok: checksum::checksum(&data[..header_len]) == 0,
        payload: &data[header_len..total],
    })
}
