//! Turns the raw byte stream from the monitor into a transcript (lossy UTF-8), complete
//! lines, and a [`FrameLog`]. Knows nothing about where the bytes come from.

use crate::frames::{FrameLog, LineKind, Span};

/// The prompt the monitor prints when it is ready for a line.
pub const PROMPT: &str = "bringup> ";

/// Everything received on one connection.
#[derive(Debug, Default)]
pub struct SerialLog {
    transcript: String,
    /// Trailing bytes of an incomplete UTF-8 sequence, kept for the next chunk.
    pending: Vec<u8>,
    /// Transcript offset where the current (unterminated) line starts.
    line_start: usize,
    frames: FrameLog,
}

impl SerialLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes; returns the kinds of the lines this chunk completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LineKind> {
        let before = self.transcript.len();
        self.pending.extend_from_slice(bytes);
        let mut rest: &[u8] = &std::mem::take(&mut self.pending);
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.transcript.push_str(text);
                    break;
                }
                Err(err) => {
                    let (good, after) = rest.split_at(err.valid_up_to());
                    // valid_up_to() bytes are valid UTF-8 by definition.
                    self.transcript
                        .push_str(std::str::from_utf8(good).unwrap_or_default());
                    match err.error_len() {
                        Some(len) => {
                            self.transcript.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[len..];
                        }
                        None => {
                            // An incomplete sequence at the end: wait for more bytes.
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        self.split_lines(before)
    }

    fn split_lines(&mut self, from: usize) -> Vec<LineKind> {
        let mut kinds = Vec::new();
        let mut search = from;
        while let Some(pos) = self.transcript[search..].find('\n') {
            let nl = search + pos;
            let mut end = nl;
            if self.transcript[self.line_start..end].ends_with('\r') {
                end -= 1;
            }
            let span = Span {
                start: self.line_start,
                end,
            };
            let line = &self.transcript[span.start..span.end];
            kinds.push(self.frames.push_line(line, span));
            self.line_start = nl + 1;
            search = nl + 1;
        }
        kinds
    }

    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    pub fn frames(&self) -> &FrameLog {
        &self.frames
    }

    /// Transcript offset of the first prompt at or after `from`, if one arrived.
    /// The line being received (after the last newline; empty right after one).
    pub fn current_line(&self) -> &str {
        &self.transcript[self.line_start..]
    }

    pub fn prompt_after(&self, from: usize) -> Option<usize> {
        let from = from.min(self.transcript.len());
        // `from` may sit inside a multi-byte char when computed from frame spans; they never
        // do (spans end at ASCII), but stay safe.
        let start = (from..=self.transcript.len())
            .find(|&i| self.transcript.is_char_boundary(i))
            .unwrap_or(self.transcript.len());
        self.transcript[start..].find(PROMPT).map(|p| start + p)
    }

    /// The last `max` bytes of the transcript (on a char boundary), for error messages.
    pub fn tail(&self, max: usize) -> &str {
        let mut start = self.transcript.len().saturating_sub(max);
        while !self.transcript.is_char_boundary(start) {
            start += 1;
        }
        &self.transcript[start..]
    }
}

/// Human text between two transcript offsets: frame lines dropped, VT100 escape sequences
/// removed, `\r\n` turned into `\n`.
pub fn human_text(slice: &str) -> String {
    let mut out = String::with_capacity(slice.len());
    for line in slice.split_inclusive('\n') {
        if evidence::find_frame(line).is_some() {
            continue;
        }
        out.push_str(&strip_escapes(line));
    }
    out.replace("\r\n", "\n")
}

/// Removes CSI (`ESC [ ... final`) and two-byte `ESC x` sequences.
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::{encode_line, Body, CommandStart, Frame};

    #[test]
    fn utf8_split_across_chunks_and_invalid_bytes() {
        let mut log = SerialLog::new();
        let snow = "é".as_bytes();
        log.push(&[b'a', snow[0]]);
        log.push(&[snow[1], 0xff, b'b']);
        assert_eq!(log.transcript(), "aé\u{fffd}b");
    }

    #[test]
    fn frames_split_across_chunks_are_decoded_once_complete() {
        let frame = Frame {
            boot_id: 9,
            seq: 0,
            cmd: 1,
            body: Body::CommandStart(CommandStart {
                line: "version".into(),
            }),
        };
        let text = format!("hello\r\n{}\r\nbringup> ", encode_line(&frame));
        let mut log = SerialLog::new();
        let (a, b) = text.as_bytes().split_at(20);
        log.push(a);
        assert!(log.frames().frames().is_empty());
        log.push(b);
        assert_eq!(log.frames().frames(), &[frame]);
        let span = log.frames().spans()[0];
        assert!(log.transcript()[span.start..span.end].starts_with("@@BU1 "));
        assert_eq!(log.prompt_after(span.end), Some(text.len() - PROMPT.len()));
    }

    #[test]
    fn human_text_drops_frames_and_escapes() {
        let text = "ok\r\n@@BU1 AAAA 00000000\r\n\x1b[1mbold\x1b[0m\r\n";
        assert_eq!(human_text(text), "ok\nbold\n");
    }
}
