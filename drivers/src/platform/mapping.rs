//! The live page tables as data: which virtual range maps which physical range with which
//! memory type. `MemoryAccess::mappings` reports them; the pure functions here answer the
//! two questions the toolbox asks of them: "does the identity map cover this physical
//! range, and how" (`peek --phys`, `mem map`) and "is any physical page mapped with two
//! memory types" (`mem types`; Intel documents such aliases as unsupported, SDM vol. 3A
//! §12.12.4 "Programming the PAT").

use alloc::vec::Vec;
use core::ops::Range;

/// The identity map (virtual = physical) ends here: the monitor maps RAM below 4 GiB only
/// that way; everything at or above it is reached through the MMIO window.
pub const IDENTITY_LIMIT: u64 = 1 << 32;

/// A page's memory type as its page-table entry selects it through the PAT (PWT, PCD and
/// the PAT bit index IA32_PAT; encodings from SDM vol. 3A table 12-10). MTRRs can narrow
/// it further; this is what the page tables ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemType {
    Uncacheable,
    WriteCombining,
    WriteThrough,
    WriteProtected,
    WriteBack,
    /// UC-: uncached, but an MTRR of WC wins.
    UncachedMinus,
    /// A reserved PAT encoding (2, 3, 8..).
    Reserved(u8),
}

impl MemType {
    /// The IA32_PAT field encoding (SDM vol. 3A table 12-10).
    pub fn from_pat_encoding(value: u8) -> MemType {
        match value {
            0 => MemType::Uncacheable,
            1 => MemType::WriteCombining,
            4 => MemType::WriteThrough,
            5 => MemType::WriteProtected,
            6 => MemType::WriteBack,
            7 => MemType::UncachedMinus,
            other => MemType::Reserved(other),
        }
    }

    /// The usual short name (UC, WC, WT, WP, WB, UC-).
    pub fn name(&self) -> &'static str {
        match self {
            MemType::Uncacheable => "UC",
            MemType::WriteCombining => "WC",
            MemType::WriteThrough => "WT",
            MemType::WriteProtected => "WP",
            MemType::WriteBack => "WB",
            MemType::UncachedMinus => "UC-",
            MemType::Reserved(_) => "reserved",
        }
    }

    /// Loads may be cached (anything but UC, UC- and WC).
    pub fn cached(&self) -> bool {
        matches!(
            self,
            MemType::WriteBack | MemType::WriteThrough | MemType::WriteProtected
        )
    }
}

/// One run of the live page tables: `len` bytes at virtual `virt` map physical `phys..`
/// contiguously, all with the same type and rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRange {
    pub virt: u64,
    pub phys: u64,
    pub len: u64,
    pub mem_type: MemType,
    pub writable: bool,
}

impl MappedRange {
    pub fn phys_end(&self) -> u64 {
        self.phys + self.len
    }

    /// Part of the identity map: virtual = physical, below [`IDENTITY_LIMIT`].
    pub fn is_identity(&self) -> bool {
        self.virt == self.phys && self.phys_end() <= IDENTITY_LIMIT
    }
}

/// How the identity map covers a physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityCover {
    /// No byte of it is identity mapped.
    None,
    /// Every byte is, with this one memory type: reach it at its own address.
    All(MemType),
    /// Some bytes are and some are not, or with different types; `at` is the first
    /// physical address where the coverage changes.
    Partly { at: u64 },
}

/// How `ranges` (the identity part of the live mappings) cover `phys`.
pub fn identity_cover(ranges: &[MappedRange], phys: Range<u64>) -> IdentityCover {
    let mut at = phys.start;
    let mut kind: Option<Option<MemType>> = None;
    while at < phys.end {
        let here = ranges
            .iter()
            .filter(|r| r.is_identity())
            .find(|r| r.phys <= at && at < r.phys_end());
        let this = here.map(|r| r.mem_type);
        match kind {
            None => kind = Some(this),
            Some(first) if first != this => return IdentityCover::Partly { at },
            Some(_) => {}
        }
        at = match here {
            Some(r) => r.phys_end(),
            // Up to the next identity range that starts above, or the end.
            None => ranges
                .iter()
                .filter(|r| r.is_identity() && r.phys > at)
                .map(|r| r.phys)
                .min()
                .unwrap_or(phys.end),
        };
    }
    match kind.flatten() {
        Some(mem_type) => IdentityCover::All(mem_type),
        None => IdentityCover::None,
    }
}

