//! `gvnic describe`, `gvnic txdhcp` and the gVNIC half of `teardown` (issue 6).
//!
//! The driver itself lives in `drivers::gvnic`; this module finds the function, maps its
//! BARs, keeps the bound NIC between commands, and turns what the driver reports into
//! human lines and evidence frames.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::gvnic::{self, Gvnic, GvnicError, State};
use drivers::net::dhcp::{self, Inbound};
use drivers::net::ethernet::mac_string;
use drivers::pci;
use drivers::platform::Bdf;
use evidence::Body;

use crate::args::Args;
use crate::core_cmds::report_teardown_step;
use crate::pci::parse_bdf;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "gvnic describe",
        usage: "gvnic describe [bdf]",
        summary: "bring up a gVNIC's admin queue and show what the device describes",
        details: "Maps BAR0 (registers) and BAR2 (doorbells) of the Google gVNIC (1ae0:0042), turns on bus \
                  mastering, resets it unless it already reads reset, hands it the admin queue (PFN register on \
                  PCI revision 0, base/length/RUN on revision 1) and runs DESCRIBE_DEVICE. Shows the MAC, MTU, \
                  queue limits, ring sizes, event counters, pages per queue page list, the page budget, every \
                  device option by name, and the queue format this driver would use (gqi-qpl; DQO-only devices \
                  are named as such). The bdf may be omitted when there is exactly one gVNIC. Emits a \
                  gvnic.describe frame. The device stays bound until 'teardown gvnic'.",
        examples: &["gvnic describe", "gvnic describe 00:04.0"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: describe,
    },
    CommandSpec {
        name: "gvnic txdhcp",
        usage: "gvnic txdhcp [--timeout MS]",
        summary: "send a DHCP DISCOVER through the gVNIC and report what comes back",
        details: "Brings the NIC's queues up if they are not (CONFIGURE_DEVICE_RESOURCES with every event \
                  counter, IRQs masked, TX and RX queue page lists, CREATE_TX_QUEUE, CREATE_RX_QUEUE, 64 RX \
                  buffers posted), builds a DHCP DISCOVER from the device's MAC with a random xid (broadcast, \
                  0.0.0.0:68 -> 255.255.255.255:67, IPv4 and UDP checksums), sends it, waits for the TX \
                  completion, then waits up to --timeout ms (default 3000) for frames. An OFFER for our xid is \
                  reported with the offered address, server and lease; other frames are summarised. Emits \
                  gvnic.tx and gvnic.rx frames. Ctrl-C stops the wait.",
        examples: &["gvnic txdhcp", "gvnic txdhcp --timeout 10000"],
        min_args: 0,
        max_args: 0,
        flags: &[Flag {
            name: "--timeout",
            takes_value: true,
            help: "how long to wait for a reply, in ms (1..=60000, default 3000)",
        }],
        run: txdhcp,
    },
];

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
}

