//! Confidential-VM detection: SEV, SEV-ES, SEV-SNP (AMD) and TDX (Intel).
//!
//! Why it matters: in such a guest, memory is private (encrypted) unless the guest marks
//! pages shared; a device that DMAs into a private page reads ciphertext or has its
//! writes dropped, silently. The monitor's bounce pool is ordinary (private) memory, so
//! on a confidential guest every command that hands memory to a device must refuse
//! (`confidential-vm-unsupported`) until the pool can live in shared memory.
//!
//! Facts (AMD64 APM vol. 2 §15.34, vol. 3 CPUID Fn8000_001F; as also encoded in EDK2's
//! `Register/Amd/Fam17Msr.h` and `TdxProbeLib/X64/TdProbe.nasm`):
//! - CPUID 0x8000_0000 EAX is the highest extended leaf; leaf 0x8000_001F exists only if
//!   it is at least that. 0x8000_001F EAX bit 1: SEV is supported.
//! - MSR 0xC001_0131 (SEV_STATUS) exists only where SEV is supported (elsewhere RDMSR
//!   raises #GP, which outside a command halts the monitor: so it is read only after the
//!   CPUID check). Bit 0: SEV active, bit 1: SEV-ES active, bit 2: SEV-SNP active.
//! - CPUID 0 EAX is the highest basic leaf; leaf 0x21 exists only if it is at least 0x21.
//!   In a TDX guest the TDX module answers leaf 0x21 sub-leaf 0 with "IntelTDX    " in
//!   EBX, EDX, ECX (in that order).
//!
//! Known limit: on SEV-ES and SEV-SNP, CPUID, MSR and port I/O trap with #VC (vector 29)
//! unless a handler speaks the GHCB protocol, and on TDX port I/O traps with #VE (vector
//! 20) unless a handler makes TDCALLs; the monitor has neither. A #VC or #VE after the IDT
//! is loaded halts with `confidential-vm-unsupported` (exceptions.rs); one before it (the
//! COM1 setup is the first port I/O) is a triple fault. So `detect` is what reaches the
//! user on an SEV guest, and the named halt on the others.

use crate::platform::Cpu;

/// CPUID leaf: highest extended leaf in EAX.
pub const CPUID_MAX_EXTENDED: u32 = 0x8000_0000;
/// CPUID leaf: AMD memory encryption capabilities.
pub const CPUID_AMD_MEM_ENCRYPTION: u32 = 0x8000_001F;
/// 0x8000_001F EAX bit 1: SEV supported (fact, APM vol. 3).
pub const CPUID_SEV_SUPPORTED: u32 = 1 << 1;
/// MSR SEV_STATUS (fact, APM vol. 2 §15.34.10).
pub const MSR_SEV_STATUS: u32 = 0xC001_0131;
pub const SEV_STATUS_SEV: u64 = 1 << 0;
pub const SEV_STATUS_SEV_ES: u64 = 1 << 1;
pub const SEV_STATUS_SNP: u64 = 1 << 2;
/// CPUID leaf the TDX module answers with its signature.
pub const CPUID_TDX: u32 = 0x21;
/// "Inte", "lTDX", "    " as little-endian register values (EBX, EDX, ECX).
pub const TDX_EBX: u32 = u32::from_le_bytes(*b"Inte");
pub const TDX_EDX: u32 = u32::from_le_bytes(*b"lTDX");
pub const TDX_ECX: u32 = u32::from_le_bytes(*b"    ");

/// What kind of guest this is, as far as device DMA is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfidentialKind {
    /// Ordinary guest or bare metal: device DMA into our memory works.
    None,
    Sev,
    SevEs,
    SevSnp,
    Tdx,
}

impl ConfidentialKind {
    /// Stable kebab-case name (banner frame, `version`).
    pub fn name(self) -> &'static str {
        match self {
            ConfidentialKind::None => "none",
            ConfidentialKind::Sev => "sev",
            ConfidentialKind::SevEs => "sev-es",
            ConfidentialKind::SevSnp => "sev-snp",
            ConfidentialKind::Tdx => "tdx",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != ConfidentialKind::None
    }
}

/// Asks the CPU, touching SEV_STATUS only where CPUID says it exists.
///
/// A SEV_STATUS read that is refused anyway (a hypervisor that advertises SEV support to
/// an ordinary guest but traps the MSR) means "not an SEV guest": an active SEV guest can
/// always read it.
pub fn detect(cpu: &dyn Cpu) -> ConfidentialKind {
    let max_basic = cpu.cpuid(0, 0).eax;
    if max_basic >= CPUID_TDX {
        let tdx = cpu.cpuid(CPUID_TDX, 0);
        if (tdx.ebx, tdx.edx, tdx.ecx) == (TDX_EBX, TDX_EDX, TDX_ECX) {
            return ConfidentialKind::Tdx;
        }
    }
    let max_extended = cpu.cpuid(CPUID_MAX_EXTENDED, 0).eax;
    // Below 0x8000_0000 the answer is not an extended leaf count at all.
    if !(CPUID_AMD_MEM_ENCRYPTION..0x9000_0000).contains(&max_extended) {
        return ConfidentialKind::None;
    }
    if cpu.cpuid(CPUID_AMD_MEM_ENCRYPTION, 0).eax & CPUID_SEV_SUPPORTED == 0 {
        return ConfidentialKind::None;
    }
    match cpu.read_msr(MSR_SEV_STATUS) {
        Ok(status) if status & SEV_STATUS_SNP != 0 => ConfidentialKind::SevSnp,
        Ok(status) if status & SEV_STATUS_SEV_ES != 0 => ConfidentialKind::SevEs,
        Ok(status) if status & SEV_STATUS_SEV != 0 => ConfidentialKind::Sev,
        _ => ConfidentialKind::None,
    }
}
