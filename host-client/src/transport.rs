//! Byte pipes to a monitor: TCP, UNIX socket, a spawned command's stdio (`exec:`), and the
//! GCE serial console over OpenSSH. Every connection has a reader thread that feeds a
//! channel, so callers can wait with deadlines.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::gce::GceTarget;

/// Where the monitor's serial line is.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `tcp:HOST:PORT`, e.g. QEMU `-serial tcp::4444,server=on`.
    Tcp(String),
    /// `unix:PATH`, e.g. QEMU `-chardev socket,path=PATH,server=on`.
    Unix(PathBuf),
    /// `exec:CMD`: run CMD with `sh -c`; its stdin/stdout are the serial line.
    Exec(String),
    /// The GCE interactive serial console through OpenSSH (boxed: a target is large).
    Gce(Box<GceTarget>),
}

impl FromStr for Transport {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        if let Some(addr) = spec.strip_prefix("tcp:") {
            if addr
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                bail!("bad tcp address {addr:?}: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444");
            }
            Ok(Transport::Tcp(addr.to_string()))
        } else if let Some(path) = spec.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("unix: needs a socket path, e.g. unix:/tmp/serial.sock");
            }
            Ok(Transport::Unix(path.into()))
        } else if let Some(cmd) = spec.strip_prefix("exec:") {
            if cmd.trim().is_empty() {
                bail!("exec: needs a command, e.g. exec:socat - UNIX-CONNECT:/tmp/s");
            }
            Ok(Transport::Exec(cmd.to_string()))
        } else {
            bail!("unknown transport {spec:?}: use tcp:HOST:PORT, unix:PATH or exec:CMD")
        }
    }
}

/// A transport that can open its line again after it dropped (the GCE gateway), asking for
/// recent output to be replayed so the caller can see what happened while it was away.
pub trait Redial: Send {
    /// A fresh connection, and the console bytes it brought before it was ready for input.
    fn redial(&mut self, replay_lines: u32) -> Result<(Connection, Vec<u8>)>;
    /// For messages: what is being redialled (no machine paths).
    fn describe(&self) -> String;
}

/// What the reader thread reports.
pub(crate) enum Chunk {
    Data(Vec<u8>),
    Closed(Option<String>),
}

/// The longest a write to a socket transport may block (the monitor drains its UART in
/// microseconds; a peer that takes this long is stuck, and the write fails instead of hanging).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One open byte pipe to the monitor.
pub struct Connection {
    rx: Receiver<Chunk>,
    writer: Box<dyn Write + Send>,
    child: Option<Child>,
    shutdown: Option<Box<dyn FnMut() + Send>>,
    /// Last bytes a child process wrote to stderr (ssh diagnostics).
    pub(crate) stderr_tail: Arc<Mutex<String>>,
    /// Texts on the helper's stderr that mean the line is gone although the process may
    /// linger (the GCE gateway's `serialport: VM disconnected`).
    closed_markers: &'static [&'static str],
    /// Set once the helper's stderr reached EOF (or read failed).
    stderr_done: Arc<AtomicBool>,
    /// A gateway notice seen on stdout: the next `recv` reports the close.
    stdout_notice: Option<String>,
    closed: bool,
}

/// What [`Connection::recv`] got.
pub(crate) enum Recv {
    Data(Vec<u8>),
    Timeout,
    Closed(Option<String>),
}

