//! The device object and its public entry points.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;

use crate::pci::PciConfig;
use crate::queues::{RxQueue, TxQueue};
use crate::record::{Record, ResetCause, ViolationKind};
use crate::regs::{self, Regs};
use crate::resources::Configured;
use crate::wire::{Peer, Wire, WireFrame};
use crate::{GuestMemory, ModelConfig};

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
    pub(crate) now: u64,
    /// Admin commands completed since power-on (drives `spurious_reset_after_commands`).
    pub(crate) commands_completed: u64,
    /// A fault-injected self-reset is due (performed at the next tick or doorbell).
    pub(crate) spurious_pending: bool,
    /// Tick at which a delayed reset (after a redundant reset) fires.
    pub(crate) delayed_reset_at: Option<u64>,
    /// TX completions held back by `tx_completion_delay_ticks`: (due tick, queue id, count).
    pub(crate) tx_pending: VecDeque<(u64, u32, u32)>,
    /// BAR1 MSI-X table contents (stored, never used to signal).
    pub(crate) msix_table: Vec<u8>,
    /// Frames delivered with ERR so far (drives `rx_error_frames`).
    pub(crate) rx_errors_injected: u32,
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
            commands_completed: 0,
            spurious_pending: false,
            delayed_reset_at: None,
            tx_pending: VecDeque::new(),
            msix_table: vec![0; usize::from(vectors) * 16],
            rx_errors_injected: 0,
        };
        // Power-on: the device holds nothing; a revision-1 device reports DEVICE_IS_RESET.
        g.regs.device_is_reset = true;
        g
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// A BAR access. `bar`: 0 registers, 1 MSI-X table, 2 doorbells; `offset` within that
    /// BAR; `size` 1, 2 or 4. Values are as a little-endian bus carries them.
    pub fn bar_read(&mut self, bar: u8, offset: u64, size: u8, mem: &dyn GuestMemory) -> u64 {
        let _ = mem;
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
        if !self.pci.memory_enabled() {
            self.record.violation(
                ViolationKind::MemorySpaceDisabled,
                format!("BAR{bar} write at {offset:#x} with PCI memory space disabled (ignored)"),
            );
            return;
        }
        match bar {
            0 => self.bar0_write(offset, size, value, mem),
            1 => self.msix_write(offset, size, value),
            2 => {
                if size == 4 && regs::access_ok(offset, size, crate::pci::BAR_SIZES[2]) {
                    // GQI doorbells are BE32 (facts §1).
                    let v = u32::from_be_bytes((value as u32).to_le_bytes());
                    self.doorbell((offset / 4) as u32, v, mem);
                } else {
                    self.bad_access(bar, offset, size);
                }
            }
            _ => self.bad_access(bar, offset, size),
        }
    }

    fn bad_access(&mut self, bar: u8, offset: u64, size: u8) {
        self.record.violation(
            ViolationKind::BadRegisterAccess,
            format!("BAR{bar} access of {size} bytes at {offset:#x} is not implemented"),
        );
    }

    /// BAR1: the MSI-X table (16 bytes per vector) and PBA. Stored but never used: the model
    /// raises no interrupts (facts §0.8: GQI needs none).
    fn msix_read(&mut self, offset: u64, size: u8) -> u64 {
        if !regs::access_ok(offset, size, crate::pci::BAR_SIZES[1]) {
            self.bad_access(1, offset, size);
            return regs::all_ones(size);
        }
        let table_len = u64::from(self.pci.msix_vectors) * 16;
        if offset < table_len {
            let mut v = 0u64;
            for i in 0..u64::from(size) {
                v |= u64::from(self.msix_table[(offset + i) as usize]) << (8 * i);
            }
            v
        } else {
            // PBA: nothing pending, ever.
            0
        }
    }

    fn msix_write(&mut self, offset: u64, size: u8, value: u64) {
        let table_len = u64::from(self.pci.msix_vectors) * 16;
        if !regs::access_ok(offset, size, crate::pci::BAR_SIZES[1]) || offset >= table_len {
            self.bad_access(1, offset, size);
            return;
        }
        for i in 0..u64::from(size) {
            self.msix_table[(offset + i) as usize] = (value >> (8 * i)) as u8;
        }
    }

    /// PCI config space read (ids, class, revision, BARs with sizing, MSI-X capability).
    pub fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        self.pci.read(offset, size)
    }

    pub fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        self.pci.write(offset, size, value)
    }

    /// Which BAR an absolute guest address hits, as programmed by the guest (proxy front end).
    pub fn decode_bar(&self, addr: u64) -> Option<(u8, u64)> {
        self.pci.decode(addr)
    }

    /// Time passes: delayed completions, pending RX delivery, responder replies, scheduled resets.
    pub fn tick(&mut self, mem: &dyn GuestMemory) {
        self.now += 1;
        if self.spurious_pending {
            self.spurious_reset();
        }
        if self.delayed_reset_at.is_some_and(|t| self.now >= t) {
            self.delayed_reset_at = None;
            self.spurious_reset();
        }
        self.flush_tx_completions(mem);
        self.poll_peer();
        self.deliver_rx(mem);
    }

    /// Queue an inbound frame from "the network"; it is delivered on the next tick or RX doorbell.
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
        self.msix_table.iter_mut().for_each(|b| *b = 0);
        self.release_everything(ResetCause::Pci, false);
    }

    /// The current tick count.
    pub fn now(&self) -> u64 {
        self.now
    }
}
