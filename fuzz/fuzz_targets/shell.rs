//! Arbitrary bytes as serial input lines into the real shell on a machine with no devices:
//! nothing may panic, and every non-empty line gets exactly one result frame.
#![no_main]

use std::cell::Cell;
use std::sync::OnceLock;

use commands::Shell;
use drivers::dma::testing::leaked_pool;
use drivers::dma::DmaPool;
use drivers::platform::Hw;
use evidence::Body;
use libfuzzer_sys::fuzz_target;

#[path = "../../commands/tests/support/bare_machine.rs"]
mod bare_machine;
#[path = "../../commands/tests/support/fake_firmware.rs"]
#[allow(dead_code)]
mod fake_firmware;
use bare_machine::{
    system_info, Captured, FakeCpu, FakePorts, NoMmio, NoPci, SmallMemory, StepClock,
};

const POOL_BASE: u64 = 0x10_0000;
const POOL_BYTES: usize = 4 * 4096;

/// One leaked backing region for the whole process (a fresh one per input would grow the
/// fuzzer's memory until it reports an out-of-memory).
fn pool() -> DmaPool {
    static MEMORY: OnceLock<usize> = OnceLock::new();
    let host = *MEMORY.get_or_init(|| leaked_pool(POOL_BASE, POOL_BYTES).1 as usize);
    // SAFETY: `host` is POOL_BYTES of leaked, page-aligned memory that only this pool uses;
    // inputs run one at a time and each run's pool is dropped before the next is built.
    unsafe { DmaPool::new(POOL_BASE, host as *mut u8, POOL_BYTES) }
}

/// QEMU-like ACPI tables and memory map, built once (the toolbox's `acpi`/`memmap`).
fn firmware() -> &'static fake_firmware::FakeFirmware {
    static FIRMWARE: OnceLock<fake_firmware::FakeFirmware> = OnceLock::new();
    FIRMWARE.get_or_init(|| fake_firmware::FakeFirmware::qemu(4))
}

fuzz_target!(|data: &[u8]| {
    let mut pool = pool();
    let clock = StepClock(Cell::new(0));
    let mut mmio = NoMmio;
    let (memory, cpu, ports) = (
        SmallMemory::default(),
        FakeCpu::default(),
        FakePorts::default(),
    );
    let mut hw = Hw {
        config: &NoPci,
        mmio: &mut mmio,
        clock: &clock,
        dma: &mut pool,
        memory: &memory,
        cpu: &cpu,
        ports: &ports,
        firmware: firmware(),
        irq: &drivers::platform::NoInterrupts,
    };
    let mut shell = Shell::new(1, system_info(POOL_BYTES as u64));
    let mut console = Captured::default();
    let text = String::from_utf8_lossy(data);
    let mut commands = 0;
    for line in text.split(['\r', '\n']) {
        if !line.trim().is_empty() {
            commands += 1;
        }
        shell.execute(line, &mut hw, &mut console, || 0);
    }
    let results = console
        .0
        .lines()
        .filter_map(|l| evidence::decode_line(l).ok())
        .filter(|f| matches!(f.body, Body::CommandResult(_)))
        .count();
    assert_eq!(results, commands);
});
