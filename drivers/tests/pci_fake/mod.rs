//! An in-memory PCI configuration space: functions with writable-bit masks, so BAR sizing
//! behaves as on hardware, plus a watchdog for sizing while decode is on.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use drivers::platform::{Bdf, ConfigSpace};

pub struct FakeFunction {
    pub bytes: [u8; 256],
    /// Writable bits per dword (index = offset / 4); everything else is read-only.
    pub writable: [u32; 64],
}

impl FakeFunction {
    pub fn new(vendor: u16, device: u16, class_code: u32, revision: u8, header_type: u8) -> Self {
        let mut f = FakeFunction {
            bytes: [0; 256],
            writable: [0; 64],
        };
        f.set16(0x00, vendor);
        f.set16(0x02, device);
        f.set32(0x08, (class_code << 8) | revision as u32);
        f.bytes[0x0e] = header_type;
        // Command register: the decode and bus master bits are writable.
        f.writable[1] = 0x0000_0007 | (1 << 10);
        f.writable[15] = 0xff; // interrupt line
        f
    }

    pub fn set16(&mut self, offset: usize, value: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }
    pub fn set32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    pub fn get32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes[offset..offset + 4].try_into().unwrap())
    }

    /// A 32-bit memory BAR of `size` bytes at `address`.
    pub fn mem32_bar(mut self, index: usize, address: u32, size: u32, prefetch: bool) -> Self {
        let offset = 0x10 + 4 * index;
        self.set32(offset, address | if prefetch { 0x8 } else { 0 });
        self.writable[offset / 4] = !(size - 1) & !0xf;
        self
    }

    /// A 64-bit memory BAR (slots index and index + 1).
    pub fn mem64_bar(mut self, index: usize, address: u64, size: u64, prefetch: bool) -> Self {
        let offset = 0x10 + 4 * index;
        self.set32(
            offset,
            (address as u32) | 0x4 | if prefetch { 0x8 } else { 0 },
        );
        self.set32(offset + 4, (address >> 32) as u32);
        let mask = !(size - 1);
        self.writable[offset / 4] = (mask as u32) & !0xf;
        self.writable[offset / 4 + 1] = (mask >> 32) as u32;
        self
    }

    /// An I/O BAR; like real PIIX/QEMU devices only the low 16 address bits are writable.
    pub fn io_bar(mut self, index: usize, port: u16, size: u32) -> Self {
        let offset = 0x10 + 4 * index;
        self.set32(offset, port as u32 | 0x1);
        self.writable[offset / 4] = !(size - 1) & 0xfffc;
        self
    }

    pub fn command(mut self, command: u16) -> Self {
        self.set16(0x04, command);
        self
    }

    pub fn subsystem(mut self, vendor: u16, id: u16) -> Self {
        self.set16(0x2c, vendor);
        self.set16(0x2e, id);
        self
    }

    /// Bus numbers of a type-1 header.
    pub fn bridge_buses(mut self, primary: u8, secondary: u8, subordinate: u8) -> Self {
        self.bytes[0x18] = primary;
        self.bytes[0x19] = secondary;
        self.bytes[0x1a] = subordinate;
        self
    }

    /// Appends capabilities: (id, offset, body bytes after id/next).
    pub fn caps(mut self, caps: &[(u8, u8, &[u8])]) -> Self {
        self.bytes[0x06] |= 0x10;
        self.bytes[0x34] = caps.first().map_or(0, |c| c.1);
        for (i, (id, offset, body)) in caps.iter().enumerate() {
            let o = *offset as usize;
            self.bytes[o] = *id;
            self.bytes[o + 1] = caps.get(i + 1).map_or(0, |c| c.1);
            self.bytes[o + 2..o + 2 + body.len()].copy_from_slice(body);
        }
        self
    }
}

#[derive(Default)]
pub struct FakeConfig {
    pub functions: RefCell<BTreeMap<Bdf, FakeFunction>>,
    /// Set if a BAR held all ones while its function decoded memory or I/O.
    pub sized_while_decoding: RefCell<Vec<(Bdf, u16)>>,
    /// Every config write, for checking what was touched.
    pub writes: RefCell<Vec<(Bdf, u16, u32)>>,
}

