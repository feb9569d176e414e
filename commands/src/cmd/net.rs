//! `gvnic dhcp`, `gvnic ping`, `gvnic http`, `gvnic metadata`: the network proof on
//! smoltcp over the gVNIC (drivers::net). Each handler parses, makes one stack call over
//! the NIC that `gvnic txdhcp` also brings up, and renders with the pure functions in
//! [`super::net_text`]. The lease is kept between commands, so `ping` and `http` use the
//! one `dhcp` took (or take one first, and say so).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::net::error::NetError;
use drivers::net::gvnic_nic::GvnicNic;
use drivers::net::http::{self, Url};
use drivers::net::iface::{self, Outcome, PingRequest, TcpRequest};
use drivers::net::lease::Lease;
use evidence::Body;

use super::net_text as text;
use crate::args::Args;
use crate::gvnic::waits::{self, IRQ_FLAG};
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

const TIMEOUT_FLAG: Flag = Flag {
    name: "--timeout",
    takes_value: true,
    help: "how long to wait, in ms (1..=60000)",
};
const MAX_BYTES_FLAG: Flag = Flag {
    name: "--max-bytes",
    takes_value: true,
    help:
        "body bytes to show and keep in the frame (0..=65536, default 4096); the digest covers all",
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "gvnic dhcp",
        usage: "gvnic dhcp [--timeout MS] [--irq]",
        summary: "take a DHCP lease through the gVNIC (smoltcp's client: DISCOVER, OFFER, REQUEST, ACK)",
        details: "Brings the NIC's queues up if needed and runs smoltcp's DHCPv4 client until the ACK or \
                  --timeout ms (default 10000; DISCOVER is retried every second). Shows the address, the mask \
                  and the prefix the interface uses (a /32 like GCE's is widened to cover the router, so the \
                  router's ARP is accepted), router, gateway (option 121's default route wins over option 3), \
                  DNS, MTU, lease time, server id, classless routes, and the exchange on the wire. The lease is \
                  kept for 'gvnic ping' and 'gvnic http'. Emits a net.lease frame. Ctrl-C stops the wait. \
                  --irq (here and on ping, http, metadata) waits for the NIC's completions by interrupt \
                  and emits a gvnic.waits frame (see 'help gvnic txdhcp').",
        examples: &["gvnic dhcp", "gvnic dhcp --timeout 30000", "gvnic dhcp --irq"],
        min_args: 0,
        max_args: 0,
        flags: &[TIMEOUT_FLAG, IRQ_FLAG],
        run: dhcp,
    },
    CommandSpec {
        name: "gvnic ping",
        usage: "gvnic ping <ip|gateway> [--count N] [--timeout MS] [--irq]",
        summary: "ICMP echo through the gVNIC, with each reply's round trip and the loss",
        details: "Uses the lease of 'gvnic dhcp' (takes one first if there is none or it expired). Sends \
                  --count echo requests (default 4, at most 100) of 56 bytes, each after the previous reply or \
                  its --timeout (ms per request, default 1000). 'gateway' is the lease's gateway. The first \
                  round trip includes the ARP exchange with the next hop, which is shown. No ARP reply is \
                  net-no-arp-reply; ARP but no echo is net-no-echo-reply. Emits a net.ping frame.",
        examples: &["gvnic ping gateway", "gvnic ping 10.128.0.1 --count 10"],
        min_args: 1,
        max_args: 1,
        flags: &[
            Flag {
                name: "--count",
                takes_value: true,
                help: "echo requests to send (1..=100, default 4)",
            },
            TIMEOUT_FLAG,
            IRQ_FLAG,
        ],
        run: ping,
    },
    CommandSpec {
        name: "gvnic http",
        usage: "gvnic http <url> [--header \"K: V\"]... [--max-bytes N] [--timeout MS] [--irq]",
        summary: "HTTP GET over TCP through the gVNIC: status, headers, bounded body, digest, timings",
        details: "Uses the lease of 'gvnic dhcp' (takes one first if needed). The URL is \
                  http://IPV4[:PORT][/PATH] (no DNS, no TLS). Sends GET with Host, User-Agent, Accept, \
                  Connection: close and each --header (quote it: --header \"Metadata-Flavor: Google\"). Shows \
                  the status line, headers, the first --max-bytes of the body (said so when truncated), the \
                  whole body's length and SHA-256, and connect / first byte / total times. --timeout (ms, \
                  default 10000) bounds the whole exchange. Any status is a result; refused and reset \
                  connections, timeouts and non-HTTP answers are named errors. Emits a net.http frame.",
        examples: &[
            "gvnic http http://169.254.169.254/computeMetadata/v1/instance/id",
            "gvnic http http://10.128.0.1:8080/ --max-bytes 256",
        ],
        min_args: 1,
        max_args: 1,
        flags: &[
            Flag {
                name: "--header",
                takes_value: true,
                help: "an extra request header, \"Name: value\" (repeatable)",
            },
            MAX_BYTES_FLAG,
            TIMEOUT_FLAG,
            IRQ_FLAG,
        ],
        run: http_get,
    },
    CommandSpec {
        name: "gvnic metadata",
        usage: "gvnic metadata [path] [--max-bytes N] [--timeout MS] [--irq]",
        summary: "GET a GCE metadata path (default instance/id) with Metadata-Flavor: Google",
        details: "'gvnic http http://169.254.169.254/computeMetadata/v1/<path> --header \"Metadata-Flavor: \
                  Google\"': the instance's own id, zone (instance/zone), and so on. A status other than \
                  200 is the error net-http-status (the response is still shown).",
        examples: &["gvnic metadata", "gvnic metadata instance/zone"],
        min_args: 0,
        max_args: 1,
        flags: &[MAX_BYTES_FLAG, TIMEOUT_FLAG, IRQ_FLAG],
        run: metadata,
    },
];

