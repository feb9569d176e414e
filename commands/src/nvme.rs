//! `nvme identify`, `nvme read` and the NVMe half of `teardown` (issue 4). Placeholder.

use crate::table::{CmdError, CommandSpec, Ctx};

pub static COMMANDS: &[CommandSpec] = &[];

/// The bound NVMe controller, if any.
#[derive(Default)]
pub struct NvmeState {}

/// Tears the controller down if one is bound; Ok when nothing was bound.
pub fn teardown(_ctx: &mut Ctx) -> Result<(), CmdError> {
    Ok(())
}
