//! System test (issue 23): NVMe writes through QEMU 7.2's own `-device nvme`, on several
//! controllers bound at once. One boot does it all: the host reads the disk files and finds
//! exactly the pattern or seeded bytes (drivers::pattern, the monitor's own definition) in
//! exactly the written blocks and nothing else changed; `nvme verify` finds the byte the host
//! planted; FUA and FLUSH reach QEMU (its trace events); the boot disk is refused; a
//! `readonly=on` drive answers with a named NVMe status. A second short boot with `dma=512K`
//! (issue 22) reads and writes through a pool that cannot hold one MDTS-sized buffer.
//! Needs target/bringup.img (`make image`) and mtools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drivers::pattern::Pattern;
use evidence::Body;
use host_client::{CommandOutcome, QemuConfig, Session};
use sha2::{Digest, Sha256};

#[path = "support/nvme_disk.rs"]
mod nvme_disk;
use nvme_disk::{random_file, run};

const A1_BLOCKS: u64 = 4096; // controller A, ns 1: 512-byte blocks
const A2_BLOCKS: u64 = 512; // controller A, ns 2: 4096-byte blocks
const B_BLOCKS: u64 = 16384; // controller B: the scratch disk, 8 MiB
const RO_BLOCKS: u64 = 256;

fn ok(s: &mut Session, line: &str) -> CommandOutcome {
    let out = run(s, line);
    assert!(out.is_ok(), "{line}: {:?}", out.result);
    out
}

/// The serial -> bdf map from `nvme list`'s nvme.disk frames, and the frames.
fn list(s: &mut Session) -> Vec<evidence::NvmeDisk> {
    let out = ok(s, "nvme list");
    out.bodies_of_kind("nvme.disk")
        .into_iter()
        .map(|b| match b {
            Body::NvmeDisk(d) => d.clone(),
            _ => unreachable!(),
        })
        .collect()
}

fn bdf_of(disks: &[evidence::NvmeDisk], serial: &str) -> String {
    let d = disks
        .iter()
        .find(|d| d.serial == serial)
        .unwrap_or_else(|| panic!("no controller with serial {serial}: {disks:?}"));
    format!("{:02x}:{:02x}.{}", d.bus, d.device, d.function)
}

/// Asserts the file holds `before` everywhere except blocks lba..lba+count, which hold the
/// pattern; returns the SHA-256 of the written range.
fn assert_written(
    path: &Path,
    before: &[u8],
    block: u64,
    lba: u64,
    count: u64,
    p: Pattern,
) -> [u8; 32] {
    let after = std::fs::read(path).unwrap();
    assert_eq!(after.len(), before.len());
    let (start, end) = ((lba * block) as usize, ((lba + count) * block) as usize);
    let first_diff = |a: &[u8], b: &[u8]| a.iter().zip(b).position(|(x, y)| x != y);
    assert_eq!(
        first_diff(&after[..start], &before[..start]),
        None,
        "bytes before the range changed"
    );
    assert_eq!(
        first_diff(&after[end..], &before[end..]),
        None,
        "bytes after the range changed"
    );
    let want = p.bytes(lba * block, end - start);
    assert_eq!(
        first_diff(&after[start..end], &want),
        None,
        "the range is not the {p}"
    );
    Sha256::digest(&want).into()
}

fn write_frame(out: &CommandOutcome) -> evidence::NvmeWrite {
    match out.bodies_of_kind("nvme.write").first() {
        Some(Body::NvmeWrite(w)) => w.clone(),
        _ => panic!("no nvme.write frame for {}", out.line),
    }
}

/// QEMU's trace log lines naming `event`.
fn traced(log: &Path, event: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(event))
        .map(String::from)
        .collect()
}

