//! `lspci` and `bar map` (issue 3). Placeholder: the table is filled in by the PCI work.

use crate::table::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
