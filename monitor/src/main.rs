//! The bringup monitor: boots from GRUB (multiboot2), brings up paging, heap, exceptions
//! and the console, reserves the DMA bounce pool, then runs the command shell on COM1.
//!
//! This crate is glue: the platform traits of `drivers` implemented on real hardware, and
//! the read-eval-print loop. Command logic lives in `commands`, device logic in `drivers`.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi_tables;
mod boot;
mod bootinfo;
mod clock;
mod console;
mod cpu;
mod editor_io;
mod events;
mod exceptions;
mod firmware;
mod guard;
mod heap;
mod irq;
mod keyboard;
mod mce;
mod memory;
mod mmio;
mod nmi;
mod pci_config;
mod platform_info;
mod reset;
mod serial;
mod sse;
mod vga;

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::Write;

use commands::{Action, Shell, SystemInfo};
use drivers::dma::DmaPool;
use drivers::platform::{Clock, ConfigSpace, Hw};

use crate::clock::TscClock;
use crate::console::{Input, LineReader, Screen};
use monitor::cmdline;
use monitor::input::Refusal;
use monitor::layout::{self, Region};

/// Prints `why` and stops the CPU for good.
pub fn halt_with(why: &str) -> ! {
    serial::unlock_after_fault();
    vga::unlock_after_fault();
    let mut out = Screen;
    let _ = write!(out, "\r\nbringup: {why}\r\n");
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    serial::unlock_after_fault();
    vga::unlock_after_fault();
    heap::after_fault();
    let mut out = Screen;
    let _ = write!(out, "\r\n*** panic: {info}\r\n");
    // A panic inside a command aborts that command like a CPU fault would.
    guard::abort_guarded("panic");
    halt_with("panic outside a command; halted")
}

