//! The JSON proof report written by `bringup run` (schema: docs/REPORT.md).

use serde::Serialize;
use serde_json::Value;

use crate::frames::{DamagedFrame, ForeignFrame, FrameLog, SeqGap};
use crate::json::{body_json, boot_id_text, frame_json};
use crate::script::Verdict;
use crate::BootInfo;

/// Bumped when a field changes meaning or disappears (adding fields does not bump it).
pub const SCHEMA: &str = "bringup.report/1";

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub tool_version: &'static str,
    /// The command file's name as given on the command line.
    pub script: String,
    /// e.g. `qemu bios tcg`, `gce`, `tcp`.
    pub transport: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    pub passed: bool,
    pub summary: Summary,
    /// Set when the run could not start or was cut short (boot timeout, connection lost).
    pub error: Option<String>,
    pub boot: Option<BootReport>,
    /// Every boot id seen, in order.
    pub boots: Vec<String>,
    pub commands: Vec<CommandReport>,
    pub frames: Vec<Value>,
    pub sequence_gaps: Vec<SeqGap>,
    pub damaged_frames: Vec<DamagedFrame>,
    pub foreign_frames: Vec<ForeignFrame>,
    pub transcript: String,
    /// The gVNIC model's record summary and verdict (None without the model in process).
    pub gvnic_model: Option<crate::model_verdict::ModelReport>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub commands: usize,
    pub passed: usize,
    pub failed: usize,
    pub not_run: usize,
    pub expectations: usize,
    pub expectations_failed: usize,
    pub frames: usize,
    pub damaged_frames: usize,
    pub sequence_gaps: usize,
    pub foreign_frames: usize,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub boot_id: String,
    pub banner: Value,
    /// From QEMU start (or connect) to the banner frame; null when attached to a running monitor.
    pub banner_after_ms: Option<u64>,
    pub prompt_after_ms: Option<u64>,
}

impl BootReport {
    pub fn new(info: &BootInfo, timed: bool) -> BootReport {
        BootReport {
            boot_id: boot_id_text(info.boot_id),
            banner: body_json(&evidence::Body::Banner(info.banner.clone())),
            banner_after_ms: timed.then_some(info.banner_after.as_millis() as u64),
            prompt_after_ms: timed.then_some(info.prompt_after.as_millis() as u64),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepVerdict {
    Pass,
    Fail,
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandReport {
    /// 1-based line of the command in the script.
    pub line_no: usize,
    pub line: String,
    /// The line as the monitor's command.start frame echoed it.
    pub started_line: Option<String>,
    /// The monitor's command number.
    pub cmd: Option<u32>,
    pub timeout_ms: u64,
    pub expect_fail: Option<String>,
    pub verdict: StepVerdict,
    /// Why it failed (empty on pass).
    pub reason: String,
    pub outcome: Option<OutcomeReport>,
    /// Host time from sending the line to the next prompt.
    pub elapsed_ms: Option<u64>,
    /// Sequence numbers of this command's frames (details in the top-level `frames`).
    pub frame_seqs: Vec<u32>,
    /// Human text the command printed (frames removed).
    pub text: String,
    pub expectations: Vec<ExpectationReport>,
    /// The serial line dropped during this command and its outcome was then seen anyway:
    /// `replay` (its frames came in the gateway's replay or after the reconnect) or
    /// `re-sent` (the replay proved it never started). Null otherwise.
    pub resumed: Option<String>,
    /// A named host-side error that stopped the run here (`outcome-unknown`, `vm-rebooted`,
    /// `reconnect-failed`): the command's outcome was not seen. Null otherwise.
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeReport {
    pub ok: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    /// Time the monitor measured for the command.
    pub monitor_elapsed_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationReport {
    pub line_no: usize,
    pub source: String,
    pub passed: bool,
    pub detail: String,
}

impl ExpectationReport {
    pub fn new(line_no: usize, source: &str, v: Verdict) -> Self {
        ExpectationReport {
            line_no,
            source: source.into(),
            passed: v.passed,
            detail: v.detail,
        }
    }
}

impl Report {
    /// Fills the frame-level sections from the session's log and computes the summary and
    /// the overall verdict. `strict_frames`: damaged frames and gaps fail the run.
    pub fn finish(
        &mut self,
        log: &FrameLog,
        transcript: &str,
        elapsed_ms: u64,
        strict_frames: bool,
    ) {
        self.frames = log.frames().iter().map(frame_json).collect();
        self.sequence_gaps = log.gaps().to_vec();
        self.damaged_frames = log.damaged().to_vec();
        self.foreign_frames = log.foreign().to_vec();
        self.boots = log.boots().iter().map(|b| boot_id_text(*b)).collect();
        self.transcript = transcript.to_string();
        let count = |v: StepVerdict| self.commands.iter().filter(|c| c.verdict == v).count();
        let exps = self.commands.iter().flat_map(|c| &c.expectations);
        self.summary = Summary {
            commands: self.commands.len(),
            passed: count(StepVerdict::Pass),
            failed: count(StepVerdict::Fail),
            not_run: count(StepVerdict::NotRun),
            expectations: exps.clone().count(),
            expectations_failed: exps.filter(|e| !e.passed).count(),
            frames: self.frames.len(),
            damaged_frames: self.damaged_frames.len(),
            sequence_gaps: self.sequence_gaps.len(),
            foreign_frames: self.foreign_frames.len(),
            elapsed_ms,
        };
        let frames_clean = self.damaged_frames.is_empty()
            && self.sequence_gaps.is_empty()
            && self.foreign_frames.is_empty();
        self.passed = self.error.is_none()
            && !self.commands.is_empty()
            && self.summary.passed == self.commands.len()
            && (frames_clean || !strict_frames);
    }
}
