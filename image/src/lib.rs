//! Builds `bringup.img`: one GPT disk that boots the monitor under SeaBIOS and UEFI.
//!
//! Layout (see shared/reference/boot-path.md, which measured it):
//! - protective MBR with GRUB's `boot.img` code (LBA of core.img patched in),
//! - partition 1, sectors 2048..=4095, BIOS boot: GRUB's i386-pc `core.img`,
//! - partition 2, sector 4096 to the end, EFI system partition (FAT32):
//!   `\EFI\BOOT\BOOTX64.EFI` (GRUB x86_64-efi, standalone), `/boot/monitor.elf`,
//!   `/boot/grub/grub.cfg` (the menu both firmwares end up reading).
//!
//! No loop devices or mounts: the GPT is written with `sgdisk` on the plain file and the
//! FAT filesystem with mtools, into a separate file that is then copied into place.

pub mod disk;
pub mod esp;
pub mod gce;
pub mod grub;
pub mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// BIOS boot partition: sectors 2048..=4095 (1 MiB), holds core.img.
pub const BIOS_BOOT_FIRST_LBA: u64 = 2048;
pub const BIOS_BOOT_LAST_LBA: u64 = 4095;
/// The ESP starts here and runs to the end of the disk (minus the backup GPT).
pub const ESP_FIRST_LBA: u64 = 4096;
pub const DEFAULT_DISK_BYTES: u64 = 64 * MIB;
/// The kernel command line the image boots with unless told otherwise.
pub const DEFAULT_CMDLINE: &str = "dma=64M";

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The monitor ELF (multiboot2).
    pub monitor_elf: PathBuf,
    /// Output disk image.
    pub output: PathBuf,
    pub disk_bytes: u64,
    /// Kernel command line written into grub.cfg (`bootdisk=<GUID>` is appended).
    pub cmdline: String,
    /// The GPT disk GUID (text form); None: a fresh random one. It goes on the kernel
    /// command line as `bootdisk=<GUID>`, so the monitor refuses `nvme write` to this disk.
    pub disk_guid: Option<String>,
}

impl ImageSpec {
    pub fn new(monitor_elf: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        ImageSpec {
            monitor_elf: monitor_elf.into(),
            output: output.into(),
            disk_bytes: DEFAULT_DISK_BYTES,
            cmdline: DEFAULT_CMDLINE.to_string(),
            disk_guid: None,
        }
    }
}

/// Builds the hybrid disk image described by `spec`.
pub fn build(spec: &ImageSpec) -> Result<()> {
    anyhow::ensure!(
        spec.disk_bytes.is_multiple_of(MIB) && spec.disk_bytes >= 16 * MIB,
        "disk size must be a whole number of MiB, at least 16 MiB"
    );
    grub::check_cmdline(&spec.cmdline)?;
    let work = tempdir_near(&spec.output)?;
    let result = build_in(spec, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn build_in(spec: &ImageSpec, work: &Path) -> Result<()> {
    let guid = match &spec.disk_guid {
        Some(guid) => disk::check_guid(guid)?,
        None => disk::random_guid()?,
    };
    let menu = grub::menu_config(&boot_cmdline(&spec.cmdline, &guid));
    let embedded = work.join("embedded.cfg");
    std::fs::write(&embedded, grub::EMBEDDED_CONFIG).context("writing the embedded GRUB config")?;
    let core_img = work.join("core.img");
    grub::make_bios_core(&embedded, &core_img)?;
    let efi = work.join("BOOTX64.EFI");
    grub::make_efi_standalone(&embedded, &efi, work)?;

    let layout = disk::Layout::for_size(spec.disk_bytes);
    let esp = work.join("esp.img");
    let menu_file = work.join("grub.cfg");
    std::fs::write(&menu_file, menu).context("writing grub.cfg")?;
    esp::build(
        &esp,
        layout.esp_sectors(),
        &[
            esp::FileSpec::new(&efi, "EFI/BOOT/BOOTX64.EFI"),
            esp::FileSpec::new(&spec.monitor_elf, "boot/monitor.elf"),
            esp::FileSpec::new(&menu_file, "boot/grub/grub.cfg"),
        ],
    )?;

    let partial = spec.output.with_extension("img.partial");
    disk::assemble(&partial, &layout, &guid, &core_img, &esp)?;
    std::fs::rename(&partial, &spec.output)
        .with_context(|| format!("renaming {} into place", partial.display()))?;
    Ok(())
}

/// The command line the monitor boots with: the user's, plus the boot disk's identity.
pub fn boot_cmdline(cmdline: &str, disk_guid: &str) -> String {
    let user = cmdline.trim();
    if user.is_empty() {
        format!("bootdisk={disk_guid}")
    } else {
        format!("{user} bootdisk={disk_guid}")
    }
}

/// A scratch directory next to the output (same filesystem, cleaned up by the caller).
fn tempdir_near(output: &Path) -> Result<PathBuf> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = parent.join(format!(".image-work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
