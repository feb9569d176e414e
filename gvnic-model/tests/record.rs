//! The record leaves the process: `Gvnic::record_file` as JSON (round trip, summary, names)
//! and `gvnic-model --record FILE` writing it when QEMU closes the socket and on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::record_file::{read_record, write_record, RecordFile};
use gvnic_model::{ModelConfig, Profile};

#[test]
fn record_round_trips_through_json_with_names_and_summary() {
    let mut h = H::new(ModelConfig {
        profile: Profile::Y2024,
        ..Default::default()
    });
    h.bring_up();
    h.send(&udp_test_frame(60, 1), 0);
    assert_eq!(h.submit(be_cmd(0x77)), status::UNIMPLEMENTED);
    assert_eq!(
        h.register(9, TX_QPL_BASE + 0x800, 1),
        status::INVALID_ARGUMENT
    );
    let dir = std::env::temp_dir().join(format!("gvnic-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("record.json");
    write_record(&h.dev, &path).unwrap();
    let back = read_record(&path).unwrap();
    assert_eq!(back, h.dev.record_file());
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema"], "gvnic-model.record/1");
    assert_eq!(v["profile"], "2024");
    assert_eq!(v["commands"][0]["name"], "DESCRIBE_DEVICE");
    assert_eq!(v["commands"][0]["status_name"], "PASSED");
    let s = &back.summary;
    assert_eq!((s.refused, s.unimplemented), (1, 1));
    assert_eq!(
        s.violations, 2,
        "the unknown opcode and the misaligned page"
    );
    assert!(!s.clean());
    assert!(
        s.words().contains("UNKNOWN (0x77) -> UNIMPLEMENTED"),
        "{}",
        s.words()
    );
    assert!(s
        .words()
        .contains("REGISTER_PAGE_LIST (0x3) -> INVALID_ARGUMENT"));
    assert_eq!(back.final_state.tx_queues, vec![0]);
    assert_eq!(
        back.final_state.configured_format.as_deref(),
        Some("gqi-qpl")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_clean_run_has_a_clean_summary_and_names_extended_commands() {
    let mut h = H::new(ModelConfig::default());
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    assert_eq!(h.configure(), status::PASSED);
    let mut c = be_cmd(opcode::EXTENDED_COMMAND);
    put32(&mut c, 8, opcode::CONFIGURE_FLOW_RULE);
    put32(&mut c, 12, 92);
    put64(&mut c, 16, 0x8000);
    let mut inner = [0u8; 92];
    inner[1] = 2; // RESET
    gvnic_model::GuestMemory::write(&h.mem, 0x8000, &inner).unwrap();
    assert_eq!(h.submit(c), status::PASSED);
    let r = h.dev.record_file();
    assert!(r.summary.clean(), "{}", r.summary.words());
    let last = r.commands.last().unwrap();
    assert_eq!(last.name, "EXTENDED_COMMAND");
    assert_eq!(last.inner_name.as_deref(), Some("CONFIGURE_FLOW_RULE"));
}

/// A QEMU stand-in: connect to the model's socket and read vendor/device id.
fn connect_and_read_id(sock: &Path) -> UnixStream {
    let start = Instant::now();
    let mut s = loop {
        match UnixStream::connect(sock) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("model socket: {e}"),
        }
    };
    // PCI_CFGREAD (proxy protocol: cmd, 4 pad, size, payload {addr, val, len}).
    let mut m = Vec::new();
    m.extend_from_slice(&gvnic_model::proxy::protocol::PCI_CFGREAD.to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&12u64.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&4i32.to_le_bytes());
    s.write_all(&m).unwrap();
    let mut b = [0u8; 24];
    s.read_exact(&mut b).unwrap();
    assert_eq!(
        u32::from_le_bytes(b[16..20].try_into().unwrap()),
        0x0042_1ae0
    );
    s
}

fn spawn_model(dir: &Path) -> (Child, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (sock, rec) = (dir.join("model.sock"), dir.join("record.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_gvnic-model"))
        .arg("--socket")
        .arg(&sock)
        .arg("--record")
        .arg(&rec)
        .spawn()
        .unwrap();
    (child, sock, rec)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "model did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(rec: &Path) -> RecordFile {
    let r = read_record(rec).expect("record written");
    assert_eq!(r.profile, "2026");
    assert!(r.summary.clean());
    assert!(r.final_state.is_reset);
    r
}

#[test]
fn the_binary_writes_its_record_when_qemu_closes_the_socket() {
    let dir = std::env::temp_dir().join(format!("gvnic-rec-close-{}", std::process::id()));
    let (mut child, sock, rec) = spawn_model(&dir);
    drop(connect_and_read_id(&sock));
    assert!(wait_exit(&mut child).success());
    check(&rec);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binary_writes_its_record_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("gvnic-rec-term-{}", std::process::id()));
    let (mut child, sock, rec) = spawn_model(&dir);
    let _qemu = connect_and_read_id(&sock);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(wait_exit(&mut child).success(), "exits cleanly on SIGTERM");
    check(&rec);
    let _ = std::fs::remove_dir_all(&dir);
}
