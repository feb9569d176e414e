//! `mem types [phys len]`: the live page tables' memory types, and a check that no physical
//! page is mapped with two of them (an uncached alias of a write-back page is undefined on
//! real CPUs: SDM vol. 3A §12.12.4). Reads what the tables say, not what the monitor meant.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::platform::{type_aliases, Alias, MappedRange};
use evidence::{Body, MemTypeAlias, MemTypeRun, MemTypes};

use crate::args::Args;
use crate::fmt::human_size;
use crate::table::{CmdError, CommandSpec, Ctx};

/// Runs per frame (a frame line must stay short); the text lists them all.
pub const RUNS_PER_FRAME: usize = 128;
/// The canonical lower half, then the upper half: everything a page table can map.
const LOWER_HALF_END: u64 = 1 << 47;
const UPPER_HALF_START: u64 = 0xffff_8000_0000_0000;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "mem types",
    usage: "mem types [phys len]",
    summary: "the page tables' memory types (WB, UC, ...) and aliases",
    details: "Walks the live page tables and prints each run of pages: virtual and physical range, \
              size, the memory type the entry selects through the PAT (WB, UC, WC, WT, WP, UC-; MTRRs \
              not combined) and the rights; 'identity' marks the identity map (virtual = physical, \
              below 4 GiB). With phys and len only the runs mapping that physical range. Then every \
              physical page mapped twice with different types: none is the rule (result \
              'memory-type-alias' otherwise). Emits a mem.types frame.",
    examples: &["mem types", "mem types 0xa0000 0x20000"],
    min_args: 0,
    max_args: 2,
    flags: &[],
    run: mem_types,
}];

fn mem_types(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (phys, len) = match args.get(0) {
        None => (0, u64::MAX),
        Some(_) => {
            let phys = args.number(0, "phys")?;
            let len = args
                .get(1)
                .map(|_| args.number(1, "len"))
                .transpose()?
                .ok_or_else(|| CmdError::new("usage", "usage: mem types [phys len]"))?;
            if len == 0 || phys.checked_add(len).is_none() {
                return Err(CmdError::new(
                    "bad-argument",
                    "len must be non-zero and phys + len must not overflow",
                ));
            }
            (phys, len)
        }
    };
    let mut all = ctx.hw.memory.mappings(0..LOWER_HALF_END);
    all.extend(ctx.hw.memory.mappings(UPPER_HALF_START..u64::MAX));
    let end = phys.saturating_add(len);
    let shown: Vec<MappedRange> = all
        .iter()
        .filter(|r| r.phys < end && phys < r.phys_end())
        .copied()
        .collect();
    let aliases: Vec<Alias> = type_aliases(&all)
        .into_iter()
        .filter(|a| a.phys < end && phys < a.phys + a.len)
        .collect();
    ctx.out.print(&text(&shown, &aliases));
    ctx.out
        .frame(Body::MemTypes(frame(phys, len, &shown, &aliases)));
    if aliases.is_empty() {
        Ok(())
    } else {
        Err(CmdError::new(
            "memory-type-alias",
            alloc::format!(
                "{} physical range(s) mapped with two memory types, the first at {:#x}",
                aliases.len(),
                aliases[0].phys
            ),
        ))
    }
}

/// The human table.
pub fn text(runs: &[MappedRange], aliases: &[Alias]) -> String {
    let mut out = String::from(
        "virtual                              physical                  size        type rights\n",
    );
    for r in runs {
        let physical = if r.is_identity() {
            String::from("identity")
        } else {
            alloc::format!("{:#x}-{:#x}", r.phys, r.phys_end() - 1)
        };
        let _ = writeln!(
            out,
            "{:<36} {physical:<25} {:<11} {:<4} {}",
            alloc::format!("{:#x}-{:#x}", r.virt, r.virt + (r.len - 1)),
            human_size(r.len),
            r.mem_type.name(),
            if r.writable { "rw" } else { "ro" },
        );
    }
    if aliases.is_empty() {
        out.push_str("aliases: none (no physical page is mapped with two memory types)\n");
    }
    for a in aliases {
        let _ = writeln!(
            out,
            "ALIAS: phys {:#x}-{:#x} mapped {} at {:#x} and {} at {:#x}",
            a.phys,
            a.phys + (a.len - 1),
            a.first.mem_type.name(),
            a.first.virt + (a.phys - a.first.phys),
            a.second.mem_type.name(),
            a.second.virt + (a.phys - a.second.phys),
        );
    }
    out
}

/// The frame: the first [`RUNS_PER_FRAME`] runs and every alias.
pub fn frame(phys: u64, len: u64, runs: &[MappedRange], aliases: &[Alias]) -> MemTypes {
    MemTypes {
        phys,
        len,
        runs: runs
            .iter()
            .take(RUNS_PER_FRAME)
            .map(|r| MemTypeRun {
                virt: r.virt,
                phys: r.phys,
                len: r.len,
                mem_type: r.mem_type.name().into(),
                writable: r.writable,
                identity: r.is_identity(),
            })
            .collect(),
        runs_left_off: runs.len().saturating_sub(RUNS_PER_FRAME) as u32,
        aliases: aliases
            .iter()
            .map(|a| MemTypeAlias {
                phys: a.phys,
                len: a.len,
                first_virt: a.first.virt + (a.phys - a.first.phys),
                first_type: a.first.mem_type.name().into(),
                second_virt: a.second.virt + (a.phys - a.second.phys),
                second_type: a.second.mem_type.name().into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::platform::MemType;

    fn run(virt: u64, phys: u64, len: u64, mem_type: MemType) -> MappedRange {
        MappedRange {
            virt,
            phys,
            len,
            mem_type,
            writable: true,
        }
    }

    #[test]
    fn the_text_marks_identity_and_names_aliases() {
        let runs = [
            run(0xa_0000, 0xa_0000, 0x2_0000, MemType::Uncacheable),
            run(0xc_0000, 0xc_0000, 0x4_0000, MemType::WriteBack),
            run(0x80_0000_0000, 0xf_0000, 0x1000, MemType::Uncacheable),
        ];
        let aliases = type_aliases(&runs);
        let text = text(&runs, &aliases);
        assert!(text.contains("0xa0000-0xbffff"), "{text}");
        assert!(text.contains("identity"), "{text}");
        assert!(
            text.contains(
                "ALIAS: phys 0xf0000-0xf0fff mapped WB at 0xf0000 and UC at 0x8000000000"
            ),
            "{text}"
        );
        let frame = frame(0, u64::MAX, &runs, &aliases);
        assert_eq!(frame.runs[0].mem_type, "UC");
        assert!(frame.runs[0].identity && !frame.runs[2].identity);
        assert_eq!(frame.aliases.len(), 1);
        assert!(super::text(&runs[..2], &[]).contains("aliases: none"));
    }
}