#[test]
fn nvme_write_verify_flush_on_several_controllers() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let a1 = random_file(&p("a1.img"), (A1_BLOCKS * 512) as usize, 0xa1);
    let a2 = random_file(&p("a2.img"), (A2_BLOCKS * 4096) as usize, 0xa2);
    let b = random_file(&p("b.img"), (B_BLOCKS * 512) as usize, 0xb0);
    let ro = random_file(&p("ro.img"), (RO_BLOCKS * 512) as usize, 0x70);
    let boot = QemuConfig::default().image;
    assert!(
        boot.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let trace = p("qemu-trace.log");
    let d = |path: &PathBuf, id: &str, extra: &str| {
        format!("file={},if=none,format=raw,id={id}{extra}", path.display())
    };
    let extra = [
        "-drive".into(),
        d(&p("a1.img"), "a1", ""),
        "-drive".into(),
        d(&p("a2.img"), "a2", ""),
        "-device".into(),
        "nvme,id=ctrla,serial=bringup-wa".into(),
        "-device".into(),
        "nvme-ns,drive=a1,bus=ctrla,nsid=1".into(),
        "-device".into(),
        "nvme-ns,drive=a2,bus=ctrla,nsid=2,logical_block_size=4096,physical_block_size=4096".into(),
        "-drive".into(),
        d(&p("b.img"), "b", ""),
        "-device".into(),
        "nvme,serial=bringup-wb,drive=b".into(),
        // The boot image itself as an NVMe disk (snapshot: a failed guard cannot hurt it).
        "-drive".into(),
        d(&boot, "bootnvme", ",snapshot=on"),
        "-device".into(),
        "nvme,serial=bringup-boot,drive=bootnvme".into(),
        "-drive".into(),
        d(&p("ro.img"), "ro", ",readonly=on"),
        "-device".into(),
        "nvme,serial=bringup-ro,drive=ro".into(),
        // QEMU 7.2's trace events (hw/nvme/trace-events) for FLUSH and every I/O command.
        "-trace".into(),
        "enable=pci_nvme_flush_ns".into(),
        "-trace".into(),
        "enable=pci_nvme_io_cmd".into(),
        "-trace".into(),
        "enable=pci_nvme_write".into(),
        "-D".into(),
        trace.display().to_string(),
    ];
    let cfg = QemuConfig {
        qmp: true,
        extra_args: extra.to_vec(),
        ..QemuConfig::default()
    };
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));

    // Every controller, bound at once, with its namespaces.
    let disks = list(&mut s);
    let summary: Vec<(&str, u32, u64, u32, bool)> = disks
        .iter()
        .map(|d| {
            (
                d.serial.as_str(),
                d.nsid,
                d.blocks,
                d.block_size,
                d.boot_disk,
            )
        })
        .collect();
    for want in [
        ("bringup-wa", 1, A1_BLOCKS, 512, false),
        ("bringup-wa", 2, A2_BLOCKS, 4096, false),
        ("bringup-wb", 1, B_BLOCKS, 512, false),
        (
            "bringup-boot",
            1,
            image::DEFAULT_DISK_BYTES / 512,
            512,
            true,
        ),
        ("bringup-ro", 1, RO_BLOCKS, 512, false),
    ] {
        assert!(summary.contains(&want), "{want:?} missing from {summary:?}");
    }
    assert!(disks
        .iter()
        .all(|d| (d.vendor_id, d.device_id) == (0x1b36, 0x0010)));
    let (ca, cb) = (bdf_of(&disks, "bringup-wa"), bdf_of(&disks, "bringup-wb"));
    let (cboot, cro) = (bdf_of(&disks, "bringup-boot"), bdf_of(&disks, "bringup-ro"));
    // Several bound: a command that names none is ambiguous.
    assert_eq!(
        run(&mut s, "nvme read 0").error_code(),
        Some("ambiguous-controller")
    );

    // Seeded, FUA, on controller A ns 1: exactly the range, exactly the stream.
    let seeded = Pattern::Seeded(11);
    let out = ok(
        &mut s,
        &format!("nvme write 100 300 --seed 11 --ns 1 --bdf {ca} --fua"),
    );
    let w = write_frame(&out);
    assert_eq!(
        (w.nsid, w.lba, w.count, w.bytes, w.fua),
        (1, 100, 300, 300 * 512, true)
    );
    assert_eq!((w.pattern.as_str(), w.pattern_value), ("seed", 11));
    let sha = assert_written(&p("a1.img"), &a1, 512, 100, 300, seeded);
    assert_eq!(w.sha256, sha, "the monitor's digest of what it wrote");
    // A byte pattern on the 4 KiB namespace.
    ok(
        &mut s,
        &format!("nvme write 5 7 --pattern 0x5a --ns 2 --bdf {ca}"),
    );
    assert_written(&p("a2.img"), &a2, 4096, 5, 7, Pattern::Byte(0x5a));
    // The scratch controller: 8 MiB in many commands, crc32 of what was written.
    let out = ok(
        &mut s,
        &format!("nvme write 0 {B_BLOCKS} --seed 3 --bdf {cb} --digest crc32"),
    );
    let w = write_frame(&out);
    assert!(w.commands >= 16, "{} commands", w.commands);
    assert_written(&p("b.img"), &b, 512, 0, B_BLOCKS, Pattern::Seeded(3));
    assert_eq!(
        w.crc32,
        crc32fast::hash(&Pattern::Seeded(3).bytes(0, (B_BLOCKS * 512) as usize))
    );
    ok(&mut s, &format!("nvme flush --bdf {cb}"));
    // The read-back digest equals the host's sha256sum of the same range.
    let out = ok(&mut s, &format!("nvme read 100 300 --ns 1 --bdf {ca}"));
    let Some(Body::NvmeRead(r)) = out.bodies_of_kind("nvme.read").first().cloned() else {
        panic!("no nvme.read frame")
    };
    assert_eq!(r.sha256, sha);

    // FUA reached QEMU: the WRITEs it fetched from controller A's I/O submission queue (the
    // ring in guest memory, read back through QMP) carry CDW12 bit 30 exactly on the --fua
    // write. QEMU 7.2 and 10.1 log no CDW12 and pass no FUA to the block layer (their
    // blk_co_pwritev trace shows flags 0x0 for it), so the ring is where it can be seen.
    let sqes = io_sq_entries(&mut s, dir.path(), &ca);
    let fua_of = |nsid: u32, slba: u64| {
        let e = sqes
            .iter()
            .find(|e| e[0] == 0x01 && dw(e, 1) == nsid && dw(e, 10) as u64 == slba)
            .unwrap_or_else(|| panic!("no WRITE of ns {nsid} lba {slba} in the ring"));
        (dw(e, 12) & 0xffff, dw(e, 12) >> 30 & 1)
    };
    assert_eq!(fua_of(1, 100), (299, 1), "NLB 299 with FUA");
    assert_eq!(fua_of(2, 5), (6, 0), "no FUA without --fua");

    // FLUSH reached QEMU: its trace shows it for controller B's namespace.
    let flushes = traced(&trace, "pci_nvme_flush_ns");
    assert!(!flushes.is_empty(), "no pci_nvme_flush_ns in QEMU's trace");
    let writes = traced(&trace, "pci_nvme_write ");
    assert!(
        writes.len() as u64 >= 1 + 1 + w.commands,
        "{} traced writes",
        writes.len()
    );

    // Verify: ok, then the byte the host planted.
    let out = ok(
        &mut s,
        &format!("nvme verify 0 {B_BLOCKS} --seed 3 --bdf {cb}"),
    );
    assert!(matches!(out.bodies_of_kind("nvme.verify").first(), Some(Body::NvmeVerify(v)) if v.ok));
    let mut planted = std::fs::read(p("b.img")).unwrap();
    planted[(1234 * 512 + 77) as usize] ^= 0x20;
    planted[(4000 * 512) as usize] ^= 0x01;
    std::fs::write(p("b.img"), &planted).unwrap();
    let out = run(
        &mut s,
        &format!("nvme verify 0 {B_BLOCKS} --seed 3 --bdf {cb}"),
    );
    assert_eq!(
        out.error_code(),
        Some("nvme-verify-mismatch"),
        "{:?}",
        out.result
    );
    let Some(Body::NvmeVerify(v)) = out.bodies_of_kind("nvme.verify").first().cloned() else {
        panic!("no nvme.verify frame")
    };
    assert_eq!((v.ok, v.mismatch_lba, v.mismatch_offset), (false, 1234, 77));
    assert_eq!(v.found ^ v.expected, 0x20);

    // The boot disk is refused; forcing is possible but not tried on the shared image.
    let out = run(
        &mut s,
        &format!("nvme write 10 1 --pattern 1 --bdf {cboot}"),
    );
    assert_eq!(out.error_code(), Some("boot-disk"), "{:?}", out.result);
    assert!(out.bodies_of_kind("nvme.write").is_empty());
    // A read-only drive: QEMU 7.2 turns the backend's refusal into Write Fault (SCT 2h,
    // SC 80h), and the monitor names it.
    let out = run(&mut s, &format!("nvme write 0 1 --pattern 1 --bdf {cro}"));
    assert_eq!(
        out.error_code(),
        Some("nvme-command-failed"),
        "{:?}",
        out.result
    );
    let message = out.error_message().unwrap().to_string();
    eprintln!("read-only drive: {message}");
    assert!(
        message.contains("WRITE failed: write-fault (SCT 0x2, SC 0x80"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(p("ro.img")).unwrap(),
        ro,
        "the read-only file is unchanged"
    );
    // The controller is still usable after the failed write.
    ok(&mut s, &format!("nvme read 0 8 --bdf {cro}"));

    // `teardown nvme` tears every controller down.
    let down = ok(&mut s, "teardown nvme");
    let unmapped = down
        .bodies_of_kind("teardown.step")
        .iter()
        .filter(|b| matches!(b, Body::TeardownStep(t) if t.step == "unmap" && t.ok))
        .count();
    assert_eq!(unmapped, 4, "every controller torn down");
    for bdf in [&ca, &cb, &cboot, &cro] {
        assert!(
            down.text.contains(bdf.as_str()),
            "{bdf} not in\n{}",
            down.text
        );
    }
    assert_eq!(
        run(&mut s, "nvme flush").error_code(),
        Some("ambiguous-controller")
    );
}

