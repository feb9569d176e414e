//! Pure rendering for the network commands (cmd/net.rs): human lines and `net.*` frames
//! from what drivers::net returned. Tested without a `Ctx`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::Ipv4Addr;

use drivers::net::http::{Response, Url};
use drivers::net::iface::{PingReport, TcpTimings};
use drivers::net::lease::Lease;
use drivers::net::phy::Traced;
use evidence::{NetHttp, NetLease, NetPing, NetRoute, NetWireEvent};

use super::net::METADATA_BASE;
use crate::table::CmdError;

fn mac_text(mac: &[u8; 6]) -> String {
    alloc::format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    )
}

fn ms(us: u64) -> String {
    alloc::format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// `ping`'s target: an IPv4 address, or None for `gateway`.
pub fn parse_target(word: &str) -> Result<Option<Ipv4Addr>, CmdError> {
    if word == "gateway" {
        return Ok(None);
    }
    word.parse().map(Some).map_err(|_| {
        CmdError::new(
            "bad-argument",
            alloc::format!("'{word}' is neither an IPv4 address nor 'gateway'"),
        )
    })
}

/// The metadata URL for a path ("instance/id", "/instance/zone").
pub fn metadata_url(path: &str) -> String {
    alloc::format!("{METADATA_BASE}{}", path.trim_start_matches('/'))
}

/// The trace as frame entries, times from `started`.
pub fn wire_events(trace: &[Traced], started: u64) -> Vec<NetWireEvent> {
    trace
        .iter()
        .map(|t| NetWireEvent {
            tx: t.tx,
            at_us: t.at_us.saturating_sub(started),
            bytes: t.bytes as u32,
            kind: String::from(t.kind),
        })
        .collect()
}

pub fn wire_text(wire: &[NetWireEvent]) -> String {
    let mut text = String::new();
    for event in wire {
        let _ = writeln!(
            text,
            "  {:>12}  {} {:<18} {} bytes",
            ms(event.at_us),
            if event.tx { "->" } else { "<-" },
            event.kind,
            event.bytes
        );
    }
    text
}

fn ip_or_none(ip: Option<Ipv4Addr>) -> String {
    ip.map_or_else(|| String::from("none"), |ip| alloc::format!("{ip}"))
}

pub fn lease_text(lease: &Lease, started: u64) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "lease after {}: address {}/{} (interface uses /{}{})",
        ms(lease.acquired_at_us.saturating_sub(started)),
        lease.address,
        lease.prefix_len,
        lease.interface_prefix(),
        if lease.interface_prefix() < lease.prefix_len {
            ", widened to cover the gateway"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "  router {}, gateway {}, server id {}",
        ip_or_none(lease.router),
        ip_or_none(lease.gateway()),
        lease.server_id
    );
    let dns: Vec<String> = lease.dns.iter().map(|d| alloc::format!("{d}")).collect();
    let _ = writeln!(
        text,
        "  DNS {}, MTU {}, lease {}",
        if dns.is_empty() {
            String::from("none")
        } else {
            dns.join(", ")
        },
        lease
            .mtu
            .map_or_else(|| String::from("not given"), |m| alloc::format!("{m}")),
        lease
            .lease_secs
            .map_or_else(|| String::from("not given"), |s| alloc::format!("{s} s")),
    );
    match &lease.classless_routes {
        None => text.push_str("  classless routes (option 121): none\n"),
        Some(routes) if routes.is_empty() => {
            text.push_str("  classless routes (option 121): present but malformed (ignored)\n")
        }
        Some(routes) => {
            text.push_str("  classless routes (option 121):\n");
            for r in routes {
                let via = if r.gateway.is_unspecified() {
                    String::from("on-link")
                } else {
                    alloc::format!("via {}", r.gateway)
                };
                let _ = writeln!(text, "    {}/{} {via}", r.destination, r.prefix_len);
            }
        }
    }
    text
}

