//! The adapter between the gVNIC driver and the in-process device model: register windows
//! over the model's BAR0 and BAR2, the model's guest memory over the bounce pool's host
//! memory, and a clock whose every relax() lets the model run one tick.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use drivers::dma::{testing::leaked_pool, DmaPool, PAGE_SIZE};
use drivers::gvnic::Gvnic;
use drivers::pci::msix::{MsixCap, OwnedMsixTable};
use drivers::platform::{Bdf, Clock, ConfigSpace, RegisterWindow};
use gvnic_model::{GuestMemory, ModelConfig, OutOfRange};

/// Where the pool sits in the simulated guest's physical memory.
pub const POOL_PHYS: u64 = 0x1000_0000;
pub const POOL_BYTES: usize = 512 * PAGE_SIZE;
/// Simulated time per relax(): 100 µs, so the 500 ms admin deadline is 5000 model ticks.
pub const US_PER_RELAX: u64 = 100;
pub const OWNER: &str = "gvnic 00:04.0";
pub const BDF: Bdf = Bdf::new(0, 4, 0);

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
    /// Simulated time from which the user holds Ctrl-C (`Clock::interrupted`).
    pub ctrl_c_from_us: Cell<Option<u64>>,
    /// Emulate a revision-1 device whose DEVICE_IS_RESET, once set, never clears (nothing
    /// says RUN clears it): the driver must not depend on it.
    pub sticky_device_is_reset: Cell<bool>,
    sticky_seen: Cell<bool>,
}

impl Sim {
    /// The user presses Ctrl-C `after_us` from now and keeps it pressed.
    pub fn press_ctrl_c(&self, after_us: u64) {
        self.ctrl_c_from_us.set(Some(self.time_us.get() + after_us));
    }
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
        let value =
            self.sim
                .model
                .borrow_mut()
                .bar_read(self.bar, offset as u64, size, &self.sim.mem);
        if self.bar == 0 && offset == 0 && size == 4 && self.sim.sticky_device_is_reset.get() {
            // DEVICE_STATUS is BE32: bit 4 is the last byte's 0x10 on the bus.
            const DEVICE_IS_RESET_ON_BUS: u64 = 0x10 << 24;
            if value & DEVICE_IS_RESET_ON_BUS != 0 {
                self.sim.sticky_seen.set(true);
            }
            if self.sim.sticky_seen.get() {
                return value | DEVICE_IS_RESET_ON_BUS;
            }
        }
        value
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
    fn interrupted(&self) -> bool {
        self.0
            .ctrl_c_from_us
            .get()
            .is_some_and(|from| self.0.time_us.get() >= from)
    }
    fn relax(&self) {
        self.0.time_us.set(self.0.time_us.get() + US_PER_RELAX);
        self.0.model.borrow_mut().tick(&self.0.mem);
    }
}

/// The model's config space as the function at [`BDF`] (everything else reads absent).
pub struct ModelPci(pub Rc<Sim>);

impl ModelPci {
    fn read(&self, bdf: Bdf, offset: u16, size: u8) -> u32 {
        if bdf != BDF {
            return u32::MAX >> (32 - 8 * u32::from(size));
        }
        self.0.model.borrow_mut().config_read(offset, size)
    }
    fn write(&self, bdf: Bdf, offset: u16, size: u8, value: u32) {
        if bdf == BDF {
            self.0.model.borrow_mut().config_write(offset, size, value);
        }
    }
}

impl ConfigSpace for ModelPci {
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        self.read(bdf, offset, 1) as u8
    }
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        self.read(bdf, offset, 2) as u16
    }
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.read(bdf, offset, 4)
    }
    fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
        self.write(bdf, offset, 1, value.into())
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        self.write(bdf, offset, 2, value.into())
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        self.write(bdf, offset, 4, value)
    }
    fn size(&self) -> u16 {
        256
    }
}

/// A driver bound to a fresh model, with its pool and clock.
pub struct Rig {
    pub sim: Rc<Sim>,
    pub clock: SimClock,
    pub pci: ModelPci,
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
        ctrl_c_from_us: Cell::new(None),
        sticky_device_is_reset: Cell::new(false),
        sticky_seen: Cell::new(false),
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
    let pci = ModelPci(sim.clone());
    let mut nic = Gvnic::new(bar0, bar2, revision, OWNER).expect("BARs are large enough");
    // The MSI-X table in BAR1, found through the capability as the monitor finds it.
    if let Some(info) = MsixCap::find(&pci, BDF) {
        let bar1 = Box::new(Bar {
            sim: sim.clone(),
            bar: info.table_bar,
            len: 0x1000,
        });
        if let Some(table) = OwnedMsixTable::new(bar1, info) {
            nic = nic.with_msix(BDF, table);
        }
    }
    Rig {
        clock: SimClock(sim.clone()),
        sim,
        pci,
        pool,
        nic,
    }
}

impl Rig {
    pub fn bring_up(
        &mut self,
        target: drivers::gvnic::State,
    ) -> Result<(), drivers::gvnic::GvnicError> {
        self.nic
            .bring_up(&self.pci, &self.clock, &mut self.pool, target)
    }

    pub fn teardown_steps(
        &mut self,
    ) -> (
        Result<(), drivers::gvnic::GvnicError>,
        Vec<drivers::gvnic::TeardownStep>,
    ) {
        let mut steps = Vec::new();
        let result = self
            .nic
            .teardown(&self.pci, &self.clock, &mut self.pool, &mut |s| {
                steps.push(s)
            });
        (result, steps)
    }

    /// MSI-X enable as config space reads it.
    pub fn msix_enabled(&self) -> bool {
        let cap = MsixCap::find(&self.pci, BDF).expect("the model has MSI-X");
        cap.function_state(&self.pci, BDF).enabled
    }

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
