//! Digests of data read from devices: SHA-256 (portable code, or the SHA extensions where the
//! CPU has them), CRC-32 as U-Boot and zlib compute it, or none.
//!
//! The engines are plain functions over byte slices, so the monitor and host tests run the
//! same code, assembly included (drivers/tests/digest.rs compares them with the `sha2`
//! crate and with zlib's CRC-32). Which SHA-256 engine runs is decided once per use from
//! CPUID through the platform's [`Cpu`]; the `cpu` and `version` commands report the same
//! choice through [`sha256_path`].
//!
//! Does not know: devices, frames, the console.

pub mod crc32;
pub mod sha256;
#[cfg(target_arch = "x86_64")]
pub mod sha256_ni;

use core::fmt;

use crate::platform::Cpu;

pub use crc32::Crc32;
pub use sha256::Sha256;

/// CPUID leaf 1 ECX: SSSE3 (bit 9, PSHUFB/PALIGNR) and SSE4.1 (bit 19, PBLENDW).
const CPUID1_ECX_SSSE3: u32 = 1 << 9;
const CPUID1_ECX_SSE41: u32 = 1 << 19;
/// CPUID leaf 7 subleaf 0 EBX bit 29: the SHA extensions (Intel SDM vol. 2, CPUID).
const CPUID7_EBX_SHA: u32 = 1 << 29;

/// Which digest a read computes (`--digest sha256|crc32|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Sha256,
    Crc32,
    None,
}

impl DigestKind {
    /// Parses the `--digest` value.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(DigestKind::Sha256),
            "crc32" => Some(DigestKind::Crc32),
            "none" => Some(DigestKind::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Sha256 => "sha256",
            DigestKind::Crc32 => "crc32",
            DigestKind::None => "none",
        }
    }
}

/// The SHA-256 compression engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha256Path {
    /// The `sha2` crate's portable code (any CPU; the monitor is soft-float).
    Portable,
    /// SHA256RNDS2/MSG1/MSG2 in assembly (sha256_ni.rs).
    ShaNi,
}

impl Sha256Path {
    /// The stable name in human output and frames: `portable` or `sha-ni`.
    pub fn name(self) -> &'static str {
        match self {
            Sha256Path::Portable => "portable",
            Sha256Path::ShaNi => "sha-ni",
        }
    }
}

impl fmt::Display for Sha256Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The SHA-256 engine this CPU gets: SHA-NI when CPUID reports SHA, SSSE3 and SSE4.1
/// (everything the assembly uses), else the portable code.
///
/// On the monitor the caller must also have enabled SSE at boot (monitor/src/sse.rs does, on
/// every x86_64 CPU); on a host the OS has.
pub fn sha256_path(cpu: &dyn Cpu) -> Sha256Path {
    if cfg!(not(target_arch = "x86_64")) {
        return Sha256Path::Portable;
    }
    let max_leaf = cpu.cpuid(0, 0).eax;
    if max_leaf < 7 {
        return Sha256Path::Portable;
    }
    let leaf1 = cpu.cpuid(1, 0).ecx;
    let leaf7 = cpu.cpuid(7, 0).ebx;
    let needed1 = CPUID1_ECX_SSSE3 | CPUID1_ECX_SSE41;
    if leaf1 & needed1 == needed1 && leaf7 & CPUID7_EBX_SHA != 0 {
        Sha256Path::ShaNi
    } else {
        Sha256Path::Portable
    }
}

/// What a finished digest says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestValue {
    Sha256 { digest: [u8; 32], path: Sha256Path },
    Crc32(u32),
    None,
}

impl DigestValue {
    /// The engine that ran, for output and frames: `sha-ni`, `portable`, `slicing-by-16`,
    /// or `none`.
    pub fn engine(&self) -> &'static str {
        match self {
            DigestValue::Sha256 { path, .. } => path.name(),
            DigestValue::Crc32(_) => "slicing-by-16",
            DigestValue::None => "none",
        }
    }

    pub fn kind(&self) -> DigestKind {
        match self {
            DigestValue::Sha256 { .. } => DigestKind::Sha256,
            DigestValue::Crc32(_) => DigestKind::Crc32,
            DigestValue::None => DigestKind::None,
        }
    }
}

/// One running digest of any kind, fed chunk by chunk in order.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Crc32(Crc32),
    None,
}

impl Hasher {
    /// A hasher for `kind`; SHA-256 uses the engine `cpu` supports.
    pub fn new(kind: DigestKind, cpu: &dyn Cpu) -> Self {
        match kind {
            DigestKind::Sha256 => Hasher::Sha256(Sha256::new(cpu)),
            DigestKind::Crc32 => Hasher::Crc32(Crc32::new()),
            DigestKind::None => Hasher::None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Crc32(c) => c.update(data),
            Hasher::None => {}
        }
    }

    pub fn finish(self) -> DigestValue {
        match self {
            Hasher::Sha256(h) => DigestValue::Sha256 {
                path: h.path(),
                digest: h.finalize(),
            },
            Hasher::Crc32(c) => DigestValue::Crc32(c.value()),
            Hasher::None => DigestValue::None,
        }
    }
}
