//! The device object and its public entry points.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;

use crate::format::TxDone;
use crate::msix::Msix;
use crate::optional::{NicCounters, StatsReport};
use crate::pci::PciConfig;
use crate::queues::{RxQueue, TxQueue};
use crate::record::{Record, ResetCause, ViolationKind};
use crate::regs::{self, Regs};
use crate::resources::Configured;
use crate::wire::{Peer, Wire, WireFrame};
use crate::{GuestMemory, ModelConfig};

/// Model time per [`Gvnic::tick`]: one driver `Clock::relax` in the driver tests
/// (drivers/tests/gvnic_support: 100 µs per relax).
pub const TICK_US: u64 = 100;

/// The gVNIC model. See the crate docs.
pub struct Gvnic {
    pub(crate) cfg: ModelConfig,
    pub(crate) pci: PciConfig,
    pub(crate) regs: Regs,
    pub(crate) configured: Option<Configured>,
    /// Registered queue page lists: id -> guest page addresses.
    pub(crate) qpls: BTreeMap<u32, Vec<u64>>,
    pub(crate) tx: BTreeMap<u32, TxQueue>,
    pub(crate) rx: BTreeMap<u32, RxQueue>,
    pub(crate) record: Record,
    pub(crate) wire: Wire,
    /// Model time in µs.
    pub(crate) now: u64,
    /// The admin queue runs up to its doorbell at this time (admin latency).
    pub(crate) admin_due: Option<u64>,
    /// A requested reset completes at this time (reset latency).
    pub(crate) reset_due: Option<(u64, ResetCause)>,
    /// Admin commands completed since power-on (drives `spurious_reset_after_commands`).
    pub(crate) commands_completed: u64,
    /// A fault-injected self-reset is due (performed at the next tick or doorbell).
    pub(crate) spurious_pending: bool,
    /// Time at which a delayed reset (after a redundant reset) fires.
    pub(crate) delayed_reset_at: Option<u64>,
    /// TX completions waiting for the TX latency (and `tx_completion_delay_ticks`).
    pub(crate) tx_pending: VecDeque<TxDone>,
    /// BAR1: the MSI-X table and pending bits.
    pub(crate) msix: Msix,
    /// MSI-X enable / function mask changed in config space: pending messages to release.
    pub(crate) msix_recheck: bool,
    /// Frames delivered with ERR so far (drives `rx_error_frames`).
    pub(crate) rx_errors_injected: u32,
    /// The attached REPORT_STATS buffer.
    pub(crate) stats_report: Option<StatsReport>,
    pub(crate) nic_counters: NicCounters,
    /// Packets transmitted since power-on (drives `spurious_reset_after_tx_packets`).
    pub(crate) tx_packets: u64,
    /// Set by a front end that owns the MSI-X table (vfio-user): vectors are raised through
    /// it instead of as DMA writes from `msix` (interrupts.rs).
    pub(crate) interrupts: Option<Box<dyn crate::Interrupts>>,
}

