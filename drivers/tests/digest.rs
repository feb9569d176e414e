//! The digest engines against independent references on the host: the SHA-NI assembly (the
//! very code the monitor runs) and the portable path against the `sha2` crate and FIPS 180-4
//! vectors, for many lengths, alignments and chunkings; CRC-32 against known vectors and
//! Python's `zlib.crc32`.

use drivers::digest::{self, crc32, DigestKind, DigestValue, Hasher, Sha256, Sha256Path};
use drivers::platform::{Cpu, CpuidResult, MsrError, NullCpu};
use sha2::Digest as _;

/// The host CPU's CPUID, so `sha256_path` decides here as it would on the monitor.
struct HostCpu;

impl Cpu for HostCpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
    fn read_msr(&self, _: u32) -> Result<u64, MsrError> {
        Err(MsrError::GeneralProtection)
    }
    fn write_msr(&self, _: u32, _: u64) -> Result<(), MsrError> {
        Err(MsrError::GeneralProtection)
    }
}

/// Set to `1` to let a CI run pass on a host without SHA-NI (the SHA-NI path then is not
/// tested at all; the machines CI runs on have it).
const ALLOW_SKIP_VAR: &str = "BRINGUP_ALLOW_NO_SHA_NI";

/// Whether the SHA-NI path can be tested here. Without SHA-NI: a warning that passing tests
/// cannot hide, and in CI (`CI` set and not `false`/`0`) a failure unless [`ALLOW_SKIP_VAR`]
/// allows the skip.
fn host_has_sha_ni() -> bool {
    let has = std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1");
    let ci = std::env::var("CI").ok();
    let allow = std::env::var(ALLOW_SKIP_VAR).ok();
    match sha_ni_verdict(has, ci.as_deref(), allow.as_deref()) {
        Ok(true) => true,
        Ok(false) => {
            // Straight to fd 2: the test harness captures eprintln! of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** WARNING: this host CPU has no SHA-NI: the SHA-NI assembly is NOT tested here ***\n"
            );
            false
        }
        Err(why) => panic!("{why}"),
    }
}

/// The decision of [`host_has_sha_ni`], pure: `Ok(false)` = skip the SHA-NI path.
fn sha_ni_verdict(has: bool, ci: Option<&str>, allow: Option<&str>) -> Result<bool, String> {
    let in_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    match (has, in_ci, allow == Some("1")) {
        (true, _, _) => Ok(true),
        (false, true, false) => Err(format!(
            "CI is set and this host has no SHA-NI, so the SHA-NI SHA-256 path would go untested \
             while the tests pass; run CI on a SHA-NI machine or set {ALLOW_SKIP_VAR}=1"
        )),
        (false, _, _) => Ok(false),
    }
}

#[test]
fn a_ci_run_without_sha_ni_fails_unless_the_skip_is_allowed() {
    assert_eq!(sha_ni_verdict(true, Some("true"), None), Ok(true));
    assert_eq!(sha_ni_verdict(false, None, None), Ok(false));
    assert_eq!(sha_ni_verdict(false, Some("false"), None), Ok(false));
    let err = sha_ni_verdict(false, Some("true"), None).unwrap_err();
    assert!(err.contains(ALLOW_SKIP_VAR), "{err}");
    assert_eq!(sha_ni_verdict(false, Some("true"), Some("1")), Ok(false));
}

/// Deterministic, non-repeating test bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn ours(path: Sha256Path, data: &[u8], chunk: usize) -> [u8; 32] {
    // SAFETY: ShaNi is only requested after host_has_sha_ni() said yes.
    let mut h = unsafe { Sha256::with_path(path) };
    for part in data.chunks(chunk.max(1)) {
        h.update(part);
    }
    h.finalize()
}

fn paths() -> Vec<Sha256Path> {
    let mut p = vec![Sha256Path::Portable];
    if host_has_sha_ni() {
        p.push(Sha256Path::ShaNi);
    }
    p
}

