//! Adversarial scenarios for the in-band handshake and the control packets, on the
//! simulated network. The handshake runs over a small deterministic fake TLS (below)
//! so that the transport's own behaviour is what is tested: loss, duplication and
//! reordering of handshake datagrams, the anti-amplification bound, the bound on
//! pending handshakes, and forged control packets on established sessions. Every
//! test asserts exact outcomes and runs in bounded virtual time.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use smt_proto::engine::{
    AddressValidation, Alert, Config, Event, Role, RpcError, SessionHandle, SessionParams,
    TlsAcceptor, TlsError, TlsSession, AMPLIFICATION_FACTOR, MIN_FIRST_DATAGRAM,
};
use smt_proto::record::{CipherSuite, RecordKey};
use smt_proto::wire::{
    AckRepr, Body, Flags, GrantRepr, HandshakeRepr, HeaderRepr, MessageId, PacketRepr, PacketType,
    ResendRepr, HEADER_LEN,
};
use smt_sim::{HostId, LinkConfig, Network};

// ---------------------------------------------------------------------------------
// A deterministic fake TLS 1.3.
//
// Client stream: `hello` (hello_len bytes), then `finished` (FINISHED_LEN bytes),
// the latter once the server's whole flight arrived. Server stream: `flight`
// (flight_len bytes, standing for ServerHello..Finished with a certificate chain),
// sent once the hello arrived; in a rejecting mode, an alert after the client's
// finished. Every byte is a known function of its position, so each side verifies
// that the transport delivered its peer's stream in order, without gaps or
// corruption. Traffic keys derive from a shared secret, one per direction.
// ---------------------------------------------------------------------------------

const FINISHED_LEN: usize = 36;
const TAG_HELLO: u8 = 0xC1;
const TAG_FINISHED: u8 = 0xCF;
const TAG_FLIGHT: u8 = 0x5E;
const C2S: u8 = 1;
const S2C: u8 = 2;
const SERVER_CERT: &[u8] = b"fake server certificate";
/// HANDSHAKE datagram overhead: common header plus the fixed HANDSHAKE body.
const HS_OVERHEAD: usize = HEADER_LEN + 12;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn stream_byte(tag: u8, i: usize) -> u8 {
    let mut s = (i as u64) ^ (u64::from(tag) << 56);
    splitmix(&mut s) as u8
}

fn stream_bytes(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| stream_byte(tag, i)).collect()
}

fn derive_key(secret: u64, direction: u8) -> RecordKey {
    let mut state = secret ^ (u64::from(direction) << 40);
    let mut material = [0u8; 32];
    for chunk in material.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    RecordKey::new(CipherSuite::Aes128GcmSha256, &material[..16], &material[16..28])
        .expect("AES-128 key and IV sizes")
}

/// What the fake server does with the client's finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    /// Rejects it and sends an opaque (encrypted-looking) record as its alert.
    RejectOpaque,
    /// Rejects it and sends a plaintext alert record with this description.
    RejectPlainAlert(u8),
}

#[derive(Clone, Debug)]
struct FakeTls {
    secret: u64,
    hello_len: usize,
    flight_len: usize,
    verdict: Verdict,
}

impl FakeTls {
    fn new(secret: u64, hello_len: usize, flight_len: usize) -> FakeTls {
        FakeTls { secret, hello_len, flight_len, verdict: Verdict::Accept }
    }

    fn client(&self) -> Box<dyn TlsSession> {
        Box::new(FakeClient {
            p: self.clone(),
            out: stream_bytes(TAG_HELLO, self.hello_len),
            received: 0,
            done: false,
        })
    }

    fn acceptor(&self) -> Box<dyn TlsAcceptor> {
        Box::new(FakeAcceptor(self.clone()))
    }
}

struct FakeClient {
    p: FakeTls,
    out: Vec<u8>,
    received: usize,
    done: bool,
}

impl TlsSession for FakeClient {
    fn read_handshake(&mut self, bytes: &[u8]) -> Result<(), TlsError> {
        for &b in bytes {
            let i = self.received;
            if i >= self.p.flight_len {
                return Err(TlsError::refused(None, "bytes after the server's finished"));
            }
            if b != stream_byte(TAG_FLIGHT, i) {
                return Err(TlsError::refused(
                    None,
                    format!("server flight corrupted at byte {i}"),
                ));
            }
            self.received += 1;
        }
        if self.received == self.p.flight_len && !self.done {
            self.done = true;
            self.out.extend(stream_bytes(TAG_FINISHED, FINISHED_LEN));
        }
        Ok(())
    }

    fn write_handshake(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    fn is_handshaking(&self) -> bool {
        !self.done
    }

    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsError> {
        assert!(self.done && self.out.is_empty(), "keys taken before the handshake completed");
        Ok((derive_key(self.p.secret, C2S), derive_key(self.p.secret, S2C)))
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.done.then(|| vec![SERVER_CERT.to_vec()])
    }
}

struct FakeServer {
    p: FakeTls,
    out: Vec<u8>,
    received: usize,
    done: bool,
}

impl TlsSession for FakeServer {
    fn read_handshake(&mut self, bytes: &[u8]) -> Result<(), TlsError> {
        let (hello, total) = (self.p.hello_len, self.p.hello_len + FINISHED_LEN);
        for &b in bytes {
            let i = self.received;
            let expected = if i < hello {
                stream_byte(TAG_HELLO, i)
            } else if i < total {
                stream_byte(TAG_FINISHED, i - hello)
            } else {
                return Err(TlsError::refused(None, "bytes after the client's finished"));
            };
            if b != expected {
                return Err(TlsError::refused(
                    None,
                    format!("client stream corrupted at byte {i}"),
                ));
            }
            self.received += 1;
            if self.received == hello {
                self.out.extend(stream_bytes(TAG_FLIGHT, self.p.flight_len));
            }
        }
        if self.received == total && !self.done {
            match self.p.verdict {
                Verdict::Accept => self.done = true,
                Verdict::RejectOpaque => {
                    // An application-data record whose content no key opens.
                    self.out.extend([23, 3, 3, 0, 19]);
                    self.out.extend(stream_bytes(0xAA, 19));
                    return Err(TlsError::refused(None, "client certificate rejected"));
                }
                Verdict::RejectPlainAlert(description) => {
                    self.out.extend([21, 3, 3, 0, 2, 2, description]);
                    return Err(TlsError::refused(None, "client certificate rejected"));
                }
            }
        }
        Ok(())
    }

    fn write_handshake(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    fn is_handshaking(&self) -> bool {
        !self.done
    }

    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsError> {
        assert!(self.done && self.out.is_empty(), "keys taken before the handshake completed");
        Ok((derive_key(self.p.secret, S2C), derive_key(self.p.secret, C2S)))
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
}

struct FakeAcceptor(FakeTls);

impl TlsAcceptor for FakeAcceptor {
    fn start(&self, _peer: SocketAddr) -> Box<dyn TlsSession> {
        Box::new(FakeServer { p: self.0.clone(), out: Vec::new(), received: 0, done: false })
    }
}

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// The default configuration without the idle timeout: these tests run the network
/// until it goes quiet (every timer disarmed), which a session's idle timer never
/// lets happen; the idle timeout has its own scenarios (`lifecycle.rs`).
fn quiet_config() -> Config {
    let mut config = Config::default();
    config.idle_timeout = None;
    config
}

fn config() -> Config {
    quiet_config()
}

/// A lossy link with duplication and reordering.
fn faulty(loss: f64) -> LinkConfig {
    LinkConfig {
        loss,
        duplicate: 0.05,
        reorder: 0.2,
        reorder_jitter: Duration::from_micros(80),
        ..LinkConfig::default()
    }
}

/// An address no host of the simulator has: datagrams to it go nowhere.
fn spoofed(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c.wrapping_add(1))), 4433)
}

/// Starts an in-band handshake from `client` to `server` (which must have an
/// acceptor) and lets the client's first flight leave.
fn start_handshake(
    net: &mut Network,
    client: HostId,
    server: HostId,
    session_id: u64,
    tls: &FakeTls,
) -> SessionHandle {
    let (now, peer) = (net.now(), net.addr(server));
    let handle = net.endpoint(client).connect(now, peer, session_id, tls.client());
    net.pump_host(client);
    handle
}

fn established(net: &Network, host: HostId, session: SessionHandle) -> bool {
    net.events(host)
        .iter()
        .any(|(_, e)| matches!(e, Event::SessionEstablished { session: s } if *s == session))
}

/// Sessions `host` saw established (for a server: the sessions it accepted).
fn established_sessions(net: &Network, host: HostId) -> Vec<SessionHandle> {
    net.events(host)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SessionEstablished { session } => Some(*session),
            _ => None,
        })
        .collect()
}

/// Why `session` closed, if it did; fails the test if it closed twice.
fn closed(net: &Network, host: HostId, session: SessionHandle) -> Option<RpcError> {
    let reasons: Vec<RpcError> = net
        .events(host)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SessionClosed { session: s, reason } if *s == session => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(reasons.len() <= 1, "session {session:?} closed {} times", reasons.len());
    reasons.into_iter().next()
}

/// Responses seen by `host`, by ID, failing the test on any duplicate delivery.
fn responses(net: &Network, host: HostId) -> HashMap<MessageId, Vec<u8>> {
    let mut seen = HashMap::new();
    for (_, e) in net.events(host) {
        if let Event::Response { id, payload, .. } = e {
            assert!(seen.insert(*id, payload.to_vec()).is_none(), "response {id} delivered twice");
        }
    }
    seen
}

/// Failed RPCs seen by `host`, failing the test if one fails twice or also succeeded.
fn failures(net: &Network, host: HostId) -> HashMap<MessageId, RpcError> {
    let ok = responses(net, host);
    let mut seen = HashMap::new();
    for (_, e) in net.events(host) {
        if let Event::RpcFailed { id, error, .. } = e {
            assert!(!ok.contains_key(id), "RPC {id} both completed and failed");
            assert!(seen.insert(*id, error.clone()).is_none(), "RPC {id} failed twice");
        }
    }
    seen
}

