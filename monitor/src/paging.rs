//! Reading the live 4-level page tables back as runs of (virtual, physical, memory type),
//! apart from the hardware so it runs in host tests: the caller supplies how to read one
//! 8-byte entry at a physical address and the IA32_PAT value.
//!
//! The memory type of a page is the PAT entry its PWT (bit 3), PCD (bit 4) and PAT bit
//! (bit 7 in a 4 KiB entry, bit 12 in a 2 MiB or 1 GiB one) select (SDM vol. 3A §4.9.2 and
//! §12.12.3). What this does not know: MTRRs, which combine with it.

use alloc::vec::Vec;
use core::ops::Range;

use drivers::platform::{MappedRange, MemType};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
/// Page size in a PDPT (1 GiB) or PD (2 MiB) entry; PAT in a 4 KiB entry.
const HUGE_OR_PAT_4K: u64 = 1 << 7;
const PAT_LARGE: u64 = 1 << 12;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The power-on IA32_PAT (SDM vol. 3A §12.12.2): WB, WT, UC-, UC, repeated.
pub const PAT_POWER_ON: u64 = 0x0007_0406_0007_0406;

/// The memory type of a leaf entry at `level` (0 = 4 KiB page) under `pat`.
pub fn leaf_type(entry: u64, level: u32, pat: u64) -> MemType {
    let pat_bit = if level == 0 {
        entry & HUGE_OR_PAT_4K != 0
    } else {
        entry & PAT_LARGE != 0
    };
    let index =
        (pat_bit as u64) << 2 | ((entry & PCD != 0) as u64) << 1 | (entry & PWT != 0) as u64;
    MemType::from_pat_encoding(((pat >> (index * 8)) & 0x7) as u8)
}

fn sign_extend(virt: u64) -> u64 {
    if virt & (1 << 47) != 0 {
        virt | 0xffff_0000_0000_0000
    } else {
        virt
    }
}

struct Walk<'a, F: Fn(u64) -> u64> {
    read: &'a F,
    pat: u64,
    range: Range<u64>,
    out: Vec<MappedRange>,
}

impl<F: Fn(u64) -> u64> Walk<'_, F> {
    /// The table at physical `table` translating the `level` bits of virtual addresses
    /// starting at `base` (with `writable` from the entries above).
    fn table(&mut self, table: u64, level: u32, base: u64, writable: bool) {
        let span = 1u64 << (12 + 9 * level);
        for index in 0..512u64 {
            let start = sign_extend(base + index * span);
            let end = start.saturating_add(span);
            if end <= self.range.start || start >= self.range.end {
                continue;
            }
            let entry = (self.read)(table + index * 8);
            if entry & PRESENT == 0 {
                continue;
            }
            let writable = writable && entry & WRITABLE != 0;
            let leaf = level == 0 || (level <= 2 && entry & HUGE_OR_PAT_4K != 0);
            if !leaf {
                self.table(entry & ADDR_MASK, level - 1, start, writable);
                continue;
            }
            let phys = entry & ADDR_MASK & !(span - 1);
            self.leaf(
                start,
                phys,
                span,
                leaf_type(entry, level, self.pat),
                writable,
            );
        }
    }

    fn leaf(&mut self, virt: u64, phys: u64, len: u64, mem_type: MemType, writable: bool) {
        // Clip to the range asked for.
        let cut = self.range.start.saturating_sub(virt);
        let (virt, phys, len) = (virt + cut, phys + cut, len - cut);
        let len = len.min(self.range.end - virt);
        if let Some(last) = self.out.last_mut() {
            if last.virt + last.len == virt
                && last.phys_end() == phys
                && last.mem_type == mem_type
                && last.writable == writable
            {
                last.len += len;
                return;
            }
        }
        self.out.push(MappedRange {
            virt,
            phys,
            len,
            mem_type,
            writable,
        });
    }
}

