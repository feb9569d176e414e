//! What the identity map below 4 GiB holds: RAM, write-back, and nothing else.
//!
//! The trampoline maps the whole low 4 GiB write-back with 2 MiB pages, because it runs
//! before anything knows the memory map. That also maps the PCI hole, the IOAPIC and the
//! LAPIC write-back, while `mmio` maps the same BARs and ECAM uncached: two mappings of one
//! physical page with different memory types, which Intel documents as unsupported (SDM
//! vol. 3 §11.12.4, "memory type aliasing"). Once the multiboot2 memory map is read,
//! [`plan`] decides, per page, what stays:
//!
//! - RAM-like areas (available, ACPI reclaimable, ACPI NVS): write-back;
//! - reserved areas below the top of low RAM (rounded up to 2 MiB): write-back. They are
//!   firmware-owned RAM: SeaBIOS's ACPI/SMBIOS tables in the top 128 KiB, UEFI runtime
//!   code and data (guess that holds everywhere: QEMU's SeaBIOS and OVMF maps, GCE's);
//! - reserved areas above it are device memory (ECAM, IOAPIC 0xFEC0_0000, HPET, LAPIC
//!   0xFEE0_0000, flash): not mapped; reached only through the uncached MMIO window;
//! - the legacy first MiB: 0..0xA_0000 and 0xC_0000..0x10_0000 (BIOS data, EBDA, ROM
//!   shadow) write-back as before; the VGA aperture 0xA_0000..0xC_0000 uncached on purpose:
//!   it is the VGA device's memory (the console mirror writes 0xB_8000), and a cached
//!   mapping would hold text in the cache instead of on the screen;
//! - ranges the monitor must reach whatever the map says (its image, the boot
//!   information): write-back;
//! - everything else (the PCI hole, holes in the map): not mapped. `peek` refuses such an
//!   address with a named error instead of touching it.

use heapless::Vec;

/// How firmware described a memory area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaKind {
    /// Available, ACPI reclaimable, ACPI NVS: RAM.
    Ram,
    /// Reserved (RAM the firmware keeps, or device memory).
    Reserved,
    /// Defective or unknown: never mapped.
    Unusable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub start: u64,
    pub end: u64,
    pub kind: AreaKind,
}

/// The memory type a mapped page gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    WriteBack,
    /// PCD|PWT: uncached with the power-on PAT.
    Uncached,
}

/// What one 2 MiB page of the identity map becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargePage {
    /// Mapped whole with one caching: stays a 2 MiB page.
    Whole(Caching),
    /// Nothing in it is mapped.
    Empty,
    /// Partly mapped or mixed caching: needs 4 KiB pages.
    Mixed,
}

/// One mapped range `[start, end)`, 4 KiB aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub caching: Caching,
}

pub const IDENTITY_LIMIT: u64 = 1 << 32;
pub const PAGE_4K: u64 = 4096;
pub const PAGE_2M: u64 = 2 << 20;
const MIB: u64 = 1 << 20;
const VGA_START: u64 = 0xA_0000;
const VGA_END: u64 = 0xC_0000;
pub const MAX_SPANS: usize = 160;

/// The identity map as a sorted list of disjoint spans.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    spans: Vec<Span, MAX_SPANS>,
}

fn down(x: u64) -> u64 {
    x & !(PAGE_4K - 1)
}

fn up(x: u64) -> u64 {
    x.div_ceil(PAGE_4K) * PAGE_4K
}

impl Plan {
    /// The caching of the page holding `addr`, or `None` if it is not mapped.
    pub fn page(&self, addr: u64) -> Option<Caching> {
        self.spans
            .iter()
            .find(|s| s.start <= addr && addr < s.end)
            .map(|s| s.caching)
    }

