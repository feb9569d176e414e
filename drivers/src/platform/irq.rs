//! Interrupt delivery for `irq test`: one vector the monitor counts, and the MSI message
//! that makes a device hit it on the boot CPU. Interrupts are off outside that command.

/// An MSI/MSI-X message: what the device writes, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// What the counter saw since it was armed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub count: u32,
    /// `Clock::now_us` when the first delivery arrived (0 when none did).
    pub first_us: u64,
    /// Interrupts on any other vector while armed (spurious, stray legacy lines).
    pub other: u32,
}

/// Why no interrupt can be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// This platform has no local APIC the monitor can drive (or none in tests).
    Unsupported,
}

/// The boot CPU's interrupt path.
///
/// Contract: `arm` zeroes the counter, masks the legacy PIC and the local APIC's own
/// sources (timer, LINT0/1, error), and lets the CPU take interrupts; only the returned
/// message's vector is counted (others are acknowledged and counted in `other`). `disarm`
/// stops the CPU taking interrupts and restores what `arm` masked; it is idempotent, and
/// the command must call it on every path. `delivery` may be read while armed.
pub trait Interrupts {
    fn arm(&self) -> Result<(MsiMessage, u8), IrqError>;
    fn delivery(&self) -> Delivery;
    fn disarm(&self);
}

/// No interrupt controller (tests and fuzzing).
pub struct NoInterrupts;

impl Interrupts for NoInterrupts {
    fn arm(&self) -> Result<(MsiMessage, u8), IrqError> {
        Err(IrqError::Unsupported)
    }
    fn delivery(&self) -> Delivery {
        Delivery::default()
    }
    fn disarm(&self) {}
}
