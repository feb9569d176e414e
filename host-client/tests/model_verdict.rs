//! `bringup run` holds a run to the gVNIC model's record (issue 19): a proof whose model
//! recorded a violation fails with the verdict `model-violation` and the record's words, and
//! passes with `allow-model-violations`; a clean run carries the clean summary. The
//! violation is real: `poke --phys` writes BAR2's doorbell 0, which no queue owns.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn image() -> PathBuf {
    let image = host_client::qemu::workspace_root().join("target/bringup.img");
    let image = std::env::var_os("BRINGUP_IMAGE").map_or(image, PathBuf::from);
    assert!(
        image.exists(),
        "{} is missing: run `make image` first",
        image.display()
    );
    image
}

/// `bringup run SCRIPT --gvnic`: (exit success, report, stderr).
fn run(dir: &Path, name: &str, script: &str) -> (bool, Value, String) {
    let path = dir.join(format!("{name}.bringup"));
    std::fs::write(&path, script).unwrap();
    let report = dir.join(format!("{name}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_bringup"))
        .args(["run", "--gvnic", "--no-progress", "--image"])
        .arg(image())
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .arg("--gvnic-record")
        .arg(dir.join(format!("{name}-record.json")))
        .output()
        .unwrap();
    let json = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), json, stderr)
}

#[test]
fn a_model_violation_fails_the_run_unless_the_script_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    // A clean run: the report carries the record's clean summary; BAR2 is found here.
    let (ok, clean, err) = run(dir.path(), "clean", "lspci -v 00:05.0\n");
    assert!(ok, "{err}");
    assert_eq!(clean["gvnic_model"]["verdict"], "clean");
    assert_eq!(clean["gvnic_model"]["profile"], "2026");
    assert_eq!(clean["gvnic_model"]["summary"]["violations"], 0);
    let bar2 = clean["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "pci.function")
        .flat_map(|f| f["body"]["bars"].as_array().cloned().unwrap_or_default())
        .find(|b| b["index"] == 2)
        .and_then(|b| b["address"].as_u64())
        .expect("BAR2 of the gVNIC");

    let poke = format!("poke {bar2:#x} 0x1 --phys\n");
    let allowed_script = format!("allow-model-violations\n{poke}");
    let (failed, allowed) = std::thread::scope(|s| {
        let a = s.spawn(|| run(dir.path(), "violation", &poke));
        let b = s.spawn(|| run(dir.path(), "allowed", &allowed_script));
        (a.join().unwrap(), b.join().unwrap())
    });

    let (ok, r, err) = failed;
    assert!(!ok, "a model violation fails the run");
    assert_eq!(r["passed"], false);
    assert_eq!(r["summary"]["failed"], 0, "every command itself passed");
    let m = &r["gvnic_model"];
    assert_eq!(m["verdict"], "model-violation");
    assert_eq!(m["summary"]["violations"], 1);
    let words = m["words"].as_str().unwrap();
    assert!(
        words.contains("UnknownDoorbell: doorbell 0 (BAR2+0x0)"),
        "{words}"
    );
    assert!(err.contains("gVNIC model: model-violation: "), "{err}");
    // The whole record, as `gvnic-model --record` writes it.
    let rec = gvnic_model::record_file::read_record(&dir.path().join("violation-record.json"))
        .expect("--gvnic-record wrote the record");
    assert_eq!(rec.violations.len(), 1);
    assert_eq!(
        rec.violations[0].kind,
        gvnic_model::ViolationKind::UnknownDoorbell
    );

    let (ok, r, err) = allowed;
    assert!(ok, "allow-model-violations keeps the run: {err}");
    assert_eq!(r["passed"], true);
    assert_eq!(r["gvnic_model"]["verdict"], "allowed");
    assert_eq!(r["gvnic_model"]["summary"]["violations"], 1);
}
