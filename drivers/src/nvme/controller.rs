//! The controller state machine: bind (reset, admin queue, enable, identify, I/O queue
//! pair), admin commands, and teardown in reverse.
//!
//! States: `bind` either returns a `Ready` controller or undoes what it did. A READ or admin
//! command that times out or is interrupted with commands still at the device is recovered
//! (`recover`: controller reset within CAP.TO, then the queues again), so the controller is
//! `Ready` once more; only when the reset itself is not confirmed does it stay `Failed`: it may
//! still own DMA memory, so nothing is freed and nothing more is submitted until `teardown`.
//! `teardown` consumes the controller; the function can be bound again.
//!
//! Waits: the ones a user is in (RDY after our enable, admin and I/O completions) end on
//! Ctrl-C; the recovery waits (RDY = 0 after a disable, SHST, draining, everything inside
//! `recover`) ignore it and keep their deadline (`wait_for_recovery`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::{NvmeError, Wait};
use super::identify::{
    parse_active_list, ControllerIdentity, NamespaceIdentity, CNS_ACTIVE_NAMESPACES,
    CNS_CONTROLLER, CNS_NAMESPACE, IDENTIFY_BYTES,
};
use super::queue::{CompletionEntry, Queue, SubmissionEntry};
use super::regs::{self, Cap, Cc, Csts};
use super::status::CommandStatus;
use crate::dma::{DmaBuf, PAGE_SIZE};
use crate::pci::{self, BarInfo};
use crate::platform::{wait_for, wait_for_recovery, Bdf, Clock, Hw, RegisterWindow, WaitError};

const ADMIN_ENTRIES: u16 = 32;
/// I/O queue depth cap: 64 SQEs fill exactly one page, and 8 reads in flight need far less.
const IO_ENTRIES_MAX: u16 = 64;
pub(crate) const IO_QID: u16 = 1;
/// Admin commands complete in microseconds on QEMU and milliseconds on hardware; 10 s is
/// generous yet still tells a dead controller from a slow one.
const ADMIN_TIMEOUT_US: u64 = 10_000_000;
/// Per READ command, unless the caller sets another (`set_io_timeout_us`; `nvme read
/// --timeout`). Policy: Linux's default I/O timeout (nvme_core.io_timeout = 30 s). Persistent
/// Disk can stall far longer (GCE's guest config makes Linux wait ~forever, facts §8.1), but
/// here a user watches: Ctrl-C ends the wait sooner, `--timeout` waits longer, and a timeout
/// costs only a controller reset, not the binding.
pub const IO_TIMEOUT_US: u64 = 30_000_000;
/// Shutdown bound when Identify gives no RTD3E.
const SHUTDOWN_TIMEOUT_US: u64 = 5_000_000;
/// The largest single transfer we issue even when MDTS allows more (bounce pool budget).
pub(crate) const MAX_TRANSFER: u64 = 1 << 20;
/// Namespaces listed at most when falling back from CNS 02h to probing every NSID.
const MAX_PROBED_NAMESPACES: u32 = 1024;

const OPC_DELETE_IO_SQ: u8 = 0x00;
const OPC_CREATE_IO_SQ: u8 = 0x01;
const OPC_DELETE_IO_CQ: u8 = 0x04;
const OPC_CREATE_IO_CQ: u8 = 0x05;
const OPC_IDENTIFY: u8 = 0x06;
const OPC_SET_FEATURES: u8 = 0x09;
const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;
/// Create I/O CQ/SQ CDW11: physically contiguous (IEN = 0 and IV = 0: we poll).
const QUEUE_PHYS_CONTIGUOUS: u32 = 1 << 0;

/// Class code of an NVM Express controller: mass storage / NVM / NVMe.
pub const NVME_CLASS_CODE: u32 = 0x01_08_02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Admin and I/O queues live: reads allowed.
    Ready,
    /// Something went wrong that may leave the controller owning DMA memory.
    Failed,
}

