//! The format-neutral data path of a NIC whose queues are up: one frame out, frames in,
//! and draining what already sits in the RX ring. The rings do the format's work; this
//! file only waits (user waits: Ctrl-C aborts them), re-arms DQO's IRQs on every poll
//! ([`super::notify`]), and notices a device that reset under us, which releases our side
//! too so the next `bring_up` starts afresh.

use alloc::vec::Vec;

use crate::dma::{DmaBuf, DmaPool};
use crate::platform::{wait_for, Clock, ConfigSpace, Interrupts, WaitError};

use super::device::{Gvnic, State, TX_TIMEOUT_US};
use super::irq_wait::{self, IrqWaitEnd, Look};
use super::notify;
use super::ring::{RxEvent, RxRing, TxRing};
use super::GvnicError;

/// What came back from one TX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDone {
    pub bytes: usize,
    pub elapsed_us: u64,
    /// The device reset under the first try; the NIC was brought up again and the frame
    /// resent ([`Gvnic::send`] only).
    pub after_reset: bool,
}

/// Frames a drain consumed before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drained {
    pub frames: u32,
    pub dropped: u32,
}

/// Upper bound on the entries one drain consumes: a full ring of 64 posted buffers, many
/// times over, is far below it; a device that keeps writing cannot keep us here.
const MAX_DRAIN: u32 = 4096;

impl Gvnic {
    /// Brings the queues up if needed and sends one frame. If the device resets under the
    /// first try, it is brought up again and the frame sent once more.
    pub fn send(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
    ) -> Result<TxDone, GvnicError> {
        self.send_with(config, clock, dma, frame, None)
    }

    /// [`Self::send`], by interrupt while a `--irq` session is live (a NIC brought up
    /// again after a reset has lost the session's routing, so its retry polls).
    pub fn send_with(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
        irq: Option<&dyn Interrupts>,
    ) -> Result<TxDone, GvnicError> {
        self.bring_up(config, clock, dma, State::QueuesUp)?;
        match self.transmit_with(clock, dma, frame, irq) {
            Err(GvnicError::DeviceReset { .. }) => {
                self.bring_up(config, clock, dma, State::QueuesUp)?;
                let done = self.transmit(clock, dma, frame)?;
                Ok(TxDone {
                    after_reset: true,
                    ..done
                })
            }
            other => other,
        }
    }

    /// Sends one frame and waits for its completion. If the device reset under us, our
    /// side is released too (so `bring_up` starts afresh).
    pub fn transmit(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
    ) -> Result<TxDone, GvnicError> {
        self.transmit_with(clock, dma, frame, None)
    }

    /// [`Self::transmit`], waiting for the completion by interrupt when `irq` is given
    /// and a `--irq` session is live ([`super::irq_wait`]).
    pub fn transmit_with(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
        irq: Option<&dyn Interrupts>,
    ) -> Result<TxDone, GvnicError> {
        let irq = irq.filter(|_| self.irq_session.is_some());
        let result = self.transmit_once(clock, dma, frame, irq);
        self.after_data_path(clock, dma, result)
    }

    /// A reset noticed on the data path: the device holds nothing, so release our side.
    fn after_data_path<T>(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        result: Result<T, GvnicError>,
    ) -> Result<T, GvnicError> {
        if let Err(GvnicError::DeviceReset { .. }) = result {
            self.reset_and_release(None, clock, dma)?;
        }
        result
    }

