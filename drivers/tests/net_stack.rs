//! The smoltcp stack over the gVNIC driver against the model in-process: a whole DHCP
//! exchange (DISCOVER, OFFER, REQUEST, ACK) with the model's GCE-shaped responder (a /32,
//! router 10.128.0.1, option 121, MTU from the descriptor), the /32 widened so the
//! router's ARP reply is accepted, and pings to the router answered by the responder.

mod gvnic_support;

use std::net::Ipv4Addr;

use drivers::gvnic::State;
use drivers::net::gvnic_nic::GvnicNic;
use drivers::net::iface::{self, PingRequest};
use drivers::net::lease::Route;
use gvnic_model::{Direction, Formats, ModelConfig, QueueFormat};
use gvnic_support::{rig, Rig};

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 1);

fn up(rig: &mut Rig) {
    rig.bring_up(State::QueuesUp).expect("bring-up");
}

/// DHCP message types the model's wire saw, in order, by direction.
fn dhcp_types(rig: &Rig) -> Vec<(Direction, u8)> {
    rig.model()
        .wire()
        .iter()
        .filter(|f| f.bytes.len() > 282 && f.bytes[12..14] == [8, 0] && f.bytes[23] == 17)
        .filter_map(|f| {
            let bootp = &f.bytes[42..];
            let opts = gvnic_model::responder::parse_options(&bootp[240..]);
            opts.iter()
                .find(|(c, _)| *c == 53)
                .map(|(_, v)| (f.direction, v[0]))
        })
        .collect()
}

#[test]
fn dhcp_takes_a_gce_shaped_lease_and_pings_the_router() {
    let mut rig = rig(ModelConfig::default());
    up(&mut rig);
    let model_mtu = ModelConfig::default().mtu;
    let outcome = {
        let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).expect("described");
        iface::acquire_lease(&mut nic, &rig.clock, 10_000_000)
    };
    let lease = outcome.result.expect("a lease");
    assert_eq!(
        lease.address,
        Ipv4Addr::new(10, 128, 0, 2),
        "the MAC's IPv4"
    );
    assert_eq!(lease.prefix_len, 32);
    assert_eq!(lease.router, Some(ROUTER));
    assert_eq!(lease.server_id, Ipv4Addr::new(169, 254, 169, 254));
    assert_eq!(lease.lease_secs, Some(86400));
    assert_eq!(lease.mtu, Some(model_mtu));
    assert_eq!(
        lease.classless_routes.as_deref(),
        Some(
            &[
                Route {
                    destination: ROUTER,
                    prefix_len: 32,
                    gateway: Ipv4Addr::UNSPECIFIED
                },
                Route {
                    destination: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                    gateway: ROUTER
                }
            ][..]
        )
    );
    assert_eq!(lease.interface_prefix(), 30);
    // The wire, seen by the model: DISCOVER, OFFER, REQUEST, ACK.
    assert_eq!(
        dhcp_types(&rig),
        [
            (Direction::Tx, 1),
            (Direction::Rx, 2),
            (Direction::Tx, 3),
            (Direction::Rx, 5)
        ]
    );
    let kinds: Vec<&str> = outcome.trace.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        ["dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack"]
    );

    let ping = {
        let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).unwrap();
        let request = PingRequest {
            target: ROUTER,
            count: 3,
            timeout_us: 1_000_000,
        };
        iface::ping(&mut nic, &rig.clock, &lease, request)
    };
    let kinds: Vec<&str> = ping.trace.iter().map(|t| t.kind).collect();
    let report = ping.result.expect("replies");
    assert_eq!(report.sent, 3);
    assert_eq!(
        report.replies.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        report.replies.iter().all(|r| r.rtt_us > 0),
        "model time passes"
    );
    assert_eq!(report.next_hop, ROUTER);
    assert_eq!(
        report.next_hop_mac,
        Some([0x42, 0x01, 0x0a, 0x80, 0x00, 0x01])
    );
    assert_eq!(kinds[..2], ["arp-request", "arp-reply"], "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "icmp-echo-reply").count(), 3);
    rig.assert_no_violations();
}

/// The stack sits on the driver's format-neutral transmit/receive, so a lease and a ping must
/// work the same in every queue format (DQO's completions come through the armed dummy
/// MSI-X vectors, GQI's through the counters and sequence numbers).
#[test]
fn lease_and_ping_in_every_queue_format() {
    for format in QueueFormat::ALL {
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            ..ModelConfig::default()
        });
        up(&mut rig);
        let lease = {
            let mut nic =
                GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).expect("described");
            iface::acquire_lease(&mut nic, &rig.clock, 10_000_000)
                .result
                .unwrap_or_else(|e| panic!("{}: no lease: {e:?}", format.name()))
        };
        assert_eq!(
            lease.address,
            Ipv4Addr::new(10, 128, 0, 2),
            "{}",
            format.name()
        );
        let report = {
            let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).unwrap();
            let request = PingRequest {
                target: ROUTER,
                count: 2,
                timeout_us: 1_000_000,
            };
            iface::ping(&mut nic, &rig.clock, &lease, request)
                .result
                .unwrap_or_else(|e| panic!("{}: no replies: {e:?}", format.name()))
        };
        assert_eq!(report.replies.len(), 2, "{}", format.name());
        rig.assert_no_violations();
    }
}

