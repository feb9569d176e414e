//! The raw disk: GPT (via sgdisk), GRUB's boot.img in the MBR, core.img, the ESP.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tools::run;
use crate::{BIOS_BOOT_FIRST_LBA, BIOS_BOOT_LAST_LBA, ESP_FIRST_LBA, SECTOR};

/// Bytes of MBR boot code boot.img may own: the partition table starts at 446, the disk
/// signature at 440.
pub const MBR_CODE_BYTES: usize = 440;
/// boot.img: u64 LBA of core.img's first sector (GRUB's `kernel_sector`).
pub const BOOT_IMG_KERNEL_SECTOR: usize = 0x5c;
/// boot.img: the 2-byte jump that would probe the boot drive as a floppy; two NOPs skip
/// it, as grub-bios-setup does for hard disks.
pub const BOOT_IMG_DRIVE_CHECK: usize = 0x66;
/// diskboot (core.img's first sector): the first block-list entry sits 12 bytes before
/// the sector's end: u64 start LBA, u16 sector count, u16 segment.
pub const DISKBOOT_BLOCKLIST: usize = 0x200 - 12;
/// Sectors at the end of the disk the backup GPT occupies (header + 128 entries).
const BACKUP_GPT_SECTORS: u64 = 33;
pub const GRUB_BOOT_IMG: &str = "/usr/lib/grub/i386-pc/boot.img";

/// Partition bounds for a disk of a given size.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub disk_bytes: u64,
    pub esp_first_lba: u64,
    pub esp_last_lba: u64,
}

impl Layout {
    pub fn for_size(disk_bytes: u64) -> Layout {
        let total = disk_bytes / SECTOR;
        Layout {
            disk_bytes,
            esp_first_lba: ESP_FIRST_LBA,
            esp_last_lba: total - BACKUP_GPT_SECTORS - 1,
        }
    }

    pub fn esp_sectors(&self) -> u64 {
        self.esp_last_lba - self.esp_first_lba + 1
    }
}

/// A random (version 4, RFC 9562 §5.4) GUID in text form, upper case as sgdisk prints it:
/// the disk GUID GPT expects to be unique per disk.
pub fn random_guid() -> Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the disk GUID")?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// `guid` if it is `8-4-4-4-12` hex digits (upper-cased), else a clear error.
pub fn check_guid(guid: &str) -> Result<String> {
    let groups: Vec<&str> = guid.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        bail!("disk GUID {guid:?} is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX");
    }
    Ok(guid.to_ascii_uppercase())
}

/// Writes the whole disk to `out`, with `disk_guid` as the GPT disk GUID.
pub fn assemble(
    out: &Path,
    layout: &Layout,
    disk_guid: &str,
    core_img: &Path,
    esp: &Path,
) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    file.set_len(layout.disk_bytes)?;
    drop(file);

    let mut gpt = Command::new("sgdisk");
    gpt.args(["-Z", "-a", "1"])
        .arg(format!("-U={disk_guid}"))
        .arg(format!("-n=1:{BIOS_BOOT_FIRST_LBA}:{BIOS_BOOT_LAST_LBA}"))
        .args(["-t=1:EF02", "-c=1:BIOS boot"])
        .arg(format!(
            "-n=2:{}:{}",
            layout.esp_first_lba, layout.esp_last_lba
        ))
        .args(["-t=2:EF00", "-c=2:EFI system partition"])
        .arg(out);
    run(gpt)?;

    let core = std::fs::read(core_img).context("reading core.img")?;
    let core_capacity = (BIOS_BOOT_LAST_LBA - BIOS_BOOT_FIRST_LBA + 1) * SECTOR;
    if core.len() as u64 > core_capacity || core.len() < SECTOR as usize {
        bail!(
            "core.img is {} bytes; the BIOS boot partition holds {core_capacity}",
            core.len()
        );
    }
    let boot = std::fs::read(GRUB_BOOT_IMG)
        .with_context(|| format!("reading {GRUB_BOOT_IMG} (install grub-pc-bin)"))?;
    if boot.len() != SECTOR as usize {
        bail!("{GRUB_BOOT_IMG} is {} bytes, expected 512", boot.len());
    }

    let mut disk = OpenOptions::new().read(true).write(true).open(out)?;
    // MBR: boot.img's code, keeping the protective partition table sgdisk wrote.
    let mut mbr = [0u8; SECTOR as usize];
    disk.read_exact(&mut mbr)?;
    mbr[..MBR_CODE_BYTES].copy_from_slice(&boot[..MBR_CODE_BYTES]);
    patch_boot_img(&mut mbr, BIOS_BOOT_FIRST_LBA);
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&mbr)?;

    // core.img, contiguous, with diskboot's block list pointing at its second sector.
    let mut core = core;
    patch_diskboot(&mut core, BIOS_BOOT_FIRST_LBA + 1);
    disk.seek(SeekFrom::Start(BIOS_BOOT_FIRST_LBA * SECTOR))?;
    disk.write_all(&core)?;

    // The ESP filesystem, copied in; its holes stay holes.
    copy_sparse(esp, &mut disk, layout.esp_first_lba * SECTOR)?;
    disk.sync_all()?;
    Ok(())
}

/// What grub-bios-setup would patch in boot.img for a hard disk.
pub fn patch_boot_img(mbr: &mut [u8], core_lba: u64) {
    mbr[BOOT_IMG_KERNEL_SECTOR..BOOT_IMG_KERNEL_SECTOR + 8]
        .copy_from_slice(&core_lba.to_le_bytes());
    mbr[BOOT_IMG_DRIVE_CHECK] = 0x90;
    mbr[BOOT_IMG_DRIVE_CHECK + 1] = 0x90;
}

/// Points diskboot's first block-list entry at the rest of core.img. The sector count
/// that follows was filled in by grub-mkimage for a contiguous core.img.
pub fn patch_diskboot(core: &mut [u8], rest_lba: u64) {
    core[DISKBOOT_BLOCKLIST..DISKBOOT_BLOCKLIST + 8].copy_from_slice(&rest_lba.to_le_bytes());
}

/// Copies `src` into `dst` at `offset`, skipping all-zero blocks (the destination is a
/// fresh sparse file, already zero there).
fn copy_sparse(src: &Path, dst: &mut File, offset: u64) -> Result<()> {
    const BLOCK: usize = 64 * 1024;
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut buf = vec![0u8; BLOCK];
    let mut at = offset;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(at))?;
            dst.write_all(&buf[..n])?;
        }
        at += n as u64;
    }
    Ok(())
}

fn read_full(input: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
