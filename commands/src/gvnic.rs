//! `gvnic describe`, `gvnic txdhcp` and the gVNIC half of `teardown` (issue 6).
//!
//! The driver itself lives in `drivers::gvnic`; this module finds the function, maps its
//! BARs, keeps the bound NIC between commands, and turns what the driver reports into
//! human lines and evidence frames.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::gvnic::{self, DeviceInfo, Gvnic, GvnicError, MsixReport, QueueFormat, State};
use drivers::net::dhcp::{self, Inbound};
use drivers::net::ethernet::mac_string;
use drivers::pci::msix::{MsixCap, OwnedMsixTable};
use drivers::pci::{self};
use drivers::platform::{Bdf, Hw};
use evidence::Body;

use crate::args::Args;
use crate::core_cmds::report_teardown_step;
use crate::pci::parse_bdf;
use crate::shell::DeviceState;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

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
        usage: "gvnic txdhcp [--timeout MS] [--format F]",
        summary: "send a DHCP DISCOVER through the gVNIC and report what comes back",
        details: "Brings the NIC's queues up if they are not (CONFIGURE_DEVICE_RESOURCES with every event \
                  counter; GQI: IRQs masked; DQO: every MSI-X vector at a dummy target in the DMA pool, queue \
                  vectors unmasked, IRQ doorbells re-armed on every poll; page lists for the QPL formats; \
                  CREATE_TX_QUEUE, CREATE_RX_QUEUE, 64 RX buffers posted) in the preferred format or --format F, \
                  drains frames already waiting in the RX ring, builds a DHCP DISCOVER from the device's MAC \
                  with a random xid (broadcast, 0.0.0.0:68 -> 255.255.255.255:67, IPv4 and UDP checksums), sends \
                  it, waits for the TX completion, then waits up to --timeout ms (default 3000) for frames. An \
                  OFFER for our xid is reported with the offered address, server and lease; other frames are \
                  summarised. Emits gvnic.tx and gvnic.rx frames. Ctrl-C stops the wait.",
        examples: &[
            "gvnic txdhcp",
            "gvnic txdhcp --timeout 10000",
            "gvnic txdhcp --format dqo-qpl",
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
        ],
        run: txdhcp,
    },
];

const FORMAT_FLAG: Flag = Flag {
    name: "--format",
    takes_value: true,
    help: "queue format: gqi-qpl, gqi-rda, dqo-qpl or dqo-rda (default: the first offered, in that order; kept until teardown)",
};

const DEFAULT_RX_TIMEOUT_MS: u64 = 3000;
const MAX_RX_TIMEOUT_MS: u64 = 60_000;
/// At most this many non-OFFER frames are reported one by one (serial time is precious).
const MAX_REPORTED_FRAMES: usize = 8;

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

fn format_text(info: &DeviceInfo) -> String {
    match &info.format {
        Ok(format) => String::from(format.name()),
        Err(err) => alloc::format!("none usable: {err}"),
    }
}

