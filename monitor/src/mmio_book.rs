//! The MMIO window's bookkeeping, apart from the page tables so it runs in host tests:
//! which physical ranges are mapped where, who uses each, and which virtual space is free.
//!
//! Why users: a window is shared by everyone who maps a range inside it (`bar map`, a
//! driver's bind), so one user's `unmap` must not pull it out from under the others. Each
//! `map` is remembered with its exact range (the pages it needs), and an `unmap` releases
//! the use of exactly that range: a `map` goes to the oldest region that covers it, so at most one region
//! holds a use of a given range, and the release finds that region, never another region
//! that merely covers the range too (say a user's larger `mem map` over a driver's BAR).
//! Regions keep their order (oldest first) when one goes.
//!
//! Why a free list: big 64-bit BARs (GPUs carry BARs of many GiB) and repeated map/unmap
//! cycles must not exhaust the window, so the virtual space of a released region is reused
//! (neighbouring free ranges merge).

use alloc::vec::Vec;
use core::ops::Range;

pub const PAGE_4K: u64 = 4096;
pub const PAGE_2M: u64 = 2 * 1024 * 1024;

/// One mapped range of whole pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub phys: u64,
    pub len: u64,
    pub virt: u64,
    /// The pages `[first, last)` of each `map` not yet matched by an `unmap` (a map is
    /// known by the pages it needs: a driver that maps a 256-byte BAR as its page and
    /// unmaps it by its size releases the same use).
    pub users: Vec<(u64, u64)>,
}

/// What to do for a new `map` of `[phys, phys+len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Already inside a mapped region: its window address for `phys` (one more user).
    Existing { window: u64 },
    /// Map `span` bytes from physical `first` at virtual `base`, then call
    /// [`MmioBook::record`] (or [`MmioBook::abandon`] if that fails); `window` is the
    /// address of `phys` in it.
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
    /// No `map` of exactly this range is outstanding: nothing to do.
    Unknown,
    /// Others still use the window: keep it.
    Kept { users: u32 },
    /// The last user left: unmap `[virt, virt+len)` (its space is free again).
    Unmap { virt: u64, len: u64 },
}

#[derive(Debug)]
pub struct Full;

/// The whole pages holding `[phys, end)`.
fn pages(phys: u64, end: u64) -> (u64, u64) {
    (phys & !(PAGE_4K - 1), end.div_ceil(PAGE_4K) * PAGE_4K)
}

pub struct MmioBook {
    /// Free virtual ranges, sorted, merged, page aligned.
    free: Vec<Range<u64>>,
    /// Oldest first.
    regions: Vec<Region>,
}

impl MmioBook {
    pub fn new(base: u64, bytes: u64) -> Self {
        MmioBook {
            free: alloc::vec![base..base + bytes],
            regions: Vec::new(),
        }
    }

    /// Free virtual bytes left.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.end - r.start).sum()
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Where `[phys, end)` goes. A new placement's virtual range is taken at once; the
    /// caller gives it back with [`MmioBook::abandon`] if mapping fails.
    pub fn place(&mut self, phys: u64, end: u64) -> Result<Placement, Full> {
        // Sub-page BARs exist (a 256-byte BAR): map the pages that hold them.
        let (first, last) = pages(phys, end);
        if let Some(region) = self
            .regions
            .iter_mut()
            .find(|r| r.phys <= first && last <= r.phys + r.len)
        {
            region.users.push((first, last));
            return Ok(Placement::Existing {
                window: region.virt + (phys - region.phys),
            });
        }
        let span = last - first;
        let base = self.take(first, span).ok_or(Full)?;
        Ok(Placement::New {
            first,
            base,
            span,
            window: base + (phys - first),
        })
    }

