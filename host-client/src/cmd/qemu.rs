//! `bringup qemu`: boot the image and open the console; and the QEMU options every
//! subcommand shares.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{QemuCmd, QemuOpts};
use host_client::{console, GvnicOptions, GvnicTransport, NvmeDrive, QemuConfig, Session};

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
    } else if q.gvnic_transport == Some(GvnicTransport::VfioUser) {
        // vfio-user needs QEMU 10.1+: the one `make qemu11` unpacks, when there.
        if let Some(q11) = host_client::qemu::qemu11_binary() {
            cfg.qemu_binary = q11.display().to_string();
        }
    }
    cfg.nvme = NvmeDrive::numbered(&q.nvme);
    cfg.gvnic_transport = q.gvnic_transport;
    if q.gvnic
        || q.gvnic_pcap.is_some()
        || q.gvnic_revision.is_some()
        || q.gvnic_formats.is_some()
        || q.gvnic_tap.is_some()
        || q.gvnic_transport.is_some()
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
