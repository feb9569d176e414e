//! What `nvme write` puts on a disk and `nvme verify` expects there: one byte in every byte,
//! or a deterministic pseudo-random stream from a seed. The monitor, the host tests and the
//! bench all compute it with this module, so "the host finds exactly the seeded bytes" is
//! checked against the same definition the monitor wrote.
//!
//! The seeded stream is addressed by the byte's offset in the namespace (block size times
//! LBA, plus the offset in the block), not by its offset in one command: `nvme verify` of
//! any sub-range of a seeded write agrees, and the same seed at another LBA gives other
//! bytes (a misdirected write shows).
//!
//! Word `w` (bytes 8w to 8w+7, little-endian) is output `w` of SplitMix64 seeded with the
//! seed (Steele, Lea, Flood 2014; the generator of Java's `SplittableRandom`), that is
//! `mix(seed + (w + 1) * 0x9e3779b97f4a7c15)`. Random access, no state: any chunk can be
//! filled on its own. It is a test pattern, not a secret: nothing here is cryptographic.

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// Bytes of one generator word.
const WORD_BYTES: u64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every byte is this value (`--pattern BYTE`).
    Byte(u8),
    /// SplitMix64 words from this seed, addressed by namespace byte offset (`--seed N`).
    Seeded(u64),
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Pattern {
    /// The generator word `index` of a seeded stream.
    fn word(seed: u64, index: u64) -> u64 {
        mix(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)))
    }

    /// Fills `out` with the pattern's bytes from namespace byte offset `at` on.
    pub fn fill(&self, at: u64, out: &mut [u8]) {
        match *self {
            Pattern::Byte(value) => out.fill(value),
            Pattern::Seeded(seed) => {
                let mut pos = at;
                let mut rest = out;
                // A leading partial word.
                let skip = (pos % WORD_BYTES) as usize;
                if skip != 0 {
                    let bytes = Self::word(seed, pos / WORD_BYTES).to_le_bytes();
                    let take = (8 - skip).min(rest.len());
                    rest[..take].copy_from_slice(&bytes[skip..skip + take]);
                    rest = &mut rest[take..];
                    pos += take as u64;
                }
                let mut index = pos / WORD_BYTES;
                let mut words = rest.chunks_exact_mut(8);
                for word in &mut words {
                    word.copy_from_slice(&Self::word(seed, index).to_le_bytes());
                    index += 1;
                }
                let tail = words.into_remainder();
                if !tail.is_empty() {
                    let bytes = Self::word(seed, index).to_le_bytes();
                    let len = tail.len();
                    tail.copy_from_slice(&bytes[..len]);
                }
            }
        }
    }

    /// The pattern's bytes for `len` bytes from namespace byte offset `at`.
    pub fn bytes(&self, at: u64, len: usize) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec![0u8; len];
        self.fill(at, &mut out);
        out
    }

    /// The index in `data` of the first byte that differs from the pattern at `at`.
    pub fn first_mismatch(&self, at: u64, data: &[u8]) -> Option<usize> {
        match *self {
            Pattern::Byte(value) => data.iter().position(|b| *b != value),
            Pattern::Seeded(_) => {
                // Compare in word-aligned pieces against a small expected buffer.
                const PIECE: usize = 512;
                let mut expected = [0u8; PIECE];
                let mut done = 0usize;
                while done < data.len() {
                    let len = PIECE.min(data.len() - done);
                    self.fill(at + done as u64, &mut expected[..len]);
                    let piece = &data[done..done + len];
                    if piece != &expected[..len] {
                        let i = piece.iter().zip(&expected[..len]).position(|(a, b)| a != b);
                        return i.map(|i| done + i);
                    }
                    done += len;
                }
                None
            }
        }
    }
}

impl core::fmt::Display for Pattern {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Pattern::Byte(value) => write!(f, "pattern {value:#04x}"),
            Pattern::Seeded(seed) => write!(f, "seed {seed}"),
        }
    }
}

/// The first place a read-back differs from the pattern: what `nvme verify` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub lba: u64,
    /// Byte offset inside that block.
    pub offset: u32,
    pub expected: u8,
    pub found: u8,
}

/// Feeds a read in LBA order and keeps the first mismatch.
#[derive(Debug, Clone)]
pub struct Verifier {
    pattern: Pattern,
    block_size: u64,
    first: Option<Mismatch>,
    blocks_checked: u64,
}

impl Verifier {
    pub fn new(pattern: Pattern, block_size: u32) -> Verifier {
        Verifier {
            pattern,
            block_size: block_size.max(1) as u64,
            first: None,
            blocks_checked: 0,
        }
    }

    /// `data` holds whole blocks starting at `lba`.
    pub fn feed(&mut self, lba: u64, data: &[u8]) {
        self.blocks_checked += data.len() as u64 / self.block_size;
        if self.first.is_some() {
            return;
        }
        let at = lba.saturating_mul(self.block_size);
        if let Some(i) = self.pattern.first_mismatch(at, data) {
            let mut expected = [0u8; 1];
            self.pattern.fill(at + i as u64, &mut expected);
            self.first = Some(Mismatch {
                lba: lba + i as u64 / self.block_size,
                offset: (i as u64 % self.block_size) as u32,
                expected: expected[0],
                found: data[i],
            });
        }
    }

    pub fn first_mismatch(&self) -> Option<Mismatch> {
        self.first
    }

    pub fn blocks_checked(&self) -> u64 {
        self.blocks_checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_outputs() {
        // SplitMix64 seeded with 0: the published first outputs (e.g. Vigna's splitmix64.c).
        assert_eq!(Pattern::word(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(Pattern::word(0, 1), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(Pattern::word(0, 2), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn any_split_of_a_range_gives_the_same_bytes() {
        let p = Pattern::Seeded(0xfeed);
        let whole = p.bytes(1000, 300);
        for cut in [0usize, 1, 3, 7, 8, 9, 150, 299, 300] {
            let mut a = vec![0u8; cut];
            let mut b = vec![0u8; 300 - cut];
            p.fill(1000, &mut a);
            p.fill(1000 + cut as u64, &mut b);
            a.extend_from_slice(&b);
            assert_eq!(a, whole, "cut at {cut}");
        }
        assert_ne!(p.bytes(0, 64), Pattern::Seeded(0xfeee).bytes(0, 64));
        assert_eq!(Pattern::Byte(0xa5).bytes(5, 3), [0xa5; 3]);
    }

    #[test]
    fn verifier_names_the_first_bad_block_and_byte() {
        let p = Pattern::Seeded(42);
        let mut data = p.bytes(10 * 512, 4 * 512);
        let mut v = Verifier::new(p, 512);
        v.feed(10, &data);
        assert_eq!(v.first_mismatch(), None);
        data[2 * 512 + 77] ^= 0xff;
        data[3 * 512] ^= 1;
        let mut v = Verifier::new(p, 512);
        v.feed(10, &data[..1024]);
        v.feed(12, &data[1024..]);
        let m = v.first_mismatch().unwrap();
        assert_eq!((m.lba, m.offset), (12, 77));
        assert_eq!(m.found, m.expected ^ 0xff);
        assert_eq!(v.blocks_checked(), 4);
        let mut v = Verifier::new(Pattern::Byte(0), 4096);
        v.feed(0, &[0u8; 4096]);
        v.feed(1, &[0, 0, 9, 0]);
        assert_eq!(v.first_mismatch().map(|m| (m.lba, m.offset)), Some((1, 2)));
    }
}
