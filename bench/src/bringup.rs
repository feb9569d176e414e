//! bringup on the shared machine, under SeaBIOS (everything) or OVMF (boot and short commands):
//! boot to `bringup> `, the banner's own boot share, `version`, `lspci`, `nvme identify`, and
//! `nvme read` of each size with SHA-256, CRC-32 and no digest. Frames are decoded and checked:
//! every command must end with an ok result frame, and each digest must match the host's.
//! [`sha256_paths_once`] boots QEMU 10 with a CPU model that has SHA-NI, or one that lacks it,
//! and measures SHA-256 reads on that path.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use evidence::{Body, Frame, Outcome};

use crate::console::Console;
use crate::machine::{qemu, qemu_on, Accel, Emulator, Firmware};
use crate::stats::{median, Run};
use crate::{secs, Plan, Reference};

const PROMPT: &str = "bringup> ";

/// What one command printed, split into human text and frames.
struct Reply {
    wall_s: f64,
    human_bytes: usize,
    frame_bytes: usize,
    frames: Vec<Frame>,
}

pub fn run_once(
    accel: Accel,
    firmware: &Firmware,
    disk: &Path,
    plan: &Plan,
    reference: &Reference,
    full: bool,
    run: &mut Run,
) -> Result<()> {
    let fw = match firmware {
        Firmware::Ovmf { .. } => "ovmf",
        _ => "seabios",
    };
    let mut con = Console::spawn(qemu(accel, firmware, disk))?;
    let boot = con.expect(PROMPT, Duration::from_secs(120))?;
    run.insert(format!("bringup.{fw}.boot_s"), secs(boot.at - con.started));
    if let Some(first) = con.first_byte() {
        let first_s = secs(first - con.started);
        run.insert(format!("bringup.{fw}.first_byte_s"), first_s);
    }
    let boot_us = frames_in(&boot.text)
        .0
        .into_iter()
        .find_map(|f| match f.body {
            Body::Banner(b) => Some(b.boot_us),
            _ => None,
        })
        .context("no banner frame before the first prompt")?;
    run.insert(format!("bringup.{fw}.own_boot_s"), boot_us as f64 / 1e6);

    let mut versions = Vec::new();
    for _ in 0..plan.version_reps {
        let r = command(&mut con, "version", 10)?;
        versions.push(r.wall_s);
        record_bytes(run, "version", &r);
    }
    let baseline = median(&versions);
    run.insert(format!("bringup.{fw}.version_s"), baseline);
    let r = command(&mut con, "lspci", 10)?;
    run.insert(format!("bringup.{fw}.lspci_s"), r.wall_s);
    run.insert(format!("bringup.{fw}.lspci_net_s"), r.wall_s - baseline);
    record_bytes(run, "lspci", &r);
    if !full {
        return Ok(());
    }

    let r = command(&mut con, "nvme identify", 30)?;
    run.insert("bringup.nvme_identify_s".into(), r.wall_s);
    record_bytes(run, "nvme_identify", &r);
    command(&mut con, "nvme read 0 1", 30)?;
    for &mib in &plan.sizes_mib {
        let variants = [
            ("", ""),
            ("_nodigest", " --no-digest"),
            ("_crc32", " --digest crc32"),
        ];
        // (wall, frame) seconds per variant; the variants alternate so all see the same load.
        let mut times: [Vec<(f64, f64)>; 3] = Default::default();
        for _ in 0..plan.read_reps {
            for (v, (suffix, flag)) in variants.iter().enumerate() {
                let (wall, frame, r) = read(&mut con, mib, flag, reference, None)?;
                times[v].push((wall, frame));
                record_bytes(run, &format!("read_{mib}MiB{suffix}"), &r);
            }
        }
        for (v, (suffix, _)) in variants.iter().enumerate() {
            let wall = median(&times[v].iter().map(|t| t.0).collect::<Vec<_>>());
            let frame = median(&times[v].iter().map(|t| t.1).collect::<Vec<_>>());
            let key = format!("bringup.read_{mib}MiB{suffix}");
            run.insert(format!("{key}_s"), wall);
            run.insert(format!("{key}_MiBps"), mib as f64 / wall);
            run.insert(format!("{key}_net_MiBps"), mib as f64 / (wall - baseline));
            run.insert(format!("{key}_frame_s"), frame);
            run.insert(format!("{key}_frame_MiBps"), mib as f64 / frame);
        }
    }
    crate::writes::bringup(
        &mut |line, timeout| {
            let r = command(&mut con, line, timeout)?;
            Ok((r.wall_s, String::new()))
        },
        plan,
        run,
    )
}

