//! A small QMP client (QEMU Machine Protocol, JSON lines over a UNIX socket), for tests that
//! ask QEMU what the guest really has (`query-pci`, ...).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying until `timeout` while QEMU creates the socket) and negotiates
    /// capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e).context("cannot connect to QEMU's QMP socket"),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("QMP greeting missing: {greeting}");
        }
        qmp.execute("qmp_capabilities", Value::Null)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP connection closed");
        }
        serde_json::from_str(&line).with_context(|| format!("bad QMP message {line:?}"))
    }

    /// Runs one command; returns its `return` value. Events in between are skipped.
    pub fn execute(&mut self, command: &str, args: Value) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        let mut text = serde_json::to_string(&msg)?;
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                bail!(
                    "QMP {command} failed: {}",
                    err.get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                );
            }
        }
    }
}
