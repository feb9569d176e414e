//! `lspci` and `bar map` (issue 3).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::pci::{self, names, BarKind, BarSlot, CapDetail, PciFunctionInfo};
use evidence::Body;

use crate::args::{parse_number, Args};
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "lspci",
        usage: "lspci [-v] [bdf]",
        summary: "list PCI functions on every bus (behind bridges too)",
        details: "Walks bus 0 and every bus behind a PCI-to-PCI bridge, every function of multi-function \
                  devices. One line per function: bdf, vendor:device, class code and name, revision, and the \
                  device name when known. With -v (or --verbose): subsystem ids, command and status, each BAR \
                  (memory or I/O, 32/64-bit, prefetchable, address, size; sized with decode off and restored), \
                  interrupt pin and line, bridge bus numbers and the capability list (MSI, MSI-X table, PCI \
                  Express, power management). With a bdf only that function. One pci.function frame per function.",
        examples: &["lspci", "lspci -v", "lspci -v 00:04.0", "lspci 03:00.0"],
        min_args: 0,
        max_args: 2,
        flags: &[Flag {
            name: "--verbose",
            takes_value: false,
            help: "same as -v",
        }],
        run: lspci,
    },
    CommandSpec {
        name: "bar map",
        usage: "bar map <bdf> <bar> [offset len]",
        summary: "map a memory BAR (or part of it) uncached and show its window",
        details: "Sizes BAR <bar> (0..5) of <bdf>, enables memory decode, and maps it uncached into the \
                  monitor's MMIO window (64-bit BARs above 4 GiB included). With offset and len only that \
                  part (whole 4 KiB pages inside the BAR: 'bar-part-unaligned', 'bar-part-outside'): a \
                  GPU's BAR of many GiB need not be mapped whole. Prints the physical base, size, \
                  virtual window and attributes; read registers with 'peek <window>'. Mapping the same BAR \
                  (part) again returns the same window. I/O BARs, unassigned BARs and the upper half of a \
                  64-bit BAR are refused with the reason. 'bar unmap' releases it. Emits a bar.map frame.",
        examples: &["bar map 00:04.0 0", "bar map 03:00.0 0", "bar map 00:05.0 2 0x40000000 0x200000"],
        min_args: 2,
        max_args: 4,
        flags: &[],
        run: bar_map,
    },
    CommandSpec {
        name: "bar unmap",
        usage: "bar unmap <bdf> <bar> [offset len]",
        summary: "release a window 'bar map' made",
        details: "Releases one 'bar map' of exactly this BAR (part) (refused with 'not-user-mapped' if you \
                  have none). The window's pages and virtual space go when nothing else uses it: a driver \
                  bound to the device keeps its own mapping. Memory decode is left on. Emits a mem.unmap \
                  frame.",
        examples: &["bar unmap 00:04.0 0", "bar unmap 00:05.0 2 0x40000000 0x200000"],
        min_args: 2,
        max_args: 4,
        flags: &[],
        run: bar_unmap,
    },
];

pub use crate::args::parse_bdf;

fn lspci(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let mut verbose = args.flag("--verbose");
    let mut wanted = None;
    for word in &args.positional {
        if *word == "-v" {
            verbose = true;
        } else if wanted.is_none() {
            wanted = Some(parse_bdf(word)?);
        } else {
            return Err(CmdError::new(
                "usage",
                "lspci takes at most one bdf; usage: lspci [-v] [bdf]",
            ));
        }
    }
    let functions: Vec<PciFunctionInfo> = match wanted {
        // A bdf may be on a bus no bridge leads to; probe it directly.
        Some(bdf) => match pci::probe(ctx.hw.config, bdf) {
            Some(info) => alloc::vec![info],
            None => {
                return Err(CmdError::new(
                    "no-such-function",
                    alloc::format!("no PCI function at {bdf}"),
                ))
            }
        },
        None => pci::enumerate(ctx.hw.config),
    };
    for info in &functions {
        print_summary(ctx, info);
        if verbose {
            print_details(ctx, info);
        }
        ctx.out.frame(Body::PciFunction(frame_of(info)));
    }
    if wanted.is_none() {
        let _ = writeln!(ctx.out, "{} functions", functions.len());
    }
    Ok(())
}