/// Requests delivered to `host`'s application: (session, id, payload), each once.
fn requests(net: &Network, host: HostId) -> Vec<(SessionHandle, MessageId, Vec<u8>)> {
    let mut out: Vec<(SessionHandle, MessageId, Vec<u8>)> = Vec::new();
    for (_, e) in net.events(host) {
        if let Event::Request { session, id, payload } = e {
            assert!(
                !out.iter().any(|(s, i, _)| s == session && i == id),
                "request {id} delivered twice"
            );
            out.push((*session, *id, payload.to_vec()));
        }
    }
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Runs for `d` of virtual time (never past it).
fn run_for(net: &mut Network, d: Duration) {
    let until = net.elapsed() + d;
    net.advance_to(until);
}

/// Runs until nothing is pending (all timers disarmed) or `limit` passes; true if idle.
fn settle(net: &mut Network, limit: Duration) -> bool {
    let until = net.elapsed() + limit;
    net.run_idle(until);
    net.next_due().is_none()
}

fn assert_no_state(net: &Network, host: HostId, sessions: usize) {
    let ep = net.endpoint_ref(host);
    let m = ep.memory_usage();
    assert_eq!(
        (m.sessions, m.rpcs, m.incoming_messages, m.incoming_bytes, m.outgoing_bytes),
        (sessions, 0, 0, 0, 0),
        "host {host:?} still holds state: {m:?}"
    );
    assert_eq!(m.granted_unreceived, 0);
    assert_eq!(ep.pending_handshakes(), 0, "host {host:?} has handshakes pending");
}

/// A HANDSHAKE datagram.
#[allow(clippy::too_many_arguments)]
fn handshake_datagram(
    from: SocketAddr,
    to: SocketAddr,
    from_client: bool,
    session_id: u64,
    offset: u32,
    acknowledged: u32,
    data: &[u8],
    padding_len: usize,
) -> Vec<u8> {
    let mut flags = Flags::empty();
    flags.set(Flags::FROM_INITIATOR, from_client);
    PacketRepr {
        header: HeaderRepr {
            src_port: from.port(),
            dst_port: to.port(),
            packet_type: PacketType::Handshake,
            flags,
            session_id,
            message_id: MessageId::default(),
        },
        body: Body::Handshake(HandshakeRepr {
            stream_offset: offset,
            acknowledged,
            data,
            token: &[],
            padding_len,
        }),
    }
    .to_vec()
}

/// A ClientHello of the fake TLS, padded to `total` bytes on the wire.
fn client_hello(
    tls: &FakeTls,
    from: SocketAddr,
    to: SocketAddr,
    session_id: u64,
    total: usize,
) -> Vec<u8> {
    let hello = stream_bytes(TAG_HELLO, tls.hello_len);
    let padding = total.checked_sub(HS_OVERHEAD + hello.len()).expect("hello fits");
    let d = handshake_datagram(from, to, true, session_id, 0, 0, &hello, padding);
    assert_eq!(d.len(), total);
    d
}

/// Bytes and datagrams that hosts sent towards `to` since `record_sends`.
fn sent_towards(net: &Network, to: SocketAddr) -> (usize, usize) {
    let sends = net.sends().iter().filter(|s| s.to == to);
    sends.fold((0, 0), |(bytes, n), s| (bytes + s.bytes.len(), n + 1))
}

/// Parsed HANDSHAKE fields (offset, data length, datagram length) of a datagram.
fn handshake_fields(bytes: &[u8]) -> Option<(u32, usize, usize)> {
    match PacketRepr::parse(bytes).ok()?.body {
        Body::Handshake(h) => Some((h.stream_offset, h.data.len(), bytes.len())),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// 1. The handshake under loss, duplication and reordering.
// ---------------------------------------------------------------------------------

/// How the first client datagram is treated in [`handshake_then_rpcs`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FirstDatagram {
    Kept,
    Dropped,
}

/// Connects in-band over a link with the given faults, then runs RPCs on the new
/// session; asserts that everything completes exactly once. A handshake that does
/// not complete is returned as an error (so that a sweep can report them all).
fn handshake_then_rpcs(
    seed: u64,
    link: LinkConfig,
    hello_len: usize,
    flight_len: usize,
    first: FirstDatagram,
) -> Result<(), String> {
    let what =
        format!("seed {seed} loss {} hello {hello_len} flight {flight_len} {first:?}", link.loss);
    let mut net = Network::new(seed, link);
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.set_echo(server);
    let tls = FakeTls::new(seed.wrapping_mul(77) ^ 0xDEAD_BEEF, hello_len, flight_len);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    if first == FirstDatagram::Dropped {
        let dropped = Rc::new(Cell::new(false));
        let flag = dropped.clone();
        net.set_drop_filter(move |from, _, _| from == client && !flag.replace(true));
    }
    let session_id = 0x5E55_0000 + seed;
    let cs = start_handshake(&mut net, client, server, session_id, &tls);
    if first == FirstDatagram::Dropped {
        let first_sent = &net.sends()[0];
        assert!(first_sent.filtered && first_sent.from == client, "{what}: nothing dropped");
        assert_eq!(handshake_fields(&first_sent.bytes).map(|f| f.0), Some(0));
    }
    let ok = net.run_until(Duration::from_secs(20), |n| {
        established(n, client, cs) && !established_sessions(n, server).is_empty()
    });
    let took = net.elapsed();
    if !ok {
        return Err(format!("{what}: client session closed with {:?}", closed(&net, client, cs)));
    }
    assert!(took < config().handshake_timeout, "{what}: handshake took {took:?}");
    net.clear_drop_filter();
    let ss = established_sessions(&net, server);
    assert_eq!(ss.len(), 1, "{what}: server accepted {} sessions", ss.len());
    assert_eq!(net.endpoint_ref(server).stats().sessions_accepted, 1);
    assert_eq!(
        net.endpoint_ref(client).peer_certificates(cs),
        Some(&[SERVER_CERT.to_vec()][..]),
        "{what}"
    );
    let caddr = net.addr(client);
    assert_eq!(
        net.endpoint_ref(server).session_info(ss[0]),
        Some((caddr, Role::Server, session_id)),
        "{what}"
    );
    // RPCs on the new session, immediately: their DATA may overtake the client's
    // finished, which the server then drops until the finished arrives.
    let mut calls = Vec::new();
    for (i, size) in [0usize, 1, 1500, 100_000].into_iter().enumerate() {
        let p = pattern(size, i as u8);
        calls.push((net.call(client, cs, &p), p));
    }
    let ok = net.run_until(Duration::from_secs(60), |n| {
        responses(n, client).len() + failures(n, client).len() == calls.len()
    });
    assert!(ok, "{what}: RPCs did not finish");
    let got = responses(&net, client);
    assert!(failures(&net, client).is_empty(), "{what}: {:?}", failures(&net, client));
    for (id, p) in &calls {
        assert!(got[id] == *p, "{what}: response {id} differs");
    }
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, calls.len() as u64);
    assert_eq!(requests(&net, server).len(), calls.len());
    assert_eq!(closed(&net, client, cs), None, "{what}");
    // Handshake remnants expire and the endpoints go quiet.
    assert!(settle(&mut net, Duration::from_secs(30)), "{what}: timers still armed");
    assert_no_state(&net, client, 1);
    assert_no_state(&net, server, 1);
    assert_eq!(net.endpoint_ref(client).stats().handshakes_failed, 0, "{what}");
    assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 0, "{what}");
    Ok(())
}