/// One teardown step, for the command to print and frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownReport {
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub struct Controller {
    pub bdf: Bdf,
    pub bar: BarInfo,
    /// Virtual address of the register window.
    pub window: u64,
    mapped_here: bool,
    pub(crate) regs: Box<dyn RegisterWindow>,
    pub cap: Cap,
    pub version: u32,
    pub(crate) owner: String,
    pub(crate) admin: Option<Queue>,
    pub(crate) io: Option<Queue>,
    scratch: Option<DmaBuf>,
    pub identity: Option<ControllerIdentity>,
    pub namespaces: Vec<NamespaceIdentity>,
    pub(crate) state: State,
    failure: Option<String>,
    next_cid: u16,
    /// CC.EN written with queues the device could DMA to.
    device_may_dma: bool,
    /// CSTS.RDY was seen at 1 after our enable.
    ready_confirmed: bool,
    /// False once an admin command timed out: its completion may still arrive.
    admin_usable: bool,
    /// Inside `recover`: every wait is a recovery wait (a pending Ctrl-C is ignored).
    recovering: bool,
    /// Per-READ deadline.
    pub(crate) io_timeout_us: u64,
    /// Command register Interrupt Disable as found at bind (restored at teardown).
    intx_was_disabled: bool,
    /// Quarantined pages released since the caller last asked (`take_releases`).
    releases: Vec<QuarantineRelease>,
}

/// Pages quarantined by an earlier binding of this device, freed because a reset of the
/// device was confirmed since (it can no longer write them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRelease {
    /// The ledger owner ("nvme 00:04.0").
    pub owner: String,
    pub allocations: usize,
    pub pages: u32,
    /// What confirmed the reset.
    pub after: &'static str,
}

impl Controller {
    /// Brings the controller at `bdf` up to `Ready`, or undoes everything and says why.
    pub fn bind(hw: &mut Hw, bdf: Bdf) -> Result<Controller, NvmeError> {
        if hw.config.read16(bdf, pci::regs::VENDOR_ID) == pci::regs::NO_VENDOR {
            return Err(NvmeError::Pci(pci::PciError::NoSuchFunction(bdf)));
        }
        let class = hw.config.read32(bdf, pci::regs::CLASS_DWORD) >> 8;
        if class != NVME_CLASS_CODE {
            return Err(NvmeError::Unsupported(
                "not an NVMe controller (class code is not 010802)",
            ));
        }
        let (mapping, bar) = pci::map_bar(hw, bdf, 0, true)?;
        let raw_cap = regs::read64(&*mapping.regs, regs::CAP);
        let cap = Cap::from_raw(raw_cap);
        let mut controller = Controller {
            bdf,
            bar,
            window: mapping.window,
            mapped_here: mapping.newly_mapped,
            version: mapping.regs.read32(regs::VS),
            regs: mapping.regs,
            cap,
            owner: format!("nvme {bdf}"),
            admin: None,
            io: None,
            scratch: None,
            identity: None,
            namespaces: Vec::new(),
            state: State::Ready,
            failure: None,
            next_cid: 0,
            device_may_dma: false,
            ready_confirmed: false,
            admin_usable: true,
            recovering: false,
            io_timeout_us: IO_TIMEOUT_US,
            // We poll: mask the INTx pin while we own the function (facts §7.1 INTMS/INTMC
            // are undefined with MSI-X; the command register bit is what every function has).
            intx_was_disabled: pci::set_intx_disabled(hw.config, bdf, true),
            releases: Vec::new(),
        };
        match controller.bring_up(hw, raw_cap) {
            Ok(()) => Ok(controller),
            Err(err) => {
                controller.fail(&err);
                let _ = controller.teardown(hw);
                Err(err)
            }
        }
    }

