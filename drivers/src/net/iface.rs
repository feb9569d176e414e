//! The smoltcp interface over a [`Nic`]: one poll loop, and the three things the network
//! commands do with it (take a DHCP lease, ping, one TCP exchange).
//!
//! The loop polls smoltcp, checks its goal, and sleeps only in `Phy::wait_rx`, i.e. in
//! the driver's `receive`, which waits through `platform::wait_for` (Ctrl-C ends it with
//! an `interrupted` error) for at most smoltcp's next deadline. Every call has its own
//! deadline, so nothing here waits unbounded. Each call builds a fresh interface: a lease
//! is kept between commands by the caller, the ARP cache is not (each command shows its
//! own ARP exchange).

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{dhcpv4, icmp, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Cidr,
};

use super::error::NetError;
use super::lease::{mask_prefix, parse_classless_routes, Lease};
use super::nic::Nic;
use super::phy::{Phy, Traced};
use crate::platform::Clock;

/// The longest single sleep between polls, so a slow smoltcp deadline never hides an
/// interrupt-free stall (policy).
const MAX_SLEEP_US: u64 = 50_000;
/// What we ask the DHCP server for: mask, router, DNS, domain, MTU, broadcast, lease,
/// server id, classless routes (GCE sends 121: platform-notes §5).
const DHCP_PARAMETERS: [u8; 9] = [1, 3, 6, 15, 26, 28, 51, 54, 121];
/// DHCP option codes read from the ACK (RFC 2132, RFC 3442).
const OPTION_MTU: u8 = 26;
const OPTION_CLASSLESS_ROUTES: u8 = 121;
/// First DISCOVER retry after this long; smoltcp's 10 s default is longer than most
/// command timeouts (policy).
const DHCP_RETRY_MS: u64 = 1000;
/// Echo payload bytes, as Linux ping's default (policy).
pub const PING_PAYLOAD_BYTES: usize = 56;
/// TCP buffers (policy: a metadata answer is small; a larger body streams through).
const TCP_BUFFER_BYTES: usize = 16 * 1024;
/// How long a finished TCP exchange waits for its FIN to be acknowledged (policy).
const TCP_CLOSE_GRACE_US: u64 = 200_000;

/// The result of a network call and what crossed the wire meanwhile.
pub struct Outcome<T> {
    pub result: Result<T, NetError>,
    pub trace: Vec<Traced>,
    pub frames_sent: u64,
    pub frames_received: u64,
}

fn instant(us: u64) -> Instant {
    Instant::from_micros(us as i64)
}

/// The interface, its sockets, and the device under them.
struct Net<'n, 's> {
    phy: Phy<'n>,
    iface: Interface,
    sockets: SocketSet<'s>,
    clock: &'n dyn Clock,
}

impl<'n, 's> Net<'n, 's> {
    fn new(nic: &'n mut dyn Nic, clock: &'n dyn Clock) -> Self {
        let mut phy = Phy::new(nic, clock);
        let mac = phy.mac();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // Seeds TCP sequence numbers and ports: time and MAC differ per boot and machine.
        config.random_seed = clock.now_us()
            ^ u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]])
                .rotate_left(17);
        let iface = Interface::new(config, &mut phy, instant(clock.now_us()));
        Net {
            phy,
            iface,
            sockets: SocketSet::new(Vec::new()),
            clock,
        }
    }

    /// Uses a lease: address with the widened prefix (lease.rs says why), default route.
    fn configure(&mut self, lease: &Lease) {
        let cidr = Ipv4Cidr::new(lease.address, lease.interface_prefix());
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gateway) = lease.gateway() {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gateway);
        }
    }

    /// Polls until `goal` answers or the deadline passes (Ok(None)).
    fn run<T>(
        &mut self,
        deadline_us: u64,
        mut goal: impl FnMut(&mut Self) -> Result<Option<T>, NetError>,
    ) -> Result<Option<T>, NetError> {
        loop {
            let now = self.clock.now_us();
            self.iface
                .poll(instant(now), &mut self.phy, &mut self.sockets);
            if let Some(err) = self.phy.error.take() {
                return Err(err.into());
            }
            if let Some(value) = goal(self)? {
                return Ok(Some(value));
            }
            let now = self.clock.now_us();
            if now >= deadline_us {
                return Ok(None);
            }
            let mut sleep = (deadline_us - now).min(MAX_SLEEP_US);
            if let Some(delay) = self.iface.poll_delay(instant(now), &self.sockets) {
                sleep = sleep.min(delay.total_micros());
            }
            // At least 1 us, so a clock that only moves while waiting (a simulation) moves.
            self.phy.wait_rx(sleep.max(1));
            if let Some(err) = self.phy.error.take() {
                return Err(err.into());
            }
        }
    }

    fn finish<T>(self, result: Result<T, NetError>) -> Outcome<T> {
        Outcome {
            result,
            trace: self.phy.trace,
            frames_sent: self.phy.sent,
            frames_received: self.phy.received,
        }
    }

    /// The address the frame for `target` goes to first.
    fn next_hop(&self, lease: &Lease, target: Ipv4Addr) -> Result<Ipv4Addr, NetError> {
        let subnet = Ipv4Cidr::new(lease.address, lease.interface_prefix());
        if subnet.contains_addr(&target) {
            return Ok(target);
        }
        lease.gateway().ok_or(NetError::NoRoute { target })
    }
}

