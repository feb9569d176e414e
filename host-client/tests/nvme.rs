//! System test (issue 4): the real image reads QEMU's NVMe disks through the bounce pool.
//! Random disk images written here; every read is compared by SHA-256 with the host's
//! bytes; identify matches what QEMU was given; bad reads fail cleanly; teardown and
//! re-bind work. One boot per firmware. Needs target/bringup.img (`make image`).

use std::path::Path;
use std::time::Duration;

use evidence::Body;
use host_client::{QemuConfig, Session};
use sha2::{Digest, Sha256};

#[path = "support/nvme_disk.rs"]
mod nvme_disk;
use nvme_disk::{random_file, run};

const SERIAL: &str = "bringup-nvme-7";
const NS1_BLOCKS: u64 = 40_000; // 512-byte blocks, ~20 MiB
const NS2_BLOCKS: u64 = 600; // 4096-byte blocks

fn read_ok(s: &mut Session, disk: &[u8], block: u64, ns: u32, lba: u64, count: u64) {
    let out = run(s, &format!("nvme read {lba} {count} --ns {ns}"));
    assert!(out.is_ok(), "{line}: {:?}", out.result, line = out.line);
    let bodies = out.bodies_of_kind("nvme.read");
    let Some(Body::NvmeRead(r)) = bodies.first() else {
        panic!("no nvme.read frame for {}", out.line)
    };
    let bytes = &disk[(lba * block) as usize..((lba + count) * block) as usize];
    let want: [u8; 32] = Sha256::digest(bytes).into();
    assert_eq!(
        (r.nsid, r.lba, r.count, r.bytes),
        (ns, lba, count, count * block)
    );
    assert_eq!(r.sha256, want, "SHA-256 of ns {ns} lba {lba} count {count}");
    assert_eq!(&r.first_bytes[..], &bytes[..16]);
}

