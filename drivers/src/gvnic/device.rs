//! The NIC as an explicit state machine:
//! unbound -> AQ up -> described -> configured -> queues up -> (torn down).
//!
//! Each transition is one method; [`Gvnic::bring_up`] runs them up to a target state and
//! retries from the reset when the device resets under us. Everything the device was given
//! is recorded (which ring exists and what it registered, whether MSI-X is programmed) so
//! that [`Gvnic::teardown`] undoes exactly what was done, in the reference's order. The
//! state machine never touches a descriptor: the rings ([`super::ring`]) do, behind their
//! contract, whatever the queue format.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U32, U64};

use crate::dma::DmaPool;
use crate::pci::msix::OwnedMsixTable;
use crate::platform::{wait_for_recovery, Bdf, Clock, ConfigSpace, RegisterWindow};

use super::adminq::{self, AdminQueue, ConfigureDeviceResources, Opcode};
use super::describe::{
    DeviceDescriptor, Family, QueueFormat, DESCRIPTOR_BUF_BYTES, DESCRIPTOR_VERSION,
};
use super::limits::{MtuPlan, RingPlan};
use super::notify::{self, DummyMsix, MsixReport, IRQ_DB_STRIDE, NOTIFY_BLOCKS};
use super::regs::{AqMode, DeviceStatus, Doorbells, Registers};
use super::resources::Resources;
use super::ring::{self, QueueEnv, RxRing, TxRing};
use super::GvnicError;

/// Reset deadline. iPXE gives 500 ms; Linux polls ~10 s before warning. A monitor should
/// not hang, but a slow release must not be mistaken for none: 2 s (policy). A recovery
/// wait: Ctrl-C does not cut it short.
pub const RESET_TIMEOUT_US: u64 = 2_000_000;
/// Whole bring-up attempts (iPXE's GVE_RESET_MAX_RETRY): "the device may decide to add in
/// a few spurious resets".
pub const MAX_ATTEMPTS: u32 = 5;
/// TX completion deadline for one frame (policy).
pub const TX_TIMEOUT_US: u64 = 1_000_000;

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

