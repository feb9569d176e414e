//! Non-maskable interrupts: count, say so, carry on.
//!
//! GCE's `send-diagnostic-interrupt` (QEMU: QMP `inject-nmi`) delivers an NMI. The CPU blocks
//! further NMIs from the moment it delivers one until the next IRET, so the handler must
//! return with IRET (the exception stub's `iretq`), never resume the REPL by longjmp: that
//! would leave NMIs blocked for the rest of the boot and lose every later one.
//!
//! The handler runs in the middle of arbitrary code, which may hold the console or the
//! heap: it allocates nothing, takes no lock it could wait on, and prints its line only if
//! the console is free. The frame comes later, from the shell at its next safe point
//! ([`commands::Events`]), so it can never split a frame line being written.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use evidence::{Body, Nmi};
use x86_64::instructions::port::Port;

use crate::{serial, vga};

/// System control port B: bit 7 PCI SERR#, bit 6 channel check (IOCHK#) (fact: the PC/AT
/// NMI reason bits; chipsets keep them there).
const PORT_61: u16 = 0x61;

static TOTAL: AtomicU32 = AtomicU32::new(0);
static REPORTED: AtomicU32 = AtomicU32::new(0);
static LAST_RIP: AtomicU64 = AtomicU64::new(0);
static LAST_IN_COMMAND: AtomicBool = AtomicBool::new(false);
static LAST_PORT_61: AtomicU8 = AtomicU8::new(0);

/// Called from the exception dispatcher for vector 2; returns so the stub IRETs.
pub fn handle(rip: u64, in_command: bool) {
    // SAFETY: reading port 0x61 has no side effect (its NMI reason bits are read-only).
    let port_61 = unsafe { Port::<u8>::new(PORT_61).read() };
    LAST_RIP.store(rip, Ordering::SeqCst);
    LAST_IN_COMMAND.store(in_command, Ordering::SeqCst);
    LAST_PORT_61.store(port_61, Ordering::SeqCst);
    TOTAL.fetch_add(1, Ordering::SeqCst);
    // The prompt polls the UART under its lock most of the time: then the line waits for
    // the input loop (`print_deferred`), it is not dropped.
    LINE_PENDING.store(!print_line(), Ordering::SeqCst);
}

/// The handler's line could not be printed (the console was busy).
static LINE_PENDING: AtomicBool = AtomicBool::new(false);

/// Prints the latest NMI's line if the console is free; false if it was busy.
fn print_line() -> bool {
    let mut line: heapless::String<160> = heapless::String::new();
    let in_command = LAST_IN_COMMAND.load(Ordering::SeqCst);
    let _ = write!(
        line,
        "\r\n*** NMI #{} at rip {:#x} ({}; port 0x61 {:#04x}): reported, carrying on\r\n",
        TOTAL.load(Ordering::SeqCst),
        LAST_RIP.load(Ordering::SeqCst),
        if in_command {
            "during a command"
        } else {
            "at the prompt"
        },
        LAST_PORT_61.load(Ordering::SeqCst),
    );
    let printed = serial::try_write(line.as_bytes());
    if printed {
        vga::try_write(line.as_bytes());
    }
    printed
}

/// Called by the input loop while it waits: the line an NMI could not print at once.
pub fn print_deferred() {
    if LINE_PENDING.swap(false, Ordering::SeqCst) && !print_line() {
        LINE_PENDING.store(true, Ordering::SeqCst);
    }
}

/// NMIs not reported yet, as one line and one frame (normal context only).
pub fn take() -> Option<(String, Body)> {
    let total = TOTAL.load(Ordering::SeqCst);
    // An NMI between the load and the swap is counted in TOTAL and reported next time.
    let before = REPORTED.swap(total, Ordering::SeqCst);
    let new = total.wrapping_sub(before);
    if new == 0 {
        return None;
    }
    let nmi = Nmi {
        total,
        new,
        rip: LAST_RIP.load(Ordering::SeqCst),
        in_command: LAST_IN_COMMAND.load(Ordering::SeqCst),
        port_61: LAST_PORT_61.load(Ordering::SeqCst),
    };
    let line = alloc::format!(
        "nmi: {new} since the last report ({total} this boot), latest at rip {:#x} {}",
        nmi.rip,
        if nmi.in_command {
            "during this command"
        } else {
            "at the prompt"
        }
    );
    Some((line, Body::Nmi(nmi)))
}
