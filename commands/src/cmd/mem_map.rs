//! `mem map` and `mem unmap`: an uncached window of any physical MMIO range the identity map
//! does not cover (the LAPIC, IOAPIC, HPET, a ROM), and its release.

use alloc::string::String;
use core::fmt::Write;

use drivers::platform::IdentityCover;
use evidence::{Body, MemUnmap, MemWindow};

use super::mem::{identity, usable_overlap};
use crate::args::Args;
use crate::table::{CmdError, CommandSpec, Ctx};

/// Largest `mem map` (policy: the LAPIC, IOAPIC, HPET, a ROM; not all of a big BAR).
pub const MEM_MAP_MAX_BYTES: u64 = 256 << 20;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "mem map",
        usage: "mem map <phys> <len>",
        summary: "map a physical MMIO range uncached for peek/poke",
        details: "Maps [phys, phys+len) uncached (PCD|PWT, no-execute) into the MMIO window, like 'bar map' \
                  does for a BAR: for registers that are not a BAR, e.g. the local APIC at 0xfee00000, the \
                  IOAPIC at 0xfec00000 or the HPET. The same range twice gives the same window. Usable RAM \
                  is refused ('range-is-ram'), and so is anything the identity map covers \
                  ('range-is-identity-mapped': firmware-owned RAM, the BIOS area, the VGA aperture): a \
                  second mapping with another memory type is undefined behaviour on real CPUs; peek it at \
                  its own address. Up to 256 MiB. 'mem unmap' releases it. Emits a mem.map frame.",
        examples: &["mem map 0xfee00000 0x1000", "mem map 0xfec00000 0x20"],
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: mem_map,
    },
    CommandSpec {
        name: "mem unmap",
        usage: "mem unmap <phys> <len>",
        summary: "release a window 'mem map' made",
        details: "Releases one 'mem map <phys> <len>' of exactly this range (refused with 'not-user-mapped' \
                  if you have none). The window's pages and virtual space go when nothing else uses it; a \
                  driver's mapping of the same registers is never touched. Emits a mem.unmap frame.",
        examples: &["mem unmap 0xfee00000 0x1000"],
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: mem_unmap,
    },
];

fn mem_map(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let phys = args.number(0, "phys")?;
    let len = args.number(1, "len")?;
    if len == 0 || len > MEM_MAP_MAX_BYTES {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("len must be 1..={MEM_MAP_MAX_BYTES:#x}, got {len:#x}"),
        ));
    }
    let end = phys
        .checked_add(len)
        .ok_or_else(|| CmdError::new("bad-address", "phys + len overflows"))?;
    if let Some((start, ram_end)) = usable_overlap(ctx, phys, end) {
        return Err(CmdError::new(
            "range-is-ram",
            alloc::format!(
                "{phys:#x}..{end:#x} overlaps usable RAM {start:#x}..{ram_end:#x}: peek it at its identity address"
            ),
        ));
    }
    let covered = match identity(ctx, phys, end) {
        IdentityCover::None => None,
        IdentityCover::All(mem_type) => Some(alloc::format!("identity mapped {}", mem_type.name())),
        IdentityCover::Partly { at } => Some(alloc::format!(
            "partly identity mapped (the mapping changes at {at:#x})"
        )),
    };
    if let Some(covered) = covered {
        return Err(CmdError::new(
            "range-is-identity-mapped",
            alloc::format!(
                "{phys:#x}..{end:#x} is {covered}: peek {phys:#x} reads it there; a second, \
                 uncached mapping would alias it with another memory type"
            ),
        ));
    }
    let mapping = ctx.hw.mmio.map(phys, len).map_err(|err| {
        CmdError::new(
            "map-failed",
            alloc::format!("cannot map {phys:#x}+{len:#x}: {err:?}"),
        )
    })?;
    let _ = writeln!(
        ctx.out,
        "phys {phys:#x}..{end:#x} mapped uncached\n  window {:#x}{}\n  try 'peek {:#x}'",
        mapping.window,
        if mapping.newly_mapped {
            " (new mapping)"
        } else {
            " (already mapped: same window)"
        },
        mapping.window
    );
    ctx.devices.windows.mapped(phys, len);
    ctx.out.frame(Body::MemWindow(MemWindow {
        phys,
        len,
        window: mapping.window,
        newly_mapped: mapping.newly_mapped,
    }));
    Ok(())
}

fn mem_unmap(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let phys = args.number(0, "phys")?;
    let len = args.number(1, "len")?;
    release_user_window(
        ctx,
        phys,
        len,
        &alloc::format!("mem map {phys:#x} {len:#x}"),
    )
}

/// Releases one of the user's own maps of exactly `[phys, phys+len)` (`what` names the
/// command that made it, for the refusal).
pub(crate) fn release_user_window(
    ctx: &mut Ctx,
    phys: u64,
    len: u64,
    what: &str,
) -> Result<(), CmdError> {
    let Some(still_mapped) = ctx.devices.windows.take(phys, len) else {
        let mut yours = String::new();
        for (p, l) in ctx.devices.windows.ranges() {
            let _ = write!(yours, " {p:#x}+{l:#x}");
        }
        return Err(CmdError::new(
            "not-user-mapped",
            alloc::format!(
                "no '{what}' of yours to release (your windows:{})",
                if yours.is_empty() { " none" } else { &yours }
            ),
        ));
    };
    ctx.hw.mmio.unmap(phys, len);
    let _ = writeln!(
        ctx.out,
        "phys {phys:#x}+{len:#x}: your mapping released ({still_mapped} more of yours; the window \
         stays while a driver or another map uses it)"
    );
    ctx.out.frame(Body::MemUnmap(MemUnmap {
        phys,
        len,
        still_mapped,
    }));
    Ok(())
}
