//! `gvnic txdhcp`: one DHCP DISCOVER out through the driver's data path and the OFFER (or
//! whatever else arrives) reported, frame by frame.

use alloc::string::String;
use core::fmt::Write;

use drivers::net::dhcp::{self, Inbound};
use drivers::net::ethernet::mac_string;
use evidence::Body;

use super::*;

const DEFAULT_RX_TIMEOUT_MS: u64 = 3000;
const MAX_RX_TIMEOUT_MS: u64 = 60_000;
/// At most this many non-OFFER frames are reported one by one (serial time is precious).
const MAX_REPORTED_FRAMES: usize = 8;

pub(super) fn txdhcp(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
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

    let started = match args.flag("--irq") {
        true => {
            let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
            Some(waits::begin(bdf, &mut bound.nic, hw)?)
        }
        false => None,
    };
    let by_irq = started.is_some();
    let result = exchange(ctx, bdf, timeout_ms, by_irq);
    waits::finish(ctx, started, "gvnic txdhcp", result)
}

/// The DISCOVER out and whatever comes back (by interrupt when `by_irq`).
fn exchange(ctx: &mut Ctx, bdf: Bdf, timeout_ms: u64, by_irq: bool) -> Result<(), CmdError> {
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
    let irq = by_irq.then_some(hw.irq);
    let sent = bound
        .nic
        .send_with(hw.config, hw.clock, hw.dma, &frame, irq);
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
    match await_offer(ctx, bdf, xid, sent_at, sent_at + timeout_ms * 1000, by_irq)? {
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
    by_irq: bool,
) -> Result<Awaited, CmdError> {
    let mut others = 0usize;
    loop {
        let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
        let remaining = deadline.saturating_sub(hw.clock.now_us());
        let received = if remaining == 0 {
            Err(GvnicError::RxTimeout)
        } else {
            let irq = by_irq.then_some(hw.irq);
            bound.nic.receive_with(hw.clock, hw.dma, remaining, irq)
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
