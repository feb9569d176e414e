//! smoltcp's `phy::Device` over a [`Nic`], and a short trace of what crossed the wire.
//!
//! smoltcp only polls: `receive` must answer at once. So frames are fetched ahead, either
//! by a non-blocking look (`receive(0)`) when smoltcp asks, or by [`Phy::wait_rx`], the
//! one place the poll loop (iface.rs) sleeps, bounded by smoltcp's next deadline. A driver
//! error on TX cannot be returned through a token, so it is kept and the poll loop ends
//! with it. The trace names every frame (ARP request/reply, DHCP message type, ICMP echo,
//! TCP flags) so a command can show the DORA exchange and the ARP that the stack did.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetFrame,
    EthernetProtocol, Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use super::nic::{Nic, NicError};
use crate::platform::Clock;

/// Ethernet header bytes (no FCS, no VLAN): smoltcp's MTU counts them, the NIC's does not.
const ETHERNET_HEADER_BYTES: usize = 14;
/// Frames kept in the trace; a TCP transfer can make many, a report needs the first ones
/// (policy).
pub const TRACE_MAX_ENTRIES: usize = 64;
/// Frames fetched ahead of smoltcp at most; more wait in the device's RX ring (policy).
const RX_AHEAD_MAX_FRAMES: usize = 32;

/// One frame that crossed the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traced {
    /// Sent by us (true) or received.
    pub tx: bool,
    /// Clock time, microseconds.
    pub at_us: u64,
    pub bytes: usize,
    /// `arp-request`, `arp-reply`, `dhcp-discover`, `dhcp-offer`, `dhcp-request`,
    /// `dhcp-ack`, `dhcp-nak`, `dhcp-other`, `icmp-echo-request`, `icmp-echo-reply`,
    /// `icmp-other`, `tcp`, `udp`, `ipv4`, `ethernet` (anything else).
    pub kind: &'static str,
    pub src_mac: [u8; 6],
    /// The IPv4 sender (ARP: sender protocol address), or 0.0.0.0.
    pub src_ip: Ipv4Addr,
    /// The IPv4 destination (ARP: target protocol address), or 0.0.0.0.
    pub dst_ip: Ipv4Addr,
}

/// What a frame is, for the trace. Pure: uses smoltcp's wire parsers only.
pub fn classify(frame: &[u8]) -> (&'static str, [u8; 6], Ipv4Addr, Ipv4Addr) {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return ("ethernet", [0; 6], unspecified, unspecified);
    };
    let src_mac = eth.src_addr().0;
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let parsed = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p));
            match parsed {
                Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) => {
                    let kind = match operation {
                        ArpOperation::Request => "arp-request",
                        ArpOperation::Reply => "arp-reply",
                        _ => "arp-other",
                    };
                    (kind, src_mac, source_protocol_addr, target_protocol_addr)
                }
                _ => ("arp-other", src_mac, unspecified, unspecified),
            }
        }
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return ("ethernet", src_mac, unspecified, unspecified);
            };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let kind = match ip.next_header() {
                IpProtocol::Udp => udp_kind(ip.payload()),
                IpProtocol::Icmp => match Icmpv4Packet::new_checked(ip.payload()) {
                    Ok(icmp) if icmp.msg_type() == Icmpv4Message::EchoRequest => {
                        "icmp-echo-request"
                    }
                    Ok(icmp) if icmp.msg_type() == Icmpv4Message::EchoReply => "icmp-echo-reply",
                    _ => "icmp-other",
                },
                IpProtocol::Tcp => match TcpPacket::new_checked(ip.payload()) {
                    Ok(tcp) if tcp.rst() => "tcp-rst",
                    Ok(tcp) if tcp.syn() => "tcp-syn",
                    Ok(tcp) if tcp.fin() => "tcp-fin",
                    _ => "tcp",
                },
                _ => "ipv4",
            };
            (kind, src_mac, src, dst)
        }
        _ => ("ethernet", src_mac, unspecified, unspecified),
    }
}

fn udp_kind(payload: &[u8]) -> &'static str {
    let Ok(udp) = UdpPacket::new_checked(payload) else {
        return "udp";
    };
    if !matches!((udp.src_port(), udp.dst_port()), (67, 68) | (68, 67)) {
        return "udp";
    }
    let Ok(packet) = DhcpPacket::new_checked(udp.payload()) else {
        return "dhcp-other";
    };
    match DhcpRepr::parse(&packet).map(|r| r.message_type) {
        Ok(DhcpMessageType::Discover) => "dhcp-discover",
        Ok(DhcpMessageType::Offer) => "dhcp-offer",
        Ok(DhcpMessageType::Request) => "dhcp-request",
        Ok(DhcpMessageType::Ack) => "dhcp-ack",
        Ok(DhcpMessageType::Nak) => "dhcp-nak",
        _ => "dhcp-other",
    }
}

/// The smoltcp device over a NIC.
pub struct Phy<'n> {
    nic: &'n mut dyn Nic,
    clock: &'n dyn Clock,
    ahead: VecDeque<Vec<u8>>,
    /// The first driver error since the poll loop last looked.
    pub error: Option<NicError>,
    pub trace: Vec<Traced>,
    /// Frames sent and received, trace or not.
    pub sent: u64,
    pub received: u64,
}

impl<'n> Phy<'n> {
    pub fn new(nic: &'n mut dyn Nic, clock: &'n dyn Clock) -> Self {
        Phy {
            nic,
            clock,
            ahead: VecDeque::new(),
            error: None,
            trace: Vec::new(),
            sent: 0,
            received: 0,
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.nic.mac()
    }

    fn note(&mut self, tx: bool, frame: &[u8]) {
        if tx {
            self.sent += 1;
        } else {
            self.received += 1;
        }
        if self.trace.len() < TRACE_MAX_ENTRIES {
            let (kind, src_mac, src_ip, dst_ip) = classify(frame);
            self.trace.push(Traced {
                tx,
                at_us: self.clock.now_us(),
                bytes: frame.len(),
                kind,
                src_mac,
                src_ip,
                dst_ip,
            });
        }
    }

    fn fetch(&mut self, timeout_us: u64) {
        if self.error.is_some() || self.ahead.len() >= RX_AHEAD_MAX_FRAMES {
            return;
        }
        match self.nic.receive(timeout_us) {
            Ok(Some(frame)) => {
                self.note(false, &frame);
                self.ahead.push_back(frame);
            }
            Ok(None) => {}
            Err(err) => self.error = Some(err),
        }
    }

    /// Waits up to `timeout_us` for a frame (unless one is already waiting).
    pub fn wait_rx(&mut self, timeout_us: u64) {
        if self.ahead.is_empty() {
            self.fetch(timeout_us);
        }
    }
}

pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub struct TxToken<'a, 'n>(&'a mut Phy<'n>);

impl phy::TxToken for TxToken<'_, '_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let result = f(&mut frame);
        let phy = self.0;
        if phy.error.is_none() {
            match phy.nic.transmit(&frame) {
                Ok(()) => phy.note(true, &frame),
                Err(err) => phy.error = Some(err),
            }
        }
        result
    }
}

impl<'n> phy::Device for Phy<'n> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, 'n>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.ahead.is_empty() {
            self.fetch(0);
        }
        let frame = self.ahead.pop_front()?;
        Some((RxToken(frame), TxToken(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        if self.error.is_some() {
            return None;
        }
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.nic.mtu() + ETHERNET_HEADER_BYTES;
        caps.max_burst_size = Some(1);
        caps
    }
}
