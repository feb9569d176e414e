//! BAR0: the big-endian register block (facts §2) and its access rules.
//!
//! The bus hands us little-endian values: a CPU `mov dword` of v puts v's LE bytes on the
//! bus. The registers are BE, so a register's bytes in BAR order are `reg.to_be_bytes()`, and
//! a read returns those bytes interpreted LE. A driver doing `u32::from_be(read32())` gets
//! the register value back.

use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic};

/// BAR0 size: iPXE maps 0x1000 bytes (facts §1).
pub const BAR0_SIZE: u64 = 0x1000;

pub const DEVICE_STATUS: u64 = 0x00;
pub const DRIVER_STATUS: u64 = 0x04;
pub const MAX_TX_QUEUES: u64 = 0x08;
pub const MAX_RX_QUEUES: u64 = 0x0C;
pub const ADMINQ_PFN: u64 = 0x10;
pub const ADMINQ_DOORBELL: u64 = 0x14;
pub const ADMINQ_EVENT_COUNTER: u64 = 0x18;
/// 0x1C..0x1D are reserved.
pub const RESERVED_1C: u64 = 0x1C;
pub const DMA_MASK: u64 = 0x1E;
pub const DRIVER_VERSION: u64 = 0x1F;
pub const ADMINQ_BASE_ADDRESS_HI: u64 = 0x20;
pub const ADMINQ_BASE_ADDRESS_LO: u64 = 0x24;
/// BE16 in bytes 0x28..0x29 (Linux `iowrite16be`; iPXE writes 32 bits with the BE16 first).
pub const ADMINQ_LENGTH: u64 = 0x28;
/// First byte past the defined registers.
pub const REGS_END: u64 = 0x2C;

/// DEVICE_STATUS bits (value of the BE32, facts §2).
pub mod device_status {
    /// The device asks the driver to reset it.
    pub const RESET: u32 = 1 << 1;
    pub const LINK_STATUS: u32 = 1 << 2;
    pub const REPORT_STATS: u32 = 1 << 3;
    /// Revision >= 1: reset finished and the AQ is released.
    pub const DEVICE_IS_RESET: u32 = 1 << 4;
}

/// DRIVER_STATUS bits (facts §2).
pub mod driver_status {
    pub const RUN: u32 = 1 << 0;
    pub const RESET: u32 = 1 << 1;
}

/// The DMA address width the device reports at 0x1E (facts §2: 32 or 64).
pub const DMA_MASK_BITS: u8 = 64;

/// Register-level admin queue state.
#[derive(Debug, Default)]
pub(crate) struct Regs {
    pub driver_status: u32,
    pub base_hi: u32,
    pub base_lo: u32,
    pub aq_length: u16,
    /// The running admin queue: (guest address, number of 64-byte slots).
    pub aq: Option<(u64, u32)>,
    pub aq_doorbell: u32,
    pub event_counter: u32,
    /// Revision >= 1 only: set by a completed reset; cleared by RUN or by the next reset
    /// request (`ModelConfig::device_is_reset`).
    pub device_is_reset: bool,
    /// The device asks for a reset (raised by a spurious/host reset; a guess: facts §2.2 says
    /// Linux watches this bit, not exactly when the device raises it).
    pub reset_requested: bool,
    pub version_buf: Vec<u8>,
}

