//! `pci read` / `pci write`: config space at any width (setpci-like), through the same
//! `ConfigSpace` the drivers use (ECAM when ACPI has an MCFG, else ports 0xCF8/0xCFC).

use drivers::platform::{Bdf, ConfigSpace, Width};

use super::{read_frame, write_frame, write_text, WriteRecord};
use crate::args::{check_aligned, check_fits, Args, WIDTH_FLAG};
use crate::fmt::hex;
use crate::table::{CmdError, CommandSpec, Ctx};

const WIDTHS: [Width; 3] = [Width::W1, Width::W2, Width::W4];
/// Legacy configuration mechanism #1 reaches 256 bytes per function.
const LEGACY_CONFIG_BYTES: u64 = 256;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "pci read",
        usage: "pci read <bdf> <offset> [--width 1|2|4]",
        summary: "read a config-space register (default 4 bytes)",
        details: "Reads --width bytes at offset of bdf's configuration space, through the access the drivers \
                  use. Offsets past 0xff need ECAM (an MCFG table: q35/OVMF); with the legacy ports they are \
                  an 'offset-out-of-range' error. A missing function reads all ones, as on the bus. Emits a \
                  reg.read frame (space pci).",
        examples: &["pci read 00:04.0 0", "pci read 00:04.0 0x04 --width 2", "pci read 00:00.0 0x100"],
        min_args: 2,
        max_args: 2,
        flags: &[WIDTH_FLAG],
        run: pci_read,
    },
    CommandSpec {
        name: "pci write",
        usage: "pci write <bdf> <offset> <value> [--width 1|2|4]",
        summary: "write a config-space register, then read it back",
        details: "Reads the old value, writes value (--width bytes, default 4) at offset of bdf's \
                  configuration space, and reads it back. A narrow write uses the byte lanes, never a \
                  read-modify-write of the dword (some neighbours are write-1-to-clear). Refused for a \
                  function that does not exist. Emits a reg.write frame.",
        examples: &["pci write 00:04.0 0x04 0x0107 --width 2", "pci write 00:04.0 0x3c 0x0b --width 1"],
        min_args: 3,
        max_args: 3,
        flags: &[WIDTH_FLAG],
        run: pci_write,
    },
];

/// A checked config access: the function, the offset, the width.
struct ConfigAt {
    bdf: Bdf,
    offset: u16,
    width: Width,
}

fn parse_at(config: &dyn ConfigSpace, args: &Args) -> Result<ConfigAt, CmdError> {
    let bdf = args.bdf(0)?;
    let offset = args.number(1, "offset")?;
    let width = args.width(&WIDTHS, Width::W4)?;
    let size = config.size() as u64;
    if offset.saturating_add(width.bytes()) > size {
        let why = if size <= LEGACY_CONFIG_BYTES {
            "; offsets past 0xff need ECAM (no ACPI MCFG table: config access is the legacy ports)"
        } else {
            ""
        };
        return Err(CmdError::new(
            "offset-out-of-range",
            alloc::format!(
                "offset {offset:#x} + {width} is past the {size:#x}-byte config space{why}"
            ),
        ));
    }
    check_aligned("unaligned-offset", "offset", offset, width)?;
    Ok(ConfigAt {
        bdf,
        offset: offset as u16,
        width,
    })
}

fn read(config: &dyn ConfigSpace, at: &ConfigAt) -> u64 {
    match at.width {
        Width::W1 => config.read8(at.bdf, at.offset) as u64,
        Width::W2 => config.read16(at.bdf, at.offset) as u64,
        _ => config.read32(at.bdf, at.offset) as u64,
    }
}

fn write(config: &dyn ConfigSpace, at: &ConfigAt, value: u64) {
    match at.width {
        Width::W1 => config.write8(at.bdf, at.offset, value as u8),
        Width::W2 => config.write16(at.bdf, at.offset, value as u16),
        _ => config.write32(at.bdf, at.offset, value as u32),
    }
}

fn pci_read(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let at = parse_at(ctx.hw.config, args)?;
    let value = read(ctx.hw.config, &at);
    ctx.out.print(&alloc::format!(
        "{} config {:#05x} ({} bytes): {}\n",
        at.bdf,
        at.offset,
        at.width,
        hex(value, at.width)
    ));
    ctx.out.frame(read_frame(
        "pci",
        alloc::format!("{}", at.bdf),
        at.offset as u64,
        at.width,
        &[value],
    ));
    Ok(())
}

fn pci_write(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let at = parse_at(ctx.hw.config, args)?;
    let value = args.number(2, "value")?;
    check_fits(value, at.width)?;
    if ctx.hw.config.read16(at.bdf, drivers::pci::regs::VENDOR_ID) == drivers::pci::regs::NO_VENDOR
    {
        return Err(CmdError::new(
            "no-such-function",
            alloc::format!("no PCI function at {}: nothing to write", at.bdf),
        ));
    }
    let before = read(ctx.hw.config, &at);
    write(ctx.hw.config, &at, value);
    let readback = read(ctx.hw.config, &at);
    let record = WriteRecord {
        space: "pci",
        target: alloc::format!("{}", at.bdf),
        address: at.offset as u64,
        width: at.width,
        before,
        value,
        readback,
    };
    ctx.out.print(&write_text(
        &alloc::format!("{} config {:#05x} ({} bytes)", at.bdf, at.offset, at.width),
        &record,
    ));
    ctx.out.frame(write_frame(&record));
    Ok(())
}
