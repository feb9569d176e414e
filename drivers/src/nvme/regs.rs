//! Controller registers (NVMe base spec "Controller Registers", BAR0, little-endian).
//!
//! All accesses are 32-bit; 64-bit registers are two dwords, low first, which every
//! controller accepts (some real ones reject 8-byte MMIO).

use bitflags::bitflags;

use crate::platform::RegisterWindow;

pub const CAP: usize = 0x00;
pub const VS: usize = 0x08;
pub const CC: usize = 0x14;
pub const CSTS: usize = 0x1c;
pub const AQA: usize = 0x24;
pub const ASQ: usize = 0x28;
pub const ACQ: usize = 0x30;
pub const DOORBELL_BASE: usize = 0x1000;

bitflags! {
    /// Controller Configuration (CC).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Cc: u32 {
        const EN = 1 << 0;
        /// SHN = 01b: normal shutdown.
        const SHN_NORMAL = 1 << 14;
        const SHN_ABRUPT = 1 << 15;
        const _ = !0;
    }
}

/// CC.CSS = 000b: the NVM command set.
pub const CC_CSS_NVM: u32 = 0 << 4;
/// CC.MPS: memory page size 2^(12 + MPS); we use 4 KiB.
pub const CC_MPS_SHIFT: u32 = 7;
/// CC.IOSQES = 6 (64-byte SQ entries) and CC.IOCQES = 4 (16-byte CQ entries).
pub const CC_IOSQES_64: u32 = 6 << 16;
pub const CC_IOCQES_16: u32 = 4 << 20;
pub const CC_SHN_MASK: u32 = 0b11 << 14;

bitflags! {
    /// Controller Status (CSTS).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Csts: u32 {
        const RDY = 1 << 0;
        /// Controller Fatal Status: the controller gave up; only a reset helps.
        const CFS = 1 << 1;
        const _ = !0;
    }
}

/// CSTS.SHST [3:2]: 10b = shutdown processing complete.
pub const CSTS_SHST_MASK: u32 = 0b11 << 2;
pub const CSTS_SHST_COMPLETE: u32 = 0b10 << 2;

/// What CAP says about this controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// Maximum queue entries, 0-based (CAP.MQES).
    pub mqes: u16,
    /// Contiguous queues required.
    pub cqr: bool,
    /// Ready timeout in 500 ms units (CAP.TO).
    pub timeout_units: u8,
    /// Doorbell stride: 4 << DSTRD bytes.
    pub dstrd: u8,
    /// The NVM command set is supported (CAP.CSS bit 0).
    pub nvm_command_set: bool,
    /// Memory page size range, as exponents n of 2^(12+n).
    pub mpsmin: u8,
    pub mpsmax: u8,
}

impl Cap {
    pub fn from_raw(raw: u64) -> Self {
        Cap {
            mqes: raw as u16,
            cqr: raw & (1 << 16) != 0,
            timeout_units: (raw >> 24) as u8,
            dstrd: ((raw >> 32) & 0xf) as u8,
            nvm_command_set: raw & (1 << 37) != 0,
            mpsmin: ((raw >> 48) & 0xf) as u8,
            mpsmax: ((raw >> 52) & 0xf) as u8,
        }
    }

    /// Deadline for every CSTS.RDY transition. Linux allows one unit more than CAP.TO:
    /// controllers that report 0 still need some time.
    pub fn ready_timeout_us(&self) -> u64 {
        (self.timeout_units as u64 + 1) * 500_000
    }

    /// Byte offset of the SQ tail (`cq = false`) or CQ head doorbell of queue `qid`.
    pub fn doorbell(&self, qid: u16, cq: bool) -> usize {
        DOORBELL_BASE + (2 * qid as usize + cq as usize) * (4usize << self.dstrd)
    }

    /// Smallest memory page size in bytes.
    pub fn min_page_size(&self) -> u64 {
        1u64 << (12 + self.mpsmin as u32)
    }
}

pub fn read64(regs: &dyn RegisterWindow, offset: usize) -> u64 {
    let low = regs.read32(offset) as u64;
    let high = regs.read32(offset + 4) as u64;
    low | (high << 32)
}

pub fn write64(regs: &dyn RegisterWindow, offset: usize, value: u64) {
    regs.write32(offset, value as u32);
    regs.write32(offset + 4, (value >> 32) as u32);
}

pub fn csts(regs: &dyn RegisterWindow) -> Csts {
    Csts::from_bits_retain(regs.read32(CSTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_of_qemu() {
        // QEMU: MQES 0x7ff, CQR, TO 0xf, DSTRD 0, CSS NVM + I/O sets, MPSMAX 4.
        let raw = 0x0040_0020_0f01_07ff_u64 | (1 << 43);
        let cap = Cap::from_raw(raw);
        assert_eq!(cap.mqes, 0x7ff);
        assert!(cap.cqr);
        assert_eq!(cap.timeout_units, 0xf);
        assert_eq!(cap.ready_timeout_us(), 8_000_000);
        assert!(cap.nvm_command_set);
        assert_eq!((cap.mpsmin, cap.mpsmax), (0, 4));
        assert_eq!(cap.doorbell(0, false), 0x1000);
        assert_eq!(cap.doorbell(1, true), 0x100c);
        let strided = Cap::from_raw(raw | (2 << 32));
        assert_eq!(strided.doorbell(1, false), 0x1000 + 2 * 16);
    }
}