fn count(trace: &[Traced], kind: &str) -> u32 {
    trace.iter().filter(|t| t.kind == kind).count() as u32
}

/// The lease from smoltcp's view of the ACK plus the options it does not keep (MTU, lease
/// time, classless routes), read from the ACK's own bytes.
fn lease_of(config: &dhcpv4::Config<'_>, now_us: u64) -> Lease {
    let mut lease = Lease {
        address: config.address.address(),
        prefix_len: config.address.prefix_len(),
        router: config.router,
        dns: config.dns_servers.iter().copied().collect(),
        mtu: None,
        lease_secs: None,
        server_id: config.server.identifier,
        classless_routes: None,
        acquired_at_us: now_us,
    };
    if let Some(packet) = &config.packet {
        for option in packet.options() {
            match option.kind {
                OPTION_MTU if option.data.len() == 2 => {
                    lease.mtu = Some(u16::from_be_bytes([option.data[0], option.data[1]]))
                }
                OPTION_CLASSLESS_ROUTES => {
                    lease.classless_routes =
                        Some(parse_classless_routes(option.data).unwrap_or_default())
                }
                _ => {}
            }
        }
        if let Ok(repr) = smoltcp::wire::DhcpRepr::parse(packet) {
            lease.lease_secs = repr.lease_duration;
            if let Some(prefix) = repr.subnet_mask.and_then(mask_prefix) {
                lease.prefix_len = prefix;
            }
        }
    }
    lease
}

/// DISCOVER, OFFER, REQUEST, ACK, through smoltcp's DHCP client, within `timeout_us`.
pub fn acquire_lease(nic: &mut dyn Nic, clock: &dyn Clock, timeout_us: u64) -> Outcome<Lease> {
    let mut packet = vec![0u8; 1500];
    let mut net = Net::new(nic, clock);
    let mut socket = dhcpv4::Socket::new();
    socket.set_receive_packet_buffer(&mut packet);
    socket.set_parameter_request_list(&DHCP_PARAMETERS);
    let mut retry = socket.get_retry_config();
    retry.discover_timeout = Duration::from_millis(DHCP_RETRY_MS);
    retry.initial_request_timeout = Duration::from_millis(DHCP_RETRY_MS);
    socket.set_retry_config(retry);
    let handle = net.sockets.add(socket);
    let deadline = clock.now_us().saturating_add(timeout_us);
    let got = net.run(deadline, |net| {
        let now = net.clock.now_us();
        let socket = net.sockets.get_mut::<dhcpv4::Socket>(handle);
        Ok(match socket.poll() {
            Some(dhcpv4::Event::Configured(config)) => Some(lease_of(&config, now)),
            _ => None,
        })
    });
    let result = match got {
        Ok(Some(lease)) => Ok(lease),
        Ok(None) => {
            let trace = &net.phy.trace;
            Err(NetError::NoLease {
                timeout_ms: timeout_us / 1000,
                discovers: count(trace, "dhcp-discover"),
                offers: count(trace, "dhcp-offer"),
                requests: count(trace, "dhcp-request"),
                naks: count(trace, "dhcp-nak"),
            })
        }
        Err(err) => Err(err),
    };
    net.finish(result)
}

/// One echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub seq: u16,
    pub rtt_us: u64,
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReport {
    pub target: Ipv4Addr,
    pub next_hop: Ipv4Addr,
    /// The next hop's MAC, from its ARP reply (None if it never sent one).
    pub next_hop_mac: Option<[u8; 6]>,
    pub sent: u16,
    pub replies: Vec<EchoReply>,
}