/// Runs [`handshake_then_rpcs`] for every seed and configuration; fails listing
/// every handshake that did not complete.
fn sweep(loss: f64, seeds: std::ops::Range<u64>) {
    let mut failed = Vec::new();
    let mut runs = 0;
    for flight in [2048, 20 * 1024] {
        for hello in [250, 3000] {
            for seed in seeds.clone() {
                runs += 1;
                let link = faulty(loss);
                if let Err(e) = handshake_then_rpcs(seed, link, hello, flight, FirstDatagram::Kept)
                {
                    failed.push(e);
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} handshakes failed at {loss} loss:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn handshake_completes_without_loss_with_2k_and_20k_flights_and_rpcs_work() {
    sweep(0.0, 0..5);
}

#[test]
fn handshake_completes_at_5_percent_loss_with_2k_and_20k_flights_and_rpcs_work() {
    sweep(0.05, 0..100);
}

#[test]
fn handshake_completes_at_20_percent_loss_with_2k_and_20k_flights_and_rpcs_work() {
    sweep(0.2, 0..100);
}

#[test]
fn handshake_completes_when_the_clients_first_datagram_is_lost() {
    for flight in [2048, 20 * 1024] {
        // A one-datagram hello, and a three-datagram one whose later parts reach the
        // server before the lost first part is retransmitted.
        for hello in [250, 3000] {
            let link = LinkConfig::default();
            handshake_then_rpcs(40, link, hello, flight, FirstDatagram::Dropped).unwrap();
            handshake_then_rpcs(41, faulty(0.05), hello, flight, FirstDatagram::Dropped).unwrap();
        }
    }
}

#[test]
fn handshake_recovers_when_the_amplification_limit_blocks_the_servers_retransmission() {
    // Hello 250 B in one 1200 B datagram: the server may send 3600 B before the
    // client proves its address. Its 2048 B flight leaves as 1448 + 672 B. Lose the
    // first datagram, the client's padded acknowledgement of the second, and the
    // server's first retransmission (1448 B, total 3568 B): the server may not send
    // the 1448 B again (5016 > 3600) and the client, whose hello was acknowledged,
    // has nothing of its own to retransmit. Someone has to give the server credit.
    let mut net = Network::new(130, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    let tls = FakeTls::new(130, 250, 2048);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    let drops = Rc::new(Cell::new((0u32, 0u32)));
    let counter = drops.clone();
    net.set_drop_filter(move |from, _, bytes| {
        let (mut from_server, mut from_client) = counter.get();
        let Some((offset, len, _)) = handshake_fields(bytes) else { return false };
        let drop = if from == server && offset == 0 && len > 0 && from_server < 2 {
            from_server += 1;
            true
        } else if from == client && offset == 250 && len == 0 && from_client < 1 {
            from_client += 1;
            true
        } else {
            false
        };
        counter.set((from_server, from_client));
        drop
    });
    let cs = start_handshake(&mut net, client, server, 0x0DD, &tls);
    net.run_until(Duration::from_secs(20), |n| {
        closed(n, client, cs).is_some()
            || established(n, client, cs) && !established_sessions(n, server).is_empty()
    });
    assert_eq!(drops.get(), (2, 1), "the scenario did not unfold as planned");
    let saddr = net.addr(server);
    let caddr = net.addr(client);
    let (to_server, _) = sent_towards(&net, saddr);
    let (to_client, _) = sent_towards(&net, caddr);
    assert!(
        established(&net, client, cs),
        "handshake failed with {:?} at {:?}: client sent {to_server} B, server sent {to_client} B \
         and then waited for amplification credit that never came",
        closed(&net, client, cs),
        net.elapsed()
    );
    assert!(net.elapsed() < Duration::from_secs(1), "took {:?}", net.elapsed());
}

#[test]
fn later_parts_of_a_hello_without_its_first_datagram_create_no_server_state() {
    let mut net = Network::new(42, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    let tls = FakeTls::new(42, 3000, 2048);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    // Drop every datagram at offset 0: the server only ever sees offsets 1412, 2824.
    net.set_drop_filter(|_, _, bytes| handshake_fields(bytes).is_some_and(|f| f.0 == 0));
    let cs = start_handshake(&mut net, client, server, 7, &tls);
    run_for(&mut net, Duration::from_millis(100));
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0);
    assert!(net.endpoint_ref(server).stats().unknown_session >= 2);
    let saddr = net.addr(server);
    let server_sent = net.sends().iter().filter(|s| s.from == server).count();
    assert_eq!(server_sent, 0, "the server answered a hello without its first datagram");
    assert!(net.sends().iter().filter(|s| s.to == saddr).count() >= 6, "no retransmissions");
    // Once the first datagram gets through, the handshake completes.
    net.clear_drop_filter();
    assert!(net.run_until(Duration::from_secs(5), |n| established(n, client, cs)));
}

#[test]
fn lost_client_finished_is_retransmitted_and_early_rpcs_still_complete() {
    for seed in 0..3 {
        let mut net = Network::new(50 + seed, LinkConfig::default());
        let client = net.add_host(config());
        let server = net.add_host(config());
        net.set_echo(server);
        let tls = FakeTls::new(seed, 300, 4000);
        net.endpoint(server).set_acceptor(tls.acceptor());
        // Drop the first `seed + 1` datagrams carrying the client's finished.
        let left = Rc::new(Cell::new(seed + 1));
        let counter = left.clone();
        net.set_drop_filter(move |from, _, bytes| {
            let finished =
                handshake_fields(bytes).is_some_and(|(off, len, _)| off == 300 && len > 0);
            if from == client && finished && counter.get() > 0 {
                counter.set(counter.get() - 1);
                return true;
            }
            false
        });
        let cs = start_handshake(&mut net, client, server, 9, &tls);
        assert!(net.run_until(Duration::from_secs(1), |n| established(n, client, cs)));
        assert!(established_sessions(&net, server).is_empty(), "finished was not dropped");
        let id = net.call(client, cs, b"overtakes the finished");
        assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).contains_key(&id)));
        assert_eq!(left.get(), 0);
        assert_eq!(responses(&net, client)[&id], b"overtakes the finished");
        assert_eq!(net.endpoint_ref(server).stats().requests_delivered, 1);
        assert!(settle(&mut net, Duration::from_secs(30)));
        assert_no_state(&net, client, 1);
        assert_no_state(&net, server, 1);
    }
}

#[test]
fn server_rejecting_the_clients_finished_closes_the_client_session_with_a_handshake_error() {
    for verdict in [Verdict::RejectOpaque, Verdict::RejectPlainAlert(42)] {
        let mut net = Network::new(60, LinkConfig::default());
        let client = net.add_host(config());
        let server = net.add_host(config());
        net.set_echo(server);
        let mut tls = FakeTls::new(60, 300, 5000);
        tls.verdict = verdict;
        net.endpoint(server).set_acceptor(tls.acceptor());
        let cs = start_handshake(&mut net, client, server, 11, &tls);
        // The client completes first (it has the server's finished) and calls at once.
        assert!(net.run_until(Duration::from_secs(1), |n| established(n, client, cs)));
        let id = net.call(client, cs, b"too early");
        assert!(net.run_until(Duration::from_secs(1), |n| closed(n, client, cs).is_some()));
        let reason = closed(&net, client, cs).unwrap();
        let RpcError::Handshake(error) = &reason else {
            panic!("{verdict:?}: session closed with {reason:?}, not a handshake error")
        };
        if verdict == Verdict::RejectPlainAlert(42) {
            let text = error.to_string();
            assert!(text.contains("bad_certificate"), "reason {text:?}");
            assert_eq!(error.alert(), Some(Alert::BadCertificate));
        }
        assert_eq!(failures(&net, client).get(&id), Some(&reason), "{verdict:?}");
        assert!(responses(&net, client).is_empty());
        assert!(settle(&mut net, Duration::from_secs(30)));
        assert!(established_sessions(&net, server).is_empty());
        assert_eq!(net.endpoint_ref(server).stats().requests_delivered, 0);
        assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 1);
        assert_eq!(net.endpoint_ref(client).stats().handshakes_failed, 1);
        assert_no_state(&net, client, 0);
        assert_no_state(&net, server, 0);
    }
}

#[test]
fn handshake_with_a_host_that_accepts_none_fails_after_handshake_timeout() {
    let mut net = Network::new(61, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config()); // no acceptor
    let tls = FakeTls::new(61, 300, 2048);
    let cs = start_handshake(&mut net, client, server, 12, &tls);
    assert!(net.run_until(Duration::from_secs(30), |n| closed(n, client, cs).is_some()));
    let at = net.elapsed();
    let timeout = config().handshake_timeout;
    assert!(at >= timeout && at <= timeout + Duration::from_millis(10), "closed at {at:?}");
    assert!(matches!(closed(&net, client, cs), Some(RpcError::Handshake(_))));
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert_no_state(&net, client, 0);
    assert_no_state(&net, server, 0);
}

// ---------------------------------------------------------------------------------
// 2, 3. Anti-amplification.
// ---------------------------------------------------------------------------------

/// A server whose acceptor answers the fake ClientHello with `flight_len` bytes.
fn amplification_rig(seed: u64, flight_len: usize) -> (Network, HostId, FakeTls) {
    let mut net = Network::new(seed, LinkConfig::default());
    let server = net.add_host(config());
    let tls = FakeTls::new(seed, 200, flight_len);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    (net, server, tls)
}

fn assert_amplification_bound(net: &Network, victim: SocketAddr, received: usize) -> usize {
    let (sent, datagrams) = sent_towards(net, victim);
    println!(
        "victim {victim}: server received {received} B, sent {sent} B in {datagrams} datagrams"
    );
    assert!(
        sent <= AMPLIFICATION_FACTOR * received,
        "server sent {sent} B to an unvalidated address that sent {received} B (> {}x)",
        AMPLIFICATION_FACTOR
    );
    sent
}

#[test]
fn spoofed_client_hello_gets_at_most_three_times_its_bytes() {
    for flight in [2048, 20 * 1024, 200 * 1024] {
        let (mut net, server, tls) = amplification_rig(70, flight);
        let victim = spoofed(7);
        let saddr = net.addr(server);
        let hello = client_hello(&tls, victim, saddr, 0xA77AC, MIN_FIRST_DATAGRAM);
        let received = hello.len();
        net.inject(server, victim, hello);
        run_for(&mut net, Duration::from_millis(1));
        assert_eq!(net.endpoint_ref(server).pending_handshakes(), 1);
        // Past the handshake timeout: every retransmission and the final failure.
        run_for(&mut net, config().handshake_timeout + Duration::from_secs(1));
        let sent = assert_amplification_bound(&net, victim, received);
        assert!(sent >= 1000, "the server did not answer a valid hello ({sent} B)");
        assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0);
        assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 1);
        assert!(net.sends().iter().all(|s| !s.routable), "something reached a host");
        assert!(settle(&mut net, Duration::from_secs(10)));
        assert_no_state(&net, server, 0);
    }
}

#[test]
fn spoofed_hello_with_guessed_acknowledgements_still_gets_at_most_three_times_its_bytes() {
    for flight in [2048, 20 * 1024] {
        let (mut net, server, tls) = amplification_rig(71, flight);
        let victim = spoofed(8);
        let saddr = net.addr(server);
        let sid = 0xB0B;
        let hello = client_hello(&tls, victim, saddr, sid, MIN_FIRST_DATAGRAM);
        let mut received = hello.len();
        net.inject(server, victim, hello);
        run_for(&mut net, Duration::from_millis(2));
        // Bare acknowledgements claiming the server's bytes arrived, then padded
        // ones, at intervals around the server's retransmission timer.
        for padding in [0, MIN_FIRST_DATAGRAM - HS_OVERHEAD] {
            for acked in [1u32, 100, 1000, 1412, 2824, 4236] {
                let d = handshake_datagram(victim, saddr, true, sid, 0, acked, &[], padding);
                received += d.len();
                net.inject(server, victim, d);
                run_for(&mut net, Duration::from_millis(7));
                assert_amplification_bound(&net, victim, received);
            }
        }
        run_for(&mut net, config().handshake_timeout + Duration::from_secs(1));
        assert_amplification_bound(&net, victim, received);
        assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0);
        assert_no_state(&net, server, 0);
    }
}

