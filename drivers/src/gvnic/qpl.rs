//! Queue page lists: the only memory GQI-QPL descriptors can point at (facts §3.3).
//!
//! A QPL is a set of 4 KiB pages registered with REGISTER_PAGE_LIST; descriptors then carry
//! byte offsets into the QPL's linear address space (page k covers [k*4096, (k+1)*4096)),
//! never physical addresses. We take each QPL as one contiguous pool allocation and cut it
//! into 2 KiB buffers, as iPXE does.

use zerocopy::byteorder::big_endian::{U32, U64};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};
use crate::platform::Clock;

use super::adminq::{self, AdminQueue, ById, Opcode, RegisterPageList};
use super::regs::Registers;
use super::GvnicError;

/// Half a page: the buffer size GQI devices assume for RX (the original device has no
/// parameter for it), and the TX slot size we use.
pub const BUF_BYTES: usize = PAGE_SIZE / 2;

/// QPL ids: any u32 but 0xFFFFFFFF (which means raw addressing). Linux uses 0..n.
pub const TX_QPL_ID: u32 = 0;
pub const RX_QPL_ID: u32 = 1;

pub struct Qpl {
    pub id: u32,
    pub buf: DmaBuf,
    pub pages: u32,
    /// REGISTER_PAGE_LIST passed: teardown must UNREGISTER it.
    pub registered: bool,
}

impl Qpl {
    pub fn alloc(
        dma: &mut DmaPool,
        owner: &str,
        purpose: &'static str,
        id: u32,
        pages: u32,
    ) -> Result<Qpl, GvnicError> {
        let buf = dma.alloc(owner, purpose, pages as usize * PAGE_SIZE)?;
        Ok(Qpl {
            id,
            buf,
            pages,
            registered: false,
        })
    }

    /// Number of 2 KiB buffers.
    pub fn buffers(&self) -> u32 {
        self.pages * (PAGE_SIZE / BUF_BYTES) as u32
    }

    /// QPL byte offset of buffer `index`.
    pub fn buffer_offset(&self, index: u32) -> usize {
        (index % self.buffers()) as usize * BUF_BYTES
    }

    /// REGISTER_PAGE_LIST. The page-address list only has to live while the command runs,
    /// so it is freed once the device has answered; if the device never answers it may
    /// still read the list, which then stays with the NIC's other memory until a reset
    /// confirms the release.
    pub fn register(
        &mut self,
        aq: &mut AdminQueue,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        owner: &str,
    ) -> Result<(), GvnicError> {
        let list = dma.alloc(owner, "gvnic page list", self.pages as usize * 8)?;
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
        let result = aq.execute(regs, clock, dma, Opcode::RegisterPageList, &command);
        if matches!(result, Ok(()) | Err(GvnicError::AdminStatus { .. })) {
            // The device answered, so it is done reading the list.
            dma.free(list)?;
        }
        result?;
        self.registered = true;
        Ok(())
    }

    pub fn unregister(
        &mut self,
        aq: &mut AdminQueue,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
    ) -> Result<(), GvnicError> {
        let command = adminq::encode(
            Opcode::UnregisterPageList,
            &ById {
                id: U32::new(self.id),
            },
        );
        aq.execute(regs, clock, dma, Opcode::UnregisterPageList, &command)?;
        self.registered = false;
        Ok(())
    }
}
