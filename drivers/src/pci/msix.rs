//! MSI-X (PCI Local Bus 3.0 §6.8.2): the capability's message control in config space, and
//! the vector table and pending-bit array (PBA) in a BAR, over a [`RegisterWindow`].
//!
//! Everything here is little-endian, as PCI is. A table entry is 16 bytes: message address
//! low, high, message data, vector control (bit 0 = masked). Message control bit 15
//! enables MSI-X, bit 14 masks the whole function. A masked vector sends no message; its
//! pending bit records what it would have sent.
//!
//! This module knows nothing of any device; drivers decide which vectors point where.

use alloc::boxed::Box;

use super::caps::{capabilities, CapDetail, CAP_MSIX};
use super::regs::{self, HeaderKind};
use crate::platform::{Bdf, ConfigSpace, RegisterWindow};

/// Message control (capability + 2).
const CONTROL: u16 = 2;
pub const CONTROL_ENABLE: u16 = 1 << 15;
pub const CONTROL_FUNCTION_MASK: u16 = 1 << 14;

pub const ENTRY_BYTES: usize = 16;
const ENTRY_ADDR_LO: usize = 0;
const ENTRY_ADDR_HI: usize = 4;
const ENTRY_DATA: usize = 8;
const ENTRY_CONTROL: usize = 12;
pub const VECTOR_MASKED: u32 = 1 << 0;

/// Where a function's MSI-X capability and table live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixInfo {
    /// Config-space offset of the capability.
    pub cap_offset: u16,
    pub vectors: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

impl MsixInfo {
    /// Bytes of the table BAR the table (and, when it shares the BAR, the PBA) needs.
    pub fn window_len(&self) -> usize {
        let table_end = self.table_offset as usize + usize::from(self.vectors) * ENTRY_BYTES;
        if self.pba_bar == self.table_bar {
            let pba_end = self.pba_offset as usize + usize::from(self.vectors).div_ceil(64) * 8;
            table_end.max(pba_end)
        } else {
            table_end
        }
    }
}

/// The function's MSI-X capability, if it has one.
pub fn find(config: &dyn ConfigSpace, bdf: Bdf) -> Option<MsixInfo> {
    let kind = HeaderKind::from_header_type(config.read8(bdf, regs::HEADER_TYPE));
    capabilities(config, bdf, kind)
        .into_iter()
        .find(|cap| cap.id == CAP_MSIX)
        .and_then(|cap| match cap.detail {
            CapDetail::MsiX {
                table_size,
                table_bar,
                table_offset,
                pba_bar,
                pba_offset,
                ..
            } => Some(MsixInfo {
                cap_offset: u16::from(cap.offset),
                vectors: table_size,
                table_bar,
                table_offset,
                pba_bar,
                pba_offset,
            }),
            _ => None,
        })
}

/// Function-level state: (MSI-X enabled, function masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionState {
    pub enabled: bool,
    pub function_masked: bool,
}

pub fn function_state(config: &dyn ConfigSpace, bdf: Bdf, info: &MsixInfo) -> FunctionState {
    let control = config.read16(bdf, info.cap_offset + CONTROL);
    FunctionState {
        enabled: control & CONTROL_ENABLE != 0,
        function_masked: control & CONTROL_FUNCTION_MASK != 0,
    }
}