#[test]
fn spoofed_hello_with_small_data_carrying_follow_ups_still_gets_at_most_three_times_its_bytes() {
    // Each follow-up repeats one byte of the hello (a duplicate the server must
    // acknowledge) and guesses an acknowledgement; 300 of them, 1 ms apart.
    let (mut net, server, tls) = amplification_rig(72, 20 * 1024);
    let victim = spoofed(9);
    let saddr = net.addr(server);
    let sid = 0xC0C;
    let hello = client_hello(&tls, victim, saddr, sid, MIN_FIRST_DATAGRAM);
    let first = [stream_byte(TAG_HELLO, 0)];
    let mut received = hello.len();
    net.inject(server, victim, hello);
    run_for(&mut net, Duration::from_millis(1));
    let mut peak_ratio = 0.0f64;
    for i in 0..300u32 {
        let acked = [0, 1, 100, 1000][(i % 4) as usize] + i * 64;
        let d = handshake_datagram(victim, saddr, true, sid, 0, acked, &first, 0);
        received += d.len();
        net.inject(server, victim, d);
        run_for(&mut net, Duration::from_millis(1));
        let (sent, _) = sent_towards(&net, victim);
        peak_ratio = peak_ratio.max(sent as f64 / received as f64);
    }
    println!("peak ratio sent/received: {peak_ratio:.2}");
    assert_amplification_bound(&net, victim, received);
    assert!(peak_ratio <= AMPLIFICATION_FACTOR as f64, "peak ratio {peak_ratio:.2}");
    run_for(&mut net, config().handshake_timeout + Duration::from_secs(1));
    assert_amplification_bound(&net, victim, received);
    assert_no_state(&net, server, 0);
}

#[test]
fn unpadded_first_handshake_datagram_creates_no_state_and_gets_no_reply() {
    let (mut net, server, tls) = amplification_rig(73, 20 * 1024);
    let saddr = net.addr(server);
    let smallest = HS_OVERHEAD + tls.hello_len;
    for (i, total) in [smallest, 600, 1000, MIN_FIRST_DATAGRAM - 1].into_iter().enumerate() {
        let victim = spoofed(100 + i as u32);
        let malformed = net.endpoint_ref(server).stats().malformed;
        net.inject(server, victim, client_hello(&tls, victim, saddr, 0xD00 + i as u64, total));
        run_for(&mut net, Duration::from_millis(50));
        assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0, "{total} B hello");
        assert_eq!(sent_towards(&net, victim), (0, 0), "{total} B hello was answered");
        assert_eq!(net.endpoint_ref(server).stats().malformed, malformed + 1);
    }
    assert_eq!(net.endpoint_ref(server).poll_timeout(), None, "a timer was armed");
    assert!(net.sends().is_empty());
    // The boundary: exactly MIN_FIRST_DATAGRAM bytes is accepted and answered.
    let victim = spoofed(200);
    net.inject(server, victim, client_hello(&tls, victim, saddr, 0xD99, MIN_FIRST_DATAGRAM));
    run_for(&mut net, Duration::from_millis(1));
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 1);
    assert!(sent_towards(&net, victim).0 > 0);
}

// ---------------------------------------------------------------------------------
// 4. Bare acknowledgements are never answered.
// ---------------------------------------------------------------------------------

/// Feeds `datagram` to `host` directly and asserts that it emits nothing.
fn assert_silent_on(
    net: &mut Network,
    host: HostId,
    from: SocketAddr,
    datagram: &[u8],
    what: &str,
) {
    let before = net.endpoint_ref(host).stats().datagrams_sent;
    let events = net.events(host).len();
    let now = net.now();
    net.endpoint(host).handle_datagram(now, from, datagram);
    net.pump_host(host);
    let after = net.endpoint_ref(host).stats().datagrams_sent;
    assert_eq!(after, before, "{what}: answered a bare acknowledgement");
    assert_eq!(net.events(host).len(), events, "{what}: produced an event");
}

