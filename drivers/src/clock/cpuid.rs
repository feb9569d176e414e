//! The TSC rates CPUID declares: leaf 0x15 (crystal and ratio), leaf 0x16 (base MHz) and
//! the hypervisor leaf 0x4000_0010 (TSC kHz), plus whether a KVM pvclock exists. Read
//! through the `Cpu` seam, so host tests inject what QEMU/KVM or a real CPU answer.

use alloc::vec::Vec;

use super::{Evidence, Reading, Rejection, Source};
use crate::platform::Cpu;

const LEAF_MAX_BASIC: u32 = 0;
const LEAF_FEATURES: u32 = 1;
const LEAF_TSC_CRYSTAL: u32 = 0x15;
const LEAF_FREQUENCY: u32 = 0x16;
/// CPUID.1:ECX bit 31: running under a hypervisor (fact: reserved 0 on bare metal).
const HYPERVISOR_PRESENT: u32 = 1 << 31;
const LEAF_HYPERVISOR: u32 = 0x4000_0000;
/// The KVM feature leaf (fact: Linux Documentation/virt/kvm/x86/cpuid.rst).
const LEAF_KVM_FEATURES: u32 = 0x4000_0001;
/// KVM_FEATURE_CLOCKSOURCE2: MSR_KVM_SYSTEM_TIME_NEW (0x4b564d01) is available.
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
/// The timing leaf (VMware's definition, also filled by KVM/QEMU): EAX TSC kHz.
const LEAF_HYPERVISOR_TIMING: u32 = 0x4000_0010;
/// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX of leaf 0x4000_0000.
const KVM_SIGNATURE: [u8; 12] = *b"KVMKVMKVM\0\0\0";

fn max_basic(cpu: &dyn Cpu) -> u32 {
    cpu.cpuid(LEAF_MAX_BASIC, 0).eax
}

/// The highest hypervisor leaf and the vendor signature, when CPUID.1 says a hypervisor
/// is present (bare metal answers leaf 0x4000_0000 with whatever its highest basic leaf
/// holds, so the range is only trusted behind the bit).
fn hypervisor(cpu: &dyn Cpu) -> Option<(u32, [u8; 12])> {
    if cpu.cpuid(LEAF_FEATURES, 0).ecx & HYPERVISOR_PRESENT == 0 {
        return None;
    }
    let r = cpu.cpuid(LEAF_HYPERVISOR, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&r.edx.to_le_bytes());
    Some((r.eax, sig))
}

/// Leaf 0x15, where the CPU has it.
pub fn leaf_15h(cpu: &dyn Cpu) -> Reading {
    if max_basic(cpu) < LEAF_TSC_CRYSTAL {
        return Reading::rejected(Source::Cpuid15, Rejection::Absent);
    }
    let r = cpu.cpuid(LEAF_TSC_CRYSTAL, 0);
    Reading::from_evidence(
        Source::Cpuid15,
        Evidence::Cpuid15 {
            denominator: r.eax,
            numerator: r.ebx,
            crystal_hz: r.ecx,
        },
    )
}

/// Leaf 0x16, where the CPU has it.
pub fn leaf_16h(cpu: &dyn Cpu) -> Reading {
    if max_basic(cpu) < LEAF_FREQUENCY {
        return Reading::rejected(Source::Cpuid16, Rejection::Absent);
    }
    Reading::from_evidence(
        Source::Cpuid16,
        Evidence::Cpuid16 {
            base_mhz: cpu.cpuid(LEAF_FREQUENCY, 0).eax & 0xffff,
        },
    )
}

/// Leaf 0x4000_0010, where the hypervisor's range reaches it.
pub fn hypervisor_leaf(cpu: &dyn Cpu) -> Reading {
    match hypervisor(cpu) {
        Some((max, _)) if max >= LEAF_HYPERVISOR_TIMING => Reading::from_evidence(
            Source::HypervisorLeaf,
            Evidence::HypervisorLeaf {
                tsc_khz: cpu.cpuid(LEAF_HYPERVISOR_TIMING, 0).eax,
            },
        ),
        _ => Reading::rejected(Source::HypervisorLeaf, Rejection::Absent),
    }
}

/// True when KVM offers MSR_KVM_SYSTEM_TIME_NEW: the KVM signature and the
/// CLOCKSOURCE2 feature bit.
pub fn has_kvmclock(cpu: &dyn Cpu) -> bool {
    match hypervisor(cpu) {
        Some((max, sig)) if sig == KVM_SIGNATURE && max >= LEAF_KVM_FEATURES => {
            cpu.cpuid(LEAF_KVM_FEATURES, 0).eax & KVM_FEATURE_CLOCKSOURCE2 != 0
        }
        _ => false,
    }
}

