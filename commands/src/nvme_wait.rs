//! What `nvme` commands say about waits that ended badly: the `--timeout` option of
//! `nvme read`, the error text after the driver recovered (or could not recover) the
//! controller, and quarantine releases. Pure helpers, kept apart from the handlers in
//! nvme.rs; the driver does the recovering (drivers/src/nvme/controller.rs `recover`).

use alloc::format;
use core::fmt::Write;

use drivers::nvme::{NvmeError, QuarantineRelease, State, IO_TIMEOUT_US};
use evidence::Body;

use crate::args::{parse_number, Args};
use crate::output::Output;
use crate::table::CmdError;

/// The longest `--timeout` accepted. Policy: one day, effectively "wait for Persistent Disk"
/// while every wait still keeps a deadline.
pub const MAX_READ_TIMEOUT_MS: u64 = 86_400_000;

/// Help text for `nvme read --timeout` (the default is the driver's `IO_TIMEOUT_US`).
pub const READ_TIMEOUT_HELP: &str = "per-command deadline in ms (default 30000, Linux's; \
     Persistent Disk may stall longer: raise it; max 86400000)";

/// The per-command deadline `nvme read` asked for, in µs.
pub fn read_timeout_us(args: &Args) -> Result<u64, CmdError> {
    let Some(text) = args.value("--timeout") else {
        return Ok(IO_TIMEOUT_US);
    };
    let ms = parse_number("--timeout", text)?;
    if ms == 0 || ms > MAX_READ_TIMEOUT_MS {
        return Err(CmdError::new(
            "bad-argument",
            format!("--timeout {ms} is not between 1 and {MAX_READ_TIMEOUT_MS} ms"),
        ));
    }
    Ok(ms * 1000)
}

/// The result of a failed NVMe operation, saying what state the controller is left in.
pub fn error_after(err: NvmeError, state: State) -> CmdError {
    let mut message = format!("{err}");
    if err.poisons_controller() {
        message.push_str(match state {
            State::Ready => {
                "; the controller was reset and its queues re-created (or every command \
                 drained): retry without a teardown"
            }
            State::Failed => {
                "; the controller did not confirm a reset and is marked failed, run \
                 'teardown nvme'"
            }
        });
    }
    CmdError::new(err.code(), message)
}

/// One human line and one `dma.released` frame per release.
pub fn report_releases(out: &mut Output, releases: &[QuarantineRelease]) {
    for release in releases {
        let _ = writeln!(
            out,
            "dma: released {} quarantined allocations ({} pages) of {}: {}",
            release.allocations, release.pages, release.owner, release.after
        );
        out.frame(Body::DmaReleased(frame(release)));
    }
}

pub fn frame(release: &QuarantineRelease) -> evidence::DmaReleased {
    evidence::DmaReleased {
        owner: release.owner.clone(),
        allocations: release.allocations as u32,
        pages: release.pages,
        after: release.after.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::nvme::Wait;

    #[test]
    fn the_message_says_whether_a_retry_works() {
        let err = NvmeError::Timeout {
            wait: Wait::Read,
            after_us: 1_000_000,
        };
        let ready = error_after(err.clone(), State::Ready);
        assert_eq!(ready.code, "nvme-timeout");
        assert!(ready.message.contains("retry without a teardown"));
        let failed = error_after(err, State::Failed);
        assert!(failed.message.contains("run 'teardown nvme'"));
        let plain = error_after(NvmeError::ZeroCount, State::Ready);
        assert_eq!(plain.message, "count must be at least 1");
    }

    #[test]
    fn release_frame_carries_the_ledger_owner() {
        let release = QuarantineRelease {
            owner: "nvme 00:04.0".into(),
            allocations: 5,
            pages: 7,
            after: "reset confirmed at bind (CSTS.RDY 1 -> 0)",
        };
        let f = frame(&release);
        assert_eq!(
            (f.owner.as_str(), f.allocations, f.pages),
            ("nvme 00:04.0", 5, 7)
        );
        assert!(f.after.contains("bind"));
    }
}
