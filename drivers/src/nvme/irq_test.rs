//! `irq test`: proof that the controller delivers MSI-X on its own. MSI-X entry 1 is
//! pointed at the boot CPU's local APIC and MSI-X enabled; the I/O queue pair is rebuilt
//! with its completion queue on vector 1 (see ping.rs for why), one FLUSH is submitted,
//! and the monitor counts the interrupt. Then the polling queue pair is rebuilt and the
//! entry, the MSI-X control word and the command register go back to what they were.
//! Interrupts are on only between `arm` and `disarm`; every path after `arm` disarms and
//! restores.

use crate::pci::msix::{
    MsixEntry, MsixError, MsixWindows, CONTROL_ENABLE, CONTROL_FUNCTION_MASK, VECTOR_MASKED,
};
use crate::pci::regs::{Command, COMMAND};
use crate::platform::{wait_for, Delivery, Hw, IrqError, MsiMessage};

use super::controller::Controller;
use super::error::NvmeError;

/// The MSI-X entry the I/O completion queue is given (entry 0 belongs to the admin
/// queue, which keeps polling).
pub const IO_VECTOR: u16 = 1;
/// How long to wait for the interrupt after the completion was seen (policy; a
/// completion and its MSI are microseconds apart on real hardware and under TCG).
pub const IRQ_WAIT_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqReport {
    pub entry: u16,
    pub vector: u8,
    pub message: MsiMessage,
    pub delivery: Delivery,
    /// Doorbell (just before it) to the first interrupt.
    pub latency_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqTestError {
    Msix(MsixError),
    /// The platform cannot take interrupts (no local APIC the monitor drives).
    NoInterrupts(IrqError),
    Nvme(NvmeError),
    /// The command completed but no interrupt arrived; the vector's pending bit as seen.
    NoInterrupt {
        pending: bool,
        other: u32,
    },
    /// A register did not read back as it was before the test.
    NotRestored(&'static str),
}

impl IrqTestError {
    pub fn code(&self) -> &'static str {
        match self {
            IrqTestError::Msix(err) => err.code(),
            IrqTestError::NoInterrupts(_) => "no-interrupts",
            IrqTestError::Nvme(err) => err.code(),
            IrqTestError::NoInterrupt { .. } => "no-interrupt",
            IrqTestError::NotRestored(_) => "restore-failed",
        }
    }
}

impl core::fmt::Display for IrqTestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IrqTestError::Msix(err) => write!(f, "{err}"),
            IrqTestError::NoInterrupts(_) => write!(f, "this platform has no local APIC the monitor can drive"),
            IrqTestError::Nvme(err) => write!(f, "{err}"),
            IrqTestError::NoInterrupt { pending, other } => write!(
                f,
                "the command completed but no interrupt arrived within {} ms (vector pending bit {}, {other} other interrupts)",
                IRQ_WAIT_US / 1000,
                if *pending { "set" } else { "clear" }
            ),
            IrqTestError::NotRestored(what) => write!(f, "{what} did not read back as before the test"),
        }
    }
}

/// Runs the test on the bound controller (see the module doc).
pub fn irq_test(ctrl: &mut Controller, hw: &mut Hw) -> Result<IrqReport, IrqTestError> {
    let bdf = ctrl.bdf;
    ctrl.require_usable().map_err(IrqTestError::Nvme)?;
    let windows = MsixWindows::map(hw, bdf).map_err(IrqTestError::Msix)?;
    let cap = windows.cap;
    let table = windows.table();
    let saved_entry = table
        .entry(IO_VECTOR)
        .ok_or(IrqTestError::Msix(MsixError::NoMsix(bdf)))?;
    let saved_control = cap.control(hw.config, bdf);
    let saved_command = hw.config.read16(bdf, COMMAND);
    let (message, vector) = hw.irq.arm().map_err(IrqTestError::NoInterrupts)?;

    table.set_entry(
        IO_VECTOR,
        MsixEntry {
            message,
            vector_control: saved_entry.vector_control & !VECTOR_MASKED,
        },
    );
    cap.set_control(
        hw.config,
        bdf,
        (saved_control | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK,
    );
    hw.config
        .write16(bdf, COMMAND, saved_command | Command::INTX_DISABLE.bits());
    let flush = ctrl.flush_on_vector(hw, IO_VECTOR);
    if flush.is_ok() {
        let irq = hw.irq;
        let _ = wait_for(hw.clock, IRQ_WAIT_US, || {
            (irq.delivery().count > 0).then_some(())
        });
    }
    let delivery = hw.irq.delivery();
    let pending = table.pending(IO_VECTOR).unwrap_or(false);
    hw.irq.disarm();

    // Restore in reverse: the polling queues (deleted while MSI-X is still on, so the
    // device releases the vector), MSI-X as it was, the entry, the command register.
    let requeue = if flush.is_ok() {
        ctrl.restore_polling_queues(hw)
    } else {
        Ok(())
    };
    cap.set_control(hw.config, bdf, saved_control);
    table.set_entry(IO_VECTOR, saved_entry);
    hw.config.write16(bdf, COMMAND, saved_command);
    let submitted_us = flush.map_err(IrqTestError::Nvme)?;
    requeue.map_err(IrqTestError::Nvme)?;
    if table.entry(IO_VECTOR) != Some(saved_entry) {
        return Err(IrqTestError::NotRestored("MSI-X entry 0"));
    }
    if cap.control(hw.config, bdf) != saved_control {
        return Err(IrqTestError::NotRestored("the MSI-X control word"));
    }
    if hw.config.read16(bdf, COMMAND) != saved_command {
        return Err(IrqTestError::NotRestored("the command register"));
    }
    if delivery.count == 0 {
        return Err(IrqTestError::NoInterrupt {
            pending,
            other: delivery.other,
        });
    }
    Ok(IrqReport {
        entry: IO_VECTOR,
        vector,
        message,
        delivery,
        latency_us: delivery.first_us.saturating_sub(submitted_us),
    })
}
