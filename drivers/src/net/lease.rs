//! A DHCP lease as a monitor reports and uses it, and the one GCE quirk in using it: the
//! /32 address with a router outside it.
//!
//! GCE hands out a /32 mask, router x.y.z.1, and option 121 routes "router/32 on-link,
//! 0.0.0.0/0 via router" (platform-notes §5). smoltcp drops ARP from senders outside the
//! interface's subnet, so with the /32 taken verbatim the router's ARP reply is ignored and
//! nothing leaves the link. [`Lease::interface_prefix`] widens the prefix just enough to
//! cover the next hop; [`Lease::gateway`] honours option 121 over option 3 (RFC 3442 §2:
//! a client that receives classless routes must ignore the Router option).

use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// One classless static route (option 121, RFC 3442).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    /// 0.0.0.0 means on-link.
    pub gateway: Ipv4Addr,
}

/// What the DHCP ACK said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// From the subnet mask option.
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Interface MTU (option 26).
    pub mtu: Option<u16>,
    /// Option 51; smoltcp assumes 120 s without it.
    pub lease_secs: Option<u32>,
    /// Option 54.
    pub server_id: Ipv4Addr,
    /// Option 121, in the server's order; `None` when the option was absent, `Some(empty)`
    /// when it was present but did not decode.
    pub classless_routes: Option<Vec<Route>>,
    /// Clock time of the ACK, microseconds.
    pub acquired_at_us: u64,
}

impl Lease {
    /// The next hop for off-link traffic: option 121's default route when the server sent
    /// classless routes (RFC 3442 §2), else the Router option.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        match &self.classless_routes {
            Some(routes) if !routes.is_empty() => routes
                .iter()
                .find(|r| r.prefix_len == 0 && !r.gateway.is_unspecified())
                .map(|r| r.gateway),
            _ => self.router,
        }
    }

    /// The prefix the interface is configured with: the lease's own, widened until it
    /// covers the gateway (GCE's /32 with router .1 becomes a /30), so ARP from the
    /// gateway is accepted. The gateway is on-link on GCE by option 121 ("router/32 via
    /// 0.0.0.0"), so treating it as a neighbour is what the server asked for.
    pub fn interface_prefix(&self) -> u8 {
        match self.gateway() {
            Some(gateway) => self.prefix_len.min(common_prefix(self.address, gateway)),
            None => self.prefix_len,
        }
    }

    /// True once the lease time has run out (a lease without a time counts 120 s, as
    /// smoltcp does).
    pub fn expired(&self, now_us: u64) -> bool {
        let secs = u64::from(self.lease_secs.unwrap_or(120));
        now_us.saturating_sub(self.acquired_at_us) >= secs * 1_000_000
    }
}

/// Leading bits two addresses share.
pub fn common_prefix(a: Ipv4Addr, b: Ipv4Addr) -> u8 {
    (u32::from(a) ^ u32::from(b)).leading_zeros() as u8
}

/// The prefix length of a contiguous netmask; None for a mask with holes.
pub fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// Decodes option 121: each route is a prefix length, the significant octets of the
/// destination (ceil(len / 8)), then the 4-octet router. None if the data is malformed.
pub fn parse_classless_routes(mut data: &[u8]) -> Option<Vec<Route>> {
    let mut routes = Vec::new();
    while let Some((&prefix_len, rest)) = data.split_first() {
        if prefix_len > 32 {
            return None;
        }
        let significant = usize::from(prefix_len).div_ceil(8);
        let (dest, rest) = (rest.get(..significant)?, &rest[significant..]);
        let router = rest.get(..4)?;
        let mut octets = [0u8; 4];
        octets[..significant].copy_from_slice(dest);
        routes.push(Route {
            destination: Ipv4Addr::from(octets),
            prefix_len,
            gateway: Ipv4Addr::new(router[0], router[1], router[2], router[3]),
        });
        data = &rest[4..];
    }
    Some(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gce_lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 128, 0, 2),
            prefix_len: 32,
            router: Some(Ipv4Addr::new(10, 128, 0, 1)),
            dns: Vec::new(),
            mtu: Some(1460),
            lease_secs: Some(86400),
            server_id: Ipv4Addr::new(169, 254, 169, 254),
            classless_routes: parse_classless_routes(&[
                32, 10, 128, 0, 1, 0, 0, 0, 0, 0, 10, 128, 0, 1,
            ]),
            acquired_at_us: 0,
        }
    }

    #[test]
    fn gce_option_121_decodes() {
        let routes = gce_lease().classless_routes.unwrap();
        assert_eq!(
            routes,
            [
                Route {
                    destination: Ipv4Addr::new(10, 128, 0, 1),
                    prefix_len: 32,
                    gateway: Ipv4Addr::UNSPECIFIED
                },
                Route {
                    destination: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                    gateway: Ipv4Addr::new(10, 128, 0, 1)
                },
            ]
        );
    }

    #[test]
    fn slash_32_widens_to_cover_the_router() {
        let lease = gce_lease();
        assert_eq!(lease.gateway(), Some(Ipv4Addr::new(10, 128, 0, 1)));
        // 10.128.0.2 and 10.128.0.1 share 30 bits.
        assert_eq!(lease.interface_prefix(), 30);
        // A lease whose subnet already covers the router is left alone.
        let lan = Lease {
            prefix_len: 20,
            ..gce_lease()
        };
        assert_eq!(lan.interface_prefix(), 20);
    }

    #[test]
    fn option_121_wins_over_option_3() {
        let lease = Lease {
            router: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..gce_lease()
        };
        assert_eq!(lease.gateway(), Some(Ipv4Addr::new(10, 128, 0, 1)));
        let no_121 = Lease {
            classless_routes: None,
            ..lease
        };
        assert_eq!(no_121.gateway(), Some(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn malformed_routes_and_masks() {
        assert_eq!(parse_classless_routes(&[33, 0, 0, 0, 0]), None);
        assert_eq!(parse_classless_routes(&[24, 10, 0]), None);
        assert_eq!(parse_classless_routes(&[]), Some(Vec::new()));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 240, 0)), Some(20));
        assert_eq!(mask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn lease_expiry() {
        let lease = gce_lease();
        assert!(!lease.expired(86_399 * 1_000_000));
        assert!(lease.expired(86_400 * 1_000_000));
    }
}
