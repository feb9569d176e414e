//! The processor: pure decoders of what CPUID and MSRs answer, run through the
//! [`crate::platform::Cpu`] seam so host tests inject the values a real (or confidential)
//! CPU would answer.
//!
//! - [`confidential`]: is this an SEV, SEV-ES, SEV-SNP or TDX guest?
//! - [`cpuid`], [`msr`]: decoders for the `cpuid`, `cpu` and `msr` commands.

pub mod confidential;
pub mod cpuid;
pub mod msr;
