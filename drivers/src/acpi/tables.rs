//! The table list and the decoders (see the module doc in mod.rs).

use alloc::vec;
use alloc::vec::Vec;

use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::AcpiTables;

use super::handler::{CopyHandler, MAX_COPY_BYTES};
use super::AcpiError;
use crate::platform::FirmwareTables;

/// The common SDT header (ACPI §5.2.6): signature, length, revision, checksum, OEM id, ...
pub const HEADER_BYTES: usize = 36;
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// ACPI 1.0 RSDP length; 2.0+ adds length, XSDT address, extended checksum (36 bytes).
const RSDP_V1_BYTES: usize = 20;
const RSDP_V2_BYTES: usize = 36;
/// FADT: DSDT (u32) at 40, X_DSDT (u64) at 140 (ACPI §5.2.9).
const FADT_DSDT: usize = 40;
const FADT_X_DSDT: usize = 140;
/// MADT: local APIC address (u32) and flags before the entries at 44 (ACPI §5.2.12).
const MADT_ENTRIES: usize = 44;
/// MCFG: 8 reserved bytes after the header, then 16-byte entries.
const MCFG_ENTRIES: usize = 44;
/// HPET description table (IA-PC HPET §3.2.4): block id @36, base GAS @40 (address @44),
/// HPET number @52, minimum clock tick @53.
const HPET_BYTES: usize = 56;

/// One table as listed by the RSDT/XSDT (or DSDT, found through the FADT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub signature: [u8; 4],
    pub phys: u64,
    pub length: u32,
    pub oem_id: [u8; 6],
    pub revision: u8,
    /// All bytes of the table sum to zero (false also when the length is implausible).
    pub checksum_ok: bool,
}

fn read(fw: &dyn FirmwareTables, phys: u64, len: usize) -> Result<Vec<u8>, AcpiError> {
    let mut bytes = vec![0u8; len];
    fw.read_phys(phys, &mut bytes)
        .map_err(|_| AcpiError::Unreadable(phys))?;
    Ok(bytes)
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn sums_to_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |s, x| s.wrapping_add(*x)) == 0
}

/// The root table: (physical address, entry size 4 for the RSDT or 8 for the XSDT).
fn root(fw: &dyn FirmwareTables) -> Result<(u64, usize), AcpiError> {
    let at = fw.rsdp().ok_or(AcpiError::NoRsdp)?;
    let v1 = read(fw, at, RSDP_V1_BYTES)?;
    if &v1[..8] != RSDP_SIGNATURE || !sums_to_zero(&v1) {
        return Err(AcpiError::BadRsdp);
    }
    if v1[15] >= 2 {
        let v2 = read(fw, at, RSDP_V2_BYTES)?;
        let xsdt = le64(&v2, 24);
        if sums_to_zero(&v2) && xsdt != 0 {
            return Ok((xsdt, 8));
        }
    }
    Ok((le32(&v1, 16) as u64, 4))
}

/// The header facts and checksum of the table at `phys`.
fn describe(fw: &dyn FirmwareTables, phys: u64) -> Result<TableInfo, AcpiError> {
    let header = read(fw, phys, HEADER_BYTES)?;
    let length = le32(&header, 4);
    let plausible = (HEADER_BYTES..=MAX_COPY_BYTES).contains(&(length as usize));
    let checksum_ok = plausible && sums_to_zero(&read(fw, phys, length as usize)?);
    let mut signature = [0u8; 4];
    signature.copy_from_slice(&header[..4]);
    let mut oem_id = [0u8; 6];
    oem_id.copy_from_slice(&header[10..16]);
    Ok(TableInfo {
        signature,
        phys,
        length,
        oem_id,
        revision: header[8],
        checksum_ok,
    })
}

/// Every table: the root table (RSDT or XSDT) first, then what it lists in order, then the
/// DSDT the FADT points to. A listed table that cannot be read is left out.
pub fn tables(fw: &dyn FirmwareTables) -> Result<Vec<TableInfo>, AcpiError> {
    let (root_at, entry_bytes) = root(fw)?;
    let root_info = describe(fw, root_at)?;
    let length = (root_info.length as usize).clamp(HEADER_BYTES, MAX_COPY_BYTES);
    let body = read(fw, root_at, length)?;
    let mut list = vec![root_info];
    for entry in body[HEADER_BYTES..].chunks_exact(entry_bytes) {
        let at = if entry_bytes == 8 {
            le64(entry, 0)
        } else {
            le32(entry, 0) as u64
        };
        if let Ok(info) = describe(fw, at) {
            list.push(info);
        }
    }
    if let Some(fadt) = list.iter().find(|t| &t.signature == b"FACP").cloned() {
        let bytes = read(fw, fadt.phys, (fadt.length as usize).min(MAX_COPY_BYTES))?;
        let x_dsdt = if bytes.len() >= FADT_X_DSDT + 8 {
            le64(&bytes, FADT_X_DSDT)
        } else {
            0
        };
        let dsdt = if x_dsdt != 0 {
            x_dsdt
        } else {
            le32(&bytes, FADT_DSDT) as u64
        };
        if dsdt != 0 {
            if let Ok(info) = describe(fw, dsdt) {
                list.push(info);
            }
        }
    }
    Ok(list)
}

