//! DQO wire layouts (gvnic-dqo.md §1.6, facts §6). Every DQO descriptor, completion and
//! doorbell is little-endian (Linux gve.rst "Endianness"), unlike GQI's big-endian ones;
//! the byte order is stated once, here, in the zerocopy field types.

use zerocopy::byteorder::little_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// TX packet descriptor type (bits 0-4 of byte 8).
pub const TX_DTYPE_PKT: u8 = 0x0C;
/// Byte 8 bit 5: the last descriptor of a packet.
pub const TX_END_OF_PACKET: u8 = 1 << 5;
/// buf_size holds 14 bits (at most 16383 bytes per descriptor).
pub const TX_BUF_SIZE_MASK: u16 = 0x3FFF;

/// TX packet descriptor, 16 bytes.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug)]
#[repr(C)]
pub struct TxPktDesc {
    /// Device address of the buffer (DQO-QPL too: a registered page's address + offset).
    pub buf_addr: U64,
    /// dtype (bits 0-4), end_of_packet (5), checksum offload (6), report_event (7).
    pub flags: u8,
    pub reserved: [u8; 3],
    /// Returned in the packet completion (gvnic-dqo.md §1.8).
    pub compl_tag: U16,
    /// Bits 0-13: bytes in this buffer.
    pub buf_size: U16,
}
pub const TX_DESC_BYTES: usize = 16;
const _: () = assert!(core::mem::size_of::<TxPktDesc>() == TX_DESC_BYTES);

/// TX completion, 8 bytes, written by the device.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy)]
#[repr(C)]
pub struct TxCompl {
    /// Bits 0-10 queue id, 11-13 type, 15 generation.
    pub id_type_gen: U16,
    /// Packet completions: the compl_tag; descriptor completions: tx_head.
    pub tag: U16,
    pub reserved: [u8; 4],
}
pub const TX_COMPL_BYTES: usize = 8;
const _: () = assert!(core::mem::size_of::<TxCompl>() == TX_COMPL_BYTES);

pub const TX_COMPL_GEN: u16 = 1 << 15;
pub const TX_COMPL_TYPE_SHIFT: u16 = 11;
pub const TX_COMPL_TYPE_MASK: u16 = 0x7;
/// Completion types (gvnic-dqo.md §1.6).
pub const TX_COMPL_MISS: u16 = 1;
pub const TX_COMPL_PKT: u16 = 2;
pub const TX_COMPL_REINJECTION: u16 = 3;
pub const TX_COMPL_DESC: u16 = 4;
/// Bit 15 of a packet completion's tag marks a "miss" completion (GVE_ALT_MISS_COMPL_BIT).
pub const TX_COMPL_TAG_MISS: u16 = 1 << 15;

impl TxCompl {
    pub fn generation(&self) -> bool {
        self.id_type_gen.get() & TX_COMPL_GEN != 0
    }
    pub fn kind(&self) -> u16 {
        (self.id_type_gen.get() >> TX_COMPL_TYPE_SHIFT) & TX_COMPL_TYPE_MASK
    }
}

/// RX buffer descriptor, 32 bytes, posted on the buffer queue.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug)]
#[repr(C)]
pub struct RxBufDesc {
    /// Our name for the buffer; the completion returns it.
    pub buf_id: U16,
    pub reserved0: [u8; 6],
    pub buf_addr: U64,
    /// 0 unless header split is on (it is not).
    pub header_buf_addr: U64,
    pub reserved1: [u8; 8],
}
pub const RX_BUF_DESC_BYTES: usize = 32;
const _: () = assert!(core::mem::size_of::<RxBufDesc>() == RX_BUF_DESC_BYTES);

/// RX completion, 32 bytes, written by the device.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy)]
#[repr(C)]
pub struct RxCompl {
    /// Bits 0-3 rxdid.
    pub rxdid: u8,
    /// Bit 0 loopback, 1 ipv6_ex_add, 2 rx_error.
    pub status0: u8,
    /// Bits 0-9 packet type, 10 ip_hdr_err, 11 udp_len_err, 12 raw_cs_invalid.
    pub ptype_flags: U16,
    /// Bits 0-13 length of this buffer's part, 14 generation, 15 buffer queue id.
    pub len_gen: U16,
    /// Bits 0-9 header length, 10 rsc, 11 split header.
    pub hdr_flags: U16,
    /// Bit 0 descriptor done, 1 end_of_packet, 2 header overflow, 3 l3/l4 processed.
    pub status1: u8,
    pub status_error1: u8,
    pub reserved0: [u8; 2],
    pub buf_id: U16,
    pub csum_or_rsc: U16,
    pub hash: [u8; 4],
    pub reserved1: [u8; 8],
    pub timestamp: [u8; 4],
}
pub const RX_COMPL_BYTES: usize = 32;
const _: () = assert!(core::mem::size_of::<RxCompl>() == RX_COMPL_BYTES);

