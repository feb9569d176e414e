//! READ and WRITE: one pipelined transfer that knows its direction. Split by MDTS and by
//! what the bounce pool holds, several commands in flight; a read hands each chunk to the
//! caller's sink in LBA order straight out of the bounce buffers, a write has the caller's
//! source fill a buffer in place just before its command goes to the device.
//!
//! A command that does not complete within the per-command deadline (or a Ctrl-C whose
//! outstanding commands do not drain) ends the transfer with the error and recovers the
//! controller (`Controller::recover`): the buffers stay allocated until the reset is
//! confirmed, since a late completion may still write them (or, for a write, the device may
//! still be reading them), and are freed right after.
//! Separate metadata (LBAF.MS != 0, FLBAS bit 4 = 0) goes to a pool buffer named by MPTR
//! (a write sends zeros there).
//!
//! Hashing overlaps the transfer: a read keeps one data buffer more than it has commands
//! in flight, and refills the device before handing a completed chunk to the sink, so while
//! the sink hashes chunk n the device works on the next `MAX_IN_FLIGHT` commands. On
//! hardware (where a digest with SHA-NI outruns a Persistent Disk) the digest then hides
//! behind the I/O instead of adding to it. A write fills the next buffer while the earlier
//! commands are at the device, which overlaps the same way.
//!
//! Buffers are sized by the request and the pool (issue 22): a chunk is never larger than
//! the request, and when the pool cannot hold the buffers the transfer first keeps fewer
//! commands in flight, then uses smaller chunks, down to one block; only when not even one
//! block's buffer fits does it fail (`DmaError::Exhausted`).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::controller::{bounded, bounded_recovery, Controller};
use super::error::{NvmeError, Wait};
use super::prp;
use super::queue::SubmissionEntry;
use super::regs::{self, Csts};
use super::status::CommandStatus;
use crate::dma::{DmaBuf, DmaError, DmaPool, PAGE_SIZE};
use crate::platform::Hw;

pub(crate) const OPC_WRITE: u8 = 0x01;
pub(crate) const OPC_READ: u8 = 0x02;
/// CDW12 bit 30 of READ/WRITE: Force Unit Access (NVMe 1.4 §6.15/§6.9: the data is on
/// non-volatile media before the command completes).
const CDW12_FUA: u32 = 1 << 30;
/// Commands in flight at most: enough to keep QEMU's and a real controller's pipeline busy
/// while bounding the bounce memory (8 x 1 MiB at worst).
const MAX_IN_FLIGHT: usize = 8;

/// A short pool keeps two commands in flight while their chunks shrink to this size, before it
/// falls back to one command (policy: 64 KiB is what U-Boot and iPXE-class loaders use per
/// request; smaller chunks cost more commands than a second buffer is worth).
const SMALL_CHUNK_BYTES: usize = 64 << 10;

/// How long an interrupted transfer waits (ignoring Ctrl-C) for the commands already at
/// the device before it resets the controller instead. Policy: healthy controllers finish
/// in microseconds to milliseconds; a stalled one is better reset than waited for.
const DRAIN_GRACE_US: u64 = 1_000_000;

/// Which way the data goes, and who produces or consumes it.
pub enum Direction<'a> {
    /// `sink(lba, data)` sees the data in LBA order while it still sits in the bounce pool.
    Read(&'a mut dyn FnMut(u64, &[u8])),
    /// `source(lba, buffer)` fills the blocks from `lba` just before their WRITE is issued.
    /// `fua`: Force Unit Access on every command.
    Write {
        source: &'a mut dyn FnMut(u64, &mut [u8]),
        fua: bool,
    },
}

impl Direction<'_> {
    fn wait(&self) -> Wait {
        match self {
            Direction::Read(_) => Wait::Read,
            Direction::Write { .. } => Wait::Write,
        }
    }
}

/// What a finished transfer measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSummary {
    pub bytes: u64,
    pub elapsed_us: u64,
    pub commands: u64,
    /// Commands kept in flight at once.
    pub depth: usize,
    /// Separate metadata bytes per block (0: the format has none).
    pub metadata_size: u16,
    /// The first block's metadata as the controller wrote it to MPTR (up to 16 bytes; reads).
    pub first_metadata: [u8; 16],
    /// Bytes per command at most (MDTS, the request, or what the pool held).
    pub chunk_bytes: u64,
}

/// The summary of a read (kept under its old name).
pub type ReadSummary = TransferSummary;

