//! The gateway's `serialport: Connected to ...` banner inside ssh's stdout. syzkaller merges
//! stdout and stderr and has seen the banner spliced into console output (platform-notes
//! §6), so the banner is cut out exactly and every console byte on either side of it stays.
//! Pure functions over bytes; knows nothing of processes.

use super::ssh::CONNECTED_BANNER;

/// Where the banner line sits in `buf`: from its first byte through its `\n`. `None` until
/// the whole line (with its newline) has arrived.
pub fn banner_span(buf: &[u8]) -> Option<std::ops::Range<usize>> {
    let needle = CONNECTED_BANNER.as_bytes();
    let at = buf.windows(needle.len()).position(|w| w == needle)?;
    let nl = buf[at..].iter().position(|&b| b == b'\n')?;
    Some(at..at + nl + 1)
}

/// `buf` without the banner line, when the whole banner line is in it.
pub fn strip_banner(buf: &[u8]) -> Option<Vec<u8>> {
    let span = banner_span(buf)?;
    let mut console = buf[..span.start].to_vec();
    console.extend_from_slice(&buf[span.end..]);
    Some(console)
}

/// Whether ssh's stderr carries the banner (the gateway may send it there).
pub fn banner_in_text(stderr: &str) -> bool {
    stderr.contains(CONNECTED_BANNER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANNER: &str =
        "serialport: Connected to p.us-central1-a.vm port 1 (session ID: 7, active connections: 1).\r\n";

    #[test]
    fn spliced_banner_is_cut_out_and_console_bytes_on_both_sides_stay() {
        let buf = format!("bringup> ver{BANNER}sion\r\n");
        assert_eq!(
            strip_banner(buf.as_bytes()).unwrap(),
            b"bringup> version\r\n".to_vec()
        );
    }

    #[test]
    fn banner_without_its_newline_is_not_yet_complete() {
        let buf = format!("console {}", &BANNER[..30]);
        assert!(strip_banner(buf.as_bytes()).is_none());
        assert!(strip_banner(b"only console\r\n").is_none());
    }

    #[test]
    fn banner_on_stderr_is_found_among_ssh_warnings() {
        assert!(banner_in_text(&format!(
            "Warning: Permanently added '[h]:9600' (RSA) to the list of known hosts.\r\n{BANNER}"
        )));
        assert!(!banner_in_text("serialport: VM disconnected\r\n"));
    }
}