#[test]
fn bare_handshake_acknowledgements_are_never_answered() {
    let tls = FakeTls::new(80, 300, 2048);
    let mut net = Network::new(80, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    net.endpoint(server).set_acceptor(tls.acceptor());
    let sid = 0xACE;
    let cs = start_handshake(&mut net, client, server, sid, &tls);
    assert!(net.run_until(Duration::from_secs(1), |n| {
        established(n, client, cs) && !established_sessions(n, server).is_empty()
    }));
    let client_stream = (tls.hello_len + FINISHED_LEN) as u32;
    let server_stream = tls.flight_len as u32;
    let acks = |client_side: bool| -> Vec<Vec<u8>> {
        let (from, to, total) =
            if client_side { (caddr, saddr, client_stream) } else { (saddr, caddr, server_stream) };
        [0, 1, total, total + 1, u32::MAX]
            .into_iter()
            .flat_map(|acked| {
                [0, 1000]
                    .map(|pad| handshake_datagram(from, to, client_side, sid, 0, acked, &[], pad))
            })
            .collect()
    };
    // Established, with the server's handshake remnant still present.
    for d in acks(true) {
        assert_silent_on(&mut net, server, caddr, &d, "server, remnant present");
    }
    for d in acks(false) {
        assert_silent_on(&mut net, client, saddr, &d, "client, established");
    }
    // Established, remnants gone.
    assert!(settle(&mut net, Duration::from_secs(30)));
    for d in acks(true) {
        assert_silent_on(&mut net, server, caddr, &d, "server, remnant gone");
    }
    for d in acks(false) {
        assert_silent_on(&mut net, client, saddr, &d, "client, remnant gone");
    }
    // A handshake in progress on the server (spoofed peer, flight fully sent).
    let victim = spoofed(1);
    net.inject(server, victim, client_hello(&tls, victim, saddr, 0xF00, MIN_FIRST_DATAGRAM));
    run_for(&mut net, Duration::from_micros(100));
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 1);
    for acked in [0, 1, 1412, server_stream, server_stream + 5] {
        for pad in [0, 1000] {
            let d = handshake_datagram(victim, saddr, true, 0xF00, 0, acked, &[], pad);
            assert_silent_on(&mut net, server, victim, &d, "server, handshake in progress");
        }
    }
    // A handshake in progress on the client (its server accepts nothing).
    let mut net = Network::new(81, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    let saddr = net.addr(server);
    let caddr = net.addr(client);
    let cs = start_handshake(&mut net, client, server, sid, &tls);
    run_for(&mut net, Duration::from_micros(100));
    assert_eq!(net.endpoint_ref(client).pending_handshakes(), 1);
    for acked in [0, 1, tls.hello_len as u32, u32::MAX] {
        let d = handshake_datagram(saddr, caddr, false, sid, 0, acked, &[], 0);
        assert_silent_on(&mut net, client, saddr, &d, "client, handshake in progress");
    }
    assert_eq!(closed(&net, client, cs), None);
    // A session installed out of band (no handshake ever ran on it).
    let mut net = Network::new(82, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let (_, _, sid) = net.endpoint_ref(client).session_info(cs).unwrap();
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    for acked in [0, 1, 1000, u32::MAX] {
        let d = handshake_datagram(caddr, saddr, true, sid, 0, acked, &[], 0);
        assert_silent_on(&mut net, server, caddr, &d, "server, installed session");
        let d = handshake_datagram(saddr, caddr, false, sid, 0, acked, &[], 0);
        assert_silent_on(&mut net, client, saddr, &d, "client, installed session");
    }
}

#[test]
fn lossless_handshake_exchanges_six_datagrams_and_then_goes_quiet() {
    let tls = FakeTls::new(83, 300, 2048);
    let mut net = Network::new(83, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    let cs = start_handshake(&mut net, client, server, 0x51, &tls);
    assert!(settle(&mut net, Duration::from_secs(30)), "never went quiet");
    assert!(established(&net, client, cs));
    assert_eq!(established_sessions(&net, server).len(), 1);
    type Line = (HostId, Option<(u32, usize, usize)>);
    let kinds: Vec<Line> =
        net.sends().iter().map(|s| (s.from, handshake_fields(&s.bytes))).collect();
    // hello; flight in two datagrams; the client's padded acknowledgement of the
    // first; the client's finished; the server's acknowledgement of it.
    assert_eq!(
        kinds,
        vec![
            (client, Some((0, 300, MIN_FIRST_DATAGRAM))),
            (server, Some((0, 1412, HS_OVERHEAD + 1412))),
            (server, Some((1412, 636, HS_OVERHEAD + 636))),
            (client, Some((300, 0, MIN_FIRST_DATAGRAM))),
            (client, Some((300, FINISHED_LEN, HS_OVERHEAD + FINISHED_LEN))),
            (server, Some((2048, 0, HS_OVERHEAD))),
        ],
        "unexpected handshake exchange"
    );
}

/// Send times of `host`'s HANDSHAKE datagrams carrying TLS bytes at `offset`.
fn chunk_sends(net: &Network, host: HostId, offset: u32) -> Vec<Duration> {
    net.sends()
        .iter()
        .filter(|s| s.from == host)
        .filter(
            |s| matches!(handshake_fields(&s.bytes), Some((o, len, _)) if o == offset && len > 0),
        )
        .map(|s| s.at)
        .collect()
}

#[test]
fn on_a_path_slower_than_resend_after_each_client_hello_goes_once() {
    // A 5 ms round trip, longer than resend_after (3 ms), as a loaded server or a
    // slower path makes it: the first retransmission timeout (handshake_resend_after,
    // 10 ms) waits for the server's flight instead of resending the hello. With the
    // old initial timeout of resend_after every such handshake sent its hello twice.
    let link = LinkConfig { delay: Duration::from_micros(2500), ..LinkConfig::default() };
    let tls = FakeTls::new(84, 300, 2048);
    let mut net = Network::new(84, link);
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.record_sends();
    let cs = start_handshake(&mut net, client, server, 0x52, &tls);
    assert!(net.run_until(Duration::from_secs(1), |n| established(n, client, cs)));
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert_eq!(chunk_sends(&net, client, 0).len(), 1, "the ClientHello was sent again");
    assert_eq!(chunk_sends(&net, server, 0).len(), 1, "the server's flight was sent again");
}

#[test]
fn after_the_first_round_trip_a_lost_finished_goes_again_after_twice_that_round_trip() {
    // A 2 ms round trip: once the server's flight arrives, the client's timeout is
    // 4 ms (twice the measured round trip), not handshake_resend_after's 10 ms.
    let link = LinkConfig { delay: Duration::from_millis(1), ..LinkConfig::default() };
    let tls = FakeTls::new(85, 300, 2048);
    let mut net = Network::new(85, link);
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.endpoint(server).set_acceptor(tls.acceptor());
    let dropped = Rc::new(Cell::new(false));
    let once = dropped.clone();
    net.set_drop_filter(move |from, _, bytes| {
        let finished = from == client
            && matches!(handshake_fields(bytes), Some((300, len, _)) if len == FINISHED_LEN);
        finished && !once.replace(true)
    });
    net.record_sends();
    let cs = start_handshake(&mut net, client, server, 0x53, &tls);
    assert!(net.run_until(Duration::from_secs(1), |n| established(n, client, cs)));
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert!(dropped.get());
    let finished = chunk_sends(&net, client, 300);
    assert_eq!(finished.len(), 2, "{finished:?}");
    let waited = finished[1] - finished[0];
    assert!(
        waited >= Duration::from_millis(4) && waited < Duration::from_millis(5),
        "the lost Finished went again after {waited:?}"
    );
}

#[test]
fn a_pure_acknowledgement_with_any_stream_offset_never_ends_a_completed_clients_session() {
    // Section 8.5: after its handshake completed, a client takes new bytes of the
    // server's stream as a rejection alert. A pure acknowledgement carries no bytes,
    // whatever its Stream Offset says; it once ended the session when that offset
    // lay beyond what the client had received.
    let tls = FakeTls::new(86, 300, 2048);
    let mut net = Network::new(86, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.set_echo(server);
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    // The server's acknowledgement of the client's Finished is lost once, so the
    // client keeps its handshake state (and its check for alerts) a while longer.
    let dropped = Rc::new(Cell::new(false));
    let once = dropped.clone();
    net.set_drop_filter(move |from, _, bytes| {
        let acks_finished = from == server
            && matches!(handshake_fields(bytes), Some((_, 0, _)))
            && matches!(PacketRepr::parse(bytes).map(|p| p.body),
                Ok(Body::Handshake(h)) if h.acknowledged == 300 + FINISHED_LEN as u32);
        acks_finished && !once.replace(true)
    });
    let cs = start_handshake(&mut net, client, server, 0x54, &tls);
    assert!(net.run_until(Duration::from_secs(1), |n| dropped.get() && established(n, client, cs)));
    let odd_ack = handshake_datagram(saddr, caddr, false, 0x54, 60_000, 300, &[], 0);
    net.inject(client, saddr, odd_ack);
    let id = net.call(client, cs, b"still here");
    assert!(net.run_until(Duration::from_secs(2), |n| responses(n, client).contains_key(&id)));
    assert_eq!(closed(&net, client, cs), None);
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert_no_state(&net, client, 1);
}

// ---------------------------------------------------------------------------------
// 5. The bound on pending handshakes.
// ---------------------------------------------------------------------------------

#[test]
fn hello_flood_from_5000_addresses_is_bounded_by_max_pending_handshakes() {
    // The hard bound alone, without address validation (section 5b has the RETRY
    // that lets genuine clients through such a flood).
    let mut c = config();
    c.max_pending_handshakes = 64;
    c.address_validation = AddressValidation::Never;
    let mut net = Network::new(90, LinkConfig::default());
    let server = net.add_host(c.clone());
    let client = net.add_host(config());
    let tls = FakeTls::new(90, 200, 2048);
    net.endpoint(server).set_acceptor(tls.acceptor());
    let saddr = net.addr(server);
    for i in 0..5000u32 {
        let from = spoofed(1000 + i);
        net.inject(server, from, client_hello(&tls, from, saddr, u64::from(i), MIN_FIRST_DATAGRAM));
    }
    run_for(&mut net, Duration::from_millis(10));
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 64);
    assert_eq!(stats.handshakes_refused, 5000 - 64);
    // While the table is full, a genuine client is refused too: every one of its
    // hello datagrams counts as refused, and it gets no answer.
    net.record_sends();
    let blocked = start_handshake(&mut net, client, server, 1, &tls);
    run_for(&mut net, Duration::from_millis(40));
    let hellos: Vec<Duration> =
        net.sends().iter().filter(|s| s.from == client).map(|s| s.at).collect();
    assert!(
        hellos.len() >= 2 && *hellos.last().unwrap() + Duration::from_micros(100) < net.elapsed()
    );
    assert_eq!(
        net.endpoint_ref(server).stats().handshakes_refused,
        stats.handshakes_refused + hellos.len() as u64
    );
    assert!(net.sends().iter().all(|s| s.from == client), "the server answered someone");
    // Every spoofed handshake ends after handshake_timeout.
    let deadline = c.handshake_timeout + Duration::from_millis(20);
    net.run_until(deadline, |n| n.endpoint_ref(server).pending_handshakes() == 0);
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0, "at {:?}", net.elapsed());
    assert!(net.elapsed() <= deadline);
    assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 64);
    assert_eq!(net.endpoint_ref(server).memory_usage().sessions, 0);
    // The blocked client's backed-off retransmissions all fell inside the flood, so
    // it fails by its own timeout; a new attempt then succeeds.
    assert!(net.run_until(Duration::from_secs(20), |n| closed(n, client, blocked).is_some()));
    assert!(matches!(closed(&net, client, blocked), Some(RpcError::Handshake(_))));
    let retry = start_handshake(&mut net, client, server, 2, &tls);
    assert!(net.run_until(Duration::from_secs(30), |n| established(n, client, retry)));
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert_eq!(net.endpoint_ref(server).stats().sessions_accepted, 1);
    assert_no_state(&net, server, 1);
    assert_no_state(&net, client, 1);
}

// ---------------------------------------------------------------------------------
// 5b. Address validation: a stateless RETRY under a flood of spoofed ClientHellos.
// ---------------------------------------------------------------------------------

/// A padded ClientHello of the fake TLS that echoes `token`.
fn client_hello_with_token(
    tls: &FakeTls,
    from: SocketAddr,
    to: SocketAddr,
    session_id: u64,
    token: &[u8],
) -> Vec<u8> {
    let hello = stream_bytes(TAG_HELLO, tls.hello_len);
    let used = HS_OVERHEAD + hello.len() + token.len();
    PacketRepr {
        header: HeaderRepr {
            src_port: from.port(),
            dst_port: to.port(),
            packet_type: PacketType::Handshake,
            flags: Flags::FROM_INITIATOR,
            session_id,
            message_id: MessageId::default(),
        },
        body: Body::Handshake(HandshakeRepr {
            stream_offset: 0,
            acknowledged: 0,
            data: &hello,
            token,
            padding_len: MIN_FIRST_DATAGRAM.saturating_sub(used),
        }),
    }
    .to_vec()
}

/// The token of the last RETRY the server sent to `to` since `record_sends`.
fn retry_token_sent_to(net: &Network, to: SocketAddr) -> Option<Vec<u8>> {
    net.sends().iter().rev().filter(|s| s.to == to).find_map(|s| {
        match PacketRepr::parse(&s.bytes).ok()?.body {
            Body::Retry(r) => Some(r.token.to_vec()),
            _ => None,
        }
    })
}

fn established_at(net: &Network, host: HostId, session: SessionHandle) -> Option<Duration> {
    net.events(host).iter().find_map(|(at, e)| match e {
        Event::SessionEstablished { session: s } if *s == session => Some(*at),
        _ => None,
    })
}

#[test]
fn under_3000_spoofed_hellos_per_second_genuine_clients_connect_after_one_retry() {
    let c = config(); // the default: RETRY at 64 pending handshakes
    let AddressValidation::UnderLoad { pending_handshakes: threshold } = c.address_validation
    else {
        panic!("the default validates addresses under load");
    };
    let mut net = Network::new(91, LinkConfig::default());
    let server = net.add_host(c.clone());
    let client = net.add_host(config());
    let tls = FakeTls::new(91, 300, 3000);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.set_echo(server);
    let (saddr, caddr) = (net.addr(server), net.addr(client));
    net.record_sends();
    // 3 s of flood at 3 hellos per millisecond; a genuine client connects every 500 ms.
    let mut genuine = Vec::new();
    let mut spoofed_bytes_in = 0usize;
    let mut most_pending = 0;
    for ms in 0..3000u32 {
        for k in 0..3 {
            let i = ms * 3 + k;
            let from = spoofed(10_000 + i);
            let hello = client_hello(&tls, from, saddr, 1 << 40 | u64::from(i), MIN_FIRST_DATAGRAM);
            spoofed_bytes_in += hello.len();
            net.inject(server, from, hello);
        }
        if ms % 500 == 250 {
            let start = net.elapsed();
            let sid = 7000 + u64::from(ms);
            genuine.push((start, start_handshake(&mut net, client, server, sid, &tls)));
        }
        run_for(&mut net, Duration::from_millis(1));
        most_pending = most_pending.max(net.endpoint_ref(server).pending_handshakes());
    }
    run_for(&mut net, Duration::from_millis(50));
    let stats = net.endpoint_ref(server).stats().clone();
    // Every genuine client connected, within a few round trips of its first hello.
    for (start, session) in &genuine {
        let at = established_at(&net, client, *session)
            .unwrap_or_else(|| panic!("client started at {start:?} never connected"));
        assert!(
            at - *start < Duration::from_millis(5),
            "connected {:?} after its start",
            at - *start
        );
    }
    assert_eq!(net.endpoint_ref(client).stats().retries_followed, genuine.len() as u64);
    // The flood never filled the handshake table: only the spoofs that arrived below
    // the threshold were kept, and no ClientHello was refused.
    assert_eq!(stats.handshakes_refused, 0);
    assert!(most_pending <= threshold + genuine.len(), "{most_pending} pending at once");
    assert!(stats.retries_sent >= 9000 - threshold as u64, "{} retries", stats.retries_sent);
    // The spoofed addresses got less than one byte per byte sent in their name, all
    // flights of the few accepted spoofs included.
    let towards_spoofed: usize = net
        .sends()
        .iter()
        .filter(|s| s.from == server && s.to != caddr)
        .map(|s| s.bytes.len())
        .sum();
    assert!(
        towards_spoofed < spoofed_bytes_in / 10,
        "{towards_spoofed} bytes towards spoofed addresses for {spoofed_bytes_in} received"
    );
    // The genuine sessions work.
    for (_, session) in &genuine {
        let id = net.call(client, *session, b"after the flood");
        assert!(
            net.run_until(Duration::from_secs(10), |n| { responses(n, client).contains_key(&id) })
        );
    }
}

#[test]
fn the_same_flood_without_address_validation_locks_genuine_clients_out() {
    let mut c = config();
    c.address_validation = AddressValidation::Never;
    let mut net = Network::new(92, LinkConfig::default());
    let server = net.add_host(c);
    let client = net.add_host(config());
    let tls = FakeTls::new(92, 300, 3000);
    net.endpoint(server).set_acceptor(tls.acceptor());
    let saddr = net.addr(server);
    let mut genuine = Vec::new();
    for ms in 0..1000u32 {
        for k in 0..3 {
            let i = ms * 3 + k;
            let from = spoofed(10_000 + i);
            net.inject(
                server,
                from,
                client_hello(&tls, from, saddr, u64::from(i), MIN_FIRST_DATAGRAM),
            );
        }
        if ms % 500 == 450 {
            genuine.push(start_handshake(&mut net, client, server, 7000 + u64::from(ms), &tls));
        }
        run_for(&mut net, Duration::from_millis(1));
    }
    run_for(&mut net, Duration::from_millis(50));
    assert!(genuine.iter().all(|s| !established(&net, client, *s)), "a client got through");
    assert!(net.endpoint_ref(server).stats().handshakes_refused > 1000);
}

#[test]
fn a_retry_token_is_good_only_for_its_address_and_session_and_keeps_no_state_until_used() {
    let mut c = config();
    c.address_validation = AddressValidation::Always;
    let mut net = Network::new(93, LinkConfig::default());
    let server = net.add_host(c);
    let tls = FakeTls::new(93, 300, 2048);
    net.endpoint(server).set_acceptor(tls.acceptor());
    let saddr = net.addr(server);
    let (a, b) = (spoofed(1), spoofed(2));
    net.record_sends();
    let hello = client_hello(&tls, a, saddr, 5, MIN_FIRST_DATAGRAM);
    let hello_len = hello.len();
    net.inject(server, a, hello);
    run_for(&mut net, Duration::from_millis(1));
    let token = retry_token_sent_to(&net, a).expect("a RETRY");
    // A RETRY is all the server sent, smaller than the hello; it keeps nothing.
    let (bytes, datagrams) = sent_towards(&net, a);
    assert_eq!(datagrams, 1);
    assert!(bytes < hello_len / 10, "{bytes} bytes for a {hello_len}-byte hello");
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0);
    // Replayed from another address, for another session, or altered: dropped
    // without an answer.
    let mut altered = token.clone();
    altered[10] ^= 0x40;
    for (from, sid, t) in [(b, 5, &token), (a, 6, &token), (a, 5, &altered)] {
        net.record_sends();
        net.inject(server, from, client_hello_with_token(&tls, from, saddr, sid, t));
        run_for(&mut net, Duration::from_millis(1));
        assert!(net.sends().iter().all(|s| s.from != server), "answered a bad token");
    }
    assert_eq!(net.endpoint_ref(server).stats().retry_tokens_rejected, 3);
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0);
    // The right one starts the handshake, and the proven address lifts the
    // amplification limit: the whole flight leaves at once.
    net.record_sends();
    net.inject(server, a, client_hello_with_token(&tls, a, saddr, 5, &token));
    run_for(&mut net, Duration::from_millis(1));
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 1);
    let (bytes, _) = sent_towards(&net, a);
    assert!(bytes > AMPLIFICATION_FACTOR * MIN_FIRST_DATAGRAM - 1600, "{bytes}");
    assert!(bytes >= 2048, "the flight of 2048 bytes was held back: {bytes}");
    // An expired token is refused: after handshake_timeout it proves nothing.
    let stale = {
        net.record_sends();
        net.inject(server, b, client_hello(&tls, b, saddr, 9, MIN_FIRST_DATAGRAM));
        run_for(&mut net, Duration::from_millis(1));
        retry_token_sent_to(&net, b).expect("a RETRY")
    };
    run_for(&mut net, Duration::from_secs(6));
    net.inject(server, b, client_hello_with_token(&tls, b, saddr, 9, &stale));
    run_for(&mut net, Duration::from_millis(1));
    assert_eq!(net.endpoint_ref(server).stats().retry_tokens_rejected, 4);
}

