//! `peek` and `poke`: virtual memory at any width, or physical with `--phys` (through the
//! identity map where it covers the range, else an uncached window).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::platform::{identity_cover, IdentityCover, MemError, MemKind, RegionKind, Width};

use super::{read_frame, write_frame, write_text, WriteRecord};
use crate::args::{check_aligned, check_fits, Args, WIDTH_FLAG};
use crate::fmt::{hexdump, register_dump};
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

/// Longest `peek`, bytes.
pub const PEEK_MAX_BYTES: u64 = 4096;
/// `peek` of RAM without a length: one hexdump screen.
const PEEK_RAM_DEFAULT_BYTES: u64 = 64;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "peek",
        usage: "peek <addr> [len] [--width 1|2|4|8] [--phys] [--no-check]",
        summary: "read memory or registers at a virtual address",
        details: "Reads len bytes at addr (a virtual address: RAM is identity mapped below 4 GiB; \
                  device registers through the window 'bar map' or 'mem map' printed). Each access is \
                  exactly one load of --width bytes, so a register with read side effects is read once \
                  and 32-bit-only registers read right. Defaults: RAM width 1, 64 bytes (a hexdump); \
                  uncached (device) memory width 4 and one register. The page tables are checked first: \
                  an unmapped address is an 'unmapped-address' error, not a page fault. --no-check reads \
                  bytes without that check, so an unmapped address page-faults and the monitor's fault \
                  path aborts the command (the proof that it recovers). --phys takes addr as a physical \
                  address: whatever the identity map covers (RAM, firmware-owned RAM, the first MiB, the \
                  uncached VGA aperture) is read there, and the output says so (never through a second \
                  mapping of another memory type); anything else through an uncached window (the one \
                  'bar map'/'mem map' made, or one made for this read and released after it). A range \
                  only partly identity mapped is refused ('range-partly-identity-mapped'). Emits a \
                  reg.read frame (the first 16 values; target names the physical address with --phys).",
        examples: &[
            "peek 0x100000",
            "peek 0x8000001008 --width 4",
            "peek 0xb8000 32 --width 2",
            "peek 0xfee00030 --phys",
        ],
        min_args: 1,
        max_args: 2,
        flags: &[
            WIDTH_FLAG,
            PHYS_FLAG,
            Flag { name: "--no-check", takes_value: false, help: "skip the page-table check (faults on purpose)" },
        ],
        run: peek,
    },
    CommandSpec {
        name: "poke",
        usage: "poke <addr> <value> [--width 1|2|4|8] [--phys]",
        summary: "write memory or a register, then read it back",
        details: "Reads the old value, writes value (one store of --width bytes, default 4) at the virtual \
                  address addr, and reads it back. No confirmation: a debug monitor's right. The address \
                  must be mapped writable and aligned to the width; the value must fit the width. --phys \
                  as for peek. Emits a reg.write frame (before, value, readback).",
        examples: &["poke 0x200000 0xdeadbeef", "poke 0x8000001014 0x460001 --width 4"],
        min_args: 2,
        max_args: 2,
        flags: &[WIDTH_FLAG, PHYS_FLAG],
        run: poke,
    },
];

const PHYS_FLAG: Flag = Flag {
    name: "--phys",
    takes_value: false,
    help: "addr is physical (RAM via the identity map, else its uncached window)",
};
/// A physical range resolved to a virtual address for one `peek`/`poke --phys`.
struct Resolved {
    addr: u64,
    target: String,
    /// A window use taken for this access, released after it.
    window_use: Option<(u64, u64)>,
}

impl Resolved {
    fn release(self, ctx: &mut Ctx) {
        if let Some((phys, len)) = self.window_use {
            ctx.hw.mmio.unmap(phys, len);
        }
    }
}

/// How the live identity map covers `[phys, end)`.
pub(crate) fn identity(ctx: &Ctx, phys: u64, end: u64) -> IdentityCover {
    identity_cover(&ctx.hw.memory.mappings(phys..end), phys..end)
}

/// The usable RAM region of the firmware's map overlapping `[phys, end)`.
pub(crate) fn usable_overlap(ctx: &Ctx, phys: u64, end: u64) -> Option<(u64, u64)> {
    ctx.hw
        .firmware
        .memory_map()
        .iter()
        .find(|r| {
            r.kind == RegionKind::Usable && r.start < end && phys < r.start.saturating_add(r.len)
        })
        .map(|r| (r.start, r.start.saturating_add(r.len)))
}

fn partly_identity(phys: u64, end: u64, at: u64) -> CmdError {
    CmdError::new(
        "range-partly-identity-mapped",
        alloc::format!(
            "{phys:#x}..{end:#x} is only partly identity mapped (the mapping changes at {at:#x}): \
             split it there"
        ),
    )
}

/// The virtual address of physical `[phys, phys+len)`: the identity map where it covers the
/// range (so no second mapping of another type is ever made), else an uncached window.
fn resolve_phys(ctx: &mut Ctx, phys: u64, len: u64) -> Result<Resolved, CmdError> {
    let end = phys
        .checked_add(len)
        .ok_or_else(|| CmdError::new("bad-address", "addr + len overflows"))?;
    let target = alloc::format!("phys {phys:#x}");
    match identity(ctx, phys, end) {
        IdentityCover::All(mem_type) => {
            let _ = writeln!(
                ctx.out,
                "phys {phys:#x}: through the identity map ({})",
                mem_type.name()
            );
            return Ok(Resolved {
                addr: phys,
                target,
                window_use: None,
            });
        }
        IdentityCover::Partly { at } => return Err(partly_identity(phys, end, at)),
        IdentityCover::None => {}
    }
    if usable_overlap(ctx, phys, end).is_some() {
        return Err(CmdError::new(
            "unmapped-address",
            alloc::format!("{phys:#x} is RAM the monitor does not map (above 4 GiB)"),
        ));
    }
    let mapping = ctx.hw.mmio.map(phys, len).map_err(|err| {
        CmdError::new(
            "map-failed",
            alloc::format!("cannot map {phys:#x}+{len:#x}: {err:?}"),
        )
    })?;
    Ok(Resolved {
        addr: mapping.window,
        target,
        window_use: Some((phys, len)),
    })
}

