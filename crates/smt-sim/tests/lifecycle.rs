//! Session lifecycle over the simulated network: quiet sessions expire on both sides
//! after the idle timeout, RPCs in flight keep their session, keep-alives keep a
//! quiet session and detect a dead peer, and a server at `max_sessions` makes room
//! by closing its longest-idle session or, when none is idle, refuses the new client
//! with an error that says so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{client_tls, connect, identity, server_tls};
use common::{closed, established, responses};
use smt_proto::engine::{CallError, Config, Event, RpcError, SessionHandle, TlsError};
use smt_proto::record::CipherSuite;
use smt_sim::{HostId, LinkConfig, Network};

const IDLE: Duration = Duration::from_secs(30);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_quiet_session_expires_on_both_sides_after_the_idle_timeout() {
    let mut net = Network::new(7, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    net.set_echo(server);
    let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let id = net.call(client, cs, b"hello");
    assert!(net.run_until(secs(1), |n| responses(n, client).contains_key(&id)));
    let answered = net.elapsed();

    net.advance_to(answered + IDLE - secs(1));
    assert_eq!(net.endpoint_ref(client).session_count(), 1, "expired early");
    assert_eq!(net.endpoint_ref(server).session_count(), 1, "expired early");

    net.advance_to(answered + IDLE + secs(1));
    assert_eq!(net.endpoint_ref(client).session_count(), 0);
    assert_eq!(net.endpoint_ref(server).session_count(), 0);
    // The client heard last (the response), so it expires first and tells the
    // server; whichever way it went, both sides freed the session for a reason
    // that names idleness or the peer's close.
    assert_eq!(closed(&net, client, cs), Some(RpcError::IdleTimeout(IDLE)));
    let server_reason = closed(&net, server, ss).expect("server session closed");
    assert!(
        matches!(server_reason, RpcError::IdleTimeout(_) | RpcError::PeerClosed),
        "server: {server_reason:?}"
    );
    assert_eq!(net.endpoint_ref(client).stats().sessions_expired, 1);
    for host in [client, server] {
        let m = net.endpoint_ref(host).memory_usage();
        assert_eq!((m.sessions, m.rpcs), (0, 0));
        assert_eq!(net.endpoint_ref(host).poll_timeout(), None, "a timer outlived the session");
    }
    // A call on the expired session says why at once.
    let now = net.now();
    let refused = net.endpoint(client).call(now, cs, b"late").unwrap_err();
    assert_eq!(refused, CallError::SessionClosed(RpcError::IdleTimeout(IDLE)));
}

#[test]
fn a_request_the_application_is_still_serving_keeps_its_session_past_the_idle_timeout() {
    let mut net = Network::new(8, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default()); // no responder: the test answers
    let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let id = net.call(client, cs, b"slow work");
    let delivered = |n: &mut Network| {
        n.events(server).iter().any(|(_, e)| matches!(e, Event::Request { id: i, .. } if *i == id))
    };
    assert!(net.run_until(secs(1), delivered));
    net.advance_to(net.elapsed() + IDLE + secs(10));
    assert_eq!(net.endpoint_ref(client).session_count(), 1);
    assert_eq!(net.endpoint_ref(server).session_count(), 1);
    assert!(closed(&net, client, cs).is_none() && closed(&net, server, ss).is_none());
    let now = net.now();
    net.endpoint(server).respond(now, ss, id, b"done at last").expect("respond");
    net.pump_host(server);
    assert!(net.run_until(net.elapsed() + secs(1), |n| responses(n, client).contains_key(&id)));
    assert_eq!(responses(&net, client)[&id], b"done at last");
}

#[test]
fn keep_alives_keep_a_quiet_session_and_detect_a_peer_that_went_away() {
    let mut config = Config::default();
    config.keep_alive = Some(secs(10));
    let mut net = Network::new(9, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(config);
    net.set_echo(server);
    let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);

    net.advance_to(secs(95));
    assert_eq!(net.endpoint_ref(client).session_count(), 1, "keep-alives did not keep it");
    assert_eq!(net.endpoint_ref(server).session_count(), 1, "keep-alives did not keep it");
    let probes = net.endpoint_ref(client).stats().keep_alives_sent
        + net.endpoint_ref(server).stats().keep_alives_sent;
    // Only the client probes, once per 10 s of quiet.
    assert_eq!(net.endpoint_ref(server).stats().keep_alives_sent, 0);
    assert!((8..=10).contains(&probes), "{probes} keep-alive probes in 95 s");
    // The session still carries RPCs.
    let id = net.call(client, cs, b"still there?");
    assert!(net.run_until(net.elapsed() + secs(1), |n| responses(n, client).contains_key(&id)));

    // The path dies: probes go unanswered and both sides give up after the idle
    // timeout instead of keeping the session forever.
    net.set_link(LinkConfig { loss: 1.0, ..LinkConfig::default() });
    let cut = net.elapsed();
    net.advance_to(cut + IDLE + secs(1));
    assert_eq!(closed(&net, client, cs), Some(RpcError::IdleTimeout(IDLE)));
    assert_eq!(closed(&net, server, ss), Some(RpcError::IdleTimeout(IDLE)));
}

/// A server accepting real TLS handshakes with room for `max_sessions`, its idle
/// sessions reclaimable after `reclaim_after`; `clients` client hosts; the client
/// TLS configuration that trusts the server.
fn full_server(
    max_sessions: usize,
    reclaim_after: Duration,
    clients: usize,
) -> (Network, HostId, Vec<HostId>, Arc<rustls::ClientConfig>) {
    let mut net = Network::new(10, LinkConfig::default());
    let mut server_config = Config::default();
    server_config.max_sessions = max_sessions;
    server_config.reclaim_idle_after = reclaim_after;
    let server = net.add_host(server_config);
    net.set_echo(server);
    let id = identity("server.test");
    net.endpoint(server).set_acceptor(Box::new(server_tls(&id, None)));
    let hosts = (0..clients).map(|_| net.add_host(Config::default())).collect();
    (net, server, hosts, client_tls(&id, None))
}

/// Connects each host to the server in turn, waiting `pause` after each session is
/// established; their handles.
fn connect_each(
    net: &mut Network,
    server: HostId,
    hosts: &[HostId],
    tls: &Arc<rustls::ClientConfig>,
    pause: Duration,
) -> Vec<SessionHandle> {
    let mut sessions = Vec::new();
    for &host in hosts {
        let s = connect(net, host, server, tls.clone());
        assert!(net.run_until(net.elapsed() + secs(1), |n| established(n, host, s)));
        sessions.push(s);
        net.advance_to(net.elapsed() + pause);
    }
    sessions
}

#[test]
fn at_max_sessions_the_longest_idle_session_makes_room_for_a_new_client() {
    let (mut net, server, hosts, tls) = full_server(2, secs(1), 3);
    // Clients 0 and 1 fill the server and go quiet (as if they crashed), 0 first.
    let sessions = connect_each(&mut net, server, &hosts[..2], &tls, secs(2));
    let s2 = connect(&mut net, hosts[2], server, tls.clone());
    assert!(
        net.run_until(net.elapsed() + secs(1), |n| established(n, hosts[2], s2)),
        "the third client was not let in: {:?}",
        closed(&net, hosts[2], s2)
    );
    // (The server installs the session when the client's Finished arrives.)
    assert!(net.run_until(net.elapsed() + secs(1), |n| n.endpoint_ref(server).session_count() == 2));
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!((stats.sessions_reclaimed, stats.sessions_refused), (1, 0));
    // The longest-idle session went, and its client was told.
    net.run_until(net.elapsed() + secs(1), |n| closed(n, hosts[0], sessions[0]).is_some());
    assert_eq!(closed(&net, hosts[0], sessions[0]), Some(RpcError::PeerClosed));
    // The other two work.
    for (host, session) in [(hosts[1], sessions[1]), (hosts[2], s2)] {
        let id = net.call(host, session, b"ping");
        assert!(net.run_until(net.elapsed() + secs(1), |n| responses(n, host).contains_key(&id)));
    }
}

#[test]
fn at_max_sessions_with_no_idle_session_a_new_client_is_refused_at_once_with_a_clear_error() {
    let (mut net, server, hosts, tls) = full_server(2, secs(10), 3);
    let sessions = connect_each(&mut net, server, &hosts[..2], &tls, Duration::ZERO);
    let started = net.elapsed();
    let s2 = connect(&mut net, hosts[2], server, tls);
    assert!(net.run_until(started + secs(5), |n| closed(n, hosts[2], s2).is_some()));
    assert_eq!(closed(&net, hosts[2], s2), Some(RpcError::Handshake(TlsError::ServerFull)));
    assert!(
        net.elapsed() - started < Duration::from_millis(100),
        "refusal took {:?}",
        net.elapsed() - started
    );
    let message = RpcError::Handshake(TlsError::ServerFull).to_string();
    assert!(message.contains("session limit"), "{message}");
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!((stats.sessions_refused, stats.sessions_reclaimed), (1, 0));
    assert_eq!(net.endpoint_ref(server).session_count(), 2);
    for (host, session) in hosts[..2].iter().zip(&sessions) {
        let id = net.call(*host, *session, b"ping");
        assert!(net.run_until(net.elapsed() + secs(1), |n| responses(n, *host).contains_key(&id)));
    }
}

/// A session-limit refusal (BUSY, Message ID 0) as a server would send it.
fn refusal(session_id: u64) -> Vec<u8> {
    use smt_proto::wire::{Body, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};
    let header = HeaderRepr {
        src_port: 4433,
        dst_port: 4433,
        packet_type: PacketType::Busy,
        flags: Flags::empty(),
        session_id,
        message_id: MessageId::ZERO,
    };
    PacketRepr { header, body: Body::Busy }.to_vec()
}

#[test]
fn a_forged_refusal_fails_only_the_handshake_whose_session_id_it_names() {
    let (mut net, server, hosts, tls) = full_server(4, secs(1), 1);
    let client = hosts[0];
    let s = connect(&mut net, client, server, tls);
    assert_eq!(net.endpoint_ref(client).pending_handshakes(), 1);
    // An off-path forger does not know the 64-bit session ID the ClientHello
    // carried: refusals naming other IDs, even from the server's address, are
    // ignored and the handshake completes.
    let server_addr = net.addr(server);
    for guess in [0u64, 1, 0x5157_0000, 0x5157_0002, u64::MAX] {
        net.inject(client, server_addr, refusal(guess));
    }
    assert!(net.run_until(net.elapsed() + secs(1), |n| established(n, client, s)));
    assert!(closed(&net, client, s).is_none());
    // The limit, as PROTOCOL.md 7.11 states it: an on-path attacker who read the
    // session ID can fail a pending handshake (as it could by dropping its packets).
    let (mut net, server, hosts, tls) = full_server(4, secs(1), 1);
    let s = connect(&mut net, hosts[0], server, tls);
    let server_addr = net.addr(server);
    net.inject(hosts[0], server_addr, refusal(common::tls::SESSION_ID));
    assert!(net.run_until(net.elapsed() + secs(1), |n| closed(n, hosts[0], s).is_some()));
    assert_eq!(closed(&net, hosts[0], s), Some(RpcError::Handshake(TlsError::ServerFull)));
}
