//! Resuming a command file after the GCE serial line dropped mid-command ("serialport: VM
//! disconnected", a broken pipe; platform-notes §6). The session redials with replay lines
//! and reads, from the frames alone, where the command that was in flight stood:
//!
//! - its `command.start` (same boot, later seq, the line we sent) is in what we saw or in the
//!   replay: wait for its `command.result` (from the replay or live) and credit only that;
//! - the replay reaches back to the last frame we saw and nothing ran after it: the line
//!   never reached the monitor, so it is sent again (after Ctrl-U drops any half line);
//! - the replay shows another boot: `vm-rebooted`;
//! - anything else (the replay does not reach back, other commands ran): `outcome-unknown`.
//!
//! What belongs to this run is decided by boot id and sequence number, never by text: the
//! replay's bytes after the last frame we saw (the anchor) are new, the rest is old; without
//! an anchor (the line dropped before any frame was seen, e.g. the first command after
//! attaching without `--replay-lines`) nothing places the replay's frames before or after our
//! send, so a start frame of the same line there may be an earlier run's: `outcome-unknown`.
//!
//! An outcome is never inferred: no result frame seen, no outcome reported. This module knows
//! the frame stream and the session, not ssh or the gateway.

use std::time::{Duration, Instant};

use anyhow::Result;
use evidence::{Body, Frame};

use crate::outcome::CommandOutcome;
use crate::serial::SerialLog;
use crate::session::{Session, SessionError, CTRL_U};
use crate::start_line::is_line_sent;

/// Policy: lines of replay asked for on a reconnect. One command's output is a few hundred
/// lines at most (guess); the gateway keeps far more (platform-notes §6: 1 MB per port).
pub const RESUME_REPLAY_LINES: u32 = 1000;
/// Policy: how often one command may lose the line before the run stops.
pub const MAX_REDIALS: u32 = 3;
/// Policy: quiet time after the reconnect before deciding that nothing more is coming.
const QUIET: Duration = Duration::from_millis(500);

/// Why a command's outcome could not be recovered. `code()` is stable kebab-case.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("outcome-unknown: the serial line dropped while `{line}` was in flight and {why}; its outcome was not seen, so none is reported")]
    OutcomeUnknown { line: String, why: String },
    #[error("vm-rebooted: the serial line dropped while `{line}` was in flight and the VM rebooted meanwhile (boot {old:016x} -> {new:016x}); its outcome is unknown")]
    VmRebooted { line: String, old: u64, new: u64 },
    #[error("reconnect-failed: the serial line dropped while `{line}` was in flight and {target} could not be reached again: {error}")]
    RedialFailed {
        line: String,
        target: String,
        error: String,
    },
}

impl ResumeError {
    pub fn code(&self) -> &'static str {
        match self {
            ResumeError::OutcomeUnknown { .. } => "outcome-unknown",
            ResumeError::VmRebooted { .. } => "vm-rebooted",
            ResumeError::RedialFailed { .. } => "reconnect-failed",
        }
    }
}

/// How a command's outcome was recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumedBy {
    /// Its start (and result) frames were in the replay or arrived after the reconnect.
    Replay,
    /// It never started, and was sent again.
    Resent,
}

impl ResumedBy {
    pub fn label(self) -> &'static str {
        match self {
            ResumedBy::Replay => "replay",
            ResumedBy::Resent => "re-sent",
        }
    }
}

/// A command whose line dropped and whose outcome was then seen.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub outcome: CommandOutcome,
    pub by: ResumedBy,
    pub redials: u32,
}

/// Where the frames say the in-flight command stood (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Started,
    NeverStarted,
    Rebooted { old: u64, new: u64 },
    Unknown(String),
}

/// The last frame seen before the line dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub boot_id: u64,
    pub seq: u32,
}

