//! System test: Ctrl-C on the serial line stops a long `nvme read` in the real monitor. The
//! command ends with one `interrupted` error result and no `nvme.read` frame, the read's
//! bounce buffers go back to the pool, and the controller keeps working without a teardown.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::time::{Duration, Instant};

use evidence::{Body, Outcome};
use host_client::qemu::NvmeDrive;
use host_client::{QemuConfig, Session};

#[test]
fn ctrl_c_stops_a_long_read_and_the_controller_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0x5au8; 64 << 20]).unwrap();
    let cfg = QemuConfig {
        nvme: vec![NvmeDrive {
            path: disk,
            serial: "ctrl-c".into(),
        }],
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    let t = Duration::from_secs(60);
    assert!(s.command("nvme identify", t).unwrap().is_ok());

    // 64 MiB with SHA-256 takes over a second under TCG: interrupt it a little way in.
    let before = s.frames().len();
    s.send_raw(b"nvme read 0 131072\r").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.interrupt().unwrap();
    let deadline = Instant::now() + t;
    let outcome = loop {
        let result = s.frames()[before..].iter().find_map(|f| match &f.body {
            Body::CommandResult(r) => Some(r.outcome.clone()),
            _ => None,
        });
        if let Some(outcome) = result {
            break outcome;
        }
        assert!(
            Instant::now() < deadline,
            "the read never ended:\n{}",
            s.transcript()
        );
        s.poll_output(Duration::from_millis(100)).unwrap();
    };
    match &outcome {
        Outcome::Error { code, .. } => assert_eq!(code, "interrupted", "{outcome:?}"),
        Outcome::Ok => panic!("the read ended ok although Ctrl-C came 300 ms into a >1 s read"),
    }
    assert!(
        !s.frames()[before..]
            .iter()
            .any(|f| matches!(f.body, Body::NvmeRead(_))),
        "an interrupted read must not report success evidence"
    );
    s.resync(t).unwrap();

    // No teardown needed: the same controller reads again, and the read's buffers are gone.
    let again = s.command("nvme read 0 8", t).unwrap();
    assert!(again.is_ok(), "{}", again.text);
    let dma = s.command("dma", t).unwrap();
    assert!(
        !dma.text.contains("read-data"),
        "read buffers leaked:\n{}",
        dma.text
    );
    assert!(s.damaged_frames().is_empty() && s.sequence_gaps().is_empty());
}
