//! PCI: config-header decoding, capability walk, BAR sizing, enumeration behind bridges,
//! and [`map_bar`], the one path by which drivers obtain their register windows.

mod bar;
mod caps;
mod enumerate;
pub mod msix;
pub mod names;
pub mod regs;

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

pub use bar::{bars_of, probe_bars, BarInfo, BarKind, BarSlot};
pub use caps::{
    capabilities, pcie_port_type_name, CapDetail, Capability, CAP_MSI, CAP_MSIX, CAP_PCI_EXPRESS,
    CAP_POWER_MANAGEMENT,
};
pub use enumerate::{enumerate, probe, BridgeBuses, PciFunctionInfo};

use crate::dma::PAGE_SIZE;
use crate::platform::{Bdf, Hw, MapError, Mapping};
use regs::Command;

/// Why a BAR could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciError {
    /// Nothing answers at this bdf.
    NoSuchFunction(Bdf),
    /// BAR index beyond what this header layout has (6 for endpoints, 2 for bridges).
    NoSuchBar {
        bdf: Bdf,
        bar: u8,
        count: u8,
    },
    /// The BAR register is not implemented.
    UnusedBar {
        bdf: Bdf,
        bar: u8,
    },
    /// The slot is the upper dword of the 64-bit BAR before it.
    UpperHalf {
        bdf: Bdf,
        bar: u8,
    },
    /// A 64-bit BAR in the last slot: the device's header is malformed.
    MalformedBar {
        bdf: Bdf,
        bar: u8,
    },
    /// I/O-space BARs are reached through port I/O, not MMIO.
    IoBar {
        bdf: Bdf,
        bar: u8,
    },
    /// Firmware left the BAR at address 0.
    Unassigned {
        bdf: Bdf,
        bar: u8,
    },
    /// The BAR is smaller than a page and not page aligned: it cannot be mapped alone.
    Unaligned {
        bdf: Bdf,
        bar: u8,
        address: u64,
    },
    Map(MapError),
    /// `offset`/`len` of a partial mapping are not whole pages.
    PartUnaligned {
        bdf: Bdf,
        bar: u8,
        offset: u64,
        len: u64,
    },
    /// `offset`/`len` of a partial mapping are empty or reach past the BAR's `size`.
    PartOutside {
        bdf: Bdf,
        bar: u8,
        offset: u64,
        len: u64,
        size: u64,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::NoSuchFunction(bdf) => write!(f, "no PCI function at {bdf}"),
            PciError::NoSuchBar { bdf, bar, count } => write!(
                f,
                "{bdf} has BARs 0..{} (its header type has {count}), not BAR {bar}",
                count.saturating_sub(1)
            ),
            PciError::UnusedBar { bdf, bar } => write!(f, "{bdf} BAR {bar} is not implemented"),
            PciError::UpperHalf { bdf, bar } => write!(
                f,
                "{bdf} BAR {bar} is the upper half of 64-bit BAR {}; map BAR {} instead",
                bar - 1,
                bar - 1
            ),
            PciError::MalformedBar { bdf, bar } => {
                write!(f, "{bdf} BAR {bar} claims 64 bits but has no upper half")
            }
            PciError::IoBar { bdf, bar } => write!(
                f,
                "{bdf} BAR {bar} is an I/O-port BAR; only memory BARs can be mapped"
            ),
            PciError::Unassigned { bdf, bar } => write!(
                f,
                "{bdf} BAR {bar} is unassigned (address 0): firmware gave it no address"
            ),
            PciError::Unaligned { bdf, bar, address } => write!(
                f,
                "{bdf} BAR {bar} at {address:#x} is not page aligned and cannot be mapped on its own"
            ),
            PciError::Map(MapError::WindowFull) => write!(f, "the monitor's MMIO window is full"),
            PciError::Map(MapError::BadRange) => write!(f, "the BAR's range cannot be mapped"),
            PciError::Map(MapError::IdentityMapped) => write!(
                f,
                "the BAR overlaps the identity map (RAM): mapping it uncached would alias it"
            ),
            PciError::PartUnaligned {
                bdf,
                bar,
                offset,
                len,
            } => write!(
                f,
                "{bdf} BAR {bar}: offset {offset:#x} and length {len:#x} must be multiples of {PAGE_SIZE:#x} (whole pages)"
            ),
            PciError::PartOutside {
                bdf,
                bar,
                offset,
                len,
                size,
            } => write!(
                f,
                "{bdf} BAR {bar}: {offset:#x}+{len:#x} is not a non-empty part of the BAR's {size:#x} bytes"
            ),
        }
    }
}