/// Decides from frames only. `ours`: frames we saw after sending `line` (before the drop);
/// `anchor`: the last frame we saw at all; `replay`: frames decoded from the replay and
/// whatever arrived while settling.
pub fn standing(line: &str, ours: &[Frame], anchor: Option<Anchor>, replay: &[Frame]) -> Standing {
    let is_our_start =
        |f: &Frame| matches!(&f.body, Body::CommandStart(s) if is_line_sent(&s.line, line));
    let Some(anchor) = anchor else {
        // Nothing to place the replay's frames by: a start frame of this line there may be
        // an earlier run's (same text, older seq), so it is not credited.
        return Standing::Unknown(
            "no frame had been seen before it, so nothing tells this run's frames in the replay from an earlier run's"
                .into(),
        );
    };
    if let Some(last) = replay.last() {
        if last.boot_id != anchor.boot_id {
            return Standing::Rebooted {
                old: anchor.boot_id,
                new: last.boot_id,
            };
        }
    }
    if ours.iter().any(is_our_start) {
        return Standing::Started;
    }
    let after: Vec<&Frame> = replay
        .iter()
        .filter(|f| f.boot_id == anchor.boot_id && f.seq > anchor.seq)
        .collect();
    if after.iter().any(|f| is_our_start(f)) {
        return Standing::Started;
    }
    let reaches_back = replay
        .iter()
        .any(|f| f.boot_id == anchor.boot_id && f.seq == anchor.seq);
    match (reaches_back, after.is_empty()) {
        (true, true) => Standing::NeverStarted,
        (true, false) => Standing::Unknown(format!(
            "{} frame(s) of other commands came after the last one seen, but not its command.start",
            after.len()
        )),
        (false, _) => Standing::Unknown(format!(
            "the replay does not reach back to the last frame seen (seq {})",
            anchor.seq
        )),
    }
}

/// Where the new part of `replay` starts, by frames: after the last line holding the
/// anchor frame; else at the first frame line after the anchor (same boot, later seq, or
/// another boot); else nowhere (`replay.len()`: nothing in it is known to be new). Without
/// an anchor nothing is.
pub fn new_from(replay: &[u8], anchor: Option<Anchor>) -> usize {
    let Some(anchor) = anchor else {
        return replay.len();
    };
    let mut after_anchor = None;
    let mut first_later = None;
    let mut start = 0;
    while start < replay.len() {
        let end = replay[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(replay.len(), |p| start + p + 1);
        if let Some(f) = frame_of_line(&replay[start..end]) {
            if f.boot_id == anchor.boot_id && f.seq == anchor.seq {
                after_anchor = Some(end);
                first_later = None;
            } else if first_later.is_none() && (f.boot_id != anchor.boot_id || f.seq > anchor.seq) {
                first_later = Some(start);
            }
        }
        start = end;
    }
    after_anchor.or(first_later).unwrap_or(replay.len())
}

/// The frame on one line of raw console bytes, if it holds a whole, valid one.
fn frame_of_line(line: &[u8]) -> Option<Frame> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut log = crate::frames::FrameLog::new();
    log.push_line(
        text,
        crate::frames::Span {
            start: 0,
            end: text.len(),
        },
    );
    log.frames().first().cloned()
}

/// Whether `err` means the serial line itself dropped (not a timeout or a bad line).
pub fn line_lost(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<SessionError>(),
        Some(SessionError::Closed { .. })
    )
}

