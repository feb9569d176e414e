//! The printed table and the derived figures (ratios pair by pair, cost breakdown).

use std::fmt::Write;

use crate::stats::{column, ratio, summarize, Run, Summary};

#[derive(Clone, Copy)]
pub enum Unit {
    /// Stored in seconds, shown in milliseconds.
    Ms,
    /// Seconds.
    S,
    MiBps,
    /// A plain ratio.
    X,
    /// A bare number.
    Plain,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Ms => format!("{:.1} ms", v * 1e3),
            Unit::S => format!("{v:.2} s"),
            Unit::MiBps => format!("{v:.0} MiB/s"),
            Unit::X => format!("{v:.2}x"),
            Unit::Plain => format!("{v:.2}"),
        }
    }
}

/// Adds figures computed inside each run from that run's own values.
pub fn derive(run: &mut Run, sizes_mib: &[u64]) {
    let get = |run: &Run, k: &str| run.get(k).copied();
    for fw in ["seabios", "ovmf"] {
        let boot = get(run, &format!("bringup.{fw}.boot_s"));
        if let (Some(b), Some(o)) = (boot, get(run, &format!("bringup.{fw}.own_boot_s"))) {
            run.insert(format!("bringup.{fw}.firmware_grub_s"), b - o);
        }
    }
    for &mib in sizes_mib {
        let b = format!("bringup.read_{mib}MiB");
        let u = format!("uboot.read_{mib}MiB_s");
        let mut add = Vec::new();
        if let (Some(d), Some(n)) = (
            get(run, &format!("{b}_frame_s")),
            get(run, &format!("{b}_nodigest_frame_s")),
        ) {
            add.push((format!("{b}.digest_cost_s"), d - n));
        }
        if let (Some(w), Some(f)) = (
            get(run, &format!("{b}_nodigest_s")),
            get(run, &format!("{b}_nodigest_frame_s")),
        ) {
            add.push((format!("{b}.outside_frame_s"), w - f));
        }
        // U-Boot's verified read is two commands: `nvme read`, then `crc32` of the buffer.
        if let (Some(r), Some(c)) = (get(run, &u), get(run, &format!("uboot.crc32_{mib}MiB_s"))) {
            add.push((format!("uboot.read_crc32_{mib}MiB_s"), r + c));
            add.push((
                format!("uboot.read_crc32_{mib}MiB_MiBps"),
                mib as f64 / (r + c),
            ));
        }
        if let (Some(c), Some(n)) = (
            get(run, &format!("{b}_crc32_frame_s")),
            get(run, &format!("{b}_nodigest_frame_s")),
        ) {
            add.push((format!("{b}.crc32_cost_s"), c - n));
        }
        if let (Some(f), Some(uw), Some(uv)) = (
            get(run, &format!("{b}_nodigest_frame_s")),
            get(run, &u),
            get(run, "uboot.version_s"),
        ) {
            add.push((format!("{b}.nodigest_minus_uboot_s"), f - (uw - uv)));
        }
        run.extend(add);
    }
}

