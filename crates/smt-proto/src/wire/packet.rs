//! A whole SMT packet: common header plus typed body, parsed from or emitted into
//! one datagram (UDP payload or IP payload in native mode).

use core::fmt;

use super::{
    AckPacket, AckRepr, DataPacket, DataRepr, Flags, GrantPacket, GrantRepr, HandshakePacket,
    HandshakeRepr, Header, HeaderRepr, PacketType, ResendPacket, ResendRepr, Result, RetryPacket,
    RetryRepr, WireError, HEADER_LEN,
};

/// The typed body of a packet.
// The ACK variant holds its IDs inline so that parsing never allocates; the enum
// lives on the stack for one packet at a time, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// DATA (0x10): a byte range of a message's wire image (PROTOCOL.md 4.1).
    Data(DataRepr<'a>),
    /// GRANT (0x11): permission to send a message up to an offset (4.2).
    Grant(GrantRepr),
    /// RESEND (0x12): a request to retransmit a byte range (4.3).
    Resend(ResendRepr),
    /// RPC_UNKNOWN (0x13), no body: the sender holds no state for the RPC (4.4).
    RpcUnknown,
    /// BUSY (0x14), no body: the server's answer to a probe for a request in service;
    /// with Message ID 0, the answer to a keep-alive or the refusal of a new client
    /// at the session limit (4.5).
    Busy,
    /// NEED_ACK (0x17), no body: the server asks whether the response arrived; with
    /// Message ID 0, a client's keep-alive probe (4.6).
    NeedAck,
    /// ACK (0x18): the responses the client has received, so the server can free them (4.7).
    Ack(AckRepr),
    /// HANDSHAKE (0x20): a chunk of the in-band TLS 1.3 handshake stream (4.8).
    Handshake(HandshakeRepr<'a>),
    /// SESSION_UNKNOWN (0x21), no body: the sender holds no state for the session (4.9).
    SessionUnknown,
    /// CLOSE (0x22), no body: the sender has closed the session (4.10).
    Close,
    /// RETRY (0x23): a server under a handshake flood asks the client to echo a
    /// token before it keeps any state (4.11).
    Retry(RetryRepr<'a>),
}

impl Body<'_> {
    /// The packet type this body belongs to.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Body::Data(_) => PacketType::Data,
            Body::Grant(_) => PacketType::Grant,
            Body::Resend(_) => PacketType::Resend,
            Body::RpcUnknown => PacketType::RpcUnknown,
            Body::Busy => PacketType::Busy,
            Body::NeedAck => PacketType::NeedAck,
            Body::Ack(_) => PacketType::Ack,
            Body::Handshake(_) => PacketType::Handshake,
            Body::SessionUnknown => PacketType::SessionUnknown,
            Body::Close => PacketType::Close,
            Body::Retry(_) => PacketType::Retry,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Body::Data(r) => r.buffer_len(),
            Body::Grant(r) => r.buffer_len(),
            Body::Resend(r) => r.buffer_len(),
            Body::Ack(r) => r.buffer_len(),
            Body::Handshake(r) => r.buffer_len(),
            Body::Retry(r) => r.buffer_len(),
            Body::RpcUnknown | Body::Busy | Body::NeedAck | Body::SessionUnknown | Body::Close => 0,
        }
    }
}

/// Cuts the first packet off a datagram: `(packet, rest)`, where `rest` is empty if
/// the packet was the last (or only) one. A packet with the BUNDLED flag must give a
/// Bundle Length of at least a header and less than what remains of the datagram.
/// Never panics.
pub fn split_bundle(datagram: &[u8]) -> Result<(&[u8], &[u8])> {
    let header = Header::new_checked(datagram)?;
    if header.flags_byte() & Flags::BUNDLED.bits() == 0 {
        return Ok((datagram, &[]));
    }
    let len = usize::from(header.bundle_len());
    if len < HEADER_LEN || len >= datagram.len() {
        return Err(WireError::InvalidField { field: "bundle length", value: len as u64 });
    }
    Ok(datagram.split_at(len))
}

