//! Links the monitor at 1 MiB with its own linker script and records the build identity.

use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");

    // The banner's build field: `git describe` when the source is a git checkout.
    let build = Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .current_dir(&dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BRINGUP_BUILD={build}");
    println!("cargo:rerun-if-changed={dir}/../.git/HEAD");
    println!("cargo:rerun-if-changed={dir}/../.git/index");
}
