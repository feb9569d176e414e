//! Identify data structures (CNS 01h controller, 00h namespace, 02h active NSID list).

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout};

pub const IDENTIFY_BYTES: usize = 4096;
pub const CNS_NAMESPACE: u32 = 0x00;
pub const CNS_CONTROLLER: u32 = 0x01;
pub const CNS_ACTIVE_NAMESPACES: u32 = 0x02;

/// Identify Controller, up to the fields a read-only driver needs.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct IdentifyControllerRaw {
    vid: U16,
    ssvid: U16,
    sn: [u8; 20],
    mn: [u8; 40],
    fr: [u8; 8],
    rab: u8,
    ieee: [u8; 3],
    cmic: u8,
    mdts: u8,
    cntlid: U16,
    ver: U32,
    rtd3r: U32,
    /// RTD3 entry latency, µs: a bound for the shutdown wait.
    rtd3e: U32,
    _reserved: [u8; 420],
    sqes: u8,
    cqes: u8,
    maxcmd: U16,
    nn: U32,
    _rest: [u8; 3576],
}

/// Identify Namespace (NVM command set), up to the LBA formats; 384.. is vendor specific.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct IdentifyNamespaceRaw {
    nsze: U64,
    ncap: U64,
    nuse: U64,
    nsfeat: u8,
    nlbaf: u8,
    flbas: u8,
    _reserved: [u8; 101],
    lbaf: [U32; 64],
    vendor: [u8; 3712],
}

const _: () = assert!(core::mem::size_of::<IdentifyControllerRaw>() == IDENTIFY_BYTES);
const _: () = assert!(core::mem::size_of::<IdentifyNamespaceRaw>() == IDENTIFY_BYTES);

/// FLBAS bit 4: metadata travels at the end of each block (extended LBA).
const FLBAS_EXTENDED: u8 = 1 << 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerIdentity {
    pub vid: u16,
    pub ssvid: u16,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// Raw MDTS exponent (0 = no limit).
    pub mdts: u8,
    pub cntlid: u16,
    pub version: u32,
    pub rtd3e_us: u32,
    pub namespaces: u32,
}

impl ControllerIdentity {
    pub fn parse(data: &[u8]) -> Option<Self> {
        let raw = IdentifyControllerRaw::ref_from_bytes(data.get(..IDENTIFY_BYTES)?).ok()?;
        Some(ControllerIdentity {
            vid: raw.vid.get(),
            ssvid: raw.ssvid.get(),
            serial: ascii_field(&raw.sn),
            model: ascii_field(&raw.mn),
            firmware: ascii_field(&raw.fr),
            mdts: raw.mdts,
            cntlid: raw.cntlid.get(),
            version: raw.ver.get(),
            rtd3e_us: raw.rtd3e.get(),
            namespaces: raw.nn.get(),
        })
    }

