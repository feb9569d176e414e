//! Notification blocks: their IRQ doorbells and when the device asserts their MSI-X vector.
//!
//! - Block k uses vector k when CONFIGURE's ntfy_blk_msix_base_idx is 0 (the management
//!   vector is then the last), k + 1 when it is 1 (facts §3.2).
//! - GQI IRQ doorbell (BE32): MASK masks the block, any write without MASK (0 at Linux's
//!   turn-up, ACK|EVENT after its poll) unmasks it (facts §4.3). Completions are written to
//!   memory whether or not an interrupt fires (facts §0.8).
//! - DQO IRQ doorbell (LE32): ENABLE (bit 0) arms the block once; the next interrupt disarms
//!   it, so a driver re-arms with 0x19 after every poll (gvnic-dqo.md §1.10). CLEAR_PBA
//!   (bit 1) clears the vector's pending bit. NO_INT_MODE (bit 30) without ENABLE disarms.
//! - Why DQO needs an armed (dummy) vector even when polling: the device holds completions
//!   until a 128-byte line fills or it asserts the interrupt (format/completion.rs), and it
//!   asserts only when MSI-X is enabled, the function and the vector are unmasked, and the
//!   block is armed. A driver that skips this sees a lone completion held back.
//! - Not modelled: the ITR interval (bits 5-16): interrupts are asserted at once (guess).

use crate::config::Family;
use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic};

/// GQI IRQ doorbell bits (BE32 value, facts §4.3).
pub mod irq_doorbell {
    pub const ACK: u32 = 1 << 31;
    pub const MASK: u32 = 1 << 30;
    pub const EVENT: u32 = 1 << 29;
}

/// DQO IRQ doorbell bits (LE32 value, gvnic-dqo.md §1.10).
pub mod dqo_irq_doorbell {
    pub const ENABLE: u32 = 1 << 0;
    pub const CLEAR_PBA: u32 = 1 << 1;
    /// ITR select, 2 bits at 3 (3 = no update).
    pub const ITR_MASK: u32 = 3 << 3;
    /// Interval in 2 µs units, 12 bits at 5.
    pub const INTERVAL_MASK: u32 = 0xfff << 5;
    /// DPDK polls with this set (no interrupts at all).
    pub const NO_INT_MODE: u32 = 1 << 30;
    /// Linux's re-arm: ENABLE | ITR "no update".
    pub const REARM: u32 = ENABLE | (3 << 3);
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Block {
    /// GQI: unmasked. DQO: armed.
    pub enabled: bool,
    /// Completions were produced on the block's queues since it last interrupted.
    pub event: bool,
}

impl Gvnic {
    fn block_vector(&self, block: u32) -> Option<u16> {
        let c = self.configured.as_ref()?;
        u16::try_from(block + u32::from(c.msix_base != 0)).ok()
    }

    /// A write to block k's IRQ doorbell; `bus` is the value as the LE bus carries it.
    pub(crate) fn irq_doorbell(&mut self, block: u32, bus: u32, mem: &dyn GuestMemory) {
        let Some(family) = self.configured.as_ref().map(|c| c.format.family()) else {
            return;
        };
        let (value, enabled) = match family {
            Family::Gqi => {
                let v = bus.swap_bytes();
                let known = irq_doorbell::ACK | irq_doorbell::MASK | irq_doorbell::EVENT;
                if v & !known != 0 {
                    self.record.violation(
                        ViolationKind::BadRegisterAccess,
                        format!(
                            "GQI IRQ doorbell of block {block} written {v:#010x}: undefined bits"
                        ),
                    );
                }
                (v, v & irq_doorbell::MASK == 0)
            }
            Family::Dqo => {
                use dqo_irq_doorbell::*;
                let known = ENABLE | CLEAR_PBA | ITR_MASK | INTERVAL_MASK | NO_INT_MODE;
                if bus & !known != 0 {
                    self.record.violation(
                        ViolationKind::BadRegisterAccess,
                        format!(
                            "DQO IRQ doorbell of block {block} written {bus:#010x}: undefined bits"
                        ),
                    );
                }
                if bus & CLEAR_PBA != 0 {
                    if let Some(v) = self.block_vector(block) {
                        if let Some(p) = self.msix.pending.get_mut(usize::from(v)) {
                            *p = false;
                        }
                    }
                }
                (bus, bus & ENABLE != 0)
            }
        };
        match self
            .record
            .irq_doorbells
            .iter_mut()
            .find(|(b, _)| *b == block)
        {
            Some(e) => e.1 = value,
            None => self.record.irq_doorbells.push((block, value)),
        }
        if let Some(b) = self
            .configured
            .as_mut()
            .and_then(|c| c.blocks.get_mut(block as usize))
        {
            b.enabled = enabled;
        }
        self.try_interrupt(block, mem);
    }

