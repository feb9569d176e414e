//! The `acpi` crate's `AcpiHandler` over `FirmwareTables::read_phys`: every "mapping" is a
//! heap copy of the physical bytes, freed when the crate drops it. So the crate never
//! dereferences a physical address itself, and the same code runs on host fakes.

use alloc::boxed::Box;
use alloc::vec;
use core::ptr::NonNull;

use acpi::{AcpiHandler, PhysicalMapping};

use crate::platform::FirmwareTables;

/// Largest copy (policy: the biggest table a monitor decodes is far smaller; a corrupt
/// length must not allocate gigabytes).
pub const MAX_COPY_BYTES: usize = 1 << 20;

#[derive(Clone, Copy)]
pub struct CopyHandler<'a>(pub &'a dyn FirmwareTables);

impl AcpiHandler for CopyHandler<'_> {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let bytes = size.clamp(core::mem::size_of::<T>(), MAX_COPY_BYTES);
        // u64 words: the copy is 8-byte aligned whatever the physical address.
        let words = bytes.div_ceil(8).max(1);
        let mut buffer = vec![0u64; words].into_boxed_slice();
        // SAFETY: the slice covers `words * 8` initialized bytes of `buffer`.
        let raw =
            unsafe { core::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), words * 8) };
        // An unreadable range stays zeros: its signature then matches nothing and the
        // crate reports the table as missing or invalid instead of reading garbage.
        if self.0.read_phys(phys as u64, &mut raw[..bytes]).is_err() {
            raw.fill(0);
        }
        let ptr = NonNull::new(Box::into_raw(buffer).cast::<T>()).unwrap_or(NonNull::dangling());
        // The mapped length is the bytes copied, not the rounded-up buffer: the crate reuses
        // a mapping for a whole table when it is long enough, so it must never count the
        // zero padding as table bytes.
        // SAFETY: `ptr` points to `words * 8 >= bytes` bytes we own until unmap.
        unsafe { PhysicalMapping::new(phys, ptr, bytes, bytes, *self) }
    }

    fn unmap_physical_region<T>(region: &PhysicalMapping<Self, T>) {
        let words = region.mapped_length().div_ceil(8).max(1);
        let ptr = region.virtual_start().as_ptr().cast::<u64>();
        // SAFETY: map_physical_region made this box of exactly `words` u64s at `ptr`.
        drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, words)) });
    }
}
