//! `acpi` (the tables, and decoders of MADT, MCFG, FADT, HPET) and `memmap` (the
//! firmware's memory map and where the monitor put itself).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::acpi::{self, signature_text, space_name, AcpiError, TableInfo};
use drivers::platform::{Placement, RegionKind};
use evidence::{Body, MemmapEntry};

use crate::args::Args;
use crate::fmt::{approx_size, hexdump};
use crate::table::{CmdError, CommandSpec, Ctx};

/// Longest hexdump of an undecoded table (a large DSDT is ~8 KiB; 64 KiB is 5 s at 115200).
const DUMP_MAX_BYTES: usize = 64 << 10;
/// Memory map entries and MADT CPUs per frame (keeps frames well under 512 bytes).
const PER_FRAME: usize = 8;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "acpi",
        usage: "acpi [SIG]",
        summary: "list ACPI tables, or decode one (APIC, MCFG, FACP, HPET; others as hex)",
        details: "Without an argument lists every table the RSDT/XSDT names, plus the DSDT: signature, \
                  physical address, length, OEM id, revision, and whether its checksum is right (one \
                  acpi.table frame each). With a signature decodes it: APIC (MADT; alias MADT): local APIC \
                  ids and flags, IOAPICs, interrupt source overrides; MCFG: segments, ECAM bases, bus \
                  ranges; FACP (FADT; alias FADT): PM timer, reset register, RTC century index, SCI; HPET: \
                  base and number. Any other table is hexdumped (up to 64 KiB). The MADT, MCFG and FADT \
                  are parsed by the acpi crate.",
        examples: &["acpi", "acpi APIC", "acpi MCFG", "acpi FADT", "acpi DSDT"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: acpi_cmd,
    },
    CommandSpec {
        name: "memmap",
        usage: "memmap",
        summary: "the firmware's memory map and the monitor's own placement",
        details: "Prints the memory map the boot loader passed (start, end, size, type), the usable and \
                  reserved totals, and where the monitor put its image, boot stack, heap and DMA bounce \
                  pool. Emits memmap frames (a few entries each; every frame carries the totals and the \
                  placement).",
        examples: &["memmap"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: memmap,
    },
];

fn acpi_error(err: AcpiError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("{err}"))
}

/// `acpi madt` -> APIC, `fadt` -> FACP, else the 4 characters upper-cased.
fn signature_of(text: &str) -> Result<[u8; 4], CmdError> {
    let upper = text.to_ascii_uppercase();
    let canonical = match upper.as_str() {
        "MADT" => "APIC",
        "FADT" => "FACP",
        other => other,
    };
    let bytes = canonical.as_bytes();
    if bytes.len() != 4 || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!(
                "'{}' is not a table signature (4 characters, e.g. APIC, MCFG, FACP, HPET)",
                text.chars().take(16).collect::<String>()
            ),
        ));
    }
    Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn table_frame(t: &TableInfo) -> Body {
    Body::AcpiTable(evidence::AcpiTable {
        signature: signature_text(&t.signature),
        phys: t.phys,
        length: t.length,
        oem_id: signature_text(&t.oem_id).trim_end().into(),
        revision: t.revision,
        checksum_ok: t.checksum_ok,
    })
}

/// One line per table (pure).
pub fn table_line(t: &TableInfo) -> String {
    alloc::format!(
        "{} at {:#010x}, {:>6} bytes, rev {}, OEM {:<6}  checksum {}\n",
        signature_text(&t.signature),
        t.phys,
        t.length,
        t.revision,
        signature_text(&t.oem_id),
        if t.checksum_ok { "ok" } else { "BAD" }
    )
}

