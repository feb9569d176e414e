//! The DQO transmit ring (gvnic-dqo.md §1.4, §1.6-§1.8), QPL or RDA.
//!
//! A descriptor ring the driver writes and a completion ring the device writes, both
//! `tx_queue_entries` long (what Linux and iPXE pass). One frame is one packet descriptor
//! (dtype 0x0C, end of packet) carrying the buffer's device address and a completion tag;
//! the TX doorbell takes the new tail masked to the ring (LE32). The device answers with a
//! packet completion carrying the tag; an entry is new when its generation bit matches the
//! pass we are in, and is read whole only behind a barrier after that check.
//!
//! report_event is never set: we need no descriptor completions (iPXE commit 1cc1f1cd4).
//! A miss completion (type 1, or a packet completion whose tag has bit 15) is not final;
//! the re-injection completion that follows is (gvnic-dqo.md §1.6).

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::little_endian;
use zerocopy::{FromBytes, IntoBytes};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};

use super::super::addressing::{AddressKind, Addressing, BufSpec, Buffers, TX_QPL_ID};
use super::super::adminq::{self, CreateTxQueue, Opcode};
use super::super::regs::Doorbells;
use super::super::resources::read_queue_resources;
use super::super::GvnicError;
use super::dqo_desc::{self, TxCompl, TxPktDesc, TX_COMPL_BYTES, TX_DESC_BYTES};
use super::gqi_tx::fill_buffer;
use super::{QueueEnv, Step, TeardownSteps, TxRing, TX_NTFY_ID};

/// TX buffers: 4 pages = 8 buffers of 2 KiB, as iPXE (ceil(8/2) pages) (policy).
pub const TX_BUF_PAGES: u32 = 4;
/// The tag's high byte: descriptors in the packet (iPXE's byte-13 convention; 1 here).
const TAG_DESC_COUNT_SHIFT: u16 = 8;

pub struct DqoTx {
    pub ring: DmaBuf,
    pub compl_ring: DmaBuf,
    pub resources: DmaBuf,
    pub bufs: Buffers,
    entries: u16,
    db_index: u32,
    /// Free-running count of descriptors posted (the tail is this masked to the ring).
    posted: u32,
    /// Free-running count of completion entries consumed (the head of the completion ring).
    compl_head: u32,
    /// The tag of the frame in flight, if any.
    in_flight: Option<u16>,
    /// Frames whose final completion arrived.
    completed: u32,
    pub created: bool,
}

impl DqoTx {
    pub fn alloc(
        dma: &mut DmaPool,
        owner: &str,
        entries: u16,
        addressing: Addressing,
    ) -> Result<DqoTx, GvnicError> {
        Ok(DqoTx {
            ring: dma.alloc(owner, "gvnic tx ring", usize::from(entries) * TX_DESC_BYTES)?,
            // Zeroed by the pool: a zeroed completion ring never matches generation 1.
            compl_ring: dma.alloc(
                owner,
                "gvnic tx completion ring",
                usize::from(entries) * TX_COMPL_BYTES,
            )?,
            resources: dma.alloc(owner, "gvnic tx resources", PAGE_SIZE)?,
            // DQO-QPL registers the pages but still puts device addresses in descriptors.
            bufs: Buffers::alloc(
                dma,
                owner,
                BufSpec {
                    purpose: "gvnic tx buffers",
                    addressing,
                    kind: AddressKind::DeviceAddress,
                    id: TX_QPL_ID,
                    pages: TX_BUF_PAGES,
                },
            )?,
            entries,
            db_index: 0,
            posted: 0,
            compl_head: 0,
            in_flight: None,
            completed: 0,
            created: false,
        })
    }

    fn mask(&self) -> u32 {
        u32::from(self.entries) - 1
    }

    /// The next completion entry, if the device wrote it.
    fn next_completion(&self, dma: &DmaPool) -> Result<Option<TxCompl>, GvnicError> {
        let at = (self.compl_head & self.mask()) as usize * TX_COMPL_BYTES;
        let mut raw = [0u8; TX_COMPL_BYTES];
        dma.read(&self.compl_ring, at, &mut raw)?;
        let (entry, _) = TxCompl::read_from_prefix(&raw).map_err(|_| bad_layout())?;
        if entry.generation()
            != dqo_desc::expected_generation(self.compl_head, u32::from(self.entries))
        {
            return Ok(None);
        }
        // Read barrier: the rest of the entry only after its generation said it is whole
        // (iPXE commit c2d7ddd0c). Re-read it behind the fence.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        dma.read(&self.compl_ring, at, &mut raw)?;
        let (entry, _) = TxCompl::read_from_prefix(&raw).map_err(|_| bad_layout())?;
        Ok(Some(entry))
    }
}

