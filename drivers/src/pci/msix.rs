//! MSI-X (PCI Local Bus 3.0 §6.8.2; PCIe base spec §7.7.2): the capability's control word,
//! and the vector table and pending-bit array over the BAR window that holds them.
//!
//! Entries are 16 bytes: message address low/high, message data, vector control (bit 0
//! masks the vector). The PBA is one bit per vector, read as 64-bit words. Every access is
//! a 32-bit one: the spec allows only dword (and qword) accesses to the table.

use alloc::vec::Vec;

use crate::platform::{Bdf, ConfigSpace, Hw, Mapping, MsiMessage, RegisterWindow};

use super::{map_bar, PciError};

use super::caps::{capabilities, CapDetail, CAP_MSIX};
use super::regs::HeaderKind;

/// Message control (cap + 2), bit 15: MSI-X enable.
pub const CONTROL_ENABLE: u16 = 1 << 15;
/// Message control bit 14: function mask (every vector masked, whatever its own bit).
pub const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Message control offset inside the capability.
const CONTROL_OFFSET: u16 = 2;
/// Bytes per table entry.
pub const ENTRY_BYTES: usize = 16;
const ENTRY_ADDR_LO: usize = 0;
const ENTRY_ADDR_HI: usize = 4;
const ENTRY_DATA: usize = 8;
const ENTRY_VECTOR_CONTROL: usize = 12;
/// Vector control bit 0: this vector is masked.
pub const VECTOR_MASKED: u32 = 1;

/// Where a function's MSI-X structures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCap {
    /// Config offset of the capability.
    pub offset: u16,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

impl MsixCap {
    /// The function's MSI-X capability, if it has one.
    pub fn find(config: &dyn ConfigSpace, bdf: Bdf) -> Option<MsixCap> {
        let kind = HeaderKind::from_header_type(config.read8(bdf, super::regs::HEADER_TYPE));
        capabilities(config, bdf, kind)
            .into_iter()
            .find_map(|cap| match cap.detail {
                CapDetail::MsiX {
                    table_size,
                    table_bar,
                    table_offset,
                    pba_bar,
                    pba_offset,
                    ..
                } if cap.id == CAP_MSIX => Some(MsixCap {
                    offset: cap.offset as u16,
                    table_size,
                    table_bar,
                    table_offset,
                    pba_bar,
                    pba_offset,
                }),
                _ => None,
            })
    }

    /// The message control word (enable, function mask, table size).
    pub fn control(&self, config: &dyn ConfigSpace, bdf: Bdf) -> u16 {
        config.read16(bdf, self.offset + CONTROL_OFFSET)
    }

    /// Writes the control word (only bits 15 and 14 are writable; the size is read-only).
    pub fn set_control(&self, config: &dyn ConfigSpace, bdf: Bdf, control: u16) {
        config.write16(bdf, self.offset + CONTROL_OFFSET, control);
    }
}

/// One vector table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixEntry {
    pub message: MsiMessage,
    /// The raw vector control dword (bit 0: masked; others reserved, kept on write).
    pub vector_control: u32,
}

impl MsixEntry {
    pub fn masked(&self) -> bool {
        self.vector_control & VECTOR_MASKED != 0
    }
}

/// The vector table and PBA, each a window into the BAR that holds it (the same BAR is
/// common). `table_offset`/`pba_offset` are byte offsets inside those windows.
pub struct MsixTable<'a> {
    pub table: &'a dyn RegisterWindow,
    pub table_offset: usize,
    pub pba: &'a dyn RegisterWindow,
    pub pba_offset: usize,
    pub size: u16,
}

impl MsixTable<'_> {
    fn entry_base(&self, index: u16) -> Option<usize> {
        (index < self.size).then(|| self.table_offset + index as usize * ENTRY_BYTES)
    }

    pub fn entry(&self, index: u16) -> Option<MsixEntry> {
        let at = self.entry_base(index)?;
        let lo = self.table.read32(at + ENTRY_ADDR_LO) as u64;
        let hi = self.table.read32(at + ENTRY_ADDR_HI) as u64;
        Some(MsixEntry {
            message: MsiMessage {
                address: hi << 32 | lo,
                data: self.table.read32(at + ENTRY_DATA),
            },
            vector_control: self.table.read32(at + ENTRY_VECTOR_CONTROL),
        })
    }

    /// Writes an entry: masks it first, so the device never sees half a message, then
    /// writes address and data, then the wanted vector control.
    pub fn set_entry(&self, index: u16, entry: MsixEntry) -> bool {
        let Some(at) = self.entry_base(index) else {
            return false;
        };
        let control = self.table.read32(at + ENTRY_VECTOR_CONTROL);
        self.table
            .write32(at + ENTRY_VECTOR_CONTROL, control | VECTOR_MASKED);
        self.table
            .write32(at + ENTRY_ADDR_LO, entry.message.address as u32);
        self.table
            .write32(at + ENTRY_ADDR_HI, (entry.message.address >> 32) as u32);
        self.table.write32(at + ENTRY_DATA, entry.message.data);
        self.table
            .write32(at + ENTRY_VECTOR_CONTROL, entry.vector_control);
        true
    }

    /// The pending bit of `index` (the PBA is read as dwords: bit i of dword i / 32).
    pub fn pending(&self, index: u16) -> Option<bool> {
        (index < self.size).then(|| {
            let word = self.pba.read32(self.pba_offset + (index as usize / 32) * 4);
            word >> (index % 32) & 1 == 1
        })
    }
}