impl Connection {
    pub(crate) fn from_parts(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        child: Option<Child>,
        shutdown: Option<Box<dyn FnMut() + Send>>,
    ) -> Connection {
        let (tx, rx) = channel();
        thread::spawn(move || {
            let mut reader = reader;
            let mut buf = vec![0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Chunk::Closed(None));
                        break;
                    }
                    Ok(n) => {
                        if tx.send(Chunk::Data(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Chunk::Closed(Some(e.to_string())));
                        break;
                    }
                }
            }
        });
        Connection {
            rx,
            writer,
            child,
            shutdown,
            stderr_tail: Arc::new(Mutex::new(String::new())),
            closed_markers: &[],
            stderr_done: Arc::new(AtomicBool::new(false)),
            stdout_notice: None,
            closed: false,
        }
    }

    pub fn unix(stream: UnixStream) -> Result<Connection> {
        // A guest that stops draining its UART stops QEMU reading the socket: without a
        // send timeout a write would block forever, past every read deadline.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let reader = stream.try_clone()?;
        let closer = stream.try_clone()?;
        Ok(Self::from_parts(
            Box::new(reader),
            Box::new(stream),
            None,
            Some(Box::new(move || {
                let _ = closer.shutdown(Shutdown::Both);
            })),
        ))
    }

    pub fn tcp(stream: TcpStream) -> Result<Connection> {
        stream.set_nodelay(true).ok();
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let reader = stream.try_clone()?;
        let closer = stream.try_clone()?;
        Ok(Self::from_parts(
            Box::new(reader),
            Box::new(stream),
            None,
            Some(Box::new(move || {
                let _ = closer.shutdown(Shutdown::Both);
            })),
        ))
    }

    /// Spawns `command` with piped stdin/stdout; stderr is collected for diagnostics.
    pub fn spawn(mut command: Command) -> Result<Connection> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let stdin = child.stdin.take().context("child has no stdin")?;
        let stdout = child.stdout.take().context("child has no stdout")?;
        let stderr = child.stderr.take().context("child has no stderr")?;
        let mut conn = Self::from_parts(Box::new(stdout), Box::new(stdin), Some(child), None);
        // Wrapped so the end of stderr is known: a helper's last words (ssh's "Permission
        // denied") may still be in the pipe when its stdout closes.
        let done = conn.stderr_done.clone();
        conn.stderr_tail = collect_tail(DoneOnEof {
            inner: stderr,
            done,
        });
        Ok(conn)
    }

    /// Treats any of `markers` on the helper's stderr as the end of the line.
    pub(crate) fn set_closed_markers(&mut self, markers: &'static [&'static str]) {
        self.closed_markers = markers;
    }

    pub(crate) fn recv(&mut self, timeout: Duration) -> Recv {
        if self.closed {
            return Recv::Closed(None);
        }
        if let Some(notice) = self.stdout_notice.take() {
            self.closed = true;
            return Recv::Closed(Some(notice));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Chunk::Data(bytes)) => match self.cut_gateway_notice(bytes) {
                Ok(bytes) => Recv::Data(bytes),
                Err(notice) => {
                    self.closed = true;
                    Recv::Closed(Some(notice))
                }
            },
            Ok(Chunk::Closed(why)) => {
                self.closed = true;
                Recv::Closed(why)
            }
            // Only once no data is pending: bytes sent before the marker are still output.
            Err(RecvTimeoutError::Timeout) if self.closed_marker_seen().is_some() => {
                self.closed = true;
                Recv::Closed(self.closed_marker_seen())
            }
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Recv::Closed(None)
            }
        }
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .and_then(|_| self.writer.flush())
            .context("cannot write to the serial line (connection closed?)")
    }

    /// Waits (at most `max`) until a spawned helper's stderr reached its end, so
    /// [`Self::stderr_tail`] holds everything it said.
    pub(crate) fn wait_stderr_end(&self, max: Duration) {
        let deadline = std::time::Instant::now() + max;
        while !self.stderr_done.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines a spawned helper (ssh, exec command) wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// A gateway notice among the closed markers (`serialport: ...`) may also come on stdout,
    /// inside console bytes (syzkaller merges the streams and sees it there, platform-notes
    /// §6). It is cut out like the banner; the bytes around it stay output, and the next
    /// `recv` reports the close. `Err` when the notice was all the chunk held.
    fn cut_gateway_notice(&mut self, mut bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        for marker in self
            .closed_markers
            .iter()
            .filter(|m| m.starts_with("serialport: "))
        {
            let needle = marker.as_bytes();
            let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
                continue;
            };
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| at + p + 1);
            bytes.drain(at..end);
            if bytes.is_empty() {
                return Err(marker.to_string());
            }
            self.stdout_notice = Some(marker.to_string());
            break;
        }
        Ok(bytes)
    }

    fn closed_marker_seen(&self) -> Option<String> {
        if self.closed_markers.is_empty() {
            return None;
        }
        let tail = self.stderr_tail();
        self.closed_markers
            .iter()
            .find(|m| tail.contains(**m))
            .map(|m| m.to_string())
    }

    /// Whether a spawned helper has exited, and how.
    pub(crate) fn child_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.as_mut() {
            shutdown();
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A reader that raises `done` when it reaches EOF or fails.
struct DoneOnEof<R> {
    inner: R,
    done: Arc<AtomicBool>,
}

impl<R: Read> Read for DoneOnEof<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let got = self.inner.read(buf);
        if !matches!(got, Ok(n) if n > 0) {
            self.done.store(true, Ordering::Release);
        }
        got
    }
}