fn print_summary(ctx: &mut Ctx, info: &PciFunctionInfo) {
    let name = names::device_name(info.vendor_id, info.device_id)
        .or_else(|| names::vendor_name(info.vendor_id))
        .unwrap_or("");
    let _ = writeln!(
        ctx.out,
        "{} {:04x}:{:04x} [{:06x}] {} (rev {:02x}) {}",
        info.bdf,
        info.vendor_id,
        info.device_id,
        info.class_code,
        names::class_name(info.class(), info.subclass()),
        info.revision,
        name
    );
}

fn print_details(ctx: &mut Ctx, info: &PciFunctionInfo) {
    let out = &mut ctx.out;
    let _ = writeln!(
        out,
        "    subsystem {:04x}:{:04x}  header type {:#04x}{}  command {:#06x}  status {:#06x}",
        info.subsystem_vendor,
        info.subsystem_id,
        info.header_type & 0x7f,
        if info.is_multi_function() {
            " (multi-function)"
        } else {
            ""
        },
        info.command,
        info.status
    );
    if info.interrupt_pin != 0 {
        let pin = (b'A' + (info.interrupt_pin.min(4) - 1)) as char;
        let _ = writeln!(
            out,
            "    interrupt pin INT{pin}, line {}",
            info.interrupt_line
        );
    }
    if let Some(buses) = info.bridge {
        let _ = writeln!(
            out,
            "    bridge buses: primary {:02x}, secondary {:02x}, subordinate {:02x}",
            buses.primary, buses.secondary, buses.subordinate
        );
    }
    for (index, slot) in info.bars.iter().enumerate() {
        match slot {
            BarSlot::Bar(bar) => {
                let kind = match bar.kind {
                    BarKind::Io => "I/O",
                    BarKind::Memory32 => "memory, 32-bit",
                    BarKind::Memory64 => "memory, 64-bit",
                };
                let assigned = if bar.address == 0 {
                    " (unassigned)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    BAR{index}: {kind}{} at {:#x}{assigned}, size {}",
                    if bar.prefetchable {
                        ", prefetchable"
                    } else {
                        ""
                    },
                    bar.address,
                    human_size(bar.size)
                );
            }
            BarSlot::Upper64 => {}
            BarSlot::Malformed => {
                let _ = writeln!(
                    out,
                    "    BAR{index}: malformed (64-bit BAR in the last slot)"
                );
            }
            BarSlot::Unused => {}
        }
    }
    if info.capabilities.is_empty() {
        out.print("    capabilities: none\n");
    }
    for cap in &info.capabilities {
        let name = names::capability_name(cap.id);
        let detail = match cap.detail {
            CapDetail::PowerManagement { version } => alloc::format!("version {version}"),
            CapDetail::Msi {
                enabled,
                is_64bit,
                max_vectors,
            } => alloc::format!(
                "{} vectors, {}-bit, {}",
                max_vectors,
                if is_64bit { 64 } else { 32 },
                on_off(enabled)
            ),
            CapDetail::MsiX {
                enabled,
                table_size,
                table_bar,
                table_offset,
                pba_bar,
                pba_offset,
            } => alloc::format!(
                "table size {table_size}, table BAR{table_bar}+{table_offset:#x}, PBA BAR{pba_bar}+{pba_offset:#x}, {}",
                on_off(enabled)
            ),
            CapDetail::PciExpress { version, port_type } => alloc::format!(
                "version {version}, {}",
                pci::pcie_port_type_name(port_type)
            ),
            CapDetail::Other => String::new(),
        };
        let _ = writeln!(
            out,
            "    capability {:#04x} at {:#04x}: {name}{}{detail}",
            cap.id,
            cap.offset,
            if detail.is_empty() { "" } else { ": " }
        );
    }
}

fn on_off(enabled: bool) -> &'static str {
    if enabled {
        "enabled"
    } else {
        "disabled"
    }
}

pub(crate) use crate::fmt::human_size;

