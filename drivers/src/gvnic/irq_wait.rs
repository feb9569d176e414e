//! `--irq`: TX and RX completions waited for by interrupt instead of by polling the rings.
//!
//! [`Gvnic::begin_irq_waits`] arms the boot CPU's counted vector ([`Interrupts`]), routes
//! the TX and RX notification blocks' MSI-X entries to it (unmasked; every other entry as
//! it was, DQO's management vector still at its dummy target) and unmasks both blocks as a
//! driver that takes interrupts does (GQI: ACK|EVENT, Linux gve.h; DQO: ENABLE|no-ITR
//! update, facts §4.3). While the session lasts, [`Gvnic::transmit_with`] and
//! [`Gvnic::receive_with`] wait on the interrupt counter instead of spinning on the ring:
//! the ring is re-checked (and the blocks unmasked again) each time the count changes, and
//! at least every [`RECHECK_US`] so Ctrl-C on COM1 (whose interrupt is off) and the
//! deadline are seen; the results are those of polling, frame for frame.
//!
//! No HLT: `Interrupts::arm` masks the local APIC timer, so nothing would bound a halt; the
//! wait spins on the counter the handler increments (the handler touches no XMM, so the
//! SSE state rule holds).
//!
//! Never a false success: a completion found after the ring was seen empty was signalled
//! by the device, so its interrupt must reach the CPU. (A consumed entry that ends nothing,
//! a dropped frame or a fragment, does not show the ring empty: one interrupt may cover
//! several entries.) If the count has not moved since
//! that empty look within [`IRQ_WAIT_US`], the wait fails with `irq-not-delivered` (the
//! entry's pending bit is clear: the message left the device, QEMU 7.2's proxy dropped it)
//! or `no-interrupt` (the device did not send it). The completion stays consumed; the
//! command reports the error, not the frame (decided: a user who asked for interrupt waits
//! asked whether they work; polling is the default for results).
//!
//! TX and RX share one counted vector, so an interrupt for the other queue also satisfies
//! the check (documented limit; both blocks being routed is what `--irq` means).
//!
//! [`Gvnic::end_irq_waits`] disarms the CPU, masks GQI's blocks again, and puts every
//! MSI-X entry, the control word and the command register back as they were, checked.

use crate::platform::{Clock, ConfigSpace, Interrupts, MsiMessage};

use super::describe::Family;
use super::device::{Gvnic, State};
use super::irq_test::{Saved, GQI_IRQ_ACK, GQI_IRQ_EVENT};
use super::regs::{Doorbells, DQO_IRQ_REARM, IRQ_DOORBELL_MASK};
use super::GvnicError;

/// How long a completion's interrupt may lag the completion (policy, as `irq test`).
pub const IRQ_WAIT_US: u64 = super::irq_test::IRQ_WAIT_US;
/// The longest the wait goes without looking at the ring and COM1 (policy: Ctrl-C feels
/// immediate, a lost interrupt costs at most this).
pub const RECHECK_US: u64 = 10_000;

/// A live `--irq` session (held by the NIC between begin and end).
pub(super) struct IrqSession {
    bdf: crate::platform::Bdf,
    saved: Saved,
    /// The MSI-X entries routed: TX block, RX block.
    pub(super) entries: [u16; 2],
}

/// What an `--irq` session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqWaitReport {
    /// The boot CPU's IDT vector both blocks were routed to.
    pub vector: u8,
    pub message: MsiMessage,
    /// The MSI-X entries routed (TX block, RX block).
    pub entries: [u16; 2],
    /// Interrupts taken on that vector during the session.
    pub interrupts: u32,
    /// Interrupts on other vectors meanwhile.
    pub other: u32,
    /// Every MSI-X entry, the control word and the command register were put back and
    /// read back as before (false: a reset ended the session and left nothing of ours).
    pub restored: bool,
}

/// How an interrupt wait ended without a value.
pub(super) enum IrqWaitEnd {
    TimedOut,
    Interrupted,
    /// A completion appeared after an empty look and no interrupt followed.
    Silent,
}

/// One look at a ring.
pub(super) enum Look<T> {
    /// What the wait was for (or an error ending it).
    Done(T),
    /// Nothing new in the ring.
    Empty,
    /// An entry was consumed that ends nothing (a dropped frame, a fragment): look again
    /// at once. The ring is not known empty, so no interrupt is owed yet.
    Progress,
}

impl<T> Look<T> {
    /// For `wait_for`: only `Done` ends the wait.
    pub(super) fn done(self) -> Option<T> {
        match self {
            Look::Done(value) => Some(value),
            Look::Empty | Look::Progress => None,
        }
    }
}

