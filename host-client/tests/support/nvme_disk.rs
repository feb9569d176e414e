//! What the NVMe system tests share: a disk file of reproducible noise and a command runner
//! that echoes the monitor's text (so a failing run shows what the monitor said).

use std::path::Path;
use std::time::Duration;

use host_client::{CommandOutcome, Session};

/// Writes `len` bytes of xorshift noise from `state` to `path` and returns them.
pub fn random_file(path: &Path, len: usize, mut state: u64) -> Vec<u8> {
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

/// Runs one command (120 s timeout) and echoes it with the monitor's text.
pub fn run(s: &mut Session, line: &str) -> CommandOutcome {
    let out = s.command(line, Duration::from_secs(120)).unwrap();
    eprintln!("bringup> {line}\n{}", out.text.trim_end());
    out
}
