//! The matrix report: `matrix.json` (schema `bringup.matrix/1`, docs/REPORT.md) with each
//! target's own proof report inside, and the terminal table (a row per target, a column per
//! command: passed, failed with its code, or not reached). Pure: built from results, never
//! from a session.

use serde::Serialize;

use super::fleet::VmRecord;
use super::plan::Cell;
use crate::report::{CommandReport, Report, StepVerdict};

/// Bumped when a field changes meaning or disappears.
pub const MATRIX_SCHEMA: &str = "bringup.matrix/1";

/// How one target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetOutcome {
    /// Every command passed (the target's report says `passed`).
    Passed,
    /// The proof ran and something in it failed.
    Failed,
    /// The proof could not run: QEMU did not start, the VM was not created, no connection.
    Error,
    /// Ctrl-C came before the target ran.
    Interrupted,
}

/// One row of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub id: String,
    /// What the target is (firmware, machine, gVNIC formats, or the GCE machine type).
    pub target: Cell,
    pub transport: String,
    pub outcome: TargetOutcome,
    /// The first failure, named: a monitor error code, `expect`, `timeout`, `no-prompt`,
    /// or a setup code such as `gce-quota`, `gce-permission`, `qemu-failed`.
    pub error_code: Option<String>,
    /// Why, in words.
    pub error: Option<String>,
    /// Wall-clock start and end, milliseconds since 1970 (targets overlap when jobs > 1).
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub duration_ms: u64,
    /// The target's own report, relative to the matrix directory (`ID/report.json`).
    pub report_file: Option<String>,
    /// GCE: the VM's name, and whether it was created and deleted.
    pub vm: Option<VmRecord>,
    /// The target's proof report (docs/REPORT.md), when the proof ran.
    pub report: Option<Report>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MatrixSummary {
    pub targets: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub interrupted: usize,
    pub elapsed_ms: u64,
}

/// `matrix.json`.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    pub schema: &'static str,
    pub tool_version: &'static str,
    pub script: String,
    /// The run's id; GCE VMs carry it as label `bringup-matrix`.
    pub run_id: String,
    pub started_unix: u64,
    /// Targets run at once.
    pub jobs: usize,
    /// Every target passed.
    pub passed: bool,
    pub summary: MatrixSummary,
    /// The command file's commands, in order: the table's columns.
    pub commands: Vec<String>,
    pub targets: Vec<TargetResult>,
}

impl MatrixReport {
    /// Totals and the verdict over `targets` (kept in plan order).
    pub fn new(
        script: &str,
        run_id: &str,
        started_unix: u64,
        jobs: usize,
        commands: Vec<String>,
        targets: Vec<TargetResult>,
        elapsed_ms: u64,
    ) -> MatrixReport {
        let count = |o: TargetOutcome| targets.iter().filter(|t| t.outcome == o).count();
        let summary = MatrixSummary {
            targets: targets.len(),
            passed: count(TargetOutcome::Passed),
            failed: count(TargetOutcome::Failed),
            errors: count(TargetOutcome::Error),
            interrupted: count(TargetOutcome::Interrupted),
            elapsed_ms,
        };
        MatrixReport {
            schema: MATRIX_SCHEMA,
            tool_version: env!("CARGO_PKG_VERSION"),
            script: script.into(),
            run_id: run_id.into(),
            started_unix,
            jobs,
            passed: !targets.is_empty() && summary.passed == targets.len(),
            summary,
            commands,
            targets,
        }
    }
}

/// One command's cell: `pass`, `FAIL code`, or `-` (not reached).
pub fn step_cell(c: &CommandReport) -> String {
    match c.verdict {
        StepVerdict::Pass => "pass".into(),
        StepVerdict::NotRun => "-".into(),
        StepVerdict::Fail => format!("FAIL {}", step_code(c)),
    }
}

/// The name of a failed command's failure.
pub fn step_code(c: &CommandReport) -> String {
    if let Some(code) = &c.error_code {
        // Named by the runner (a lost line that could not be resumed, ...).
        return code.clone();
    }
    match &c.outcome {
        Some(o) => match (&c.expect_fail, &o.code) {
            (Some(_), None) => "unexpected-ok".into(),
            (Some(want), Some(code)) if want != "*" && want != code => code.clone(),
            (None, Some(code)) => code.clone(),
            // The result was as expected, so an expectation failed.
            _ => "expect".into(),
        },
        None if c.reason.contains("timed out") => "timeout".into(),
        None if c.reason.contains("closed") => "connection-closed".into(),
        None => "no-result".into(),
    }
}

/// The named first failure of a finished proof.
pub fn report_code(r: &Report) -> Option<String> {
    if r.passed {
        return None;
    }
    // The device saw the driver do something wrong: the root cause of what followed.
    if crate::model_verdict::failure(r).is_some() {
        return Some(crate::model_verdict::MODEL_VIOLATION.into());
    }
    if let Some(c) = r.commands.iter().find(|c| c.verdict == StepVerdict::Fail) {
        return Some(step_code(c));
    }
    match &r.error {
        Some(e) if e.starts_with("no prompt") => Some("no-prompt".into()),
        Some(e) if e.starts_with("unaccounted-command") => Some("unaccounted-command".into()),
        Some(_) => Some("run-stopped".into()),
        None if r.summary.damaged_frames + r.summary.sequence_gaps + r.summary.foreign_frames
            > 0 =>
        {
            Some("frame-damage".into())
        }
        None => Some("failed".into()),
    }
}

