//! `bringup gce ... --dry-run` prints the gcloud commands a user would run; checked field by
//! field from the binary's own output, so a flag lost between the builder and the CLI fails.

use std::collections::BTreeMap;
use std::process::Command;

/// Runs `bringup gce <args> --dry-run` and returns its stdout lines, each split into words.
fn dry_run(args: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_bringup"))
        .arg("gce")
        .args(args)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split_whitespace().map(String::from).collect())
        .collect()
}

/// `--key=value` flags of one command line, and its positional words.
fn fields(words: &[String]) -> (Vec<&str>, BTreeMap<&str, &str>) {
    let mut positional = Vec::new();
    let mut flags = BTreeMap::new();
    for word in words {
        match word.strip_prefix("--") {
            Some(flag) => {
                let (key, value) = flag.split_once('=').unwrap_or((flag, ""));
                assert!(flags.insert(key, value).is_none(), "flag {key} given twice");
            }
            None => positional.push(word.as_str()),
        }
    }
    (positional, flags)
}

#[test]
fn image_create_uploads_then_creates_with_uefi_and_gvnic() {
    let lines = dry_run(&[
        "image",
        "create",
        "--project",
        "proj-1",
        "--bucket",
        "gs://bkt",
        "--name",
        "bu-img",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (words, flags) = fields(&lines[0]);
    assert_eq!(
        words,
        [
            "gcloud",
            "storage",
            "cp",
            "target/gce/bringup-gce.tar.gz",
            "gs://bkt/bu-img.tar.gz"
        ]
    );
    assert_eq!(flags["project"], "proj-1");
    let (words, flags) = fields(&lines[1]);
    assert_eq!(words, ["gcloud", "compute", "images", "create", "bu-img"]);
    assert_eq!(flags["project"], "proj-1");
    assert_eq!(flags["source-uri"], "gs://bkt/bu-img.tar.gz");
    let features: Vec<&str> = flags["guest-os-features"].split(',').collect();
    assert!(
        features.contains(&"UEFI_COMPATIBLE") && features.contains(&"GVNIC"),
        "{features:?}"
    );
}

#[test]
fn vm_create_defaults_to_a_c3_with_gvnic_serial_and_no_secure_boot() {
    let lines = dry_run(&[
        "vm",
        "create",
        "--project",
        "proj-1",
        "--zone",
        "us-central1-a",
        "--name",
        "bu-vm",
        "--image",
        "bu-img",
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (words, flags) = fields(&lines[0]);
    assert_eq!(words, ["gcloud", "compute", "instances", "create", "bu-vm"]);
    assert_eq!(flags["project"], "proj-1");
    assert_eq!(flags["zone"], "us-central1-a");
    assert_eq!(flags["machine-type"], "c3-standard-4");
    assert_eq!(flags["image"], "bu-img");
    let nic: Vec<&str> = flags["network-interface"].split(',').collect();
    assert!(
        nic.contains(&"nic-type=GVNIC") && nic.contains(&"no-address"),
        "{nic:?}"
    );
    assert_eq!(flags["metadata"], "serial-port-enable=TRUE");
    assert!(flags.contains_key("no-shielded-secure-boot"));
    assert!(
        !flags.contains_key("enable-display-device"),
        "GCE's default: no display"
    );
}

#[test]
fn deletes_are_quiet_and_scoped() {
    let lines = dry_run(&[
        "vm",
        "delete",
        "--project",
        "proj-1",
        "--zone",
        "us-central1-a",
        "--name",
        "bu-vm",
    ]);
    let (words, flags) = fields(&lines[0]);
    assert_eq!(words, ["gcloud", "compute", "instances", "delete", "bu-vm"]);
    assert_eq!(
        (flags["project"], flags["zone"]),
        ("proj-1", "us-central1-a")
    );
    assert!(flags.contains_key("quiet"));
    let lines = dry_run(&["image", "delete", "--project", "proj-1", "--name", "bu-img"]);
    let (words, flags) = fields(&lines[0]);
    assert_eq!(words, ["gcloud", "compute", "images", "delete", "bu-img"]);
    assert_eq!(flags["project"], "proj-1");
    assert!(flags.contains_key("quiet"));
}
