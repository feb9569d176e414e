//! System test: the GCE tarball's `disk.raw`, unpacked the way GCE reads it, boots under OVMF
//! (GCE boots NVMe machine types with UEFI) and reaches the prompt.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::process::Command;
use std::time::Duration;

use evidence::Firmware;
use host_client::{QemuConfig, Session};

#[test]
fn gce_disk_raw_boots_under_ovmf() {
    let source = QemuConfig::default().image;
    assert!(
        source.is_file(),
        "target/bringup.img is missing: run `make image` first"
    );
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("bringup-gce.tar.gz");
    image::gce::build(&source, &work.path().join("build"), &tarball).expect("tarball builds");

    // Unpack with GNU tar (sparse-aware), as a user checking the upload would.
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xSzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success(), "tar could not unpack the tarball");
    let disk = unpacked.join("disk.raw");
    let size = std::fs::metadata(&disk).unwrap().len();
    assert!(
        size > 0 && size.is_multiple_of(1 << 30),
        "disk.raw is {size} bytes"
    );

    let cfg = QemuConfig {
        image: disk,
        uefi: true,
        ..QemuConfig::default()
    };
    let mut s = Session::start_qemu(&cfg).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| {
            panic!(
                "disk.raw did not boot: {e:#}\nQEMU said: {}",
                s.qemu_stderr()
            )
        });
    assert_eq!(boot.banner.firmware, Firmware::Uefi);
    let out = s.command("version", Duration::from_secs(30)).unwrap();
    assert!(out.is_ok(), "{}", out.text);
}