/// `gvnic describe`'s human output.
fn describe_text(bdf: Bdf, info: &DeviceInfo, state: State, msix: Option<&MsixReport>) -> String {
    let d = &info.descriptor;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "gVNIC {bdf}: PCI revision {} (admin queue via {}), link {}, state {}",
        info.revision,
        info.aq_mode.name(),
        if info.link_up { "up" } else { "down" },
        state.name()
    );
    let _ = writeln!(text, "  MAC {}  MTU {}", d.mac_string(), d.mtu);
    let _ = writeln!(
        text,
        "  queues: max {} TX / {} RX (default {}); ring sizes {} TX / {} RX entries",
        info.max_tx_queues,
        info.max_rx_queues,
        d.default_num_queues,
        d.tx_queue_entries,
        d.rx_queue_entries
    );
    let _ = writeln!(
        text,
        "  event counters {}; pages per QPL {} TX / {} RX; max registered pages {}; DMA mask {} bits",
        d.counters, d.tx_pages_per_qpl, d.rx_pages_per_qpl, d.max_registered_pages, info.dma_mask_bits
    );
    let _ = writeln!(text, "  device options ({}):", d.options.len());
    for option in &d.options {
        let _ = write!(
            text,
            "    {:<20} id {:#x}, {} bytes",
            option.name(),
            option.id,
            option.length
        );
        if let Some(features) = option.features {
            let _ = write!(text, ", features {features:#x}");
        }
        if option.required_features_mask != 0 {
            let _ = write!(
                text,
                ", REQUIRES {:#x} (ignored)",
                option.required_features_mask
            );
        }
        if option.malformed {
            text.push_str(", MALFORMED (ignored)");
        }
        text.push('\n');
    }
    let offered: Vec<&str> = d.offered_formats().iter().map(|f| f.name()).collect();
    let _ = writeln!(
        text,
        "  queue formats offered: {}",
        if offered.is_empty() {
            String::from("none listed (gqi-qpl assumed)")
        } else {
            offered.join(", ")
        }
    );
    let _ = writeln!(text, "  queue format: {}", format_text(info));
    match msix {
        Some(m) => {
            let _ = writeln!(
                text,
                "  MSI-X: {} vectors, {}{}, {} unmasked{}",
                m.vectors,
                if m.function.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                if m.function.function_masked {
                    " (function masked)"
                } else {
                    ""
                },
                m.unmasked,
                if m.programmed {
                    "; every vector at the dummy DMA target (DQO)"
                } else {
                    ""
                }
            );
        }
        None => text.push_str("  MSI-X: no table mapped (DQO formats need it)\n"),
    }
    text
}

fn describe_frame(
    bdf: Bdf,
    info: &DeviceInfo,
    msix: Option<&MsixReport>,
) -> evidence::GvnicDescriptor {
    let d = &info.descriptor;
    evidence::GvnicDescriptor {
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
        revision: info.revision,
        mac: d.mac,
        mtu: d.mtu,
        max_tx_queues: info.max_tx_queues,
        max_rx_queues: info.max_rx_queues,
        tx_queue_entries: d.tx_queue_entries,
        rx_queue_entries: d.rx_queue_entries,
        counters: d.counters,
        tx_pages_per_qpl: d.tx_pages_per_qpl,
        rx_pages_per_qpl: d.rx_pages_per_qpl,
        max_registered_pages: d.max_registered_pages,
        options: d.options.iter().map(|o| o.id).collect(),
        queue_format: format_text(info).chars().take(120).collect(),
        msix_vectors: msix.map_or(0, |m| m.vectors),
        msix_enabled: msix.is_some_and(|m| m.function.enabled),
        msix_unmasked: msix.map_or(0, |m| m.unmasked),
        offered_formats: d
            .offered_formats()
            .iter()
            .map(|f| String::from(f.name()))
            .collect(),
    }
}

