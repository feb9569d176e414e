//! A stand-in for the GCE serial gateway that is as hard as the real one (platform-notes §6):
//!
//! - a real OpenSSH server on 127.0.0.1:9600 inside a private network namespace, where
//!   /etc/hosts maps the regional and the global gateway names to 127.0.0.1, so the client
//!   runs its production argv (no `--gateway` override);
//! - an ssh-rsa-only host key (`HostKeyAlgorithms ssh-rsa`) and an RSA user key;
//! - a real "Permission denied (publickey)" on the first connection when asked: an
//!   `AuthorizedKeysCommand` that returns no key for the first connection id (`%C`);
//! - per session, the forced command hands its stdio to [`Hub`] (in the test process), which
//!   sends replayed console lines BEFORE the banner, puts the banner on ssh's stderr (or
//!   splices it into stdout), drops VM output during a trim window after the banner, and can
//!   cut the line in the middle of a command file with `serialport: VM disconnected`;
//! - the hub holds the VM's serial line for the whole test and records every byte (the VM's
//!   console history, which the replay serves from), like GCE does.
//!
//! The gateway's login names (`PROJECT.ZONE.INSTANCE.USER.port=1...`) are not local accounts,
//! so the namespace also gets an /etc/passwd with them. Needs root, openssh-server, socat,
//! iproute2 (`ip`), util-linux (`unshare`, `nsenter`) and target/bringup.img.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use host_client::{QemuConfig, QemuProcess};

pub const PROJECT: &str = "proj";
pub const ZONE: &str = "us-central1-a";
pub const INSTANCE: &str = "bu-vm";
pub const USER: &str = "tester";
pub const REGIONAL_HOST: &str = "us-central1-ssh-serialport.googleapis.com";
pub const GLOBAL_HOST: &str = "ssh-serialport.googleapis.com";
/// Replay counts the tests' clients ask for (each is a login name, so a passwd entry).
pub const REPLAY_COUNTS: [u32; 3] = [50, 200, 1000];

/// How the gateway misbehaves; changeable between runs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// VM output dropped for this long after the banner (the gateway's trimming).
    pub trim: Duration,
    /// The banner inside the replayed stdout bytes instead of on stderr.
    pub splice_banner: bool,
    /// Cut the line during the first session that reaches this many non-empty input lines.
    pub cut: Option<Cut>,
    /// Serve at most this many replay lines, whatever was asked (output the gateway lost).
    pub replay_cap: Option<usize>,
    /// When cutting, also type `reset` into the VM (someone rebooted it meanwhile).
    pub reset_on_cut: bool,
    /// Drop the line right after the banner (the VM went away while we settled).
    pub drop_after_banner: bool,
    /// After the cut, end this many new sessions at once, without a banner (the VM is away).
    pub refuse_after_cut: usize,
    /// The cut's notice comes on stdout and the ssh session stays open (until the client
    /// leaves): the client must see the notice itself.
    pub notice_on_stdout: bool,
    /// At the cut the line goes silent instead: the TCP connection stays open but nothing
    /// passes in either direction (a half-open connection; ssh's keepalives go unanswered).
    pub silent: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// 1-based non-empty input line of a session.
    pub line: usize,
    pub forward: Forward,
}

/// How much of the cut line reaches the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// All of it (the command runs while the client is away).
    All,
    /// Its first half, no Enter (a half-typed line sits in the monitor's editor).
    Half,
    /// All of it, and its output through the command's start frame, then the cut.
    UntilStart,
}

/// What one gateway session did.
#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    pub user: String,
    /// Console bytes sent before the banner (the replay).
    pub before_banner: Vec<u8>,
    /// VM output bytes dropped in the trim window.
    pub trimmed: usize,
    pub cut: bool,
}

struct Live {
    out: UnixStream,
    /// The session's stderr (the FIFO its forced command relays).
    err: std::fs::File,
    trim_until: Instant,
    index: usize,
    /// [`Forward::UntilStart`]: output since the cut line was forwarded, until a frame line.
    cut_at_frame: Option<Vec<u8>>,
    /// [`Plan::notice_on_stdout`].
    notice_on_stdout: bool,
}

