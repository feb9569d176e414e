//! TX checksum offload: the device finishes the L4 checksum the driver left partial.
//!
//! The driver (Linux CHECKSUM_PARTIAL) puts the folded pseudo-header sum in the checksum
//! field and asks the device to add the ones' complement sum of everything from the L4
//! header to the end of the frame, complemented, at the checksum field. GQI names both places
//! in the packet descriptor (l4_hdr_offset, l4_csum_offset in 16-bit words: facts §4.1); DQO
//! only sets checksum_offload_enable (dqo §1.6), so the device finds the L4 header itself
//! (Ethernet II, IPv4 with options or IPv6 without extension headers; TCP or UDP) (guess: the
//! real parser handles more). Without this a TCP segment leaves with a pseudo-header sum
//! only and any receiver drops it.

/// IP protocol numbers (RFC 790) and where their checksum sits in the L4 header.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_CSUM_AT: usize = 16;
const UDP_CSUM_AT: usize = 6;
const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Completes the checksum: sum [start, end) with the field as the driver left it, store the
/// complement at `field` (big-endian). False when the offsets do not fit the frame.
pub(crate) fn complete(frame: &mut [u8], start: usize, field: usize) -> bool {
    if start >= frame.len() || field < start || field + 2 > frame.len() {
        return false;
    }
    let mut sum: u32 = 0;
    for c in frame[start..].chunks(2) {
        let word = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[field..field + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    true
}

/// GQI: the descriptor's offsets, in 16-bit words.
pub(crate) fn complete_gqi(frame: &mut [u8], l4_hdr_words: u8, l4_csum_words: u8) -> bool {
    let start = usize::from(l4_hdr_words) * 2;
    complete(frame, start, start + usize::from(l4_csum_words) * 2)
}

/// DQO: find the TCP/UDP header and its checksum field.
pub(crate) fn complete_parsed(frame: &mut [u8]) -> bool {
    let Some(&[a, b]) = frame.get(12..14) else {
        return false;
    };
    let (proto, l4) = match u16::from_be_bytes([a, b]) {
        ETHERTYPE_IPV4 => {
            let Some(&vihl) = frame.get(ETH_HLEN) else {
                return false;
            };
            let Some(&proto) = frame.get(ETH_HLEN + 9) else {
                return false;
            };
            (proto, ETH_HLEN + usize::from(vihl & 0x0f) * 4)
        }
        ETHERTYPE_IPV6 => {
            let Some(&next) = frame.get(ETH_HLEN + 6) else {
                return false;
            };
            (next, ETH_HLEN + 40)
        }
        _ => return false,
    };
    let field = match proto {
        PROTO_TCP => TCP_CSUM_AT,
        PROTO_UDP => UDP_CSUM_AT,
        _ => return false,
    };
    complete(frame, l4, l4 + field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP/IPv4 frame whose checksum field holds the pseudo-header sum (as Linux leaves it),
    /// completed by the device, must verify: the ones' complement sum over pseudo-header and
    /// segment is 0xffff.
    #[test]
    fn a_completed_udp_checksum_verifies_against_the_pseudo_header() {
        let (src, dst) = ([10u8, 128, 0, 2], [10u8, 128, 0, 1]);
        let payload = b"hello, checksum";
        let udp_len = 8 + payload.len();
        let mut f = vec![0u8; ETH_HLEN];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_UDP, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&1234u16.to_be_bytes());
        f.extend_from_slice(&80u16.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        // Pseudo-header sum, folded, not complemented: what CHECKSUM_PARTIAL leaves.
        let pseudo: u32 = [
            u16::from_be_bytes([src[0], src[1]]),
            u16::from_be_bytes([src[2], src[3]]),
            u16::from_be_bytes([dst[0], dst[1]]),
            u16::from_be_bytes([dst[2], dst[3]]),
            u16::from(PROTO_UDP),
            udp_len as u16,
        ]
        .iter()
        .map(|&w| u32::from(w))
        .sum();
        let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
        f.extend_from_slice(&folded.to_be_bytes());
        f.extend_from_slice(payload);
        let mut by_parse = f.clone();
        assert!(complete_parsed(&mut by_parse));
        let mut by_offsets = f.clone();
        assert!(complete_gqi(&mut by_offsets, 17, 3)); // L4 at 34 bytes, field at +6
        assert_eq!(by_parse, by_offsets);
        // Verify: pseudo-header + the whole UDP segment sums to 0xffff.
        let mut sum = pseudo;
        for c in by_parse[34..].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn offsets_outside_the_frame_are_refused() {
        let mut f = vec![0u8; 40];
        assert!(!complete_gqi(&mut f, 30, 0));
        assert!(!complete_gqi(&mut f, 17, 10));
        assert!(!complete_parsed(&mut [0u8; 10]));
    }
}
