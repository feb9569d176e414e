//! `bringup run`: drives a [`Session`] through a [`Script`] and builds the [`Report`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

use crate::report::{
    BootReport, CommandReport, ExpectationReport, OutcomeReport, Report, StepVerdict, Summary,
    SCHEMA,
};
use crate::resume::{self, ResumeError};
use crate::script::{evaluate, Script, Step};
use crate::start_line::is_line_sent;
use crate::unaccounted::{unaccounted_starts, RunMark};
use crate::{Session, SessionError};
use evidence::Body;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Per command unless the script says otherwise.
    pub default_timeout: Duration,
    /// For the banner and first prompt (QEMU) or the first prompt (attached sessions).
    pub boot_timeout: Duration,
    /// Whether the session boots now (QEMU: wait for the banner) or is attached to a monitor
    /// that is already up (send Enter and wait for a prompt).
    pub fresh_boot: bool,
    /// Damaged frames, sequence gaps and foreign-boot frames fail the run.
    pub strict_frames: bool,
    pub script_name: String,
    pub transport: String,
}

/// What the runner tells whoever watches it: one phase before the first command (booting,
/// waiting for the prompt), then every command as it starts and ends. `bringup run` draws
/// one bar; `bringup matrix` one bar per target; tests and reports use [`NoProgress`].
pub trait Progress {
    /// Before the first command: `booting` or `waiting for the prompt`.
    fn phase(&mut self, what: &str);
    /// Command `index` (0-based, of `total`) was sent.
    fn command_started(&mut self, index: usize, total: usize, line: &str);
    /// The command ended with this verdict.
    fn command_done(&mut self, index: usize, verdict: StepVerdict);
}

/// Shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&mut self, _what: &str) {}
    fn command_started(&mut self, _index: usize, _total: usize, _line: &str) {}
    fn command_done(&mut self, _index: usize, _verdict: StepVerdict) {}
}

