//! The `Interrupts` seam on bare metal: the boot CPU's local APIC, an IDT of our own for
//! the duration of `irq test`, and a counter.
//!
//! Interrupts are off in the monitor. `arm` masks the legacy PIC (its IRQ0 would arrive as
//! vector 8 under SeaBIOS's base: a "double fault") and the local APIC's own sources (LVT
//! timer, thermal, perf, LINT0, LINT1, error), sets TPR 0 and APIC software-enable, loads
//! an IDT whose vectors 32..255 all lead to one counting handler (entries 0..31 are copied
//! from the exception IDT), and only then executes STI. `disarm` does CLI and undoes all of
//! it. Facts: Intel SDM vol. 3A ch. 10/11 (xAPIC register offsets, LVT mask bit 16, EOI,
//! MSI address 0xFEE0_0000 | dest << 12, data = vector for fixed edge delivery; x2APIC MSRs
//! 0x800 + offset / 16).

use core::arch::global_asm;
use core::cell::Cell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use drivers::cpu::msr::{ApicBase, IA32_APIC_BASE};
use drivers::platform::{
    Clock, Cpu, Delivery, Interrupts, IrqError, MmioMapper, MsiMessage, RegisterWindow,
};
use x86_64::instructions::port::Port;
use x86_64::instructions::tables::{lidt, sidt};
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use crate::clock::TscClock;
use crate::cpu::BareCpu;

/// The vector `irq test` routes MSI-X to (policy: high priority class, nothing else uses it).
pub const TEST_VECTOR: u8 = 0xe0;
/// The APIC spurious vector we program while armed (no EOI for it).
const SPURIOUS_VECTOR: u8 = 0xff;
const FIRST_EXTERNAL: usize = 32;
const STUB_BYTES: u64 = 16;

const TPR: u32 = 0x80;
const EOI: u32 = 0xb0;
const SVR: u32 = 0xf0;
const SVR_ENABLE: u32 = 1 << 8;
/// LVT registers: timer, thermal, perf, LINT0, LINT1, error.
const LVTS: [u32; 6] = [0x320, 0x330, 0x340, 0x350, 0x360, 0x370];
const LVT_MASKED: u32 = 1 << 16;
const X2APIC_MSR_BASE: u32 = 0x800;
/// 8259 PIC data (mask) ports, master and slave.
const PIC_MASKS: [u16; 2] = [0x21, 0xa1];
const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;
const MSI_DEST_SHIFT: u32 = 12;

// One stub per vector 32..255, each 16-byte aligned so its address is computable:
// push the vector number, jump to the common part.
global_asm!(
    r#"
    .text
    .balign 16
    .global irq_stub_base
irq_stub_base:
    .set irq_vec, 32
    .rept 224
    .balign 16
    pushq $irq_vec
    jmp irq_common
    .set irq_vec, irq_vec + 1
    .endr

irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq 72(%rsp), %rdi
    cld
    /* CPU frame (5) + vector + 9 saved = 15 quadwords: realign to 16 for the call. */
    subq $8, %rsp
    call irq_dispatch
    addq $8, %rsp
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static irq_stub_base: u8;
}

static COUNT: AtomicU32 = AtomicU32::new(0);
static OTHER: AtomicU32 = AtomicU32::new(0);
static FIRST_TSC: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU8 = AtomicU8::new(TEST_VECTOR);
/// Virtual address of the xAPIC EOI register, or 0 in x2APIC mode (EOI by MSR).
static EOI_MMIO: AtomicU64 = AtomicU64::new(0);

#[unsafe(no_mangle)]
extern "C" fn irq_dispatch(vector: u64) {
    if vector as u8 == TARGET.load(Ordering::Relaxed) {
        if COUNT.fetch_add(1, Ordering::Relaxed) == 0 {
            FIRST_TSC.store(TscClock::raw_tsc(), Ordering::Relaxed);
        }
    } else {
        OTHER.fetch_add(1, Ordering::Relaxed);
    }
    if vector as u8 == SPURIOUS_VECTOR {
        return;
    }
    match EOI_MMIO.load(Ordering::Relaxed) {
        0 => {
            let _ = BareCpu.write_msr(X2APIC_MSR_BASE + EOI / 16, 0);
        }
        // SAFETY: the uncached mapping of this CPU's local APIC page made by `ApicIrq::new`.
        eoi => unsafe { (eoi as *mut u32).write_volatile(0) },
    }
}

/// One IDT gate (16 bytes), as the CPU reads it.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Gate([u64; 2]);

const IDT_ENTRIES: usize = 256;

#[repr(C, align(4096))]
struct Idt([Gate; IDT_ENTRIES]);

static mut IRQ_IDT: Idt = Idt([Gate([0; 2]); IDT_ENTRIES]);

/// An interrupt gate to `handler` with code selector `cs` (present, DPL 0, type 0xE).
fn gate(handler: u64, cs: u16) -> Gate {
    let low =
        (handler & 0xffff) | (cs as u64) << 16 | 0x8e00u64 << 32 | (handler >> 16 & 0xffff) << 48;
    Gate([low, handler >> 32])
}

/// What `arm` changed, to put back.
#[derive(Clone, Copy)]
struct Saved {
    idt: DescriptorTablePointer,
    pic: [u8; 2],
    lvts: [u32; 6],
    tpr: u32,
    svr: u32,
}

pub struct ApicIrq<'a> {
    clock: &'a TscClock,
    /// The xAPIC page, mapped uncached (None: no local APIC found, or x2APIC mode).
    mmio: Option<alloc::boxed::Box<dyn RegisterWindow>>,
    present: bool,
    saved: Cell<Option<Saved>>,
}

