//! The host side: the NVMe disk file (deterministic pseudo-random bytes), reference digests, the
//! host's own read and digest rates (the limit), the machine description, and the build cost.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::secs;
use crate::stats::Run;

pub const DISK_MIB: u64 = 128;

/// Writes the disk file unless it already has the right size (contents come from a fixed seed).
pub fn ensure_disk(path: &Path) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == DISK_MIB << 20) {
        return Ok(());
    }
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..DISK_MIB {
        for word in chunk.chunks_exact_mut(8) {
            // xorshift64*: fast, and no block repeats, so a misplaced block changes the digest.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    Ok(())
}

/// Digests of the first N MiB of the disk, as the monitors must report them.
pub struct Reference {
    pub by_mib: Vec<(u64, u32, [u8; 32])>,
}

impl Reference {
    pub fn compute(disk: &Path, sizes_mib: &[u64]) -> Result<Reference> {
        let data = std::fs::read(disk)?;
        let mut by_mib = Vec::new();
        for &mib in sizes_mib {
            let part = data.get(..(mib << 20) as usize).context("disk too small")?;
            by_mib.push((mib, crc32fast::hash(part), Sha256::digest(part).into()));
        }
        Ok(Reference { by_mib })
    }

    fn find(&self, mib: u64) -> Result<&(u64, u32, [u8; 32])> {
        self.by_mib
            .iter()
            .find(|r| r.0 == mib)
            .with_context(|| format!("no reference for {mib} MiB"))
    }

    pub fn crc32(&self, mib: u64) -> Result<u32> {
        Ok(self.find(mib)?.1)
    }

    pub fn sha256(&self, mib: u64) -> Result<[u8; 32]> {
        Ok(self.find(mib)?.2)
    }
}

/// One run of the host's limits: file read rate (cold-ish, then warm) and native digest rates.
pub fn limits_once(disk: &Path, mib: u64) -> Result<Run> {
    let mut run = Run::new();
    let file = File::open(disk)?;
    // SAFETY: plain syscalls on a file descriptor we own.
    let rc = unsafe {
        libc::fdatasync(file.as_raw_fd());
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
    };
    if rc != 0 {
        bail!("posix_fadvise failed: {rc}");
    }
    // One buffer, faulted in before timing, so both reads time the file and not page faults.
    let mut data = vec![1u8; (mib << 20) as usize];
    let t = read_into(disk, &mut data)?;
    run.insert("host.read_cold_MiBps".into(), mib as f64 / t);
    let t = read_into(disk, &mut data)?;
    run.insert("host.read_warm_MiBps".into(), mib as f64 / t);
    let start = Instant::now();
    let digest = Sha256::digest(&data);
    run.insert(
        "host.sha256_MiBps".into(),
        mib as f64 / secs(start.elapsed()),
    );
    let start = Instant::now();
    let crc = crc32fast::hash(&data);
    run.insert(
        "host.crc32_MiBps".into(),
        mib as f64 / secs(start.elapsed()),
    );
    std::hint::black_box((digest, crc));
    Ok(run)
}

fn read_into(disk: &Path, data: &mut [u8]) -> Result<f64> {
    let start = Instant::now();
    File::open(disk)?.read_exact(data)?;
    Ok(secs(start.elapsed()))
}

/// The 1-minute load average (the machine is shared: this says how busy it was).
pub fn loadavg_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[derive(Debug, Serialize)]
pub struct MachineInfo {
    pub nproc: usize,
    pub cpu_model: String,
    pub qemu_version: String,
    /// QEMU 10 (target/qemu-10) for the SHA-NI pair, or "missing".
    pub qemu10_version: String,
    pub uboot: String,
    pub kernel: String,
    pub load_avg_at_start: String,
}

pub fn machine_info() -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    };
    MachineInfo {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        qemu_version: first_line("qemu-system-x86_64", &["--version"]),
        qemu10_version: crate::machine::qemu10_binary()
            .map(|b| first_line(&b.display().to_string(), &["--version"]))
            .unwrap_or_else(|| "missing".into()),
        uboot: first_line("dpkg-query", &["-W", "-f", "${Version}\n", "u-boot-qemu"]),
        kernel: first_line("uname", &["-r"]),
        load_avg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Cold build of the image into a fresh private target dir, by the steps of `make image` (monitor
/// ELF in release for x86_64-unknown-none, the image tool in debug, then the tool itself; the
/// Makefile writes to target/, so its recipe is replayed here rather than run). Crates are already
/// downloaded (`~/.cargo/registry`): this times compiling and packing, not fetching.
/// Adds `build.monitor_s`, `build.image_tool_s`, `build.pack_s`, `build.cold_image_s` to `run`.
pub fn build_cost(workspace: &Path, target_dir: &Path, run: &mut Run) -> Result<PathBuf> {
    if target_dir.exists() {
        std::fs::remove_dir_all(target_dir)?;
    }
    let elf = target_dir.join("x86_64-unknown-none/release/monitor");
    let image = target_dir.join("bringup.img");
    let monitor = [
        "build",
        "-p",
        "monitor",
        "--release",
        "--target",
        "x86_64-unknown-none",
    ];
    let t_monitor = timed(cargo(workspace, target_dir, &monitor))?;
    let tool = ["build", "-q", "-p", "image", "--bin", "bringup-image"];
    let t_tool = timed(cargo(workspace, target_dir, &tool))?;
    let mut pack = Command::new(target_dir.join("debug/bringup-image"));
    pack.arg("disk")
        .arg("--monitor")
        .arg(&elf)
        .arg("--output")
        .arg(&image);
    pack.args(["--cmdline", "dma=64M"]).current_dir(workspace);
    let t_pack = timed(pack)?;
    run.insert("build.monitor_s".into(), t_monitor);
    run.insert("build.image_tool_s".into(), t_tool);
    run.insert("build.pack_s".into(), t_pack);
    run.insert("build.cold_image_s".into(), t_monitor + t_tool + t_pack);
    Ok(image)
}

fn cargo(workspace: &Path, target_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir);
    c
}

fn timed(mut command: Command) -> Result<f64> {
    let start = Instant::now();
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail = &err[err.len().saturating_sub(2000)..];
        bail!("{command:?} failed ({}):\n{tail}", out.status);
    }
    Ok(secs(start.elapsed()))
}
