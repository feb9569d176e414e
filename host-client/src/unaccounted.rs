//! Commands that ran during a run although no line of the script sent them.
//!
//! A proof holds only for what ran as written: a half line a dead run left in the monitor's
//! editor, a stray line typed into the same console, or a sent line whose tail the gateway
//! dropped all show up as a `command.start` frame that no step of the script was credited
//! with. Frames from before the run (a replay of earlier runs) are told apart by boot id and
//! sequence number, never by text. This module knows frames, not sessions.

use evidence::{Body, Frame};

/// Where the frame log stood when the run began.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunMark {
    /// Frames in the log before the run sent anything.
    pub frames_before: usize,
    /// The last frame seen before that (boot id, seq): replayed frames at or before it are old.
    pub last: Option<(u64, u32)>,
}

impl RunMark {
    pub fn of(frames: &[Frame]) -> RunMark {
        RunMark {
            frames_before: frames.len(),
            last: frames.last().map(|f| (f.boot_id, f.seq)),
        }
    }
}

/// The start frames after `mark` whose (boot id, command number) is not in `credited`,
/// as `command N: LINE` descriptions.
pub fn unaccounted_starts(frames: &[Frame], mark: RunMark, credited: &[(u64, u32)]) -> Vec<String> {
    frames
        .iter()
        .skip(mark.frames_before)
        .filter(|f| {
            !mark
                .last
                .is_some_and(|(boot, seq)| f.boot_id == boot && f.seq <= seq)
        })
        .filter_map(|f| match &f.body {
            Body::CommandStart(s) if !credited.contains(&(f.boot_id, f.cmd)) => {
                Some(format!("command {} `{}`", f.cmd, s.line))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::CommandStart;

    fn start(boot_id: u64, seq: u32, cmd: u32, line: &str) -> Frame {
        Frame {
            boot_id,
            seq,
            cmd,
            body: Body::CommandStart(CommandStart { line: line.into() }),
        }
    }

    #[test]
    fn only_new_uncredited_starts_are_named() {
        let frames = [
            start(1, 4, 2, "version"),
            start(1, 2, 1, "reset"), // replayed, older than the mark
            start(1, 6, 3, "version"),
            start(1, 8, 4, "reset"),
        ];
        let mark = RunMark {
            frames_before: 1,
            last: Some((1, 4)),
        };
        assert_eq!(
            unaccounted_starts(&frames, mark, &[(1, 3)]),
            ["command 4 `reset`"]
        );
        assert!(unaccounted_starts(&frames, mark, &[(1, 3), (1, 4)]).is_empty());
    }
}