/// Physical bytes mapped twice with different memory types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    pub phys: u64,
    pub len: u64,
    pub first: MappedRange,
    pub second: MappedRange,
}

/// Every pair of ranges that map overlapping physical bytes with different memory types.
pub fn type_aliases(ranges: &[MappedRange]) -> Vec<Alias> {
    let mut by_phys: Vec<&MappedRange> = ranges.iter().collect();
    by_phys.sort_by_key(|r| r.phys);
    let mut aliases = Vec::new();
    for (i, a) in by_phys.iter().enumerate() {
        for b in by_phys[i + 1..]
            .iter()
            .take_while(|b| b.phys < a.phys_end())
        {
            if a.mem_type == b.mem_type {
                continue;
            }
            let start = b.phys;
            let end = a.phys_end().min(b.phys_end());
            aliases.push(Alias {
                phys: start,
                len: end - start,
                first: **a,
                second: **b,
            });
        }
    }
    aliases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(virt: u64, phys: u64, len: u64, mem_type: MemType) -> MappedRange {
        MappedRange {
            virt,
            phys,
            len,
            mem_type,
            writable: true,
        }
    }

    fn low_mib() -> [MappedRange; 4] {
        [
            range(0, 0, 0xa_0000, MemType::WriteBack),
            range(0xa_0000, 0xa_0000, 0x2_0000, MemType::Uncacheable),
            range(0xc_0000, 0xc_0000, 0x4_0000, MemType::WriteBack),
            // A window mapping of a BAR below 4 GiB (not identity: virt != phys).
            range(0x80_0000_0000, 0xfebf_0000, 0x4000, MemType::Uncacheable),
        ]
    }

    #[test]
    fn identity_cover_names_the_type_or_the_first_change() {
        let map = low_mib();
        assert_eq!(
            identity_cover(&map, 0xf_0000..0xf_1000),
            IdentityCover::All(MemType::WriteBack)
        );
        assert_eq!(
            identity_cover(&map, 0xb_8000..0xb_9000),
            IdentityCover::All(MemType::Uncacheable)
        );
        assert_eq!(
            identity_cover(&map, 0x9_f000..0xa_1000),
            IdentityCover::Partly { at: 0xa_0000 }
        );
        assert_eq!(
            identity_cover(&map, 0xf_f000..0x10_1000),
            IdentityCover::Partly { at: 0x10_0000 }
        );
        assert_eq!(
            identity_cover(&map, 0xfebf_0000..0xfebf_1000),
            IdentityCover::None,
            "a window is not the identity map"
        );
        // A hole followed by an identity range.
        assert_eq!(
            identity_cover(&map[1..], 0x9_f000..0xa_1000),
            IdentityCover::Partly { at: 0xa_0000 }
        );
    }

    #[test]
    fn aliases_are_overlaps_with_different_types_only() {
        let mut map = low_mib().to_vec();
        assert!(type_aliases(&map).is_empty());
        // The same UC BAR mapped twice: allowed.
        map.push(range(
            0x80_0001_0000,
            0xfebf_1000,
            0x1000,
            MemType::Uncacheable,
        ));
        assert!(type_aliases(&map).is_empty());
        // `mem map 0xf0000 0x1000` before the fix: an uncached alias of a write-back page.
        map.push(range(
            0x80_0002_0000,
            0xf_0000,
            0x1000,
            MemType::Uncacheable,
        ));
        let aliases = type_aliases(&map);
        assert_eq!(aliases.len(), 1, "{aliases:?}");
        assert_eq!((aliases[0].phys, aliases[0].len), (0xf_0000, 0x1000));
    }
}
