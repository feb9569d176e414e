//! BAR0 (configuration and status registers) and BAR2 (doorbells) of the gVNIC.
//!
//! Every gVNIC register is big-endian, while the bus (and [`RegisterWindow`]) carries values
//! as an x86 load sees them. All byte swapping for registers happens here, in one place.

use alloc::boxed::Box;
use bitflags::bitflags;

use crate::platform::RegisterWindow;

use super::GvnicError;

/// BAR0 register offsets (facts §2).
pub mod offset {
    /// Device -> driver flags ([`super::DeviceStatus`]).
    pub const DEVICE_STATUS: usize = 0x00;
    /// Driver -> device flags ([`super::DriverStatus`]), revision >= 1 only.
    pub const DRIVER_STATUS: usize = 0x04;
    pub const MAX_TX_QUEUES: usize = 0x08;
    pub const MAX_RX_QUEUES: usize = 0x0c;
    /// Admin queue physical address / 4096 (revision 0). Writing 0 resets the device; it
    /// reads back 0 once the device has let go of all driver memory.
    pub const ADMINQ_PFN: usize = 0x10;
    /// Free-running count of admin commands submitted.
    pub const ADMINQ_DOORBELL: usize = 0x14;
    /// Free-running count of admin commands executed.
    pub const ADMINQ_EVENT_COUNTER: usize = 0x18;
    /// One byte: the DMA address width the device supports (32 or 64).
    pub const DMA_MASK: usize = 0x1e;
    /// Revision >= 1: high and low halves of the admin queue address.
    pub const ADMINQ_BASE_ADDRESS_HI: usize = 0x20;
    pub const ADMINQ_BASE_ADDRESS_LO: usize = 0x24;
    /// Revision >= 1: admin queue length in bytes, a 16-bit big-endian register.
    pub const ADMINQ_LENGTH: usize = 0x28;
}

/// How much of BAR0 the driver touches (iPXE maps 0x1000; the registers end at 0x2a).
pub const BAR0_MIN_LEN: usize = 0x2c;

bitflags! {
    /// DEVICE_STATUS (BE32 at 0x00).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct DeviceStatus: u32 {
        /// The device asks the driver to reset it (Linux services this from its
        /// management interrupt; we notice it while polling).
        const RESET_REQUESTED = 1 << 1;
        const LINK_UP = 1 << 2;
        /// The device asks for a statistics report (ignored: we never attach one).
        const REPORT_STATS = 1 << 3;
        /// Revision >= 1: the reset has finished and the admin queue is released.
        const DEVICE_IS_RESET = 1 << 4;
    }
}

bitflags! {
    /// DRIVER_STATUS (BE32 at 0x04), revision >= 1.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct DriverStatus: u32 {
        /// Start processing the admin queue whose base and length were just written.
        const RUN = 1 << 0;
        /// Reset the device and release the admin queue.
        const RESET = 1 << 1;
    }
}

/// GQI IRQ doorbell value (BE32): mask the interrupt. A polling driver writes it once per
/// notification block after CONFIGURE_DEVICE_RESOURCES and never unmasks (facts §4.3).
pub const IRQ_DOORBELL_MASK: u32 = 1 << 30;

/// DQO IRQ doorbell bits (LE32, GCP-Linux gve_dqo.h; gvnic-dqo.md §1.10): enable, and ITR
/// select 3 = "no update" in bits 3-4.
pub const DQO_IRQ_ENABLE: u32 = 1 << 0;
pub const DQO_IRQ_ITR_NO_UPDATE: u32 = 3 << 3;
/// Re-arm: enable + no ITR update = 0x19, what Linux writes after NAPI and iPXE on every
/// poll.
pub const DQO_IRQ_REARM: u32 = DQO_IRQ_ENABLE | DQO_IRQ_ITR_NO_UPDATE;

/// How the admin queue is handed to the device, decided by the PCI revision (facts §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AqMode {
    /// Revision 0: ADMINQ_PFN.
    Pfn,
    /// Revision >= 1: PFN as well (iPXE), length, base hi/lo, DRIVER_STATUS = RUN.
    /// Either way the reset is iPXE's: PFN = 0, done when PFN reads 0.
    BaseLength,
}

impl AqMode {
    pub fn for_revision(revision: u8) -> AqMode {
        if revision == 0 {
            AqMode::Pfn
        } else {
            AqMode::BaseLength
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AqMode::Pfn => "PFN (revision 0)",
            AqMode::BaseLength => "base/length/RUN (revision 1)",
        }
    }
}

/// BAR0, with typed big-endian accessors.
pub struct Registers {
    window: Box<dyn RegisterWindow>,
}

impl Registers {
    pub fn new(window: Box<dyn RegisterWindow>) -> Result<Registers, GvnicError> {
        if window.len() < BAR0_MIN_LEN {
            return Err(GvnicError::BadBar {
                bar: 0,
                len: window.len(),
            });
        }
        Ok(Registers { window })
    }