    fn bring_up(&mut self, hw: &mut Hw, raw_cap: u64) -> Result<(), NvmeError> {
        if raw_cap == u64::MAX {
            return Err(NvmeError::Protocol(
                "registers read all ones (device not decoding?)",
            ));
        }
        if !self.cap.nvm_command_set {
            return Err(NvmeError::Unsupported("no NVM command set in CAP.CSS"));
        }
        if self.cap.mpsmin != 0 {
            return Err(NvmeError::Unsupported(
                "4 KiB memory pages (CAP.MPSMIN > 0)",
            ));
        }
        if (self.bar.size as usize) < self.cap.doorbell(IO_QID, true) + 4 {
            return Err(NvmeError::Unsupported(
                "BAR0 too small for the I/O queue doorbells",
            ));
        }
        if self.disable(hw.clock)? {
            self.release_quarantine(hw, "reset confirmed at bind (CSTS.RDY 1 -> 0)");
        }
        self.start_admin(hw)?;
        self.scratch = Some(hw.dma.alloc(&self.owner, "identify", IDENTIFY_BYTES)?);
        self.load_identity(hw)?;
        self.create_io_queues(hw)?;
        Ok(())
    }

    /// Fresh admin queue, CC, EN = 1, and the wait for RDY = 1.
    fn start_admin(&mut self, hw: &mut Hw) -> Result<(), NvmeError> {
        let admin = Queue::new(hw.dma, &self.owner, 0, ADMIN_ENTRIES, &self.cap)?;
        let regs = &*self.regs;
        let size = (ADMIN_ENTRIES - 1) as u32;
        regs.write32(regs::AQA, size | size << 16);
        regs::write64(regs, regs::ASQ, hw.dma.device_addr(&admin.sq, 0)?);
        regs::write64(regs, regs::ACQ, hw.dma.device_addr(&admin.cq, 0)?);
        self.admin = Some(admin);
        // MPS = 0 (4 KiB), CSS = NVM, 64/16-byte I/O entries; then EN as a second write so
        // the configuration is in place before the controller looks at it.
        let cc = regs::CC_CSS_NVM | regs::CC_IOSQES_64 | regs::CC_IOCQES_16;
        regs.write32(regs::CC, cc);
        self.device_may_dma = true;
        regs.write32(regs::CC, cc | Cc::EN.bits());
        self.wait_csts(hw.clock, Wait::Ready, self.cap.ready_timeout_us(), |csts| {
            csts.contains(Csts::RDY)
        })?;
        self.ready_confirmed = true;
        self.admin_usable = true;
        Ok(())
    }

    /// Frees what an earlier binding quarantined, now that a reset was confirmed.
    fn release_quarantine(&mut self, hw: &mut Hw, after: &'static str) {
        let (allocations, pages) = hw.dma.release_quarantined(&self.owner);
        if allocations > 0 {
            self.releases.push(QuarantineRelease {
                owner: self.owner.clone(),
                allocations,
                pages,
                after,
            });
        }
    }

    /// Quarantine releases since the last call, for the command to report.
    pub fn take_releases(&mut self) -> Vec<QuarantineRelease> {
        core::mem::take(&mut self.releases)
    }

    /// The per-READ deadline (default [`IO_TIMEOUT_US`]).
    pub fn set_io_timeout_us(&mut self, timeout_us: u64) {
        self.io_timeout_us = timeout_us.max(1);
    }

    /// Brings a controller that has commands stuck at it back to `Ready` without a teardown:
    /// CC.EN = 0 and CSTS.RDY = 0 within CAP.TO (a controller reset ends every outstanding
    /// command), then `released` runs (the caller frees what those commands might have
    /// written), then a fresh admin queue, enable and I/O queues. Every wait here is a
    /// recovery wait. When the reset is not confirmed the controller is `Failed` and
    /// `released` does not run: the device may still own those pages.
    pub(crate) fn recover(
        &mut self,
        hw: &mut Hw,
        why: &NvmeError,
        released: &mut dyn FnMut(&mut crate::dma::DmaPool),
    ) -> Result<(), NvmeError> {
        self.recovering = true;
        let result = self.reset_and_restart(hw, released);
        self.recovering = false;
        match &result {
            Ok(()) => {
                self.state = State::Ready;
                self.failure = None;
            }
            Err(err) => {
                self.state = State::Failed;
                self.admin_usable = false;
                self.failure = Some(format!("{why}; recovery failed: {err}"));
            }
        }
        result
    }

