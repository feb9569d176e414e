//! `make bench`: bringup against U-Boot on the same QEMU, the same machine and the same NVMe
//! disk, run after run (each run boots each monitor once), plus the host's own limits and the
//! image's cold build cost. Prints a table and writes a JSON file.

mod bringup;
mod console;
mod host;
mod machine;
mod report;
mod stats;
mod uboot;
mod writes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use host::Reference;
use machine::{Accel, Firmware};
use stats::Run;

#[derive(Parser, Debug)]
#[command(about = "Benchmark bringup against U-Boot on the same QEMU and NVMe disk")]
struct Args {
    /// Runs (each boots every monitor once; ratios are computed within a run).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    #[arg(long, value_enum, default_value = "tcg")]
    accel: Accel,
    /// A short smoke run: 1 run, 1 and 64 MiB only, no build cost.
    #[arg(long)]
    quick: bool,
    /// Where the JSON goes.
    #[arg(long, default_value = "target/bench.json")]
    out: PathBuf,
    /// The monitor's disk image (default: $BRINGUP_IMAGE, else target/bringup.img).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Scratch directory (the NVMe disk file, the OVMF variable store copies, the build).
    #[arg(long, default_value = "target/bench")]
    work: PathBuf,
    /// Skip the cold build of the image.
    #[arg(long)]
    no_build: bool,
    /// Repetitions of each read within one boot (the run keeps their median).
    #[arg(long, default_value_t = 3)]
    read_reps: usize,
    #[arg(long)]
    skip_uboot: bool,
    #[arg(long)]
    skip_bringup: bool,
    /// Skip the OVMF boots (about 6 s each under TCG).
    #[arg(long)]
    skip_ovmf: bool,
    /// Skip the SHA-NI / portable SHA-256 pair on QEMU 10 (target/qemu-10, `make qemu10`).
    #[arg(long)]
    skip_qemu10: bool,
}

/// The SHA-256 pair on QEMU 10, one boot each per run.
const SHA256_PATHS: [bringup::Sha256Case; 2] = [
    bringup::Sha256Case {
        tag: "qemu10_shani",
        cpu: "max",
        engine: "sha-ni",
    },
    bringup::Sha256Case {
        tag: "qemu10_portable",
        cpu: "qemu64",
        engine: "portable",
    },
];

/// What each run does.
pub struct Plan {
    pub sizes_mib: Vec<u64>,
    pub version_reps: usize,
    /// Each read is repeated this often per boot; the run keeps the median.
    pub read_reps: usize,
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut needed = vec![];
    if !args.skip_uboot {
        needed.push((machine::UBOOT_ROM, "u-boot-qemu"));
    }
    if !args.skip_bringup && !args.skip_ovmf {
        needed.extend([(machine::OVMF_CODE, "ovmf"), (machine::OVMF_VARS, "ovmf")]);
    }
    for (path, package) in needed {
        if !Path::new(path).exists() {
            anyhow::bail!("{path} is missing: install the Debian package {package}");
        }
    }
    let (runs_wanted, plan) = if args.quick {
        (
            1,
            Plan {
                sizes_mib: vec![1, 64],
                version_reps: 3,
                read_reps: 1,
            },
        )
    } else {
        (
            args.runs.max(1),
            Plan {
                sizes_mib: vec![1, 16, 64],
                version_reps: 5,
                read_reps: args.read_reps,
            },
        )
    };
    let mut errors: Vec<String> = Vec::new();
    let machine = host::machine_info();
    std::fs::create_dir_all(&args.work)?;
    let disk = args.work.join("nvme.img");
    host::ensure_disk(&disk)?;
    let reference = Reference::compute(&disk, &plan.sizes_mib)?;
    let source_image = args.image.clone().unwrap_or_else(|| {
        std::env::var_os("BRINGUP_IMAGE")
            .map_or_else(|| PathBuf::from("target/bringup.img"), PathBuf::from)
    });
    // Every run boots the same bytes even if someone rebuilds the image meanwhile.
    let image = args.work.join("bringup-under-test.img");
    if !args.skip_bringup {
        std::fs::copy(&source_image, &image)
            .with_context(|| format!("copying {} (run `make image`)", source_image.display()))?;
    }
    let big = *plan.sizes_mib.last().context("no sizes")?;
    let qemu10 = machine::qemu10_binary();
    if qemu10.is_none() && !args.skip_qemu10 && !args.skip_bringup {
        let msg = "QEMU 10 missing (run `make qemu10`): no SHA-NI/portable pair".to_string();
        eprintln!("bench: {msg}");
        errors.push(msg);
    }