fn txdhcp(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let timeout_ms = args.number_or("--timeout", DEFAULT_RX_TIMEOUT_MS)?;
    if timeout_ms == 0 || timeout_ms > MAX_RX_TIMEOUT_MS {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("--timeout must be 1..={MAX_RX_TIMEOUT_MS} ms, got {timeout_ms}"),
        ));
    }
    let format = parse_format(args)?;
    let (bound, _) = bind(ctx, None)?;
    let was_up = bound.nic.state() == State::QueuesUp;
    let bdf = bring_up(ctx, None, format, State::QueuesUp)?;
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    let queue_format = bound.nic.format().map_or("?", QueueFormat::name);
    if !was_up {
        let _ = writeln!(
            ctx.out,
            "gvnic {bdf}: queues up ({queue_format}, 64 RX buffers posted)"
        );
    }
    // Stale frames first: a ring full of them would leave no buffer for the OFFER.
    let drained = match bound.nic.drain_rx(hw.clock, hw.dma) {
        Ok(drained) => drained,
        // The device reset since the last command: nothing is left to drain, and the send
        // below brings it up again.
        Err(GvnicError::DeviceReset { .. }) => Default::default(),
        Err(err) => return Err(driver_error(bdf, err)),
    };
    if drained.frames + drained.dropped > 0 {
        let _ = writeln!(
            ctx.out,
            "gvnic {bdf}: drained {} frame(s) already waiting in the RX ring ({} flagged bad)",
            drained.frames, drained.dropped
        );
    }

    ctx.devices.gvnic.sent += 1;
    let seed = ctx.hw.clock.now_us() ^ ctx.devices.gvnic.sent.rotate_left(40);
    let xid = dhcp::xid_from_seed(seed);
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    let mac = bound
        .nic
        .info()
        .map(|i| i.descriptor.mac)
        .unwrap_or_default();
    let frame = dhcp::discover_frame(mac, xid);
    let sent = bound.nic.send(hw.config, hw.clock, hw.dma, &frame);
    report_released_quarantine(ctx);
    let done = sent.map_err(|err| driver_error(bdf, err))?;
    if done.after_reset {
        let _ = writeln!(
            ctx.out,
            "gvnic {bdf}: the device reset during TX; brought it up again and resent"
        );
    }
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    let queue_format = String::from(bound.nic.format().map_or("?", QueueFormat::name));
    let sent_at = hw.clock.now_us();
    let _ = writeln!(
        ctx.out,
        "sent DHCP DISCOVER xid {xid:#010x} from {} ({} bytes, {queue_format}), TX completed in {} us",
        mac_string(&mac),
        done.bytes,
        done.elapsed_us
    );
    ctx.out.frame(Body::GvnicTx(evidence::GvnicTx {
        bytes: done.bytes as u32,
        kind: String::from("dhcp-discover"),
        xid,
        src_mac: mac,
        elapsed_us: done.elapsed_us,
        queue_format,
    }));
    match await_offer(ctx, bdf, xid, sent_at, sent_at + timeout_ms * 1000)? {
        Awaited::Offer => Ok(()),
        Awaited::Others(others) => {
            let _ = writeln!(
                ctx.out,
                "no DHCP OFFER for xid {xid:#010x} within {timeout_ms} ms ({others} other frame(s) received)"
            );
            Ok(())
        }
        Awaited::Nothing { dropped } => Err(CmdError::new(
            "gvnic-rx-timeout",
            alloc::format!(
                "gvnic {bdf}: DISCOVER sent, but no frame came back within {timeout_ms} ms \
                 ({dropped} dropped with errors)"
            ),
        )),
    }
}

/// How the wait for the OFFER ended (other than with an error).
enum Awaited {
    Offer,
    /// Frames came, none an OFFER for us.
    Others(usize),
    Nothing {
        dropped: u32,
    },
}

/// Receives until the OFFER for `xid` or the deadline, reporting every frame.
fn await_offer(
    ctx: &mut Ctx,
    bdf: Bdf,
    xid: u32,
    sent_at: u64,
    deadline: u64,
) -> Result<Awaited, CmdError> {
    let mut others = 0usize;
    loop {
        let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
        let remaining = deadline.saturating_sub(hw.clock.now_us());
        let received = if remaining == 0 {
            Err(GvnicError::RxTimeout)
        } else {
            bound.nic.receive(hw.clock, hw.dma, remaining)
        };
        let dropped = bound.nic.rx_dropped();
        let now = hw.clock.now_us();
        let bytes = match received {
            Ok(bytes) => bytes,
            Err(GvnicError::RxTimeout) if others > 0 => return Ok(Awaited::Others(others)),
            Err(GvnicError::RxTimeout) => return Ok(Awaited::Nothing { dropped }),
            Err(err) => return Err(driver_error(bdf, err)),
        };
        let elapsed_us = now.saturating_sub(sent_at);
        let inbound = dhcp::classify(&bytes, xid);
        if inbound.is_offer_for(xid) {
            report_offer(ctx, &inbound, bytes.len(), elapsed_us, xid);
            return Ok(Awaited::Offer);
        }
        others += 1;
        if others <= MAX_REPORTED_FRAMES {
            report_other(ctx, &inbound, bytes.len(), elapsed_us);
        }
    }
}

fn ip_string(ip: [u8; 4]) -> String {
    alloc::format!("{}", core::net::Ipv4Addr::from(ip))
}

