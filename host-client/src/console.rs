//! The interactive console: raw terminal passthrough to the monitor (arrows, Ctrl-C and all),
//! frames rendered as one-line summaries or hidden, an escape key, and the terminal restored
//! on exit and on panic.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::Stylize;
use crossterm::terminal;

use crate::json::frame_summary;
use crate::Session;

/// How frames appear on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FrameDisplay {
    /// `[frame 12 cmd 3 nvme.read ...]`
    #[default]
    Summary,
    /// Not shown at all.
    Hidden,
    /// The raw `@@BU1 ...` lines.
    Raw,
}

/// Runs the console until the escape key (Ctrl-]) or until the connection closes.
pub fn run_console(session: &mut Session, frames: FrameDisplay) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "the interactive console needs a terminal; use `bringup run SCRIPT` for scripted use"
        );
    }
    eprintln!("Connected. Press Ctrl-] to quit. Keys (arrows, Ctrl-C) go to the monitor.\r");
    let _raw = RawMode::enable()?;
    let mut filter = FrameFilter::new(frames);
    let mut stdout = std::io::stdout();
    // What arrived while connecting (the GCE gateway's replay and console bytes around its
    // banner) is console output too.
    let backlog = session.transcript().as_bytes().to_vec();
    if !backlog.is_empty() {
        stdout.write_all(&filter.push(&backlog))?;
        stdout.flush()?;
    }
    loop {
        match session.poll_output(Duration::from_millis(10)) {
            Ok(Some(bytes)) => {
                stdout.write_all(&filter.push(&bytes))?;
                stdout.flush()?;
            }
            Ok(None) => {}
            Err(e) => {
                drop(_raw);
                eprintln!("\nconnection closed: {e:#}");
                return Ok(());
            }
        }
        while event::poll(Duration::ZERO)? {
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind == KeyEventKind::Release {
                continue;
            }
            if is_escape(&key) {
                drop(_raw);
                eprintln!("\n(console closed)");
                return Ok(());
            }
            let bytes = key_bytes(&key);
            if !bytes.is_empty() {
                session.send_raw(&bytes)?;
            }
        }
    }
}

/// Ctrl-] (reported by crossterm as Ctrl-5 on legacy terminals).
fn is_escape(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char(']') | KeyCode::Char('5'))
}

/// The bytes a VT100 terminal would send for `key`.
pub fn key_bytes(key: &KeyEvent) -> Vec<u8> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char(c) if ctrl => match c {
            'a'..='z' | 'A'..='Z' => vec![(c.to_ascii_lowercase() as u8) - b'a' + 1],
            '@' | ' ' | '2' => vec![0],
            '[' | '3' => vec![0x1b],
            '\\' | '4' => vec![0x1c],
            '^' | '6' => vec![0x1e],
            '_' | '7' => vec![0x1f],
            _ => Vec::new(),
        },
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => vec![b'\r'],
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        _ => Vec::new(),
    }
}

/// Raw mode for the lifetime of the guard; a panic hook restores the terminal too.
struct RawMode;

impl RawMode {
    fn enable() -> Result<RawMode> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = terminal::disable_raw_mode();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

/// Passes output through byte by byte, except lines that start with the frame marker: those
/// are held until complete and then summarized, hidden or passed raw.
pub struct FrameFilter {
    mode: FrameDisplay,
    at_line_start: bool,
    held: Vec<u8>,
}

impl FrameFilter {
    pub fn new(mode: FrameDisplay) -> Self {
        FrameFilter {
            mode,
            at_line_start: true,
            held: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let marker = evidence::MARKER.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.mode == FrameDisplay::Raw {
                out.push(b);
                continue;
            }
            if !self.held.is_empty() || (self.at_line_start && b == marker[0]) {
                self.held.push(b);
                let n = self.held.len();
                if n <= marker.len() && self.held[..] != marker[..n] {
                    // Not a frame after all.
                    out.append(&mut self.held);
                } else if b == b'\n' {
                    self.render_held(&mut out);
                }
                self.at_line_start = b == b'\n';
                continue;
            }
            out.push(b);
            // LF starts a line; a CR right after it (line editors send "\n\r") keeps it started.
            self.at_line_start = b == b'\n' || (b == b'\r' && self.at_line_start);
        }
        out
    }

    fn render_held(&mut self, out: &mut Vec<u8>) {
        let line = String::from_utf8_lossy(&self.held).into_owned();
        self.held.clear();
        if self.mode == FrameDisplay::Hidden {
            return;
        }
        let text = match evidence::decode_line(line.trim_end()) {
            Ok(frame) => frame_summary(&frame),
            Err(e) => format!("[damaged frame: {e}]"),
        };
        out.extend_from_slice(format!("{}\r\n", text.dim()).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::{encode_line, Body, CommandStart, Frame};

    fn frame_line() -> String {
        encode_line(&Frame {
            boot_id: 1,
            seq: 12,
            cmd: 3,
            body: Body::CommandStart(CommandStart {
                line: "nvme read 0".into(),
            }),
        })
    }

    #[test]
    fn frames_are_summarized_text_passes_through_even_when_split() {
        let input = format!(
            "hello @@ not a frame\r\n{}\r\n@@x\r\nbringup> help\n\r{}\r\n",
            frame_line(),
            frame_line()
        );
        let mut filter = FrameFilter::new(FrameDisplay::Summary);
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(7) {
            out.extend(filter.push(chunk));
        }
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("hello @@ not a frame\r\n"), "{out:?}");
        assert!(
            out.contains("[frame 12 cmd 3 command.start \"nvme read 0\"]"),
            "{out:?}"
        );
        assert!(!out.contains("@@BU1"), "{out:?}");
        assert!(out.contains("@@x\r\nbringup> help\n\r"), "{out:?}");
    }

    #[test]
    fn hidden_and_raw_modes() {
        let input = format!("{}\r\nok\r\n", frame_line());
        assert_eq!(
            FrameFilter::new(FrameDisplay::Hidden).push(input.as_bytes()),
            b"ok\r\n"
        );
        assert_eq!(
            FrameFilter::new(FrameDisplay::Raw).push(input.as_bytes()),
            input.as_bytes()
        );
    }

    #[test]
    fn keys_become_vt100_bytes() {
        let k = |code, m| KeyEvent::new(code, m);
        assert_eq!(
            key_bytes(&k(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            [3]
        );
        assert_eq!(key_bytes(&k(KeyCode::Up, KeyModifiers::NONE)), b"\x1b[A");
        assert_eq!(key_bytes(&k(KeyCode::Enter, KeyModifiers::NONE)), b"\r");
        assert_eq!(
            key_bytes(&k(KeyCode::Char('é'), KeyModifiers::NONE)),
            "é".as_bytes()
        );
        assert!(is_escape(&k(KeyCode::Char(']'), KeyModifiers::CONTROL)));
        assert!(is_escape(&k(KeyCode::Char('5'), KeyModifiers::CONTROL)));
        assert!(!is_escape(&k(KeyCode::Char(']'), KeyModifiers::NONE)));
    }
}
