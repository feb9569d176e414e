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

use alloc::string::String;
use alloc::vec::Vec;

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};
use crate::pci::msix::{FunctionState, OwnedMsixTable};
use crate::platform::{Bdf, ConfigSpace};

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

/// The MSI-X state `gvnic describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixReport {
    pub vectors: u16,
    pub function: FunctionState,
    /// Vectors currently unmasked.
    pub unmasked: u16,
    /// The driver programmed the table (DQO's dummy target).
    pub programmed: bool,
}

/// The function's MSI-X table as DQO uses it: every vector aimed at a 4-byte dummy target
/// in the pool (gvnic-dqo.md §1.10 steps 1-3), queue vectors unmasked once their queue
/// exists, everything masked and MSI-X off again at teardown.
pub struct DummyMsix {
    bdf: Bdf,
    table: OwnedMsixTable,
    /// The DMA target every vector points at while we own the table.
    dummy: Option<DmaBuf>,
    /// We set MSI-X enable and must clear it again.
    enabled_by_us: bool,
}

impl DummyMsix {
    pub fn new(bdf: Bdf, table: OwnedMsixTable) -> DummyMsix {
        DummyMsix {
            bdf,
            table,
            dummy: None,
            enabled_by_us: false,
        }
    }

    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// The table itself (`irq test` routes and restores entries through it).
    pub fn table(&self) -> &OwnedMsixTable {
        &self.table
    }

    /// There is something teardown must undo.
    pub fn live(&self) -> bool {
        self.dummy.is_some() || self.enabled_by_us
    }

    /// Every vector masked and pointed at a fresh dummy target (data 0), then MSI-X on with
    /// the function unmasked. The target is allocated under `owner` before the device can
    /// write it, so every exit path frees or quarantines it with the NIC's other memory.
    pub fn program(
        &mut self,
        config: &dyn ConfigSpace,
        dma: &mut DmaPool,
        owner: &str,
    ) -> Result<(), GvnicError> {
        // TX and RX vectors, plus the management vector the device puts last.
        if u32::from(self.table.vectors()) < NOTIFY_BLOCKS + 1 {
            return Err(GvnicError::BadDeviceValue {
                what: "MSI-X vector count (need a TX, an RX and a management vector)",
                value: u64::from(self.table.vectors()),
            });
        }
        self.table.mask_all();
        let dummy = dma.alloc(owner, "gvnic msix dummy target", PAGE_SIZE)?;
        let target = dma.device_addr(&dummy, 0)?;
        dma.check_device_range(target, 4)?;
        self.dummy = Some(dummy);
        for vector in 0..self.table.vectors() {
            self.table.program(vector, target, 0);
        }
        let state = self.table.cap.set_function(
            config,
            self.bdf,
            FunctionState {
                enabled: true,
                function_masked: false,
            },
        );
        self.enabled_by_us = true;
        if !state.enabled || state.function_masked {
            return Err(GvnicError::BadDeviceValue {
                what: "MSI-X message control after enabling",
                value: u64::from(state.enabled) | u64::from(state.function_masked) << 1,
            });
        }
        Ok(())
    }

    /// A queue's vector may fire (never the management vector's: we do not call it).
    pub fn unmask(&self, vector: u16) {
        self.table.set_masked(vector, false);
    }

    pub fn mask_all(&self) {
        self.table.mask_all();
    }

    /// Masks every vector (a masked vector sends nothing, so the dummy target may be freed
    /// after this) and, given config space, clears MSI-X enable again. Returns what was
    /// done, or None when nothing was live.
    pub fn quiesce(&mut self, config: Option<&dyn ConfigSpace>) -> Option<String> {
        if !self.live() {
            return None;
        }
        self.table.mask_all();
        self.dummy = None;
        let config = config?;
        if !self.enabled_by_us {
            return Some(String::from("every vector masked"));
        }
        let state = self.table.cap.set_function(
            config,
            self.bdf,
            FunctionState {
                enabled: false,
                function_masked: false,
            },
        );
        self.enabled_by_us = state.enabled;
        Some(alloc::format!(
            "every vector masked; MSI-X {}",
            if state.enabled {
                "STILL ENABLED"
            } else {
                "disabled"
            }
        ))
    }

    pub fn report(&self, config: &dyn ConfigSpace) -> MsixReport {
        let vectors = self.table.vectors();
        MsixReport {
            vectors,
            function: self.table.cap.function_state(config, self.bdf),
            unmasked: (0..vectors).filter(|v| !self.table.masked(*v)).count() as u16,
            programmed: self.dummy.is_some(),
        }
    }
}
