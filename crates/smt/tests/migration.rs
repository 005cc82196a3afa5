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