impl Gvnic {
    pub fn new(config: ModelConfig) -> Self {
        let vectors = (config.max_tx_queues + config.max_rx_queues + 1).min(2048) as u16;
        let mut g = Gvnic {
            pci: PciConfig::new(config.revision, vectors),
            cfg: config,
            regs: Regs::default(),
            configured: None,
            qpls: BTreeMap::new(),
            tx: BTreeMap::new(),
            rx: BTreeMap::new(),
            record: Record::default(),
            wire: Wire::default(),
            now: 0,
            admin_due: None,
            reset_due: None,
            commands_completed: 0,
            spurious_pending: false,
            delayed_reset_at: None,
            tx_pending: VecDeque::new(),
            msix: Msix::new(vectors),
            msix_recheck: false,
            rx_errors_injected: 0,
            stats_report: None,
            nic_counters: NicCounters::default(),
            tx_packets: 0,
            interrupts: None,
        };
        // Power-on: the device holds nothing; DEVICE_IS_RESET as configured (reset.rs).
        g.power_on_reset_bit();
        g
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The optional options this device describes (its profile's generation).
    pub(crate) fn generation(&self) -> &'static crate::profile::Generation {
        self.cfg.profile.generation()
    }

    /// The largest MTU the device carries: JUMBO_FRAMES' max_mtu when it offers that
    /// option, else the descriptor's MTU.
    pub fn max_mtu(&self) -> u16 {
        self.generation()
            .max_mtu
            .unwrap_or(self.cfg.mtu)
            .max(self.cfg.mtu)
    }

    /// A BAR access. `bar`: 0 registers, 1 MSI-X table, 2 doorbells; `offset` within that
    /// BAR; `size` 1, 2 or 4. Values are as a little-endian bus carries them.
    pub fn bar_read(&mut self, bar: u8, offset: u64, size: u8, mem: &dyn GuestMemory) -> u64 {
        self.msix_settle(mem);
        if !self.pci.memory_enabled() {
            self.record.violation(
                ViolationKind::MemorySpaceDisabled,
                format!("BAR{bar} read at {offset:#x} with PCI memory space disabled"),
            );
            return regs::all_ones(size);
        }
        match bar {
            0 => self.bar0_read(offset, size),
            1 => self.msix_read(offset, size),
            2
                // Doorbells are write-only (guess: they read 0 here).
                if regs::access_ok(offset, size, crate::pci::BAR_SIZES[2]) => {
                    0
                }
            _ => {
                self.bad_access(bar, offset, size);
                regs::all_ones(size)
            }
        }
    }

    pub fn bar_write(&mut self, bar: u8, offset: u64, size: u8, value: u64, mem: &dyn GuestMemory) {
        self.msix_settle(mem);
        if !self.pci.memory_enabled() {
            self.record.violation(
                ViolationKind::MemorySpaceDisabled,
                format!("BAR{bar} write at {offset:#x} with PCI memory space disabled (ignored)"),
            );
            return;
        }
        match bar {
            0 => self.bar0_write(offset, size, value, mem),
            1 => self.msix_write(offset, size, value, mem),
            2 => {
                if size == 4 && regs::access_ok(offset, size, crate::pci::BAR_SIZES[2]) {
                    // Byte order is the queue's (GQI BE32, DQO LE32: facts §1).
                    self.doorbell((offset / 4) as u32, value as u32, mem);
                } else {
                    self.bad_access(bar, offset, size);
                }
            }
            _ => self.bad_access(bar, offset, size),
        }
    }

    pub(crate) fn bad_access(&mut self, bar: u8, offset: u64, size: u8) {
        self.record.violation(
            ViolationKind::BadRegisterAccess,
            format!("BAR{bar} access of {size} bytes at {offset:#x} is not implemented"),
        );
    }

    /// Config-space MSI-X changes take effect at the next access that carries guest memory.
    fn msix_settle(&mut self, mem: &dyn GuestMemory) {
        if std::mem::take(&mut self.msix_recheck) {
            self.interrupts_unmasked(mem);
        }
    }

    /// PCI config space read (ids, class, revision, BARs with sizing, MSI-X capability).
    pub fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        self.pci.read(offset, size)
    }

