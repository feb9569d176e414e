//! `irq test <gvnic>`: proof that the gVNIC delivers MSI-X interrupts to the boot CPU, the
//! way the device raises them for a driver that uses them.
//!
//! Two vectors are routed, one at a time, to the monitor's counted IDT vector:
//! - the RX notification block's (block b raises entry b: we configure
//!   ntfy_blk_msix_base_idx 0). The device raises it when a frame arrives on a queue of
//!   an unmasked block (GQI: an IRQ doorbell write without MASK unmasks it, Linux writes
//!   ACK|EVENT after its poll; DQO: ENABLE|no-ITR-update = 0x19, facts §4.3 and
//!   gvnic-dqo.md §1.10). The trigger is a DHCP DISCOVER: GCE's DHCP server (and the
//!   model's responder) answers, and the OFFER is the received frame.
//! - the management vector (the entry after the blocks, Linux's layout). The device raises
//!   it when DEVICE_STATUS changes (a reset it asks for, a stats request, the link); a
//!   driver cannot make that happen, so it is routed and watched for [`MGMT_WATCH_US`],
//!   and reported as raised or not, never as a pass it did not earn.
//!
//! A machine that cannot carry device interrupts (QEMU 7.2's x-pci-proxy-dev: the model's
//! MSI-X write never reaches the guest's APIC) is told apart from a device that did not
//! raise the vector: the OFFER arrived through an unmasked block and the vector's pending
//! bit reads clear, so the message left the device; no interrupt within [`IRQ_WAIT_US`]
//! after that is [`IrqTestError::NotDelivered`].
//!
//! Everything is restored afterwards: every MSI-X entry, the control word, the command
//! register and the IRQ doorbells (GQI masked again, DQO as its polling leaves them), and
//! checked to read back as before.

use alloc::vec::Vec;

use crate::net::dhcp;
use crate::pci::msix::{MsixEntry, CONTROL_ENABLE, CONTROL_FUNCTION_MASK, VECTOR_MASKED};
use crate::pci::regs::{Command, COMMAND};
use crate::platform::{wait_for, Clock, ConfigSpace, Delivery, Interrupts, IrqError, MsiMessage};

use super::describe::Family;
use super::device::{Gvnic, State};
use super::notify::NOTIFY_BLOCKS;
use super::regs::{DQO_IRQ_REARM, IRQ_DOORBELL_MASK};
use super::GvnicError;

/// How long to wait for the interrupt once the frame that should raise it was seen (policy:
/// a completion and its MSI are microseconds apart).
pub const IRQ_WAIT_US: u64 = 100_000;
/// How long the OFFER may take (policy: GCE answers in milliseconds).
pub const FRAME_WAIT_US: u64 = 3_000_000;
/// How long a just-unmasked block may fire for what it saw while masked (policy).
pub const SETTLE_US: u64 = 1_000;
/// How long the management vector is watched (policy).
pub const MGMT_WATCH_US: u64 = 200_000;
/// GQI IRQ doorbell bits besides MASK (Linux gve.h GVE_IRQ_ACK / GVE_IRQ_EVENT): what its
/// poll writes to unmask the block again.
pub(super) const GQI_IRQ_ACK: u32 = 1 << 31;
pub(super) const GQI_IRQ_EVENT: u32 = 1 << 29;
/// DHCP transaction id of the trigger ("IRQ\x01").
const TRIGGER_XID: u32 = 0x4952_5101;

