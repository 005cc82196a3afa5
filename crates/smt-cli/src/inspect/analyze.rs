//! The pipeline for each captured frame: link layer, IP, UDP or native IP, SMT
//! packets, and on to the session they belong to. Everything that is not SMT, or not
//! well formed, is counted and skipped.

use std::collections::HashMap;
use std::net::SocketAddr;

use smt_proto::wire::{Body, Flags, PacketRepr};

use super::capture::Frame;
use super::ip::{self, Datagram, Encapsulation};
use super::keylog::KeyLog;
use super::link::{self, Network};
use super::packets;
use super::session::{Session, SessionKey};

/// What to look at.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Only UDP datagrams from or to this port (in native IP mode: SMT header ports).
    pub port: Option<u16>,
    /// SMT's IP protocol number in native IP mode.
    pub ip_protocol: u8,
}

/// Counts of everything that was skipped, and of what was not.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames: u64,
    pub not_ip: u64,
    pub loopback_duplicates: u64,
    pub malformed_ip: u64,
    pub ip_fragments: u64,
    pub other_protocols: u64,
    pub other_ports: u64,
    /// UDP (or native IP) datagrams examined for SMT packets.
    pub datagrams: u64,
    pub truncated_datagrams: u64,
    /// Datagrams that were GSO/GRO batches of several.
    pub gso_batches: u64,
    pub broken_bundles: u64,
    pub smt_packets: u64,
    /// Packets (or datagrams) that do not parse as SMT.
    pub not_smt: u64,
}

pub struct Analyzer<'k> {
    keylog: &'k KeyLog,
    options: Options,
    sessions: Vec<(SessionKey, Session)>,
    by_key: HashMap<SessionKey, usize>,
    pub stats: Stats,
}

