//! What GRUB told us through multiboot2: memory map, command line, ACPI RSDP, firmware.

use drivers::platform::{MemoryRegion, RegionKind};
use evidence::Firmware;
use heapless::{String, Vec};
use monitor::identity::{Area, AreaKind};
use monitor::layout::Region;
use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

/// Multiboot2 bootloader magic in EAX at entry.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// Tag header size: the RSDP copy follows it.
const TAG_HEADER_BYTES: u64 = 8;
pub const MAX_REGIONS: usize = 64;
/// Every area of the map, for the identity map (more than available RAM alone).
pub const MAX_AREAS: usize = 128;
pub const CMDLINE_MAX: usize = 256;

pub struct BootFacts {
    pub firmware: Firmware,
    /// Usable RAM (sum of available areas).
    pub memory_bytes: u64,
    pub available: Vec<Region, MAX_REGIONS>,
    /// The whole map as GRUB passed it, every type (for `memmap`).
    pub map: Vec<MemoryRegion, MAX_REGIONS>,
    /// The whole memory map, typed (what the identity map may hold).
    pub areas: Vec<Area, MAX_AREAS>,
    pub cmdline: String<CMDLINE_MAX>,
    /// Physical address of the RSDP copy inside the boot information.
    pub rsdp: Option<u64>,
    /// The boot information itself (must survive until parsed; we copy what we need).
    pub info_range: Region,
}

#[derive(Debug)]
pub enum BootError {
    NotMultiboot2,
    BadInformation,
    NoMemoryMap,
}

/// # Safety
/// `info` must be the physical address GRUB passed in EBX (identity mapped).
pub unsafe fn parse(magic: u32, info: u64) -> Result<BootFacts, BootError> {
    if magic != MULTIBOOT2_MAGIC {
        return Err(BootError::NotMultiboot2);
    }
    // SAFETY: per the caller, `info` is the multiboot2 information GRUB built.
    let boot = unsafe { BootInformation::load(info as *const BootInformationHeader) }
        .map_err(|_| BootError::BadInformation)?;

    // GRUB adds the EFI system table and EFI memory map tags only under UEFI.
    let firmware = if boot.efi_sdt64_tag().is_some()
        || boot.efi_sdt32_tag().is_some()
        || boot.efi_memory_map_tag().is_some()
    {
        Firmware::Uefi
    } else {
        Firmware::Bios
    };

    let map = boot.memory_map_tag().ok_or(BootError::NoMemoryMap)?;
    let mut available = Vec::new();
    let mut all = Vec::new();
    let mut memory_bytes = 0u64;
    let mut areas = Vec::new();
    for area in map.memory_areas() {
        let kind = match area.typ() {
            MemoryAreaType::Available => RegionKind::Usable,
            MemoryAreaType::Reserved => RegionKind::Reserved,
            MemoryAreaType::AcpiAvailable => RegionKind::AcpiReclaimable,
            MemoryAreaType::ReservedHibernate => RegionKind::AcpiNvs,
            MemoryAreaType::Defective => RegionKind::Defective,
            MemoryAreaType::Custom(id) => RegionKind::Other(id),
        };
        let _ = all.push(MemoryRegion {
            start: area.start_address(),
            len: area.size(),
            kind,
        });
        let area_kind = match area.typ() {
            // ACPI reclaimable and NVS hold the ACPI tables: RAM, mapped write-back.
            MemoryAreaType::Available
            | MemoryAreaType::AcpiAvailable
            | MemoryAreaType::ReservedHibernate => AreaKind::Ram,
            MemoryAreaType::Reserved => AreaKind::Reserved,
            _ => AreaKind::Unusable,
        };
        if area.size() > 0 {
            let _ = areas.push(Area {
                start: area.start_address(),
                end: area.end_address(),
                kind: area_kind,
            });
        }
        if area.typ() == MemoryAreaType::Available && area.size() > 0 {
            memory_bytes = memory_bytes.saturating_add(area.size());
            let _ = available.push(Region {
                start: area.start_address(),
                end: area.end_address(),
            });
        }
    }

    let mut cmdline = String::new();
    if let Some(Ok(text)) = boot.command_line_tag().map(|tag| tag.cmdline()) {
        for c in text.chars() {
            if cmdline.push(c).is_err() {
                break;
            }
        }
    }

    // Prefer the ACPI 2.0+ RSDP (XSDT, 64-bit table addresses).
    let rsdp = boot
        .rsdp_v2_tag()
        .map(|tag| tag as *const _ as u64 + TAG_HEADER_BYTES)
        .or_else(|| {
            boot.rsdp_v1_tag()
                .map(|tag| tag as *const _ as u64 + TAG_HEADER_BYTES)
        });

    Ok(BootFacts {
        firmware,
        memory_bytes,
        available,
        map: all,
        areas,
        cmdline,
        rsdp,
        info_range: Region {
            start: boot.start_address() as u64,
            end: boot.end_address() as u64,
        },
    })
}
