//! The `FirmwareTables` seam on bare metal: what GRUB passed (memory map, RSDP) and where
//! the monitor placed its image, stack, heap and DMA pool.

use drivers::platform::{FirmwareTables, MemError, MemoryRegion, Placement};

pub struct BootFirmware {
    pub rsdp: Option<u64>,
    pub map: heapless::Vec<MemoryRegion, { crate::bootinfo::MAX_REGIONS }>,
    pub placement: Placement,
}

impl FirmwareTables for BootFirmware {
    fn rsdp(&self) -> Option<u64> {
        self.rsdp
    }
    fn memory_map(&self) -> &[MemoryRegion] {
        &self.map
    }
    fn placement(&self) -> Placement {
        self.placement.clone()
    }
    fn read_phys(&self, phys: u64, out: &mut [u8]) -> Result<(), MemError> {
        crate::memory::read_phys(phys, out)
    }
}
