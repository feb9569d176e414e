//! Raw virtual memory for `peek`/`poke`: RAM, and the MMIO windows `bar map`/`mem map` made.

use alloc::vec::Vec;
use core::ops::Range;

use super::{MappedRange, Width};

/// What backs a mapped address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// Cacheable memory (RAM): any width reads the same bytes, without side effects.
    Ram,
    /// Uncached memory (device registers): an access of one width is one bus cycle, and
    /// reads may have side effects, so the width is the caller's choice.
    Device,
}

/// Why an access was refused before touching the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// Bits 63..47 are not a sign extension of bit 47.
    NonCanonical(u64),
    /// No page maps this address (nothing was touched, nothing faulted).
    Unmapped(u64),
    /// Mapped, but read-only, and this was a write.
    ReadOnly(u64),
    /// The address is not a multiple of the access width.
    Unaligned { addr: u64, width: Width },
}

impl MemError {
    /// Stable kebab-case codes (shared with the commands' errors).
    pub fn code(&self) -> &'static str {
        match self {
            MemError::NonCanonical(_) => "bad-address",
            MemError::Unmapped(_) => "unmapped-address",
            MemError::ReadOnly(_) => "read-only-address",
            MemError::Unaligned { .. } => "unaligned-address",
        }
    }
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::NonCanonical(a) => write!(f, "{a:#x} is not a canonical address"),
            MemError::Unmapped(a) => write!(f, "{a:#x} is not mapped (no page maps it)"),
            MemError::ReadOnly(a) => write!(f, "{a:#x} is mapped read-only"),
            MemError::Unaligned { addr, width } => {
                write!(f, "{addr:#x} is not aligned to the access width {width}")
            }
        }
    }
}

/// Virtual memory as the monitor's page tables map it.
///
/// Contract: `probe` walks the page tables and touches nothing; `read`/`write` probe the
/// access first and return the error instead of faulting, so a mistyped address never
/// takes a page fault. One `read`/`write` is exactly one access of `width` (values are
/// what the little-endian CPU sees: the low bytes are at `addr`). Accesses must be
/// naturally aligned (`Unaligned` otherwise). `read_unchecked` is the one way to reach the
/// fault path on purpose: it does not probe, so an unmapped address page-faults and the
/// monitor's guard aborts the command.
pub trait MemoryAccess {
    /// Checks that every byte of `[addr, addr+len)` is mapped (writable when `write`).
    fn probe(&self, addr: u64, len: u64, write: bool) -> Result<MemKind, MemError>;
    fn read(&self, addr: u64, width: Width) -> Result<u64, MemError>;
    fn write(&self, addr: u64, width: Width, value: u64) -> Result<(), MemError>;
    /// The live mappings of the virtual range `virt`, as the page tables say (nothing is
    /// touched): sorted by virtual address, contiguous pages of one type merged, clipped
    /// to `virt`. The identity map is the part with virtual = physical below
    /// [`super::IDENTITY_LIMIT`].
    fn mappings(&self, virt: Range<u64>) -> Vec<MappedRange>;
    /// One byte, without the page-table check (see the trait doc).
    fn read_unchecked(&self, addr: u64) -> Result<u8, MemError> {
        self.read(addr, Width::W1).map(|v| v as u8)
    }
}

/// x86_64 4-level paging: bits 63..47 must all equal bit 47.
pub const fn canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1ffff
}

/// Shared precondition of every access: canonical and aligned.
pub fn check_access(addr: u64, width: Width) -> Result<(), MemError> {
    if !canonical(addr) || !canonical(addr.saturating_add(width.bytes() - 1)) {
        return Err(MemError::NonCanonical(addr));
    }
    if !width.aligned(addr) {
        return Err(MemError::Unaligned { addr, width });
    }
    Ok(())
}

/// Memory where nothing is mapped (tests and fuzzing): every access is `Unmapped`, like the
/// monitor's answer for an address no page maps.
pub struct NoMemory;

impl MemoryAccess for NoMemory {
    fn probe(&self, addr: u64, _len: u64, _write: bool) -> Result<MemKind, MemError> {
        Err(MemError::Unmapped(addr))
    }
    fn read(&self, addr: u64, _width: Width) -> Result<u64, MemError> {
        Err(MemError::Unmapped(addr))
    }
    fn write(&self, addr: u64, _width: Width, _value: u64) -> Result<(), MemError> {
        Err(MemError::Unmapped(addr))
    }
    fn mappings(&self, _virt: Range<u64>) -> Vec<MappedRange> {
        Vec::new()
    }
}