fn acpi_cmd(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let fw = ctx.hw.firmware;
    let Some(text) = args.get(0) else {
        let tables = acpi::tables(fw).map_err(acpi_error)?;
        for t in &tables {
            ctx.out.print(&table_line(t));
            ctx.out.frame(table_frame(t));
        }
        let _ = writeln!(ctx.out, "{} tables", tables.len());
        return Ok(());
    };
    match &signature_of(text)? {
        b"APIC" => show_madt(ctx),
        b"MCFG" => show_mcfg(ctx),
        b"FACP" => show_fadt(ctx),
        b"HPET" => show_hpet(ctx),
        other => {
            let (info, bytes) = acpi::table_bytes(fw, *other).map_err(acpi_error)?;
            ctx.out.print(&table_line(&info));
            ctx.out.print(&hexdump(
                info.phys,
                &bytes[..bytes.len().min(DUMP_MAX_BYTES)],
            ));
            ctx.out.frame(table_frame(&info));
            Ok(())
        }
    }
}

fn show_madt(ctx: &mut Ctx) -> Result<(), CmdError> {
    let m = acpi::madt(ctx.hw.firmware).map_err(acpi_error)?;
    let _ = writeln!(
        ctx.out,
        "MADT: local APIC at {:#x}, {} CPUs",
        m.local_apic_address,
        m.cpus.len()
    );
    for c in &m.cpus {
        let _ = writeln!(
            ctx.out,
            "  cpu uid {:<3} APIC id {:<4} {}{}",
            c.processor_uid,
            c.apic_id,
            if c.enabled { "enabled" } else { "disabled" },
            if c.online_capable {
                ", online-capable"
            } else {
                ""
            }
        );
    }
    for io in &m.ioapics {
        let _ = writeln!(
            ctx.out,
            "  IOAPIC id {} at {:#x}, GSI base {}",
            io.id, io.address, io.gsi_base
        );
    }
    for o in &m.overrides {
        let _ = writeln!(
            ctx.out,
            "  override bus {} IRQ {} -> GSI {}, flags {:#06x}",
            o.bus, o.irq, o.gsi, o.flags
        );
    }
    let cpus: Vec<evidence::MadtCpu> = m
        .cpus
        .iter()
        .map(|c| evidence::MadtCpu {
            processor_uid: c.processor_uid,
            apic_id: c.apic_id,
            enabled: c.enabled,
            online_capable: c.online_capable,
        })
        .collect();
    // The first frame carries the IOAPICs and overrides; CPUs go out PER_FRAME at a time.
    let mut first = true;
    for chunk in cpus
        .chunks(PER_FRAME)
        .chain(cpus.is_empty().then_some(&[][..]))
    {
        ctx.out.frame(Body::AcpiMadt(evidence::AcpiMadt {
            local_apic_address: m.local_apic_address,
            cpus: chunk.to_vec(),
            ioapics: if first {
                m.ioapics
                    .iter()
                    .map(|i| evidence::MadtIoApic {
                        id: i.id,
                        address: i.address,
                        gsi_base: i.gsi_base,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            overrides: if first {
                m.overrides
                    .iter()
                    .map(|o| evidence::MadtOverride {
                        bus: o.bus,
                        irq: o.irq,
                        gsi: o.gsi,
                        flags: o.flags,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }));
        first = false;
    }
    Ok(())
}

fn show_mcfg(ctx: &mut Ctx) -> Result<(), CmdError> {
    let segments = acpi::mcfg(ctx.hw.firmware).map_err(acpi_error)?;
    for s in &segments {
        let _ = writeln!(
            ctx.out,
            "MCFG: segment {} ECAM base {:#x}, buses {:02x}-{:02x}",
            s.segment, s.base, s.bus_start, s.bus_end
        );
    }
    ctx.out.frame(Body::AcpiMcfg(evidence::AcpiMcfg {
        segments: segments
            .iter()
            .map(|s| evidence::McfgSegment {
                segment: s.segment,
                base: s.base,
                bus_start: s.bus_start,
                bus_end: s.bus_end,
            })
            .collect(),
    }));
    Ok(())
}

fn show_fadt(ctx: &mut Ctx) -> Result<(), CmdError> {
    let f = acpi::fadt(ctx.hw.firmware).map_err(acpi_error)?;
    let _ = writeln!(
        ctx.out,
        "FADT: PM timer {} {:#x} ({}-bit)\n  reset register {} {:#x} value {:#04x} ({})\n  RTC century index {}\n  SCI interrupt {}",
        space_name(f.pm_timer.0),
        f.pm_timer.1,
        if f.pm_timer_32bit { 32 } else { 24 },
        space_name(f.reset_register.0),
        f.reset_register.1,
        f.reset_value,
        if f.reset_supported { "supported" } else { "not supported" },
        if f.century == 0 { String::from("none") } else { alloc::format!("{:#04x}", f.century) },
        f.sci_interrupt
    );
    ctx.out.frame(Body::AcpiFadt(evidence::AcpiFadt {
        pm_timer_space: f.pm_timer.0,
        pm_timer_address: f.pm_timer.1,
        pm_timer_32bit: f.pm_timer_32bit,
        reset_supported: f.reset_supported,
        reset_space: f.reset_register.0,
        reset_address: f.reset_register.1,
        reset_value: f.reset_value,
        century: f.century,
        sci_interrupt: f.sci_interrupt,
    }));
    Ok(())
}

fn show_hpet(ctx: &mut Ctx) -> Result<(), CmdError> {
    let h = acpi::hpet(ctx.hw.firmware).map_err(acpi_error)?;
    let _ = writeln!(
        ctx.out,
        "HPET {}: base {} {:#x}, event timer block id {:#010x}, minimum tick {}",
        h.number,
        space_name(h.base_space),
        h.base,
        h.block_id,
        h.min_tick
    );
    ctx.out.frame(Body::AcpiHpet(evidence::AcpiHpet {
        base: h.base,
        block_id: h.block_id,
        number: h.number,
        min_tick: h.min_tick,
    }));
    Ok(())
}

fn memmap(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    let map = ctx.hw.firmware.memory_map();
    let placement = ctx.hw.firmware.placement();
    let total = |kind: fn(&RegionKind) -> bool| {
        map.iter()
            .filter(|r| kind(&r.kind))
            .map(|r| r.len)
            .sum::<u64>()
    };
    let usable = total(|k| *k == RegionKind::Usable);
    let reserved = total(|k| *k != RegionKind::Usable);
    for r in map {
        let _ = writeln!(
            ctx.out,
            "{:#018x}-{:#018x} {:>9}  {}",
            r.start,
            (r.start + r.len).saturating_sub(1),
            approx_size(r.len),
            r.kind.name()
        );
    }
    let _ = writeln!(
        ctx.out,
        "usable {} ({} bytes), other {} ({} bytes)",
        approx_size(usable),
        usable,
        approx_size(reserved),
        reserved
    );
    ctx.out.print(&placement_text(&placement));
    let entries: Vec<MemmapEntry> = map
        .iter()
        .map(|r| MemmapEntry {
            start: r.start,
            len: r.len,
            kind: r.kind.name().into(),
        })
        .collect();
    let range = |r: &core::ops::Range<u64>| (r.start, r.end);
    for chunk in entries
        .chunks(PER_FRAME)
        .chain(entries.is_empty().then_some(&[][..]))
    {
        ctx.out.frame(Body::MemoryMap(evidence::MemoryMap {
            entries: chunk.to_vec(),
            usable_bytes: usable,
            reserved_bytes: reserved,
            image: range(&placement.image),
            stack: range(&placement.stack),
            heap: range(&placement.heap),
            dma: range(&placement.dma),
        }));
    }
    Ok(())
}

/// The monitor's own pieces (pure).
pub fn placement_text(p: &Placement) -> String {
    let mut out = String::from("monitor placement:\n");
    for (name, r) in [
        ("image", &p.image),
        ("stack", &p.stack),
        ("heap", &p.heap),
        ("dma pool", &p.dma),
    ] {
        let _ = writeln!(
            out,
            "  {name:<9} {:#010x}-{:#010x} {:>9}",
            r.start,
            r.end.saturating_sub(1),
            approx_size(r.end.saturating_sub(r.start))
        );
    }
    out
}
