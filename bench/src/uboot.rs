//! U-Boot (Debian's qemu-x86_64 build) on the shared machine: boot to `=>`, `version`, `pci`,
//! `nvme scan`, `nvme read` of each size (checked with U-Boot's own `crc32` against the host's).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::console::Console;
use crate::machine::{qemu, Accel, Firmware};
use crate::stats::{median, Run};
use crate::{secs, Plan, Reference};

const PROMPT: &str = "\n=> ";
/// Where reads land: above U-Boot's low memory, far below its relocation at the top of RAM.
const LOAD_ADDR: u64 = 0x100_0000;

pub fn run_once(
    accel: Accel,
    disk: &Path,
    plan: &Plan,
    reference: &Reference,
    run: &mut Run,
) -> Result<()> {
    let mut con = Console::spawn(qemu(accel, &Firmware::UBoot, disk))?;
    // U-Boot drains its input before the countdown: send the key only once it asks.
    con.expect("Hit any key to stop autoboot", Duration::from_secs(60))?;
    con.send(b" ")?;
    let prompt = con.expect("=> ", Duration::from_secs(10))?;
    run.insert("uboot.boot_s".into(), secs(prompt.at - con.started));
    if let Some(first) = con.first_byte() {
        run.insert("uboot.first_byte_s".into(), secs(first - con.started));
    }

    let mut versions = Vec::new();
    for _ in 0..plan.version_reps {
        let (t, text) = command(&mut con, "version", 10)?;
        versions.push(t);
        run.insert("uboot.bytes.version".into(), text.len() as f64);
    }
    let baseline = median(&versions);
    run.insert("uboot.version_s".into(), baseline);

    let (t, text) = command(&mut con, "pci", 10)?;
    run.insert("uboot.pci_s".into(), t);
    run.insert("uboot.pci_net_s".into(), t - baseline);
    run.insert("uboot.bytes.pci".into(), text.len() as f64);

    let (t, text) = command(&mut con, "nvme scan", 30)?;
    run.insert("uboot.nvme_scan_s".into(), t);
    run.insert("uboot.bytes.nvme_scan".into(), text.len() as f64);
    let (_, text) = command(&mut con, &format!("nvme read {LOAD_ADDR:#x} 0 1"), 30)?;
    check_read(&text, 1)?;

    for &mib in &plan.sizes_mib {
        let blocks = mib * 2048;
        let line = format!("nvme read {LOAD_ADDR:#x} 0 {blocks:#x}");
        let mut walls = Vec::new();
        for _ in 0..plan.read_reps {
            let (t, text) = command(&mut con, &line, 120)?;
            check_read(&text, blocks)?;
            walls.push(t);
            run.insert(format!("uboot.bytes.read_{mib}MiB"), text.len() as f64);
        }
        let t = median(&walls);
        let key = format!("uboot.read_{mib}MiB");
        run.insert(format!("{key}_s"), t);
        run.insert(format!("{key}_MiBps"), mib as f64 / t);
        run.insert(format!("{key}_net_MiBps"), mib as f64 / (t - baseline));
        // U-Boot has no digest of its own in `nvme read`: prove the bytes with crc32.
        let line = format!("crc32 {LOAD_ADDR:#x} {:#x}", mib << 20);
        let (t, text) = command(&mut con, &line, 120)?;
        let want = reference.crc32(mib)?;
        let got = text
            .rsplit("==> ")
            .next()
            .and_then(|s| u32::from_str_radix(s.get(..8)?, 16).ok())
            .with_context(|| format!("no crc32 in U-Boot's answer {text:?}"))?;
        if got != want {
            bail!("U-Boot read {mib} MiB wrong: crc32 {got:08x}, host says {want:08x}");
        }
        run.insert(format!("uboot.crc32_{mib}MiB_s"), t);
        run.insert(format!("uboot.bytes.crc32_{mib}MiB"), text.len() as f64);
    }
    crate::writes::uboot(
        &mut |line, timeout| command(&mut con, line, timeout),
        plan,
        run,
    )
}

/// Sends one command line; returns (seconds from send to the next prompt, everything printed).
fn command(con: &mut Console, line: &str, timeout_s: u64) -> Result<(f64, String)> {
    let sent = con.send_line(line)?;
    let found = con
        .expect(PROMPT, Duration::from_secs(timeout_s))
        .with_context(|| format!("U-Boot command {line:?}"))?;
    Ok((secs(found.at - sent), found.text))
}

fn check_read(text: &str, blocks: u64) -> Result<()> {
    if !text.contains(&format!("{blocks} blocks read: OK")) {
        bail!("U-Boot nvme read of {blocks} blocks failed: {text:?}");
    }
    Ok(())
}