fn frame_of(info: &PciFunctionInfo) -> evidence::PciFunction {
    evidence::PciFunction {
        bus: info.bdf.bus,
        device: info.bdf.device,
        function: info.bdf.function,
        vendor_id: info.vendor_id,
        device_id: info.device_id,
        class_code: info.class_code,
        revision: info.revision,
        header_type: info.header_type,
        subsystem_vendor: info.subsystem_vendor,
        subsystem_id: info.subsystem_id,
        bars: pci::bars_of(&info.bars)
            .map(|bar| evidence::BarInfo {
                index: bar.index,
                memory: bar.is_memory(),
                is_64bit: bar.is_64bit(),
                prefetchable: bar.prefetchable,
                address: bar.address,
                size: bar.size,
            })
            .collect(),
        capabilities: info.capabilities.iter().map(|c| c.id).collect(),
    }
}

/// A BAR, and the part of it (offset, len) when not all of it.
type BarPart = (drivers::platform::Bdf, u8, Option<(u64, u64)>);

/// `<bdf> <bar> [offset len]` of `bar map` / `bar unmap`.
fn bar_args(args: &Args) -> Result<BarPart, CmdError> {
    let bdf = parse_bdf(args.get(0).unwrap_or(""))?;
    let bar = parse_number("bar", args.get(1).unwrap_or(""))?;
    if bar > 5 {
        return Err(CmdError::new(
            "no-such-bar",
            alloc::format!("bar must be 0..5, got {bar}"),
        ));
    }
    let part = match (args.get(2), args.get(3)) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(CmdError::new(
                "usage",
                "give both offset and len; usage: bar map <bdf> <bar> [offset len]",
            ))
        }
        (Some(offset), Some(len)) => {
            Some((parse_number("offset", offset)?, parse_number("len", len)?))
        }
    };
    Ok((bdf, bar as u8, part))
}

fn pci_error(err: pci::PciError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("{err}"))
}

fn bar_map(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (bdf, bar, part) = bar_args(args)?;
    let (mapping, info, range) =
        pci::map_bar_part(ctx.hw, bdf, bar, part, false).map_err(pci_error)?;
    ctx.devices
        .windows
        .mapped(range.start, range.end - range.start);
    let (offset, len) = (range.start - info.address, range.end - range.start);
    if part.is_some() {
        let _ = writeln!(
            ctx.out,
            "{bdf} BAR{bar} part: offset {offset:#x}, {} ({len:#x}) at phys {:#x}",
            human_size(len),
            range.start
        );
    }
    let _ = writeln!(
        ctx.out,
        "{bdf} BAR{bar}: phys {:#x}, size {} ({:#x}), {}{}, uncached\n  window {:#x}{}",
        info.address,
        human_size(info.size),
        info.size,
        if info.is_64bit() { "64-bit" } else { "32-bit" },
        if info.prefetchable {
            ", prefetchable"
        } else {
            ""
        },
        mapping.window,
        if mapping.newly_mapped {
            " (new mapping)"
        } else {
            " (already mapped: same window)"
        }
    );
    let _ = writeln!(
        ctx.out,
        "  memory decode on; try 'peek {:#x} 16'",
        mapping.window
    );
    ctx.out.frame(Body::BarMapping(evidence::BarMapping {
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
        bar,
        phys: info.address,
        size: info.size,
        window: mapping.window,
        prefetchable: info.prefetchable,
        is_64bit: info.is_64bit(),
        newly_mapped: mapping.newly_mapped,
        offset,
        len,
    }));
    Ok(())
}

fn bar_unmap(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (bdf, bar, part) = bar_args(args)?;
    let info = pci::select_bar(ctx.hw.config, bdf, bar).map_err(pci_error)?;
    let range = pci::bar_part(bdf, &info, part).map_err(pci_error)?;
    let what = match part {
        Some((offset, len)) => alloc::format!("bar map {bdf} {bar} {offset:#x} {len:#x}"),
        None => alloc::format!("bar map {bdf} {bar}"),
    };
    crate::cmd::mem_map::release_user_window(ctx, range.start, range.end - range.start, &what)
}
