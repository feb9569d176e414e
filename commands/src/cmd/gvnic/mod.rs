//! `gvnic describe`, `gvnic txdhcp` and the gVNIC half of `teardown` (issue 6).
//!
//! The driver itself lives in `drivers::gvnic`; this module finds the function, maps its
//! BARs, keeps the bound NIC between commands, and turns what the driver reports into
//! human lines and evidence frames. One file per command: `describe.rs` (the renderers,
//! every device option decoded), `txdhcp.rs`, `teardown.rs`, and `irq.rs` (the gVNIC half
//! of `irq test`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::gvnic::{self, Gvnic, GvnicError, QueueFormat, State};
use drivers::pci::msix::{MsixCap, OwnedMsixTable};
use drivers::pci::{self};
use drivers::platform::{Bdf, Hw};
use evidence::Body;

use crate::args::Args;
use crate::core_cmds::report_teardown_step;
use crate::pci::parse_bdf;
use crate::shell::DeviceState;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

mod describe;
pub(crate) mod irq;
mod teardown;
mod txdhcp;
pub(crate) mod waits;

use describe::{describe_frame, describe_text};
pub use teardown::teardown;
use txdhcp::txdhcp;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "gvnic describe",
        usage: "gvnic describe [bdf] [--format F]",
        summary: "bring up a gVNIC's admin queue and show what the device describes",
        details: "Maps BAR0 (registers), BAR1 (MSI-X table) and BAR2 (doorbells) of the Google gVNIC \
                  (1ae0:0042), turns on bus mastering, disables INTx (we poll), resets it unless it already \
                  reads reset, hands it the admin queue (PFN register on PCI revision 0, base/length/RUN on \
                  revision 1) and runs DESCRIBE_DEVICE. Shows the MAC, MTU, queue limits, ring sizes, event \
                  counters, pages per queue page list, the page budget, every device option by name, the queue \
                  formats offered and the one the driver uses (gqi-qpl, gqi-rda, dqo-qpl, dqo-rda in that order \
                  of preference, or --format F; a format the device does not offer is refused naming the \
                  offered ones), and the MSI-X state. The bdf may be omitted when there is exactly one gVNIC. \
                  Emits a gvnic.describe frame. The device stays bound until 'teardown gvnic'.",
        examples: &[
            "gvnic describe",
            "gvnic describe 00:04.0",
            "gvnic describe --format dqo-rda",
        ],
        min_args: 0,
        max_args: 1,
        flags: &[FORMAT_FLAG],
        run: describe,
    },
    CommandSpec {
        name: "gvnic txdhcp",
        usage: "gvnic txdhcp [--timeout MS] [--format F] [--irq]",
        summary: "send a DHCP DISCOVER through the gVNIC and report what comes back",
        details: "Brings the NIC's queues up if they are not (CONFIGURE_DEVICE_RESOURCES with every event \
                  counter; GQI: IRQs masked; DQO: every MSI-X vector at a dummy target in the DMA pool, queue \
                  vectors unmasked, IRQ doorbells re-armed on every poll; page lists for the QPL formats; \
                  CREATE_TX_QUEUE, CREATE_RX_QUEUE, 64 RX buffers posted) in the preferred format or --format F, \
                  drains frames already waiting in the RX ring, builds a DHCP DISCOVER from the device's MAC \
                  with a random xid (broadcast, 0.0.0.0:68 -> 255.255.255.255:67, IPv4 and UDP checksums), sends \
                  it, waits for the TX completion, then waits up to --timeout ms (default 3000) for frames. An \
                  OFFER for our xid is reported with the offered address, server and lease; other frames are \
                  summarised. Emits gvnic.tx and gvnic.rx frames. Ctrl-C stops the wait. With --irq the TX \
                  and RX completions are waited for by interrupt (both notification blocks' MSI-X entries \
                  routed to the boot CPU for the command, everything restored after; a gvnic.waits frame \
                  counts the interrupts); a machine that does not deliver device interrupts (QEMU 7.2's \
                  proxy) fails with irq-not-delivered.",
        examples: &[
            "gvnic txdhcp",
            "gvnic txdhcp --timeout 10000",
            "gvnic txdhcp --format dqo-qpl",
            "gvnic txdhcp --irq",
        ],
        min_args: 0,
        max_args: 0,
        flags: &[
            Flag {
                name: "--timeout",
                takes_value: true,
                help: "how long to wait for a reply, in ms (1..=60000, default 3000)",
            },
            FORMAT_FLAG,
            waits::IRQ_FLAG,
        ],
        run: txdhcp,
    },
];

const FORMAT_FLAG: Flag = Flag {
    name: "--format",
    takes_value: true,
    help: "queue format: gqi-qpl, gqi-rda, dqo-qpl or dqo-rda (default: the first offered, in that order; kept until teardown)",
};

/// The bound gVNIC NIC, if any.
#[derive(Default)]
pub struct GvnicState {
    bound: Option<Bound>,
    /// Transmissions this boot, mixed into the xid seed.
    sent: u64,
}

