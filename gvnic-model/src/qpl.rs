//! Queue page lists (facts §3.3): REGISTER/UNREGISTER_PAGE_LIST and the QPL byte-offset
//! address space that GQI-QPL descriptors and RX data slots use.

use crate::adminq::status;
use crate::record::ViolationKind;
use crate::{be32, be64, GuestMemory, Gvnic, PAGE_SIZE};

/// The magic id meaning "raw DMA addressing": never registrable (facts §3.3).
pub const RDA_QPL_ID: u32 = 0xFFFF_FFFF;

impl Gvnic {
    pub(crate) fn cmd_register_page_list(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        use ViolationKind::{BadCommand, NotPageAligned, Tolerated, WrongState};
        let id = be32(cmd, 8);
        let num_pages = be32(cmd, 12);
        let list_addr = be64(cmd, 16);
        let page_size = be64(cmd, 24);
        if self.configured.is_none() {
            // Every driver registers after CONFIGURE (facts §0.4); refusing before it is a guess.
            return self.refuse(
                WrongState,
                status::FAILED_PRECONDITION,
                "REGISTER_PAGE_LIST before CONFIGURE_DEVICE_RESOURCES",
            );
        }
        if id == RDA_QPL_ID {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                "REGISTER_PAGE_LIST with the RDA id 0xffffffff",
            );
        }
        if num_pages == 0 {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("REGISTER_PAGE_LIST {id:#x} with 0 pages"),
            );
        }
        if self.qpls.contains_key(&id) {
            return self.refuse(
                BadCommand,
                status::ALREADY_EXISTS,
                format!("REGISTER_PAGE_LIST {id:#x}: already registered"),
            );
        }
        let total = self.registered_pages() as u64 + u64::from(num_pages);
        if total > self.cfg.max_registered_pages {
            return self.refuse(
                BadCommand,
                status::RESOURCE_EXHAUSTED,
                format!(
                    "REGISTER_PAGE_LIST {id:#x}: {num_pages} pages would make {total} > max_registered_pages {}",
                    self.cfg.max_registered_pages
                ),
            );
        }
        if page_size != PAGE_SIZE {
            // "The device will accept any old garbage value as the page size" (facts §3.3).
            self.record.violation(
                Tolerated,
                format!("REGISTER_PAGE_LIST {id:#x} page_size {page_size} (send 4096)"),
            );
        }
        let mut list = vec![0u8; num_pages as usize * 8];
        if !self.check_region(mem, list_addr, list.len() as u64, "page address list")
            || !self.dma_read(mem, list_addr, &mut list, "page address list")
        {
            return status::INVALID_ARGUMENT;
        }
        let mut pages = Vec::with_capacity(num_pages as usize);
        for (i, chunk) in list.chunks_exact(8).enumerate() {
            let page = be64(chunk, 0);
            if !page.is_multiple_of(PAGE_SIZE) {
                return self.refuse(
                    NotPageAligned,
                    status::INVALID_ARGUMENT,
                    format!(
                        "REGISTER_PAGE_LIST {id:#x} page {i} at {page:#x} is not 4 KiB aligned"
                    ),
                );
            }
            if !self.check_region(mem, page, PAGE_SIZE, "QPL page") {
                return status::INVALID_ARGUMENT;
            }
            pages.push(page);
        }
        self.qpls.insert(id, pages);
        status::PASSED
    }

    pub(crate) fn cmd_unregister_page_list(&mut self, cmd: &[u8; 64]) -> u32 {
        let id = be32(cmd, 8);
        if !self.qpls.contains_key(&id) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::NOT_FOUND,
                format!("UNREGISTER_PAGE_LIST {id:#x}: not registered"),
            );
        }
        let in_use = self.tx.values().any(|q| q.qpl() == Some(id))
            || self.rx.values().any(|q| q.qpl() == Some(id));
        if in_use {
            // Guess: a device cannot let go of pages a live queue uses.
            return self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                format!("UNREGISTER_PAGE_LIST {id:#x} while a queue uses it"),
            );
        }
        self.qpls.remove(&id);
        status::PASSED
    }

    /// Guest (address, length) pieces of QPL bytes [offset, offset+len), or None (and a
    /// violation) when the range is not inside the registered pages.
    pub(crate) fn qpl_pieces(
        &mut self,
        id: u32,
        offset: u64,
        len: usize,
        what: &str,
    ) -> Option<Vec<(u64, usize)>> {
        let pages = self.qpls.get(&id)?;
        let size = pages.len() as u64 * PAGE_SIZE;
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > size) {
            self.record.violation(
                ViolationKind::QplOffsetOutOfRange,
                format!("{what}: QPL {id:#x} bytes {offset:#x}+{len:#x} outside its {size:#x} registered bytes"),
            );
            return None;
        }
        let mut out = Vec::new();
        let (mut off, mut left) = (offset, len);
        while left > 0 {
            let in_page = off % PAGE_SIZE;
            let n = left.min((PAGE_SIZE - in_page) as usize);
            out.push((pages[(off / PAGE_SIZE) as usize] + in_page, n));
            off += n as u64;
            left -= n;
        }
        Some(out)
    }
}
