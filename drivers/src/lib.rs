//! Device drivers for bringup, written against small platform traits so that every driver
//! runs both on the bare-metal monitor and in host tests against fakes and device models.
//!
//! Module map (one concern each):
//! - [`platform`]: the traits a platform implements (config space, register windows,
//!   MMIO mapping, clock) and the deadline helper every wait goes through.
//! - [`clock`]: the TSC sources' arithmetic and the choice between them.
//! - [`cpu`]: pure decoders over CPUID/MSRs (confidential-VM detection).
//! - [`dma`]: the one bounce pool all device-visible memory comes from, and its ledger.
//! - `pci`: config-space decoding, enumeration behind bridges, BAR sizing.
//! - `nvme`, `gvnic`: the two device drivers.
//! - [`digest`]: SHA-256 (portable or SHA-NI) and CRC-32 over data read from devices.
//! - [`pattern`]: what `nvme write` writes and `nvme verify` expects (byte or seeded stream).
//! - [`gpt`]: the GPT header's disk GUID, to recognise the boot disk.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod clock;
pub mod cpu;
pub mod digest;
pub mod dma;
pub mod gpt;
pub mod gvnic;
pub mod net;
pub mod nvme;
pub mod pattern;
pub mod pci;
pub mod platform;
