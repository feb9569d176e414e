//! Where a descriptor's buffer address points, per queue format (gvnic-dqo.md §1.9):
//!
//! - GQI-QPL: a **byte offset** into the queue's registered page list (facts §4.1, §4.2);
//! - GQI-RDA and DQO-RDA: a raw guest DMA address (anywhere in guest RAM);
//! - DQO-QPL: a raw DMA address, which must fall inside the pages the queue's QPL registered
//!   (iPXE commit f5ca1de73; Linux uses the page's bus address + offset). So DQO-QPL
//!   descriptors carry device addresses of registered pages, not QPL offsets.
//!
//! Every access is checked and recorded as a violation when it leaves what the format allows.

use crate::record::ViolationKind;
use crate::{GuestMemory, Gvnic, PAGE_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addressing {
    /// GQI-QPL: offsets into QPL `id`.
    QplOffset(u32),
    /// DQO-QPL: DMA addresses inside QPL `id`'s pages.
    QplPages(u32),
    /// RDA: any guest RAM.
    Raw,
}

impl Addressing {
    pub fn qpl(self) -> Option<u32> {
        match self {
            Addressing::QplOffset(id) | Addressing::QplPages(id) => Some(id),
            Addressing::Raw => None,
        }
    }
}

impl Gvnic {
    /// Guest (address, length) pieces for `len` bytes at descriptor address `at`, or None
    /// (and a violation) when the format does not allow that range.
    fn buffer_pieces(
        &mut self,
        a: Addressing,
        at: u64,
        len: usize,
        what: &str,
    ) -> Option<Vec<(u64, usize)>> {
        match a {
            Addressing::QplOffset(id) => self.qpl_pieces(id, at, len, what),
            Addressing::Raw => Some(vec![(at, len)]),
            Addressing::QplPages(id) => {
                let pages = self.qpls.get(&id)?;
                let end = at.checked_add(len as u64)?;
                // Every page the range touches must be one of the QPL's pages.
                let inside = (at / PAGE_SIZE..end.div_ceil(PAGE_SIZE).max(at / PAGE_SIZE + 1))
                    .all(|p| pages.contains(&(p * PAGE_SIZE)));
                if !inside {
                    self.record.violation(
                        ViolationKind::QplOffsetOutOfRange,
                        format!("{what}: DMA address {at:#x}+{len:#x} is not inside the pages QPL {id:#x} registered (DQO-QPL)"),
                    );
                    return None;
                }
                Some(vec![(at, len)])
            }
        }
    }

    /// Read a buffer the driver described.
    pub(crate) fn buffer_read(
        &mut self,
        mem: &dyn GuestMemory,
        a: Addressing,
        at: u64,
        buf: &mut [u8],
        what: &str,
    ) -> bool {
        let Some(pieces) = self.buffer_pieces(a, at, buf.len(), what) else {
            return false;
        };
        let mut done = 0;
        for (gpa, n) in pieces {
            if !self.dma_read(mem, gpa, &mut buf[done..done + n], what) {
                return false;
            }
            done += n;
        }
        true
    }

    /// Write into a buffer the driver posted.
    pub(crate) fn buffer_write(
        &mut self,
        mem: &dyn GuestMemory,
        a: Addressing,
        at: u64,
        data: &[u8],
        what: &str,
    ) -> bool {
        let Some(pieces) = self.buffer_pieces(a, at, data.len(), what) else {
            return false;
        };
        let mut done = 0;
        for (gpa, n) in pieces {
            if !self.dma_write(mem, gpa, &data[done..done + n], what) {
                return false;
            }
            done += n;
        }
        true
    }
}
