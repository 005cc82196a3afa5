//! A state-machine fuzz driver: a live session pair on a simulated network, and a
//! script decoded from arbitrary bytes that makes calls, injects forged packets
//! (the right session ID and ports, every other field chosen by the input) into
//! either side, drops, duplicates and reorders traffic, and lets time pass. When the
//! script ends the faults stop, and the invariants are checked:
//!
//! - nothing panics (whatever the bytes);
//! - the server runs only requests the client made, each at most once, with the
//!   client's exact bytes; the client gets only its own requests echoed back, each
//!   at most once;
//! - the state the endpoints hold stays within their configured limits throughout;
//! - liveness: once the faults stop, every call ends (answered or failed), and if
//!   the session was not ended by a forged CLOSE or SESSION_UNKNOWN, a new call is
//!   answered.
//!
//! `cargo fuzz run session_state` (in `fuzz/`) feeds it coverage-guided inputs; the
//! `state_machine_fuzz` test runs it on a few hundred random ones in CI.

use std::collections::HashMap;
use std::time::Duration;

use smt_proto::engine::{Config, Event, RpcError};
use smt_proto::record::CipherSuite;
use smt_proto::wire::{
    AckRepr, Body, DataRepr, Flags, GrantRepr, HandshakeRepr, HeaderRepr, MessageId, PacketRepr,
    ResendRepr, RetryRepr,
};

use crate::{HostId, LinkConfig, Network};

/// Most script steps taken from one input (bounds a run's time).
const MAX_STEPS: usize = 200;