impl FakeConfig {
    pub fn add(&self, bdf: Bdf, function: FakeFunction) {
        self.functions.borrow_mut().insert(bdf, function);
    }

    pub fn snapshot(&self, bdf: Bdf) -> [u8; 256] {
        self.functions.borrow()[&bdf].bytes
    }

    fn read(&self, bdf: Bdf, offset: u16, width: usize) -> u32 {
        let functions = self.functions.borrow();
        let Some(f) = functions.get(&bdf) else {
            return u32::MAX >> (32 - 8 * width);
        };
        let mut value = 0u32;
        for i in 0..width {
            value |= (f.bytes[offset as usize + i] as u32) << (8 * i);
        }
        value
    }

    fn write(&self, bdf: Bdf, offset: u16, width: usize, value: u32) {
        self.writes.borrow_mut().push((bdf, offset, value));
        let mut functions = self.functions.borrow_mut();
        let Some(f) = functions.get_mut(&bdf) else {
            return;
        };
        let dword = (offset & !3) as usize;
        let shift = 8 * (offset as usize & 3);
        let lane_mask = if width == 4 {
            u32::MAX
        } else {
            ((1u32 << (8 * width)) - 1) << shift
        };
        let writable = f.writable[dword / 4] & lane_mask;
        let old = f.get32(dword);
        let new = (old & !writable) | ((value << shift) & writable);
        f.set32(dword, new);
        let decoding = f.get32(0x04) & 0x3 != 0;
        if (0x10..0x28).contains(&dword) && decoding && value == u32::MAX {
            self.sized_while_decoding
                .borrow_mut()
                .push((bdf, dword as u16));
        }
    }
}

impl ConfigSpace for FakeConfig {
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        self.read(bdf, offset, 1) as u8
    }
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        self.read(bdf, offset, 2) as u16
    }
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.read(bdf, offset, 4)
    }
    fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
        self.write(bdf, offset, 1, value as u32)
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        self.write(bdf, offset, 2, value as u32)
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        self.write(bdf, offset, 4, value)
    }
    fn size(&self) -> u16 {
        256
    }
}

/// A register window of plain memory (what `FakeMapper` hands out).
pub struct NullWindow(pub usize);

impl drivers::platform::RegisterWindow for NullWindow {
    fn len(&self) -> usize {
        self.0
    }
    fn read8(&self, _: usize) -> u8 {
        0
    }
    fn read16(&self, _: usize) -> u16 {
        0
    }
    fn read32(&self, _: usize) -> u32 {
        0
    }
    fn write8(&self, _: usize, _: u8) {}
    fn write16(&self, _: usize, _: u16) {}
    fn write32(&self, _: usize, _: u32) {}
}

/// Records mappings; the same range twice gives the same window, as the contract says.
#[derive(Default)]
pub struct FakeMapper {
    pub maps: Vec<(u64, u64, u64)>,
    pub unmapped: Vec<(u64, u64)>,
    next_window: u64,
}

impl drivers::platform::MmioMapper for FakeMapper {
    fn map(
        &mut self,
        phys: u64,
        len: u64,
    ) -> Result<drivers::platform::Mapping, drivers::platform::MapError> {
        if len == 0 || phys & 0xfff != 0 {
            return Err(drivers::platform::MapError::BadRange);
        }
        let existing = self
            .maps
            .iter()
            .find(|m| m.0 == phys && m.1 == len)
            .map(|m| m.2);
        let (window, newly_mapped) = match existing {
            Some(window) => (window, false),
            None => {
                let window = 0xffff_9000_0000_0000 + self.next_window;
                self.next_window += len.max(4096);
                self.maps.push((phys, len, window));
                (window, true)
            }
        };
        Ok(drivers::platform::Mapping {
            window,
            newly_mapped,
            regs: Box::new(NullWindow(len as usize)),
        })
    }
    fn unmap(&mut self, phys: u64, len: u64) {
        self.unmapped.push((phys, len));
        self.maps.retain(|m| !(m.0 == phys && m.1 == len));
    }
}