struct Bound {
    bdf: Bdf,
    nic: Gvnic,
    /// BAR ranges (phys, len) this bind mapped itself; a window the user made with
    /// `bar map` before binding stays theirs.
    mapped: Vec<(u64, u64)>,
    /// INTx-disable as it was before we bound: restored at teardown.
    intx_was_disabled: bool,
}

fn driver_error(bdf: Bdf, err: GvnicError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("gvnic {bdf}: {err}"))
}

/// `--format F`, typed.
fn parse_format(args: &Args) -> Result<Option<QueueFormat>, CmdError> {
    args.value("--format")
        .map(|name| {
            QueueFormat::from_name(name).ok_or_else(|| {
                CmdError::new(
                    "bad-argument",
                    alloc::format!(
                        "--format must be one of gqi-qpl, gqi-rda, dqo-qpl, dqo-rda, got '{name}'"
                    ),
                )
            })
        })
        .transpose()
}

/// The gVNIC functions on the machine, with their PCI revision.
fn gvnics(ctx: &Ctx) -> Vec<(Bdf, u8)> {
    pci::enumerate(ctx.hw.config)
        .into_iter()
        .filter(|f| f.vendor_id == gvnic::VENDOR_ID && f.device_id == gvnic::DEVICE_ID)
        .map(|f| (f.bdf, f.revision))
        .collect()
}

/// Picks the function to use: the one named, the one already bound, or the only one.
/// `None` for the revision means "already bound" (the NIC knows its own).
fn choose(ctx: &Ctx, wanted: Option<Bdf>) -> Result<(Bdf, Option<u8>), CmdError> {
    if let Some(bound) = &ctx.devices.gvnic.bound {
        match wanted {
            None => return Ok((bound.bdf, None)),
            Some(bdf) if bdf == bound.bdf => return Ok((bdf, None)),
            Some(bdf) => {
                return Err(CmdError::new(
                    "gvnic-busy",
                    alloc::format!(
                        "gvnic {} is bound; 'teardown gvnic' before using {bdf}",
                        bound.bdf
                    ),
                ))
            }
        }
    }
    if let Some(bdf) = wanted {
        let function = pci::probe(ctx.hw.config, bdf).ok_or_else(|| {
            CmdError::new(
                "no-such-function",
                alloc::format!("no PCI function at {bdf}"),
            )
        })?;
        if (function.vendor_id, function.device_id) != (gvnic::VENDOR_ID, gvnic::DEVICE_ID) {
            return Err(CmdError::new(
                "not-gvnic",
                alloc::format!(
                    "{bdf} is {:04x}:{:04x}, not a gVNIC ({:04x}:{:04x})",
                    function.vendor_id,
                    function.device_id,
                    gvnic::VENDOR_ID,
                    gvnic::DEVICE_ID
                ),
            ));
        }
        return Ok((bdf, Some(function.revision)));
    }
    let found = gvnics(ctx);
    match found.as_slice() {
        [] => Err(CmdError::new(
            "no-gvnic",
            "no gVNIC (PCI 1ae0:0042) found; 'lspci' lists what there is",
        )),
        [(bdf, revision)] => Ok((*bdf, Some(*revision))),
        several => {
            let list: Vec<String> = several
                .iter()
                .map(|(bdf, _)| alloc::format!("{bdf}"))
                .collect();
            Err(CmdError::new(
                "ambiguous-device",
                alloc::format!(
                    "{} gVNICs found ({}); name one, e.g. 'gvnic describe {}'",
                    several.len(),
                    list.join(", "),
                    list[0]
                ),
            ))
        }
    }
}

/// Makes sure a NIC is bound (BARs mapped, bus mastering on, INTx off: we poll) and
/// returns it with the hardware, split-borrowed.
fn bind<'a, 'h>(
    ctx: &'a mut Ctx<'_, 'h>,
    wanted: Option<Bdf>,
) -> Result<(&'a mut Bound, &'a mut Hw<'h>), CmdError> {
    let (bdf, revision) = choose(ctx, wanted)?;
    if let Some(revision) = revision {
        let mut mapped = Vec::new();
        let mut map = |ctx: &mut Ctx, bar: u8| {
            let (mapping, info) = pci::map_bar(ctx.hw, bdf, bar, true)
                .map_err(|err| CmdError::new(err.code(), alloc::format!("gvnic {bdf}: {err}")))?;
            if mapping.newly_mapped {
                mapped.push((info.address, info.size));
            }
            Ok::<_, CmdError>(mapping.regs)
        };
        let bar0 = map(ctx, gvnic::REGISTER_BAR)?;
        let bar2 = map(ctx, gvnic::DOORBELL_BAR)?;
        // The MSI-X table, if the function has one in a BAR we can map (DQO needs it; a
        // GQI NIC works without).
        let table = match MsixCap::find(ctx.hw.config, bdf) {
            Some(info) => map(ctx, info.table_bar)
                .ok()
                .and_then(|window| OwnedMsixTable::new(window, info)),
            None => None,
        };
        let owner = alloc::format!("gvnic {bdf}");
        let mut nic = Gvnic::new(bar0, bar2, revision, &owner).map_err(|e| driver_error(bdf, e))?;
        if let Some(table) = table {
            nic = nic.with_msix(bdf, table);
        }
        let intx_was_disabled = pci::set_intx_disabled(ctx.hw.config, bdf, true);
        ctx.devices.gvnic.bound = Some(Bound {
            bdf,
            nic,
            mapped,
            intx_was_disabled,
        });
    }
    bound_nic(ctx.devices, ctx.hw)
}