/// Reads the input a byte at a time; zeroes once it runs out.
struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head.to_vec()
    }

    fn done(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Runs one input. Panics (the fuzzer's finding) if an invariant breaks.
pub fn run(input: &[u8]) {
    let mut script = Script { bytes: input };
    let mut config = Config::default();
    config.idle_timeout = None;
    // Small limits, so that inputs reach them.
    config.max_incoming_messages_per_session = 64;
    config.max_incoming_bytes_per_session = 4 << 20;
    config.max_incoming_bytes_total = 8 << 20;
    config.max_message_len = 1 << 20;
    let link = LinkConfig {
        loss: f64::from(script.u8() % 8) / 100.0,
        duplicate: f64::from(script.u8() % 4) / 100.0,
        reorder: f64::from(script.u8() % 8) / 100.0,
        ..LinkConfig::default()
    };
    let mut net = Network::new(u64::from(script.u16()), link);
    let client = net.add_host(config.clone());
    let server = net.add_host(config.clone());
    net.set_echo(server);
    let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let session_id = net.endpoint_ref(client).session_info(cs).map(|(_, _, id)| id).unwrap_or(0);
    let mut made: HashMap<MessageId, Vec<u8>> = HashMap::new();
    let mut ended_by_forgery = false;
    for _ in 0..MAX_STEPS {
        if script.done() {
            break;
        }
        match script.u8() % 6 {
            0 | 1 => {
                let len = usize::from(script.u16()) * usize::from(script.u8() % 8 + 1);
                let request: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();
                let now = net.now();
                if let Ok(id) = net.endpoint(client).call(now, cs, &request) {
                    made.insert(id, request);
                }
                net.pump_host(client);
            }
            2 | 3 => {
                let to_server = script.u8() % 2 == 0;
                let (packet, ends) =
                    forge(&mut script, &net, client, server, session_id, to_server);
                ended_by_forgery |= ends;
                let (to, from) = if to_server { (server, client) } else { (client, server) };
                let from = net.addr(from);
                net.inject(to, from, packet);
            }
            4 => {
                let until = net.elapsed() + Duration::from_micros(u64::from(script.u16()) * 20);
                net.advance_to(until);
            }
            _ => {
                let until = net.elapsed() + Duration::from_micros(50);
                net.advance_to(until);
            }
        }
        check_bounds(&net, client, server, &config);
        check_deliveries(&net, client, server, &made);
    }
    // Faults stop: a clean path from here on.
    net.set_link(LinkConfig::default());
    let limit = net.elapsed() + config.rpc_timeout * 3;
    let settled = net.run_until(limit, |n| ended(n, client) >= made.len());
    check_deliveries(&net, client, server, &made);
    check_bounds(&net, client, server, &config);
    assert!(settled, "calls neither answered nor failed after the faults stopped");
    let closed = net.endpoint_ref(client).session_info(cs).is_none()
        || net.endpoint_ref(server).session_info(ss).is_none();
    if closed {
        // Only a forged CLOSE or SESSION_UNKNOWN may end the session.
        assert!(ended_by_forgery, "the session ended without a forged CLOSE/SESSION_UNKNOWN");
        return;
    }
    let now = net.now();
    let Ok(id) = net.endpoint(client).call(now, cs, b"liveness") else {
        panic!("the live session refuses a new call");
    };
    net.pump_host(client);
    made.insert(id, b"liveness".to_vec());
    let limit = net.elapsed() + config.rpc_timeout * 2;
    let finished = net.run_until(limit, |n| outcome(n, client, id).is_some());
    assert!(finished, "a new call on the live session was not answered after the faults");
    check_deliveries(&net, client, server, &made);
    match outcome(&net, client, id) {
        Some(Ok(())) => {}
        // A forged CLOSE or SESSION_UNKNOWN still in flight may end it meanwhile.
        Some(Err(RpcError::PeerReset | RpcError::PeerClosed)) if ended_by_forgery => {}
        other => panic!("the liveness call ended with {other:?}"),
    }
}

/// A packet with the session's ID and ports and every other field from the input.
fn forge(
    script: &mut Script<'_>,
    net: &Network,
    client: HostId,
    server: HostId,
    session_id: u64,
    to_server: bool,
) -> (Vec<u8>, bool) {
    let (src, dst) = if to_server { (client, server) } else { (server, client) };
    let kind = script.u8() % 11;
    let mut flags = Flags::empty();
    if to_server {
        flags.set(Flags::FROM_INITIATOR, true);
    }
    if script.u8() % 4 == 0 {
        flags.set(Flags::KEY_PHASE, true);
    }
    let message_id = MessageId::new(u64::from(script.u16() % 512)).unwrap_or_default();
    let payload = {
        let n = usize::from(script.u16() % 1500);
        script.take(n)
    };
    let ids = [MessageId::new(u64::from(script.u8())).unwrap_or_default()];
    let ids_bytes = {
        let n = usize::from(script.u8() % 40) + 1;
        script.take(n)
    };
    let offset = script.u32() % (2 << 20);
    let body = match kind {
        0 | 1 => Body::Data(DataRepr {
            // At least offset + payload (what a DATA packet can express).
            message_length: (script.u32() % (2 << 20)).max(offset + payload.len() as u32),
            offset,
            unscheduled: script.u32(),
            record_size: script.u16(),
            priority: script.u8(),
            payload: &payload,
        }),
        2 => Body::Grant(GrantRepr { offset: script.u32(), priority: script.u8() }),
        3 => Body::Resend(ResendRepr {
            offset: script.u32(),
            length: script.u32(),
            priority: script.u8(),
        }),
        4 => Body::Busy,
        5 => Body::RpcUnknown,
        6 => Body::NeedAck,
        7 => match AckRepr::new(&ids) {
            Some(ack) => Body::Ack(ack),
            None => Body::Busy,
        },
        8 => match script.u8() % 2 {
            0 => Body::Close,
            _ => Body::SessionUnknown,
        },
        // Handshake packets on an established session (with and without a retry
        // token) and RETRYs: the session must not notice.
        9 => Body::Handshake(HandshakeRepr {
            stream_offset: offset,
            acknowledged: script.u32(),
            data: &payload[..payload.len().min(1200)],
            token: &ids_bytes,
            padding_len: usize::from(script.u8()),
        }),
        _ => Body::Retry(RetryRepr { token: &ids_bytes }),
    };
    let ends = matches!(body, Body::Close | Body::SessionUnknown);
    let header = HeaderRepr {
        src_port: net.addr(src).port(),
        dst_port: net.addr(dst).port(),
        packet_type: body.packet_type(),
        flags,
        session_id,
        message_id,
    };
    let packet = PacketRepr { header, body };
    let mut bytes = vec![0u8; packet.buffer_len()];
    packet.emit(&mut bytes);
    (bytes, ends)
}

fn check_bounds(net: &Network, client: HostId, server: HostId, config: &Config) {
    for host in [client, server] {
        let m = net.endpoint_ref(host).memory_usage();
        // The admission limits bound incomplete incoming messages; delivered
        // requests the echo answers at once add nothing lasting.
        assert!(m.incoming_messages <= config.max_incoming_messages_per_session, "{m:?}");
        assert!(m.incoming_bytes <= config.max_incoming_bytes_total, "{m:?}");
    }
}

/// Every request the server ran and every response the client got is one the client
/// made, with its bytes, at most once.
fn check_deliveries(
    net: &Network,
    client: HostId,
    server: HostId,
    made: &HashMap<MessageId, Vec<u8>>,
) {
    let mut ran: HashMap<MessageId, usize> = HashMap::new();
    for (_, event) in net.events(server) {
        if let Event::Request { id, payload, .. } = event {
            let request =
                made.get(id).unwrap_or_else(|| panic!("server ran request {id} nobody made"));
            assert!(payload[..] == request[..], "request {id} ran with other bytes");
            *ran.entry(*id).or_default() += 1;
            assert_eq!(ran[id], 1, "request {id} ran twice");
        }
    }
    let mut got: HashMap<MessageId, usize> = HashMap::new();
    for (_, event) in net.events(client) {
        if let Event::Response { id, payload, .. } = event {
            let request =
                made.get(id).unwrap_or_else(|| panic!("response for call {id} never made"));
            assert!(payload[..] == request[..], "response {id} is not its request's echo");
            *got.entry(*id).or_default() += 1;
            assert_eq!(got[id], 1, "response {id} delivered twice");
        }
    }
}

/// Calls of the client that ended: answered or failed (a session's end fails all).
fn ended(net: &Network, client: HostId) -> usize {
    net.events(client)
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { .. } | Event::RpcFailed { .. }))
        .count()
}

/// How call `id` ended, if it did.
fn outcome(net: &Network, client: HostId, id: MessageId) -> Option<Result<(), RpcError>> {
    net.events(client).iter().find_map(|(_, e)| match e {
        Event::Response { id: got, .. } if *got == id => Some(Ok(())),
        Event::RpcFailed { id: got, error, .. } if *got == id => Some(Err(error.clone())),
        _ => None,
    })
}
