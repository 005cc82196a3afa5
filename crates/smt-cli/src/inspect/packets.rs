//! From one captured datagram to the SMT packets in it.
//!
//! A datagram holds one packet or a bundle (PROTOCOL.md 3.1), which
//! `smt_proto::wire::split_bundle` takes apart. A capture may also show a UDP GSO
//! batch before segmentation (taken on the sending host with segmentation offload)
//! or a GRO-merged one (on the receiving host): one "datagram" holding several
//! datagrams of the same size back to back. Nothing in the capture records that
//! size, so it is recovered from the data: the second datagram starts with a header
//! carrying the same ports and the same 64-bit session ID as the first, which inside
//! ciphertext happens by chance with probability about 2^-64 per position.

use smt_proto::wire::{split_bundle, Header, HeaderRepr, HEADER_LEN};

/// The packets of one datagram.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packets<'a> {
    pub packets: Vec<&'a [u8]>,
    /// Datagrams found inside it (1 unless it was a GSO/GRO batch).
    pub segments: usize,
    /// Bundles whose framing broke (the rest of that datagram is lost).
    pub broken_bundles: usize,
}

/// Cuts `datagram` into SMT packets. Never panics.
pub fn split(datagram: &[u8]) -> Packets<'_> {
    let segments: Vec<&[u8]> = match segment_size(datagram) {
        Some(size) => datagram.chunks(size).collect(),
        None => vec![datagram],
    };
    let mut out = Packets { segments: segments.len(), ..Packets::default() };
    for segment in segments {
        let mut rest = segment;
        let mut cut = 0;
        while !rest.is_empty() {
            match split_bundle(rest) {
                Ok((packet, after)) => {
                    out.packets.push(packet);
                    rest = after;
                    cut += 1;
                }
                Err(_) => {
                    // No valid header or bundle framing here: the datagram is not
                    // SMT, or its bundle is broken. Hand the rest on whole, to be
                    // counted as one malformed packet.
                    out.packets.push(rest);
                    if cut > 0 {
                        out.broken_bundles += 1;
                    }
                    break;
                }
            }
        }
    }
    out
}

/// Where the second datagram of a GSO/GRO batch starts, if `datagram` is one.
fn segment_size(datagram: &[u8]) -> Option<usize> {
    // The first datagram's last packet extends to its end, so the next datagram can
    // only start after that packet's header.
    let mut last = 0;
    loop {
        let (packet, rest) = split_bundle(datagram.get(last..)?).ok()?;
        if rest.is_empty() {
            break;
        }
        last += packet.len();
    }
    let ports = datagram.get(0..4)?;
    let session = datagram.get(8..16)?;
    let first_candidate = last.checked_add(HEADER_LEN)?;
    let search = datagram.get(first_candidate + 8..)?;
    let mut from = 0;
    while let Some(found) = find(search.get(from..)?, session) {
        let start = first_candidate + from + found;
        let candidate = datagram.get(start..)?;
        if candidate.get(0..4) == Some(ports) && header_parses(candidate) {
            return Some(start);
        }
        from += found + 1;
    }
    None
}

fn header_parses(bytes: &[u8]) -> bool {
    Header::new_checked(bytes).and_then(|h| HeaderRepr::parse(&h)).is_ok()
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use smt_proto::wire::{
        mark_bundled, AckRepr, Body, DataRepr, Flags, HeaderRepr, MessageId, PacketRepr, PacketType,
    };

    use super::*;

    fn data(session_id: u64, offset: u32, payload: &[u8]) -> Vec<u8> {
        PacketRepr {
            header: HeaderRepr {
                src_port: 40000,
                dst_port: 4433,
                packet_type: PacketType::Data,
                flags: Flags::FROM_INITIATOR,
                session_id,
                message_id: MessageId::new(1).unwrap(),
            },
            body: Body::Data(DataRepr {
                message_length: 100_000,
                offset,
                unscheduled: 40_000,
                record_size: 16384,
                priority: 0,
                payload,
            }),
        }
        .to_vec()
    }

    fn ack(session_id: u64) -> Vec<u8> {
        PacketRepr {
            header: HeaderRepr {
                src_port: 40000,
                dst_port: 4433,
                packet_type: PacketType::Ack,
                flags: Flags::FROM_INITIATOR,
                session_id,
                message_id: MessageId::default(),
            },
            body: Body::Ack(AckRepr::new(&[MessageId::new(3).unwrap()]).unwrap()),
        }
        .to_vec()
    }

    #[test]
    fn a_single_packet_is_returned_whole() {
        let packet = data(7, 0, &[0xaa; 100]);
        assert_eq!(
            split(&packet),
            Packets { packets: vec![&packet], segments: 1, broken_bundles: 0 }
        );
    }

    #[test]
    fn a_bundle_is_cut_into_its_packets() {
        let mut first = ack(7);
        mark_bundled(&mut first);
        let second = data(7, 0, &[0xaa; 50]);
        let datagram = [first.clone(), second.clone()].concat();
        let split = split(&datagram);
        assert_eq!(split.packets, vec![&first[..], &second[..]]);
        assert_eq!(split.segments, 1);
    }

    #[test]
    fn a_gso_batch_is_cut_at_the_segment_size() {
        let session = 0x0123_4567_89ab_cdef;
        let segments = [
            data(session, 0, &[1; 100]),
            data(session, 100, &[2; 100]),
            data(session, 200, &[3; 30]),
        ];
        let batch = segments.concat();
        let split = split(&batch);
        assert_eq!(split.segments, 3);
        assert_eq!(split.packets, segments.iter().map(|s| &s[..]).collect::<Vec<_>>());
    }

    #[test]
    fn a_gso_batch_of_bundles_is_cut_into_datagrams_then_packets() {
        let session = 0x0123_4567_89ab_cdef;
        let mut bundled_ack = ack(session);
        mark_bundled(&mut bundled_ack);
        let datagram = [bundled_ack.clone(), data(session, 0, &[1; 60])].concat();
        let batch = [datagram.clone(), datagram.clone()].concat();
        let split = split(&batch);
        assert_eq!(split.segments, 2);
        assert_eq!(split.packets.len(), 4);
        assert_eq!(split.packets[2], &bundled_ack[..]);
    }

    #[test]
    fn the_session_id_inside_ciphertext_without_a_valid_header_does_not_split() {
        let session: u64 = 0x0123_4567_89ab_cdef;
        // The session ID appears in the payload, but not preceded by the same ports
        // and a valid version/type.
        let mut payload = vec![0u8; 64];
        payload[30..38].copy_from_slice(&session.to_be_bytes());
        let packet = data(session, 0, &payload);
        assert_eq!(split(&packet).segments, 1);
    }

    #[test]
    fn garbage_and_broken_bundles_are_handed_on_for_counting() {
        assert_eq!(split(b"not smt").packets, vec![&b"not smt"[..]]);
        assert_eq!(split(&[]).packets, Vec::<&[u8]>::new());
        // A bundle length running past the datagram.
        let mut first = ack(7);
        mark_bundled(&mut first);
        first[16..18].copy_from_slice(&500u16.to_be_bytes());
        let datagram = [first, data(7, 0, &[1; 10])].concat();
        let split = split(&datagram);
        assert_eq!(split.packets, vec![&datagram[..]]);
        assert_eq!(split.broken_bundles, 0, "the first packet is the whole datagram");
    }
}
