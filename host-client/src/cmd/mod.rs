//! One module per subcommand, each with one `exec` that turns parsed options into a library
//! call and an exit status (cargo's layout). main.rs only parses and dispatches.

pub mod decode;
pub mod gce;
pub mod matrix;
pub mod qemu;
pub mod run;
