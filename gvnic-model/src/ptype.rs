//! The packet-type map: DQO RX completions carry a 10-bit packet_type that indexes a
//! 1024-entry table of (l3_type, l4_type) the driver fetches with GET_PTYPE_MAP
//! (gvnic-dqo.md §1.11). The values are public (l3: 0 unknown, 1 other, 2 IPv4, 3 IPv6;
//! l4: 0 unknown, 1 other, 2 TCP, 3 UDP, 4 ICMP, 5 SCTP); the device's own numbering of the
//! indexes is not, so the model's is its own (guess): index 1 + 6·l3' + l4 for IP frames.

pub const PTYPES: usize = 1024;

pub mod l3 {
    pub const UNKNOWN: u8 = 0;
    pub const OTHER: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const IPV6: u8 = 3;
}

pub mod l4 {
    pub const UNKNOWN: u8 = 0;
    pub const OTHER: u8 = 1;
    pub const TCP: u8 = 2;
    pub const UDP: u8 = 3;
    pub const ICMP: u8 = 4;
    pub const SCTP: u8 = 5;
}

/// Index for a (l3, l4) pair: 1 = non-IP, then six L4 kinds per IP version.
fn index(l3_type: u8, l4_type: u8) -> u16 {
    match l3_type {
        l3::IPV4 | l3::IPV6 => 2 + 6 * u16::from(l3_type - l3::IPV4) + u16::from(l4_type),
        l3::OTHER => 1,
        _ => 0,
    }
}

/// The map as the device writes it: 1024 two-byte entries (l3_type, l4_type).
pub fn map_bytes() -> Vec<u8> {
    let mut m = vec![0u8; PTYPES * 2];
    let mut put = |i: u16, a: u8, b: u8| {
        m[usize::from(i) * 2] = a;
        m[usize::from(i) * 2 + 1] = b;
    };
    put(index(l3::OTHER, l4::UNKNOWN), l3::OTHER, l4::UNKNOWN);
    for ip in [l3::IPV4, l3::IPV6] {
        for l in [l4::UNKNOWN, l4::OTHER, l4::TCP, l4::UDP, l4::ICMP, l4::SCTP] {
            put(index(ip, l), ip, l);
        }
    }
    m
}

fn l4_of(proto: u8) -> u8 {
    match proto {
        6 => l4::TCP,
        17 => l4::UDP,
        1 | 58 => l4::ICMP,
        132 => l4::SCTP,
        _ => l4::OTHER,
    }
}

/// The packet_type of an Ethernet frame.
pub fn ptype_of(f: &[u8]) -> u16 {
    let mut et = 12;
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        et = 16; // one 802.1Q tag
    }
    if f.len() < et + 2 {
        return 0;
    }
    let ip = et + 2;
    match [f[et], f[et + 1]] {
        [0x08, 0x00] if f.len() >= ip + 20 => index(l3::IPV4, l4_of(f[ip + 9])),
        [0x86, 0xdd] if f.len() >= ip + 40 => index(l3::IPV6, l4_of(f[ip + 6])),
        _ => index(l3::OTHER, l4::UNKNOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_the_model_reports_is_in_the_map() {
        let m = map_bytes();
        let udp4 = ptype_of(&crate::responder::udp_frame(
            &[1; 6],
            &[2; 6],
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            std::net::Ipv4Addr::new(10, 0, 0, 2),
            1,
            2,
            b"x",
        ));
        let i = usize::from(udp4) * 2;
        assert_eq!((m[i], m[i + 1]), (l3::IPV4, l4::UDP));
        let arp = ptype_of(&[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x06, 0, 0]);
        assert_eq!(m[usize::from(arp) * 2], l3::OTHER);
    }
}
