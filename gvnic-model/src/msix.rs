//! The MSI-X table and pending-bit array in BAR1 (PCI Local Bus 3.0 §6.8.2), and the one thing
//! an interrupt is to a device: a DMA write of the vector's message data to its message
//! address. Every message is recorded; it is performed when the address is guest RAM (a
//! driver's dummy target, gvnic-dqo.md §1.10). A real LAPIC address (0xFEE0_0000) is not RAM
//! here: the proxy front end has no interrupt path (qemu-multiprocess-proxy.md), so such a
//! message is recorded only.
//!
//! Who asserts when (notification blocks, IRQ doorbells, DQO completion write-back) is in
//! notify.rs; this module knows only vectors.

use crate::pci::{MSIX_CTRL_ENABLE, MSIX_CTRL_FUNCTION_MASK, MSIX_PBA_OFFSET};
use crate::record::InterruptRecord;
use crate::{GuestMemory, Gvnic};

/// Bytes per table entry: address low, address high, data, vector control.
pub const ENTRY_BYTES: u64 = 16;
/// Vector control bit 0: the vector is masked. Set at reset (PCI 3.0 §6.8.2.9).
pub const VECTOR_MASKED: u32 = 1;

#[derive(Clone, Debug)]
pub(crate) struct Msix {
    /// Per vector: [address low, address high, data, vector control].
    pub table: Vec<[u32; 4]>,
    /// Pending bits, one per vector.
    pub pending: Vec<bool>,
}

impl Msix {
    pub fn new(vectors: u16) -> Self {
        Msix {
            table: vec![[0, 0, 0, VECTOR_MASKED]; usize::from(vectors)],
            pending: vec![false; usize::from(vectors)],
        }
    }

    fn table_len(&self) -> u64 {
        self.table.len() as u64 * ENTRY_BYTES
    }

    /// The dword at a 4-aligned BAR1 offset.
    fn dword(&self, off: u64) -> u32 {
        if off < self.table_len() {
            return self.table[(off / ENTRY_BYTES) as usize][((off % ENTRY_BYTES) / 4) as usize];
        }
        let pba = u64::from(MSIX_PBA_OFFSET);
        if off >= pba {
            let first = ((off - pba) * 8) as usize;
            return (0..32)
                .filter(|b| self.pending.get(first + b).copied().unwrap_or(false))
                .fold(0, |v, b| v | (1 << b));
        }
        0
    }

    pub fn read(&self, off: u64, size: u8) -> u64 {
        let d = self.dword(off & !3);
        let shift = (off & 3) * 8;
        let mask = if size >= 4 {
            u32::MAX
        } else {
            (1u32 << (8 * size)) - 1
        };
        u64::from((d >> shift) & mask)
    }

    /// A table write (the PBA is read-only). Returns the vector whose mask bit was cleared.
    pub fn write(&mut self, off: u64, size: u8, value: u64) -> Option<u16> {
        if off >= self.table_len() {
            return None;
        }
        let (v, word) = (
            (off / ENTRY_BYTES) as usize,
            ((off % ENTRY_BYTES) / 4) as usize,
        );
        let shift = (off & 3) * 8;
        let mask = if size >= 4 {
            u32::MAX
        } else {
            (1u32 << (8 * size)) - 1
        };
        let was_masked = self.table[v][3] & VECTOR_MASKED != 0;
        let cur = &mut self.table[v][word];
        *cur = (*cur & !(mask << shift)) | (((value as u32) & mask) << shift);
        // Vector control: only the mask bit is writable.
        self.table[v][3] &= VECTOR_MASKED;
        let unmasked = was_masked && self.table[v][3] & VECTOR_MASKED == 0;
        unmasked.then_some(v as u16)
    }

    pub fn vector_masked(&self, v: u16) -> bool {
        self.table
            .get(usize::from(v))
            .is_none_or(|e| e[3] & VECTOR_MASKED != 0)
    }
}

