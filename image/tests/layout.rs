//! Builds a real image (GRUB, sgdisk and mtools must be installed: `make deps`) around a
//! stand-in monitor file and checks every structure firmware and GRUB rely on.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::disk::{
    BOOT_IMG_DRIVE_CHECK, BOOT_IMG_KERNEL_SECTOR, DISKBOOT_BLOCKLIST, GRUB_BOOT_IMG,
};
use image::{ImageSpec, BIOS_BOOT_FIRST_LBA, BIOS_BOOT_LAST_LBA, ESP_FIRST_LBA, SECTOR};

/// GPT partition type GUIDs in their on-disk (mixed-endian) byte order.
const BIOS_BOOT_TYPE: [u8; 16] = guid(
    0x21686148,
    0x6449,
    0x6e6f,
    [0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49],
);
const ESP_TYPE: [u8; 16] = guid(
    0xc12a7328,
    0xf81f,
    0x11d2,
    [0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b],
);

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

struct Built {
    _dir: tempfile::TempDir,
    disk: PathBuf,
    monitor: Vec<u8>,
}

fn build(cmdline: &str) -> Built {
    let dir = tempfile::tempdir().unwrap();
    // Not a real kernel: the layout does not care, and a recognisable pattern proves the
    // file on the ESP is ours, byte for byte.
    let monitor: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let elf = dir.path().join("monitor.elf");
    std::fs::write(&elf, &monitor).unwrap();
    let disk = dir.path().join("bringup.img");
    let mut spec = ImageSpec::new(&elf, &disk);
    spec.cmdline = cmdline.to_string();
    image::build(&spec).expect("image builds");
    Built {
        _dir: dir,
        disk,
        monitor,
    }
}

/// Reads a file out of the ESP inside the disk with mtools (offset syntax `@@bytes`).
fn esp_file(disk: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("mcopy")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), ESP_FIRST_LBA * SECTOR))
        .arg(format!("::/{path}"))
        .arg("-")
        .output()
        .expect("mcopy runs");
    assert!(
        out.status.success(),
        "{path} missing from the ESP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn check_disk(disk: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(disk)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let total_sectors = bytes.len() as u64 / SECTOR;

    // Protective MBR: signature, one 0xEE partition from LBA 1.
    assert_eq!(&bytes[510..512], &[0x55, 0xaa]);
    assert_eq!(
        bytes[446 + 4],
        0xee,
        "partition type of the protective entry"
    );
    assert_eq!(u32_at(&bytes, 446 + 8), 1);

    // boot.img code with grub-bios-setup's patches.
    let boot = std::fs::read(GRUB_BOOT_IMG).unwrap();
    assert_eq!(
        &bytes[..BOOT_IMG_KERNEL_SECTOR],
        &boot[..BOOT_IMG_KERNEL_SECTOR]
    );
    assert_eq!(u64_at(&bytes, BOOT_IMG_KERNEL_SECTOR), BIOS_BOOT_FIRST_LBA);
    assert_eq!(
        &bytes[BOOT_IMG_DRIVE_CHECK..BOOT_IMG_DRIVE_CHECK + 2],
        &[0x90, 0x90]
    );
    assert_eq!(
        &bytes[BOOT_IMG_DRIVE_CHECK + 2..440],
        &boot[BOOT_IMG_DRIVE_CHECK + 2..440]
    );

    // core.img's diskboot block list points at its own second sector.
    let core = (BIOS_BOOT_FIRST_LBA * SECTOR) as usize;
    assert_eq!(
        u64_at(&bytes, core + DISKBOOT_BLOCKLIST),
        BIOS_BOOT_FIRST_LBA + 1
    );
    let count = u16::from_le_bytes(
        bytes[core + DISKBOOT_BLOCKLIST + 8..][..2]
            .try_into()
            .unwrap(),
    );
    assert!(
        count > 0 && (count as u64) < BIOS_BOOT_LAST_LBA - BIOS_BOOT_FIRST_LBA,
        "sector count {count}"
    );

    // Primary GPT header and the two partitions.
    let header = &bytes[512..1024];
    assert_eq!(&header[..8], b"EFI PART");
    assert_eq!(u64_at(header, 24), 1, "my LBA");
    assert_eq!(
        u64_at(header, 32),
        total_sectors - 1,
        "backup header at the last sector"
    );
    let entries_lba = u64_at(header, 72) as usize;
    let entry_size = u32_at(header, 84) as usize;
    let entry = |i: usize| &bytes[entries_lba * 512 + i * entry_size..][..entry_size];
    assert_eq!(&entry(0)[..16], &BIOS_BOOT_TYPE);
    assert_eq!(u64_at(entry(0), 32), BIOS_BOOT_FIRST_LBA);
    assert_eq!(u64_at(entry(0), 40), BIOS_BOOT_LAST_LBA);
    assert_eq!(&entry(1)[..16], &ESP_TYPE);
    assert_eq!(u64_at(entry(1), 32), ESP_FIRST_LBA);
    assert_eq!(
        u64_at(entry(1), 40),
        total_sectors - 34,
        "ESP runs to the end"
    );
    assert!(entry(2).iter().all(|&b| b == 0), "only two partitions");

    // Backup header mirrors the primary.
    let backup = &bytes[(total_sectors as usize - 1) * 512..][..512];
    assert_eq!(&backup[..8], b"EFI PART");
    assert_eq!(u64_at(backup, 24), total_sectors - 1);

    // The ESP is FAT32.
    let esp = (ESP_FIRST_LBA * SECTOR) as usize;
    assert_eq!(&bytes[esp + 82..esp + 90], b"FAT32   ");
    bytes
}

