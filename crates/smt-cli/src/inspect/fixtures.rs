//! Test fixtures: a synthetic SMT session (handshake starts, sealed requests and
//! responses) as captured Ethernet frames, with the key log that decrypts it.

use std::net::Ipv4Addr;

use smt_proto::record::{seal_message, CipherSuite, TrafficSecret};
use smt_proto::wire::{
    mark_bundled, AckRepr, Body, DataRepr, Flags, HandshakeRepr, HeaderRepr, MessageId, PacketRepr,
    PacketType,
};

use super::keylog::{hex, KeyLog};

pub const RANDOM: [u8; 32] = [0x42; 32];
pub const CLIENT_SECRET: [u8; 32] = [0xc1; 32];
pub const SERVER_SECRET: [u8; 32] = [0x5e; 32];
pub const SUITE: CipherSuite = CipherSuite::Chacha20Poly1305Sha256;
pub const SESSION_ID: u64 = 0x1122_3344_5566_7788;
pub const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 1), 40000);
pub const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 2), 4433);
/// What the SMT headers say, unlike the UDP ports (a NAT rewrote those).
pub const HEADER_PORTS: (u16, u16) = (1111, 2222);

pub fn keylog() -> KeyLog {
    let text = format!(
        "CLIENT_TRAFFIC_SECRET_0 {r} {c}\nSERVER_TRAFFIC_SECRET_0 {r} {s}\n",
        r = hex(&RANDOM),
        c = hex(&CLIENT_SECRET),
        s = hex(&SERVER_SECRET)
    );
    KeyLog::parse(text.as_bytes())
}

/// The start of a ClientHello record (enough for the random), padded.
pub fn client_hello() -> Vec<u8> {
    let mut s = vec![22, 3, 1, 1, 0, 1, 0, 0, 252, 3, 3];
    s.extend_from_slice(&RANDOM);
    s.extend_from_slice(&[0; 200]);
    s
}

/// The start of a ServerHello choosing `suite`.
pub fn server_hello(suite: CipherSuite) -> Vec<u8> {
    let mut s = vec![22, 3, 3, 0, 90, 2, 0, 0, 86, 3, 3];
    s.extend_from_slice(&[0x99; 32]);
    s.push(0);
    s.extend_from_slice(&suite.code().to_be_bytes());
    s.extend_from_slice(&[0; 40]);
    s
}

fn header(from_client: bool, packet_type: PacketType, id: u64, flags: Flags) -> HeaderRepr {
    let (src_port, dst_port) =
        if from_client { HEADER_PORTS } else { (HEADER_PORTS.1, HEADER_PORTS.0) };
    let mut flags = flags;
    flags.set(Flags::FROM_INITIATOR, from_client);
    HeaderRepr {
        src_port,
        dst_port,
        packet_type,
        flags,
        session_id: SESSION_ID,
        message_id: MessageId::new(id).unwrap(),
    }
}

pub fn handshake(from_client: bool, offset: u32, data: &[u8]) -> Vec<u8> {
    PacketRepr {
        header: header(from_client, PacketType::Handshake, 0, Flags::empty()),
        body: Body::Handshake(HandshakeRepr {
            stream_offset: offset,
            acknowledged: 0,
            data,
            token: &[],
            padding_len: 0,
        }),
    }
    .to_vec()
}

/// An ACK bundled in front of `packet`, as a client sends it before a request.
pub fn bundled_with_ack(packet: &[u8]) -> Vec<u8> {
    let mut ack = PacketRepr {
        header: header(true, PacketType::Ack, 0, Flags::empty()),
        body: Body::Ack(AckRepr::new(&[MessageId::new(1).unwrap()]).unwrap()),
    }
    .to_vec();
    mark_bundled(&mut ack);
    [ack, packet.to_vec()].concat()
}

/// Message `id` (`payload`, sealed with `secret`'s key generation `generation`) cut
/// into DATA packets of at most `chunk` bytes.
pub fn data_packets(
    from_client: bool,
    id: u64,
    payload: &[u8],
    generation: usize,
    chunk: usize,
) -> Vec<Vec<u8>> {
    let secret = if from_client { CLIENT_SECRET } else { SERVER_SECRET };
    let mut secret = TrafficSecret::new(SUITE, &secret).unwrap();
    for _ in 0..generation {
        secret = secret.next();
    }
    let record_size = 1000;
    let wire =
        seal_message(&secret.record_key(), MessageId::new(id).unwrap(), payload, record_size)
            .unwrap();
    let mut flags = Flags::empty();
    flags.set(Flags::KEY_PHASE, generation % 2 == 1);
    wire.chunks(chunk)
        .enumerate()
        .map(|(i, bytes)| {
            PacketRepr {
                header: header(from_client, PacketType::Data, id, flags),
                body: Body::Data(DataRepr {
                    message_length: wire.len() as u32,
                    offset: (i * chunk) as u32,
                    unscheduled: wire.len() as u32,
                    record_size: record_size as u16,
                    priority: 0,
                    payload: bytes,
                }),
            }
            .to_vec()
        })
        .collect()
}

/// An Ethernet frame carrying `payload` in IPv4 with protocol `protocol` (17: in
/// UDP between the client's and server's UDP ports).
pub fn frame(from_client: bool, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = if from_client { (CLIENT, SERVER) } else { (SERVER, CLIENT) };
    let mut l4 = Vec::new();
    if protocol == 17 {
        l4.extend_from_slice(&src.1.to_be_bytes());
        l4.extend_from_slice(&dst.1.to_be_bytes());
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    f.extend_from_slice(&l4);
    f
}

/// The request payload of message `id`.
pub fn payload(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + id) as u8).collect()
}

/// A whole session in UDP (`protocol` 17) or native IP (253): handshake starts,
/// request 1 (2500 bytes; one packet sent twice, the first behind an ACK), its
/// response, and request 2 with its response.
pub fn session_frames(protocol: u8, with_server_hello: bool) -> Vec<Vec<u8>> {
    let mut packets: Vec<(bool, Vec<u8>)> = Vec::new();
    let hello = client_hello();
    packets.push((true, handshake(true, 100, &hello[100..])));
    packets.push((true, handshake(true, 0, &hello[..100])));
    if with_server_hello {
        packets.push((false, handshake(false, 0, &server_hello(SUITE))));
    }
    for id in 1..=2 {
        let request = data_packets(true, id, &payload(id, 2500), 0, 1200);
        for (i, packet) in request.iter().enumerate() {
            let bytes = if i == 0 { bundled_with_ack(packet) } else { packet.clone() };
            packets.push((true, bytes));
        }
        if id == 1 {
            packets.push((true, request[1].clone()));
        }
        for packet in data_packets(false, id, &payload(id, 2500), 0, 1200) {
            packets.push((false, packet));
        }
    }
    packets.into_iter().map(|(from_client, p)| frame(from_client, protocol, &p)).collect()
}