/// After [`Session::command`] failed with [`line_lost`]: redial, read where the in-flight
/// command stood, and finish it. `timeout`: the command's own, counted afresh after each
/// reconnect. Errors are a [`ResumeError`], or a [`SessionError`] (a timeout after a resumed
/// start, as for any command).
pub fn resume(session: &mut Session, timeout: Duration) -> Result<Resumed> {
    let Some(line) = session.in_flight().map(|f| f.line.clone()) else {
        anyhow::bail!("no command was in flight");
    };
    let mut redials = 0;
    loop {
        redials += 1;
        // A re-send starts a new flight: always the latest one.
        let Some(flight) = session.in_flight().cloned() else {
            anyhow::bail!("no command was in flight");
        };
        // The last frame before the line was sent: its start frame comes after this one
        // (a replay may repeat older frames, even an older run of the same line).
        let before_send = flight
            .frames_before
            .checked_sub(1)
            .and_then(|i| session.frames().get(i))
            .map(|f| (f.boot_id, f.seq));
        let anchor = session.frames().last().map(|f| Anchor {
            boot_id: f.boot_id,
            seq: f.seq,
        });
        let ours: Vec<Frame> =
            session.frames()[flight.frames_before.min(session.frames().len())..].to_vec();
        let replay =
            session
                .redial(RESUME_REPLAY_LINES)
                .map_err(|e| ResumeError::RedialFailed {
                    line: line.clone(),
                    target: session.redial_target(),
                    error: format!("{e:#}"),
                })?;
        let mut parsed = SerialLog::new();
        parsed.push(&replay);
        parsed.push(b"\n"); // completes a last frame line that ends without a newline
        let mut new = &replay[new_from(&replay, anchor)..];
        // The line being received when it dropped continues in the replay: join it there.
        let partial = session.current_line().as_bytes().to_vec();
        if !partial.is_empty() {
            match new.strip_prefix(partial.as_slice()) {
                Some(rest) if !new.is_empty() => new = rest,
                _ => session.push_received(b"\r\n"),
            }
        }
        session.push_received(new);
        let merged = session.frames().len();
        let quiet = session.drain_idle(QUIET, Instant::now() + timeout);
        // What the replay showed, then what arrived live until the line went quiet.
        let mut seen: Vec<Frame> = parsed.frames().frames().to_vec();
        seen.extend_from_slice(&session.frames()[merged..]);
        let standing = standing(&line, &ours, anchor, &seen);
        let t0 = Instant::now();
        let attempt = match (standing, quiet) {
            (Standing::Rebooted { old, new }, _) => {
                return Err(ResumeError::VmRebooted { line, old, new }.into())
            }
            (Standing::Unknown(why), _) => {
                return Err(ResumeError::OutcomeUnknown { line, why }.into())
            }
            // The line dropped again while we listened: redial once more (below).
            (_, Err(e)) => Err(e),
            (Standing::Started, Ok(())) => session
                .collect(&line, flight.frames_before, before_send, t0, t0 + timeout)
                .map(|o| (o, ResumedBy::Replay)),
            (Standing::NeverStarted, Ok(())) => session
                .send_raw(&[CTRL_U])
                .and_then(|_| session.command(&line, timeout))
                .map(|o| (o, ResumedBy::Resent)),
        };
        match attempt {
            Ok((outcome, by)) => {
                return Ok(Resumed {
                    outcome,
                    by,
                    redials,
                })
            }
            Err(e) if line_lost(&e) && redials < MAX_REDIALS => continue,
            Err(e) if line_lost(&e) => {
                return Err(ResumeError::OutcomeUnknown {
                    line,
                    why: format!("the line dropped {redials} times: {e:#}"),
                }
                .into())
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::{CommandResult, CommandStart, Outcome};

    fn start(boot_id: u64, seq: u32, cmd: u32, line: &str) -> Frame {
        Frame {
            boot_id,
            seq,
            cmd,
            body: Body::CommandStart(CommandStart { line: line.into() }),
        }
    }

    fn result(boot_id: u64, seq: u32, cmd: u32) -> Frame {
        Frame {
            boot_id,
            seq,
            cmd,
            body: Body::CommandResult(CommandResult {
                outcome: Outcome::Ok,
                elapsed_us: 5,
            }),
        }
    }

    const A: Anchor = Anchor {
        boot_id: 7,
        seq: 11,
    };

    #[test]
    fn a_start_in_the_replay_after_the_anchor_means_started() {
        let replay = [
            result(7, 11, 3),
            start(7, 12, 4, "version"),
            result(7, 13, 4),
        ];
        assert_eq!(
            standing("version", &[], Some(A), &replay),
            Standing::Started
        );
        // Even when the replay does not reach back to the anchor.
        assert_eq!(
            standing("version", &[], Some(A), &replay[1..]),
            Standing::Started
        );
    }

    #[test]
    fn a_start_seen_before_the_drop_means_started() {
        let ours = [start(7, 12, 4, "lspci")];
        let anchor = Anchor {
            boot_id: 7,
            seq: 12,
        };
        assert_eq!(
            standing("lspci", &ours, Some(anchor), &[]),
            Standing::Started
        );
    }

    #[test]
    fn the_anchor_and_nothing_after_it_means_never_started() {
        let replay = [start(7, 10, 3, "help"), result(7, 11, 3)];
        assert_eq!(
            standing("version", &[], Some(A), &replay),
            Standing::NeverStarted
        );
    }

    #[test]
    fn an_old_start_of_the_same_line_is_not_ours() {
        // `version` ran before (seq 10): that is not the in-flight one.
        let replay = [start(7, 10, 3, "version"), result(7, 11, 3)];
        assert_eq!(
            standing("version", &[], Some(A), &replay),
            Standing::NeverStarted
        );
    }

    #[test]
    fn a_short_replay_is_no_evidence_either_way() {
        // Only the prompt-side tail: neither the anchor nor a start.
        let replay = [result(7, 13, 4)];
        assert!(matches!(
            standing("version", &[], Some(A), &replay),
            Standing::Unknown(why) if why.contains("does not reach back")
        ));
        assert!(matches!(
            standing("version", &[], Some(A), &[]),
            Standing::Unknown(_)
        ));
    }

    #[test]
    fn other_commands_after_the_anchor_are_not_credited() {
        let replay = [result(7, 11, 3), start(7, 12, 4, "help"), result(7, 13, 4)];
        assert!(matches!(
            standing("version", &[], Some(A), &replay),
            Standing::Unknown(why) if why.contains("other commands")
        ));
    }

    #[test]
    fn another_boot_in_the_replay_is_a_reboot() {
        let replay = [result(7, 11, 3), start(9, 0, 0, "x"), result(9, 1, 0)];
        assert_eq!(
            standing("version", &[], Some(A), &replay),
            Standing::Rebooted { old: 7, new: 9 }
        );
    }

    #[test]
    fn without_an_anchor_a_start_of_the_same_line_is_not_credited() {
        assert!(matches!(
            standing("version", &[], None, &[]),
            Standing::Unknown(_)
        ));
        // An earlier run's `version` (or ours: nothing tells them apart).
        let replay = [start(7, 0, 1, "version"), result(7, 1, 1)];
        assert!(matches!(
            standing("version", &[], None, &replay),
            Standing::Unknown(why) if why.contains("earlier run")
        ));
    }

    fn line(f: &Frame) -> Vec<u8> {
        format!("{}\r\n", evidence::encode_line(f)).into_bytes()
    }

    #[test]
    fn what_is_new_in_a_replay_is_decided_by_seq_not_text() {
        // Our transcript ended with the prompt after command 3; the replay repeats an older
        // run of the same `version` (seq 10), the anchor (seq 11), then command 4's frames.
        let mut replay = b"bringup> ".to_vec();
        replay.extend(line(&start(7, 10, 3, "version")));
        replay.extend(line(&result(7, 11, 3)));
        let after_anchor = replay.len();
        replay.extend(b"bringup> version\r\n");
        replay.extend(line(&start(7, 12, 4, "version")));
        replay.extend(line(&result(7, 13, 4)));
        replay.extend(b"bringup> ");
        assert_eq!(new_from(&replay, Some(A)), after_anchor);
        // A replay that does not reach back: new from the first later frame.
        let short = &replay[after_anchor..];
        let first = b"bringup> version\r\n".len();
        assert_eq!(new_from(short, Some(A)), first);
        // Nothing after the anchor is known: nothing is new.
        let old = &replay[..after_anchor];
        assert_eq!(
            new_from(
                old,
                Some(Anchor {
                    boot_id: 7,
                    seq: 40
                })
            ),
            old.len()
        );
        // No anchor: nothing in it can be placed.
        assert_eq!(new_from(&replay, None), replay.len());
    }
}
