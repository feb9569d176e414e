//! A conversation with one monitor: boot/attach, commands with deadlines, raw bytes, QMP.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use evidence::{Banner, Body, Frame};
use serde_json::Value;

use crate::frames::{DamagedFrame, SeqGap};
use crate::outcome::CommandOutcome;
use crate::qemu::{QemuConfig, QemuProcess};
use crate::qmp::Qmp;
use crate::serial::{human_text, SerialLog, PROMPT};
use crate::start_line::is_line_sent;
use crate::transport::{Connection, Recv, Redial, Transport};

/// ASCII NAK, Ctrl-U: the monitor's editor drops the line being typed (monitor/src/input.rs).
pub(crate) const CTRL_U: u8 = 0x15;

/// Policy: how long [`Session::qemu_failure`] waits for a QEMU whose line closed to exit.
const QEMU_EXIT_WAIT: Duration = Duration::from_secs(2);

/// How fast input is written: `chunk_bytes` at a time with `pause` between chunks. QEMU
/// applies back-pressure, the GCE gateway does not, and a 16550 FIFO holds 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub chunk_bytes: usize,
    pub pause: Duration,
}

impl Default for Pacing {
    /// 16 bytes every 2 ms: about 8 KB/s, under a 115200-baud line's 11.5 KB/s.
    fn default() -> Self {
        Pacing {
            chunk_bytes: 16,
            pause: Duration::from_millis(2),
        }
    }
}

/// What the boot looked like.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub banner: Banner,
    pub boot_id: u64,
    /// From session start (QEMU spawn) to the banner frame.
    pub banner_after: Duration,
    /// From session start to the first prompt.
    pub prompt_after: Duration,
}

/// Why a wait failed; wrapped in `anyhow::Error`, so callers can downcast.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("timed out after {after:?} waiting for {what}; last output:\n{tail}")]
    Timeout {
        what: String,
        after: Duration,
        tail: String,
    },
    #[error("the serial connection closed while waiting for {what}{detail}; last output:\n{tail}")]
    Closed {
        what: String,
        detail: String,
        tail: String,
    },
}

/// One monitor on one connection.
pub struct Session {
    conn: Connection,
    log: SerialLog,
    qemu: Option<QemuProcess>,
    qmp: Option<Qmp>,
    qmp_path: Option<PathBuf>,
    started: Instant,
    pacing: Pacing,
    /// How to open the line again after it dropped (GCE); see [`crate::resume`].
    redial: Option<Box<dyn Redial>>,
    /// The command line sent last, until the next one.
    in_flight: Option<InFlight>,
}

/// The line [`Session::command`] sent last and where the frame log stood before it.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub line: String,
    /// Frames in the log before the line was sent: its start frame comes after these.
    pub frames_before: usize,
}

impl Session {
    /// Spawns QEMU per `cfg` and connects to its serial line (before the guest runs).
    pub fn start_qemu(cfg: &QemuConfig) -> Result<Session> {
        let mut qemu = QemuProcess::spawn(cfg)?;
        let stream = qemu.connect_serial(Duration::from_secs(20))?;
        let conn = Connection::unix(stream)?;
        let started = qemu.started;
        let qmp_path = cfg.qmp.then(|| qemu.qmp_path().to_path_buf());
        let mut session = Session::new(conn, started);
        session.qemu = Some(qemu);
        session.qmp_path = qmp_path;
        Ok(session)
    }

