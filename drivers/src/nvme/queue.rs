//! Submission/completion queue entries and one queue pair's ring bookkeeping.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::regs::Cap;
use crate::dma::{DmaBuf, DmaError, DmaPool};
use crate::platform::RegisterWindow;

/// A 64-byte submission queue entry ("Common Command Format").
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SubmissionEntry {
    /// OPC [7:0], FUSE [9:8], PSDT [15:14] (0 = PRP), CID [31:16].
    pub cdw0: U32,
    pub nsid: U32,
    pub cdw2: U32,
    pub cdw3: U32,
    pub mptr: U64,
    pub prp1: U64,
    pub prp2: U64,
    pub cdw10: U32,
    pub cdw11: U32,
    pub cdw12: U32,
    pub cdw13: U32,
    pub cdw14: U32,
    pub cdw15: U32,
}

impl SubmissionEntry {
    pub fn new(opcode: u8, cid: u16, nsid: u32) -> Self {
        SubmissionEntry {
            cdw0: U32::new(opcode as u32 | (cid as u32) << 16),
            nsid: U32::new(nsid),
            ..Default::default()
        }
    }
    pub fn cid(&self) -> u16 {
        (self.cdw0.get() >> 16) as u16
    }
    pub fn opcode(&self) -> u8 {
        self.cdw0.get() as u8
    }
}

/// A 16-byte completion queue entry.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompletionEntry {
    pub dw0: U32,
    pub dw1: U32,
    pub sq_head: U16,
    pub sq_id: U16,
    pub cid: U16,
    /// Phase tag (bit 0) and status field (bits 15:1).
    pub status: U16,
}

const _: () = assert!(core::mem::size_of::<SubmissionEntry>() == 64);
const _: () = assert!(core::mem::size_of::<CompletionEntry>() == 16);

pub const SQE_SIZE: usize = 64;
pub const CQE_SIZE: usize = 16;
/// Byte offset of the dword holding CID, phase and status inside a CQE.
const CQE_DW3: usize = 12;

/// One SQ/CQ pair (the admin pair or an I/O pair; we use one CQ per SQ).
pub struct Queue {
    pub id: u16,
    pub entries: u16,
    pub sq: DmaBuf,
    pub cq: DmaBuf,
    sq_tail: u16,
    /// Last SQ head the controller reported: entries before it may be reused.
    sq_head: u16,
    cq_head: u16,
    phase: bool,
    sq_doorbell: usize,
    cq_doorbell: usize,
}

impl Queue {
    /// Allocates zeroed, page-aligned rings for `entries` entries each.
    pub fn new(
        pool: &mut DmaPool,
        owner: &str,
        id: u16,
        entries: u16,
        cap: &Cap,
    ) -> Result<Queue, DmaError> {
        let (sq_purpose, cq_purpose) = if id == 0 {
            ("admin-sq", "admin-cq")
        } else {
            ("io-sq", "io-cq")
        };
        let sq = pool.alloc(owner, sq_purpose, entries as usize * SQE_SIZE)?;
        let cq = match pool.alloc(owner, cq_purpose, entries as usize * CQE_SIZE) {
            Ok(cq) => cq,
            Err(err) => {
                // Never seen by a device yet: safe to free.
                let _ = pool.free(sq);
                return Err(err);
            }
        };
        Ok(Queue {
            id,
            entries,
            sq,
            cq,
            sq_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: true,
            sq_doorbell: cap.doorbell(id, false),
            cq_doorbell: cap.doorbell(id, true),
        })
    }

    /// One slot is always left empty so a full ring is distinguishable from an empty one.
    pub fn is_full(&self) -> bool {
        (self.sq_tail + 1) % self.entries == self.sq_head
    }

    /// Copies `entry` into the next SQ slot and rings the tail doorbell.
    pub fn submit(
        &mut self,
        pool: &mut DmaPool,
        regs: &dyn RegisterWindow,
        entry: &SubmissionEntry,
    ) -> Result<(), DmaError> {
        pool.write(&self.sq, self.sq_tail as usize * SQE_SIZE, entry.as_bytes())?;
        self.sq_tail = (self.sq_tail + 1) % self.entries;
        // `pool.write` ends with a full fence, so the entry is visible before the doorbell.
        regs.write32(self.sq_doorbell, self.sq_tail as u32);
        Ok(())
    }

    /// Takes the next completion if the controller has posted one, and tells the
    /// controller the slot is free again.
    pub fn poll(
        &mut self,
        pool: &DmaPool,
        regs: &dyn RegisterWindow,
    ) -> Result<Option<CompletionEntry>, DmaError> {
        let offset = self.cq_head as usize * CQE_SIZE;
        let dw3 = pool.read_u32(&self.cq, offset + CQE_DW3)?;
        let phase = dw3 & (1 << 16) != 0;
        if phase != self.phase {
            return Ok(None);
        }
        // Read the rest only after the phase matched (`pool.read` fences first).
        let mut raw = [0u8; CQE_SIZE];
        pool.read(&self.cq, offset, &mut raw)?;
        let entry = CompletionEntry::read_from_bytes(&raw).map_err(|_| DmaError::OutOfBounds)?;
        self.cq_head += 1;
        if self.cq_head == self.entries {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        let head = entry.sq_head.get();
        if head < self.entries {
            self.sq_head = head;
        }
        regs.write32(self.cq_doorbell, self.cq_head as u32);
        Ok(Some(entry))
    }
}
