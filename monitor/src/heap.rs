//! The global allocator over the heap region the layout chose: a main heap and a reserve
//! for after a fault inside the allocator (`monitor::guarded_heap`).

use monitor::guarded_heap::{AfterFault, GuardedHeap};
use monitor::layout::Region;

#[global_allocator]
static ALLOCATOR: GuardedHeap = GuardedHeap::empty();

/// # Safety
/// `region` must be free, identity-mapped RAM used for nothing else, and this must be
/// called once, before any allocation.
pub unsafe fn init(region: Region) {
    // SAFETY: per the caller.
    unsafe {
        ALLOCATOR.init(
            region.start as *mut u8,
            (region.end - region.start) as usize,
        )
    };
}

/// Fault and panic paths, before anything allocates: a fault inside the allocator poisons
/// the main heap (never unlocked: its free list may be half-updated) and switches to the
/// reserve. If even the reserve's allocator was interrupted, nothing can allocate: halt.
pub fn after_fault() {
    if ALLOCATOR.after_fault() == AfterFault::Lost {
        crate::halt_with("fault inside the reserve heap's allocator too: no heap left; reset");
    }
}

/// True once a fault struck inside the main heap's allocator.
pub fn poisoned() -> bool {
    ALLOCATOR.is_poisoned()
}

/// The main heap's range and where its allocator keeps its state (boot line).
pub fn describe() -> (u64, u64, u64) {
    let (start, end) = ALLOCATOR.main_range();
    (start, end, ALLOCATOR.main_state_address())
}
