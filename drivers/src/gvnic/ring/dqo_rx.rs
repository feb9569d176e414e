//! The DQO receive ring (gvnic-dqo.md §1.5-§1.7), QPL or RDA.
//!
//! Two rings of `rx_queue_entries` each (what Linux and iPXE pass): the buffer queue, where
//! we post 32-byte descriptors naming a buffer by id and device address, and the
//! completion queue, where the device reports each filled buffer (32 bytes: length,
//! generation, error, end of packet, the buffer's id). A packet may span several
//! buffers; it is delivered once its end-of-packet completion arrives, and dropped whole
//! (and counted) when any part of it carries rx_error. Each buffer goes back on the buffer
//! queue as soon as its bytes are copied out, and the RX doorbell takes the new tail masked
//! to the ring (LE32).
//!
//! The completion queue cannot overrun: we never post more buffers than half the ring, and
//! each completion uses up one posted buffer.

use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::little_endian;
use zerocopy::{FromBytes, IntoBytes};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};

use super::super::addressing::{AddressKind, Addressing, BufSpec, Buffers, RX_QPL_ID};
use super::super::adminq::{self, CreateRxQueue, Opcode};
use super::super::regs::Doorbells;
use super::super::resources::read_queue_resources;
use super::super::GvnicError;
use super::dqo_desc::{self, RxBufDesc, RxCompl, RX_BUF_DESC_BYTES, RX_COMPL_BYTES};
use super::gqi_rx::{MAX_PACKET, RX_BUFFERS};
use super::{QueueEnv, RxEvent, RxRing, Step, TeardownSteps, RX_NTFY_ID};

/// 64 buffers of 2 KiB (iPXE's fill, see gqi_rx), 32 pages.
pub const RX_BUF_PAGES: u32 = RX_BUFFERS / 2;

pub struct DqoRx {
    pub buf_queue: DmaBuf,
    pub compl_queue: DmaBuf,
    pub resources: DmaBuf,
    pub bufs: Buffers,
    entries: u16,
    /// The packet buffer size CREATE_RX_QUEUE gives the device: our 2 KiB slot, or less
    /// when BUFFER_SIZES allows less ([`super::RingPlan`]).
    packet_buffer: u16,
    db_index: u32,
    /// Free-running count of buffer descriptors posted (the tail).
    tail: u32,
    /// Free-running count of completions consumed (the head of the completion queue).
    head: u32,
    /// Bit i set: buffer i is posted and the device may fill it.
    at_device: u64,
    partial: Vec<u8>,
    partial_bad: Option<&'static str>,
    pub created: bool,
    pub dropped: u32,
}

impl DqoRx {
    pub fn alloc(
        dma: &mut DmaPool,
        owner: &str,
        entries: u16,
        packet_buffer: u16,
        addressing: Addressing,
    ) -> Result<DqoRx, GvnicError> {
        Ok(DqoRx {
            buf_queue: dma.alloc(
                owner,
                "gvnic rx buffer queue",
                usize::from(entries) * RX_BUF_DESC_BYTES,
            )?,
            // Zeroed by the pool: a zeroed completion never matches generation 1.
            compl_queue: dma.alloc(
                owner,
                "gvnic rx completion queue",
                usize::from(entries) * RX_COMPL_BYTES,
            )?,
            resources: dma.alloc(owner, "gvnic rx resources", PAGE_SIZE)?,
            // DQO-QPL registers the pages but still puts device addresses in descriptors.
            bufs: Buffers::alloc(
                dma,
                owner,
                BufSpec {
                    purpose: "gvnic rx buffers",
                    addressing,
                    kind: AddressKind::DeviceAddress,
                    id: RX_QPL_ID,
                    pages: RX_BUF_PAGES,
                },
            )?,
            entries,
            packet_buffer,
            db_index: 0,
            tail: 0,
            head: 0,
            at_device: 0,
            partial: Vec::new(),
            partial_bad: None,
            created: false,
            dropped: 0,
        })
    }

    fn mask(&self) -> u32 {
        u32::from(self.entries) - 1
    }

    /// Buffers posted at once: 64, or half the ring if that is smaller.
    fn fill(&self) -> u32 {
        RX_BUFFERS.min(u32::from(self.entries) / 2).max(1)
    }

    /// Writes buffer `id`'s descriptor at the tail (no doorbell).
    fn post_buffer(&mut self, dma: &mut DmaPool, id: u32) -> Result<(), GvnicError> {
        let desc = RxBufDesc {
            buf_id: little_endian::U16::new(id as u16),
            reserved0: [0; 6],
            buf_addr: little_endian::U64::new(self.bufs.desc_addr(dma, id, 0)?),
            header_buf_addr: little_endian::U64::new(0),
            reserved1: [0; 8],
        };
        let at = (self.tail & self.mask()) as usize * RX_BUF_DESC_BYTES;
        dma.write(&self.buf_queue, at, desc.as_bytes())?;
        self.tail = self.tail.wrapping_add(1);
        self.at_device |= 1 << id;
        Ok(())
    }

