//! Pure text helpers shared by the commands: hexdumps, register dumps, sizes.

use alloc::string::String;
use core::fmt::Write;

use drivers::platform::Width;

/// Classic 16-bytes-a-line hexdump with an ASCII column.
pub fn hexdump(base: u64, data: &[u8]) -> String {
    let mut out = String::new();
    for (row, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "{:016x}  ", base + row as u64 * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(byte) => {
                    let _ = write!(out, "{byte:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// Values of one width, 16 bytes' worth per line, each at full width
/// (`0000400000000008  00010400`).
pub fn register_dump(base: u64, width: Width, values: &[u64]) -> String {
    let per_line = (16 / width.bytes()) as usize;
    let mut out = String::new();
    for (row, chunk) in values.chunks(per_line).enumerate() {
        let _ = write!(out, "{:016x} ", base + (row * 16) as u64);
        for value in chunk {
            let _ = write!(out, " {value:0digits$x}", digits = width.hex_digits());
        }
        out.push('\n');
    }
    out
}

/// `0x0000_1234`-style fixed-width hex of a value at `width` (`0x00010400` for 4 bytes).
pub fn hex(value: u64, width: Width) -> String {
    alloc::format!("{value:#0digits$x}", digits = width.hex_digits() + 2)
}

/// 16 KiB, 256 MiB, 64 B: sizes are powers of two, so this is exact.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift && bytes & ((1 << shift) - 1) == 0 {
            return alloc::format!("{} {unit}", bytes >> shift);
        }
    }
    alloc::format!("{bytes} B")
}

/// Any size, rounded down to whole KiB/MiB/GiB where it is at least one of those.
pub fn approx_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift {
            return alloc::format!("{} {unit}", bytes >> shift);
        }
    }
    alloc::format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps() {
        assert_eq!(
            register_dump(0x1000, Width::W4, &[0x10400, 1, 2, 3, 4]),
            "0000000000001000  00010400 00000001 00000002 00000003\n\
             0000000000001010  00000004\n"
        );
        assert!(hexdump(0x10, b"AB").starts_with("0000000000000010  41 42 "));
        assert_eq!(hex(0x10400, Width::W4), "0x00010400");
        assert_eq!(hex(0xff, Width::W1), "0xff");
        assert_eq!(human_size(16384), "16 KiB");
        assert_eq!(approx_size(0x1f00_0000), "496 MiB");
    }
}
