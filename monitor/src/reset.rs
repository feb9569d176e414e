//! Machine reset: the keyboard controller's reset line, then a triple fault.

use drivers::platform::{wait_for, Clock};
use x86_64::instructions::port::Port;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const KBC_STATUS: u16 = 0x64;
const KBC_COMMAND: u16 = 0x64;
const KBC_INPUT_FULL: u8 = 1 << 1;
/// 8042 command: pulse output line 0 (the CPU reset line) low.
const KBC_PULSE_RESET: u8 = 0xfe;
const KBC_READY_TIMEOUT_US: u64 = 100_000;
/// How long the reset pulse gets to take effect before the fallback.
const RESET_SETTLE_US: u64 = 500_000;

pub fn reset_machine(clock: &dyn Clock) -> ! {
    let mut status: Port<u8> = Port::new(KBC_STATUS);
    let mut command: Port<u8> = Port::new(KBC_COMMAND);
    // SAFETY: the 8042 status read has no side effects.
    let ready = wait_for(clock, KBC_READY_TIMEOUT_US, || {
        (unsafe { status.read() } & KBC_INPUT_FULL == 0).then_some(())
    });
    if ready.is_ok() {
        // SAFETY: 0xFE to the 8042 command port resets the machine; that is the point.
        unsafe { command.write(KBC_PULSE_RESET) };
        let deadline = clock.now_us() + RESET_SETTLE_US;
        while clock.now_us() < deadline {
            core::hint::spin_loop();
        }
    }
    // No 8042 (or it ignored us): an empty IDT turns the next exception into a triple
    // fault, which resets the CPU.
    let empty = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // SAFETY: deliberately breaking the IDT; nothing runs after the breakpoint below.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    loop {
        x86_64::instructions::hlt();
    }
}