#[test]
fn a_client_follows_one_retry_and_ignores_any_other() {
    let mut c = config();
    c.address_validation = AddressValidation::Always;
    let mut net = Network::new(94, LinkConfig::default());
    let server = net.add_host(c);
    let client = net.add_host(config());
    let tls = FakeTls::new(94, 300, 2048);
    net.endpoint(server).set_acceptor(tls.acceptor());
    net.set_echo(server);
    let (saddr, caddr) = (net.addr(server), net.addr(client));
    let session = start_handshake(&mut net, client, server, 77, &tls);
    // A second, forged RETRY while the first is being followed changes nothing.
    let forged = PacketRepr {
        header: HeaderRepr {
            src_port: saddr.port(),
            dst_port: caddr.port(),
            packet_type: PacketType::Retry,
            flags: Flags::empty(),
            session_id: 77,
            message_id: MessageId::default(),
        },
        body: Body::Retry(smt_proto::wire::RetryRepr { token: &[0xee; 20] }),
    }
    .to_vec();
    run_for(&mut net, Duration::from_micros(150));
    net.inject(client, saddr, forged);
    assert!(net.run_until(Duration::from_secs(1), |n| established(n, client, session)));
    assert_eq!(net.endpoint_ref(client).stats().retries_followed, 1);
    assert_eq!(net.endpoint_ref(server).stats().retries_sent, 1);
    assert_eq!(net.endpoint_ref(server).stats().retry_tokens_rejected, 0);
    let id = net.call(client, session, b"hello");
    assert!(net.run_until(Duration::from_secs(1), |n| responses(n, client).contains_key(&id)));
    assert!(settle(&mut net, Duration::from_secs(30)));
    assert_no_state(&net, client, 1);
    assert_no_state(&net, server, 1);
}

// ---------------------------------------------------------------------------------
// 6. Forged control packets on an established session.
// ---------------------------------------------------------------------------------

struct Rig {
    net: Network,
    client: HostId,
    server: HostId,
    cs: SessionHandle,
    ss: SessionHandle,
    sid: u64,
}

impl Rig {
    /// A session installed out of band; the server answers nothing by itself.
    fn new(seed: u64) -> Rig {
        let mut net = Network::new(seed, LinkConfig::default());
        let client = net.add_host(config());
        let server = net.add_host(config());
        let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
        let (_, _, sid) = net.endpoint_ref(client).session_info(cs).unwrap();
        Rig { net, client, server, cs, ss, sid }
    }

    fn forge(&mut self, to_server: bool, id: u64, body: Body<'_>) {
        let (caddr, saddr) = (self.net.addr(self.client), self.net.addr(self.server));
        let (from, to, host) =
            if to_server { (caddr, saddr, self.server) } else { (saddr, caddr, self.client) };
        let mut flags = Flags::empty();
        flags.set(Flags::FROM_INITIATOR, to_server);
        let packet = PacketRepr {
            header: HeaderRepr {
                src_port: from.port(),
                dst_port: to.port(),
                packet_type: body.packet_type(),
                flags,
                session_id: self.sid,
                message_id: MessageId::new(id).unwrap(),
            },
            body,
        };
        self.net.inject(host, from, packet.to_vec());
    }

    fn forge_server(&mut self, id: MessageId, body: Body<'_>) {
        self.forge(true, id.get(), body);
    }

    fn forge_client(&mut self, id: MessageId, body: Body<'_>) {
        self.forge(false, id.get(), body);
    }

    fn call(&mut self, payload: &[u8]) -> MessageId {
        self.net.call(self.client, self.cs, payload)
    }

    fn delivered(&self, id: MessageId) -> bool {
        requests(&self.net, self.server).iter().any(|(_, i, _)| *i == id)
    }

    /// Runs until the server application has request `id`.
    fn until_delivered(&mut self, id: MessageId) {
        let server = self.server;
        assert!(self.net.run_until(self.net.elapsed() + Duration::from_secs(5), |n| {
            requests(n, server).iter().any(|(_, i, _)| *i == id)
        }));
    }

    fn respond(&mut self, id: MessageId, payload: &[u8]) {
        let now = self.net.now();
        let ss = self.ss;
        self.net.endpoint(self.server).respond(now, ss, id, payload).expect("request in service");
        self.net.pump_host(self.server);
    }

