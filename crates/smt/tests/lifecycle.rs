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

#[tokio::test]
async fn a_quiet_session_expires_after_the_idle_timeout_and_keep_alives_keep_another_open() {
    let id = support::identity(&["localhost"]);
    let server = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .server_config(support::server_config(&id))
        .transport_config(lifecycle_config(None))
        .build()
        .expect("server");
    support::spawn_echo(server.clone());
    let client = |keep_alive| {
        Endpoint::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .client_config(support::client_config(&id))
            .transport_config(lifecycle_config(keep_alive))
            .build()
            .expect("client")
    };
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