fn rx_frame(inbound: &Inbound, bytes: usize, elapsed_us: u64, xid: u32) -> evidence::GvnicRx {
    let offer = inbound.dhcp.as_ref().filter(|_| inbound.is_offer_for(xid));
    evidence::GvnicRx {
        bytes: bytes as u32,
        kind: String::from(inbound.kind),
        src_mac: inbound.src,
        dst_mac: inbound.dst,
        ethertype: inbound.ethertype,
        xid: offer.map_or(0, |m| m.xid),
        offered_ip: offer.map_or([0; 4], |m| m.yiaddr),
        server_ip: offer.map_or([0; 4], |m| m.server_id.unwrap_or(m.siaddr)),
        lease_secs: offer.and_then(|m| m.lease_secs).unwrap_or(0),
        elapsed_us,
    }
}

fn report_offer(ctx: &mut Ctx, inbound: &Inbound, bytes: usize, elapsed_us: u64, xid: u32) {
    let Some(offer) = inbound.dhcp.as_ref() else {
        return;
    };
    let server = offer.server_id.unwrap_or(offer.siaddr);
    let mut text = alloc::format!(
        "DHCP OFFER for xid {xid:#010x} after {} ms: address {} from server {}",
        elapsed_us / 1000,
        ip_string(offer.yiaddr),
        ip_string(server)
    );
    match offer.lease_secs {
        Some(lease) => text.push_str(&alloc::format!(", lease {lease} s")),
        None => text.push_str(", no lease time given"),
    }
    if let Some(mask) = offer.subnet_mask {
        text.push_str(&alloc::format!(", mask {}", ip_string(mask)));
    }
    if let Some(router) = offer.router {
        text.push_str(&alloc::format!(", router {}", ip_string(router)));
    }
    let _ = writeln!(
        ctx.out,
        "{text}\n  ({bytes} bytes from {}; IPv4 checksum {}, UDP checksum {})",
        mac_string(&inbound.src),
        checksum_word(inbound.ip_checksum_ok),
        checksum_word(inbound.udp_checksum_ok)
    );
    ctx.out
        .frame(Body::GvnicRx(rx_frame(inbound, bytes, elapsed_us, xid)));
}

fn checksum_word(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "ok",
        Some(false) => "BAD",
        None => "absent",
    }
}

fn report_other(ctx: &mut Ctx, inbound: &Inbound, bytes: usize, elapsed_us: u64) {
    let mut text = alloc::format!(
        "received {} frame, {bytes} bytes, {} -> {}, ethertype {:#06x}",
        inbound.kind,
        mac_string(&inbound.src),
        mac_string(&inbound.dst),
        inbound.ethertype
    );
    if let Some(message) = &inbound.dhcp {
        text.push_str(&alloc::format!(
            " (DHCP type {} xid {:#010x}: not an OFFER for us)",
            message.message_type.unwrap_or(0),
            message.xid
        ));
    }
    let _ = writeln!(ctx.out, "{text}");
    ctx.out
        .frame(Body::GvnicRx(rx_frame(inbound, bytes, elapsed_us, 0)));
}