/// One command at the device (shared with `write::flush`).
pub(crate) struct InFlight {
    pub(crate) slot: usize,
    pub(crate) cid: u16,
    pub(crate) lba: u64,
    pub(crate) blocks: u64,
    pub(crate) done: Option<Result<(), CommandStatus>>,
}

/// The bounce memory for one transfer: per-slot data buffers, PRP list pages and metadata.
struct Buffers {
    data: DmaBuf,
    lists: Option<DmaBuf>,
    /// Separate metadata, `meta_chunk` bytes a slot (MPTR: one contiguous, dword-aligned
    /// buffer per command).
    metadata: Option<DmaBuf>,
    slots: usize,
    /// Data bytes a slot may carry (whole blocks).
    chunk: usize,
    /// Bytes between slots: `chunk` rounded up to a page, so every slot starts page aligned.
    stride: usize,
    list_pages_per_slot: usize,
    meta_chunk: usize,
}

impl Buffers {
    fn free(self, pool: &mut DmaPool) -> Result<(), DmaError> {
        pool.free(self.data)?;
        for buf in [self.lists, self.metadata].into_iter().flatten() {
            pool.free(buf)?;
        }
        Ok(())
    }
}

/// The shape of every command of one transfer.
#[derive(Clone, Copy)]
struct Shape {
    nsid: u32,
    opcode: u8,
    fua: bool,
    block_size: u64,
    metadata_size: u64,
}

