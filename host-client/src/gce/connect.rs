//! Connecting to the GCE serial gateway the way it really behaves (platform-notes §6): spawn
//! ssh, wait for the `serialport: Connected` banner on stdout or stderr, keep every console
//! byte that came before or after it, wait the settle time, and retry a spurious
//! "Permission denied (publickey)" with backoff. ssh's stdin stays open for the whole session
//! (ssh ends the session on stdin EOF), because [`Connection`] keeps the pipe until dropped.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::banner::{banner_in_text, strip_banner};
use super::ssh::{explain_failure, last_lines, GceTarget, CONNECTED_BANNER};
use crate::session::redact_paths;
use crate::transport::{Connection, Recv, Redial};

/// What the gateway or ssh print when the console went away mid-session (platform-notes §6:
/// syzkaller sees both). ssh may linger after them, so they end the connection.
pub const DISCONNECT_MARKERS: &[&str] = &[
    "serialport: VM disconnected",
    "Broken pipe",
    "Connection reset by peer",
];

/// Policy: how long to wait for ssh's last stderr words once it ended (it exits at once
/// after printing them; the reader thread may lag on a loaded machine).
const STDERR_END_WAIT: Duration = Duration::from_secs(3);

/// Why a connection to the gateway failed. `code()` is stable kebab-case.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// "Permission denied (publickey)" on every try.
    #[error("{message} (refused {tries} times; retried with backoff because GCE sometimes refuses spuriously)")]
    AuthDenied { tries: usize, message: String },
    /// ssh ended (or the banner never came) for a reason [`explain_failure`] recognised or not.
    #[error("{message}")]
    Failed { message: String },
    /// The gateway closed the line during the settle time after its banner.
    #[error("the serial gateway closed the console {after:?} after its banner, before anything was sent: {detail}")]
    ClosedWhileSettling { after: Duration, detail: String },
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::AuthDenied { .. } => "gateway-auth-denied",
            GatewayError::Failed { .. } => "gateway-connect-failed",
            GatewayError::ClosedWhileSettling { .. } => "gateway-closed",
        }
    }
}

impl GceTarget {
    /// Spawns ssh, waits for the banner and the settle time. Returns the connection and the
    /// console bytes received so far (before the banner, around it, and while settling).
    pub fn connect(&self) -> Result<(Connection, Vec<u8>)> {
        self.connect_replaying(self.replay_lines)
    }

    /// [`Self::connect`] asking the gateway to replay `replay_lines` recent lines.
    pub fn connect_replaying(&self, replay_lines: Option<u32>) -> Result<(Connection, Vec<u8>)> {
        let argv = self.ssh_argv_with_replay(replay_lines)?;
        let mut waits = self.auth_backoff.iter();
        let mut tries = 0;
        loop {
            tries += 1;
            match self.attempt(&argv) {
                Ok(connected) => return Ok(connected),
                Err(Attempt::Denied(message)) => match waits.next() {
                    Some(wait) => std::thread::sleep(*wait),
                    None => return Err(GatewayError::AuthDenied { tries, message }.into()),
                },
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    fn attempt(&self, argv: &[String]) -> Result<(Connection, Vec<u8>), Attempt> {
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        let mut conn = Connection::spawn(command).map_err(Attempt::Failed)?;
        conn.set_closed_markers(DISCONNECT_MARKERS);
        let deadline = Instant::now() + self.connect_timeout;
        let mut console = Vec::new();
        loop {
            if let Some(rest) = strip_banner(&console) {
                console = rest;
                break;
            }
            if banner_in_text(&conn.stderr_tail()) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                let message = explain_failure(
                    self,
                    &String::from_utf8_lossy(&console),
                    &conn.stderr_tail(),
                    None,
                )
                .unwrap_or_else(|| {
                    format!(
                        "no `{CONNECTED_BANNER}` banner from the gateway (stdout or stderr) within {:?}",
                        self.connect_timeout
                    )
                });
                return Err(Attempt::failed(message));
            }
            match conn.recv((deadline - now).min(Duration::from_millis(50))) {
                Recv::Data(bytes) => console.extend_from_slice(&bytes),
                Recv::Timeout => {
                    if let Some(status) = conn.child_exit() {
                        return Err(self.ended(&console, &conn, status.code()));
                    }
                }
                Recv::Closed(_) => {
                    // stdout closes as ssh exits: give it a moment to be reaped.
                    let wait = Instant::now() + STDERR_END_WAIT;
                    let mut status = conn.child_exit();
                    while status.is_none() && Instant::now() < wait {
                        std::thread::sleep(Duration::from_millis(10));
                        status = conn.child_exit();
                    }
                    return Err(self.ended(&console, &conn, status.and_then(|s| s.code())));
                }
            }
        }
        let settled = Instant::now() + self.settle;
        loop {
            let now = Instant::now();
            if now >= settled {
                return Ok((conn, console));
            }
            match conn.recv(settled - now) {
                Recv::Data(bytes) => console.extend_from_slice(&bytes),
                Recv::Timeout => {}
                Recv::Closed(why) => {
                    conn.wait_stderr_end(STDERR_END_WAIT);
                    let detail = why.unwrap_or_else(|| last_lines(&conn.stderr_tail(), 2));
                    return Err(Attempt::Failed(
                        GatewayError::ClosedWhileSettling {
                            after: self.settle - (settled - now),
                            detail: redact_paths(&detail),
                        }
                        .into(),
                    ));
                }
            }
        }
    }

    /// ssh ended before the banner: a (possibly spurious) key refusal, or a named failure.
    fn ended(&self, console: &[u8], conn: &Connection, code: Option<i32>) -> Attempt {
        // Its explanation is on stderr, which may still be in flight.
        conn.wait_stderr_end(STDERR_END_WAIT);
        let stdout = String::from_utf8_lossy(console);
        let stderr = conn.stderr_tail();
        let explained = explain_failure(self, &stdout, &stderr, code);
        let denied = stderr
            .to_lowercase()
            .contains("permission denied (publickey");
        match explained {
            Some(message) if denied => Attempt::Denied(message),
            Some(message) => Attempt::failed(message),
            None => Attempt::failed(format!(
                "ssh to the serial gateway ended before `{CONNECTED_BANNER}` (exit status {}).\n{}",
                code.map_or("unknown".into(), |c| c.to_string()),
                redact_paths(&last_lines(&format!("{stdout}{stderr}"), 8))
            )),
        }
    }
}

enum Attempt {
    Denied(String),
    Failed(anyhow::Error),
}

impl Attempt {
    fn failed(message: String) -> Attempt {
        Attempt::Failed(GatewayError::Failed { message }.into())
    }
}

impl Redial for GceTarget {
    /// Reconnects asking for at least `replay_lines`; a failed try (other than a key refusal,
    /// which [`GceTarget::connect_replaying`] already retried) is retried after each wait in
    /// `redial_backoff`.
    fn redial(&mut self, replay_lines: u32) -> Result<(Connection, Vec<u8>)> {
        let lines = self.replay_lines.unwrap_or(0).max(replay_lines);
        let mut waits = self.redial_backoff.iter();
        loop {
            match self.connect_replaying(Some(lines)) {
                Ok(connected) => return Ok(connected),
                Err(e) if matches!(e.downcast_ref(), Some(GatewayError::AuthDenied { .. })) => {
                    return Err(e)
                }
                Err(e) => match waits.next() {
                    Some(wait) => std::thread::sleep(*wait),
                    None => return Err(e),
                },
            }
        }
    }

    fn describe(&self) -> String {
        format!("the GCE serial gateway for {}", self.instance)
    }
}