    fn reset_and_restart(
        &mut self,
        hw: &mut Hw,
        released: &mut dyn FnMut(&mut crate::dma::DmaPool),
    ) -> Result<(), NvmeError> {
        let was_ready = self.ready_confirmed;
        let observed = self.disable(hw.clock)?;
        if !(observed || was_ready) {
            return Err(NvmeError::Protocol(
                "the controller never confirmed it was enabled, so its reset proves nothing",
            ));
        }
        // Reset confirmed: nothing of ours is in use by the device any more.
        released(hw.dma);
        for queue in [self.io.take(), self.admin.take()].into_iter().flatten() {
            hw.dma.free(queue.sq)?;
            hw.dma.free(queue.cq)?;
        }
        self.release_quarantine(hw, "reset confirmed during recovery (CSTS.RDY 1 -> 0)");
        self.ready_confirmed = false;
        self.start_admin(hw)?;
        self.create_io_queues(hw)
    }

    /// CC.EN = 0 and wait for RDY = 0, honouring "EN may not change while RDY lags".
    /// Both waits are recovery waits. Ok(true) when the controller was seen ready (RDY = 1)
    /// and then reset (RDY = 0): a confirmed reset.
    fn disable(&mut self, clock: &dyn Clock) -> Result<bool, NvmeError> {
        let cc = Cc::from_bits_retain(self.regs.read32(regs::CC));
        let mut csts = regs::csts(&*self.regs);
        if cc.contains(Cc::EN) && !csts.contains(Csts::RDY) && !csts.contains(Csts::CFS) {
            // An enable is still in progress (ours, cut short, or firmware's): let it finish.
            let regs = &*self.regs;
            let _ = bounded_recovery(clock, self.cap.ready_timeout_us(), Wait::Ready, || {
                let now = regs::csts(regs);
                (now.contains(Csts::RDY) || now.contains(Csts::CFS)).then_some(Ok(()))
            });
            csts = regs::csts(regs);
        }
        let was_ready = csts.contains(Csts::RDY);
        if cc.contains(Cc::EN) {
            let cleared = cc.bits() & !(Cc::EN.bits() | regs::CC_SHN_MASK);
            self.regs.write32(regs::CC, cleared);
        }
        // RDY = 0, and a fatal status cleared by the reset (that is what proves a failed
        // controller stopped); a CFS that stays set after RDY = 0 is not an error here, the
        // caller sees it in CSTS.
        let regs = &*self.regs;
        let settled = bounded_recovery(clock, self.cap.ready_timeout_us(), Wait::NotReady, || {
            let csts = regs::csts(regs);
            (!csts.contains(Csts::RDY) && !csts.contains(Csts::CFS)).then_some(Ok(()))
        });
        if settled.is_err() && regs::csts(regs).contains(Csts::RDY) {
            return settled.map(|()| false);
        }
        if was_ready && self.device_may_dma {
            self.ready_confirmed = true;
        }
        Ok(was_ready)
    }

    /// Waits for `done(CSTS)`; CFS ends the wait with `ControllerFatal`.
    fn wait_csts(
        &self,
        clock: &dyn Clock,
        wait: Wait,
        timeout_us: u64,
        done: impl Fn(Csts) -> bool,
    ) -> Result<(), NvmeError> {
        let regs = &*self.regs;
        self.bounded(clock, timeout_us, wait, || {
            let csts = regs::csts(regs);
            if csts.contains(Csts::CFS) {
                Some(Err(NvmeError::ControllerFatal { during: wait }))
            } else {
                done(csts).then_some(Ok(()))
            }
        })
    }

