//! `bringup matrix` on local QEMU targets, through the binary: four targets (both firmwares ×
//! two gVNIC admin-queue revisions) with `--jobs 2` all pass, each with its own QEMU and
//! model (each report's describe frame shows its own model's revision), and the recorded
//! start/end times show two ran at once and never more than two. A targets file with a
//! model offering only DQO fails that target with its reason while the other passes, and
//! the exit status says so. Needs target/bringup.img and qemu-system-x86_64 (with OVMF).

use std::process::{Command, Output};

use serde_json::Value;

/// Short on purpose: the matrix is what is under test, not the driver.
const PROOF: &str = "\
version
expect-text \"bringup\"
gvnic describe
expect gvnic.describe.queue_format == \"gqi-qpl\"
";

fn need_image() {
    assert!(
        host_client::qemu::default_image().is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
}

fn bringup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bringup"))
        .args(args)
        .output()
        .unwrap()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The describe frame's device options and PCI revision in a target's report.
/// The queue-format options (ids 1-4, 7) the device described, and its revision (the 2026
/// profile's other options follow the format ones).
fn describe(report: &Value) -> (Vec<u64>, u64) {
    let frame = report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "gvnic.describe")
        .expect("a gvnic.describe frame");
    let options = frame["body"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .filter(|id| matches!(id, 1..=4 | 7))
        .collect();
    (options, frame["body"]["revision"].as_u64().unwrap())
}

#[test]
fn four_targets_two_at_a_time_all_pass_and_overlap() {
    need_image();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("short.bringup");
    std::fs::write(&script, PROOF).unwrap();
    let report_dir = dir.path().join("m");
    let out = bringup(&[
        "matrix",
        script.to_str().unwrap(),
        "--firmware",
        "bios,uefi",
        "--gvnic-revision",
        "0,1",
        "--jobs",
        "2",
        "--boot-timeout",
        "240s",
        "--timeout",
        "120s",
        "--report",
        report_dir.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let m = read_json(&report_dir.join("matrix.json"));
    assert_eq!(m["schema"], "bringup.matrix/1");
    assert_eq!(m["passed"], true);
    assert_eq!(m["jobs"], 2);
    assert_eq!(
        m["commands"],
        serde_json::json!(["version", "gvnic describe"])
    );
    let targets = m["targets"].as_array().unwrap();
    let ids: Vec<&str> = targets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "bios-pc-tcg-gqi-qpl-rev0",
            "bios-pc-tcg-gqi-qpl-rev1",
            "uefi-pc-tcg-gqi-qpl-rev0",
            "uefi-pc-tcg-gqi-qpl-rev1"
        ]
    );
    for t in targets {
        let id = t["id"].as_str().unwrap();
        assert_eq!(t["outcome"], "passed", "{id}: {t:#}");
        // The per-target file is the report the matrix carries.
        let own = read_json(&report_dir.join(t["report_file"].as_str().unwrap()));
        assert_eq!(own["passed"], true);
        assert_eq!(own["boot"]["boot_id"], t["report"]["boot"]["boot_id"]);
        let uefi = id.starts_with("uefi");
        // The system QEMU (7.2) attaches the model through the proxy.
        assert_eq!(
            own["transport"],
            if uefi {
                "qemu uefi tcg gvnic=proxy"
            } else {
                "qemu bios tcg gvnic=proxy"
            }
        );
        assert_eq!(
            own["boot"]["banner"]["firmware"],
            if uefi { "Uefi" } else { "Bios" }
        );
        // Each target's own model: GQI_QPL (0x3) offered, at the target's revision.
        let (options, revision) = describe(&own);
        assert_eq!(options, [3], "{id}");
        assert_eq!(revision, u64::from(id.ends_with("rev1")), "{id}");
        assert!(report_dir.join(id).join("gvnic.pcap").is_file());
        assert!(report_dir.join(id).join("gvnic-record.json").is_file());
    }
    // Boot ids differ: four monitors, not one.
    let mut boots: Vec<&str> = targets
        .iter()
        .map(|t| t["report"]["boot"]["boot_id"].as_str().unwrap())
        .collect();
    boots.sort();
    boots.dedup();
    assert_eq!(boots.len(), 4);
    // From the recorded times: at some moment two ran at once, and never three.
    let spans: Vec<(u64, u64)> = targets
        .iter()
        .map(|t| {
            (
                t["started_unix_ms"].as_u64().unwrap(),
                t["ended_unix_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    let running_at = |ms: u64| spans.iter().filter(|(s, e)| *s <= ms && ms < *e).count();
    let peak = spans.iter().map(|(s, _)| running_at(*s)).max().unwrap();
    assert_eq!(peak, 2, "targets did not run two at a time: {spans:?}");
    // The table: a row per target, a column per command.
    let rows: Vec<&str> = err
        .lines()
        .filter(|l| ids.iter().any(|id| l.starts_with(&format!("{id} "))))
        .collect();
    assert_eq!(rows.len(), 4, "{err}");
    for row in rows {
        assert!(
            row.contains("PASSED") && row.ends_with("pass  pass"),
            "{row}"
        );
    }
}

#[test]
fn a_dqo_only_model_fails_its_target_with_the_reason_and_the_exit_status() {
    need_image();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("short.bringup");
    std::fs::write(&script, PROOF).unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        "[[target]]\nname = \"gqi\"\ngvnic_formats = \"gqi-qpl\"\n\n\
         [[target]]\nname = \"dqo-only\"\ngvnic_formats = \"dqo-rda\"\ngvnic_revision = 1\n",
    )
    .unwrap();
    let report_dir = dir.path().join("m");
    let out = bringup(&[
        "matrix",
        script.to_str().unwrap(),
        "--targets",
        targets.to_str().unwrap(),
        "--jobs",
        "2",
        "--boot-timeout",
        "240s",
        "--timeout",
        "120s",
        "--report",
        report_dir.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = read_json(&report_dir.join("matrix.json"));
    assert_eq!(m["passed"], false);
    assert_eq!(m["summary"]["passed"], 1);
    assert_eq!(m["summary"]["failed"], 1);
    let gqi = &m["targets"][0];
    let dqo = &m["targets"][1];
    assert_eq!(gqi["outcome"], "passed", "{gqi:#}");
    assert_eq!(dqo["outcome"], "failed");
    assert_eq!(dqo["error_code"], "expect");
    let why = dqo["error"].as_str().unwrap();
    assert!(
        why.contains("queue_format") && why.contains("dqo-rda"),
        "the reason names what the device offered: {why}"
    );
    // The model really offered only DQO_RDA (0x4), at revision 1.
    assert_eq!(describe(&dqo["report"]), (vec![4], 1));
    let row = err
        .lines()
        .find(|l| l.starts_with("dqo-only "))
        .unwrap_or_else(|| panic!("no table row: {err}"));
    assert!(
        row.contains("FAILED") && row.ends_with("pass  FAIL expect"),
        "{row}"
    );
}

/// A 1 MiB NVMe disk whose first block is not all zeros, and its SHA-256.
fn shared_disk(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    use sha2::Digest as _;
    let disk = dir.join("shared.raw");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..12].copy_from_slice(b"shared disk!");
    std::fs::write(&disk, &bytes).unwrap();
    (disk, sha2::Sha256::digest(&bytes).to_vec())
}

const NVME_PROOF: &str = "\
nvme identify
expect nvme.identify.namespaces >= 1
nvme read 0
expect nvme.read.bytes >= 512
";

#[test]
fn targets_sharing_one_nvme_disk_both_pass_and_leave_it_untouched() {
    need_image();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nvme.bringup");
    std::fs::write(&script, NVME_PROOF).unwrap();
    let (disk, sha) = shared_disk(dir.path());
    let report_dir = dir.path().join("m");
    let out = bringup(&[
        "matrix",
        script.to_str().unwrap(),
        "--machine",
        "pc,q35",
        "--nvme",
        disk.to_str().unwrap(),
        "--jobs",
        "2",
        "--boot-timeout",
        "240s",
        "--timeout",
        "120s",
        "--report",
        report_dir.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "both targets pass: {err}");
    let m = read_json(&report_dir.join("matrix.json"));
    for t in m["targets"].as_array().unwrap() {
        assert_eq!(t["outcome"], "passed", "{t:#}");
    }
    use sha2::Digest as _;
    let after = sha2::Sha256::digest(std::fs::read(&disk).unwrap()).to_vec();
    assert_eq!(after, sha, "a matrix target changed the shared disk file");
}

#[test]
fn a_qemu_that_cannot_start_is_qemu_failed_with_its_words() {
    need_image();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nvme.bringup");
    std::fs::write(&script, NVME_PROOF).unwrap();
    let (disk, _) = shared_disk(dir.path());
    // Another QEMU (paused, never runs a guest) has the disk open for writing: QEMU takes
    // its locks once the serial line is connected, and then gives up.
    let mut writer = std::process::Command::new("qemu-system-x86_64")
        .args(["-S", "-nodefaults", "-display", "none", "-machine", "pc"])
        .args([
            "-drive",
            &format!("file={},format=raw,if=none,id=d", disk.display()),
        ])
        .args(["-device", "nvme,serial=holder,drive=d"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let report_dir = dir.path().join("m");
    let out = bringup(&[
        "matrix",
        script.to_str().unwrap(),
        "--nvme",
        disk.to_str().unwrap(),
        "--boot-timeout",
        "60s",
        "--report",
        report_dir.to_str().unwrap(),
        "--no-progress",
    ]);
    let _ = writer.kill();
    let _ = writer.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = read_json(&report_dir.join("matrix.json"));
    let t = &m["targets"][0];
    assert_eq!(t["outcome"], "error", "{t:#}");
    assert_eq!(t["error_code"], "qemu-failed", "{t:#}");
    let why = t["error"].as_str().unwrap();
    assert!(
        why.contains("QEMU exited") && why.contains("lock"),
        "QEMU's own words: {why}"
    );
    assert!(!why.contains(": info: "), "{why}");
}

#[test]
fn targets_that_write_a_shared_disk_each_get_an_overlay() {
    need_image();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("write.bringup");
    // Both targets write the same blocks at once: each must verify what it wrote (a
    // read-only view would refuse the write, the file itself would be locked by the other),
    // and the file must stay as it was.
    std::fs::write(
        &script,
        "nvme write 0 8 --seed 7\nnvme verify 0 8 --seed 7\nexpect nvme.verify.ok == true\n",
    )
    .unwrap();
    let (disk, sha) = shared_disk(dir.path());
    let report_dir = dir.path().join("m");
    let out = bringup(&[
        "matrix",
        script.to_str().unwrap(),
        "--machine",
        "pc,q35",
        "--nvme",
        disk.to_str().unwrap(),
        "--jobs",
        "2",
        "--boot-timeout",
        "240s",
        "--timeout",
        "120s",
        "--report",
        report_dir.to_str().unwrap(),
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "both targets wrote: {err}");
    use sha2::Digest as _;
    let after = sha2::Sha256::digest(std::fs::read(&disk).unwrap()).to_vec();
    assert_eq!(after, sha, "the writes reached the shared file");
}