/// Ends a session the way the gateway does: its notice on stderr, then the line drops.
fn hang_up(live: &mut Live) {
    if live.notice_on_stdout {
        // Inside the console bytes, and ssh stays up: only the notice says it is over.
        let _ = live.out.write_all(b"serialport: VM disconnected\r\n");
        return;
    }
    let _ = live.err.write_all(b"serialport: VM disconnected\r\n");
    let _ = live.out.shutdown(std::net::Shutdown::Both);
}

#[derive(Default)]
struct HubState {
    /// Client ports of TCP connections the [`relay`] keeps open but passes nothing on.
    silenced: Arc<Mutex<Vec<u16>>>,
    history: Vec<u8>,
    live: Option<Live>,
    sessions: Vec<SessionRecord>,
    plan: Plan,
    cut_done: bool,
    refused: usize,
}

/// The gateway's side of every session, and the VM's serial line.
pub struct Hub {
    state: Arc<Mutex<HubState>>,
    vm: Arc<Mutex<UnixStream>>,
}

impl Hub {
    fn start(vm: UnixStream, socket: &Path, dir: &Path) -> Hub {
        let state = Arc::new(Mutex::new(HubState::default()));
        let vm_in = vm.try_clone().unwrap();
        let vm = Arc::new(Mutex::new(vm));
        {
            let state = state.clone();
            thread::spawn(move || vm_reader(vm_in, state));
        }
        let listener = UnixListener::bind(socket).unwrap();
        {
            let state = state.clone();
            let vm = vm.clone();
            let dir = dir.to_path_buf();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { break };
                    let (state, vm, dir) = (state.clone(), vm.clone(), dir.clone());
                    thread::spawn(move || serve(conn, state, vm, &dir));
                }
            });
        }
        Hub { state, vm }
    }

    pub fn set_plan(&self, plan: Plan) {
        let mut s = self.state.lock().unwrap();
        s.plan = plan;
        s.cut_done = false;
        s.refused = 0;
    }

    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.state.lock().unwrap().sessions.clone()
    }

    /// Sessions ended at once after a cut ([`Plan::refuse_after_cut`]).
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    /// Everything the VM printed since boot.
    pub fn history(&self) -> Vec<u8> {
        self.state.lock().unwrap().history.clone()
    }

    fn wait_for_history(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.history();
            if String::from_utf8_lossy(&h).contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} from the VM: {}",
                String::from_utf8_lossy(&h)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn vm_reader(mut vm: UnixStream, state: Arc<Mutex<HubState>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = vm.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut s = state.lock().unwrap();
        s.history.extend_from_slice(&buf[..n]);
        let mut trimmed = None;
        let mut hung_up = false;
        if let Some(live) = s.live.as_mut() {
            let mut chunk = &buf[..n];
            if let Some(since) = live.cut_at_frame.as_mut() {
                // Pass output through the first complete frame line (the command's start
                // frame), then drop the line: the client saw the start, not the result.
                let old = since.len();
                since.extend_from_slice(chunk);
                if let Some(end) = frame_line_end(since) {
                    chunk = &chunk[..end - old];
                    hung_up = true;
                }
            }
            if Instant::now() < live.trim_until {
                trimmed = Some(live.index);
            } else if live.out.write_all(chunk).is_err() {
                hung_up = true;
            }
            if hung_up {
                hang_up(live);
            }
        }
        if hung_up {
            s.live = None;
        }
        if let Some(i) = trimmed {
            s.sessions[i].trimmed += n;
        }
    }
}

/// The end (after its `\n`) of the first complete line holding a frame marker.
fn frame_line_end(bytes: &[u8]) -> Option<usize> {
    let at = bytes.windows(6).position(|w| w == b"@@BU1 ")?;
    let nl = bytes[at..].iter().position(|&b| b == b'\n')?;
    Some(at + nl + 1)
}