/// One half of the SHA-256 pair: a CPU model and the engine the monitor must pick on it.
pub struct Sha256Case {
    /// Metric prefix: `bringup.<tag>.read_*`.
    pub tag: &'static str,
    /// `-cpu` model.
    pub cpu: &'static str,
    /// "sha-ni" or "portable", checked in every read frame.
    pub engine: &'static str,
}

/// SHA-256 reads of the largest size on QEMU `binary` with `case.cpu`.
pub fn sha256_paths_once(
    binary: &Path,
    case: &Sha256Case,
    disk: &Path,
    image: &Path,
    plan: &Plan,
    reference: &Reference,
    run: &mut Run,
) -> Result<()> {
    let fw = Firmware::SeaBios { image };
    let emulator = Emulator {
        binary: binary.to_path_buf(),
        cpu: Some(case.cpu),
    };
    let mut con = Console::spawn(qemu_on(&emulator, Accel::Tcg, &fw, disk))?;
    con.expect(PROMPT, Duration::from_secs(120))?;
    command(&mut con, "nvme identify", 30)?;
    command(&mut con, "nvme read 0 1", 30)?;
    let mib = *plan.sizes_mib.last().context("no sizes")?;
    let mut times = Vec::new();
    for _ in 0..plan.read_reps {
        let (wall, frame, _) = read(&mut con, mib, "", reference, Some(case.engine))?;
        times.push((wall, frame));
    }
    let wall = median(&times.iter().map(|t| t.0).collect::<Vec<_>>());
    let frame = median(&times.iter().map(|t| t.1).collect::<Vec<_>>());
    let key = format!("bringup.{}.read_{mib}MiB", case.tag);
    run.insert(format!("{key}_s"), wall);
    run.insert(format!("{key}_MiBps"), mib as f64 / wall);
    run.insert(format!("{key}_frame_MiBps"), mib as f64 / frame);
    Ok(())
}

/// One `nvme read 0 <mib MiB> [flag]`, its digest checked against the host's (and its engine
/// against `engine`, when given); returns (wall s, the frame's elapsed s, reply).
fn read(
    con: &mut Console,
    mib: u64,
    flag: &str,
    reference: &Reference,
    engine: Option<&str>,
) -> Result<(f64, f64, Reply)> {
    let line = format!("nvme read 0 {}{flag}", mib * 2048);
    let r = command(con, &line, 300)?;
    let read = r
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::NvmeRead(n) => Some(n.clone()),
            _ => None,
        })
        .with_context(|| format!("no nvme.read frame for {line:?}"))?;
    if read.bytes != mib << 20 {
        bail!("{line:?} read {} bytes, not {}", read.bytes, mib << 20);
    }
    match read.digest.as_str() {
        "sha256" if read.sha256 != reference.sha256(mib)? => {
            bail!("{line:?}: sha256 differs from the host's")
        }
        "crc32" if read.crc32 != reference.crc32(mib)? => {
            bail!("{line:?}: crc32 {:08x} differs from the host's", read.crc32)
        }
        _ => {}
    }
    if let Some(want) = engine {
        if read.digest_engine != want {
            bail!("{line:?} ran on {:?}, not {want:?}", read.digest_engine);
        }
    }
    Ok((r.wall_s, read.elapsed_us as f64 / 1e6, r))
}

fn record_bytes(run: &mut Run, name: &str, r: &Reply) {
    run.insert(format!("bringup.bytes.{name}"), r.human_bytes as f64);
    run.insert(format!("bringup.frame_bytes.{name}"), r.frame_bytes as f64);
}

/// Sends one line, waits for the prompt, checks for exactly one ok result frame.
fn command(con: &mut Console, line: &str, timeout_s: u64) -> Result<Reply> {
    let sent = con.send_line(line)?;
    let found = con
        .expect(PROMPT, Duration::from_secs(timeout_s))
        .with_context(|| format!("bringup command {line:?}"))?;
    let wall_s = secs(found.at - sent);
    let (frames, frame_bytes) = frames_in(&found.text);
    let results: Vec<&Outcome> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::CommandResult(r) => Some(&r.outcome),
            _ => None,
        })
        .collect();
    match results.as_slice() {
        [Outcome::Ok] => {}
        [Outcome::Error { code, message }] => bail!("{line:?} failed: {code}: {message}"),
        other => bail!("{line:?} ended with {} result frames", other.len()),
    }
    Ok(Reply {
        wall_s,
        human_bytes: found.text.len() - frame_bytes,
        frame_bytes,
        frames,
    })
}

/// The frames in `text` and the bytes their lines take (line terminators included).
fn frames_in(text: &str) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut bytes = 0;
    for line in text.split_inclusive('\n') {
        if evidence::find_frame(line).is_some() {
            bytes += line.len();
            if let Ok(frame) = evidence::decode_line(line) {
                frames.push(frame);
            }
        }
    }
    (frames, bytes)
}