pub const RX_COMPL_ERROR: u8 = 1 << 2;
pub const RX_COMPL_LEN_MASK: u16 = 0x3FFF;
pub const RX_COMPL_GEN: u16 = 1 << 14;
pub const RX_COMPL_EOP: u8 = 1 << 1;

impl RxCompl {
    pub fn generation(&self) -> bool {
        self.len_gen.get() & RX_COMPL_GEN != 0
    }
    pub fn buf_len(&self) -> usize {
        usize::from(self.len_gen.get() & RX_COMPL_LEN_MASK)
    }
    pub fn error(&self) -> bool {
        self.status0 & RX_COMPL_ERROR != 0
    }
    pub fn end_of_packet(&self) -> bool {
        self.status1 & RX_COMPL_EOP != 0
    }
}

/// The generation bit a completion written in the pass containing free-running index
/// `head` carries: the device writes 1 on the first pass over a zeroed ring and flips it on
/// every wrap (Linux gve.rst "DQO Traffic Queues"; iPXE's `done & count`). `entries` is a
/// power of two.
pub fn expected_generation(head: u32, entries: u32) -> bool {
    head & entries == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_descriptor_layout_matches_the_facts() {
        let desc = TxPktDesc {
            buf_addr: U64::new(0x1122_3344_5566_7788),
            flags: TX_DTYPE_PKT | TX_END_OF_PACKET,
            reserved: [0; 3],
            compl_tag: U16::new(0x0105),
            buf_size: U16::new(342),
        };
        let b = desc.as_bytes();
        assert_eq!(&b[0..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[8], 0x2C);
        assert_eq!(&b[12..14], &[0x05, 0x01]);
        assert_eq!(&b[14..16], &342u16.to_le_bytes());
    }

    #[test]
    fn tx_completion_fields() {
        // iPXE's byte view: byte 1 holds the type in bits 3-5 (PKT = 0x10) and GEN = 0x80.
        let raw = [0x00, 0x90, 0x34, 0x12, 0, 0, 0, 0];
        let (c, _) = TxCompl::read_from_prefix(&raw).unwrap();
        assert!(c.generation());
        assert_eq!(c.kind(), TX_COMPL_PKT);
        assert_eq!(c.tag.get(), 0x1234);
    }

    #[test]
    fn rx_layouts_match_the_facts() {
        let d = RxBufDesc {
            buf_id: U16::new(9),
            reserved0: [0; 6],
            buf_addr: U64::new(0xabcd_e000),
            header_buf_addr: U64::new(0),
            reserved1: [0; 8],
        };
        let b = d.as_bytes();
        assert_eq!(&b[0..2], &[9, 0]);
        assert_eq!(&b[8..16], &0xabcd_e000u64.to_le_bytes());
        let mut raw = [0u8; 32];
        raw[1] = RX_COMPL_ERROR;
        raw[4..6].copy_from_slice(&(0x4000u16 | 1500).to_le_bytes());
        raw[8] = RX_COMPL_EOP;
        raw[12..14].copy_from_slice(&63u16.to_le_bytes());
        let (c, _) = RxCompl::read_from_prefix(&raw).unwrap();
        assert!(c.generation() && c.error() && c.end_of_packet());
        assert_eq!(c.buf_len(), 1500);
        assert_eq!(c.buf_id.get(), 63);
    }

    #[test]
    fn generation_flips_on_every_wrap() {
        assert!(expected_generation(0, 64));
        assert!(expected_generation(63, 64));
        assert!(!expected_generation(64, 64));
        assert!(expected_generation(128, 64));
        // Free-running u32 wrap keeps the rhythm (2^32 is a multiple of any ring size).
        assert!(expected_generation(
            0u32.wrapping_sub(64).wrapping_add(64),
            64
        ));
    }
}
