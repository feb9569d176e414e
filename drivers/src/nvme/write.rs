//! WRITE (through the shared pipelined `transfer`), FLUSH, and the boot-disk guard.
//!
//! The guard: before any write the namespace's LBA 1 is read; when it is a GPT header whose
//! disk GUID is the one the image recorded at build time (`bootdisk=` on the kernel command
//! line, drivers/src/gpt.rs), the write is refused with `boot-disk` unless the caller forces
//! it. Reading LBA 1 every time (one block) keeps the check true after a disk was rewritten.
//!
//! FLUSH (NVM command set opcode 00h) is one command on the I/O queue; its wait follows the
//! transfer's rules: a Ctrl-C drains it for up to 1 s, a timeout (or an undrained Ctrl-C)
//! recovers the controller.

use alloc::collections::VecDeque;

use super::controller::{bounded, bounded_recovery, Controller};
use super::error::{NvmeError, Wait};
use super::queue::SubmissionEntry;
use super::regs::{self, Csts};
use super::transfer::{Direction, InFlight, TransferSummary};
use crate::gpt::{self, Guid};
use crate::platform::Hw;

const OPC_FLUSH: u8 = 0x00;
/// How long an interrupted FLUSH may still drain (as a transfer's drain; policy).
const FLUSH_DRAIN_GRACE_US: u64 = 1_000_000;

/// How a write is issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Force Unit Access on every WRITE.
    pub fua: bool,
    /// Refuse the write when the namespace's GPT disk GUID is this one (the boot disk).
    /// None: no check (nothing recorded, or the user forced it).
    pub protect: Option<Guid>,
}

/// What a finished FLUSH measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushSummary {
    pub nsid: u32,
    pub elapsed_us: u64,
}

impl Controller {
    /// The GPT disk GUID in LBA 1 of namespace `nsid`, or None when LBA 1 is no GPT header.
    pub fn gpt_disk_guid(&mut self, hw: &mut Hw, nsid: u32) -> Result<Option<Guid>, NvmeError> {
        let mut header = alloc::vec::Vec::new();
        self.read(hw, nsid, gpt::HEADER_LBA, 1, &mut |_, data| {
            header.extend_from_slice(data)
        })?;
        Ok(gpt::disk_guid(&header))
    }

    /// Writes `count` blocks of namespace `nsid` from `lba`; `source(lba, buffer)` fills
    /// each chunk in place just before its WRITE goes to the device.
    pub fn write(
        &mut self,
        hw: &mut Hw,
        nsid: u32,
        lba: u64,
        count: u64,
        options: WriteOptions,
        source: &mut dyn FnMut(u64, &mut [u8]),
    ) -> Result<TransferSummary, NvmeError> {
        self.require_usable()?;
        self.namespace(nsid)
            .ok_or(NvmeError::NoSuchNamespace { nsid })?;
        if let Some(boot) = options.protect {
            // Only a namespace with at least two blocks can hold a GPT header.
            let has_lba1 = self.namespace(nsid).is_some_and(|ns| ns.blocks > 1);
            if has_lba1 && self.gpt_disk_guid(hw, nsid)? == Some(boot) {
                return Err(NvmeError::BootDisk { nsid, guid: boot });
            }
        }
        let direction = Direction::Write {
            source,
            fua: options.fua,
        };
        self.transfer(hw, nsid, lba, count, direction)
    }

    /// FLUSH of namespace `nsid`: everything written before is on non-volatile media when
    /// this returns Ok.
    pub fn flush(&mut self, hw: &mut Hw, nsid: u32) -> Result<FlushSummary, NvmeError> {
        self.require_usable()?;
        self.namespace(nsid)
            .ok_or(NvmeError::NoSuchNamespace { nsid })?;
        let clock = hw.clock;
        let started = clock.now_us();
        let cid = self.next_cid();
        let entry = SubmissionEntry::new(OPC_FLUSH, cid, nsid);
        let queue = self
            .io
            .as_mut()
            .ok_or(NvmeError::Protocol("no I/O queue"))?;
        if queue.is_full() {
            return Err(NvmeError::Protocol("I/O submission queue full"));
        }
        queue.submit(hw.dma, &*self.regs, &entry)?;
        let mut inflight = VecDeque::from([InFlight {
            slot: 0,
            cid,
            lba: 0,
            blocks: 0,
            done: None,
        }]);
        let timeout_us = self.io_timeout_us;
        let mut waited = {
            let mut done = || self.flush_done(hw.dma, &mut inflight);
            bounded(clock, timeout_us, Wait::Flush, &mut done)
        };
        if let Err(NvmeError::Interrupted { wait }) = waited {
            // Ctrl-C: let the command at the device finish (a recovery wait); drained, the
            // controller is fine, otherwise it is reset below.
            let mut done = || self.flush_done(hw.dma, &mut inflight);
            match bounded_recovery(clock, FLUSH_DRAIN_GRACE_US, Wait::Flush, &mut done) {
                Ok(()) => return Err(NvmeError::Interrupted { wait }),
                Err(NvmeError::Timeout { .. }) => waited = Err(NvmeError::Interrupted { wait }),
                Err(other) => waited = Err(other),
            }
        }
        match waited {
            Ok(()) => {}
            Err(err @ NvmeError::ControllerFatal { .. }) => {
                self.fail_with_commands_outstanding(&err);
                return Err(err);
            }
            Err(err) => {
                // The FLUSH may still be at the device: reset it (no buffers to free).
                let _ = self.recover(hw, &err, &mut |_| {});
                return Err(err);
            }
        }
        match inflight.front().and_then(|f| f.done) {
            Some(Err(status)) => Err(NvmeError::CommandFailed {
                command: "FLUSH",
                status,
            }),
            _ => Ok(FlushSummary {
                nsid,
                elapsed_us: clock.now_us().saturating_sub(started),
            }),
        }
    }

    fn flush_done(
        &mut self,
        pool: &crate::dma::DmaPool,
        inflight: &mut VecDeque<InFlight>,
    ) -> Option<Result<(), NvmeError>> {
        if let Err(err) = self.reap(pool, inflight) {
            return Some(Err(err));
        }
        if inflight.front().is_some_and(|f| f.done.is_some()) {
            return Some(Ok(()));
        }
        regs::csts(&*self.regs)
            .contains(Csts::CFS)
            .then_some(Err(NvmeError::ControllerFatal {
                during: Wait::Flush,
            }))
    }
}