    /// True if every byte of `[start, end)` is mapped (write-back or uncached).
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.spans.iter().find(|s| s.start <= at && at < s.end) {
                Some(span) => at = span.end,
                None => return false,
            }
        }
        true
    }

    /// True if any byte of `[start, end)` is mapped.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.spans.iter().any(|s| s.start < end && start < s.end)
    }

    /// What the 2 MiB page at `base` becomes.
    pub fn large_page(&self, base: u64) -> LargePage {
        let first = self.page(base);
        let mut at = base;
        while at < base + PAGE_2M {
            if self.page(at) != first {
                return LargePage::Mixed;
            }
            // Jump to the next span boundary (or page) instead of walking 512 pages.
            at = match self.spans.iter().find(|s| s.start <= at && at < s.end) {
                Some(span) => span.end.min(base + PAGE_2M),
                None => self
                    .spans
                    .iter()
                    .map(|s| s.start)
                    .filter(|&s| s > at)
                    .min()
                    .unwrap_or(base + PAGE_2M)
                    .min(base + PAGE_2M),
            };
        }
        match first {
            Some(caching) => LargePage::Whole(caching),
            None => LargePage::Empty,
        }
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Adds `[start, end)` (rounded outward to pages) with `caching`, where nothing is
    /// mapped yet: earlier additions win.
    fn add(&mut self, start: u64, end: u64, caching: Caching) {
        let (mut start, end) = (down(start), up(end.min(IDENTITY_LIMIT)));
        while start < end {
            // Skip what is already mapped; map the gap up to the next span.
            if let Some(span) = self
                .spans
                .iter()
                .find(|s| s.start <= start && start < s.end)
            {
                start = span.end;
                continue;
            }
            let gap_end = self
                .spans
                .iter()
                .map(|s| s.start)
                .filter(|&s| s > start)
                .min()
                .unwrap_or(end)
                .min(end);
            let _ = self.spans.push(Span {
                start,
                end: gap_end,
                caching,
            });
            start = gap_end;
        }
        self.spans.sort_unstable_by_key(|s| s.start);
        self.merge();
    }

    fn merge(&mut self) {
        let mut merged: Vec<Span, MAX_SPANS> = Vec::new();
        for span in self.spans.iter() {
            match merged.last_mut() {
                Some(last) if last.end == span.start && last.caching == span.caching => {
                    last.end = span.end
                }
                _ => {
                    let _ = merged.push(*span);
                }
            }
        }
        self.spans = merged;
    }
}