fn mem_error(err: MemError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("{err}"))
}

fn peek(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let addr = args.number(0, "addr")?;
    let len = args.get(1).map(|_| args.number(1, "len")).transpose()?;
    if len.is_some_and(|len| len == 0 || len > PEEK_MAX_BYTES) {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("len must be 1..={PEEK_MAX_BYTES}, got {}", len.unwrap_or(0)),
        ));
    }
    if args.flag("--no-check") {
        return peek_unchecked(ctx, addr, len.unwrap_or(PEEK_RAM_DEFAULT_BYTES));
    }
    if args.flag("--phys") {
        let resolved = resolve_phys(ctx, addr, len.unwrap_or(8))?;
        let result = peek_at(ctx, args, resolved.addr, resolved.target.clone(), len);
        resolved.release(ctx);
        return result;
    }
    peek_at(ctx, args, addr, String::new(), len)
}

/// `peek` of the virtual address `addr` (`target` names the physical one with --phys).
fn peek_at(
    ctx: &mut Ctx,
    args: &Args,
    addr: u64,
    target: String,
    len: Option<u64>,
) -> Result<(), CmdError> {
    // The kind decides the defaults, so probe one byte before knowing the length.
    let kind = ctx.hw.memory.probe(addr, 1, false).map_err(mem_error)?;
    let width = args.width(
        &Width::ALL,
        if kind == MemKind::Device {
            Width::W4
        } else {
            Width::W1
        },
    )?;
    check_aligned("unaligned-address", "address", addr, width)?;
    let len = len.unwrap_or(if kind == MemKind::Device {
        width.bytes()
    } else {
        PEEK_RAM_DEFAULT_BYTES
    });
    if !len.is_multiple_of(width.bytes()) {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("len {len} is not a multiple of the width {width}"),
        ));
    }
    addr.checked_add(len)
        .ok_or_else(|| CmdError::new("bad-address", "addr + len overflows"))?;
    ctx.hw.memory.probe(addr, len, false).map_err(mem_error)?;
    let mut values = Vec::new();
    for at in (addr..addr + len).step_by(width.bytes() as usize) {
        values.push(ctx.hw.memory.read(at, width).map_err(mem_error)?);
    }
    let text = if width == Width::W1 {
        let bytes: Vec<u8> = values.iter().map(|v| *v as u8).collect();
        hexdump(addr, &bytes)
    } else {
        register_dump(addr, width, &values)
    };
    ctx.out.print(&text);
    ctx.out
        .frame(read_frame("mem", target, addr, width, &values));
    Ok(())
}

/// Byte reads without the page-table check: the fault path's proof.
fn peek_unchecked(ctx: &mut Ctx, addr: u64, len: u64) -> Result<(), CmdError> {
    if args_overflow(addr, len) {
        return Err(CmdError::new("bad-address", "addr + len overflows"));
    }
    let mut bytes = Vec::new();
    for at in addr..addr + len {
        bytes.push(ctx.hw.memory.read_unchecked(at).map_err(mem_error)?);
    }
    ctx.out.print(&hexdump(addr, &bytes));
    let values: Vec<u64> = bytes.iter().map(|b| *b as u64).collect();
    ctx.out
        .frame(read_frame("mem", String::new(), addr, Width::W1, &values));
    Ok(())
}

fn args_overflow(addr: u64, len: u64) -> bool {
    addr.checked_add(len).is_none()
}

fn poke(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let addr = args.number(0, "addr")?;
    let value = args.number(1, "value")?;
    let width = args.width(&Width::ALL, Width::W4)?;
    check_aligned("unaligned-address", "address", addr, width)?;
    check_fits(value, width)?;
    if args.flag("--phys") {
        let resolved = resolve_phys(ctx, addr, width.bytes())?;
        let result = poke_at(ctx, resolved.addr, resolved.target.clone(), width, value);
        resolved.release(ctx);
        return result;
    }
    poke_at(ctx, addr, String::new(), width, value)
}

/// `poke` of the virtual address `addr` (`target` names the physical one with --phys).
fn poke_at(
    ctx: &mut Ctx,
    addr: u64,
    target: String,
    width: Width,
    value: u64,
) -> Result<(), CmdError> {
    check_aligned("unaligned-address", "address", addr, width)?;
    ctx.hw
        .memory
        .probe(addr, width.bytes(), true)
        .map_err(mem_error)?;
    let before = ctx.hw.memory.read(addr, width).map_err(mem_error)?;
    ctx.hw.memory.write(addr, width, value).map_err(mem_error)?;
    let readback = ctx.hw.memory.read(addr, width).map_err(mem_error)?;
    let record = WriteRecord {
        space: "mem",
        target,
        address: addr,
        width,
        before,
        value,
        readback,
    };
    ctx.out.print(&write_text(
        &alloc::format!("{addr:#x} ({width} bytes)"),
        &record,
    ));
    ctx.out.frame(write_frame(&record));
    Ok(())
}
