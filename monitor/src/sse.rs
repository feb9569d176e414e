//! SSE on, for the one piece of code that uses XMM registers: the SHA-NI compression
//! function in drivers/src/digest/sha256_ni.rs.
//!
//! Without this, any SSE instruction raises #UD (firmware may leave CR4.OSFXSR clear, and
//! multiboot2 promises nothing about it). Set: CR0.MP (WAIT honours TS), CR4.OSFXSR (the OS
//! saves the state with FXSAVE; SSE instructions are legal), CR4.OSXMMEXCPT (SIMD
//! floating-point errors raise #XM instead of #UD). Clear: CR0.EM (no x87 emulation trap)
//! and CR0.TS (no #NM on the first SSE instruction). Intel SDM vol. 3A, 2.5 and 13.1.
//! Every x86_64 CPU has SSE and SSE2, so this is done unconditionally; the SHA extensions
//! themselves are chosen by CPUID (drivers::digest::sha256_path).
//!
//! The state rule, and why the monitor never saves XMM registers:
//! - The monitor is built for `x86_64-unknown-none`, a soft-float target: the compiler never
//!   emits an SSE instruction, so only hand-written assembly touches XMM registers, and today
//!   that is the SHA-NI routine alone.
//! - That routine follows the System V ABI: XMM registers are caller-saved, so its callers
//!   (compiled Rust, which keeps nothing in them) lose nothing.
//! - The monitor runs with interrupts disabled (nothing executes `sti`), so no interrupt
//!   handler can run in the middle of the routine. The exception handlers (exceptions.rs)
//!   are soft-float Rust and assembly stubs that touch no XMM register; a fault inside the
//!   routine aborts the command (guard.rs), and the aborted digest's XMM contents are
//!   garbage nobody reads.
//! - So there is never XMM state to preserve across a handler. Whoever adds an interrupt
//!   handler or other SSE code must keep this true or save the state (FXSAVE) around it.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// MXCSR after reset: all SIMD floating-point exceptions masked, round to nearest (SDM 10.2.3).
static MXCSR_DEFAULT: u32 = 0x1f80;

/// Enables SSE (see the module doc). Call once at boot, before any command runs.
pub fn enable() {
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR);
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    // SAFETY: these bits only change how x87/SSE instructions behave; the compiler emits
    // none of them, and the only assembly that does runs after this (see the module doc).
    // Paging, protection and write-protect bits are kept as read.
    unsafe {
        Cr0::write(cr0);
        Cr4::write(cr4);
        // A known state whatever the firmware left: x87 reset, MXCSR at its power-on value.
        core::arch::asm!("fninit", options(nomem, nostack));
        core::arch::asm!("ldmxcsr [{}]", in(reg) &MXCSR_DEFAULT, options(nostack, readonly));
    }
}