pub fn lease_frame(lease: &Lease, mac: [u8; 6], started: u64, wire: Vec<NetWireEvent>) -> NetLease {
    let octets = |ip: Option<Ipv4Addr>| ip.unwrap_or(Ipv4Addr::UNSPECIFIED).octets();
    NetLease {
        mac,
        address: lease.address.octets(),
        prefix_len: lease.prefix_len,
        interface_prefix_len: lease.interface_prefix(),
        router: octets(lease.router),
        gateway: octets(lease.gateway()),
        dns: lease.dns.iter().map(|d| d.octets()).collect(),
        mtu: lease.mtu.unwrap_or(0),
        lease_secs: lease.lease_secs.unwrap_or(0),
        server_id: lease.server_id.octets(),
        classless_routes: lease
            .classless_routes
            .iter()
            .flatten()
            .map(|r| NetRoute {
                destination: r.destination.octets(),
                prefix_len: r.prefix_len,
                gateway: r.gateway.octets(),
            })
            .collect(),
        elapsed_us: lease.acquired_at_us.saturating_sub(started),
        wire,
    }
}

pub fn ping_text(report: &PingReport) -> String {
    let mut text = String::new();
    let hop = match report.next_hop_mac {
        Some(mac) => alloc::format!("{} is at {}", report.next_hop, mac_text(&mac)),
        None => alloc::format!("{} (no ARP reply seen)", report.next_hop),
    };
    let _ = writeln!(text, "PING {}: next hop {hop}", report.target);
    for reply in &report.replies {
        let _ = writeln!(
            text,
            "  {} bytes from {}: seq={} time={}",
            reply.bytes,
            report.target,
            reply.seq,
            ms(reply.rtt_us)
        );
    }
    let received = report.replies.len() as u64;
    let sent = u64::from(report.sent);
    let loss = (sent - received) * 100 / sent.max(1);
    let _ = write!(text, "{sent} sent, {received} received, {loss}% loss");
    if let (Some(min), Some(max)) = (
        report.replies.iter().map(|r| r.rtt_us).min(),
        report.replies.iter().map(|r| r.rtt_us).max(),
    ) {
        let avg = report.replies.iter().map(|r| r.rtt_us).sum::<u64>() / received;
        let _ = write!(
            text,
            "; rtt min/avg/max {}/{}/{}",
            ms(min),
            ms(avg),
            ms(max)
        );
    }
    text.push('\n');
    text
}

pub fn ping_frame(report: &PingReport, wire: Vec<NetWireEvent>) -> NetPing {
    NetPing {
        target: report.target.octets(),
        next_hop: report.next_hop.octets(),
        next_hop_mac: report.next_hop_mac.unwrap_or_default(),
        sent: report.sent,
        reply_seqs: report.replies.iter().map(|r| r.seq).collect(),
        rtts_us: report.replies.iter().map(|r| r.rtt_us).collect(),
        wire,
    }
}

pub fn http_frame(url: &Url, sent_headers: Vec<String>, r: &Response, t: &TcpTimings) -> NetHttp {
    NetHttp {
        url: alloc::format!("http://{}{}", url.host, url.path),
        sent_headers,
        status: r.status,
        status_line: r.status_line.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        body_bytes: r.body_bytes,
        sha256: r.sha256,
        truncated: r.truncated,
        complete: r.complete,
        connect_us: t.connect_us,
        first_byte_us: t.first_byte_us.unwrap_or(0),
        total_us: t.total_us,
    }
}

/// The body as text when it is printable UTF-8, else as a hex dump.
fn body_text(body: &[u8]) -> String {
    match core::str::from_utf8(body) {
        Ok(s)
            if s.chars()
                .all(|c| !c.is_control() || c == '\n' || c == '\t' || c == '\r') =>
        {
            let mut text = String::from(s.trim_end_matches(['\r', '\n']));
            text.push('\n');
            text
        }
        _ => crate::fmt::hexdump(0, body),
    }
}

