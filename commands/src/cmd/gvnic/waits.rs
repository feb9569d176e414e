//! `--irq` on the gVNIC data-path commands (`gvnic txdhcp`, `dhcp`, `ping`, `http`,
//! `metadata`): start the driver's interrupt waits on the bound NIC, and at the end say how
//! the completions were waited for, how many interrupts were taken, and that the MSI-X
//! state is back (one line and one `gvnic.waits` frame, also when the command failed).

use alloc::string::String;
use core::fmt::Write;

use drivers::gvnic::irq_wait::IrqWaitReport;
use drivers::gvnic::Gvnic;
use drivers::platform::{Bdf, Hw, MsiMessage};
use evidence::Body;

use crate::table::{CmdError, Ctx, Flag};

pub(crate) const IRQ_FLAG: Flag = Flag {
    name: "--irq",
    takes_value: false,
    help: "wait for TX and RX completions by interrupt (both notification blocks routed to the \
           boot CPU for the command, restored after) instead of polling; a machine that does \
           not deliver device interrupts fails with irq-not-delivered",
};

/// A live `--irq` session.
pub(crate) struct Started {
    bdf: Bdf,
    vector: u8,
    message: MsiMessage,
}

/// Starts interrupt waits on `nic` (queues up).
pub(crate) fn begin(bdf: Bdf, nic: &mut Gvnic, hw: &Hw) -> Result<Started, CmdError> {
    let (vector, message) = nic
        .begin_irq_waits(hw.config, hw.irq)
        .map_err(|err| super::driver_error(bdf, err))?;
    Ok(Started {
        bdf,
        vector,
        message,
    })
}

/// Ends the session, reports it, and returns the command's result (or the restore error
/// when the command itself succeeded).
pub(crate) fn finish<T>(
    ctx: &mut Ctx,
    started: Option<Started>,
    command: &str,
    result: Result<T, CmdError>,
) -> Result<T, CmdError> {
    let Some(started) = started else {
        return result;
    };
    let ended = match ctx.devices.gvnic.bound.as_mut() {
        Some(bound) => {
            bound
                .nic
                .end_irq_waits(ctx.hw.config, ctx.hw.irq, started.vector, started.message)
        }
        None => {
            ctx.hw.irq.disarm();
            return result;
        }
    };
    let error = result.as_ref().err().map_or("", |e| e.code);
    match ended {
        Ok(report) => {
            ctx.out.print(&waits_text(started.bdf, &report));
            ctx.out.frame(Body::GvnicWaits(waits_frame(
                started.bdf,
                command,
                &report,
                error,
            )));
            result
        }
        Err(err) => result.and(Err(super::driver_error(started.bdf, err))),
    }
}

/// The human line (pure).
pub fn waits_text(bdf: Bdf, r: &IrqWaitReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "gvnic {bdf}: completions waited for by interrupt: {} interrupt(s) on vector {:#04x} \
         (MSI-X entries {} and {}, TX and RX blocks; {} on other vectors); {}",
        r.interrupts,
        r.vector,
        r.entries[0],
        r.entries[1],
        r.other,
        if r.restored {
            "MSI-X entries, control word and command register restored"
        } else {
            "the device reset meanwhile: nothing of ours left to restore"
        }
    );
    text
}

/// The `gvnic.waits` frame (pure).
pub fn waits_frame(
    bdf: Bdf,
    command: &str,
    r: &IrqWaitReport,
    error: &str,
) -> evidence::GvnicWaits {
    evidence::GvnicWaits {
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
        command: String::from(command),
        mode: String::from("irq"),
        vector: r.vector,
        address: r.message.address,
        data: r.message.data,
        entries: r.entries.to_vec(),
        interrupts: r.interrupts,
        other: r.other,
        restored: r.restored,
        error: String::from(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_and_frame_say_interrupts_and_restore() {
        let report = IrqWaitReport {
            vector: 0x41,
            message: MsiMessage {
                address: 0xfee0_0000,
                data: 0x41,
            },
            entries: [0, 1],
            interrupts: 3,
            other: 0,
            restored: true,
        };
        let bdf = Bdf::new(0, 4, 0);
        let text = waits_text(bdf, &report);
        assert!(
            text.contains("by interrupt: 3 interrupt(s) on vector 0x41 (MSI-X entries 0 and 1"),
            "{text}"
        );
        assert!(text.contains("restored"), "{text}");
        let frame = waits_frame(bdf, "gvnic dhcp", &report, "");
        assert_eq!(
            (
                frame.mode.as_str(),
                frame.interrupts,
                frame.entries.as_slice()
            ),
            ("irq", 3, &[0u16, 1][..])
        );
        assert!(frame.restored);
    }
}
