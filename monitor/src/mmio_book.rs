//! The MMIO window's bookkeeping, apart from the page tables so it runs in host tests:
//! which physical ranges are mapped where, and how many `map` calls use each.
//!
//! Why counts: a window is shared by everyone who maps a range inside it (`bar map`, a
//! driver's bind), so one user's `unmap` must not pull it out from under the others. A
//! `bar map` the user made never unmaps, so its window lives for the rest of the boot,
//! and a `peek` of it after `teardown` still reads the device (or all ones), never faults.

use alloc::vec::Vec;

pub const PAGE_4K: u64 = 4096;
pub const PAGE_2M: u64 = 2 * 1024 * 1024;

/// One mapped range of whole pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub phys: u64,
    pub len: u64,
    pub virt: u64,
    /// `map` calls not yet matched by an `unmap`.
    pub users: u32,
}

/// What to do for a new `map` of `[phys, phys+len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Already inside a mapped region: its window address for `phys` (one more user).
    Existing { window: u64 },
    /// Map `span` bytes from physical `first` at virtual `base`, then call
    /// [`MmioBook::record`]; `window` is the address of `phys` in it.
    New {
        first: u64,
        base: u64,
        span: u64,
        window: u64,
    },
}

/// What an `unmap` of a range means for the page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// No region holds the range: nothing to do.
    Unknown,
    /// Others still use the window: keep it.
    Kept { users: u32 },
    /// The last user left: unmap `[virt, virt+len)`.
    Unmap { virt: u64, len: u64 },
}

#[derive(Debug)]
pub struct Full;

pub struct MmioBook {
    next: u64,
    limit: u64,
    regions: Vec<Region>,
}

impl MmioBook {
    pub fn new(base: u64, bytes: u64) -> Self {
        MmioBook {
            next: base,
            limit: base + bytes,
            regions: Vec::new(),
        }
    }

    fn find(&self, phys: u64, end: u64) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| r.phys <= phys && end <= r.phys + r.len)
    }

    /// Where `[phys, end)` goes. A new placement's virtual range is spent at once: a
    /// mapping that fails partway leaves pages behind, and reusing the range would make
    /// every later map fail on them.
    pub fn place(&mut self, phys: u64, end: u64) -> Result<Placement, Full> {
        if let Some(index) = self.find(phys, end) {
            let region = &mut self.regions[index];
            region.users = region.users.saturating_add(1);
            return Ok(Placement::Existing {
                window: region.virt + (phys - region.phys),
            });
        }
        // Sub-page BARs exist (a 256-byte BAR): map the pages that hold them.
        let first = phys & !(PAGE_4K - 1);
        let last = end.div_ceil(PAGE_4K) * PAGE_4K;
        let span = last - first;
        // Keep 2 MiB alignment congruent with the physical address so big BARs get
        // large pages.
        let base = self.next.div_ceil(PAGE_2M) * PAGE_2M + (first % PAGE_2M);
        if base.checked_add(span).is_none_or(|top| top > self.limit) {
            return Err(Full);
        }
        self.next = base + span;
        Ok(Placement::New {
            first,
            base,
            span,
            window: base + (phys - first),
        })
    }

    /// A [`Placement::New`] whose pages are now mapped: its first user.
    pub fn record(&mut self, first: u64, base: u64, span: u64) {
        self.regions.push(Region {
            phys: first,
            len: span,
            virt: base,
            users: 1,
        });
    }

    /// One user of the region holding `[phys, end)` is done with it.
    pub fn release(&mut self, phys: u64, end: u64) -> Release {
        let Some(index) = self.find(phys, end) else {
            return Release::Unknown;
        };
        let region = &mut self.regions[index];
        region.users = region.users.saturating_sub(1);
        if region.users > 0 {
            return Release::Kept {
                users: region.users,
            };
        }
        let region = self.regions.swap_remove(index);
        Release::Unmap {
            virt: region.virt,
            len: region.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4000_0000_0000;

    fn new_at(book: &mut MmioBook, phys: u64, len: u64) -> u64 {
        match book.place(phys, phys + len).unwrap() {
            Placement::New {
                first,
                base,
                span,
                window,
            } => {
                book.record(first, base, span);
                window
            }
            other => panic!("expected a new mapping, got {other:?}"),
        }
    }

    #[test]
    fn a_bar_map_keeps_its_window_through_a_driver_teardown() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        // nvme identify maps BAR0 (new), the user's `bar map` gets the same window.
        let window = new_at(&mut book, 0xfebf_0000, 0x4000);
        assert_eq!(
            book.place(0xfebf_0000, 0xfebf_4000).unwrap(),
            Placement::Existing { window }
        );
        // teardown releases the driver's use: the window stays for the user.
        assert_eq!(
            book.release(0xfebf_0000, 0xfebf_4000),
            Release::Kept { users: 1 }
        );
        // Had the user's use been released too, it would go.
        assert_eq!(
            book.release(0xfebf_0000, 0xfebf_4000),
            Release::Unmap {
                virt: window,
                len: 0x4000
            }
        );
        assert_eq!(book.release(0xfebf_0000, 0xfebf_4000), Release::Unknown);
    }

    #[test]
    fn sub_page_bars_share_page_rounding_and_large_bars_stay_2m_congruent() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        let small = new_at(&mut book, 0xfebf_1100, 0x100);
        assert_eq!(small % PAGE_4K, 0x100);
        let big = new_at(&mut book, 0xe0_0000_0000, 256 << 20);
        assert_eq!(big % PAGE_2M, 0);
        // A range inside a region reuses it, at the right offset.
        assert_eq!(
            book.place(0xe0_0000_1000, 0xe0_0000_2000).unwrap(),
            Placement::Existing {
                window: big + 0x1000
            }
        );
    }

    #[test]
    fn a_full_window_is_refused() {
        let mut book = MmioBook::new(BASE, 4 * PAGE_2M);
        assert!(book.place(0x1000_0000, 0x1000_0000 + 8 * PAGE_2M).is_err());
        new_at(&mut book, 0x2000_0000, PAGE_2M);
    }
}
