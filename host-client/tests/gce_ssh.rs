//! The GCE transport end to end against a real OpenSSH server on 127.0.0.1: a throwaway RSA
//! host key (the gateway offers only ssh-rsa), a user key, a known-hosts file, and a forced
//! command that prints the gateway's `serialport: Connected` banner and then bridges to the
//! serial socket of a QEMU-run monitor. `bringup run --gce ... --gateway` must pass a script.
//!
//! The gateway's user name (`PROJECT.ZONE.INSTANCE.USER.port=1`) is not a local account, so
//! sshd runs in a private mount namespace where /etc/passwd has that account (uid of the
//! test). Needs root (for the namespace), openssh-server, socat and target/bringup.img.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use host_client::{QemuConfig, QemuProcess, Session, Transport};

const USER: &str = "tester";
const GCE_USER: &str = "proj.us-central1-a.bu-vm.tester.port=1";

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_sshd(serial: &Path) -> Sshd {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "openssh-server is not installed (apt-get install openssh-server)"
    );
    assert!(
        Command::new("socat").arg("-V").output().is_ok(),
        "socat is not installed"
    );
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root for a private mount namespace"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
            .arg(d.join("host_rsa")),
    );
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("id")),
    );
    std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
    let port = free_port();
    let host_pub = std::fs::read_to_string(d.join("host_rsa.pub")).unwrap();
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
    )
    .unwrap();
    // A wrong known-hosts file for the negative test.
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
            .arg(d.join("other_rsa")),
    );
    let other = std::fs::read_to_string(d.join("other_rsa.pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    std::fs::write(
        d.join("wrong_known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", other.join(" ")),
    )
    .unwrap();

    let bridge = d.join("bridge.sh");
    std::fs::write(
        &bridge,
        format!(
            "#!/bin/sh\nprintf 'serialport: Connected to proj.us-central1-a.bu-vm port 1 (session ID: test, active connections: 1)\\r\\n'\nexec socat - UNIX-CONNECT:{}\n",
            serial.display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&bridge));
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd.push_str(&format!(
        "{GCE_USER}:*:0:0:gce serial test:{}:/bin/sh\n",
        d.display()
    ));
    std::fs::write(d.join("passwd"), passwd).unwrap();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "ListenAddress 127.0.0.1\nHostKey {dir}/host_rsa\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
             AllowUsers {GCE_USER}\nForceCommand {dir}/bridge.sh\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let script = format!(
        "mkdir -p /run/sshd && mount --bind {dir}/passwd /etc/passwd && exec /usr/sbin/sshd -D -e -f {dir}/sshd_config -p {port}",
        dir = d.display()
    );
    let log = std::fs::File::create(d.join("sshd.log")).unwrap();
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("unshare");
    let sshd = Sshd { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start: {}",
            sshd_log(&sshd)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

fn sshd_log(s: &Sshd) -> String {
    std::fs::read_to_string(s.dir.path().join("sshd.log")).unwrap_or_default()
}

/// Boots the image and waits for its prompt through the serial socket, then lets go of the
/// socket: like a GCE VM that booted before anyone connected.
fn booted_qemu() -> QemuProcess {
    let cfg = QemuConfig::default();
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
    let mut qemu = QemuProcess::spawn(&cfg).unwrap();
    drop(qemu.connect_serial(Duration::from_secs(20)).unwrap());
    // QEMU accepts the next client once the first one left; this one watches the boot.
    let mut s = Session::connect(Transport::Unix(qemu.serial_path().to_path_buf())).unwrap();
    s.wait_for_prompt(Duration::from_secs(180)).unwrap();
    drop(s);
    qemu
}

fn bringup(args: &[&str], key: &Path, known_hosts: &Path, port: u16, timeout: Duration) -> Output {
    let gateway = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bringup"))
        .args(args)
        .args([
            "--gce",
            "--project",
            "proj",
            "--zone",
            "us-central1-a",
            "--instance",
            "bu-vm",
            "--user",
            USER,
        ])
        .args([
            "--gateway",
            &gateway,
            "--connect-timeout",
            "20",
            "--no-progress",
        ])
        .arg("--key")
        .arg(key)
        .arg("--known-hosts")
        .arg(known_hosts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn run_over_the_gce_serial_transport_against_a_real_sshd() {
    let qemu = booted_qemu();
    let sshd = start_sshd(qemu.serial_path());
    let d: PathBuf = sshd.dir.path().to_path_buf();
    let script = d.join("proof.bringup");
    std::fs::write(
        &script,
        "version\nexpect banner.firmware == Bios\nhelp\nexpect-text \"lspci\"\n\
         expect-fail unknown-command\nlsppci\nlspci\nexpect-count pci.function >= 1\nversion\n",
    )
    .unwrap();
    let report = d.join("report.json");
    let out = bringup(
        &[
            "run",
            script.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &d.join("id"),
        &d.join("known_hosts"),
        sshd.port,
        Duration::from_secs(180),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bringup run failed:\n{stderr}\nsshd:\n{}",
        sshd_log(&sshd)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["transport"], "gce bu-vm");
    assert_eq!(json["summary"]["commands"], 5);
    assert_eq!(json["summary"]["passed"], 5);
    assert_eq!(json["summary"]["expectations_failed"], 0);
    assert_eq!(json["commands"][2]["outcome"]["code"], "unknown-command");
    assert!(json["sequence_gaps"].as_array().unwrap().is_empty());
    assert!(json["damaged_frames"].as_array().unwrap().is_empty());
    assert_eq!(json["boots"].as_array().unwrap().len(), 1);
    assert!(
        !json["transcript"]
            .as_str()
            .unwrap()
            .contains("serialport: Connected"),
        "gateway banner is not console output"
    );

    // Known failure: the gateway's host key does not match -> a clear message, exit 2.
    let out = bringup(
        &["run", script.to_str().unwrap()],
        &d.join("id"),
        &d.join("wrong_known_hosts"),
        sshd.port,
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("host key") && stderr.contains("wrong_known_hosts"),
        "{stderr}"
    );

    // Known failure: a key the gateway does not know -> permission denied, explained.
    let out = bringup(
        &["run", script.to_str().unwrap()],
        &d.join("other_rsa"),
        &d.join("known_hosts"),
        sshd.port,
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused the key other_rsa"), "{stderr}");
    drop(qemu);
}

#[test]
fn dry_run_prints_the_exact_ssh_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_bringup"))
        .args([
            "gce",
            "connect",
            "--project",
            "proj",
            "--zone",
            "us-central1-a",
            "--instance",
            "bu-vm",
        ])
        .args(["--user", "alice", "--replay-lines", "100", "--dry-run"])
        .env("HOME", "/home/alice")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.trim(),
        "ssh -T -e none -p 9600 -i /home/alice/.ssh/google_compute_engine \
         -o UserKnownHostsFile=/home/alice/.ssh/google_compute_known_hosts \
         -o StrictHostKeyChecking=yes -o HostKeyAlgorithms=+ssh-rsa -o IdentitiesOnly=yes \
         -o CheckHostIP=no -o ControlPath=none -o PasswordAuthentication=no -o ServerAliveInterval=30 \
         proj.us-central1-a.bu-vm.alice.port=1.replay-lines=100@us-central1-ssh-serialport.googleapis.com"
    );
}
