//! The GQI-QPL data path of a NIC whose queues are up: one frame out (completion through
//! the TX event counter), frames in (RX sequence numbers). A device reset noticed here
//! releases our side too, so the next `bring_up` starts afresh.

use alloc::vec::Vec;

use crate::dma::DmaPool;
use crate::platform::{wait_for, Clock, WaitError};

use super::device::{Gvnic, State, TX_TIMEOUT_US};
use super::rx::RxEvent;
use super::GvnicError;

/// What came back from one TX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDone {
    pub bytes: usize,
    pub elapsed_us: u64,
}

impl Gvnic {
    /// Sends one frame and waits for its completion through the TX event counter. If the
    /// device reset under us, our side is released too (so `bring_up` starts afresh).
    pub fn transmit(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
    ) -> Result<TxDone, GvnicError> {
        let result = self.transmit_once(clock, dma, frame);
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
            self.reset_and_release(clock, dma)?;
        }
        result
    }

    fn transmit_once(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        frame: &[u8],
    ) -> Result<TxDone, GvnicError> {
        let counters = match &self.resources {
            Some(res) => res.counters,
            None => {
                return Err(GvnicError::WrongState {
                    wanted: "with its queues up",
                    state: self.state.name(),
                })
            }
        };
        let started = clock.now_us();
        let state = self.state.name();
        let (regs, doorbells, mode) = (&self.regs, &self.doorbells, self.mode);
        let tx = match (self.state, self.tx.as_mut()) {
            (State::QueuesUp, Some(tx)) => tx,
            _ => {
                return Err(GvnicError::WrongState {
                    wanted: "with its queues up",
                    state,
                })
            }
        };
        let counter_at = tx.counter_index() as usize * 4;
        let completed = |dma: &DmaPool| -> Result<u32, GvnicError> {
            Ok(u32::from_be(dma.read_u32(&counters, counter_at)?))
        };
        // A device that reset since the last command holds none of our queues: ringing
        // its doorbell would be a write into nothing. Say so instead.
        if regs.reads_reset(mode) {
            return Err(GvnicError::DeviceReset {
                during: "TX (before posting)",
            });
        }
        let done = completed(dma)?;
        if done != tx.posted() {
            return Err(GvnicError::TxBusy {
                outstanding: tx.posted().wrapping_sub(done),
            });
        }
        let wanted = tx.post(dma, doorbells, frame)?;
        let outcome = wait_for(clock, TX_TIMEOUT_US, || match completed(dma) {
            Ok(count) if count == wanted => Some(Ok(())),
            Err(err) => Some(Err(err)),
            Ok(_) if regs.reads_reset(mode) => Some(Err(GvnicError::DeviceReset {
                during: "TX completion",
            })),
            Ok(_) => None,
        });
        match outcome {
            Ok(Ok(())) => Ok(TxDone {
                bytes: frame.len(),
                elapsed_us: clock.now_us().saturating_sub(started),
            }),
            Ok(Err(err)) => Err(err),
            Err(WaitError::TimedOut) => Err(GvnicError::TxTimeout {
                posted: wanted,
                completed: completed(dma)?,
            }),
            Err(WaitError::Interrupted) => Err(GvnicError::Interrupted),
        }
    }

    /// Waits up to `timeout_us` for the next good frame (ERR frames are dropped, counted,
    /// and waited past).
    pub fn receive(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        timeout_us: u64,
    ) -> Result<Vec<u8>, GvnicError> {
        let result = self.receive_once(clock, dma, timeout_us);
        self.after_data_path(clock, dma, result)
    }

    fn receive_once(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        timeout_us: u64,
    ) -> Result<Vec<u8>, GvnicError> {
        let (regs, mode) = (&self.regs, self.mode);
        let doorbells = &self.doorbells;
        let rx = match (self.state, self.rx.as_mut()) {
            (State::QueuesUp, Some(rx)) => rx,
            _ => {
                return Err(GvnicError::WrongState {
                    wanted: "with its queues up",
                    state: self.state.name(),
                })
            }
        };
        let outcome = wait_for(clock, timeout_us, || match rx.poll(dma, doorbells) {
            Ok(Some(RxEvent::Frame(frame))) => Some(Ok(frame)),
            Ok(Some(RxEvent::Dropped(_))) | Ok(None) => {
                if regs.reads_reset(mode) {
                    Some(Err(GvnicError::DeviceReset {
                        during: "RX polling",
                    }))
                } else {
                    None
                }
            }
            Err(err) => Some(Err(err)),
        });
        match outcome {
            Ok(result) => result,
            Err(WaitError::TimedOut) => Err(GvnicError::RxTimeout),
            Err(WaitError::Interrupted) => Err(GvnicError::Interrupted),
        }
    }
}