    /// Runs until the client's RPC `id` completed or failed.
    fn until_done(&mut self, id: MessageId, limit: Duration) -> Result<Vec<u8>, RpcError> {
        let client = self.client;
        let ok = self.net.run_until(self.net.elapsed() + limit, |n| {
            responses(n, client).contains_key(&id) || failures(n, client).contains_key(&id)
        });
        assert!(ok, "RPC {id} neither completed nor failed within {limit:?}");
        match responses(&self.net, client).remove(&id) {
            Some(p) => Ok(p),
            None => Err(failures(&self.net, client)[&id].clone()),
        }
    }

    fn settle_and_check(&mut self, client_sessions: usize, server_sessions: usize) {
        assert!(settle(&mut self.net, Duration::from_secs(60)), "timers still armed");
        assert_no_state(&self.net, self.client, client_sessions);
        assert_no_state(&self.net, self.server, server_sessions);
    }
}

fn id(n: u64) -> MessageId {
    MessageId::new(n).unwrap()
}

#[test]
fn forged_ack_never_frees_a_request_in_service() {
    let mut r = Rig::new(100);
    let a = r.call(&pattern(1000, 1));
    r.until_delivered(a);
    for _ in 0..3 {
        r.forge_server(MessageId::default(), Body::Ack(AckRepr::new(&[a, id(99)]).unwrap()));
    }
    run_for(&mut r.net, Duration::from_millis(50));
    assert_eq!(r.net.endpoint_ref(r.server).memory_usage().rpcs, 1, "ACK freed the request");
    r.respond(a, b"answer");
    assert_eq!(r.until_done(a, Duration::from_secs(1)), Ok(b"answer".to_vec()));
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 1);
    r.settle_and_check(1, 1);
}

#[test]
fn forged_ack_for_a_response_in_flight_at_worst_times_out_the_rpc() {
    let mut r = Rig::new(101);
    let big = pattern(2 << 20, 2);
    let a = r.call(b"send me 2 MiB");
    r.until_delivered(a);
    r.respond(a, &big);
    let client = r.client;
    assert!(r.net.run_until(Duration::from_secs(5), |n| {
        n.endpoint_ref(client).memory_usage().incoming_messages == 1
    }));
    let t0 = r.net.elapsed();
    r.forge_server(MessageId::default(), Body::Ack(AckRepr::new(&[a]).unwrap()));
    let outcome = r.until_done(a, Duration::from_secs(10));
    assert_eq!(outcome, Err(RpcError::Timeout(config().rpc_timeout)));
    let took = r.net.elapsed() - t0;
    assert!(took <= config().rpc_timeout + Duration::from_millis(20), "timed out after {took:?}");
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 1);
    // The session itself is unharmed.
    let b = r.call(b"next");
    r.until_delivered(b);
    r.respond(b, b"fine");
    assert_eq!(r.until_done(b, Duration::from_secs(1)), Ok(b"fine".to_vec()));
    r.settle_and_check(1, 1);
}

#[test]
fn forged_need_ack_changes_nothing() {
    let mut r = Rig::new(102);
    let a = r.call(&pattern(300_000, 3));
    let b = r.call(b"small");
    r.until_delivered(b);
    for target in [a, b, id(77), MessageId::MAX] {
        r.forge_client(target, Body::NeedAck);
        r.forge_server(target, Body::NeedAck);
    }
    run_for(&mut r.net, Duration::from_millis(20));
    r.until_delivered(a);
    r.respond(a, b"A");
    r.respond(b, b"B");
    assert_eq!(r.until_done(a, Duration::from_secs(1)), Ok(b"A".to_vec()));
    assert_eq!(r.until_done(b, Duration::from_secs(1)), Ok(b"B".to_vec()));
    r.forge_client(a, Body::NeedAck);
    run_for(&mut r.net, Duration::from_millis(20));
    assert_eq!(responses(&r.net, r.client).len(), 2);
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 2);
    r.settle_and_check(1, 1);
}

#[test]
fn forged_busy_keeps_an_rpc_alive_but_delivers_nothing() {
    let mut r = Rig::new(103);
    let a = r.call(b"served slowly");
    r.until_delivered(a);
    // Cut the network: from now on the client only hears the attacker.
    r.net.set_link(LinkConfig { loss: 1.0, ..LinkConfig::default() });
    let timeout = config().rpc_timeout;
    let alive_until = r.net.elapsed() + timeout * 3;
    while r.net.elapsed() < alive_until {
        r.forge_client(a, Body::Busy);
        r.forge_client(id(55), Body::Busy);
        run_for(&mut r.net, Duration::from_millis(500));
    }
    assert!(failures(&r.net, r.client).is_empty(), "BUSY did not keep the RPC alive");
    assert!(responses(&r.net, r.client).is_empty());
    assert_eq!(r.net.endpoint_ref(r.client).memory_usage().rpcs, 1);
    // Without BUSY the RPC times out, one rpc_timeout after the last one.
    let outcome = r.until_done(a, timeout + Duration::from_secs(1));
    assert_eq!(outcome, Err(RpcError::Timeout(timeout)));
    assert!(responses(&r.net, r.client).is_empty());
    // The server still owes the answer; the application gives up on it.
    assert_eq!(r.net.endpoint_ref(r.server).memory_usage().rpcs, 1);
    let ss = r.ss;
    r.net.endpoint(r.server).abandon_request(ss, a);
    r.settle_and_check(1, 1);
}

#[test]
fn forged_rpc_unknown_to_client_never_runs_a_request_twice() {
    let mut r = Rig::new(104);
    let small = pattern(1000, 4);
    let large = pattern(3 << 20, 5);
    let a = r.call(&small);
    r.until_delivered(a);
    let b = r.call(&large);
    // B is arriving at the server: restart both.
    let server = r.server;
    assert!(r.net.run_until(Duration::from_secs(5), |n| {
        n.endpoint_ref(server).memory_usage().incoming_messages == 1
    }));
    for _ in 0..3 {
        r.forge_client(a, Body::RpcUnknown);
        r.forge_client(b, Body::RpcUnknown);
        run_for(&mut r.net, Duration::from_micros(300));
    }
    r.until_delivered(b);
    run_for(&mut r.net, Duration::from_millis(50));
    let reqs = requests(&r.net, r.server);
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().any(|(_, i, p)| *i == a && *p == small));
    assert!(reqs.iter().any(|(_, i, p)| *i == b && *p == large));
    assert!(r.net.endpoint_ref(r.server).stats().duplicate_packets > 0, "no restart happened");
    r.respond(a, b"A");
    r.respond(b, b"B");
    assert_eq!(r.until_done(a, Duration::from_secs(1)), Ok(b"A".to_vec()));
    assert_eq!(r.until_done(b, Duration::from_secs(1)), Ok(b"B".to_vec()));
    // After completion, RPC_UNKNOWN for finished RPCs does nothing.
    r.forge_client(a, Body::RpcUnknown);
    r.forge_client(b, Body::RpcUnknown);
    r.settle_and_check(1, 1);
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 2);
    assert_eq!(responses(&r.net, r.client).len(), 2);
}

#[test]
fn forged_rpc_unknown_to_server_spares_requests_in_service() {
    let mut r = Rig::new(105);
    let a = r.call(b"in service");
    r.until_delivered(a);
    r.forge_server(a, Body::RpcUnknown);
    r.forge_server(id(1234), Body::RpcUnknown);
    run_for(&mut r.net, Duration::from_millis(20));
    assert_eq!(r.net.endpoint_ref(r.server).memory_usage().rpcs, 1);
    r.respond(a, b"still answered");
    assert_eq!(r.until_done(a, Duration::from_secs(1)), Ok(b"still answered".to_vec()));
    // For a response in flight it cancels the response: the client times out.
    let b = r.call(b"big answer");
    r.until_delivered(b);
    r.respond(b, &pattern(2 << 20, 6));
    let client = r.client;
    assert!(r.net.run_until(Duration::from_secs(5), |n| {
        n.endpoint_ref(client).memory_usage().incoming_messages == 1
    }));
    r.forge_server(b, Body::RpcUnknown);
    assert_eq!(
        r.until_done(b, Duration::from_secs(10)),
        Err(RpcError::Timeout(config().rpc_timeout))
    );
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 2);
    r.settle_and_check(1, 1);
}

#[test]
fn forged_rpc_unknown_to_a_server_receiving_a_request_costs_only_a_restart() {
    // The server frees a request still arriving when told RPC_UNKNOWN (so that a
    // corrupted message ID cannot leave it asking for bytes forever). Forged, that
    // costs the genuine client a restart, never a lost or repeated request.
    let mut r = Rig::new(108);
    let request = pattern(2 << 20, 8);
    let a = r.call(&request);
    let server = r.server;
    assert!(r.net.run_until(r.net.elapsed() + Duration::from_secs(5), |n| {
        n.endpoint_ref(server).memory_usage().incoming_messages == 1
    }));
    // (That it frees the request is shown in engine_scenarios; here the client's
    // packets in flight may begin it again at once.)
    r.forge_server(a, Body::RpcUnknown);
    r.until_delivered(a);
    let delivered: Vec<_> =
        requests(&r.net, r.server).into_iter().filter(|(_, i, _)| *i == a).collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].2, request);
    r.respond(a, b"done");
    assert_eq!(r.until_done(a, Duration::from_secs(5)), Ok(b"done".to_vec()));
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 1);
    r.settle_and_check(1, 1);
}

