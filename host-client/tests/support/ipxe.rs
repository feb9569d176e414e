//! Debian trixie's iPXE (package `ipxe`, 1.21.1+git20250501: its gve driver, written on GCE
//! hardware in 2024, supports GQI-QPL only) as a second independent driver for the gVNIC
//! model: `ipxe.lkrn`, fetched once through the private APT configuration into
//! target/linux-cache/ipxe/ (needs `mod linux` from support/linux.rs beside it).
#![allow(dead_code)]

use std::path::PathBuf;

use crate::linux;

/// The suite whose `ipxe` package is used.
pub const SUITE: (&str, &str) = ("trixie", "trixie trixie-backports");

/// `/usr/lib/ipxe/ipxe.lkrn` (a bzImage: boots with QEMU's -kernel), from the cache or
/// fetched once.
pub fn lkrn() -> PathBuf {
    let dir = linux::cache_dir().join("ipxe");
    let out = dir.join("ipxe.lkrn");
    let _lock = linux::CacheLock::take();
    if out.is_file() {
        return out;
    }
    if linux::debs(&dir).is_empty() {
        // trixie/main, not backports: apt's default candidate is the suite's own version.
        linux::download(SUITE.0, SUITE.1, &["ipxe".to_string()], &dir);
    }
    let root = dir.join("root");
    linux::extract(
        &linux::debs(&dir),
        &root,
        &["./usr/lib/ipxe/ipxe.lkrn".into()],
    );
    std::fs::rename(root.join("usr/lib/ipxe/ipxe.lkrn"), &out)
        .expect("the ipxe package holds /usr/lib/ipxe/ipxe.lkrn");
    let _ = std::fs::remove_dir_all(&root);
    out
}
