//! `io in` / `io out`: x86 I/O ports at width 1, 2 or 4.

use alloc::string::String;

use drivers::platform::{PortIo, Width};

use super::{read_frame, write_frame, WriteRecord};
use crate::args::{check_aligned, check_fits, Args, WIDTH_FLAG};
use crate::fmt::hex;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

const WIDTHS: [Width; 3] = [Width::W1, Width::W2, Width::W4];
/// The I/O space is 64 KiB.
const PORT_LIMIT: u64 = 0x1_0000;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "io in",
        usage: "io in <port> [--width 1|2|4]",
        summary: "read an I/O port (default 1 byte)",
        details: "Reads --width bytes from port (0..0xffff, aligned to the width). A port nothing decodes \
                  reads all ones. Emits a reg.read frame (space io).",
        examples: &["io in 0x71", "io in 0x3fd", "io in 0xcfc --width 4"],
        min_args: 1,
        max_args: 1,
        flags: &[WIDTH_FLAG],
        run: io_in,
    },
    CommandSpec {
        name: "io out",
        usage: "io out <port> <value> [--width 1|2|4] [--no-readback]",
        summary: "write an I/O port, then read it back",
        details: "Writes value (--width bytes, default 1) to port, then reads the port back (ports are not \
                  memory: the readback is what the device answers, e.g. 0xff for the RTC index port). The \
                  old value is not read first: port reads often have side effects (a UART's data port). \
                  --no-readback skips the readback too, for ports whose read consumes data. Emits a \
                  reg.write frame (before is 0: not read).",
        examples: &["io out 0x70 0x00", "io out 0x80 0x55"],
        min_args: 2,
        max_args: 2,
        flags: &[
            WIDTH_FLAG,
            Flag { name: "--no-readback", takes_value: false, help: "do not read the port after writing" },
        ],
        run: io_out,
    },
];

fn parse_port(args: &Args, width: Width) -> Result<u16, CmdError> {
    let port = args.number(0, "port")?;
    if port.saturating_add(width.bytes()) > PORT_LIMIT {
        return Err(CmdError::new(
            "port-out-of-range",
            alloc::format!("port {port:#x} + {width} is past the I/O space (ports 0..0xffff)"),
        ));
    }
    check_aligned("unaligned-port", "port", port, width)?;
    Ok(port as u16)
}

fn port_in(ports: &dyn PortIo, port: u16, width: Width) -> u64 {
    match width {
        Width::W1 => ports.in8(port) as u64,
        Width::W2 => ports.in16(port) as u64,
        _ => ports.in32(port) as u64,
    }
}

fn io_in(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let width = args.width(&WIDTHS, Width::W1)?;
    let port = parse_port(args, width)?;
    let value = port_in(ctx.hw.ports, port, width);
    ctx.out.print(&alloc::format!(
        "port {port:#06x} ({width} bytes): {}\n",
        hex(value, width)
    ));
    ctx.out.frame(read_frame(
        "io",
        String::new(),
        port as u64,
        width,
        &[value],
    ));
    Ok(())
}

fn io_out(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let width = args.width(&WIDTHS, Width::W1)?;
    let port = parse_port(args, width)?;
    let value = args.number(1, "value")?;
    check_fits(value, width)?;
    let ports = ctx.hw.ports;
    match width {
        Width::W1 => ports.out8(port, value as u8),
        Width::W2 => ports.out16(port, value as u16),
        _ => ports.out32(port, value as u32),
    }
    let readback = (!args.flag("--no-readback")).then(|| port_in(ports, port, width));
    let record = WriteRecord {
        space: "io",
        target: String::new(),
        address: port as u64,
        width,
        before: 0,
        value,
        readback: readback.unwrap_or(0),
    };
    match readback {
        Some(readback) => ctx.out.print(&alloc::format!(
            "port {port:#06x} ({width} bytes): wrote {}, reads back {}\n",
            hex(value, width),
            hex(readback, width)
        )),
        None => ctx.out.print(&alloc::format!(
            "port {port:#06x} ({width} bytes): wrote {} (not read back)\n",
            hex(value, width)
        )),
    }
    ctx.out.frame(write_frame(&record));
    Ok(())
}
