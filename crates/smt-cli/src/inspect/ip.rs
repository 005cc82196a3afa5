//! IPv4 / IPv6 and UDP: from an IP packet to the SMT datagram it carries, either as
//! a UDP payload or (native IP mode) as the payload of SMT's own IP protocol.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How the datagram travelled (PROTOCOL.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encapsulation {
    /// UDP payload: the peer's port is the UDP port.
    Udp,
    /// IP payload with SMT's protocol number: ports exist only in the SMT header.
    NativeIp,
}

/// One datagram that may hold SMT packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub encapsulation: Encapsulation,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP source and destination ports (`None` in native IP mode).
    pub udp_ports: Option<(u16, u16)>,
    pub payload: &'a [u8],
    /// The capture holds fewer bytes than the IP/UDP length fields announce (snap
    /// length): `payload` is the captured prefix.
    pub truncated: bool,
}

/// What an IP packet turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    Datagram(Datagram<'a>),
    /// A fragment: SMT never fragments, and reassembly is not attempted.
    Fragment,
    /// Neither UDP nor SMT's IP protocol (TCP, ICMP, ...).
    OtherProtocol,
    /// Not a well-formed IP (or UDP) header.
    Malformed,
}

const PROTO_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Parses the IP packet `packet`, taking `smt_protocol` as SMT's protocol number.
pub fn parse(packet: &[u8], smt_protocol: u8) -> Parsed<'_> {
    let layer = match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4(packet),
        Some(6) => ipv6(packet),
        _ => None,
    };
    let Some(layer) = layer else { return Parsed::Malformed };
    let (src, dst, protocol, payload, truncated) = match layer {
        IpLayer::Fragment => return Parsed::Fragment,
        IpLayer::Payload { src, dst, protocol, payload, truncated } => {
            (src, dst, protocol, payload, truncated)
        }
    };
    if protocol == smt_protocol {
        return Parsed::Datagram(Datagram {
            encapsulation: Encapsulation::NativeIp,
            src,
            dst,
            udp_ports: None,
            payload,
            truncated,
        });
    }
    if protocol != PROTO_UDP {
        return Parsed::OtherProtocol;
    }
    let (Some(src_port), Some(dst_port), Some(length)) =
        (be16(payload, 0), be16(payload, 2), be16(payload, 4))
    else {
        return Parsed::Malformed;
    };
    let length = usize::from(length);
    if length < UDP_HEADER_LEN {
        return Parsed::Malformed;
    }
    let end = length.min(payload.len());
    let Some(udp_payload) = payload.get(UDP_HEADER_LEN..end) else { return Parsed::Malformed };
    Parsed::Datagram(Datagram {
        encapsulation: Encapsulation::Udp,
        src,
        dst,
        udp_ports: Some((src_port, dst_port)),
        payload: udp_payload,
        truncated: truncated || length > payload.len(),
    })
}

enum IpLayer<'a> {
    Payload { src: IpAddr, dst: IpAddr, protocol: u8, payload: &'a [u8], truncated: bool },
    Fragment,
}

fn ipv4(packet: &[u8]) -> Option<IpLayer<'_>> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let total_len = usize::from(be16(packet, 2)?);
    if header_len < 20 || total_len < header_len {
        return None;
    }
    let header = packet.get(..header_len)?;
    let fragment = be16(header, 6)?;
    // More-fragments flag, or a non-zero fragment offset.
    if fragment & 0x3fff != 0 {
        return Some(IpLayer::Fragment);
    }
    let address = |at: usize| -> Option<IpAddr> {
        let b: [u8; 4] = header.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    };
    // Frames may be padded (Ethernet minimum size) or cut short (snap length).
    let end = total_len.min(packet.len());
    Some(IpLayer::Payload {
        src: address(12)?,
        dst: address(16)?,
        protocol: *header.get(9)?,
        payload: packet.get(header_len..end)?,
        truncated: total_len > packet.len(),
    })
}

const IPV6_HEADER_LEN: usize = 40;
/// Hop-by-hop, routing and destination options: skipped to find the payload.
const IPV6_OPTION_HEADERS: [u8; 3] = [0, 43, 60];
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;

