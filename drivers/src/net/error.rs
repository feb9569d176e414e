//! Everything the network commands can fail with, each with a stable name.

use alloc::string::String;
use core::fmt;
use core::net::Ipv4Addr;

use super::nic::NicError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The NIC failed (its own code, `interrupted` for Ctrl-C).
    Nic(NicError),
    /// No DHCP ACK before the deadline; what did come back is in the counts.
    NoLease {
        timeout_ms: u64,
        discovers: u32,
        offers: u32,
        requests: u32,
        naks: u32,
    },
    /// Nobody answered our ARP requests for the next hop.
    NoArpReply { next_hop: Ipv4Addr, timeout_ms: u64 },
    /// The next hop answered ARP but no echo reply came back.
    NoEchoReply { target: Ipv4Addr, sent: u16 },
    /// The target is off-link and the lease names no gateway.
    NoRoute { target: Ipv4Addr },
    /// The server answered our SYN with a RST.
    ConnectionRefused { ip: Ipv4Addr, port: u16 },
    /// The server reset an established connection.
    ConnectionReset { ip: Ipv4Addr, port: u16 },
    /// No SYN-ACK before the deadline.
    ConnectTimeout {
        ip: Ipv4Addr,
        port: u16,
        timeout_ms: u64,
    },
    /// Connected, but the response did not end before the deadline.
    ResponseTimeout { received: u64, timeout_ms: u64 },
    /// Not an `http://IPv4[:port]/path` URL.
    BadUrl(String),
    /// The server's bytes are not an HTTP/1.x response.
    BadResponse(String),
}

impl NetError {
    /// The stable kebab-case name hosts match on.
    pub fn code(&self) -> &'static str {
        match self {
            NetError::Nic(err) => err.code,
            NetError::NoLease { .. } => "net-no-lease",
            NetError::NoArpReply { .. } => "net-no-arp-reply",
            NetError::NoEchoReply { .. } => "net-no-echo-reply",
            NetError::NoRoute { .. } => "net-no-route",
            NetError::ConnectionRefused { .. } => "net-connection-refused",
            NetError::ConnectionReset { .. } => "net-connection-reset",
            NetError::ConnectTimeout { .. } => "net-connect-timeout",
            NetError::ResponseTimeout { .. } => "net-response-timeout",
            NetError::BadUrl(_) => "net-bad-url",
            NetError::BadResponse(_) => "net-bad-response",
        }
    }
}

impl From<NicError> for NetError {
    fn from(err: NicError) -> Self {
        NetError::Nic(err)
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Nic(err) => write!(f, "{err}"),
            NetError::NoLease {
                timeout_ms,
                discovers,
                offers,
                requests,
                naks,
            } => write!(
                f,
                "no DHCP lease within {timeout_ms} ms ({discovers} DISCOVER, {offers} OFFER, \
                 {requests} REQUEST, {naks} NAK on the wire)"
            ),
            NetError::NoArpReply {
                next_hop,
                timeout_ms,
            } => write!(f, "no ARP reply from {next_hop} within {timeout_ms} ms"),
            NetError::NoEchoReply { target, sent } => write!(
                f,
                "{sent} echo request(s) to {target}, no reply (the next hop answered ARP)"
            ),
            NetError::NoRoute { target } => write!(
                f,
                "{target} is not on the link and the lease has no gateway"
            ),
            NetError::ConnectionRefused { ip, port } => {
                write!(f, "connection to {ip}:{port} refused (RST)")
            }
            NetError::ConnectionReset { ip, port } => {
                write!(f, "connection to {ip}:{port} reset by the server")
            }
            NetError::ConnectTimeout {
                ip,
                port,
                timeout_ms,
            } => write!(f, "no answer from {ip}:{port} within {timeout_ms} ms"),
            NetError::ResponseTimeout {
                received,
                timeout_ms,
            } => write!(
                f,
                "the response did not end within {timeout_ms} ms ({received} bytes received)"
            ),
            NetError::BadUrl(why) => write!(f, "bad URL: {why}"),
            NetError::BadResponse(why) => write!(f, "not an HTTP response: {why}"),
        }
    }
}