/// (label, metric, unit) rows of the main table, in order; missing metrics are skipped.
pub fn rows(sizes_mib: &[u64]) -> Vec<(String, String, Unit)> {
    let mut r: Vec<(String, String, Unit)> = Vec::new();
    let mut add = |label: &str, key: &str, unit| r.push((label.to_string(), key.to_string(), unit));
    add(
        "U-Boot: QEMU start -> first serial byte",
        "uboot.first_byte_s",
        Unit::S,
    );
    add(
        "U-Boot: QEMU start -> `=>` (autoboot stopped)",
        "uboot.boot_s",
        Unit::S,
    );
    for fw in ["seabios", "ovmf"] {
        add(
            &format!("bringup/{fw}: QEMU start -> first serial byte"),
            &format!("bringup.{fw}.first_byte_s"),
            Unit::S,
        );
        add(
            &format!("bringup/{fw}: QEMU start -> `bringup>`"),
            &format!("bringup.{fw}.boot_s"),
            Unit::S,
        );
        add(
            &format!("bringup/{fw}: own share (entry -> prompt, banner)"),
            &format!("bringup.{fw}.own_boot_s"),
            Unit::Ms,
        );
        add(
            &format!("bringup/{fw}: firmware + GRUB + QEMU start (the rest)"),
            &format!("bringup.{fw}.firmware_grub_s"),
            Unit::S,
        );
    }
    add("U-Boot: `version` round trip", "uboot.version_s", Unit::Ms);
    add(
        "bringup: `version` round trip",
        "bringup.seabios.version_s",
        Unit::Ms,
    );
    add("U-Boot: `pci`", "uboot.pci_s", Unit::Ms);
    add("bringup: `lspci`", "bringup.seabios.lspci_s", Unit::Ms);
    add("bringup/ovmf: `lspci`", "bringup.ovmf.lspci_s", Unit::Ms);
    add("U-Boot: `nvme scan`", "uboot.nvme_scan_s", Unit::Ms);
    add(
        "bringup: `nvme identify`",
        "bringup.nvme_identify_s",
        Unit::Ms,
    );
    for &m in sizes_mib {
        add(
            &format!("U-Boot: nvme read {m} MiB (wall)"),
            &format!("uboot.read_{m}MiB_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("U-Boot: crc32 of {m} MiB (check)"),
            &format!("uboot.crc32_{m}MiB_s"),
            Unit::Ms,
        );
        add(
            &format!("U-Boot: nvme read + crc32 {m} MiB (wall, both commands)"),
            &format!("uboot.read_crc32_{m}MiB_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, digest (wall)"),
            &format!("bringup.read_{m}MiB_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, digest (frame)"),
            &format!("bringup.read_{m}MiB_frame_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, --no-digest (wall)"),
            &format!("bringup.read_{m}MiB_nodigest_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, --no-digest (frame)"),
            &format!("bringup.read_{m}MiB_nodigest_frame_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, --digest crc32 (wall)"),
            &format!("bringup.read_{m}MiB_crc32_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: nvme read {m} MiB, --digest crc32 (frame)"),
            &format!("bringup.read_{m}MiB_crc32_frame_MiBps"),
            Unit::MiBps,
        );
        add(
            &format!("bringup: {m} MiB crc32 cost (frame, paired)"),
            &format!("bringup.read_{m}MiB.crc32_cost_s"),
            Unit::Ms,
        );
        add(
            &format!("bringup: {m} MiB digest cost (frame, paired)"),
            &format!("bringup.read_{m}MiB.digest_cost_s"),
            Unit::Ms,
        );
        add(
            &format!("bringup: {m} MiB no-digest minus U-Boot net (paired)"),
            &format!("bringup.read_{m}MiB.nodigest_minus_uboot_s"),
            Unit::Ms,
        );
        add(
            &format!("bringup: {m} MiB outside the frame (serial, prompt)"),
            &format!("bringup.read_{m}MiB.outside_frame_s"),
            Unit::Ms,
        );
    }
    if let Some(&m) = sizes_mib.last() {
        for (tag, what) in [
            ("qemu10_shani", "QEMU 10 -cpu max, SHA-NI"),
            ("qemu10_portable", "QEMU 10 -cpu qemu64, portable"),
        ] {
            for (how, suffix) in [("wall", "_MiBps"), ("frame", "_frame_MiBps")] {
                add(
                    &format!("bringup/{what}: nvme read {m} MiB, sha256 ({how})"),
                    &format!("bringup.{tag}.read_{m}MiB{suffix}"),
                    Unit::MiBps,
                );
            }
        }
    }
    for (label, key) in crate::writes::rows(sizes_mib) {
        add(&label, &key, Unit::MiBps);
    }
    add(
        "host: 1-min load average before each run",
        "host.loadavg_1m",
        Unit::Plain,
    );
    add(
        "host: read of the disk file, cold-ish",
        "host.read_cold_MiBps",
        Unit::MiBps,
    );
    add(
        "host: read of the disk file, warm",
        "host.read_warm_MiBps",
        Unit::MiBps,
    );
    add("host: sha256, native", "host.sha256_MiBps", Unit::MiBps);
    add("host: crc32, native", "host.crc32_MiBps", Unit::MiBps);
    let build = [
        (
            "build: cold `make image` steps, total",
            "build.cold_image_s",
        ),
        (
            "build: monitor (release, x86_64-unknown-none)",
            "build.monitor_s",
        ),
        ("build: image tool (debug)", "build.image_tool_s"),
        ("build: packing the disk (GRUB, GPT, FAT)", "build.pack_s"),
    ];
    for (label, key) in build {
        add(label, key, Unit::S);
    }
    r
}

/// (label, numerator, denominator): > 1 means bringup is ahead.
pub fn ratio_rows(sizes_mib: &[u64]) -> Vec<(String, String, String)> {
    let mut r = vec![
        (
            "boot to prompt, U-Boot / bringup-seabios (time)".into(),
            "uboot.boot_s".into(),
            "bringup.seabios.boot_s".into(),
        ),
        (
            "boot to prompt, U-Boot / bringup-ovmf (time)".into(),
            "uboot.boot_s".into(),
            "bringup.ovmf.boot_s".into(),
        ),
        (
            "version, U-Boot / bringup (time)".into(),
            "uboot.version_s".into(),
            "bringup.seabios.version_s".into(),
        ),
        (
            "pci listing, U-Boot / bringup (time)".into(),
            "uboot.pci_s".into(),
            "bringup.seabios.lspci_s".into(),
        ),
    ];
    for &m in sizes_mib {
        for (what, suffix) in [("digest", ""), ("no digest", "_nodigest")] {
            r.push((
                format!("read {m} MiB, bringup ({what}) / U-Boot (rate, wall)"),
                format!("bringup.read_{m}MiB{suffix}_MiBps"),
                format!("uboot.read_{m}MiB_MiBps"),
            ));
        }
    }
    for &m in sizes_mib {
        for (what, suffix) in [("crc32", "_crc32"), ("sha256", "")] {
            r.push((
                format!("read+verify {m} MiB, bringup ({what}) / U-Boot read + crc32 (rate, wall)"),
                format!("bringup.read_{m}MiB{suffix}_MiBps"),
                format!("uboot.read_crc32_{m}MiB_MiBps"),
            ));
        }
    }
    r.extend(crate::writes::ratio_rows(sizes_mib));
    if let Some(&m) = sizes_mib.last() {
        for (how, suffix) in [("wall", "_MiBps"), ("frame", "_frame_MiBps")] {
            r.push((
                format!("sha256 read {m} MiB on QEMU 10, SHA-NI / portable (rate, {how})"),
                format!("bringup.qemu10_shani.read_{m}MiB{suffix}"),
                format!("bringup.qemu10_portable.read_{m}MiB{suffix}"),
            ));
        }
    }
    if let Some(&m) = sizes_mib.last() {
        let who = [
            (
                "bringup --no-digest",
                format!("bringup.read_{m}MiB_nodigest_MiBps"),
            ),
            ("U-Boot", format!("uboot.read_{m}MiB_MiBps")),
        ];
        for (name, key) in who {
            r.push((
                format!("read {m} MiB, {name} / host warm file read (rate)"),
                key,
                "host.read_warm_MiBps".into(),
            ));
        }
    }
    r
}

pub fn summaries(runs: &[Run]) -> Vec<(String, Summary)> {
    let mut keys: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| Some((k.clone(), summarize(&column(runs, k))?)))
        .collect()
}