impl Gvnic {
    /// The BE32 register word at a 4-aligned offset, as its value (not bytes).
    fn reg_word(&self, word: u64) -> u32 {
        match word {
            DEVICE_STATUS => {
                // Link is modelled as always up (guess: the reference does not say when the
                // real device raises it).
                let mut v = device_status::LINK_STATUS;
                if self.cfg.revision >= 1 && self.regs.device_is_reset {
                    v |= device_status::DEVICE_IS_RESET;
                }
                if self.regs.reset_requested {
                    v |= device_status::RESET;
                }
                v
            }
            DRIVER_STATUS => self.regs.driver_status,
            MAX_TX_QUEUES => self.cfg.max_tx_queues,
            MAX_RX_QUEUES => self.cfg.max_rx_queues,
            // "Reads back 0 once the device has let go" (facts §2): the PFN of the live AQ.
            ADMINQ_PFN => self
                .regs
                .aq
                .map(|(base, _)| (base >> 12) as u32)
                .unwrap_or(0),
            // The doorbell is write-only in the reference; reading back the last value is a guess.
            ADMINQ_DOORBELL => self.regs.aq_doorbell,
            ADMINQ_EVENT_COUNTER => self.regs.event_counter,
            // Bytes 0x1C, 0x1D reserved; 0x1E DMA mask; 0x1F reads 0 once a version byte has
            // been consumed (always at once here, Fuchsia: "succeeds instantly").
            RESERVED_1C => u32::from(DMA_MASK_BITS) << 8,
            ADMINQ_BASE_ADDRESS_HI => self.regs.base_hi,
            ADMINQ_BASE_ADDRESS_LO => self.regs.base_lo,
            ADMINQ_LENGTH => u32::from(self.regs.aq_length) << 16,
            _ => 0,
        }
    }

    pub(crate) fn bar0_read(&mut self, offset: u64, size: u8) -> u64 {
        if !access_ok(offset, size, BAR0_SIZE) {
            self.record.violation(
                ViolationKind::BadRegisterAccess,
                format!("BAR0 read of {size} bytes at {offset:#x}"),
            );
            return all_ones(size);
        }
        if offset >= REGS_END {
            self.record.violation(
                ViolationKind::BadRegisterAccess,
                format!("BAR0 read at {offset:#x}, past the last register (reads 0)"),
            );
        }
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate().take(size as usize) {
            let at = offset + i as u64;
            *b = self.reg_word(at & !3).to_be_bytes()[(at & 3) as usize];
        }
        u64::from_le_bytes(bytes)
    }

    pub(crate) fn bar0_write(&mut self, offset: u64, size: u8, value: u64, mem: &dyn GuestMemory) {
        let bytes = value.to_le_bytes();
        let be32 = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        match (offset, size) {
            (DRIVER_STATUS, 4) => self.write_driver_status(be32, mem),
            (ADMINQ_PFN, 4) => self.write_pfn(be32, mem),
            (ADMINQ_DOORBELL, 4) => self.admin_doorbell(be32, mem),
            (DRIVER_VERSION, 1) => self.write_version_byte(bytes[0]),
            (ADMINQ_BASE_ADDRESS_HI, 4) => self.regs.base_hi = be32,
            (ADMINQ_BASE_ADDRESS_LO, 4) => self.regs.base_lo = be32,
            (ADMINQ_LENGTH, 2) => self.regs.aq_length = u16::from_be_bytes([bytes[0], bytes[1]]),
            (ADMINQ_LENGTH, 4) => {
                // iPXE's form: BE16 in the first two bytes, the rest reserved (facts §2).
                self.regs.aq_length = u16::from_be_bytes([bytes[0], bytes[1]]);
                if bytes[2] != 0 || bytes[3] != 0 {
                    self.record.violation(
                        ViolationKind::BadRegisterAccess,
                        format!("32-bit ADMINQ_LENGTH write {be32:#010x} sets reserved bytes 0x2a..0x2b"),
                    );
                }
            }
            _ => {
                let what = match offset {
                    DEVICE_STATUS | MAX_TX_QUEUES | MAX_RX_QUEUES | ADMINQ_EVENT_COUNTER
                    | DMA_MASK => "write to a read-only register",
                    _ => "write the device does not implement",
                };
                self.record.violation(
                    ViolationKind::BadRegisterAccess,
                    format!("BAR0 {what}: {size} bytes at {offset:#x} value {value:#x} (ignored)"),
                );
            }
        }
    }

    fn write_version_byte(&mut self, b: u8) {
        if b == b'\n' {
            let s = String::from_utf8_lossy(&self.regs.version_buf).into_owned();
            self.record.driver_versions.push(s);
            self.regs.version_buf.clear();
        } else if self.regs.version_buf.len() < 256 {
            self.regs.version_buf.push(b);
        }
    }