/// The bound NIC and the hardware, borrowed apart from `ctx.out`.
fn bound_nic<'a, 'h>(
    devices: &'a mut DeviceState,
    hw: &'a mut Hw<'h>,
) -> Result<(&'a mut Bound, &'a mut Hw<'h>), CmdError> {
    match devices.gvnic.bound.as_mut() {
        Some(bound) => Ok((bound, hw)),
        None => Err(CmdError::new("gvnic-wrong-state", "no gVNIC is bound")),
    }
}

/// Brings the bound NIC up to `target` in the wanted format, describing what happened.
fn bring_up(
    ctx: &mut Ctx,
    wanted: Option<Bdf>,
    format: Option<QueueFormat>,
    target: State,
) -> Result<Bdf, CmdError> {
    let (bound, hw) = bind(ctx, wanted)?;
    let bdf = bound.bdf;
    // A --format stays asked for until teardown; without one, whatever was asked before.
    let asked = match format {
        Some(format) => bound.nic.want_format(Some(format)),
        None => Ok(()),
    };
    let result = asked.and_then(|()| bound.nic.bring_up(hw.config, hw.clock, hw.dma, target));
    let attempts = bound.nic.last_attempts;
    let state = bound.nic.state();
    report_released_quarantine(ctx);
    match result {
        Ok(()) => {
            if attempts > 1 {
                let _ = writeln!(
                    ctx.out,
                    "gvnic {bdf}: the device reset itself during bring-up; came up on attempt {attempts}"
                );
            }
            Ok(bdf)
        }
        Err(err) => {
            let released = state == State::Unbound && err.needs_reset();
            let mut error = driver_error(bdf, err);
            if released {
                error
                    .message
                    .push_str("; the device was reset and its DMA memory released");
            }
            Err(error)
        }
    }
}

/// A confirmed reset freed what an earlier failure had to quarantine: one line and one
/// `dma.released` frame (as NVMe reports it).
fn report_released_quarantine(ctx: &mut Ctx) {
    let Some(bound) = ctx.devices.gvnic.bound.as_mut() else {
        return;
    };
    let released = bound.nic.take_released_quarantine();
    let owner = String::from(bound.nic.owner());
    report_release(ctx, &owner, released);
}

fn report_release(ctx: &mut Ctx, owner: &str, released: Option<(usize, u32)>) {
    let Some((allocations, pages)) = released else {
        return;
    };
    let after = "the device confirmed a reset (PFN 0 / DEVICE_IS_RESET)";
    let _ = writeln!(
        ctx.out,
        "dma: released {allocations} quarantined allocations ({pages} pages) of {owner}: {after}"
    );
    ctx.out.frame(Body::DmaReleased(evidence::DmaReleased {
        owner: String::from(owner),
        allocations: allocations as u32,
        pages,
        after: String::from(after),
    }));
}

fn describe(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let wanted = args.get(0).map(parse_bdf).transpose()?;
    let format = parse_format(args)?;
    let bdf = bring_up(ctx, wanted, format, State::Described)?;
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    let Some(info) = bound.nic.info() else {
        return Err(CmdError::new(
            "gvnic-wrong-state",
            "described but no descriptor",
        ));
    };
    let msix = bound.nic.msix_report(hw.config);
    let text = describe_text(bdf, info, bound.nic.state(), msix.as_ref());
    let frame = describe_frame(bdf, info, msix.as_ref());
    ctx.out.print(&text);
    ctx.out.frame(Body::GvnicDescriptor(frame));
    Ok(())
}

/// For the network commands (cmd/net.rs): binds the only gVNIC and brings its queues up as
/// `txdhcp` does (in the format chosen before, or the default order), then lends it out with
/// the hardware, borrowed apart from `ctx.out`.
pub(crate) fn nic_up<'a, 'h>(
    ctx: &'a mut Ctx<'_, 'h>,
) -> Result<(Bdf, &'a mut Gvnic, &'a mut drivers::platform::Hw<'h>), CmdError> {
    let was_up = ctx.devices.gvnic.bound.as_ref().map(|b| b.nic.state()) == Some(State::QueuesUp);
    let bdf = bring_up(ctx, None, None, State::QueuesUp)?;
    if !was_up {
        let _ = writeln!(ctx.out, "gvnic {bdf}: queues up");
    }
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    Ok((bdf, &mut bound.nic, hw))
}
