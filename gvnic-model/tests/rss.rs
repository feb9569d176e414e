//! CONFIGURE_RSS and QUERY_RSS: what Linux 6.15+ sends during a DQO probe, read back, and the
//! device's checks on key, table and fields.

mod common;

use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::rss::{RSS_KEY_BYTES, RSS_LUT_ENTRIES};
use gvnic_model::{Formats, GuestMemory, ModelConfig, QueueFormat};

const KEY: u64 = 0x8000;
const LUT: u64 = 0x9000;
const QUERY: u64 = 0xA000;

fn dqo_configured() -> H {
    let mut h = H::new(ModelConfig {
        formats: Formats::only(&[QueueFormat::DqoRda]),
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    let n = u32::from(h.dev.config().counters);
    assert_eq!(h.submit(h.configure_cmd(n, 3)), status::PASSED);
    h
}

/// The command Linux's `gve_adminq_configure_rss` builds at probe: TCP/UDP over v4/v6,
/// Toeplitz, a 40-byte key and a 128-entry table of `i % queues`.
fn configure_rss(h: &mut H, key_len: u16, lut: &[u32]) -> [u8; 64] {
    let key: Vec<u8> = (0..key_len).map(|i| i as u8 ^ 0x5a).collect();
    h.mem.write(KEY, &key).unwrap();
    let raw: Vec<u8> = lut.iter().flat_map(|e| e.to_be_bytes()).collect();
    h.mem.write(LUT, &raw).unwrap();
    let mut c = be_cmd(opcode::CONFIGURE_RSS);
    put16(&mut c, 8, (1 << 1) | (1 << 4) | (1 << 6) | (1 << 7));
    c[10] = 1;
    put16(&mut c, 12, key_len);
    put16(&mut c, 14, lut.len() as u16);
    put64(&mut c, 16, KEY);
    put64(&mut c, 24, LUT);
    c
}

fn linux_lut(queues: u32) -> Vec<u32> {
    (0..u32::from(RSS_LUT_ENTRIES))
        .map(|i| i % queues)
        .collect()
}

fn query(h: &mut H, avail: u64) -> u32 {
    let mut c = be_cmd(opcode::QUERY_RSS);
    put64(&mut c, 8, avail);
    put64(&mut c, 16, QUERY);
    h.submit(c)
}

#[test]
fn linux_probe_configure_rss_passes_and_reads_back() {
    let mut h = dqo_configured();
    let c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4));
    assert_eq!(
        h.submit(c),
        status::PASSED,
        "{:?}",
        h.dev.record().violations
    );
    assert_eq!(query(&mut h, 4096), status::PASSED);
    let key_len = usize::from(RSS_KEY_BYTES);
    let total = 8 + key_len + 4 * usize::from(RSS_LUT_ENTRIES);
    let d = h.mem_read(QUERY, total);
    // The length check Linux's gve_adminq_process_rss_query makes.
    assert_eq!(
        u32::from_be_bytes(d[0..4].try_into().unwrap()) as usize,
        total
    );
    assert_eq!(u16::from_be_bytes([d[4], d[5]]), 0xD2);
    assert_eq!(d[6], 1, "hash_alg Toeplitz");
    let key: Vec<u8> = (0..RSS_KEY_BYTES).map(|i| i as u8 ^ 0x5a).collect();
    assert_eq!(&d[8..8 + key_len], &key[..]);
    let lut: Vec<u32> = d[8 + key_len..]
        .chunks(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(lut, linux_lut(4));
    assert!(h.dev.record().violations.is_empty());
}

#[test]
fn zero_sizes_keep_the_current_key_and_table() {
    let mut h = dqo_configured();
    let c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(2));
    assert_eq!(h.submit(c), status::PASSED);
    let mut keep = be_cmd(opcode::CONFIGURE_RSS);
    keep[10] = 1;
    assert_eq!(h.submit(keep), status::PASSED);
    assert_eq!(query(&mut h, 4096), status::PASSED);
    let d = h.mem_read(QUERY + 8 + u64::from(RSS_KEY_BYTES), 8);
    assert_eq!(d, [0, 0, 0, 0, 0, 0, 0, 1], "LUT still 0,1,..");
}

#[test]
fn bad_configure_rss_is_refused_with_invalid_argument() {
    let mut h = dqo_configured();
    let c = configure_rss(&mut h, 39, &linux_lut(4));
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "key of 39 bytes");
    let c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4)[..64]);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "table of 64 entries");
    let c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(5));
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "queue 4 of 4");
    let mut c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4));
    c[10] = 2;
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "hash_alg 2");
    let mut c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4));
    put16(&mut c, 8, 0x200);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "hash type bit 9");
    let mut c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4));
    put64(&mut c, 16, 1 << 40);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "key outside RAM");
    assert_eq!(query(&mut h, 100), status::INVALID_ARGUMENT, "short buffer");
    assert_eq!(h.dev.record().violations.len(), 7);
}

#[test]
fn rss_before_configure_is_a_failed_precondition() {
    let mut h = H::new(ModelConfig::default());
    h.start_aq();
    let c = configure_rss(&mut h, RSS_KEY_BYTES, &linux_lut(4));
    assert_eq!(h.submit(c), status::FAILED_PRECONDITION);
    assert_eq!(query(&mut h, 4096), status::FAILED_PRECONDITION);
}
