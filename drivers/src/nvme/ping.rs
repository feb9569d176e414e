//! The NVMe side of `irq test`: the I/O queue pair rebuilt so its completion queue
//! interrupts on an MSI-X vector, one FLUSH on it, and the polling pair rebuilt after.
//!
//! Why rebuild instead of using the admin queue: QEMU 7.2's NVMe model only delivers MSI-X
//! on vectors it marked "in use" when a completion queue was created while MSI-X was
//! enabled (seen: `pci_nvme_irq_msix` traced, no APIC delivery, no pending bit, for an
//! admin CQ created at enable time with MSI-X off). Creating the CQ after MSI-X is on works
//! there and on real controllers alike. The queue id stays 1: SET FEATURES (Number of
//! Queues) allowed one pair, and QEMU refuses to change it once queues exist.
//! Opcodes and CDW11 bits: NVMe base spec §5.4 (Create I/O CQ: PC bit 0, IEN bit 1, IV
//! bits 31:16), §5.5 (Create I/O SQ: CQID bits 31:16), NVM command set FLUSH (00h).

use super::controller::{Controller, IO_QID};
use super::error::NvmeError;
use super::queue::{Queue, SubmissionEntry};
use super::status::CommandStatus;
use crate::platform::{wait_for, Hw};

const OPC_DELETE_IO_SQ: u8 = 0x00;
const OPC_CREATE_IO_SQ: u8 = 0x01;
const OPC_DELETE_IO_CQ: u8 = 0x04;
const OPC_CREATE_IO_CQ: u8 = 0x05;
const OPC_FLUSH: u8 = 0x00;
const CDW11_PHYS_CONTIGUOUS: u32 = 1 << 0;
const CDW11_INTERRUPTS_ENABLED: u32 = 1 << 1;
/// How long the FLUSH may take (policy: a flush of a QEMU raw file or a GCE PD is fast).
const FLUSH_TIMEOUT_US: u64 = 5_000_000;

impl Controller {
    /// Deletes the current I/O pair and frees its rings (quarantined, and the controller
    /// failed, if the device did not confirm the deletes).
    fn drop_io_queues(&mut self, hw: &mut Hw) -> Result<u16, NvmeError> {
        let Some(queue) = self.io.take() else {
            return Err(NvmeError::Protocol("no I/O queue"));
        };
        let entries = queue.entries;
        for (opcode, name) in [
            (OPC_DELETE_IO_SQ, "DELETE I/O SQ"),
            (OPC_DELETE_IO_CQ, "DELETE I/O CQ"),
        ] {
            let mut entry = SubmissionEntry::new(opcode, 0, 0);
            entry.cdw10.set(IO_QID as u32);
            if let Err(err) = self.admin_command(hw, name, entry) {
                let reason = "irq test: the controller did not confirm the queue delete";
                let _ = hw.dma.quarantine(queue.sq, reason);
                let _ = hw.dma.quarantine(queue.cq, reason);
                self.fail(&err);
                return Err(err);
            }
        }
        let _ = hw.dma.free(queue.sq);
        let _ = hw.dma.free(queue.cq);
        Ok(entries)
    }

    /// Creates I/O pair 1 with fresh rings; `vector` Some makes its CQ interrupt there.
    fn make_io_queues(
        &mut self,
        hw: &mut Hw,
        entries: u16,
        vector: Option<u16>,
    ) -> Result<(), NvmeError> {
        let queue = Queue::new(hw.dma, &self.owner, IO_QID, entries, &self.cap)?;
        let qsize = ((entries - 1) as u32) << 16 | IO_QID as u32;
        let mut create_cq = SubmissionEntry::new(OPC_CREATE_IO_CQ, 0, 0);
        create_cq.prp1.set(hw.dma.device_addr(&queue.cq, 0)?);
        create_cq.cdw10.set(qsize);
        create_cq.cdw11.set(match vector {
            Some(v) => CDW11_PHYS_CONTIGUOUS | CDW11_INTERRUPTS_ENABLED | (v as u32) << 16,
            None => CDW11_PHYS_CONTIGUOUS,
        });
        let mut create_sq = SubmissionEntry::new(OPC_CREATE_IO_SQ, 0, 0);
        create_sq.prp1.set(hw.dma.device_addr(&queue.sq, 0)?);
        create_sq.cdw10.set(qsize);
        create_sq
            .cdw11
            .set(CDW11_PHYS_CONTIGUOUS | (IO_QID as u32) << 16);
        let result = self
            .admin_command(hw, "CREATE I/O CQ", create_cq)
            .and_then(|_| self.admin_command(hw, "CREATE I/O SQ", create_sq));
        // Installed even on failure: teardown then deletes what exists and frees or
        // quarantines the rings as the device answers.
        self.io = Some(queue);
        if let Err(err) = &result {
            self.fail(err);
        }
        result.map(|_| ())
    }

    /// Rebuilds the I/O pair with its CQ on MSI-X `vector` (MSI-X must already be enabled)
    /// and runs one FLUSH on it. Returns the clock time just before the doorbell.
    pub fn flush_on_vector(&mut self, hw: &mut Hw, vector: u16) -> Result<u64, NvmeError> {
        self.require_usable()?;
        let entries = self.drop_io_queues(hw)?;
        self.make_io_queues(hw, entries, Some(vector))?;
        let nsid = self.namespaces.first().map_or(1, |ns| ns.nsid);
        let cid = self.next_cid();
        let flush = SubmissionEntry::new(OPC_FLUSH, cid, nsid);
        let regs = &*self.regs;
        let queue = self
            .io
            .as_mut()
            .ok_or(NvmeError::Protocol("no I/O queue"))?;
        let submitted_us = hw.clock.now_us();
        queue.submit(hw.dma, regs, &flush)?;
        let pool = &*hw.dma;
        let done = wait_for(hw.clock, FLUSH_TIMEOUT_US, || {
            match queue.poll(pool, regs) {
                Ok(Some(done)) => Some(Ok(done)),
                Ok(None) => None,
                Err(err) => Some(Err(err)),
            }
        });
        match done {
            Ok(Ok(done)) if done.cid.get() == cid => {
                match CommandStatus::from_field(done.status.get()) {
                    None => Ok(submitted_us),
                    Some(status) => Err(NvmeError::CommandFailed {
                        command: "FLUSH",
                        status,
                    }),
                }
            }
            Ok(Ok(_)) => Err(NvmeError::Protocol(
                "FLUSH completion for another command id",
            )),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => {
                let err = NvmeError::Protocol("FLUSH did not complete");
                self.fail(&err);
                Err(err)
            }
        }
    }

    /// Puts the polling I/O pair back (the state `bind` left).
    pub fn restore_polling_queues(&mut self, hw: &mut Hw) -> Result<(), NvmeError> {
        let entries = self.drop_io_queues(hw)?;
        self.make_io_queues(hw, entries, None)
    }
}
