//! The adapter between the gVNIC driver and the in-process device model: register windows
//! over the model's BAR0 and BAR2, the model's guest memory over the bounce pool's host
//! memory, and a clock whose every relax() lets the model run one tick.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use drivers::dma::{testing::leaked_pool, DmaPool, PAGE_SIZE};
use drivers::gvnic::Gvnic;
use drivers::platform::{Clock, RegisterWindow};
use gvnic_model::{GuestMemory, ModelConfig, OutOfRange};

/// Where the pool sits in the simulated guest's physical memory.
pub const POOL_PHYS: u64 = 0x1000_0000;
pub const POOL_BYTES: usize = 512 * PAGE_SIZE;
/// Simulated time per relax(): 100 µs, so the 500 ms admin deadline is 5000 model ticks.
pub const US_PER_RELAX: u64 = 100;
pub const OWNER: &str = "gvnic 00:04.0";

/// Guest RAM as the model sees it: exactly the bounce pool, nothing else. A driver that
/// hands the device any other address makes the model record an OutsideGuestRam violation.
pub struct PoolMemory {
    base: u64,
    ptr: *mut u8,
    len: usize,
}

impl PoolMemory {
    fn offset(&self, gpa: u64, len: usize) -> Result<usize, OutOfRange> {
        let err = OutOfRange { gpa, len };
        let start = gpa.checked_sub(self.base).ok_or(err)? as usize;
        if start.checked_add(len).ok_or(err)? > self.len {
            return Err(err);
        }
        Ok(start)
    }
}

impl GuestMemory for PoolMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let at = self.offset(gpa, buf.len())?;
        // SAFETY: bounds checked against the leaked pool allocation, which lives forever;
        // the test is single-threaded, so the driver is not touching the bytes right now.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(at), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let at = self.offset(gpa, data.len())?;
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(at), data.len()) };
        Ok(())
    }
}

pub struct Sim {
    pub model: RefCell<gvnic_model::Gvnic>,
    pub mem: PoolMemory,
    pub time_us: Cell<u64>,
}

/// One BAR of the model as a driver register window.
pub struct Bar {
    sim: Rc<Sim>,
    bar: u8,
    len: usize,
}

impl Bar {
    pub fn new(sim: Rc<Sim>, bar: u8, len: usize) -> Bar {
        Bar { sim, bar, len }
    }

    fn read(&self, offset: usize, size: u8) -> u64 {
        self.sim
            .model
            .borrow_mut()
            .bar_read(self.bar, offset as u64, size, &self.sim.mem)
    }
    fn write(&self, offset: usize, size: u8, value: u64) {
        self.sim
            .model
            .borrow_mut()
            .bar_write(self.bar, offset as u64, size, value, &self.sim.mem)
    }
}

impl RegisterWindow for Bar {
    fn len(&self) -> usize {
        self.len
    }
    fn read8(&self, offset: usize) -> u8 {
        self.read(offset, 1) as u8
    }
    fn read16(&self, offset: usize) -> u16 {
        self.read(offset, 2) as u16
    }
    fn read32(&self, offset: usize) -> u32 {
        self.read(offset, 4) as u32
    }
    fn write8(&self, offset: usize, value: u8) {
        self.write(offset, 1, value.into())
    }
    fn write16(&self, offset: usize, value: u16) {
        self.write(offset, 2, value.into())
    }
    fn write32(&self, offset: usize, value: u32) {
        self.write(offset, 4, value.into())
    }
}

/// Simulated time: relax() advances it and lets the model tick.
pub struct SimClock(pub Rc<Sim>);

impl Clock for SimClock {
    fn now_us(&self) -> u64 {
        self.0.time_us.get()
    }
    fn relax(&self) {
        self.0.time_us.set(self.0.time_us.get() + US_PER_RELAX);
        self.0.model.borrow_mut().tick(&self.0.mem);
    }
}

/// A driver bound to a fresh model, with its pool and clock.
pub struct Rig {
    pub sim: Rc<Sim>,
    pub clock: SimClock,
    pub pool: DmaPool,
    pub nic: Gvnic,
}

/// PCI command register: memory space + bus master, as `pci::map_bar` leaves it.
const PCI_COMMAND: u16 = 0x04;
const COMMAND_MEMORY_AND_BUS_MASTER: u32 = 0x6;

pub fn rig(config: ModelConfig) -> Rig {
    let (pool, ptr) = leaked_pool(POOL_PHYS, POOL_BYTES);
    let revision = config.revision;
    let mut model = gvnic_model::Gvnic::new(config);
    model.config_write(PCI_COMMAND, 2, COMMAND_MEMORY_AND_BUS_MASTER);
    let sim = Rc::new(Sim {
        model: RefCell::new(model),
        mem: PoolMemory {
            base: POOL_PHYS,
            ptr,
            len: POOL_BYTES,
        },
        time_us: Cell::new(0),
    });
    let bar0 = Box::new(Bar {
        sim: sim.clone(),
        bar: 0,
        len: 0x1000,
    });
    let bar2 = Box::new(Bar {
        sim: sim.clone(),
        bar: 2,
        len: 0x10000,
    });
    let nic = Gvnic::new(bar0, bar2, revision, OWNER).expect("BARs are large enough");
    Rig {
        clock: SimClock(sim.clone()),
        sim,
        pool,
        nic,
    }
}

impl Rig {
    pub fn model(&self) -> std::cell::Ref<'_, gvnic_model::Gvnic> {
        self.sim.model.borrow()
    }

    pub fn model_mut(&self) -> std::cell::RefMut<'_, gvnic_model::Gvnic> {
        self.sim.model.borrow_mut()
    }

    /// Every DMA buffer back in the pool: nothing used, nothing quarantined.
    pub fn assert_ledger_clean(&self) {
        assert!(
            self.pool.ledger().is_empty(),
            "ledger not empty: {:#?}",
            self.pool.ledger()
        );
        let usage = self.pool.usage();
        assert_eq!((usage.used_pages, usage.quarantined_pages), (0, 0));
    }

    /// The model saw no driver mistake.
    pub fn assert_no_violations(&self) {
        let model = self.model();
        let violations = &model.record().violations;
        assert!(violations.is_empty(), "model violations: {violations:#?}");
    }

    /// Opcodes of the admin commands the model executed, in order.
    pub fn opcodes(&self) -> Vec<u32> {
        self.model()
            .record()
            .commands
            .iter()
            .map(|c| c.opcode)
            .collect()
    }
}
