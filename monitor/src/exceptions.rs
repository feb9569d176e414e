//! CPU exceptions: a register dump, then back to the prompt (or halt outside a command).
//!
//! Stable Rust has no `x86-interrupt` ABI, so each vector gets a small assembly stub that
//! pushes a uniform frame (vector, error code, general registers) and calls
//! [`exception_dispatch`]. A fault while a guarded command runs resumes the REPL through
//! [`crate::guard`]; anywhere else the monitor halts after the dump. Two vectors differ: an
//! NMI is reported and returns with IRET (`nmi`), and a machine check is reported, cleared
//! and aborts the command, or returns at the prompt when restartable (`mce`).

use core::arch::{asm, global_asm};
use core::fmt::Write;

use evidence::Fault;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use crate::console::Screen;
use crate::{guard, serial, vga};

/// IST slot used for double faults, so a blown stack still gets a dump.
const DOUBLE_FAULT_IST: u16 = 0;
const IST_STACK_BYTES: usize = 16 * 1024;
const NMI: u64 = 2;
const DOUBLE_FAULT: u64 = 8;
const MACHINE_CHECK: u64 = 18;
const PAGE_FAULT: u64 = 14;
/// #VC, raised only in SEV-ES/SEV-SNP guests.
const VMM_COMMUNICATION: u64 = 29;
/// #VE, raised in TDX guests (and by EPT-violation #VE, which no hypervisor enables for us).
const VIRTUALIZATION: u64 = 20;

/// Registers as the stubs leave them on the stack (lowest address first).
#[repr(C)]
pub struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    // Pushed by the CPU.
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

macro_rules! stubs {
    ($($vector:literal $kind:ident),* $(,)?) => {
        global_asm!(
            $(
                concat!(".global exception_stub_", $vector),
                concat!("exception_stub_", $vector, ":"),
                stubs!(@push $kind),
                concat!("    pushq $", $vector),
                "    jmp exception_common",
            )*
            ".section .rodata",
            ".balign 8",
            ".global exception_stub_table",
            "exception_stub_table:",
            $( concat!("    .quad exception_stub_", $vector), )*
            ".text",
            options(att_syntax)
        );
    };
    (@push code) => { "" };
    (@push none) => { "    pushq $0" };
}

// Vectors 8, 10-14, 17, 21, 29, 30 push an error code; the stub pushes 0 for the rest.
stubs!(
    0 none, 1 none, 2 none, 3 none, 4 none, 5 none, 6 none, 7 none,
    8 code, 9 none, 10 code, 11 code, 12 code, 13 code, 14 code, 15 none,
    16 none, 17 code, 18 none, 19 none, 20 none, 21 code, 22 none, 23 none,
    24 none, 25 none, 26 none, 27 none, 28 none, 29 code, 30 code, 31 none,
);

global_asm!(
    r#"
    .text
exception_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    /* The CPU aligned the stack to 16 before its pushes; 22 quadwords keep it aligned. */
    call exception_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static exception_stub_table: [u64; 32];
}

pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide-error",
        1 => "debug",
        2 => "nmi",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound-range",
        6 => "invalid-opcode",
        7 => "device-not-available",
        8 => "double-fault",
        10 => "invalid-tss",
        11 => "segment-not-present",
        12 => "stack-segment-fault",
        13 => "general-protection",
        14 => "page-fault",
        16 => "x87-floating-point",
        17 => "alignment-check",
        18 => "machine-check",
        19 => "simd-floating-point",
        20 => "virtualization",
        21 => "control-protection",
        29 => "vmm-communication",
        _ => "reserved",
    }
}

fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects; we run at CPL 0.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

#[unsafe(no_mangle)]
extern "C" fn exception_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        // Report and return (the stub's IRET re-enables NMIs): the interrupted code goes
        // on, so nothing it holds may be force-unlocked here.
        NMI => return crate::nmi::handle(frame.rip, guard::armed()),
        MACHINE_CHECK => return machine_check(frame),
        _ => {}
    }
    // A refused RDMSR/WRMSR is an error value, not a fault (monitor/src/cpu.rs).
    if crate::cpu::msr_fixup(frame.vector, &mut frame.rip) {
        return;
    }
    // Whatever held the console locks was interrupted for good (or is this handler).
    serial::unlock_after_fault();
    vga::unlock_after_fault();
    // Recording the fault allocates; the faulting code may have held the heap lock.
    crate::heap::after_fault();
    // A stack overflow arrives as a double fault (the page fault on the guard page could
    // not push its frame on the same stack): CR2 still holds the guard address then, the
    // one useful fact about it. CR2 may also be left over from an earlier page fault (e.g.
    // `peek` of the guard), hence only "probably" in the dump.
    let cr2 = read_cr2();
    let address = match frame.vector {
        PAGE_FAULT => cr2,
        DOUBLE_FAULT if crate::boot::in_stack_guard(cr2) => cr2,
        _ => 0,
    };
    let armed = guard::armed();
    dump(frame, address, armed);
    if frame.vector == VMM_COMMUNICATION {
        // Only an SEV-ES/SNP guest raises #VC (for CPUID, MSRs, port I/O...): a confidential
        // VM, which this monitor does not support (drivers::cpu::confidential).
        crate::halt_with(
            "confidential-vm-unsupported: #VC (SEV-ES/SEV-SNP guest); this monitor has no \
             GHCB handler; halted",
        );
    }
    if frame.vector == VIRTUALIZATION {
        // #VE: a TDX guest's port I/O, MMIO or CPUID the TDX module hands to the guest. The
        // monitor has no TDCALL path: a confidential VM it does not support.
        crate::halt_with(
            "confidential-vm-unsupported: #VE (TDX guest); this monitor has no TDCALL \
             handler; halted",
        );
    }
    if !armed {
        crate::halt_with("fault outside a command; halted");
    }
    guard::resume_with(Fault {
        exception: exception_name(frame.vector).into(),
        vector: frame.vector as u8,
        rip: frame.rip,
        error_code: frame.error_code,
        address,
        recovered: true,
    })
}

