//! Commands that need no device: help, version, reset, dma, teardown.

use alloc::string::String;
use core::fmt::Write;

use drivers::platform::Bdf;
use evidence::{Body, DmaLedger, LedgerEntry, TeardownStep};

use crate::args::Args;
use crate::table::{all_commands, lookup, CmdError, CommandSpec, Ctx};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "help",
        usage: "help [command]",
        summary: "list commands, or explain one",
        details: "Without an argument lists every command. With one (e.g. 'help nvme read') prints its \
                  grammar, what it does, and examples.",
        examples: &["help", "help nvme read"],
        min_args: 0,
        max_args: 2,
        flags: &[],
        run: help,
    },
    CommandSpec {
        name: "version",
        usage: "version",
        summary: "monitor version, build and boot facts",
        details: "Prints the version, build id, firmware, memory, the bounce pool and the SHA-256 engine nvme read uses on this CPU (sha-ni or portable), and emits a banner frame (sha256_path).",
        examples: &["version"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: version,
    },
    CommandSpec {
        name: "dma",
        usage: "dma",
        summary: "bounce DMA pool usage and ledger",
        details: "Every byte a device can see comes from one bounce pool below 4 GiB. Shows the pool's base \
                  and size, used/free/quarantined pages, and each allocation's owner and purpose. \
                  Quarantined pages belong to a device that did not confirm it stopped; they are never reused.",
        examples: &["dma"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: dma,
    },
    CommandSpec {
        name: "teardown",
        usage: "teardown [nvme|gvnic|all]",
        summary: "stop bound devices in reverse order and release their DMA",
        details: "Undoes bring-up in reverse, reporting each step (and a frame per step), then shows the DMA \
                  ledger: empty, or what stays quarantined and why. Default: all.",
        examples: &["teardown", "teardown nvme"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: teardown,
    },
    CommandSpec {
        name: "reset",
        usage: "reset",
        summary: "tear everything down and reset the machine",
        details: "Tears down bound devices, then resets the machine (keyboard controller, then triple fault).",
        examples: &["reset"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: reset,
    },
];

/// Width of the grammar column in the `help` overview.
const USAGE_COLUMN: usize = 34;

fn help(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    if args.positional.is_empty() {
        ctx.out
            .print("commands (numbers are decimal or 0x-hex; 'help <command>' for details):\n");
        for spec in all_commands() {
            // A long grammar gets its own line, so the summaries stay in one column.
            if spec.usage.len() > USAGE_COLUMN {
                let _ = writeln!(
                    ctx.out,
                    "  {}\n  {:<USAGE_COLUMN$} {}",
                    spec.usage, "", spec.summary
                );
            } else {
                let _ = writeln!(ctx.out, "  {:<USAGE_COLUMN$} {}", spec.usage, spec.summary);
            }
        }
        ctx.out
            .print("keys: up/down history, Ctrl-C aborts a long wait\n");
        return Ok(());
    }
    let (spec, used) = lookup(&args.positional)?;
    if used != args.positional.len() {
        return Err(CmdError::new(
            "usage",
            alloc::format!("no command '{}'", args.positional.join(" ")),
        ));
    }
    let _ = writeln!(
        ctx.out,
        "usage: {}\n  {}\n\n{}",
        spec.usage,
        spec.summary,
        wrap(spec.details, 78)
    );
    for flag in spec.flags {
        let value = if flag.takes_value { " <value>" } else { "" };
        let _ = writeln!(ctx.out, "  {}{value:<10} {}", flag.name, flag.help);
    }
    ctx.out.print("examples:\n");
    for example in spec.examples {
        let _ = writeln!(ctx.out, "  {example}");
    }
    Ok(())
}

/// Re-wraps a help paragraph (the source strings use `\` continuations).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > 0 && column + 1 + word.len() > width {
            out.push('\n');
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out
}

fn version(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    let info = ctx.info;
    let sha256_path = info.sha256_path;
    let _ = writeln!(
        ctx.out,
        "bringup {} ({}), firmware {}, {} MiB RAM, boot to prompt {} ms, sha256 {sha256_path}",
        info.version,
        info.build,
        info.firmware_name(),
        info.memory_bytes >> 20,
        info.boot_us / 1000
    );
    let _ = writeln!(
        ctx.out,
        "{}",
        info.confidential_note()
            .unwrap_or_else(|| String::from("confidential VM: no (device DMA allowed)"))
    );
    ctx.out.frame(Body::Banner(info.banner()));
    Ok(())
}

fn dma(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    report_ledger(ctx);
    Ok(())
}

/// Prints the pool and its ledger and emits the ledger frame (also the end of `teardown`).
pub(crate) fn report_ledger(ctx: &mut Ctx) {
    let pool = &*ctx.hw.dma;
    let usage = pool.usage();
    let _ = writeln!(
        ctx.out,
        "DMA pool {:#x}..{:#x} ({} KiB): {} pages used, {} free, {} quarantined",
        pool.phys_base(),
        pool.phys_base() + pool.bytes(),
        pool.bytes() >> 10,
        usage.used_pages,
        usage.free_pages,
        usage.quarantined_pages
    );
    let mut entries = alloc::vec::Vec::new();
    for entry in pool.ledger() {
        let state = match &entry.quarantine {
            Some(reason) => alloc::format!("QUARANTINED: {reason}"),
            None => String::from("in use"),
        };
        let _ = writeln!(
            ctx.out,
            "  {:#012x} {:>5} pages  {:<16} {:<20} {state}",
            entry.phys, entry.pages, entry.owner, entry.purpose
        );
        entries.push(LedgerEntry {
            owner: entry.owner.clone(),
            purpose: entry.purpose.into(),
            pages: entry.pages,
            phys: entry.phys,
            quarantined: entry.quarantine.is_some(),
            reason: entry
                .quarantine
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect(),
        });
    }
    if entries.is_empty() {
        ctx.out.print("  ledger empty: no device owns DMA memory\n");
    }
    // A bound NVMe controller and gVNIC own ~15 allocations: one frame holding them all
    // would be ~800 bytes, 70 ms on a 115200 line and past the 512-byte frame budget. So
    // the ledger goes out as consecutive frames of a few entries each, every one carrying
    // the pool totals (an expectation on the totals holds for any of them).
    let mut chunks: alloc::vec::Vec<alloc::vec::Vec<LedgerEntry>> = alloc::vec::Vec::new();
    for entry in entries {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < LEDGER_ENTRIES_PER_FRAME => chunk.push(entry),
            _ => chunks.push(alloc::vec![entry]),
        }
    }
    if chunks.is_empty() {
        chunks.push(alloc::vec::Vec::new());
    }
    for entries in chunks {
        ctx.out.frame(Body::DmaLedger(DmaLedger {
            base: pool.phys_base(),
            bytes: pool.bytes(),
            used_pages: usage.used_pages,
            free_pages: usage.free_pages,
            quarantined_pages: usage.quarantined_pages,
            entries,
        }));
    }
}

/// Ledger entries per `dma.ledger` frame (each entry is ~40 bytes of postcard).
const LEDGER_ENTRIES_PER_FRAME: usize = 5;

/// One teardown step, the same way for every device: an aligned human line and a frame.
/// Details are capped so a chatty driver message cannot bloat a frame on a 115200 line.
pub(crate) fn report_teardown_step(
    ctx: &mut Ctx,
    device: &str,
    bdf: Bdf,
    step: &str,
    ok: bool,
    detail: &str,
) {
    let _ = writeln!(
        ctx.out,
        "{device} {bdf}: {step:<18} {}  {detail}",
        if ok { "ok    " } else { "FAILED" }
    );
    ctx.out.frame(Body::TeardownStep(TeardownStep {
        device: device.into(),
        step: step.into(),
        ok,
        detail: detail.chars().take(160).collect(),
    }));
}

/// Prints a hexdump (kept here for nvme.rs; the text comes from [`crate::fmt::hexdump`]).
pub(crate) fn hexdump(ctx: &mut Ctx, base: u64, data: &[u8]) {
    ctx.out.print(&crate::fmt::hexdump(base, data));
}

fn teardown(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let which = args.get(0).unwrap_or("all");
    let (nvme, gvnic) = match which {
        "all" => (true, true),
        "nvme" => (true, false),
        "gvnic" => (false, true),
        other => {
            return Err(CmdError::new(
                "usage",
                alloc::format!(
                    "teardown: unknown device '{other}'; usage: teardown [nvme|gvnic|all]"
                ),
            ))
        }
    };
    // Reverse bring-up order across devices too: the NIC came up last in a full bring-up.
    let mut first_error = None;
    if gvnic {
        if let Err(err) = crate::gvnic::teardown(ctx) {
            first_error.get_or_insert(err);
        }
    }
    if nvme {
        if let Err(err) = crate::nvme::teardown(ctx) {
            first_error.get_or_insert(err);
        }
    }
    report_ledger(ctx);
    first_error.map_or(Ok(()), Err)
}

fn reset(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    let _ = crate::gvnic::teardown(ctx);
    let _ = crate::nvme::teardown(ctx);
    ctx.out.print("resetting the machine\n");
    Ok(())
}
