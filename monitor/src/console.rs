//! The console: output to COM1 (plus the VGA mirror), lines from noline's editor.

use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};

use noline::builder::EditorBuilder;
use noline::error::NolineError;
use noline::history::SliceHistory;
use noline::line_buffer::UnboundedBuffer;
use noline::sync_editor::Editor;

use monitor::input::{check_line, Refusal};

use crate::editor_io::EditorIo;
use crate::{serial, vga};

/// The console every command prints to.
pub struct Screen;

/// The VGA mirror is for people: evidence frames (a line of their own, written in one
/// piece and followed by its line break) go to the serial line only.
static SKIP_VGA_LINE_END: AtomicBool = AtomicBool::new(false);

impl commands::Console for Screen {
    fn write_str(&mut self, text: &str) {
        serial::write(text.as_bytes());
        if text.starts_with(evidence::MARKER) {
            SKIP_VGA_LINE_END.store(true, Ordering::Relaxed);
        } else if !(SKIP_VGA_LINE_END.swap(false, Ordering::Relaxed) && text == "\r\n") {
            vga::write(text.as_bytes());
        }
    }
}

impl core::fmt::Write for Screen {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        write_all(text.as_bytes());
        Ok(())
    }
}

pub fn write_all(bytes: &[u8]) {
    serial::write(bytes);
    vga::write(bytes);
}

/// History kept for Up/Down.
const HISTORY_BYTES: usize = 4096;

/// What one call to [`LineReader::read_line`] produced.
pub enum Input {
    Line(String),
    /// The finished line breaks the length rule ([`monitor::input::check_line`]); it must
    /// be refused with an error result, never run (it may be truncated).
    Refused(String, Refusal),
    /// Ctrl-C or Ctrl-D on an empty line.
    Cancelled,
}

pub struct LineReader {
    io: EditorIo,
    editor: Editor<UnboundedBuffer, SliceHistory<'static>>,
}

impl LineReader {
    pub fn new() -> Self {
        let history: &'static mut [u8] = alloc::vec![0u8; HISTORY_BYTES].leak();
        let mut io = EditorIo::new();
        let editor = match EditorBuilder::new_unbounded()
            .with_slice_history(history)
            .build_sync(&mut io)
        {
            Ok(editor) => editor,
            // build_sync only constructs state; its I/O is infallible here.
            Err(_) => unreachable_editor(),
        };
        LineReader { io, editor }
    }

    /// Prints `prompt` and reads one edited line.
    pub fn read_line(&mut self, prompt: &str) -> Input {
        self.io.new_prompt();
        let result = self.editor.readline(prompt, &mut self.io);
        let dropped = self.io.sanitizer.take_dropped();
        match result {
            // Judged here, on the line as edited (backspace, history recall), not on the
            // bytes the sanitizer passed on the way.
            Ok(line) => match check_line(line, dropped) {
                Ok(()) => Input::Line(String::from(line)),
                Err(why) => Input::Refused(String::from(line), why),
            },
            Err(NolineError::Aborted) => {
                write_all(b"^C\r\n");
                Input::Cancelled
            }
            // The I/O cannot fail and the sanitizer never forwards unparsable input.
            Err(_) => Input::Cancelled,
        }
    }
}

fn unreachable_editor() -> ! {
    crate::halt_with("noline editor could not be built")
}
