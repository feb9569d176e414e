//! Where a command file runs: one monitor reached through QEMU, a socket or command, or a GCE
//! VM's serial console. `bringup run` opens one target, `bringup matrix` many; both go
//! through [`open`], so a target means the same thing in both.
//!
//! This module knows how to reach a monitor and how to name the transport in a report; it
//! does not know command files, reports or the command line.

use anyhow::Result;

use crate::gce::GceTarget;
use crate::{Accel, Pacing, QemuConfig, Session, Transport};

/// How to reach one monitor.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// Boot the image in a QEMU of our own (the monitor boots now).
    Qemu(QemuConfig),
    /// A monitor that is already running: `tcp:`, `unix:` or `exec:` (see [`Transport`]).
    Connect { transport: Transport, label: String },
    /// A GCE VM's serial console through the gateway (the VM may still be booting).
    Gce(GceTarget),
}

/// An opened target: the session and how the report names it.
pub struct Opened {
    pub session: Session,
    /// `qemu bios tcg`, `gce INSTANCE`, `tcp`, ... (the report's `transport`).
    pub label: String,
    /// The monitor boots now (wait for its banner) rather than being attached to.
    pub fresh_boot: bool,
}

impl TargetSpec {
    /// The report's name for this transport.
    pub fn label(&self) -> String {
        match self {
            TargetSpec::Qemu(cfg) => qemu_label(cfg),
            TargetSpec::Connect { label, .. } => label.clone(),
            TargetSpec::Gce(t) => format!("gce {}", t.instance),
        }
    }

    /// Whether [`open`] boots the monitor (QEMU) or attaches to one that runs already.
    pub fn fresh_boot(&self) -> bool {
        matches!(self, TargetSpec::Qemu(_))
    }
}

/// `qemu bios tcg`, `qemu uefi kvm`, ...; with the gVNIC model, how it is attached
/// (`qemu bios tcg gvnic=vfio-user`), since only vfio-user delivers its interrupts.
pub fn qemu_label(cfg: &QemuConfig) -> String {
    let mut label = format!(
        "qemu {} {}",
        if cfg.uefi { "uefi" } else { "bios" },
        match cfg.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    );
    if cfg.gvnic.is_some() {
        label.push_str(&format!(" gvnic={}", cfg.resolved_gvnic_transport()));
    }
    label
}

/// Starts or connects the session and sets its input pacing.
pub fn open(spec: &TargetSpec, pacing: Pacing) -> Result<Opened> {
    let mut session = match spec {
        TargetSpec::Qemu(cfg) => Session::start_qemu(cfg)?,
        TargetSpec::Connect { transport, .. } => Session::connect(transport.clone())?,
        TargetSpec::Gce(target) => Session::connect(Transport::Gce(Box::new(target.clone())))?,
    };
    session.set_pacing(pacing);
    Ok(Opened {
        session,
        label: spec.label(),
        fresh_boot: spec.fresh_boot(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_firmware_accel_and_instance() {
        let cfg = QemuConfig {
            uefi: true,
            ..QemuConfig::default()
        };
        assert_eq!(TargetSpec::Qemu(cfg).label(), "qemu uefi tcg");
        let g = GceTarget::new("p", "z", "bu-vm").unwrap();
        let spec = TargetSpec::Gce(g);
        assert_eq!(spec.label(), "gce bu-vm");
        assert!(!spec.fresh_boot());
    }
}