/// Sets MSI-X enable and the function mask (the table size bits are read-only). Returns
/// the state read back.
pub fn set_function(
    config: &dyn ConfigSpace,
    bdf: Bdf,
    info: &MsixInfo,
    state: FunctionState,
) -> FunctionState {
    let mut control = config.read16(bdf, info.cap_offset + CONTROL);
    control &= !(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
    if state.enabled {
        control |= CONTROL_ENABLE;
    }
    if state.function_masked {
        control |= CONTROL_FUNCTION_MASK;
    }
    config.write16(bdf, info.cap_offset + CONTROL, control);
    function_state(config, bdf, info)
}

/// The vector table (and PBA, when it shares the BAR) over the mapped table BAR.
pub struct MsixTable {
    window: Box<dyn RegisterWindow>,
    pub info: MsixInfo,
}

impl MsixTable {
    /// None when the window is too small for the table the capability describes.
    pub fn new(window: Box<dyn RegisterWindow>, info: MsixInfo) -> Option<MsixTable> {
        (window.len() >= info.window_len() && info.vectors > 0)
            .then_some(MsixTable { window, info })
    }

    pub fn vectors(&self) -> u16 {
        self.info.vectors
    }

    fn entry(&self, vector: u16) -> Option<usize> {
        (vector < self.info.vectors)
            .then(|| self.info.table_offset as usize + usize::from(vector) * ENTRY_BYTES)
    }

    /// Points `vector` at `address` with `data`, leaving its mask bit alone (program a
    /// vector only while it is masked). Out-of-range vectors are ignored.
    pub fn program(&self, vector: u16, address: u64, data: u32) {
        if let Some(at) = self.entry(vector) {
            self.window.write32(at + ENTRY_ADDR_LO, address as u32);
            self.window
                .write32(at + ENTRY_ADDR_HI, (address >> 32) as u32);
            self.window.write32(at + ENTRY_DATA, data);
        }
    }

    pub fn set_masked(&self, vector: u16, masked: bool) {
        if let Some(at) = self.entry(vector) {
            let control = self.window.read32(at + ENTRY_CONTROL);
            let control = if masked {
                control | VECTOR_MASKED
            } else {
                control & !VECTOR_MASKED
            };
            self.window.write32(at + ENTRY_CONTROL, control);
        }
    }

    pub fn mask_all(&self) {
        for vector in 0..self.info.vectors {
            self.set_masked(vector, true);
        }
    }

    /// True for a masked vector (and for one out of range: it can send nothing).
    pub fn masked(&self, vector: u16) -> bool {
        self.entry(vector)
            .is_none_or(|at| self.window.read32(at + ENTRY_CONTROL) & VECTOR_MASKED != 0)
    }

    /// (address, data) of `vector`.
    pub fn target(&self, vector: u16) -> Option<(u64, u32)> {
        self.entry(vector).map(|at| {
            let lo = u64::from(self.window.read32(at + ENTRY_ADDR_LO));
            let hi = u64::from(self.window.read32(at + ENTRY_ADDR_HI));
            (hi << 32 | lo, self.window.read32(at + ENTRY_DATA))
        })
    }

    /// The pending bit of `vector`, when the PBA shares the table's BAR (else None).
    pub fn pending(&self, vector: u16) -> Option<bool> {
        if self.info.pba_bar != self.info.table_bar || vector >= self.info.vectors {
            return None;
        }
        let at = self.info.pba_offset as usize + usize::from(vector / 32) * 4;
        Some(self.window.read32(at) & (1 << (vector % 32)) != 0)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    struct Mem(RefCell<Vec<u32>>);
    impl RegisterWindow for Mem {
        fn len(&self) -> usize {
            self.0.borrow().len() * 4
        }
        fn read8(&self, _: usize) -> u8 {
            0
        }
        fn read16(&self, _: usize) -> u16 {
            0
        }
        fn read32(&self, offset: usize) -> u32 {
            self.0.borrow()[offset / 4]
        }
        fn write8(&self, _: usize, _: u8) {}
        fn write16(&self, _: usize, _: u16) {}
        fn write32(&self, offset: usize, value: u32) {
            self.0.borrow_mut()[offset / 4] = value;
        }
    }

    #[test]
    fn program_mask_and_pending() {
        let info = MsixInfo {
            cap_offset: 0x40,
            vectors: 3,
            table_bar: 1,
            table_offset: 0,
            pba_bar: 1,
            pba_offset: 0x800,
        };
        assert_eq!(info.window_len(), 0x808);
        let mut words = std::vec![0u32; 0x1000 / 4];
        for v in 0..3 {
            words[v * 4 + 3] = VECTOR_MASKED; // reset state: masked
        }
        words[0x800 / 4] = 0b100;
        let table = MsixTable::new(Box::new(Mem(RefCell::new(words))), info).unwrap();
        table.program(1, 0x1_2345_6000, 0);
        assert_eq!(table.target(1), Some((0x1_2345_6000, 0)));
        assert!(table.masked(1));
        table.set_masked(1, false);
        assert!(!table.masked(1) && table.masked(0) && table.masked(7));
        table.mask_all();
        assert!(table.masked(1));
        assert_eq!(table.pending(2), Some(true));
        assert_eq!(table.pending(0), Some(false));
        let small = Mem(RefCell::new(std::vec![0u32; 4]));
        assert!(MsixTable::new(Box::new(small), info).is_none());
    }
}
