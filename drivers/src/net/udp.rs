//! UDP over IPv4, with the checksum over the pseudo-header (RFC 768).

use zerocopy::byteorder::big_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::checksum;
use super::ipv4::PROTO_UDP;

pub const HEADER_LEN: usize = 8;

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy)]
#[repr(C)]
pub struct Header {
    pub src_port: U16,
    pub dst_port: U16,
    pub len: U16,
    pub checksum: U16,
}
const _: () = assert!(core::mem::size_of::<Header>() == HEADER_LEN);

/// The checksum of a UDP datagram (`segment` = header + payload, its checksum field
/// included as it stands) with the IPv4 pseudo-header.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], segment: &[u8]) -> u16 {
    let mut sum = checksum::add(0, &src);
    sum = checksum::add(sum, &dst);
    sum = checksum::add(sum, &[0, PROTO_UDP]);
    sum = checksum::add(sum, &(segment.len() as u16).to_be_bytes());
    checksum::finish(checksum::add(sum, segment))
}

/// Builds header + payload with the checksum filled in.
pub fn build(
    src: [u8; 4],
    dst: [u8; 4],
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> alloc::vec::Vec<u8> {
    let header = Header {
        src_port: U16::new(src_port),
        dst_port: U16::new(dst_port),
        len: U16::new((HEADER_LEN + payload.len()) as u16),
        checksum: U16::new(0),
    };
    let mut segment = alloc::vec::Vec::with_capacity(HEADER_LEN + payload.len());
    segment.extend_from_slice(header.as_bytes());
    segment.extend_from_slice(payload);
    let mut sum = pseudo_sum(src, dst, &segment);
    // A computed 0 goes out as all ones: 0 means "no checksum" in UDP over IPv4.
    if sum == 0 {
        sum = 0xffff;
    }
    segment[6..8].copy_from_slice(&sum.to_be_bytes());
    segment
}

#[derive(Debug)]
pub struct Datagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// None when the sender sent no checksum (0), else whether it verified.
    pub checksum_ok: Option<bool>,
    pub payload: &'a [u8],
}

/// Parses a UDP datagram carried in an IPv4 packet from `src` to `dst`.
pub fn parse(src: [u8; 4], dst: [u8; 4], data: &[u8]) -> Option<Datagram<'_>> {
    let (header, _) = Header::read_from_prefix(data).ok()?;
    let len = usize::from(header.len.get());
    if len < HEADER_LEN || len > data.len() {
        return None;
    }
    let checksum_ok = match header.checksum.get() {
        0 => None,
        _ => Some(pseudo_sum(src, dst, &data[..len]) == 0),
    };
    Some(Datagram {
        src_port: header.src_port.get(),
        dst_port: header.dst_port.get(),
        checksum_ok,
        payload: &data[HEADER_LEN..len],
    })
}
