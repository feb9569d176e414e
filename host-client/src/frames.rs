//! Bookkeeping of evidence frames seen on a serial stream: decoded frames, damaged frame
//! lines, per-boot sequence tracking (gaps, repeats) and frames from an unexpected boot.
//!
//! Shared by live sessions and by `bringup decode` on captured logs.

use std::collections::HashMap;

use evidence::{decode_line, find_frame, Body, Frame};
use serde::Serialize;

/// A line that carried the frame marker but did not decode (bad CRC, base64, payload).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DamagedFrame {
    /// Byte offset of the line's start in the transcript (or the log).
    pub offset: usize,
    /// 1-based line number in the transcript (or the log).
    pub line_no: usize,
    /// Why it was rejected.
    pub error: String,
    /// The frame text from the marker on (at most 600 characters).
    pub text: String,
    /// The boot that was current when the line was seen, if any.
    #[serde(serialize_with = "crate::json::opt_boot_id")]
    pub boot_id: Option<u64>,
}

/// Consecutive frames of one boot whose sequence numbers do not follow each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeqGap {
    #[serde(serialize_with = "crate::json::boot_id")]
    pub boot_id: u64,
    /// The seq that should have come next.
    pub expected: u32,
    /// The seq that came instead (smaller than `expected` means a repeat or reordering).
    pub got: u32,
    /// How many frames are missing (0 for a repeat).
    pub missing: u32,
}

/// A frame whose boot id differs from the boot in progress and that is not a banner
/// (a banner starts a new boot, which is normal after a reset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignFrame {
    /// Index into [`FrameLog::frames`].
    pub index: usize,
    #[serde(serialize_with = "crate::json::boot_id")]
    pub boot_id: u64,
    #[serde(serialize_with = "crate::json::opt_boot_id")]
    pub expected_boot_id: Option<u64>,
    pub seq: u32,
}

/// Where a frame line sits in the transcript: `start..end` covers the line without its
/// terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// What one line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Text,
    /// Index into [`FrameLog::frames`].
    Frame(usize),
    /// Index into [`FrameLog::damaged`].
    Damaged(usize),
}

/// Every frame seen so far, with the problems found on the way.
#[derive(Debug, Default)]
pub struct FrameLog {
    frames: Vec<Frame>,
    spans: Vec<Span>,
    damaged: Vec<DamagedFrame>,
    gaps: Vec<SeqGap>,
    foreign: Vec<ForeignFrame>,
    /// Boot ids in the order they first appeared.
    boots: Vec<u64>,
    last_seq: HashMap<u64, u32>,
    current_boot: Option<u64>,
    lines: usize,
}

impl FrameLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies one complete line (terminator already removed) found at `span`.
    pub fn push_line(&mut self, line: &str, span: Span) -> LineKind {
        self.lines += 1;
        let Some(framed) = find_frame(line) else {
            return LineKind::Text;
        };
        match decode_line(framed) {
            Ok(frame) => LineKind::Frame(self.record(frame, span)),
            Err(err) => {
                self.damaged.push(DamagedFrame {
                    offset: span.start,
                    line_no: self.lines,
                    error: err.to_string(),
                    text: framed.chars().take(600).collect(),
                    boot_id: self.current_boot,
                });
                LineKind::Damaged(self.damaged.len() - 1)
            }
        }
    }

    fn record(&mut self, frame: Frame, span: Span) -> usize {
        let index = self.frames.len();
        let is_banner = matches!(frame.body, Body::Banner(_));
        if self.current_boot != Some(frame.boot_id) {
            if is_banner || self.current_boot.is_none() {
                self.current_boot = Some(frame.boot_id);
            } else {
                self.foreign.push(ForeignFrame {
                    index,
                    boot_id: frame.boot_id,
                    expected_boot_id: self.current_boot,
                    seq: frame.seq,
                });
            }
        }
        if !self.boots.contains(&frame.boot_id) {
            self.boots.push(frame.boot_id);
        }
        if let Some(&last) = self.last_seq.get(&frame.boot_id) {
            let expected = last.wrapping_add(1);
            if frame.seq != expected {
                self.gaps.push(SeqGap {
                    boot_id: frame.boot_id,
                    expected,
                    got: frame.seq,
                    missing: frame.seq.saturating_sub(expected),
                });
            }
        }
        self.last_seq.insert(frame.boot_id, frame.seq);
        self.frames.push(frame);
        self.spans.push(span);
        index
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }
    pub fn damaged(&self) -> &[DamagedFrame] {
        &self.damaged
    }
    pub fn gaps(&self) -> &[SeqGap] {
        &self.gaps
    }
    pub fn foreign(&self) -> &[ForeignFrame] {
        &self.foreign
    }
    /// Boot ids in order of first appearance.
    pub fn boots(&self) -> &[u64] {
        &self.boots
    }
    /// The boot whose frames are arriving now.
    pub fn current_boot(&self) -> Option<u64> {
        self.current_boot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::{encode_line, CommandStart};

    fn frame(boot_id: u64, seq: u32) -> Frame {
        Frame {
            boot_id,
            seq,
            cmd: 1,
            body: Body::CommandStart(CommandStart {
                line: "help".into(),
            }),
        }
    }

    fn push(log: &mut FrameLog, line: &str) -> LineKind {
        log.push_line(
            line,
            Span {
                start: 0,
                end: line.len(),
            },
        )
    }

    #[test]
    fn gap_and_repeat_are_recorded_not_fatal() {
        let mut log = FrameLog::new();
        for seq in [0, 1, 3, 3, 4] {
            push(&mut log, &encode_line(&frame(7, seq)));
        }
        assert_eq!(log.frames().len(), 5);
        assert_eq!(
            log.gaps(),
            &[
                SeqGap {
                    boot_id: 7,
                    expected: 2,
                    got: 3,
                    missing: 1
                },
                SeqGap {
                    boot_id: 7,
                    expected: 4,
                    got: 3,
                    missing: 0
                },
            ]
        );
    }

    #[test]
    fn damaged_line_is_rejected_and_reported() {
        let mut log = FrameLog::new();
        let good = encode_line(&frame(1, 0));
        // Flip one base64 character in the middle: CRC or base64 must catch it.
        let mut bytes = good.clone().into_bytes();
        let mid = evidence::MARKER.len() + 4;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bytes).unwrap();
        assert_eq!(push(&mut log, &bad), LineKind::Damaged(0));
        assert!(log.frames().is_empty());
        assert!(
            log.damaged()[0].error.contains("CRC") || log.damaged()[0].error.contains("base64")
        );
        assert_eq!(push(&mut log, "plain text"), LineKind::Text);
        assert_eq!(
            push(&mut log, &format!("bringup> {good}")),
            LineKind::Frame(0)
        );
    }

    #[test]
    fn frame_of_another_boot_without_banner_is_foreign() {
        let mut log = FrameLog::new();
        push(&mut log, &encode_line(&frame(1, 0)));
        push(&mut log, &encode_line(&frame(2, 5)));
        assert_eq!(log.foreign().len(), 1);
        assert_eq!(log.foreign()[0].boot_id, 2);
        assert_eq!(log.current_boot(), Some(1));
        assert_eq!(log.boots(), &[1, 2]);
    }
}
