//! The PS/2 keyboard, polled, as a second input beside COM1.
//!
//! Scancodes are decoded with `pc-keyboard`; keys become the bytes a terminal would send
//! (UTF-8 text, Ctrl-letters, ANSI cursor sequences) so the line editor needs no second
//! input path. Without an 8042 controller (status port reads 0xff) it stays off.

use heapless::Deque;
use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{DecodedKey, HandleControl, KeyCode, PS2Keyboard, ScancodeSet1};
use spin::Mutex;
use x86_64::instructions::port::Port;

const DATA_PORT: u16 = 0x60;
const STATUS_PORT: u16 = 0x64;
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
/// The byte waiting is from the auxiliary (mouse) port, not the keyboard.
const STATUS_AUX_DATA: u8 = 1 << 5;
/// An absent controller floats the bus: every bit reads 1.
const STATUS_ABSENT: u8 = 0xff;

struct Keyboard {
    present: bool,
    decoder: PS2Keyboard<Us104Key, ScancodeSet1>,
    pending: Deque<u8, 16>,
}

static KEYBOARD: Mutex<Keyboard> = Mutex::new(Keyboard {
    present: false,
    decoder: PS2Keyboard::new(
        ScancodeSet1::new(),
        Us104Key,
        HandleControl::MapLettersToUnicode,
    ),
    pending: Deque::new(),
});

fn status() -> u8 {
    let mut port: Port<u8> = Port::new(STATUS_PORT);
    // SAFETY: reading the 8042 status register has no side effects.
    unsafe { port.read() }
}

/// Enables polling if an 8042 controller answers.
pub fn init() -> bool {
    let present = status() != STATUS_ABSENT;
    KEYBOARD.lock().present = present;
    present
}

/// One byte of keyboard input, if a key produced any.
pub fn poll() -> Option<u8> {
    let mut kbd = KEYBOARD.lock();
    if !kbd.present {
        return None;
    }
    if let Some(byte) = kbd.pending.pop_front() {
        return Some(byte);
    }
    let state = status();
    if state & STATUS_OUTPUT_FULL == 0 || state == STATUS_ABSENT {
        return None;
    }
    let mut data: Port<u8> = Port::new(DATA_PORT);
    // SAFETY: the output buffer is full; reading port 0x60 takes that byte.
    let scancode = unsafe { data.read() };
    if state & STATUS_AUX_DATA != 0 {
        return None;
    }
    let event = kbd.decoder.add_byte(scancode).ok().flatten()?;
    let key = kbd.decoder.process_keyevent(event)?;
    let mut text = [0u8; 4];
    let bytes: &[u8] = match key {
        DecodedKey::Unicode(c) => c.encode_utf8(&mut text).as_bytes(),
        DecodedKey::RawKey(KeyCode::ArrowUp) => b"\x1b[A",
        DecodedKey::RawKey(KeyCode::ArrowDown) => b"\x1b[B",
        DecodedKey::RawKey(KeyCode::ArrowRight) => b"\x1b[C",
        DecodedKey::RawKey(KeyCode::ArrowLeft) => b"\x1b[D",
        DecodedKey::RawKey(KeyCode::Home) => b"\x1b[1~",
        DecodedKey::RawKey(KeyCode::End) => b"\x1b[4~",
        DecodedKey::RawKey(KeyCode::Delete) => b"\x1b[3~",
        DecodedKey::RawKey(_) => b"",
    };
    let (first, rest) = bytes.split_first()?;
    for &b in rest {
        let _ = kbd.pending.push_back(b);
    }
    Some(*first)
}
