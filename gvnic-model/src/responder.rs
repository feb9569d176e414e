//! The built-in network peer: answers a guest's DHCP DISCOVER with an OFFER (same xid), a
//! REQUEST with an ACK (or NAK), and ARP requests for any address but the guest's own with
//! the gateway MAC, as GCE's virtual network does, and ICMP echo requests to the router
//! with echo replies (GCE's gateway answers ping). Everything is built here from RFC 826 /
//! RFC 792 / RFC 2131 / RFC 2132 layouts.

use std::net::Ipv4Addr;

use crate::ModelConfig;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const DHCP_MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
/// DHCP message types (option 53).
pub mod dhcp_type {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
}
/// Offset of the options (after the 4-byte magic cookie) in a BOOTP message.
const BOOTP_OPTIONS: usize = 240;

/// Replies the network sends for one guest frame (possibly none).
pub fn respond(cfg: &ModelConfig, frame: &[u8]) -> Vec<Vec<u8>> {
    if !cfg.responder.enabled || frame.len() < 14 {
        return Vec::new();
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETHERTYPE_ARP => arp_reply(cfg, &frame[14..], &frame[6..12])
            .into_iter()
            .collect(),
        ETHERTYPE_IPV4 => dhcp_reply(cfg, &frame[14..])
            .or_else(|| echo_reply(cfg, &frame[14..], &frame[6..12]))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn offered(cfg: &ModelConfig) -> Ipv4Addr {
    cfg.responder.offered_ip.unwrap_or_else(|| cfg.mac_ipv4())
}

fn arp_reply(cfg: &ModelConfig, arp: &[u8], eth_src: &[u8]) -> Option<Vec<u8>> {
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, oper 1 (request).
    if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] || arp[6..8] != [0, 1] {
        return None;
    }
    let (sha, spa, tpa) = (&arp[8..14], &arp[14..18], &arp[24..28]);
    let own = offered(cfg).octets();
    // No answer for the guest's own address (duplicate-address probes) or gratuitous ARP.
    if tpa == own || tpa == spa {
        return None;
    }
    let gw = cfg.responder.gateway_mac;
    let mut f = eth_header(eth_src, &gw, ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&gw);
    f.extend_from_slice(tpa);
    f.extend_from_slice(sha);
    f.extend_from_slice(spa);
    f.resize(60, 0); // minimum Ethernet frame without FCS
    Some(f)
}

fn dhcp_reply(cfg: &ModelConfig, ip: &[u8]) -> Option<Vec<u8>> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let udp = ip.get(ihl..)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != DHCP_SERVER_PORT {
        return None;
    }
    let b = &udp[8..];
    if b.len() < BOOTP_OPTIONS || b[0] != 1 || b[236..240] != DHCP_MAGIC {
        return None;
    }
    let opts = parse_options(&b[BOOTP_OPTIONS..]);
    let msg = opts
        .iter()
        .find(|(c, _)| *c == 53)
        .and_then(|(_, v)| v.first().copied())?;
    let you = offered(cfg);
    let reply_type = match msg {
        dhcp_type::DISCOVER => dhcp_type::OFFER,
        dhcp_type::REQUEST => {
            let requested = opts
                .iter()
                .find(|(c, _)| *c == 50)
                .and_then(|(_, v)| <[u8; 4]>::try_from(v.as_slice()).ok())
                .unwrap_or([b[12], b[13], b[14], b[15]]);
            if requested == you.octets() {
                dhcp_type::ACK
            } else {
                dhcp_type::NAK
            }
        }
        _ => return None,
    };
    let r = &cfg.responder;
    let mut bootp = vec![0u8; BOOTP_OPTIONS];
    bootp[0] = 2; // BOOTREPLY
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[4..8].copy_from_slice(&b[4..8]); // the client's xid
    bootp[10..12].copy_from_slice(&b[10..12]); // flags
    if reply_type != dhcp_type::NAK {
        bootp[16..20].copy_from_slice(&you.octets()); // yiaddr
    }
    bootp[28..44].copy_from_slice(&b[28..44]); // chaddr
    bootp[236..240].copy_from_slice(&DHCP_MAGIC);
    let mut opt = |code: u8, v: &[u8]| {
        bootp.push(code);
        bootp.push(v.len() as u8);
        bootp.extend_from_slice(v);
    };
    opt(53, &[reply_type]);
    opt(54, &r.server_ip.octets());
    if reply_type != dhcp_type::NAK {
        opt(51, &r.lease_secs.to_be_bytes());
        opt(1, &r.subnet_mask.octets());
        opt(3, &r.router_ip.octets());
        opt(6, &r.server_ip.octets());
        opt(26, &cfg.mtu.to_be_bytes());
        // Classless routes (RFC 3442): the gateway as /32 on-link, then default via it.
        let gw = r.router_ip.octets();
        let mut routes = vec![32];
        routes.extend_from_slice(&gw);
        routes.extend_from_slice(&[0, 0, 0, 0, 0]);
        routes.extend_from_slice(&gw);
        opt(121, &routes);
    }
    bootp.push(255);
    bootp.resize(bootp.len().max(300), 0);
    let broadcast = b[10] & 0x80 != 0 || reply_type == dhcp_type::NAK;
    let (dst_mac, dst_ip) = if broadcast {
        ([0xff; 6], Ipv4Addr::BROADCAST)
    } else {
        (chaddr(b), you)
    };
    Some(udp_frame(
        &dst_mac,
        &r.gateway_mac,
        r.server_ip,
        dst_ip,
        DHCP_SERVER_PORT,
        DHCP_CLIENT_PORT,
        &bootp,
    ))
}

