//! The read-eval-print core: turns one input line into one command run, framed by a start
//! frame and exactly one result frame.

use alloc::string::String;
use core::fmt::Write;

use drivers::cpu::confidential::ConfidentialKind;
use drivers::platform::Hw;
use evidence::{Body, CommandResult, CommandStart, Fault, Firmware, Outcome};

use crate::args::{split_line, Args};
use crate::output::{Console, FrameCounter, Output};
use crate::table::{hands_memory_to_device, lookup, CmdError, CommandSpec, Ctx};

/// Facts about this boot, filled in by the monitor.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    pub version: &'static str,
    pub build: &'static str,
    pub firmware: Firmware,
    pub memory_bytes: u64,
    pub cmdline: String,
    pub dma_base: u64,
    pub dma_bytes: u64,
    /// Monitor entry to first prompt, µs.
    pub boot_us: u64,
    /// SEV/SEV-ES/SEV-SNP/TDX guest (`drivers::cpu::confidential::detect`): if not
    /// `None`, every command that hands memory to a device is refused.
    pub confidential: ConfidentialKind,
    /// The TSC frequency the monitor calibrated (0 when unknown).
    pub tsc_hz: u64,
    /// The SHA-256 engine this CPU gets (`drivers::digest::sha256_path`), for the banner.
    pub sha256_path: drivers::digest::Sha256Path,
    /// How the TSC rate was chosen: source, every reading, the cross-check.
    pub tsc: drivers::clock::Calibration,
}

impl SystemInfo {
    pub fn firmware_name(&self) -> &'static str {
        match self.firmware {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
            Firmware::Unknown => "unknown",
        }
    }

    /// The banner frame body (at boot and from `version`).
    pub fn banner(&self) -> evidence::Banner {
        evidence::Banner {
            format_version: evidence::FORMAT_VERSION,
            version: self.version.into(),
            build: self.build.into(),
            firmware: self.firmware,
            memory_bytes: self.memory_bytes,
            dma_base: self.dma_base,
            dma_bytes: self.dma_bytes,
            cmdline: self.cmdline.chars().take(128).collect(),
            boot_us: self.boot_us,
            confidential: self.confidential.name().into(),
            sha256_path: self.sha256_path.name().into(),
            tsc_hz: self.tsc_hz,
            tsc_source: self.tsc.source_name().into(),
            tsc_disagreement_ppm: self.tsc.max_disagreement_ppm(),
        }
    }

    /// One human line about a confidential VM, or `None` on an ordinary machine.
    pub fn confidential_note(&self) -> Option<String> {
        self.confidential.is_confidential().then(|| {
            alloc::format!(
                "confidential VM ({}): device DMA into private memory is not supported; \
                 commands that hand memory to a device are refused (confidential-vm-unsupported)",
                self.confidential.name()
            )
        })
    }
}

/// The error every device-memory command gets on a confidential VM.
fn confidential_refusal(info: &SystemInfo, spec: Option<&CommandSpec>) -> CmdError {
    let what = spec.map_or("this command", |spec| spec.name);
    CmdError::new(
        "confidential-vm-unsupported",
        alloc::format!(
            "{what} would hand memory to a device, but this is a confidential VM ({}): \
             devices cannot DMA into its private memory and the bounce pool is not shared",
            info.confidential.name()
        ),
    )
}

/// The bound devices; `teardown` walks this in reverse bring-up order.
#[derive(Default)]
pub struct DeviceState {
    pub nvme: crate::nvme::NvmeState,
    pub gvnic: crate::gvnic::GvnicState,
    /// The lease of `gvnic dhcp` (cmd/net.rs).
    pub net: crate::cmd::net::NetState,
    /// The user's own `mem map` / `bar map` windows (cmd/windows.rs).
    pub windows: crate::cmd::windows::UserWindows,
}

