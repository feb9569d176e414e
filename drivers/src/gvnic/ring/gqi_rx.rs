//! The GQI receive ring (facts §3.5, §4.2), QPL or RDA.
//!
//! Two paired rings of `rx_queue_entries` entries: the data ring (8-byte BE slots we write
//! once, at creation: QPL offsets for GQI-QPL, device addresses for GQI-RDA) and the descriptor ring (64-byte entries the device writes).
//! An entry is new when the low 3 bits of its flags_seq equal the sequence number we
//! expect, which runs 1..=7 and skips 0: seven is coprime with every power-of-two ring
//! size, so each rewrite of an entry changes it, and a zeroed ring never matches.

use alloc::vec::Vec;

use bitflags::bitflags;
use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};

use super::super::addressing::{AddressKind, Addressing, BufSpec, Buffers, RX_QPL_ID};
use super::super::adminq::{self, CreateRxQueue, Opcode};
use super::super::regs::Doorbells;
use super::super::resources::read_queue_resources;
use super::super::GvnicError;
use super::{QueueEnv, RxEvent, RxRing, Step, TeardownSteps, RX_NTFY_ID};

/// RX buffers made available at once. iPXE, 2024-07-25: fewer than 64 buffers made GCE
/// (c3-standard-4) drop too many packets.
pub const RX_BUFFERS: u32 = 64;
/// 2 KiB buffers, two per page.
pub const RX_BUF_PAGES: u32 = RX_BUFFERS / 2;
/// gVNIC writes each frame 2 bytes into its buffer so the IP header lands aligned; `len`
/// of a first fragment counts those 2 bytes.
pub const RX_PAD: usize = 2;
pub const RX_DESC_BYTES: usize = 64;
const DATA_SLOT_BYTES: usize = 8;
/// Longest multi-fragment packet we reassemble (jumbo frames top out near 9 KiB).
pub const MAX_PACKET: usize = 16 * 1024;

bitflags! {
    /// The flag bits of flags_seq (BE16 at +62); the low 3 bits are the sequence number.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RxFlags: u16 {
        const FRAG = 1 << 6;
        const IPV4 = 1 << 7;
        const IPV6 = 1 << 8;
        const TCP = 1 << 9;
        const UDP = 1 << 10;
        /// The device saw an error: drop the packet.
        const ERR = 1 << 11;
        /// The packet continues in the next descriptor.
        const PKT_CONT = 1 << 13;
    }
}
const SEQ_MASK: u16 = 0x7;

/// `gve_rx_desc`, as the device writes it.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RxDesc {
    padding: [u8; 48],
    rss_hash: U32,
    mss: U16,
    reserved: U16,
    hdr_len: u8,
    hdr_off: u8,
    csum: U16,
    len: U16,
    flags_seq: U16,
}
const _: () = assert!(core::mem::size_of::<RxDesc>() == RX_DESC_BYTES);

fn next_seq(seq: u16) -> u16 {
    if seq == 7 {
        1
    } else {
        seq + 1
    }
}

pub struct GqiRx {
    pub desc_ring: DmaBuf,
    pub data_ring: DmaBuf,
    pub resources: DmaBuf,
    pub bufs: Buffers,
    entries: u16,
    /// The packet buffer size CREATE_RX_QUEUE gives the device: our 2 KiB slot, or less
    /// when BUFFER_SIZES allows less ([`super::RingPlan`]).
    packet_buffer: u16,
    db_index: u32,
    /// Free-running count of descriptors consumed.
    cons: u32,
    seq: u16,
    /// Fragments of a packet whose descriptor said PKT_CONT.
    partial: Vec<u8>,
    partial_bad: bool,
    /// A PKT_CONT descriptor was seen: the next one continues a packet (no pad). Tracked on
    /// its own because a bad or empty first fragment leaves `partial` empty.
    mid_packet: bool,
    pub created: bool,
    pub dropped: u32,
}

impl GqiRx {
    /// Allocates the rings and buffers and fills every data slot: slot i points at buffer
    /// i mod 64, which the device can only reuse after we consumed slot i - 64 (the fill
    /// count we ring never runs more than 64 ahead of our consumer count).
    pub fn alloc(
        dma: &mut DmaPool,
        owner: &str,
        entries: u16,
        packet_buffer: u16,
        addressing: Addressing,
    ) -> Result<GqiRx, GvnicError> {
        let kind = match addressing {
            Addressing::Qpl => AddressKind::QplOffset,
            Addressing::Rda => AddressKind::DeviceAddress,
        };
        let queue = GqiRx {
            desc_ring: dma.alloc(
                owner,
                "gvnic rx desc ring",
                usize::from(entries) * RX_DESC_BYTES,
            )?,
            data_ring: dma.alloc(
                owner,
                "gvnic rx data ring",
                usize::from(entries) * DATA_SLOT_BYTES,
            )?,
            resources: dma.alloc(owner, "gvnic rx resources", PAGE_SIZE)?,
            bufs: Buffers::alloc(
                dma,
                owner,
                BufSpec {
                    purpose: "gvnic rx buffers",
                    addressing,
                    kind,
                    id: RX_QPL_ID,
                    pages: RX_BUF_PAGES,
                },
            )?,
            entries,
            packet_buffer,
            db_index: 0,
            cons: 0,
            seq: 1,
            partial: Vec::new(),
            partial_bad: false,
            mid_packet: false,
            created: false,
            dropped: 0,
        };
        for slot in 0..u32::from(entries) {
            // GQI-RDA: a device address checked to lie in the pool; GQI-QPL: an offset.
            let addr = queue.bufs.desc_addr(dma, slot, 0)?;
            dma.write(
                &queue.data_ring,
                slot as usize * DATA_SLOT_BYTES,
                &addr.to_be_bytes(),
            )?;
        }
        Ok(queue)
    }

