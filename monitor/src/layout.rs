//! Where the heap and the DMA bounce pool go, chosen from the boot memory map.
//!
//! Both must be identity mapped (below 4 GiB) and must not overlap the monitor image, the
//! multiboot2 information (still being read) or the first MiB (BIOS data, real-mode IVT).

use heapless::Vec;

use crate::bootinfo::{BootFacts, Region};

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
fn free_pieces(facts: &BootFacts, kernel: Region) -> Vec<Region, 128> {
    let mut pieces: Vec<Region, 128> = Vec::new();
    for area in &facts.available {
        let start = area.start.max(LOW_LIMIT).div_ceil(PAGE) * PAGE;
        let end = area.end.min(IDENTITY_LIMIT) & !(PAGE - 1);
        if start < end {
            let _ = pieces.push(Region { start, end });
        }
    }
    subtract(&mut pieces, outward(kernel));
    subtract(&mut pieces, outward(facts.info_range));
    pieces
}

fn len(r: &Region) -> u64 {
    r.end - r.start
}

/// Places the pool at the top of the largest piece it fits in (2 MiB aligned), then the
/// heap in the largest piece left. Shrinks the pool (halving) if memory is short.
pub fn plan(facts: &BootFacts, kernel: Region, dma_wanted: u64) -> Option<Plan> {
    let mut pieces = free_pieces(facts, kernel);
    let mut dma_bytes = (dma_wanted.max(DMA_MIN)).div_ceil(PAGE) * PAGE;
    let mut dma_shrunk = false;
    let dma = loop {
        let spot = pieces
            .iter()
            .filter_map(|piece| {
                let top = piece.end.checked_sub(dma_bytes)? & !(DMA_ALIGN - 1);
                // Leave the heap its minimum in the same piece if it is the only one.
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