/// What one ping run asks for.
#[derive(Debug, Clone, Copy)]
pub struct PingRequest {
    pub target: Ipv4Addr,
    pub count: u16,
    /// Per echo request.
    pub timeout_us: u64,
}

fn arp_reply_from(trace: &[Traced], ip: Ipv4Addr) -> Option<[u8; 6]> {
    trace
        .iter()
        .find(|t| !t.tx && t.kind == "arp-reply" && t.src_ip == ip)
        .map(|t| t.src_mac)
}

/// ICMP echo requests one after another (the next when a reply came or its timeout ran
/// out), with per-reply round trips. The first one's round trip includes the ARP exchange.
pub fn ping(
    nic: &mut dyn Nic,
    clock: &dyn Clock,
    lease: &Lease,
    request: PingRequest,
) -> Outcome<PingReport> {
    let mut net = Net::new(nic, clock);
    net.configure(lease);
    let result = ping_on(&mut net, lease, request);
    net.finish(result)
}

fn ping_on(net: &mut Net, lease: &Lease, request: PingRequest) -> Result<PingReport, NetError> {
    let next_hop = net.next_hop(lease, request.target)?;
    let buffer = || {
        icmp::PacketBuffer::new(
            vec![icmp::PacketMetadata::EMPTY; 4],
            vec![0u8; 4 * (PING_PAYLOAD_BYTES + 64)],
        )
    };
    let mut socket = icmp::Socket::new(buffer(), buffer());
    let ident = (net.clock.now_us() as u16) | 1;
    socket
        .bind(icmp::Endpoint::Ident(ident))
        .map_err(|_| NetError::BadResponse("ICMP bind".into()))?;
    let handle: SocketHandle = net.sockets.add(socket);
    let caps = ChecksumCapabilities::default();
    let mut replies = Vec::new();
    let mut payload = [0u8; PING_PAYLOAD_BYTES];
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte = i as u8;
    }
    for seq in 1..=request.count {
        let echo = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: seq,
            data: &payload,
        };
        let sent_at = net.clock.now_us();
        {
            let socket = net.sockets.get_mut::<icmp::Socket>(handle);
            let buf = socket
                .send(echo.buffer_len(), IpAddress::Ipv4(request.target))
                .map_err(|_| NetError::BadResponse("ICMP send buffer full".into()))?;
            echo.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        }
        let deadline = sent_at.saturating_add(request.timeout_us);
        let reply = net.run(deadline, |net| {
            let now = net.clock.now_us();
            let socket = net.sockets.get_mut::<icmp::Socket>(handle);
            while let Ok((data, from)) = socket.recv() {
                let Ok(packet) = Icmpv4Packet::new_checked(data) else {
                    continue;
                };
                let Ok(repr) = Icmpv4Repr::parse(&packet, &caps) else {
                    continue;
                };
                if let Icmpv4Repr::EchoReply {
                    ident: id,
                    seq_no,
                    data: echoed,
                } = repr
                {
                    if id == ident
                        && seq_no == seq
                        && echoed == payload
                        && from == IpAddress::Ipv4(request.target)
                    {
                        return Ok(Some(EchoReply {
                            seq,
                            rtt_us: now.saturating_sub(sent_at),
                            bytes: data.len(),
                        }));
                    }
                }
            }
            Ok(None)
        })?;
        replies.extend(reply);
    }
    let next_hop_mac = arp_reply_from(&net.phy.trace, next_hop);
    if replies.is_empty() {
        return Err(if next_hop_mac.is_none() {
            NetError::NoArpReply {
                next_hop,
                timeout_ms: request.timeout_us * u64::from(request.count) / 1000,
            }
        } else {
            NetError::NoEchoReply {
                target: request.target,
                sent: request.count,
            }
        });
    }
    Ok(PingReport {
        target: request.target,
        next_hop,
        next_hop_mac,
        sent: request.count,
        replies,
    })
}

/// One TCP request/response exchange.
pub struct TcpRequest<'r> {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub send: &'r [u8],
    /// For connect and for the whole exchange.
    pub timeout_us: u64,
}

/// Timings of an exchange, from the SYN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpTimings {
    pub connect_us: u64,
    pub first_byte_us: Option<u64>,
    pub total_us: u64,
    /// The server closed (FIN) before we did.
    pub closed_by_server: bool,
    pub next_hop_mac: Option<[u8; 6]>,
}