/// Marks `packet` (the bytes of one emitted packet) as followed by another in the
/// same datagram: sets BUNDLED and writes its length into Bundle Length.
///
/// Panics if `packet` is shorter than a header or longer than 65 535 bytes (a
/// caller bug: datagrams are never that long).
pub fn mark_bundled(packet: &mut [u8]) {
    let len = u16::try_from(packet.len()).expect("packets are shorter than 64 KiB");
    let mut header = Header::new_unchecked(packet);
    let flags = Flags::from_bits(header.flags_byte()).unwrap_or_default().with(Flags::BUNDLED);
    header.set_flags(flags);
    header.set_bundle_len(len);
}

/// A parsed packet. `header.packet_type` always equals `body.packet_type()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRepr<'a> {
    /// The common header (PROTOCOL.md section 3).
    pub header: HeaderRepr,
    /// The type-specific body that follows the header (section 4).
    pub body: Body<'a>,
}

impl<'a> PacketRepr<'a> {
    /// Parses one packet: a whole datagram, or one packet of a bundle as
    /// [`split_bundle`] cut it. Never panics; see the module's no-panic contract.
    pub fn parse(datagram: &'a [u8]) -> Result<PacketRepr<'a>> {
        let header = HeaderRepr::parse(&Header::new_checked(datagram)?)?;
        let rest = &datagram[HEADER_LEN..];
        let body = match header.packet_type {
            PacketType::Data => Body::Data(DataRepr::parse(&DataPacket::new_checked(rest)?)?),
            PacketType::Grant => Body::Grant(GrantRepr::parse(&GrantPacket::new_checked(rest)?)?),
            PacketType::Resend => {
                Body::Resend(ResendRepr::parse(&ResendPacket::new_checked(rest)?)?)
            }
            PacketType::Ack => Body::Ack(AckRepr::parse(&AckPacket::new_checked(rest)?)?),
            PacketType::Handshake => {
                Body::Handshake(HandshakeRepr::parse(&HandshakePacket::new_checked(rest)?)?)
            }
            PacketType::RpcUnknown => Body::RpcUnknown,
            PacketType::Busy => Body::Busy,
            PacketType::NeedAck => Body::NeedAck,
            PacketType::SessionUnknown => Body::SessionUnknown,
            PacketType::Close => Body::Close,
            PacketType::Retry => Body::Retry(RetryRepr::parse(&RetryPacket::new_checked(rest)?)?),
        };
        // Bodies without variable-length data must not carry trailing bytes: an
        // attacker should not be able to smuggle data into packets we accept.
        let exact = match body {
            Body::Data(_) | Body::Handshake(_) | Body::Retry(_) => true,
            other => rest.len() == other.buffer_len(),
        };
        if !exact {
            return Err(WireError::InvalidField {
                field: "packet length",
                value: datagram.len() as u64,
            });
        }
        Ok(PacketRepr { header, body })
    }

    /// Bytes needed to emit the whole packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body.buffer_len()
    }

    /// Emits the packet into `buffer[..self.buffer_len()]` and returns that length.
    ///
    /// Panics if `buffer` is shorter than [`buffer_len`](Self::buffer_len) or if the
    /// header's packet type disagrees with the body (both are caller bugs).
    pub fn emit(&self, buffer: &mut [u8]) -> usize {
        assert_eq!(self.header.packet_type, self.body.packet_type(), "header/body type mismatch");
        let len = self.buffer_len();
        let buffer = &mut buffer[..len];
        self.header.emit(&mut Header::new_unchecked(&mut *buffer));
        let rest = &mut buffer[HEADER_LEN..];
        match &self.body {
            Body::Data(r) => r.emit(&mut DataPacket::new_unchecked(rest)),
            Body::Grant(r) => r.emit(&mut GrantPacket::new_unchecked(rest)),
            Body::Resend(r) => r.emit(&mut ResendPacket::new_unchecked(rest)),
            Body::Ack(r) => r.emit(&mut AckPacket::new_unchecked(rest)),
            Body::Handshake(r) => r.emit(&mut HandshakePacket::new_unchecked(rest)),
            Body::Retry(r) => r.emit(&mut RetryPacket::new_unchecked(rest)),
            Body::RpcUnknown | Body::Busy | Body::NeedAck | Body::SessionUnknown | Body::Close => {}
        }
        len
    }

