//! System test (issue 20 item 5): proofs/gvnic-irq.bringup, run the way a user runs it
//! (`bringup run --gvnic-transport vfio-user`) on QEMU 11 with the model as a vfio-user
//! device, which raises MSI-X vectors through QEMU's eventfds: the RX notification block's
//! interrupt reaches the boot CPU in GQI-QPL and in DQO-RDA, everything is restored, and
//! the NIC goes on working; then `gvnic dhcp --irq` and `gvnic ping --irq` (issue 20 item
//! 6) get their lease and replies with interrupts counted. Needs target/bringup.img (`make image`) and target/qemu-11
//! (`make qemu11`).

use std::process::Command;
use std::time::Instant;

use host_client::qemu::qemu11_binary;

#[test]
fn gvnic_irq_proof_passes_over_vfio_user() {
    let started = Instant::now();
    let image = host_client::qemu::default_image();
    assert!(
        image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let qemu = qemu11_binary()
        .expect("QEMU 11 is missing: run `make qemu11` (`make test` does)")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    for formats in ["gqi-qpl", "dqo-rda"] {
        let report_path = dir.path().join(format!("{formats}.json"));
        let status = Command::new(env!("CARGO_BIN_EXE_bringup"))
            .current_dir(host_client::qemu::workspace_root())
            .args(["run", "proofs/gvnic-irq.bringup", "--no-progress"])
            .args(["--gvnic-transport", "vfio-user", "--gvnic-formats", formats])
            .args(["--qemu-binary", &qemu])
            .arg("--image")
            .arg(&image)
            .arg("--report")
            .arg(&report_path)
            .status()
            .unwrap();
        let text = std::fs::read_to_string(&report_path).unwrap();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(status.success(), "{formats}: bringup run failed: {text}");
        assert_eq!(report["passed"], true, "{formats}");
        // The interrupt itself, from the frames: the RX block's entry counted at least once.
        let frames = report["frames"].to_string();
        assert!(
            frames.contains("\"role\":\"rx-block\""),
            "{formats}: {frames}"
        );
        // Issue 20 item 6: the lease and the ping waited by interrupt, counted, restored.
        let waits: Vec<&serde_json::Value> = report["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f.to_string().contains("\"mode\":\"irq\""))
            .collect();
        assert_eq!(waits.len(), 2, "{formats}: {frames}");
        assert!(
            waits.iter().all(|f| {
                let t = f.to_string();
                !t.contains("\"interrupts\":0,") && t.contains("\"restored\":true")
            }),
            "{formats}: {waits:?}"
        );
    }
    eprintln!("vfio-user gvnic irq proofs: {:?}", started.elapsed());
}
