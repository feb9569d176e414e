//! vfio-user front end for QEMU 10.1 and later (`-device vfio-user-pci`): the model is the
//! server end of QEMU's vfio-user client (QEMU docs/interop/vfio-user.rst,
//! reference/qemu11-vfio-user.md). The protocol loop is rust-vmm's `vfio_user` crate
//! (`Server`); this module is its `ServerBackend` and only translates:
//!
//! - region reads/writes (VFIO PCI numbering: BAR0..2, CONFIG = 7) -> the device's
//!   `bar_read`/`bar_write`/`config_read`/`config_write`, split into 1/2/4-byte accesses;
//! - DMA_MAP/UNMAP -> [`DmaMemory`], the device's `GuestMemory` (guest RAM must be a shared
//!   memfd; ranges without an fd take no DMA);
//! - SET_IRQS for MSI-X (index 2) -> [`Eventfds`], installed as the device's `Interrupts`
//!   hook: QEMU owns the MSI-X table and PBA, the device raises vector N;
//! - DEVICE_RESET -> `pci_reset`.
//!
//! It decides nothing about the device. Model time is wall-clock time, as in the proxy: it
//! advances after every message and every `IDLE_TICK_MS` while QEMU is quiet (the guest
//! polls memory, which sends no messages).

mod irqs;
mod memory;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion};

pub use irqs::Eventfds;
pub use memory::DmaMemory;

use crate::pci::{BAR_SIZES, OFF_MSIX_CAP};
use crate::Gvnic;

/// Model time advances at least this often while QEMU sends nothing.
const IDLE_TICK_MS: u64 = 5;
/// Conventional (256-byte) config space: no extended capabilities.
const CONFIG_BYTES: u64 = 256;

struct Inner {
    dev: Gvnic,
    mem: DmaMemory,
    start: Instant,
    base_us: u64,
}

impl Inner {
    /// Wall-clock model time.
    fn clock(&mut self) {
        let now = self.base_us + self.start.elapsed().as_micros() as u64;
        self.dev.advance_to(now, &self.mem);
    }
}

/// The `ServerBackend`: the device and its DMA view behind one mutex (the idle ticker shares it).
struct Backend {
    inner: Arc<Mutex<Inner>>,
    irqs: Eventfds,
    trace: bool,
}

impl Backend {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what)
}

/// Splits [offset, offset + len) into naturally aligned 4/2/1-byte accesses.
fn accesses(offset: u64, len: usize) -> impl Iterator<Item = (usize, u64, u8)> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= len {
            return None;
        }
        let off = offset + at as u64;
        let left = len - at;
        let size = [4u8, 2, 1]
            .into_iter()
            .find(|&s| usize::from(s) <= left && off.is_multiple_of(u64::from(s)))
            .unwrap_or(1);
        let item = (at, off, size);
        at += usize::from(size);
        Some(item)
    })
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        let mut g = self.lock();
        let inner = &mut *g;
        for (at, off, size) in accesses(offset, data.len()) {
            let v = match region {
                VFIO_PCI_CONFIG_REGION_INDEX => u64::from(inner.dev.config_read(off as u16, size)),
                0..=2 => inner.dev.bar_read(region as u8, off, size, &inner.mem),
                _ => return Err(invalid(format!("read of region {region}"))),
            };
            data[at..at + usize::from(size)].copy_from_slice(&v.to_le_bytes()[..usize::from(size)]);
        }
        inner.clock();
        if self.trace {
            eprintln!("gvnic-model: read region {region} {offset:#x} = {data:02x?}");
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if self.trace {
            eprintln!("gvnic-model: write region {region} {offset:#x} = {data:02x?}");
        }
        let mut g = self.lock();
        let inner = &mut *g;
        for (at, off, size) in accesses(offset, data.len()) {
            let mut b = [0u8; 8];
            b[..usize::from(size)].copy_from_slice(&data[at..at + usize::from(size)]);
            let v = u64::from_le_bytes(b);
            match region {
                VFIO_PCI_CONFIG_REGION_INDEX => inner.dev.config_write(off as u16, size, v as u32),
                0..=2 => inner.dev.bar_write(region as u8, off, size, v, &inner.mem),
                _ => return Err(invalid(format!("write of region {region}"))),
            }
        }
        inner.clock();
        Ok(())
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        if self.trace {
            eprintln!(
                "gvnic-model: dma_map {address:#x}+{size:#x} fd={} offset={offset:#x}",
                fd.is_some()
            );
        }
        let writable = flags.contains(DmaMapFlags::WRITE);
        let mut g = self.lock();
        g.mem.map(address, size, fd, offset, writable)?;
        if self.trace {
            eprintln!(
                "gvnic-model: DMA ranges (iova, size, fd) {:x?}",
                g.mem.ranges()
            );
        }
        Ok(())
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        if self.trace {
            eprintln!("gvnic-model: dma_unmap {address:#x}+{size:#x}");
        }
        self.lock().mem.unmap(address, size);
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        if self.trace {
            eprintln!("gvnic-model: reset");
        }
        self.lock().dev.pci_reset();
        self.irqs.reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        if self.trace {
            eprintln!(
                "gvnic-model: set_irqs index {index} flags {flags:#x} start {start} count {count} fds {}",
                fds.len()
            );
        }
        // INTx, MSI, ERR, REQ: the device raises none of them (interrupt pin 0, no MSI cap).
        if index != VFIO_PCI_MSIX_IRQ_INDEX || flags & VFIO_IRQ_SET_ACTION_TRIGGER == 0 {
            return Ok(());
        }
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            // One fd per vector from `start`; a vector sent without one (QEMU's -1) loses it.
            let mut fds = fds.into_iter();
            for v in start..start.saturating_add(count) {
                self.irqs.set(v, fds.next());
            }
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 && count == 0 {
            // DATA_NONE | TRIGGER with count 0: MSI-X disabled, every eventfd released.
            self.irqs.clear();
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 {
            // DATA_NONE | TRIGGER: the client asks for the vectors to fire (loopback test).
            for v in start..start.saturating_add(count) {
                crate::Interrupts::raise(&mut self.irqs, v as u16);
            }
        }
        Ok(())
    }
}

