//! The GCE transport end to end against a gateway stand-in as hard as the real one
//! (tests/gce_standin: real sshd on the production host names and port in a private network
//! namespace, ssh-rsa-only host key, RSA user key, banner on stderr after replayed console
//! bytes, a trim window, a spurious publickey denial, a cut in the middle of a command
//! file), bridged to a QEMU-run monitor. Needs root, openssh-server, socat, iproute2 and
//! target/bringup.img.

mod gce_standin;

use std::process::Command;
use std::time::Duration;

use gce_standin::{Cut, Forward, Plan, REPLAY_COUNTS};
use serde_json::Value;

const PROOF: &str = "version\nexpect banner.firmware == Bios\nhelp\nexpect-text \"lspci\"\n\
                     expect-fail unknown-command\nlsppci\nlspci\nexpect-count pci.function >= 1\nversion\n";

fn kinds(report: &Value, kind: &str) -> usize {
    report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .count()
}

/// Frames decode, nothing repeated or missing: a resumed run must not double-count the
/// replay, and no command may have run twice.
fn assert_clean_frames(report: &Value, commands: usize) {
    assert!(
        report["sequence_gaps"].as_array().unwrap().is_empty(),
        "{}",
        report["sequence_gaps"]
    );
    assert!(report["damaged_frames"].as_array().unwrap().is_empty());
    assert!(report["foreign_frames"].as_array().unwrap().is_empty());
    assert_eq!(
        kinds(report, "command.start"),
        commands,
        "one start frame per command"
    );
    assert_eq!(kinds(report, "command.result"), commands);
}

fn transcript(report: &Value) -> &str {
    report["transcript"].as_str().unwrap()
}

