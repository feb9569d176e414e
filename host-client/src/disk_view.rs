//! How a QEMU run sees its NVMe disk files.
//!
//! QEMU takes a write lock on every image it opens read-write, so two runs on one disk file
//! fail (`Failed to get "write" lock`), and a run that writes changes the file for the next.
//! A matrix therefore never hands a target the file itself: a script that cannot write
//! gets it read-only (QEMU's shared lock: any number of readers), one that can gets a
//! snapshot overlay (`snapshot=on`: the file opened read-only, writes kept in a temporary
//! overlay that goes with the run). This module knows QEMU's drive options and which
//! monitor commands write a disk, nothing else.

use crate::script::Script;

/// A QEMU run's view of its NVMe disk files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DiskView {
    /// The file itself, read-write and locked (`bringup run --nvme`: what the user asked).
    #[default]
    Direct,
    /// `readonly=on`: the namespace is read-only, the file shared with other readers.
    ReadOnly,
    /// `snapshot=on`: writable for the guest, the file untouched and shared.
    Snapshot,
}

/// Monitor commands that write to an NVMe namespace (policy: the write command of the
/// NVMe-writes work and anything that formats; `nvme read` never writes).
const WRITING_COMMANDS: &[&str] = &["nvme write", "nvme format", "nvme flush"];

impl DiskView {
    /// The `-drive` options that give this view (appended after `format=raw`).
    pub fn drive_options(self) -> &'static str {
        match self {
            DiskView::Direct => "",
            DiskView::ReadOnly => ",readonly=on",
            DiskView::Snapshot => ",snapshot=on",
        }
    }

    /// The view a matrix target gets for `script`: read-only unless a line may write.
    pub fn for_script(script: &Script) -> DiskView {
        if script_writes_disks(script) {
            DiskView::Snapshot
        } else {
            DiskView::ReadOnly
        }
    }
}

/// Whether some step of the script is a command that writes an NVMe namespace.
pub fn script_writes_disks(script: &Script) -> bool {
    script.steps.iter().any(|step| {
        let words: Vec<&str> = step.command.split_whitespace().take(2).collect();
        let head = words.join(" ");
        WRITING_COMMANDS.contains(&head.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_script;

    #[test]
    fn reading_scripts_get_read_only_writing_ones_an_overlay() {
        let read = parse_script("nvme identify\nnvme read 0 8\n").unwrap();
        assert_eq!(DiskView::for_script(&read), DiskView::ReadOnly);
        let write = parse_script("nvme identify\nnvme  write 0 1 --pattern 0xaa\n").unwrap();
        assert_eq!(DiskView::for_script(&write), DiskView::Snapshot);
        assert_eq!(DiskView::ReadOnly.drive_options(), ",readonly=on");
        assert_eq!(DiskView::Snapshot.drive_options(), ",snapshot=on");
        assert_eq!(DiskView::default().drive_options(), "");
    }
}
