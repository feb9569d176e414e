//! The GCE image: `disk.raw` (the hybrid disk grown to whole GiB) in an oldgnu tar.gz.
//!
//! GCE imports a gzip'd tar holding exactly one file named `disk.raw` whose size is a
//! whole number of GiB, in GNU (oldgnu) tar format. The disk stays sparse, so the tarball
//! stays small (`tar -S`).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::tools::run;
use crate::GIB;

/// The member name GCE requires.
pub const MEMBER: &str = "disk.raw";

/// Smallest whole-GiB size (at least 1 GiB) that holds `bytes`.
pub fn gce_disk_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).max(1) * GIB
}

/// Writes `<out_dir>/disk.raw` from `image` and packs it into `tarball`.
pub fn build(image: &Path, out_dir: &Path, tarball: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let raw = out_dir.join(MEMBER);
    let _ = std::fs::remove_file(&raw);
    copy_sparse_file(image, &raw)?;
    let size = std::fs::metadata(image)?.len();
    let file = OpenOptions::new().write(true).open(&raw)?;
    file.set_len(gce_disk_bytes(size))?;
    drop(file);

    // The backup GPT must sit at the (new) end of the disk.
    let mut relocate = Command::new("sgdisk");
    relocate.arg("-e").arg(&raw);
    run(relocate)?;

    let partial = tarball.with_extension("partial");
    let mut tar = Command::new("tar");
    tar.args(["--format=oldgnu", "-Sczf"])
        .arg(&partial)
        .arg("-C")
        .arg(out_dir)
        .arg(MEMBER);
    run(tar)?;
    std::fs::rename(&partial, tarball)?;
    Ok(())
}

/// Copies a file, leaving all-zero 64 KiB blocks as holes.
fn copy_sparse_file(src: &Path, dst: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const BLOCK: usize = 64 * 1024;
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut output = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let len = input.metadata()?.len();
    output.set_len(len)?;
    let mut buf = vec![0u8; BLOCK];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(BLOCK as u64) as usize;
        input.read_exact(&mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            output.seek(SeekFrom::Start(at))?;
            output.write_all(&buf[..n])?;
        }
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_gib_at_least_one() {
        assert_eq!(gce_disk_bytes(64 << 20), GIB);
        assert_eq!(gce_disk_bytes(GIB), GIB);
        assert_eq!(gce_disk_bytes(GIB + 1), 2 * GIB);
        assert_eq!(gce_disk_bytes(0), GIB);
    }
}