fn line(out: &mut String, label: &str, s: &Summary, unit: Unit) {
    let range = format!("{} .. {}", unit.show(s.min), unit.show(s.max));
    let _ = writeln!(
        out,
        "| {label} | {} | {range} | {:.0}% | {} |",
        unit.show(s.median),
        s.spread_pct,
        s.n
    );
}

/// A Markdown table (readable as plain text too).
pub fn table(runs: &[Run], sizes_mib: &[u64]) -> String {
    let mut out =
        String::from("| figure | median | min .. max | spread | n |\n|---|---|---|---|---|\n");
    for (label, key, unit) in rows(sizes_mib) {
        if let Some(s) = summarize(&column(runs, &key)) {
            line(&mut out, &label, &s, unit);
        }
    }
    out.push_str(&bytes_table(runs, sizes_mib));
    out.push_str("\n| ratio, pair by pair in the same run (>1: bringup ahead) | median | min .. max | spread | n |\n|---|---|---|---|---|\n");
    for (label, num, den) in ratio_rows(sizes_mib) {
        if let Some(s) = ratio(runs, &num, &den) {
            line(&mut out, &label, &s, Unit::X);
        }
    }
    out
}

/// Serial bytes per command (medians; echo and prompt included), and what bringup's bytes would
/// cost on a real 115200-baud line (10 bits per byte).
fn bytes_table(runs: &[Run], sizes_mib: &[u64]) -> String {
    let mut names = vec![
        (
            "version".to_string(),
            "version".to_string(),
            "version".to_string(),
        ),
        ("pci / lspci".into(), "pci".into(), "lspci".into()),
        (
            "nvme scan (U-Boot) / nvme identify (bringup)".into(),
            "nvme_scan".into(),
            "nvme_identify".into(),
        ),
    ];
    for &m in sizes_mib {
        let read = format!("read_{m}MiB");
        names.push((format!("nvme read {m} MiB"), read.clone(), read.clone()));
        names.push((
            format!("nvme read {m} MiB --no-digest"),
            String::new(),
            format!("{read}_nodigest"),
        ));
        names.push((
            format!("nvme read {m} MiB --digest crc32 (U-Boot: its crc32)"),
            format!("crc32_{m}MiB"),
            format!("{read}_crc32"),
        ));
    }
    let med = |key: String| summarize(&column(runs, &key)).map(|s| s.median);
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let mut out = String::from(
        "\n| serial bytes per command | U-Boot text | bringup text | bringup frames | bringup at 115200 baud |\n|---|---|---|---|---|\n",
    );
    for (label, u, b) in names {
        let text = med(format!("bringup.bytes.{b}"));
        let frames = med(format!("bringup.frame_bytes.{b}"));
        let uboot = med(format!("uboot.bytes.{u}"));
        if text.is_none() && uboot.is_none() {
            continue;
        }
        let line_ms = text.map(|t| (t + frames.unwrap_or(0.0)) * 10.0 / 115_200.0 * 1e3);
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} |",
            show(uboot),
            show(text),
            show(frames),
            line_ms.map_or("-".into(), |ms| format!("{ms:.1} ms"))
        );
    }
    out
}
