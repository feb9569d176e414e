//! The shipped command files parse, and use only real frame kinds.

use host_client::script::{parse_script, Check};

const KINDS: &[&str] = &[
    "banner",
    "command.start",
    "command.result",
    "pci.function",
    "bar.map",
    "dma.ledger",
    "nvme.identify",
    "nvme.namespace",
    "nvme.read",
    "gvnic.describe",
    "gvnic.tx",
    "gvnic.rx",
    "teardown.step",
    "fault",
    "facts",
    "reg.read",
    "reg.write",
    "cpuid",
    "cpu",
    "acpi.table",
    "acpi.madt",
    "acpi.mcfg",
    "acpi.fadt",
    "acpi.hpet",
    "memmap",
    "msix",
    "irq.test",
    "mem.map",
    "mem.types",
    "mem.unmap",
    "net.lease",
    "net.ping",
    "net.http",
    "nvme.write",
    "nvme.verify",
    "nvme.flush",
    "nvme.disk",
    "gvnic.waits",
];

#[test]
fn proofs_parse_and_name_known_kinds() {
    let dir = host_client::qemu::workspace_root().join("proofs");
    for name in [
        "nvme.bringup",
        "gvnic.bringup",
        "full.bringup",
        "platform.bringup",
        "network.bringup",
        "nvme-write.bringup",
        "gvnic-irq.bringup",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let script = parse_script(&text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(script.steps.len() >= 3, "{name}");
        for exp in script.steps.iter().flat_map(|s| &s.expectations) {
            let path = match &exp.check {
                Check::Field { path, .. } => path.as_str(),
                Check::Count { kind, .. } => kind.as_str(),
                Check::Text { .. } => continue,
            };
            assert!(
                KINDS
                    .iter()
                    .any(|k| path == *k || path.starts_with(&format!("{k}."))),
                "{name} line {}: unknown kind in {path}",
                exp.line_no
            );
        }
    }
}

/// The full bring-up proof, run the way a user runs it (the `bringup` binary, a command
/// file, a JSON report), against the real image under OVMF (GCE boots UEFI) with an NVMe
/// disk and the gVNIC model: every command and expectation must hold.
#[test]
fn full_bringup_proof_passes_end_to_end() {
    let image = host_client::qemu::workspace_root().join("target/bringup.img");
    let image = std::env::var_os("BRINGUP_IMAGE").map_or(image, std::path::PathBuf::from);
    assert!(
        image.exists(),
        "{} is missing: run `make image` first",
        image.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    let mut bytes = vec![0u8; 8 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in bytes.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&disk, &bytes).unwrap();
    let report_path = dir.path().join("full.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bringup"))
        .current_dir(host_client::qemu::workspace_root())
        .args([
            "run",
            "proofs/full.bringup",
            "--uefi",
            "--gvnic",
            "--no-progress",
            "--image",
        ])
        .arg(&image)
        .arg("--nvme")
        .arg(&disk)
        .arg("--report")
        .arg(&report_path)
        .status()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let summary = &report["summary"];
    assert!(status.success(), "bringup run failed: {summary}");
    assert_eq!(report["passed"], true);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["commands"], summary["passed"]);
    assert_eq!(summary["damaged_frames"], 0);
    assert_eq!(summary["sequence_gaps"], 0);
    // The report carries the proof itself: the LBA 0 digest equals the host's.
    use sha2::Digest;
    let host_sha = sha2::Sha256::digest(&bytes[..512]);
    let hex: String = host_sha.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        report.to_string().contains(&hex),
        "the report must hold the SHA-256 of LBA 0"
    );
    // ... and the CRC-32 of LBAs 0..8 (`--digest crc32`) equals the host's.
    let crc = crc32fast::hash(&bytes[..4096]);
    assert!(
        report.to_string().contains(&format!("\"crc32\":{crc}")),
        "the report must hold the CRC-32 {crc:08x} of LBAs 0..8"
    );
}

/// The platform proof (issue 13), run by the `bringup` binary on SeaBIOS with one NVMe
/// disk: every toolbox command and expectation must hold, MSI-X delivery included.
#[test]
fn platform_proof_passes_end_to_end() {
    let image = host_client::qemu::workspace_root().join("target/bringup.img");
    let image = std::env::var_os("BRINGUP_IMAGE").map_or(image, std::path::PathBuf::from);
    assert!(
        image.exists(),
        "{} is missing: run `make image` first",
        image.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0x42u8; 1 << 20]).unwrap();
    let report_path = dir.path().join("platform.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bringup"))
        .current_dir(host_client::qemu::workspace_root())
        .args(["run", "proofs/platform.bringup", "--no-progress", "--image"])
        .arg(&image)
        .arg("--nvme")
        .arg(&disk)
        .arg("--report")
        .arg(&report_path)
        .status()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let summary = &report["summary"];
    assert!(status.success(), "bringup run failed: {summary}");
    assert_eq!(report["passed"], true);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["damaged_frames"], 0);
    assert!(
        report.to_string().contains("irq.test"),
        "the report holds the irq.test frame"
    );
}

/// The NVMe write proof (issue 23), run by the `bringup` binary on SeaBIOS against a scratch
/// file: every expectation holds, the file then holds the seeded stream in exactly the
/// written range, and the report carries a read-back SHA-256 equal to the host's.
#[test]
fn nvme_write_proof_passes_end_to_end() {
    let image = host_client::qemu::workspace_root().join("target/bringup.img");
    let image = std::env::var_os("BRINGUP_IMAGE").map_or(image, std::path::PathBuf::from);
    assert!(
        image.exists(),
        "{} is missing: run `make image` first",
        image.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("scratch.img");
    std::fs::write(&disk, vec![0u8; 8 << 20]).unwrap();
    let report_path = dir.path().join("nvme-write.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bringup"))
        .current_dir(host_client::qemu::workspace_root())
        .args([
            "run",
            "proofs/nvme-write.bringup",
            "--no-progress",
            "--image",
        ])
        .arg(&image)
        .arg("--nvme")
        .arg(&disk)
        .arg("--report")
        .arg(&report_path)
        .status()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert!(
        status.success(),
        "bringup run failed: {}",
        report["summary"]
    );
    assert_eq!(report["passed"], true);
    let after = std::fs::read(&disk).unwrap();
    let (start, end) = (2048 * 512, (2048 + 4096) * 512);
    let want = drivers::pattern::Pattern::Seeded(23).bytes(start as u64, end - start);
    assert!(
        after[start..end] == want[..],
        "the range holds the seeded stream"
    );
    assert!(
        after[..start].iter().chain(&after[end..]).all(|b| *b == 0),
        "nothing else"
    );
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&want)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        report.to_string().contains(&hex),
        "the report holds the host's SHA-256"
    );
}