#[test]
fn run_against_a_gateway_as_hard_as_the_real_one() {
    let gw = gce_standin::start(true);
    gw.hub.set_plan(Plan {
        trim: Duration::from_millis(2000),
        ..Plan::default()
    });
    let script = gw.script("proof.bringup", PROOF);
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts",
        &[
            "--replay-lines",
            "50",
            "--settle",
            "2500ms",
            "--auth-backoff-ms",
            "300",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}\nsshd:\n{}", gw.sshd_log());
    assert_eq!(report["passed"], true);
    assert_eq!(report["summary"]["passed"], 5);
    assert_clean_frames(&report, 5);
    // The first connection was refused for real by sshd, the retry got in.
    let auth = gw.auth_log();
    assert!(
        auth.starts_with("deny ") && auth.contains("allow "),
        "{auth}"
    );
    let sessions = gw.hub.sessions();
    assert_eq!(
        sessions.len(),
        1,
        "one gateway session: stdin stayed open throughout"
    );
    assert!(sessions[0].user.ends_with(".tester.port=1.replay-lines=50"));
    // The replay came before the banner (on stderr): every byte of it is console output.
    let replay = String::from_utf8_lossy(&sessions[0].before_banner).into_owned();
    assert!(
        replay.contains("@@BU1 "),
        "the replay has the boot frames: {replay}"
    );
    assert!(
        transcript(&report).starts_with(&replay),
        "replayed bytes kept, in order"
    );
    assert!(!transcript(&report).contains("serialport:"));
    assert!(
        report["boot"]["banner"].is_object(),
        "the boot banner came in the replay"
    );
    // Nothing of ours fell into the trim window: we waited it out.
    assert_eq!(sessions[0].trimmed, 0);

    // Without the settle time the gateway eats the prompt our first Enter brings.
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts",
        &["--settle", "0", "--boot-timeout", "3s"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        report["error"].as_str().unwrap().contains("no prompt"),
        "{}",
        report["error"]
    );
    assert!(gw.hub.sessions()[1].trimmed > 0, "the stand-in did trim");

    // The global gateway, with the banner spliced into the replayed console bytes.
    gw.hub.set_plan(Plan {
        splice_banner: true,
        ..Plan::default()
    });
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts_global",
        &[
            "--global-gateway",
            "--replay-lines",
            "50",
            "--settle",
            "300ms",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let replay = String::from_utf8_lossy(&gw.hub.sessions()[2].before_banner).into_owned();
    assert!(
        transcript(&report).starts_with(&replay),
        "banner cut out, bytes around it kept"
    );
    assert!(!transcript(&report).contains("serialport:"));

    // The interactive console shows what came while connecting (the replay) too.
    let shown = gw.console(
        &[
            "--replay-lines",
            "50",
            "--settle",
            "300ms",
            "--frames",
            "raw",
        ],
        Duration::from_secs(4),
    );
    assert!(shown.contains("Connected. Press Ctrl-]"), "{shown}");
    let replay =
        String::from_utf8_lossy(&gw.hub.sessions().last().unwrap().before_banner).into_owned();
    let last_frame = replay.lines().rfind(|l| l.starts_with("@@BU1 ")).unwrap();
    assert!(
        shown.contains(last_frame),
        "replayed frame not shown:\n{shown}"
    );

    // The gateway drops the line while we settle: named, before anything was typed.
    gw.hub.set_plan(Plan {
        drop_after_banner: true,
        ..Plan::default()
    });
    let (code, stderr, _) = gw.run(&script, "known_hosts", &["--settle", "2s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("closed the console") && stderr.contains("VM disconnected"),
        "{stderr}"
    );
    gw.hub.set_plan(Plan::default());

    // The regional host key does not match: a clear message naming the regional gateway.
    let (code, stderr, _) = gw.run(&script, "known_hosts_wrong", &["--settle", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("[us-central1-ssh-serialport.googleapis.com]:9600")
            && stderr.contains("known_hosts_wrong")
            && stderr.contains("--location us-central1"),
        "{stderr}"
    );

    // A key the gateway never accepts: retried, then the existing clear message.
    let out = gw.bringup(
        &["run", script.to_str().unwrap()],
        "known_hosts",
        &[
            "--key",
            gw.path("other_rsa").to_str().unwrap(),
            "--auth-backoff-ms",
            "100,100",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refused the key other_rsa") && stderr.contains("refused 3 times"),
        "{stderr}"
    );
}

#[test]
fn a_cut_after_the_command_ran_resumes_from_the_replay() {
    let gw = gce_standin::start(false);
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 3,
            forward: Forward::All,
        }),
        // The first reconnect finds the VM away: retried after a wait.
        refuse_after_cut: 1,
        ..Plan::default()
    });
    let script = gw.script(
        "cut.bringup",
        "version\nhelp\nlspci\nexpect-count pci.function >= 1\nversion\n",
    );
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts",
        &["--settle", "300ms", "--redial-backoff-ms", "200"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(gw.hub.refused(), 1);
    let sessions = gw.hub.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(sessions[0].cut);
    assert!(sessions[1]
        .user
        .ends_with(&format!(".replay-lines={}", REPLAY_COUNTS[2])));
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(cmds[2]["resumed"], "replay");
    assert_eq!(cmds[2]["outcome"]["ok"], true);
    assert_eq!(cmds[2]["expectations"][0]["passed"], true);
    assert!(cmds
        .iter()
        .enumerate()
        .all(|(i, c)| i == 2 || c["resumed"].is_null()));
    assert_clean_frames(&report, 4);
}

#[test]
fn a_cut_after_the_start_frame_arrived_waits_for_the_result() {
    let gw = gce_standin::start(false);
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 2,
            forward: Forward::UntilStart,
        }),
        ..Plan::default()
    });
    let script = gw.script(
        "start.bringup",
        "version\nhelp\nexpect-text \"lspci\"\nversion\n",
    );
    let (code, stderr, report) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(gw.hub.sessions()[0].cut);
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(cmds[1]["resumed"], "replay");
    assert_eq!(
        cmds[1]["expectations"][0]["passed"], true,
        "the whole help text, once"
    );
    assert_clean_frames(&report, 3);
}

