//! The global allocator, and what a fault inside it leaves behind.
//!
//! A fault (or panic) inside a command abandons the command mid-flight. If it struck while
//! the allocator held its lock, the free list may be half-updated: unlocking it (what the
//! monitor used to do) lets the next allocation walk a broken list, which hands out the
//! same memory twice or faults again. So the heap is split in two: the main heap, and a
//! small reserve nothing uses while the main heap is healthy. After a fault with the main
//! heap locked, the main heap is *poisoned*: it is never touched again (its lock stays
//! held; frees into it are dropped), every allocation comes from the reserve, and the shell
//! refuses every command but `reset` (`heap-poisoned`). The reserve is enough for that
//! refusal, the fault report and `reset`'s teardown. Live objects in the main heap stay
//! valid: a fault in the allocator corrupts its bookkeeping, not the blocks it handed out.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use linked_list_allocator::LockedHeap;

/// Bytes kept back for after a poisoning (policy: a refusal needs a few KiB, `reset`'s
/// teardown with both devices bound some tens of KiB).
pub const RESERVE_BYTES: usize = 1 << 20;

/// The heap's state after a fault, as [`GuardedHeap::after_fault`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    /// The fault was not inside the allocator: nothing to do.
    Healthy,
    /// The fault was inside the main heap's allocator (now, or an earlier fault): it is
    /// abandoned and allocations come from the reserve.
    Poisoned,
    /// The fault was inside the reserve's allocator too: no heap is left.
    Lost,
}

pub struct GuardedHeap {
    main: LockedHeap,
    reserve: LockedHeap,
    main_start: AtomicU64,
    main_end: AtomicU64,
    poisoned: AtomicBool,
}

impl GuardedHeap {
    pub const fn empty() -> Self {
        GuardedHeap {
            main: LockedHeap::empty(),
            reserve: LockedHeap::empty(),
            main_start: AtomicU64::new(0),
            main_end: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Uses `[start, start+bytes)`: the top [`RESERVE_BYTES`] become the reserve.
    ///
    /// # Safety
    /// The range must be free, writable memory used for nothing else; call once, before
    /// any allocation.
    pub unsafe fn init(&self, start: *mut u8, bytes: usize) {
        let main_bytes = bytes.saturating_sub(RESERVE_BYTES);
        self.main_start.store(start as u64, Ordering::SeqCst);
        self.main_end
            .store(start as u64 + main_bytes as u64, Ordering::SeqCst);
        // SAFETY: per the caller; the two parts do not overlap.
        unsafe {
            self.main.lock().init(start, main_bytes);
            self.reserve
                .lock()
                .init(start.add(main_bytes), bytes - main_bytes);
        }
    }

    /// The main heap's range `[start, end)` (for the boot line and tests).
    pub fn main_range(&self) -> (u64, u64) {
        (
            self.main_start.load(Ordering::SeqCst),
            self.main_end.load(Ordering::SeqCst),
        )
    }

    /// Where the main heap's allocator keeps its own state (its free-list head): for a
    /// debug monitor's user chasing heap corruption, and for the test that causes one.
    pub fn main_state_address(&self) -> u64 {
        &self.main as *const LockedHeap as u64
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Called on every fault and panic path before anything allocates. Single CPU with
    /// interrupts off: a held lock means the abandoned code held it.
    pub fn after_fault(&self) -> AfterFault {
        if self.reserve.is_locked() {
            return AfterFault::Lost;
        }
        if self.main.is_locked() {
            self.poisoned.store(true, Ordering::SeqCst);
        }
        if self.is_poisoned() {
            AfterFault::Poisoned
        } else {
            AfterFault::Healthy
        }
    }

    fn in_main(&self, ptr: *mut u8) -> bool {
        let (start, end) = self.main_range();
        (start..end).contains(&(ptr as u64))
    }
}

// SAFETY: every block comes from exactly one of two correct allocators and goes back to
// the one it came from (told apart by address), except blocks of a poisoned main heap,
// which are leaked: never reused, so never handed out twice.
unsafe impl GlobalAlloc for GuardedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe {
            if self.is_poisoned() {
                self.reserve.alloc(layout)
            } else {
                self.main.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.in_main(ptr) {
            if !self.is_poisoned() {
                // SAFETY: `ptr` came from the main heap with this layout.
                unsafe { self.main.dealloc(ptr, layout) }
            }
        } else {
            // SAFETY: `ptr` came from the reserve with this layout.
            unsafe { self.reserve.dealloc(ptr, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(bytes: usize) -> GuardedHeap {
        let memory: &'static mut [u8] = Box::leak(vec![0u8; bytes].into_boxed_slice());
        let heap = GuardedHeap::empty();
        // SAFETY: leaked memory used for nothing else.
        unsafe { heap.init(memory.as_mut_ptr(), bytes) };
        heap
    }

    /// What the exception handler sees when a fault struck inside the allocator: its lock
    /// held by code that will never run again.
    fn fault_inside(allocator: &LockedHeap) {
        core::mem::forget(allocator.lock());
    }

    #[test]
    fn a_fault_outside_the_allocator_changes_nothing() {
        let heap = heap(4 << 20);
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: valid layout; freed with the same layout.
        unsafe {
            let p = heap.alloc(layout);
            assert!(heap.in_main(p));
            assert_eq!(heap.after_fault(), AfterFault::Healthy);
            heap.dealloc(p, layout);
            assert!(heap.in_main(heap.alloc(layout)));
        }
    }

    #[test]
    fn a_fault_inside_the_allocator_poisons_the_main_heap_for_good() {
        let heap = heap(4 << 20);
        let layout = Layout::from_size_align(256, 16).unwrap();
        // SAFETY: valid layouts; every pointer freed once with its layout.
        unsafe {
            let live = heap.alloc(layout);
            live.write_bytes(0x5a, 256);
            fault_inside(&heap.main);
            assert_eq!(heap.after_fault(), AfterFault::Poisoned);
            // The main heap is never unlocked or walked again: these would deadlock.
            assert!(heap.main.is_locked());
            let fresh = heap.alloc(layout);
            assert!(!fresh.is_null() && !heap.in_main(fresh), "from the reserve");
            // A live block of the main heap can still grow (copied to the reserve) and be
            // freed (dropped, not returned to the broken list).
            let grown = heap.realloc(live, layout, 4096);
            assert!(!heap.in_main(grown));
            assert!((0..256).all(|i| *grown.add(i) == 0x5a));
            heap.dealloc(grown, Layout::from_size_align(4096, 16).unwrap());
            heap.dealloc(fresh, layout);
            // A later, unrelated fault: still poisoned, not "healthy again".
            assert_eq!(heap.after_fault(), AfterFault::Poisoned);
            assert!(!heap.in_main(heap.alloc(layout)));
        }
    }

    #[test]
    fn a_fault_inside_the_reserve_leaves_no_heap() {
        let heap = heap(4 << 20);
        fault_inside(&heap.main);
        assert_eq!(heap.after_fault(), AfterFault::Poisoned);
        fault_inside(&heap.reserve);
        assert_eq!(heap.after_fault(), AfterFault::Lost);
    }
}
