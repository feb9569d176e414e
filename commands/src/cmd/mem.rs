//! `peek`, `poke` (virtual memory at any width) and `mem map` (any physical MMIO range).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::platform::{MemError, MemKind, RegionKind, Width};
use evidence::{Body, MemWindow};

use super::{read_frame, write_frame, write_text, WriteRecord};
use crate::args::{check_aligned, check_fits, Args, WIDTH_FLAG};
use crate::fmt::{hexdump, register_dump};
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

/// Longest `peek`, bytes.
pub const PEEK_MAX_BYTES: u64 = 4096;
/// `peek` of RAM without a length: one hexdump screen.
const PEEK_RAM_DEFAULT_BYTES: u64 = 64;
/// Largest `mem map` (policy: the LAPIC, IOAPIC, HPET, a ROM; not all of a big BAR).
pub const MEM_MAP_MAX_BYTES: u64 = 256 << 20;

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
                  address: RAM below 4 GiB through the identity map, anything else through its uncached \
                  window (mapped now if 'bar map'/'mem map' did not already). Emits a reg.read frame (the \
                  first 16 values; target names the physical address with --phys).",
        examples: &[
            "peek 0x100000",
            "peek 0x400000000008 --width 4",
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
        examples: &["poke 0x200000 0xdeadbeef", "poke 0x400000000014 0x460001 --width 4"],
        min_args: 2,
        max_args: 2,
        flags: &[WIDTH_FLAG, PHYS_FLAG],
        run: poke,
    },
    CommandSpec {
        name: "mem map",
        usage: "mem map <phys> <len>",
        summary: "map a physical MMIO range uncached for peek/poke",
        details: "Maps [phys, phys+len) uncached (PCD|PWT, no-execute) into the MMIO window, like 'bar map' \
                  does for a BAR: for registers that are not a BAR, e.g. the local APIC at 0xfee00000, the \
                  IOAPIC at 0xfec00000 or the HPET. The same range twice gives the same window. Usable RAM \
                  is refused (an uncached alias of cached RAM is undefined behaviour on real CPUs; peek RAM \
                  directly). Up to 256 MiB. Emits a mem.map frame.",
        examples: &["mem map 0xfee00000 0x1000", "mem map 0xfec00000 0x20"],
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: mem_map,
    },
];

const PHYS_FLAG: Flag = Flag {
    name: "--phys",
    takes_value: false,
    help: "addr is physical (RAM via the identity map, else its uncached window)",
};
/// The boot identity map ends here.
const IDENTITY_LIMIT: u64 = 1 << 32;

/// The virtual address of physical `[phys, phys+len)`, and the frame target naming it.
fn resolve_phys(ctx: &mut Ctx, phys: u64, len: u64) -> Result<(u64, String), CmdError> {
    let end = phys
        .checked_add(len)
        .ok_or_else(|| CmdError::new("bad-address", "addr + len overflows"))?;
    let target = alloc::format!("phys {phys:#x}");
    let ram = ctx.hw.firmware.memory_map().iter().any(|r| {
        r.kind == RegionKind::Usable && r.start < end && phys < r.start.saturating_add(r.len)
    });
    if ram {
        if end > IDENTITY_LIMIT {
            return Err(CmdError::new(
                "unmapped-address",
                alloc::format!("{phys:#x} is RAM above 4 GiB, which the monitor does not map"),
            ));
        }
        return Ok((phys, target));
    }
    let mapping = ctx.hw.mmio.map(phys, len).map_err(|err| {
        CmdError::new(
            "map-failed",
            alloc::format!("cannot map {phys:#x}+{len:#x}: {err:?}"),
        )
    })?;
    Ok((mapping.window, target))
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
    let (addr, target) = if args.flag("--phys") {
        resolve_phys(ctx, addr, len.unwrap_or(8))?
    } else {
        (addr, String::new())
    };
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
    if len % width.bytes() != 0 {
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
    let (addr, target) = if args.flag("--phys") {
        resolve_phys(ctx, addr, width.bytes())?
    } else {
        (addr, String::new())
    };
    check_aligned("unaligned-address", "address", addr, width)?;
    check_fits(value, width)?;
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
    if let Some(ram) = ctx
        .hw
        .firmware
        .memory_map()
        .iter()
        .find(|r| r.kind == RegionKind::Usable && r.start < end && phys < r.start + r.len)
    {
        return Err(CmdError::new(
            "range-is-ram",
            alloc::format!(
                "{phys:#x}..{end:#x} overlaps usable RAM {:#x}..{:#x}: peek it at its identity address",
                ram.start,
                ram.start + ram.len
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
    ctx.out.frame(Body::MemWindow(MemWindow {
        phys,
        len,
        window: mapping.window,
        newly_mapped: mapping.newly_mapped,
    }));
    Ok(())
}
