//! PCI configuration space: legacy ports 0xCF8/0xCFC, or ECAM when ACPI's MCFG names it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::RefCell;

use drivers::platform::{Bdf, ConfigSpace, MmioMapper, RegisterWindow};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const ENABLE: u32 = 1 << 31;
/// Configuration mechanism #1 reaches the first 256 bytes only.
const LEGACY_SIZE: u16 = 256;
/// PCIe extended configuration space per function.
const ECAM_SIZE: u16 = 4096;
/// ECAM: 1 MiB per bus, 32 KiB per device, 4 KiB per function.
const ECAM_BUS_SHIFT: u64 = 20;

fn aligned(offset: u16, width: u16, limit: u16) -> bool {
    offset.is_multiple_of(width) && offset.checked_add(width).is_some_and(|end| end <= limit)
}

/// Configuration mechanism #1. `RefCell` serializes the address/data port pair.
pub struct LegacyConfig {
    ports: RefCell<(Port<u32>, Port<u32>)>,
}

impl LegacyConfig {
    pub fn new() -> LegacyConfig {
        LegacyConfig {
            ports: RefCell::new((Port::new(CONFIG_ADDRESS), Port::new(CONFIG_DATA))),
        }
    }

    fn address(bdf: Bdf, offset: u16) -> u32 {
        ENABLE
            | (bdf.bus as u32) << 16
            | (bdf.device as u32 & 0x1f) << 11
            | (bdf.function as u32 & 0x7) << 8
            | (offset as u32 & 0xfc)
    }

    fn read_dword(&self, bdf: Bdf, offset: u16) -> u32 {
        let mut ports = self.ports.borrow_mut();
        // SAFETY: CF8/CFC are the PC's config mechanism; the address write and data read
        // happen back to back with no other user in between (single CPU, no interrupts).
        unsafe {
            ports.0.write(Self::address(bdf, offset));
            ports.1.read()
        }
    }

    /// Narrow accesses use the data port's byte lanes (0xCFC + offset % 4), so a write
    /// never read-modify-writes neighbouring registers (some are write-1-to-clear).
    fn write_lane(&self, bdf: Bdf, offset: u16, width: u16, value: u32) {
        let mut ports = self.ports.borrow_mut();
        let lane = CONFIG_DATA + (offset & 3);
        // SAFETY: as in read_dword; the lane port is inside CFC..CFF.
        unsafe {
            ports.0.write(Self::address(bdf, offset));
            match width {
                1 => Port::<u8>::new(lane).write(value as u8),
                2 => Port::<u16>::new(lane).write(value as u16),
                _ => ports.1.write(value),
            }
        }
    }

    fn read_lane(&self, bdf: Bdf, offset: u16, width: u16) -> u32 {
        let mut ports = self.ports.borrow_mut();
        let lane = CONFIG_DATA + (offset & 3);
        // SAFETY: as in read_dword.
        unsafe {
            ports.0.write(Self::address(bdf, offset));
            match width {
                1 => Port::<u8>::new(lane).read() as u32,
                2 => Port::<u16>::new(lane).read() as u32,
                _ => ports.1.read(),
            }
        }
    }
}

impl ConfigSpace for LegacyConfig {
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        if !aligned(offset, 1, LEGACY_SIZE) {
            return u8::MAX;
        }
        self.read_lane(bdf, offset, 1) as u8
    }
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        if !aligned(offset, 2, LEGACY_SIZE) {
            return u16::MAX;
        }
        self.read_lane(bdf, offset, 2) as u16
    }
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        if !aligned(offset, 4, LEGACY_SIZE) {
            return u32::MAX;
        }
        self.read_dword(bdf, offset)
    }
    fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
        if aligned(offset, 1, LEGACY_SIZE) {
            self.write_lane(bdf, offset, 1, value as u32);
        }
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        if aligned(offset, 2, LEGACY_SIZE) {
            self.write_lane(bdf, offset, 2, value as u32);
        }
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if aligned(offset, 4, LEGACY_SIZE) {
            self.write_lane(bdf, offset, 4, value);
        }
    }
    fn size(&self) -> u16 {
        LEGACY_SIZE
    }
}

/// One MCFG allocation (segment 0 only: the monitor walks one segment).
#[derive(Debug, Clone, Copy)]
pub struct EcamRange {
    pub base: u64,
    pub bus_start: u8,
    pub bus_end: u8,
}

struct MappedRange {
    range: EcamRange,
    regs: Box<dyn RegisterWindow>,
}

/// ECAM over the MMIO window. Buses no MCFG entry covers fall back to the legacy ports.
pub struct EcamConfig {
    ranges: Vec<MappedRange>,
    legacy: LegacyConfig,
}

impl EcamConfig {
    /// Maps every range; `None` if none could be mapped.
    pub fn new(mapper: &mut dyn MmioMapper, ranges: &[EcamRange]) -> Option<EcamConfig> {
        let mut mapped = Vec::new();
        for range in ranges.iter().filter(|r| r.bus_start <= r.bus_end) {
            let buses = (range.bus_end - range.bus_start) as u64 + 1;
            let start = range.base + ((range.bus_start as u64) << ECAM_BUS_SHIFT);
            if let Ok(mapping) = mapper.map(start, buses << ECAM_BUS_SHIFT) {
                mapped.push(MappedRange {
                    range: *range,
                    regs: mapping.regs,
                });
            }
        }
        (!mapped.is_empty()).then(|| EcamConfig {
            ranges: mapped,
            legacy: LegacyConfig::new(),
        })
    }

    pub fn ranges(&self) -> impl Iterator<Item = EcamRange> + '_ {
        self.ranges.iter().map(|m| m.range)
    }

    fn locate(&self, bdf: Bdf, offset: u16, width: u16) -> Option<(&dyn RegisterWindow, usize)> {
        if !aligned(offset, width, ECAM_SIZE) || bdf.device >= 32 || bdf.function >= 8 {
            return None;
        }
        let mapped = self
            .ranges
            .iter()
            .find(|m| m.range.bus_start <= bdf.bus && bdf.bus <= m.range.bus_end)?;
        let function_offset = ((bdf.bus - mapped.range.bus_start) as usize) << 20
            | (bdf.device as usize) << 15
            | (bdf.function as usize) << 12
            | offset as usize;
        Some((mapped.regs.as_ref(), function_offset))
    }

    fn covered(&self, bdf: Bdf) -> bool {
        self.ranges
            .iter()
            .any(|m| m.range.bus_start <= bdf.bus && bdf.bus <= m.range.bus_end)
    }
}

macro_rules! ecam_access {
    ($read:ident, $write:ident, $ty:ty) => {
        fn $read(&self, bdf: Bdf, offset: u16) -> $ty {
            if !self.covered(bdf) {
                return self.legacy.$read(bdf, offset);
            }
            match self.locate(bdf, offset, size_of::<$ty>() as u16) {
                Some((regs, at)) => regs.$read(at),
                None => <$ty>::MAX,
            }
        }
        fn $write(&self, bdf: Bdf, offset: u16, value: $ty) {
            if !self.covered(bdf) {
                return self.legacy.$write(bdf, offset, value);
            }
            if let Some((regs, at)) = self.locate(bdf, offset, size_of::<$ty>() as u16) {
                regs.$write(at, value);
            }
        }
    };
}

impl ConfigSpace for EcamConfig {
    ecam_access!(read8, write8, u8);
    ecam_access!(read16, write16, u16);
    ecam_access!(read32, write32, u32);
    fn size(&self) -> u16 {
        ECAM_SIZE
    }
}
