//! The monitor's command language: grammar, parser, dispatch table, help texts and human
//! output. Knows nothing of x86: the monitor lends it the hardware through
//! [`drivers::platform::Hw`] and a [`Console`] to print to, so all of it runs in host tests.
//!
//! Every command produces exactly one result frame (ok, or an error with a stable code),
//! preceded by a start frame and any evidence frames the command emits.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod args;
pub mod cmd;
mod core_cmds;
pub mod digest;
pub mod fmt;
pub use cmd::gvnic;
/// The `nvme` commands live in `cmd/nvme/`; the old path stays.
pub use cmd::nvme;
mod nvme_wait;
pub mod output;
pub mod pci;
mod rate;
pub mod shell;
pub mod table;
mod timing;

pub use output::Console;
pub use shell::{Action, Events, Shell, SystemInfo};
pub use table::CmdError;
