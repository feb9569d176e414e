//! The EFI system partition: a FAT32 filesystem built in a file with mtools.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::tools::run;
use crate::SECTOR;

/// One file to put on the ESP.
pub struct FileSpec {
    pub source: PathBuf,
    /// Path inside the ESP, `/`-separated, without a leading slash.
    pub dest: String,
}

impl FileSpec {
    pub fn new(source: &Path, dest: &str) -> Self {
        FileSpec {
            source: source.to_path_buf(),
            dest: dest.to_string(),
        }
    }
}

/// mtools refuses images whose geometry it cannot guess; 32 sectors x 64 heads is what
/// mformat uses for disks of this size anyway.
const SECTORS_PER_TRACK: &str = "32";
const HEADS: &str = "64";

/// Creates `esp` (exactly `sectors` sectors), formats it FAT32 and copies `files` in.
pub fn build(esp: &Path, sectors: u64, files: &[FileSpec]) -> Result<()> {
    let file = std::fs::File::create(esp).with_context(|| format!("creating {}", esp.display()))?;
    file.set_len(sectors * SECTOR)
        .with_context(|| format!("sizing {}", esp.display()))?;
    drop(file);

    let mut format = Command::new("mformat");
    format
        .arg("-i")
        .arg(esp)
        .args(["-F", "-v", "BRINGUP", "-T"])
        .arg(sectors.to_string())
        .args(["-s", SECTORS_PER_TRACK, "-h", HEADS, "::"]);
    run(format)?;

    let dirs: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            let parts: Vec<&str> = f.dest.split('/').collect();
            (1..parts.len())
                .map(|n| parts[..n].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    for dir in dirs {
        let mut mkdir = Command::new("mmd");
        mkdir.arg("-i").arg(esp).arg(format!("::/{dir}"));
        run(mkdir)?;
    }
    for f in files {
        let mut copy = Command::new("mcopy");
        copy.arg("-i")
            .arg(esp)
            .arg(&f.source)
            .arg(format!("::/{}", f.dest));
        run(copy).with_context(|| format!("copying {} onto the ESP", f.source.display()))?;
    }
    Ok(())
}
