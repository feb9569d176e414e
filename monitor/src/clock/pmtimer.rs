//! The ACPI PM timer as a reference counter: 3.579545 MHz, 24 bits (32 when the FADT's
//! TMR_VAL_EXT flag is set), at the I/O port the FADT names (X_PM_TMR_BLK or PM_TMR_BLK).

use drivers::clock::{rates, Rejection, Source};
use drivers::platform::{FirmwareTables, PortIo};

use drivers::clock::window::Counter;

/// ACPI generic address space id of system I/O (ACPI 6.5 §5.2.3.2).
const SPACE_IO: u8 = 1;

pub struct PmTimer<'a> {
    ports: &'a dyn PortIo,
    port: u16,
    mask: u64,
}

/// The PM timer the FADT describes.
pub fn find<'a>(
    firmware: &dyn FirmwareTables,
    ports: &'a dyn PortIo,
) -> Result<PmTimer<'a>, Rejection> {
    let block = drivers::acpi::pm_timer(firmware).map_err(|_| Rejection::Absent)?;
    let (space, address) = (block.space, block.address);
    // A memory-mapped PM timer (allowed by ACPI, not seen on PCs) is not supported.
    let port = u16::try_from(address)
        .ok()
        .filter(|_| space == SPACE_IO)
        .ok_or(Rejection::Unreachable)?;
    Ok(PmTimer {
        ports,
        port,
        mask: if block.bits32 { 0xffff_ffff } else { 0xff_ffff },
    })
}

impl Counter for PmTimer<'_> {
    fn source(&self) -> Source {
        Source::PmTimer
    }
    fn hz(&self) -> u64 {
        rates::PM_TIMER_HZ
    }
    fn mask(&self) -> u64 {
        self.mask
    }
    fn read(&mut self) -> u64 {
        self.ports.in32(self.port) as u64 & self.mask
    }
}
