//! What the firmware handed over: the memory map, the ACPI RSDP, and physical reads of the
//! tables it points to; plus where the monitor placed itself.

use core::ops::Range;

use super::MemError;

/// The firmware's type for a memory range (multiboot2 / E820 / UEFI, normalized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Defective,
    /// A type number this monitor does not name.
    Other(u32),
}

impl RegionKind {
    pub fn name(&self) -> &'static str {
        match self {
            RegionKind::Usable => "usable",
            RegionKind::Reserved => "reserved",
            RegionKind::AcpiReclaimable => "acpi-reclaimable",
            RegionKind::AcpiNvs => "acpi-nvs",
            RegionKind::Defective => "defective",
            RegionKind::Other(_) => "other",
        }
    }
}

/// One entry of the firmware's memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: RegionKind,
}

/// Where the monitor put its own pieces (physical ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub image: Range<u64>,
    pub stack: Range<u64>,
    pub heap: Range<u64>,
    pub dma: Range<u64>,
}

/// The firmware's hand-over, read-only.
///
/// Contract: `memory_map` is the map as the boot loader passed it (never edited by the
/// monitor's own reservations: those are `placement`). `rsdp` is the physical address of
/// an RSDP copy (ACPI 2.0+ preferred), `None` when the loader passed none. `read_phys`
/// copies physical bytes (firmware tables live in RAM); `Err(Unmapped)` when the range is
/// not reachable, and then `out` is left unspecified. Nothing here writes.
pub trait FirmwareTables {
    fn rsdp(&self) -> Option<u64>;
    fn memory_map(&self) -> &[MemoryRegion];
    fn placement(&self) -> Placement;
    fn read_phys(&self, phys: u64, out: &mut [u8]) -> Result<(), MemError>;
}

/// No firmware at all (tests and fuzzing): no RSDP, an empty map.
pub struct NoFirmware;

impl FirmwareTables for NoFirmware {
    fn rsdp(&self) -> Option<u64> {
        None
    }
    fn memory_map(&self) -> &[MemoryRegion] {
        &[]
    }
    fn placement(&self) -> Placement {
        Placement::default()
    }
    fn read_phys(&self, phys: u64, _out: &mut [u8]) -> Result<(), MemError> {
        Err(MemError::Unmapped(phys))
    }
}
