//! Input sanitizing: the only bytes the line editor ever sees.
//!
//! The serial line carries whatever a host, a terminal or line noise sends. The editor
//! (noline) trusts its input: a cursor-position report without arguments (`ESC [ R`) makes
//! it panic. So everything passes through this filter first, which forwards only
//! - complete, valid UTF-8 printable characters,
//! - the control keys the editor binds (Ctrl-A..Ctrl-Z, backspace, tab, Enter),
//! - the cursor keys and Home/End/Delete, re-encoded in one canonical form,
//!
//! and drops everything else. CR LF counts as one Enter.
//!
//! Line length is judged on the finished line ([`check_line`]), not here: the sanitizer
//! cannot see what backspace, Ctrl-W or a line recalled from history do to the editor's
//! buffer. What the sanitizer does bound is memory: it forwards at most [`INPUT_BUDGET`]
//! printable bytes per line (edits included), so a flood without line breaks cannot grow
//! the editor's buffer without limit. Past the budget it drops bytes and remembers that,
//! so the REPL refuses the line instead of running a truncated command.

use heapless::Vec;

/// Longest finished line the REPL accepts; a longer one is refused when Enter arrives.
pub const LINE_LIMIT: usize = commands::args::MAX_LINE;
/// Printable bytes forwarded to the editor per line, counting bytes later deleted. Well
/// above [`LINE_LIMIT`] so ordinary editing never reaches it; it exists to bound memory.
pub const INPUT_BUDGET: usize = 4 * LINE_LIMIT;

/// Why a finished line must not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The line itself is longer than [`LINE_LIMIT`] bytes.
    TooLong { bytes: usize },
    /// The sanitizer dropped input past [`INPUT_BUDGET`]: the line is not what was typed.
    InputDropped,
}

/// The length rule, applied to the line the editor hands back (after every edit and
/// history recall), plus whether the sanitizer had to drop part of it.
pub fn check_line(line: &str, input_dropped: bool) -> Result<(), Refusal> {
    if input_dropped {
        Err(Refusal::InputDropped)
    } else if line.len() > LINE_LIMIT {
        Err(Refusal::TooLong { bytes: line.len() })
    } else {
        Ok(())
    }
}

const ESC: u8 = 0x1b;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
const DEL: u8 = 0x7f;
/// Parameter bytes allowed in a CSI sequence before it is dropped as noise.
const CSI_PARAMS_MAX: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// After ESC.
    Escape,
    /// After ESC [ (or ESC O), collecting parameter bytes.
    Csi,
    /// Inside a control sequence we will not forward: swallow it up to its final byte.
    Discard,
    /// Inside a multi-byte UTF-8 character.
    Utf8 {
        needed: u8,
    },
}

pub struct Sanitizer {
    state: State,
    params: Vec<u8, CSI_PARAMS_MAX>,
    utf8: Vec<u8, 4>,
    last_was_cr: bool,
    /// Printable bytes forwarded since the last Enter / Ctrl-C / Ctrl-U (only grows:
    /// the sanitizer does not know what the editor deleted).
    forwarded: usize,
    dropped: bool,
}

/// Up to 5 bytes of editor input produced by one input byte.
pub type Forward = Vec<u8, 8>;

impl Default for Sanitizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sanitizer {
    pub const fn new() -> Self {
        Sanitizer {
            state: State::Normal,
            params: Vec::new(),
            utf8: Vec::new(),
            last_was_cr: false,
            forwarded: 0,
            dropped: false,
        }
    }

    /// True if input of the line just finished was dropped (past [`INPUT_BUDGET`]);
    /// resets the flag.
    pub fn take_dropped(&mut self) -> bool {
        core::mem::take(&mut self.dropped)
    }

    /// Feeds one received byte; returns the bytes to hand the editor (often none).
    pub fn feed(&mut self, byte: u8) -> Forward {
        let mut out = Forward::new();
        let after_cr = core::mem::take(&mut self.last_was_cr);
        match self.state {
            State::Normal => self.normal(byte, after_cr, &mut out),
            State::Escape => match byte {
                b'[' | b'O' => {
                    self.params.clear();
                    self.state = State::Csi;
                }
                // Alt-<key> and other two-byte escapes have no binding: drop.
                _ => self.state = State::Normal,
            },
            State::Csi => self.csi(byte, &mut out),
            State::Discard => match byte {
                0x20..=0x3f => {}
                0x40..=0x7e => self.state = State::Normal,
                // Not part of a sequence after all: the sequence was cut short.
                _ => {
                    self.state = State::Normal;
                    self.normal(byte, false, &mut out);
                }
            },
            State::Utf8 { needed } => self.utf8_continue(byte, needed, &mut out),
        }
        out
    }