    /// `bounded` for a wait the user is in, `bounded_recovery` inside `recover`.
    pub(crate) fn bounded<T>(
        &self,
        clock: &dyn Clock,
        timeout_us: u64,
        wait: Wait,
        done: impl FnMut() -> Option<Result<T, NvmeError>>,
    ) -> Result<T, NvmeError> {
        if self.recovering {
            bounded_recovery(clock, timeout_us, wait, done)
        } else {
            bounded(clock, timeout_us, wait, done)
        }
    }

    pub(crate) fn next_cid(&mut self) -> u16 {
        self.next_cid = self.next_cid.wrapping_add(1);
        if self.next_cid == u16::MAX {
            self.next_cid = 1;
        }
        self.next_cid
    }

    /// Submits one admin command and waits for its completion.
    pub(crate) fn admin_command(
        &mut self,
        hw: &mut Hw,
        name: &'static str,
        mut entry: SubmissionEntry,
    ) -> Result<CompletionEntry, NvmeError> {
        if !self.admin_usable {
            return Err(NvmeError::WrongState {
                state: "failed",
                wanted: "its admin queue is unusable; run 'teardown nvme'",
            });
        }
        let cid = self.next_cid();
        entry
            .cdw0
            .set((entry.cdw0.get() & 0xffff) | (cid as u32) << 16);
        let admin = self
            .admin
            .as_mut()
            .ok_or(NvmeError::Protocol("no admin queue"))?;
        admin.submit(hw.dma, &*self.regs, &entry)?;
        let wait = Wait::Admin(name);
        let regs = &*self.regs;
        let pool = &*hw.dma;
        let recovering = self.recovering;
        let mut completed = || {
            match admin.poll(pool, regs) {
                Err(err) => return Some(Err(err.into())),
                Ok(Some(done)) if done.cid.get() == cid => return Some(Ok(done)),
                Ok(Some(_)) => {
                    return Some(Err(NvmeError::Protocol(
                        "admin completion for a command id we did not submit",
                    )))
                }
                Ok(None) => {}
            }
            regs::csts(regs)
                .contains(Csts::CFS)
                .then_some(Err(NvmeError::ControllerFatal { during: wait }))
        };
        let result = if recovering {
            bounded_recovery(hw.clock, ADMIN_TIMEOUT_US, wait, &mut completed)
        } else {
            bounded(hw.clock, ADMIN_TIMEOUT_US, wait, &mut completed)
        };
        let done = result.inspect_err(|err| {
            if err.poisons_controller() {
                self.admin_usable = false;
            }
        })?;
        match CommandStatus::from_field(done.status.get()) {
            None => Ok(done),
            Some(status) => Err(NvmeError::CommandFailed {
                command: name,
                status,
            }),
        }
    }

    /// Identify into the scratch page; returns a copy of the 4096 bytes.
    fn identify(&mut self, hw: &mut Hw, cns: u32, nsid: u32) -> Result<Vec<u8>, NvmeError> {
        let scratch = self
            .scratch
            .ok_or(NvmeError::Protocol("no identify buffer"))?;
        let mut entry = SubmissionEntry::new(OPC_IDENTIFY, 0, nsid);
        entry.prp1.set(hw.dma.device_addr(&scratch, 0)?);
        entry.cdw10.set(cns);
        let name = match cns {
            CNS_CONTROLLER => "IDENTIFY CONTROLLER",
            CNS_ACTIVE_NAMESPACES => "IDENTIFY ACTIVE NAMESPACE LIST",
            _ => "IDENTIFY NAMESPACE",
        };
        self.admin_command(hw, name, entry)?;
        let mut data = alloc::vec![0u8; IDENTIFY_BYTES];
        hw.dma.read(&scratch, 0, &mut data)?;
        Ok(data)
    }

