//! The NIC as an explicit state machine:
//! unbound -> AQ up -> described -> configured -> queues up -> (torn down).
//!
//! Each transition is one method; [`Gvnic::bring_up`] runs them up to a target state and
//! retries from the reset when the device resets under us. Everything the device was given
//! is recorded (which queue exists, which page list is registered) so that
//! [`Gvnic::teardown`] undoes exactly what was done, in the reference's order.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U32, U64};

use crate::dma::{DmaBuf, DmaPool};
use crate::platform::{wait_for, Clock, RegisterWindow, WaitError};

use super::adminq::{self, AdminQueue, ById, ConfigureDeviceResources, NoPayload, Opcode};
use super::describe::{DeviceDescriptor, QueueFormat, DESCRIPTOR_BUF_BYTES, DESCRIPTOR_VERSION};
use super::regs::{AqMode, Doorbells, DriverStatus, Registers, IRQ_DOORBELL_MASK};
use super::rx::{RxQueue, RX_QPL_PAGES};
use super::tx::{TxQueue, TX_QPL_PAGES};
use super::GvnicError;

/// Reset deadline. iPXE gives 500 ms; Linux polls ~10 s before warning. A monitor should
/// not hang, but a slow release must not be mistaken for none: 2 s.
pub const RESET_TIMEOUT_US: u64 = 2_000_000;
/// Whole bring-up attempts (iPXE's GVE_RESET_MAX_RETRY): "the device may decide to add in
/// a few spurious resets".
pub const MAX_ATTEMPTS: u32 = 5;
/// TX completion deadline for one frame.
pub const TX_TIMEOUT_US: u64 = 1_000_000;
/// Notification blocks: iPXE's two (TX = 0, RX = 1); GCE accepts zero but then fails to
/// create more than one queue.
pub const NOTIFY_BLOCKS: u32 = 2;
/// Bytes between notification-block records (Linux's cache-line-aligned `gve_irq_db`).
pub const IRQ_DB_STRIDE: u32 = 64;

/// Where the NIC is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Nothing handed to the device (or it confirmed a reset).
    Unbound,
    AqUp,
    Described,
    Configured,
    QueuesUp,
    /// Torn down; `quarantined` when the device never confirmed its reset.
    TornDown {
        quarantined: bool,
    },
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unbound => "unbound",
            State::AqUp => "admin queue up",
            State::Described => "described",
            State::Configured => "configured",
            State::QueuesUp => "queues up",
            State::TornDown { quarantined: false } => "torn down",
            State::TornDown { quarantined: true } => "torn down (DMA quarantined)",
        }
    }
}

/// What `gvnic describe` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub revision: u8,
    pub aq_mode: AqMode,
    pub max_tx_queues: u32,
    pub max_rx_queues: u32,
    pub dma_mask_bits: u8,
    pub link_up: bool,
    pub descriptor: DeviceDescriptor,
    /// The chosen format, or why none could be.
    pub format: Result<QueueFormat, GvnicError>,
}

/// One reported teardown step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownStep {
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Counter array and notification blocks, handed over by CONFIGURE_DEVICE_RESOURCES.
/// (The notification-block array is only read once, right after CONFIGURE.)
pub(super) struct Resources {
    pub(super) counters: DmaBuf,
    pub(super) num_counters: u16,
}

pub struct Gvnic {
    pub(super) regs: Registers,
    pub(super) doorbells: Doorbells,
    revision: u8,
    pub(super) mode: AqMode,
    owner: String,
    pub(super) state: State,
    aq: Option<AdminQueue>,
    info: Option<DeviceInfo>,
    pub(super) resources: Option<Resources>,
    pub(super) tx: Option<TxQueue>,
    pub(super) rx: Option<RxQueue>,
    /// Bring-up attempts the last `bring_up` needed (1 = no spurious reset).
    pub last_attempts: u32,
}