/// IPv4 protocol number of ICMP, and its echo types (RFC 792).
const IP_PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// An echo reply from the router for an echo request to the router: same identifier,
/// sequence and data, checksums recomputed.
fn echo_reply(cfg: &ModelConfig, ip: &[u8], eth_src: &[u8]) -> Option<Vec<u8>> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != IP_PROTO_ICMP {
        return None;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let router = cfg.responder.router_ip.octets();
    if ip[16..20] != router || total > ip.len() || total < ihl + 8 {
        return None;
    }
    let icmp = &ip[ihl..total];
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || inet_checksum(&[icmp]) != 0 {
        return None;
    }
    let mut reply = icmp.to_vec();
    reply[0] = ICMP_ECHO_REPLY;
    reply[2..4].copy_from_slice(&[0, 0]);
    let c = inet_checksum(&[&reply]);
    reply[2..4].copy_from_slice(&c.to_be_bytes());
    let mut hdr = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IP_PROTO_ICMP, 0, 0];
    hdr[2..4].copy_from_slice(&((20 + reply.len()) as u16).to_be_bytes());
    hdr.extend_from_slice(&router);
    hdr.extend_from_slice(&ip[12..16]);
    let c = inet_checksum(&[&hdr]);
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = eth_header(eth_src, &cfg.responder.gateway_mac, ETHERTYPE_IPV4);
    f.extend_from_slice(&hdr);
    f.extend_from_slice(&reply);
    Some(f)
}

fn chaddr(b: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[28..34]);
    m
}

/// (code, value) pairs of a DHCP options field; stops at END or a truncated option.
pub fn parse_options(mut o: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((&code, rest)) = o.split_first() {
        match code {
            0 => o = rest,
            255 => break,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    break;
                };
                let Some(v) = rest.get(..usize::from(len)) else {
                    break;
                };
                out.push((code, v.to_vec()));
                o = &rest[usize::from(len)..];
            }
        }
    }
    out
}

fn eth_header(dst: &[u8], src: &[u8], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(dst);
    f.extend_from_slice(src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Internet checksum (RFC 1071) over the given chunks.
pub fn inet_checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &byte in c.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(hi) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame with correct IP and UDP checksums.
pub fn udp_frame(
    dst_mac: &[u8; 6],
    src_mac: &[u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = inet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let mut uc = inet_checksum(&[&pseudo, &udp]);
    if uc == 0 {
        uc = 0xffff;
    }
    udp[6..8].copy_from_slice(&uc.to_be_bytes());
    let mut f = eth_header(dst_mac, src_mac, ETHERTYPE_IPV4);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_request(dst: [u8; 4], corrupt: bool) -> Vec<u8> {
        let mut icmp = vec![ICMP_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        icmp.extend_from_slice(b"payload!");
        let c = inet_checksum(&[&icmp]);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        if corrupt {
            icmp[9] ^= 1;
        }
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IP_PROTO_ICMP, 0, 0];
        ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[10, 128, 0, 2]);
        ip.extend_from_slice(&dst);
        let c = inet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = eth_header(
            &[0x42, 1, 10, 128, 0, 1],
            &[0x42, 1, 10, 128, 0, 2],
            ETHERTYPE_IPV4,
        );
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn the_router_answers_ping_and_nobody_else_does() {
        let cfg = ModelConfig::default();
        let replies = respond(&cfg, &echo_request([10, 128, 0, 1], false));
        assert_eq!(replies.len(), 1);
        let r = &replies[0];
        assert_eq!(
            &r[0..6],
            &[0x42, 1, 10, 128, 0, 2],
            "back to the sender's MAC"
        );
        assert_eq!(&r[26..30], &[10, 128, 0, 1], "from the router");
        assert_eq!(&r[30..34], &[10, 128, 0, 2]);
        assert_eq!(inet_checksum(&[&r[14..34]]), 0, "IPv4 checksum");
        let icmp = &r[34..];
        assert_eq!(icmp[0], ICMP_ECHO_REPLY);
        assert_eq!(inet_checksum(&[icmp]), 0, "ICMP checksum");
        assert_eq!(
            &icmp[4..],
            &[0x12, 0x34, 0, 7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', b'!']
        );
        assert!(respond(&cfg, &echo_request([10, 128, 0, 9], false)).is_empty());
        assert!(respond(&cfg, &echo_request([10, 128, 0, 1], true)).is_empty());
    }
}