    /// Re-reads Identify Controller, the active namespace list and each namespace. An admin
    /// command that timed out or was interrupted is recovered (`recover`) before the error
    /// is returned, so `identify` can simply be run again.
    pub fn refresh_identity(&mut self, hw: &mut Hw) -> Result<(), NvmeError> {
        self.require_usable()?;
        let result = self.load_identity(hw);
        if let Err(err) = &result {
            if err.poisons_controller() && !regs::csts(&*self.regs).contains(Csts::CFS) {
                // The identify page may still be written: it is only reused after the reset.
                let _ = self.recover(hw, err, &mut |_| {});
            } else {
                self.fail(err);
            }
        }
        result
    }

    fn load_identity(&mut self, hw: &mut Hw) -> Result<(), NvmeError> {
        let data = self.identify(hw, CNS_CONTROLLER, 0)?;
        let identity = ControllerIdentity::parse(&data)
            .ok_or(NvmeError::Protocol("short identify controller data"))?;
        let active = match self.identify(hw, CNS_ACTIVE_NAMESPACES, 0) {
            Ok(list) => parse_active_list(&list),
            // NVMe 1.0 controllers lack CNS 02h: probe every NSID instead.
            Err(NvmeError::CommandFailed { .. }) => {
                (1..=identity.namespaces.min(MAX_PROBED_NAMESPACES)).collect()
            }
            Err(err) => return Err(err),
        };
        let mut namespaces = Vec::new();
        for nsid in active {
            let data = self.identify(hw, CNS_NAMESPACE, nsid)?;
            // GCE and QEMU report namespaces of size 0 that are not disks: skip them.
            if let Some(ns) = NamespaceIdentity::parse(nsid, &data) {
                if ns.blocks != 0 {
                    namespaces.push(ns);
                }
            }
        }
        self.identity = Some(identity);
        self.namespaces = namespaces;
        Ok(())
    }

    fn create_io_queues(&mut self, hw: &mut Hw) -> Result<(), NvmeError> {
        // Number of Queues (0-based: one SQ, one CQ). Some controllers insist on it before
        // queue creation; a controller that refuses still has at least one pair.
        let mut features = SubmissionEntry::new(OPC_SET_FEATURES, 0, 0);
        features.cdw10.set(FEATURE_NUMBER_OF_QUEUES);
        match self.admin_command(hw, "SET FEATURES (number of queues)", features) {
            Ok(_) | Err(NvmeError::CommandFailed { .. }) => {}
            Err(err) => return Err(err),
        }
        let entries = (self.cap.mqes as u32 + 1).clamp(2, IO_ENTRIES_MAX as u32) as u16;
        let queue = Queue::new(hw.dma, &self.owner, IO_QID, entries, &self.cap)?;
        let qsize = ((entries - 1) as u32) << 16 | IO_QID as u32;
        let mut create_cq = SubmissionEntry::new(OPC_CREATE_IO_CQ, 0, 0);
        create_cq.prp1.set(hw.dma.device_addr(&queue.cq, 0)?);
        create_cq.cdw10.set(qsize);
        create_cq.cdw11.set(QUEUE_PHYS_CONTIGUOUS);
        self.admin_command(hw, "CREATE I/O CQ", create_cq)?;
        let mut create_sq = SubmissionEntry::new(OPC_CREATE_IO_SQ, 0, 0);
        create_sq.prp1.set(hw.dma.device_addr(&queue.sq, 0)?);
        create_sq.cdw10.set(qsize);
        create_sq
            .cdw11
            .set(QUEUE_PHYS_CONTIGUOUS | (IO_QID as u32) << 16);
        if let Err(err) = self.admin_command(hw, "CREATE I/O SQ", create_sq) {
            let mut delete_cq = SubmissionEntry::new(OPC_DELETE_IO_CQ, 0, 0);
            delete_cq.cdw10.set(IO_QID as u32);
            let _ = self.admin_command(hw, "DELETE I/O CQ", delete_cq);
            return Err(err);
        }
        self.io = Some(queue);
        Ok(())
    }

    /// Ok when commands may be submitted.
    pub(crate) fn require_usable(&self) -> Result<(), NvmeError> {
        match self.state {
            State::Ready => Ok(()),
            State::Failed => Err(NvmeError::WrongState {
                state: "failed",
                wanted: "run 'teardown nvme' to reset it, then bind again",
            }),
        }
    }