fn driver_error(bdf: Bdf, err: GvnicError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("gvnic {bdf}: {err}"))
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
fn choose(ctx: &Ctx, wanted: Option<Bdf>) -> Result<(Bdf, u8), CmdError> {
    if let Some(bound) = &ctx.devices.gvnic.bound {
        match wanted {
            None => return Ok((bound.bdf, 0)),
            Some(bdf) if bdf == bound.bdf => return Ok((bdf, 0)),
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
        return Ok((bdf, function.revision));
    }
    let found = gvnics(ctx);
    match found.as_slice() {
        [] => Err(CmdError::new(
            "no-gvnic",
            "no gVNIC (PCI 1ae0:0042) found; 'lspci' lists what there is",
        )),
        [only] => Ok(*only),
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

/// Makes sure a NIC is bound (BARs mapped, bus mastering on) and returns it.
fn bind<'a>(ctx: &'a mut Ctx, wanted: Option<Bdf>) -> Result<&'a mut Bound, CmdError> {
    let (bdf, revision) = choose(ctx, wanted)?;
    if ctx.devices.gvnic.bound.is_none() {
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
        let owner = alloc::format!("gvnic {bdf}");
        let nic = Gvnic::new(bar0, bar2, revision, &owner).map_err(|e| driver_error(bdf, e))?;
        ctx.devices.gvnic.bound = Some(Bound { bdf, nic, mapped });
    }
    Ok(ctx.devices.gvnic.bound.as_mut().expect("bound above"))
}

/// Brings the bound NIC up to `target`, describing what happened if it failed.
fn bring_up(ctx: &mut Ctx, target: State) -> Result<(), CmdError> {
    let hw = &mut *ctx.hw;
    let Some(bound) = ctx.devices.gvnic.bound.as_mut() else {
        return Err(CmdError::new("gvnic-wrong-state", "no gVNIC is bound"));
    };
    let result = bound.nic.bring_up(hw.clock, hw.dma, target);
    let attempts = bound.nic.last_attempts;
    let (bdf, state) = (bound.bdf, bound.nic.state());
    match result {
        Ok(()) => {
            if attempts > 1 {
                let _ = writeln!(
                    ctx.out,
                    "gvnic {bdf}: the device reset itself during bring-up; came up on attempt {attempts}"
                );
            }
            Ok(())
        }
        Err(err) => {
            let mut error = driver_error(bdf, err);
            if state == State::Unbound && error.code != "gvnic-no-gqi" {
                error
                    .message
                    .push_str("; the device was reset and its DMA memory released");
            }
            Err(error)
        }
    }
}

fn describe(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let wanted = args.get(0).map(parse_bdf).transpose()?;
    let bdf = bind(ctx, wanted)?.bdf;
    bring_up(ctx, State::Described)?;
    let bound = ctx.devices.gvnic.bound.as_ref().expect("bound");
    let Some(info) = bound.nic.info() else {
        return Err(CmdError::new(
            "gvnic-wrong-state",
            "described but no descriptor",
        ));
    };
    let d = &info.descriptor;
    let format = match &info.format {
        Ok(format) => String::from(format.name()),
        Err(err) => alloc::format!("none usable: {err}"),
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "gVNIC {bdf}: PCI revision {} (admin queue via {}), link {}, state {}",
        info.revision,
        info.aq_mode.name(),
        if info.link_up { "up" } else { "down" },
        bound.nic.state().name()
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
    let _ = writeln!(text, "  queue format: {format}");
    let frame = evidence::GvnicDescriptor {
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
        queue_format: format.chars().take(120).collect(),
    };
    ctx.out.print(&text);
    ctx.out.frame(Body::GvnicDescriptor(frame));
    Ok(())
}

fn txdhcp(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let timeout_ms = args.number_or("--timeout", DEFAULT_RX_TIMEOUT_MS)?;
    if timeout_ms == 0 || timeout_ms > MAX_RX_TIMEOUT_MS {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("--timeout must be 1..={MAX_RX_TIMEOUT_MS} ms, got {timeout_ms}"),
        ));
    }
    let bdf = bind(ctx, None)?.bdf;
    let was_up = ctx.devices.gvnic.bound.as_ref().map(|b| b.nic.state()) == Some(State::QueuesUp);
    bring_up(ctx, State::QueuesUp)?;
    if !was_up {
        let _ = writeln!(
            ctx.out,
            "gvnic {bdf}: queues up (GQI-QPL, 64 RX buffers posted)"
        );
    }

    let state = &mut ctx.devices.gvnic;
    state.sent += 1;
    let xid = dhcp::xid_from_seed(ctx.hw.clock.now_us() ^ state.sent.rotate_left(40));
    let bound = state.bound.as_mut().expect("bound");
    let mac = bound
        .nic
        .info()
        .map(|i| i.descriptor.mac)
        .unwrap_or_default();
    let frame = dhcp::discover_frame(mac, xid);
    let hw = &mut *ctx.hw;
    let mut sent = bound.nic.transmit(hw.clock, hw.dma, &frame);
    if let Err(GvnicError::DeviceReset { .. }) = sent {
        // Reset under us (the driver already released its side): up again, send again.
        let _ = writeln!(
            ctx.out,
            "gvnic {bdf}: the device reset during TX; bringing it up again"
        );
        bring_up(ctx, State::QueuesUp)?;
        let bound = ctx.devices.gvnic.bound.as_mut().expect("bound");
        sent = bound.nic.transmit(ctx.hw.clock, ctx.hw.dma, &frame);
    }
    let done = sent.map_err(|err| driver_error(bdf, err))?;
    let sent_at = ctx.hw.clock.now_us();
    let _ = writeln!(
        ctx.out,
        "sent DHCP DISCOVER xid {xid:#010x} from {} ({} bytes), TX completed in {} us",
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
    }));

    let deadline = sent_at + timeout_ms * 1000;
    let mut others = 0usize;
    loop {
        let now = ctx.hw.clock.now_us();
        let remaining = deadline.saturating_sub(now);
        let bound = ctx.devices.gvnic.bound.as_mut().expect("bound");
        let received = if remaining == 0 {
            Err(GvnicError::RxTimeout)
        } else {
            bound.nic.receive(ctx.hw.clock, ctx.hw.dma, remaining)
        };
        let dropped = bound.nic.rx_dropped();
        let bytes = match received {
            Ok(bytes) => bytes,
            Err(GvnicError::RxTimeout) if others > 0 => {
                let _ = writeln!(
                    ctx.out,
                    "no DHCP OFFER for xid {xid:#010x} within {timeout_ms} ms ({others} other frame(s) received)"
                );
                return Ok(());
            }
            Err(GvnicError::RxTimeout) => {
                return Err(CmdError::new(
                    "gvnic-rx-timeout",
                    alloc::format!(
                        "gvnic {bdf}: DISCOVER sent, but no frame came back within {timeout_ms} ms \
                         ({dropped} dropped with errors)"
                    ),
                ))
            }
            Err(err) => return Err(driver_error(bdf, err)),
        };
        let elapsed_us = ctx.hw.clock.now_us().saturating_sub(sent_at);
        let inbound = dhcp::classify(&bytes, xid);
        if inbound.is_offer_for(xid) {
            report_offer(ctx, &inbound, bytes.len(), elapsed_us, xid);
            return Ok(());
        }
        others += 1;
        if others <= MAX_REPORTED_FRAMES {
            report_other(ctx, &inbound, bytes.len(), elapsed_us);
        }
    }
}

