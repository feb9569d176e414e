//! ACPI: find the MCFG (ECAM ranges) from the RSDP GRUB handed over.
//!
//! Firmware puts its tables in RAM below 4 GiB (available, ACPI or reserved-below-RAM-top
//! areas), which the identity map keeps, so the handler maps by identity and refuses
//! (maps nothing) where the identity map holds nothing.

use core::ptr::NonNull;

use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use heapless::Vec;

use crate::pci_config::EcamRange;

/// End of the boot identity map.
const IDENTITY_LIMIT: usize = 1 << 32;
/// More MCFG entries than any real machine has; extra entries are ignored.
pub const MAX_ECAM_RANGES: usize = 8;

#[derive(Clone, Copy)]
struct IdentityHandler;

impl AcpiHandler for IdentityHandler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let reachable = phys.checked_add(size).is_some_and(|end| {
            end <= IDENTITY_LIMIT && crate::boot::identity_covers(phys as u64, end as u64)
        });
        // A table outside the identity map would page-fault at boot. Point such a request
        // at page 0 instead: its bytes never carry a valid table signature, so the crate
        // skips the table rather than the monitor halting.
        let virt = if reachable { phys } else { 0 };
        let ptr = NonNull::new(virt as *mut T).unwrap_or(NonNull::dangling());
        // SAFETY: identity mapped physical memory, as the trait's contract describes.
        unsafe { PhysicalMapping::new(phys, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What ACPI told us.
#[derive(Debug, Default)]
pub struct AcpiFacts {
    pub ecam: Vec<EcamRange, MAX_ECAM_RANGES>,
}

/// Reads the tables from the RSDP at `rsdp` (a physical address below 4 GiB).
pub fn discover(rsdp: u64) -> Option<AcpiFacts> {
    if rsdp as usize >= IDENTITY_LIMIT {
        return None;
    }
    // SAFETY: the address is GRUB's copy of the RSDP in the multiboot2 information, which
    // is identity mapped; from_rsdp validates the signature and checksum.
    let tables = unsafe { AcpiTables::from_rsdp(IdentityHandler, rsdp as usize) }.ok()?;
    let mut facts = AcpiFacts { ecam: Vec::new() };
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        for entry in mcfg.entries() {
            let (segment, base) = (entry.pci_segment_group, entry.base_address);
            if segment == 0 && base != 0 {
                let _ = facts.ecam.push(EcamRange {
                    base,
                    bus_start: entry.bus_number_start,
                    bus_end: entry.bus_number_end,
                });
            }
        }
    }
    Some(facts)
}