/// Platform events that happen between or during commands (an NMI, a machine check),
/// reported by the platform's handlers and turned into frames by the shell at the next safe
/// point: right after a command's start frame (events at the prompt), before its result
/// (events during it), or with the fault that aborted it. A handler never writes a frame
/// itself, so it cannot split a frame line that was being written when it struck.
pub trait Events {
    /// Takes the events not reported yet, each as a human line and a frame body.
    fn take(&self) -> alloc::vec::Vec<(String, Body)>;
}

/// What the monitor must do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// The user asked for a machine reset (devices are already torn down).
    Reset,
}

pub const PROMPT: &str = "bringup> ";

/// The longest command line echoed into a start frame; frames must stay small.
const START_LINE_MAX: usize = 96;

pub struct Shell {
    info: SystemInfo,
    counter: FrameCounter,
    commands_run: u32,
    devices: DeviceState,
    /// Set while a command runs, so a fault handler knows which command to fail.
    running: Option<(u32, u64)>,
    events: Option<&'static dyn Events>,
    /// Set by [`Shell::refuse_all_but_reset`]: why nothing but `reset` may run.
    only_reset: Option<&'static str>,
}

impl Shell {
    pub fn new(boot_id: u64, info: SystemInfo) -> Self {
        Shell {
            info,
            counter: FrameCounter {
                boot_id,
                next_seq: 0,
            },
            commands_run: 0,
            devices: DeviceState::default(),
            running: None,
            events: None,
            only_reset: None,
        }
    }

    /// From now on every command but `reset` fails with `heap-poisoned`: the monitor's heap
    /// was interrupted mid-update and only a reset makes it whole (`why` says what
    /// happened). The refusal and `reset` itself run on the monitor's reserve heap.
    pub fn refuse_all_but_reset(&mut self, why: &'static str) {
        self.only_reset = Some(why);
    }

    /// Where platform events come from (the monitor's NMI and machine-check handlers).
    pub fn set_events(&mut self, events: &'static dyn Events) {
        self.events = Some(events);
    }

    pub fn info(&self) -> &SystemInfo {
        &self.info
    }

    /// The boot banner: human lines, then the banner frame.
    pub fn banner(&mut self, console: &mut dyn Console) {
        let info = &self.info;
        let boot_id = self.counter.boot_id;
        let mut out = Output::new(console, &mut self.counter, 0);
        let firmware = info.firmware_name();
        let _ = write!(
            out,
            "\nbringup monitor {} ({})\nfirmware: {firmware}, memory: {} MiB, DMA pool: {} KiB at {:#x}\n\
             boot id {:016x}; type 'help' for commands\n",
            info.version,
            info.build,
            info.memory_bytes >> 20,
            info.dma_bytes >> 10,
            info.dma_base,
            boot_id,
        );
        if let Some(note) = info.confidential_note() {
            let _ = writeln!(out, "warning: {note}");
        }
        out.frame(Body::Banner(info.banner()));
    }

