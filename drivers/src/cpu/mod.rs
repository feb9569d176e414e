//! The processor: pure decoders of what CPUID and MSRs answer (host-tested); the
//! instructions themselves are behind [`crate::platform::Cpu`].

pub mod cpuid;
pub mod msr;
