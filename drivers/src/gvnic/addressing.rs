//! How descriptors name buffer memory: a registered queue page list (QPL) or raw DMA
//! addresses (RDA). This is the second axis of the queue format (the family, GQI or DQO, is
//! the first; facts §3.2 queue_format, gvnic-dqo.md §1.9):
//!
//! | format  | page list registered | descriptor address            |
//! |---------|----------------------|-------------------------------|
//! | GQI-QPL | yes                  | byte offset inside the QPL    |
//! | GQI-RDA | no (id 0xFFFFFFFF)   | device (DMA) address          |
//! | DQO-QPL | yes                  | device address of the page    |
//! | DQO-RDA | no (id 0xFFFFFFFF)   | device address                |
//!
//! DQO-QPL is the odd one: its pages are registered, yet its descriptors carry the page's
//! device address plus the offset, not a QPL offset (iPXE commit f5ca1de73; GCP-Linux
//! gve_tx_dqo.c / gve_rx_dqo.c). Either way a ring's buffers are one contiguous pool
//! allocation cut into 2 KiB buffers, as iPXE does, and every address we hand out is
//! checked to lie in the pool.

use zerocopy::byteorder::big_endian::{U32, U64};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};

use super::adminq::{self, Opcode, RegisterPageList};
use super::ring::{QueueEnv, Step};
use super::GvnicError;

/// Half a page: the buffer size GQI devices assume for RX (the original device has no
/// parameter for it), the DQO default (Linux `GVE_RX_BUFFER_SIZE_DQO`), and our TX slot.
pub const BUF_BYTES: usize = PAGE_SIZE / 2;

/// The page-list id that means "raw DMA addressing, no page list" (facts §3.3).
pub const RDA_QPL_ID: u32 = 0xFFFF_FFFF;

/// QPL ids: any u32 but 0xFFFFFFFF. Linux uses 0..n (policy).
pub const TX_QPL_ID: u32 = 0;
pub const RX_QPL_ID: u32 = 1;

/// The addressing axis of a queue format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    Qpl,
    Rda,
}

/// Which family reads the addresses: GQI-QPL wants offsets, everybody else device
/// addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    QplOffset,
    DeviceAddress,
}

/// A ring's buffers: `pages` contiguous pool pages cut into 2 KiB buffers, registered as a
/// page list when the addressing is QPL.
pub struct Buffers {
    pub buf: DmaBuf,
    pub pages: u32,
    pub addressing: Addressing,
    kind: AddressKind,
    /// The page-list id (QPL) we register under.
    id: u32,
    /// REGISTER_PAGE_LIST passed: teardown must UNREGISTER it.
    pub registered: bool,
}

/// What a ring asks of its buffers.
#[derive(Debug, Clone, Copy)]
pub struct BufSpec {
    /// The ledger's purpose string.
    pub purpose: &'static str,
    pub addressing: Addressing,
    pub kind: AddressKind,
    /// The page-list id used when the addressing is QPL.
    pub id: u32,
    pub pages: u32,
}

impl Buffers {
    pub fn alloc(dma: &mut DmaPool, owner: &str, spec: BufSpec) -> Result<Buffers, GvnicError> {
        let buf = dma.alloc(owner, spec.purpose, spec.pages as usize * PAGE_SIZE)?;
        Ok(Buffers {
            buf,
            pages: spec.pages,
            addressing: spec.addressing,
            kind: spec.kind,
            id: spec.id,
            registered: false,
        })
    }

    /// The queue_page_list_id CREATE_*_QUEUE carries.
    pub fn qpl_id(&self) -> u32 {
        match self.addressing {
            Addressing::Qpl => self.id,
            Addressing::Rda => RDA_QPL_ID,
        }
    }

    /// Number of 2 KiB buffers.
    pub fn count(&self) -> u32 {
        self.pages * (PAGE_SIZE / BUF_BYTES) as u32
    }

    /// Byte offset of buffer `index` inside our allocation (and inside the QPL).
    pub fn offset(&self, index: u32) -> usize {
        (index % self.count()) as usize * BUF_BYTES
    }