    fn normal(&mut self, byte: u8, after_cr: bool, out: &mut Forward) {
        match byte {
            ESC => self.state = State::Escape,
            CR | LF => {
                if byte == LF && after_cr {
                    return;
                }
                self.last_was_cr = byte == CR;
                self.forwarded = 0;
                let _ = out.push(CR);
            }
            // Ctrl-A .. Ctrl-Z minus CR/LF (handled above), plus DEL: editor bindings.
            0x01..=0x1a | DEL => {
                if byte == 0x03 || byte == 0x15 {
                    // Ctrl-C and Ctrl-U drop the line being typed.
                    self.forwarded = 0;
                }
                let _ = out.push(byte);
            }
            0x20..=0x7e => self.printable(&[byte], out),
            0xc2..=0xdf => self.utf8_start(byte, 1),
            0xe0..=0xef => self.utf8_start(byte, 2),
            0xf0..=0xf4 => self.utf8_start(byte, 3),
            // NUL, FS..US, stray continuation bytes, bytes that never start UTF-8.
            _ => {}
        }
    }

    fn utf8_start(&mut self, byte: u8, needed: u8) {
        self.utf8.clear();
        let _ = self.utf8.push(byte);
        self.state = State::Utf8 { needed };
    }

    fn utf8_continue(&mut self, byte: u8, needed: u8, out: &mut Forward) {
        if byte & 0xc0 != 0x80 {
            // Truncated character: drop it, and treat this byte afresh.
            self.state = State::Normal;
            self.normal(byte, false, out);
            return;
        }
        let _ = self.utf8.push(byte);
        if needed > 1 {
            self.state = State::Utf8 { needed: needed - 1 };
            return;
        }
        self.state = State::Normal;
        let bytes = self.utf8.clone();
        // Overlong forms and surrogates pass the lead-byte ranges: let core decide.
        match core::str::from_utf8(&bytes) {
            Ok(text) if !text.chars().any(char::is_control) => self.printable(&bytes, out),
            _ => {}
        }
    }

    fn printable(&mut self, bytes: &[u8], out: &mut Forward) {
        if self.forwarded + bytes.len() > INPUT_BUDGET {
            self.dropped = true;
            return;
        }
        self.forwarded += bytes.len();
        let _ = out.extend_from_slice(bytes);
    }

