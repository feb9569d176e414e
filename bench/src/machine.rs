//! The QEMU command lines. Both monitors get the same machine: i440fx, 512 MiB, no display, no
//! NIC, serial on stdio, one NVMe controller on the same disk file; only the firmware and (for
//! bringup) the boot disk differ.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const UBOOT_ROM: &str = "/usr/lib/u-boot/qemu-x86_64/u-boot.rom";
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
}

pub enum Firmware<'a> {
    UBoot,
    SeaBios {
        image: &'a Path,
    },
    /// `vars` is a private writable copy of OVMF_VARS.
    Ovmf {
        image: &'a Path,
        vars: PathBuf,
    },
}

/// Which QEMU, and which CPU model (None: QEMU's default, qemu64).
#[derive(Debug, Clone)]
pub struct Emulator {
    pub binary: PathBuf,
    pub cpu: Option<&'static str>,
}

impl Emulator {
    /// The system's QEMU (7.2 on bookworm) with its default CPU: what both monitors share.
    pub fn system() -> Emulator {
        Emulator {
            binary: PathBuf::from("qemu-system-x86_64"),
            cpu: None,
        }
    }
}

/// QEMU 10 (`make qemu10`): `-cpu max` has SHA-NI under TCG, 7.2 has none.
pub fn qemu10_binary() -> Option<PathBuf> {
    let path = std::env::var_os("BRINGUP_QEMU10")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/qemu-10/bin/qemu-system-x86_64"));
    path.is_file().then_some(path)
}

pub fn qemu(accel: Accel, firmware: &Firmware, nvme_disk: &Path) -> Command {
    qemu_on(&Emulator::system(), accel, firmware, nvme_disk)
}

pub fn qemu_on(
    emulator: &Emulator,
    accel: Accel,
    firmware: &Firmware,
    nvme_disk: &Path,
) -> Command {
    let mut c = Command::new(&emulator.binary);
    if let Some(cpu) = emulator.cpu {
        c.args(["-cpu", cpu]);
    }
    let accel = match accel {
        Accel::Tcg => "tcg",
        Accel::Kvm => "kvm",
    };
    c.args(["-machine", "pc", "-m", "512", "-accel", accel]);
    c.args(["-display", "none", "-vga", "none", "-monitor", "none"]);
    c.args([
        "-parallel",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
    ]);
    match firmware {
        Firmware::UBoot => {
            c.args(["-bios", UBOOT_ROM]);
        }
        Firmware::SeaBios { image } => {
            // Keep SeaBIOS's serial VGA emulation off COM1.
            c.args(["-fw_cfg", "name=etc/sercon-port,string=0"]);
            c.args(["-drive", &boot_drive(image)]);
        }
        Firmware::Ovmf { image, vars } => {
            c.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ));
            c.arg("-drive").arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
            c.args(["-drive", &boot_drive(image)]);
        }
    }
    // Writable: the write half of the bench (writes.rs) writes the disk's second half only,
    // which no read digest covers.
    c.arg("-drive").arg(format!(
        "file={},if=none,format=raw,id=d0",
        nvme_disk.display()
    ));
    c.args(["-device", "nvme,serial=bench,drive=d0"]);
    c
}

fn boot_drive(image: &Path) -> String {
    format!(
        "file={},format=raw,if=ide,index=0,media=disk,snapshot=on",
        image.display()
    )
}