    /// First fit. A range of 2 MiB or more keeps its address congruent with the physical
    /// one modulo 2 MiB, so big BARs get large pages; smaller ones pack at 4 KiB.
    fn take(&mut self, first: u64, span: u64) -> Option<u64> {
        let (index, base) = self.free.iter().enumerate().find_map(|(i, r)| {
            let base = if span >= PAGE_2M {
                r.start + ((first % PAGE_2M) + PAGE_2M - r.start % PAGE_2M) % PAGE_2M
            } else {
                r.start
            };
            let fits = base.checked_add(span).is_some_and(|top| top <= r.end);
            fits.then_some((i, base))
        })?;
        let range = self.free.remove(index);
        let mut at = index;
        for piece in [range.start..base, base + span..range.end] {
            if !piece.is_empty() {
                self.free.insert(at, piece);
                at += 1;
            }
        }
        Some(base)
    }

    /// Returns `[base, base+span)` to the free list, merging with its neighbours.
    fn give_back(&mut self, base: u64, span: u64) {
        let at = self.free.partition_point(|r| r.start < base);
        self.free.insert(at, base..base + span);
        // Merge with the next, then with the previous.
        if at + 1 < self.free.len() && self.free[at].end == self.free[at + 1].start {
            self.free[at].end = self.free.remove(at + 1).end;
        }
        if at > 0 && self.free[at - 1].end == self.free[at].start {
            self.free[at - 1].end = self.free.remove(at).end;
        }
    }

    /// A [`Placement::New`] whose pages are now mapped, with its first user `[phys, end)`.
    pub fn record(&mut self, first: u64, base: u64, span: u64, phys: u64, end: u64) {
        self.regions.push(Region {
            phys: first,
            len: span,
            virt: base,
            users: alloc::vec![pages(phys, end)],
        });
    }

    /// A [`Placement::New`] that could not be mapped (and whose pages were undone).
    pub fn abandon(&mut self, base: u64, span: u64) {
        self.give_back(base, span);
    }

