//! `bringup matrix`: plan the targets, run them (GCE VMs cleaned up also on Ctrl-C), write
//! matrix.json and print the table.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::cli::MatrixCmd;
use crate::cmd;
use host_client::gce::GceTarget;
use host_client::matrix::exec::{
    gce_dry_run, run_matrix, write_matrix_json, GceSettings, Settings,
};
use host_client::matrix::fleet::Fleet;
use host_client::matrix::plan::{self, Cell, LocalAxes};
use host_client::matrix::report::render_table;

pub fn exec(m: MatrixCmd) -> Result<ExitCode> {
    let (script, script_name) = cmd::run::load_script(&m.script)?;
    let run_id = plan::new_run_id();
    let cells = cells(&m, &run_id)?;
    let gce = if m.gce {
        Some(gce_settings(&m, cells.len())?)
    } else {
        None
    };
    let settings = Settings {
        script,
        script_name,
        default_timeout: m.tuning.timeout,
        boot_timeout: m.tuning.boot_timeout,
        strict_frames: !m.tuning.tolerate_frame_damage,
        pacing: m.tuning.pace,
        report_dir: m.report.clone(),
        jobs: m.jobs.map_or_else(cpu_count, |j| j as usize),
        boot_image: m.boot_image.clone(),
        run_id: run_id.clone(),
        progress: !m.tuning.no_progress && std::io::stderr().is_terminal(),
        gce,
    };
    if m.dry_run {
        for line in gce_dry_run(&cells, &settings)? {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(g) = &settings.gce {
        install_interrupt_handler(g.fleet.clone(), &g.project, &run_id)?;
        eprintln!(
            "matrix {run_id}: {} VMs labelled {}={run_id}",
            cells.len(),
            host_client::gce::gcloud::MATRIX_LABEL
        );
    }
    let report = run_matrix(&cells, &settings);
    if let Some(g) = &settings.gce {
        // An interrupt makes the targets fail fast (creates refused, VMs taken by the
        // handler) while the handler is still deleting: the handler owns the exit then
        // (status 130 once every VM is gone), so this thread must not race it to exit 1.
        if g.fleet.interrupted() {
            loop {
                std::thread::park();
            }
        }
    }
    let path = write_matrix_json(&m.report, &report)?;
    eprint!("{}", render_table(&report));
    eprintln!("matrix report: {}", path.display());
    if let Some(g) = &settings.gce {
        let left = g.fleet.remaining();
        if !left.is_empty() {
            let cleanup = format!(
                "bringup gce vm cleanup --project {} --run-id {run_id}",
                g.project
            );
            if g.fleet.keeps() {
                eprintln!("still running: {} (`{cleanup}`)", left.join(", "));
            } else {
                // Never a pass: a VM this run made may be running (and billing) on.
                eprintln!(
                    "error vm-not-deleted: {} may still be running; delete with `{cleanup}`",
                    left.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cells(m: &MatrixCmd, run_id: &str) -> Result<Vec<Cell>> {
    if m.gce {
        return plan::gce_cells(run_id, &m.machine_types);
    }
    if let Some(path) = &m.targets {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the targets file {}", path.display()))?;
        let base = path.parent().unwrap_or_else(|| std::path::Path::new("."));
        return plan::targets_from_toml(&text, base, m.memory)
            .with_context(|| format!("{}", path.display()));
    }
    LocalAxes {
        firmware: m.firmware.clone(),
        machine: m.machine.clone(),
        accel: m.accel.clone(),
        gvnic: m.gvnic,
        gvnic_formats: m.gvnic_formats.clone(),
        gvnic_revision: m.gvnic_revision.clone(),
        gvnic_transport: m.gvnic_transport.clone(),
        gvnic_profile: m.gvnic_profile.clone(),
        nvme: m.nvme.clone(),
        memory_mib: m.memory,
    }
    .cells()
}

fn gce_settings(m: &MatrixCmd, vms: usize) -> Result<GceSettings> {
    let (Some(project), Some(zone)) = (&m.project, &m.zone) else {
        bail!("--gce needs --project and --zone");
    };
    // The instance is each VM's own name; this one only carries the shared settings.
    let mut console = GceTarget::new(project, zone, "placeholder")?;
    if let Some(user) = &m.user {
        console.user = user.clone();
        console.user_from_env = false;
    }
    console.region = m.region.clone();
    console.global_gateway = m.global_gateway;
    console.settle = m.settle;
    console.gateway = m.gateway.clone();
    if let Some(k) = &m.key {
        console.key = k.clone();
    }
    if let Some(k) = &m.known_hosts {
        console.known_hosts = k.clone();
    }
    console.validate()?;
    Ok(GceSettings {
        fleet: Fleet::new(project, zone, m.keep, m.gcloud_timeout),
        project: project.clone(),
        zone: zone.clone(),
        image: m.image.clone(),
        max_vms: m.max_vms.map_or(vms, |n| n as usize),
        console,
    })
}

/// Ctrl-C (and SIGTERM): wait for creates in flight, delete every VM, exit 130.
fn install_interrupt_handler(
    fleet: std::sync::Arc<Fleet>,
    project: &str,
    run_id: &str,
) -> Result<()> {
    let hint = format!("bringup gce vm cleanup --project {project} --run-id {run_id}");
    ctrlc::set_handler(move || {
        eprintln!("\ninterrupted: deleting this run's VMs (if this is killed: `{hint}`)");
        for (name, result) in fleet.interrupt() {
            match result {
                Ok(()) => eprintln!("deleted {name}"),
                Err(e) => eprintln!("could not delete {name}: {e}"),
            }
        }
        let left = fleet.remaining();
        if !left.is_empty() {
            eprintln!("still running: {} (`{hint}`)", left.join(", "));
        }
        std::process::exit(130);
    })
    .context("cannot install the Ctrl-C handler")
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
