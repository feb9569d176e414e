//! SHA-256 (FIPS 180-4) with a choice of compression engine: the buffering and padding here
//! are shared, so both engines differ only in how a 64-byte block is compressed.

use sha2::digest::generic_array::GenericArray;

use super::{sha256_path, Sha256Path};
use crate::platform::Cpu;

/// FIPS 180-4 section 5.3.3: the initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const BLOCK_BYTES: usize = 64;

/// A running SHA-256.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    buffer: [u8; BLOCK_BYTES],
    buffered: usize,
    /// Message length so far, bytes.
    length: u64,
    path: Sha256Path,
}

impl Sha256 {
    /// A hasher on the engine `cpu` supports ([`super::sha256_path`]). `cpu` must answer
    /// CPUID as the CPU running this code does (the `Cpu` contract): a fake that claims SHA
    /// on a CPU without it makes the first block raise #UD.
    pub fn new(cpu: &dyn Cpu) -> Self {
        // SAFETY: the path is what CPUID reports this CPU supports.
        unsafe { Self::with_path(sha256_path(cpu)) }
    }

    /// A hasher on the portable engine (any CPU).
    pub fn portable() -> Self {
        // SAFETY: the portable engine needs no CPU feature.
        unsafe { Self::with_path(Sha256Path::Portable) }
    }

    /// A hasher on `path`, whatever CPUID says (tests that pin an engine).
    ///
    /// # Safety
    /// For [`Sha256Path::ShaNi`] the CPU must have SHA, SSSE3 and SSE4.1 and SSE must be
    /// enabled (see [`super::sha256_ni::compress`]). Off x86_64 the portable engine runs.
    pub unsafe fn with_path(path: Sha256Path) -> Self {
        let path = if cfg!(target_arch = "x86_64") {
            path
        } else {
            Sha256Path::Portable
        };
        Sha256 {
            state: H0,
            buffer: [0; BLOCK_BYTES],
            buffered: 0,
            length: 0,
            path,
        }
    }

    pub fn path(&self) -> Sha256Path {
        self.path
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = (BLOCK_BYTES - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK_BYTES {
                return;
            }
            let block = self.buffer;
            self.compress(&block);
            self.buffered = 0;
        }
        let whole = data.len() - data.len() % BLOCK_BYTES;
        self.compress(&data[..whole]);
        let rest = &data[whole..];
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 32] {
        // Padding: 0x80, zeros up to 56 mod 64, the message length in bits, big-endian.
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK_BYTES];
        tail[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[self.buffered] = 0x80;
        let total = if self.buffered < 56 {
            BLOCK_BYTES
        } else {
            2 * BLOCK_BYTES
        };
        tail[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        self.compress(&tail[..total]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Compresses whole blocks (`blocks.len()` a multiple of 64).
    fn compress(&mut self, blocks: &[u8]) {
        match self.path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `ShaNi` is only set by `new` after CPUID reported SHA, SSSE3 and
            // SSE4.1, or by a `with_path` caller who vouched for them; the monitor enables
            // SSE at boot before any command runs.
            Sha256Path::ShaNi => unsafe { super::sha256_ni::compress(&mut self.state, blocks) },
            _ => {
                for block in blocks.chunks_exact(BLOCK_BYTES) {
                    sha2::compress256(
                        &mut self.state,
                        core::slice::from_ref(GenericArray::from_slice(block)),
                    );
                }
            }
        }
    }
}
