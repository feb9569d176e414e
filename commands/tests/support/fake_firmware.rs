//! Firmware tables as QEMU's i440fx/q35 firmware lays them out, built byte by byte from
//! the ACPI spec layouts (RSDP v2 -> XSDT -> FACP, APIC, MCFG, HPET, a table with a broken
//! checksum; the DSDT through the FADT), plus an E820-like memory map.

use std::collections::BTreeMap;

use drivers::platform::{FirmwareTables, MemError, MemoryRegion, Placement, RegionKind};

pub const RSDP: u64 = 0xf_0000;
pub const XSDT: u64 = 0x7fe_0000;
pub const FACP: u64 = 0x7fe_1000;
pub const APIC: u64 = 0x7fe_2000;
pub const MCFG: u64 = 0x7fe_3000;
pub const HPET: u64 = 0x7fe_4000;
pub const BADT: u64 = 0x7fe_5000;
pub const DSDT: u64 = 0x7fe_6000;

pub struct FakeFirmware {
    blobs: BTreeMap<u64, Vec<u8>>,
    map: Vec<MemoryRegion>,
}

fn checksum_fix(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[at] = 0u8.wrapping_sub(sum);
}

/// An SDT: header (signature, length, revision, checksum, OEM "BOCHS ") + body.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"BOCHS ");
    t.extend_from_slice(b"BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    checksum_fix(&mut t, 9);
    t
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
}

impl FakeFirmware {
    /// `cpus` local APIC entries (ids 0..cpus), one IOAPIC, the ISA IRQ0 -> GSI 2 override.
    pub fn qemu(cpus: u8) -> FakeFirmware {
        let mut blobs = BTreeMap::new();
        let mut rsdp = vec![0u8; 36];
        put(&mut rsdp, 0, b"RSD PTR ");
        put(&mut rsdp, 9, b"BOCHS ");
        rsdp[15] = 2;
        put(&mut rsdp, 20, &36u32.to_le_bytes());
        put(&mut rsdp, 24, &XSDT.to_le_bytes());
        checksum_fix(&mut rsdp[..20], 8);
        checksum_fix(&mut rsdp, 32);
        blobs.insert(RSDP, rsdp);

        let entries: Vec<u8> = [FACP, APIC, MCFG, HPET, BADT]
            .iter()
            .flat_map(|a| a.to_le_bytes())
            .collect();
        blobs.insert(XSDT, sdt(b"XSDT", 1, &entries));

        // FADT rev 6 (276 bytes): offsets from ACPI 6.5 table 5.9, minus the 36-byte header.
        let mut f = vec![0u8; 276 - 36];
        put(&mut f, 40 - 36, &(DSDT as u32).to_le_bytes());
        put(&mut f, 46 - 36, &9u16.to_le_bytes());
        put(&mut f, 76 - 36, &0x608u32.to_le_bytes());
        f[91 - 36] = 4;
        f[108 - 36] = 0x32;
        put(&mut f, 112 - 36, &((1u32 << 8) | (1 << 10)).to_le_bytes());
        put(&mut f, 116 - 36, &[1, 8, 0, 1]);
        put(&mut f, 120 - 36, &0xcf9u64.to_le_bytes());
        f[128 - 36] = 0x06;
        put(&mut f, 140 - 36, &DSDT.to_le_bytes());
        blobs.insert(FACP, sdt(b"FACP", 6, &f));
        blobs.insert(DSDT, sdt(b"DSDT", 1, &[0x10, 0x05, 0x5c, 0x00]));

        let mut m = Vec::new();
        m.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        for id in 0..cpus {
            m.extend_from_slice(&[0, 8, id, id]);
            m.extend_from_slice(&1u32.to_le_bytes());
        }
        m.extend_from_slice(&[1, 12, 0, 0]);
        m.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&[2, 10, 0, 0]);
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        blobs.insert(APIC, sdt(b"APIC", 1, &m));

        let mut c = vec![0u8; 8];
        c.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0x00, 0xff, 0, 0, 0, 0]);
        blobs.insert(MCFG, sdt(b"MCFG", 1, &c));

        let mut h = vec![0u8; 56 - 36];
        put(&mut h, 0, &0x8086_a201u32.to_le_bytes());
        put(&mut h, 4, &[0, 64, 0, 0]);
        put(&mut h, 8, &0xfed0_0000u64.to_le_bytes());
        put(&mut h, 17, &0x80u16.to_le_bytes());
        blobs.insert(HPET, sdt(b"HPET", 1, &h));

        let mut bad = sdt(b"BADT", 1, &[1, 2, 3, 4]);
        bad[9] = bad[9].wrapping_add(1);
        blobs.insert(BADT, bad);

        let map = vec![
            MemoryRegion {
                start: 0,
                len: 0x9_fc00,
                kind: RegionKind::Usable,
            },
            MemoryRegion {
                start: 0x9_fc00,
                len: 0x400,
                kind: RegionKind::Reserved,
            },
            MemoryRegion {
                start: 0xf_0000,
                len: 0x1_0000,
                kind: RegionKind::Reserved,
            },
            MemoryRegion {
                start: 0x10_0000,
                len: 0x7ee_0000,
                kind: RegionKind::Usable,
            },
            MemoryRegion {
                start: 0x7fe_0000,
                len: 0x2_0000,
                kind: RegionKind::AcpiReclaimable,
            },
            MemoryRegion {
                start: 0xfffc_0000,
                len: 0x4_0000,
                kind: RegionKind::Reserved,
            },
        ];
        FakeFirmware { blobs, map }
    }

    /// Breaks a byte of the MADT's first entry length (the chain no longer adds up) and
    /// fixes the checksum, so only the structure check can catch it.
    pub fn break_madt_chain(&mut self) {
        let t = self.blobs.get_mut(&APIC).unwrap();
        t[45] = 0;
        checksum_fix(t, 9);
    }
}

impl FirmwareTables for FakeFirmware {
    fn rsdp(&self) -> Option<u64> {
        Some(RSDP)
    }
    fn memory_map(&self) -> &[MemoryRegion] {
        &self.map
    }
    fn placement(&self) -> Placement {
        Placement {
            image: 0x10_0000..0x18_0000,
            stack: 0x13_0000..0x17_0000,
            heap: 0x20_0000..0x1020_0000,
            dma: 0x3c00_0000..0x4000_0000,
        }
    }
    fn read_phys(&self, phys: u64, out: &mut [u8]) -> Result<(), MemError> {
        let (base, blob) = self
            .blobs
            .range(..=phys)
            .next_back()
            .ok_or(MemError::Unmapped(phys))?;
        let at = (phys - base) as usize;
        let end = at + out.len();
        // Past a table's end within its page reads zeros, like RAM after the table.
        if at >= 0x1000 || end > 0x1000 {
            return Err(MemError::Unmapped(phys));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = blob.get(at + i).copied().unwrap_or(0);
        }
        Ok(())
    }
}