    /// Connects to a monitor that is already running (GCE, a socket, a command).
    pub fn connect(transport: Transport) -> Result<Session> {
        let started = Instant::now();
        let (conn, early) = match transport {
            Transport::Tcp(addr) => (
                Connection::tcp(
                    std::net::TcpStream::connect(&addr)
                        .map_err(|e| anyhow::anyhow!("cannot connect to tcp:{addr}: {e}"))?,
                )?,
                Vec::new(),
            ),
            Transport::Unix(path) => (
                Connection::unix(std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
                    anyhow::anyhow!("cannot connect to unix socket {}: {e}", path.display())
                })?)?,
                Vec::new(),
            ),
            Transport::Exec(cmd) => {
                let mut command = std::process::Command::new("sh");
                command.arg("-c").arg(&cmd);
                (Connection::spawn(command)?, Vec::new())
            }
            Transport::Gce(target) => {
                let (conn, early) = target.connect()?;
                let mut session = Session::new(conn, started);
                session.log.push(&early);
                session.redial = Some(target);
                return Ok(session);
            }
        };
        let mut session = Session::new(conn, started);
        session.log.push(&early);
        Ok(session)
    }

    fn new(conn: Connection, started: Instant) -> Session {
        Session {
            conn,
            log: SerialLog::new(),
            qemu: None,
            qmp: None,
            qmp_path: None,
            started,
            pacing: Pacing::default(),
            redial: None,
            in_flight: None,
        }
    }

    pub fn set_pacing(&mut self, pacing: Pacing) {
        self.pacing = Pacing {
            chunk_bytes: pacing.chunk_bytes.max(1),
            ..pacing
        };
    }

    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// Reads whatever arrives within `timeout`. `Ok(None)` on timeout; an error once the
    /// connection closed (or QEMU exited).
    pub fn poll_output(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        match self.conn.recv(timeout) {
            Recv::Data(bytes) => {
                self.log.push(&bytes);
                Ok(Some(bytes))
            }
            Recv::Timeout => Ok(None),
            Recv::Closed(why) => Err(self.closed_error("more output", why).into()),
        }
    }

    fn closed_error(&mut self, what: &str, why: Option<String>) -> SessionError {
        let mut detail = why.map(|w| format!(" ({w})")).unwrap_or_default();
        if let Some(q) = self.qemu.as_mut() {
            if let Some(status) = q.exit_status() {
                detail.push_str(&format!(
                    "; QEMU exited ({status}): {}",
                    q.stderr_tail().trim()
                ));
            }
        }
        let stderr = self.conn.stderr_tail();
        if !stderr.trim().is_empty() {
            detail.push_str(&format!("; helper said: {}", stderr.trim()));
        }
        SessionError::Closed {
            what: what.into(),
            detail: redact_paths(&detail),
            tail: self.log.tail(600).into(),
        }
    }

    /// Pumps input until `check` returns a value or `deadline` passes.
    fn wait_until<T>(
        &mut self,
        deadline: Instant,
        started: Instant,
        what: &str,
        mut check: impl FnMut(&SerialLog) -> Option<T>,
    ) -> Result<T> {
        loop {
            if let Some(found) = check(&self.log) {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SessionError::Timeout {
                    what: what.into(),
                    after: now - started,
                    tail: self.log.tail(600).into(),
                }
                .into());
            }
            match self
                .conn
                .recv((deadline - now).min(Duration::from_millis(250)))
            {
                Recv::Data(bytes) => {
                    self.log.push(&bytes);
                }
                Recv::Timeout => {}
                Recv::Closed(why) => return Err(self.closed_error(what, why).into()),
            }
        }
    }

    /// Waits for the boot banner frame and the first prompt after it.
    pub fn wait_for_prompt(&mut self, timeout: Duration) -> Result<BootInfo> {
        let begin = Instant::now();
        let deadline = begin + timeout;
        let idx = self.wait_until(deadline, begin, "the boot banner frame", |log| {
            log.frames()
                .frames()
                .iter()
                .rposition(|f| matches!(f.body, Body::Banner(_)))
        })?;
        let banner_after = self.started.elapsed();
        let end = self.log.frames().spans()[idx].end;
        self.wait_until(deadline, begin, "the first prompt", |log| {
            log.prompt_after(end)
        })?;
        let frame = &self.log.frames().frames()[idx];
        let Body::Banner(banner) = &frame.body else {
            unreachable!("index found by matching a banner")
        };
        Ok(BootInfo {
            banner: banner.clone(),
            boot_id: frame.boot_id,
            banner_after,
            prompt_after: self.started.elapsed(),
        })
    }

    /// For a monitor that booted long ago (GCE, sockets): drops whatever half line the
    /// monitor holds (Ctrl-U: a run that died mid-send may have left `reset` typed), sends an
    /// empty line and waits for the prompt it brings. Returns the boot info when the banner
    /// was replayed.
    pub fn sync_prompt(&mut self, timeout: Duration) -> Result<Option<BootInfo>> {
        let begin = Instant::now();
        let from = self.log.transcript().len();
        self.send_raw(&[CTRL_U, b'\r'])?;
        self.wait_until(begin + timeout, begin, "a prompt", |log| {
            log.prompt_after(from)
        })?;
        self.drain_idle(Duration::from_millis(300), begin + timeout)?;
        Ok(self.banner_info())
    }

    fn banner_info(&self) -> Option<BootInfo> {
        let frames = self.log.frames().frames();
        frames.iter().rev().find_map(|f| match &f.body {
            Body::Banner(b) => Some(BootInfo {
                banner: b.clone(),
                boot_id: f.boot_id,
                banner_after: Duration::ZERO,
                prompt_after: Duration::ZERO,
            }),
            _ => None,
        })
    }

    /// Reads until nothing arrives for `idle` (or `deadline`).
    pub fn drain_idle(&mut self, idle: Duration, deadline: Instant) -> Result<()> {
        while Instant::now() < deadline {
            match self.conn.recv(idle.min(deadline - Instant::now())) {
                Recv::Data(bytes) => {
                    self.log.push(&bytes);
                }
                Recv::Timeout => return Ok(()),
                Recv::Closed(why) => return Err(self.closed_error("quiet", why).into()),
            }
        }
        Ok(())
    }

    /// After garbage or an abandoned command: waits for quiet, sends Enter, and returns
    /// once the line is quiet again with a prompt as the last thing printed.
    pub fn resync(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.drain_idle(Duration::from_millis(300), deadline)?;
        while Instant::now() < deadline {
            let from = self.log.transcript().len();
            // Ctrl-U first: garbage may have left a half line that Enter would run.
            self.send_raw(&[CTRL_U, b'\r'])?;
            let begin = Instant::now();
            self.wait_until(deadline, begin, "a prompt", |log| log.prompt_after(from))?;
            self.drain_idle(Duration::from_millis(500), deadline)?;
            let t = self.log.transcript();
            let last_line = &t[t.rfind('\n').map_or(0, |p| p + 1)..];
            if last_line.contains(PROMPT) {
                return Ok(());
            }
        }
        bail!("could not get back to a quiet prompt within {timeout:?}")
    }

    /// Sends `line` + CR and collects until its command.result frame and the next prompt.
    pub fn command(&mut self, line: &str, timeout: Duration) -> Result<CommandOutcome> {
        if line.contains(['\r', '\n']) {
            bail!("a command line cannot contain CR or LF (use send_raw for raw bytes)");
        }
        if line.trim().is_empty() {
            bail!("an empty line runs no command and gets no result frame (use sync_prompt)");
        }
        let frames_before = self.log.frames().frames().len();
        let t0 = Instant::now();
        self.in_flight = Some(InFlight {
            line: line.to_string(),
            frames_before,
        });
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        if let Err(e) = self.send_raw(&bytes) {
            // A write that fails means the line is gone (ssh exited, socket closed): the
            // same as a close while waiting, so a redialling caller can resume.
            let what = format!("sending `{}`", short(line));
            return Err(self.closed_error(&what, Some(format!("{e:#}"))).into());
        }
        self.collect(line, frames_before, None, t0, t0 + timeout)
    }

    /// Waits for the start frame of `line` among the frames after `frames_before` (and, when
    /// `after` is `(boot, seq)`, of that boot with a later seq: a replay may repeat old
    /// frames), then its result frame and the prompt, until `deadline`. `t0`: when the line
    /// was sent.
    pub(crate) fn collect(
        &mut self,
        line: &str,
        frames_before: usize,
        after: Option<(u64, u32)>,
        t0: Instant,
        deadline: Instant,
    ) -> Result<CommandOutcome> {
        let later = |f: &Frame| after.is_none_or(|(boot, seq)| f.boot_id == boot && f.seq > seq);
        let what = format!("the command.start frame of `{}`", short(line));
        // Only the start frame of THIS line: late output of an earlier command (one that
        // timed out, or bytes typed ahead with send_raw) must not be credited to this step.
        let sent = line.trim();
        let start = self.wait_until(deadline, t0, &what, |log| {
            log.frames().frames()[frames_before..]
                .iter()
                .position(|f| {
                    later(f)
                        && matches!(&f.body, Body::CommandStart(s) if is_line_sent(&s.line, sent))
                })
                .map(|p| p + frames_before)
        })?;
        let (cmd, boot) = {
            let f = &self.log.frames().frames()[start];
            (f.cmd, f.boot_id)
        };
        let what = format!(
            "the command.result frame of `{}` (command {cmd})",
            short(line)
        );
        let result = self.wait_until(deadline, t0, &what, |log| {
            log.frames().frames()[start + 1..]
                .iter()
                .position(|f| {
                    f.cmd == cmd && f.boot_id == boot && matches!(f.body, Body::CommandResult(_))
                })
                .map(|p| p + start + 1)
        })?;
        let result_end = self.log.frames().spans()[result].end;
        let what = format!("the prompt after `{}`", short(line));
        self.wait_until(deadline, t0, &what, |log| log.prompt_after(result_end))?;
        let frames: Vec<Frame> = self.log.frames().frames()[start..=result]
            .iter()
            .filter(|f| f.cmd == cmd && f.boot_id == boot)
            .cloned()
            .collect();
        let spans = self.log.frames().spans();
        let text = human_text(&self.log.transcript()[spans[start].end..spans[result].start]);
        let started_line = match &frames[0].body {
            Body::CommandStart(s) => s.line.clone(),
            _ => String::new(),
        };
        let Some(Body::CommandResult(result)) = frames.last().map(|f| f.body.clone()) else {
            unreachable!("the last frame was matched as a command.result")
        };
        Ok(CommandOutcome {
            line: line.to_string(),
            started_line,
            cmd,
            text: text.trim_start_matches('\n').to_string(),
            frames,
            result,
            elapsed: t0.elapsed(),
        })
    }

    /// Whether this session can open its line again after it dropped (GCE).
    pub fn can_redial(&self) -> bool {
        self.redial.is_some()
    }

    /// The line sent last by [`Self::command`].
    pub(crate) fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// What is redialled, for messages.
    pub(crate) fn redial_target(&self) -> String {
        self.redial
            .as_ref()
            .map(|r| r.describe())
            .unwrap_or_default()
    }

    /// Drops the current connection and opens a new one asking for `replay_lines` of
    /// replay. Returns the console bytes the new connection brought, NOT yet in the log
    /// (the caller decides which of them are new: [`Self::push_received`]).
    pub(crate) fn redial(&mut self, replay_lines: u32) -> Result<Vec<u8>> {
        let Some(redial) = self.redial.as_mut() else {
            bail!("this transport cannot reconnect");
        };
        let (conn, early) = redial.redial(replay_lines)?;
        self.conn = conn;
        Ok(early)
    }

    /// Appends bytes received outside the normal read path (the new part of a replay).
    pub(crate) fn push_received(&mut self, bytes: &[u8]) {
        self.log.push(bytes);
    }

    /// The line being received when the connection dropped (unterminated).
    pub(crate) fn current_line(&self) -> &str {
        self.log.current_line()
    }

    /// Writes bytes as they are, paced per [`Pacing`].
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let chunks: Vec<&[u8]> = bytes.chunks(self.pacing.chunk_bytes).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            self.conn.write_all(chunk)?;
            if i != last && !self.pacing.pause.is_zero() {
                std::thread::sleep(self.pacing.pause);
            }
        }
        Ok(())
    }

    /// Sends Ctrl-C (aborts a long wait in the monitor).
    pub fn interrupt(&mut self) -> Result<()> {
        self.conn.write_all(&[0x03])
    }

    /// Runs a QMP command on the QEMU of this session (needs `QemuConfig::qmp`).
    pub fn qmp(&mut self, command: &str, args: Value) -> Result<Value> {
        if self.qmp.is_none() {
            let Some(path) = &self.qmp_path else {
                bail!("QMP is only available for sessions started with QemuConfig {{ qmp: true, .. }}");
            };
            self.qmp = Some(Qmp::connect(path, Duration::from_secs(10))?);
        }
        self.qmp
            .as_mut()
            .map(|q| q.execute(command, args))
            .unwrap_or_else(|| bail!("no QMP"))
    }

    /// Every frame decoded so far.
    pub fn frames(&self) -> &[Frame] {
        self.log.frames().frames()
    }

    /// Frame lines that failed to decode.
    pub fn damaged_frames(&self) -> &[DamagedFrame] {
        self.log.frames().damaged()
    }

    /// Sequence gaps and repeats.
    pub fn sequence_gaps(&self) -> &[SeqGap] {
        self.log.frames().gaps()
    }

    /// Frames, damage, gaps, foreign-boot frames and boots, all together.
    pub fn frame_log(&self) -> &crate::frames::FrameLog {
        self.log.frames()
    }

    /// Everything received so far.
    pub fn transcript(&self) -> &str {
        self.log.transcript()
    }

    /// QEMU's stderr (empty for other transports).
    pub fn qemu_stderr(&self) -> String {
        self.qemu
            .as_ref()
            .map(|q| q.stderr_tail())
            .unwrap_or_default()
    }

    /// When this session's QEMU has exited: its status and its own error lines (QEMU's
    /// `info:` chatter left out, paths redacted). `None` while it runs, or without QEMU.
    pub fn qemu_failure(&mut self) -> Option<String> {
        let q = self.qemu.as_mut()?;
        // The serial line closes as QEMU exits; its exit may take a moment to be seen.
        let until = Instant::now() + QEMU_EXIT_WAIT;
        let status = loop {
            match q.exit_status() {
                Some(status) => break status,
                None if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                None => return None,
            }
        };
        let words: Vec<String> = q
            .stderr_tail()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains(": info: "))
            .map(str::to_string)
            .collect();
        Some(redact_paths(&format!(
            "QEMU exited ({status}): {}",
            if words.is_empty() {
                "it printed nothing".to_string()
            } else {
                words.join(" / ")
            }
        )))
    }

    /// Time since the session started (QEMU spawn or connect).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the session: kills QEMU and reports how the gVNIC model thread ended.
    pub fn close(mut self) -> Result<()> {
        match self.qemu.as_mut().and_then(|q| q.shutdown()) {
            Some(r) => r,
            None => Ok(()),
        }
    }

    /// Like [`Self::close`], and also returns the gVNIC model's final state, even when the
    /// model thread ended with an error (`bringup run`/`matrix` judge the record either way).
    pub fn close_keeping_model(mut self) -> (Result<()>, Option<crate::gvnic::ModelState>) {
        let Some(qemu) = self.qemu.as_mut() else {
            return (Ok(()), None);
        };
        let served = qemu.shutdown().unwrap_or(Ok(()));
        (served, qemu.gvnic_model_state())
    }

    /// Like [`Self::close`], and returns the gVNIC model's own view of the device as the
    /// guest's last command left it (QEMU is killed, so no reset reaches the model on the
    /// way out). `None` when the session has no gVNIC model.
    pub fn close_with_gvnic_state(mut self) -> Result<Option<crate::gvnic::ModelState>> {
        let Some(qemu) = self.qemu.as_mut() else {
            return Ok(None);
        };
        if let Some(served) = qemu.shutdown() {
            served?;
        }
        Ok(qemu.gvnic_model_state())
    }
}

