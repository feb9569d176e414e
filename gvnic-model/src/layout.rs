//! The model's own decoders of the admin commands it executes (offsets count from the start
//! of the 64-byte entry; all fields BE, facts §3). One struct per command, so a handler never
//! repeats an offset by hand.

use crate::{be16, be32, be64};

/// CREATE_TX_QUEUE (facts §3.4; gvnic-dqo.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateTx {
    pub queue_id: u32,
    pub resources: u64,
    pub ring: u64,
    pub qpl_id: u32,
    pub ntfy_id: u32,
    /// DQO only (0 for GQI).
    pub comp_ring: u64,
    pub ring_size: u16,
    /// DQO only.
    pub comp_ring_size: u16,
}

impl CreateTx {
    pub fn parse(c: &[u8; 64]) -> Self {
        CreateTx {
            queue_id: be32(c, 8),
            resources: be64(c, 16),
            ring: be64(c, 24),
            qpl_id: be32(c, 32),
            ntfy_id: be32(c, 36),
            comp_ring: be64(c, 40),
            ring_size: be16(c, 48),
            comp_ring_size: be16(c, 50),
        }
    }
}

/// CREATE_RX_QUEUE (facts §3.5; gvnic-dqo.md §1.5). In DQO `desc_ring` is the completion
/// ring and `data_ring` the buffer ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateRx {
    pub queue_id: u32,
    pub index: u32,
    pub ntfy_id: u32,
    pub resources: u64,
    pub desc_ring: u64,
    pub data_ring: u64,
    pub qpl_id: u32,
    pub ring_size: u16,
    pub packet_buffer_size: u16,
    /// DQO only.
    pub buff_ring_size: u16,
    /// DQO only.
    pub enable_rsc: u8,
    /// DQO header split only.
    pub header_buffer_size: u16,
}

impl CreateRx {
    pub fn parse(c: &[u8; 64]) -> Self {
        CreateRx {
            queue_id: be32(c, 8),
            index: be32(c, 12),
            ntfy_id: be32(c, 20),
            resources: be64(c, 24),
            desc_ring: be64(c, 32),
            data_ring: be64(c, 40),
            qpl_id: be32(c, 48),
            ring_size: be16(c, 52),
            packet_buffer_size: be16(c, 54),
            buff_ring_size: be16(c, 56),
            enable_rsc: c[58],
            header_buffer_size: be16(c, 60),
        }
    }
}

/// A command whose only field is a BE32 at cmd+8 (DESTROY_*, UNREGISTER_PAGE_LIST).
pub fn id_at_8(c: &[u8; 64]) -> u32 {
    be32(c, 8)
}

/// A (length, address) pair of BE64s at cmd+8 and cmd+16: GET_PTYPE_MAP (gvnic-dqo.md §1.11),
/// VERIFY_DRIVER_COMPATIBILITY (facts §3.8), REPORT_STATS (plus an interval at cmd+24).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LenAddr {
    pub len: u64,
    pub addr: u64,
}

impl LenAddr {
    pub fn parse(c: &[u8; 64]) -> Self {
        LenAddr {
            len: be64(c, 8),
            addr: be64(c, 16),
        }
    }
}

/// DQO TX packet descriptor, 16 bytes LE (gvnic-dqo.md §1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DqoTxDesc {
    pub addr: u64,
    pub dtype: u8,
    pub eop: bool,
    pub csum: bool,
    pub report_event: bool,
    pub compl_tag: u16,
    pub buf_size: u16,
}

pub mod dqo_dtype {
    pub const GENERAL_CONTEXT: u8 = 0x04;
    pub const TSO_CONTEXT: u8 = 0x05;
    pub const PACKET: u8 = 0x0C;
}

impl DqoTxDesc {
    pub fn parse(d: &[u8; 16]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&d[0..8]);
        DqoTxDesc {
            addr: u64::from_le_bytes(a),
            dtype: d[8] & 0x1f,
            eop: d[8] & 0x20 != 0,
            csum: d[8] & 0x40 != 0,
            report_event: d[8] & 0x80 != 0,
            compl_tag: u16::from_le_bytes([d[12], d[13]]),
            buf_size: u16::from_le_bytes([d[14], d[15]]) & 0x3fff,
        }
    }
}

/// DQO RX buffer descriptor, 32 bytes LE (gvnic-dqo.md §1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DqoRxBuf {
    pub buf_id: u16,
    pub addr: u64,
    pub header_addr: u64,
}

impl DqoRxBuf {
    pub fn parse(d: &[u8; 32]) -> Self {
        let le64 = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&d[o..o + 8]);
            u64::from_le_bytes(a)
        };
        DqoRxBuf {
            buf_id: u16::from_le_bytes([d[0], d[1]]),
            addr: le64(8),
            header_addr: le64(16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rx_fields_sit_at_the_reference_offsets() {
        let mut c = [0u8; 64];
        c[8..12].copy_from_slice(&7u32.to_be_bytes());
        c[20..24].copy_from_slice(&3u32.to_be_bytes());
        c[32..40].copy_from_slice(&0x1000u64.to_be_bytes());
        c[40..48].copy_from_slice(&0x2000u64.to_be_bytes());
        c[56..58].copy_from_slice(&512u16.to_be_bytes());
        let r = CreateRx::parse(&c);
        assert_eq!(
            (
                r.queue_id,
                r.ntfy_id,
                r.desc_ring,
                r.data_ring,
                r.buff_ring_size
            ),
            (7, 3, 0x1000, 0x2000, 512)
        );
    }

    #[test]
    fn dqo_tx_descriptor_bits() {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        d[8] = 0x0C | 0x20 | 0x80;
        d[12..14].copy_from_slice(&9u16.to_le_bytes());
        d[14..16].copy_from_slice(&(0xC000u16 | 60).to_le_bytes());
        let t = DqoTxDesc::parse(&d);
        assert_eq!(
            (t.addr, t.dtype, t.eop, t.report_event),
            (0x1234_5678, 0x0C, true, true)
        );
        assert_eq!(
            (t.compl_tag, t.buf_size),
            (9, 60),
            "reserved bits 14-15 dropped"
        );
    }
}