    /// Completions were produced on a queue of `block` (held or written).
    pub(crate) fn completion_event(&mut self, block: u32, mem: &dyn GuestMemory) {
        if let Some(b) = self
            .configured
            .as_mut()
            .and_then(|c| c.blocks.get_mut(block as usize))
        {
            b.event = true;
        }
        self.try_interrupt(block, mem);
    }

    /// Assert the block's vector if it has something to say and may say it.
    fn try_interrupt(&mut self, block: u32, mem: &dyn GuestMemory) {
        let Some(c) = self.configured.as_ref() else {
            return;
        };
        let family = c.format.family();
        let Some(b) = c.blocks.get(block as usize) else {
            return;
        };
        if !(b.enabled && b.event) {
            return;
        }
        let Some(v) = self.block_vector(block) else {
            return;
        };
        if !self.vectors_live() {
            return;
        }
        let sent = self.assert_vector(v, mem);
        if let Some(b) = self
            .configured
            .as_mut()
            .and_then(|c| c.blocks.get_mut(block as usize))
        {
            b.event = false;
            // DQO: the ENABLE write is spent; GQI stays unmasked (Linux masks in its handler).
            if family == Family::Dqo {
                b.enabled = false;
            }
        }
        if sent {
            self.flush_block(block, mem);
        }
    }

    /// A vector or the whole function was unmasked: pending messages go out now, and the
    /// device writes back what it held for those blocks.
    pub(crate) fn interrupts_unmasked(&mut self, mem: &dyn GuestMemory) {
        for v in self.release_pending_vectors(mem) {
            let base = self
                .configured
                .as_ref()
                .map_or(0, |c| u32::from(c.msix_base != 0));
            if let Some(block) = u32::from(v).checked_sub(base) {
                self.flush_block(block, mem);
            }
        }
        // Blocks that had something to say while MSI-X was off or masked say it now.
        let blocks = self.configured.as_ref().map_or(0, |c| c.num_irq_dbs);
        for block in 0..blocks {
            self.try_interrupt(block, mem);
        }
    }

    /// Write back every held DQO completion of the block's queues (it asserted).
    pub(crate) fn flush_block(&mut self, block: u32, mem: &dyn GuestMemory) {
        let tx: Vec<u32> = self
            .tx
            .iter()
            .filter(|(_, q)| q.ntfy == block)
            .map(|(k, _)| *k)
            .collect();
        for qid in tx {
            if let Some(mut ring) = self.tx.get_mut(&qid).and_then(|q| q.compl.take()) {
                self.write_back(&mut ring, mem, "TX completion");
                if let Some(q) = self.tx.get_mut(&qid) {
                    q.compl = Some(ring);
                }
            }
        }
        let rx: Vec<u32> = self
            .rx
            .iter()
            .filter(|(_, q)| q.ntfy == block)
            .map(|(k, _)| *k)
            .collect();
        for qid in rx {
            if let Some(mut ring) = self.rx.get_mut(&qid).and_then(|q| q.compl.take()) {
                self.write_back(&mut ring, mem, "RX completion");
                if let Some(q) = self.rx.get_mut(&qid) {
                    q.compl = Some(ring);
                }
            }
        }
    }
}