/// A function's MSI-X state as `msix <bdf>` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsixState {
    pub cap: MsixCap,
    pub control: u16,
    /// Every vector: its entry and pending bit.
    pub vectors: Vec<(MsixEntry, bool)>,
}

impl MsixState {
    pub fn enabled(&self) -> bool {
        self.control & CONTROL_ENABLE != 0
    }
    pub fn function_masked(&self) -> bool {
        self.control & CONTROL_FUNCTION_MASK != 0
    }
}

/// Why MSI-X could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsixError {
    /// The function has no MSI-X capability.
    NoMsix(Bdf),
    /// Its table or PBA BAR could not be mapped.
    Pci(PciError),
}

impl MsixError {
    pub fn code(&self) -> &'static str {
        match self {
            MsixError::NoMsix(_) => "no-msix",
            MsixError::Pci(err) => err.code(),
        }
    }
}

impl core::fmt::Display for MsixError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MsixError::NoMsix(bdf) => write!(f, "{bdf} has no MSI-X capability"),
            MsixError::Pci(err) => write!(f, "{err}"),
        }
    }
}

/// The mapped table and PBA of a function (the BARs stay mapped: the same window as
/// `bar map`; memory decode is turned on, as `bar map` does).
pub struct MsixWindows {
    pub cap: MsixCap,
    table: Mapping,
    pba: Mapping,
}

impl MsixWindows {
    pub fn map(hw: &mut Hw, bdf: Bdf) -> Result<MsixWindows, MsixError> {
        let cap = MsixCap::find(hw.config, bdf).ok_or(MsixError::NoMsix(bdf))?;
        let (table, _) = map_bar(hw, bdf, cap.table_bar, false).map_err(MsixError::Pci)?;
        let (pba, _) = map_bar(hw, bdf, cap.pba_bar, false).map_err(MsixError::Pci)?;
        Ok(MsixWindows { cap, table, pba })
    }

    pub fn table(&self) -> MsixTable<'_> {
        MsixTable {
            table: &*self.table.regs,
            table_offset: self.cap.table_offset as usize,
            pba: &*self.pba.regs,
            pba_offset: self.cap.pba_offset as usize,
            size: self.cap.table_size,
        }
    }
}

/// Reads the control word, every entry and every pending bit (32-bit accesses only).
pub fn read_state(hw: &mut Hw, bdf: Bdf) -> Result<MsixState, MsixError> {
    let windows = MsixWindows::map(hw, bdf)?;
    let table = windows.table();
    let vectors = (0..windows.cap.table_size)
        .filter_map(|i| Some((table.entry(i)?, table.pending(i)?)))
        .collect();
    Ok(MsixState {
        cap: windows.cap,
        control: windows.cap.control(hw.config, bdf),
        vectors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::cell::RefCell;

    struct Regs(RefCell<Vec<u8>>);
    impl RegisterWindow for Regs {
        fn len(&self) -> usize {
            self.0.borrow().len()
        }
        fn read8(&self, o: usize) -> u8 {
            self.0.borrow()[o]
        }
        fn read16(&self, o: usize) -> u16 {
            u16::from_le_bytes(self.0.borrow()[o..o + 2].try_into().unwrap())
        }
        fn read32(&self, o: usize) -> u32 {
            u32::from_le_bytes(self.0.borrow()[o..o + 4].try_into().unwrap())
        }
        fn write8(&self, o: usize, v: u8) {
            self.0.borrow_mut()[o] = v;
        }
        fn write16(&self, o: usize, v: u16) {
            self.0.borrow_mut()[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
        fn write32(&self, o: usize, v: u32) {
            self.0.borrow_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    #[test]
    fn entries_and_pending_bits() {
        let regs = Regs(RefCell::new(vec![0u8; 0x3000]));
        // Reset state of a table: every vector masked.
        for i in 0..4 {
            regs.write32(0x2000 + i * 16 + 12, 1);
        }
        regs.write32(0x2800, 0b100);
        let t = MsixTable {
            table: &regs,
            table_offset: 0x2000,
            pba: &regs,
            pba_offset: 0x2800,
            size: 4,
        };
        assert!(t.entry(0).unwrap().masked());
        let message = MsiMessage {
            address: 0xfee0_1000,
            data: 0x41,
        };
        assert!(t.set_entry(
            1,
            MsixEntry {
                message,
                vector_control: 0
            }
        ));
        let e = t.entry(1).unwrap();
        assert_eq!(e.message, message);
        assert!(!e.masked());
        assert_eq!(
            regs.read32(0x2010),
            0xfee0_1000,
            "address low at +0, little-endian"
        );
        assert_eq!(t.pending(2), Some(true));
        assert_eq!(t.pending(1), Some(false));
        assert_eq!(t.entry(4), None);
        assert_eq!(t.pending(4), None);
    }
}