#[unsafe(no_mangle)]
extern "C" fn kmain(magic: u32, info: u32) -> ! {
    let entry_tsc = TscClock::raw_tsc();
    // Before anything can go deep into the stack: from here an overflow faults.
    let stack_guard = boot::install_stack_guard();
    let serial_ok = serial::init();

    // SAFETY: `info` is what GRUB passed in EBX, identity mapped by the trampoline.
    let facts = match unsafe { bootinfo::parse(magic, info as u64) } {
        Ok(facts) => facts,
        Err(err) => halt_with(&fmt_small(format_args!("bad boot information: {err:?}"))),
    };
    let (kernel_start, kernel_end) = boot::kernel_range();
    let kernel = Region {
        start: kernel_start,
        end: kernel_end,
    };
    let dma_arg = cmdline::dma_size_arg(&facts.cmdline);
    let dma_wanted = match dma_arg {
        Some(Ok(bytes)) => bytes,
        _ => layout::DMA_DEFAULT,
    };
    let Some(plan) = layout::plan(&facts.available, &[kernel, facts.info_range], dma_wanted) else {
        halt_with("not enough memory below 4 GiB for the heap and the DMA pool")
    };
    // SAFETY: the layout chose free RAM below 4 GiB, clear of the image and boot info.
    unsafe { heap::init(plan.heap) };
    // RAM write-back, nothing else (monitor::identity): before any MMIO is mapped uncached.
    boot::restrict_identity_map(monitor::identity::plan(
        &facts.areas,
        &[
            (kernel_start, kernel_end),
            (facts.info_range.start, facts.info_range.end),
        ],
    ));
    exceptions::init();
    let machine_checks = mce::enable();
    // Before any command: the SHA-NI digest uses XMM registers (sse.rs has the state rule).
    sse::enable();

    // SAFETY: the boot page tables are identity mapped and only the window edits them.
    let mut mmio = Box::new(unsafe { mmio::MmioWindow::new() });
    let boot_firmware = firmware::BootFirmware {
        rsdp: facts.rsdp,
        map: facts.map.clone(),
        placement: drivers::platform::Placement {
            image: kernel.start..kernel.end,
            stack: {
                let bottom = stack_guard + boot::GUARD_BYTES;
                bottom..bottom + boot::STACK_BYTES as u64
            },
            heap: plan.heap.start..plan.heap.end,
            dma: plan.dma.start..plan.dma.end,
        },
    };
    // After the MMIO window (the HPET is mapped through it) and the firmware seam (the
    // FADT names the PM timer, the HPET table the HPET).
    let (clock, tsc) = TscClock::calibrate(
        entry_tsc,
        clock::Platform {
            cpu: &cpu::BareCpu,
            ports: &cpu::BarePorts,
            firmware: &boot_firmware,
            mmio: mmio.as_mut(),
        },
    );
    let acpi = facts.rsdp.and_then(acpi_tables::discover);
    let ecam = acpi
        .as_ref()
        .and_then(|facts| pci_config::EcamConfig::new(mmio.as_mut(), &facts.ecam));
    let config_desc = match &ecam {
        Some(ecam) => {
            let mut text = String::from("ECAM");
            for range in ecam.ranges() {
                let _ = write!(
                    text,
                    " {:#x} (buses {:02x}-{:02x})",
                    range.base, range.bus_start, range.bus_end
                );
            }
            text
        }
        None => String::from("legacy ports 0xcf8/0xcfc"),
    };
    let config: Box<dyn ConfigSpace> = match ecam {
        Some(ecam) => Box::new(ecam),
        None => Box::new(pci_config::LegacyConfig::new()),
    };

    let dma_bytes = plan.dma.end - plan.dma.start;
    // SAFETY: the pool region is identity mapped RAM reserved for it alone by the layout.
    let mut pool = unsafe {
        DmaPool::new(
            plan.dma.start,
            plan.dma.start as *mut u8,
            dma_bytes as usize,
        )
    };

    let vga_on = facts.firmware == evidence::Firmware::Bios && vga::init(config.as_ref());
    let keyboard_on = keyboard::init();
    let mut reader = LineReader::new();

    // Before any command can hand the pool to a device (facts in drivers::cpu::confidential;
    // SEV_STATUS is only read where CPUID says it exists, so this cannot #GP).
    let confidential = drivers::cpu::confidential::detect(&cpu::BareCpu);
    let boot_id = platform_info::boot_id();
    let info = SystemInfo {
        version: env!("CARGO_PKG_VERSION"),
        build: env!("BRINGUP_BUILD"),
        firmware: facts.firmware,
        memory_bytes: facts.memory_bytes,
        cmdline: String::from(facts.cmdline.as_str()),
        dma_base: plan.dma.start,
        dma_bytes,
        boot_us: clock.now_us(),
        confidential,
        tsc_hz: clock.tsc_hz(),
        tsc: tsc.clone(),
        // The engine `nvme read` will pick (the same CPUID test), for the boot banner.
        sha256_path: drivers::digest::sha256_path(&cpu::BareCpu),
    };
    let mut shell = Shell::new(boot_id, info);
    shell.set_events(&events::PlatformEvents);
    let mut screen = Screen;
    shell.banner(&mut screen);
    let (heap_start, heap_end, heap_state) = heap::describe();
    let _ = write!(
        screen,
        "platform: pci config via {config_desc}; {}; heap {} MiB, \
         main {heap_start:#x}..{heap_end:#x} + 1 MiB reserve, allocator state at {heap_state:#x}; \
         stack {} KiB, stack guard {stack_guard:#x}; console serial{}{}{}; machine checks {}\r\n",
        tsc.summary(),
        (plan.heap.end - plan.heap.start) >> 20,
        boot::STACK_BYTES >> 10,
        if serial_ok { "" } else { " (no UART found)" },
        if vga_on { " + vga" } else { "" },
        if keyboard_on { " + ps/2 keyboard" } else { "" },
        if machine_checks {
            "reported"
        } else {
            "unsupported (no CPUID MCE)"
        },
    );
    if plan.dma_shrunk {
        let _ = write!(
            screen,
            "warning: DMA pool shrunk to {} KiB (asked {} KiB): memory is short\r\n",
            dma_bytes >> 10,
            dma_wanted >> 10
        );
    }
    if let Some(Err(())) = dma_arg {
        let _ = write!(
            screen,
            "warning: ignored unparsable dma= on the command line (use e.g. dma=16M)\r\n"
        );
    }

    let peek = memory::Peek;
    let apic = irq::ApicIrq::new(&clock, mmio.as_mut());
    loop {
        let line = match reader.read_line(commands::shell::PROMPT) {
            Input::Line(line) => line,
            Input::Refused(line, why) => {
                shell.refuse(&line, refusal_error(why), &mut screen);
                continue;
            }
            Input::Cancelled => continue,
        };
        serial::clear_interrupt();
        let mut action = Action::Continue;
        let outcome = guard::run_guarded(|| {
            let mut hw = Hw {
                config: config.as_ref(),
                mmio: mmio.as_mut(),
                clock: &clock,
                dma: &mut pool,
                memory: &peek,
                cpu: &cpu::BareCpu,
                ports: &cpu::BarePorts,
                firmware: &boot_firmware,
                irq: &apic,
            };
            action = shell.execute(&line, &mut hw, &mut Screen, || clock.now_us());
        });
        // Interrupts stay off outside `irq test`, whatever ended the command (a fault
        // longjmps past its own disarm).
        drivers::platform::Interrupts::disarm(&apic);
        if let Err(fault) = outcome {
            heap::after_fault();
            if heap::poisoned() {
                shell.refuse_all_but_reset(
                    "the fault struck inside the heap allocator, whose free list may be \
                     half-updated: the heap is abandoned (reserve in use)",
                );
            }
            shell.command_faulted(&mut screen, fault, clock.now_us());
            action = Action::Continue;
        }
        // A Ctrl-C that arrived during the command was for the command: do not let it
        // cancel the next line too.
        serial::clear_interrupt();
        if action == Action::Reset {
            reset::reset_machine(&clock);
        }
    }
}

/// Why the console refused a line, as the command error the host sees.
fn refusal_error(why: Refusal) -> commands::CmdError {
    match why {
        Refusal::TooLong { bytes } => commands::CmdError::new(
            "line-too-long",
            alloc::format!(
                "line too long ({bytes} bytes, max {})",
                monitor::input::LINE_LIMIT
            ),
        ),
        Refusal::InputDropped => commands::CmdError::new(
            "line-too-long",
            alloc::format!(
                "more than {} bytes typed on one line: input was dropped, so the line is refused",
                monitor::input::INPUT_BUDGET
            ),
        ),
    }
}

/// Formats into a fixed buffer (usable before the heap exists).
fn fmt_small(args: core::fmt::Arguments) -> heapless::String<128> {
    let mut text = heapless::String::new();
    let _ = text.write_fmt(args);
    text
}
