//! Guest RAM for the proxy front end: the memfd regions from SYNC_SYSMEM, mmap'd shared.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::{GuestMemory, OutOfRange};

struct Region {
    gpa: u64,
    size: u64,
    /// Start of the mapping and its length (the mapping may begin before `gpa`'s byte when
    /// the fd offset was not page aligned).
    map: *mut u8,
    map_len: usize,
    /// Where `gpa` lives inside the mapping.
    skew: usize,
}

/// All current regions. Replaced wholesale on every SYNC_SYSMEM.
#[derive(Default)]
pub struct MappedMemory {
    regions: Vec<Region>,
}

impl MappedMemory {
    /// Map the new set of regions (unmapping the old ones). Regions that fail to map are
    /// skipped with a message: the device then sees that range as "not RAM".
    pub fn remap(&mut self, layout: &[(u64, u64, i64)], fds: Vec<OwnedFd>) {
        self.unmap_all();
        for (&(gpa, size, offset), fd) in layout.iter().zip(fds) {
            if size == 0 || offset < 0 {
                continue;
            }
            // SAFETY: sysconf has no memory-safety preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
            let off = offset as u64;
            let aligned = off & !(page - 1);
            let skew = (off - aligned) as usize;
            let map_len = size as usize + skew;
            // SAFETY: a fresh shared mapping of a file descriptor QEMU handed us; we never
            // touch it outside [map, map + map_len), and unmap it before dropping the Region.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    aligned as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                eprintln!(
                    "gvnic-model: mmap of guest RAM {gpa:#x}+{size:#x} failed: {}",
                    std::io::Error::last_os_error()
                );
                continue;
            }
            // The fd can be closed once mapped (dropping `fd` does that).
            self.regions.push(Region {
                gpa,
                size,
                map: p.cast(),
                map_len,
                skew,
            });
        }
    }

    fn unmap_all(&mut self) {
        for r in self.regions.drain(..) {
            // SAFETY: (map, map_len) is exactly a mapping this struct created and still owns.
            unsafe { libc::munmap(r.map.cast(), r.map_len) };
        }
    }

    /// Host pointer for [gpa, gpa+len) if it lies inside one region.
    fn host(&self, gpa: u64, len: usize) -> Result<*mut u8, OutOfRange> {
        let err = OutOfRange { gpa, len };
        let end = gpa.checked_add(len as u64).ok_or(err)?;
        let r = self
            .regions
            .iter()
            .find(|r| gpa >= r.gpa && end <= r.gpa + r.size)
            .ok_or(err)?;
        // SAFETY: gpa - r.gpa + len <= r.size, so the pointer stays inside the mapping.
        Ok(unsafe { r.map.add(r.skew + (gpa - r.gpa) as usize) })
    }

    pub fn regions(&self) -> Vec<(u64, u64)> {
        self.regions.iter().map(|r| (r.gpa, r.size)).collect()
    }
}

impl Drop for MappedMemory {
    fn drop(&mut self) {
        self.unmap_all();
    }
}

impl GuestMemory for MappedMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let p = self.host(gpa, buf.len())?;
        // SAFETY: `host` checked the range lies in a live mapping; `buf` is our own memory,
        // so the two cannot overlap. The guest may write the same bytes concurrently (as
        // with any DMA); we only copy raw bytes, never form references into guest memory.
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let p = self.host(gpa, data.len())?;
        // SAFETY: as in `read`; the mapping is PROT_WRITE and shared with the guest.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }
}
