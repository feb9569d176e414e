//! The session, runner and report against a small in-process stand-in for the monitor that
//! speaks the same protocol (echo, start/result frames, prompt, Ctrl-C). No QEMU needed.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::Duration;

use evidence::*;
use host_client::report::StepVerdict;
use host_client::runner::{run_script, NoProgress, Progress, RunOptions};
use host_client::script::parse_script;
use host_client::{Session, Transport};

struct Fake {
    out: UnixStream,
    boot_id: u64,
    seq: u32,
    cmd: u32,
    /// Drop the frame with this seq on the floor (to provoke a gap).
    lose_seq: Option<u32>,
}

/// How the stand-in misbehaves.
#[derive(Default, Clone, Copy)]
struct Quirks {
    /// Drop the frame with this seq on the floor (to provoke a gap).
    lose_seq: Option<u32>,
    /// Keep only this many bytes of each input line: a line whose tail the gateway dropped.
    cut_line: Option<usize>,
    /// Input typed before the host attached (a run that died mid-send left it).
    half_typed: &'static str,
}

impl Fake {
    fn frame(&mut self, body: Body) {
        let f = Frame {
            boot_id: self.boot_id,
            seq: self.seq,
            cmd: self.cmd,
            body,
        };
        self.seq += 1;
        if Some(f.seq) == self.lose_seq {
            return;
        }
        let _ = write!(self.out, "{}\r\n", encode_line(&f));
    }

    fn result(&mut self, outcome: Outcome) {
        self.frame(Body::CommandResult(CommandResult {
            outcome,
            elapsed_us: 42,
        }));
        let _ = write!(self.out, "bringup> ");
    }

    fn run(&mut self, line: &str, input: &mut UnixStream) {
        self.cmd += 1;
        self.frame(Body::CommandStart(CommandStart { line: line.into() }));
        match line {
            "version" => {
                let _ = write!(self.out, "bringup 0.1.0\r\n");
                self.result(Outcome::Ok);
            }
            "nvme identify" => {
                let _ = write!(self.out, "model nvme_card-pd\r\n");
                self.frame(Body::NvmeController(NvmeController {
                    bus: 0,
                    device: 4,
                    function: 0,
                    vid: 0x1ae0,
                    ssvid: 0x1ae0,
                    serial: "nvme_card-pd".into(),
                    model: "nvme_card-pd".into(),
                    firmware: "1".into(),
                    version: 0x10400,
                    mdts_bytes: 0,
                    namespaces: 1,
                    active_namespaces: vec![1],
                }));
                self.result(Outcome::Ok);
            }
            "hang" => {
                // Waits for Ctrl-C like a long monitor wait.
                let mut b = [0u8; 1];
                while input.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != 0x03 {}
                self.result(Outcome::Error {
                    code: "interrupted".into(),
                    message: "ctrl-c".into(),
                });
            }
            other => {
                let word = other.split_whitespace().next().unwrap_or("").to_string();
                let _ = write!(self.out, "error: unknown command '{word}'\r\n");
                self.result(Outcome::Error {
                    code: "unknown-command".into(),
                    message: format!("unknown command '{word}'"),
                });
            }
        }
    }
}

/// Serves one connection: banner, prompt, then a line editor that echoes.
fn serve(mut stream: UnixStream, quirks: Quirks) {
    let mut fake = Fake {
        out: stream.try_clone().unwrap(),
        boot_id: 0xb007,
        seq: 0,
        cmd: 0,
        lose_seq: quirks.lose_seq,
    };
    let _ = write!(fake.out, "bringup monitor\r\n");
    fake.frame(Body::Banner(Banner {
        format_version: 1,
        version: "0.1.0".into(),
        build: "fake".into(),
        firmware: Firmware::Bios,
        memory_bytes: 512 << 20,
        dma_base: 0x100000,
        dma_bytes: 4 << 20,
        cmdline: String::new(),
        boot_us: 1,
        confidential: "none".into(),
        sha256_path: String::new(),
        tsc_hz: 2_000_000_000,
        tsc_source: "acpi-pm-timer".into(),
        tsc_disagreement_ppm: 0,
    }));
    let _ = write!(fake.out, "bringup> {}", quirks.half_typed);
    let mut line = quirks.half_typed.as_bytes().to_vec();
    let mut b = [0u8; 1];
    while stream.read(&mut b).map(|n| n == 1).unwrap_or(false) {
        match b[0] {
            b'\r' => {
                let _ = write!(fake.out, "\r\n");
                line.truncate(quirks.cut_line.unwrap_or(usize::MAX));
                let text = String::from_utf8_lossy(&line).trim().to_string();
                line.clear();
                if text.is_empty() {
                    let _ = write!(fake.out, "bringup> ");
                } else {
                    fake.run(&text, &mut stream);
                }
            }
            0x03 => {
                line.clear();
                let _ = write!(fake.out, "^C\r\nbringup> ");
            }
            // Ctrl-U, as monitor/src/input.rs: the line being typed is dropped.
            0x15 => {
                line.clear();
                let _ = write!(fake.out, "\r\x1b[Kbringup> ");
            }
            c => {
                line.push(c);
                let _ = fake.out.write_all(&[c]);
            }
        }
    }
}

