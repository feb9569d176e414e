//! The GQI transmit queue (facts §3.4, §4.1).
//!
//! One frame goes into a 2 KiB slot of the TX QPL; one 16-byte packet descriptor points at
//! it by QPL byte offset; the TX doorbell takes the free-running count of descriptors
//! posted; the device reports progress by writing the free-running count of descriptors
//! completed into our counter array, at the index it chose in the queue resources.

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};
use crate::platform::Clock;

use super::adminq::{self, AdminQueue, CreateTxQueue, Opcode};
use super::qpl::{Qpl, BUF_BYTES, TX_QPL_ID};
use super::regs::{Doorbells, Registers};
use super::GvnicError;

/// TX QPL size: 4 pages = 8 buffers, as iPXE registers on GCE. We send one frame at a time.
pub const TX_QPL_PAGES: u32 = 4;
/// The notification block the TX queue uses (RX uses 1).
pub const TX_NTFY_ID: u32 = 0;
/// Descriptor type in the upper nibble of type_flags: a standard packet descriptor.
pub const TX_DESC_TYPE_STD: u8 = 0x00;
/// The shortest Ethernet frame (without FCS); shorter frames are padded with zeros.
pub const ETH_MIN_FRAME: usize = 60;

/// `gve_tx_pkt_desc`: the first (here: only) descriptor of a packet.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug)]
#[repr(C)]
pub struct TxPacketDesc {
    pub type_flags: u8,
    /// Checksum offload offsets in 16-bit words; 0 without offload (we checksum ourselves).
    pub l4_csum_offset: u8,
    pub l4_hdr_offset: u8,
    /// Descriptors in this packet, this one included.
    pub desc_cnt: u8,
    pub len: U16,
    pub seg_len: U16,
    /// GQI-QPL: a byte offset inside the TX QPL, not a physical address.
    pub seg_addr: U64,
}
pub const TX_DESC_BYTES: usize = 16;
const _: () = assert!(core::mem::size_of::<TxPacketDesc>() == TX_DESC_BYTES);

/// The 64-byte block the device fills on CREATE_*_QUEUE (facts §4.4).
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RawQueueResources {
    db_index: U32,
    counter_index: U32,
    reserved: [u8; 56],
}

/// Reads and checks the doorbell and counter indexes the device chose for a queue.
pub(super) fn read_queue_resources(
    dma: &DmaPool,
    resources: &DmaBuf,
    doorbells: &Doorbells,
    counters: u16,
) -> Result<(u32, u32), GvnicError> {
    let mut raw = [0u8; 64];
    dma.read(resources, 0, &mut raw)?;
    let (res, _) = RawQueueResources::read_from_prefix(&raw)
        .map_err(|_| GvnicError::BadDescriptor(alloc::string::String::from("queue resources")))?;
    let db_index = doorbells.check(res.db_index.get(), "queue doorbell index")?;
    let counter_index = res.counter_index.get();
    if counter_index >= u32::from(counters) {
        return Err(GvnicError::BadDeviceValue {
            what: "event counter index",
            value: u64::from(counter_index),
        });
    }
    Ok((db_index, counter_index))
}

pub struct TxQueue {
    pub ring: DmaBuf,
    pub resources: DmaBuf,
    pub qpl: Qpl,
    entries: u16,
    db_index: u32,
    counter_index: u32,
    /// Free-running count of descriptors posted (what the doorbell carries).
    posted: u32,
    /// CREATE_TX_QUEUE passed: teardown must DESTROY it.
    pub created: bool,
}

impl TxQueue {
    pub fn alloc(dma: &mut DmaPool, owner: &str, entries: u16) -> Result<TxQueue, GvnicError> {
        Ok(TxQueue {
            ring: dma.alloc(owner, "gvnic tx ring", usize::from(entries) * TX_DESC_BYTES)?,
            // Page aligned like every gVNIC structure (facts §4.5), though only 64 bytes.
            resources: dma.alloc(owner, "gvnic tx resources", PAGE_SIZE)?,
            qpl: Qpl::alloc(dma, owner, "gvnic tx qpl", TX_QPL_ID, TX_QPL_PAGES)?,
            entries,
            db_index: 0,
            counter_index: 0,
            posted: 0,
            created: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        aq: &mut AdminQueue,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
        counters: u16,
    ) -> Result<(), GvnicError> {
        let command = adminq::encode(
            Opcode::CreateTxQueue,
            &CreateTxQueue {
                queue_id: U32::new(0),
                reserved: U32::new(0),
                queue_resources_addr: U64::new(dma.device_addr(&self.resources, 0)?),
                tx_ring_addr: U64::new(dma.device_addr(&self.ring, 0)?),
                queue_page_list_id: U32::new(self.qpl.id),
                ntfy_id: U32::new(TX_NTFY_ID),
                tx_comp_ring_addr: U64::new(0),
                // Older GQI devices ignore it; Linux always sets it, so do we.
                tx_ring_size: U16::new(self.entries),
                tx_comp_ring_size: U16::new(0),
                padding: U32::new(0),
            },
        );
        aq.execute(regs, clock, dma, Opcode::CreateTxQueue, &command)?;
        self.created = true;
        let (db_index, counter_index) =
            read_queue_resources(dma, &self.resources, doorbells, counters)?;
        self.db_index = db_index;
        self.counter_index = counter_index;
        Ok(())
    }

    pub fn posted(&self) -> u32 {
        self.posted
    }

    pub fn counter_index(&self) -> u32 {
        self.counter_index
    }

    /// Copies `frame` into the next QPL slot, writes its descriptor and rings the doorbell.
    /// Returns the descriptor count the completion counter must reach.
    pub fn post(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
        frame: &[u8],
    ) -> Result<u32, GvnicError> {
        if frame.len() > BUF_BYTES {
            return Err(GvnicError::FrameTooLong {
                len: frame.len(),
                max: BUF_BYTES,
            });
        }
        let len = frame.len().max(ETH_MIN_FRAME);
        // The slot follows the descriptor index, so a slot is reused only after its previous
        // descriptor completed (we never have more than one frame in flight).
        let slot = self.qpl.buffer_offset(self.posted);
        dma.write(&self.qpl.buf, slot, frame)?;
        if len > frame.len() {
            dma.write(
                &self.qpl.buf,
                slot + frame.len(),
                &[0u8; ETH_MIN_FRAME][..len - frame.len()],
            )?;
        }
        let desc = TxPacketDesc {
            type_flags: TX_DESC_TYPE_STD,
            l4_csum_offset: 0,
            l4_hdr_offset: 0,
            desc_cnt: 1,
            len: U16::new(len as u16),
            seg_len: U16::new(len as u16),
            seg_addr: U64::new(slot as u64),
        };
        let index = (self.posted % u32::from(self.entries)) as usize;
        dma.write(&self.ring, index * TX_DESC_BYTES, desc.as_bytes())?;
        self.posted = self.posted.wrapping_add(1);
        doorbells.ring(self.db_index, self.posted);
        Ok(self.posted)
    }
}