#[test]
fn sha256_fips_vectors_on_both_paths() {
    let vectors: [(&[u8], &str); 3] = [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];
    for path in paths() {
        for (msg, want) in vectors {
            assert_eq!(hex(&ours(path, msg, 64)), want, "{path} {msg:?}");
        }
        // FIPS 180-4 long vector: one million 'a'.
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&ours(path, &million, 4096)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            "{path} million a"
        );
    }
}

#[test]
fn sha256_every_length_alignment_and_chunking_matches_sha2() {
    let data = bytes(4096 + 64, 0x5eed);
    for path in paths() {
        for len in (0..300).chain([511, 512, 513, 1000, 4095, 4096]) {
            for align in [0, 1, 3, 8, 15, 33] {
                let msg = &data[align..align + len];
                let want: [u8; 32] = sha2::Sha256::digest(msg).into();
                for chunk in [1, 7, 63, 64, 65, 4096] {
                    if chunk < 64 && len > 600 {
                        continue; // byte-by-byte over long inputs adds nothing but time
                    }
                    assert_eq!(
                        ours(path, msg, chunk),
                        want,
                        "{path}: len {len}, offset {align}, chunks of {chunk}"
                    );
                }
            }
        }
    }
}

#[test]
fn sha_ni_and_portable_agree_on_megabytes() {
    if !host_has_sha_ni() {
        return;
    }
    let data = bytes(3 << 20, 77);
    let want: [u8; 32] = sha2::Sha256::digest(&data).into();
    assert_eq!(ours(Sha256Path::ShaNi, &data, 512 << 10), want);
    assert_eq!(ours(Sha256Path::Portable, &data, 512 << 10), want);
}

#[test]
fn path_follows_cpuid() {
    assert_eq!(digest::sha256_path(&NullCpu), Sha256Path::Portable);
    let want = if host_has_sha_ni() {
        Sha256Path::ShaNi
    } else {
        Sha256Path::Portable
    };
    assert_eq!(digest::sha256_path(&HostCpu), want);
    let h = Hasher::new(DigestKind::Sha256, &HostCpu);
    let mut h2 = h.clone();
    h2.update(b"abc");
    match h2.finish() {
        DigestValue::Sha256 { digest, path } => {
            assert_eq!(path, want);
            assert_eq!(hex(&digest[..4]), "ba7816bf");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn digest_names_parse_back() {
    for kind in [DigestKind::Sha256, DigestKind::Crc32, DigestKind::None] {
        assert_eq!(DigestKind::parse(kind.name()), Some(kind));
    }
    assert_eq!(DigestKind::parse("md5"), None);
}

#[test]
fn crc32_matches_known_vectors_and_crc32fast() {
    assert_eq!(crc32::crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        crc32::crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414f_a339
    );
    let data = bytes(100_000, 9);
    for len in [0, 1, 15, 16, 17, 255, 4096, 99_999] {
        let mut h = Hasher::new(DigestKind::Crc32, &NullCpu);
        for part in data[..len].chunks(333) {
            h.update(part);
        }
        assert_eq!(
            h.finish(),
            DigestValue::Crc32(crc32fast::hash(&data[..len])),
            "len {len}"
        );
    }
}

/// Python's zlib.crc32 (the C zlib) over the same bytes (python3 is in the Makefile's
/// DEB_PACKAGES).
#[test]
fn crc32_matches_python_zlib() {
    let data = bytes(1 << 20, 31);
    let dir = std::env::temp_dir().join(format!("bringup-crc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, zlib; print('%08x' % zlib.crc32(open(sys.argv[1], 'rb').read()))")
        .arg(&file)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("python3 (make deps installs it)");
    assert!(out.status.success(), "python3 failed: {out:?}");
    let want = String::from_utf8(out.stdout).unwrap();
    assert_eq!(format!("{:08x}", crc32::crc32(&data)), want.trim());
}