fn start_fake(lose_seq: Option<u32>) -> (tempfile::TempDir, Transport) {
    start_quirky(Quirks {
        lose_seq,
        ..Quirks::default()
    })
}

fn start_quirky(quirks: Quirks) -> (tempfile::TempDir, Transport) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial.sock");
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            serve(s, quirks);
        }
    });
    (dir, Transport::Unix(path))
}

fn opts(strict: bool) -> RunOptions {
    RunOptions {
        default_timeout: Duration::from_secs(5),
        boot_timeout: Duration::from_secs(5),
        fresh_boot: true,
        strict_frames: strict,
        script_name: "proof.bringup".into(),
        transport: "unix".into(),
    }
}

/// Records what the runner tells its progress display.
#[derive(Default)]
struct Recorder(Vec<String>);

impl Progress for Recorder {
    fn phase(&mut self, what: &str) {
        self.0.push(format!("phase {what}"));
    }
    fn command_started(&mut self, index: usize, total: usize, line: &str) {
        self.0.push(format!("start {index}/{total} {line}"));
    }
    fn command_done(&mut self, index: usize, verdict: StepVerdict) {
        self.0.push(format!("done {index} {verdict:?}"));
    }
}

const SCRIPT: &str = r#"
version
expect-text "bringup 0.1.0"
nvme identify
expect nvme.identify.model ~ "nvme_card"
expect nvme.identify.vid == 0x1ae0
expect-fail unknown-command
lsppci
timeout 1s
hang
version
"#;

#[test]
fn session_commands_collect_frames_text_and_results() {
    let (_dir, transport) = start_fake(None);
    let mut s = Session::connect(transport).unwrap();
    let boot = s.wait_for_prompt(Duration::from_secs(5)).unwrap();
    assert_eq!(boot.boot_id, 0xb007);
    assert_eq!(boot.banner.firmware, Firmware::Bios);
    let out = s.command("nvme identify", Duration::from_secs(5)).unwrap();
    assert!(out.is_ok());
    assert_eq!(out.started_line, "nvme identify");
    assert_eq!(out.text, "model nvme_card-pd\n");
    assert_eq!(out.frames.len(), 3);
    assert_eq!(out.bodies_of_kind("nvme.identify").len(), 1);
    let bad = s.command("lsppci", Duration::from_secs(5)).unwrap();
    assert_eq!(bad.error_code(), Some("unknown-command"));
    assert!(s.command("", Duration::from_secs(1)).is_err());
    assert!(s.command("a\rb", Duration::from_secs(1)).is_err());
    assert!(s.sequence_gaps().is_empty());
    assert!(s.damaged_frames().is_empty());
    assert_eq!(s.frames().len(), 1 + 3 + 2);
}