    fn csi(&mut self, byte: u8, out: &mut Forward) {
        match byte {
            b'0'..=b'9' | b';' => {
                if self.params.push(byte).is_err() {
                    // Longer parameters than any key we forward: not a key.
                    self.state = State::Discard;
                }
            }
            0x40..=0x7e => {
                self.state = State::Normal;
                let canonical: &[u8] = match (self.params.as_slice(), byte) {
                    (b"" | b"1", b'A') => b"\x1b[A",
                    (b"" | b"1", b'B') => b"\x1b[B",
                    (b"" | b"1", b'C') => b"\x1b[C",
                    (b"" | b"1", b'D') => b"\x1b[D",
                    (b"", b'H') | (b"1" | b"7", b'~') => b"\x1b[1~",
                    (b"", b'F') | (b"4" | b"8", b'~') => b"\x1b[4~",
                    (b"3", b'~') => b"\x1b[3~",
                    _ => b"",
                };
                let _ = out.extend_from_slice(canonical);
            }
            // Private or intermediate bytes (e.g. `ESC [ ? 25 h`): not a key we know.
            0x20..=0x3f => self.state = State::Discard,
            // A control byte cuts the sequence short; it counts on its own.
            _ => {
                self.state = State::Normal;
                self.normal(byte, false, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(s: &mut Sanitizer, bytes: &[u8]) -> std::vec::Vec<u8> {
        bytes.iter().flat_map(|&b| s.feed(b)).collect()
    }

    #[test]
    fn text_and_enter_pass() {
        let mut s = Sanitizer::new();
        assert_eq!(feed_all(&mut s, b"help\r"), b"help\r");
        assert!(!s.take_dropped());
    }

    #[test]
    fn crlf_is_one_enter_but_lf_alone_is_enter() {
        let mut s = Sanitizer::new();
        assert_eq!(feed_all(&mut s, b"a\r\nb\n\nc"), b"a\rb\r\rc");
    }

    #[test]
    fn cursor_report_never_reaches_the_editor() {
        // noline unwraps the arguments of `ESC [ R`: these would panic it.
        let mut s = Sanitizer::new();
        let out = feed_all(&mut s, b"\x1b[R\x1b[;R\x1b[5R\x1b[12;40R\x1b[6n");
        assert!(!out.contains(&b'R') && !out.contains(&0x1b), "{out:?}");
    }

    #[test]
    fn known_keys_are_canonical() {
        let mut s = Sanitizer::new();
        assert_eq!(feed_all(&mut s, b"\x1bOA"), b"\x1b[A");
        assert_eq!(feed_all(&mut s, b"\x1b[1D"), b"\x1b[D");
        assert_eq!(
            feed_all(&mut s, b"\x1b[H\x1b[8~\x1b[3~"),
            b"\x1b[1~\x1b[4~\x1b[3~"
        );
        assert_eq!(feed_all(&mut s, b"\x1b[?25h\x1bx\x1b[99999999A"), b"");
    }

    #[test]
    fn invalid_utf8_is_dropped_valid_kept() {
        let mut s = Sanitizer::new();
        let out = feed_all(&mut s, b"\xff\xc3\x28\xe2\x82\xa1\xed\xa0\x80\xc0\xafok");
        assert_eq!(std::str::from_utf8(&out).unwrap(), "(\u{20a1}ok");
    }

    #[test]
    fn unbound_control_bytes_are_dropped() {
        let mut s = Sanitizer::new();
        assert_eq!(
            feed_all(&mut s, &[0x00, 0x1c, 0x1f, 0x03, 0x7f]),
            [0x03, 0x7f]
        );
    }

    #[test]
    fn input_past_the_budget_is_flagged_not_truncated_silently() {
        let mut s = Sanitizer::new();
        let line = std::vec![b'x'; INPUT_BUDGET + 100];
        let out = feed_all(&mut s, &line);
        assert_eq!(out.len(), INPUT_BUDGET, "the editor's buffer stays bounded");
        assert_eq!(feed_all(&mut s, b"\r"), b"\r");
        assert!(s.take_dropped());
        assert!(!s.take_dropped(), "flag resets");
        // The next line starts from zero.
        assert_eq!(feed_all(&mut s, b"ok\r"), b"ok\r");
        assert!(!s.take_dropped());
    }

    #[test]
    fn deleted_input_does_not_count_against_the_finished_line() {
        // Nearly a limit's worth typed and backspaced away, then a short command: the
        // sanitizer forwards all of it (the editor applies the deletes) and the finished
        // line is judged by its own length. (Counting typed bytes against LINE_LIMIT
        // used to cut this command to "versi" and flag it.)
        let mut s = Sanitizer::new();
        let mut typed = std::vec![b'x'; LINE_LIMIT - 2];
        typed.extend(std::iter::repeat_n(0x7f, LINE_LIMIT - 2));
        typed.extend_from_slice(b"version\r");
        let out = feed_all(&mut s, &typed);
        assert_eq!(out, typed, "nothing dropped");
        assert!(!s.take_dropped());
        assert_eq!(check_line("version", false), Ok(()));
    }

    #[test]
    fn ctrl_u_and_ctrl_c_restart_the_budget() {
        let mut s = Sanitizer::new();
        for kill in [0x15u8, 0x03] {
            assert_eq!(
                feed_all(&mut s, &std::vec![b'x'; INPUT_BUDGET]).len(),
                INPUT_BUDGET
            );
            assert_eq!(feed_all(&mut s, &[kill]), [kill]);
            assert_eq!(feed_all(&mut s, b"ok\r"), b"ok\r");
            assert!(!s.take_dropped(), "after {kill:#x}");
        }
    }

    #[test]
    fn the_finished_line_decides_its_length() {
        let at_limit = "x".repeat(LINE_LIMIT);
        assert_eq!(check_line(&at_limit, false), Ok(()));
        // E.g. a line recalled from history and extended: the sanitizer saw only the
        // extension, the finished line is what counts.
        let over = "x".repeat(LINE_LIMIT + 1);
        assert_eq!(
            check_line(&over, false),
            Err(Refusal::TooLong {
                bytes: LINE_LIMIT + 1
            })
        );
        // Dropped input refuses even a short line: it is not what was typed.
        assert_eq!(check_line("help", true), Err(Refusal::InputDropped));
        assert_eq!(check_line("", false), Ok(()));
    }

    #[test]
    fn random_noise_only_yields_safe_bytes() {
        let mut s = Sanitizer::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut out = std::vec::Vec::new();
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend(s.feed(x as u8));
        }
        // Every escape the editor sees is one of the canonical key sequences.
        let canonical: [&[u8]; 7] = [
            b"\x1b[A", b"\x1b[B", b"\x1b[C", b"\x1b[D", b"\x1b[1~", b"\x1b[3~", b"\x1b[4~",
        ];
        let mut i = 0;
        while i < out.len() {
            if out[i] == 0x1b {
                let rest = &out[i..];
                let ok = canonical.iter().find(|seq| rest.starts_with(seq));
                i += ok.expect("only canonical escapes").len();
            } else {
                assert!(out[i] != 0 && !(0x1c..=0x1f).contains(&out[i]));
                i += 1;
            }
        }
    }
}
