//! The global allocator over the heap region the layout chose.

use linked_list_allocator::LockedHeap;

use monitor::layout::Region;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// # Safety
/// `region` must be free, identity-mapped RAM used for nothing else, and this must be
/// called once, before any allocation.
pub unsafe fn init(region: Region) {
    // SAFETY: per the caller.
    unsafe {
        ALLOCATOR.lock().init(
            region.start as *mut u8,
            (region.end - region.start) as usize,
        );
    }
}

/// Fault path: the aborted command may have faulted inside the allocator.
pub fn unlock_after_fault() {
    if ALLOCATOR.is_locked() {
        // SAFETY: single CPU, interrupts off: the holder was abandoned by the fault handler.
        unsafe { ALLOCATOR.force_unlock() };
    }
}