impl Controller {
    /// Reads `count` blocks of namespace `nsid` from `lba`; `sink(lba, data)` sees the data
    /// in order, chunk by chunk, while it still sits in the bounce pool.
    pub fn read(
        &mut self,
        hw: &mut Hw,
        nsid: u32,
        lba: u64,
        count: u64,
        sink: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<ReadSummary, NvmeError> {
        self.transfer(hw, nsid, lba, count, Direction::Read(sink))
    }

    /// READ or WRITE `count` blocks of namespace `nsid` from `lba` (see the module doc).
    pub fn transfer(
        &mut self,
        hw: &mut Hw,
        nsid: u32,
        lba: u64,
        count: u64,
        direction: Direction,
    ) -> Result<TransferSummary, NvmeError> {
        self.require_usable()?;
        let ns = self
            .namespace(nsid)
            .ok_or(NvmeError::NoSuchNamespace { nsid })?;
        if count == 0 {
            return Err(NvmeError::ZeroCount);
        }
        let blocks = ns.blocks;
        let in_range = lba < blocks && lba.checked_add(count).is_some_and(|end| end <= blocks);
        if !in_range {
            return Err(NvmeError::OutOfRange {
                nsid,
                lba,
                count,
                blocks,
            });
        }
        if ns.metadata_size != 0 && ns.extended_lba {
            return Err(NvmeError::Unsupported("extended-LBA metadata formats"));
        }
        let block_size = ns.block_size as u64;
        let max_transfer = self.max_transfer();
        if block_size > max_transfer {
            return Err(NvmeError::Unsupported(
                "a block larger than the maximum transfer",
            ));
        }
        let wait = direction.wait();
        let (mut sink, mut source, opcode, fua) = match direction {
            Direction::Read(sink) => (Some(sink), None, OPC_READ, false),
            Direction::Write { source, fua } => (None, Some(source), OPC_WRITE, fua),
        };
        // Never a buffer larger than the request (a one-block read needs one block).
        let blocks_per_command = (max_transfer / block_size).min(count);
        let commands = count.div_ceil(blocks_per_command);
        let depth = self.io.as_ref().map_or(1, |q| q.entries as usize - 1);
        let in_flight_cap = MAX_IN_FLIGHT.min(depth).min(commands as usize).max(1);
        // One buffer more than commands in flight for a read: the one the sink is reading.
        let wanted_slots = if sink.is_some() && (commands as usize) > in_flight_cap {
            in_flight_cap + 1
        } else {
            in_flight_cap
        };
        let metadata_size = ns.metadata_size as u64;
        let purposes = if sink.is_some() {
            ("read-data", "read-metadata")
        } else {
            ("write-data", "write-metadata")
        };
        let buffers = self.alloc_buffers(
            hw.dma,
            purposes,
            wanted_slots,
            blocks_per_command,
            block_size,
            metadata_size,
        )?;
        // The chunk the pool allowed may be smaller than MDTS.
        let blocks_per_command = (buffers.chunk as u64) / block_size;
        // A short pool gave fewer buffers: a read still keeps one for the sink when it can.
        let in_flight_cap = if buffers.slots >= wanted_slots {
            in_flight_cap
        } else if sink.is_some() {
            buffers.slots.saturating_sub(1).max(1)
        } else {
            buffers.slots
        };
        let shape = Shape {
            nsid,
            opcode,
            fua,
            block_size,
            metadata_size,
        };

        let clock = hw.clock;
        let started = clock.now_us();
        let mut pending = prp::split(lba, count, blocks_per_command);
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut free_slots: Vec<usize> = (0..buffers.slots).rev().collect();
        let mut failure: Option<NvmeError> = None;
        let mut issued = 0u64;
        // Ctrl-C seen: nothing more is issued; what is already at the device is drained
        // below, so a transfer on a healthy controller can be stopped without losing it.
        let mut draining = false;
        let mut first_metadata = [0u8; 16];
        // Submits into free buffers until `in_flight_cap` commands are at the device. A
        // write's data is produced into the slot first: the device does not own it yet.
        let mut fill = |this: &mut Controller,
                        pool: &mut DmaPool,
                        inflight: &mut VecDeque<InFlight>,
                        free_slots: &mut Vec<usize>,
                        failure: &mut Option<NvmeError>| {
            while failure.is_none() && inflight.len() < in_flight_cap {
                let Some(slot) = free_slots.pop() else { break };
                let Some((lba, blocks)) = pending.next() else {
                    free_slots.push(slot);
                    break;
                };
                if let Some(source) = source.as_mut() {
                    let len = (blocks * block_size) as usize;
                    match pool.slice_mut(&buffers.data, slot * buffers.stride, len) {
                        Ok(data) => source(lba, data),
                        Err(err) => {
                            free_slots.push(slot);
                            *failure = Some(err.into());
                            break;
                        }
                    }
                    pool.fence();
                }
                match this.submit_io(pool, &buffers, slot, lba, blocks, shape) {
                    Ok(cid) => {
                        issued += 1;
                        inflight.push_back(InFlight {
                            slot,
                            cid,
                            lba,
                            blocks,
                            done: None,
                        });
                    }
                    Err(err) => {
                        free_slots.push(slot);
                        *failure = Some(err);
                    }
                }
            }
        };
        loop {
            if !draining && clock.interrupted() {
                draining = true;
                failure.get_or_insert(NvmeError::Interrupted { wait });
            }
            fill(self, hw.dma, &mut inflight, &mut free_slots, &mut failure);
            if inflight.is_empty() {
                break;
            }
            let io_timeout_us = self.io_timeout_us;
            let head_done = || {
                if let Err(err) = self.reap(hw.dma, &mut inflight) {
                    return Some(Err(err));
                }
                if inflight.front().is_some_and(|head| head.done.is_some()) {
                    return Some(Ok(()));
                }
                regs::csts(&*self.regs)
                    .contains(Csts::CFS)
                    .then_some(Err(NvmeError::ControllerFatal { during: wait }))
            };
            let waited = if draining {
                // The Ctrl-C that stopped us is still pending: draining is a recovery wait.
                bounded_recovery(clock, DRAIN_GRACE_US, wait, head_done)
            } else {
                bounded(clock, io_timeout_us, wait, head_done)
            };
            if let Err(NvmeError::Interrupted { wait }) = waited {
                // Ctrl-C while waiting: stop issuing and drain what is at the device.
                draining = true;
                failure.get_or_insert(NvmeError::Interrupted { wait });
                continue;
            }
            if let Err(err) = waited {
                // Commands are still outstanding and late completions would be taken for a
                // later transfer's: reset the controller. Their buffers stay allocated until
                // the reset is confirmed (the device may still use them), then are freed.
                let err = match (failure, err) {
                    (Some(first @ NvmeError::Interrupted { .. }), NvmeError::Timeout { .. }) => {
                        first
                    }
                    (_, err) => err,
                };
                if matches!(err, NvmeError::ControllerFatal { .. }) {
                    self.fail_with_commands_outstanding(&err);
                    return Err(err);
                }
                let mut buffers = Some(buffers);
                let _ = self.recover(hw, &err, &mut |pool| {
                    if let Some(buffers) = buffers.take() {
                        let _ = buffers.free(pool);
                    }
                });
                return Err(err);
            }
            let Some(head) = inflight.pop_front() else {
                break;
            };
            match head.done {
                Some(Ok(())) if failure.is_none() => {
                    if let Some(sink) = sink.as_mut() {
                        // Keep the device busy while the sink works on this chunk.
                        fill(self, hw.dma, &mut inflight, &mut free_slots, &mut failure);
                        if let (Some(metadata), true) = (&buffers.metadata, head.lba == lba) {
                            let len = (metadata_size as usize).min(first_metadata.len());
                            let offset = head.slot * buffers.meta_chunk;
                            // Inside our own allocation by construction: it cannot fail.
                            let _ = hw.dma.read(metadata, offset, &mut first_metadata[..len]);
                        }
                        let offset = head.slot * buffers.stride;
                        let len = (head.blocks * block_size) as usize;
                        match hw.dma.slice(&buffers.data, offset, len) {
                            Ok(data) => sink(head.lba, data),
                            Err(err) => {
                                let err = NvmeError::from(err);
                                if !inflight.is_empty() {
                                    self.fail_with_commands_outstanding(&err);
                                }
                                return Err(err);
                            }
                        }
                    }
                }
                Some(Err(status)) if failure.is_none() => {
                    failure = Some(NvmeError::CommandFailed {
                        command: if opcode == OPC_WRITE { "WRITE" } else { "READ" },
                        status,
                    });
                }
                _ => {}
            }
            free_slots.push(head.slot);
        }
        // Every command completed: the device owns none of these pages any more.
        let chunk_bytes = buffers.chunk as u64;
        buffers.free(hw.dma)?;
        if let Some(err) = failure {
            return Err(err);
        }
        Ok(TransferSummary {
            bytes: count * block_size,
            elapsed_us: clock.now_us().saturating_sub(started),
            commands: issued,
            depth: in_flight_cap,
            metadata_size: metadata_size as u16,
            first_metadata,
            chunk_bytes,
        })
    }

    /// Data and list buffers for up to `slots` commands of up to `blocks` blocks each. A
    /// short pool gets fewer slots down to two, then smaller chunks down to
    /// [`SMALL_CHUNK_BYTES`], then one slot, then smaller chunks down to one block: two
    /// modest buffers keep the device busy while the other is produced or consumed, which
    /// one large buffer cannot.
    fn alloc_buffers(
        &self,
        pool: &mut DmaPool,
        purposes: (&'static str, &'static str),
        mut slots: usize,
        mut blocks: u64,
        block_size: u64,
        metadata_size: u64,
    ) -> Result<Buffers, NvmeError> {
        loop {
            let chunk = (blocks * block_size) as usize;
            let meta = blocks * metadata_size;
            let result = self.try_alloc_buffers(pool, purposes, slots, chunk, meta);
            if !matches!(result, Err(NvmeError::Dma(DmaError::Exhausted { .. }))) {
                return result;
            }
            let can_shrink = blocks > 1;
            if slots > 2 {
                slots /= 2;
            } else if slots == 2 && can_shrink && chunk > SMALL_CHUNK_BYTES {
                blocks = smaller(blocks, block_size);
            } else if slots > 1 {
                slots /= 2;
            } else if can_shrink {
                blocks = smaller(blocks, block_size);
            } else {
                return result;
            }
        }
    }
}

/// Half as many blocks, a chunk of a page or more kept a whole number of pages (so a PRP list
/// covers it exactly; block sizes are powers of two). Never 0.
fn smaller(blocks: u64, block_size: u64) -> u64 {
    let mut half = (blocks / 2).max(1);
    if half * block_size > PAGE_SIZE as u64 {
        let per_page = (PAGE_SIZE as u64 / block_size).max(1);
        half -= half % per_page;
    }
    half
}

impl Controller {
    fn try_alloc_buffers(
        &self,
        pool: &mut DmaPool,
        (data_purpose, meta_purpose): (&'static str, &'static str),
        slots: usize,
        chunk: usize,
        meta_bytes: u64,
    ) -> Result<Buffers, NvmeError> {
        let stride = chunk.next_multiple_of(PAGE_SIZE);
        let list_pages_per_slot = prp::list_pages_needed(0, chunk);
        let meta_chunk = meta_bytes.next_multiple_of(4) as usize;
        let data = pool.alloc(&self.owner, data_purpose, slots * stride)?;
        let lists = if list_pages_per_slot == 0 {
            None
        } else {
            let bytes = slots * list_pages_per_slot * PAGE_SIZE;
            match pool.alloc(&self.owner, "prp-lists", bytes) {
                Ok(lists) => Some(lists),
                Err(err) => {
                    pool.free(data)?;
                    return Err(err.into());
                }
            }
        };
        let metadata = if meta_chunk == 0 {
            None
        } else {
            match pool.alloc(&self.owner, meta_purpose, slots * meta_chunk) {
                Ok(metadata) => Some(metadata),
                Err(err) => {
                    pool.free(data)?;
                    if let Some(lists) = lists {
                        pool.free(lists)?;
                    }
                    return Err(err.into());
                }
            }
        };
        Ok(Buffers {
            data,
            lists,
            metadata,
            slots,
            chunk,
            stride,
            list_pages_per_slot,
            meta_chunk,
        })
    }