impl PciError {
    /// A stable kebab-case name for evidence and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            PciError::NoSuchFunction(_) => "no-such-function",
            PciError::NoSuchBar { .. } => "no-such-bar",
            PciError::UnusedBar { .. } => "bar-unused",
            PciError::UpperHalf { .. } => "bar-upper-half",
            PciError::MalformedBar { .. } => "bar-malformed",
            PciError::IoBar { .. } => "bar-io",
            PciError::Unassigned { .. } => "bar-unassigned",
            PciError::Unaligned { .. } => "bar-unaligned",
            PciError::Map(_) => "map-failed",
            PciError::PartUnaligned { .. } => "bar-part-unaligned",
            PciError::PartOutside { .. } => "bar-part-outside",
        }
    }
}

/// Finds, sizes and maps memory BAR `bar` of `bdf`; turns on memory decode (and bus
/// mastering when the caller will have the device DMA). Mapping the same BAR twice returns
/// the same window (`Mapping::newly_mapped` is false the second time).
pub fn map_bar(
    hw: &mut Hw,
    bdf: Bdf,
    bar: u8,
    bus_master: bool,
) -> Result<(Mapping, BarInfo), PciError> {
    map_bar_part(hw, bdf, bar, None, bus_master).map(|(mapping, info, _)| (mapping, info))
}

/// The physical range of `part` (`(offset, len)`, or all of it) of a BAR: whole pages
/// inside the BAR. A BAR smaller than a page maps its page.
pub fn bar_part(
    bdf: Bdf,
    info: &BarInfo,
    part: Option<(u64, u64)>,
) -> Result<Range<u64>, PciError> {
    let bar = info.index;
    if info.address & (PAGE_SIZE as u64 - 1) != 0 {
        return Err(PciError::Unaligned {
            bdf,
            bar,
            address: info.address,
        });
    }
    let Some((offset, len)) = part else {
        return Ok(info.address..info.address + info.size.max(PAGE_SIZE as u64));
    };
    let page = PAGE_SIZE as u64;
    if offset % page != 0 || len % page != 0 {
        return Err(PciError::PartUnaligned {
            bdf,
            bar,
            offset,
            len,
        });
    }
    if len == 0 || offset.checked_add(len).is_none_or(|end| end > info.size) {
        return Err(PciError::PartOutside {
            bdf,
            bar,
            offset,
            len,
            size: info.size,
        });
    }
    Ok(info.address + offset..info.address + offset + len)
}

/// [`map_bar`] of a part of the BAR (see [`bar_part`]); also returns the physical range
/// mapped (an `unmap` of it releases this mapping).
pub fn map_bar_part(
    hw: &mut Hw,
    bdf: Bdf,
    bar: u8,
    part: Option<(u64, u64)>,
    bus_master: bool,
) -> Result<(Mapping, BarInfo, Range<u64>), PciError> {
    let info = select_bar(hw.config, bdf, bar)?;
    let range = bar_part(bdf, &info, part)?;
    // Map before enabling decode: if mapping fails, the device is left as it was.
    let mapping = hw
        .mmio
        .map(range.start, range.end - range.start)
        .map_err(PciError::Map)?;
    let command = Command::from_bits_retain(hw.config.read16(bdf, regs::COMMAND));
    let mut wanted = command | Command::MEMORY_SPACE;
    if bus_master {
        wanted |= Command::BUS_MASTER;
    }
    if wanted != command {
        hw.config.write16(bdf, regs::COMMAND, wanted.bits());
    }
    Ok((mapping, info, range))
}

