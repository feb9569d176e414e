//! `peek`/`poke` on bare metal: every access is checked against the live page tables
//! first, so an unmapped address is an error, never a page fault (`read_unchecked` is the
//! exception, on purpose). Uncached pages (PCD set: the MMIO window) are device memory.

use alloc::vec::Vec;
use core::ops::Range;

use drivers::platform::{check_access, Cpu, MappedRange, MemError, MemKind, MemoryAccess, Width};
use monitor::paging::{self, PAT_POWER_ON};
use x86_64::registers::control::Cr3;

/// IA32_PAT (SDM vol. 4): the monitor never writes it, but firmware may have.
const IA32_PAT: u32 = 0x277;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
/// Page-level cache disable: set on every MMIO window page (monitor/src/mmio.rs).
const CACHE_DISABLE: u64 = 1 << 4;
/// Page size bit in a PDPT (1 GiB) or PD (2 MiB) entry.
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A page that maps an address: its flags, and its size (to step to the next one).
struct Leaf {
    writable: bool,
    uncached: bool,
    page_bytes: u64,
}

/// Walks the 4-level tables for `addr` (tables are identity mapped: boot tables in the
/// image, MMIO window tables from the identity-mapped heap).
fn translate(addr: u64) -> Option<Leaf> {
    let (frame, _) = Cr3::read();
    let mut table = frame.start_address().as_u64();
    let mut writable = true;
    for level in (0..4).rev() {
        let index = (addr >> (12 + 9 * level)) & 0x1ff;
        // SAFETY: `table` is a live page table (from CR3 or a present entry), identity
        // mapped; reading one entry has no side effect.
        let entry = unsafe { ((table + index * 8) as *const u64).read_volatile() };
        if entry & PRESENT == 0 {
            return None;
        }
        writable &= entry & WRITABLE != 0;
        let leaf = level == 0 || (level <= 2 && entry & HUGE != 0);
        if leaf {
            return Some(Leaf {
                writable,
                uncached: entry & CACHE_DISABLE != 0,
                page_bytes: 1 << (12 + 9 * level),
            });
        }
        table = entry & ADDR_MASK;
    }
    None
}

pub struct Peek;

impl MemoryAccess for Peek {
    fn probe(&self, addr: u64, len: u64, write: bool) -> Result<MemKind, MemError> {
        let last = addr
            .checked_add(len.max(1) - 1)
            .ok_or(MemError::NonCanonical(addr))?;
        if !drivers::platform::canonical(addr) || !drivers::platform::canonical(last) {
            return Err(MemError::NonCanonical(addr));
        }
        let mut kind = None;
        let mut at = addr;
        loop {
            let leaf = translate(at).ok_or(MemError::Unmapped(at))?;
            if write && !leaf.writable {
                return Err(MemError::ReadOnly(at));
            }
            let this = if leaf.uncached {
                MemKind::Device
            } else {
                MemKind::Ram
            };
            // A range is one kind: the first page decides (a range spanning RAM and a
            // window does not exist in the monitor's layout).
            kind.get_or_insert(this);
            let next = (at | (leaf.page_bytes - 1)).checked_add(1);
            match next {
                Some(next) if next <= last => at = next,
                _ => break,
            }
        }
        Ok(kind.unwrap_or(MemKind::Ram))
    }

    fn read(&self, addr: u64, width: Width) -> Result<u64, MemError> {
        check_access(addr, width)?;
        self.probe(addr, width.bytes(), false)?;
        // SAFETY: the page tables map the whole access (just checked) and it is aligned;
        // a read of a device register has only the device's own side effects.
        Ok(unsafe {
            match width {
                Width::W1 => (addr as *const u8).read_volatile() as u64,
                Width::W2 => (addr as *const u16).read_volatile() as u64,
                Width::W4 => (addr as *const u32).read_volatile() as u64,
                Width::W8 => (addr as *const u64).read_volatile(),
            }
        })
    }

    fn write(&self, addr: u64, width: Width, value: u64) -> Result<(), MemError> {
        check_access(addr, width)?;
        self.probe(addr, width.bytes(), true)?;
        // SAFETY: mapped writable and aligned (just checked). What the write does to the
        // monitor's own state is the user's business: a debug monitor's right.
        unsafe {
            match width {
                Width::W1 => (addr as *mut u8).write_volatile(value as u8),
                Width::W2 => (addr as *mut u16).write_volatile(value as u16),
                Width::W4 => (addr as *mut u32).write_volatile(value as u32),
                Width::W8 => (addr as *mut u64).write_volatile(value),
            }
        }
        Ok(())
    }

    fn mappings(&self, virt: Range<u64>) -> Vec<MappedRange> {
        let pat = crate::cpu::BareCpu
            .read_msr(IA32_PAT)
            .unwrap_or(PAT_POWER_ON);
        let (frame, _) = Cr3::read();
        let read = |at: u64| {
            // SAFETY: `at` is an entry of a live page table (from CR3 or a present entry),
            // identity mapped; reading it has no side effect.
            unsafe { (at as *const u64).read_volatile() }
        };
        paging::mappings(frame.start_address().as_u64(), pat, virt, &read)
    }

    fn read_unchecked(&self, addr: u64) -> Result<u8, MemError> {
        check_access(addr, Width::W1)?;
        // SAFETY: the address is canonical; if it is not mapped the CPU raises a page
        // fault, which the guarded command runner turns into an error result (the point).
        Ok(unsafe { (addr as *const u8).read_volatile() })
    }
}

/// Copies physical bytes below 4 GiB through the identity map (firmware tables).
pub fn read_phys(phys: u64, out: &mut [u8]) -> Result<(), MemError> {
    let len = out.len() as u64;
    if phys.checked_add(len).is_none_or(|end| end > 1 << 32) {
        return Err(MemError::Unmapped(phys));
    }
    Peek.probe(phys, len, false)?;
    for (i, byte) in out.iter_mut().enumerate() {
        // SAFETY: identity mapped (just probed), RAM below 4 GiB.
        *byte = unsafe { ((phys + i as u64) as *const u8).read_volatile() };
    }
    Ok(())
}