#[test]
fn no_server_is_a_named_no_lease_error() {
    let mut config = ModelConfig::default();
    config.responder.enabled = false;
    let mut rig = rig(config);
    up(&mut rig);
    let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).unwrap();
    let outcome = iface::acquire_lease(&mut nic, &rig.clock, 2_500_000);
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), "net-no-lease");
    // The 1 s retry: a DISCOVER at 0, 1 and 2 s.
    assert!(err.to_string().contains("3 DISCOVER, 0 OFFER"), "{err}");
}

/// GCE's lease, written out (what the responder hands out).
fn gce_lease() -> drivers::net::lease::Lease {
    drivers::net::lease::Lease {
        address: Ipv4Addr::new(10, 128, 0, 2),
        prefix_len: 32,
        router: Some(ROUTER),
        dns: vec![],
        mtu: Some(1460),
        lease_secs: Some(86400),
        server_id: Ipv4Addr::new(169, 254, 169, 254),
        classless_routes: None,
        acquired_at_us: 0,
    }
}

#[test]
fn a_host_that_never_echoes_is_no_echo_reply() {
    let mut rig = rig(ModelConfig::default());
    up(&mut rig);
    let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).unwrap();
    let request = PingRequest {
        target: Ipv4Addr::new(10, 128, 7, 7),
        count: 2,
        timeout_us: 300_000,
    };
    // Off the widened /30: routed via the router, which answers ARP but echoes only for
    // itself.
    let outcome = iface::ping(&mut nic, &rig.clock, &gce_lease(), request);
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), "net-no-echo-reply", "{err}");
    let requests = outcome
        .trace
        .iter()
        .filter(|t| t.kind == "icmp-echo-request");
    assert!(requests
        .clone()
        .all(|t| t.dst_ip == Ipv4Addr::new(10, 128, 7, 7)));
    assert_eq!(requests.count(), 2);
}

#[test]
fn a_silent_router_is_no_arp_reply() {
    let mut config = ModelConfig::default();
    config.responder.enabled = false;
    let mut rig = rig(config);
    up(&mut rig);
    let mut nic = GvnicNic::new(&mut rig.nic, &rig.clock, &mut rig.pool).unwrap();
    let request = PingRequest {
        target: ROUTER,
        count: 1,
        timeout_us: 1_500_000,
    };
    let outcome = iface::ping(&mut nic, &rig.clock, &gce_lease(), request);
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), "net-no-arp-reply", "{err}");
    let asked = outcome.trace.iter().filter(|t| t.kind == "arp-request");
    assert!(asked.clone().all(|t| t.dst_ip == ROUTER));
    assert!(asked.count() >= 1);
}

/// Ctrl-C after a while: the simulated clock reports an interrupt once `after_us` passed.
struct CtrlCAfter<'a> {
    clock: &'a gvnic_support::SimClock,
    after_us: u64,
}

impl drivers::platform::Clock for CtrlCAfter<'_> {
    fn now_us(&self) -> u64 {
        self.clock.now_us()
    }
    fn relax(&self) {
        self.clock.relax()
    }
    fn interrupted(&self) -> bool {
        self.clock.now_us() >= self.after_us
    }
}

#[test]
fn ctrl_c_ends_every_network_wait() {
    use drivers::platform::Clock;
    let mut config = ModelConfig::default();
    config.responder.enabled = false;
    let mut rig = rig(config);
    up(&mut rig);
    let start = rig.clock.now_us();
    let clock = CtrlCAfter {
        clock: &rig.clock,
        after_us: start + 200_000,
    };
    let mut nic = GvnicNic::new(&mut rig.nic, &clock, &mut rig.pool).unwrap();
    let dhcp = iface::acquire_lease(&mut nic, &clock, 30_000_000);
    assert_eq!(dhcp.result.unwrap_err().code(), "interrupted");
    let request = PingRequest {
        target: ROUTER,
        count: 5,
        timeout_us: 10_000_000,
    };
    let ping = iface::ping(&mut nic, &clock, &gce_lease(), request);
    assert_eq!(ping.result.unwrap_err().code(), "interrupted");
    // The ping's interrupted TX left a descriptor the device completes a moment later: the
    // next send waits for it (the adapter's grace) instead of failing gvnic-tx-busy.
    let tcp = iface::tcp_exchange(
        &mut nic,
        &clock,
        &gce_lease(),
        &iface::TcpRequest {
            ip: ROUTER,
            port: 80,
            send: b"GET / HTTP/1.1\r\n\r\n",
            timeout_us: 30_000_000,
        },
        &mut |_| Ok(false),
    );
    assert_eq!(tcp.result.unwrap_err().code(), "interrupted");
    // Each ended at the interrupt, far before its deadline.
    assert!(
        clock.now_us() - start < 1_000_000,
        "{}",
        clock.now_us() - start
    );
    rig.assert_no_violations();
}
