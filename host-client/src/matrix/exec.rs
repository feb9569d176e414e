//! Running a matrix plan: local targets on a pool of `--jobs` threads, each owning its own
//! QEMU, gVNIC model and session; GCE targets on up to `--max-vms` threads, each creating
//! its VM, running the proof over the VM's serial console and deleting the VM (through
//! [`Fleet`], which also cleans up on Ctrl-C). Each target writes its own report file and
//! draws its own progress bar, so output never mixes; the terminal gets one line per
//! finished target and, from the caller, the table.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::fleet::{Fleet, VmRecord};
use super::plan::{Cell, CellKind, GceCell, LocalTarget};
use super::report::{report_code, MatrixReport, TargetOutcome, TargetResult};
use crate::disk_view::DiskView;
use crate::gce::gcloud::{self, VmCreate, MATRIX_LABEL};
use crate::gce::{shell_line, GceTarget};
use crate::runner::{run_script, BarProgress, Progress, RunOptions};
use crate::script::Script;
use crate::target::{self, Opened, TargetSpec};
use crate::Pacing;

/// Policy: pause between attempts to reach a new VM's serial console (right after create
/// the gateway may not know the VM yet, or refuse a key that was just added).
pub const CONNECT_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Everything every target shares.
pub struct Settings {
    pub script: Script,
    /// The command file's name (no directories).
    pub script_name: String,
    pub default_timeout: Duration,
    pub boot_timeout: Duration,
    pub strict_frames: bool,
    pub pacing: Pacing,
    /// matrix.json and one `ID/report.json` per target go here.
    pub report_dir: PathBuf,
    /// Local targets run at once.
    pub jobs: usize,
    /// Local boot image (the default image when None).
    pub boot_image: Option<PathBuf>,
    pub run_id: String,
    /// Draw progress bars (a terminal); otherwise one line per finished target.
    pub progress: bool,
    pub gce: Option<GceSettings>,
}

/// GCE targets.
pub struct GceSettings {
    pub fleet: Arc<Fleet>,
    pub project: String,
    pub zone: String,
    /// The image the VMs boot.
    pub image: String,
    /// VMs at once.
    pub max_vms: usize,
    /// Serial-console settings shared by every VM (user, key, gateway...); the instance is
    /// replaced by each VM's name.
    pub console: GceTarget,
}

/// The bars: one per running target, above them the count of finished targets.
struct Display {
    multi: MultiProgress,
    overall: ProgressBar,
    show: bool,
}

impl Display {
    fn new(show: bool, targets: usize) -> Display {
        let multi = MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(targets as u64));
        if let Ok(style) = ProgressStyle::with_template("matrix [{pos}/{len} targets] {elapsed}") {
            overall.set_style(style);
        }
        if show {
            overall.enable_steady_tick(Duration::from_millis(500));
        }
        Display {
            multi,
            overall,
            show,
        }
    }

    /// A styled bar for one target, shown below the others while it runs.
    fn target_bar(&self, id: &str, steps: usize) -> BarProgress {
        let progress = BarProgress::new(ProgressBar::hidden(), steps);
        progress.bar().set_prefix(format!("{id} "));
        if self.show {
            progress.bar().set_draw_target(ProgressDrawTarget::stderr());
            self.multi.add(progress.bar().clone());
        }
        progress
    }

    /// A line above the bars (or on stderr when there are none).
    fn line(&self, text: &str) {
        if self.show {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn finished(&self, r: &TargetResult) {
        self.overall.inc(1);
        let mark = match r.outcome {
            TargetOutcome::Passed => "PASS",
            TargetOutcome::Failed => "FAIL",
            TargetOutcome::Error => "ERROR",
            TargetOutcome::Interrupted => "STOP",
        };
        let why = match (&r.error_code, &r.error) {
            (Some(code), Some(e)) => format!(": {code}: {}", e.lines().next().unwrap_or("")),
            (Some(code), None) => format!(": {code}"),
            _ => String::new(),
        };
        self.line(&format!(
            "{mark} {} ({:.1}s){why}",
            r.id,
            r.duration_ms as f64 / 1000.0
        ));
    }
}

/// Runs every cell and returns the matrix report (targets in plan order). Writes each
/// target's report file; the caller writes matrix.json.
pub fn run_matrix(cells: &[Cell], s: &Settings) -> MatrixReport {
    let started = Instant::now();
    let started_unix = unix_ms() / 1000;
    let display = Display::new(s.progress, cells.len());
    let has_gce = cells.iter().any(|c| matches!(c.kind, CellKind::Gce(_)));
    let workers = match (&s.gce, has_gce) {
        (Some(g), true) => g.max_vms,
        _ => s.jobs,
    }
    .clamp(1, cells.len().max(1));
    let queue: Mutex<VecDeque<(usize, &Cell)>> = Mutex::new(cells.iter().enumerate().collect());
    let results: Mutex<Vec<Option<TargetResult>>> = Mutex::new(vec![None; cells.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((index, cell)) = next else { break };
                let result = run_cell(cell, s, &display);
                display.finished(&result);
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
            });
        }
    });
    display.overall.finish_and_clear();
    let targets: Vec<TargetResult> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    MatrixReport::new(
        &s.script_name,
        &s.run_id,
        started_unix,
        workers,
        s.script.steps.iter().map(|st| st.command.clone()).collect(),
        targets,
        started.elapsed().as_millis() as u64,
    )
}