    /// Appends the packet to `out`, writing each byte once: a DATA payload is copied
    /// straight after its header, with no zero-fill of the room first (which for a
    /// GSO batch of DATA is most of the bytes sent).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        if let Body::Data(data) = &self.body {
            const LEN: usize = HEADER_LEN + super::data::BODY_LEN;
            let mut head = [0u8; LEN];
            let header_only = PacketRepr {
                header: self.header,
                body: Body::Data(DataRepr { payload: &[], ..*data }),
            };
            header_only.emit(&mut head);
            out.extend_from_slice(&head);
            out.extend_from_slice(data.payload);
            return;
        }
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        self.emit(&mut out[start..]);
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf);
        buf
    }
}

impl fmt::Display for PacketRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.header)?;
        match &self.body {
            Body::Data(r) => write!(f, " {r}"),
            Body::Grant(r) => write!(f, " {r}"),
            Body::Resend(r) => write!(f, " {r}"),
            Body::Ack(r) => write!(f, " {r}"),
            Body::Handshake(r) => write!(f, " {r}"),
            Body::Retry(r) => write!(f, " {r}"),
            Body::RpcUnknown | Body::Busy | Body::NeedAck | Body::SessionUnknown | Body::Close => {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, MessageId, MAX_ACKS_PER_PACKET};
    use proptest::prelude::*;

    #[test]
    fn append_to_writes_the_same_bytes_as_emit() {
        let payload: Vec<u8> = (0..=255).collect();
        let data = DataRepr {
            message_length: 5000,
            offset: 1200,
            unscheduled: 4000,
            record_size: 16384,
            priority: 3,
            payload: &payload,
        };
        let grant = GrantRepr { offset: 9000, priority: 1 };
        for packet in [
            PacketRepr { header: header(PacketType::Data, 7), body: Body::Data(data) },
            PacketRepr { header: header(PacketType::Grant, 7), body: Body::Grant(grant) },
        ] {
            let mut out = vec![0xAA; 3];
            packet.append_to(&mut out);
            assert_eq!(out[..3], [0xAA; 3], "what was there stays");
            assert_eq!(out[3..], packet.to_vec()[..]);
        }
    }

    fn header(packet_type: PacketType, message_id: u64) -> HeaderRepr {
        HeaderRepr {
            src_port: 40000,
            dst_port: 4433,
            packet_type,
            flags: Flags::FROM_INITIATOR,
            session_id: 0xfeed_face_cafe_beef,
            message_id: MessageId::new(message_id).unwrap(),
        }
    }

    /// A bundle of a GRANT and a BUSY: the GRANT says BUNDLED and its length (32).
    #[test]
    fn bundle_fixture_splits_into_its_two_packets() {
        let bytes: [u8; 56] = [
            0x11, 0x51, 0x9c, 0x40, 0x01, 0x11, 0x08, 0x00, // GRANT, flags BUNDLED
            0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef, // session
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // bundle length 32, message 7
            0x00, 0x00, 0x10, 0x00, 0x05, 0x00, 0x00, 0x00, // offset 4096, priority 5
            0x11, 0x51, 0x9c, 0x40, 0x01, 0x14, 0x00, 0x00, // BUSY, no flags
            0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef, // session
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // message 9
        ];
        let server = |packet_type, id| HeaderRepr {
            src_port: 4433,
            dst_port: 40000,
            packet_type,
            flags: Flags::empty(),
            session_id: 0xfeed_face_cafe_beef,
            message_id: MessageId::new(id).unwrap(),
        };
        let (first, rest) = split_bundle(&bytes).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(
            PacketRepr::parse(first).unwrap(),
            PacketRepr {
                header: server(PacketType::Grant, 7),
                body: Body::Grant(GrantRepr { offset: 4096, priority: 5 })
            }
        );
        let (second, end) = split_bundle(rest).unwrap();
        assert!(end.is_empty());
        assert_eq!(
            PacketRepr::parse(second).unwrap(),
            PacketRepr { header: server(PacketType::Busy, 9), body: Body::Busy }
        );
        // Emitting the two and marking the first gives the same bytes.
        let mut out = PacketRepr::parse(first).unwrap().to_vec();
        mark_bundled(&mut out);
        out.extend_from_slice(&PacketRepr::parse(second).unwrap().to_vec());
        assert_eq!(out, bytes);
    }

    #[test]
    fn bundle_lengths_that_point_outside_the_datagram_are_rejected() {
        let mut grant = PacketRepr {
            header: header(PacketType::Grant, 1),
            body: Body::Grant(GrantRepr { offset: 1, priority: 0 }),
        }
        .to_vec();
        mark_bundled(&mut grant);
        // Marked as followed by another packet, but nothing follows.
        assert!(split_bundle(&grant).is_err());
        for bad in [0u16, 23, 40, 1000] {
            let mut bytes = grant.clone();
            bytes.extend_from_slice(&[0; 8]);
            bytes[16..18].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(
                split_bundle(&bytes),
                Err(WireError::InvalidField { field: "bundle length", value: u64::from(bad) }),
                "length {bad} in a {}-byte datagram",
                bytes.len()
            );
        }
    }

    /// A complete DATA datagram: header, body and 3 payload bytes.
    #[test]
    fn whole_data_packet_fixture() {
        let bytes: [u8; 43] = [
            0x9c, 0x40, 0x11, 0x51, 0x01, 0x10, 0x02, 0x00, // ports, v1, DATA, INIT
            0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef, // session
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, // message 2^32 + 2
            0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, // length 32, offset 16
            0x00, 0x00, 0x00, 0x20, 0x00, 0x08, 0x00, 0x00, // unscheduled 32, record size 8
            0x01, 0x02, 0x03,
        ];
        let repr = PacketRepr {
            header: header(PacketType::Data, (1 << 32) + 2),
            body: Body::Data(DataRepr {
                message_length: 32,
                offset: 16,
                unscheduled: 32,
                record_size: 8,
                priority: 0,
                payload: &[1, 2, 3],
            }),
        };
        assert_eq!(PacketRepr::parse(&bytes), Ok(repr));
        assert_eq!(repr.to_vec(), bytes);
        assert_eq!(
            repr.to_string(),
            "SMT DATA 40000->4433 session=0xfeedfacecafebeef msg=4294967298 flags=INIT \
             len=32 off=16 bytes=3 unsched=32 rec=8 prio=0"
        );
    }

    /// The control packets without a body are exactly 24 bytes: one fixture each.
    #[test]
    fn bodyless_packet_fixtures() {
        for (packet_type, body, type_byte) in [
            (PacketType::RpcUnknown, Body::RpcUnknown, 0x13u8),
            (PacketType::Busy, Body::Busy, 0x14),
            (PacketType::NeedAck, Body::NeedAck, 0x17),
            (PacketType::SessionUnknown, Body::SessionUnknown, 0x21),
            (PacketType::Close, Body::Close, 0x22),
        ] {
            let mut bytes = [
                0x9c, 0x40, 0x11, 0x51, 0x01, 0x00, 0x02, 0x00, //
                0xfe, 0xed, 0xfa, 0xce, 0xca, 0xfe, 0xbe, 0xef, //
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
            ];
            bytes[5] = type_byte;
            let repr = PacketRepr { header: header(packet_type, 9), body };
            assert_eq!(PacketRepr::parse(&bytes), Ok(repr), "{packet_type}");
            assert_eq!(repr.to_vec(), bytes);
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(
                PacketRepr::parse(&longer).is_err(),
                "trailing byte accepted for {packet_type}"
            );
        }
    }

    #[test]
    fn rejects_trailing_bytes_after_fixed_bodies() {
        let repr = PacketRepr {
            header: header(PacketType::Grant, 1),
            body: Body::Grant(GrantRepr { offset: 10, priority: 0 }),
        };
        let mut bytes = repr.to_vec();
        bytes.push(0);
        assert!(PacketRepr::parse(&bytes).is_err());
    }

    fn arb_message_id() -> impl Strategy<Value = MessageId> {
        (0u64..(1 << 48)).prop_map(|v| MessageId::new(v).unwrap())
    }

    fn arb_header() -> impl Strategy<Value = (u16, u16, u8, u64, MessageId)> {
        // BUNDLED is framing, never part of a Repr.
        let flags = (0u8..=Flags::ALL.bits()).prop_map(|f| f & !Flags::BUNDLED.bits());
        (any::<u16>(), any::<u16>(), flags, any::<u64>(), arb_message_id())
    }

    /// A body plus the payload bytes it borrows (owned here for the strategy).
    #[derive(Debug, Clone)]
    enum OwnedBody {
        Data { len_extra: u32, offset: u32, unsched: u32, rec: u16, prio: u8, payload: Vec<u8> },
        Grant(u32, u8),
        Resend(u32, u32, u8),
        Ack(Vec<MessageId>),
        Handshake(u32, u32, Vec<u8>, Vec<u8>, usize),
        Retry(Vec<u8>),
        Bodyless(u8),
    }

    fn arb_body() -> impl Strategy<Value = OwnedBody> {
        prop_oneof![
            (
                0u32..100_000,
                0u32..1_000_000,
                any::<u32>(),
                8u16..=16384,
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 1..1500)
            )
                .prop_map(|(len_extra, offset, unsched, rec, prio, payload)| {
                    OwnedBody::Data { len_extra, offset, unsched, rec, prio, payload }
                }),
            (any::<u32>(), any::<u8>()).prop_map(|(o, p)| OwnedBody::Grant(o, p)),
            (0u32..1 << 31, 1u32..1 << 31, any::<u8>())
                .prop_map(|(o, l, p)| OwnedBody::Resend(o, l, p)),
            prop::collection::vec(arb_message_id(), 0..=MAX_ACKS_PER_PACKET)
                .prop_map(OwnedBody::Ack),
            (
                0u32..1 << 31,
                any::<u32>(),
                prop::collection::vec(any::<u8>(), 0..2000),
                prop::collection::vec(any::<u8>(), 0..40),
                0usize..1200
            )
                .prop_map(|(o, a, d, t, p)| OwnedBody::Handshake(o, a, d, t, p)),
            prop::collection::vec(any::<u8>(), 1..=crate::wire::MAX_RETRY_TOKEN_LEN)
                .prop_map(OwnedBody::Retry),
            prop::sample::select(vec![0x13u8, 0x14, 0x17, 0x21, 0x22])
                .prop_map(OwnedBody::Bodyless),
        ]
    }

    fn borrow(body: &OwnedBody) -> Body<'_> {
        match body {
            OwnedBody::Data { len_extra, offset, unsched, rec, prio, payload } => {
                let message_length = offset + payload.len() as u32 + len_extra;
                Body::Data(DataRepr {
                    message_length,
                    offset: *offset,
                    unscheduled: unsched % (message_length + 1),
                    record_size: *rec,
                    priority: *prio,
                    payload,
                })
            }
            OwnedBody::Grant(o, p) => Body::Grant(GrantRepr { offset: *o, priority: *p }),
            OwnedBody::Resend(o, l, p) => {
                Body::Resend(ResendRepr { offset: *o, length: *l, priority: *p })
            }
            OwnedBody::Ack(ids) => Body::Ack(AckRepr::new(ids).unwrap()),
            OwnedBody::Handshake(o, a, d, t, p) => Body::Handshake(HandshakeRepr {
                stream_offset: *o,
                acknowledged: *a,
                data: d,
                token: t,
                padding_len: *p,
            }),
            OwnedBody::Retry(token) => Body::Retry(RetryRepr { token }),
            OwnedBody::Bodyless(0x13) => Body::RpcUnknown,
            OwnedBody::Bodyless(0x14) => Body::Busy,
            OwnedBody::Bodyless(0x17) => Body::NeedAck,
            OwnedBody::Bodyless(0x21) => Body::SessionUnknown,
            OwnedBody::Bodyless(_) => Body::Close,
        }
    }

    proptest! {
        #[test]
        fn parse_of_emit_is_identity((sp, dp, flags, session, msg) in arb_header(), owned in arb_body()) {
            let body = borrow(&owned);
            let repr = PacketRepr {
                header: HeaderRepr {
                    src_port: sp,
                    dst_port: dp,
                    packet_type: body.packet_type(),
                    flags: Flags::from_bits(flags).unwrap(),
                    session_id: session,
                    message_id: msg,
                },
                body,
            };
            let bytes = repr.to_vec();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(PacketRepr::parse(&bytes), Ok(repr));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = PacketRepr::parse(&bytes);
            // Nor does cutting arbitrary bytes into a bundle's packets.
            let mut rest = &bytes[..];
            while let Ok((packet, next)) = split_bundle(rest) {
                let _ = PacketRepr::parse(packet);
                if next.is_empty() {
                    break;
                }
                rest = next;
            }
        }

        #[test]
        fn a_bundle_splits_back_into_the_packets_it_was_made_of(
            packets in prop::collection::vec((arb_header(), arb_body()), 1..6),
        ) {
            let owned: Vec<_> = packets;
            let reprs: Vec<PacketRepr<'_>> = owned
                .iter()
                .map(|((sp, dp, flags, session, msg), body)| {
                    let body = borrow(body);
                    PacketRepr {
                        header: HeaderRepr {
                            src_port: *sp, dst_port: *dp, packet_type: body.packet_type(),
                            flags: Flags::from_bits(*flags).unwrap(), session_id: *session,
                            message_id: *msg,
                        },
                        body,
                    }
                })
                .collect();
            let mut datagram = Vec::new();
            let mut last = 0;
            for (i, repr) in reprs.iter().enumerate() {
                if i > 0 {
                    mark_bundled(&mut datagram[last..]);
                }
                last = datagram.len();
                datagram.extend_from_slice(&repr.to_vec());
            }
            let mut rest = &datagram[..];
            for repr in &reprs {
                let (packet, next) = split_bundle(rest).unwrap();
                prop_assert_eq!(PacketRepr::parse(packet), Ok(*repr));
                rest = next;
            }
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_packets(
            (sp, dp, flags, session, msg) in arb_header(),
            owned in arb_body(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let body = borrow(&owned);
            let repr = PacketRepr {
                header: HeaderRepr {
                    src_port: sp, dst_port: dp, packet_type: body.packet_type(),
                    flags: Flags::from_bits(flags).unwrap(), session_id: session, message_id: msg,
                },
                body,
            };
            let mut bytes = repr.to_vec();
            for (index, value) in flips {
                let i = index.index(bytes.len());
                bytes[i] ^= value;
            }
            let cut = cut.index(bytes.len() + 1);
            let _ = PacketRepr::parse(&bytes[..cut]);
        }
    }
}