/// Whether `log` holds a boot banner frame and a prompt after it.
fn booted(log: &host_client::serial::SerialLog) -> bool {
    let frames = log.frames();
    let banner = frames
        .frames()
        .iter()
        .rposition(|f| matches!(f.body, evidence::Body::Banner(_)));
    banner.is_some_and(|i| log.prompt_after(frames.spans()[i].end).is_some())
}

/// The last `n` lines of `history` (the unterminated last line counts as one).
fn last_lines(history: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let mut seen = 0;
    let body = history.strip_suffix(b"\n").unwrap_or(history);
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return &history[i + 1..];
            }
        }
    }
    history
}

fn peer_pid(conn: &UnixStream) -> i32 {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_PEERCRED");
    cred.pid
}

/// One gateway session: the forced command `exec`ed socat, so the peer pid names its files.
fn serve(conn: UnixStream, state: Arc<Mutex<HubState>>, vm: Arc<Mutex<UnixStream>>, dir: &Path) {
    let pid = peer_pid(&conn);
    let user = std::fs::read_to_string(dir.join(format!("user.{pid}"))).unwrap_or_default();
    let user = user.trim().to_string();
    let mut err = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(format!("err.{pid}")))
        .unwrap();
    let asked: Option<usize> = user
        .split('.')
        .find_map(|f| f.strip_prefix("replay-lines="))
        .and_then(|n| n.parse().ok());
    let banner = format!(
        "serialport: Connected to {PROJECT}.{ZONE}.{INSTANCE} port 1 (session ID: {pid}, active connections: 1).\r\n"
    );
    let index;
    {
        let mut s = state.lock().unwrap();
        if s.cut_done && s.refused < s.plan.refuse_after_cut {
            s.refused += 1;
            let _ = err.write_all(b"serialport: VM is not running\r\n");
            return;
        }
        let n = asked.map_or(0, |a| a.min(s.plan.replay_cap.unwrap_or(usize::MAX)));
        let replay = last_lines(&s.history, n).to_vec();
        let mut out = conn.try_clone().unwrap();
        if s.plan.splice_banner {
            // In the middle of the last replayed line: console bytes on both sides.
            let mid = replay.len().saturating_sub(4);
            let _ = out.write_all(&replay[..mid]);
            let _ = out.write_all(banner.as_bytes());
            let _ = out.write_all(&replay[mid..]);
        } else {
            let _ = out.write_all(&replay);
            let _ = err.write_all(banner.as_bytes());
        }
        index = s.sessions.len();
        s.sessions.push(SessionRecord {
            user: user.clone(),
            before_banner: replay,
            ..SessionRecord::default()
        });
        let trim = s.plan.trim;
        s.live = Some(Live {
            out,
            err: err.try_clone().unwrap(),
            trim_until: Instant::now() + trim,
            index,
            cut_at_frame: None,
            notice_on_stdout: s.plan.notice_on_stdout,
        });
        if s.plan.drop_after_banner {
            if let Some(mut live) = s.live.take() {
                thread::sleep(Duration::from_millis(100));
                hang_up(&mut live);
            }
            return;
        }
    }
    let mut input = conn.try_clone().unwrap();
    let mut line: Vec<u8> = Vec::new();
    let mut lines = 0;
    let mut buf = [0u8; 1024];
    'session: while let Ok(n) = input.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            // Whole lines go to the VM at once, so a cut can land between lines exactly.
            line.push(b);
            if b != b'\r' && b != 0x03 && b != 0x15 {
                continue;
            }
            let typed = std::mem::take(&mut line);
            let text = String::from_utf8_lossy(&typed).trim().to_string();
            if b == b'\r' && !text.is_empty() {
                lines += 1;
            }
            let (cut, plan) = {
                let s = state.lock().unwrap();
                let cut = s
                    .plan
                    .cut
                    .filter(|c| !s.cut_done && b == b'\r' && c.line == lines && !text.is_empty());
                (cut, s.plan.clone())
            };
            let mut vm = vm.lock().unwrap();
            match cut {
                None => {
                    let _ = vm.write_all(&typed);
                }
                Some(c) => {
                    let mut s = state.lock().unwrap();
                    s.cut_done = true;
                    s.sessions[index].cut = true;
                    if c.forward == Forward::UntilStart {
                        // The VM reader hangs up once the start frame went through.
                        if let Some(live) = s.live.as_mut() {
                            live.cut_at_frame = Some(Vec::new());
                        }
                        drop(s);
                        let _ = vm.write_all(&typed);
                        continue;
                    }
                    let mut live = s.live.take();
                    if plan.silent {
                        // The relay's port for this session: sshd saw it as SSH_CLIENT.
                        let client = std::fs::read_to_string(dir.join(format!("client.{pid}")))
                            .unwrap_or_default();
                        let port: Option<u16> = client
                            .split_whitespace()
                            .nth(1)
                            .and_then(|p| p.parse().ok());
                        s.silenced.lock().unwrap().extend(port);
                        // No notice, no hang-up: the session just ends on our side.
                        live = None;
                    }
                    drop(s);
                    match c.forward {
                        Forward::Half => {
                            let _ = vm.write_all(&typed[..typed.len() / 2]);
                        }
                        _ => {
                            let _ = vm.write_all(&typed);
                        }
                    }
                    if plan.reset_on_cut {
                        // The VM reboots to its prompt while the client is away; the line
                        // drops only then, so the replay always shows the new boot.
                        let from = state.lock().unwrap().history.len();
                        thread::sleep(Duration::from_millis(200));
                        let _ = vm.write_all(b"\x15reset\r");
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while Instant::now() < deadline {
                            let mut log = host_client::serial::SerialLog::new();
                            log.push(&state.lock().unwrap().history[from..]);
                            if booted(&log) {
                                break;
                            }
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                    if let Some(live) = live.as_mut() {
                        hang_up(live);
                    }
                    if plan.notice_on_stdout {
                        // Linger: read and drop whatever still comes, until the client goes.
                        while matches!(input.read(&mut buf), Ok(n) if n > 0) {}
                    }
                    break 'session;
                }
            }
        }
    }
    let mut s = state.lock().unwrap();
    if s.live.as_ref().is_some_and(|l| l.index == index) {
        s.live = None;
    }
}

