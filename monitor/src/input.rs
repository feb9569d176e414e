//! Input sanitizing: the only bytes the line editor ever sees.
//!
//! The serial line carries whatever a host, a terminal or line noise sends. The editor
//! (noline) trusts its input: a cursor-position report without arguments (`ESC [ R`) makes
//! it panic. So everything passes through this filter first, which forwards only
//! - complete, valid UTF-8 printable characters,
//! - the control keys the editor binds (Ctrl-A..Ctrl-Z, backspace, tab, Enter),
//! - the cursor keys and Home/End/Delete, re-encoded in one canonical form,
//!
//! and drops everything else. CR LF counts as one Enter. A line longer than
//! [`LINE_LIMIT`] bytes stops growing; the overflow is remembered so the REPL can refuse
//! the line with an error instead of running a truncated command.

use heapless::Vec;

/// Longest line the editor accepts; longer input is refused when Enter arrives.
pub const LINE_LIMIT: usize = 4096;

const ESC: u8 = 0x1b;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
const DEL: u8 = 0x7f;
/// Parameter bytes allowed in a CSI sequence before it is dropped as noise.
const CSI_PARAMS_MAX: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// After ESC.
    Escape,
    /// After ESC [ (or ESC O), collecting parameter bytes.
    Csi,
    /// Inside a multi-byte UTF-8 character.
    Utf8 {
        needed: u8,
    },
}

pub struct Sanitizer {
    state: State,
    params: Vec<u8, CSI_PARAMS_MAX>,
    utf8: Vec<u8, 4>,
    last_was_cr: bool,
    line_bytes: usize,
    overflowed: bool,
}

/// Up to 5 bytes of editor input produced by one input byte.
pub type Forward = Vec<u8, 8>;

impl Sanitizer {
    pub const fn new() -> Self {
        Sanitizer {
            state: State::Normal,
            params: Vec::new(),
            utf8: Vec::new(),
            last_was_cr: false,
            line_bytes: 0,
            overflowed: false,
        }
    }

    /// True if the line just finished was longer than [`LINE_LIMIT`]; resets the flag.
    pub fn take_overflow(&mut self) -> bool {
        core::mem::take(&mut self.overflowed)
    }

    /// Feeds one received byte; returns the bytes to hand the editor (often none).
    pub fn feed(&mut self, byte: u8) -> Forward {
        let mut out = Forward::new();
        let after_cr = core::mem::take(&mut self.last_was_cr);
        match self.state {
            State::Normal => self.normal(byte, after_cr, &mut out),
            State::Escape => match byte {
                b'[' | b'O' => {
                    self.params.clear();
                    self.state = State::Csi;
                }
                // Alt-<key> and other two-byte escapes have no binding: drop.
                _ => self.state = State::Normal,
            },
            State::Csi => self.csi(byte, &mut out),
            State::Utf8 { needed } => self.utf8_continue(byte, needed, &mut out),
        }
        out
    }

    fn normal(&mut self, byte: u8, after_cr: bool, out: &mut Forward) {
        match byte {
            ESC => self.state = State::Escape,
            CR | LF => {
                if byte == LF && after_cr {
                    return;
                }
                self.last_was_cr = byte == CR;
                self.line_bytes = 0;
                let _ = out.push(CR);
            }
            // Ctrl-A .. Ctrl-Z minus CR/LF (handled above), plus DEL: editor bindings.
            0x01..=0x1a | DEL => {
                if byte == 0x03 || byte == 0x15 {
                    // Ctrl-C and Ctrl-U drop the line being typed.
                    self.line_bytes = 0;
                }
                let _ = out.push(byte);
            }
            0x20..=0x7e => self.printable(&[byte], out),
            0xc2..=0xdf => self.utf8_start(byte, 1),
            0xe0..=0xef => self.utf8_start(byte, 2),
            0xf0..=0xf4 => self.utf8_start(byte, 3),
            // NUL, FS..US, stray continuation bytes, bytes that never start UTF-8.
            _ => {}
        }
    }

    fn utf8_start(&mut self, byte: u8, needed: u8) {
        self.utf8.clear();
        let _ = self.utf8.push(byte);
        self.state = State::Utf8 { needed };
    }

    fn utf8_continue(&mut self, byte: u8, needed: u8, out: &mut Forward) {
        if byte & 0xc0 != 0x80 {
            // Truncated character: drop it, and treat this byte afresh.
            self.state = State::Normal;
            self.normal(byte, false, out);
            return;
        }
        let _ = self.utf8.push(byte);
        if needed > 1 {
            self.state = State::Utf8 { needed: needed - 1 };
            return;
        }
        self.state = State::Normal;
        let bytes = self.utf8.clone();
        // Overlong forms and surrogates pass the lead-byte ranges: let core decide.
        match core::str::from_utf8(&bytes) {
            Ok(text) if !text.chars().any(char::is_control) => self.printable(&bytes, out),
            _ => {}
        }
    }

    fn printable(&mut self, bytes: &[u8], out: &mut Forward) {
        if self.line_bytes + bytes.len() > LINE_LIMIT {
            self.overflowed = true;
            return;
        }
        self.line_bytes += bytes.len();
        let _ = out.extend_from_slice(bytes);
    }

    fn csi(&mut self, byte: u8, out: &mut Forward) {
        match byte {
            b'0'..=b'9' | b';' => {
                if self.params.push(byte).is_err() {
                    // Absurdly long parameters: noise.
                    self.state = State::Normal;
                }
            }
            0x40..=0x7e => {
                self.state = State::Normal;
                let canonical: &[u8] = match (self.params.as_slice(), byte) {
                    (b"" | b"1", b'A') => b"\x1b[A",
                    (b"" | b"1", b'B') => b"\x1b[B",
                    (b"" | b"1", b'C') => b"\x1b[C",
                    (b"" | b"1", b'D') => b"\x1b[D",
                    (b"", b'H') | (b"1" | b"7", b'~') => b"\x1b[1~",
                    (b"", b'F') | (b"4" | b"8", b'~') => b"\x1b[4~",
                    (b"3", b'~') => b"\x1b[3~",
                    _ => b"",
                };
                let _ = out.extend_from_slice(canonical);
            }
            // Intermediate or private bytes (e.g. `ESC [ ?`): not a key we know.
            _ => self.state = State::Normal,
        }
    }
}