pub fn http_text(frame: &NetHttp, max_bytes: usize) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "GET {}", frame.url);
    let _ = writeln!(text, "{}", frame.status_line);
    for (name, value) in &frame.headers {
        let _ = writeln!(text, "{name}: {value}");
    }
    text.push('\n');
    if !frame.body.is_empty() {
        text.push_str(&body_text(&frame.body));
    }
    let digest: String = frame
        .sha256
        .iter()
        .map(|b| alloc::format!("{b:02x}"))
        .collect();
    let _ = writeln!(
        text,
        "body {} bytes{}{}, sha256 {digest}",
        frame.body_bytes,
        if frame.truncated {
            alloc::format!(" (TRUNCATED: showing the first {max_bytes})")
        } else {
            String::new()
        },
        if frame.complete {
            ""
        } else {
            ", INCOMPLETE (the stream ended early)"
        }
    );
    let _ = writeln!(
        text,
        "connect {}, first byte {}, total {}",
        ms(frame.connect_us),
        ms(frame.first_byte_us),
        ms(frame.total_us)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::net::iface::EchoReply;
    use drivers::net::lease::parse_classless_routes;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 128, 0, 2),
            prefix_len: 32,
            router: Some(Ipv4Addr::new(10, 128, 0, 1)),
            dns: alloc::vec![Ipv4Addr::new(169, 254, 169, 254)],
            mtu: Some(1460),
            lease_secs: Some(86400),
            server_id: Ipv4Addr::new(169, 254, 169, 254),
            classless_routes: parse_classless_routes(&[
                32, 10, 128, 0, 1, 0, 0, 0, 0, 0, 10, 128, 0, 1,
            ]),
            acquired_at_us: 1_250_000,
        }
    }

    #[test]
    fn lease_text_and_frame() {
        let text = lease_text(&lease(), 1_000_000);
        assert!(text.contains(
            "lease after 250.000 ms: address 10.128.0.2/32 (interface uses /30, widened"
        ));
        assert!(text.contains("router 10.128.0.1, gateway 10.128.0.1, server id 169.254.169.254"));
        assert!(text.contains("DNS 169.254.169.254, MTU 1460, lease 86400 s"));
        assert!(text.contains("    10.128.0.1/32 on-link\n    0.0.0.0/0 via 10.128.0.1\n"));
        let frame = lease_frame(&lease(), [1; 6], 1_000_000, Vec::new());
        assert_eq!((frame.prefix_len, frame.interface_prefix_len), (32, 30));
        assert_eq!(frame.classless_routes.len(), 2);
        assert_eq!(frame.elapsed_us, 250_000);
    }

    #[test]
    fn ping_text_counts_loss() {
        let report = PingReport {
            target: Ipv4Addr::new(10, 128, 0, 1),
            next_hop: Ipv4Addr::new(10, 128, 0, 1),
            next_hop_mac: Some([0x42, 1, 10, 128, 0, 1]),
            sent: 4,
            replies: alloc::vec![
                EchoReply {
                    seq: 1,
                    rtt_us: 1500,
                    bytes: 64
                },
                EchoReply {
                    seq: 3,
                    rtt_us: 500,
                    bytes: 64
                },
            ],
        };
        let text = ping_text(&report);
        assert!(text.contains("next hop 10.128.0.1 is at 42:01:0a:80:00:01"));
        assert!(text.contains("64 bytes from 10.128.0.1: seq=3 time=0.500 ms"));
        assert!(text
            .contains("4 sent, 2 received, 50% loss; rtt min/avg/max 0.500 ms/1.000 ms/1.500 ms"));
        assert_eq!(ping_frame(&report, Vec::new()).reply_seqs, [1, 3]);
    }

    #[test]
    fn targets_and_metadata_urls() {
        assert_eq!(parse_target("gateway").unwrap(), None);
        assert_eq!(
            parse_target("10.0.0.1").unwrap(),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(parse_target("router").unwrap_err().code, "bad-argument");
        assert_eq!(
            metadata_url("/instance/zone"),
            "http://169.254.169.254/computeMetadata/v1/instance/zone"
        );
    }

    #[test]
    fn http_text_says_truncated() {
        let frame = NetHttp {
            url: String::from("http://169.254.169.254/x"),
            sent_headers: Vec::new(),
            status: 200,
            status_line: String::from("HTTP/1.1 200 OK"),
            headers: alloc::vec![(String::from("Content-Length"), String::from("10"))],
            body: b"0123".to_vec(),
            body_bytes: 10,
            sha256: [0xab; 32],
            truncated: true,
            complete: true,
            connect_us: 1000,
            first_byte_us: 2000,
            total_us: 3000,
        };
        let text = http_text(&frame, 4);
        assert!(text.contains("HTTP/1.1 200 OK\nContent-Length: 10\n\n0123\n"));
        assert!(text.contains("body 10 bytes (TRUNCATED: showing the first 4), sha256 abab"));
        assert!(text.contains("connect 1.000 ms, first byte 2.000 ms, total 3.000 ms"));
        assert!(body_text(&[0, 1, 2]).contains("00 01 02"));
    }
}