fn dw(entry: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(entry[4 * i..4 * i + 4].try_into().unwrap())
}

/// The 64-byte entries of the I/O submission queue of the controller at `bdf`, as guest
/// memory holds them (the ledger names the ring's page, QMP `pmemsave` reads it).
fn io_sq_entries(s: &mut Session, dir: &Path, bdf: &str) -> Vec<Vec<u8>> {
    let out = ok(s, "dma");
    let Some(Body::DmaLedger(ledger)) = out.bodies_of_kind("dma.ledger").first().cloned() else {
        panic!("no dma.ledger frame")
    };
    let owner = format!("nvme {bdf}");
    let sq = ledger
        .entries
        .iter()
        .find(|e| e.owner == owner && e.purpose == "io-sq")
        .unwrap_or_else(|| panic!("no io-sq of {owner}: {:?}", ledger.entries));
    let path = dir.join("io-sq.bin");
    let size = sq.pages as u64 * 4096;
    s.qmp(
        "pmemsave",
        serde_json::json!({ "val": sq.phys, "size": size, "filename": path.display().to_string() }),
    )
    .unwrap();
    std::fs::read(&path)
        .unwrap()
        .chunks(64)
        .map(|c| c.to_vec())
        .collect()
}

/// A copy of the boot image whose grub.cfg says `dma=512K` (edited with mtools, as the
/// menu's comment tells users to).
fn image_with_cmdline(dir: &Path, from: &str, to: &str) -> PathBuf {
    let img = dir.join("small-pool.img");
    std::fs::copy(QemuConfig::default().image, &img).unwrap();
    let at = format!(
        "{}@@{}",
        img.display(),
        image::ESP_FIRST_LBA * image::SECTOR
    );
    let cfg = Command::new("mtype")
        .args(["-i", &at, "::/boot/grub/grub.cfg"])
        .output()
        .unwrap();
    assert!(
        cfg.status.success(),
        "mtype: {}",
        String::from_utf8_lossy(&cfg.stderr)
    );
    let text = String::from_utf8(cfg.stdout).unwrap().replace(from, to);
    assert!(text.contains(to));
    let edited = dir.join("grub.cfg");
    std::fs::write(&edited, text).unwrap();
    let status = Command::new("mcopy")
        .args(["-o", "-i", &at])
        .arg(&edited)
        .arg("::/boot/grub/grub.cfg")
        .status()
        .unwrap();
    assert!(status.success());
    img
}

