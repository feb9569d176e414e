//! The bounce DMA pool: the only memory any device is ever allowed to see.
//!
//! One physically contiguous region below 4 GiB is reserved at boot. Drivers allocate
//! page-granular, page-aligned buffers from it; data moves between the pool and a command's
//! own buffers by copy. The ledger records who owns every page and why:
//! - allocations are zeroed (a device never sees stale data from an earlier user);
//! - frees are scrubbed and checked (a double free is an error, not a corruption);
//! - a device that failed to release (reset timed out) gets its pages QUARANTINED: never
//!   reused in this boot, because the device may still write them;
//! - every address handed to a device is checked to lie inside the pool.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

pub const PAGE_SIZE: usize = 4096;

/// A handle to one live allocation. Copyable so drivers can keep it in several places; the
/// ledger (not the type system) catches a second free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaBuf {
    id: u32,
    first_page: u32,
    pages: u32,
}

impl DmaBuf {
    pub fn len(&self) -> usize {
        self.pages as usize * PAGE_SIZE
    }
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }
    pub fn pages(&self) -> u32 {
        self.pages
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaError {
    /// No run of free pages is long enough.
    Exhausted { wanted_pages: u32, free_pages: u32 },
    /// The handle is not (or no longer) a live allocation: double free or stale handle.
    NotAllocated,
    /// The allocation is quarantined and must not be touched again.
    Quarantined,
    /// An access or device address outside the allocation or the pool.
    OutOfBounds,
    /// Zero-sized request.
    Empty,
    /// The pool hands out nothing at all: device memory is switched off for this boot
    /// (a confidential VM, whose private memory a device cannot DMA into).
    Refused,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DmaError::Exhausted {
                wanted_pages,
                free_pages,
            } => write!(
                f,
                "DMA pool exhausted: wanted {wanted_pages} contiguous pages, {free_pages} free"
            ),
            DmaError::NotAllocated => write!(f, "DMA buffer is not allocated (double free?)"),
            DmaError::Quarantined => write!(f, "DMA buffer is quarantined"),
            DmaError::OutOfBounds => write!(f, "address outside the DMA bounce pool"),
            DmaError::Empty => write!(f, "zero-sized DMA allocation"),
            DmaError::Refused => write!(
                f,
                "DMA refused: device memory is switched off on this machine (confidential VM)"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageState {
    Free,
    Used,
    Quarantined,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub id: u32,
    pub owner: String,
    pub purpose: &'static str,
    pub phys: u64,
    pub pages: u32,
    /// `Some(reason)` once quarantined.
    pub quarantine: Option<String>,
}

/// Page counts for `dma` and evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub used_pages: u32,
    pub free_pages: u32,
    pub quarantined_pages: u32,
}

pub struct DmaPool {
    phys_base: u64,
    virt_base: *mut u8,
    pages: Vec<PageState>,
    ledger: Vec<Allocation>,
    next_id: u32,
    /// Set by [`DmaPool::refuse_all`]: every allocation fails with `Refused`.
    refusing: bool,
    /// Allocations refused so far (the shell names the error of a command that hit one).
    refusals: u32,
}

impl DmaPool {
    /// # Safety
    /// `virt_base` must point to `bytes` bytes of memory, writable, used for nothing else
    /// while the pool lives, which devices see at physical address `phys_base`.
    /// `phys_base` must be page aligned.
    pub unsafe fn new(phys_base: u64, virt_base: *mut u8, bytes: usize) -> Self {
        DmaPool {
            phys_base,
            virt_base,
            pages: vec![PageState::Free; bytes / PAGE_SIZE],
            ledger: Vec::new(),
            next_id: 1,
            refusing: false,
            refusals: 0,
        }
    }

    /// From now on every [`DmaPool::alloc`] fails with [`DmaError::Refused`]: the backstop
    /// that keeps device memory off on a confidential VM whatever command asks for it.
    pub fn refuse_all(&mut self) {
        self.refusing = true;
    }

    /// How many allocations were refused by [`DmaPool::refuse_all`] so far.
    pub fn refusals(&self) -> u32 {
        self.refusals
    }

    pub fn phys_base(&self) -> u64 {
        self.phys_base
    }

    pub fn bytes(&self) -> u64 {
        (self.pages.len() * PAGE_SIZE) as u64
    }

    /// Allocates `bytes` (rounded up to pages), zeroed, physically contiguous, page aligned.
    pub fn alloc(
        &mut self,
        owner: &str,
        purpose: &'static str,
        bytes: usize,
    ) -> Result<DmaBuf, DmaError> {
        if self.refusing {
            self.refusals = self.refusals.saturating_add(1);
            return Err(DmaError::Refused);
        }
        if bytes == 0 {
            return Err(DmaError::Empty);
        }
        let wanted = bytes.div_ceil(PAGE_SIZE);
        let first = self.find_free_run(wanted).ok_or(DmaError::Exhausted {
            wanted_pages: wanted.min(u32::MAX as usize) as u32,
            free_pages: self.usage().free_pages,
        })?;
        for state in &mut self.pages[first..first + wanted] {
            *state = PageState::Used;
        }
        let buf = DmaBuf {
            id: self.next_id,
            first_page: first as u32,
            pages: wanted as u32,
        };
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.fill(&buf, 0);
        self.ledger.push(Allocation {
            id: buf.id,
            owner: String::from(owner),
            purpose,
            phys: self.page_phys(first),
            pages: buf.pages,
            quarantine: None,
        });
        Ok(buf)
    }

    fn find_free_run(&self, wanted: usize) -> Option<usize> {
        let mut run_start = 0;
        let mut run_len = 0;
        for (index, state) in self.pages.iter().enumerate() {
            if *state == PageState::Free {
                if run_len == 0 {
                    run_start = index;
                }
                run_len += 1;
                if run_len == wanted {
                    return Some(run_start);
                }
            } else {
                run_len = 0;
            }
        }
        None
    }

    fn entry_index(&self, buf: &DmaBuf) -> Result<usize, DmaError> {
        let index = self
            .ledger
            .iter()
            .position(|a| a.id == buf.id)
            .ok_or(DmaError::NotAllocated)?;
        if self.ledger[index].quarantine.is_some() {
            return Err(DmaError::Quarantined);
        }
        Ok(index)
    }

    /// Scrubs and frees. A stale handle or a second free is an error and changes nothing.
    pub fn free(&mut self, buf: DmaBuf) -> Result<(), DmaError> {
        let index = self.entry_index(&buf)?;
        self.fill(&buf, 0);
        let first = buf.first_page as usize;
        for state in &mut self.pages[first..first + buf.pages as usize] {
            *state = PageState::Free;
        }
        self.ledger.remove(index);
        Ok(())
    }

    /// Marks the buffer's pages as never to be reused in this boot: the device that owned
    /// them did not confirm it stopped, so it may still write them.
    pub fn quarantine(&mut self, buf: DmaBuf, reason: &str) -> Result<(), DmaError> {
        let index = self.entry_index(&buf)?;
        let first = buf.first_page as usize;
        for state in &mut self.pages[first..first + buf.pages as usize] {
            *state = PageState::Quarantined;
        }
        self.ledger[index].quarantine = Some(String::from(reason));
        Ok(())
    }

    /// Frees every live allocation of `owner`; returns how many were freed.
    pub fn free_owner(&mut self, owner: &str) -> usize {
        let bufs = self.live_bufs(owner);
        bufs.iter().filter(|buf| self.free(**buf).is_ok()).count()
    }

    /// Quarantines every live allocation of `owner`; returns how many.
    pub fn quarantine_owner(&mut self, owner: &str, reason: &str) -> usize {
        let bufs = self.live_bufs(owner);
        bufs.iter()
            .filter(|buf| self.quarantine(**buf, reason).is_ok())
            .count()
    }

    /// Frees every quarantined allocation of `owner`, once a later reset of that device was
    /// confirmed (it can no longer write them). Returns (allocations, pages) released.
    pub fn release_quarantined(&mut self, owner: &str) -> (usize, u32) {
        let held: Vec<DmaBuf> = self
            .ledger
            .iter()
            .filter(|a| a.owner == owner && a.quarantine.is_some())
            .map(|a| DmaBuf {
                id: a.id,
                first_page: ((a.phys - self.phys_base) / PAGE_SIZE as u64) as u32,
                pages: a.pages,
            })
            .collect();
        let mut pages = 0;
        for buf in &held {
            if let Some(index) = self.ledger.iter().position(|a| a.id == buf.id) {
                self.fill(buf, 0);
                let first = buf.first_page as usize;
                for state in &mut self.pages[first..first + buf.pages as usize] {
                    *state = PageState::Free;
                }
                self.ledger.remove(index);
                pages += buf.pages;
            }
        }
        (held.len(), pages)
    }

    fn live_bufs(&self, owner: &str) -> Vec<DmaBuf> {
        self.ledger
            .iter()
            .filter(|a| a.owner == owner && a.quarantine.is_none())
            .map(|a| DmaBuf {
                id: a.id,
                first_page: ((a.phys - self.phys_base) / PAGE_SIZE as u64) as u32,
                pages: a.pages,
            })
            .collect()
    }

    /// The device-visible (physical) address of byte `offset` of `buf`, checked to lie in
    /// the allocation and therefore in the pool.
    pub fn device_addr(&self, buf: &DmaBuf, offset: usize) -> Result<u64, DmaError> {
        self.entry_index(buf)?;
        if offset >= buf.len() {
            return Err(DmaError::OutOfBounds);
        }
        Ok(self.page_phys(buf.first_page as usize) + offset as u64)
    }

    /// Checks that `[phys, phys + len)` lies inside the pool (for addresses a driver computed
    /// itself, e.g. PRP entries or page lists).
    pub fn check_device_range(&self, phys: u64, len: u64) -> Result<(), DmaError> {
        let end = phys.checked_add(len).ok_or(DmaError::OutOfBounds)?;
        if phys < self.phys_base || end > self.phys_base + self.bytes() || len == 0 {
            return Err(DmaError::OutOfBounds);
        }
        Ok(())
    }

    fn page_phys(&self, page: usize) -> u64 {
        self.phys_base + (page * PAGE_SIZE) as u64
    }

    fn checked_ptr(&self, buf: &DmaBuf, offset: usize, len: usize) -> Result<*mut u8, DmaError> {
        self.entry_index(buf)?;
        match offset.checked_add(len) {
            Some(end) if end <= buf.len() => {}
            _ => return Err(DmaError::OutOfBounds),
        }
        // SAFETY: the range was checked to lie inside a live allocation, which lies inside
        // the region `new` was given.
        Ok(unsafe {
            self.virt_base
                .add(buf.first_page as usize * PAGE_SIZE + offset)
        })
    }

    fn fill(&mut self, buf: &DmaBuf, value: u8) {
        let start = buf.first_page as usize * PAGE_SIZE;
        // Fences on both sides stand in for volatile: the compiler may not move or elide
        // this fill across them, and a bulk fill (rep stos) is ~100x faster than a volatile
        // byte loop, which matters because big reads allocate and free megabytes.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: `buf`'s pages lie inside the pool region (alloc/free only pass bufs whose
        // pages were just checked), and no Rust reference to pool memory is alive across a
        // fill (`slice` borrows the pool, which `fill` needs mutably).
        unsafe { core::ptr::write_bytes(self.virt_base.add(start), value, buf.len()) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// Copies `data` into `buf` at `offset`.
    pub fn write(&mut self, buf: &DmaBuf, offset: usize, data: &[u8]) -> Result<(), DmaError> {
        let dst = self.checked_ptr(buf, offset, data.len())?;
        // SAFETY: checked_ptr bounds-checked the destination range; the pool memory never
        // overlaps a Rust-owned buffer like `data`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Copies from `buf` at `offset` into `out`.
    pub fn read(&self, buf: &DmaBuf, offset: usize, out: &mut [u8]) -> Result<(), DmaError> {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let src = self.checked_ptr(buf, offset, out.len())?;
        // SAFETY: as in `write`.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// A shared view of `len` bytes of `buf` at `offset`, for hashing data in place after
    /// the device has finished writing it (the caller knows the device is done).
    pub fn slice(&self, buf: &DmaBuf, offset: usize, len: usize) -> Result<&[u8], DmaError> {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let src = self.checked_ptr(buf, offset, len)?;
        // SAFETY: bounds checked; the device no longer writes these bytes (caller's contract
        // above), and the pool hands out no `&mut` to pool memory.
        Ok(unsafe { core::slice::from_raw_parts(src, len) })
    }

    /// A mutable view of `len` bytes of `buf` at `offset`, for filling data in place before
    /// it is handed to a device (the caller knows the device does not own these bytes yet).
    /// The trailing fence in [`DmaPool::fence`] orders the fill before the doorbell.
    pub fn slice_mut(
        &mut self,
        buf: &DmaBuf,
        offset: usize,
        len: usize,
    ) -> Result<&mut [u8], DmaError> {
        let dst = self.checked_ptr(buf, offset, len)?;
        // SAFETY: bounds checked; the borrow of `self` keeps any other view of pool memory
        // from existing meanwhile, and the device does not own the range (caller's contract).
        Ok(unsafe { core::slice::from_raw_parts_mut(dst, len) })
    }

    /// A full fence: writes through `slice_mut` are visible before what follows (a doorbell).
    pub fn fence(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// Volatile little-endian u32 load (for fields a device updates while we poll).
    pub fn read_u32(&self, buf: &DmaBuf, offset: usize) -> Result<u32, DmaError> {
        let src = self.checked_ptr(buf, offset, 4)?;
        if !offset.is_multiple_of(4) {
            return Err(DmaError::OutOfBounds);
        }
        // SAFETY: bounds checked and 4-byte aligned (pool pages are page aligned).
        Ok(unsafe { core::ptr::read_volatile(src as *const u32) })
    }

    /// Volatile little-endian u32 store.
    pub fn write_u32(&mut self, buf: &DmaBuf, offset: usize, value: u32) -> Result<(), DmaError> {
        let dst = self.checked_ptr(buf, offset, 4)?;
        if !offset.is_multiple_of(4) {
            return Err(DmaError::OutOfBounds);
        }
        // SAFETY: bounds checked and aligned.
        unsafe { core::ptr::write_volatile(dst as *mut u32, value) };
        Ok(())
    }

    pub fn usage(&self) -> PoolUsage {
        let count = |wanted| self.pages.iter().filter(|s| **s == wanted).count() as u32;
        PoolUsage {
            used_pages: count(PageState::Used),
            free_pages: count(PageState::Free),
            quarantined_pages: count(PageState::Quarantined),
        }
    }

    pub fn ledger(&self) -> &[Allocation] {
        &self.ledger
    }
}

/// Host-side backing for tests: page-aligned memory from the std allocator, with a fake
/// physical base so device models can translate addresses.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    extern crate std;
    use super::{DmaPool, PAGE_SIZE};
    use std::alloc::{alloc_zeroed, Layout};

    /// Leaks `bytes` of page-aligned memory and builds a pool over it at `phys_base`.
    /// Returns the pool and the host pointer (for a device model's guest-memory view).
    pub fn leaked_pool(phys_base: u64, bytes: usize) -> (DmaPool, *mut u8) {
        let layout = Layout::from_size_align(bytes, PAGE_SIZE).expect("layout");
        // SAFETY: non-zero size, valid layout; the memory is leaked so it outlives the pool.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        // SAFETY: `ptr` is `bytes` of fresh memory that nothing else uses.
        (unsafe { DmaPool::new(phys_base, ptr, bytes) }, ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::leaked_pool;
    use super::*;

    #[test]
    fn alloc_is_zeroed_and_free_is_scrubbed() {
        let (mut pool, host) = leaked_pool(0x100_0000, 8 * PAGE_SIZE);
        let a = pool.alloc("nvme", "admin-sq", 100).unwrap();
        assert_eq!(a.len(), PAGE_SIZE);
        pool.write(&a, 0, &[0xaa; 64]).unwrap();
        let phys = pool.device_addr(&a, 0).unwrap();
        assert_eq!(phys % PAGE_SIZE as u64, 0);
        pool.free(a).unwrap();
        // Scrubbed: the host view of those bytes is zero again.
        let offset = (phys - 0x100_0000) as usize;
        // SAFETY: `host` is the pool's leaked backing memory and `offset + 64` lies inside it.
        let bytes = unsafe { core::slice::from_raw_parts(host.add(offset), 64) };
        assert!(bytes.iter().all(|b| *b == 0));
        let b = pool.alloc("nvme", "admin-cq", PAGE_SIZE).unwrap();
        let mut out = [1u8; 64];
        pool.read(&b, 0, &mut out).unwrap();
        assert_eq!(out, [0u8; 64]);
    }

    #[test]
    fn double_free_and_stale_handles_are_rejected() {
        let (mut pool, _) = leaked_pool(0x100_0000, 4 * PAGE_SIZE);
        let a = pool.alloc("x", "t", 1).unwrap();
        pool.free(a).unwrap();
        assert_eq!(pool.free(a), Err(DmaError::NotAllocated));
        assert_eq!(pool.write(&a, 0, &[1]), Err(DmaError::NotAllocated));
        assert_eq!(pool.usage().free_pages, 4);
    }

    #[test]
    fn quarantine_is_released_only_for_its_owner() {
        let (mut pool, _) = leaked_pool(0x100_0000, 4 * PAGE_SIZE);
        let a = pool.alloc("gvnic", "aq", 2 * PAGE_SIZE).unwrap();
        let b = pool.alloc("nvme", "sq", PAGE_SIZE).unwrap();
        pool.quarantine(a, "no reset").unwrap();
        pool.quarantine(b, "no reset").unwrap();
        assert_eq!(pool.release_quarantined("gvnic"), (1, 2));
        assert_eq!(pool.usage().quarantined_pages, 1);
        assert_eq!(pool.usage().free_pages, 3);
        assert_eq!(pool.release_quarantined("gvnic"), (0, 0));
        assert_eq!(pool.free(a), Err(DmaError::NotAllocated));
    }

    #[test]
    fn quarantined_pages_are_never_reused() {
        let (mut pool, _) = leaked_pool(0x100_0000, 3 * PAGE_SIZE);
        let a = pool.alloc("gvnic", "aq", PAGE_SIZE).unwrap();
        let _b = pool.alloc("gvnic", "qpl", 2 * PAGE_SIZE).unwrap();
        assert_eq!(pool.quarantine_owner("gvnic", "reset timed out"), 2);
        assert_eq!(pool.free(a), Err(DmaError::Quarantined));
        assert!(matches!(
            pool.alloc("nvme", "x", 1),
            Err(DmaError::Exhausted { .. })
        ));
        let usage = pool.usage();
        assert_eq!(
            (usage.used_pages, usage.quarantined_pages, usage.free_pages),
            (0, 3, 0)
        );
        assert!(pool
            .ledger()
            .iter()
            .all(|e| e.quarantine.as_deref() == Some("reset timed out")));
    }

    #[test]
    fn addresses_outside_the_pool_are_rejected() {
        let (mut pool, _) = leaked_pool(0x100_0000, 4 * PAGE_SIZE);
        let a = pool.alloc("x", "t", PAGE_SIZE).unwrap();
        assert_eq!(pool.device_addr(&a, PAGE_SIZE), Err(DmaError::OutOfBounds));
        assert_eq!(
            pool.write(&a, PAGE_SIZE - 1, &[1, 2]),
            Err(DmaError::OutOfBounds)
        );
        assert!(pool
            .check_device_range(0x100_0000, 4 * PAGE_SIZE as u64)
            .is_ok());
        assert!(pool.check_device_range(0xfff_f000, 8).is_err());
        assert!(pool
            .check_device_range(0x100_0000 + 4 * PAGE_SIZE as u64 - 4, 8)
            .is_err());
        assert!(pool.check_device_range(u64::MAX - 2, 8).is_err());
    }

    #[test]
    fn contiguous_runs_skip_holes() {
        let (mut pool, _) = leaked_pool(0, 4 * PAGE_SIZE);
        let a = pool.alloc("x", "a", PAGE_SIZE).unwrap();
        let _b = pool.alloc("x", "b", PAGE_SIZE).unwrap();
        pool.free(a).unwrap();
        let c = pool.alloc("x", "c", 2 * PAGE_SIZE).unwrap();
        assert_eq!(pool.device_addr(&c, 0).unwrap(), 2 * PAGE_SIZE as u64);
        assert_eq!(pool.free_owner("x"), 2);
        assert_eq!(pool.usage().free_pages, 4);
    }
}
