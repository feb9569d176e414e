//! The MMIO window: device registers mapped uncached at a virtual range of their own.
//!
//! The identity map holds RAM only (`monitor::identity`), so this window is the one way to
//! device memory, and no page is mapped with two memory types. Device BARs can be anywhere
//! (OVMF puts 64-bit BARs at 0xe0_0000_0000). Every BAR and the ECAM region is mapped here
//! with PCD|PWT (uncached with the power-on PAT), no-execute. Mapping the same physical
//! range again returns the existing window; each `map` is remembered with its range
//! (`monitor::mmio_book`), so a driver's unmap releases its own use and never pulls a
//! window out from under a `bar map`. The window is every free PML4 slot of the lower half
//! (127.5 TiB when only the identity map's slot 0 is taken), and a released window's
//! space and page tables are reused.

use alloc::boxed::Box;
use core::alloc::Layout;

use drivers::platform::{MapError, Mapping, MmioMapper, RegisterWindow};
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{CleanUp, MapToError, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags,
    PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use monitor::mmio_book::{Full, MmioBook, Placement, Release, PAGE_2M, PAGE_4K};

/// Bytes one PML4 slot translates (512 GiB).
const PML4_SLOT_BYTES: u64 = 1 << 39;
/// Slots of the canonical lower half; slot 0 holds the identity map.
const LOWER_HALF_SLOTS: usize = 256;

/// The window: the longest run of PML4 slots of the lower half nothing uses yet (slots
/// 1..=255 in practice: the trampoline only fills slot 0), as (base, bytes).
fn free_slots(pml4: &PageTable) -> (u64, u64) {
    let (mut best, mut run_start) = ((1, 0), None);
    for slot in 1..=LOWER_HALF_SLOTS {
        let free = slot < LOWER_HALF_SLOTS && pml4[slot].is_unused();
        match (free, run_start) {
            (true, None) => run_start = Some(slot),
            (false, Some(start)) => {
                if slot - start > best.1 {
                    best = (start, slot - start);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    (
        best.0 as u64 * PML4_SLOT_BYTES,
        best.1 as u64 * PML4_SLOT_BYTES,
    )
}

fn table_layout() -> Option<Layout> {
    Layout::from_size_align(PAGE_4K as usize, PAGE_4K as usize).ok()
}

/// Page-table frames come from the heap, which is identity mapped (virtual = physical),
/// and go back to it when a released window leaves a table empty.
struct HeapFrames;

// SAFETY: every frame returned is a fresh, zeroed, 4 KiB-aligned heap allocation, identity
// mapped, so its virtual address is its physical address; it is freed only through
// `deallocate_frame`, once no entry points to it any more.
unsafe impl FrameAllocator<Size4KiB> for HeapFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        // SAFETY: the layout is non-zero sized.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(table_layout()?) };
        if ptr.is_null() {
            return None;
        }
        PhysFrame::from_start_address(PhysAddr::new(ptr as u64)).ok()
    }
}

impl FrameDeallocator<Size4KiB> for HeapFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        if let Some(layout) = table_layout() {
            // SAFETY: the frame came from `allocate_frame` (only window tables are cleaned
            // up), with this layout, and the caller no longer references it.
            unsafe { alloc::alloc::dealloc(frame.start_address().as_u64() as *mut u8, layout) };
        }
    }
}

pub struct MmioWindow {
    tables: OffsetPageTable<'static>,
    book: MmioBook,
}

impl MmioWindow {
    /// # Safety
    /// Call once; the active page tables must be identity mapped (true for the boot tables
    /// and every table this module adds).
    pub unsafe fn new() -> MmioWindow {
        let (frame, _) = Cr3::read();
        let pml4 = frame.start_address().as_u64() as *mut PageTable;
        // SAFETY: the PML4 is identity mapped; read before the mapper takes it over.
        let (base, bytes) = free_slots(unsafe { &*pml4 });
        MmioWindow {
            // SAFETY: the PML4 is identity mapped and from now on only modified here.
            tables: unsafe { OffsetPageTable::new(&mut *pml4, VirtAddr::new(0)) },
            book: MmioBook::new(base, bytes),
        }
    }

    /// Frees the page tables `[virt, virt+len)` left empty (they came from the heap) and
    /// drops the paging-structure caches that may still point at them.
    fn clean_up(&mut self, virt: u64, len: u64) {
        let first = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
        let last = Page::<Size4KiB>::containing_address(VirtAddr::new(virt + len - 1));
        // SAFETY: inside the window every table came from HeapFrames, is used by this one
        // hierarchy only and only for its own addresses; only empty tables are freed.
        unsafe {
            self.tables
                .clean_up_addr_range(Page::range_inclusive(first, last), &mut HeapFrames)
        };
        tlb::flush_all();
    }

    fn flags() -> PageTableFlags {
        PageTableFlags::PRESENT
            | PageTableFlags::WRITABLE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH
            | PageTableFlags::NO_EXECUTE
    }

    /// Maps `[phys, phys+len)` (page aligned) at `virt`, with 2 MiB pages where both sides
    /// are 2 MiB aligned (ECAM is 256 MiB; mapping it with 4 KiB pages would take 128
    /// page tables). On failure, the bytes mapped before it.
    fn map_pages(&mut self, phys: u64, virt: u64, len: u64) -> Result<(), u64> {
        let mut offset = 0;
        while offset < len {
            let (p, v) = (phys + offset, virt + offset);
            let huge = p % PAGE_2M == 0 && v % PAGE_2M == 0 && len - offset >= PAGE_2M;
            // SAFETY: the virtual range is fresh window space nothing else references, and
            // the physical range is device memory the caller asked for.
            let result = unsafe {
                if huge {
                    let page = Page::<Size2MiB>::containing_address(VirtAddr::new(v));
                    let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
                    self.tables
                        .map_to(page, frame, Self::flags(), &mut HeapFrames)
                        .map(|flush| flush.flush())
                        .map_err(|err| matches!(err, MapToError::FrameAllocationFailed))
                } else {
                    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
                    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(p));
                    self.tables
                        .map_to(page, frame, Self::flags(), &mut HeapFrames)
                        .map(|flush| flush.flush())
                        .map_err(|err| matches!(err, MapToError::FrameAllocationFailed))
                }
            };
            if result.is_err() {
                // Out of heap for page tables, or a window bug: say how far it got.
                return Err(offset);
            }
            offset += if huge { PAGE_2M } else { PAGE_4K };
        }
        Ok(())
    }

    fn unmap_pages(&mut self, virt: u64, len: u64) {
        let mut offset = 0;
        while offset < len {
            let v = VirtAddr::new(virt + offset);
            let small = self.tables.unmap(Page::<Size4KiB>::containing_address(v));
            match small {
                Ok((_, flush)) => {
                    flush.flush();
                    offset += PAGE_4K;
                }
                Err(UnmapError::ParentEntryHugePage) => {
                    if let Ok((_, flush)) =
                        self.tables.unmap(Page::<Size2MiB>::containing_address(v))
                    {
                        flush.flush();
                    }
                    offset += PAGE_2M;
                }
                Err(_) => offset += PAGE_4K,
            }
        }
    }
}