#[test]
fn a_half_delivered_line_is_sent_again() {
    let gw = gce_standin::start(false);
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 2,
            forward: Forward::Half,
        }),
        // The notice comes inside the console bytes and ssh lingers.
        notice_on_stdout: true,
        ..Plan::default()
    });
    let script = gw.script(
        "half.bringup",
        "version\nlspci\nexpect-count pci.function >= 1\nversion\n",
    );
    let (code, stderr, report) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(0), "{stderr}");
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(cmds[1]["resumed"], "re-sent");
    assert!(
        !transcript(&report).contains("serialport:"),
        "the notice is not console output"
    );
    assert_eq!(
        cmds[1]["started_line"], "lspci",
        "the half line was dropped, not completed"
    );
    // The half line reached the monitor (its echo is in the VM's history), yet ran nothing.
    assert!(String::from_utf8_lossy(&gw.hub.history()).contains("bringup> ls"));
    assert_clean_frames(&report, 3);
}

#[test]
fn a_cut_the_replay_cannot_explain_stops_with_outcome_unknown() {
    let gw = gce_standin::start(false);
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 2,
            forward: Forward::All,
        }),
        // The gateway serves only the last two lines: the result frame and the prompt.
        replay_cap: Some(2),
        ..Plan::default()
    });
    let script = gw.script("unknown.bringup", "version\nhelp\nversion\n");
    let (code, stderr, report) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(1), "{stderr}");
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(cmds[1]["verdict"], "fail");
    assert_eq!(cmds[1]["error_code"], "outcome-unknown");
    assert!(
        cmds[1]["outcome"].is_null(),
        "no outcome credited without its frames"
    );
    assert_eq!(cmds[2]["verdict"], "not-run");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("stopped at line 2")
            && error.contains("outcome-unknown")
            && error.contains("`help`"),
        "{error}"
    );
    // The monitor did run it to the end: the outcome exists, we just did not see its start.
    let mut vm = host_client::serial::SerialLog::new();
    vm.push(&gw.hub.history());
    let frames = vm.frames().frames();
    let help = frames
        .iter()
        .find(|f| matches!(&f.body, evidence::Body::CommandStart(s) if s.line == "help"))
        .expect("help started in the VM");
    assert!(frames
        .iter()
        .any(|f| f.cmd == help.cmd && matches!(f.body, evidence::Body::CommandResult(_))));

    // The gateway keeps refusing the reconnect: named, nothing credited.
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 1,
            forward: Forward::All,
        }),
        refuse_after_cut: 10,
        ..Plan::default()
    });
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts",
        &["--settle", "300ms", "--redial-backoff-ms", "100,100"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(gw.hub.refused(), 3, "three tries");
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(
        cmds[0]["error_code"], "reconnect-failed",
        "{}",
        cmds[0]["reason"]
    );
    assert!(cmds[0]["outcome"].is_null());
}

#[test]
fn a_reboot_while_away_is_named() {
    let gw = gce_standin::start_rebootable();
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 2,
            forward: Forward::Half,
        }),
        reset_on_cut: true,
        ..Plan::default()
    });
    let script = gw.script("reboot.bringup", "version\nhelp\nversion\n");
    let (code, stderr, report) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(1), "{stderr}");
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(
        cmds[1]["error_code"], "vm-rebooted",
        "{}",
        cmds[1]["reason"]
    );
    assert!(cmds[1]["outcome"].is_null());
    assert_eq!(report["boots"].as_array().unwrap().len(), 2);
}

