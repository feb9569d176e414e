//! The write half of the bench (issue 23): `nvme write` of each size, and write-then-verify,
//! on both monitors in the same boot as their reads, into the second half of the shared disk
//! (LBA 131072 on: 64 MiB on, which no read digest covers).
//!
//! U-Boot: `mw.b` fills a buffer (not timed: U-Boot's write takes memory the user filled),
//! `nvme write` (timed), then `nvme read` into a second buffer and `cmp.l` of the two (the
//! verify: write + read + cmp, all three timed). bringup: `nvme write --pattern 0xa5
//! --digest none` (the fill is inside the command, so inside its time), then `nvme verify`
//! (write + verify timed). Each monitor proves its own data: U-Boot's `cmp` must report every
//! word the same, bringup's verify must end ok.

use anyhow::{bail, Result};

use crate::stats::{median, Run};
use crate::Plan;

/// First block written: the second half of the 128 MiB disk (512-byte blocks).
pub const WRITE_LBA: u64 = 131_072;
/// U-Boot's buffers: the data written, and where it reads it back (both far below its
/// relocation at the top of the 512 MiB).
const UBOOT_DATA: u64 = 0x100_0000;
const UBOOT_READBACK: u64 = 0x600_0000;
const UBOOT_BYTE: u8 = 0x5a;
const BRINGUP_BYTE: u8 = 0xa5;

/// One monitor's command runner: sends a line, returns (wall seconds, everything printed),
/// failing when the command failed.
pub type Cmd<'a> = dyn FnMut(&str, u64) -> Result<(f64, String)> + 'a;

pub fn uboot(cmd: &mut Cmd, plan: &Plan, run: &mut Run) -> Result<()> {
    for &mib in &plan.sizes_mib {
        let blocks = mib * 2048;
        let bytes = mib << 20;
        cmd(
            &format!("mw.b {UBOOT_DATA:#x} {UBOOT_BYTE:#x} {bytes:#x}"),
            120,
        )?;
        let (mut writes, mut verifies) = (Vec::new(), Vec::new());
        for _ in 0..plan.read_reps {
            let line = format!("nvme write {UBOOT_DATA:#x} {WRITE_LBA:#x} {blocks:#x}");
            let (w, text) = cmd(&line, 300)?;
            if !text.contains(&format!("{blocks} blocks written: OK")) {
                bail!("U-Boot {line:?} failed: {text:?}");
            }
            let line = format!("nvme read {UBOOT_READBACK:#x} {WRITE_LBA:#x} {blocks:#x}");
            let (r, text) = cmd(&line, 300)?;
            if !text.contains(&format!("{blocks} blocks read: OK")) {
                bail!("U-Boot {line:?} failed: {text:?}");
            }
            let words = bytes / 4;
            let line = format!("cmp.l {UBOOT_DATA:#x} {UBOOT_READBACK:#x} {words:#x}");
            let (c, text) = cmd(&line, 300)?;
            if !text.contains(&format!("Total of {words} word(s) were the same")) {
                bail!("U-Boot {line:?}: the data read back differs: {text:?}");
            }
            writes.push(w);
            verifies.push(w + r + c);
        }
        record(run, "uboot", mib, median(&writes), median(&verifies));
    }
    Ok(())
}

pub fn bringup(cmd: &mut Cmd, plan: &Plan, run: &mut Run) -> Result<()> {
    for &mib in &plan.sizes_mib {
        let blocks = mib * 2048;
        let (mut writes, mut verifies) = (Vec::new(), Vec::new());
        for _ in 0..plan.read_reps {
            let line = format!(
                "nvme write {WRITE_LBA} {blocks} --pattern {BRINGUP_BYTE:#x} --digest none"
            );
            let (w, _) = cmd(&line, 300)?;
            let line = format!("nvme verify {WRITE_LBA} {blocks} --pattern {BRINGUP_BYTE:#x}");
            let (v, _) = cmd(&line, 300)?;
            writes.push(w);
            verifies.push(w + v);
        }
        record(run, "bringup", mib, median(&writes), median(&verifies));
    }
    Ok(())
}

fn record(run: &mut Run, who: &str, mib: u64, write_s: f64, verify_s: f64) {
    run.insert(format!("{who}.write_{mib}MiB_s"), write_s);
    run.insert(format!("{who}.write_{mib}MiB_MiBps"), mib as f64 / write_s);
    run.insert(format!("{who}.write_verify_{mib}MiB_s"), verify_s);
    run.insert(
        format!("{who}.write_verify_{mib}MiB_MiBps"),
        mib as f64 / verify_s,
    );
}

/// (label, metric) rows for the table.
pub fn rows(sizes_mib: &[u64]) -> Vec<(String, String)> {
    let mut r = Vec::new();
    for &m in sizes_mib {
        r.push((
            format!("U-Boot: nvme write {m} MiB (wall)"),
            format!("uboot.write_{m}MiB_MiBps"),
        ));
        r.push((
            format!("bringup: nvme write {m} MiB, --digest none (wall)"),
            format!("bringup.write_{m}MiB_MiBps"),
        ));
        r.push((
            format!("U-Boot: nvme write + nvme read + cmp.l {m} MiB (wall, all three)"),
            format!("uboot.write_verify_{m}MiB_MiBps"),
        ));
        r.push((
            format!("bringup: nvme write + nvme verify {m} MiB (wall, both)"),
            format!("bringup.write_verify_{m}MiB_MiBps"),
        ));
    }
    r
}

/// (label, numerator, denominator) ratios: > 1 means bringup is ahead.
pub fn ratio_rows(sizes_mib: &[u64]) -> Vec<(String, String, String)> {
    let mut r = Vec::new();
    for &m in sizes_mib {
        r.push((
            format!("write {m} MiB, bringup / U-Boot (rate, wall)"),
            format!("bringup.write_{m}MiB_MiBps"),
            format!("uboot.write_{m}MiB_MiBps"),
        ));
        r.push((
            format!("write+verify {m} MiB, bringup write + verify / U-Boot write + read + cmp (rate, wall)"),
            format!("bringup.write_verify_{m}MiB_MiBps"),
            format!("uboot.write_verify_{m}MiB_MiBps"),
        ));
    }
    r
}