/// An indicatif bar: position = commands done, message = what runs now (with a prefix, so
/// several bars in one `MultiProgress` tell their targets apart).
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A bar for `steps` commands, already ticking; `ProgressBar::hidden()` is fine too.
    pub fn new(bar: ProgressBar, steps: usize) -> BarProgress {
        bar.set_length(steps as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {prefix}[{pos}/{len}] {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        BarProgress { bar }
    }

    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl Progress for BarProgress {
    fn phase(&mut self, what: &str) {
        self.bar.set_message(what.to_string());
    }
    fn command_started(&mut self, _index: usize, _total: usize, line: &str) {
        self.bar.set_message(line.to_string());
    }
    fn command_done(&mut self, _index: usize, _verdict: StepVerdict) {
        self.bar.inc(1);
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Runs every step; never panics on monitor misbehaviour, everything ends up in the report.
pub fn run_script(
    session: &mut Session,
    script: &Script,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Report {
    let started = Instant::now();
    let mut report = Report {
        schema: SCHEMA,
        tool_version: env!("CARGO_PKG_VERSION"),
        script: opts.script_name.clone(),
        transport: opts.transport.clone(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        passed: false,
        summary: Summary::default(),
        error: None,
        boot: None,
        boots: Vec::new(),
        commands: Vec::new(),
        frames: Vec::new(),
        sequence_gaps: Vec::new(),
        damaged_frames: Vec::new(),
        foreign_frames: Vec::new(),
        transcript: String::new(),
        gvnic_model: None,
    };
    let total = script.steps.len();
    let mark = RunMark::of(session.frames());
    let mut credited: Vec<(u64, u32)> = Vec::new();
    let boot = if opts.fresh_boot {
        progress.phase("booting");
        session.wait_for_prompt(opts.boot_timeout).map(Some)
    } else {
        progress.phase("waiting for the prompt");
        session.sync_prompt(opts.boot_timeout)
    };
    let mut alive = match boot {
        Ok(info) => {
            report.boot = info.map(|i| BootReport::new(&i, opts.fresh_boot));
            true
        }
        Err(e) => {
            report.error = Some(format!("no prompt: {e:#}"));
            false
        }
    };
    for (index, step) in script.steps.iter().enumerate() {
        let timeout = step.timeout.unwrap_or(opts.default_timeout);
        if !alive {
            report.commands.push(not_run(step, timeout));
            continue;
        }
        progress.command_started(index, total, &step.command);
        let (entry, keep_going, ran) = run_step(session, step, timeout);
        credited.extend(ran);
        progress.command_done(index, entry.verdict);
        if !keep_going && report.error.is_none() {
            report.error = Some(format!(
                "stopped at line {}: {}",
                step.line_no, entry.reason
            ));
        }
        alive = keep_going;
        report.commands.push(entry);
    }
    let stray = unaccounted_starts(session.frames(), mark, &credited);
    if !stray.is_empty() && report.error.is_none() {
        report.error = Some(format!(
            "unaccounted-command: {} ran, but no line of the script sent it; the proof does not hold for a console others type into",
            stray.join(", ")
        ));
    }
    report.finish(
        session.frame_log(),
        session.transcript(),
        started.elapsed().as_millis() as u64,
        opts.strict_frames,
    );
    report
}

/// Runs one step: its report entry, whether the run can go on, and the (boot id, command
/// number) the monitor ran it as.
fn run_step(
    session: &mut Session,
    step: &Step,
    timeout: Duration,
) -> (CommandReport, bool, Option<(u64, u32)>) {
    let mut entry = not_run(step, timeout);
    let attempt = match session.command(&step.command, timeout) {
        // The line dropped (GCE): reconnect and finish from what the frames show.
        Err(e) if resume::line_lost(&e) && session.can_redial() => resume::resume(session, timeout)
            .map(|r| {
                entry.resumed = Some(r.by.label().to_string());
                r.outcome
            }),
        other => other,
    };
    let outcome = match attempt {
        Ok(o) => o,
        Err(e) => {
            entry.verdict = StepVerdict::Fail;
            entry.reason = format!("{e:#}");
            // The line was sent: if its start frame came, that command is this step's.
            let ran = sent_start(session, &step.command);
            if let Some(named) = e.downcast_ref::<ResumeError>() {
                entry.error_code = Some(named.code().to_string());
                return (entry, false, ran);
            }
            let timed_out = matches!(
                e.downcast_ref::<SessionError>(),
                Some(SessionError::Timeout { .. })
            );
            // A timed-out command may still be running: Ctrl-C, then back to a quiet prompt.
            let recovered = timed_out
                && session.interrupt().is_ok()
                && session.resync(Duration::from_secs(15)).is_ok();
            return (entry, recovered, ran);
        }
    };
    entry.started_line = Some(outcome.started_line.clone());
    entry.cmd = Some(outcome.cmd);
    entry.elapsed_ms = Some(outcome.elapsed.as_millis() as u64);
    entry.frame_seqs = outcome.frames.iter().map(|f| f.seq).collect();
    entry.text = outcome.text.clone();
    entry.outcome = Some(OutcomeReport {
        ok: outcome.is_ok(),
        code: outcome.error_code().map(str::to_string),
        message: outcome.error_message().map(str::to_string),
        monitor_elapsed_us: outcome.result.elapsed_us,
    });
    let result_ok = match (&step.expect_fail, outcome.error_code()) {
        (None, None) => Ok(()),
        (None, Some(code)) => Err(format!(
            "failed with {code}: {}",
            outcome.error_message().unwrap_or_default()
        )),
        (Some(want), None) => Err(format!("succeeded, but {want} was expected")),
        (Some(want), Some(code)) if want == "*" || want == code => Ok(()),
        (Some(want), Some(code)) => Err(format!("failed with {code}, but {want} was expected")),
    };
    entry.expectations = step
        .expectations
        .iter()
        .map(|e| ExpectationReport::new(e.line_no, &e.source, evaluate(e, &outcome)))
        .collect();
    let failed_exps: Vec<String> = entry
        .expectations
        .iter()
        .filter(|e| !e.passed)
        .map(|e| format!("line {}: {}", e.line_no, e.detail))
        .collect();
    match (result_ok, failed_exps.is_empty()) {
        (Ok(()), true) => entry.verdict = StepVerdict::Pass,
        (Ok(()), false) => {
            entry.verdict = StepVerdict::Fail;
            entry.reason = failed_exps.join("; ");
        }
        (Err(why), _) => {
            entry.verdict = StepVerdict::Fail;
            entry.reason = why;
        }
    }
    let ran = outcome.frames.first().map(|f| (f.boot_id, f.cmd));
    (entry, true, ran)
}

/// The (boot id, command number) of the start frame of `line` after it was last sent.
fn sent_start(session: &Session, line: &str) -> Option<(u64, u32)> {
    let flight = session.in_flight()?;
    session
        .frames()
        .get(flight.frames_before..)?
        .iter()
        .find(|f| matches!(&f.body, Body::CommandStart(s) if is_line_sent(&s.line, line)))
        .map(|f| (f.boot_id, f.cmd))
}

fn not_run(step: &Step, timeout: Duration) -> CommandReport {
    CommandReport {
        line_no: step.line_no,
        line: step.command.clone(),
        started_line: None,
        cmd: None,
        timeout_ms: timeout.as_millis() as u64,
        expect_fail: step.expect_fail.clone(),
        verdict: StepVerdict::NotRun,
        reason: String::new(),
        outcome: None,
        elapsed_ms: None,
        frame_seqs: Vec::new(),
        text: String::new(),
        expectations: Vec::new(),
        resumed: None,
        error_code: None,
    }
}
