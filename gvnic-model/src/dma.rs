//! Checked DMA: every device access to guest memory goes through here, so bus-master-off,
//! non-RAM ranges and misaligned structure addresses are recorded, never silently accepted.

use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic, PAGE_SIZE};

impl Gvnic {
    pub(crate) fn dma_read(
        &mut self,
        mem: &dyn GuestMemory,
        gpa: u64,
        buf: &mut [u8],
        what: &str,
    ) -> bool {
        if !self.pci.bus_master() {
            self.record.violation(
                ViolationKind::BusMasterDisabled,
                format!("device read of {what} at {gpa:#x} with bus mastering off"),
            );
            return false;
        }
        if mem.read(gpa, buf).is_err() {
            self.record.violation(
                ViolationKind::OutsideGuestRam,
                format!("{what} {gpa:#x}+{:#x} is not guest RAM", buf.len()),
            );
            return false;
        }
        true
    }

    pub(crate) fn dma_write(
        &mut self,
        mem: &dyn GuestMemory,
        gpa: u64,
        data: &[u8],
        what: &str,
    ) -> bool {
        if !self.pci.bus_master() {
            self.record.violation(
                ViolationKind::BusMasterDisabled,
                format!("device write of {what} at {gpa:#x} with bus mastering off"),
            );
            return false;
        }
        if mem.write(gpa, data).is_err() {
            self.record.violation(
                ViolationKind::OutsideGuestRam,
                format!("{what} {gpa:#x}+{:#x} is not guest RAM", data.len()),
            );
            return false;
        }
        true
    }

    /// A DMA structure base must be page aligned (facts §4.5, iPXE's inference) and its
    /// whole extent must be guest RAM. Checked by reading it (without keeping the bytes).
    pub(crate) fn check_region(
        &mut self,
        mem: &dyn GuestMemory,
        gpa: u64,
        len: u64,
        what: &str,
    ) -> bool {
        if !gpa.is_multiple_of(PAGE_SIZE) {
            self.record.violation(
                ViolationKind::NotPageAligned,
                format!("{what} at {gpa:#x} is not page aligned"),
            );
            return false;
        }
        if len > 1 << 24 {
            self.record.violation(
                ViolationKind::OutsideGuestRam,
                format!("{what} of {len} bytes is absurd"),
            );
            return false;
        }
        let mut probe = vec![0u8; len as usize];
        self.dma_read(mem, gpa, &mut probe, what)
    }
}