/// GCE's metadata server (facts: platform-notes §5; it is also the DHCP server id).
pub const METADATA_BASE: &str = "http://169.254.169.254/computeMetadata/v1/";
const DEFAULT_METADATA_PATH: &str = "instance/id";
const DEFAULT_DHCP_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_PING_TIMEOUT_MS: u64 = 1000;
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_PING_COUNT: u64 = 4;
const MAX_PING_COUNT: u64 = 100;
const DEFAULT_MAX_BYTES: u64 = 4096;
const MAX_MAX_BYTES: u64 = 65536;

/// The lease taken by `gvnic dhcp`, kept between commands.
#[derive(Default)]
pub struct NetState {
    lease: Option<Lease>,
}

fn net_error(err: NetError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("{err}"))
}

fn bounded(args: &Args, name: &str, default: u64, min: u64, max: u64) -> Result<u64, CmdError> {
    let value = args.number_or(name, default)?;
    if value < min || value > max {
        return Err(CmdError::new(
            "bad-argument",
            alloc::format!("{name} must be {min}..={max}, got {value}"),
        ));
    }
    Ok(value)
}

/// Runs `call` over the gVNIC (queues brought up first); also says when it started and
/// the NIC's MAC. With `by_irq` the call's completions are waited for by interrupt, and
/// the session is reported (and everything restored) before returning.
fn with_nic<T>(
    ctx: &mut Ctx,
    by_irq: bool,
    command: &str,
    call: impl FnOnce(&mut GvnicNic, &dyn drivers::platform::Clock) -> Outcome<T>,
) -> Result<(Outcome<T>, u64, [u8; 6]), CmdError> {
    let (bdf, nic, hw) = crate::gvnic::nic_up(ctx)?;
    let started = match by_irq {
        true => Some(waits::begin(bdf, nic, hw)?),
        false => None,
    };
    let clock = hw.clock;
    let begun = clock.now_us();
    let irq = by_irq.then_some(hw.irq);
    let ran = GvnicNic::new(nic, clock, hw.dma)
        .ok_or_else(|| CmdError::new("gvnic-wrong-state", "the gVNIC was never described"))
        .map(|nic| {
            let mut nic = nic.with_irq(irq);
            let mac = drivers::net::nic::Nic::mac(&nic);
            (call(&mut nic, clock), begun, mac)
        });
    // The session's report names the command's error, if any.
    let failed = match &ran {
        Ok((outcome, _, _)) => outcome.result.as_ref().err().map(|e| net_error(e.clone())),
        Err(err) => Some(err.clone()),
    };
    let ended = waits::finish(ctx, started, command, failed.map_or(Ok(()), Err));
    match (ran, ended) {
        (Ok(ran), Err(err)) if ran.0.result.is_ok() => Err(err),
        (ran, _) => ran,
    }
}

/// Takes a lease, prints and frames it, keeps it.
fn take_lease(ctx: &mut Ctx, timeout_ms: u64, by_irq: bool) -> Result<Lease, CmdError> {
    let (outcome, started, mac) = with_nic(ctx, by_irq, "gvnic dhcp", |nic, clock| {
        iface::acquire_lease(nic, clock, timeout_ms * 1000)
    })?;
    let wire = text::wire_events(&outcome.trace, started);
    ctx.out.print(&text::wire_text(&wire));
    let lease = outcome.result.map_err(net_error)?;
    ctx.out.print(&text::lease_text(&lease, started));
    ctx.out.frame(Body::NetLease(text::lease_frame(
        &lease, mac, started, wire,
    )));
    ctx.devices.net.lease = Some(lease.clone());
    // The lease may ask for a larger MTU (GCE VPCs may use 8896): the driver takes it as
    // far as the device's JUMBO_FRAMES and its own data path allow.
    let plan = crate::gvnic::nic_up(ctx).ok().and_then(|(_, nic, _)| {
        nic.set_lease_mtu(lease.mtu);
        nic.mtu_plan()
    });
    if let Some(plan) = plan {
        let _ = writeln!(ctx.out, "  link MTU {} ({})", plan.mtu, plan.why);
    }
    Ok(lease)
}