/// The identity map for this memory map; `must_reach` are ranges mapped write-back
/// whatever the map says (the monitor image, the boot information).
pub fn plan(areas: &[Area], must_reach: &[(u64, u64)]) -> Plan {
    let mut plan = Plan::default();
    // The legacy first MiB, VGA first (uncached), then the rest of it write-back.
    plan.add(VGA_START, VGA_END, Caching::Uncached);
    plan.add(0, MIB, Caching::WriteBack);
    for &(start, end) in must_reach {
        plan.add(start, end, Caching::WriteBack);
    }
    for area in areas.iter().filter(|a| a.kind == AreaKind::Ram) {
        plan.add(area.start, area.end, Caching::WriteBack);
    }
    let low_ram_top = areas
        .iter()
        .filter(|a| a.kind == AreaKind::Ram && a.start < IDENTITY_LIMIT)
        .map(|a| a.end.min(IDENTITY_LIMIT))
        .max()
        .unwrap_or(0)
        .div_ceil(PAGE_2M)
        * PAGE_2M;
    for area in areas.iter().filter(|a| a.kind == AreaKind::Reserved) {
        if area.start < low_ram_top {
            plan.add(area.start, area.end.min(low_ram_top), Caching::WriteBack);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(start: u64, end: u64) -> Area {
        Area {
            start,
            end,
            kind: AreaKind::Ram,
        }
    }
    fn reserved(start: u64, end: u64) -> Area {
        Area {
            start,
            end,
            kind: AreaKind::Reserved,
        }
    }

    /// SeaBIOS e820 for `-m 512` on i440fx.
    fn seabios() -> [Area; 7] {
        [
            ram(0, 0x9_fc00),
            reserved(0x9_fc00, 0xa_0000),
            reserved(0xf_0000, 0x10_0000),
            ram(0x10_0000, 0x1ffe_0000),
            reserved(0x1ffe_0000, 0x2000_0000),
            reserved(0xfeff_c000, 0xff00_0000),
            reserved(0xfffc_0000, 0x1_0000_0000),
        ]
    }

    #[test]
    fn seabios_map_keeps_ram_and_tables_and_drops_the_pci_hole() {
        let plan = plan(&seabios(), &[(0x10_0000, 0x18_0000)]);
        assert_eq!(plan.page(0x1000), Some(Caching::WriteBack));
        assert_eq!(plan.page(0xb_8000), Some(Caching::Uncached), "VGA text");
        assert_eq!(plan.page(0xf_5000), Some(Caching::WriteBack), "BIOS area");
        // ACPI tables in the reserved top of RAM.
        assert!(plan.covers(0x1ffe_0000, 0x2000_0000));
        for device in [
            0xfee0_0000,
            0xfec0_0000,
            0xfebf_0000,
            0xfeff_c000,
            0xffff_0000,
        ] {
            assert_eq!(plan.page(device), None, "{device:#x} must not be mapped");
        }
        assert_eq!(plan.page(0x2000_0000), None, "just above RAM");
        assert!(plan.overlaps(0xf_f000, 0x10_1000), "the BIOS area");
        assert!(
            plan.overlaps(0x1fff_f000, 0x2000_1000),
            "straddles the top of RAM"
        );
        assert!(!plan.overlaps(0x2000_0000, 0xfec0_1000), "the PCI hole");
        // The first 2 MiB mixes write-back and uncached; RAM pages are whole; the hole is empty.
        assert_eq!(plan.large_page(0), LargePage::Mixed);
        assert_eq!(
            plan.large_page(0x40_0000),
            LargePage::Whole(Caching::WriteBack)
        );
        assert_eq!(
            plan.large_page(0x1fe0_0000),
            LargePage::Whole(Caching::WriteBack)
        );
        assert_eq!(plan.large_page(0xfee0_0000), LargePage::Empty);
        assert_eq!(plan.large_page(0xfee0_0000 - PAGE_2M * 8), LargePage::Empty);
    }

    #[test]
    fn ovmf_map_with_ecam_and_runtime_regions() {
        // OVMF on q35, 512 MiB: runtime data reserved inside RAM, ECAM and flash above.
        let areas = [
            ram(0, 0xa_0000),
            ram(0x10_0000, 0x80_0000),
            reserved(0x80_0000, 0x80_8000),
            ram(0x80_8000, 0x1f00_0000),
            reserved(0x1f00_0000, 0x1f10_0000),
            ram(0x1f10_0000, 0x1fe0_0000),
            reserved(0xb000_0000, 0xc000_0000),
            reserved(0xffc0_0000, 0x1_0000_0000),
            ram(0x1_0000_0000, 0x2_0000_0000),
        ];
        let plan = plan(&areas, &[]);
        assert!(
            plan.covers(0x10_0000, 0x1fe0_0000),
            "RAM and runtime regions"
        );
        assert_eq!(plan.page(0xb000_0000), None, "ECAM only through the window");
        assert_eq!(plan.page(0xffc0_0000), None);
        assert_eq!(plan.page(0xa_0000), Some(Caching::Uncached));
        assert_eq!(plan.page(0x1_0000_0000), None, "above the identity limit");
    }

    #[test]
    fn must_reach_wins_over_a_hole() {
        let plan = plan(&[ram(0x10_0000, 0x20_0000)], &[(0x30_0000, 0x30_0010)]);
        assert_eq!(plan.page(0x30_0000), Some(Caching::WriteBack));
        assert_eq!(plan.page(0x30_1000), None);
        assert!(!plan.covers(0x2f_f000, 0x30_0010));
    }
}