/// Connects, sends `request.send`, and hands every received byte to `sink` until it says
/// the response is complete (true) or the server closes.
pub fn tcp_exchange(
    nic: &mut dyn Nic,
    clock: &dyn Clock,
    lease: &Lease,
    request: &TcpRequest,
    sink: &mut dyn FnMut(&[u8]) -> Result<bool, NetError>,
) -> Outcome<TcpTimings> {
    let mut net = Net::new(nic, clock);
    net.configure(lease);
    let result = tcp_on(&mut net, lease, request, sink);
    net.finish(result)
}

fn tcp_on(
    net: &mut Net,
    lease: &Lease,
    request: &TcpRequest,
    sink: &mut dyn FnMut(&[u8]) -> Result<bool, NetError>,
) -> Result<TcpTimings, NetError> {
    let next_hop = net.next_hop(lease, request.ip)?;
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER_BYTES]),
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER_BYTES]),
    );
    let handle = net.sockets.add(socket);
    let start = net.clock.now_us();
    let deadline = start.saturating_add(request.timeout_us);
    // Ephemeral range (RFC 6335), from the clock.
    let local_port = 49152 + (start as u16 % 16384);
    let remote = (IpAddress::Ipv4(request.ip), request.port);
    net.sockets
        .get_mut::<tcp::Socket>(handle)
        .connect(net.iface.context(), remote, local_port)
        .map_err(|_| NetError::BadUrl("cannot connect to that address".into()))?;
    let (ip, port) = (request.ip, request.port);
    let mut timings = TcpTimings::default();
    let mut established = false;
    let mut sent = 0usize;
    let mut done = false;
    let mut received = 0u64;
    let outcome = net.run(deadline, |net| {
        let now = net.clock.now_us();
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);
        let state = socket.state();
        if !established {
            match state {
                tcp::State::SynSent | tcp::State::SynReceived => return Ok(None),
                tcp::State::Closed => return Err(NetError::ConnectionRefused { ip, port }),
                _ => {
                    established = true;
                    timings.connect_us = now - start;
                }
            }
        }
        if sent < request.send.len() && socket.may_send() {
            sent += socket
                .send_slice(&request.send[sent..])
                .map_err(|_| NetError::ConnectionReset { ip, port })?;
        }
        while socket.can_recv() {
            let mut failed = None;
            let got = socket.recv(|data| {
                received += data.len() as u64;
                match sink(data) {
                    Ok(complete) => done |= complete,
                    Err(err) => failed = Some(err),
                }
                (data.len(), data.len())
            });
            if let Some(err) = failed {
                return Err(err);
            }
            if matches!(got, Ok(n) if n > 0) && timings.first_byte_us.is_none() {
                timings.first_byte_us = Some(now - start);
            }
        }
        if done {
            return Ok(Some(()));
        }
        if state == tcp::State::Closed {
            // Closed from Established without the server's FIN first: its RST.
            return Err(NetError::ConnectionReset { ip, port });
        }
        if !socket.may_recv() {
            timings.closed_by_server = true;
            return Ok(Some(()));
        }
        Ok(None)
    });
    timings.next_hop_mac = arp_reply_from(&net.phy.trace, next_hop);
    match outcome {
        Ok(Some(())) => {}
        Ok(None) if !established => {
            if timings.next_hop_mac.is_none() {
                return Err(NetError::NoArpReply {
                    next_hop,
                    timeout_ms: request.timeout_us / 1000,
                });
            }
            return Err(NetError::ConnectTimeout {
                ip,
                port,
                timeout_ms: request.timeout_us / 1000,
            });
        }
        Ok(None) => {
            return Err(NetError::ResponseTimeout {
                received,
                timeout_ms: request.timeout_us / 1000,
            })
        }
        Err(err) => return Err(err),
    }
    timings.total_us = net.clock.now_us() - start;
    // Say goodbye properly, briefly: our FIN, and its ACK if it comes soon.
    net.sockets.get_mut::<tcp::Socket>(handle).close();
    let grace = net.clock.now_us().saturating_add(TCP_CLOSE_GRACE_US);
    let _ = net.run(grace, |net| {
        let state = net.sockets.get_mut::<tcp::Socket>(handle).state();
        Ok(matches!(state, tcp::State::Closed | tcp::State::TimeWait).then_some(()))
    });
    Ok(timings)
}