/// The kept lease, or a fresh one.
fn lease(ctx: &mut Ctx, by_irq: bool) -> Result<Lease, CmdError> {
    let now = ctx.hw.clock.now_us();
    match &ctx.devices.net.lease {
        Some(lease) if !lease.expired(now) => Ok(lease.clone()),
        kept => {
            let why = if kept.is_some() {
                "expired"
            } else {
                "none yet"
            };
            let _ = writeln!(ctx.out, "no usable lease ({why}): taking one first");
            take_lease(ctx, DEFAULT_DHCP_TIMEOUT_MS, by_irq)
        }
    }
}

fn dhcp(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let timeout_ms = bounded(
        args,
        "--timeout",
        DEFAULT_DHCP_TIMEOUT_MS,
        1,
        MAX_TIMEOUT_MS,
    )?;
    take_lease(ctx, timeout_ms, args.flag("--irq")).map(|_| ())
}

fn ping(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let target = args.get(0).unwrap_or("");
    let count = bounded(args, "--count", DEFAULT_PING_COUNT, 1, MAX_PING_COUNT)? as u16;
    let timeout_ms = bounded(
        args,
        "--timeout",
        DEFAULT_PING_TIMEOUT_MS,
        1,
        MAX_TIMEOUT_MS,
    )?;
    let wanted = text::parse_target(target)?;
    let by_irq = args.flag("--irq");
    let lease = lease(ctx, by_irq)?;
    let target = match wanted {
        Some(ip) => ip,
        None => lease
            .gateway()
            .ok_or_else(|| CmdError::new("net-no-route", "the lease names no gateway to ping"))?,
    };
    let request = PingRequest {
        target,
        count,
        timeout_us: timeout_ms * 1000,
    };
    let (outcome, started, _) = with_nic(ctx, by_irq, "gvnic ping", |nic, clock| {
        iface::ping(nic, clock, &lease, request)
    })?;
    let wire = text::wire_events(&outcome.trace, started);
    let report = outcome.result.map_err(net_error)?;
    ctx.out.print(&text::ping_text(&report));
    ctx.out
        .frame(Body::NetPing(text::ping_frame(&report, wire)));
    Ok(())
}

/// One GET: the response, or the named error.
fn get(
    ctx: &mut Ctx,
    url: &Url,
    headers: &[(String, String)],
    max_bytes: usize,
    timeout_ms: u64,
    by_irq: bool,
) -> Result<evidence::NetHttp, CmdError> {
    let lease = lease(ctx, by_irq)?;
    let request_bytes = http::request(url, headers);
    let request = TcpRequest {
        ip: url.ip,
        port: url.port,
        send: &request_bytes,
        timeout_us: timeout_ms * 1000,
    };
    let mut reader = http::Reader::new(max_bytes);
    let (outcome, _, _) = with_nic(ctx, by_irq, "gvnic http", |nic, clock| {
        iface::tcp_exchange(nic, clock, &lease, &request, &mut |data| reader.feed(data))
    })?;
    let timings = outcome.result.map_err(net_error)?;
    let response = reader.finish(timings.closed_by_server).ok_or_else(|| {
        net_error(NetError::BadResponse(String::from(
            "the server closed before the end of the headers",
        )))
    })?;
    let sent: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
    let frame = text::http_frame(url, sent, &response, &timings);
    ctx.out.print(&text::http_text(&frame, max_bytes));
    ctx.out.frame(Body::NetHttp(frame.clone()));
    Ok(frame)
}

fn http_args(args: &Args) -> Result<(usize, u64), CmdError> {
    let max_bytes = bounded(args, "--max-bytes", DEFAULT_MAX_BYTES, 0, MAX_MAX_BYTES)? as usize;
    let timeout_ms = bounded(
        args,
        "--timeout",
        DEFAULT_HTTP_TIMEOUT_MS,
        1,
        MAX_TIMEOUT_MS,
    )?;
    Ok((max_bytes, timeout_ms))
}

fn http_get(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let url = http::parse_url(args.get(0).unwrap_or("")).map_err(net_error)?;
    let headers = args
        .values("--header")
        .into_iter()
        .map(http::parse_header)
        .collect::<Result<Vec<_>, _>>()
        .map_err(net_error)?;
    let (max_bytes, timeout_ms) = http_args(args)?;
    get(
        ctx,
        &url,
        &headers,
        max_bytes,
        timeout_ms,
        args.flag("--irq"),
    )
    .map(|_| ())
}

fn metadata(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let path = args.get(0).unwrap_or(DEFAULT_METADATA_PATH);
    let url = http::parse_url(&text::metadata_url(path)).map_err(net_error)?;
    let (max_bytes, timeout_ms) = http_args(args)?;
    let header = (String::from("Metadata-Flavor"), String::from("Google"));
    let frame = get(
        ctx,
        &url,
        &[header],
        max_bytes,
        timeout_ms,
        args.flag("--irq"),
    )?;
    if frame.status != 200 {
        return Err(CmdError::new(
            "net-http-status",
            alloc::format!("the metadata server answered '{}'", frame.status_line),
        ));
    }
    Ok(())
}
