//! The GQI transmit ring (facts §3.4, §4.1), QPL or RDA.
//!
//! One frame goes into a 2 KiB buffer; one 16-byte packet descriptor points at it (by QPL
//! byte offset for GQI-QPL, by device address for GQI-RDA); the TX doorbell takes the
//! free-running count of descriptors posted (BE32); the device reports progress by writing
//! the free-running count of descriptors completed into our counter array, at the index it
//! chose in the queue resources.

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};

use super::super::addressing::{AddressKind, Addressing, BufSpec, Buffers, BUF_BYTES, TX_QPL_ID};
use super::super::adminq::{self, CreateTxQueue, Opcode};
use super::super::regs::Doorbells;
use super::super::resources::read_queue_resources;
use super::super::GvnicError;
use super::{QueueEnv, Step, TeardownSteps, TxRing, TX_NTFY_ID};

/// TX buffers: 4 pages = 8 buffers, as iPXE registers on GCE (policy). We send one frame
/// at a time.
pub const TX_BUF_PAGES: u32 = 4;
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
    /// GQI-QPL: a byte offset inside the TX QPL; GQI-RDA: a device address.
    pub seg_addr: U64,
}
pub const TX_DESC_BYTES: usize = 16;
const _: () = assert!(core::mem::size_of::<TxPacketDesc>() == TX_DESC_BYTES);

/// Copies `frame` (padded to the Ethernet minimum with zeros) into byte 0 of `slot` of
/// `bufs`; returns the length on the wire.
pub(super) fn fill_buffer(
    dma: &mut DmaPool,
    bufs: &Buffers,
    slot: u32,
    frame: &[u8],
) -> Result<usize, GvnicError> {
    if frame.len() > BUF_BYTES {
        return Err(GvnicError::FrameTooLong {
            len: frame.len(),
            max: BUF_BYTES,
        });
    }
    let len = frame.len().max(ETH_MIN_FRAME);
    let at = bufs.offset(slot);
    dma.write(&bufs.buf, at, frame)?;
    if len > frame.len() {
        dma.write(
            &bufs.buf,
            at + frame.len(),
            &[0u8; ETH_MIN_FRAME][..len - frame.len()],
        )?;
    }
    Ok(len)
}

pub struct GqiTx {
    pub ring: DmaBuf,
    pub resources: DmaBuf,
    pub bufs: Buffers,
    entries: u16,
    db_index: u32,
    counter_index: u32,
    /// Free-running count of descriptors posted (what the doorbell carries).
    posted: u32,
    /// The completion counter as last read.
    completed: u32,
    /// CREATE_TX_QUEUE passed: teardown must DESTROY it.
    pub created: bool,
}

impl GqiTx {
    pub fn alloc(
        dma: &mut DmaPool,
        owner: &str,
        entries: u16,
        addressing: Addressing,
    ) -> Result<GqiTx, GvnicError> {
        let kind = match addressing {
            Addressing::Qpl => AddressKind::QplOffset,
            Addressing::Rda => AddressKind::DeviceAddress,
        };
        Ok(GqiTx {
            ring: dma.alloc(owner, "gvnic tx ring", usize::from(entries) * TX_DESC_BYTES)?,
            // Page aligned like every gVNIC structure (facts §4.5), though only 64 bytes.
            resources: dma.alloc(owner, "gvnic tx resources", PAGE_SIZE)?,
            bufs: Buffers::alloc(
                dma,
                owner,
                BufSpec {
                    purpose: "gvnic tx buffers",
                    addressing,
                    kind,
                    id: TX_QPL_ID,
                    pages: TX_BUF_PAGES,
                },
            )?,
            entries,
            db_index: 0,
            counter_index: 0,
            posted: 0,
            completed: 0,
            created: false,
        })
    }

    fn read_completed(&self, dma: &DmaPool, counters: &DmaBuf) -> Result<u32, GvnicError> {
        Ok(u32::from_be(
            dma.read_u32(counters, self.counter_index as usize * 4)?,
        ))
    }
}

impl TxRing for GqiTx {
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
                tx_comp_ring_addr: U64::new(0),
                // Older GQI devices ignore it; Linux always sets it, so do we.
                tx_ring_size: U16::new(self.entries),
                tx_comp_ring_size: U16::new(0),
                padding: U32::new(0),
            },
        );
        env.execute(Opcode::CreateTxQueue, &command)?;
        self.created = true;
        let indexes =
            read_queue_resources(env.dma, &self.resources, env.doorbells, Some(env.counters))?;
        self.db_index = indexes.db_index;
        self.counter_index = indexes.counter_index;
        Ok(())
    }

    fn post(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
        counters: &DmaBuf,
        frame: &[u8],
    ) -> Result<(), GvnicError> {
        let done = self.read_completed(dma, counters)?;
        if done != self.posted {
            return Err(GvnicError::TxBusy {
                outstanding: self.posted.wrapping_sub(done),
            });
        }
        // The slot follows the descriptor index, so a slot is reused only after its
        // previous descriptor completed (we never have more than one frame in flight).
        let len = fill_buffer(dma, &self.bufs, self.posted, frame)?;
        let desc = TxPacketDesc {
            type_flags: TX_DESC_TYPE_STD,
            l4_csum_offset: 0,
            l4_hdr_offset: 0,
            desc_cnt: 1,
            len: U16::new(len as u16),
            seg_len: U16::new(len as u16),
            seg_addr: U64::new(self.bufs.desc_addr(dma, self.posted, 0)?),
        };
        let index = (self.posted % u32::from(self.entries)) as usize;
        dma.write(&self.ring, index * TX_DESC_BYTES, desc.as_bytes())?;
        self.posted = self.posted.wrapping_add(1);
        doorbells.ring_be(self.db_index, self.posted);
        Ok(())
    }

    fn poll_complete(&mut self, dma: &mut DmaPool, counters: &DmaBuf) -> Result<bool, GvnicError> {
        self.completed = self.read_completed(dma, counters)?;
        Ok(self.completed == self.posted)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::testing::leaked_pool;

    #[test]
    fn gqi_rda_descriptors_carry_device_addresses() {
        let (mut pool, _) = leaked_pool(0x4000_0000, 64 * PAGE_SIZE);
        let qpl = GqiTx::alloc(&mut pool, "t", 16, Addressing::Qpl).unwrap();
        let rda = GqiTx::alloc(&mut pool, "t", 16, Addressing::Rda).unwrap();
        assert_eq!(qpl.bufs.qpl_id(), TX_QPL_ID);
        assert_eq!(rda.bufs.qpl_id(), 0xFFFF_FFFF);
        assert_eq!(qpl.bufs.desc_addr(&pool, 1, 0).unwrap(), 2048);
        let base = pool.device_addr(&rda.bufs.buf, 0).unwrap();
        assert_eq!(rda.bufs.desc_addr(&pool, 1, 0).unwrap(), base + 2048);
        assert!(base >= pool.phys_base() && base < pool.phys_base() + pool.bytes());
    }
}