fn ipv6(packet: &[u8]) -> Option<IpLayer<'_>> {
    let header = packet.get(..IPV6_HEADER_LEN)?;
    let payload_len = usize::from(be16(header, 4)?);
    let address = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = header.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    };
    let (src, dst) = (address(8)?, address(24)?);
    let declared_end = IPV6_HEADER_LEN + payload_len;
    let end = declared_end.min(packet.len());
    let mut next = *header.get(6)?;
    let mut at = IPV6_HEADER_LEN;
    // A bounded walk: a chain of extension headers cannot keep us busy.
    for _ in 0..8 {
        let ext = packet.get(at..end)?;
        let ext_len = if IPV6_OPTION_HEADERS.contains(&next) {
            (usize::from(*ext.get(1)?) + 1) * 8
        } else if next == IPV6_AUTH {
            (usize::from(*ext.get(1)?) + 2) * 4
        } else if next == IPV6_FRAGMENT {
            let offset_and_more = be16(ext, 2)?;
            // Only an "atomic" fragment (offset 0, no more) is a whole packet.
            if offset_and_more & 0xfff9 != 0 {
                return Some(IpLayer::Fragment);
            }
            8
        } else {
            return Some(IpLayer::Payload {
                src,
                dst,
                protocol: next,
                payload: ext,
                truncated: declared_end > packet.len(),
            });
        };
        next = *ext.first()?;
        at = at.checked_add(ext_len)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_packet(protocol: u8, fragment: u16, payload: &[u8], declared_extra: i32) -> Vec<u8> {
        let total = (20 + payload.len() as i32 + declared_extra) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&fragment.to_be_bytes());
        p.extend_from_slice(&[64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn udp(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&src.to_be_bytes());
        u.extend_from_slice(&dst.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn datagram(parsed: Parsed<'_>) -> Datagram<'_> {
        match parsed {
            Parsed::Datagram(d) => d,
            other => panic!("expected a datagram, got {other:?}"),
        }
    }

    #[test]
    fn ipv4_udp_yields_addresses_ports_and_payload() {
        let packet = ipv4_packet(17, 0x4000, &udp(40000, 4433, b"smt"), 0);
        let d = datagram(parse(&packet, 253));
        assert_eq!(d.encapsulation, Encapsulation::Udp);
        assert_eq!(d.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(d.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(d.udp_ports, Some((40000, 4433)));
        assert_eq!(d.payload, b"smt");
        assert!(!d.truncated);
    }

    #[test]
    fn ethernet_padding_is_trimmed_and_a_snapped_packet_is_marked_truncated() {
        let mut padded = ipv4_packet(17, 0, &udp(1, 2, b"ab"), 0);
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(datagram(parse(&padded, 253)).payload, b"ab");

        let mut snapped = ipv4_packet(17, 0, &udp(1, 2, b"abcdef"), 0);
        snapped.truncate(snapped.len() - 2);
        let d = datagram(parse(&snapped, 253));
        assert_eq!(d.payload, b"abcd");
        assert!(d.truncated);
    }

    #[test]
    fn native_ip_mode_takes_the_whole_ip_payload() {
        let packet = ipv4_packet(253, 0, b"smt header", 0);
        let d = datagram(parse(&packet, 253));
        assert_eq!(d.encapsulation, Encapsulation::NativeIp);
        assert_eq!(d.udp_ports, None);
        assert_eq!(d.payload, b"smt header");
        // Another protocol number configured: just another protocol.
        assert_eq!(parse(&packet, 200), Parsed::OtherProtocol);
    }

    #[test]
    fn fragments_other_protocols_and_garbage_are_classified() {
        assert_eq!(parse(&ipv4_packet(17, 0x2000, &udp(1, 2, b"x"), 0), 253), Parsed::Fragment);
        assert_eq!(parse(&ipv4_packet(17, 0x0010, b"tail", 0), 253), Parsed::Fragment);
        assert_eq!(parse(&ipv4_packet(6, 0, b"tcp", 0), 253), Parsed::OtherProtocol);
        assert_eq!(parse(&ipv4_packet(17, 0, b"short", 0), 253), Parsed::Malformed);
        assert_eq!(parse(&[0x45, 0, 0], 253), Parsed::Malformed);
        assert_eq!(parse(&[0x41; 30], 253), Parsed::Malformed);
        assert_eq!(parse(&[], 253), Parsed::Malformed);
        assert_eq!(parse(&[0x60; 39], 253), Parsed::Malformed);
        // A UDP length below its own header.
        let mut bad = udp(1, 2, b"");
        bad[5] = 4;
        assert_eq!(parse(&ipv4_packet(17, 0, &bad, 0), 253), Parsed::Malformed);
    }

    fn ipv6_packet(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn ipv6_extension_headers_are_walked_and_fragments_skipped() {
        let plain = ipv6_packet(17, &udp(5, 6, b"v6"));
        let d = datagram(parse(&plain, 253));
        assert_eq!(d.src, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!((d.udp_ports, d.payload), (Some((5, 6)), &b"v6"[..]));

        // Hop-by-hop options (8 bytes) then destination options (16 bytes) then SMT.
        let mut chain = vec![60, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[253, 1]);
        chain.extend_from_slice(&[0; 14]);
        chain.extend_from_slice(b"native");
        let packet = ipv6_packet(0, &chain);
        let d = datagram(parse(&packet, 253));
        assert_eq!((d.encapsulation, d.payload), (Encapsulation::NativeIp, &b"native"[..]));

        let first_fragment = [&[17u8, 0, 0, 1, 0, 0, 0, 9][..], &udp(5, 6, b"x")].concat();
        assert_eq!(parse(&ipv6_packet(44, &first_fragment), 253), Parsed::Fragment);
        let atomic = [&[17u8, 0, 0, 0, 0, 0, 0, 9][..], &udp(5, 6, b"x")].concat();
        assert_eq!(datagram(parse(&ipv6_packet(44, &atomic), 253)).payload, b"x");

        // An extension header running past the packet.
        assert_eq!(parse(&ipv6_packet(0, &[17, 9]), 253), Parsed::Malformed);
    }
}