impl<'a> ApicIrq<'a> {
    /// Finds the boot CPU's local APIC (IA32_APIC_BASE) and maps its page uncached.
    pub fn new(clock: &'a TscClock, mapper: &mut dyn MmioMapper) -> ApicIrq<'a> {
        let base = BareCpu.read_msr(IA32_APIC_BASE).map(ApicBase::from_raw);
        // x2APIC mode: registers are MSRs (mmio None, EOI_MMIO 0).
        let (present, mmio) = match base {
            Ok(b) if b.enabled && b.x2apic => (true, None),
            Ok(b) if b.enabled => match mapper.map(b.address, 0x1000) {
                Ok(m) => {
                    EOI_MMIO.store(m.window + EOI as u64, Ordering::Relaxed);
                    (true, Some(m.regs))
                }
                Err(_) => (false, None),
            },
            _ => (false, None),
        };
        ApicIrq {
            clock,
            mmio,
            present,
            saved: Cell::new(None),
        }
    }

    fn read(&self, reg: u32) -> u32 {
        match &self.mmio {
            Some(regs) => regs.read32(reg as usize),
            None => BareCpu.read_msr(X2APIC_MSR_BASE + reg / 16).unwrap_or(0) as u32,
        }
    }

    fn write(&self, reg: u32, value: u32) {
        match &self.mmio {
            Some(regs) => regs.write32(reg as usize, value),
            None => {
                let _ = BareCpu.write_msr(X2APIC_MSR_BASE + reg / 16, value as u64);
            }
        }
    }
}

impl Interrupts for ApicIrq<'_> {
    fn arm(&self) -> Result<(MsiMessage, u8), IrqError> {
        if !self.present {
            return Err(IrqError::Unsupported);
        }
        self.disarm();
        let idt = sidt();
        let pic = PIC_MASKS.map(|port| {
            // SAFETY: the 8259 mask registers; reading them has no side effect.
            unsafe { Port::<u8>::new(port).read() }
        });
        let saved = Saved {
            idt,
            pic,
            lvts: LVTS.map(|r| self.read(r)),
            tpr: self.read(TPR),
            svr: self.read(SVR),
        };
        for port in PIC_MASKS {
            // SAFETY: masking every 8259 line; restored by disarm.
            unsafe { Port::<u8>::new(port).write(0xff) };
        }
        for (reg, value) in LVTS.iter().zip(saved.lvts) {
            self.write(*reg, value | LVT_MASKED);
        }
        self.write(TPR, 0);
        self.write(
            SVR,
            (saved.svr & !0xff) | SVR_ENABLE | SPURIOUS_VECTOR as u32,
        );
        COUNT.store(0, Ordering::Relaxed);
        OTHER.store(0, Ordering::Relaxed);
        FIRST_TSC.store(0, Ordering::Relaxed);
        TARGET.store(TEST_VECTOR, Ordering::Relaxed);
        let cs = {
            use x86_64::instructions::segmentation::{Segment, CS};
            CS::get_reg().0
        };
        let stubs = &raw const irq_stub_base as u64;
        // SAFETY: interrupts are off and this IDT is not loaded yet; the exception gates
        // are copied from the live IDT (its limit says how many it has).
        unsafe {
            let gates = (&raw mut IRQ_IDT).cast::<Gate>();
            let current = idt.base.as_ptr::<Gate>();
            let live = (idt.limit as usize + 1) / 16;
            for v in 0..IDT_ENTRIES {
                let entry = if v < FIRST_EXTERNAL {
                    if v < live {
                        current.add(v).read()
                    } else {
                        Gate([0; 2])
                    }
                } else {
                    gate(stubs + (v - FIRST_EXTERNAL) as u64 * STUB_BYTES, cs)
                };
                gates.add(v).write(entry);
            }
            lidt(&DescriptorTablePointer {
                limit: (core::mem::size_of::<Idt>() - 1) as u16,
                base: VirtAddr::new(gates as u64),
            });
        }
        self.saved.set(Some(saved));
        x86_64::instructions::interrupts::enable();
        let apic_id = (BareCpu.cpuid(1, 0).ebx >> 24) as u64;
        let message = MsiMessage {
            address: MSI_ADDRESS_BASE | apic_id << MSI_DEST_SHIFT,
            data: TEST_VECTOR as u32,
        };
        Ok((message, TEST_VECTOR))
    }

    fn delivery(&self) -> Delivery {
        let count = COUNT.load(Ordering::Relaxed);
        let first = FIRST_TSC.load(Ordering::Relaxed);
        let first_us = if count == 0 {
            0
        } else {
            let ago_ticks = TscClock::raw_tsc().saturating_sub(first);
            let ago_us =
                (ago_ticks as u128 * 1_000_000 / self.clock.tsc_hz().max(1) as u128) as u64;
            self.clock.now_us().saturating_sub(ago_us)
        };
        Delivery {
            count,
            first_us,
            other: OTHER.load(Ordering::Relaxed),
        }
    }

    fn disarm(&self) {
        x86_64::instructions::interrupts::disable();
        let Some(saved) = self.saved.take() else {
            return;
        };
        // SAFETY: the IDT that was live before `arm`, still in place (it is static).
        unsafe { lidt(&saved.idt) };
        for (reg, value) in LVTS.iter().zip(saved.lvts) {
            self.write(*reg, value);
        }
        self.write(TPR, saved.tpr);
        self.write(SVR, saved.svr);
        for (port, mask) in PIC_MASKS.iter().zip(saved.pic) {
            // SAFETY: restoring the 8259 masks read in `arm`.
            unsafe { Port::<u8>::new(*port).write(mask) };
        }
    }
}