#[test]
fn forged_grants_with_huge_offsets_cause_no_wrong_or_duplicate_delivery() {
    let mut r = Rig::new(106);
    let req = pattern(3 << 20, 7);
    let resp = pattern(3 << 20, 8);
    let a = r.call(&req);
    for offset in [u32::MAX, 1 << 30, (3 << 20) + 10_000] {
        r.forge_client(a, Body::Grant(GrantRepr { offset, priority: 7 }));
        r.forge_client(id(999), Body::Grant(GrantRepr { offset, priority: 7 }));
        r.forge_server(a, Body::Grant(GrantRepr { offset, priority: 7 }));
    }
    r.until_delivered(a);
    assert!(requests(&r.net, r.server)[0].2 == req);
    r.respond(a, &resp);
    run_for(&mut r.net, Duration::from_micros(200));
    for offset in [u32::MAX, 1 << 30] {
        r.forge_server(a, Body::Grant(GrantRepr { offset, priority: 255 }));
        r.forge_client(a, Body::Grant(GrantRepr { offset, priority: 255 }));
    }
    let got = r.until_done(a, Duration::from_secs(5)).expect("RPC completes");
    assert!(got == resp, "response differs");
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 1);
    assert_eq!(r.net.endpoint_ref(r.client).stats().responses_delivered, 1);
    r.settle_and_check(1, 1);
}

#[test]
fn a_flood_of_forged_resends_draws_each_byte_again_at_most_once_per_interval() {
    // The red team's on-path RESEND(0, 0xffffffff), repeated, made a sender
    // retransmit up to 29 000x the forged bytes. Now a byte is queued again at most
    // once per resend interval, however many RESENDs ask for it.
    let mut r = Rig::new(109);
    let a = r.call(b"send me a lot");
    r.until_delivered(a);
    let resp = pattern(1 << 20, 11);
    r.respond(a, &resp);
    run_for(&mut r.net, Duration::from_micros(300)); // part of the response is out
    let before = r.net.endpoint_ref(r.server).stats().data_retransmitted;
    for _ in 0..500 {
        r.forge_server(a, Body::Resend(ResendRepr { offset: 0, length: u32::MAX, priority: 0 }));
    }
    let got = r.until_done(a, Duration::from_secs(5)).expect("RPC completes");
    assert!(got == resp);
    let retransmitted = r.net.endpoint_ref(r.server).stats().data_retransmitted - before;
    // 500 forged RESENDs arriving together: about one copy of what was sent (~750
    // packets for 1 MiB), not 500.
    assert!(retransmitted <= 800, "{retransmitted} DATA packets retransmitted");
    r.settle_and_check(1, 1);
}

#[test]
fn forged_resends_beyond_the_message_cause_no_wrong_or_duplicate_delivery() {
    let mut r = Rig::new(107);
    let req = pattern(500_000, 9);
    let a = r.call(&req);
    let beyond = [
        ResendRepr { offset: 10 << 20, length: 1000, priority: 0 },
        ResendRepr { offset: 0, length: u32::MAX, priority: 3 },
        ResendRepr { offset: u32::MAX - 1, length: 1, priority: 0 },
        ResendRepr { offset: 400_000, length: 2_000_000, priority: 0 },
    ];
    for resend in beyond {
        r.forge_client(a, Body::Resend(resend));
        r.forge_client(id(4242), Body::Resend(resend));
    }
    r.until_delivered(a);
    // While the request is in service: the server answers BUSY to its real peer.
    for resend in beyond {
        r.forge_server(a, Body::Resend(resend));
    }
    run_for(&mut r.net, Duration::from_millis(5));
    let resp = pattern(700_000, 10);
    r.respond(a, &resp);
    run_for(&mut r.net, Duration::from_micros(100));
    for resend in beyond {
        r.forge_server(a, Body::Resend(resend));
    }
    let got = r.until_done(a, Duration::from_secs(5)).expect("RPC completes");
    assert!(got == resp);
    assert!(requests(&r.net, r.server)[0].2 == req);
    assert_eq!(r.net.endpoint_ref(r.server).stats().requests_delivered, 1);
    r.settle_and_check(1, 1);
}

/// Forges `body` (SESSION_UNKNOWN or CLOSE) towards one side while request A is in
/// service and request B (3 MiB) is arriving; both sides must end the session, every
/// outstanding client RPC failing with `client_error`, and free everything.
fn session_end_scenario(seed: u64, to_server: bool, body: Body<'static>) -> (RpcError, RpcError) {
    let mut r = Rig::new(seed);
    let a = r.call(b"in service");
    r.until_delivered(a);
    let b = r.call(&pattern(3 << 20, 11));
    let server = r.server;
    assert!(r.net.run_until(Duration::from_secs(5), |n| {
        n.endpoint_ref(server).memory_usage().incoming_messages == 1
    }));
    r.forge(to_server, 0, body);
    let (client, cs, ss) = (r.client, r.cs, r.ss);
    assert!(r.net.run_until(r.net.elapsed() + Duration::from_secs(5), |n| {
        closed(n, client, cs).is_some() && closed(n, server, ss).is_some()
    }));
    let client_reason = closed(&r.net, client, cs).unwrap();
    let server_reason = closed(&r.net, server, ss).unwrap();
    let failed = failures(&r.net, client);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[&a], client_reason);
    assert_eq!(failed[&b], client_reason);
    assert!(responses(&r.net, client).is_empty());
    assert!(!r.delivered(b), "B was delivered after all");
    let now = r.net.now();
    assert!(r.net.endpoint(server).respond(now, ss, a, b"late").is_err());
    assert!(r.net.endpoint(client).call(now, cs, b"after").is_err());
    r.settle_and_check(0, 0);
    (client_reason, server_reason)
}

#[test]
fn forged_session_unknown_and_close_end_the_session_and_fail_every_rpc() {
    assert_eq!(
        session_end_scenario(110, false, Body::SessionUnknown),
        (RpcError::PeerReset, RpcError::PeerReset)
    );
    assert_eq!(
        session_end_scenario(111, false, Body::Close),
        (RpcError::PeerClosed, RpcError::PeerReset)
    );
    assert_eq!(
        session_end_scenario(112, true, Body::SessionUnknown),
        (RpcError::PeerReset, RpcError::PeerReset)
    );
    assert_eq!(
        session_end_scenario(113, true, Body::Close),
        (RpcError::PeerReset, RpcError::PeerClosed)
    );
}

// ---------------------------------------------------------------------------------
// 7. Liveness.
// ---------------------------------------------------------------------------------

#[test]
fn mismatched_session_keys_end_in_a_timeout_not_a_hang() {
    let mut net = Network::new(120, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(config());
    net.set_echo(server);
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    let sid = 0x4B45;
    let now = net.now();
    let cs = net
        .endpoint(client)
        .install_session(
            now,
            SessionParams {
                peer: saddr,
                session_id: sid,
                role: Role::Client,
                tx: derive_key(1, C2S),
                rx: derive_key(1, S2C),
                tx_secret: None,
                rx_secret: None,
            },
        )
        .unwrap();
    net.endpoint(server)
        .install_session(
            now,
            SessionParams {
                peer: caddr,
                session_id: sid,
                role: Role::Server,
                tx: derive_key(2, S2C),
                rx: derive_key(2, C2S),
                tx_secret: None,
                rx_secret: None,
            },
        )
        .unwrap();
    let mut ids = Vec::new();
    for size in [10, 5000, 100_000] {
        ids.push(net.call(client, cs, &pattern(size, 12)));
    }
    let t0 = net.elapsed();
    let timeout = config().rpc_timeout;
    assert!(net.run_until(t0 + timeout * 3, |n| failures(n, client).len() == ids.len()));
    let took = net.elapsed() - t0;
    assert!(took <= timeout + Duration::from_millis(20), "failed only after {took:?}");
    for i in &ids {
        assert_eq!(failures(&net, client)[i], RpcError::Timeout(timeout));
    }
    assert!(net.endpoint_ref(server).stats().auth_failures > 0);
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, 0);
    let datagrams = net.stats.sent;
    println!("mismatched keys: {datagrams} datagrams in {took:?}");
    assert!(settle(&mut net, Duration::from_secs(10)));
    assert_no_state(&net, client, 1);
    assert_no_state(&net, server, 1);
    assert!(net.stats.sent - datagrams <= 10, "traffic continued after the timeout");
}

#[test]
fn request_above_the_servers_max_message_len_ends_in_a_bounded_timeout() {
    let mut small = config();
    small.max_message_len = 10_000;
    let mut net = Network::new(121, LinkConfig::default());
    let client = net.add_host(config());
    let server = net.add_host(small);
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let request = pattern(100_000, 13);
    let a = net.call(client, cs, &request);
    let t0 = net.elapsed();
    let timeout = config().rpc_timeout;
    assert!(net.run_until(t0 + timeout * 3, |n| failures(n, client).contains_key(&a)));
    let took = net.elapsed() - t0;
    assert_eq!(failures(&net, client)[&a], RpcError::Timeout(timeout));
    assert!(took <= timeout + Duration::from_millis(20), "failed only after {took:?}");
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, 0);
    assert!(net.endpoint_ref(server).stats().admission_refused > 0);
    let datagrams = net.stats.sent;
    let bytes_per_attempt = config().unscheduled_bytes as u64;
    let attempts = datagrams * config().max_packet_payload as u64 / bytes_per_attempt;
    println!("oversized request: {datagrams} datagrams (~{attempts} restarts) in {took:?}");
    // Restarts back off exponentially (resend_after, 2x, 4x, ...), so there are at
    // most log2(timeout / resend_after) + 2 of them, each resending the unscheduled
    // bytes; on top come one probe and one reply per resend_after.
    let ticks = (timeout.as_micros() / config().resend_after.as_micros()) as u64 + 1;
    let max_restarts = u64::from(64 - ticks.leading_zeros()) + 2;
    let per_restart = bytes_per_attempt.div_ceil(config().max_packet_payload as u64) + 2;
    assert!(datagrams <= max_restarts * per_restart + 2 * ticks, "{datagrams} datagrams");
    assert!(settle(&mut net, Duration::from_secs(10)));
    assert_no_state(&net, client, 1);
    assert_no_state(&net, server, 1);
    assert!(net.stats.sent - datagrams <= 10, "traffic continued after the timeout");
}
