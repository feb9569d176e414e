//! What a driver needs from the machine, as small object-safe traits.
//!
//! The bare-metal monitor implements these on real hardware (port I/O or ECAM config
//! access, uncached MMIO mappings, the TSC); host tests implement them over in-memory fakes
//! and device models. Drivers never touch a port or a pointer themselves.

use alloc::boxed::Box;
use core::fmt;

mod firmware;
mod irq;
mod mapping;
mod memory;
mod width;

pub use firmware::{FirmwareTables, MemoryRegion, NoFirmware, Placement, RegionKind};
pub use irq::{Delivery, Interrupts, IrqError, MsiMessage, NoInterrupts};
pub use mapping::{
    identity_cover, type_aliases, Alias, IdentityCover, MappedRange, MemType, IDENTITY_LIMIT,
};
pub use memory::{canonical, check_access, MemError, MemKind, MemoryAccess, NoMemory};
pub use width::Width;

/// A PCI function address: bus, device (0..32), function (0..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Bdf {
            bus,
            device,
            function,
        }
    }

    /// Parses `bb:dd.f` (hex, as lspci prints it).
    pub fn parse(text: &str) -> Option<Bdf> {
        let (bus, rest) = text.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let field = |digits: &str, max_len: usize| {
            if digits.is_empty() || digits.len() > max_len {
                return None;
            }
            u8::from_str_radix(digits, 16).ok()
        };
        let bdf = Bdf {
            bus: field(bus, 2)?,
            device: field(device, 2)?,
            function: field(function, 1)?,
        };
        (bdf.device < 32 && bdf.function < 8).then_some(bdf)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// PCI configuration space of every function (legacy 0xCF8/0xCFC ports or ECAM).
///
/// Offsets are byte offsets into the function's config space; an access must be naturally
/// aligned. Reads of a function that does not exist return all ones, as on real PCI.
pub trait ConfigSpace {
    fn read8(&self, bdf: Bdf, offset: u16) -> u8;
    fn read16(&self, bdf: Bdf, offset: u16) -> u16;
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    fn write8(&self, bdf: Bdf, offset: u16, value: u8);
    fn write16(&self, bdf: Bdf, offset: u16, value: u16);
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);
    /// Highest config offset + 1 this access method reaches (256 legacy, 4096 ECAM).
    fn size(&self) -> u16;
}

/// A device register window (a mapped BAR, or a fake device's registers).
///
/// Values are what a CPU load/store of that width sees on x86: the bus is little-endian.
/// A big-endian device register (gVNIC) is therefore read as `u32::from_be(read32(..))`:
/// drivers state the byte order at the call site, through their own typed helpers.
pub trait RegisterWindow {
    /// Window length in bytes; accesses past it are driver bugs and are ignored (reads
    /// return all ones).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read8(&self, offset: usize) -> u8;
    fn read16(&self, offset: usize) -> u16;
    fn read32(&self, offset: usize) -> u32;
    fn write8(&self, offset: usize, value: u8);
    fn write16(&self, offset: usize, value: u16);
    fn write32(&self, offset: usize, value: u32);
}

/// Why a physical range could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The monitor's MMIO window is full.
    WindowFull,
    /// Address or size is not usable (zero, not page aligned, overflows).
    BadRange,
    /// Part of the range is identity mapped (RAM, firmware-owned RAM, the first MiB): an
    /// uncached second mapping would give one physical page two memory types.
    IdentityMapped,
}

/// A mapping of a physical MMIO range.
pub struct Mapping {
    /// Virtual address of the window (for display and evidence).
    pub window: u64,
    /// false when an identical earlier mapping was returned.
    pub newly_mapped: bool,
    pub regs: Box<dyn RegisterWindow>,
}