/// One routed vector and what reached the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorResult {
    /// "rx-block" or "management".
    pub role: &'static str,
    /// The MSI-X entry.
    pub entry: u16,
    /// What was done to make the device raise it.
    pub trigger: &'static str,
    pub delivery: Delivery,
    /// From the trigger (the DISCOVER leaving) to the first interrupt.
    pub latency_us: u64,
    /// The entry's pending bit after the wait (None: the PBA is not in the table's BAR).
    pub pending: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqReport {
    /// The boot CPU's IDT vector every routed entry was pointed at.
    pub vector: u8,
    pub message: MsiMessage,
    pub rx: VectorResult,
    pub management: VectorResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqTestError {
    Gvnic(GvnicError),
    /// The platform cannot take interrupts (no local APIC the monitor drives).
    NoInterrupts(IrqError),
    /// The OFFER arrived through an unmasked block, the vector's pending bit is clear (the
    /// message left the device), yet nothing reached the CPU: this machine does not carry
    /// device interrupts (QEMU 7.2's proxy).
    NotDelivered {
        entry: u16,
        other: u32,
    },
    /// The frame arrived but the vector stayed pending or silent (a device that did not
    /// raise it, or a mask we did not expect).
    NoInterrupt {
        entry: u16,
        pending: Option<bool>,
        other: u32,
    },
    /// A register did not read back as before the test.
    NotRestored(&'static str),
}

impl IrqTestError {
    pub fn code(&self) -> &'static str {
        match self {
            IrqTestError::Gvnic(err) => err.code(),
            IrqTestError::NoInterrupts(_) => "no-interrupts",
            IrqTestError::NotDelivered { .. } => "irq-not-delivered",
            IrqTestError::NoInterrupt { .. } => "no-interrupt",
            IrqTestError::NotRestored(_) => "restore-failed",
        }
    }
}

impl core::fmt::Display for IrqTestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IrqTestError::Gvnic(err) => write!(f, "{err}"),
            IrqTestError::NoInterrupts(_) => {
                write!(f, "this platform has no local APIC the monitor can drive")
            }
            IrqTestError::NotDelivered { entry, other } => write!(
                f,
                "the device raised MSI-X entry {entry} (the OFFER arrived on its unmasked \
                 block and its pending bit is clear) but no interrupt reached the boot CPU \
                 within {} ms ({other} on other vectors): this machine does not deliver \
                 device interrupts (QEMU 7.2's x-pci-proxy-dev has no interrupt path; QEMU \
                 10.1+ with vfio-user does)",
                IRQ_WAIT_US / 1000
            ),
            IrqTestError::NoInterrupt {
                entry,
                pending,
                other,
            } => write!(
                f,
                "the OFFER arrived but MSI-X entry {entry} raised no interrupt within {} ms \
                 (pending bit {}, {other} on other vectors)",
                IRQ_WAIT_US / 1000,
                match pending {
                    Some(true) => "set",
                    Some(false) => "clear",
                    None => "unreadable",
                }
            ),
            IrqTestError::NotRestored(what) => {
                write!(f, "{what} did not read back as before the test")
            }
        }
    }
}

impl From<GvnicError> for IrqTestError {
    fn from(err: GvnicError) -> Self {
        IrqTestError::Gvnic(err)
    }
}

/// What the test (and `--irq` waits) change, as it was.
pub(super) struct Saved {
    entries: Vec<MsixEntry>,
    control: u16,
    command: u16,
}

impl Gvnic {
    /// Runs the test (see the module doc). The queues must be up and the MSI-X table
    /// handed to the driver ([`Gvnic::with_msix`]).
    pub fn irq_test(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut crate::dma::DmaPool,
        irq: &dyn Interrupts,
    ) -> Result<IrqReport, IrqTestError> {
        if self.state != State::QueuesUp {
            return Err(GvnicError::WrongState {
                wanted: "with its queues up",
                state: self.state.name(),
            }
            .into());
        }
        let (bdf, saved) = self.save_msix(config)?;
        let (message, vector) = irq.arm().map_err(IrqTestError::NoInterrupts)?;
        let rx = self.route_and_raise_rx(config, clock, dma, irq, message, &saved);
        irq.disarm();
        let management = match &rx {
            Ok(_) => irq
                .arm()
                .map_err(IrqTestError::NoInterrupts)
                .map(|(m, _)| self.route_and_watch_management(config, clock, irq, m, &saved)),
            Err(_) => Ok(VectorResult {
                role: "management",
                entry: NOTIFY_BLOCKS as u16,
                trigger: "not routed: the RX vector failed",
                delivery: Delivery::default(),
                latency_us: 0,
                pending: None,
            }),
        };
        irq.disarm();
        self.restore(config, bdf, &saved)?;
        let rx = rx?;
        Ok(IrqReport {
            vector,
            message,
            rx,
            management: management?,
        })
    }