#[test]
fn dry_run_prints_the_exact_ssh_command() {
    let dry = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bringup"))
            .args([
                "gce",
                "connect",
                "--project",
                "proj",
                "--zone",
                "us-central1-a",
            ])
            .args([
                "--instance",
                "bu-vm",
                "--user",
                "alice",
                "--replay-lines",
                "100",
            ])
            .args(extra)
            .arg("--dry-run")
            .env("HOME", "/home/alice")
            .output()
            .unwrap();
        let note = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{note}");
        assert!(note.starts_with("# ") && note.contains("gateway"), "{note}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(
        dry(&[]),
        "ssh -T -e none -p 9600 -i /home/alice/.ssh/google_compute_engine \
         -o UserKnownHostsFile=/home/alice/.ssh/google_compute_known_hosts \
         -o StrictHostKeyChecking=yes -o HostKeyAlgorithms=+ssh-rsa -o IdentitiesOnly=yes \
         -o CheckHostIP=no -o ControlPath=none -o PasswordAuthentication=no -o ServerAliveInterval=5 -o ServerAliveCountMax=3 \
         proj.us-central1-a.bu-vm.alice.port=1.replay-lines=100@us-central1-ssh-serialport.googleapis.com"
    );
    assert!(dry(&["--global-gateway"]).ends_with(
        "proj.us-central1-a.bu-vm.alice.port=1.replay-lines=100@ssh-serialport.googleapis.com"
    ));
    assert!(
        dry(&["--region", "us-central1"]).ends_with("@us-central1-ssh-serialport.googleapis.com")
    );
    // Another region's gateway does not know this zone's VM, and its host key is not the one
    // to fetch: the mismatch is refused before anything connects.
    let out = Command::new(env!("CARGO_BIN_EXE_bringup"))
        .args([
            "gce",
            "connect",
            "--project",
            "proj",
            "--zone",
            "us-central1-a",
        ])
        .args([
            "--instance",
            "bu-vm",
            "--user",
            "alice",
            "--region",
            "europe-west4",
        ])
        .arg("--dry-run")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a mismatched --region was accepted");
    assert!(
        err.contains("--region europe-west4 does not hold --zone us-central1-a"),
        "{err}"
    );
}

#[test]
fn a_user_name_the_gateway_would_misread_names_user() {
    let connect = |user: Option<&str>, env_user: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bringup"));
        cmd.args([
            "gce",
            "connect",
            "--project",
            "proj",
            "--zone",
            "us-central1-a",
        ])
        .args(["--instance", "bu-vm", "--dry-run"])
        .env("USER", env_user);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = connect(None, "Jane.Doe");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("$USER is \"Jane.Doe\"") && err.contains("--user"),
        "{err}"
    );
    for bad in ["jane.doe", "Jane", "jane doe"] {
        let (code, err) = connect(Some(bad), "ok");
        assert_eq!(code, Some(2), "{bad}");
        assert!(err.contains(&format!("--user {bad:?}")), "{err}");
    }
    let (code, err) = connect(Some("jane_doe"), "Jane.Doe");
    assert_eq!(code, Some(0), "--user overrides a bad $USER: {err}");
}

#[test]
fn a_line_that_goes_silent_is_redialled_within_the_command_timeout() {
    let gw = gce_standin::start(false);
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 2,
            forward: Forward::All,
        }),
        // Half-open: no notice, no close, nothing passes; only ssh's keepalives can tell.
        silent: true,
        ..Plan::default()
    });
    let script = gw.script(
        "silent.bringup",
        "version\nhelp\nexpect-text \"lspci\"\nversion\n",
    );
    let (code, stderr, report) = gw.run(
        &script,
        "known_hosts",
        &["--settle", "300ms", "--timeout", "30s"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let sessions = gw.hub.sessions();
    assert!(sessions[0].cut);
    assert_eq!(sessions.len(), 2, "redialled once: {sessions:?}");
    let cmds = report["commands"].as_array().unwrap();
    assert_eq!(cmds[1]["resumed"], "replay", "{:#}", cmds[1]);
    assert_eq!(cmds[1]["expectations"][0]["passed"], true);
    assert_clean_frames(&report, 3);
}

#[test]
fn a_drop_before_any_frame_was_seen_credits_no_earlier_run() {
    let gw = gce_standin::start(false);
    let script = gw.script("again.bringup", "version\nversion\n");
    // An earlier run: its `version` frames are in the VM's history.
    let (code, stderr, _) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(0), "{stderr}");
    // This run attaches without replay (it sees no frame), and its first `version` only
    // half reaches the VM: the replay's `version` is the earlier run's.
    gw.hub.set_plan(Plan {
        cut: Some(Cut {
            line: 1,
            forward: Forward::Half,
        }),
        ..Plan::default()
    });
    let (code, stderr, report) = gw.run(&script, "known_hosts", &["--settle", "300ms"]);
    assert_eq!(code, Some(1), "{stderr}");
    let first = &report["commands"][0];
    assert_eq!(first["error_code"], "outcome-unknown", "{first:#}");
    assert!(first["outcome"].is_null(), "no outcome credited: {first:#}");
}
