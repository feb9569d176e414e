//! Configuration-space layout: offsets of the fields we decode, and the command/status bits.
//!
//! Offsets are from the PCI Local Bus Specification 3.0, "Configuration Space Header".

use bitflags::bitflags;

pub const VENDOR_ID: u16 = 0x00;
pub const DEVICE_ID: u16 = 0x02;
pub const COMMAND: u16 = 0x04;
pub const STATUS: u16 = 0x06;
pub const REVISION: u16 = 0x08;
/// Revision (byte 0), then prog-if, subclass, class: read as one dword.
pub const CLASS_DWORD: u16 = 0x08;
pub const HEADER_TYPE: u16 = 0x0e;
pub const BAR0: u16 = 0x10;
/// Type 1 (PCI-to-PCI bridge) bus numbers.
pub const PRIMARY_BUS: u16 = 0x18;
pub const SECONDARY_BUS: u16 = 0x19;
pub const SUBORDINATE_BUS: u16 = 0x1a;
/// Type 0 only: the subsystem ids (bridges carry them in a capability instead).
pub const SUBSYSTEM_VENDOR: u16 = 0x2c;
pub const SUBSYSTEM_ID: u16 = 0x2e;
/// Type 0 and 1: first capability pointer.
pub const CAP_PTR: u16 = 0x34;
/// Type 2 (CardBus) keeps its capability pointer elsewhere.
pub const CARDBUS_CAP_PTR: u16 = 0x14;
pub const INTERRUPT_LINE: u16 = 0x3c;
pub const INTERRUPT_PIN: u16 = 0x3d;

/// A vendor id that no device has: what an absent function reads as.
pub const NO_VENDOR: u16 = 0xffff;

/// Bit 7 of the header type: the device implements functions 1..7 too.
pub const HEADER_MULTI_FUNCTION: u8 = 0x80;
pub const HEADER_LAYOUT_MASK: u8 = 0x7f;

bitflags! {
    /// The command register (offset 0x04).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Command: u16 {
        const IO_SPACE = 1 << 0;
        const MEMORY_SPACE = 1 << 1;
        const BUS_MASTER = 1 << 2;
        const SPECIAL_CYCLES = 1 << 3;
        const MWI = 1 << 4;
        const VGA_SNOOP = 1 << 5;
        const PARITY_ERROR_RESPONSE = 1 << 6;
        const SERR = 1 << 8;
        const FAST_BACK_TO_BACK = 1 << 9;
        const INTX_DISABLE = 1 << 10;
    }
}

bitflags! {
    /// The status register (offset 0x06).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Status: u16 {
        const INTX = 1 << 3;
        const CAPABILITIES = 1 << 4;
        const MHZ66 = 1 << 5;
        const FAST_BACK_TO_BACK = 1 << 7;
        const MASTER_PARITY_ERROR = 1 << 8;
        const SIGNALED_TARGET_ABORT = 1 << 11;
        const RECEIVED_TARGET_ABORT = 1 << 12;
        const RECEIVED_MASTER_ABORT = 1 << 13;
        const SIGNALED_SYSTEM_ERROR = 1 << 14;
        const DETECTED_PARITY_ERROR = 1 << 15;
    }
}

/// The layout of the rest of the header (bits 6:0 of the header type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// An ordinary function: six BARs.
    Endpoint,
    /// A PCI-to-PCI bridge: two BARs and the bus number window.
    Bridge,
    /// A CardBus bridge (no BARs of the kind we decode).
    CardBus,
    /// A layout the specification does not define: decode nothing past the common part.
    Unknown(u8),
}

impl HeaderKind {
    pub fn from_header_type(header_type: u8) -> Self {
        match header_type & HEADER_LAYOUT_MASK {
            0 => HeaderKind::Endpoint,
            1 => HeaderKind::Bridge,
            2 => HeaderKind::CardBus,
            other => HeaderKind::Unknown(other),
        }
    }

    /// How many BAR registers this layout has.
    pub fn bar_count(self) -> u8 {
        match self {
            HeaderKind::Endpoint => 6,
            HeaderKind::Bridge => 2,
            HeaderKind::CardBus | HeaderKind::Unknown(_) => 0,
        }
    }
}
