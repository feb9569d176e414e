//! CPUID decoding: vendor, family/model/stepping, brand, hypervisor, and the features
//! bring-up cares about. Leaf and bit numbers: Intel SDM vol. 2A (CPUID), AMD APM vol. 3
//! appendix E; the hypervisor leaves 0x4000_0000.. are the common KVM/Hyper-V/Xen usage.

use alloc::string::String;
use alloc::vec::Vec;

use crate::platform::{Cpu, CpuidResult};

const LEAF_VENDOR: u32 = 0;
const LEAF_FEATURES: u32 = 1;
const LEAF_EXTENDED_FEATURES: u32 = 7;
const LEAF_HYPERVISOR: u32 = 0x4000_0000;
const LEAF_EXT_MAX: u32 = 0x8000_0000;
const LEAF_BRAND_FIRST: u32 = 0x8000_0002;
const LEAF_POWER: u32 = 0x8000_0007;
const LEAF_AMD_MEMORY_ENCRYPTION: u32 = 0x8000_001f;
/// Intel's TDX enumeration leaf (the "IntelTDX    " vendor string in a TD).
const LEAF_TDX: u32 = 0x21;

/// One named feature bit: (name, leaf, subleaf, register, bit).
#[derive(Debug, Clone, Copy)]
struct FeatureBit {
    name: &'static str,
    leaf: u32,
    reg: Reg,
    bit: u32,
}

#[derive(Debug, Clone, Copy)]
enum Reg {
    Ebx,
    Ecx,
    Edx,
    Eax,
}

const FEATURES: &[FeatureBit] = &[
    FeatureBit {
        name: "sse4.2",
        leaf: LEAF_FEATURES,
        reg: Reg::Ecx,
        bit: 20,
    },
    FeatureBit {
        name: "x2apic",
        leaf: LEAF_FEATURES,
        reg: Reg::Ecx,
        bit: 21,
    },
    FeatureBit {
        name: "aes",
        leaf: LEAF_FEATURES,
        reg: Reg::Ecx,
        bit: 25,
    },
    FeatureBit {
        name: "rdrand",
        leaf: LEAF_FEATURES,
        reg: Reg::Ecx,
        bit: 30,
    },
    FeatureBit {
        name: "avx2",
        leaf: LEAF_EXTENDED_FEATURES,
        reg: Reg::Ebx,
        bit: 5,
    },
    FeatureBit {
        name: "sha-ni",
        leaf: LEAF_EXTENDED_FEATURES,
        reg: Reg::Ebx,
        bit: 29,
    },
    FeatureBit {
        name: "invariant-tsc",
        leaf: LEAF_POWER,
        reg: Reg::Edx,
        bit: 8,
    },
    // AMD memory encryption capabilities (what the CPU offers, not what this guest runs).
    FeatureBit {
        name: "sme",
        leaf: LEAF_AMD_MEMORY_ENCRYPTION,
        reg: Reg::Eax,
        bit: 0,
    },
    FeatureBit {
        name: "sev",
        leaf: LEAF_AMD_MEMORY_ENCRYPTION,
        reg: Reg::Eax,
        bit: 1,
    },
    FeatureBit {
        name: "sev-es",
        leaf: LEAF_AMD_MEMORY_ENCRYPTION,
        reg: Reg::Eax,
        bit: 3,
    },
    FeatureBit {
        name: "sev-snp",
        leaf: LEAF_AMD_MEMORY_ENCRYPTION,
        reg: Reg::Eax,
        bit: 4,
    },
];

/// CPUID.1:ECX bit 31: a hypervisor is present (reserved 0 on bare metal).
const HYPERVISOR_PRESENT: u32 = 1 << 31;

/// What `cpu` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSummary {
    pub vendor: String,
    /// Display family/model (base plus extended, SDM's rule), stepping.
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub brand: String,
    /// The hypervisor's vendor signature (leaf 0x4000_0000), empty on bare metal.
    pub hypervisor: String,
    pub features: Vec<&'static str>,
    /// Initial local APIC id of this CPU (CPUID.1:EBX[31:24]).
    pub apic_id: u8,
}

