//! `sleep`: wait a given time at the monitor (scripts pace a device; tests hold a command
//! open to deliver an NMI or a machine check while one runs). Ctrl-C ends it early.

use core::fmt::Write;

use drivers::platform::{wait_for, WaitError};

use crate::args::{parse_number, Args};
use crate::table::{CmdError, CommandSpec, Ctx};

/// Longest sleep: a minute (policy: scripts that want more can repeat it).
const SLEEP_MAX_MS: u64 = 60_000;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "sleep",
    usage: "sleep <ms>",
    summary: "wait <ms> milliseconds (Ctrl-C ends it early)",
    details: "Waits 1..=60000 ms on the monitor's clock, through the same deadline helper every \
              driver wait uses, so Ctrl-C aborts it with an 'interrupted' error.",
    examples: &["sleep 500"],
    min_args: 1,
    max_args: 1,
    flags: &[],
    run: sleep,
}];

fn sleep(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let ms = parse_number("ms", args.get(0).unwrap_or(""))?;
    if ms == 0 || ms > SLEEP_MAX_MS {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("ms must be 1..={SLEEP_MAX_MS}, got {ms}"),
        ));
    }
    let start = ctx.hw.clock.now_us();
    match wait_for(ctx.hw.clock, ms * 1000, || None::<()>) {
        Err(WaitError::Interrupted) => Err(CmdError::new(
            "interrupted",
            alloc::format!(
                "sleep interrupted after {} ms",
                ctx.hw.clock.now_us().saturating_sub(start) / 1000
            ),
        )),
        Ok(()) | Err(WaitError::TimedOut) => {
            let _ = writeln!(
                ctx.out,
                "slept {} ms",
                ctx.hw.clock.now_us().saturating_sub(start) / 1000
            );
            Ok(())
        }
    }
}