pub struct Gvnic {
    pub(super) regs: Registers,
    pub(super) doorbells: Doorbells,
    revision: u8,
    pub(super) mode: AqMode,
    pub(super) owner: String,
    pub(super) state: State,
    pub(super) aq: Option<AdminQueue>,
    info: Option<DeviceInfo>,
    pub(super) resources: Option<Resources>,
    pub(super) tx: Option<Box<dyn TxRing>>,
    pub(super) rx: Option<Box<dyn RxRing>>,
    /// `--format`: the format the user asked for (None: our preference order).
    wanted: Option<QueueFormat>,
    /// The format CONFIGURE_DEVICE_RESOURCES was given.
    pub(super) format: Option<QueueFormat>,
    pub(super) msix: Option<DummyMsix>,
    /// `--irq`: completions waited for by interrupt ([`super::irq_wait`]).
    pub(super) irq_session: Option<super::irq_wait::IrqSession>,
    /// Ring and buffer sizes inside the device's option limits, decided at CONFIGURE.
    plan: Option<RingPlan>,
    /// The MTU a DHCP lease asked for (option 26), for [`Gvnic::mtu_plan`].
    lease_mtu: Option<u16>,
    /// (allocations, pages) of an earlier quarantine released by a confirmed reset, for the
    /// caller to report once.
    pub(super) released: Option<(usize, u32)>,
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
            wanted: None,
            format: None,
            msix: None,
            irq_session: None,
            plan: None,
            lease_mtu: None,
            released: None,
            last_attempts: 0,
        })
    }

    /// Gives the driver the function's MSI-X table (BAR1), which DQO formats need. Without
    /// it, DQO bring-up fails with `gvnic-no-msix`.
    pub fn with_msix(mut self, bdf: Bdf, table: OwnedMsixTable) -> Gvnic {
        self.msix = Some(DummyMsix::new(bdf, table));
        self
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

    /// The format the queues were configured in, once configured.
    pub fn format(&self) -> Option<QueueFormat> {
        self.format
    }

    /// The ring and buffer sizes the queues were (or will be) created with, once
    /// configured.
    pub fn ring_plan(&self) -> Option<RingPlan> {
        self.plan
    }

    /// Records the MTU a DHCP lease asked for (None: the lease said nothing).
    pub fn set_lease_mtu(&mut self, mtu: Option<u16>) {
        self.lease_mtu = mtu;
    }

    /// The MTU for the network stack: the lease's when JUMBO_FRAMES (honoured for the
    /// running format) allows it, capped by the data path; None before DESCRIBE.
    pub fn mtu_plan(&self) -> Option<MtuPlan> {
        let info = self.info.as_ref()?;
        let limits = self
            .format
            .or_else(|| info.format.clone().ok())
            .map(|f| info.descriptor.limits(f))
            .unwrap_or_default();
        Some(MtuPlan::new(&info.descriptor, &limits, self.lease_mtu))
    }

    pub fn rx_dropped(&self) -> u32 {
        self.rx.as_ref().map_or(0, |rx| rx.dropped())
    }

    /// An earlier quarantine of this device released by a reset it confirmed since the last
    /// call: (allocations, pages). Reported once.
    pub fn take_released_quarantine(&mut self) -> Option<(usize, u32)> {
        self.released.take()
    }

    /// Asks for a queue format (`--format`), or our preference order (None). A NIC already
    /// configured in another format must be torn down first.
    pub fn want_format(&mut self, wanted: Option<QueueFormat>) -> Result<(), GvnicError> {
        if let (Some(now), Some(want)) = (self.format, wanted) {
            if now != want && self.state >= State::Configured && self.state <= State::QueuesUp {
                return Err(GvnicError::FormatInUse {
                    running: now.name(),
                    wanted: want.name(),
                });
            }
        }
        self.wanted = wanted;
        if let Some(info) = self.info.as_mut() {
            if self.format.is_none() {
                info.format = info.descriptor.choose_format(wanted);
            }
        }
        Ok(())
    }

    /// The MSI-X state, when the driver has the table.
    pub fn msix_report(&self, config: &dyn ConfigSpace) -> Option<MsixReport> {
        self.msix.as_ref().map(|m| m.report(config))
    }

    /// Brings the NIC up to `target` (AqUp, Described, Configured or QueuesUp), retrying the
    /// whole sequence from the reset when the device resets under us. On a failure that
    /// leaves the device in an unknown state, it is reset and its DMA freed (or quarantined
    /// when the reset does not complete) before the error is returned.
    pub fn bring_up(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        target: State,
    ) -> Result<(), GvnicError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.last_attempts = attempt;
            let err = match self.advance(config, clock, dma, target) {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if !err.needs_reset() {
                return Err(err);
            }
            // The device is in an unknown state: get it back to reset before anything else.
            self.reset_and_release(Some(config), clock, dma)?;
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
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        target: State,
    ) -> Result<(), GvnicError> {
        if self.state > State::Unbound
            && self.state < (State::TornDown { quarantined: false })
            && self.holds_nothing()
        {
            // Reset between commands (e.g. live migration): it holds nothing of ours any
            // more. Release our side and start over.
            self.reset_and_release(Some(config), clock, dma)?;
        }
        if matches!(self.state, State::Unbound | State::TornDown { .. }) {
            self.enable_admin_queue(clock, dma)?;
        }
        if target >= State::Described && self.state == State::AqUp {
            self.describe(clock, dma)?;
        }
        if target >= State::Configured && self.state == State::Described {
            self.configure(config, clock, dma)?;
        }
        if target >= State::QueuesUp && self.state == State::Configured {
            self.create_queues(clock, dma)?;
        }
        Ok(())
    }

    /// True when the device reads as holding none of our memory (it reset). Once we handed
    /// it an admin queue, PFN reading 0 decides on every revision ([`AdminQueue::reads_reset`]:
    /// DEVICE_IS_RESET is not trusted to have been cleared by RUN).
    pub(super) fn holds_nothing(&self) -> bool {
        match &self.aq {
            Some(aq) => aq.reads_reset(&self.regs),
            None => self.regs.reads_reset(),
        }
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
        if !self.regs.reads_reset() {
            self.request_reset();
            if !self.wait_reset(clock) {
                return Err(GvnicError::ResetTimeout { quarantined: 0 });
            }
        }
        // The device holds nothing now: anything an earlier bind had to quarantine is safe.
        self.release_quarantine(dma);
        self.aq = Some(AdminQueue::enable(&self.regs, dma, &self.owner, self.mode)?);
        self.state = State::AqUp;
        Ok(())
    }

    fn release_quarantine(&mut self, dma: &mut DmaPool) {
        let (allocations, pages) = dma.release_quarantined(&self.owner);
        if allocations > 0 {
            let (a, p) = self.released.unwrap_or((0, 0));
            self.released = Some((a + allocations, p + pages));
        }
    }

    /// PFN = 0 on every revision (iPXE, proven on GCE at revision 1 too). Linux resets a
    /// revision-1 device with DRIVER_STATUS = RESET instead; we do not write both: should
    /// the device finish the first request at once, the second would reset an
    /// already-reset device, which GCE answers with a delayed reset (iPXE gve.c).
    fn request_reset(&self) {
        self.regs.set_aq_pfn(0);
    }

    /// Polls for the reset's completion for its whole deadline: a recovery wait, which a
    /// Ctrl-C does not cut short (cutting it would quarantine a healthy NIC's memory).
    fn wait_reset(&self, clock: &dyn Clock) -> bool {
        wait_for_recovery(clock, RESET_TIMEOUT_US, || {
            self.regs.reads_reset().then_some(())
        })
        .is_ok()
    }

    /// Every MSI-X vector masked and, given config space, MSI-X off (see
    /// [`DummyMsix::quiesce`]); None when there was nothing to undo.
    pub(super) fn quiesce_msix(&mut self, config: Option<&dyn ConfigSpace>) -> Option<String> {
        self.msix.as_mut().and_then(|m| m.quiesce(config))
    }

    /// Resets the device (unless it already reads reset) and, once it confirms, frees every
    /// DMA buffer it held (and any earlier quarantine of it). If it never confirms, they
    /// are quarantined: it may still write them. Either way the driver forgets the device's
    /// queues. Returns whether the device already read reset.
    pub(super) fn reset_and_release(
        &mut self,
        config: Option<&dyn ConfigSpace>,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<bool, GvnicError> {
        self.quiesce_msix(config);
        // A `--irq` session's saved MSI-X state names DMA targets this release frees: the
        // session ends here (its CPU side is disarmed by `end_irq_waits`).
        self.irq_session = None;
        let already = self.holds_nothing();
        let confirmed = already || {
            self.request_reset();
            self.wait_reset(clock)
        };
        self.aq = None;
        self.resources = None;
        self.tx = None;
        self.rx = None;
        self.format = None;
        self.plan = None;
        if confirmed {
            dma.free_owner(&self.owner);
            self.release_quarantine(dma);
            self.state = State::Unbound;
            Ok(already)
        } else {
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
        let format = descriptor.choose_format(self.wanted);
        self.info = Some(DeviceInfo {
            revision: self.revision,
            aq_mode: self.mode,
            max_tx_queues: self.regs.max_tx_queues(),
            max_rx_queues: self.regs.max_rx_queues(),
            dma_mask_bits: self.regs.dma_mask_bits(),
            link_up: self.regs.device_status().contains(DeviceStatus::LINK_UP),
            descriptor,
            format,
        });
        self.state = State::Described;
        Ok(())
    }

    /// Described -> configured: counter array, notification blocks, IRQs quiet; MSI-X for
    /// DQO.
    fn configure(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<(), GvnicError> {
        let info = self.info.as_ref().ok_or(GvnicError::WrongState {
            wanted: "described",
            state: self.state.name(),
        })?;
        let format = info.format.clone()?;
        let descriptor = &info.descriptor;
        // Decided before the device hears anything: a limit we cannot meet touches nothing.
        let plan = RingPlan::new(descriptor, &descriptor.limits(format))?;
        let wanted_pages = u64::from(ring::registered_pages(format));
        if wanted_pages > descriptor.max_registered_pages {
            return Err(GvnicError::PageBudget {
                wanted: wanted_pages,
                max: descriptor.max_registered_pages,
            });
        }
        // ALL the counters the device described: GCE may pick any of them for a queue and
        // fails queue creation with FAILED_PRECONDITION when it picks one we did not give.
        let num_counters = descriptor.counters;
        if format.family() == Family::Dqo {
            let msix = self.msix.as_mut().ok_or(GvnicError::NoMsix)?;
            msix.program(config, dma, &self.owner)?;
        }
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
                // Notification blocks take MSI-X vectors 0..n-1, management last (everyone
                // uses 0).
                ntfy_blk_msix_base_idx: U32::new(0),
                queue_format: format as u8,
                padding: [0; 7],
            },
        );
        self.resources = Some(Resources {
            counters,
            num_counters,
            irq_dbs,
            irq_doorbells: Vec::new(),
        });
        self.format = Some(format);
        self.plan = Some(plan);
        self.execute(clock, dma, Opcode::ConfigureDeviceResources, &command)?;
        self.state = State::Configured;
        let indexes = notify::read_irq_doorbells(dma, &irq_dbs, &self.doorbells)?;
        notify::quiet(format.family(), &self.doorbells, &indexes);
        if let Some(res) = self.resources.as_mut() {
            res.irq_doorbells = indexes;
        }
        Ok(())
    }

    /// DQO, once a queue exists: unmask its vector and arm its IRQ doorbell (0x19).
    fn arm_queue(&self, ntfy_id: u32) {
        if self.format.map(QueueFormat::family) != Some(Family::Dqo) {
            return;
        }
        if let Some(msix) = &self.msix {
            msix.unmask(ntfy_id as u16);
        }
        if let Some(index) = self
            .resources
            .as_ref()
            .and_then(|r| r.irq_doorbells.get(ntfy_id as usize))
        {
            self.doorbells.ring_le(*index, super::regs::DQO_IRQ_REARM);
        }
    }

    /// Configured -> queues up: page lists, TX then RX queue, RX buffers posted.
    fn create_queues(&mut self, clock: &dyn Clock, dma: &mut DmaPool) -> Result<(), GvnicError> {
        let plan = self.plan.ok_or(GvnicError::WrongState {
            wanted: "configured",
            state: self.state.name(),
        })?;
        let format = self.format.ok_or(GvnicError::WrongState {
            wanted: "configured",
            state: self.state.name(),
        })?;
        let counters = self.resources.as_ref().map_or(0, |r| r.num_counters);
        // Every allocation is recorded in `self` before the device hears of it, so a
        // failure part-way leaves teardown an exact list of what to undo.
        self.tx = Some(ring::tx_ring(format, dma, &self.owner, &plan)?);
        self.rx = Some(ring::rx_ring(format, dma, &self.owner, &plan)?);
        let aq = self.aq.as_mut().ok_or(GvnicError::WrongState {
            wanted: "with its admin queue up",
            state: "unbound",
        })?;
        let mut env = QueueEnv {
            aq,
            regs: &self.regs,
            doorbells: &self.doorbells,
            clock,
            dma,
            owner: &self.owner,
            counters,
        };
        let (tx, rx) = match (self.tx.as_mut(), self.rx.as_mut()) {
            (Some(tx), Some(rx)) => (tx, rx),
            _ => unreachable!("both rings were just allocated"),
        };
        tx.register(&mut env)?;
        rx.register(&mut env)?;
        tx.create(&mut env)?;
        let (tx_ntfy, rx_ntfy) = (tx.ntfy_id(), rx.ntfy_id());
        self.arm_queue(tx_ntfy);
        let (Some(aq), Some(rx)) = (self.aq.as_mut(), self.rx.as_mut()) else {
            unreachable!("held above");
        };
        let mut env = QueueEnv {
            aq,
            regs: &self.regs,
            doorbells: &self.doorbells,
            clock,
            dma,
            owner: &self.owner,
            counters,
        };
        rx.create(&mut env)?;
        self.arm_queue(rx_ntfy);
        self.state = State::QueuesUp;
        Ok(())
    }
}
