//! Pure decoders over the [`crate::platform::Cpu`] seam: they run CPUID/RDMSR through the
//! trait, so host tests inject the values a real (or confidential) CPU would answer.
//!
//! - [`confidential`]: is this an SEV, SEV-ES, SEV-SNP or TDX guest?

pub mod confidential;
