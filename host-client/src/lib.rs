//! The host side of bringup: talk to the monitor over QEMU, GCE's serial console, TCP, UNIX
//! sockets or a command's stdio; run command files into JSON proof reports; decode logs.
//!
//! # Library API for system tests
//!
//! ```no_run
//! use std::time::Duration;
//! use host_client::{QemuConfig, Session};
//!
//! # fn main() -> anyhow::Result<()> {
//! let cfg = QemuConfig { uefi: true, qmp: true, ..QemuConfig::default() };
//! let mut s = Session::start_qemu(&cfg)?;          // QEMU is killed when `s` drops
//! let boot = s.wait_for_prompt(Duration::from_secs(60))?;
//! assert_eq!(boot.banner.firmware, evidence::Firmware::Uefi);
//! let out = s.command("lsppci", Duration::from_secs(10))?;
//! assert_eq!(out.error_code(), Some("unknown-command"));
//! s.send_raw(&[0xff, 0x00, 0x1b])?;               // garbage, paced
//! s.resync(Duration::from_secs(10))?;             // back to a quiet prompt
//! let pci = s.qmp("query-pci", serde_json::Value::Null)?;
//! assert!(s.sequence_gaps().is_empty() && s.damaged_frames().is_empty());
//! # let _ = pci; Ok(()) }
//! ```
//!
//! - [`QemuConfig`] / [`QemuProcess`]: the QEMU command line (no display adapter, serial on
//!   a private UNIX socket, `snapshot=on` for the image, OVMF with a private vars copy,
//!   NVMe drives, the gVNIC model through `vfio-user-pci` (QEMU 10.1+) or `x-pci-proxy-dev`,
//!   QMP).
//! - [`Session`]: `start_qemu`, `connect(Transport)`, `wait_for_prompt`, `sync_prompt`,
//!   `command`, `send_raw`, `interrupt`, `resync`, `qmp`, `frames`, `damaged_frames`,
//!   `sequence_gaps`, `frame_log`, `transcript`.
//! - [`CommandOutcome`]: `is_ok`, `error_code`, `bodies_of_kind`, `text`, `frames`.
//! - [`script`], [`runner`], [`report`]: command files and proof reports (`bringup run`).
//! - [`decode`]: frames out of a captured log, grouped by boot (`bringup decode`).
//! - [`gce`]: the serial-console gateway over OpenSSH and the gcloud wrappers.
//! - [`target`]: one monitor to run a command file on (QEMU, socket, GCE), for `run` and
//!   `matrix`; [`matrix`]: one command file on many targets at once.

pub mod console;
pub mod decode;
pub mod disk_view;
pub mod frames;
pub mod gce;
pub mod gvnic;
pub mod gvnic_transport;
pub mod json;
pub mod matrix;
pub mod model_verdict;
pub mod outcome;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod resume;
pub mod runner;
pub mod script;
pub mod serial;
pub mod session;
pub mod start_line;
pub mod target;
pub mod transport;
pub mod unaccounted;

pub use frames::{DamagedFrame, FrameLog, SeqGap};
pub use gvnic_transport::GvnicTransport;
pub use outcome::CommandOutcome;
pub use qemu::{Accel, DirectBoot, GvnicOptions, NvmeDrive, QemuConfig, QemuProcess};
pub use session::{BootInfo, Pacing, Session, SessionError};
pub use transport::Transport;
