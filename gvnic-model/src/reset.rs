//! Reset and release (facts §2.2): PFN = 0 (any revision) or DRIVER_STATUS.RESET (revision
//! >= 1) releases the AQ, resources, QPLs and queues; the device can also reset itself.

use crate::record::{ResetCause, ResetRecord};
use crate::Gvnic;

impl Gvnic {
    /// A reset the driver asked for.
    pub(crate) fn driver_reset(&mut self, cause: ResetCause) {
        let already = self.is_reset();
        if self.cfg.faults.reset_never_completes {
            // The device keeps everything: PFN stays non-zero, DEVICE_IS_RESET never set.
            self.record.resets.push(ResetRecord {
                cause,
                already_reset: already,
                completed: false,
            });
            return;
        }
        if already {
            if let Some(delay) = self.cfg.faults.delayed_reset_after_redundant_reset {
                // iPXE: "Triggering a reset on an already-reset device seems to cause a
                // delayed reset to be scheduled" (facts §2.2).
                self.delayed_reset_at = Some(self.now + u64::from(delay));
            }
        }
        self.release_everything(cause, already);
        // A driver-initiated reset satisfies a pending reset request (Windows: "cleared once a
        // successful reset happens").
        self.regs.reset_requested = false;
    }

    /// The device resets on its own (host reset, live migration; facts §2.2): PFN reads 0,
    /// AQ commands stop completing, and DEVICE_STATUS.RESET asks the driver to recover.
    pub(crate) fn spurious_reset(&mut self) {
        self.spurious_pending = false;
        self.release_everything(ResetCause::Spurious, false);
        self.regs.reset_requested = true;
    }

    /// Drop all driver memory the device holds and return the registers to their reset values.
    pub(crate) fn release_everything(&mut self, cause: ResetCause, already: bool) {
        self.regs.aq = None;
        self.regs.aq_doorbell = 0;
        self.regs.event_counter = 0;
        self.regs.driver_status = 0;
        self.regs.device_is_reset = true;
        self.configured = None;
        self.qpls.clear();
        self.tx.clear();
        self.rx.clear();
        self.tx_pending.clear();
        self.wire.pending_rx.clear();
        if cause == ResetCause::Pci {
            self.spurious_pending = false;
            self.delayed_reset_at = None;
            self.regs = Default::default();
            self.regs.device_is_reset = true;
        }
        self.record.resets.push(ResetRecord {
            cause,
            already_reset: already,
            completed: true,
        });
    }
}
