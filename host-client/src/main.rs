//! `bringup`: the host tool. See `bringup --help`. This file parses and dispatches; each
//! subcommand's work is in cmd/.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Cmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Qemu(q) => cmd::qemu::exec(q),
        Cmd::Run(r) => cmd::run::exec(*r),
        Cmd::Decode(d) => cmd::decode::exec(d),
        Cmd::Gce(g) => cmd::gce::exec(g),
        Cmd::Matrix(m) => cmd::matrix::exec(*m),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{pace, GceCmd, MatrixCmd};
    use clap::CommandFactory;
    use host_client::matrix::plan::Firmware;
    use host_client::{NvmeDrive, Pacing};
    use std::time::Duration;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pace_parses_or_explains() {
        assert_eq!(
            pace("32:5").unwrap(),
            Pacing {
                chunk_bytes: 32,
                pause: Duration::from_millis(5)
            }
        );
        assert!(pace("0:1").is_err());
        assert!(pace("16").unwrap_err().contains("BYTES:MILLISECONDS"));
        let err = Cli::try_parse_from(["bringup", "run", "s", "--timeout", "5x"]).unwrap_err();
        assert!(err.to_string().contains("bad duration unit"), "{err}");
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
        let cfg = cmd::qemu::config(&r.qemu_opts);
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
        let argv = cmd::gce::target(&gce).unwrap().ssh_argv().unwrap();
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
        assert!(cmd::gce::target(&gce)
            .unwrap_err()
            .to_string()
            .contains("--project is required"));
    }

    fn matrix(args: &[&str]) -> Result<MatrixCmd, clap::Error> {
        let mut argv = vec!["bringup", "matrix", "p.bringup"];
        argv.extend(args);
        Cli::try_parse_from(argv).map(|c| match c.cmd {
            Cmd::Matrix(m) => *m,
            _ => panic!("not matrix"),
        })
    }

    #[test]
    fn matrix_axes_split_on_commas_and_gce_needs_its_options() {
        let m = matrix(&[
            "--firmware",
            "bios,uefi",
            "--gvnic-formats",
            "gqi-qpl,dqo-rda+gqi-qpl",
            "--gvnic-revision",
            "0,1",
            "--jobs",
            "2",
            "--timeout",
            "2m",
        ])
        .unwrap();
        assert_eq!(m.firmware, [Firmware::Bios, Firmware::Uefi]);
        assert_eq!(m.gvnic_formats[1].to_string(), "gqi-qpl+dqo-rda");
        assert_eq!(m.gvnic_revision, [0, 1]);
        assert_eq!(m.tuning.timeout, Duration::from_secs(120));
        assert!(matrix(&["--gvnic-formats", "gqi-xyz"]).is_err());
        assert!(matrix(&["--gvnic-revision", "2"]).is_err());
        assert!(matrix(&["--jobs", "0"]).is_err());
        assert!(matrix(&["--gce", "--project", "p"]).is_err(), "zone, types");
        assert!(matrix(&["--keep"]).is_err(), "--keep is for GCE");
        assert!(
            matrix(&["--targets", "t.toml", "--nvme", "d.raw"]).is_err(),
            "a targets file lists its own disks"
        );
        let g = matrix(&[
            "--gce",
            "--project",
            "p",
            "--zone",
            "z",
            "--machine-types",
            "c3-standard-4,n2-standard-2",
            "--max-vms",
            "1",
        ])
        .unwrap();
        assert_eq!(g.machine_types, ["c3-standard-4", "n2-standard-2"]);
        assert!(matrix(&[
            "--gce",
            "--project",
            "p",
            "--zone",
            "z",
            "--machine-types",
            "a",
            "--firmware",
            "uefi"
        ])
        .is_err());
    }

    #[test]
    fn qemu_gvnic_revision_implies_the_model() {
        let cli = Cli::try_parse_from(["bringup", "qemu", "--gvnic-revision", "1"]).unwrap();
        let Cmd::Qemu(q) = cli.cmd else { panic!() };
        let cfg = cmd::qemu::config(&q.qemu);
        assert_eq!(cfg.gvnic.unwrap().revision, 1);
    }

    #[test]
    fn gvnic_profile_reaches_the_model_and_is_a_matrix_axis() {
        use gvnic_model::Profile;
        let cli = Cli::try_parse_from(["bringup", "qemu", "--gvnic-profile", "2024"]).unwrap();
        let Cmd::Qemu(q) = cli.cmd else { panic!() };
        let g = cmd::qemu::config(&q.qemu).gvnic.expect("implies --gvnic");
        assert_eq!(g.profile, Some(Profile::Y2024));
        assert!(Cli::try_parse_from(["bringup", "qemu", "--gvnic-profile", "2025"]).is_err());
        let m = matrix(&["--gvnic-profile", "2024,2026"]).unwrap();
        assert_eq!(m.gvnic_profile, [Profile::Y2024, Profile::Y2026]);
    }

    #[test]
    fn gvnic_formats_reach_the_model_and_imply_gvnic() {
        let cli = Cli::try_parse_from([
            "bringup",
            "run",
            "s.bringup",
            "--gvnic-formats",
            "gqi-qpl,dqo-rda",
        ])
        .unwrap();
        let Cmd::Run(r) = cli.cmd else { panic!() };
        let g = cmd::qemu::config(&r.qemu_opts)
            .gvnic
            .expect("implies --gvnic");
        assert_eq!(
            g.formats.map(|f| f.to_string()).as_deref(),
            Some("gqi-qpl,dqo-rda")
        );
        let cli = Cli::try_parse_from(["bringup", "qemu", "--gvnic-formats", "none"]).unwrap();
        let Cmd::Qemu(q) = cli.cmd else { panic!() };
        assert!(q.qemu.gvnic_formats.is_some_and(|f| f.none));
        assert!(Cli::try_parse_from(["bringup", "qemu", "--gvnic-formats", "gqi"]).is_err());
    }

    #[test]
    fn gvnic_tap_implies_the_model_for_qemu_and_run() {
        let cli = Cli::try_parse_from(["bringup", "qemu", "--gvnic-tap", "bu-tap0"]).unwrap();
        let Cmd::Qemu(q) = cli.cmd else { panic!() };
        let cfg = cmd::qemu::config(&q.qemu);
        assert_eq!(cfg.gvnic.unwrap().tap.as_deref(), Some("bu-tap0"));
        let cli =
            Cli::try_parse_from(["bringup", "run", "x.bringup", "--gvnic-tap", "t1"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Run(_)));
    }
}