    /// Runs one input line. Empty lines do nothing (no frames).
    pub fn execute(
        &mut self,
        line: &str,
        hw: &mut Hw,
        console: &mut dyn Console,
        now_us: impl Fn() -> u64,
    ) -> Action {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Action::Continue;
        }
        self.commands_run = self.commands_run.wrapping_add(1);
        let cmd = self.commands_run;
        let started = now_us();
        self.running = Some((cmd, started));
        let mut out = Output::new(console, &mut self.counter, cmd);
        out.frame(Body::CommandStart(CommandStart {
            line: trimmed.chars().take(START_LINE_MAX).collect(),
        }));
        report_events(&mut out, self.events);
        let mut action = Action::Continue;
        let confidential = self.info.confidential.is_confidential();
        if confidential {
            // Fail closed: no command, however it reaches the pool, gets device memory.
            hw.dma.refuse_all();
        }
        let result = match split_line(trimmed) {
            Err(err) => Err(err),
            Ok(words) => match lookup(&words) {
                Err(err) => Err(err),
                Ok((spec, used)) => match Args::parse(spec, &words[used..]) {
                    Err(err) => Err(err),
                    Ok(_) if self.only_reset.is_some() && spec.name != "reset" => {
                        Err(CmdError::new(
                            "heap-poisoned",
                            alloc::format!(
                                "{}: only 'reset' runs now",
                                self.only_reset.unwrap_or_default()
                            ),
                        ))
                    }
                    Ok(_) if confidential && hands_memory_to_device(spec) => {
                        Err(confidential_refusal(&self.info, Some(spec)))
                    }
                    Ok(args) => {
                        if spec.name == "reset" {
                            action = Action::Reset;
                        }
                        let refusals = hw.dma.refusals();
                        let mut ctx = Ctx {
                            hw,
                            out,
                            devices: &mut self.devices,
                            info: &self.info,
                        };
                        let result = (spec.run)(&mut ctx, &args);
                        out = ctx.out;
                        // The pool's backstop: whatever error the driver made of a refused
                        // allocation, the command failed because this is a confidential VM.
                        match result {
                            Err(_) if ctx.hw.dma.refusals() != refusals => {
                                Err(confidential_refusal(&self.info, Some(spec)))
                            }
                            other => other,
                        }
                    }
                },
            },
        };
        if result.is_err() {
            action = Action::Continue;
        }
        report_events(&mut out, self.events);
        finish(&mut out, result, now_us().saturating_sub(started));
        self.running = None;
        action
    }

    /// Fails a line the console could not take whole (longer than the editor allows, or
    /// input dropped past its budget): nothing runs, but the host still sees one command
    /// with a start frame and exactly one error result, like any other refusal.
    pub fn refuse(&mut self, line: &str, error: CmdError, console: &mut dyn Console) {
        self.commands_run = self.commands_run.wrapping_add(1);
        let cmd = self.commands_run;
        let mut out = Output::new(console, &mut self.counter, cmd);
        out.frame(Body::CommandStart(CommandStart {
            line: line.trim().chars().take(START_LINE_MAX).collect(),
        }));
        finish(&mut out, Err(error), 0);
    }

    /// Called by the monitor's exception path when a CPU fault aborted the running command:
    /// reports the fault and fails that command, so the host still sees one result frame.
    pub fn command_faulted(&mut self, console: &mut dyn Console, fault: Fault, now_us: u64) {
        let (cmd, started) = self.running.take().unwrap_or((0, now_us));
        let mut out = Output::new(console, &mut self.counter, cmd);
        let mut message = alloc::format!(
            "{} at rip {:#x} aborted the command",
            fault.exception,
            fault.rip
        );
        if let Some(why) = self.only_reset {
            message.push_str(&alloc::format!("; {why}: only 'reset' runs now"));
        }
        // A machine check is the hardware's error, not the command's: its own code.
        let code = if fault.vector == MACHINE_CHECK_VECTOR {
            "machine-check"
        } else {
            "cpu-fault"
        };
        report_events(&mut out, self.events);
        out.frame(Body::Fault(fault));
        if cmd != 0 {
            finish(
                &mut out,
                Err(CmdError::new(code, message)),
                now_us.saturating_sub(started),
            );
        }
    }

    /// Tears down every bound device (used before a reset and by `teardown all`).
    pub fn devices(&mut self) -> &mut DeviceState {
        &mut self.devices
    }
}

/// #MC.
const MACHINE_CHECK_VECTOR: u8 = 18;

fn report_events(out: &mut Output, events: Option<&dyn Events>) {
    let Some(events) = events else {
        return;
    };
    for (line, body) in events.take() {
        out.finish_line();
        out.print(&line);
        out.print("\n");
        out.frame(body);
    }
}

fn finish(out: &mut Output, result: Result<(), CmdError>, elapsed_us: u64) {
    out.finish_line();
    let outcome = match result {
        Ok(()) => Outcome::Ok,
        Err(err) => {
            out.print(&alloc::format!("error: {}\n", err.message));
            Outcome::Error {
                code: err.code.into(),
                message: err.message,
            }
        }
    };
    out.frame(Body::CommandResult(CommandResult {
        outcome,
        elapsed_us,
    }));
}