/// The terminal table: a legend of the commands, then one row per target.
pub fn render_table(m: &MatrixReport) -> String {
    let mut header = vec![
        "TARGET".to_string(),
        "RESULT".to_string(),
        "TIME".to_string(),
    ];
    header.extend((1..=m.commands.len()).map(|i| i.to_string()));
    let mut rows = vec![header];
    for t in &m.targets {
        let result = match (t.outcome, &t.error_code) {
            (TargetOutcome::Passed, _) => "PASSED".to_string(),
            (TargetOutcome::Failed, _) => "FAILED".to_string(),
            (TargetOutcome::Error, Some(code)) => format!("ERROR {code}"),
            (TargetOutcome::Error, None) => "ERROR".to_string(),
            (TargetOutcome::Interrupted, _) => "INTERRUPTED".to_string(),
        };
        let mut row = vec![
            t.id.clone(),
            result,
            format!("{:.1}s", t.duration_ms as f64 / 1000.0),
        ];
        let steps = t
            .report
            .as_ref()
            .map(|r| r.commands.as_slice())
            .unwrap_or(&[]);
        for i in 0..m.commands.len() {
            row.push(steps.get(i).map_or_else(|| "-".to_string(), step_cell));
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, cmd) in m.commands.iter().enumerate() {
        out.push_str(&format!("{:>3}: {cmd}\n", i + 1));
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{}: {}/{} targets passed, {} failed, {} errors{} in {:.1}s\n",
        if m.passed { "PASSED" } else { "FAILED" },
        m.summary.passed,
        m.summary.targets,
        m.summary.failed,
        m.summary.errors,
        if m.summary.interrupted > 0 {
            format!(", {} interrupted", m.summary.interrupted)
        } else {
            String::new()
        },
        m.summary.elapsed_ms as f64 / 1000.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::plan::LocalAxes;
    use crate::report::OutcomeReport;

    fn cmd(verdict: StepVerdict, code: Option<&str>, expect_fail: Option<&str>) -> CommandReport {
        CommandReport {
            line_no: 1,
            line: "gvnic describe".into(),
            started_line: None,
            cmd: None,
            timeout_ms: 1000,
            expect_fail: expect_fail.map(String::from),
            verdict,
            reason: String::new(),
            outcome: Some(OutcomeReport {
                ok: code.is_none(),
                code: code.map(String::from),
                message: None,
                monitor_elapsed_us: 1,
            }),
            elapsed_ms: Some(1),
            frame_seqs: Vec::new(),
            text: String::new(),
            expectations: Vec::new(),
            resumed: None,
            error_code: None,
        }
    }

    #[test]
    fn failures_are_named_by_code_expectation_or_timeout() {
        let c = cmd(StepVerdict::Fail, Some("gvnic-no-gqi"), None);
        assert_eq!(step_cell(&c), "FAIL gvnic-no-gqi");
        assert_eq!(step_code(&cmd(StepVerdict::Fail, None, None)), "expect");
        assert_eq!(
            step_code(&cmd(StepVerdict::Fail, None, Some("x"))),
            "unexpected-ok"
        );
        assert_eq!(
            step_code(&cmd(StepVerdict::Fail, Some("y"), Some("x"))),
            "y"
        );
        let mut t = cmd(StepVerdict::Fail, None, None);
        t.outcome = None;
        t.reason = "timed out after 1s waiting for the result".into();
        assert_eq!(step_code(&t), "timeout");
        assert_eq!(step_cell(&cmd(StepVerdict::NotRun, None, None)), "-");
        assert_eq!(step_cell(&cmd(StepVerdict::Pass, None, None)), "pass");
    }

    #[test]
    fn table_has_a_row_per_target_and_a_column_per_command() {
        let cells = LocalAxes::default().cells().unwrap();
        let row = |id: &str, outcome, code: Option<&str>| TargetResult {
            id: id.into(),
            target: cells[0].clone(),
            transport: "qemu bios tcg".into(),
            outcome,
            error_code: code.map(String::from),
            error: None,
            started_unix_ms: 0,
            ended_unix_ms: 1500,
            duration_ms: 1500,
            report_file: None,
            vm: None,
            report: None,
        };
        let m = MatrixReport::new(
            "p.bringup",
            "m1",
            0,
            2,
            vec!["version".into(), "gvnic describe".into()],
            vec![
                row("a", TargetOutcome::Passed, None),
                row("b", TargetOutcome::Error, Some("gce-quota")),
            ],
            2000,
        );
        assert!(!m.passed);
        let table = render_table(&m);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "  1: version");
        assert!(lines[2].starts_with("TARGET  RESULT"), "{table}");
        assert!(lines[4].contains("ERROR gce-quota"), "{table}");
        assert!(lines[4].ends_with("-  -"), "{table}");
        assert!(
            lines[5].starts_with("FAILED: 1/2 targets passed"),
            "{table}"
        );
    }
}
