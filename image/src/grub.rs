//! GRUB: the configs and the two GRUB images (i386-pc core, x86_64-efi standalone).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::tools::run;

/// Where grub-pc-bin keeps i386-pc modules and boot.img.
pub const I386_PC_DIR: &str = "/usr/lib/grub/i386-pc";
/// Modules both GRUBs need to find the ESP, read FAT and load a multiboot2 kernel.
const MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "multiboot2",
    "serial",
    "terminal",
    "search",
    "search_fs_file",
    "boot",
    "echo",
    "normal",
    "configfile",
];

/// Built into both GRUB images: serial console, find the ESP by the monitor's path, then
/// hand over to the menu on the ESP (which users may edit with mtools, no rebuild).
/// `$prefix` stays as built: the UEFI GRUB loads its modules from its memdisk through it.
pub const EMBEDDED_CONFIG: &str = "\
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial
terminal_output serial
search --no-floppy --set=root --file /boot/monitor.elf
configfile ($root)/boot/grub/grub.cfg
";

/// `/boot/grub/grub.cfg` on the ESP: boots the monitor at once with `cmdline`.
pub fn menu_config(cmdline: &str) -> String {
    format!(
        "\
# bringup boot menu. The kernel command line is the text after monitor.elf:
#   dma=<size>   size of the DMA bounce pool, e.g. dma=16M (default 64M)
#   bootdisk=<GUID>  this disk's GPT disk GUID (set at build): `nvme write` refuses it
set timeout=0
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial
terminal_output serial
set bringup_cmdline=\"{cmdline}\"
multiboot2 /boot/monitor.elf $bringup_cmdline
boot
"
    )
}

/// The command line ends up inside a quoted GRUB string: keep it to plain words.
pub fn check_cmdline(cmdline: &str) -> Result<()> {
    if let Some(bad) = cmdline
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ') || matches!(c, '"' | '\\' | '$' | ';'))
    {
        bail!("kernel command line may not contain {bad:?}");
    }
    Ok(())
}

/// `grub-mkimage -O i386-pc`: the core image for the BIOS boot partition.
pub fn make_bios_core(embedded: &Path, out: &Path) -> Result<()> {
    let mut cmd = Command::new("grub-mkimage");
    cmd.args([
        "-O",
        "i386-pc",
        "-d",
        I386_PC_DIR,
        "-p",
        "(hd0,gpt2)/boot/grub",
        "-c",
    ])
    .arg(embedded)
    .arg("-o")
    .arg(out)
    .arg("biosdisk")
    .args(MODULES);
    run(cmd)
}

/// `grub-mkstandalone -O x86_64-efi`: BOOTX64.EFI with the embedded config in a memdisk.
pub fn make_efi_standalone(embedded: &Path, out: &Path, work: &Path) -> Result<()> {
    let mut cmd = Command::new("grub-mkstandalone");
    cmd.args(["-O", "x86_64-efi", "--locales=", "--fonts=", "--themes="])
        .arg(format!("--install-modules={}", MODULES.join(" ")))
        .arg("--modules=part_gpt fat")
        .arg("-o")
        .arg(out)
        .env("TMPDIR", work)
        .arg(format!("boot/grub/grub.cfg={}", embedded.display()));
    run(cmd)
}