    fn ring_doorbell(&self, doorbells: &Doorbells) {
        doorbells.ring_le(self.db_index, self.tail & self.mask());
    }

    fn next_completion(&self, dma: &DmaPool) -> Result<Option<RxCompl>, GvnicError> {
        let at = (self.head & self.mask()) as usize * RX_COMPL_BYTES;
        let mut raw = [0u8; RX_COMPL_BYTES];
        dma.read(&self.compl_queue, at, &mut raw)?;
        let (entry, _) = RxCompl::read_from_prefix(&raw).map_err(|_| bad_layout())?;
        if entry.generation() != dqo_desc::expected_generation(self.head, u32::from(self.entries)) {
            return Ok(None);
        }
        // Read barrier, then the whole entry again (iPXE commit c2d7ddd0c).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        dma.read(&self.compl_queue, at, &mut raw)?;
        let (entry, _) = RxCompl::read_from_prefix(&raw).map_err(|_| bad_layout())?;
        Ok(Some(entry))
    }
}

fn bad_layout() -> GvnicError {
    GvnicError::BadDescriptor(alloc::string::String::from("dqo rx completion"))
}

impl RxRing for DqoRx {
    fn register(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError> {
        self.bufs.register(env)
    }

    fn create(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError> {
        let command = adminq::encode(
            Opcode::CreateRxQueue,
            &CreateRxQueue {
                queue_id: U32::new(0),
                index: U32::new(0),
                reserved: U32::new(0),
                ntfy_id: U32::new(RX_NTFY_ID),
                queue_resources_addr: U64::new(env.dma.device_addr(&self.resources, 0)?),
                // DQO: the "desc" ring is the completion queue, the "data" ring the buffer
                // queue (gvnic-dqo.md §1.5).
                rx_desc_ring_addr: U64::new(env.dma.device_addr(&self.compl_queue, 0)?),
                rx_data_ring_addr: U64::new(env.dma.device_addr(&self.buf_queue, 0)?),
                queue_page_list_id: U32::new(self.bufs.qpl_id()),
                rx_ring_size: U16::new(self.entries),
                packet_buffer_size: U16::new(self.packet_buffer),
                rx_buff_ring_size: U16::new(self.entries),
                enable_rsc: 0,
                padding1: 0,
                header_buffer_size: U16::new(0),
                padding2: U16::new(0),
            },
        );
        env.execute(Opcode::CreateRxQueue, &command)?;
        self.created = true;
        let indexes = read_queue_resources(env.dma, &self.resources, env.doorbells, None)?;
        self.db_index = indexes.db_index;
        for id in 0..self.fill() {
            self.post_buffer(env.dma, id)?;
        }
        self.ring_doorbell(env.doorbells);
        Ok(())
    }

    fn poll(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
    ) -> Result<Option<RxEvent>, GvnicError> {
        let Some(entry) = self.next_completion(dma)? else {
            return Ok(None);
        };
        self.head = self.head.wrapping_add(1);
        let id = u32::from(entry.buf_id.get());
        if id >= self.fill() || self.at_device & (1 << id) == 0 {
            // A buffer we never posted (or already got back): nothing to copy or repost.
            return Err(GvnicError::BadDeviceValue {
                what: "RX completion buffer id (not posted)",
                value: u64::from(id),
            });
        }
        self.at_device &= !(1 << id);
        let len = entry.buf_len();
        if entry.error() {
            self.partial_bad
                .get_or_insert("device flagged the frame with rx_error");
        } else if len > usize::from(self.packet_buffer) {
            self.partial_bad
                .get_or_insert("completion length outside the buffer");
        } else if self.partial_bad.is_none() {
            let mut bytes = alloc::vec![0u8; len];
            dma.read(&self.bufs.buf, self.bufs.offset(id), &mut bytes)?;
            self.partial.extend_from_slice(&bytes);
            if self.partial.len() > MAX_PACKET {
                self.partial_bad
                    .get_or_insert("packet longer than we reassemble");
                self.partial.clear();
            }
        }
        // The bytes are out: the buffer goes straight back to the device.
        self.post_buffer(dma, id)?;
        self.ring_doorbell(doorbells);
        if !entry.end_of_packet() {
            return Ok(Some(RxEvent::Fragment));
        }
        let frame = core::mem::take(&mut self.partial);
        if let Some(why) = self.partial_bad.take() {
            self.dropped += 1;
            return Ok(Some(RxEvent::Dropped(why)));
        }
        Ok(Some(RxEvent::Frame(frame)))
    }

    fn dropped(&self) -> u32 {
        self.dropped
    }

    fn teardown_steps(&self) -> TeardownSteps {
        TeardownSteps {
            destroy: self.created.then_some(Step {
                name: "destroy-rx-queue",
                opcode: Opcode::DestroyRxQueue,
                id: 0,
            }),
            unregister: self.bufs.unregister_step("unregister-rx-qpl"),
        }
    }
}
