//! Reset and release (facts §2.2): PFN = 0 (any revision) or DRIVER_STATUS.RESET (revision
//! 1 and later) releases the AQ, resources, QPLs and queues after the reset latency; the
//! device can also reset itself. Until the release the device still holds everything (PFN reads the AQ,
//! DEVICE_IS_RESET is not set) but runs no further admin command.

use crate::config::DeviceIsReset;
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
                self.delayed_reset_at = Some(self.now + u64::from(delay) * crate::device::TICK_US);
            }
        }
        if self.cfg.device_is_reset == DeviceIsReset::ClearedByResetRequest {
            // The bit reports the latest requested reset: not finished yet.
            self.regs.device_is_reset = false;
        }
        self.admin_due = None;
        let latency = self.cfg.latencies.reset_us;
        if already || latency == 0 {
            self.finish_reset(cause, already);
        } else if self.reset_due.is_none() {
            self.reset_due = Some((self.now + latency, cause));
        }
    }

    /// The reset latency has passed: let go of everything.
    pub(crate) fn finish_reset(&mut self, cause: ResetCause, already: bool) {
        self.reset_due = None;
        self.release_everything(cause, already);
        // A driver-initiated reset satisfies a pending reset request (Windows: "cleared once a
        // successful reset happens").
        self.regs.reset_requested = false;
    }

    /// The device resets on its own (host reset, live migration; facts §2.2): PFN reads 0,
    /// AQ commands stop completing, and DEVICE_STATUS.RESET asks the driver to recover.
    pub(crate) fn spurious_reset(&mut self, mem: &dyn crate::GuestMemory) {
        self.spurious_pending = false;
        // The management vector tells the driver (Linux services DEVICE_STATUS.RESET from
        // it, facts §2.2): the last one with ntfy_blk_msix_base_idx 0, else the first.
        let mgmt = self
            .configured
            .as_ref()
            .map(|c| if c.msix_base == 0 { c.num_irq_dbs } else { 0 });
        self.release_everything(ResetCause::Spurious, false);
        self.regs.reset_requested = true;
        if let Some(v) = mgmt.and_then(|v| u16::try_from(v).ok()) {
            self.assert_vector(v, mem);
        }
    }

    /// DEVICE_IS_RESET as it reads at power-on and after a PCI reset, before any reset was
    /// requested (`ModelConfig::device_is_reset_at_power_on`).
    pub(crate) fn power_on_reset_bit(&mut self) {
        self.regs.device_is_reset = self.cfg.device_is_reset_at_power_on;
    }

    /// Drop all driver memory the device holds and return the registers to their reset values.
    pub(crate) fn release_everything(&mut self, cause: ResetCause, already: bool) {
        self.reset_due = None;
        self.admin_due = None;
        self.stats_report = None;
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
            self.tx_packets = 0;
            self.delayed_reset_at = None;
            self.regs = Default::default();
            self.power_on_reset_bit();
        }
        self.record.resets.push(ResetRecord {
            cause,
            already_reset: already,
            completed: true,
        });
    }
}