    /// Buffers the device may fill at once: 64, or the whole ring if it is smaller.
    fn fill_ahead(&self) -> u32 {
        RX_BUFFERS.min(u32::from(self.entries))
    }
}

impl RxRing for GqiRx {
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
                rx_desc_ring_addr: U64::new(env.dma.device_addr(&self.desc_ring, 0)?),
                rx_data_ring_addr: U64::new(env.dma.device_addr(&self.data_ring, 0)?),
                queue_page_list_id: U32::new(self.bufs.qpl_id()),
                rx_ring_size: U16::new(self.entries),
                // GQI buffers are half pages; the original device assumes it anyway.
                packet_buffer_size: U16::new(self.packet_buffer),
                rx_buff_ring_size: U16::new(0),
                enable_rsc: 0,
                padding1: 0,
                header_buffer_size: U16::new(0),
                padding2: U16::new(0),
            },
        );
        env.execute(Opcode::CreateRxQueue, &command)?;
        self.created = true;
        let indexes =
            read_queue_resources(env.dma, &self.resources, env.doorbells, Some(env.counters))?;
        self.db_index = indexes.db_index;
        // Post the buffers: the doorbell carries the free-running fill count.
        env.doorbells
            .ring_be(self.db_index, self.cons.wrapping_add(self.fill_ahead()));
        Ok(())
    }

    /// Consumes the next completed descriptor, if the device wrote one. A buffer goes back
    /// to the device (doorbell) as soon as its bytes are copied out.
    fn poll(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
    ) -> Result<Option<RxEvent>, GvnicError> {
        let index = (self.cons % u32::from(self.entries)) as usize;
        let mut raw = [0u8; RX_DESC_BYTES];
        dma.read(&self.desc_ring, index * RX_DESC_BYTES, &mut raw)?;
        let (desc, _) = RxDesc::read_from_prefix(&raw)
            .map_err(|_| GvnicError::BadDescriptor(alloc::string::String::from("rx desc")))?;
        if desc.flags_seq.get() & SEQ_MASK != self.seq {
            return Ok(None);
        }
        // Read barrier: the length and the frame bytes only after the sequence number
        // said they are complete (iPXE added this in 2025). Re-read the entry after it.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        dma.read(&self.desc_ring, index * RX_DESC_BYTES, &mut raw)?;
        let (desc, _) = RxDesc::read_from_prefix(&raw)
            .map_err(|_| GvnicError::BadDescriptor(alloc::string::String::from("rx desc")))?;
        let flags = RxFlags::from_bits_truncate(desc.flags_seq.get());
        let len = usize::from(desc.len.get());
        let pad = if self.mid_packet { 0 } else { RX_PAD };
        // The buffer is the one posted in this descriptor's data slot at create time (slot i
        // -> buffer i % RX_BUFFERS): index by slot, not by the free-running count, or a ring
        // smaller than RX_BUFFERS reads a buffer the device never wrote.
        let buffer = self.bufs.offset(index as u32);

        let mut problem = None;
        if flags.contains(RxFlags::ERR) {
            problem = Some("device flagged the frame with ERR");
        } else if len < pad || len > usize::from(self.packet_buffer) {
            problem = Some("descriptor length outside the buffer");
        } else {
            let mut bytes = alloc::vec![0u8; len - pad];
            dma.read(&self.bufs.buf, buffer + pad, &mut bytes)?;
            self.partial.extend_from_slice(&bytes);
        }
        if problem.is_some() {
            self.partial_bad = true;
        }

        self.cons = self.cons.wrapping_add(1);
        self.seq = next_seq(self.seq);
        doorbells.ring_be(self.db_index, self.cons.wrapping_add(self.fill_ahead()));

        self.mid_packet = flags.contains(RxFlags::PKT_CONT);
        if self.mid_packet {
            // More fragments follow; the packet is reported once whole (by a later poll).
            if self.partial.len() > MAX_PACKET {
                self.partial_bad = true;
                self.partial.clear();
            }
            return Ok(Some(RxEvent::Fragment));
        }
        let bad = core::mem::take(&mut self.partial_bad);
        let frame = core::mem::take(&mut self.partial);
        if bad {
            self.dropped += 1;
            return Ok(Some(RxEvent::Dropped(
                problem.unwrap_or("an earlier fragment was bad"),
            )));
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