fn check_identify(s: &mut Session) {
    let out = run(s, "nvme identify");
    assert!(out.is_ok(), "{:?}", out.result);
    let Some(Body::NvmeController(c)) = out.bodies_of_kind("nvme.identify").first().cloned() else {
        panic!("no nvme.identify frame")
    };
    assert_eq!(c.serial, SERIAL);
    assert_eq!(c.model, "QEMU NVMe Ctrl");
    assert_eq!(c.vid, 0x1b36);
    assert_eq!(c.active_namespaces, [1, 2]);
    assert!(c.version >= 0x0001_0200, "version {:#x}", c.version);
    let namespaces: Vec<(u32, u64, u32)> = out
        .bodies_of_kind("nvme.namespace")
        .iter()
        .map(|b| match b {
            Body::NvmeNamespace(n) => (n.nsid, n.blocks, n.block_size),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(namespaces, [(1, NS1_BLOCKS, 512), (2, NS2_BLOCKS, 4096)]);
}

fn nvme_end_to_end(uefi: bool) {
    let dir = tempfile::tempdir().unwrap();
    let disk1 = random_file(
        &dir.path().join("ns1.img"),
        (NS1_BLOCKS * 512) as usize,
        0x1234 + uefi as u64,
    );
    let disk2 = random_file(
        &dir.path().join("ns2.img"),
        (NS2_BLOCKS * 4096) as usize,
        0x9876,
    );
    let p = |name: &str| dir.path().join(name).display().to_string();
    let extra = [
        "-drive",
        &format!("file={},if=none,format=raw,id=d1", p("ns1.img")),
        "-drive",
        &format!("file={},if=none,format=raw,id=d2", p("ns2.img")),
        "-device",
        &format!("nvme,id=nvme0,serial={SERIAL}"),
        "-device",
        "nvme-ns,drive=d1,bus=nvme0,nsid=1",
        "-device",
        "nvme-ns,drive=d2,bus=nvme0,nsid=2,logical_block_size=4096,physical_block_size=4096",
    ];
    let cfg = QemuConfig {
        uefi,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));

    check_identify(&mut s);
    let last = NS1_BLOCKS - 1;
    for (lba, count) in [
        (0, 1),
        (1, 8),
        (100, 255),
        (777, 256),
        (5000, 2048),
        (30_000, 8192),
        (last, 1),
        (last - 254, 255),
    ] {
        read_ok(&mut s, &disk1, 512, 1, lba, count);
    }
    for (lba, count) in [(0, 1), (7, 8), (300, 256), (NS2_BLOCKS - 1, 1)] {
        read_ok(&mut s, &disk2, 4096, 2, lba, count);
    }

    // Bad requests: named errors, and the monitor stays usable.
    let cases = [
        (format!("nvme read {NS1_BLOCKS}"), "nvme-out-of-range"),
        (format!("nvme read {} 2", last), "nvme-out-of-range"),
        ("nvme read 0 0".to_string(), "bad-argument"),
        ("nvme read 0x1ffffffffffffffff".to_string(), "bad-number"),
        ("nvme read 0 1 --ns 9".to_string(), "nvme-no-such-namespace"),
        ("nvme identify 00:1f.7".to_string(), "no-such-function"),
    ];
    for (line, code) in cases {
        let out = run(&mut s, &line);
        assert_eq!(out.error_code(), Some(code), "{line}: {:?}", out.result);
        assert!(out.bodies_of_kind("nvme.read").is_empty());
    }
    let past = run(&mut s, &format!("nvme read {NS1_BLOCKS}"));
    assert!(past
        .error_message()
        .unwrap()
        .contains("past the end of namespace 1"));

    // Throughput, without and with the digest.
    for line in ["nvme read 0 32768 --no-digest", "nvme read 0 32768"] {
        let out = run(&mut s, line);
        assert!(out.is_ok());
        if let Some(Body::NvmeRead(r)) = out.bodies_of_kind("nvme.read").first() {
            eprintln!(
                "THROUGHPUT {} {line}: {} bytes in {} us = {:.1} MB/s",
                if uefi { "OVMF" } else { "SeaBIOS" },
                r.bytes,
                r.elapsed_us,
                r.bytes as f64 / r.elapsed_us.max(1) as f64
            );
        }
    }

    let down = run(&mut s, "teardown nvme");
    assert!(down.is_ok(), "{:?}", down.result);
    let steps: Vec<(String, bool)> = down
        .bodies_of_kind("teardown.step")
        .iter()
        .map(|b| match b {
            Body::TeardownStep(t) => (t.step.clone(), t.ok),
            _ => unreachable!(),
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "delete-io-sq",
            "delete-io-cq",
            "shutdown",
            "disable",
            "bus-master-off",
            "release-dma",
            "unmap"
        ]
    );
    assert!(steps.iter().all(|(_, ok)| *ok));
    let Some(Body::DmaLedger(ledger)) = down.bodies_of_kind("dma.ledger").first().cloned() else {
        panic!("no ledger frame")
    };
    assert!(
        ledger.entries.iter().all(|e| !e.owner.starts_with("nvme")),
        "{:?}",
        ledger.entries
    );
    assert_eq!(ledger.quarantined_pages, 0);
    let none = run(&mut s, "teardown nvme");
    assert!(none.is_ok());

    // Bind again in the same boot.
    check_identify(&mut s);
    read_ok(&mut s, &disk1, 512, 1, last, 1);
    read_ok(&mut s, &disk2, 4096, 2, 0, 600);
}

#[test]
fn nvme_under_seabios() {
    nvme_end_to_end(false);
}

#[test]
fn nvme_under_ovmf() {
    nvme_end_to_end(true);
}

/// Physical page 0 as QEMU holds it (QMP `pmemsave`).
fn page_zero(s: &mut Session, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    s.qmp(
        "pmemsave",
        serde_json::json!({ "val": 0, "size": 4096, "filename": path.display().to_string() }),
    )
    .unwrap();
    std::fs::read(&path).unwrap()
}

/// Issue 11: a namespace with separate metadata (`ms=8`, FLBAS bit 4 = 0) makes the
/// controller write 8 bytes a block to MPTR. A real controller given MPTR = 0 writes them to
/// physical page 0, outside the bounce pool (QEMU 7.2 skips the transfer when MPTR is 0, so
/// there it is silently lost). Proof that MPTR now names a pool buffer: the metadata the
/// monitor reports for the first block is the image's, the data is right, and page 0 is
/// unchanged. Extended-LBA metadata (`mset=1`) is refused with a named error.
#[test]
fn nvme_separate_metadata_never_lands_outside_the_pool() {
    const BLOCKS: u64 = 2048;
    const MS: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    // QEMU keeps the data blocks first and the metadata after them in the image; random
    // metadata means any write of it to page 0 changes page 0.
    let image = random_file(
        &dir.path().join("meta.img"),
        (BLOCKS * (512 + MS)) as usize,
        0x3e7a,
    );
    random_file(
        &dir.path().join("ext.img"),
        (64 * (512 + MS)) as usize,
        0x51,
    );
    let p = |name: &str| dir.path().join(name).display().to_string();
    let extra = [
        "-drive",
        &format!("file={},if=none,format=raw,id=m1", p("meta.img")),
        "-drive",
        &format!("file={},if=none,format=raw,id=m2", p("ext.img")),
        "-device",
        "nvme,id=nvme0,serial=bringup-meta",
        "-device",
        "nvme-ns,drive=m1,bus=nvme0,nsid=1,ms=8,mset=0",
        "-device",
        "nvme-ns,drive=m2,bus=nvme0,nsid=2,ms=8,mset=1",
    ];
    let cfg = QemuConfig {
        qmp: true,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    assert!(boot.banner.dma_base >= 4096, "page 0 is outside the pool");

    let out = run(&mut s, "nvme identify");
    assert!(out.is_ok(), "{:?}", out.result);
    let before = page_zero(&mut s, dir.path(), "before.bin");
    for (lba, count) in [(0, 1), (10, 300), (0, BLOCKS)] {
        read_ok(&mut s, &image, 512, 1, lba, count);
    }
    // QEMU keeps block i's metadata at (blocks * 512) + i * 8 in the image.
    for lba in [0u64, 10, BLOCKS - 1] {
        let out = run(&mut s, &format!("nvme read {lba} 1 --ns 1"));
        assert!(out.is_ok(), "{:?}", out.result);
        let at = (BLOCKS * 512 + lba * MS) as usize;
        let want: Vec<String> = image[at..at + MS as usize]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let line = format!(
            "separate (MPTR in the bounce pool); lba {lba:#x}: {}",
            want.join(" ")
        );
        assert!(out.text.contains(&line), "want {line:?} in\n{}", out.text);
    }
    let after = page_zero(&mut s, dir.path(), "after.bin");
    assert!(
        before == after,
        "a device write changed physical page 0 (MPTR = 0?): first difference at byte {:?}",
        before.iter().zip(&after).position(|(a, b)| a != b)
    );
    let ext = run(&mut s, "nvme read 0 --ns 2");
    assert_eq!(
        ext.error_code(),
        Some("nvme-unsupported"),
        "{:?}",
        ext.result
    );
    let down = run(&mut s, "teardown nvme");
    assert!(down.is_ok(), "{:?}", down.result);
}
