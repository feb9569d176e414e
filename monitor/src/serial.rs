//! COM1 at 115200 8N1, polled, with a small receive buffer.
//!
//! Bytes are pulled out of the UART in two places: the line editor (waiting for input) and
//! `Clock::interrupted` (looking for Ctrl-C while a command runs). The latter must not lose
//! what the user typed ahead, so every byte it sees lands in `pending` and the editor reads
//! from there first.

use heapless::Deque;
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3f8;
/// Type-ahead kept while a command runs or output is being sent.
const PENDING_BYTES: usize = 4096;
/// ASCII ETX, what a terminal sends for Ctrl-C.
pub const CTRL_C: u8 = 0x03;

struct Port {
    uart: Option<Uart16550<PioBackend>>,
    pending: Deque<u8, PENDING_BYTES>,
    ctrl_c_seen: bool,
}

static PORT: Mutex<Port> = Mutex::new(Port {
    uart: None,
    pending: Deque::new(),
    ctrl_c_seen: false,
});

/// Programs COM1. Returns false when no UART answers (then output goes nowhere).
pub fn init() -> bool {
    let config = Config {
        baud_rate: uart_16550::BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    // SAFETY: 0x3f8..0x3ff is COM1 on every PC; this module is its only user.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return false;
    };
    if uart.init(config).is_err() {
        return false;
    }
    PORT.lock().uart = Some(uart);
    true
}

/// The UART's receive FIFO depth: while sending a long text, input arriving meanwhile is
/// collected at least this often so the FIFO never overflows.
const FIFO_BYTES: usize = 16;

/// Writes bytes, blocking until the UART took them all.
pub fn write(bytes: &[u8]) {
    send(&mut PORT.lock(), bytes);
}

/// For handlers that interrupt arbitrary code and return to it (NMI, a restartable machine
/// check): writes only if nobody holds the port, since the holder would be the interrupted
/// code and waiting for it would hang. Returns false when the port was busy.
pub fn try_write(bytes: &[u8]) -> bool {
    match PORT.try_lock() {
        Some(mut port) => {
            send(&mut port, bytes);
            true
        }
        None => false,
    }
}

fn send(port: &mut Port, bytes: &[u8]) {
    for chunk in bytes.chunks(FIFO_BYTES) {
        drain(port);
        if let Some(uart) = port.uart.as_mut() {
            uart.send_bytes_exact(chunk);
        }
    }
}

/// Moves whatever the UART holds into the pending buffer.
fn drain(port: &mut Port) {
    let Port {
        uart,
        pending,
        ctrl_c_seen,
    } = port;
    let Some(uart) = uart.as_mut() else {
        return;
    };
    // With the buffer full, bytes stay in the UART: an emulated UART (QEMU) then holds
    // back the sender instead of losing input; a real one overruns, which a flood earns.
    while !pending.is_full() {
        let Ok(byte) = uart.try_receive_byte() else {
            break;
        };
        if byte == CTRL_C {
            *ctrl_c_seen = true;
        }
        let _ = pending.push_back(byte);
    }
}

/// The next received byte, if any.
pub fn read_byte() -> Option<u8> {
    let mut port = PORT.lock();
    if let Some(byte) = port.pending.pop_front() {
        return Some(byte);
    }
    drain(&mut port);
    port.pending.pop_front()
}

/// True once a Ctrl-C arrived since the last `clear_interrupt`. Keeps the other bytes.
pub fn interrupt_requested() -> bool {
    let mut port = PORT.lock();
    drain(&mut port);
    port.ctrl_c_seen
}

/// Forgets an earlier Ctrl-C (called before each command starts), and drops the Ctrl-C
/// bytes themselves from the type-ahead so the editor does not see a stale abort.
pub fn clear_interrupt() {
    let mut port = PORT.lock();
    drain(&mut port);
    if port.ctrl_c_seen {
        port.ctrl_c_seen = false;
        let len = port.pending.len();
        for _ in 0..len {
            if let Some(byte) = port.pending.pop_front() {
                if byte != CTRL_C {
                    let _ = port.pending.push_back(byte);
                }
            }
        }
    }
}

/// Fault path: the lock may be held by the code that faulted. Only used after a fault,
/// when that code will never run again.
pub fn unlock_after_fault() {
    if PORT.is_locked() {
        // SAFETY: single CPU, no interrupts: the holder was the aborted command, which the
        // fault handler has abandoned for good.
        unsafe { PORT.force_unlock() };
    }
}