/// Maps physical MMIO ranges uncached. Mapping the same range twice returns the same window.
pub trait MmioMapper {
    fn map(&mut self, phys: u64, len: u64) -> Result<Mapping, MapError>;
    /// Releases one `map` of exactly `[phys, phys+len)` (the arguments that `map` got). The
    /// window is shared, not owned: it goes only when every `map` of it was released, so a
    /// driver's teardown never pulls a window out from under a `bar map` the user made, nor
    /// releases a user's larger mapping that merely covers the range. A range no
    /// outstanding `map` had is ignored.
    fn unmap(&mut self, phys: u64, len: u64);
}

/// Time, and the user's wish to stop waiting.
pub trait Clock {
    /// Monotonic microseconds since some fixed point.
    fn now_us(&self) -> u64;
    /// Called in every polling loop: a place to pause the CPU (or, in a simulation, to let
    /// time or the device model advance).
    fn relax(&self) {
        core::hint::spin_loop();
    }
    /// True when the user asked to abort a long wait (Ctrl-C on the console).
    fn interrupted(&self) -> bool {
        false
    }
}

/// How a bounded wait ended without its condition coming true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    TimedOut,
    Interrupted,
}

/// Polls `done` until it returns `Some`, the deadline passes, or the user interrupts.
///
/// Every wait in every driver goes through here, so no wait is ever without a deadline.
/// The condition is checked once more after the deadline so a slow poll loop never reports
/// a timeout for a condition that did come true.
pub fn wait_for<T>(
    clock: &dyn Clock,
    timeout_us: u64,
    mut done: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let deadline = clock.now_us().saturating_add(timeout_us);
    loop {
        if let Some(value) = done() {
            return Ok(value);
        }
        if clock.now_us() >= deadline {
            return done().ok_or(WaitError::TimedOut);
        }
        if clock.interrupted() {
            return Err(WaitError::Interrupted);
        }
        clock.relax();
    }
}

/// Polls `done` until it returns `Some` or the deadline passes, ignoring Ctrl-C.
///
/// For recovery waits only: a device reset and its release, an NVMe disable or shutdown,
/// draining commands still at a device. Cutting those short would leave a healthy device's
/// DMA quarantined (or a busy one's freed), so a Ctrl-C aborts the wait the user is in
/// (`wait_for`) and never the cleanup after it; each recovery wait still has its deadline.
pub fn wait_for_recovery<T>(
    clock: &dyn Clock,
    timeout_us: u64,
    mut done: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let deadline = clock.now_us().saturating_add(timeout_us);
    loop {
        if let Some(value) = done() {
            return Ok(value);
        }
        if clock.now_us() >= deadline {
            return done().ok_or(WaitError::TimedOut);
        }
        clock.relax();
    }
}

/// The four registers CPUID answers with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Why an MSR access did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrError {
    /// The CPU (or hypervisor) raised #GP: the MSR does not exist or refuses the value.
    GeneralProtection,
}

/// The processor itself: CPUID and model-specific registers.
///
/// `cpuid` never fails (an unknown leaf answers what the CPU answers for it, usually the
/// highest basic leaf's values or zeros). `read_msr`/`write_msr` return
/// `Err(GeneralProtection)` instead of faulting when the CPU refuses the access; nothing is
/// written on error. Host tests inject values through fakes (e.g. confidential-VM detection).
pub trait Cpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
    fn read_msr(&self, index: u32) -> Result<u64, MsrError>;
    fn write_msr(&self, index: u32, value: u64) -> Result<(), MsrError>;
}

/// x86 I/O ports. Ports are 16-bit; an access of width 2 or 4 must be naturally aligned
/// (the caller checks). A port nothing decodes reads all ones, as on a real bus.
pub trait PortIo {
    fn in8(&self, port: u16) -> u8;
    fn in16(&self, port: u16) -> u16;
    fn in32(&self, port: u16) -> u32;
    fn out8(&self, port: u16, value: u8);
    fn out16(&self, port: u16, value: u16);
    fn out32(&self, port: u16, value: u32);
}

