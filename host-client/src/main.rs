//! `bringup`: the host tool. See `bringup --help`.

mod cli;

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;

use cli::{Cli, Cmd, GceCmd, GceOpts, ImageCmd, QemuOpts, RunCmd, VmCmd};
use host_client::gce::{gcloud, shell_line, GceTarget};
use host_client::report::StepVerdict;
use host_client::runner::{run_script, RunOptions};
use host_client::script::{parse_duration, parse_script};
use host_client::{
    console, decode, GvnicOptions, NvmeDrive, Pacing, QemuConfig, Session, Transport,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Qemu(q) => {
            let mut session = Session::start_qemu(&qemu_config(&q.qemu)?)?;
            console::run_console(&mut session, q.frames)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(r) => run(*r),
        Cmd::Decode(d) => decode_cmd(&d.log, d.json, d.strict),
        Cmd::Gce(GceCmd::Connect {
            gce,
            dry_run,
            frames,
        }) => {
            let target = gce_target(&gce)?;
            if dry_run {
                println!("{}", shell_line(&target.ssh_argv()?));
                return Ok(ExitCode::SUCCESS);
            }
            let mut session = Session::connect(Transport::Gce(target))?;
            session.set_pacing(Pacing::default());
            console::run_console(&mut session, frames)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gce(GceCmd::Image(cmd)) => {
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
            gcloud::execute(&commands, dry)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gce(GceCmd::Vm(cmd)) => {
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
                    };
                    (op.commands()?, dry_run)
                }
                VmCmd::Delete {
                    project,
                    zone,
                    name,
                    dry_run,
                } => (gcloud::vm_delete(&project, &zone, &name)?, dry_run),
            };
            gcloud::execute(&commands, dry)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn qemu_config(q: &QemuOpts) -> Result<QemuConfig> {
    let mut cfg = QemuConfig {
        uefi: q.uefi,
        accel: q.accel,
        memory_mib: q.memory,
        machine: q.machine.clone(),
        extra_args: q.qemu_args.clone(),
        ..QemuConfig::default()
    };
    if let Some(image) = &q.image {
        cfg.image = image.clone();
    }
    cfg.nvme = q
        .nvme
        .iter()
        .enumerate()
        .map(|(i, path)| NvmeDrive {
            path: path.clone(),
            serial: format!("nvme{i}"),
        })
        .collect();
    if q.gvnic || q.gvnic_pcap.is_some() || q.gvnic_formats.is_some() {
        cfg.gvnic = Some(GvnicOptions {
            pcap: q.gvnic_pcap.clone(),
            formats: q.gvnic_formats.clone(),
            ..GvnicOptions::default()
        });
    }
    Ok(cfg)
}

fn gce_target(g: &GceOpts) -> Result<GceTarget> {
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
    }
    if t.user.is_empty() {
        bail!("--user is required ($USER is not set)");
    }
    t.port = g.port;
    t.replay_lines = g.replay_lines;
    t.region = g.region.clone();
    t.gateway = g.gateway.clone();
    if let Some(k) = &g.key {
        t.key = k.clone();
    }
    if let Some(k) = &g.known_hosts {
        t.known_hosts = k.clone();
    }
    t.connect_timeout = Duration::from_secs(g.connect_timeout);
    t.validate()?;
    Ok(t)
}

fn parse_pace(text: &str) -> Result<Pacing> {
    let (bytes, ms) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("--pace {text:?}: expected BYTES:MILLISECONDS, e.g. 16:2"))?;
    let chunk_bytes: usize = bytes
        .parse()
        .map_err(|_| anyhow!("--pace {text:?}: bad byte count"))?;
    let ms: u64 = ms
        .parse()
        .map_err(|_| anyhow!("--pace {text:?}: bad milliseconds"))?;
    if chunk_bytes == 0 {
        bail!("--pace {text:?}: the chunk must be at least one byte");
    }
    Ok(Pacing {
        chunk_bytes,
        pause: Duration::from_millis(ms),
    })
}