/// Decodes and sizes BAR `bar` of `bdf`, with a named error for every unusable case.
pub fn select_bar(
    config: &dyn crate::platform::ConfigSpace,
    bdf: Bdf,
    bar: u8,
) -> Result<BarInfo, PciError> {
    if config.read16(bdf, regs::VENDOR_ID) == regs::NO_VENDOR {
        return Err(PciError::NoSuchFunction(bdf));
    }
    let kind = regs::HeaderKind::from_header_type(config.read8(bdf, regs::HEADER_TYPE));
    let count = kind.bar_count();
    if bar >= count {
        return Err(PciError::NoSuchBar { bdf, bar, count });
    }
    let slots: Vec<BarSlot> = probe_bars(config, bdf, count);
    match slots.get(bar as usize).copied().unwrap_or(BarSlot::Unused) {
        BarSlot::Unused => Err(PciError::UnusedBar { bdf, bar }),
        BarSlot::Upper64 => Err(PciError::UpperHalf { bdf, bar }),
        BarSlot::Malformed => Err(PciError::MalformedBar { bdf, bar }),
        BarSlot::Bar(info) if info.kind == BarKind::Io => Err(PciError::IoBar { bdf, bar }),
        BarSlot::Bar(info) if info.address == 0 => Err(PciError::Unassigned { bdf, bar }),
        BarSlot::Bar(info) => Ok(info),
    }
}

/// Turns bus mastering off (after a driver has stopped its device), leaving decode alone.
pub fn disable_bus_master(config: &dyn crate::platform::ConfigSpace, bdf: Bdf) {
    let command = Command::from_bits_retain(config.read16(bdf, regs::COMMAND));
    if command.contains(Command::BUS_MASTER) {
        config.write16(bdf, regs::COMMAND, (command - Command::BUS_MASTER).bits());
    }
}

/// Sets or clears the command register's Interrupt Disable bit (bit 10) and returns whether
/// it was set before, so a polling driver can mask the INTx pin while it owns the function
/// and hand it back as found.
pub fn set_intx_disabled(
    config: &dyn crate::platform::ConfigSpace,
    bdf: Bdf,
    disabled: bool,
) -> bool {
    let command = Command::from_bits_retain(config.read16(bdf, regs::COMMAND));
    let was = command.contains(Command::INTX_DISABLE);
    if was != disabled {
        let mut wanted = command;
        wanted.set(Command::INTX_DISABLE, disabled);
        config.write16(bdf, regs::COMMAND, wanted.bits());
    }
    was
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_bar() -> BarInfo {
        BarInfo {
            index: 2,
            kind: BarKind::Memory64,
            prefetchable: true,
            address: 0x80_0000_0000,
            size: 1 << 33,
        }
    }

    #[test]
    fn a_part_of_a_bar_is_whole_pages_inside_it() {
        let bdf = Bdf::new(0, 4, 0);
        let info = big_bar();
        assert_eq!(
            bar_part(bdf, &info, None).unwrap(),
            0x80_0000_0000..0x82_0000_0000
        );
        assert_eq!(
            bar_part(bdf, &info, Some((0x1_0000_0000, 0x20_0000))).unwrap(),
            0x81_0000_0000..0x81_0020_0000
        );
        let last_page = (1 << 33) - 0x1000;
        assert!(bar_part(bdf, &info, Some((last_page, 0x1000))).is_ok());
        for (part, code) in [
            ((0x800, 0x1000), "bar-part-unaligned"),
            ((0x1000, 0x10), "bar-part-unaligned"),
            ((0, 0), "bar-part-outside"),
            ((last_page, 0x2000), "bar-part-outside"),
            ((!0xfff, 0x1000), "bar-part-outside"),
        ] {
            let err = bar_part(bdf, &info, Some(part)).unwrap_err();
            assert_eq!(err.code(), code, "{part:x?}: {err}");
        }
    }
}
