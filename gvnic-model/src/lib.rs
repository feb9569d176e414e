//! A model of Google's gVNIC (PCI 1ae0:0042), written from
//! `reference/gvnic-and-nvme-facts.md` §0-§5 (cited as "facts §n" throughout).
//!
//! The device logic is a library over [`GuestMemory`] (the guest's RAM as DMA sees it). Two
//! Three front ends drive it: in-process (driver tests call [`Gvnic::bar_read`] and friends),
//! [`proxy::serve`], which speaks QEMU 7.2's multi-process protocol, and [`vfio_user::serve`],
//! a vfio-user server for QEMU 10.1+ (`-device vfio-user-pci`), whose MSI-X vectors reach
//! the guest through the [`Interrupts`] hook.
//!
//! All four queue formats have a data path (gvnic-dqo.md): GQI-QPL, GQI-RDA, DQO-RDA and
//! DQO-QPL, with DQO's completion write-back held until a 128-byte line fills or the queue's
//! MSI-X vector fires.

mod addressing;
pub mod adminq;
pub mod codes;
pub mod config;
pub mod describe;
pub mod device;
mod dma;
pub mod flow;
pub mod format;
pub mod interrupts;
pub mod layout;
mod limits;
pub mod msix;
pub mod notify;
pub mod optional;
pub mod options;
pub mod pci;
pub mod profile;
pub mod proxy;
pub mod ptype;
pub mod qpl;
pub mod queues;
pub mod record;
pub mod record_file;
pub mod regs;
mod reset;
pub mod resources;
pub mod responder;
pub mod rss;
pub mod tap;
pub mod timestamp;
pub mod vfio_user;
pub mod wire;

/// GQI data paths under their old names.
pub use format::gqi_rx as rx;
pub use format::gqi_tx as tx;

pub use config::{
    DeviceIsReset, Family, Faults, Formats, Latencies, ModelConfig, QueueFormat, Responder,
    REDUNDANT_RESET_DELAY_TICKS,
};
pub use device::{Gvnic, TICK_US};
pub use interrupts::Interrupts;
pub use profile::Profile;
pub use record::{
    CommandRecord, DriverInfo, InterruptRecord, Record, ResetCause, ResetRecord, Violation,
    ViolationKind,
};
pub use wire::{Direction, WireFrame};

/// A DMA range that is not guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    pub gpa: u64,
    pub len: usize,
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "guest range {:#x}+{:#x} is not RAM", self.gpa, self.len)
    }
}

impl std::error::Error for OutOfRange {}

/// Guest physical memory as the device sees it (DMA). Errors when the range is not guest RAM.
pub trait GuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutOfRange>;
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange>;
}

/// A simple RAM for tests: `size` bytes starting at guest address `base`.
pub struct VecMemory {
    pub base: u64,
    pub bytes: std::cell::RefCell<Vec<u8>>,
}

impl VecMemory {
    pub fn new(base: u64, size: usize) -> Self {
        VecMemory {
            base,
            bytes: std::cell::RefCell::new(vec![0; size]),
        }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<std::ops::Range<usize>, OutOfRange> {
        let err = OutOfRange { gpa, len };
        let start = gpa.checked_sub(self.base).ok_or(err)?;
        let end = start.checked_add(len as u64).ok_or(err)?;
        if end > self.bytes.borrow().len() as u64 {
            return Err(err);
        }
        Ok(start as usize..end as usize)
    }
}

impl GuestMemory for VecMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes.borrow()[r]);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let r = self.range(gpa, data.len())?;
        self.bytes.borrow_mut()[r].copy_from_slice(data);
        Ok(())
    }
}

/// Big-endian field helpers for 64-byte commands and descriptors.
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// The page size of every gVNIC DMA structure and QPL page (facts §3.3, §4.5).
pub const PAGE_SIZE: u64 = 4096;
