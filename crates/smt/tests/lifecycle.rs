//! Session lifecycle through the public API: a quiet session expires after the
//! idle timeout and a call on it says so; keep-alives keep a quiet session open.

mod support;

use std::time::Duration;

use smt::{Endpoint, Error, TransportConfig};
use support::within;

const STEP: Duration = Duration::from_secs(5);

fn lifecycle_config(keep_alive: Option<Duration>) -> TransportConfig {
    let mut config = TransportConfig::default();
    config.idle_timeout = Some(Duration::from_secs(1));
    config.keep_alive = keep_alive;
    config
}

/// A loopback server endpoint with `config`.
fn server_with(id: &support::Identity, config: TransportConfig) -> Endpoint {
    Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .server_config(support::server_config(id))
        .transport_config(config)
        .build()
        .expect("server")
}

/// A loopback client endpoint with `config`, trusting `id`.
fn client_with(id: &support::Identity, config: TransportConfig) -> Endpoint {
    Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .client_config(support::client_config(id))
        .transport_config(config)
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_quiet_session_expires_after_the_idle_timeout_and_keep_alives_keep_another_open() {
    let id = support::identity(&["localhost"]);
    let server = server_with(&id, lifecycle_config(None));
    support::spawn_echo(server.clone());
    let client = |keep_alive| client_with(&id, lifecycle_config(keep_alive));
    let (quiet, kept) = (client(None), client(Some(Duration::from_millis(300))));
    let addr = server.local_addr();
    let quiet_session = within(STEP, "connect", quiet.connect(addr, "localhost")).await.unwrap();
    let kept_session = within(STEP, "connect", kept.connect(addr, "localhost")).await.unwrap();
    for session in [&quiet_session, &kept_session] {
        within(STEP, "call", session.call(b"hello".to_vec())).await.expect("first call");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;

    match within(STEP, "call", quiet_session.call(b"late".to_vec())).await {
        Err(Error::IdleTimeout(idle)) => assert_eq!(idle, Duration::from_secs(1)),
        other => panic!("expected IdleTimeout, got {other:?}"),
    }
    let message = Error::IdleTimeout(Duration::from_secs(1)).to_string();
    assert!(message.contains("keep-alive"), "{message}");
    let echoed = within(STEP, "call", kept_session.call(b"still here".to_vec())).await;
    assert_eq!(echoed.expect("the kept session works").as_ref(), b"still here");
    assert!(kept.stats().keep_alives_sent >= 4, "{:?}", kept.stats());
    assert_eq!(quiet.stats().sessions_expired, 1);
    // The server freed the quiet session too (by its own timer or the client's
    // CLOSE) and holds only the kept one.
    assert_eq!(server.memory_usage().sessions, 1);
}

#[tokio::test]
async fn requests_nobody_accepts_yet_are_held_within_the_session_budget_and_all_run_later() {
    let id = support::identity(&["localhost"]);
    let mut config = TransportConfig::default();
    config.max_incoming_bytes_per_session = 64 * 1024;
    config.rpc_timeout = Duration::from_secs(10);
    let budget = config.max_incoming_bytes_per_session;
    let server = server_with(&id, config);
    let mut client_config = TransportConfig::default();
    client_config.rpc_timeout = Duration::from_secs(10);
    let client = client_with(&id, client_config);
    let session =
        within(STEP, "connect", client.connect(server.local_addr(), "localhost")).await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let (session, request) =
            (session.clone(), [i.to_be_bytes().as_slice(), &[7; 996]].concat());
        calls.spawn(async move { (session.call(request.clone()).await, request) });
    }
    // Nobody accepts for a while: what waits for `accept` stays within the budget
    // and the rest is refused at the door (the client retries), not queued.
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let m = server.memory_usage();
        peak = peak.max(m.queued_request_bytes + m.incoming_bytes);
    }
    assert!(peak > budget / 2, "the budget never filled ({peak} B): the test tests nothing");
    assert!(peak <= budget, "held {peak} B of requests with a budget of {budget} B");
    assert!(server.stats().admission_refused > 0);
    support::spawn_echo(server.clone());
    let mut answered = 0;
    while let Some(joined) = within(Duration::from_secs(30), "calls", calls.join_next()).await {
        let (response, request) = joined.expect("task");
        assert_eq!(response.expect("call").as_ref(), &request[..]);
        answered += 1;
    }
    assert_eq!(answered, 200);
    assert_eq!(server.stats().requests_delivered, 200, "each request ran exactly once");
}