fn short(line: &str) -> String {
    if line.chars().count() > 40 {
        format!("{}...", line.chars().take(40).collect::<String>())
    } else {
        line.to_string()
    }
}

/// QEMU and ssh name files by absolute path in their errors (`-drive file=/home/u/...`,
/// `Load key "/home/u/.ssh/..."`); reports must not carry the machine's layout, so every
/// absolute path keeps only its file name.
pub(crate) fn redact_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('/') {
        let starts_path = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "=\"'(:,".contains(c));
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'),:".contains(c))
            .unwrap_or(tail.len());
        let path = &tail[..end];
        if starts_path && path.len() > 1 {
            out.push_str(".../");
            out.push_str(path.rsplit('/').next().unwrap_or_default());
        } else {
            out.push_str(path);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_paths;

    #[test]
    fn absolute_paths_keep_only_their_file_name() {
        assert_eq!(
            redact_paths("qemu: -drive file=/home/alice/disks/nvme.img,if=none: Could not open '/tmp/x/y.img'"),
            "qemu: -drive file=.../nvme.img,if=none: Could not open '.../y.img'"
        );
        assert_eq!(
            redact_paths("Load key \"/root/.ssh/google_compute_engine\": bad permissions"),
            "Load key \".../google_compute_engine\": bad permissions"
        );
        assert_eq!(
            redact_paths("a/b and 1/2 stay; / alone stays"),
            "a/b and 1/2 stay; / alone stays"
        );
    }
}
