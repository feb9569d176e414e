//! `bringup matrix`: one command file on many targets at once.
//!
//! - [`plan`]: the targets (local axes, a TOML file, or GCE machine types), with stable ids.
//! - [`exec`]: runs them in parallel, each with its own QEMU and model or its own VM.
//! - [`fleet`]: the GCE VMs of a run, each deleted exactly once, also on Ctrl-C.
//! - [`report`]: matrix.json and the terminal table.

pub mod exec;
pub mod fleet;
pub mod plan;
pub mod report;
