//! Guarded command runs: a fault or panic inside a command returns to the REPL.
//!
//! [`run_guarded`] records the callee-saved registers, stack pointer and return address
//! like `setjmp`; [`resume_with`] (called by the exception handler or the panic handler
//! while a guarded call is live) restores them like `longjmp`, so `run_guarded` returns
//! the fault. The abandoned command's frames are never unwound: its heap allocations leak,
//! which is the price of surviving a wild pointer.

use core::arch::global_asm;

use evidence::Fault;
use spin::Mutex;

/// Callee-saved state of the `run_guarded` call that is armed (see the assembly).
#[repr(C)]
struct JumpBuffer {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rsp: u64,
    rip: u64,
}

#[unsafe(no_mangle)]
static mut GUARD_JUMP_BUFFER: JumpBuffer = JumpBuffer {
    rbx: 0,
    rbp: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
    rsp: 0,
    rip: 0,
};

/// Non-zero while a guarded call runs.
#[unsafe(no_mangle)]
static mut GUARD_ARMED: u64 = 0;

/// The fault that ended the last guarded call.
static LAST_FAULT: Mutex<Option<Fault>> = Mutex::new(None);

global_asm!(
    r#"
    .text
/* u64 run_guarded_raw(void (*f)(void *), void *arg): 0 when f returned, 1 after a fault. */
    .global run_guarded_raw
run_guarded_raw:
    movq %rbx, GUARD_JUMP_BUFFER+0(%rip)
    movq %rbp, GUARD_JUMP_BUFFER+8(%rip)
    movq %r12, GUARD_JUMP_BUFFER+16(%rip)
    movq %r13, GUARD_JUMP_BUFFER+24(%rip)
    movq %r14, GUARD_JUMP_BUFFER+32(%rip)
    movq %r15, GUARD_JUMP_BUFFER+40(%rip)
    leaq 8(%rsp), %rax
    movq %rax, GUARD_JUMP_BUFFER+48(%rip)
    movq (%rsp), %rax
    movq %rax, GUARD_JUMP_BUFFER+56(%rip)
    movq $1, GUARD_ARMED(%rip)
    movq %rdi, %rax
    movq %rsi, %rdi
    subq $8, %rsp
    call *%rax
    addq $8, %rsp
    movq $0, GUARD_ARMED(%rip)
    xorl %eax, %eax
    ret

/* Never returns: resumes the armed run_guarded_raw call, which then returns 1. */
    .global guard_resume
guard_resume:
    movq $0, GUARD_ARMED(%rip)
    movq GUARD_JUMP_BUFFER+0(%rip), %rbx
    movq GUARD_JUMP_BUFFER+8(%rip), %rbp
    movq GUARD_JUMP_BUFFER+16(%rip), %r12
    movq GUARD_JUMP_BUFFER+24(%rip), %r13
    movq GUARD_JUMP_BUFFER+32(%rip), %r14
    movq GUARD_JUMP_BUFFER+40(%rip), %r15
    movq GUARD_JUMP_BUFFER+48(%rip), %rsp
    movl $1, %eax
    jmpq *GUARD_JUMP_BUFFER+56(%rip)
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn run_guarded_raw(f: extern "C" fn(*mut u8), arg: *mut u8) -> u64;
    fn guard_resume() -> !;
}

extern "C" fn call_closure<F: FnMut()>(arg: *mut u8) {
    // SAFETY: `run_guarded` passes a pointer to its own `F`, alive for the whole call.
    let f = unsafe { &mut *(arg as *mut F) };
    f();
}

/// Runs `f`; if a CPU exception happens inside it, returns the fault instead of halting.
pub fn run_guarded<F: FnMut()>(mut f: F) -> Result<(), Fault> {
    *LAST_FAULT.lock() = None;
    // SAFETY: `call_closure::<F>` matches the pointer's type; the assembly preserves every
    // callee-saved register on both return paths, as the C ABI requires.
    let faulted = unsafe { run_guarded_raw(call_closure::<F>, &mut f as *mut F as *mut u8) };
    if faulted == 0 {
        return Ok(());
    }
    // `f` was abandoned mid-flight; forget it rather than run its destructor on state
    // that may be half-updated.
    core::mem::forget(f);
    Err(LAST_FAULT.lock().take().unwrap_or(Fault {
        exception: "unknown".into(),
        vector: 0,
        rip: 0,
        error_code: 0,
        address: 0,
        recovered: true,
    }))
}

/// True while a guarded call runs (a fault now belongs to a command).
pub fn armed() -> bool {
    // SAFETY: single CPU, interrupts off: nothing else touches the flag concurrently.
    unsafe { core::ptr::addr_of!(GUARD_ARMED).read_volatile() != 0 }
}

/// Ends the live guarded call with `fault`. Only call when [`armed`] is true.
pub fn resume_with(fault: Fault) -> ! {
    if LAST_FAULT.is_locked() {
        // SAFETY: the holder (if any) was abandoned by the fault or panic.
        unsafe { LAST_FAULT.force_unlock() };
    }
    *LAST_FAULT.lock() = Some(fault);
    // SAFETY: armed means a run_guarded_raw call is live below us on this stack (or, for a
    // double fault on the IST stack, on the command stack it recorded).
    unsafe { guard_resume() }
}

/// Called by the panic handler: if a guarded command is running, fail it like a fault
/// (returns only when no command is running).
pub fn abort_guarded(what: &str) {
    if !armed() {
        return;
    }
    resume_with(Fault {
        exception: what.into(),
        vector: 0xff,
        rip: 0,
        error_code: 0,
        address: 0,
        recovered: true,
    })
}