/// Tears the NIC down if one is bound; Ok when nothing was bound.
pub fn teardown(ctx: &mut Ctx) -> Result<(), CmdError> {
    let Some(mut bound) = ctx.devices.gvnic.bound.take() else {
        ctx.out.print("gvnic: nothing bound\n");
        return Ok(());
    };
    let bdf = bound.bdf;
    let mut steps = Vec::new();
    let result = bound
        .nic
        .teardown(ctx.hw.config, ctx.hw.clock, ctx.hw.dma, &mut |step| {
            steps.push(step)
        });
    if steps.is_empty() {
        let _ = writeln!(ctx.out, "gvnic {bdf}: nothing to tear down");
    }
    for step in steps {
        report_teardown_step(ctx, "gvnic", bdf, step.step, step.ok, &step.detail);
    }
    let released = bound.nic.take_released_quarantine();
    report_release(ctx, bound.nic.owner(), released);
    // Whatever happened, the device must not DMA any more: bus mastering off. (A device
    // that did not confirm its reset keeps its quarantined pages all the same.)
    pci::disable_bus_master(ctx.hw.config, bdf);
    report_teardown_step(
        ctx,
        "gvnic",
        bdf,
        "bus-master-off",
        true,
        "PCI bus mastering disabled",
    );
    if !bound.intx_was_disabled {
        pci::set_intx_disabled(ctx.hw.config, bdf, false);
        report_teardown_step(
            ctx,
            "gvnic",
            bdf,
            "intx-restore",
            true,
            "INTx disable cleared again, as before we bound",
        );
    }
    // Register windows are not DMA: unmapping them is safe even after a failed reset.
    for (phys, len) in bound.mapped {
        ctx.hw.mmio.unmap(phys, len);
        let detail = alloc::format!(
            "BAR window for {phys:#x} ({len:#x} bytes) released (kept while a `bar map` uses it)"
        );
        report_teardown_step(ctx, "gvnic", bdf, "unmap", true, &detail);
    }
    result.map_err(|err| driver_error(bdf, err))
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

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::gvnic::regs::AqMode;
    use drivers::gvnic::{DeviceDescriptor, DeviceOption};
    use drivers::pci::msix::FunctionState;

    fn info(options: &[u16], format: Result<QueueFormat, GvnicError>) -> DeviceInfo {
        DeviceInfo {
            revision: 1,
            aq_mode: AqMode::BaseLength,
            max_tx_queues: 4,
            max_rx_queues: 4,
            dma_mask_bits: 64,
            link_up: true,
            descriptor: DeviceDescriptor {
                max_registered_pages: 8192,
                tx_queue_entries: 1024,
                rx_queue_entries: 1024,
                default_num_queues: 4,
                mtu: 1460,
                counters: 32,
                tx_pages_per_qpl: 512,
                rx_pages_per_qpl: 1024,
                mac: [0x42, 1, 10, 128, 0, 2],
                total_length: 64,
                options: options
                    .iter()
                    .map(|&id| DeviceOption {
                        id,
                        length: 8,
                        required_features_mask: 0,
                        features: Some(0),
                        malformed: false,
                    })
                    .collect(),
            },
            format,
        }
    }

    #[test]
    fn describe_shows_offered_and_chosen_format_and_msix() {
        let bdf = Bdf::new(0, 4, 0);
        let info = info(&[4, 7], Ok(QueueFormat::DqoQpl));
        let msix = MsixReport {
            vectors: 9,
            function: FunctionState {
                enabled: true,
                function_masked: false,
            },
            unmasked: 2,
            programmed: true,
        };
        let text = describe_text(bdf, &info, State::QueuesUp, Some(&msix));
        assert!(
            text.contains("queue formats offered: dqo-rda, dqo-qpl"),
            "{text}"
        );
        assert!(text.contains("queue format: dqo-qpl"), "{text}");
        assert!(
            text.contains("MSI-X: 9 vectors, enabled, 2 unmasked; every vector at the dummy"),
            "{text}"
        );
        let frame = describe_frame(bdf, &info, Some(&msix));
        assert_eq!(frame.queue_format, "dqo-qpl");
        assert_eq!(frame.offered_formats, ["dqo-rda", "dqo-qpl"]);
        assert_eq!(
            (frame.msix_vectors, frame.msix_enabled, frame.msix_unmasked),
            (9, true, 2)
        );
    }

    #[test]
    fn describe_names_a_refused_format_and_a_missing_msix_table() {
        let bdf = Bdf::new(0, 4, 0);
        let refused = GvnicError::FormatNotOffered {
            wanted: "gqi-rda",
            offered: alloc::vec!["gqi-qpl"],
        };
        let info = info(&[], Err(refused));
        let text = describe_text(bdf, &info, State::Described, None);
        assert!(text.contains("none listed (gqi-qpl assumed)"), "{text}");
        assert!(
            text.contains(
                "queue format: none usable: the device does not offer queue format gqi-rda"
            ),
            "{text}"
        );
        assert!(text.contains("MSI-X: no table mapped"), "{text}");
        let frame = describe_frame(bdf, &info, None);
        assert_eq!((frame.msix_vectors, frame.msix_enabled), (0, false));
        assert!(frame.offered_formats.is_empty());
    }
}