#[test]
fn runner_report_has_verdicts_frames_and_recovers_from_a_timeout() {
    let (_dir, transport) = start_fake(None);
    let mut s = Session::connect(transport).unwrap();
    let script = parse_script(SCRIPT).unwrap();
    let mut seen = Recorder::default();
    let report = run_script(&mut s, &script, &opts(true), &mut seen);
    // The watcher saw the boot phase, then every command start and end, in order.
    assert_eq!(
        seen.0,
        [
            "phase booting",
            "start 0/5 version",
            "done 0 Pass",
            "start 1/5 nvme identify",
            "done 1 Pass",
            "start 2/5 lsppci",
            "done 2 Pass",
            "start 3/5 hang",
            "done 3 Fail",
            "start 4/5 version",
            "done 4 Pass",
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["schema"], "bringup.report/1");
    assert_eq!(json["boot"]["boot_id"], "000000000000b007");
    assert_eq!(json["boot"]["banner"]["firmware"], "Bios");
    let cmds = json["commands"].as_array().unwrap();
    let verdicts: Vec<&str> = cmds
        .iter()
        .map(|c| c["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["pass", "pass", "pass", "fail", "pass"],
        "{:#}",
        json["commands"]
    );
    assert_eq!(cmds[1]["expectations"][0]["passed"], true);
    assert_eq!(cmds[2]["outcome"]["code"], "unknown-command");
    assert!(
        cmds[3]["reason"].as_str().unwrap().contains("timed out"),
        "{}",
        cmds[3]["reason"]
    );
    assert_eq!(cmds[3]["timeout_ms"], 1000);
    assert_eq!(json["summary"]["expectations"], 3);
    assert_eq!(json["passed"], false, "a timed-out command fails the run");
    assert!(
        json["error"].is_null(),
        "the timed-out `hang` was the script's own command: {}",
        json["error"]
    );
    let kinds: Vec<&str> = json["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "banner");
    assert!(kinds.contains(&"nvme.identify"));
    assert!(json["transcript"]
        .as_str()
        .unwrap()
        .contains("model nvme_card-pd"));
    assert!(json["sequence_gaps"].as_array().unwrap().is_empty());
}

#[test]
fn a_lost_frame_is_reported_and_fails_a_strict_run() {
    // seq 2 is the result of `version`... lose the nvme.identify frame instead (seq 4).
    let (_dir, transport) = start_fake(Some(4));
    let mut s = Session::connect(transport).unwrap();
    let script = parse_script("version\nnvme identify\nexpect nvme.identify\nversion\n").unwrap();
    let report = run_script(&mut s, &script, &opts(true), &mut NoProgress);
    assert_eq!(report.sequence_gaps.len(), 1);
    assert_eq!(
        (
            report.sequence_gaps[0].expected,
            report.sequence_gaps[0].got
        ),
        (4, 5)
    );
    assert!(!report.passed);
    assert!(!report.commands[1].expectations[0].passed);
}

#[test]
fn typed_ahead_output_is_not_credited_to_the_next_command() {
    let (_dir, transport) = start_fake(None);
    let mut s = Session::connect(transport).unwrap();
    s.wait_for_prompt(Duration::from_secs(5)).unwrap();
    // A line typed ahead (its output arrives first), then the command we ask for.
    s.send_raw(b"lsppci\r").unwrap();
    let out = s.command("nvme identify", Duration::from_secs(5)).unwrap();
    assert_eq!(out.started_line, "nvme identify");
    assert!(
        out.is_ok(),
        "the typed-ahead error must not become this command's result"
    );
    assert_eq!(out.bodies_of_kind("nvme.identify").len(), 1);
}

#[test]
fn a_line_whose_tail_was_lost_is_not_credited_as_the_line_sent() {
    // `lsppci x` arrives as `lsppci`: a different command ran, whose result is not ours.
    let (_dir, transport) = start_quirky(Quirks {
        cut_line: Some(6),
        ..Quirks::default()
    });
    let mut s = Session::connect(transport).unwrap();
    s.wait_for_prompt(Duration::from_secs(5)).unwrap();
    let err = s.command("lsppci x", Duration::from_secs(1)).unwrap_err();
    assert!(
        format!("{err:#}").contains("timed out"),
        "the truncated line was credited: {err:#}"
    );
}

#[test]
fn attaching_clears_a_half_typed_line_before_the_enter() {
    let (_dir, transport) = start_quirky(Quirks {
        half_typed: "lsppci",
        ..Quirks::default()
    });
    let mut s = Session::connect(transport).unwrap();
    let script = parse_script("version\n").unwrap();
    let mut o = opts(true);
    o.fresh_boot = false;
    let report = run_script(&mut s, &script, &o, &mut NoProgress);
    let starts = s
        .frames()
        .iter()
        .filter(|f| matches!(f.body, Body::CommandStart(_)))
        .count();
    assert_eq!(starts, 1, "the half-typed line ran: {}", s.transcript());
    assert!(report.passed, "{:?}", report.error);
}

#[test]
fn a_command_no_script_line_sent_fails_the_run() {
    let (_dir, transport) = start_fake(None);
    let mut s = Session::connect(transport).unwrap();
    // A script whose `version` is followed by a stray line typed by someone else.
    let script = parse_script("version\nversion\n").unwrap();
    s.wait_for_prompt(Duration::from_secs(5)).unwrap();
    s.send_raw(b"lsppci\r").unwrap();
    let mut o = opts(false);
    o.fresh_boot = false;
    let report = run_script(&mut s, &script, &o, &mut NoProgress);
    assert!(report
        .commands
        .iter()
        .all(|c| c.verdict == StepVerdict::Pass));
    assert!(!report.passed, "a stray command passed");
    let why = report.error.unwrap_or_default();
    assert!(
        why.contains("lsppci") && why.contains("no line of the script"),
        "{why}"
    );
}
