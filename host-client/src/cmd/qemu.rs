//! `bringup qemu`: boot the image and open the console; and the QEMU options every
//! subcommand shares.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{QemuCmd, QemuOpts};
use host_client::{console, GvnicOptions, NvmeDrive, QemuConfig, Session};

pub fn exec(q: QemuCmd) -> Result<ExitCode> {
    let mut session = Session::start_qemu(&config(&q.qemu))?;
    console::run_console(&mut session, q.frames)?;
    Ok(ExitCode::SUCCESS)
}

/// The QEMU configuration the options describe.
pub fn config(q: &QemuOpts) -> QemuConfig {
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
    if let Some(binary) = &q.qemu_binary {
        cfg.qemu_binary = binary.clone();
    }
    cfg.nvme = NvmeDrive::numbered(&q.nvme);
    if q.gvnic
        || q.gvnic_pcap.is_some()
        || q.gvnic_revision.is_some()
        || q.gvnic_formats.is_some()
        || q.gvnic_tap.is_some()
        || q.gvnic_profile.is_some()
    {
        cfg.gvnic = Some(GvnicOptions {
            pcap: q.gvnic_pcap.clone(),
            revision: q.gvnic_revision.unwrap_or(0),
            formats: q.gvnic_formats.clone(),
            tap: q.gvnic_tap.clone(),
            profile: q.gvnic_profile,
            ..GvnicOptions::default()
        });
    }
    cfg
}