    /// What a descriptor carries for byte `at` of buffer `index`: a QPL offset (GQI-QPL)
    /// or a device address checked to lie in the pool (everything else).
    pub fn desc_addr(&self, dma: &DmaPool, index: u32, at: usize) -> Result<u64, GvnicError> {
        let offset = self.offset(index) + at;
        match self.kind {
            AddressKind::QplOffset => Ok(offset as u64),
            AddressKind::DeviceAddress => {
                let addr = dma.device_addr(&self.buf, offset)?;
                dma.check_device_range(addr, (BUF_BYTES - at) as u64)?;
                Ok(addr)
            }
        }
    }

    /// REGISTER_PAGE_LIST for a QPL ring; nothing for RDA. The page-address list only has
    /// to live while the command runs, so it is freed once the device has answered; if the
    /// device never answers it may still read the list, which then stays with the NIC's
    /// other memory until a reset confirms the release.
    pub fn register(&mut self, env: &mut QueueEnv<'_>) -> Result<(), GvnicError> {
        if self.addressing == Addressing::Rda {
            return Ok(());
        }
        let dma = &mut *env.dma;
        let list = dma.alloc(env.owner, "gvnic page list", self.pages as usize * 8)?;
        let first = dma.device_addr(&self.buf, 0)?;
        for page in 0..self.pages as usize {
            let phys = first + (page * PAGE_SIZE) as u64;
            dma.check_device_range(phys, PAGE_SIZE as u64)?;
            dma.write(&list, page * 8, &phys.to_be_bytes())?;
        }
        let command = adminq::encode(
            Opcode::RegisterPageList,
            &RegisterPageList {
                page_list_id: U32::new(self.id),
                num_pages: U32::new(self.pages),
                page_address_list_addr: U64::new(dma.device_addr(&list, 0)?),
                page_size: U64::new(PAGE_SIZE as u64),
            },
        );
        let result = env.execute(Opcode::RegisterPageList, &command);
        if matches!(result, Ok(()) | Err(GvnicError::AdminStatus { .. })) {
            // The device answered, so it is done reading the list.
            env.dma.free(list)?;
        }
        result?;
        self.registered = true;
        Ok(())
    }

    /// The UNREGISTER_PAGE_LIST teardown owes, if the list was registered.
    pub fn unregister_step(&self, name: &'static str) -> Option<Step> {
        self.registered.then_some(Step {
            name,
            opcode: Opcode::UnregisterPageList,
            id: self.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::testing::leaked_pool;

    #[test]
    fn qpl_offsets_and_device_addresses() {
        let (mut pool, _) = leaked_pool(0x4000_0000, 16 * PAGE_SIZE);
        let q = Buffers::alloc(
            &mut pool,
            "t",
            BufSpec {
                purpose: "q",
                addressing: Addressing::Qpl,
                kind: AddressKind::QplOffset,
                id: 7,
                pages: 2,
            },
        )
        .unwrap();
        assert_eq!(q.count(), 4);
        assert_eq!(q.qpl_id(), 7);
        assert_eq!(q.desc_addr(&pool, 5, 2).unwrap(), 2048 + 2);
        let r = Buffers::alloc(
            &mut pool,
            "t",
            BufSpec {
                purpose: "r",
                addressing: Addressing::Rda,
                kind: AddressKind::DeviceAddress,
                id: 9,
                pages: 2,
            },
        )
        .unwrap();
        assert_eq!(r.qpl_id(), RDA_QPL_ID);
        let base = pool.device_addr(&r.buf, 0).unwrap();
        assert_eq!(r.desc_addr(&pool, 3, 0).unwrap(), base + 3 * 2048);
        assert!(r.unregister_step("x").is_none());
        // DQO-QPL: registered, yet device addresses.
        let d = Buffers::alloc(
            &mut pool,
            "t",
            BufSpec {
                purpose: "d",
                addressing: Addressing::Qpl,
                kind: AddressKind::DeviceAddress,
                id: 1,
                pages: 1,
            },
        )
        .unwrap();
        assert_eq!(d.qpl_id(), 1);
        assert_eq!(
            d.desc_addr(&pool, 1, 0).unwrap(),
            pool.device_addr(&d.buf, 2048).unwrap()
        );
    }
}
