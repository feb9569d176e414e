//! Where the heap and the DMA bounce pool go, chosen from the boot memory map.
//!
//! Both must be identity mapped (below 4 GiB) and must not overlap the monitor image, the
//! multiboot2 information (still being read) or the first MiB (BIOS data, real-mode IVT).

use heapless::Vec;

/// A physical address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

const MIB: u64 = 1 << 20;
const LOW_LIMIT: u64 = MIB;
const IDENTITY_LIMIT: u64 = 1 << 32;
const PAGE: u64 = 4096;
/// 2 MiB alignment keeps the pool on whole large pages.
const DMA_ALIGN: u64 = 2 * MIB;
pub const DMA_DEFAULT: u64 = 64 * MIB;
pub const DMA_MIN: u64 = 64 * 1024;
/// Heap cap: room for command buffers (a 64 MiB NVMe read copied out of the pool) and
/// page tables, without starving the pool.
const HEAP_MAX: u64 = 256 * MIB;
const HEAP_MIN: u64 = 4 * MIB;

pub struct Plan {
    pub heap: Region,
    pub dma: Region,
    /// The pool is smaller than requested because memory was short.
    pub dma_shrunk: bool,
}

fn subtract(pieces: &mut Vec<Region, 128>, hole: Region) {
    let mut out: Vec<Region, 128> = Vec::new();
    for piece in pieces.iter() {
        if hole.end <= piece.start || piece.end <= hole.start {
            let _ = out.push(*piece);
            continue;
        }
        if piece.start < hole.start {
            let _ = out.push(Region {
                start: piece.start,
                end: hole.start,
            });
        }
        if hole.end < piece.end {
            let _ = out.push(Region {
                start: hole.end,
                end: piece.end,
            });
        }
    }
    *pieces = out;
}

fn outward(region: Region) -> Region {
    Region {
        start: region.start & !(PAGE - 1),
        end: region.end.div_ceil(PAGE) * PAGE,
    }
}

/// Free identity-mapped RAM, page aligned, minus the reserved ranges.
fn free_pieces(available: &[Region], reserved: &[Region]) -> Vec<Region, 128> {
    let mut pieces: Vec<Region, 128> = Vec::new();
    for area in available {
        let start = area.start.max(LOW_LIMIT).div_ceil(PAGE) * PAGE;
        let end = area.end.min(IDENTITY_LIMIT) & !(PAGE - 1);
        if start < end {
            let _ = pieces.push(Region { start, end });
        }
    }
    for hole in reserved {
        subtract(&mut pieces, outward(*hole));
    }
    pieces
}

fn len(r: &Region) -> u64 {
    r.end - r.start
}

/// Places the pool at the top of the largest piece it fits in (2 MiB aligned), then the
/// heap in the largest piece left. Shrinks the pool (halving) if memory is short.
/// `available` is the firmware's usable RAM; `reserved` what must not be touched (the
/// monitor image, the boot information).
pub fn plan(available: &[Region], reserved: &[Region], dma_wanted: u64) -> Option<Plan> {
    let mut pieces = free_pieces(available, reserved);
    let mut dma_bytes = (dma_wanted.max(DMA_MIN)).div_ceil(PAGE) * PAGE;
    let mut dma_shrunk = false;
    let dma = loop {
        let spot = pieces
            .iter()
            .filter_map(|piece| {
                let top = piece.end.checked_sub(dma_bytes)? & !(DMA_ALIGN - 1);
                (top >= piece.start).then_some(Region {
                    start: top,
                    end: top + dma_bytes,
                })
            })
            .max_by_key(|r| r.start);
        match spot {
            Some(region) => break region,
            None if dma_bytes / 2 >= DMA_MIN => {
                dma_bytes = (dma_bytes / 2).div_ceil(PAGE) * PAGE;
                dma_shrunk = true;
            }
            None => return None,
        }
    };
    subtract(&mut pieces, dma);
    let largest = pieces.iter().max_by_key(|r| len(r)).copied()?;
    if len(&largest) < HEAP_MIN {
        return None;
    }
    let heap = Region {
        start: largest.start,
        end: largest.start + len(&largest).min(HEAP_MAX),
    };
    Some(Plan {
        heap,
        dma,
        dma_shrunk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn r(start: u64, end: u64) -> Region {
        Region { start, end }
    }

    fn overlaps(a: Region, b: Region) -> bool {
        a.start < b.end && b.start < a.end
    }

    #[test]
    fn pool_and_heap_avoid_reserved_and_low_memory() {
        let available = [r(0, 0x9f000), r(MIB, GIB)];
        let kernel = r(MIB, MIB + 0x3a123);
        let info = r(0x20_0000 + 0x10, 0x20_0000 + 0x900);
        let plan = plan(&available, &[kernel, info], DMA_DEFAULT).unwrap();
        assert_eq!(plan.dma.end - plan.dma.start, DMA_DEFAULT);
        assert_eq!(plan.dma.start % DMA_ALIGN, 0);
        assert!(!plan.dma_shrunk);
        for region in [plan.dma, plan.heap] {
            assert!(region.start >= MIB && region.end <= GIB);
            assert!(!overlaps(region, kernel) && !overlaps(region, info));
        }
        assert!(!overlaps(plan.dma, plan.heap));
        assert_eq!(plan.heap.end - plan.heap.start, HEAP_MAX);
    }

    #[test]
    fn nothing_above_4_gib() {
        // OVMF-like map: a little low RAM and most of it above 4 GiB.
        let available = [r(MIB, 128 * MIB), r(4 * GIB, 8 * GIB)];
        let plan = plan(&available, &[r(MIB, 2 * MIB)], DMA_DEFAULT).unwrap();
        assert!(plan.dma.end <= 128 * MIB && plan.heap.end <= 128 * MIB);
        assert!(!overlaps(plan.dma, plan.heap));
    }

    #[test]
    fn pool_shrinks_when_memory_is_short() {
        let available = [r(MIB, 48 * MIB)];
        let plan = plan(&available, &[r(MIB, 2 * MIB)], DMA_DEFAULT).unwrap();
        assert!(plan.dma_shrunk);
        assert!(plan.dma.end - plan.dma.start < DMA_DEFAULT);
        assert!(plan.heap.end - plan.heap.start >= HEAP_MIN);
    }

    #[test]
    fn too_little_memory_is_refused() {
        assert!(plan(&[r(MIB, 3 * MIB)], &[], DMA_MIN).is_none());
        assert!(plan(&[], &[], DMA_DEFAULT).is_none());
    }
}
