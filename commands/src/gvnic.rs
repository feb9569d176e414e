//! `gvnic describe`, `gvnic txdhcp` and the gVNIC half of `teardown` (issue 6). Placeholder.

use crate::table::{CmdError, CommandSpec, Ctx};

pub static COMMANDS: &[CommandSpec] = &[];

/// The bound gVNIC NIC, if any.
#[derive(Default)]
pub struct GvnicState {}

/// Tears the NIC down if one is bound; Ok when nothing was bound.
pub fn teardown(_ctx: &mut Ctx) -> Result<(), CmdError> {
    Ok(())
}