    /// The `map` of exactly `[phys, end)` is done with its window.
    pub fn release(&mut self, phys: u64, end: u64) -> Release {
        let range = pages(phys, end);
        let found = self.regions.iter().enumerate().find_map(|(index, r)| {
            r.users
                .iter()
                .rposition(|&user| user == range)
                .map(|user| (index, user))
        });
        let Some((index, user)) = found else {
            return Release::Unknown;
        };
        let region = &mut self.regions[index];
        region.users.remove(user);
        if !region.users.is_empty() {
            return Release::Kept {
                users: region.users.len() as u32,
            };
        }
        let region = self.regions.remove(index);
        self.give_back(region.virt, region.len);
        Release::Unmap {
            virt: region.virt,
            len: region.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x80_0000_0000;

    /// Maps `[phys, phys+len)` the way `MmioWindow::map` does; its window.
    fn map(book: &mut MmioBook, phys: u64, len: u64) -> u64 {
        match book.place(phys, phys + len).unwrap() {
            Placement::New {
                first,
                base,
                span,
                window,
            } => {
                book.record(first, base, span, phys, phys + len);
                window
            }
            Placement::Existing { window } => window,
        }
    }

    fn new_at(book: &mut MmioBook, phys: u64, len: u64) -> u64 {
        let before = book.regions().len();
        let window = map(book, phys, len);
        assert_eq!(book.regions().len(), before + 1, "expected a new mapping");
        window
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

    /// The sequence: `gvnic describe`, `nvme identify`, `mem map` over the NVMe
    /// BAR, `teardown gvnic`, `teardown nvme`. Releasing "the first region that covers the
    /// range" after a `swap_remove` reordered the list unmapped the user's window and left
    /// the driver's.
    #[test]
    fn a_teardown_releases_its_own_mapping_not_a_users_covering_one() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        let gvnic = (0xfe00_0000, 0x1000);
        let nvme = (0xfebf_0000, 0x4000);
        new_at(&mut book, gvnic.0, gvnic.1);
        let driver = new_at(&mut book, nvme.0, nvme.1);
        // The user maps more than the BAR (its page and the next): a region of its own.
        let user = new_at(&mut book, nvme.0, 0x1_0000);
        assert_ne!(driver, user);
        assert!(matches!(
            book.release(gvnic.0, gvnic.0 + gvnic.1),
            Release::Unmap { .. }
        ));
        assert_eq!(
            book.release(nvme.0, nvme.0 + nvme.1),
            Release::Unmap {
                virt: driver,
                len: 0x4000
            },
            "the driver's window goes, the user's stays"
        );
        assert_eq!(book.regions().len(), 1);
        assert_eq!(book.regions()[0].virt, user);
        // A second map of the NVMe BAR now lands in the user's region (it covers it).
        assert_eq!(map(&mut book, nvme.0, nvme.1), user);
    }

    #[test]
    fn a_release_must_name_a_range_that_was_mapped() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        new_at(&mut book, 0xfebf_0000, 0x4000);
        // Inside the region, but nobody mapped exactly this.
        assert_eq!(book.release(0xfebf_0000, 0xfebf_1000), Release::Unknown);
        assert_eq!(book.regions()[0].users.len(), 1);
    }

    #[test]
    fn sub_page_bars_share_page_rounding_and_large_bars_stay_2m_congruent() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        let small = new_at(&mut book, 0xfebf_1100, 0x100);
        assert_eq!(small % PAGE_4K, 0x100);
        let big = new_at(&mut book, 0xe0_0000_0000, 256 << 20);
        assert_eq!(big % PAGE_2M, 0);
        let odd = new_at(&mut book, 0xe1_0010_0000, 4 << 20);
        assert_eq!(odd % PAGE_2M, 0x10_0000);
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

    #[test]
    fn released_space_is_reused_so_cycles_never_exhaust_the_window() {
        // Room for one 8 GiB BAR at a time; a bump allocator would be full after one.
        let bar = (0x80_0000_0000, 8 << 30);
        let mut book = MmioBook::new(BASE, 9 << 30);
        let first = new_at(&mut book, bar.0, bar.1);
        for _ in 0..1000 {
            assert!(matches!(
                book.release(bar.0, bar.0 + bar.1),
                Release::Unmap { .. }
            ));
            assert_eq!(new_at(&mut book, bar.0, bar.1), first);
        }
        assert_eq!(book.free_bytes(), 1 << 30);
    }

    #[test]
    fn freed_neighbours_merge_and_a_failed_map_gives_its_space_back() {
        let mut book = MmioBook::new(BASE, 6 * PAGE_2M);
        let a = new_at(&mut book, 0x1000_0000, 2 * PAGE_2M);
        let _b = new_at(&mut book, 0x2000_0000, 2 * PAGE_2M);
        let _c = new_at(&mut book, 0x3000_0000, 2 * PAGE_2M);
        assert!(book.place(0x4000_0000, 0x4000_0000 + 4 * PAGE_2M).is_err());
        book.release(0x1000_0000, 0x1000_0000 + 2 * PAGE_2M);
        book.release(0x2000_0000, 0x2000_0000 + 2 * PAGE_2M);
        // a and b merged: 8 MiB fits again, at a's old place.
        let Placement::New { base, span, .. } =
            book.place(0x4000_0000, 0x4000_0000 + 4 * PAGE_2M).unwrap()
        else {
            panic!("expected a new placement")
        };
        assert_eq!(base, a);
        assert_eq!(book.free_bytes(), 0);
        book.abandon(base, span);
        assert_eq!(book.free_bytes(), 4 * PAGE_2M);
        assert_eq!(
            book.free.len(),
            1,
            "one merged free range: {:x?}",
            book.free
        );
    }

    #[test]
    fn a_use_is_known_by_its_pages() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        // Mapped as its page (pci::map_bar), released by its 256-byte size.
        let window = new_at(&mut book, 0xfebf_2000, 0x1000);
        assert_eq!(
            book.release(0xfebf_2000, 0xfebf_2100),
            Release::Unmap {
                virt: window,
                len: 0x1000
            }
        );
    }

    #[test]
    fn small_mappings_pack_into_one_large_page() {
        let mut book = MmioBook::new(BASE, 1 << 40);
        let a = new_at(&mut book, 0xfebf_0000, 0x1000);
        let b = new_at(&mut book, 0xfebf_4000, 0x4000);
        assert_eq!(b, a + 0x1000);
    }
}