/// Writes `matrix.json` into the report directory and returns its path.
pub fn write_matrix_json(dir: &Path, m: &MatrixReport) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    let path = dir.join("matrix.json");
    std::fs::write(&path, serde_json::to_string_pretty(m)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Each GCE target's create, run (the ssh command) and delete, as shell lines.
pub fn gce_dry_run(cells: &[Cell], s: &Settings) -> Result<Vec<String>> {
    let gce = s
        .gce
        .as_ref()
        .context("a GCE dry run needs the GCE settings")?;
    let mut lines = Vec::new();
    for cell in cells {
        let CellKind::Gce(g) = &cell.kind else {
            continue;
        };
        lines.push(format!(
            "# {}: create, run {}, delete",
            cell.id, s.script_name
        ));
        lines.push(shell_line(&vm_create(g, gce, &s.run_id).commands()?[0]));
        lines.push(shell_line(&console(g, gce).ssh_argv()?));
        lines.push(shell_line(
            &gcloud::vm_delete(&gce.project, &gce.zone, &g.vm_name)?[0],
        ));
    }
    Ok(lines)
}

fn run_cell(cell: &Cell, s: &Settings, display: &Display) -> TargetResult {
    let mut progress = display.target_bar(&cell.id, s.script.steps.len());
    let clock = Clock::start();
    let result = match &cell.kind {
        CellKind::Local(t) => run_local(cell, t, s, &mut progress),
        CellKind::Gce(g) => match &s.gce {
            Some(gce) => run_gce(cell, g, gce, s, &mut progress),
            None => Ended::error("", "no-gce-settings", "GCE target without GCE settings"),
        },
    };
    display.multi.remove(progress.bar());
    clock.finish(cell, result)
}

/// What a target's run produced, before timing is added.
struct Ended {
    transport: String,
    outcome: TargetOutcome,
    error_code: Option<String>,
    error: Option<String>,
    report_file: Option<String>,
    vm: Option<VmRecord>,
    report: Option<crate::report::Report>,
}

impl Ended {
    fn error(transport: &str, code: &str, why: &str) -> Ended {
        Ended {
            transport: transport.into(),
            outcome: TargetOutcome::Error,
            error_code: Some(code.into()),
            error: Some(why.into()),
            report_file: None,
            vm: None,
            report: None,
        }
    }
}

struct Clock {
    unix_ms: u64,
    at: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            unix_ms: unix_ms(),
            at: Instant::now(),
        }
    }

    fn finish(self, cell: &Cell, e: Ended) -> TargetResult {
        let duration_ms = self.at.elapsed().as_millis() as u64;
        TargetResult {
            id: cell.id.clone(),
            target: cell.clone(),
            transport: e.transport,
            outcome: e.outcome,
            error_code: e.error_code,
            error: e.error,
            started_unix_ms: self.unix_ms,
            ended_unix_ms: self.unix_ms + duration_ms,
            duration_ms,
            report_file: e.report_file,
            vm: e.vm,
            report: e.report,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn run_local(cell: &Cell, t: &LocalTarget, s: &Settings, progress: &mut dyn Progress) -> Ended {
    let dir = s.report_dir.join(&cell.id);
    let pcap = t.gvnic.as_ref().map(|_| dir.join("gvnic.pcap"));
    let mut cfg = t.qemu_config(s.boot_image.as_deref(), pcap);
    // Targets may share a disk file: none gets the file itself (see disk_view).
    cfg.nvme_view = DiskView::for_script(&s.script);
    let spec = TargetSpec::Qemu(cfg);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let why = format!("cannot create the report directory for {}: {e}", cell.id);
        return Ended::error(&spec.label(), "report-dir", &why);
    }
    progress.phase("starting QEMU");
    match target::open(&spec, s.pacing) {
        Ok(opened) => run_proof(cell, opened, s, progress),
        Err(e) => Ended::error(&spec.label(), "qemu-failed", &format!("{e:#}")),
    }
}

/// Runs the script on an opened target and writes `ID/report.json`.
fn run_proof(cell: &Cell, opened: Opened, s: &Settings, progress: &mut dyn Progress) -> Ended {
    let Opened {
        mut session,
        label,
        fresh_boot,
    } = opened;
    let opts = RunOptions {
        default_timeout: s.default_timeout,
        boot_timeout: s.boot_timeout,
        fresh_boot,
        strict_frames: s.strict_frames,
        script_name: s.script_name.clone(),
        transport: label.clone(),
    };
    let mut report = run_script(&mut session, &s.script, &opts, progress);
    if report.boot.is_none() {
        // No prompt because QEMU itself gave up (a locked disk, a bad option): its words,
        // not a boot timeout.
        if let Some(why) = session.qemu_failure() {
            let _ = session.close();
            return Ended::error(&label, "qemu-failed", &why);
        }
    }
    let (model, state) = session.close_keeping_model();
    if let Some(state) = &state {
        crate::model_verdict::judge(&mut report, &state.record, s.script.allow_model_violations);
        // The whole record beside the report and the pcap (a failed write only loses it).
        if let Ok(json) = serde_json::to_string_pretty(&state.record) {
            let _ = std::fs::create_dir_all(s.report_dir.join(&cell.id));
            let _ = std::fs::write(s.report_dir.join(&cell.id).join("gvnic-record.json"), json);
        }
    }
    let file = format!("{}/report.json", cell.id);
    let written = serde_json::to_string_pretty(&report)
        .map_err(anyhow::Error::from)
        .and_then(|json| {
            std::fs::create_dir_all(s.report_dir.join(&cell.id))?;
            std::fs::write(s.report_dir.join(&file), json)?;
            Ok(())
        });
    let mut error = report.error.clone();
    if let Err(e) = model {
        error = Some(format!("the gVNIC model ended with an error: {e:#}"));
    }
    if let Err(e) = &written {
        error = Some(format!("cannot write {file}: {e:#}"));
    }
    let failed_reason = report
        .commands
        .iter()
        .find(|c| !c.reason.is_empty())
        .map(|c| format!("line {}: {}: {}", c.line_no, c.line, c.reason));
    Ended {
        transport: label,
        outcome: if report.passed {
            TargetOutcome::Passed
        } else {
            TargetOutcome::Failed
        },
        error_code: report_code(&report),
        error: error
            .or_else(|| crate::model_verdict::failure(&report))
            .or(failed_reason),
        report_file: written.is_ok().then_some(file),
        vm: None,
        report: Some(report),
    }
}

fn vm_create(g: &GceCell, gce: &GceSettings, run_id: &str) -> VmCreate {
    VmCreate {
        project: gce.project.clone(),
        zone: gce.zone.clone(),
        name: g.vm_name.clone(),
        image: gce.image.clone(),
        machine_type: g.machine_type.clone(),
        display: false,
        labels: vec![(MATRIX_LABEL.into(), run_id.into())],
    }
}

fn console(g: &GceCell, gce: &GceSettings) -> GceTarget {
    let mut t = gce.console.clone();
    t.project = gce.project.clone();
    t.zone = gce.zone.clone();
    t.instance = g.vm_name.clone();
    t
}

fn run_gce(
    cell: &Cell,
    g: &GceCell,
    gce: &GceSettings,
    s: &Settings,
    progress: &mut dyn Progress,
) -> Ended {
    let label = format!("gce {}", g.vm_name);
    progress.phase("creating the VM");
    let guard = match gce.fleet.create(&vm_create(g, gce, &s.run_id)) {
        Ok(guard) => guard,
        Err(e) => {
            let mut ended = Ended::error(&label, e.code, &e.message);
            if e.code == "interrupted" {
                ended.outcome = TargetOutcome::Interrupted;
            }
            ended.vm = Some(VmRecord {
                name: g.vm_name.clone(),
                ..VmRecord::default()
            });
            return ended;
        }
    };
    progress.phase("connecting to the serial console");
    let spec = TargetSpec::Gce(console(g, gce));
    let mut ended = if gce.fleet.interrupted() {
        // Ctrl-C came while the VM was being created: the handler deletes it.
        let mut e = Ended::error(
            &label,
            "interrupted",
            "interrupted after the VM was created",
        );
        e.outcome = TargetOutcome::Interrupted;
        e
    } else {
        match open_with_retry(&spec, s, &gce.fleet) {
            Ok(opened) => run_proof(cell, opened, s, progress),
            Err(e) => Ended::error(&label, "console-unreachable", &format!("{e:#}")),
        }
    };
    progress.phase("deleting the VM");
    let vm = guard.delete();
    if let Some(why) = vm.delete_error.as_deref().filter(|w| *w != "kept") {
        ended.outcome = TargetOutcome::Error;
        ended.error_code = Some("vm-not-deleted".into());
        ended.error = Some(format!(
            "{why} (`bringup gce vm cleanup --project {} --run-id {}` finds it too)",
            gce.project, s.run_id
        ));
    }
    ended.vm = Some(vm);
    ended
}

/// A VM just created: the gateway may not take the connection yet. Retries until the boot
/// timeout, unless Ctrl-C came.
fn open_with_retry(spec: &TargetSpec, s: &Settings, fleet: &Fleet) -> Result<Opened> {
    let deadline = Instant::now() + s.boot_timeout;
    loop {
        match target::open(spec, s.pacing) {
            Ok(opened) => return Ok(opened),
            Err(e) if fleet.interrupted() || Instant::now() + CONNECT_RETRY_PAUSE >= deadline => {
                return Err(e)
            }
            Err(_) => std::thread::sleep(CONNECT_RETRY_PAUSE),
        }
    }
}