/// A CPU with no leaves and no MSRs (tests and fuzzing): CPUID answers zeros, every MSR
/// access is refused with #GP.
pub struct NullCpu;

impl Cpu for NullCpu {
    fn cpuid(&self, _leaf: u32, _subleaf: u32) -> CpuidResult {
        CpuidResult::default()
    }
    fn read_msr(&self, _index: u32) -> Result<u64, MsrError> {
        Err(MsrError::GeneralProtection)
    }
    fn write_msr(&self, _index: u32, _value: u64) -> Result<(), MsrError> {
        Err(MsrError::GeneralProtection)
    }
}

/// An I/O space where nothing answers (tests and fuzzing): reads all ones, writes dropped.
pub struct NullPorts;

impl PortIo for NullPorts {
    fn in8(&self, _port: u16) -> u8 {
        0xff
    }
    fn in16(&self, _port: u16) -> u16 {
        0xffff
    }
    fn in32(&self, _port: u16) -> u32 {
        0xffff_ffff
    }
    fn out8(&self, _port: u16, _value: u8) {}
    fn out16(&self, _port: u16, _value: u16) {}
    fn out32(&self, _port: u16, _value: u32) {}
}

/// The hardware a command may touch, lent to it for the command's duration.
pub struct Hw<'a> {
    pub config: &'a dyn ConfigSpace,
    pub mmio: &'a mut dyn MmioMapper,
    pub clock: &'a dyn Clock,
    pub dma: &'a mut crate::dma::DmaPool,
    pub memory: &'a dyn MemoryAccess,
    pub cpu: &'a dyn Cpu,
    pub ports: &'a dyn PortIo,
    /// The memory map, ACPI and the monitor's own placement.
    pub firmware: &'a dyn FirmwareTables,
    /// The boot CPU's interrupt path (`irq test` only).
    pub irq: &'a dyn Interrupts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    struct StepClock(Cell<u64>);
    impl Clock for StepClock {
        fn now_us(&self) -> u64 {
            let t = self.0.get();
            self.0.set(t + 10);
            t
        }
    }

    #[test]
    fn bdf_parse_and_display() {
        let bdf = Bdf::parse("03:1f.7").unwrap();
        assert_eq!(bdf, Bdf::new(3, 0x1f, 7));
        assert_eq!(bdf.to_string(), "03:1f.7");
        assert_eq!(Bdf::parse("00:20.0"), None);
        assert_eq!(Bdf::parse("00:00.8"), None);
        assert_eq!(Bdf::parse("100:00.0"), None);
        assert_eq!(Bdf::parse("0000"), None);
    }

    struct CtrlC(StepClock);
    impl Clock for CtrlC {
        fn now_us(&self) -> u64 {
            self.0.now_us()
        }
        fn interrupted(&self) -> bool {
            true
        }
    }

    #[test]
    fn ctrl_c_aborts_a_user_wait_but_not_a_recovery_wait() {
        let clock = CtrlC(StepClock(Cell::new(0)));
        assert_eq!(
            wait_for(&clock, 1_000, || None::<()>),
            Err(WaitError::Interrupted)
        );
        let mut polls = 0;
        assert_eq!(
            wait_for_recovery(&clock, 1_000, || {
                polls += 1;
                (polls == 20).then_some(())
            }),
            Ok(())
        );
        assert_eq!(
            wait_for_recovery(&clock, 100, || None::<()>),
            Err(WaitError::TimedOut)
        );
    }

    #[test]
    fn wait_times_out_and_succeeds() {
        let clock = StepClock(Cell::new(0));
        assert_eq!(
            wait_for(&clock, 100, || None::<()>),
            Err(WaitError::TimedOut)
        );
        let mut polls = 0;
        assert_eq!(
            wait_for(&clock, 1_000, || {
                polls += 1;
                (polls == 3).then_some(7)
            }),
            Ok(7)
        );
    }
}