impl<'k> Analyzer<'k> {
    pub fn new(keylog: &'k KeyLog, options: Options) -> Analyzer<'k> {
        Analyzer {
            keylog,
            options,
            sessions: Vec::new(),
            by_key: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn frame(&mut self, frame: &Frame<'_>) {
        self.stats.frames += 1;
        let packet = match link::network_layer(frame.link, frame.data) {
            Network::Ip(packet) => packet,
            Network::NotIp => return self.stats.not_ip += 1,
            Network::LoopbackOutgoing => return self.stats.loopback_duplicates += 1,
        };
        let datagram = match ip::parse(packet, self.options.ip_protocol) {
            ip::Parsed::Datagram(d) => d,
            ip::Parsed::Fragment => return self.stats.ip_fragments += 1,
            ip::Parsed::OtherProtocol => return self.stats.other_protocols += 1,
            ip::Parsed::Malformed => return self.stats.malformed_ip += 1,
        };
        if let (Some(port), Some((src, dst))) = (self.options.port, datagram.udp_ports) {
            if src != port && dst != port {
                return self.stats.other_ports += 1;
            }
        }
        self.stats.datagrams += 1;
        self.stats.truncated_datagrams += u64::from(datagram.truncated);
        let split = packets::split(datagram.payload);
        self.stats.gso_batches += u64::from(split.segments > 1);
        self.stats.broken_bundles += split.broken_bundles as u64;
        for bytes in split.packets {
            match PacketRepr::parse(bytes) {
                Ok(repr) => self.packet(frame.number, &datagram, &repr),
                Err(_) => self.stats.not_smt += 1,
            }
        }
    }

    fn packet(&mut self, frame: u64, datagram: &Datagram<'_>, repr: &PacketRepr<'_>) {
        let header = &repr.header;
        if datagram.encapsulation == Encapsulation::NativeIp {
            if let Some(port) = self.options.port {
                if header.src_port != port && header.dst_port != port {
                    return self.stats.other_ports += 1;
                }
            }
        }
        self.stats.smt_packets += 1;
        let (src_port, dst_port) = datagram.udp_ports.unwrap_or((header.src_port, header.dst_port));
        let src = SocketAddr::new(datagram.src, src_port);
        let dst = SocketAddr::new(datagram.dst, dst_port);
        let from_client = header.flags.contains(Flags::FROM_INITIATOR);
        let (client, server) = if from_client { (src, dst) } else { (dst, src) };
        let key = SessionKey {
            encapsulation: datagram.encapsulation,
            client,
            server,
            session_id: header.session_id,
        };
        let index = *self.by_key.entry(key).or_insert_with(|| {
            self.sessions.push((key, Session::new(frame)));
            self.sessions.len() - 1
        });
        let Some((_, session)) = self.sessions.get_mut(index) else { return };
        session.count(type_name(&repr.body));
        match &repr.body {
            Body::Handshake(h) => {
                session.handshake(from_client, h.stream_offset, h.data, self.keylog)
            }
            Body::Data(d) => session.data(frame, from_client, header.message_id, header.flags, d),
            _ => {}
        }
    }

    /// Finishes every session (late key discovery) and hands them over in order of
    /// first appearance.
    pub fn finish(mut self) -> (Vec<(SessionKey, Session)>, Stats) {
        for (_, session) in &mut self.sessions {
            session.finish();
        }
        (self.sessions, self.stats)
    }
}

fn type_name(body: &Body<'_>) -> &'static str {
    match body {
        Body::Data(_) => "DATA",
        Body::Grant(_) => "GRANT",
        Body::Resend(_) => "RESEND",
        Body::RpcUnknown => "RPC_UNKNOWN",
        Body::Busy => "BUSY",
        Body::NeedAck => "NEED_ACK",
        Body::Ack(_) => "ACK",
        Body::Handshake(_) => "HANDSHAKE",
        Body::SessionUnknown => "SESSION_UNKNOWN",
        Body::Close => "CLOSE",
        Body::Retry(_) => "RETRY",
    }
}

#[cfg(test)]
mod tests {
    use pcap_file::DataLink;

    use super::super::fixtures::{self, CLIENT, HEADER_PORTS, SERVER, SESSION_ID, SUITE};
    use super::super::message::Direction;
    use super::super::session::KeyStatus;
    use super::*;

    const OPTIONS: Options = Options { port: None, ip_protocol: 253 };

    fn analyze(
        frames: &[Vec<u8>],
        keylog: &KeyLog,
        options: Options,
    ) -> (Vec<(SessionKey, Session)>, Stats) {
        let mut analyzer = Analyzer::new(keylog, options);
        for (i, data) in frames.iter().enumerate() {
            analyzer.frame(&Frame { number: i as u64 + 1, link: DataLink::ETHERNET, data });
        }
        analyzer.finish()
    }

    fn assert_fully_decrypted(session: &Session) {
        assert_eq!(session.messages.len(), 4);
        for m in &session.messages {
            assert!(m.complete(), "{m:?}");
            assert_eq!(m.records_opened(), m.layout.record_count() as u64, "{m:?}");
            assert_eq!(m.failed_records().count(), 0);
            assert_eq!(m.head(), &fixtures::payload(m.id.get(), 16)[..]);
        }
    }

    #[test]
    fn a_udp_session_is_keyed_by_its_udp_addresses_and_decrypted_with_the_key_log() {
        let keylog = fixtures::keylog();
        let (sessions, stats) = analyze(&fixtures::session_frames(17, true), &keylog, OPTIONS);
        assert_eq!(sessions.len(), 1, "both directions form one session");
        let (key, session) = &sessions[0];
        // UDP ports, not the header's (a NAT rewrote them).
        assert_eq!(key.client, SocketAddr::new(CLIENT.0.into(), CLIENT.1));
        assert_eq!(key.server, SocketAddr::new(SERVER.0.into(), SERVER.1));
        assert_eq!((key.session_id, key.encapsulation), (SESSION_ID, Encapsulation::Udp));
        assert_eq!(session.key_status(), KeyStatus::Found);
        assert_eq!((session.suite(), session.suite_guessed), (Some(SUITE), false));
        assert_eq!(session.client_random, Some(fixtures::RANDOM));
        assert_fully_decrypted(session);
        let request_1 = session
            .messages
            .iter()
            .find(|m| m.id.get() == 1 && m.direction == Direction::Request)
            .unwrap();
        assert_eq!((request_1.data_packets, request_1.duplicate_packets), (4, 1));
        assert_eq!(session.packet_counts.get("ACK"), Some(&2));
        assert_eq!(stats.not_smt, 0);
    }

    #[test]
    fn native_ip_sessions_take_their_ports_from_the_smt_header() {
        let keylog = fixtures::keylog();
        let (sessions, _) = analyze(&fixtures::session_frames(253, true), &keylog, OPTIONS);
        assert_eq!(sessions.len(), 1);
        let (key, session) = &sessions[0];
        assert_eq!(key.encapsulation, Encapsulation::NativeIp);
        assert_eq!(key.client, SocketAddr::new(CLIENT.0.into(), HEADER_PORTS.0));
        assert_eq!(key.server, SocketAddr::new(SERVER.0.into(), HEADER_PORTS.1));
        assert_fully_decrypted(session);
        // --port filters native IP packets by their header ports.
        let only_other = Options { port: Some(9), ..OPTIONS };
        let (sessions, stats) = analyze(&fixtures::session_frames(253, true), &keylog, only_other);
        assert!(sessions.is_empty());
        assert!(stats.other_ports > 0);
    }

    #[test]
    fn without_the_server_hello_the_cipher_suite_is_found_by_trying_each() {
        let keylog = fixtures::keylog();
        let (sessions, _) = analyze(&fixtures::session_frames(17, false), &keylog, OPTIONS);
        let (_, session) = &sessions[0];
        assert_eq!(session.key_status(), KeyStatus::Found);
        assert_eq!((session.suite(), session.suite_guessed), (Some(SUITE), true));
        assert_fully_decrypted(session);
    }

    #[test]
    fn a_session_missing_from_the_key_log_still_lists_its_messages() {
        let empty = KeyLog::parse(b"");
        let (sessions, _) = analyze(&fixtures::session_frames(17, true), &empty, OPTIONS);
        let (_, session) = &sessions[0];
        assert_eq!(session.key_status(), KeyStatus::NotInKeyLog);
        assert_eq!(session.messages.len(), 4);
        assert!(session.messages.iter().all(|m| m.complete() && m.records_opened() == 0));
        // Without the handshake there is no client random to look up at all.
        let (sessions, _) =
            analyze(&fixtures::session_frames(17, true)[2..], &fixtures::keylog(), OPTIONS);
        assert_eq!(sessions[0].1.key_status(), KeyStatus::NoHandshake);
    }

    #[test]
    fn udp_on_other_ports_and_non_smt_datagrams_are_counted_not_decoded() {
        let keylog = fixtures::keylog();
        let mut frames = fixtures::session_frames(17, true);
        frames.push(fixtures::frame(true, 17, b"not an SMT packet at all"));
        frames.push(fixtures::frame(true, 6, b"tcp"));
        frames.push(vec![0; 10]);
        let (_, stats) = analyze(&frames, &keylog, OPTIONS);
        assert_eq!((stats.not_smt, stats.other_protocols, stats.not_ip), (1, 1, 1));

        let other_port = Options { port: Some(5353), ..OPTIONS };
        let (sessions, stats) = analyze(&frames, &keylog, other_port);
        assert!(sessions.is_empty());
        assert_eq!(stats.other_ports, frames.len() as u64 - 2);
    }

    #[test]
    fn a_message_sealed_after_a_key_update_opens_with_the_derived_key() {
        let keylog = fixtures::keylog();
        let mut frames = fixtures::session_frames(17, true);
        for packet in fixtures::data_packets(false, 3, &fixtures::payload(3, 100), 1, 1200) {
            frames.push(fixtures::frame(false, 17, &packet));
        }
        let (sessions, _) = analyze(&frames, &keylog, OPTIONS);
        let response = sessions[0].1.messages.iter().find(|m| m.id.get() == 3).unwrap();
        assert_eq!(response.generation, Some(1));
        assert_eq!(response.head(), &fixtures::payload(3, 16)[..]);
    }

    /// xorshift64*: a deterministic source of mutations.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Captured bytes are attacker-controlled: flipped, cut and shuffled frames
    /// must be counted or decoded, never crash the decoder.
    #[test]
    fn mutated_frames_never_panic() {
        let keylog = fixtures::keylog();
        let original =
            [fixtures::session_frames(17, true), fixtures::session_frames(253, false)].concat();
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let mut frames = original.clone();
            for frame in &mut frames {
                match next(&mut state) % 4 {
                    0 => {}
                    1 => {
                        let at = (next(&mut state) as usize) % frame.len();
                        frame[at] ^= 1 << (next(&mut state) % 8);
                    }
                    2 => {
                        let len = (next(&mut state) as usize) % (frame.len() + 1);
                        frame.truncate(len);
                    }
                    _ => {
                        // Overwrite a header-ish field with extremes.
                        let at = 42 + (next(&mut state) as usize) % 48;
                        let value = [0x00, 0xff, 0x7f, 0x80][(next(&mut state) % 4) as usize];
                        if let Some(byte) = frame.get_mut(at) {
                            *byte = value;
                        }
                    }
                }
            }
            let rotate = (next(&mut state) as usize) % frames.len();
            frames.rotate_left(rotate);
            let (sessions, _) = analyze(&frames, &keylog, OPTIONS);
            let report = super::super::report::Report::new(
                std::path::Path::new("fuzz"),
                super::super::capture::CaptureInfo {
                    format: super::super::capture::Format::Pcap,
                    link_types: vec![DataLink::ETHERNET],
                    frames: frames.len() as u64,
                    unsupported_frames: 0,
                    damaged_end: None,
                },
                std::path::Path::new("keys"),
                &keylog,
                Stats::default(),
                sessions,
            );
            let _ = report.to_json();
            report.write_text(&mut std::io::sink()).unwrap();
        }
    }
}