#[test]
fn hybrid_disk_layout() {
    let built = build("dma=16M");
    let bytes = check_disk(&built.disk);
    assert_eq!(bytes.len() as u64, image::DEFAULT_DISK_BYTES);

    assert_eq!(esp_file(&built.disk, "boot/monitor.elf"), built.monitor);
    let efi = esp_file(&built.disk, "EFI/BOOT/BOOTX64.EFI");
    assert_eq!(&efi[..2], b"MZ", "BOOTX64.EFI is a PE image");
    let cfg = String::from_utf8(esp_file(&built.disk, "boot/grub/grub.cfg")).unwrap();
    assert!(cfg.contains("set timeout=0"));
    assert!(cfg.contains("--speed=115200"));
    assert!(cfg.contains("set bringup_cmdline=\"dma=16M bootdisk="));
    assert!(cfg.contains("multiboot2 /boot/monitor.elf $bringup_cmdline"));
}

/// The disk GUID sgdisk wrote into the GPT header is the one on the kernel command line, as
/// the monitor parses both (drivers::gpt): `nvme write` recognises the boot disk by it.
#[test]
fn the_boot_disk_guid_is_on_the_command_line() {
    let built = build("dma=16M");
    let bytes = std::fs::read(&built.disk).unwrap();
    let lba1 = &bytes[SECTOR as usize..2 * SECTOR as usize];
    let on_disk = drivers::gpt::disk_guid(lba1).expect("LBA 1 is a GPT header");
    let cfg = String::from_utf8(esp_file(&built.disk, "boot/grub/grub.cfg")).unwrap();
    let line = cfg
        .lines()
        .find(|l| l.starts_with("set bringup_cmdline="))
        .unwrap();
    let on_cmdline = drivers::gpt::boot_disk_from_cmdline(line.trim_end_matches('"'))
        .expect("bootdisk= on the command line");
    assert_eq!(on_disk, on_cmdline, "{line}");
    // A chosen GUID is used as given.
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("m.elf");
    std::fs::write(&elf, vec![1u8; 4096]).unwrap();
    let disk = dir.path().join("d.img");
    let mut spec = ImageSpec::new(&elf, &disk);
    spec.disk_guid = Some("6b1c2e4a-0d3f-4e5a-9b8c-7d6e5f4a3b2c".into());
    image::build(&spec).unwrap();
    let chosen = std::fs::read(&disk).unwrap();
    let chosen_guid = drivers::gpt::disk_guid(&chosen[512..1024]).unwrap();
    assert_eq!(chosen_guid.text(), "6B1C2E4A-0D3F-4E5A-9B8C-7D6E5F4A3B2C");
    assert_ne!(chosen_guid, on_disk, "the first build's GUID was its own");
    spec.disk_guid = Some("not-a-guid".into());
    assert!(image::build(&spec)
        .unwrap_err()
        .to_string()
        .contains("not of the form"));
}