fn ip_string(ip: [u8; 4]) -> String {
    alloc::format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
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
        .teardown(ctx.hw.clock, ctx.hw.dma, &mut |step| steps.push(step));
    if steps.is_empty() {
        let _ = writeln!(ctx.out, "gvnic {bdf}: nothing to tear down");
    }
    for step in steps {
        report_teardown_step(ctx, "gvnic", bdf, step.step, step.ok, &step.detail);
    }
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
/// `txdhcp` does, then lends it out with the hardware, borrowed apart from `ctx.out`.
pub(crate) fn nic_up<'a, 'h>(
    ctx: &'a mut Ctx<'_, 'h>,
) -> Result<(Bdf, &'a mut Gvnic, &'a mut drivers::platform::Hw<'h>), CmdError> {
    let bdf = bind(ctx, None)?.bdf;
    let was_up = ctx.devices.gvnic.bound.as_ref().map(|b| b.nic.state()) == Some(State::QueuesUp);
    bring_up(ctx, State::QueuesUp)?;
    if !was_up {
        let _ = writeln!(ctx.out, "gvnic {bdf}: queues up");
    }
    match ctx.devices.gvnic.bound.as_mut() {
        Some(bound) => Ok((bdf, &mut bound.nic, &mut *ctx.hw)),
        None => Err(CmdError::new("gvnic-wrong-state", "no gVNIC is bound")),
    }
}