    pub fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        let before = self.pci.msix_control;
        self.pci.write(offset, size, value);
        if self.pci.msix_control != before {
            self.msix_recheck = true;
        }
    }

    /// Which BAR an absolute guest address hits, as programmed by the guest (proxy front end).
    pub fn decode_bar(&self, addr: u64) -> Option<(u8, u64)> {
        self.pci.decode(addr)
    }

    /// `TICK_US` of model time pass (one driver `Clock::relax` in the driver tests).
    pub fn tick(&mut self, mem: &dyn GuestMemory) {
        self.advance_to(self.now + TICK_US, mem);
    }

    /// Model time moves to `now_us` (the proxy front end passes wall-clock time): whatever
    /// is due by then happens: admin completions, resets, TX completions, RX delivery,
    /// responder replies, stats reports, scheduled self-resets.
    pub fn advance_to(&mut self, now_us: u64, mem: &dyn GuestMemory) {
        self.now = self.now.max(now_us);
        self.msix_settle(mem);
        if self.spurious_pending {
            self.spurious_reset(mem);
        }
        if self.delayed_reset_at.is_some_and(|t| self.now >= t) {
            self.delayed_reset_at = None;
            self.spurious_reset(mem);
        }
        if let Some((due, cause)) = self.reset_due {
            if self.now >= due {
                self.finish_reset(cause, false);
            }
        }
        if self.admin_due.is_some_and(|t| self.now >= t) {
            self.run_admin_queue(mem);
        }
        self.flush_tx_completions(mem);
        self.poll_peer();
        self.deliver_rx(mem);
        self.write_stats(mem);
    }

    /// Model time in µs.
    pub fn now_us(&self) -> u64 {
        self.now
    }

    pub(crate) fn now_ticks(&self) -> u64 {
        self.now / TICK_US
    }

    /// A packet left (drives `spurious_reset_after_tx_packets`).
    pub(crate) fn count_tx_packet(&mut self) {
        self.tx_packets += 1;
        if self
            .cfg
            .faults
            .spurious_reset_after_tx_packets
            .map(u64::from)
            == Some(self.tx_packets)
        {
            self.spurious_pending = true;
        }
    }

    /// Queue an inbound frame from "the network"; it is delivered on the next tick or RX doorbell.
    /// (It arrives now and is delivered after the RX arrival latency.)
    pub fn inject_rx(&mut self, frame: &[u8]) {
        self.queue_rx(self.now, frame.to_vec());
    }

    /// Every TX and RX frame, with direction and bytes.
    pub fn wire(&self) -> &[WireFrame] {
        &self.wire.frames
    }

    /// Admin commands seen, violations, resets.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Pages registered across all QPLs.
    pub fn registered_pages(&self) -> usize {
        self.qpls.values().map(Vec::len).sum()
    }

    /// The device holds nothing: no AQ, no resources, no QPLs, no queues.
    pub fn is_reset(&self) -> bool {
        self.regs.aq.is_none()
            && self.configured.is_none()
            && self.qpls.is_empty()
            && self.tx.is_empty()
            && self.rx.is_empty()
    }

    /// Write every TX/RX frame from now on to a pcap file (LINKTYPE_ETHERNET).
    pub fn set_pcap(&mut self, path: &Path) -> io::Result<()> {
        self.wire.set_pcap(path)
    }

    /// Exchange frames with another process: every TX frame is sent as one datagram, every
    /// datagram received (polled on `tick`) is injected as an RX frame.
    pub fn set_peer(&mut self, peer: Peer) -> io::Result<()> {
        peer.set_nonblocking()?;
        self.wire.peer = Some(peer);
        Ok(())
    }

    /// PCI-level reset (QEMU's DEVICE_RESET, a machine reset): config space and device state.
    pub fn pci_reset(&mut self) {
        let vectors = self.pci.msix_vectors;
        self.pci = PciConfig::new(self.cfg.revision, vectors);
        self.msix = Msix::new(vectors);
        self.release_everything(ResetCause::Pci, false);
    }

    /// Raise MSI-X vectors through `hook` from now on: the transport owns the MSI-X table
    /// (vfio-user), so the device's own table, masks and PBA are no longer consulted.
    pub fn set_interrupts(&mut self, hook: Box<dyn crate::Interrupts>) {
        self.interrupts = Some(hook);
    }

    /// Drop the `Interrupts` hook (its front end is gone); the device's own table applies again.
    pub fn clear_interrupts(&mut self) {
        self.interrupts = None;
    }

    /// The current tick count (model time / `TICK_US`).
    pub fn now(&self) -> u64 {
        self.now_ticks()
    }
}
