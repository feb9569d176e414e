//! A small expect-like driver for a QEMU whose serial line is its stdin/stdout.
//!
//! A reader thread appends everything QEMU prints to a shared buffer; `expect` waits (with a
//! deadline) until a pattern appears after the cursor and returns the text up to it together with
//! the instant the pattern was seen. The child dies with this value (and with this process:
//! PR_SET_PDEATHSIG), so no QEMU outlives a benchmark.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    first_byte: Option<Instant>,
    eof: bool,
}

type Shared = Arc<(Mutex<Buffer>, Condvar)>;

pub struct Console {
    child: Child,
    stdin: ChildStdin,
    shared: Shared,
    reader: Option<JoinHandle<()>>,
    cursor: usize,
    /// When the child was spawned.
    pub started: Instant,
}

/// What `expect` found: the text from the old cursor through the end of the match.
pub struct Found {
    pub text: String,
    pub at: Instant,
}

impl Console {
    pub fn spawn(mut command: Command) -> Result<Console> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child when we die.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {:?}", command.get_program()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let mut stdout = child.stdout.take().context("child stdout")?;
        let shared: Shared = Arc::default();
        let sink = Arc::clone(&shared);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 64 * 1024];
            loop {
                let n = stdout.read(&mut chunk).unwrap_or(0);
                let (lock, cond) = &*sink;
                let mut buf = lock.lock().expect("console buffer poisoned");
                if n == 0 {
                    buf.eof = true;
                    cond.notify_all();
                    return;
                }
                buf.first_byte.get_or_insert_with(Instant::now);
                buf.data.extend_from_slice(&chunk[..n]);
                cond.notify_all();
            }
        });
        Ok(Console {
            child,
            stdin,
            shared,
            reader: Some(reader),
            cursor: 0,
            started,
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stdin.write_all(bytes)?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Sends `line` and a carriage return; returns the instant the last byte left us.
    pub fn send_line(&mut self, line: &str) -> Result<Instant> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(&bytes)?;
        Ok(Instant::now())
    }

    pub fn first_byte(&self) -> Option<Instant> {
        self.shared.0.lock().ok()?.first_byte
    }

    /// Waits until `pattern` appears after the cursor; moves the cursor past it.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<Found> {
        let deadline = Instant::now() + timeout;
        let needle = pattern.as_bytes();
        let (lock, cond) = &*self.shared;
        let mut buf = lock
            .lock()
            .map_err(|_| anyhow!("console buffer poisoned"))?;
        loop {
            let hay = &buf.data[self.cursor..];
            if let Some(pos) = hay.windows(needle.len()).position(|w| w == needle) {
                let at = Instant::now();
                let end = self.cursor + pos + needle.len();
                let text = String::from_utf8_lossy(&buf.data[self.cursor..end]).into_owned();
                self.cursor = end;
                return Ok(Found { text, at });
            }
            let now = Instant::now();
            if buf.eof || now >= deadline {
                let tail = tail(&buf.data[self.cursor..], 600);
                let why = if buf.eof { "QEMU exited" } else { "timed out" };
                bail!("{why} after {timeout:?} waiting for {pattern:?}; last output:\n{tail}");
            }
            buf = cond
                .wait_timeout(buf, deadline - now)
                .map_err(|_| anyhow!("console buffer poisoned"))?
                .0;
        }
    }
}

fn tail(bytes: &[u8], max: usize) -> String {
    let from = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