/// The ssh server in its own network and mount namespaces, and the hub behind it.
pub struct Gateway {
    sshd: Child,
    pub dir: tempfile::TempDir,
    pub hub: Hub,
    qemu: QemuProcess,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
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

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
            .arg(path),
    );
}

fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The gateway login names the tests use (no replay, and each of [`REPLAY_COUNTS`]).
pub fn login_names() -> Vec<String> {
    let base = format!("{PROJECT}.{ZONE}.{INSTANCE}.{USER}.port=1");
    let mut names = vec![base.clone()];
    names.extend(
        REPLAY_COUNTS
            .iter()
            .map(|n| format!("{base}.replay-lines={n}")),
    );
    names
}

fn check_tools() {
    for (path, package) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/socat", "socat"),
        ("/usr/bin/nsenter", "util-linux"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing (apt-get install {package})"
        );
    }
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "ip is missing (apt-get install iproute2)"
    );
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the gateway stand-in needs root for its namespaces"
    );
}

/// Boots the image with the hub on its serial line from the first byte, then starts sshd.
pub fn start(deny_first: bool) -> Gateway {
    start_with(deny_first, QemuConfig::default())
}

/// [`start`] with a VM that reboots on reset (instead of QEMU exiting, our default).
pub fn start_rebootable() -> Gateway {
    let cfg = QemuConfig {
        // Overrides the -no-reboot QemuConfig always passes (QEMU 6.0+).
        extra_args: vec!["-action".into(), "reboot=reset".into()],
        ..QemuConfig::default()
    };
    start_with(false, cfg)
}