/// The first table with `signature`, and its bytes.
pub fn table_bytes(
    fw: &dyn FirmwareTables,
    signature: [u8; 4],
) -> Result<(TableInfo, Vec<u8>), AcpiError> {
    let info = tables(fw)?
        .into_iter()
        .find(|t| t.signature == signature)
        .ok_or(AcpiError::NoTable(signature))?;
    let bytes = read(
        fw,
        info.phys,
        (info.length as usize).clamp(HEADER_BYTES, MAX_COPY_BYTES),
    )?;
    Ok((info, bytes))
}

fn crate_tables(fw: &dyn FirmwareTables) -> Result<AcpiTables<CopyHandler<'_>>, AcpiError> {
    let rsdp = fw.rsdp().ok_or(AcpiError::NoRsdp)?;
    // SAFETY: the handler copies through read_phys, so any address is safe to "map".
    unsafe { AcpiTables::from_rsdp(CopyHandler(fw), rsdp as usize) }.map_err(|_| AcpiError::BadRsdp)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtCpu {
    pub processor_uid: u32,
    pub apic_id: u32,
    pub enabled: bool,
    pub online_capable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtIoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtOverride {
    pub bus: u8,
    pub irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtInfo {
    pub local_apic_address: u64,
    pub cpus: Vec<MadtCpu>,
    pub ioapics: Vec<MadtIoApic>,
    pub overrides: Vec<MadtOverride>,
}

/// MADT flags of a local APIC entry: bit 0 enabled, bit 1 online capable.
const LAPIC_ENABLED: u32 = 1;
const LAPIC_ONLINE_CAPABLE: u32 = 2;

/// The MADT entry chain must add up exactly (the crate trusts every length byte: a zero
/// length would loop forever, an overlong one underflow).
fn madt_chain_ok(bytes: &[u8]) -> bool {
    let mut at = MADT_ENTRIES;
    while at < bytes.len() {
        match bytes.get(at + 1) {
            Some(&len) if len >= 2 && at + len as usize <= bytes.len() => at += len as usize,
            _ => return false,
        }
    }
    at == bytes.len()
}

pub fn madt(fw: &dyn FirmwareTables) -> Result<MadtInfo, AcpiError> {
    let (info, bytes) = table_bytes(fw, *b"APIC")?;
    if !info.checksum_ok || bytes.len() < MADT_ENTRIES || !madt_chain_ok(&bytes) {
        return Err(AcpiError::Malformed(*b"APIC"));
    }
    let tables = crate_tables(fw)?;
    let madt = tables
        .find_table::<Madt>()
        .map_err(|_| AcpiError::NoTable(*b"APIC"))?;
    let mut out = MadtInfo {
        local_apic_address: { madt.get().local_apic_address } as u64,
        cpus: Vec::new(),
        ioapics: Vec::new(),
        overrides: Vec::new(),
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = { e.flags };
                out.cpus.push(MadtCpu {
                    processor_uid: e.processor_id as u32,
                    apic_id: e.apic_id as u32,
                    enabled: flags & LAPIC_ENABLED != 0,
                    online_capable: flags & LAPIC_ONLINE_CAPABLE != 0,
                });
            }
            MadtEntry::LocalX2Apic(e) => {
                let flags = { e.flags };
                out.cpus.push(MadtCpu {
                    processor_uid: { e.processor_uid },
                    apic_id: { e.x2apic_id },
                    enabled: flags & LAPIC_ENABLED != 0,
                    online_capable: flags & LAPIC_ONLINE_CAPABLE != 0,
                });
            }
            MadtEntry::IoApic(e) => out.ioapics.push(MadtIoApic {
                id: e.io_apic_id,
                address: { e.io_apic_address },
                gsi_base: { e.global_system_interrupt_base },
            }),
            MadtEntry::InterruptSourceOverride(e) => out.overrides.push(MadtOverride {
                bus: e.bus,
                irq: e.irq,
                gsi: { e.global_system_interrupt },
                flags: { e.flags },
            }),
            MadtEntry::LocalApicAddressOverride(e) => {
                out.local_apic_address = e.local_apic_address;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McfgSegment {
    pub segment: u16,
    pub base: u64,
    pub bus_start: u8,
    pub bus_end: u8,
}

pub fn mcfg(fw: &dyn FirmwareTables) -> Result<Vec<McfgSegment>, AcpiError> {
    let (info, _) = table_bytes(fw, *b"MCFG")?;
    if !info.checksum_ok || (info.length as usize) < MCFG_ENTRIES {
        return Err(AcpiError::Malformed(*b"MCFG"));
    }
    let tables = crate_tables(fw)?;
    let mcfg = tables
        .find_table::<Mcfg>()
        .map_err(|_| AcpiError::NoTable(*b"MCFG"))?;
    Ok(mcfg
        .entries()
        .iter()
        .map(|e| McfgSegment {
            segment: { e.pci_segment_group },
            base: { e.base_address },
            bus_start: e.bus_number_start,
            bus_end: e.bus_number_end,
        })
        .collect())
}

/// The FADT fields a monitor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FadtInfo {
    /// Generic address space id (0 memory, 1 I/O) and address; (0, 0) when there is none.
    pub pm_timer: (u8, u64),
    pub pm_timer_32bit: bool,
    pub reset_supported: bool,
    pub reset_register: (u8, u64),
    pub reset_value: u8,
    pub century: u8,
    pub sci_interrupt: u16,
}

fn space_id(space: AddressSpace) -> u8 {
    match space {
        AddressSpace::SystemMemory => 0,
        AddressSpace::SystemIo => 1,
        AddressSpace::PciConfigSpace => 2,
        AddressSpace::EmbeddedController => 3,
        AddressSpace::SMBus => 4,
        AddressSpace::SystemCmos => 5,
        AddressSpace::PciBarTarget => 6,
        AddressSpace::Ipmi => 7,
        AddressSpace::GeneralIo => 8,
        AddressSpace::GenericSerialBus => 9,
        AddressSpace::PlatformCommunicationsChannel => 0x0a,
        AddressSpace::FunctionalFixedHardware => 0x7f,
        AddressSpace::OemDefined(id) => id,
    }
}

/// A generic address space name for people.
pub fn space_name(id: u8) -> &'static str {
    match id {
        0 => "memory",
        1 => "io",
        2 => "pci-config",
        5 => "cmos",
        0x7f => "ffh",
        _ => "other",
    }
}

pub fn fadt(fw: &dyn FirmwareTables) -> Result<FadtInfo, AcpiError> {
    let (info, _) = table_bytes(fw, *b"FACP")?;
    if !info.checksum_ok || (info.length as usize) < FADT_DSDT + 4 {
        return Err(AcpiError::Malformed(*b"FACP"));
    }
    let tables = crate_tables(fw)?;
    let fadt = tables
        .find_table::<Fadt>()
        .map_err(|_| AcpiError::NoTable(*b"FACP"))?;
    let pm_timer = match fadt.pm_timer_block() {
        Ok(Some(gas)) => (space_id(gas.address_space), gas.address),
        _ => (0, 0),
    };
    let reset_register = match fadt.reset_register() {
        Ok(gas) => (space_id(gas.address_space), gas.address),
        Err(_) => (0, 0),
    };
    Ok(FadtInfo {
        pm_timer,
        pm_timer_32bit: { fadt.flags }.pm_timer_is_32_bit(),
        reset_supported: { fadt.flags }.supports_system_reset_via_fadt(),
        reset_register,
        reset_value: fadt.reset_value,
        century: fadt.century,
        sci_interrupt: { fadt.sci_interrupt },
    })
}

/// FADT fields of the PM timer (ACPI 6.5 §5.2.9, table 5.9): PM_TMR_BLK (u32 port) @76,
/// PM_TMR_LEN @91 (4 when there is one), Flags @112 (bit 8 TMR_VAL_EXT: 32 bits, else 24),
/// X_PM_TMR_BLK (12-byte generic address: space id @208, address @212).
const FADT_PM_TMR_BLK: usize = 76;
const FADT_PM_TMR_LEN: usize = 91;
const FADT_FLAGS: usize = 112;
const FADT_TMR_VAL_EXT: u32 = 1 << 8;
const FADT_X_PM_TMR_BLK: usize = 208;
const GAS_BYTES: usize = 12;

/// Where the ACPI PM timer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmTimerBlock {
    /// Generic address space id (1 = system I/O) and address.
    pub space: u8,
    pub address: u64,
    /// 32 bits (TMR_VAL_EXT), else 24.
    pub bits32: bool,
}

/// The PM timer from a FADT's bytes: X_PM_TMR_BLK where the table is long enough and it
/// is set (ACPI: it supersedes PM_TMR_BLK), else PM_TMR_BLK (I/O). None when neither is.
pub fn pm_timer_of(fadt: &[u8]) -> Option<PmTimerBlock> {
    if fadt.len() < FADT_FLAGS + 4 {
        return None;
    }
    let bits32 = le32(fadt, FADT_FLAGS) & FADT_TMR_VAL_EXT != 0;
    let x_address = le64(fadt, FADT_X_PM_TMR_BLK + 4);
    if fadt.len() >= FADT_X_PM_TMR_BLK + GAS_BYTES && x_address != 0 {
        return Some(PmTimerBlock {
            space: fadt[FADT_X_PM_TMR_BLK],
            address: x_address,
            bits32,
        });
    }
    let port = le32(fadt, FADT_PM_TMR_BLK);
    (port != 0 && fadt[FADT_PM_TMR_LEN] == 4).then_some(PmTimerBlock {
        space: 1,
        address: port as u64,
        bits32,
    })
}

/// The PM timer the FADT describes, decoded by hand: one table walk, no `acpi` crate (the
/// boot reads it before every prompt, and the crate's walk costs it ~10 ms under TCG).
pub fn pm_timer(fw: &dyn FirmwareTables) -> Result<PmTimerBlock, AcpiError> {
    let (info, bytes) = table_bytes(fw, *b"FACP")?;
    if !info.checksum_ok {
        return Err(AcpiError::Malformed(*b"FACP"));
    }
    pm_timer_of(&bytes).ok_or(AcpiError::NoTable(*b"FACP"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpetInfo {
    pub block_id: u32,
    pub base_space: u8,
    pub base: u64,
    pub number: u8,
    pub min_tick: u16,
}

pub fn hpet(fw: &dyn FirmwareTables) -> Result<HpetInfo, AcpiError> {
    let (info, b) = table_bytes(fw, *b"HPET")?;
    if !info.checksum_ok || b.len() < HPET_BYTES {
        return Err(AcpiError::Malformed(*b"HPET"));
    }
    Ok(HpetInfo {
        block_id: le32(&b, 36),
        base_space: b[40],
        base: le64(&b, 44),
        number: b[52],
        min_tick: u16::from_le_bytes([b[53], b[54]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pm_timer_prefers_the_extended_block() {
        // QEMU 7.2 pc (SeaBIOS): PM_TMR_BLK 0xb008, length 4, 24 bits, a 116-byte
        // revision-1 FADT without X_ fields.
        let mut fadt = vec![0u8; 116];
        fadt[FADT_PM_TMR_BLK..FADT_PM_TMR_BLK + 4].copy_from_slice(&0xb008u32.to_le_bytes());
        fadt[FADT_PM_TMR_LEN] = 4;
        let pm = pm_timer_of(&fadt).unwrap();
        assert_eq!((pm.space, pm.address, pm.bits32), (1, 0xb008, false));
        // A revision-5 FADT (q35): X_PM_TMR_BLK set to 0x608, TMR_VAL_EXT.
        let mut fadt = vec![0u8; 276];
        fadt[FADT_PM_TMR_BLK..FADT_PM_TMR_BLK + 4].copy_from_slice(&0x608u32.to_le_bytes());
        fadt[FADT_PM_TMR_LEN] = 4;
        fadt[FADT_FLAGS..FADT_FLAGS + 4].copy_from_slice(&FADT_TMR_VAL_EXT.to_le_bytes());
        fadt[FADT_X_PM_TMR_BLK] = 1;
        fadt[FADT_X_PM_TMR_BLK + 4..FADT_X_PM_TMR_BLK + 12]
            .copy_from_slice(&0x608u64.to_le_bytes());
        let pm = pm_timer_of(&fadt).unwrap();
        assert_eq!((pm.space, pm.address, pm.bits32), (1, 0x608, true));
        // Hardware-reduced ACPI: no PM timer at all.
        assert_eq!(pm_timer_of(&vec![0u8; 276]), None);
        assert_eq!(pm_timer_of(&[0u8; 40]), None);
    }

    #[test]
    fn madt_chain_must_add_up() {
        let mut t = vec![0u8; MADT_ENTRIES];
        t.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        assert!(madt_chain_ok(&t));
        t.extend_from_slice(&[1, 0]);
        assert!(!madt_chain_ok(&t), "a zero length never ends");
        t.truncate(MADT_ENTRIES + 8);
        t.extend_from_slice(&[1, 12, 0]);
        assert!(!madt_chain_ok(&t), "an entry past the end");
    }
}