    fn read_be32(&self, offset: usize) -> u32 {
        u32::from_be(self.window.read32(offset))
    }

    fn write_be32(&self, offset: usize, value: u32) {
        self.window.write32(offset, value.to_be());
    }

    /// The raw DEVICE_STATUS value (all ones means the device does not answer).
    pub fn device_status_raw(&self) -> u32 {
        self.read_be32(offset::DEVICE_STATUS)
    }

    pub fn device_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.device_status_raw())
    }

    pub fn set_driver_status(&self, status: DriverStatus) {
        self.write_be32(offset::DRIVER_STATUS, status.bits());
    }

    pub fn max_tx_queues(&self) -> u32 {
        self.read_be32(offset::MAX_TX_QUEUES)
    }

    pub fn max_rx_queues(&self) -> u32 {
        self.read_be32(offset::MAX_RX_QUEUES)
    }

    pub fn aq_pfn(&self) -> u32 {
        self.read_be32(offset::ADMINQ_PFN)
    }

    pub fn set_aq_pfn(&self, pfn: u32) {
        self.write_be32(offset::ADMINQ_PFN, pfn);
    }

    pub fn ring_aq_doorbell(&self, count: u32) {
        self.write_be32(offset::ADMINQ_DOORBELL, count);
    }

    pub fn aq_event_counter(&self) -> u32 {
        self.read_be32(offset::ADMINQ_EVENT_COUNTER)
    }

    pub fn dma_mask_bits(&self) -> u8 {
        self.window.read8(offset::DMA_MASK)
    }

    /// Revision >= 1 admin queue hand-over, in Linux's order: length, base high, base low.
    /// (RUN is written separately by the caller, last.)
    pub fn set_aq_base_and_length(&self, phys: u64, length: u16) {
        // A 16-bit big-endian register: a 16-bit access, bytes swapped like the 32-bit ones.
        self.window.write16(offset::ADMINQ_LENGTH, length.to_be());
        self.write_be32(offset::ADMINQ_BASE_ADDRESS_HI, (phys >> 32) as u32);
        self.write_be32(offset::ADMINQ_BASE_ADDRESS_LO, phys as u32);
    }

    /// True when the device reads as reset, i.e. it holds no driver memory: ADMINQ_PFN
    /// reads 0, on every revision. This is iPXE's test, proven on GCE hardware (gve.c,
    /// gve_reset; reference qemu11-vfio-user.md §4): a pristine revision-1 device reads PFN
    /// 0 whether or not it reports DEVICE_IS_RESET, and resetting it anyway is a redundant
    /// reset, which GCE answers with a delayed reset a few seconds later. DEVICE_IS_RESET
    /// is not consulted: no source says when it is set at power-on or cleared after RUN.
    /// We write the PFN on every revision, as iPXE does, so a device that let go of our
    /// queue reads PFN 0 whatever its revision.
    pub fn reads_reset(&self) -> bool {
        self.aq_pfn() == 0
    }

    /// While an admin queue we handed over is live: has the device let go of it? PFN
    /// reads 0 on every revision (we wrote it, see [`Self::reads_reset`]); DEVICE_IS_RESET
    /// is not consulted, since nothing says RUN clears it.
    pub fn let_go_of_aq(&self) -> bool {
        self.aq_pfn() == 0
    }
}

/// BAR2: a flat array of 32-bit doorbells; index n is at byte 4n. GQI doorbells are
/// big-endian, DQO doorbells little-endian (Linux gve.rst): the caller says which.
pub struct Doorbells {
    window: Box<dyn RegisterWindow>,
}

impl Doorbells {
    pub fn new(window: Box<dyn RegisterWindow>) -> Result<Doorbells, GvnicError> {
        if window.len() < 4 {
            return Err(GvnicError::BadBar {
                bar: 2,
                len: window.len(),
            });
        }
        Ok(Doorbells { window })
    }

    /// Checks a doorbell index the device handed us before we ever write through it.
    pub fn check(&self, index: u32, what: &'static str) -> Result<u32, GvnicError> {
        let fits = (index as usize)
            .checked_mul(4)
            .and_then(|at| at.checked_add(4))
            .is_some_and(|end| end <= self.window.len());
        if fits {
            Ok(index)
        } else {
            Err(GvnicError::BadDeviceValue {
                what,
                value: u64::from(index),
            })
        }
    }

    /// Writes `value` big-endian (GQI) to doorbell `index`, which was validated by `check`.
    pub fn ring_be(&self, index: u32, value: u32) {
        self.ring_raw(index, value.to_be());
    }

    /// Writes `value` little-endian (DQO) to doorbell `index`, validated by `check`.
    pub fn ring_le(&self, index: u32, value: u32) {
        self.ring_raw(index, value.to_le());
    }

    fn ring_raw(&self, index: u32, bus_value: u32) {
        // Everything the device will read because of this doorbell (descriptors, frame
        // bytes, data-ring slots) must be visible before the write.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.window.write32(index as usize * 4, bus_value);
    }
}
