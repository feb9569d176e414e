//! `bringup run`: one command file on one target, a JSON report.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::ProgressBar;

use crate::cli::RunCmd;
use crate::cmd;
use host_client::model_verdict;
use host_client::report::{Report, StepVerdict};
use host_client::runner::{run_script, BarProgress, RunOptions};
use host_client::script::{parse_script, Script};
use host_client::target::{self, TargetSpec};

pub fn exec(r: RunCmd) -> Result<ExitCode> {
    let (script, script_name) = load_script(&r.script)?;
    let spec = spec(&r)?;
    let mut opened = target::open(&spec, r.tuning.pace)?;
    let opts = RunOptions {
        default_timeout: r.tuning.timeout,
        boot_timeout: r.tuning.boot_timeout,
        fresh_boot: opened.fresh_boot,
        strict_frames: !r.tuning.tolerate_frame_damage,
        script_name,
        transport: opened.label.clone(),
    };
    let show = !r.tuning.no_progress && std::io::stderr().is_terminal();
    let bar = if show {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let mut progress = BarProgress::new(bar, script.steps.len());
    let mut report = run_script(&mut opened.session, &script, &opts, &mut progress);
    drop(progress);
    let (model, state) = opened.session.close_keeping_model();
    if let Some(state) = &state {
        model_verdict::judge(&mut report, &state.record, script.allow_model_violations);
    }
    eprint!("{}", verdicts(&report));
    if let Err(e) = model {
        eprintln!("note: the gVNIC model ended with an error: {e:#}");
    }
    if let Some(path) = &r.report {
        write_report(&report, path)?;
    }
    if let Some(path) = &r.gvnic_record {
        let Some(state) = &state else {
            anyhow::bail!("--gvnic-record: this run had no gVNIC model");
        };
        let json = serde_json::to_string_pretty(&state.record)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reads and parses a command file; returns it with its file name (reports carry no paths).
pub fn load_script(path: &Path) -> Result<(Script, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the command file {}", path.display()))?;
    let script = parse_script(&text).with_context(|| format!("{}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((script, name))
}

/// The transport the options pick: --gce, --connect, else QEMU.
fn spec(r: &RunCmd) -> Result<TargetSpec> {
    Ok(if r.gce {
        TargetSpec::Gce(cmd::gce::target(&r.gce_opts)?)
    } else if let Some(text) = &r.connect {
        TargetSpec::Connect {
            transport: text.parse()?,
            label: text.split(':').next().unwrap_or("connect").to_string(),
        }
    } else {
        TargetSpec::Qemu(cmd::qemu::config(&r.qemu_opts))
    })
}

/// One line per command (and the first line of its reason), then the summary.
fn verdicts(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.commands {
        let mark = match c.verdict {
            StepVerdict::Pass => "PASS",
            StepVerdict::Fail => "FAIL",
            StepVerdict::NotRun => "SKIP",
        };
        let ms = c
            .elapsed_ms
            .map(|m| format!(" ({m} ms)"))
            .unwrap_or_default();
        out.push_str(&format!("{mark} line {}: {}{ms}\n", c.line_no, c.line));
        if !c.reason.is_empty() {
            out.push_str(&format!(
                "     {}\n",
                c.reason.lines().next().unwrap_or_default()
            ));
        }
    }
    if let Some(err) = &report.error {
        out.push_str(&format!("error: {err}\n"));
    }
    if let Some(m) = &report.gvnic_model {
        if m.verdict != "clean" {
            out.push_str(&format!("gVNIC model: {}: {}\n", m.verdict, m.words));
        }
    }
    let s = &report.summary;
    out.push_str(&format!(
        "{}: {}/{} commands, {}/{} expectations, {} frames, {} damaged, {} gaps\n",
        if report.passed { "PASSED" } else { "FAILED" },
        s.passed,
        s.commands,
        s.expectations - s.expectations_failed,
        s.expectations,
        s.frames,
        s.damaged_frames,
        s.sequence_gaps
    ));
    out
}

fn write_report(report: &Report, path: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if path == Path::new("-") {
        println!("{json}");
    } else {
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    Ok(())
}