    /// The pieces of a NIC whose queues are up.
    fn live(&mut self) -> Result<Live<'_>, GvnicError> {
        let state = self.state.name();
        let wrong = GvnicError::WrongState {
            wanted: "with its queues up",
            state,
        };
        if self.state != State::QueuesUp {
            return Err(wrong);
        }
        let (Some(res), Some(tx), Some(rx), Some(format)) = (
            self.resources.as_ref(),
            self.tx.as_deref_mut(),
            self.rx.as_deref_mut(),
            self.format,
        ) else {
            return Err(wrong);
        };
        Ok(Live {
            aq: self.aq.as_ref(),
            regs: &self.regs,
            counters: res.counters,
            irqs: &res.irq_doorbells,
            family: format.family(),
            doorbells: &self.doorbells,
            tx,
            rx,
        })
    }

    fn transmit_once(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
        irq: Option<&dyn Interrupts>,
    ) -> Result<TxDone, GvnicError> {
        let started = clock.now_us();
        let block = self.tx.as_ref().map_or(0, |t| t.ntfy_id()) as u16;
        let live = self.live()?;
        // A device that reset since the last command holds none of our queues: ringing
        // its doorbell would be a write into nothing. Say so instead.
        if live.reset() {
            return Err(GvnicError::DeviceReset {
                during: "TX (before posting)",
            });
        }
        let Live {
            aq,
            regs,
            counters,
            irqs,
            family,
            doorbells,
            tx,
            ..
        } = live;
        let reset = || aq.is_none_or(|aq| aq.device_was_reset(regs));
        let mark = irq.map(|irq| irq.delivery().count);
        tx.post(dma, doorbells, &counters, frame)?;
        let look = || {
            match irq {
                Some(_) => irq_wait::unmask(family, doorbells, irqs),
                None => notify::rearm(family, doorbells, irqs),
            }
            match tx.poll_complete(dma, &counters) {
                Ok(true) => Look::Done(Ok(())),
                // A device that reset makes no completions: say so instead of timing out.
                Ok(false) if reset() => Look::Done(Err(GvnicError::DeviceReset {
                    during: "TX completion",
                })),
                Ok(false) => Look::Empty,
                Err(err) => Look::Done(Err(err)),
            }
        };
        let outcome = match irq {
            Some(irq) => wait_by_irq(clock, irq, TX_TIMEOUT_US, mark, look),
            None => {
                let mut look = look;
                wait_for(clock, TX_TIMEOUT_US, || look().done()).map_err(Waited::from)
            }
        };
        let (posted, completed) = tx.progress();
        match outcome {
            Ok(Ok(())) => Ok(TxDone {
                bytes: frame.len(),
                elapsed_us: clock.now_us().saturating_sub(started),
                after_reset: false,
            }),
            Ok(Err(err)) => Err(err),
            Err(Waited::TimedOut) => Err(GvnicError::TxTimeout { posted, completed }),
            Err(Waited::Interrupted) => Err(GvnicError::Interrupted),
            Err(Waited::Silent) => Err(self.silent_irq(block, irq.unwrap_or(&NO_IRQ))),
        }
    }

    /// Waits up to `timeout_us` for the next good frame (flagged frames are dropped,
    /// counted, and waited past).
    pub fn receive(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        timeout_us: u64,
    ) -> Result<Vec<u8>, GvnicError> {
        self.receive_with(clock, dma, timeout_us, None)
    }

    /// [`Self::receive`], waiting by interrupt when `irq` is given and a `--irq` session
    /// is live ([`super::irq_wait`]).
    pub fn receive_with(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        timeout_us: u64,
        irq: Option<&dyn Interrupts>,
    ) -> Result<Vec<u8>, GvnicError> {
        let irq = irq.filter(|_| self.irq_session.is_some());
        let result = self.receive_once(clock, dma, timeout_us, irq);
        self.after_data_path(clock, dma, result)
    }

    fn receive_once(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        timeout_us: u64,
        irq: Option<&dyn Interrupts>,
    ) -> Result<Vec<u8>, GvnicError> {
        let block = self.rx.as_ref().map_or(1, |r| r.ntfy_id()) as u16;
        let Live {
            aq,
            regs,
            irqs,
            family,
            doorbells,
            rx,
            ..
        } = self.live()?;
        let reset = || aq.is_none_or(|aq| aq.device_was_reset(regs));
        let look = || {
            match irq {
                Some(_) => irq_wait::unmask(family, doorbells, irqs),
                None => notify::rearm(family, doorbells, irqs),
            }
            match rx.poll(dma, doorbells) {
                Ok(Some(RxEvent::Frame(frame))) => Look::Done(Ok(frame)),
                Ok(_) if reset() => Look::Done(Err(GvnicError::DeviceReset {
                    during: "RX polling",
                })),
                Ok(Some(RxEvent::Dropped(_) | RxEvent::Fragment)) => Look::Progress,
                Ok(None) => Look::Empty,
                Err(err) => Look::Done(Err(err)),
            }
        };
        let outcome = match irq {
            Some(irq) => wait_by_irq(clock, irq, timeout_us, None, look),
            None => {
                let mut look = look;
                wait_for(clock, timeout_us, || look().done()).map_err(Waited::from)
            }
        };
        match outcome {
            Ok(result) => result,
            Err(Waited::TimedOut) => Err(GvnicError::RxTimeout),
            Err(Waited::Interrupted) => Err(GvnicError::Interrupted),
            Err(Waited::Silent) => Err(self.silent_irq(block, irq.unwrap_or(&NO_IRQ))),
        }
    }

    /// Consumes every frame already in the RX ring, without waiting, so stale frames (a
    /// ring filled before we asked for anything) cannot hide the reply we are about to
    /// ask for. Every consumed buffer goes back to the device. Nothing to do (Ok, zero)
    /// when the queues are not up.
    pub fn drain_rx(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<Drained, GvnicError> {
        if self.state != State::QueuesUp {
            return Ok(Drained::default());
        }
        let result = self.drain_once(dma);
        self.after_data_path(clock, dma, result)
    }

    fn drain_once(&mut self, dma: &mut DmaPool) -> Result<Drained, GvnicError> {
        let live = self.live()?;
        if live.reset() {
            return Err(GvnicError::DeviceReset { during: "RX drain" });
        }
        let mut drained = Drained::default();
        // Two rounds: DQO may write its held-back completions only once the re-armed IRQ
        // fires, so arm, drain, arm again, drain what that flushed.
        for _ in 0..2 {
            notify::rearm(live.family, live.doorbells, live.irqs);
            while drained.frames + drained.dropped < MAX_DRAIN {
                match live.rx.poll(dma, live.doorbells)? {
                    Some(RxEvent::Frame(_)) => drained.frames += 1,
                    Some(RxEvent::Dropped(_)) => drained.dropped += 1,
                    Some(RxEvent::Fragment) => {}
                    None => break,
                }
            }
        }
        Ok(drained)
    }
}