fn bad_layout() -> GvnicError {
    GvnicError::BadDescriptor(alloc::string::String::from("dqo tx completion"))
}

impl TxRing for DqoTx {
    fn register(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError> {
        self.bufs.register(env)
    }

    fn create(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError> {
        let command = adminq::encode(
            Opcode::CreateTxQueue,
            &CreateTxQueue {
                queue_id: U32::new(0),
                reserved: U32::new(0),
                queue_resources_addr: U64::new(env.dma.device_addr(&self.resources, 0)?),
                tx_ring_addr: U64::new(env.dma.device_addr(&self.ring, 0)?),
                queue_page_list_id: U32::new(self.bufs.qpl_id()),
                ntfy_id: U32::new(TX_NTFY_ID),
                tx_comp_ring_addr: U64::new(env.dma.device_addr(&self.compl_ring, 0)?),
                tx_ring_size: U16::new(self.entries),
                // Linux and iPXE: the descriptor count for both rings.
                tx_comp_ring_size: U16::new(self.entries),
                padding: U32::new(0),
            },
        );
        env.execute(Opcode::CreateTxQueue, &command)?;
        self.created = true;
        let indexes = read_queue_resources(env.dma, &self.resources, env.doorbells, None)?;
        self.db_index = indexes.db_index;
        Ok(())
    }

    fn post(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
        counters: &DmaBuf,
        frame: &[u8],
    ) -> Result<(), GvnicError> {
        if self.in_flight.is_some() && !self.poll_complete(dma, counters)? {
            return Err(GvnicError::TxBusy { outstanding: 1 });
        }
        let slot = self.posted % self.bufs.count();
        let len = fill_buffer(dma, &self.bufs, slot, frame)?;
        let tag = slot as u16 | (1 << TAG_DESC_COUNT_SHIFT);
        let desc = TxPktDesc {
            buf_addr: little_endian::U64::new(self.bufs.desc_addr(dma, slot, 0)?),
            flags: dqo_desc::TX_DTYPE_PKT | dqo_desc::TX_END_OF_PACKET,
            reserved: [0; 3],
            compl_tag: little_endian::U16::new(tag),
            buf_size: little_endian::U16::new(len as u16 & dqo_desc::TX_BUF_SIZE_MASK),
        };
        let index = (self.posted & self.mask()) as usize;
        dma.write(&self.ring, index * TX_DESC_BYTES, desc.as_bytes())?;
        self.posted = self.posted.wrapping_add(1);
        self.in_flight = Some(tag);
        // The tail index masked to the ring (iPXE writes prod & (count - 1)).
        doorbells.ring_le(self.db_index, self.posted & self.mask());
        Ok(())
    }

    fn poll_complete(&mut self, dma: &mut DmaPool, _counters: &DmaBuf) -> Result<bool, GvnicError> {
        while let Some(entry) = self.next_completion(dma)? {
            self.compl_head = self.compl_head.wrapping_add(1);
            let tag = entry.tag.get();
            let final_for_tag = match entry.kind() {
                dqo_desc::TX_COMPL_PKT => tag & dqo_desc::TX_COMPL_TAG_MISS == 0,
                dqo_desc::TX_COMPL_REINJECTION => true,
                // Miss and descriptor completions are not final (and we ask for none).
                _ => false,
            };
            if !final_for_tag {
                continue;
            }
            if self.in_flight != Some(tag) {
                return Err(GvnicError::BadDeviceValue {
                    what: "TX completion tag (no such frame in flight)",
                    value: u64::from(tag),
                });
            }
            self.in_flight = None;
            self.completed = self.completed.wrapping_add(1);
        }
        Ok(self.in_flight.is_none())
    }

    fn progress(&self) -> (u32, u32) {
        (self.posted, self.completed)
    }

    fn teardown_steps(&self) -> TeardownSteps {
        TeardownSteps {
            destroy: self.created.then_some(Step {
                name: "destroy-tx-queue",
                opcode: Opcode::DestroyTxQueue,
                id: 0,
            }),
            unregister: self.bufs.unregister_step("unregister-tx-qpl"),
        }
    }
}