    /// Records a failure that may leave the controller owning DMA memory.
    /// A read gave up with commands still at the device: only a reset (teardown) brings the
    /// controller back to a known state, whatever kind of error it was.
    pub(crate) fn fail_with_commands_outstanding(&mut self, err: &NvmeError) {
        self.state = State::Failed;
        self.failure = Some(format!("{err} (with commands outstanding)"));
    }

    pub(crate) fn fail(&mut self, err: &NvmeError) {
        if err.poisons_controller() {
            self.state = State::Failed;
            self.failure = Some(format!("{err}"));
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Why the controller is `Failed`.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The largest transfer per command: MDTS, bounded by what we give one command.
    pub fn max_transfer(&self) -> u64 {
        let mdts = self
            .identity
            .as_ref()
            .map_or(0, |id| id.mdts_bytes(self.cap.min_page_size()));
        if mdts == 0 {
            MAX_TRANSFER
        } else {
            mdts.min(MAX_TRANSFER)
        }
    }

    pub fn namespace(&self, nsid: u32) -> Option<&NamespaceIdentity> {
        self.namespaces.iter().find(|ns| ns.nsid == nsid)
    }

    /// Stops the controller in reverse bring-up order and releases (or quarantines) its
    /// DMA memory. Each step is reported; the first failure does not stop later steps.
    pub fn teardown(self, hw: &mut Hw) -> Vec<TeardownReport> {
        self.teardown_reporting(hw).0
    }

    /// `teardown`, plus what it (or anything since the last `take_releases`) released from
    /// quarantine.
    pub fn teardown_reporting(
        mut self,
        hw: &mut Hw,
    ) -> (Vec<TeardownReport>, Vec<QuarantineRelease>) {
        // Teardown is cleanup: a Ctrl-C (perhaps the one that ended the user's wait) must
        // not cut its queue deletions short either. Every step keeps its deadline.
        self.recovering = true;
        let mut steps = Vec::new();
        let mut report = |step, result: Result<String, String>| {
            let ok = result.is_ok();
            steps.push(TeardownReport {
                step,
                ok,
                detail: result.unwrap_or_else(|e| e),
            });
        };
        let fatal = regs::csts(&*self.regs).contains(Csts::CFS);
        if self.io.is_some() {
            for (step, opcode, name) in [
                ("delete-io-sq", OPC_DELETE_IO_SQ, "DELETE I/O SQ"),
                ("delete-io-cq", OPC_DELETE_IO_CQ, "DELETE I/O CQ"),
            ] {
                let result = if fatal {
                    Err(String::from("skipped: controller fatal status"))
                } else if !self.admin_usable {
                    Err(String::from("skipped: the admin queue is unusable"))
                } else {
                    let mut entry = SubmissionEntry::new(opcode, 0, 0);
                    entry.cdw10.set(IO_QID as u32);
                    self.admin_command(hw, name, entry)
                        .map(|_| format!("queue {IO_QID} deleted"))
                        .map_err(|err| format!("{err}"))
                };
                report(step, result);
            }
            self.io = None;
        }
        let cc = self.regs.read32(regs::CC);
        if self.ready_confirmed && cc & Cc::EN.bits() != 0 && !fatal {
            let timeout = self
                .identity
                .as_ref()
                .map(|id| id.rtd3e_us as u64)
                .filter(|us| *us > 0)
                .map_or(SHUTDOWN_TIMEOUT_US, |us| us.clamp(1_000_000, 60_000_000));
            self.regs
                .write32(regs::CC, (cc & !regs::CC_SHN_MASK) | Cc::SHN_NORMAL.bits());
            let regs = &*self.regs;
            let result = bounded_recovery(hw.clock, timeout, Wait::Shutdown, || {
                (regs.read32(regs::CSTS) & regs::CSTS_SHST_MASK == regs::CSTS_SHST_COMPLETE)
                    .then_some(Ok(()))
            });
            report(
                "shutdown",
                result
                    .map(|()| String::from("normal shutdown complete"))
                    .map_err(|err| format!("{err}")),
            );
        }
        let disabled = self.disable(hw.clock).map(|_| ());
        let fatal_after = regs::csts(&*self.regs).contains(Csts::CFS);
        // Pages are released only when the controller showed it stopped: RDY went 1 -> 0,
        // or a fatal status was cleared by the reset. A controller that never confirmed
        // it was enabled may still be working on our queues.
        let reset_observed = self.ready_confirmed || (fatal && !fatal_after);
        let stopped = !self.device_may_dma || (disabled.is_ok() && reset_observed);
        report(
            "disable",
            match (&disabled, reset_observed || !self.device_may_dma) {
                (Ok(()), true) => Ok(String::from("CC.EN=0, CSTS.RDY=0")),
                (Ok(()), false) => Err(String::from(
                    "CSTS.RDY=0, but the controller never confirmed it was enabled",
                )),
                (Err(err), _) => Err(format!("{err}")),
            },
        );
        pci::disable_bus_master(hw.config, self.bdf);
        if !self.intx_was_disabled {
            pci::set_intx_disabled(hw.config, self.bdf, false);
        }
        report(
            "bus-master-off",
            Ok(String::from(if self.intx_was_disabled {
                "PCI bus mastering disabled (INTx left disabled, as found)"
            } else {
                "PCI bus mastering disabled, INTx enabled again (as found)"
            })),
        );
        let usage_before = hw.dma.usage();
        if stopped {
            let count = hw.dma.free_owner(&self.owner);
            let pages = hw.dma.usage().free_pages - usage_before.free_pages;
            report(
                "release-dma",
                Ok(format!("freed {count} allocations ({pages} pages)")),
            );
            if reset_observed {
                self.release_quarantine(hw, "reset confirmed at teardown (CSTS.RDY 1 -> 0)");
            }
        } else {
            let reason = format!("{} did not confirm it stopped", self.owner);
            let count = hw.dma.quarantine_owner(&self.owner, &reason);
            let pages = hw.dma.usage().quarantined_pages - usage_before.quarantined_pages;
            report(
                "release-dma",
                Err(format!(
                    "quarantined {count} allocations ({pages} pages): {reason}"
                )),
            );
        }
        if self.mapped_here {
            let len = self.bar.size.max(PAGE_SIZE as u64);
            hw.mmio.unmap(self.bar.address, len);
            report(
                "unmap",
                Ok(format!(
                    "BAR0 window {:#x} released (kept while a `bar map` uses it)",
                    self.window
                )),
            );
        } else {
            report(
                "unmap",
                Ok(String::from("BAR0 window was mapped before bind: kept")),
            );
        }
        (steps, self.releases)
    }
}

/// `wait_for_recovery` with the NVMe error names (Ctrl-C ignored, deadline kept).
pub(crate) fn bounded_recovery<T>(
    clock: &dyn Clock,
    timeout_us: u64,
    wait: Wait,
    done: impl FnMut() -> Option<Result<T, NvmeError>>,
) -> Result<T, NvmeError> {
    match wait_for_recovery(clock, timeout_us, done) {
        Ok(result) => result,
        Err(_) => Err(NvmeError::Timeout {
            wait,
            after_us: timeout_us,
        }),
    }
}

/// `wait_for` with the NVMe error names.
pub(crate) fn bounded<T>(
    clock: &dyn Clock,
    timeout_us: u64,
    wait: Wait,
    done: impl FnMut() -> Option<Result<T, NvmeError>>,
) -> Result<T, NvmeError> {
    match wait_for(clock, timeout_us, done) {
        Ok(result) => result,
        Err(WaitError::TimedOut) => Err(NvmeError::Timeout {
            wait,
            after_us: timeout_us,
        }),
        Err(WaitError::Interrupted) => Err(NvmeError::Interrupted { wait }),
    }
}
