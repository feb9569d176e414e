//! A machine with no devices: config space of absent functions, no MMIO, a clock that ticks
//! on every read, a little RAM and a few device registers, a KVM-like CPU, the RTC ports,
//! and a console that records.
//! Shared by the shell tests and the fuzz target (fuzz/), so both drive the same machine.

use commands::{Console, SystemInfo};
use drivers::platform::{
    canonical, check_access, Bdf, Clock, ConfigSpace, Cpu, CpuidResult, MapError, MappedRange,
    Mapping, MemError, MemKind, MemType, MemoryAccess, MmioMapper, MsrError, PortIo, Width,
};
use evidence::Firmware;
use std::cell::{Cell, RefCell};

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

/// Where the fake device registers sit (like a `bar map` window).
pub const DEVICE_WINDOW: u64 = 0x4000_0000_0000;
/// Firmware-owned, identity mapped write-back (SeaBIOS's BIOS area).
pub const BIOS_AREA: std::ops::Range<u64> = 0xf_0000..0x10_0000;
/// The physical address the device window maps.
pub const DEVICE_PHYS: u64 = 0xfebf_0000;

/// 256 bytes of RAM at 0x1000 (byte i holds its address's low byte until written), the
/// BIOS area 0xf0000..0x100000 identity mapped read-only (reads zeros), and
/// 256 bytes of device registers at [`DEVICE_WINDOW`]: VS (0x00010400) at +8, and a
/// read-to-clear status at +0x10 that counts its reads; a read of any width is one access.
pub struct SmallMemory {
    ram: RefCell<[u8; 256]>,
    pub status_reads: Cell<u32>,
}

impl Default for SmallMemory {
    fn default() -> Self {
        SmallMemory {
            ram: RefCell::new(core::array::from_fn(|i| i as u8)),
            status_reads: Cell::new(0),
        }
    }
}

impl MemoryAccess for SmallMemory {
    fn probe(&self, addr: u64, len: u64, write: bool) -> Result<MemKind, MemError> {
        let end = addr.checked_add(len).ok_or(MemError::NonCanonical(addr))?;
        if !canonical(addr) {
            return Err(MemError::NonCanonical(addr));
        }
        if addr >= 0x1000 && end <= 0x1100 {
            return Ok(MemKind::Ram);
        }
        if addr >= DEVICE_WINDOW && end <= DEVICE_WINDOW + 0x100 {
            return Ok(MemKind::Device);
        }
        if addr >= BIOS_AREA.start && end <= BIOS_AREA.end {
            return if write {
                Err(MemError::ReadOnly(addr))
            } else {
                Ok(MemKind::Ram)
            };
        }
        // The first page below RAM is mapped read-only.
        if addr >= 0x0f00 && end <= 0x1000 {
            return if write {
                Err(MemError::ReadOnly(addr))
            } else {
                Ok(MemKind::Ram)
            };
        }
        // The first unmapped byte: past RAM's end for a range that starts inside it.
        let first = if (0x1000..0x1100).contains(&addr) {
            0x1100
        } else {
            addr
        };
        Err(MemError::Unmapped(first))
    }
    fn read(&self, addr: u64, width: Width) -> Result<u64, MemError> {
        check_access(addr, width)?;
        match self.probe(addr, width.bytes(), false)? {
            MemKind::Ram if (0x1000..0x1100).contains(&addr) => {
                let at = (addr - 0x1000) as usize;
                let ram = self.ram.borrow();
                let mut bytes = [0u8; 8];
                bytes[..width.bytes() as usize]
                    .copy_from_slice(&ram[at..at + width.bytes() as usize]);
                Ok(u64::from_le_bytes(bytes))
            }
            MemKind::Ram => Ok(0),
            MemKind::Device => {
                let reg = addr - DEVICE_WINDOW;
                Ok(match (reg, width) {
                    (0x08, Width::W4) => 0x0001_0400,
                    (0x10, _) => {
                        self.status_reads.set(self.status_reads.get() + 1);
                        0x1
                    }
                    // Bytes of a 32-bit-only register read as zeros on this device.
                    _ => 0,
                })
            }
        }
    }
    fn write(&self, addr: u64, width: Width, value: u64) -> Result<(), MemError> {
        check_access(addr, width)?;
        if self.probe(addr, width.bytes(), true)? == MemKind::Ram {
            let at = (addr - 0x1000) as usize;
            let n = width.bytes() as usize;
            self.ram.borrow_mut()[at..at + n].copy_from_slice(&value.to_le_bytes()[..n]);
        }
        Ok(())
    }
    fn mappings(&self, virt: std::ops::Range<u64>) -> Vec<MappedRange> {
        // What `probe` answers, as the page tables would say it: the read-only page and RAM
        // identity mapped write-back, the device window uncached.
        let all = [
            (0x0f00, 0x0f00, 0x100, MemType::WriteBack, false),
            (0x1000, 0x1000, 0x100, MemType::WriteBack, true),
            (0xf_0000, 0xf_0000, 0x1_0000, MemType::WriteBack, false),
            (
                DEVICE_WINDOW,
                DEVICE_PHYS,
                0x100,
                MemType::Uncacheable,
                true,
            ),
        ];
        all.iter()
            .filter(|r| r.0 < virt.end && virt.start < r.0 + r.2)
            .map(|&(v, p, len, mem_type, writable)| {
                let start = v.max(virt.start);
                let end = (v + len).min(virt.end);
                MappedRange {
                    virt: start,
                    phys: p + (start - v),
                    len: end - start,
                    mem_type,
                    writable,
                }
            })
            .collect()
    }
}

