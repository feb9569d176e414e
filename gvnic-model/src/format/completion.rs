//! A DQO completion ring (TX: 8-byte entries, RX: 32-byte entries), written by the device with
//! the generation bit and held back the way the device does (gvnic-dqo.md §1.7, §1.10):
//!
//! - the driver zeroes the ring; the first pass carries generation 1, and the bit flips every
//!   time the ring wraps;
//! - completions are not written one by one: the device collects them in a 128-byte internal
//!   cache line and writes the line when it is full, or when it asserts the queue's
//!   interrupt (notify.rs). The line is modelled as the 128-byte-aligned slice of the ring
//!   the entries fall in, so a page-aligned ring of 32-byte RX completions writes every 4th
//!   completion's line, TX every 16th (iPXE: "8 descriptor + 8 packet completions").

use crate::{GuestMemory, Gvnic};

/// The write-back unit (gvnic-dqo.md §1.10).
pub const WRITEBACK_BYTES: usize = 128;

#[derive(Clone, Debug)]
pub(crate) struct CompletionRing {
    pub base: u64,
    pub entries: u32,
    pub entry_bytes: usize,
    /// Where the generation bit lives in an entry: (byte, mask).
    pub gen_bit: (usize, u8),
    /// Free-running count of completions produced (written or held).
    pub produced: u32,
    /// Produced but not yet written: (ring slot, entry bytes, generation included).
    pub held: Vec<(u32, Vec<u8>)>,
}

impl CompletionRing {
    pub fn new(base: u64, entries: u32, entry_bytes: usize, gen_bit: (usize, u8)) -> Self {
        CompletionRing {
            base,
            entries,
            entry_bytes,
            gen_bit,
            produced: 0,
            held: Vec::new(),
        }
    }

    /// Generation of the `count`th entry: 1 on the first pass, flipping on every wrap.
    pub fn generation(&self, count: u32) -> bool {
        (count / self.entries).is_multiple_of(2)
    }

    fn per_line(&self) -> u32 {
        ((WRITEBACK_BYTES / self.entry_bytes).max(1) as u32).min(self.entries)
    }

    /// Queue one completion; true when its cache line is now full (to be written).
    pub fn push(&mut self, mut entry: Vec<u8>, stuck_generation: bool) -> bool {
        let (byte, mask) = self.gen_bit;
        let generation = stuck_generation || self.generation(self.produced);
        entry[byte] = (entry[byte] & !mask) | if generation { mask } else { 0 };
        let slot = self.produced % self.entries;
        self.produced = self.produced.wrapping_add(1);
        self.held.push((slot, entry));
        (slot + 1).is_multiple_of(self.per_line())
    }
}

impl Gvnic {
    /// Write every held completion of `ring` to guest memory.
    pub(crate) fn write_back(
        &mut self,
        ring: &mut CompletionRing,
        mem: &dyn GuestMemory,
        what: &str,
    ) {
        if self.cfg.faults.dqo_completions_never_written {
            // A stuck device: it keeps everything (a driver must time out).
            return;
        }
        for (slot, entry) in std::mem::take(&mut ring.held) {
            let at = ring.base + u64::from(slot) * ring.entry_bytes as u64;
            self.dma_write(mem, at, &entry, what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_one_on_the_first_pass_and_flips_per_wrap() {
        let r = CompletionRing::new(0, 8, 8, (1, 0x80));
        assert!(r.generation(0) && r.generation(7));
        assert!(!r.generation(8) && !r.generation(15));
        assert!(r.generation(16));
    }

    #[test]
    fn a_line_is_full_every_128_bytes() {
        let mut r = CompletionRing::new(0, 64, 32, (5, 0x40));
        let full: Vec<bool> = (0..8).map(|_| r.push(vec![0; 32], false)).collect();
        assert_eq!(full, [false, false, false, true, false, false, false, true]);
        assert_eq!(r.held[0].1[5], 0x40, "generation 1 on the first pass");
    }
}