fn run(r: RunCmd) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&r.script)
        .with_context(|| format!("cannot read the command file {}", r.script.display()))?;
    let script = parse_script(&text).with_context(|| format!("{}", r.script.display()))?;
    let default_timeout = parse_duration(&r.timeout).context("--timeout")?;
    let boot_timeout = parse_duration(&r.boot_timeout).context("--boot-timeout")?;
    let pacing = parse_pace(&r.pace)?;
    let (mut session, transport, fresh_boot) = if r.gce {
        let target = gce_target(&r.gce_opts)?;
        let label = format!("gce {}", target.instance);
        (Session::connect(Transport::Gce(target))?, label, false)
    } else if let Some(spec) = &r.connect {
        let transport: Transport = spec.parse()?;
        let label = spec.split(':').next().unwrap_or("connect").to_string();
        (Session::connect(transport)?, label, false)
    } else {
        let cfg = qemu_config(&r.qemu_opts)?;
        let label = format!(
            "qemu {} {}",
            if cfg.uefi { "uefi" } else { "bios" },
            if cfg.accel == host_client::Accel::Kvm {
                "kvm"
            } else {
                "tcg"
            }
        );
        (Session::start_qemu(&cfg)?, label, true)
    };
    session.set_pacing(pacing);
    let opts = RunOptions {
        default_timeout,
        boot_timeout,
        fresh_boot,
        progress: !r.no_progress && std::io::stderr().is_terminal(),
        strict_frames: !r.tolerate_frame_damage,
        // The file name only: a report must not carry the user's directory layout.
        script_name: r.script.file_name().map_or_else(
            || r.script.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        transport,
    };
    let report = run_script(&mut session, &script, &opts);
    let model = session.close();
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
        eprintln!("{mark} line {}: {}{ms}", c.line_no, c.line);
        if !c.reason.is_empty() {
            eprintln!("     {}", c.reason.lines().next().unwrap_or_default());
        }
    }
    let s = &report.summary;
    if let Some(err) = &report.error {
        eprintln!("error: {err}");
    }
    if let Err(e) = model {
        eprintln!("note: the gVNIC model ended with an error: {e:#}");
    }
    eprintln!(
        "{}: {}/{} commands, {}/{} expectations, {} frames, {} damaged, {} gaps",
        if report.passed { "PASSED" } else { "FAILED" },
        s.passed,
        s.commands,
        s.expectations - s.expectations_failed,
        s.expectations,
        s.frames,
        s.damaged_frames,
        s.sequence_gaps
    );
    if let Some(path) = &r.report {
        let json = serde_json::to_string_pretty(&report)?;
        if path == Path::new("-") {
            println!("{json}");
        } else {
            std::fs::write(path, json)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("report: {}", path.display());
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn decode_cmd(log: &Path, json: bool, strict: bool) -> Result<ExitCode> {
    let mut bytes = Vec::new();
    if log == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(log).with_context(|| format!("cannot read {}", log.display()))?;
    }
    let decoded = decode::decode_log(&bytes);
    if json {
        println!("{}", serde_json::to_string_pretty(&decoded)?);
    } else {
        print!("{}", decode::render_text(&decoded));
    }
    Ok(if strict && !decoded.is_clean() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pace_parses_or_explains() {
        assert_eq!(
            parse_pace("32:5").unwrap(),
            Pacing {
                chunk_bytes: 32,
                pause: Duration::from_millis(5)
            }
        );
        assert!(parse_pace("0:1").is_err());
        assert!(parse_pace("16")
            .unwrap_err()
            .to_string()
            .contains("BYTES:MILLISECONDS"));
    }

    #[test]
    fn run_defaults_to_qemu_and_rejects_two_transports() {
        let cli = Cli::try_parse_from([
            "bringup",
            "run",
            "s.bringup",
            "--uefi",
            "--nvme",
            "d.raw",
            "--",
            "-smp",
            "2",
        ])
        .unwrap();
        let Cmd::Run(r) = cli.cmd else {
            panic!("not run")
        };
        assert!(!r.gce && r.connect.is_none());
        let cfg = qemu_config(&r.qemu_opts).unwrap();
        assert!(cfg.uefi);
        assert_eq!(
            cfg.nvme,
            vec![NvmeDrive {
                path: "d.raw".into(),
                serial: "nvme0".into()
            }]
        );
        assert_eq!(cfg.extra_args, ["-smp", "2"]);
        assert!(
            Cli::try_parse_from(["bringup", "run", "s", "--gce", "--connect", "tcp:a:1"]).is_err()
        );
    }

    #[test]
    fn gce_connect_options_reach_the_target() {
        let cli = Cli::try_parse_from([
            "bringup",
            "gce",
            "connect",
            "--project",
            "p",
            "--zone",
            "z",
            "--instance",
            "i",
            "--user",
            "u",
            "--replay-lines",
            "50",
            "--gateway",
            "127.0.0.1:2200",
            "--key",
            "k",
            "--known-hosts",
            "kh",
            "--dry-run",
        ])
        .unwrap();
        let Cmd::Gce(GceCmd::Connect { gce, dry_run, .. }) = cli.cmd else {
            panic!()
        };
        assert!(dry_run);
        let argv = gce_target(&gce).unwrap().ssh_argv().unwrap();
        assert_eq!(
            argv.last().unwrap(),
            "p.z.i.u.port=1.replay-lines=50@127.0.0.1"
        );
        let missing = Cli::try_parse_from([
            "bringup",
            "gce",
            "connect",
            "--zone",
            "z",
            "--instance",
            "i",
        ])
        .unwrap();
        let Cmd::Gce(GceCmd::Connect { gce, .. }) = missing.cmd else {
            panic!()
        };
        assert!(gce_target(&gce)
            .unwrap_err()
            .to_string()
            .contains("--project is required"));
    }
}