/// How a wait ended without a value, polling or by interrupt.
type Waited = IrqWaitEnd;

impl From<WaitError> for IrqWaitEnd {
    fn from(err: WaitError) -> Self {
        match err {
            WaitError::TimedOut => IrqWaitEnd::TimedOut,
            WaitError::Interrupted => IrqWaitEnd::Interrupted,
        }
    }
}

fn wait_by_irq<T>(
    clock: &dyn Clock,
    irq: &dyn Interrupts,
    timeout_us: u64,
    mark: Option<u32>,
    look: impl FnMut() -> Look<T>,
) -> Result<T, Waited> {
    irq_wait::wait_by_irq(clock, irq, timeout_us, mark, look)
}

/// Stands in when no interrupt path was given (a silent interrupt then cannot happen).
const NO_IRQ: crate::platform::NoInterrupts = crate::platform::NoInterrupts;

/// Borrowed pieces of a NIC whose queues are up.
struct Live<'a> {
    aq: Option<&'a super::adminq::AdminQueue>,
    regs: &'a super::regs::Registers,
    counters: DmaBuf,
    irqs: &'a [u32],
    family: super::describe::Family,
    doorbells: &'a super::regs::Doorbells,
    tx: &'a mut dyn TxRing,
    rx: &'a mut dyn RxRing,
}

impl Live<'_> {
    /// The device reset under us (or asks to be).
    fn reset(&self) -> bool {
        self.aq.is_none_or(|aq| aq.device_was_reset(self.regs))
    }
}