/// The three CPUID-declared readings.
pub fn declared(cpu: &dyn Cpu) -> Vec<Reading> {
    alloc::vec![leaf_15h(cpu), hypervisor_leaf(cpu), leaf_16h(cpu)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{CpuidResult, MsrError};

    /// A CPU answering from a table of (leaf, eax, ebx, ecx, edx); other leaves read 0.
    struct TableCpu(&'static [(u32, u32, u32, u32, u32)]);

    impl Cpu for TableCpu {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
            self.0
                .iter()
                .find(|r| r.0 == leaf)
                .map_or(CpuidResult::default(), |r| CpuidResult {
                    eax: r.1,
                    ebx: r.2,
                    ecx: r.3,
                    edx: r.4,
                })
        }
        fn read_msr(&self, _: u32) -> Result<u64, MsrError> {
            Err(MsrError::GeneralProtection)
        }
        fn write_msr(&self, _: u32, _: u64) -> Result<(), MsrError> {
            Err(MsrError::GeneralProtection)
        }
    }

    /// Captured from QEMU 7.2 TCG, `-machine pc`, default CPU (`cpuid` command).
    const QEMU_TCG: TableCpu = TableCpu(&[
        (0, 0x0000_000d, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
        (1, 0x0006_0fb1, 0x0000_0800, 0x8000_2001, 0x078b_fbfd),
        (
            0x4000_0000,
            0x4000_0001,
            0x5447_4354,
            0x4354_4743,
            0x4743_5447,
        ),
        (0x4000_0001, 0, 0, 0, 0),
    ]);

    /// A KVM guest on an Intel host (values after Linux's cpuid.rst and the SDM: the
    /// KVM signature, CLOCKSOURCE2 among the features, the timing leaf, 0x15 and 0x16).
    const KVM_INTEL: TableCpu = TableCpu(&[
        (0, 0x0000_001b, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        (1, 0x0005_0657, 0x0000_0800, 0x80ba_2203, 0x0f8b_fbff),
        (0x15, 2, 176, 25_000_000, 0),
        (0x16, 2_200, 2_200, 100, 0),
        (
            0x4000_0000,
            0x4000_0010,
            0x4b4d_564b,
            0x564b_4d56,
            0x0000_004d,
        ),
        (0x4000_0001, 0x0100_7afb, 0, 0, 0),
        (0x4000_0010, 2_199_998, 1_000_000, 0, 0),
    ]);

    #[test]
    fn qemu_tcg_declares_nothing() {
        let r = declared(&QEMU_TCG);
        assert!(
            r.iter().all(|r| r.result == Err(Rejection::Absent)),
            "{r:?}"
        );
        assert!(!has_kvmclock(&QEMU_TCG), "TCG's signature is not KVM's");
    }

    #[test]
    fn a_kvm_guest_declares_three_rates_and_a_pvclock() {
        let r = declared(&KVM_INTEL);
        assert_eq!(r[0].source, Source::Cpuid15);
        assert_eq!(r[0].result, Ok(2_200_000_000));
        assert_eq!(r[1].source, Source::HypervisorLeaf);
        assert_eq!(r[1].result, Ok(2_199_998_000));
        assert_eq!(r[2].source, Source::Cpuid16);
        assert_eq!(r[2].result, Ok(2_200_000_000));
        assert!(has_kvmclock(&KVM_INTEL));
    }

    #[test]
    fn hypervisor_leaves_need_the_hypervisor_bit() {
        // Bare metal: CPUID.1:ECX bit 31 clear, leaf 0x4000_0000 answers garbage.
        let bare = TableCpu(&[
            (0, 0x16, 0, 0, 0),
            (1, 0x0005_0657, 0, 0x0000_0001, 0),
            (0x15, 2, 176, 0, 0),
            (
                0x4000_0000,
                0x4000_0010,
                0x4b4d_564b,
                0x564b_4d56,
                0x0000_004d,
            ),
            (0x4000_0010, 2_199_998, 0, 0, 0),
        ]);
        let r = declared(&bare);
        assert_eq!(
            r[0].result,
            Err(Rejection::NoAnswer),
            "0x15 without a crystal"
        );
        assert_eq!(r[1].result, Err(Rejection::Absent));
        assert!(!has_kvmclock(&bare));
    }
}