/// Waits for `check` by interrupt: `empty_mark` is the counter when the ring was last
/// known empty (TX: just before posting), None when unknown.
pub(super) fn wait_by_irq<T>(
    clock: &dyn Clock,
    irq: &dyn Interrupts,
    timeout_us: u64,
    mut empty_mark: Option<u32>,
    mut check: impl FnMut() -> Look<T>,
) -> Result<T, IrqWaitEnd> {
    let deadline = clock.now_us().saturating_add(timeout_us);
    loop {
        let count = irq.delivery().count;
        let look = check();
        let value = match look {
            Look::Done(value) => value,
            Look::Progress | Look::Empty => {
                // As `wait_for`: the ring was looked at once more at the deadline.
                if clock.now_us() >= deadline {
                    return Err(IrqWaitEnd::TimedOut);
                }
                if clock.interrupted() {
                    return Err(IrqWaitEnd::Interrupted);
                }
                if matches!(look, Look::Empty) {
                    empty_mark = Some(count);
                    let slice_end = clock.now_us().saturating_add(RECHECK_US).min(deadline);
                    while irq.delivery().count == count && clock.now_us() < slice_end {
                        if clock.interrupted() {
                            return Err(IrqWaitEnd::Interrupted);
                        }
                        clock.relax();
                    }
                }
                continue;
            }
        };
        if let Some(mark) = empty_mark {
            // The device signalled this completion after an empty look: its interrupt
            // must arrive.
            let seen = crate::platform::wait_for_recovery(clock, IRQ_WAIT_US, || {
                (irq.delivery().count > mark).then_some(())
            });
            if seen.is_err() {
                return Err(IrqWaitEnd::Silent);
            }
        }
        return Ok(value);
    }
}

/// Unmasks every block as an interrupt-driven driver does after looking at its rings.
pub(super) fn unmask(family: Family, doorbells: &Doorbells, irq_doorbells: &[u32]) {
    for &index in irq_doorbells {
        match family {
            Family::Gqi => doorbells.ring_be(index, GQI_IRQ_ACK | GQI_IRQ_EVENT),
            Family::Dqo => doorbells.ring_le(index, DQO_IRQ_REARM),
        }
    }
}

impl Gvnic {
    /// A `--irq` session is live.
    pub fn irq_waits(&self) -> bool {
        self.irq_session.is_some()
    }

    /// Starts interrupt waits (see the module doc). The queues must be up and the MSI-X
    /// table handed to the driver. On error nothing is left routed or armed.
    pub fn begin_irq_waits(
        &mut self,
        config: &dyn ConfigSpace,
        irq: &dyn Interrupts,
    ) -> Result<(u8, MsiMessage), GvnicError> {
        if self.state != State::QueuesUp {
            return Err(GvnicError::WrongState {
                wanted: "with its queues up",
                state: self.state.name(),
            });
        }
        if self.irq_session.is_some() {
            return Err(GvnicError::WrongState {
                wanted: "without interrupt waits already running",
                state: "waiting by interrupt",
            });
        }
        let (bdf, saved) = self.save_msix(config)?;
        let tx = self.tx.as_ref().map_or(0, |t| t.ntfy_id()) as u16;
        let rx = self.rx.as_ref().map_or(1, |r| r.ntfy_id()) as u16;
        let (message, vector) = irq.arm().map_err(|_| GvnicError::NoInterrupts)?;
        self.route_entries(config, &[tx, rx], message, &saved);
        if let (Some(res), Some(format)) = (self.resources.as_ref(), self.format) {
            unmask(format.family(), &self.doorbells, &res.irq_doorbells);
        }
        self.irq_session = Some(IrqSession {
            bdf,
            saved,
            entries: [tx, rx],
        });
        Ok((vector, message))
    }

    /// Ends interrupt waits: CPU disarmed, GQI blocks masked again, MSI-X as before
    /// (checked). Call it on every path after a successful begin; a NIC that reset
    /// meanwhile released its MSI-X state itself, so only the CPU is disarmed.
    pub fn end_irq_waits(
        &mut self,
        config: &dyn ConfigSpace,
        irq: &dyn Interrupts,
        vector: u8,
        message: MsiMessage,
    ) -> Result<IrqWaitReport, GvnicError> {
        let delivery = irq.delivery();
        irq.disarm();
        let session = self.irq_session.take();
        let mut report = IrqWaitReport {
            vector,
            message,
            entries: session.as_ref().map_or([0, 1], |s| s.entries),
            interrupts: delivery.count,
            other: delivery.other,
            restored: false,
        };
        // No session: a reset released the NIC meanwhile (its MSI-X was quiesced then, and
        // a later bring-up programmed its own); there is nothing of ours to put back.
        let Some(session) = session else {
            return Ok(report);
        };
        if self.state != State::QueuesUp {
            return Ok(report);
        }
        if let (Some(res), Some(Family::Gqi)) =
            (self.resources.as_ref(), self.format.map(|f| f.family()))
        {
            for &index in &res.irq_doorbells {
                self.doorbells.ring_be(index, IRQ_DOORBELL_MASK);
            }
        }
        self.restore(config, session.bdf, &session.saved)
            .map_err(|err| match err {
                super::irq_test::IrqTestError::NotRestored(what) => GvnicError::NotRestored(what),
                super::irq_test::IrqTestError::Gvnic(err) => err,
                _ => GvnicError::NotRestored("the MSI-X table"),
            })?;
        report.restored = true;
        Ok(report)
    }

    /// The error for a completion whose interrupt never came on `entry`.
    pub(super) fn silent_irq(&self, entry: u16, irq: &dyn Interrupts) -> GvnicError {
        let pending = self.msix.as_ref().and_then(|m| m.table().pending(entry));
        let other = irq.delivery().other;
        if pending == Some(false) {
            GvnicError::IrqNotDelivered { entry, other }
        } else {
            GvnicError::NoInterrupt {
                entry,
                pending,
                other,
            }
        }
    }
}
