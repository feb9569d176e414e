//! The processor seam (`Cpu`) and I/O ports (`PortIo`) on bare metal.
//!
//! CPUID is always safe to execute in long mode. RDMSR/WRMSR of an MSR the CPU (or the
//! hypervisor) does not implement raise #GP. The two instructions live in small assembly
//! functions with a fixup each (an exception table of two entries): the #GP handler sees
//! the faulting RIP is one of them, resumes at the fixup, and the function returns "GP".
//! So `msr read` of an invalid MSR is an `MsrError`, not a fault.

use core::arch::global_asm;

use drivers::platform::{Cpu, CpuidResult, MsrError, PortIo};
use x86_64::instructions::port::Port;

const GENERAL_PROTECTION: u64 = 13;

global_asm!(
    r#"
    .text
/* u64 bringup_rdmsr(u32 index, u64 *out): 0 and *out = value, or 1 after a #GP. */
    .global bringup_rdmsr
bringup_rdmsr:
    movl %edi, %ecx
    .global bringup_rdmsr_insn
bringup_rdmsr_insn:
    rdmsr
    shlq $32, %rdx
    movl %eax, %eax
    orq %rdx, %rax
    movq %rax, (%rsi)
    xorl %eax, %eax
    ret
    .global bringup_rdmsr_fixup
bringup_rdmsr_fixup:
    movl $1, %eax
    ret

/* u64 bringup_wrmsr(u32 index, u64 value): 0, or 1 after a #GP (nothing written). */
    .global bringup_wrmsr
bringup_wrmsr:
    movl %edi, %ecx
    movl %esi, %eax
    movq %rsi, %rdx
    shrq $32, %rdx
    .global bringup_wrmsr_insn
bringup_wrmsr_insn:
    wrmsr
    xorl %eax, %eax
    ret
    .global bringup_wrmsr_fixup
bringup_wrmsr_fixup:
    movl $1, %eax
    ret
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn bringup_rdmsr(index: u32, out: *mut u64) -> u64;
    fn bringup_wrmsr(index: u32, value: u64) -> u64;
    static bringup_rdmsr_insn: u8;
    static bringup_rdmsr_fixup: u8;
    static bringup_wrmsr_insn: u8;
    static bringup_wrmsr_fixup: u8;
}

/// Called first by the exception handler: a #GP at one of the two MSR instructions
/// resumes at its fixup (returns true: the handler just returns). Anything else: false.
pub fn msr_fixup(vector: u64, rip: &mut u64) -> bool {
    if vector != GENERAL_PROTECTION {
        return false;
    }
    // Only the addresses of the labels are taken; nothing is read through them.
    let table = [
        (
            &raw const bringup_rdmsr_insn as u64,
            &raw const bringup_rdmsr_fixup as u64,
        ),
        (
            &raw const bringup_wrmsr_insn as u64,
            &raw const bringup_wrmsr_fixup as u64,
        ),
    ];
    match table.iter().find(|(insn, _)| *insn == *rip) {
        Some((_, fixup)) => {
            *rip = *fixup;
            true
        }
        None => false,
    }
}

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
        let mut value = 0u64;
        // SAFETY: the function follows the C ABI (clobbers only rax, rcx, rdx) and writes
        // `value` only; a #GP resumes at its fixup (msr_fixup), which returns 1.
        match unsafe { bringup_rdmsr(index, &mut value) } {
            0 => Ok(value),
            _ => Err(MsrError::GeneralProtection),
        }
    }

    fn write_msr(&self, index: u32, value: u64) -> Result<(), MsrError> {
        // SAFETY: as read_msr. What the write does to the machine is the user's to ask (a
        // debug monitor's right); a refused write raises #GP and changes nothing.
        match unsafe { bringup_wrmsr(index, value) } {
            0 => Ok(()),
            _ => Err(MsrError::GeneralProtection),
        }
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