impl Gvnic {
    /// Takes the mapped BAR0 and BAR2 and the PCI revision (which decides the admin-queue
    /// hand-over). Touches nothing yet. `owner` names the NIC in the DMA ledger.
    pub fn new(
        bar0: Box<dyn RegisterWindow>,
        bar2: Box<dyn RegisterWindow>,
        revision: u8,
        owner: &str,
    ) -> Result<Gvnic, GvnicError> {
        Ok(Gvnic {
            regs: Registers::new(bar0)?,
            doorbells: Doorbells::new(bar2)?,
            revision,
            mode: AqMode::for_revision(revision),
            owner: String::from(owner),
            state: State::Unbound,
            aq: None,
            info: None,
            resources: None,
            tx: None,
            rx: None,
            last_attempts: 0,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn info(&self) -> Option<&DeviceInfo> {
        self.info.as_ref()
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn rx_dropped(&self) -> u32 {
        self.rx.as_ref().map_or(0, |rx| rx.dropped)
    }

    /// Brings the NIC up to `target` (AqUp, Described, Configured or QueuesUp), retrying the
    /// whole sequence from the reset when the device resets under us. On a failure that
    /// leaves the device in an unknown state, it is reset and its DMA freed (or quarantined
    /// when the reset does not complete) before the error is returned.
    pub fn bring_up(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        target: State,
    ) -> Result<(), GvnicError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.last_attempts = attempt;
            let err = match self.advance(clock, dma, target) {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if !err.needs_reset() {
                return Err(err);
            }
            // The device is in an unknown state: get it back to reset before anything else.
            self.reset_and_release(clock, dma)?;
            match err {
                GvnicError::DeviceReset { .. } if attempt < MAX_ATTEMPTS => continue,
                GvnicError::DeviceReset { .. } => {
                    return Err(GvnicError::ResetLoop { attempts: attempt })
                }
                other => return Err(other),
            }
        }
    }

    fn advance(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        target: State,
    ) -> Result<(), GvnicError> {
        if self.state > State::Unbound
            && self.state < (State::TornDown { quarantined: false })
            && self.regs.reads_reset(self.mode)
        {
            // Reset between commands (e.g. live migration): it holds nothing of ours any
            // more. Release our side and start over.
            self.reset_and_release(clock, dma)?;
        }
        if matches!(self.state, State::Unbound | State::TornDown { .. }) {
            self.enable_admin_queue(clock, dma)?;
        }
        if target >= State::Described && self.state == State::AqUp {
            self.describe(clock, dma)?;
        }
        if target >= State::Configured && self.state == State::Described {
            self.configure(clock, dma)?;
        }
        if target >= State::QueuesUp && self.state == State::Configured {
            self.create_queues(clock, dma)?;
        }
        Ok(())
    }

    /// Unbound -> AQ up: reset if needed, then hand over the admin queue.
    fn enable_admin_queue(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<(), GvnicError> {
        if self.regs.device_status_raw() == u32::MAX && self.regs.max_tx_queues() == u32::MAX {
            return Err(GvnicError::NotResponding);
        }
        // Never reset a device that already reads reset: on GCE that schedules a delayed
        // second reset, and a driver that answers each reset with a reset loops forever.
        if !self.regs.reads_reset(self.mode) {
            self.request_reset();
            self.wait_reset(clock)?;
        }
        self.aq = Some(AdminQueue::enable(&self.regs, dma, &self.owner, self.mode)?);
        self.state = State::AqUp;
        Ok(())
    }

    fn request_reset(&self) {
        match self.mode {
            AqMode::Pfn => self.regs.set_aq_pfn(0),
            AqMode::BaseLength => self.regs.set_driver_status(DriverStatus::RESET),
        }
    }

    fn wait_reset(&self, clock: &dyn Clock) -> Result<(), GvnicError> {
        match wait_for(clock, RESET_TIMEOUT_US, || {
            self.regs.reads_reset(self.mode).then_some(())
        }) {
            Ok(()) => Ok(()),
            Err(WaitError::TimedOut) => Err(GvnicError::ResetTimeout { quarantined: 0 }),
            Err(WaitError::Interrupted) => Err(GvnicError::Interrupted),
        }
    }

    /// Resets the device (unless it already reads reset) and, once it confirms, frees every
    /// DMA buffer it held. If it never confirms, they are quarantined: it may still write
    /// them. Either way the driver forgets the device's queues.
    pub(super) fn reset_and_release(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<bool, GvnicError> {
        let already = self.regs.reads_reset(self.mode);
        if !already {
            self.request_reset();
        }
        let waited = if already {
            Ok(())
        } else {
            self.wait_reset(clock)
        };
        self.aq = None;
        self.resources = None;
        self.tx = None;
        self.rx = None;
        match waited {
            Ok(()) => {
                dma.free_owner(&self.owner);
                self.state = State::Unbound;
                Ok(already)
            }
            Err(_) => {
                let reason = alloc::format!(
                    "{}: reset not confirmed within {} ms",
                    self.owner,
                    RESET_TIMEOUT_US / 1000
                );
                let quarantined = dma.quarantine_owner(&self.owner, &reason);
                self.state = State::TornDown { quarantined: true };
                Err(GvnicError::ResetTimeout { quarantined })
            }
        }
    }

    /// Runs one admin command on the live queue.
    fn execute(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        opcode: Opcode,
        command: &[u8; adminq::AQ_ENTRY_BYTES],
    ) -> Result<(), GvnicError> {
        let state = self.state.name();
        let aq = self.aq.as_mut().ok_or(GvnicError::WrongState {
            wanted: "with its admin queue up",
            state,
        })?;
        aq.execute(&self.regs, clock, dma, opcode, command)
    }

    /// AQ up -> described.
    fn describe(&mut self, clock: &dyn Clock, dma: &mut DmaPool) -> Result<(), GvnicError> {
        let buf = dma.alloc(&self.owner, "gvnic descriptor", DESCRIPTOR_BUF_BYTES)?;
        let command = adminq::encode(
            Opcode::DescribeDevice,
            &adminq::DescribeDevice {
                descriptor_addr: U64::new(dma.device_addr(&buf, 0)?),
                descriptor_version: U32::new(DESCRIPTOR_VERSION),
                available_length: U32::new(DESCRIPTOR_BUF_BYTES as u32),
            },
        );
        self.execute(clock, dma, Opcode::DescribeDevice, &command)?;
        let mut raw = alloc::vec![0u8; DESCRIPTOR_BUF_BYTES];
        dma.read(&buf, 0, &mut raw)?;
        // The device is done with the buffer once the command completed.
        dma.free(buf)?;
        let descriptor = DeviceDescriptor::parse(&raw)?;
        let format = descriptor.choose_format();
        self.info = Some(DeviceInfo {
            revision: self.revision,
            aq_mode: self.mode,
            max_tx_queues: self.regs.max_tx_queues(),
            max_rx_queues: self.regs.max_rx_queues(),
            dma_mask_bits: self.regs.dma_mask_bits(),
            link_up: self
                .regs
                .device_status()
                .contains(super::regs::DeviceStatus::LINK_UP),
            descriptor,
            format,
        });
        self.state = State::Described;
        Ok(())
    }

    fn descriptor(&self) -> Result<&DeviceDescriptor, GvnicError> {
        self.info
            .as_ref()
            .map(|info| &info.descriptor)
            .ok_or(GvnicError::WrongState {
                wanted: "described",
                state: self.state.name(),
            })
    }

    /// Described -> configured: counter array, notification blocks, IRQs masked.
    fn configure(&mut self, clock: &dyn Clock, dma: &mut DmaPool) -> Result<(), GvnicError> {
        let info = self.info.as_ref().ok_or(GvnicError::WrongState {
            wanted: "described",
            state: self.state.name(),
        })?;
        let format = info.format.clone()?;
        let descriptor = &info.descriptor;
        let wanted_pages = u64::from(TX_QPL_PAGES + RX_QPL_PAGES);
        if wanted_pages > descriptor.max_registered_pages {
            return Err(GvnicError::PageBudget {
                wanted: wanted_pages,
                max: descriptor.max_registered_pages,
            });
        }
        // ALL the counters the device described: GCE may pick any of them for a queue and
        // fails queue creation with FAILED_PRECONDITION when it picks one we did not give.
        let num_counters = descriptor.counters;
        let counters = dma.alloc(&self.owner, "gvnic counters", usize::from(num_counters) * 4)?;
        let irq_dbs = dma.alloc(
            &self.owner,
            "gvnic irq doorbells",
            (NOTIFY_BLOCKS * IRQ_DB_STRIDE) as usize,
        )?;
        let command = adminq::encode(
            Opcode::ConfigureDeviceResources,
            &ConfigureDeviceResources {
                counter_array: U64::new(dma.device_addr(&counters, 0)?),
                irq_db_addr: U64::new(dma.device_addr(&irq_dbs, 0)?),
                num_counters: U32::new(u32::from(num_counters)),
                num_irq_dbs: U32::new(NOTIFY_BLOCKS),
                irq_db_stride: U32::new(IRQ_DB_STRIDE),
                // Notification blocks take MSI-X vectors 0..n-1 (everyone uses 0; we use
                // no MSI-X at all: GQI completions land in memory regardless).
                ntfy_blk_msix_base_idx: U32::new(0),
                queue_format: format as u8,
                padding: [0; 7],
            },
        );
        self.resources = Some(Resources {
            counters,
            num_counters,
        });
        self.execute(clock, dma, Opcode::ConfigureDeviceResources, &command)?;
        self.state = State::Configured;
        // Mask every notification block's interrupt: we poll, and an unmasked GQI IRQ with
        // no MSI-X set up would only be noise.
        for block in 0..NOTIFY_BLOCKS {
            let index = u32::from_be(dma.read_u32(&irq_dbs, (block * IRQ_DB_STRIDE) as usize)?);
            let index = self.doorbells.check(index, "IRQ doorbell index")?;
            self.doorbells.ring(index, IRQ_DOORBELL_MASK);
        }
        Ok(())
    }

    /// Configured -> queues up: page lists, TX then RX queue, RX buffers posted.
    fn create_queues(&mut self, clock: &dyn Clock, dma: &mut DmaPool) -> Result<(), GvnicError> {
        let descriptor = self.descriptor()?.clone();
        let counters = self.resources.as_ref().map_or(0, |r| r.num_counters);
        // Every allocation is recorded in `self` before the device hears of it, so a
        // failure part-way leaves teardown an exact list of what to undo.
        self.tx = Some(TxQueue::alloc(
            dma,
            &self.owner,
            descriptor.tx_queue_entries,
        )?);
        self.rx = Some(RxQueue::alloc(
            dma,
            &self.owner,
            descriptor.rx_queue_entries,
        )?);
        let (regs, doorbells, owner) = (&self.regs, &self.doorbells, self.owner.as_str());
        let aq = self.aq.as_mut().ok_or(GvnicError::WrongState {
            wanted: "with its admin queue up",
            state: "unbound",
        })?;
        let (tx, rx) = match (self.tx.as_mut(), self.rx.as_mut()) {
            (Some(tx), Some(rx)) => (tx, rx),
            _ => unreachable!("both queues were just allocated"),
        };
        tx.qpl.register(aq, regs, clock, dma, owner)?;
        rx.qpl.register(aq, regs, clock, dma, owner)?;
        tx.create(aq, regs, clock, dma, doorbells, counters)?;
        rx.create(aq, regs, clock, dma, doorbells, counters)?;
        self.state = State::QueuesUp;
        Ok(())
    }

    /// Undoes everything, in the reference's order: DESTROY_RX_QUEUE, DESTROY_TX_QUEUE,
    /// UNREGISTER_PAGE_LIST (RX, then TX), DECONFIGURE_DEVICE_RESOURCES, then the reset,
    /// whose confirmed completion is what allows freeing the DMA. Each step is reported.
    /// An admin step that fails does not stop the teardown: the reset releases everything
    /// anyway. Returns the first failure, if any.
    pub fn teardown(
        &mut self,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        report: &mut dyn FnMut(TeardownStep),
    ) -> Result<(), GvnicError> {
        let mut first_error: Option<GvnicError> = None;
        // Once the admin queue stops answering (timeout, reset), further commands are
        // pointless: skip to the reset.
        let mut aq_alive = self.aq.is_some();
        let mut steps: Vec<(&'static str, Opcode, u32)> = Vec::new();
        if self.rx.as_ref().is_some_and(|rx| rx.created) {
            steps.push(("destroy-rx-queue", Opcode::DestroyRxQueue, 0));
        }
        if self.tx.as_ref().is_some_and(|tx| tx.created) {
            steps.push(("destroy-tx-queue", Opcode::DestroyTxQueue, 0));
        }
        if let Some(rx) = self.rx.as_ref().filter(|rx| rx.qpl.registered) {
            steps.push(("unregister-rx-qpl", Opcode::UnregisterPageList, rx.qpl.id));
        }
        if let Some(tx) = self.tx.as_ref().filter(|tx| tx.qpl.registered) {
            steps.push(("unregister-tx-qpl", Opcode::UnregisterPageList, tx.qpl.id));
        }
        if self.state >= State::Configured && self.state != (State::TornDown { quarantined: true })
        {
            steps.push(("deconfigure", Opcode::DeconfigureDeviceResources, 0));
        }
        let live_buffers = |dma: &DmaPool, owner: &str| {
            dma.ledger()
                .iter()
                .filter(|a| a.owner == owner && a.quarantine.is_none())
                .count()
        };
        let nothing_bound = self.aq.is_none()
            && live_buffers(dma, &self.owner) == 0
            && self.state != (State::TornDown { quarantined: true });
        if nothing_bound && steps.is_empty() {
            return Ok(());
        }
        for (step, opcode, id) in steps {
            if !aq_alive {
                report(TeardownStep {
                    step,
                    ok: false,
                    detail: String::from(
                        "skipped: the admin queue is not answering; the reset releases it",
                    ),
                });
                continue;
            }
            let command = match opcode {
                Opcode::DeconfigureDeviceResources => adminq::encode(opcode, &NoPayload {}),
                _ => adminq::encode(opcode, &ById { id: U32::new(id) }),
            };
            let result = self.execute(clock, dma, opcode, &command);
            match result {
                Ok(()) => report(TeardownStep {
                    step,
                    ok: true,
                    detail: alloc::format!("{} passed", opcode.name()),
                }),
                Err(err) => {
                    if !matches!(err, GvnicError::AdminStatus { .. }) {
                        aq_alive = false;
                    }
                    report(TeardownStep {
                        step,
                        ok: false,
                        detail: alloc::format!("{err}"),
                    });
                    first_error.get_or_insert(err);
                }
            }
        }
        let buffers = live_buffers(dma, &self.owner);
        match self.reset_and_release(clock, dma) {
            Ok(already) => {
                report(TeardownStep {
                    step: "reset",
                    ok: true,
                    detail: String::from(if already {
                        "device already reads reset (not reset again: GCE would schedule another)"
                    } else {
                        "device confirmed the reset and released the admin queue"
                    }),
                });
                report(TeardownStep {
                    step: "release-dma",
                    ok: true,
                    detail: alloc::format!("{buffers} DMA buffer(s) scrubbed and freed"),
                });
                self.state = State::TornDown { quarantined: false };
            }
            Err(err) => {
                report(TeardownStep {
                    step: "reset",
                    ok: false,
                    detail: alloc::format!("{err}"),
                });
                report(TeardownStep {
                    step: "release-dma",
                    ok: false,
                    detail: alloc::format!(
                        "{buffers} DMA buffer(s) quarantined, never reused this boot"
                    ),
                });
                // The quarantine is the lasting consequence; it outranks earlier failures.
                first_error = Some(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