/// The regions QEMU sees: BAR0..2 (registers, MSI-X table + PBA, doorbells) and config space,
/// read/write, not mmap-able (every access is a message, so the device sees each one).
fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                0..=2 => BAR_SIZES[index as usize],
                VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_BYTES,
                _ => 0,
            };
            let flags = if size > 0 {
                VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
            } else {
                0
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    index,
                    size,
                    flags,
                    ..Default::default()
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

/// IRQ indexes: only MSI-X has vectors. NORESIZE as Linux's vfio-pci reports it without
/// dynamic MSI-X: QEMU then (re)enables the whole range when it adds a vector.
fn irq_infos(vectors: u16) -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            if index == VFIO_PCI_MSIX_IRQ_INDEX {
                IrqInfo {
                    index,
                    flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
                    count: u32::from(vectors),
                }
            } else {
                IrqInfo {
                    index,
                    flags: 0,
                    count: 0,
                }
            }
        })
        .collect()
}

/// MSI-X table size from the device's own capability (message control bits 10:0 + 1).
fn msix_vectors(dev: &mut Gvnic) -> u16 {
    (dev.config_read(OFF_MSIX_CAP + 2, 2) as u16 & 0x7ff) + 1
}

/// Serve one QEMU connection on `listener` until QEMU closes it (or the accept/receive is
/// interrupted, e.g. by SIGTERM); returns the device, so its record outlives the connection.
pub fn serve(listener: UnixListener, mut dev: Gvnic) -> (Gvnic, anyhow::Result<()>) {
    let vectors = msix_vectors(&mut dev);
    let irqs = Eventfds::new(vectors);
    dev.set_interrupts(Box::new(irqs.clone()));
    let base_us = dev.now_us();
    let inner = Arc::new(Mutex::new(Inner {
        dev,
        mem: DmaMemory::default(),
        start: Instant::now(),
        base_us,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (inner, stop) = (inner.clone(), stop.clone());
        std::thread::Builder::new()
            .name("gvnic-model-clock".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(IDLE_TICK_MS));
                    inner.lock().unwrap_or_else(|e| e.into_inner()).clock();
                }
            })
    };
    let server =
        Server::from_owned_fd(OwnedFd::from(listener), true, irq_infos(vectors), regions());
    let mut backend = Backend {
        inner: inner.clone(),
        irqs,
        trace: std::env::var_os("GVNIC_MODEL_TRACE").is_some(),
    };
    let served = server
        .run(&mut backend)
        .map_err(|e| anyhow::anyhow!("vfio-user: {e}"));
    stop.store(true, Ordering::Relaxed);
    if let Ok(t) = ticker {
        let _ = t.join();
    }
    drop(backend);
    drop(server);
    let inner = match Arc::try_unwrap(inner) {
        Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(_) => unreachable!("the ticker and the backend are gone"),
    };
    let mut dev = inner.dev;
    dev.clear_interrupts();
    (dev, served)
}
