//! CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial value and final xor
//! 0xFFFFFFFF): the checksum U-Boot's `crc32` command, zlib's `crc32()` and Python's
//! `zlib.crc32` print, so a user can compare our value with theirs byte for byte.
//!
//! Slicing-by-16: sixteen 256-entry tables built at compile time let the loop consume 16
//! bytes per step with 16 independent table lookups, instead of one dependent lookup per
//! byte (what U-Boot's byte-at-a-time loop does). It needs no SIMD, so it runs the same on
//! the soft-float monitor, on any CPU and under any QEMU.

/// The reflected generator polynomial (IEEE 802.3).
const POLY_REFLECTED: u32 = 0xEDB8_8320;
/// Bytes consumed per step of the inner loop.
const SLICE_BYTES: usize = 16;

/// `TABLES[k][b]`: the CRC register contribution of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; SLICE_BYTES] = build_tables();

const fn build_tables() -> [[u32; 256]; SLICE_BYTES] {
    let mut tables = [[0u32; 256]; SLICE_BYTES];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < SLICE_BYTES {
        let mut b = 0;
        while b < 256 {
            let prev = tables[k - 1][b];
            tables[k][b] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    tables
}

/// `value`, unchanged, but opaque to the optimizer: without this LLVM turns "load 8 bytes,
/// then shift out each byte" back into eight 1-byte loads (cheaper natively, but under TCG
/// each guest load costs a soft-TLB lookup, and that is what bounds this loop there).
#[inline(always)]
fn in_register(mut value: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an empty instruction sequence on one register: no memory, stack or flags.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) value, options(pure, nomem, nostack, preserves_flags));
    }
    value
}

/// A running CRC-32; feed it with [`Crc32::update`] in any chunking.
#[derive(Debug, Clone, Copy)]
pub struct Crc32 {
    /// The register before the final xor.
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    pub const fn new() -> Self {
        Crc32 { state: !0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        let t = &TABLES;
        let mut crc = self.state;
        let mut chunks = data.chunks_exact(SLICE_BYTES);
        for c in &mut chunks {
            // Two 8-byte loads instead of sixteen 1-byte ones: under TCG every guest load
            // is a soft-TLB lookup, so loads, not ALU work, set the pace. The first four
            // bytes meet the register (little-endian, as the CRC is reflected); the other
            // twelve only pass through the tables.
            let lo = in_register(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
            let hi = in_register(u64::from_le_bytes([
                c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15],
            ]));
            let head = crc ^ lo as u32;
            let byte = |word: u64, n: u32| ((word >> (8 * n)) & 0xff) as usize;
            let head = head as u64;
            crc = t[15][byte(head, 0)]
                ^ t[14][byte(head, 1)]
                ^ t[13][byte(head, 2)]
                ^ t[12][byte(head, 3)]
                ^ t[11][byte(lo, 4)]
                ^ t[10][byte(lo, 5)]
                ^ t[9][byte(lo, 6)]
                ^ t[8][byte(lo, 7)]
                ^ t[7][byte(hi, 0)]
                ^ t[6][byte(hi, 1)]
                ^ t[5][byte(hi, 2)]
                ^ t[4][byte(hi, 3)]
                ^ t[3][byte(hi, 4)]
                ^ t[2][byte(hi, 5)]
                ^ t[1][byte(hi, 6)]
                ^ t[0][byte(hi, 7)];
        }
        for &byte in chunks.remainder() {
            crc = (crc >> 8) ^ t[0][((crc ^ byte as u32) & 0xff) as usize];
        }
        self.state = crc;
    }

    /// The CRC of everything fed so far (the value U-Boot and zlib print).
    pub fn value(&self) -> u32 {
        !self.state
    }
}

/// CRC-32 of one buffer.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(data);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn check_value_of_the_standard() {
        // The "check" value of CRC-32/ISO-HDLC (the catalogue name of this CRC).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn any_split_and_length_matches_the_bitwise_definition() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 3, 15, 16, 17, 31, 64, 999, 1000] {
            let want = reference(&data[..len]);
            assert_eq!(crc32(&data[..len]), want, "len {len}");
            for split in [0, 1, 7, 16, len / 2] {
                let split = split.min(len);
                let mut c = Crc32::new();
                c.update(&data[..split]);
                c.update(&data[split..len]);
                assert_eq!(c.value(), want, "len {len} split {split}");
            }
        }
    }
}