/// Keeps the last 8 KiB a stream writes, in a thread.
pub(crate) fn collect_tail(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let tail = Arc::new(Mutex::new(String::new()));
    let out = tail.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = out.lock() {
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > 8192 {
                    let mut cut = t.len() - 8192;
                    while !t.is_char_boundary(cut) {
                        cut += 1;
                    }
                    t.drain(..cut);
                }
            }
        }
    });
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_marker_on_stderr_ends_a_lingering_helper() {
        // ssh may stay alive after the gateway dropped the console (platform-notes §6).
        let mut command = Command::new("sh");
        command.arg("-c").arg(
            "printf 'console\\r\\n'; \
             echo 'packet_write_wait: Connection to 10.0.0.1 port 9600: Broken pipe' >&2; sleep 30",
        );
        let mut conn = Connection::spawn(command).unwrap();
        conn.set_closed_markers(crate::gce::connect::DISCONNECT_MARKERS);
        let t0 = std::time::Instant::now();
        let mut got = Vec::new();
        let why = loop {
            match conn.recv(Duration::from_millis(100)) {
                Recv::Data(b) => got.extend(b),
                Recv::Timeout => assert!(t0.elapsed() < Duration::from_secs(10), "never closed"),
                Recv::Closed(why) => break why,
            }
        };
        assert_eq!(
            got, b"console\r\n",
            "bytes before the marker are still output"
        );
        assert_eq!(why.as_deref(), Some("Broken pipe"));
        assert!(matches!(conn.recv(Duration::ZERO), Recv::Closed(_)));
    }

    #[test]
    fn a_disconnect_notice_inside_console_output_is_cut_out_and_ends_the_line() {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("printf 'bringup> verserialport: VM disconnected\\r\\nsion'; sleep 30");
        let mut conn = Connection::spawn(command).unwrap();
        conn.set_closed_markers(crate::gce::connect::DISCONNECT_MARKERS);
        let t0 = std::time::Instant::now();
        let mut got = Vec::new();
        let why = loop {
            match conn.recv(Duration::from_millis(100)) {
                Recv::Data(b) => got.extend(b),
                Recv::Timeout => assert!(t0.elapsed() < Duration::from_secs(10), "never closed"),
                Recv::Closed(why) => break why,
            }
        };
        assert_eq!(String::from_utf8_lossy(&got), "bringup> version");
        assert_eq!(why.as_deref(), Some("serialport: VM disconnected"));
    }

    #[test]
    fn transport_specs_parse_or_explain() {
        assert!(
            matches!("tcp:127.0.0.1:4444".parse::<Transport>(), Ok(Transport::Tcp(a)) if a == "127.0.0.1:4444")
        );
        assert!(
            matches!("unix:/tmp/s".parse::<Transport>(), Ok(Transport::Unix(p)) if p.as_path() == std::path::Path::new("/tmp/s"))
        );
        assert!(matches!("exec:cat".parse::<Transport>(), Ok(Transport::Exec(c)) if c == "cat"));
        let err = "tcp:nohost".parse::<Transport>().unwrap_err().to_string();
        assert!(err.contains("tcp:HOST:PORT"), "{err}");
        let err = "serial:/dev/ttyS0"
            .parse::<Transport>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown transport"), "{err}");
    }
}
