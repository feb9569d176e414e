//! The test bench the NVMe driver tests share: the fake controller at one BDF, the fake
//! config space, the simulated clock and a bounce pool, with the checks every test uses.

use std::cell::RefCell;
use std::rc::Rc;

use drivers::dma::{testing::leaked_pool, DmaPool};
use drivers::nvme::{Controller, NvmeError};
use drivers::platform::{Bdf, Hw, NoMemory};

use super::{random_bytes, Dev, Faults, Mapper, Namespace, SimClock, BAR0, BAR0_SIZE};
use crate::pci_fake::{FakeConfig, FakeFunction};

pub const BDF: Bdf = Bdf::new(0, 4, 0);
pub const POOL_BASE: u64 = 0x4000_0000;
pub const POOL_BYTES: usize = 4 << 20;

pub struct Bench {
    pub config: FakeConfig,
    pub mapper: Mapper,
    pub clock: SimClock,
    pub pool: DmaPool,
    /// The pool's memory, to check that no device wrote a page after it was freed.
    pub host: *const u8,
    pub dev: Rc<RefCell<Dev>>,
    pub pool_bytes: usize,
}

impl Bench {
    pub fn new(faults: Faults) -> Bench {
        let ns1 = Namespace::new(1, 9, random_bytes(5000 * 512, 1));
        let ns2 = Namespace::new(2, 12, random_bytes(300 * 4096, 2));
        Bench::with(faults, vec![ns1, ns2])
    }

    pub fn with(faults: Faults, namespaces: Vec<Namespace>) -> Bench {
        Bench::build(faults, namespaces, POOL_BYTES)
    }

    /// The two usual namespaces with a bounce pool of `pool_bytes`.
    pub fn with_pool(faults: Faults, pool_bytes: usize) -> Bench {
        let ns1 = Namespace::new(1, 9, random_bytes(5000 * 512, 1));
        let ns2 = Namespace::new(2, 12, random_bytes(300 * 4096, 2));
        Bench::build(faults, vec![ns1, ns2], pool_bytes)
    }

    fn build(faults: Faults, namespaces: Vec<Namespace>, pool_bytes: usize) -> Bench {
        let (pool, host) = leaked_pool(POOL_BASE, pool_bytes);
        let dev = super::new_dev(host, POOL_BASE, pool_bytes as u64, namespaces);
        // A phantom namespace (listed active, size 0), as GCE reports.
        dev.borrow_mut().active.push(7);
        dev.borrow_mut().faults = faults;
        let config = FakeConfig::default();
        config.add(
            BDF,
            FakeFunction::new(0x1b36, 0x0010, 0x010802, 2, 0).mem64_bar(0, BAR0, BAR0_SIZE, false),
        );
        Bench {
            config,
            mapper: Mapper {
                dev: dev.clone(),
                mapped: vec![],
                unmapped: vec![],
            },
            clock: SimClock::new(dev.clone()),
            pool,
            host,
            dev,
            pool_bytes,
        }
    }

    pub fn hw(&mut self) -> Hw<'_> {
        Hw {
            config: &self.config,
            mmio: &mut self.mapper,
            clock: &self.clock,
            dma: &mut self.pool,
            memory: &NoMemory,
            cpu: &drivers::platform::NullCpu,
            ports: &drivers::platform::NullPorts,
            firmware: &drivers::platform::NoFirmware,
            irq: &drivers::platform::NoInterrupts,
        }
    }

    pub fn bind(&mut self) -> Result<Controller, NvmeError> {
        Controller::bind(&mut self.hw(), BDF)
    }

    pub fn read(
        &mut self,
        c: &mut Controller,
        nsid: u32,
        lba: u64,
        count: u64,
    ) -> Result<Vec<u8>, NvmeError> {
        let mut out = Vec::new();
        let mut next = lba;
        c.read(&mut self.hw(), nsid, lba, count, &mut |at, data| {
            assert_eq!(at, next, "sink must see the data in LBA order");
            out.extend_from_slice(data);
            next += (data.len() / if nsid == 2 { 4096 } else { 512 }) as u64;
        })?;
        Ok(out)
    }

    pub fn disk(&self, nsid: u32, lba: u64, count: u64) -> Vec<u8> {
        let dev = self.dev.borrow();
        let ns = dev.namespaces.iter().find(|n| n.nsid == nsid).unwrap();
        let bs = 1usize << ns.lbads;
        ns.data[lba as usize * bs..(lba + count) as usize * bs].to_vec()
    }

    /// Free pages are zeroed when freed; a non-zero one was written by the device after the
    /// driver let go of it.
    pub fn assert_free_pages_untouched(&self) {
        let pages = self.pool_bytes / 4096;
        for page in 0..pages {
            let phys = POOL_BASE + (page * 4096) as u64;
            let allocated = self
                .pool
                .ledger()
                .iter()
                .any(|e| (e.phys..e.phys + e.pages as u64 * 4096).contains(&phys));
            if allocated {
                continue;
            }
            // SAFETY: inside the leaked pool memory, which lives for the whole test.
            let bytes = unsafe { std::slice::from_raw_parts(self.host.add(page * 4096), 4096) };
            assert!(
                bytes.iter().all(|b| *b == 0),
                "free page {phys:#x} was written after it was freed"
            );
        }
    }

    pub fn assert_no_violations(&self) {
        assert_eq!(self.dev.borrow().violations, Vec::<String>::new());
    }

    pub fn ledger_is_empty(&self) -> bool {
        self.pool.ledger().is_empty() && self.pool.usage().quarantined_pages == 0
    }

    pub fn ledger_all_quarantined(&self) -> bool {
        !self.pool.ledger().is_empty() && self.pool.ledger().iter().all(|e| e.quarantine.is_some())
    }
}
