//! Base address registers: decoding and sizing.
//!
//! Sizing writes all ones to a BAR and reads back which address bits are writable. While a
//! BAR holds all ones it may decode over anything (RAM, another device), so sizing first
//! turns memory and I/O decode off in the command register and restores every BAR and the
//! command register afterwards: a live device (the console, a disk in use) never notices.

use alloc::vec::Vec;

use super::regs::{self, Command};
use crate::platform::{Bdf, ConfigSpace};

/// Low BAR bits ("Base Address Registers", PCI 3.0 §6.2.5.1).
const BAR_IO: u32 = 1 << 0;
const BAR_MEM_TYPE_MASK: u32 = 0b11 << 1;
const BAR_MEM_TYPE_64: u32 = 0b10 << 1;
const BAR_MEM_PREFETCHABLE: u32 = 1 << 3;
const BAR_MEM_ADDR_MASK: u32 = !0xf;
const BAR_IO_ADDR_MASK: u32 = !0x3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Memory32,
    Memory64,
    Io,
}

/// One decoded, sized BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarInfo {
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    /// The assigned bus address (0 when firmware left it unassigned).
    pub address: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
}

impl BarInfo {
    pub fn is_memory(&self) -> bool {
        self.kind != BarKind::Io
    }
    pub fn is_64bit(&self) -> bool {
        self.kind == BarKind::Memory64
    }
}

/// What a BAR register slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarSlot {
    /// Not implemented (reads back zero after all ones were written).
    Unused,
    Bar(BarInfo),
    /// The upper dword of the 64-bit BAR in the slot before.
    Upper64,
    /// A 64-bit BAR in the last slot has no upper half: the device is broken.
    Malformed,
}

/// Sizes every BAR of `bdf` (`count` slots from offset 0x10), with decode off meanwhile.
pub fn probe_bars(config: &dyn ConfigSpace, bdf: Bdf, count: u8) -> Vec<BarSlot> {
    let mut slots = Vec::with_capacity(count as usize);
    if count == 0 {
        return slots;
    }
    let command = config.read16(bdf, regs::COMMAND);
    let decode = Command::IO_SPACE | Command::MEMORY_SPACE;
    if command & decode.bits() != 0 {
        config.write16(bdf, regs::COMMAND, command & !decode.bits());
    }
    let mut index = 0u8;
    while index < count {
        let offset = regs::BAR0 + 4 * index as u16;
        let original = config.read32(bdf, offset);
        let mask = size_mask(config, bdf, offset, original);
        if original & BAR_IO != 0 {
            let writable = mask & BAR_IO_ADDR_MASK;
            slots.push(if writable == 0 {
                BarSlot::Unused
            } else {
                BarSlot::Bar(BarInfo {
                    index,
                    kind: BarKind::Io,
                    prefetchable: false,
                    address: (original & BAR_IO_ADDR_MASK) as u64,
                    size: lowest_bit(writable as u64),
                })
            });
            index += 1;
            continue;
        }
        let prefetchable = original & BAR_MEM_PREFETCHABLE != 0;
        if original & BAR_MEM_TYPE_MASK == BAR_MEM_TYPE_64 {
            if index + 1 >= count {
                slots.push(BarSlot::Malformed);
                break;
            }
            let upper_offset = offset + 4;
            let upper = config.read32(bdf, upper_offset);
            let upper_mask = size_mask(config, bdf, upper_offset, upper);
            let writable = ((upper_mask as u64) << 32) | (mask & BAR_MEM_ADDR_MASK) as u64;
            slots.push(if writable == 0 {
                BarSlot::Unused
            } else {
                BarSlot::Bar(BarInfo {
                    index,
                    kind: BarKind::Memory64,
                    prefetchable,
                    address: ((upper as u64) << 32) | (original & BAR_MEM_ADDR_MASK) as u64,
                    size: lowest_bit(writable),
                })
            });
            slots.push(BarSlot::Upper64);
            index += 2;
        } else {
            let writable = mask & BAR_MEM_ADDR_MASK;
            slots.push(if writable == 0 {
                BarSlot::Unused
            } else {
                BarSlot::Bar(BarInfo {
                    index,
                    kind: BarKind::Memory32,
                    prefetchable,
                    address: (original & BAR_MEM_ADDR_MASK) as u64,
                    size: lowest_bit(writable as u64),
                })
            });
            index += 1;
        }
    }
    if command & decode.bits() != 0 {
        config.write16(bdf, regs::COMMAND, command);
    }
    slots
}

/// Writes all ones, reads the writable bits back, and restores the original value.
fn size_mask(config: &dyn ConfigSpace, bdf: Bdf, offset: u16, original: u32) -> u32 {
    config.write32(bdf, offset, u32::MAX);
    let mask = config.read32(bdf, offset);
    config.write32(bdf, offset, original);
    mask
}

/// The size a writable-bits mask means: its lowest set bit (bits below are hard-wired 0).
fn lowest_bit(writable: u64) -> u64 {
    1u64 << writable.trailing_zeros()
}

/// The decoded BARs only (no empty slots or upper halves).
pub fn bars_of(slots: &[BarSlot]) -> impl Iterator<Item = &BarInfo> {
    slots.iter().filter_map(|slot| match slot {
        BarSlot::Bar(bar) => Some(bar),
        _ => None,
    })
}
