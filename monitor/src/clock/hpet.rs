//! The HPET main counter as a reference counter: base from the ACPI HPET table, mapped
//! through the MMIO window, rate from COUNTER_CLK_PERIOD. If the firmware left the counter
//! halted it is enabled for the window and halted again afterwards (no timer interrupt is
//! enabled either way). Register offsets: IA-PC HPET spec 1.0a §2.3.

use alloc::boxed::Box;

use drivers::clock::{rates, Rejection, Source};
use drivers::platform::{FirmwareTables, MmioMapper, RegisterWindow};

use drivers::clock::window::Counter;

/// The register block is 1 KiB.
const BLOCK_BYTES: u64 = 0x400;
/// General Capabilities and ID: bits 63:32 are COUNTER_CLK_PERIOD (fs per tick).
const GCAP_PERIOD: usize = 0x004;
/// General Configuration: bit 0 ENABLE_CNF runs the main counter.
const GEN_CONF: usize = 0x010;
const ENABLE_CNF: u32 = 1 << 0;
/// The main counter's low 32 bits (every HPET has at least these; 32-bit reads are always
/// allowed, and at 100 MHz they wrap after 43 s, far longer than the window).
const MAIN_COUNTER_LOW: usize = 0x0f0;
/// ACPI generic address space id of system memory.
const SPACE_MEMORY: u8 = 0;

pub struct Hpet {
    base: u64,
    regs: Box<dyn RegisterWindow>,
    hz: u64,
    /// The configuration as found, restored by `close`.
    saved_config: u32,
}

/// Maps and starts the HPET the ACPI table describes.
pub fn open(firmware: &dyn FirmwareTables, mmio: &mut dyn MmioMapper) -> Result<Hpet, Rejection> {
    let table = drivers::acpi::hpet(firmware).map_err(|_| Rejection::Absent)?;
    if table.base_space != SPACE_MEMORY || table.base == 0 {
        return Err(Rejection::Unreachable);
    }
    let mapping = mmio
        .map(table.base, BLOCK_BYTES)
        .map_err(|_| Rejection::Unreachable)?;
    let regs = mapping.regs;
    let Some(hz) = rates::hpet_hz(regs.read32(GCAP_PERIOD)) else {
        mmio.unmap(table.base, BLOCK_BYTES);
        return Err(Rejection::NoAnswer);
    };
    let saved_config = regs.read32(GEN_CONF);
    regs.write32(GEN_CONF, saved_config | ENABLE_CNF);
    Ok(Hpet {
        base: table.base,
        regs,
        hz,
        saved_config,
    })
}

impl Hpet {
    /// Restores the configuration (halting the counter if it was halted) and unmaps.
    pub fn close(self, mmio: &mut dyn MmioMapper) {
        self.regs.write32(GEN_CONF, self.saved_config);
        mmio.unmap(self.base, BLOCK_BYTES);
    }
}

impl Counter for Hpet {
    fn source(&self) -> Source {
        Source::Hpet
    }
    fn hz(&self) -> u64 {
        self.hz
    }
    fn mask(&self) -> u64 {
        0xffff_ffff
    }
    fn read(&mut self) -> u64 {
        self.regs.read32(MAIN_COUNTER_LOW) as u64
    }
}
