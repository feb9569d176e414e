//! `bringup-image`: builds target/bringup.img and the GCE tarball.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build the bringup boot disk (GRUB + monitor) for QEMU and GCE")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hybrid BIOS+UEFI GPT disk image.
    Disk {
        /// The monitor ELF (multiboot2).
        #[arg(long)]
        monitor: PathBuf,
        /// Output image.
        #[arg(long, default_value = "target/bringup.img")]
        output: PathBuf,
        /// Kernel command line, e.g. "dma=16M".
        #[arg(long, default_value = image::DEFAULT_CMDLINE)]
        cmdline: String,
        /// Disk size in MiB.
        #[arg(long, default_value_t = image::DEFAULT_DISK_BYTES / image::MIB)]
        size_mib: u64,
    },
    /// Pack an image as GCE wants it: disk.raw (whole GiB) in an oldgnu tar.gz.
    Gce {
        #[arg(long, default_value = "target/bringup.img")]
        image: PathBuf,
        #[arg(long, default_value = "target/gce")]
        out_dir: PathBuf,
        #[arg(long, default_value = "target/gce/bringup-gce.tar.gz")]
        tarball: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Disk {
            monitor,
            output,
            cmdline,
            size_mib,
        } => {
            let spec = image::ImageSpec {
                monitor_elf: monitor,
                output: output.clone(),
                disk_bytes: size_mib
                    .checked_mul(image::MIB)
                    .ok_or_else(|| anyhow::anyhow!("--size-mib {size_mib} is too large"))?,
                cmdline,
                disk_guid: None,
            };
            image::build(&spec)?;
            println!("wrote {}", output.display());
        }
        Cmd::Gce {
            image: source,
            out_dir,
            tarball,
        } => {
            image::gce::build(&source, &out_dir, &tarball)?;
            println!("wrote {}", tarball.display());
        }
    }
    Ok(())
}
