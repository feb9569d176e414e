//! The data-path rings behind one small contract, one module per family and direction
//! (as Linux splits gve_tx.c / gve_tx_dqo.c): [`gqi_tx`], [`gqi_rx`], [`dqo_tx`],
//! [`dqo_rx`], with the DQO descriptor layouts in [`dqo_desc`]. Addressing (QPL or RDA) is
//! a field of each ring ([`super::addressing::Buffers`]), not a module.
//!
//! The state machine ([`super::device`]) only ever holds a `Box<dyn TxRing>` and a
//! `Box<dyn RxRing>`; [`tx_ring`] and [`rx_ring`] are the one place a format is turned into
//! a ring. Teardown asks each ring what it created ([`TxRing::teardown_steps`]).

pub mod dqo_desc;
pub mod dqo_rx;
pub mod dqo_tx;
pub mod gqi_rx;
pub mod gqi_tx;

use alloc::vec::Vec;

use crate::dma::{DmaBuf, DmaPool};
use crate::platform::Clock;

use super::adminq::{self, AdminQueue, Opcode};
use super::describe::{Family, QueueFormat};
use super::limits::RingPlan;
use super::regs::{Doorbells, Registers};
use super::GvnicError;

/// The notification block the TX queue uses, and RX's (iPXE: TX = 0, RX = 1).
pub const TX_NTFY_ID: u32 = 0;
pub const RX_NTFY_ID: u32 = 1;

/// What a ring needs while it is registered and created.
pub struct QueueEnv<'a> {
    pub aq: &'a mut AdminQueue,
    pub regs: &'a Registers,
    pub doorbells: &'a Doorbells,
    pub clock: &'a dyn Clock,
    pub dma: &'a mut DmaPool,
    pub owner: &'a str,
    /// Event counters handed over by CONFIGURE (bounds the indexes the device picks).
    pub counters: u16,
}

impl QueueEnv<'_> {
    /// Runs one admin command.
    pub fn execute(
        &mut self,
        opcode: Opcode,
        command: &[u8; adminq::AQ_ENTRY_BYTES],
    ) -> Result<(), GvnicError> {
        self.aq
            .execute(self.regs, self.clock, self.dma, opcode, command)
    }
}

/// One admin command teardown owes a ring (DESTROY_*_QUEUE or UNREGISTER_PAGE_LIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub opcode: Opcode,
    pub id: u32,
}

/// What teardown owes one ring, in the order it must run: the destroy first, the page
/// list's unregister after every queue is gone (facts §0.5).
#[derive(Debug, Default, Clone, Copy)]
pub struct TeardownSteps {
    pub destroy: Option<Step>,
    pub unregister: Option<Step>,
}

/// A transmit ring. One frame in flight at a time is all the monitor needs.
pub trait TxRing {
    /// REGISTER_PAGE_LIST when the ring's addressing is QPL; nothing for RDA.
    fn register(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError>;
    /// CREATE_TX_QUEUE; reads the doorbell and counter indexes the device chose.
    fn create(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError>;
    /// The notification block whose vector this queue raises.
    fn ntfy_id(&self) -> u32 {
        TX_NTFY_ID
    }
    /// Copies `frame` into a buffer, posts its descriptor and rings the doorbell. Fails with
    /// `TxBusy` while an earlier frame has not completed, `FrameTooLong` for a frame that
    /// does not fit a buffer; either way nothing was posted.
    fn post(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
        counters: &DmaBuf,
        frame: &[u8],
    ) -> Result<(), GvnicError>;
    /// Consumes whatever completions the device wrote; true once every posted frame
    /// completed. Never waits.
    fn poll_complete(&mut self, dma: &mut DmaPool, counters: &DmaBuf) -> Result<bool, GvnicError>;
    /// (posted, completed), in the ring's own units, for a timeout message.
    fn progress(&self) -> (u32, u32);
    fn teardown_steps(&self) -> TeardownSteps;
}

/// What one RX poll gave us.
#[derive(Debug, PartialEq, Eq)]
pub enum RxEvent {
    Frame(Vec<u8>),
    /// The device flagged the packet as bad (or it was malformed): dropped and counted.
    Dropped(&'static str),
    /// One buffer of a packet that continues in the next one was consumed.
    Fragment,
}

/// A receive ring.
pub trait RxRing {
    fn register(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError>;
    /// CREATE_RX_QUEUE, then posts the buffers and rings the RX doorbell.
    fn create(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError>;
    fn ntfy_id(&self) -> u32 {
        RX_NTFY_ID
    }
    /// Consumes the next completion, if the device wrote one (`None`: nothing new); a whole
    /// packet (or a drop) comes back once its last buffer is seen, `Fragment` for each
    /// buffer before it. Never waits. A buffer
    /// goes back to the device as soon as its bytes are copied out.
    fn poll(
        &mut self,
        dma: &mut DmaPool,
        doorbells: &Doorbells,
    ) -> Result<Option<RxEvent>, GvnicError>;
    /// Packets dropped because the device flagged them (or they were malformed).
    fn dropped(&self) -> u32;
    fn teardown_steps(&self) -> TeardownSteps;
}

/// The TX ring for `format`, allocated (nothing told to the device yet).
pub fn tx_ring(
    format: QueueFormat,
    dma: &mut DmaPool,
    owner: &str,
    plan: &RingPlan,
) -> Result<alloc::boxed::Box<dyn TxRing>, GvnicError> {
    Ok(match format.family() {
        Family::Gqi => alloc::boxed::Box::new(gqi_tx::GqiTx::alloc(
            dma,
            owner,
            plan.tx_entries,
            format.addressing(),
        )?),
        Family::Dqo => alloc::boxed::Box::new(dqo_tx::DqoTx::alloc(
            dma,
            owner,
            plan.tx_entries,
            format.addressing(),
        )?),
    })
}

/// The RX ring for `format`, allocated (nothing told to the device yet).
pub fn rx_ring(
    format: QueueFormat,
    dma: &mut DmaPool,
    owner: &str,
    plan: &RingPlan,
) -> Result<alloc::boxed::Box<dyn RxRing>, GvnicError> {
    Ok(match format.family() {
        Family::Gqi => alloc::boxed::Box::new(gqi_rx::GqiRx::alloc(
            dma,
            owner,
            plan.rx_entries,
            plan.packet_buffer_bytes,
            format.addressing(),
        )?),
        Family::Dqo => alloc::boxed::Box::new(dqo_rx::DqoRx::alloc(
            dma,
            owner,
            plan.rx_entries,
            plan.packet_buffer_bytes,
            format.addressing(),
        )?),
    })
}

/// Pages the two rings of `format` register as page lists (0 for RDA), for the
/// max_registered_pages check before CONFIGURE.
pub fn registered_pages(format: QueueFormat) -> u32 {
    match (format.family(), format.addressing()) {
        (_, super::addressing::Addressing::Rda) => 0,
        (Family::Gqi, _) => gqi_tx::TX_BUF_PAGES + gqi_rx::RX_BUF_PAGES,
        (Family::Dqo, _) => dqo_tx::TX_BUF_PAGES + dqo_rx::RX_BUF_PAGES,
    }
}