impl MmioMapper for MmioWindow {
    fn map(&mut self, phys: u64, len: u64) -> Result<Mapping, MapError> {
        let end = phys.checked_add(len).ok_or(MapError::BadRange)?;
        if len == 0 || end > (1 << 52) {
            return Err(MapError::BadRange);
        }
        // The backstop of "one physical page, one type": whatever asks (a command, a
        // driver's BAR), never an uncached second mapping of an identity-mapped page.
        let first_page = phys & !(PAGE_4K - 1);
        if crate::boot::identity_overlaps(first_page, end.div_ceil(PAGE_4K) * PAGE_4K) {
            return Err(MapError::IdentityMapped);
        }
        let (window, newly_mapped) = match self.book.place(phys, end) {
            Err(Full) => return Err(MapError::WindowFull),
            Ok(Placement::Existing { window }) => (window, false),
            Ok(Placement::New {
                first,
                base,
                span,
                window,
            }) => {
                if let Err(done) = self.map_pages(first, base, span) {
                    // Undo the pages made so far, so the space can be given back whole.
                    if done > 0 {
                        self.unmap_pages(base, done);
                    }
                    self.clean_up(base, span);
                    self.book.abandon(base, span);
                    return Err(MapError::WindowFull);
                }
                self.book.record(first, base, span, phys, end);
                (window, true)
            }
        };
        Ok(Mapping {
            window,
            newly_mapped,
            regs: Box::new(MmioRegs::new(window, len)),
        })
    }

    /// The `map` of exactly this range is done; the pages go only with the window's last
    /// user (see `mmio_book`), and then its space and page tables are free again.
    fn unmap(&mut self, phys: u64, len: u64) {
        if let Release::Unmap { virt, len } = self.book.release(phys, phys.saturating_add(len)) {
            self.unmap_pages(virt, len);
            self.clean_up(virt, len);
        }
    }
}

/// Volatile register accesses inside one mapped window.
pub struct MmioRegs {
    base: u64,
    len: usize,
}

impl MmioRegs {
    pub fn new(base: u64, len: u64) -> MmioRegs {
        MmioRegs {
            base,
            len: usize::try_from(len).unwrap_or(usize::MAX),
        }
    }

    /// The address of a naturally aligned access of `width` bytes inside the window.
    fn at(&self, offset: usize, width: usize) -> Option<u64> {
        let fits = offset.checked_add(width).is_some_and(|end| end <= self.len);
        (fits && offset.is_multiple_of(width)).then(|| self.base + offset as u64)
    }
}

macro_rules! access {
    ($read:ident, $write:ident, $ty:ty) => {
        fn $read(&self, offset: usize) -> $ty {
            match self.at(offset, size_of::<$ty>()) {
                // SAFETY: inside a live uncached mapping made by MmioWindow::map.
                Some(addr) => unsafe { (addr as *const $ty).read_volatile() },
                None => <$ty>::MAX,
            }
        }
        fn $write(&self, offset: usize, value: $ty) {
            if let Some(addr) = self.at(offset, size_of::<$ty>()) {
                // SAFETY: inside a live uncached mapping made by MmioWindow::map.
                unsafe { (addr as *mut $ty).write_volatile(value) }
            }
        }
    };
}

impl RegisterWindow for MmioRegs {
    fn len(&self) -> usize {
        self.len
    }
    access!(read8, write8, u8);
    access!(read16, write16, u16);
    access!(read32, write32, u32);
}