/// The mappings of `virt` under the PML4 at physical `pml4`; `read` reads the 8-byte
/// entry at a physical address. Sorted by virtual address, runs merged.
pub fn mappings(
    pml4: u64,
    pat: u64,
    virt: Range<u64>,
    read: &impl Fn(u64) -> u64,
) -> Vec<MappedRange> {
    let mut walk = Walk {
        read,
        pat,
        range: virt,
        out: Vec::new(),
    };
    walk.table(pml4, 3, 0, true);
    walk.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Page tables in a map from physical address to entry.
    #[derive(Default)]
    struct Tables(HashMap<u64, u64>);

    impl Tables {
        fn set(&mut self, table: u64, index: u64, entry: u64) {
            self.0.insert(table + index * 8, entry);
        }
        fn read(&self) -> impl Fn(u64) -> u64 + '_ {
            |at| self.0.get(&at).copied().unwrap_or(0)
        }
    }

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    const WIN_PDPT: u64 = 0x5000;
    const WIN_PD: u64 = 0x6000;
    const RW: u64 = PRESENT | WRITABLE;

    /// The monitor's shape: the first 2 MiB split into 4 KiB pages (VGA uncached, one
    /// guard page absent), the next 2 MiB page write-back, and a window page in PML4 slot 1.
    fn monitor_like() -> Tables {
        let mut t = Tables::default();
        t.set(PML4, 0, PDPT | RW);
        t.set(PDPT, 0, PD | RW);
        t.set(PD, 0, PT | RW);
        for page in 0..512u64 {
            let addr = page * 4096;
            let mut entry = addr | RW;
            if (0xa_0000..0xc_0000).contains(&addr) {
                entry |= PCD | PWT;
            }
            if page != 0x150 {
                t.set(PT, page, entry);
            }
        }
        t.set(PD, 1, 0x20_0000 | RW | HUGE_OR_PAT_4K);
        t.set(PML4, 1, WIN_PDPT | RW);
        t.set(WIN_PDPT, 0, WIN_PD | RW);
        t.set(WIN_PD, 3, 0xfe00_0000 | RW | HUGE_OR_PAT_4K | PCD | PWT);
        t
    }

    #[test]
    fn runs_follow_types_holes_and_windows() {
        let t = monitor_like();
        let runs = mappings(PML4, PAT_POWER_ON, 0..u64::MAX, &t.read());
        let short: Vec<(u64, u64, u64, &str)> = runs
            .iter()
            .map(|r| (r.virt, r.phys, r.len, r.mem_type.name()))
            .collect();
        assert_eq!(
            short,
            [
                (0, 0, 0xa_0000, "WB"),
                (0xa_0000, 0xa_0000, 0x2_0000, "UC"),
                (0xc_0000, 0xc_0000, 0x15_0000 - 0xc_0000, "WB"),
                // The guard page at 0x150000 is absent.
                (0x15_1000, 0x15_1000, 0x40_0000 - 0x15_1000, "WB"),
                (0x80_0060_0000, 0xfe00_0000, 0x20_0000, "UC"),
            ]
        );
    }

    #[test]
    fn a_range_clips_the_runs() {
        let t = monitor_like();
        let runs = mappings(PML4, PAT_POWER_ON, 0xb_8000..0xb_9000, &t.read());
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].virt, runs[0].len), (0xb_8000, 0x1000));
        assert_eq!(runs[0].mem_type, MemType::Uncacheable);
        let runs = mappings(
            PML4,
            PAT_POWER_ON,
            0x80_0070_0000..0x80_0070_1000,
            &t.read(),
        );
        assert_eq!(runs[0].phys, 0xfe10_0000);
    }

    #[test]
    fn the_pat_decides_the_type() {
        // PAT entry 1 reprogrammed to WC (Linux does this): PWT alone now means WC.
        let pat = (PAT_POWER_ON & !0xff00) | 0x0100;
        assert_eq!(leaf_type(PWT, 0, pat), MemType::WriteCombining);
        assert_eq!(leaf_type(PWT | PCD, 0, pat), MemType::Uncacheable);
        // PAT bit: bit 7 for 4 KiB, bit 12 for large pages (entry 4 = WB at power on).
        assert_eq!(
            leaf_type(HUGE_OR_PAT_4K | PCD, 0, PAT_POWER_ON),
            MemType::UncachedMinus
        );
        assert_eq!(
            leaf_type(PAT_LARGE | PWT, 1, PAT_POWER_ON),
            MemType::WriteThrough
        );
    }
}