/// Issue 22: with `dma=512K`, `nvme read 0 8` failed ("wanted 128 contiguous pages, 123
/// free"): buffers were sized for MDTS. Now reads and writes size them by the request and
/// the pool.
#[test]
fn nvme_read_and_write_with_a_512k_pool() {
    let dir = tempfile::tempdir().unwrap();
    let disk = random_file(&dir.path().join("d.img"), 4096 * 512, 0xd0);
    let cfg = QemuConfig {
        image: image_with_cmdline(dir.path(), "dma=64M", "dma=512K"),
        nvme: host_client::qemu::NvmeDrive::numbered(&[dir.path().join("d.img")]),
        ..QemuConfig::default()
    };
    let mut s = Session::start_qemu(&cfg).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    assert_eq!(boot.banner.dma_bytes, 512 << 10);
    let out = ok(&mut s, "nvme read 0 8");
    let Some(Body::NvmeRead(r)) = out.bodies_of_kind("nvme.read").first().cloned() else {
        panic!("no nvme.read frame")
    };
    let want: [u8; 32] = Sha256::digest(&disk[..8 * 512]).into();
    assert_eq!(r.sha256, want);
    // Far more than the pool holds at once: smaller chunks, fewer in flight.
    let out = ok(&mut s, "nvme read 0 4096");
    let Some(Body::NvmeRead(r)) = out.bodies_of_kind("nvme.read").first().cloned() else {
        panic!("no nvme.read frame")
    };
    assert_eq!(r.sha256, <[u8; 32]>::from(Sha256::digest(&disk)));
    ok(&mut s, "nvme write 0 4096 --seed 5");
    ok(&mut s, "nvme verify 0 4096 --seed 5");
    ok(&mut s, "teardown nvme");
    assert_written(
        &dir.path().join("d.img"),
        &disk,
        512,
        0,
        4096,
        Pattern::Seeded(5),
    );
}
