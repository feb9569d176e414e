//! Notification blocks and their IRQ doorbells (facts §3.2, §4.3; gvnic-dqo.md §1.10).
//!
//! CONFIGURE_DEVICE_RESOURCES gets two blocks (iPXE: TX = 0, RX = 1); the device writes
//! each block's IRQ doorbell index (BE32) into the first 4 bytes of its 64-byte record.
//!
//! GQI: completions land in memory whether or not an interrupt fires, so a polling driver
//! masks each IRQ (BE32 0x40000000) once and forgets them.
//!
//! DQO is different, and this is why a polling DQO driver still needs MSI-X: the device
//! holds TX and RX completions back until 128 bytes of them collect in its internal cache
//! line, or until it asserts an interrupt (iPXE commit d2e1e591a: DHCP stalled up to 30 s).
//! So each queue's vector is pointed at a dummy DMA target and unmasked
//! ([`crate::pci::msix`]), and the IRQ doorbells are re-armed (LE32 0x19) on every poll:
//! re-arming only after an observed completion still left stalls (iPXE commit 4f44f6240).
//! The asserted "interrupt" is a 4-byte DMA write into the pool that nobody reads.

use alloc::vec::Vec;

use crate::dma::{DmaBuf, DmaPool};

use super::describe::Family;
use super::regs::{Doorbells, DQO_IRQ_REARM, IRQ_DOORBELL_MASK};
use super::GvnicError;

/// Notification blocks: iPXE's two; GCE accepts zero but then fails to create more than
/// one queue (facts §3.2).
pub const NOTIFY_BLOCKS: u32 = 2;
/// Bytes between notification-block records (Linux's cache-line-aligned `gve_irq_db`).
pub const IRQ_DB_STRIDE: u32 = 64;

/// The IRQ doorbell index of each block, read (and checked) after CONFIGURE.
pub fn read_irq_doorbells(
    dma: &DmaPool,
    irq_dbs: &DmaBuf,
    doorbells: &Doorbells,
) -> Result<Vec<u32>, GvnicError> {
    (0..NOTIFY_BLOCKS)
        .map(|block| {
            let index = u32::from_be(dma.read_u32(irq_dbs, (block * IRQ_DB_STRIDE) as usize)?);
            doorbells.check(index, "IRQ doorbell index")
        })
        .collect()
}

/// Right after CONFIGURE: GQI masks every IRQ (we poll); DQO writes 0, as iPXE does, and
/// arms each block only once its queue exists.
pub fn quiet(family: Family, doorbells: &Doorbells, irq_doorbells: &[u32]) {
    for &index in irq_doorbells {
        match family {
            Family::Gqi => doorbells.ring_be(index, IRQ_DOORBELL_MASK),
            Family::Dqo => doorbells.ring_le(index, 0),
        }
    }
}

/// DQO: re-arm every block's IRQ (done on every poll). GQI: nothing, its IRQs stay masked.
pub fn rearm(family: Family, doorbells: &Doorbells, irq_doorbells: &[u32]) {
    if family == Family::Dqo {
        for &index in irq_doorbells {
            doorbells.ring_le(index, DQO_IRQ_REARM);
        }
    }
}
