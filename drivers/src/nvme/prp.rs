//! Physical Region Page entries and lists ("PRP Entry and List", NVMe 1.4 §4.3), and the
//! split of a long read into commands no larger than MDTS.
//!
//! Rules this follows: PRP1 may carry a dword-aligned page offset; every later entry is
//! page aligned; two pages use PRP2 directly; more use PRP2 as a pointer to a page-aligned
//! list, whose last slot in each list page points to the next list page when more entries
//! remain (QEMU only understands page-aligned lists, so we never use an offset list).

use crate::dma::PAGE_SIZE;

/// Entries in one 4 KiB list page.
pub const ENTRIES_PER_LIST_PAGE: usize = PAGE_SIZE / 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prps {
    pub prp1: u64,
    pub prp2: u64,
    /// List pages filled (0 when PRP2 is unused or a plain entry).
    pub list_pages: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrpError {
    /// PRP1 must be dword aligned.
    Misaligned,
    /// Zero-length transfer.
    Empty,
    /// The list needs more pages than the caller provided.
    ListTooSmall { needed_pages: usize },
}

/// How many list pages a transfer of `len` bytes starting at page offset `offset` needs.
pub fn list_pages_needed(offset: usize, len: usize) -> usize {
    let entries = entries_after_prp1(offset, len);
    if entries <= 1 {
        return 0;
    }
    // Each page but the last gives one slot to the chain pointer.
    let per_page = ENTRIES_PER_LIST_PAGE - 1;
    (entries - 1).div_ceil(per_page).max(1)
}

fn entries_after_prp1(offset: usize, len: usize) -> usize {
    let first = (PAGE_SIZE - offset).min(len);
    (len - first).div_ceil(PAGE_SIZE)
}

/// Builds PRP1/PRP2 for `len` bytes of physically contiguous data at `data_phys`.
///
/// `list` is the caller's list memory as entries (a multiple of 512 per page), which the
/// device sees at the page-aligned `list_phys`; the caller copies it into DMA memory.
pub fn build(
    data_phys: u64,
    len: usize,
    list_phys: u64,
    list: &mut [u64],
) -> Result<Prps, PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if data_phys & 3 != 0 {
        return Err(PrpError::Misaligned);
    }
    let offset = (data_phys % PAGE_SIZE as u64) as usize;
    let first_page = data_phys - offset as u64;
    let page = |k: usize| first_page + (k * PAGE_SIZE) as u64;
    let entries = entries_after_prp1(offset, len);
    match entries {
        0 => {
            return Ok(Prps {
                prp1: data_phys,
                prp2: 0,
                list_pages: 0,
            })
        }
        1 => {
            return Ok(Prps {
                prp1: data_phys,
                prp2: page(1),
                list_pages: 0,
            })
        }
        _ => {}
    }
    let needed_pages = list_pages_needed(offset, len);
    if list.len() < needed_pages * ENTRIES_PER_LIST_PAGE {
        return Err(PrpError::ListTooSmall { needed_pages });
    }
    let mut slot = 0;
    for k in 1..=entries {
        let remaining = entries - k + 1;
        let last_slot_of_page = slot % ENTRIES_PER_LIST_PAGE == ENTRIES_PER_LIST_PAGE - 1;
        if last_slot_of_page && remaining > 1 {
            // Chain: this slot points at the next list page.
            list[slot] = list_phys + ((slot + 1) * 8) as u64;
            slot += 1;
        }
        list[slot] = page(k);
        slot += 1;
    }
    Ok(Prps {
        prp1: data_phys,
        prp2: list_phys,
        list_pages: needed_pages,
    })
}

/// Splits `count` blocks from `lba` into commands of at most `max_blocks` blocks each.
pub fn split(lba: u64, count: u64, max_blocks: u64) -> impl Iterator<Item = (u64, u64)> {
    let max_blocks = max_blocks.max(1);
    let mut next = 0u64;
    core::iter::from_fn(move || {
        if next >= count {
            return None;
        }
        let blocks = (count - next).min(max_blocks);
        let item = (lba + next, blocks);
        next += blocks;
        Some(item)
    })
}