/// A KVM guest's CPU: "GenuineIntel", hypervisor "KVMKVMKVM", IA32_APIC_BASE of a BSP, a
/// writable PAT; every other MSR raises #GP.
pub struct FakeCpu {
    pub pat: Cell<u64>,
}

impl Default for FakeCpu {
    fn default() -> Self {
        FakeCpu {
            pat: Cell::new(0x0007_0406_0007_0406),
        }
    }
}

fn text_regs(s: &[u8; 12]) -> [u32; 3] {
    let w = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
    [w(0), w(4), w(8)]
}

impl Cpu for FakeCpu {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
        let r = |eax, ebx, ecx, edx| CpuidResult { eax, ebx, ecx, edx };
        match leaf {
            0 => {
                let [b, d, c] = text_regs(b"GenuineIntel");
                r(0xd, b, c, d)
            }
            1 => r(0x0005_0657, 0, (1 << 31) | (1 << 20), 0),
            0x4000_0000 => {
                let [b, c, d] = text_regs(b"KVMKVMKVM\0\0\0");
                r(0x4000_0001, b, c, d)
            }
            _ => CpuidResult::default(),
        }
    }
    fn read_msr(&self, index: u32) -> Result<u64, MsrError> {
        match index {
            0x1b => Ok(0xfee0_0900),
            0x277 => Ok(self.pat.get()),
            _ => Err(MsrError::GeneralProtection),
        }
    }
    fn write_msr(&self, index: u32, value: u64) -> Result<(), MsrError> {
        match index {
            0x277 => {
                self.pat.set(value);
                Ok(())
            }
            _ => Err(MsrError::GeneralProtection),
        }
    }
}

/// The CMOS RTC at ports 0x70 (index, reads 0xff) / 0x71 (data: index + 0x10 as BCD-ish
/// test values); every other port floats (all ones). Records the last write.
#[derive(Default)]
pub struct FakePorts {
    pub index: Cell<u8>,
    pub last_write: Cell<Option<(u16, u32)>>,
}

impl PortIo for FakePorts {
    fn in8(&self, port: u16) -> u8 {
        match port {
            0x71 => self.index.get().wrapping_add(0x10),
            _ => 0xff,
        }
    }
    fn in16(&self, _: u16) -> u16 {
        0xffff
    }
    fn in32(&self, _: u16) -> u32 {
        0xffff_ffff
    }
    fn out8(&self, port: u16, value: u8) {
        if port == 0x70 {
            self.index.set(value);
        }
        self.last_write.set(Some((port, value as u32)));
    }
    fn out16(&self, port: u16, value: u16) {
        self.last_write.set(Some((port, value as u32)));
    }
    fn out32(&self, port: u16, value: u32) {
        self.last_write.set(Some((port, value)));
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
        tsc_hz: 2_400_000_000,
        tsc: kvm_like_calibration(),
        sha256_path: drivers::digest::Sha256Path::Portable,
    }
}

/// What a KVM guest's boot would decide: the hypervisor leaf says 2.4 GHz, the PM timer
/// agrees (+50 ppm), the PIT is absent.
pub fn kvm_like_calibration() -> drivers::clock::Calibration {
    use drivers::clock::{rates, Calibration, Evidence, Reading, Rejection, Source};
    Calibration::choose(vec![
        Reading::from_evidence(
            Source::HypervisorLeaf,
            Evidence::HypervisorLeaf { tsc_khz: 2_400_000 },
        ),
        Reading::from_evidence(
            Source::PmTimer,
            Evidence::Counted {
                ticks: 35_795,
                counter_hz: rates::PM_TIMER_HZ,
                tsc_ticks: 24_000_000,
            },
        ),
        Reading::rejected(Source::Pit, Rejection::NoAnswer),
    ])
}