    fn write_driver_status(&mut self, v: u32, mem: &dyn GuestMemory) {
        self.regs.driver_status = v;
        if self.cfg.revision == 0 {
            // iPXE writes RUN on every device, and GCE's revision-0 devices work with it
            // (facts §2.1): a revision-0 device ignores DRIVER_STATUS.
            return;
        }
        if v & !(driver_status::RUN | driver_status::RESET) != 0 {
            self.record.violation(
                ViolationKind::BadRegisterAccess,
                format!("DRIVER_STATUS {v:#x} sets undefined bits"),
            );
        }
        if v & driver_status::RESET != 0 {
            self.driver_reset(crate::record::ResetCause::DriverStatusReset);
        } else if v & driver_status::RUN != 0 {
            self.start_aq_from_base(mem);
        }
    }

    fn write_pfn(&mut self, pfn: u32, mem: &dyn GuestMemory) {
        if pfn == 0 {
            // Writing 0 is the legacy reset; it works on newer revisions too (facts §2).
            self.driver_reset(crate::record::ResetCause::PfnZero);
            return;
        }
        let base = u64::from(pfn) << 12;
        self.start_aq(base, 4096, "ADMINQ_PFN", mem);
    }

    /// Revision 1: DRIVER_STATUS.RUN with the base/length registers (facts §2.1).
    fn start_aq_from_base(&mut self, mem: &dyn GuestMemory) {
        let base = (u64::from(self.regs.base_hi) << 32) | u64::from(self.regs.base_lo);
        let len = u32::from(self.regs.aq_length);
        // The AQ is an array of 64-byte commands; Linux writes 4096 (guess: more than one
        // page or a non-multiple of 64 is refused).
        if len == 0 || len % 64 != 0 || len > 4096 {
            self.record.violation(
                ViolationKind::AdminQueueNotRunning,
                format!(
                    "RUN with ADMINQ_LENGTH {len}: must be a non-zero multiple of 64, at most 4096"
                ),
            );
            return;
        }
        self.start_aq(base, len, "ADMINQ_BASE_ADDRESS", mem);
    }

    fn start_aq(&mut self, base: u64, len: u32, via: &str, mem: &dyn GuestMemory) {
        if let Some((live, _)) = self.regs.aq {
            if live != base {
                self.record.violation(
                    ViolationKind::WrongState,
                    format!("{via} sets the AQ to {base:#x} while it runs at {live:#x} (ignored)"),
                );
            }
            return;
        }
        if base & 0xfff != 0 {
            self.record.violation(
                ViolationKind::NotPageAligned,
                format!("admin queue at {base:#x} is not page aligned (AQ not started)"),
            );
            return;
        }
        let mut probe = vec![0u8; len as usize];
        if mem.read(base, &mut probe).is_err() {
            self.record.violation(
                ViolationKind::OutsideGuestRam,
                format!("admin queue {base:#x}+{len} is not guest RAM (AQ not started)"),
            );
            return;
        }
        if self.reset_due.is_some() {
            self.record.violation(
                ViolationKind::WrongState,
                format!("{via} starts the AQ while a requested reset has not finished (ignored)"),
            );
            return;
        }
        self.regs.aq = Some((base, len / 64));
        self.regs.aq_doorbell = 0;
        self.regs.event_counter = 0;
        if self.cfg.device_is_reset == crate::config::DeviceIsReset::ClearedByRun {
            self.regs.device_is_reset = false;
        }
        self.regs.reset_requested = false;
    }
}

/// Size 1, 2 or 4, naturally aligned, inside the BAR.
pub(crate) fn access_ok(offset: u64, size: u8, bar_size: u64) -> bool {
    matches!(size, 1 | 2 | 4)
        && offset.is_multiple_of(u64::from(size))
        && offset + u64::from(size) <= bar_size
}

/// What a read of an unimplemented location returns on PCI: all ones.
pub(crate) fn all_ones(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}