/// #MC: inside a command, abort it like a fault (code `machine-check`); at the prompt,
/// carry on if the CPU says the interrupted code can restart (RIPV), else halt.
fn machine_check(frame: &TrapFrame) {
    let armed = guard::armed();
    if armed {
        // The command is abandoned: its locks are free for the report and the recovery.
        serial::unlock_after_fault();
        vga::unlock_after_fault();
    }
    let restartable = crate::mce::handle(frame.rip, armed);
    if armed {
        crate::heap::after_fault();
        dump(frame, 0, true);
        guard::resume_with(Fault {
            exception: exception_name(frame.vector).into(),
            vector: frame.vector as u8,
            rip: frame.rip,
            error_code: frame.error_code,
            address: 0,
            recovered: true,
        })
    }
    if !restartable {
        serial::unlock_after_fault();
        vga::unlock_after_fault();
        crate::halt_with("machine check outside a command and not restartable (RIPV clear)");
    }
}

fn dump(frame: &TrapFrame, address: u64, armed: bool) {
    let mut out = Screen;
    let _ = write!(
        out,
        "\r\n*** CPU exception {} ({}), error code {:#x}\r\n\
         rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}\r\n",
        frame.vector,
        exception_name(frame.vector),
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
    );
    if frame.vector == PAGE_FAULT {
        let _ = write!(
            out,
            "cr2 {address:#018x} ({}, {}{})\r\n",
            if frame.error_code & 1 != 0 {
                "protection violation"
            } else {
                "not present"
            },
            if frame.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if frame.error_code & 16 != 0 {
                ", instruction fetch"
            } else {
                ""
            },
        );
    }
    if frame.vector == DOUBLE_FAULT && address != 0 {
        let _ = write!(
            out,
            "cr2 {address:#018x} is in the stack guard page: probably a stack overflow\r\n"
        );
    }
    let _ = write!(
        out,
        "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\r\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\r\n\
         r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\r\n\
         r13 {:#018x} r14 {:#018x} r15 {:#018x}\r\n{}\r\n",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        if armed {
            "the running command is aborted"
        } else {
            "not inside a command"
        },
    );
}

struct Tables {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static TABLES: Once<Tables> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Loads our GDT (with a TSS for the double-fault stack) and the IDT.
pub fn init() {
    let tss = TSS.call_once(|| {
        let stack: &'static mut [u8] = alloc::vec![0u8; IST_STACK_BYTES].leak();
        let top = VirtAddr::from_ptr(stack.as_ptr_range().end).align_down(16u64);
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = top;
        tss
    });
    let tables = TABLES.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        Tables {
            gdt,
            code,
            data,
            tss,
        }
    });
    tables.gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which lives forever.
    unsafe {
        CS::set_reg(tables.code);
        SS::set_reg(tables.data);
        DS::set_reg(tables.data);
        ES::set_reg(tables.data);
        load_tss(tables.tss);
    }

    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: the table is filled by the assembly above with the 32 stub addresses.
        let stub = |vector: usize| VirtAddr::new(unsafe { exception_stub_table[vector] });
        // SAFETY (all entries): each stub saves the full frame and either returns with
        // iretq or resumes a guarded call; the error-code vectors get error-code stubs.
        unsafe {
            idt.divide_error.set_handler_addr(stub(0));
            idt.debug.set_handler_addr(stub(1));
            idt.non_maskable_interrupt.set_handler_addr(stub(2));
            idt.breakpoint.set_handler_addr(stub(3));
            idt.overflow.set_handler_addr(stub(4));
            idt.bound_range_exceeded.set_handler_addr(stub(5));
            idt.invalid_opcode.set_handler_addr(stub(6));
            idt.device_not_available.set_handler_addr(stub(7));
            idt.double_fault
                .set_handler_addr(stub(8))
                .set_stack_index(DOUBLE_FAULT_IST);
            idt.invalid_tss.set_handler_addr(stub(10));
            idt.segment_not_present.set_handler_addr(stub(11));
            idt.stack_segment_fault.set_handler_addr(stub(12));
            idt.general_protection_fault.set_handler_addr(stub(13));
            idt.page_fault.set_handler_addr(stub(14));
            idt.x87_floating_point.set_handler_addr(stub(16));
            idt.alignment_check.set_handler_addr(stub(17));
            idt.machine_check.set_handler_addr(stub(18));
            idt.simd_floating_point.set_handler_addr(stub(19));
            idt.virtualization.set_handler_addr(stub(20));
            idt.cp_protection_exception.set_handler_addr(stub(21));
            idt.hv_injection_exception.set_handler_addr(stub(28));
            idt.vmm_communication_exception.set_handler_addr(stub(29));
            idt.security_exception.set_handler_addr(stub(30));
        }
        idt
    });
    idt.load();
}
