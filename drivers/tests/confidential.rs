//! Confidential-VM detection against injected CPUID/MSR values, modelled on what each
//! kind of CPU answers (including #GP for SEV_STATUS where SEV does not exist).

use std::cell::Cell;
use std::collections::HashMap;

use drivers::cpu::confidential::{detect, ConfidentialKind, MSR_SEV_STATUS};
use drivers::platform::{Cpu, CpuidResult, MsrError};

/// A CPU answering from a leaf table. Like hardware, an absent leaf answers zeros and an
/// absent MSR raises #GP; every MSR read is counted so a test can see it was not tried.
struct FakeCpu {
    leaves: HashMap<u32, CpuidResult>,
    msrs: HashMap<u32, u64>,
    msr_reads: Cell<u32>,
    gp_faults: Cell<u32>,
}

impl FakeCpu {
    fn new() -> Self {
        FakeCpu {
            leaves: HashMap::new(),
            msrs: HashMap::new(),
            msr_reads: Cell::new(0),
            gp_faults: Cell::new(0),
        }
    }
    fn leaf(mut self, leaf: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> Self {
        self.leaves.insert(leaf, CpuidResult { eax, ebx, ecx, edx });
        self
    }
    fn msr(mut self, index: u32, value: u64) -> Self {
        self.msrs.insert(index, value);
        self
    }
    /// An AMD EPYC-like guest: max basic leaf 0x10, extended up to 0x8000_0021, SEV
    /// supported, C-bit 51 (EBX), and SEV_STATUS = `status`.
    fn amd_guest(status: Option<u64>) -> Self {
        let cpu = FakeCpu::new()
            .leaf(0, 0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65)
            .leaf(0x8000_0000, 0x8000_0021, 0, 0, 0)
            .leaf(0x8000_001F, 0x0001_000f, 51, 0, 0);
        match status {
            Some(value) => cpu.msr(MSR_SEV_STATUS, value),
            None => cpu,
        }
    }
    fn intel(max_basic: u32) -> Self {
        FakeCpu::new()
            .leaf(0, max_basic, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)
            .leaf(0x8000_0000, 0x8000_0008, 0, 0, 0)
    }
}

impl Cpu for FakeCpu {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
        self.leaves.get(&leaf).copied().unwrap_or_default()
    }
    fn read_msr(&self, index: u32) -> Result<u64, MsrError> {
        self.msr_reads.set(self.msr_reads.get() + 1);
        match self.msrs.get(&index) {
            Some(value) => Ok(*value),
            None => {
                self.gp_faults.set(self.gp_faults.get() + 1);
                Err(MsrError::GeneralProtection)
            }
        }
    }
    fn write_msr(&self, _index: u32, _value: u64) -> Result<(), MsrError> {
        Err(MsrError::GeneralProtection)
    }
}

const TDX_SIG: (u32, u32, u32) = (
    u32::from_le_bytes(*b"Inte"),
    u32::from_le_bytes(*b"lTDX"),
    u32::from_le_bytes(*b"    "),
);

#[test]
fn sev_status_bits_name_the_kind() {
    assert_eq!(detect(&FakeCpu::amd_guest(Some(0))), ConfidentialKind::None);
    assert_eq!(
        detect(&FakeCpu::amd_guest(Some(0b1))),
        ConfidentialKind::Sev
    );
    assert_eq!(
        detect(&FakeCpu::amd_guest(Some(0b11))),
        ConfidentialKind::SevEs
    );
    // SNP implies SEV and SEV-ES active too; the strongest kind is reported.
    assert_eq!(
        detect(&FakeCpu::amd_guest(Some(0b111))),
        ConfidentialKind::SevSnp
    );
    assert_eq!(ConfidentialKind::SevSnp.name(), "sev-snp");
}

#[test]
fn sev_status_is_not_read_where_it_would_fault() {
    // Intel: no leaf 0x8000_001F, so SEV_STATUS (which would #GP) is never touched.
    let intel = FakeCpu::intel(0x16);
    assert_eq!(detect(&intel), ConfidentialKind::None);
    assert_eq!(intel.msr_reads.get(), 0);

    // AMD host CPU with the leaf but without SEV support (EAX bit 1 clear).
    let no_sev = FakeCpu::amd_guest(None).leaf(0x8000_001F, 0x1, 0, 0, 0);
    assert_eq!(detect(&no_sev), ConfidentialKind::None);
    assert_eq!(no_sev.msr_reads.get(), 0);

    // Leaf 0x8000_001F answers, but the max extended leaf says it does not exist.
    let short = FakeCpu::amd_guest(Some(0b1)).leaf(0x8000_0000, 0x8000_0008, 0, 0, 0);
    assert_eq!(detect(&short), ConfidentialKind::None);
    assert_eq!(short.msr_reads.get(), 0);

    // SEV advertised but the hypervisor refuses the MSR: an ordinary guest.
    let refused = FakeCpu::amd_guest(None);
    assert_eq!(detect(&refused), ConfidentialKind::None);
    assert_eq!(refused.gp_faults.get(), 1);
}

#[test]
fn tdx_signature_in_leaf_0x21() {
    let (ebx, edx, ecx) = TDX_SIG;
    let td = FakeCpu::intel(0x23).leaf(0x21, 0, ebx, ecx, edx);
    assert_eq!(detect(&td), ConfidentialKind::Tdx);
    assert_eq!(td.msr_reads.get(), 0);

    // Leaf 0x21 beyond the max basic leaf is not consulted (CPUs answer stale values).
    let stale = FakeCpu::intel(0x20).leaf(0x21, 0, ebx, ecx, edx);
    assert_eq!(detect(&stale), ConfidentialKind::None);

    // The registers in the wrong order are not the signature.
    let swapped = FakeCpu::intel(0x23).leaf(0x21, 0, ebx, edx, ecx);
    assert_eq!(detect(&swapped), ConfidentialKind::None);
}

#[test]
fn the_null_cpu_is_an_ordinary_machine() {
    assert_eq!(detect(&drivers::platform::NullCpu), ConfidentialKind::None);
}