fn start_with(deny_first: bool, cfg: QemuConfig) -> Gateway {
    check_tools();
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
    // /run, not /tmp: sshd runs AuthorizedKeysCommand only from a path no one else can write.
    let dir = tempfile::Builder::new()
        .prefix("bu-gw")
        .tempdir_in("/run")
        .unwrap();
    let d = dir.path().to_path_buf();
    let mut qemu = QemuProcess::spawn(&cfg).unwrap();
    let serial = qemu.connect_serial(Duration::from_secs(20)).unwrap();
    let hub = Hub::start(serial, &d.join("hub.sock"), &d);

    keygen(&d.join("host_rsa"));
    keygen(&d.join("id_rsa"));
    keygen(&d.join("other_rsa"));
    std::fs::write(
        d.join("authorized_keys"),
        format!("{}\n", public_key(&d.join("id_rsa"))),
    )
    .unwrap();
    let host_key = public_key(&d.join("host_rsa"));
    for (file, hosts) in [
        ("known_hosts", vec![REGIONAL_HOST]),
        ("known_hosts_global", vec![GLOBAL_HOST]),
    ] {
        let text: String = hosts
            .iter()
            .map(|h| format!("[{h}]:9600 {host_key}\n"))
            .collect();
        std::fs::write(d.join(file), text).unwrap();
    }
    std::fs::write(
        d.join("known_hosts_wrong"),
        format!(
            "[{REGIONAL_HOST}]:9600 {}\n",
            public_key(&d.join("other_rsa"))
        ),
    )
    .unwrap();
    let script = |name: &str, body: String| {
        let path = d.join(name);
        std::fs::write(&path, body).unwrap();
        run_ok(Command::new("chmod").arg("755").arg(&path));
    };
    // sshd runs the command from its per-connection process, so $PPID names the connection:
    // every call of the first connection gets no key (a real publickey refusal).
    script(
        "akc.sh",
        format!(
            "#!/bin/sh\nd={dir}\n\
             if [ -e $d/deny-first ] && {{ [ ! -e $d/denied ] || [ \"$(cat $d/denied)\" = \"$PPID\" ]; }}; then\n\
             echo $PPID > $d/denied; echo \"deny $PPID\" >> $d/akc.log; exit 0; fi\n\
             echo \"allow $PPID\" >> $d/akc.log\ncat $d/authorized_keys\n",
            dir = d.display()
        ),
    );
    if deny_first {
        std::fs::write(d.join("deny-first"), "").unwrap();
    }
    script(
        "bridge.sh",
        format!(
            "#!/bin/sh\nd={dir}\nmkfifo $d/err.$$\nprintf '%s\\n' \"$USER\" > $d/user.$$\n\
             printf '%s\\n' \"$SSH_CLIENT\" > $d/client.$$\n\
             cat $d/err.$$ >&2 &\nexec socat - UNIX-CONNECT:$d/hub.sock\n",
            dir = d.display()
        ),
    );
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for name in login_names() {
        passwd.push_str(&format!(
            "{name}:*:0:0:gce serial test:{}:/bin/sh\n",
            d.display()
        ));
    }
    std::fs::write(d.join("passwd"), passwd).unwrap();
    std::fs::write(
        d.join("hosts"),
        format!("127.0.0.1 localhost\n127.0.0.1 {REGIONAL_HOST}\n127.0.0.1 {GLOBAL_HOST}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "ListenAddress 127.0.0.1\nPort {SSHD_PORT}\nHostKey {dir}/host_rsa\nHostKeyAlgorithms ssh-rsa\n\
             PidFile {dir}/sshd.pid\nAuthorizedKeysFile none\n\
             AuthorizedKeysCommand {dir}/akc.sh\nAuthorizedKeysCommandUser root\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin yes\nForceCommand {dir}/bridge.sh\n\
             LogLevel VERBOSE\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let setup = format!(
        "ip link set lo up && mkdir -p /run/sshd && mount --bind {dir}/passwd /etc/passwd && \
         mount --bind {dir}/hosts /etc/hosts && exec /usr/sbin/sshd -D -e -f {dir}/sshd_config",
        dir = d.display()
    );
    let log = std::fs::File::create(d.join("sshd.log")).unwrap();
    let sshd = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c", &setup])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("unshare");
    let gw = Gateway {
        sshd,
        dir,
        hub,
        qemu,
    };
    gw.hub
        .wait_for_history("bringup> ", Duration::from_secs(180));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.sshd_log().contains("Server listening") {
        assert!(
            Instant::now() < deadline,
            "sshd did not start: {}",
            gw.sshd_log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let silenced = gw.hub.state.lock().unwrap().silenced.clone();
    relay(gw.sshd.id(), silenced);
    gw
}

/// sshd's port; the gateway's 9600 is the [`relay`] in front of it.
const SSHD_PORT: u16 = 9601;

/// A TCP hop on 127.0.0.1:9600 in the namespace, in front of sshd, that can make one
/// connection go silent (its client port in `silenced`): bytes in either direction are read
/// and dropped, and nothing is closed towards the client, like a connection whose path died
/// without a reset. ssh notices only by its keepalives going unanswered.
fn relay(ns_pid: u32, silenced: Arc<Mutex<Vec<u16>>>) {
    let (ready, wait) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{ns_pid}/ns/net")).unwrap();
        // SAFETY: setns(2) with a namespace fd we hold; it moves only this thread (and the
        // threads it starts), whose sockets then live in the gateway's namespace.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let listener = std::net::TcpListener::bind(("127.0.0.1", 9600)).unwrap();
        let _ = ready.send(());
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", SSHD_PORT)) else {
                continue;
            };
            let port = up.local_addr().unwrap().port();
            for (from, to) in [
                (client.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, client),
            ] {
                let silenced = silenced.clone();
                thread::spawn(move || pump(from, to, port, &silenced));
            }
        }
    });
    wait.recv_timeout(Duration::from_secs(10))
        .expect("the relay did not start");
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    port: u16,
    silenced: &Mutex<Vec<u16>>,
) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silenced.lock().unwrap().contains(&port) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !silenced.lock().unwrap().contains(&port) {
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
}

