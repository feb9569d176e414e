//! Human text and evidence frames on one byte stream.
//!
//! Frames always stand on a line of their own: if human text left the cursor mid-line, a
//! line break is written first, so a host can find every frame with a line scanner.

use core::fmt;

use evidence::{Body, Frame};

/// Where the monitor's output goes (serial, plus the VGA mirror when present).
pub trait Console {
    fn write_str(&mut self, text: &str);
}

/// Numbers frames within one boot; a gap in `seq` tells the host a frame was lost.
#[derive(Debug)]
pub struct FrameCounter {
    pub boot_id: u64,
    pub next_seq: u32,
}

pub struct Output<'a> {
    console: &'a mut dyn Console,
    counter: &'a mut FrameCounter,
    cmd: u32,
    at_line_start: bool,
}

impl<'a> Output<'a> {
    pub fn new(console: &'a mut dyn Console, counter: &'a mut FrameCounter, cmd: u32) -> Self {
        Output {
            console,
            counter,
            cmd,
            at_line_start: true,
        }
    }

    /// Human text; `\n` becomes `\r\n` for serial terminals.
    pub fn print(&mut self, text: &str) {
        let mut rest = text;
        while let Some(at) = rest.find('\n') {
            self.console.write_str(&rest[..at]);
            self.console.write_str("\r\n");
            rest = &rest[at + 1..];
            self.at_line_start = true;
        }
        if !rest.is_empty() {
            self.console.write_str(rest);
            self.at_line_start = false;
        }
    }

    /// Emits one evidence frame line.
    pub fn frame(&mut self, body: Body) {
        if !self.at_line_start {
            self.console.write_str("\r\n");
        }
        let frame = Frame {
            boot_id: self.counter.boot_id,
            seq: self.counter.next_seq,
            cmd: self.cmd,
            body,
        };
        self.counter.next_seq = self.counter.next_seq.wrapping_add(1);
        self.console.write_str(&evidence::encode_line(&frame));
        self.console.write_str("\r\n");
        self.at_line_start = true;
    }

    /// Ends any half-written line.
    pub fn finish_line(&mut self) {
        if !self.at_line_start {
            self.print("\n");
        }
    }
}

impl fmt::Write for Output<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.print(text);
        Ok(())
    }
}
