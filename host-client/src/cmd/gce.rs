//! `bringup gce ...`: the serial console, image and VM lifecycle, and finding and deleting
//! what a matrix run left behind.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};

use crate::cli::{GceCmd, GceOpts, ImageCmd, VmCmd};
use host_client::gce::gcloud::{self, ListedVm, MATRIX_LABEL};
use host_client::gce::{shell_line, GceTarget};
use host_client::{console, Pacing, Session, Transport};

pub fn exec(cmd: GceCmd) -> Result<ExitCode> {
    match cmd {
        GceCmd::Connect {
            gce,
            dry_run,
            frames,
        } => {
            let target = target(&gce)?;
            if dry_run {
                eprintln!("# {}", target.endpoint_note()?);
                println!("{}", shell_line(&target.ssh_argv()?));
                return Ok(ExitCode::SUCCESS);
            }
            let mut session = Session::connect(Transport::Gce(Box::new(target)))?;
            session.set_pacing(Pacing::default());
            console::run_console(&mut session, frames)?;
        }
        GceCmd::Image(cmd) => image(cmd)?,
        GceCmd::Vm(VmCmd::List { project, label }) => {
            let vms = list(&project, &label)?;
            print!("{}", vm_table(&vms));
        }
        GceCmd::Vm(VmCmd::Cleanup {
            project,
            run_id,
            dry_run,
        }) => return cleanup(&project, run_id.as_deref(), dry_run),
        GceCmd::Vm(cmd) => vm(cmd)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn image(cmd: ImageCmd) -> Result<()> {
    let (commands, dry) = match cmd {
        ImageCmd::Create {
            project,
            name,
            bucket,
            tarball,
            dry_run,
        } => {
            let tarball = tarball.unwrap_or_else(|| "target/gce/bringup-gce.tar.gz".into());
            if !dry_run {
                gcloud::check_tarball(&tarball)?;
            }
            let op = gcloud::ImageCreate {
                project,
                name,
                bucket,
                tarball,
            };
            (op.commands()?, dry_run)
        }
        ImageCmd::Delete {
            project,
            name,
            bucket,
            dry_run,
        } => (
            gcloud::image_delete(&project, &name, bucket.as_deref())?,
            dry_run,
        ),
    };
    gcloud::execute(&commands, dry)
}

fn vm(cmd: VmCmd) -> Result<()> {
    let (commands, dry) = match cmd {
        VmCmd::Create {
            project,
            zone,
            name,
            image,
            machine_type,
            display,
            dry_run,
        } => {
            let op = gcloud::VmCreate {
                project,
                zone,
                name,
                image,
                machine_type,
                display,
                labels: Vec::new(),
            };
            (op.commands()?, dry_run)
        }
        VmCmd::Delete {
            project,
            zone,
            name,
            dry_run,
        } => (gcloud::vm_delete(&project, &zone, &name)?, dry_run),
        VmCmd::List { .. } | VmCmd::Cleanup { .. } => unreachable!("handled in exec"),
    };
    gcloud::execute(&commands, dry)
}

fn list(project: &str, label: &str) -> Result<Vec<ListedVm>> {
    let out = gcloud::run_captured(&gcloud::vm_list(project, label)?)?;
    gcloud::parse_vm_list(&out)
}

/// NAME ZONE STATUS RUN, one VM a line.
fn vm_table(vms: &[ListedVm]) -> String {
    if vms.is_empty() {
        return "no VMs with that label\n".into();
    }
    let mut rows = vec![["NAME", "ZONE", "STATUS", "RUN"].map(String::from).to_vec()];
    for vm in vms {
        rows.push(vec![
            vm.name.clone(),
            vm.zone.clone(),
            vm.status.clone(),
            vm.labels.get(MATRIX_LABEL).cloned().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// Deletes every VM labelled by a matrix run (one run's, with `run_id`).
fn cleanup(project: &str, run_id: Option<&str>, dry_run: bool) -> Result<ExitCode> {
    let label = match run_id {
        Some(id) => format!("{MATRIX_LABEL}={id}"),
        None => MATRIX_LABEL.to_string(),
    };
    let vms = list(project, &label)?;
    if vms.is_empty() {
        eprintln!("no matrix VMs left in {project}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut commands = Vec::new();
    for vm in &vms {
        commands.extend(gcloud::vm_delete(project, &vm.zone, &vm.name)?);
    }
    let mut failed = 0;
    for cmd in &commands {
        println!("{}", shell_line(cmd));
        if dry_run {
            continue;
        }
        if let Err(e) = gcloud::run_captured(cmd) {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} deletes failed", commands.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The serial console the options name.
pub fn target(g: &GceOpts) -> Result<GceTarget> {
    let need = |v: &Option<String>, name: &str| {
        v.clone()
            .ok_or_else(|| anyhow!("--{name} is required for the GCE serial console"))
    };
    let mut t = GceTarget::new(
        &need(&g.project, "project")?,
        &need(&g.zone, "zone")?,
        &need(&g.instance, "instance")?,
    )?;
    if let Some(user) = &g.user {
        t.user = user.clone();
        t.user_from_env = false;
    }
    t.port = g.port;
    t.replay_lines = g.replay_lines;
    t.region = g.region.clone();
    t.global_gateway = g.global_gateway;
    t.settle = g.settle;
    if let Some(ms) = &g.auth_backoff_ms {
        t.auth_backoff = ms
            .iter()
            .map(|&m| std::time::Duration::from_millis(m))
            .collect();
    }
    if let Some(ms) = &g.redial_backoff_ms {
        t.redial_backoff = ms
            .iter()
            .map(|&m| std::time::Duration::from_millis(m))
            .collect();
    }
    t.gateway = g.gateway.clone();
    if let Some(k) = &g.key {
        t.key = k.clone();
    }
    if let Some(k) = &g.known_hosts {
        t.known_hosts = k.clone();
    }
    t.connect_timeout = g.connect_timeout;
    t.validate()?;
    Ok(t)
}