    /// The MSI-X table's bdf, and every entry, the control word and the command register
    /// as they are now.
    pub(super) fn save_msix(
        &self,
        config: &dyn ConfigSpace,
    ) -> Result<(crate::platform::Bdf, Saved), GvnicError> {
        let msix = self.msix.as_ref().ok_or(GvnicError::NoMsix)?;
        let (bdf, table) = (msix.bdf(), msix.table());
        Ok((
            bdf,
            Saved {
                entries: (0..table.vectors())
                    .filter_map(|v| table.view().entry(v))
                    .collect(),
                control: table.cap.control(config, bdf),
                command: config.read16(bdf, COMMAND),
            },
        ))
    }

    /// Every entry as it was but `entry`, which gets `message`, unmasked; MSI-X on,
    /// function unmasked, INTx off. (DQO's other queue keeps its dummy-target vector: its
    /// completions are held back until it may assert.)
    fn route_only(&self, config: &dyn ConfigSpace, entry: u16, message: MsiMessage, saved: &Saved) {
        self.route_entries(config, &[entry], message, saved);
    }

    /// [`Self::route_only`] for several entries.
    pub(super) fn route_entries(
        &self,
        config: &dyn ConfigSpace,
        routed: &[u16],
        message: MsiMessage,
        saved: &Saved,
    ) {
        let Some(msix) = self.msix.as_ref() else {
            return;
        };
        let table = msix.table();
        for (v, e) in saved.entries.iter().enumerate() {
            table.view().set_entry(v as u16, *e);
        }
        for &entry in routed {
            table.view().set_entry(
                entry,
                MsixEntry {
                    message,
                    vector_control: saved
                        .entries
                        .get(usize::from(entry))
                        .map_or(0, |e| e.vector_control)
                        & !VECTOR_MASKED,
                },
            );
        }
        let bdf = msix.bdf();
        table.cap.set_control(
            config,
            bdf,
            (saved.control | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK,
        );
        config.write16(bdf, COMMAND, saved.command | Command::INTX_DISABLE.bits());
    }

    /// The RX block's IRQ doorbell index, and the family.
    fn rx_block(&self) -> Result<(u32, Family), GvnicError> {
        let block = self.rx.as_ref().map_or(1, |r| r.ntfy_id());
        let index = self
            .resources
            .as_ref()
            .and_then(|r| r.irq_doorbells.get(block as usize).copied())
            .ok_or(GvnicError::WrongState {
                wanted: "configured",
                state: self.state.name(),
            })?;
        let family = self.format.map_or(Family::Gqi, |f| f.family());
        Ok((index, family))
    }

    fn route_and_raise_rx(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut crate::dma::DmaPool,
        irq: &dyn Interrupts,
        message: MsiMessage,
        saved: &Saved,
    ) -> Result<VectorResult, IrqTestError> {
        let block = self.rx.as_ref().map_or(1, |r| r.ntfy_id()) as u16;
        let (doorbell, family) = self.rx_block()?;
        self.route_only(config, block, message, saved);
        // Unmask the block as a driver that takes interrupts does.
        match family {
            Family::Gqi => self
                .doorbells
                .ring_be(doorbell, GQI_IRQ_ACK | GQI_IRQ_EVENT),
            Family::Dqo => self.doorbells.ring_le(doorbell, DQO_IRQ_REARM),
        }
        let mac = self
            .info()
            .map(|i| i.descriptor.mac)
            .ok_or(GvnicError::WrongState {
                wanted: "described",
                state: self.state.name(),
            })?;
        // An event the block saw while masked (an earlier frame) fires as soon as it is
        // unmasked, as on a real device: let it, then count from zero, so only the
        // interrupt our frame raises is counted.
        let _ = wait_for(clock, SETTLE_US, || None::<()>);
        irq.disarm();
        let (again, _) = irq.arm().map_err(IrqTestError::NoInterrupts)?;
        if again != message {
            self.route_only(config, block, again, saved);
        }
        let sent_us = clock.now_us();

        let result = self
            .transmit(clock, dma, &dhcp::discover_frame(mac, TRIGGER_XID))
            .and_then(|_| self.await_offer(clock, dma));
        if result.is_ok() {
            let _ = wait_for(clock, IRQ_WAIT_US, || {
                (irq.delivery().count > 0).then_some(())
            });
        }
        let delivery = irq.delivery();
        let pending = self.msix.as_ref().and_then(|m| m.table().pending(block));
        if family == Family::Gqi {
            // Quiet again: a polling driver keeps GQI blocks masked.
            self.doorbells.ring_be(doorbell, IRQ_DOORBELL_MASK);
        }
        result?;
        if delivery.count == 0 {
            return Err(if pending == Some(false) {
                IrqTestError::NotDelivered {
                    entry: block,
                    other: delivery.other,
                }
            } else {
                IrqTestError::NoInterrupt {
                    entry: block,
                    pending,
                    other: delivery.other,
                }
            });
        }
        Ok(VectorResult {
            role: "rx-block",
            entry: block,
            trigger: "DHCP DISCOVER sent; the OFFER received",
            delivery,
            latency_us: delivery.first_us.saturating_sub(sent_us),
            pending,
        })
    }

    /// Waits for our OFFER, dropping anything else that arrives.
    fn await_offer(
        &mut self,
        clock: &dyn Clock,
        dma: &mut crate::dma::DmaPool,
    ) -> Result<(), GvnicError> {
        let deadline = clock.now_us() + FRAME_WAIT_US;
        loop {
            let left = deadline.saturating_sub(clock.now_us());
            if left == 0 {
                return Err(GvnicError::RxTimeout);
            }
            let frame = self.receive(clock, dma, left)?;
            if dhcp::classify(&frame, TRIGGER_XID).is_offer_for(TRIGGER_XID) {
                return Ok(());
            }
        }
    }

    fn route_and_watch_management(
        &self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        irq: &dyn Interrupts,
        message: MsiMessage,
        saved: &Saved,
    ) -> VectorResult {
        let entry = NOTIFY_BLOCKS as u16;
        self.route_only(config, entry, message, saved);
        let started = clock.now_us();
        let _ = wait_for(clock, MGMT_WATCH_US, || {
            (irq.delivery().count > 0).then_some(())
        });
        let delivery = irq.delivery();
        VectorResult {
            role: "management",
            entry,
            trigger: "none a driver can cause (DEVICE_STATUS changes): watched",
            delivery,
            latency_us: delivery.first_us.saturating_sub(started),
            pending: self.msix.as_ref().and_then(|m| m.table().pending(entry)),
        }
    }

    /// Every entry, the control word and the command register back as they were, checked.
    pub(super) fn restore(
        &self,
        config: &dyn ConfigSpace,
        bdf: crate::platform::Bdf,
        saved: &Saved,
    ) -> Result<(), IrqTestError> {
        let Some(msix) = self.msix.as_ref() else {
            return Ok(());
        };
        let table = msix.table();
        // MSI-X back first (off for GQI), so no restored entry fires on the way.
        table.cap.set_control(config, bdf, saved.control);
        for (v, entry) in saved.entries.iter().enumerate() {
            table.view().set_entry(v as u16, *entry);
        }
        config.write16(bdf, COMMAND, saved.command);
        let entries_back = saved
            .entries
            .iter()
            .enumerate()
            .all(|(v, e)| table.view().entry(v as u16) == Some(*e));
        if !entries_back {
            return Err(IrqTestError::NotRestored("an MSI-X entry"));
        }
        if table.cap.control(config, bdf) != saved.control {
            return Err(IrqTestError::NotRestored("the MSI-X control word"));
        }
        if config.read16(bdf, COMMAND) != saved.command {
            return Err(IrqTestError::NotRestored("the command register"));
        }
        Ok(())
    }
}
