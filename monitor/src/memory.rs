//! `peek`: raw reads of virtual memory. Below 4 GiB an address the identity map does not
//! hold (the PCI hole, the LAPIC/IOAPIC: device memory, reached only through `bar map`'s
//! uncached window) is refused before it is touched. Anything else unmapped (the stack
//! guard page, unused window space) page-faults on purpose; the fault aborts the command
//! and the monitor returns to the prompt.

use drivers::platform::MemoryAccess;
use monitor::identity::IDENTITY_LIMIT;

/// x86_64 4-level paging: bits 63..47 must all equal bit 47.
fn canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1ffff
}

pub struct Peek;

impl MemoryAccess for Peek {
    fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        let Some(last) = addr.checked_add(out.len().saturating_sub(1) as u64) else {
            return false;
        };
        if !canonical(addr) || !canonical(last) {
            return false;
        }
        let low_end = last.saturating_add(1).min(IDENTITY_LIMIT);
        if addr < IDENTITY_LIMIT && !crate::boot::identity_covers(addr, low_end) {
            return false;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: the address is canonical; if it is not mapped the CPU raises a page
            // fault, which the guarded command runner turns into an error result.
            *byte = unsafe { ((addr + i as u64) as *const u8).read_volatile() };
        }
        true
    }
}
