//! The processor seam (`Cpu`) and I/O ports (`PortIo`) on bare metal.
//!
//! CPUID is always safe to execute in long mode. RDMSR/WRMSR of an MSR the CPU (or the
//! hypervisor) does not implement raise #GP; inside a command the guard turns that into a
//! `cpu-fault` result, so a refused MSR never takes the monitor down.

use drivers::platform::{Cpu, CpuidResult, MsrError, PortIo};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

pub struct BareCpu;

impl Cpu for BareCpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        // CPUID exists on every x86_64 CPU and has no side effects (safe since Rust 1.87).
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    fn read_msr(&self, index: u32) -> Result<u64, MsrError> {
        // SAFETY: reading an MSR has no memory-safety effect; an unimplemented one raises
        // #GP, which the guarded command runner recovers from.
        Ok(unsafe { Msr::new(index).read() })
    }

    fn write_msr(&self, index: u32, value: u64) -> Result<(), MsrError> {
        // SAFETY: the user asked for this write (a debug monitor's right); a refused one
        // raises #GP, which the guarded command runner recovers from.
        unsafe { Msr::new(index).write(value) };
        Ok(())
    }
}

pub struct BarePorts;

impl PortIo for BarePorts {
    fn in8(&self, port: u16) -> u8 {
        // SAFETY: port reads cannot break memory safety; device side effects are the user's.
        unsafe { Port::<u8>::new(port).read() }
    }
    fn in16(&self, port: u16) -> u16 {
        // SAFETY: as in8.
        unsafe { Port::<u16>::new(port).read() }
    }
    fn in32(&self, port: u16) -> u32 {
        // SAFETY: as in8.
        unsafe { Port::<u32>::new(port).read() }
    }
    fn out8(&self, port: u16, value: u8) {
        // SAFETY: as in8.
        unsafe { Port::<u8>::new(port).write(value) }
    }
    fn out16(&self, port: u16, value: u16) {
        // SAFETY: as in8.
        unsafe { Port::<u16>::new(port).write(value) }
    }
    fn out32(&self, port: u16, value: u32) {
        // SAFETY: as in8.
        unsafe { Port::<u32>::new(port).write(value) }
    }
}