impl Gateway {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// What the AuthorizedKeysCommand decided, one `deny ID` / `allow ID` per call.
    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.path("akc.log")).unwrap_or_default()
    }

    /// Writes a command file and returns its path.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `bringup ARGS --gce ...` inside the gateway's namespaces with the production
    /// endpoint (no `--gateway`), gcloud-style key files, and `extra` options.
    pub fn bringup(
        &self,
        args: &[&str],
        known_hosts: &str,
        extra: &[&str],
        timeout: Duration,
    ) -> Output {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.sshd.id().to_string(), "-m", "-n", "--"])
            .arg(env!("CARGO_BIN_EXE_bringup"))
            .args(args)
            .args(["--gce", "--project", PROJECT, "--zone", ZONE])
            .args(["--instance", INSTANCE, "--user", USER, "--no-progress"])
            .args(["--connect-timeout", "20"]);
        if !extra.contains(&"--key") {
            command.arg("--key").arg(self.path("id_rsa"));
        }
        let mut child = command
            .arg("--known-hosts")
            .arg(self.path(known_hosts))
            .args(extra)
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
            thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    /// `bringup gce connect ...` on a terminal (util-linux `script` makes the pty), quit
    /// with Ctrl-] after `linger`; returns everything the terminal showed.
    pub fn console(&self, extra: &[&str], linger: Duration) -> String {
        let mut line = format!(
            "{} gce connect --project {PROJECT} --zone {ZONE} --instance {INSTANCE} --user {USER} \
             --key {} --known-hosts {}",
            env!("CARGO_BIN_EXE_bringup"),
            self.path("id_rsa").display(),
            self.path("known_hosts").display()
        );
        for e in extra {
            line.push(' ');
            line.push_str(e);
        }
        let mut child = Command::new("nsenter")
            .args(["-t", &self.sshd.id().to_string(), "-m", "-n", "--"])
            .args(["script", "-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(linger);
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&[0x1d]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `bringup run SCRIPT --report R ...`; returns the exit code, stderr and the report.
    pub fn run(
        &self,
        script: &Path,
        known_hosts: &str,
        extra: &[&str],
    ) -> (Option<i32>, String, serde_json::Value) {
        let report = self.path("report.json");
        let _ = std::fs::remove_file(&report);
        let out = self.bringup(
            &[
                "run",
                script.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
            known_hosts,
            extra,
            Duration::from_secs(120),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        (out.status.code(), stderr, json)
    }

    pub fn qemu(&self) -> &QemuProcess {
        &self.qemu
    }
}