impl Gvnic {
    /// MSI-X enable is set in the capability's message control.
    pub(crate) fn msix_enabled(&self) -> bool {
        self.pci.msix_control & MSIX_CTRL_ENABLE != 0
    }

    fn msix_function_masked(&self) -> bool {
        self.pci.msix_control & MSIX_CTRL_FUNCTION_MASK != 0
    }

    /// Assert vector `v`. With MSI-X off nothing happens (false). Masked (function or
    /// vector): the pending bit is set and the message waits (false). Otherwise the message
    /// is sent (true).
    pub(crate) fn assert_vector(&mut self, v: u16, mem: &dyn GuestMemory) -> bool {
        if self.interrupts.is_some() {
            return self.raise_through_hook(v);
        }
        if !self.msix_enabled() || usize::from(v) >= self.msix.table.len() {
            return false;
        }
        if self.msix_function_masked() || self.msix.vector_masked(v) {
            self.msix.pending[usize::from(v)] = true;
            return false;
        }
        self.send_message(v, mem);
        true
    }

    /// Vectors can be asserted: MSI-X is enabled here, or the transport owns the table
    /// (vfio-user: QEMU decides, from its own copy of the capability).
    pub(crate) fn vectors_live(&self) -> bool {
        self.interrupts.is_some() || self.msix_enabled()
    }

    /// The transport owns the table: hand it the vector. Recorded with address and data 0
    /// (the message is the transport's; the device never sees it).
    fn raise_through_hook(&mut self, v: u16) -> bool {
        if usize::from(v) >= self.msix.table.len() {
            return false;
        }
        let raised = self.interrupts.as_mut().is_some_and(|h| h.raise(v));
        self.record.interrupts.push(InterruptRecord {
            vector: v,
            address: 0,
            data: 0,
            written_to_ram: false,
            tick: self.now_ticks(),
        });
        raised
    }

    fn send_message(&mut self, v: u16, mem: &dyn GuestMemory) {
        self.msix.pending[usize::from(v)] = false;
        let e = self.msix.table[usize::from(v)];
        let address = (u64::from(e[1]) << 32) | u64::from(e[0]);
        let data = e[2];
        // A memory write like any other DMA, but not a driver mistake when it misses RAM:
        // on a real machine it lands on the interrupt controller.
        let in_ram = self.pci.bus_master() && mem.write(address, &data.to_le_bytes()).is_ok();
        self.record.interrupts.push(InterruptRecord {
            vector: v,
            address,
            data,
            written_to_ram: in_ram,
            tick: self.now_ticks(),
        });
    }

    /// Deliver the pending messages that are no longer masked (after a vector or the
    /// function was unmasked). Returns the vectors delivered.
    pub(crate) fn release_pending_vectors(&mut self, mem: &dyn GuestMemory) -> Vec<u16> {
        if !self.msix_enabled() || self.msix_function_masked() {
            return Vec::new();
        }
        let ready: Vec<u16> = (0..self.msix.table.len() as u16)
            .filter(|&v| self.msix.pending[usize::from(v)] && !self.msix.vector_masked(v))
            .collect();
        for &v in &ready {
            self.send_message(v, mem);
        }
        ready
    }

    /// BAR1 read: table and PBA.
    pub(crate) fn msix_read(&mut self, offset: u64, size: u8) -> u64 {
        if !crate::regs::access_ok(offset, size, crate::pci::BAR_SIZES[1]) {
            self.bad_access(1, offset, size);
            return crate::regs::all_ones(size);
        }
        self.msix.read(offset, size)
    }

    /// BAR1 write: the table; the PBA and the gap are read-only.
    pub(crate) fn msix_write(&mut self, offset: u64, size: u8, value: u64, mem: &dyn GuestMemory) {
        if !crate::regs::access_ok(offset, size, crate::pci::BAR_SIZES[1])
            || offset >= self.msix.table.len() as u64 * ENTRY_BYTES
        {
            self.bad_access(1, offset, size);
            return;
        }
        if self.msix.write(offset, size, value).is_some() {
            self.interrupts_unmasked(mem);
        }
    }
}
