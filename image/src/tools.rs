//! Running the external tools (GRUB, sgdisk, mtools) with errors that say what to install.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Which Debian package provides each tool we run (for error messages).
fn package_of(program: &str) -> &'static str {
    match program {
        "grub-mkimage" => "grub-pc-bin (or grub-common)",
        "grub-mkstandalone" => "grub-efi-amd64-bin and grub-common",
        "sgdisk" => "gdisk",
        "mformat" | "mmd" | "mcopy" | "mdir" => "mtools",
        "tar" => "tar",
        _ => "the package that provides it",
    }
}

/// Runs `cmd`, failing with its stderr if it does not exit 0.
pub fn run(mut cmd: Command) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd.output().map_err(|err| {
        anyhow::anyhow!(
            "cannot run {program}: {err} (install {}; `make deps` does it)",
            package_of(&program)
        )
    })?;
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout.
pub fn output(mut cmd: Command) -> Result<Vec<u8>> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {program} (install {})", package_of(&program)))?;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
