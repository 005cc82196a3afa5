//! NAT rebinding with real sockets: a relay between client and server changes its
//! source port mid-session (closing the old one, as a NAT whose mapping expired);
//! the session follows the client on its next request and every call completes once.

mod support;

use std::time::Duration;

use support::{loopback_client, loopback_server, pattern, within, Relay};

const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn calls_continue_each_exactly_once_when_the_clients_nat_changes_its_port() {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    support::spawn_echo(server.clone());
    let relay = Relay::start(server.local_addr()).await;
    relay.record.store(false, std::sync::atomic::Ordering::SeqCst);
    let client = loopback_client(support::client_config(&id));
    let session = within(STEP, "connect", client.connect(relay.addr, "localhost")).await.unwrap();
    let mut calls = 0u64;
    for round in 0..3u64 {
        for i in 0..10u64 {
            let request = pattern(if i % 5 == 4 { 300_000 } else { 64 }, round * 100 + i);
            let response = within(STEP, "call", session.call(request.clone())).await;
            assert_eq!(response.expect("call").as_ref(), &request[..], "round {round} call {i}");
            calls += 1;
        }
        relay.rebind();
    }
    // Concurrent calls, the first of which crosses the third rebinding.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16usize {
        let (session, request) = (session.clone(), pattern(1000 * i, 7000 + i as u64));
        tasks.spawn(async move { (session.call(request.clone()).await, request) });
    }
    while let Some(joined) = within(STEP, "concurrent calls", tasks.join_next()).await {
        let (got, sent) = joined.expect("task");
        assert_eq!(got.expect("concurrent call").as_ref(), &sent[..]);
        calls += 1;
    }
    assert_eq!(calls, 46);
    let stats = server.stats();
    assert_eq!(stats.requests_delivered, calls, "every request exactly once");
    assert_eq!(stats.address_changes, 3, "{stats:?}");
    assert_eq!(server.memory_usage().sessions, 1, "the session moved, no new one");
}

#[tokio::test]
async fn a_replay_of_captured_datagrams_from_a_third_address_does_not_move_a_live_session() {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    support::spawn_echo(server.clone());
    let relay = Relay::start(server.local_addr()).await;
    let client = loopback_client(support::client_config(&id));
    let session = within(STEP, "connect", client.connect(relay.addr, "localhost")).await.unwrap();
    for i in 0..10u64 {
        let request = pattern(if i % 3 == 2 { 100_000 } else { 64 }, i);
        let response = within(STEP, "call", session.call(request.clone())).await.expect("call");
        assert_eq!(response.as_ref(), &request[..]);
    }
    let captured = relay.captured(support::Direction::ToServer);
    assert!(captured.len() > 10);
    let before = server.stats();
    // Everything the client sent, handshake included, replayed from a third socket.
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..2 {
        for datagram in &captured {
            attacker.send_to(datagram, server.local_addr()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = server.stats();
    assert_eq!(after.requests_delivered, before.requests_delivered, "a replay ran a request");
    assert_eq!(after.address_changes, 0, "{after:?}");
    assert!(after.address_changes_refused > before.address_changes_refused, "{after:?}");
    // The replayed ClientHello starts a handshake like any spoofed one (bounded by
    // the amplification limit, PROTOCOL.md 9.4, and tested there); nothing of the session reached
    // the third address: no DATA, no control packet about its RPCs.
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(200), attacker.recv_from(&mut buf)).await
    {
        let packet = smt_proto::wire::PacketRepr::parse(&buf[..n]).expect("an SMT packet");
        assert_eq!(
            packet.header.packet_type,
            smt_proto::wire::PacketType::Handshake,
            "the session answered the replaying address: {packet}"
        );
    }
    let response = within(STEP, "call", session.call(b"after".to_vec())).await.expect("call");
    assert_eq!(response.as_ref(), b"after");
    assert_eq!(server.stats().requests_delivered, before.requests_delivered + 1);
}
