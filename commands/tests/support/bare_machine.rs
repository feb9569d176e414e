//! A machine with no devices: config space of absent functions, no MMIO, a clock that ticks
//! on every read, 256 bytes of readable "memory" at 0x1000, and a console that records.
//! Shared by the shell tests and the fuzz target (fuzz/), so both drive the same machine.

use commands::{Console, SystemInfo};
use drivers::platform::{Bdf, Clock, ConfigSpace, MapError, Mapping, MemoryAccess, MmioMapper};
use evidence::Firmware;
use std::cell::Cell;

pub struct NoPci;
impl ConfigSpace for NoPci {
    fn read8(&self, _: Bdf, _: u16) -> u8 {
        0xff
    }
    fn read16(&self, _: Bdf, _: u16) -> u16 {
        0xffff
    }
    fn read32(&self, _: Bdf, _: u16) -> u32 {
        0xffff_ffff
    }
    fn write8(&self, _: Bdf, _: u16, _: u8) {}
    fn write16(&self, _: Bdf, _: u16, _: u16) {}
    fn write32(&self, _: Bdf, _: u16, _: u32) {}
    fn size(&self) -> u16 {
        256
    }
}

pub struct NoMmio;
impl MmioMapper for NoMmio {
    fn map(&mut self, _: u64, _: u64) -> Result<Mapping, MapError> {
        Err(MapError::WindowFull)
    }
    fn unmap(&mut self, _: u64, _: u64) {}
}

pub struct StepClock(pub Cell<u64>);
impl Clock for StepClock {
    fn now_us(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
}

/// 256 bytes of "memory" at 0x1000.
pub struct SmallMemory;
impl MemoryAccess for SmallMemory {
    fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = (addr as usize + i) as u8;
        }
        addr >= 0x1000 && addr + out.len() as u64 <= 0x1100
    }
}

#[derive(Default)]
pub struct Captured(pub String);
impl Console for Captured {
    fn write_str(&mut self, text: &str) {
        self.0.push_str(text);
    }
}

/// Boot facts for a shell on this machine (DMA pool at 1 MiB of `dma_bytes`).
pub fn system_info(dma_bytes: u64) -> SystemInfo {
    SystemInfo {
        version: "0.1.0",
        build: "test",
        firmware: Firmware::Bios,
        memory_bytes: 512 << 20,
        cmdline: "dma=64K".into(),
        dma_base: 0x10_0000,
        dma_bytes,
        boot_us: 1234,
        confidential: drivers::cpu::confidential::ConfidentialKind::None,
    }
}
