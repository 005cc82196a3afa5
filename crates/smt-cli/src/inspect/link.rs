//! Link layers: from a captured frame to the IP packet it carries.
//!
//! Supported: Ethernet (with up to two VLAN tags; what `tcpdump -i lo` and `-i eth0`
//! write), Linux cooked captures SLL and SLL2 (`tcpdump -i any`, old and new
//! libpcap), raw IP (LINKTYPE_RAW, _IPV4, _IPV6) and BSD loopback (NULL, LOOP).

use pcap_file::DataLink;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// An IPv4 or IPv6 packet (starting at its IP header).
    Ip(&'a [u8]),
    /// Something else (ARP, an unknown EtherType, a frame too short for its header).
    NotIp,
    /// The outgoing copy of a packet on a loopback interface in a cooked (`-i any`)
    /// capture: the kernel shows loopback traffic there twice, once leaving and once
    /// arriving, and counting both would make every packet look retransmitted.
    LoopbackOutgoing,
}

/// Whether [`network_layer`] understands frames of `link`.
pub fn is_supported(link: DataLink) -> bool {
    matches!(
        link,
        DataLink::ETHERNET
            | DataLink::LINUX_SLL
            | DataLink::LINUX_SLL2
            | DataLink::RAW
            | DataLink::IPV4
            | DataLink::IPV6
            | DataLink::NULL
            | DataLink::LOOP
    )
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// ARPHRD_LOOPBACK, the SLL "hardware type" of `lo`.
const ARPHRD_LOOPBACK: u16 = 772;
/// PACKET_OUTGOING, the SLL packet type of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// Address family values for IPv4 and IPv6 in NULL / LOOP headers (Linux, the BSDs,
/// macOS).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// The network-layer packet of `frame`, captured on a link of type `link`.
pub fn network_layer(link: DataLink, frame: &[u8]) -> Network<'_> {
    match link {
        DataLink::ETHERNET => ethernet(frame),
        DataLink::LINUX_SLL => cooked(frame, 16, 14, 2, 0),
        DataLink::LINUX_SLL2 => cooked(frame, 20, 0, 8, 10),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Network::Ip(frame),
        DataLink::NULL | DataLink::LOOP => bsd_loopback(frame),
        _ => Network::NotIp,
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Network<'_> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Network::Ip(rest),
        _ => Network::NotIp,
    }
}

fn ethernet(frame: &[u8]) -> Network<'_> {
    let mut at = 12;
    for _ in 0..=2 {
        let Some(ethertype) = be16(frame, at) else { return Network::NotIp };
        if ETHERTYPE_VLAN.contains(&ethertype) {
            at += 4;
            continue;
        }
        return by_ethertype(ethertype, frame.get(at + 2..).unwrap_or_default());
    }
    Network::NotIp
}

/// SLL and SLL2 differ only in where their fields sit: header length, and the
/// offsets of the protocol (EtherType), the hardware type and the packet type.
fn cooked(
    frame: &[u8],
    header_len: usize,
    protocol_at: usize,
    hardware_at: usize,
    packet_type_at: usize,
) -> Network<'_> {
    let Some(rest) = frame.get(header_len..) else { return Network::NotIp };
    let (Some(protocol), Some(hardware)) = (be16(frame, protocol_at), be16(frame, hardware_at))
    else {
        return Network::NotIp;
    };
    // SLL's packet type is 16 bits wide (its low byte matters), SLL2's is 8.
    let packet_type = if header_len == 16 {
        be16(frame, packet_type_at).map(|v| v.to_be_bytes()[1])
    } else {
        frame.get(packet_type_at).copied()
    };
    if hardware == ARPHRD_LOOPBACK && packet_type == Some(PACKET_OUTGOING) {
        return Network::LoopbackOutgoing;
    }
    by_ethertype(protocol, rest)
}