#[test]
fn cmdline_with_grub_metacharacters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("m.elf");
    std::fs::write(&elf, b"x").unwrap();
    let mut spec = ImageSpec::new(&elf, dir.path().join("d.img"));
    spec.cmdline = "dma=16M\"; reboot".into();
    let err = image::build(&spec).unwrap_err().to_string();
    assert!(err.contains("may not contain"), "{err}");
}

#[test]
fn gce_tarball_is_single_oldgnu_member_of_whole_gib() {
    let built = build(image::DEFAULT_CMDLINE);
    let out = built.disk.parent().unwrap().join("gce");
    let tarball = out.join("bringup-gce.tar.gz");
    image::gce::build(&built.disk, &out, &tarball).expect("gce image builds");
    assert!(
        std::fs::metadata(&tarball).unwrap().len() < 8 << 20,
        "sparse disk stays small"
    );

    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&tarball).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut members = archive.entries().unwrap();
    let mut entry = members.next().expect("one member").unwrap();
    let header = entry.header();
    assert!(header.as_gnu().is_some(), "GNU header");
    assert_eq!(&header.as_bytes()[257..265], b"ustar  \0", "oldgnu magic");
    assert_eq!(entry.path().unwrap().to_str(), Some("disk.raw"));
    let size = entry.size();
    assert!(
        size >= image::GIB && size.is_multiple_of(image::GIB),
        "size {size}"
    );

    // The first 64 MiB hold the whole hybrid layout; the rest must be zeros.
    let mut head = vec![0u8; image::DEFAULT_DISK_BYTES as usize];
    entry.read_exact(&mut head).unwrap();
    // Stream the remaining ~1 GiB: all zeros except the backup GPT in the last 33 sectors.
    let mut chunk = vec![0u8; 1 << 20];
    let mut tail = Vec::new();
    let mut remaining = size - head.len() as u64;
    while remaining > 0 {
        let n = remaining.min(chunk.len() as u64) as usize;
        entry.read_exact(&mut chunk[..n]).unwrap();
        remaining -= n as u64;
        if remaining == 0 {
            tail = chunk[..n].to_vec();
        } else {
            assert!(chunk[..n].iter().all(|&b| b == 0), "data past the image");
        }
    }
    let last_sector = tail.len() - 512;
    assert!(tail[..last_sector - 32 * 512].iter().all(|&b| b == 0));
    assert_eq!(
        &tail[last_sector..last_sector + 8],
        b"EFI PART",
        "backup GPT moved to the end"
    );
    drop(entry);
    assert!(members.next().is_none(), "exactly one member");

    let raw = out.join("disk.raw");
    check_gpt_header(&raw, size);
    assert_eq!(esp_file(&raw, "boot/monitor.elf"), built.monitor);
    assert_eq!(&esp_file(&raw, "EFI/BOOT/BOOTX64.EFI")[..2], b"MZ");
}

fn check_gpt_header(disk: &Path, size: u64) {
    let mut head = vec![0u8; 1024];
    std::fs::File::open(disk)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head[512..520], b"EFI PART");
    assert_eq!(
        u64_at(&head[512..], 32),
        size / SECTOR - 1,
        "alternate LBA at the end"
    );
}