    /// One READ or WRITE of `blocks` blocks from `lba` through buffer slot `slot`.
    fn submit_io(
        &mut self,
        pool: &mut DmaPool,
        buffers: &Buffers,
        slot: usize,
        lba: u64,
        blocks: u64,
        shape: Shape,
    ) -> Result<u16, NvmeError> {
        let Shape {
            nsid,
            opcode,
            fua,
            block_size,
            metadata_size,
        } = shape;
        let len = (blocks * block_size) as usize;
        let data_phys = pool.device_addr(&buffers.data, slot * buffers.stride)?;
        pool.check_device_range(data_phys, len as u64)?;
        let mut entries = Vec::new();
        let (list_phys, list_offset) = match &buffers.lists {
            Some(lists) => {
                let offset = slot * buffers.list_pages_per_slot * PAGE_SIZE;
                entries.resize(
                    buffers.list_pages_per_slot * prp::ENTRIES_PER_LIST_PAGE,
                    0u64,
                );
                (pool.device_addr(lists, offset)?, offset)
            }
            None => (0, 0),
        };
        let prps = prp::build(data_phys, len, list_phys, &mut entries)?;
        if prps.list_pages > 0 {
            let lists = buffers
                .lists
                .as_ref()
                .ok_or(NvmeError::Protocol("no PRP list memory"))?;
            let used = prps.list_pages * prp::ENTRIES_PER_LIST_PAGE;
            let bytes: Vec<u8> = entries[..used]
                .iter()
                .flat_map(|e| e.to_le_bytes())
                .collect();
            pool.check_device_range(list_phys, bytes.len() as u64)?;
            pool.write(lists, list_offset, &bytes)?;
        }
        // With separate metadata the controller writes MS bytes a block to MPTR: without a
        // buffer there it would write to physical address 0, outside the pool.
        let mptr = match &buffers.metadata {
            Some(metadata) => {
                let phys = pool.device_addr(metadata, slot * buffers.meta_chunk)?;
                pool.check_device_range(phys, blocks * metadata_size)?;
                phys
            }
            None if metadata_size != 0 => {
                return Err(NvmeError::Protocol("no metadata buffer for MPTR"))
            }
            None => 0,
        };
        let cid = self.next_cid();
        let mut entry = SubmissionEntry::new(opcode, cid, nsid);
        entry.mptr.set(mptr);
        entry.prp1.set(prps.prp1);
        entry.prp2.set(prps.prp2);
        entry.cdw10.set(lba as u32);
        entry.cdw11.set((lba >> 32) as u32);
        // NLB is 0-based.
        entry
            .cdw12
            .set((blocks - 1) as u32 | if fua { CDW12_FUA } else { 0 });
        let queue = self
            .io
            .as_mut()
            .ok_or(NvmeError::Protocol("no I/O queue"))?;
        if queue.is_full() {
            return Err(NvmeError::Protocol("I/O submission queue full"));
        }
        queue.submit(pool, &*self.regs, &entry)?;
        Ok(cid)
    }

    /// Takes every completion the controller has posted and marks its command done.
    pub(crate) fn reap(
        &mut self,
        pool: &DmaPool,
        inflight: &mut VecDeque<InFlight>,
    ) -> Result<(), NvmeError> {
        let queue = self
            .io
            .as_mut()
            .ok_or(NvmeError::Protocol("no I/O queue"))?;
        while let Some(done) = queue.poll(pool, &*self.regs)? {
            let record = inflight
                .iter_mut()
                .find(|r| r.cid == done.cid.get() && r.done.is_none())
                .ok_or(NvmeError::Protocol(
                    "I/O completion for a command id we did not submit",
                ))?;
            record.done = Some(match CommandStatus::from_field(done.status.get()) {
                None => Ok(()),
                Some(status) => Err(status),
            });
        }
        Ok(())
    }
}