fn bsd_loopback(frame: &[u8]) -> Network<'_> {
    let (Some(head), Some(rest)) = (frame.get(..4), frame.get(4..)) else {
        return Network::NotIp;
    };
    let head = [head[0], head[1], head[2], head[3]];
    // NULL is in the capturing host's byte order, LOOP in network order: accept both.
    for family in [u32::from_le_bytes(head), u32::from_be_bytes(head)] {
        if family == AF_INET || AF_INET6.contains(&family) {
            return Network::Ip(rest);
        }
    }
    Network::NotIp
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[0x45, 0, 0, 20];

    #[test]
    fn ethernet_frames_yield_their_ip_packet_with_or_without_vlan_tags() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(IP);
        assert_eq!(network_layer(DataLink::ETHERNET, &frame), Network::Ip(IP));

        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x86, 0xdd]);
        tagged.extend_from_slice(IP);
        assert_eq!(network_layer(DataLink::ETHERNET, &tagged), Network::Ip(IP));

        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2, 3]);
        assert_eq!(network_layer(DataLink::ETHERNET, &arp), Network::NotIp);
        assert_eq!(network_layer(DataLink::ETHERNET, &[0u8; 13]), Network::NotIp);
        assert_eq!(network_layer(DataLink::ETHERNET, &[]), Network::NotIp);
    }

    fn sll(packet_type: u16, hardware: u16, protocol: u16) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&packet_type.to_be_bytes());
        frame.extend_from_slice(&hardware.to_be_bytes());
        frame.extend_from_slice(&6u16.to_be_bytes());
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&protocol.to_be_bytes());
        frame.extend_from_slice(IP);
        frame
    }

    fn sll2(packet_type: u8, hardware: u16, protocol: u16) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&protocol.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&1u32.to_be_bytes());
        frame.extend_from_slice(&hardware.to_be_bytes());
        frame.push(packet_type);
        frame.push(6);
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(IP);
        frame
    }

    #[test]
    fn cooked_captures_yield_ip_and_drop_the_outgoing_loopback_copy() {
        // Host (0) on Ethernet (1), and both loopback copies (0 arriving, 4 leaving).
        assert_eq!(network_layer(DataLink::LINUX_SLL, &sll(0, 1, 0x0800)), Network::Ip(IP));
        assert_eq!(network_layer(DataLink::LINUX_SLL, &sll(0, 772, 0x86dd)), Network::Ip(IP));
        assert_eq!(
            network_layer(DataLink::LINUX_SLL, &sll(4, 772, 0x0800)),
            Network::LoopbackOutgoing
        );
        // Outgoing on a real interface is the only copy: keep it.
        assert_eq!(network_layer(DataLink::LINUX_SLL, &sll(4, 1, 0x0800)), Network::Ip(IP));
        assert_eq!(network_layer(DataLink::LINUX_SLL, &sll(0, 1, 0x0806)), Network::NotIp);

        assert_eq!(network_layer(DataLink::LINUX_SLL2, &sll2(0, 772, 0x0800)), Network::Ip(IP));
        assert_eq!(
            network_layer(DataLink::LINUX_SLL2, &sll2(4, 772, 0x86dd)),
            Network::LoopbackOutgoing
        );
        assert_eq!(network_layer(DataLink::LINUX_SLL2, &sll2(4, 1, 0x86dd)), Network::Ip(IP));
        for short in 0..20 {
            assert_eq!(
                network_layer(DataLink::LINUX_SLL2, &sll2(0, 1, 0x800)[..short]),
                Network::NotIp
            );
            assert_eq!(
                network_layer(DataLink::LINUX_SLL, &sll(0, 1, 0x800)[..short.min(15)]),
                Network::NotIp
            );
        }
    }

    #[test]
    fn raw_and_bsd_loopback_frames_yield_ip() {
        assert_eq!(network_layer(DataLink::RAW, IP), Network::Ip(IP));
        assert_eq!(network_layer(DataLink::IPV6, IP), Network::Ip(IP));
        let little = [&[2u8, 0, 0, 0][..], IP].concat();
        assert_eq!(network_layer(DataLink::NULL, &little), Network::Ip(IP));
        let big_v6 = [&[0u8, 0, 0, 30][..], IP].concat();
        assert_eq!(network_layer(DataLink::LOOP, &big_v6), Network::Ip(IP));
        assert_eq!(network_layer(DataLink::NULL, &[7, 0, 0, 0, 1]), Network::NotIp);
        assert_eq!(network_layer(DataLink::NULL, &[2, 0]), Network::NotIp);
    }

    #[test]
    fn other_link_types_are_not_supported() {
        assert!(!is_supported(DataLink::IEEE802_11));
        assert_eq!(network_layer(DataLink::IEEE802_11, IP), Network::NotIp);
        assert!(is_supported(DataLink::LINUX_SLL2));
    }
}
