//! The capability list: a linked list in config space from the pointer at 0x34.
//!
//! Pointers come from the device, so the walk is defensive: a pointer into the header, an
//! unaligned pointer, or a loop ends the walk instead of spinning or reading garbage.

use alloc::vec::Vec;

use super::regs::{self, HeaderKind, Status};
use crate::platform::{Bdf, ConfigSpace};

pub const CAP_POWER_MANAGEMENT: u8 = 0x01;
pub const CAP_MSI: u8 = 0x05;
pub const CAP_PCI_EXPRESS: u8 = 0x10;
pub const CAP_MSIX: u8 = 0x11;

/// The header ends at 0x40; capabilities live after it, dword aligned.
const FIRST_CAP_OFFSET: u8 = 0x40;
/// 192 bytes of capability space hold at most 48 dword-sized entries: more means a loop.
const MAX_CAPS: usize = 48;

/// MSI message control bits.
const MSI_ENABLE: u16 = 1 << 0;
const MSI_64BIT: u16 = 1 << 7;
const MSI_MULTIPLE_CAPABLE_SHIFT: u16 = 1;
/// MSI-X message control and table/PBA dwords.
const MSIX_TABLE_SIZE_MASK: u16 = 0x7ff;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_BIR_MASK: u32 = 0x7;

/// One capability with the fields `lspci -v` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapDetail {
    PowerManagement {
        version: u8,
    },
    Msi {
        enabled: bool,
        is_64bit: bool,
        max_vectors: u8,
    },
    MsiX {
        enabled: bool,
        table_size: u16,
        table_bar: u8,
        table_offset: u32,
        pba_bar: u8,
        pba_offset: u32,
    },
    PciExpress {
        version: u8,
        /// Device/port type (0 endpoint, 4 root port, 7 PCIe-to-PCI bridge, ...).
        port_type: u8,
    },
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    pub offset: u8,
    pub detail: CapDetail,
}

/// Walks the capability list of `bdf`.
pub fn capabilities(config: &dyn ConfigSpace, bdf: Bdf, kind: HeaderKind) -> Vec<Capability> {
    let mut caps = Vec::new();
    let status = Status::from_bits_retain(config.read16(bdf, regs::STATUS));
    if !status.contains(Status::CAPABILITIES) {
        return caps;
    }
    let pointer_offset = match kind {
        HeaderKind::Endpoint | HeaderKind::Bridge => regs::CAP_PTR,
        HeaderKind::CardBus => regs::CARDBUS_CAP_PTR,
        HeaderKind::Unknown(_) => return caps,
    };
    let mut next = config.read8(bdf, pointer_offset) & !0x3;
    while next >= FIRST_CAP_OFFSET && caps.len() < MAX_CAPS {
        if caps.iter().any(|c: &Capability| c.offset == next) {
            break;
        }
        let offset = next as u16;
        let id = config.read8(bdf, offset);
        let detail = decode(config, bdf, id, offset);
        caps.push(Capability {
            id,
            offset: next,
            detail,
        });
        next = config.read8(bdf, offset + 1) & !0x3;
    }
    caps
}

fn decode(config: &dyn ConfigSpace, bdf: Bdf, id: u8, offset: u16) -> CapDetail {
    let control = config.read16(bdf, offset + 2);
    match id {
        CAP_POWER_MANAGEMENT => CapDetail::PowerManagement {
            version: (control & 0x7) as u8,
        },
        CAP_MSI => CapDetail::Msi {
            enabled: control & MSI_ENABLE != 0,
            is_64bit: control & MSI_64BIT != 0,
            max_vectors: 1 << ((control >> MSI_MULTIPLE_CAPABLE_SHIFT) & 0x7).min(5),
        },
        CAP_MSIX => {
            let table = config.read32(bdf, offset + 4);
            let pba = config.read32(bdf, offset + 8);
            CapDetail::MsiX {
                enabled: control & MSIX_ENABLE != 0,
                table_size: (control & MSIX_TABLE_SIZE_MASK) + 1,
                table_bar: (table & MSIX_BIR_MASK) as u8,
                table_offset: table & !MSIX_BIR_MASK,
                pba_bar: (pba & MSIX_BIR_MASK) as u8,
                pba_offset: pba & !MSIX_BIR_MASK,
            }
        }
        CAP_PCI_EXPRESS => CapDetail::PciExpress {
            version: (control & 0xf) as u8,
            port_type: ((control >> 4) & 0xf) as u8,
        },
        _ => CapDetail::Other,
    }
}

/// A name for a PCI Express device/port type.
pub fn pcie_port_type_name(port_type: u8) -> &'static str {
    match port_type {
        0 => "endpoint",
        1 => "legacy endpoint",
        4 => "root port",
        5 => "upstream switch port",
        6 => "downstream switch port",
        7 => "PCIe-to-PCI bridge",
        8 => "PCI-to-PCIe bridge",
        9 => "root complex integrated endpoint",
        10 => "root complex event collector",
        _ => "unknown port type",
    }
}
