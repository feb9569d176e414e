//! Guest memory for the vfio-user front end: the ranges QEMU maps with DMA_MAP, each backed
//! by the fd it sent (guest RAM as a shared memfd), mmap'd here.
//!
//! QEMU also maps ranges without an fd (the BIOS and option ROM areas, 0xC0000, 0xE0000,
//! 0xFFFC0000: reference/qemu11-vfio-user.md §2). A device must not DMA there; those ranges
//! stay unmapped, so a DMA to them is "not guest RAM" like any other stray address, which the
//! device records as a violation. Ranges mapped read-only refuse device writes.

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::{GuestMemory, OutOfRange};

struct Mapping {
    iova: u64,
    size: u64,
    writable: bool,
    /// Start of the mmap and its length (it may begin before `iova`'s byte when the fd
    /// offset was not page aligned).
    map: *mut u8,
    map_len: usize,
    skew: usize,
}

/// Every DMA mapping QEMU made and has not unmapped.
#[derive(Default)]
pub struct DmaMemory {
    maps: Vec<Mapping>,
    /// Ranges QEMU announced without an fd (no DMA possible there).
    unbacked: Vec<(u64, u64)>,
}

// SAFETY: the raw pointers are private mappings this struct created and alone unmaps; the
// front end only ever touches a DmaMemory under its mutex, one thread at a time.
unsafe impl Send for DmaMemory {}

impl DmaMemory {
    /// DMA_MAP: `size` bytes at `iova`, backed by `fd` at `offset` (or by nothing).
    pub fn map(
        &mut self,
        iova: u64,
        size: u64,
        fd: Option<File>,
        offset: u64,
        writable: bool,
    ) -> std::io::Result<()> {
        let Some(fd) = fd else {
            self.unbacked.push((iova, size));
            return Ok(());
        };
        if size == 0 {
            return Ok(());
        }
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let aligned = offset & !(page - 1);
        let skew = (offset - aligned) as usize;
        let map_len = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(skew))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of an fd QEMU handed us; we touch it only inside
        // [map, map + map_len) and unmap it exactly once (unmap / Drop).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                aligned as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        self.maps.push(Mapping {
            iova,
            size,
            writable,
            map: p.cast(),
            map_len,
            skew,
        });
        Ok(())
    }

    /// DMA_UNMAP: drop every mapping inside [iova, iova + size).
    pub fn unmap(&mut self, iova: u64, size: u64) {
        let end = iova.saturating_add(size);
        self.maps.retain(|m| {
            let inside = m.iova >= iova && m.iova + m.size <= end;
            if inside {
                // SAFETY: (map, map_len) is a mapping this struct created and still owns.
                unsafe { libc::munmap(m.map.cast(), m.map_len) };
            }
            !inside
        });
        self.unbacked.retain(|&(a, s)| !(a >= iova && a + s <= end));
    }

    /// (iova, size, has an fd) of every mapping, for tracing.
    pub fn ranges(&self) -> Vec<(u64, u64, bool)> {
        let mut r: Vec<_> = self.maps.iter().map(|m| (m.iova, m.size, true)).collect();
        r.extend(self.unbacked.iter().map(|&(a, s)| (a, s, false)));
        r.sort();
        r
    }

    fn host(&self, gpa: u64, len: usize, write: bool) -> Result<*mut u8, OutOfRange> {
        let err = OutOfRange { gpa, len };
        let end = gpa.checked_add(len as u64).ok_or(err)?;
        let m = self
            .maps
            .iter()
            .find(|m| gpa >= m.iova && end <= m.iova + m.size && (m.writable || !write))
            .ok_or(err)?;
        // SAFETY: gpa - iova + len <= size, so the pointer stays inside the mapping.
        Ok(unsafe { m.map.add(m.skew + (gpa - m.iova) as usize) })
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        self.unmap(0, u64::MAX);
    }
}

impl GuestMemory for DmaMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let p = self.host(gpa, buf.len(), false)?;
        // SAFETY: `host` checked the range lies in a live mapping; `buf` is ours, so they
        // cannot overlap. The guest may change the bytes concurrently (as with any DMA); we
        // copy raw bytes and never form references into guest memory.
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let p = self.host(gpa, data.len(), true)?;
        // SAFETY: as in `read`; `host` only returns writable (PROT_WRITE) mappings here.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }
}