    /// MDTS in bytes given the controller's minimum page size; 0 = no limit.
    pub fn mdts_bytes(&self, min_page_size: u64) -> u64 {
        if self.mdts == 0 || self.mdts >= 40 {
            return 0;
        }
        min_page_size << self.mdts
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceIdentity {
    pub nsid: u32,
    /// NSZE: size in logical blocks.
    pub blocks: u64,
    pub capacity_blocks: u64,
    pub block_size: u32,
    /// Metadata bytes per block in the format in use.
    pub metadata_size: u16,
    pub extended_lba: bool,
    /// The LBA format in use (FLBAS index into LBAF).
    pub lba_format: u8,
    /// GCE: `device_name` from the JSON at byte 384 (empty if absent).
    pub gce_device_name: String,
}

impl NamespaceIdentity {
    pub fn parse(nsid: u32, data: &[u8]) -> Option<Self> {
        let raw = IdentifyNamespaceRaw::ref_from_bytes(data.get(..IDENTIFY_BYTES)?).ok()?;
        // FLBAS bits 3:0 pick the format; NVMe 2.0 adds bits 6:5 as the high bits when
        // there are more than 16 formats.
        let mut index = (raw.flbas & 0xf) as usize;
        if raw.nlbaf >= 16 {
            index |= (((raw.flbas >> 5) & 0x3) as usize) << 4;
        }
        let lbaf = raw.lbaf.get(index)?.get();
        let lbads = (lbaf >> 16) as u8;
        // A block smaller than 512 bytes or absurdly large means a broken structure.
        if !(9..=31).contains(&lbads) {
            return None;
        }
        Some(NamespaceIdentity {
            nsid,
            blocks: raw.nsze.get(),
            capacity_blocks: raw.ncap.get(),
            block_size: 1 << lbads,
            metadata_size: lbaf as u16,
            extended_lba: raw.flbas & FLBAS_EXTENDED != 0,
            lba_format: index as u8,
            gce_device_name: gce_device_name(&raw.vendor),
        })
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size as u64)
    }
}

/// An active namespace list: ascending NSIDs, ended by the first 0.
pub fn parse_active_list(data: &[u8]) -> Vec<u32> {
    let mut list = Vec::new();
    for chunk in data.chunks_exact(4).take(1024) {
        let nsid = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if nsid == 0 {
            break;
        }
        list.push(nsid);
    }
    list
}

/// An identify string: ASCII, space padded; anything unprintable becomes '?'.
fn ascii_field(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else if *b == 0 {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    String::from(text.trim())
}

/// GCE stores `{"device_name":"<disk>"}` at the start of the vendor-specific area. Only
/// that one string value is extracted, so a tiny scanner is enough; anything unexpected
/// yields an empty name rather than a guess.
pub fn gce_device_name(vendor: &[u8]) -> String {
    const KEY: &[u8] = b"\"device_name\"";
    let end = vendor.iter().position(|b| *b == 0).unwrap_or(vendor.len());
    let text = &vendor[..end.min(1024)];
    let Some(at) = text.windows(KEY.len()).position(|w| w == KEY) else {
        return String::new();
    };
    let mut rest = text[at + KEY.len()..].iter().copied().peekable();
    let skip_space = |rest: &mut core::iter::Peekable<_>| {
        while rest.next_if(|b: &u8| b.is_ascii_whitespace()).is_some() {}
    };
    skip_space(&mut rest);
    if rest.next() != Some(b':') {
        return String::new();
    }
    skip_space(&mut rest);
    if rest.next() != Some(b'"') {
        return String::new();
    }
    let mut name = String::new();
    for byte in rest {
        match byte {
            b'"' => return name,
            b'\\' => return String::new(),
            b if b.is_ascii_graphic() || b == b' ' => name.push(b as char),
            _ => return String::new(),
        }
        if name.len() > 128 {
            return String::new();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gce_name() {
        let mut vendor = [0u8; 3712];
        let json = br#"{"device_name": "persistent-disk-0"}"#;
        vendor[..json.len()].copy_from_slice(json);
        assert_eq!(gce_device_name(&vendor), "persistent-disk-0");
        assert_eq!(gce_device_name(&[0u8; 64]), "");
        assert_eq!(gce_device_name(br#"{"device_name":"unterminated"#), "");
        assert_eq!(gce_device_name(br#"{"other":1}"#), "");
    }

    #[test]
    fn namespace_formats() {
        let mut data = [0u8; 4096];
        data[0..8].copy_from_slice(&1000u64.to_le_bytes());
        data[25] = 1; // two formats
        data[26] = 1; // use format 1
        data[128..132].copy_from_slice(&(9u32 << 16).to_le_bytes());
        data[132..136].copy_from_slice(&(12u32 << 16).to_le_bytes());
        let ns = NamespaceIdentity::parse(3, &data).unwrap();
        assert_eq!((ns.nsid, ns.blocks, ns.block_size), (3, 1000, 4096));
        assert_eq!(ns.lba_format, 1);
        assert_eq!(ns.capacity_bytes(), 4_096_000);
        data[132..136].copy_from_slice(&0u32.to_le_bytes());
        assert!(
            NamespaceIdentity::parse(3, &data).is_none(),
            "LBADS 0 is invalid"
        );
    }

    #[test]
    fn controller_strings_and_mdts() {
        let mut data = [0u8; 4096];
        data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        data[4..24].copy_from_slice(b"deadbeef            ");
        data[24..38].copy_from_slice(b"QEMU NVMe Ctrl");
        data[24 + 14..64].fill(b' ');
        data[77] = 7;
        data[516..520].copy_from_slice(&256u32.to_le_bytes());
        let id = ControllerIdentity::parse(&data).unwrap();
        assert_eq!(id.serial, "deadbeef");
        assert_eq!(id.model, "QEMU NVMe Ctrl");
        assert_eq!(id.namespaces, 256);
        assert_eq!(id.mdts_bytes(4096), 512 * 1024);
        assert_eq!(
            parse_active_list(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]),
            [1, 2]
        );
    }
}
