//! The byte stream noline's editor talks to.
//!
//! Input: COM1 (and the PS/2 keyboard) through the sanitizer. Output: to the console, with
//! the editor's terminal queries answered here and its absolute cursor moves rewritten as
//! relative ones, so neither a terminal nor a script ever has to answer anything.

use heapless::Deque;
use monitor::input::Sanitizer;

use crate::console::write_all;
use crate::{keyboard, serial};

/// Rows/columns the editor is told the terminal has. The editor itself breaks lines at
/// this width, so any real terminal at least this wide shows a consistent picture; a host
/// that is not a terminal never has to answer a query.
const TERMINAL_ROWS: usize = 999;
const TERMINAL_COLUMNS: usize = 80;
/// The byte stream noline talks to: sanitized input; output with the terminal queries
/// answered locally and absolute cursor moves rewritten as relative ones.
///
/// noline positions the cursor with absolute `ESC [ row ; col H` based on where the
/// terminal says the cursor is. We never ask the terminal (a host script would not
/// answer): we tell noline the prompt sits on row 1, keep its model of the cursor here,
/// and turn each absolute move into the equivalent relative move (or nothing, when the
/// cursor is already there, which is the common case of typing at the end of a line).
pub struct EditorIo {
    pub sanitizer: Sanitizer,
    /// Editor input waiting: synthetic replies first, then sanitized key bytes.
    queued: Deque<u8, 64>,
    /// The editor moved the cursor to the far corner: the next query asks for the size.
    probing_size: bool,
    /// Where noline believes the cursor is (1-based).
    row: usize,
    column: usize,
    escape: Escape,
    params: heapless::Vec<u8, 16>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Esc,
    Csi,
}

impl EditorIo {
    fn queue_reply(&mut self, row: usize, column: usize) {
        let mut reply: heapless::String<24> = heapless::String::new();
        let _ = core::fmt::write(&mut reply, format_args!("\x1b[{row};{column}R"));
        for b in reply.bytes() {
            let _ = self.queued.push_back(b);
        }
    }

    fn params(&self) -> (Option<usize>, Option<usize>) {
        let text = core::str::from_utf8(&self.params).unwrap_or("");
        let mut parts = text.split(';').map(|p| p.parse::<usize>().ok());
        (parts.next().flatten(), parts.next().flatten())
    }

    fn emit_move(&self, code: u8, count: usize) {
        if count == 0 {
            return;
        }
        let mut text: heapless::String<16> = heapless::String::new();
        let _ = core::fmt::write(&mut text, format_args!("\x1b[{count}{}", code as char));
        write_all(text.as_bytes());
    }

    fn csi_final(&mut self, final_byte: u8) {
        let (first, second) = self.params();
        match final_byte {
            b'H' => {
                let (row, column) = (first.unwrap_or(1), second.unwrap_or(1));
                if (row, column) == (999, 999) {
                    self.probing_size = true;
                    return;
                }
                if row > self.row {
                    self.emit_move(b'B', row - self.row);
                } else {
                    self.emit_move(b'A', self.row - row);
                }
                if column > self.column {
                    self.emit_move(b'C', column - self.column);
                } else {
                    self.emit_move(b'D', self.column - column);
                }
                self.row = row;
                self.column = column;
            }
            b'n' if first == Some(6) => {
                if core::mem::take(&mut self.probing_size) {
                    self.queue_reply(TERMINAL_ROWS, TERMINAL_COLUMNS);
                } else {
                    self.queue_reply(self.row, self.column);
                }
            }
            b'A' | b'B' | b'C' | b'D' => {
                let count = first.unwrap_or(1);
                match final_byte {
                    b'A' => self.row = self.row.saturating_sub(count).max(1),
                    b'B' => self.row += count,
                    b'C' => self.column += count,
                    _ => self.column = self.column.saturating_sub(count).max(1),
                }
                self.emit_move(final_byte, count);
            }
            b'J' => write_all(b"\x1b[J"),
            // Scrolling cannot happen with the row count we report; anything else noline
            // might add later is not for a serial console.
            _ => {}
        }
    }

    fn output_byte(&mut self, byte: u8) {
        match self.escape {
            Escape::None => match byte {
                0x1b => self.escape = Escape::Esc,
                b'\r' => {
                    self.column = 1;
                    write_all(b"\r");
                }
                b'\n' => {
                    self.row += 1;
                    write_all(b"\n");
                }
                _ => {
                    // UTF-8 continuation bytes do not move the cursor.
                    if byte >= 0x20 && (byte & 0xc0) != 0x80 && byte != 0x7f {
                        self.column += 1;
                    }
                    write_all(&[byte]);
                }
            },
            Escape::Esc => {
                // ESC 7 / ESC 8 save and restore around the size probe: not needed.
                self.escape = if byte == b'[' {
                    self.params.clear();
                    Escape::Csi
                } else {
                    Escape::None
                };
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                    self.csi_final(byte);
                } else if self.params.push(byte).is_err() {
                    self.escape = Escape::None;
                }
            }
        }
    }
}

impl embedded_io::ErrorType for EditorIo {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for EditorIo {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(byte) = self.queued.pop_front() {
                buf[0] = byte;
                return Ok(1);
            }
            let raw = serial::read_byte().or_else(keyboard::poll);
            match raw {
                Some(byte) => {
                    for b in self.sanitizer.feed(byte) {
                        let _ = self.queued.push_back(b);
                    }
                }
                None => {
                    crate::events::print_deferred();
                    core::hint::spin_loop()
                }
            }
        }
    }
}

impl embedded_io::Write for EditorIo {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // Plain text is passed on in one piece; escapes go byte by byte.
        if self.escape == Escape::None && !buf.contains(&0x1b) {
            for &byte in buf {
                match byte {
                    b'\r' => self.column = 1,
                    b'\n' => self.row += 1,
                    b if b >= 0x20 && (b & 0xc0) != 0x80 && b != 0x7f => self.column += 1,
                    _ => {}
                }
            }
            write_all(buf);
        } else {
            for &byte in buf {
                self.output_byte(byte);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl EditorIo {
    pub fn new() -> Self {
        EditorIo {
            sanitizer: Sanitizer::new(),
            queued: Deque::new(),
            probing_size: false,
            row: 1,
            column: 1,
            escape: Escape::None,
            params: heapless::Vec::new(),
        }
    }

    /// Each prompt starts a fresh picture: the prompt's row is row 1.
    pub fn new_prompt(&mut self) {
        self.row = 1;
        self.column = 1;
    }
}