/// Twelve bytes of three registers as text (vendor strings), NULs dropped.
pub fn register_text(regs: &[u32]) -> String {
    regs.iter()
        .flat_map(|r| r.to_le_bytes())
        .filter(|b| *b != 0)
        .map(|b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Family, model, stepping from CPUID.1:EAX (extended fields per the SDM's display rule).
pub fn family_model_stepping(eax: u32) -> (u32, u32, u32) {
    let stepping = eax & 0xf;
    let base_model = (eax >> 4) & 0xf;
    let base_family = (eax >> 8) & 0xf;
    let ext_model = (eax >> 16) & 0xf;
    let ext_family = (eax >> 20) & 0xff;
    let family = if base_family == 0xf {
        base_family + ext_family
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        (ext_model << 4) | base_model
    } else {
        base_model
    };
    (family, model, stepping)
}

fn reg(r: &CpuidResult, which: Reg) -> u32 {
    match which {
        Reg::Eax => r.eax,
        Reg::Ebx => r.ebx,
        Reg::Ecx => r.ecx,
        Reg::Edx => r.edx,
    }
}

impl CpuSummary {
    pub fn read(cpu: &dyn Cpu) -> CpuSummary {
        let leaf0 = cpu.cpuid(LEAF_VENDOR, 0);
        let max_basic = leaf0.eax;
        let max_ext = cpu.cpuid(LEAF_EXT_MAX, 0).eax;
        // A leaf above the maximum answers garbage (often the highest leaf's values).
        let available = |leaf: u32| {
            if leaf >= LEAF_EXT_MAX {
                leaf <= max_ext
            } else {
                leaf <= max_basic
            }
        };
        let leaf1 = cpu.cpuid(LEAF_FEATURES, 0);
        let (family, model, stepping) = family_model_stepping(leaf1.eax);
        let brand = if available(LEAF_BRAND_FIRST + 2) {
            let words: Vec<u32> = (0..3)
                .flat_map(|i| {
                    let r = cpu.cpuid(LEAF_BRAND_FIRST + i, 0);
                    [r.eax, r.ebx, r.ecx, r.edx]
                })
                .collect();
            String::from(register_text(&words).trim())
        } else {
            String::new()
        };
        let hypervisor = if leaf1.ecx & HYPERVISOR_PRESENT != 0 {
            let r = cpu.cpuid(LEAF_HYPERVISOR, 0);
            register_text(&[r.ebx, r.ecx, r.edx])
        } else {
            String::new()
        };
        let mut features: Vec<&'static str> = FEATURES
            .iter()
            .filter(|f| available(f.leaf) && reg(&cpu.cpuid(f.leaf, 0), f.reg) >> f.bit & 1 == 1)
            .map(|f| f.name)
            .collect();
        if available(LEAF_TDX) {
            let r = cpu.cpuid(LEAF_TDX, 0);
            if register_text(&[r.ebx, r.edx, r.ecx]) == "IntelTDX    " {
                features.push("tdx-guest");
            }
        }
        CpuSummary {
            vendor: register_text(&[leaf0.ebx, leaf0.edx, leaf0.ecx]),
            family,
            model,
            stepping,
            brand,
            hypervisor,
            features,
            apic_id: (leaf1.ebx >> 24) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::MsrError;

    /// A CPU answering from a table (leaf -> registers), zeros elsewhere.
    struct TableCpu(Vec<(u32, CpuidResult)>);
    impl Cpu for TableCpu {
        fn cpuid(&self, leaf: u32, _: u32) -> CpuidResult {
            self.0
                .iter()
                .find(|(l, _)| *l == leaf)
                .map(|(_, r)| *r)
                .unwrap_or_default()
        }
        fn read_msr(&self, _: u32) -> Result<u64, MsrError> {
            Err(MsrError::GeneralProtection)
        }
        fn write_msr(&self, _: u32, _: u64) -> Result<(), MsrError> {
            Err(MsrError::GeneralProtection)
        }
    }

    fn regs(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
        CpuidResult { eax, ebx, ecx, edx }
    }

    fn text(s: &[u8; 12]) -> [u32; 3] {
        let w = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
        [w(0), w(4), w(8)]
    }

    #[test]
    fn decodes_a_kvm_guest() {
        let [b, d, c] = text(b"GenuineIntel");
        let [hb, hc, hd] = text(b"KVMKVMKVM\0\0\0");
        let cpu = TableCpu(vec![
            (0, regs(0xd, b, c, d)),
            // Family 6, model 0x55 (ext 5, base 5), stepping 7; APIC id 3.
            (
                1,
                regs(0x0005_0657, 3 << 24, (1 << 31) | (1 << 20) | (1 << 21), 0),
            ),
            (7, regs(0, 1 << 5, 0, 0)),
            (LEAF_HYPERVISOR, regs(0x4000_0001, hb, hc, hd)),
            (LEAF_EXT_MAX, regs(0x8000_0008, 0, 0, 0)),
            (LEAF_POWER, regs(0, 0, 0, 1 << 8)),
        ]);
        let s = CpuSummary::read(&cpu);
        assert_eq!(s.vendor, "GenuineIntel");
        assert_eq!((s.family, s.model, s.stepping), (6, 0x55, 7));
        assert_eq!(s.hypervisor, "KVMKVMKVM");
        assert_eq!(s.features, ["sse4.2", "x2apic", "avx2", "invariant-tsc"]);
        assert_eq!(s.apic_id, 3);
        // Leaf 0x8000_001f is above the maximum: its (zero) answer is not even asked.
        assert!(!s.features.contains(&"sev"));
    }

    #[test]
    fn amd_extended_family() {
        assert_eq!(family_model_stepping(0x00a2_0f12), (0x19, 0x21, 2));
    }
}
