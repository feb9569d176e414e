//! Transfer rates for people: "512.0 B/s", "25.6 KiB/s", "310.4 MiB/s", "1.2 GiB/s". The
//! unit is the largest that keeps the whole part at 1 or more, so a small read never prints
//! "0.0 MiB/s".

use alloc::format;
use alloc::string::String;

/// `bytes` moved in `elapsed_us` microseconds (0 counts as 1 µs), one decimal.
pub fn throughput(bytes: u64, elapsed_us: u64) -> String {
    // Tenths of a byte per second, so the decimal is right for every unit (truncated).
    let tenths = (bytes as u128 * 10_000_000) / elapsed_us.max(1) as u128;
    let (unit, shift) = match tenths / 10 {
        r if r >= 1 << 30 => ("GiB/s", 30),
        r if r >= 1 << 20 => ("MiB/s", 20),
        r if r >= 1 << 10 => ("KiB/s", 10),
        _ => ("B/s", 0),
    };
    let in_unit = tenths >> shift;
    format!("{}.{} {unit}", in_unit / 10, in_unit % 10)
}

#[cfg(test)]
mod tests {
    use super::throughput;

    #[test]
    fn small_reads_get_a_small_unit() {
        // One 512-byte block in 20 ms: 25 KiB/s, which the MiB-only text printed as 0.0.
        assert_eq!(throughput(512, 20_000), "25.0 KiB/s");
        assert_eq!(throughput(512, 1_000_000), "512.0 B/s");
        assert_eq!(throughput(1, 3_000_000), "0.3 B/s");
        assert_eq!(throughput(0, 0), "0.0 B/s");
    }

    #[test]
    fn large_reads_keep_mib_and_gib() {
        assert_eq!(throughput(64 << 20, 200_000), "320.0 MiB/s");
        assert_eq!(throughput(3 << 29, 1_000_000), "1.5 GiB/s");
        assert_eq!(throughput(1536, 1_000_000), "1.5 KiB/s");
        assert!(throughput(u64::MAX, 1).ends_with(" GiB/s"), "no overflow");
    }
}
