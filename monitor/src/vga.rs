//! A mirror of the console on the VGA text buffer, when one exists.
//!
//! GCE VMs have no display adapter and QEMU with `-vga none` has none either. Probing
//! 0xb8000 does not tell: QEMU backs the legacy window with RAM even without a VGA device.
//! So the mirror needs a PCI display controller of the VGA-compatible kind on bus 0 (where
//! QEMU puts it) and a text buffer that reads back. Under UEFI the adapter (if any) is in a
//! graphics mode where the text buffer is invisible, so the caller only asks after a BIOS
//! boot.

use drivers::platform::{Bdf, ConfigSpace};
use spin::Mutex;

const TEXT_BUFFER: usize = 0xb8000;
const COLUMNS: usize = 80;
const ROWS: usize = 25;
/// Light grey on black.
const ATTRIBUTE: u16 = 0x07 << 8;
const ESC: u8 = 0x1b;

struct Vga {
    present: bool,
    row: usize,
    column: usize,
    /// Inside an ANSI escape sequence, which the text buffer cannot show.
    in_escape: bool,
}

static VGA: Mutex<Vga> = Mutex::new(Vga {
    present: false,
    row: 0,
    column: 0,
    in_escape: false,
});

fn cell(row: usize, column: usize) -> *mut u16 {
    (TEXT_BUFFER as *mut u16).wrapping_add(row * COLUMNS + column)
}

/// PCI class code of a VGA-compatible display controller (class 03, subclass 00).
const CLASS_VGA: u16 = 0x0300;
const CLASS_OFFSET: u16 = 0x0a;
const VENDOR_NONE: u16 = 0xffff;

fn vga_on_bus0(config: &dyn ConfigSpace) -> bool {
    (0..32).any(|device| {
        let bdf = Bdf::new(0, device, 0);
        config.read16(bdf, 0) != VENDOR_NONE && config.read16(bdf, CLASS_OFFSET) == CLASS_VGA
    })
}

/// Turns the mirror on if a VGA adapter and its text buffer answer. Call once at boot
/// (BIOS boots only).
pub fn init(config: &dyn ConfigSpace) -> bool {
    if !vga_on_bus0(config) {
        return false;
    }
    let probe = cell(ROWS - 1, COLUMNS - 1);
    // SAFETY: 0xb8000 is identity mapped; on a PC it is either VGA memory or an unbacked
    // legacy hole, never RAM in use. The original cell value is restored.
    let present = unsafe {
        let saved = probe.read_volatile();
        probe.write_volatile(0x1e5a);
        let first = probe.read_volatile() == 0x1e5a;
        probe.write_volatile(0x2ba5);
        let second = probe.read_volatile() == 0x2ba5;
        probe.write_volatile(saved);
        first && second
    };
    if present {
        let mut vga = VGA.lock();
        vga.present = true;
        for row in 0..ROWS {
            clear_row(row);
        }
    }
    present
}

fn clear_row(row: usize) {
    for column in 0..COLUMNS {
        // SAFETY: row < ROWS, column < COLUMNS: inside the text buffer found by init.
        unsafe { cell(row, column).write_volatile(ATTRIBUTE | b' ' as u16) };
    }
}

fn scroll() {
    for row in 1..ROWS {
        for column in 0..COLUMNS {
            // SAFETY: both cells are inside the text buffer.
            unsafe {
                let value = cell(row, column).read_volatile();
                cell(row - 1, column).write_volatile(value);
            }
        }
    }
    clear_row(ROWS - 1);
}

pub fn write(bytes: &[u8]) {
    put(&mut VGA.lock(), bytes);
}

/// As `serial::try_write`: only if the interrupted code does not hold the screen.
pub fn try_write(bytes: &[u8]) {
    if let Some(mut vga) = VGA.try_lock() {
        put(&mut vga, bytes);
    }
}

fn put(vga: &mut Vga, bytes: &[u8]) {
    if !vga.present {
        return;
    }
    for &byte in bytes {
        if vga.in_escape {
            // CSI parameters continue until a final byte in 0x40..=0x7e.
            if (0x40..=0x7e).contains(&byte) && byte != b'[' {
                vga.in_escape = false;
            }
            continue;
        }
        match byte {
            ESC => vga.in_escape = true,
            b'\r' => vga.column = 0,
            b'\n' => vga.row += 1,
            0x08 => vga.column = vga.column.saturating_sub(1),
            0x20..=0x7e | 0x80..=0xff => {
                // Non-ASCII bytes show as a block: the text buffer speaks code page 437.
                let glyph = if byte < 0x80 { byte } else { 0xfe };
                if vga.column >= COLUMNS {
                    vga.column = 0;
                    vga.row += 1;
                }
                if vga.row >= ROWS {
                    scroll();
                    vga.row = ROWS - 1;
                }
                // SAFETY: row < ROWS and column < COLUMNS were just ensured.
                unsafe { cell(vga.row, vga.column).write_volatile(ATTRIBUTE | glyph as u16) };
                vga.column += 1;
            }
            _ => {}
        }
        if vga.row >= ROWS {
            scroll();
            vga.row = ROWS - 1;
        }
    }
}

/// Fault path: the lock may be held by the code that faulted.
pub fn unlock_after_fault() {
    if VGA.is_locked() {
        // SAFETY: single CPU, no interrupts: the holder was abandoned by the fault handler.
        unsafe { VGA.force_unlock() };
    }
}