    let mut runs: Vec<Run> = Vec::new();
    let note = |errors: &mut Vec<String>, what: &str, run: usize, e: anyhow::Error| {
        let msg = format!("run {run}: {what}: {e:#}");
        eprintln!("bench: {msg}");
        errors.push(msg);
    };
    for i in 0..runs_wanted {
        eprintln!(
            "bench: run {}/{runs_wanted} ({:.0} s so far)",
            i + 1,
            secs(started.elapsed())
        );
        let mut run = Run::new();
        run.insert("host.loadavg_1m".into(), host::loadavg_1m());
        match host::limits_once(&disk, big) {
            Ok(r) => run.extend(r),
            Err(e) => note(&mut errors, "host limits", i, e),
        }
        if !args.skip_uboot {
            if let Err(e) = uboot::run_once(args.accel, &disk, &plan, &reference, &mut run) {
                note(&mut errors, "U-Boot", i, e);
            }
        }
        if !args.skip_bringup {
            let fw = Firmware::SeaBios { image: &image };
            if let Err(e) =
                bringup::run_once(args.accel, &fw, &disk, &plan, &reference, true, &mut run)
            {
                note(&mut errors, "bringup/seabios", i, e);
            }
            if !args.skip_ovmf {
                if let Err(e) = ovmf_once(&args, &image, &disk, &plan, &reference, i, &mut run) {
                    note(&mut errors, "bringup/ovmf", i, e);
                }
            }
            match &qemu10 {
                Some(binary) if !args.skip_qemu10 => {
                    for case in &SHA256_PATHS {
                        if let Err(e) = bringup::sha256_paths_once(
                            binary, case, &disk, &image, &plan, &reference, &mut run,
                        ) {
                            note(&mut errors, &format!("bringup/{}", case.tag), i, e);
                        }
                    }
                }
                _ => {}
            }
        }
        run.insert("host.loadavg_1m_after".into(), host::loadavg_1m());
        report::derive(&mut run, &plan.sizes_mib);
        runs.push(run);
    }
    let mut build = serde_json::Value::Null;
    if !args.quick && !args.no_build {
        eprintln!("bench: cold build of the image");
        let dir = std::env::current_dir()?;
        match host::build_cost(&dir, &dir.join(&args.work).join("cold-build"), &mut runs[0]) {
            Ok(img) => {
                build =
                    json!({ "image": img, "note": "fresh target dir, crates already downloaded" })
            }
            Err(e) => note(&mut errors, "build cost", 0, e),
        }
    }

    let table = report::table(&runs, &plan.sizes_mib);
    println!("{table}");
    for e in &errors {
        println!("error: {e}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = report::summaries(&runs)
        .into_iter()
        .map(|(k, s)| (k, json!(s)))
        .collect();
    let ratios: Vec<serde_json::Value> = report::ratio_rows(&plan.sizes_mib)
        .into_iter()
        .filter_map(|(label, num, den)| {
            let s = stats::ratio(&runs, &num, &den)?;
            Some(json!({ "label": label, "numerator": num, "denominator": den, "summary": s }))
        })
        .collect();
    let doc = json!({
        "machine": machine,
        "config": {
            "runs": runs_wanted, "accel": args.accel, "quick": args.quick,
            "sizes_mib": plan.sizes_mib, "version_reps": plan.version_reps,
            "read_reps": plan.read_reps,
            "image": source_image, "nvme_disk": disk, "nvme_disk_mib": host::DISK_MIB,
        },
        "summary": summary,
        "ratios": ratios,
        "runs": runs,
        "build": build,
        "errors": errors,
        "table_markdown": table,
        "total_s": secs(started.elapsed()),
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)?)?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        args.out.display(),
        secs(started.elapsed())
    );
    Ok(())
}

fn ovmf_once(
    args: &Args,
    image: &Path,
    disk: &Path,
    plan: &Plan,
    reference: &Reference,
    i: usize,
    run: &mut Run,
) -> Result<()> {
    let vars = args.work.join(format!("OVMF_VARS_4M.{i}.fd"));
    std::fs::copy(machine::OVMF_VARS, &vars).context("copying the OVMF variable store")?;
    let fw = Firmware::Ovmf {
        image,
        vars: vars.clone(),
    };
    let result = bringup::run_once(args.accel, &fw, disk, plan, reference, false, run);
    let _ = std::fs::remove_file(&vars);
    result
}
