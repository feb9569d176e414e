//! System test (issue 15): the SHA-NI digest path on a CPU that has the SHA extensions, and
//! the portable path on one that lacks them, give the host's `sha256sum` of the same LBAs;
//! `--digest crc32` gives zlib's CRC-32.
//!
//! QEMU 7.2's TCG has no SHA-NI, so this boots QEMU 10 (bookworm-backports, unpacked into
//! target/qemu-10 by `make qemu10`, which `make test` depends on) twice, in parallel:
//! `-cpu max` (QMP `query-cpu-model-expansion` must show sha-ni, and the monitor must report
//! and use the SHA-NI path) and `-cpu qemu64` (no sha-ni: the portable path).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use evidence::Body;
use host_client::qemu::qemu10_binary;
use host_client::{CommandOutcome, QemuConfig, Session};
use serde_json::json;

const BLOCKS: u64 = 24_576; // 512-byte blocks: 12 MiB
/// Reads that cross command boundaries (MDTS 512 KiB here) and end mid-chunk.
const READS: [(u64, u64); 4] = [(0, 1), (3, 1025), (1000, 8191), (0, BLOCKS)];

fn disk_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x5ba_2026u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The host tool's answer over `bytes` on stdin: `sha256sum`, or Python's zlib.crc32.
fn host_tool(program: &str, args: &[&str], bytes: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{program} failed");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap_or("").to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(s: &mut Session, tag: &str, line: &str) -> CommandOutcome {
    let out = s.command(line, Duration::from_secs(300)).unwrap();
    eprintln!("[{tag}] bringup> {line}\n{}", out.text.trim_end());
    assert!(out.is_ok(), "[{tag}] {line}: {:?}", out.result);
    out
}

fn read_frame(out: &CommandOutcome) -> evidence::NvmeRead {
    match out.bodies_of_kind("nvme.read").first() {
        Some(Body::NvmeRead(r)) => r.clone(),
        _ => panic!("no nvme.read frame for {}", out.line),
    }
}

/// Whether QEMU's `model` has sha-ni, by QMP on the running machine.
fn model_has_sha_ni(s: &mut Session, model: &str) -> bool {
    let expansion = s
        .qmp(
            "query-cpu-model-expansion",
            json!({ "type": "full", "model": { "name": model } }),
        )
        .unwrap();
    expansion["model"]["props"]["sha-ni"]
        .as_bool()
        .unwrap_or_else(|| panic!("no sha-ni property for {model}: {expansion}"))
}

fn boot_and_check(qemu: &Path, disk: &Path, bytes: &[u8], cpu: &str, want_path: &str) {
    let cfg = QemuConfig {
        qemu_binary: qemu.display().to_string(),
        qmp: true,
        extra_args: [
            "-cpu",
            cpu,
            "-drive",
            &format!(
                "file={},if=none,format=raw,id=d1,readonly=on",
                disk.display()
            ),
            "-device",
            "nvme,serial=sha-ni,drive=d1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("[{cpu}] no prompt: {e:#}\n{}", s.qemu_stderr()));
    assert_eq!(boot.banner.sha256_path, want_path, "[{cpu}] boot banner");
    assert_eq!(
        model_has_sha_ni(&mut s, cpu),
        want_path == "sha-ni",
        "QEMU's -cpu {cpu} and the expected path disagree"
    );

    let version = run(&mut s, cpu, "version");
    match version.bodies_of_kind("banner").first() {
        Some(Body::Banner(b)) => assert_eq!(b.sha256_path, want_path, "[{cpu}] version"),
        _ => panic!("[{cpu}] no banner frame from version"),
    }
    let cpu_out = run(&mut s, cpu, "cpu");
    match cpu_out.bodies_of_kind("cpu").first() {
        Some(Body::CpuInfo(c)) => assert_eq!(c.sha256_path, want_path, "[{cpu}] cpu"),
        _ => panic!("[{cpu}] no cpu frame"),
    }
    assert!(
        version.text.contains(&format!("sha256 {want_path}")),
        "{}",
        version.text
    );

    for (lba, count) in READS {
        let range = &bytes[(lba * 512) as usize..((lba + count) * 512) as usize];
        let out = run(&mut s, cpu, &format!("nvme read {lba} {count}"));
        let r = read_frame(&out);
        assert_eq!(
            (r.digest.as_str(), r.digest_engine.as_str()),
            ("sha256", want_path)
        );
        assert_eq!(
            hex(&r.sha256),
            host_tool("sha256sum", &[], range),
            "[{cpu}] SHA-256 of lba {lba} count {count} against the host's sha256sum"
        );
        assert!(out.text.contains(&format!("({want_path})")), "{}", out.text);

        let out = run(
            &mut s,
            cpu,
            &format!("nvme read {lba} {count} --digest crc32"),
        );
        let r = read_frame(&out);
        let zlib = host_tool(
            "python3",
            &[
                "-c",
                "import sys, zlib; print('%08x' % zlib.crc32(sys.stdin.buffer.read()))",
            ],
            range,
        );
        assert_eq!(
            format!("{:08x}", r.crc32),
            zlib,
            "[{cpu}] CRC-32 of lba {lba} count {count}"
        );
        assert!(out.text.contains(&format!("crc32 {zlib}")), "{}", out.text);
    }
    s.close().unwrap();
}

#[test]
fn sha_ni_and_portable_paths_agree_with_the_host() {
    let Some(qemu) = qemu10_binary() else {
        panic!("QEMU 10 is missing: run `make qemu10` (part of `make test`)");
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let bytes = disk_bytes((BLOCKS * 512) as usize);
    std::fs::write(&disk, &bytes).unwrap();
    std::thread::scope(|scope| {
        let with = scope.spawn(|| boot_and_check(&qemu, &disk, &bytes, "max", "sha-ni"));
        let without = scope.spawn(|| boot_and_check(&qemu, &disk, &bytes, "qemu64", "portable"));
        let (a, b) = (with.join(), without.join());
        if let Err(e) = a {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = b {
            std::panic::resume_unwind(e);
        }
    });
}
