//! The `tower` feature: a session is a `tower::Service`, and `serve_service` runs a
//! service per request under its concurrency limit. (The balancer, retry and
//! timeout composition is `examples/tower_balance.rs`, which scripts/test.sh runs.)
#![cfg(feature = "tower")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::*;
use tower::{Service, ServiceBuilder, ServiceExt};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_session_answers_as_a_service_and_is_not_ready_once_closed() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    let _echo = spawn_echo(server.clone());
    let client = loopback_client(client_config(&id));
    let session =
        within(LIMIT, "connect", client.connect(server.local_addr(), "localhost")).await.unwrap();
    let mut service = session.clone();
    let reply = within(LIMIT, "call", service.ready().await.unwrap().call(Bytes::from("hi")))
        .await
        .unwrap();
    assert_eq!(reply, "hi");
    session.close();
    let err = service.ready().await.unwrap_err();
    assert!(matches!(err, smt::Error::SessionClosed), "{err:?}");
}

#[tokio::test]
async fn serve_service_never_runs_more_requests_at_once_than_its_limit() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let slow = tower::service_fn(move |request: smt::Request| {
        let (now, peak) = (n.clone(), p.clone());
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(request.into_payload())
        }
    });
    let serving = server.clone();
    let task = tokio::spawn(async move { serving.serve_service(slow, 4).await });
    let client = loopback_client(client_config(&id));
    let session =
        within(LIMIT, "connect", client.connect(server.local_addr(), "localhost")).await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40u8 {
        let session = session.clone();
        calls.spawn(async move { (i, session.call(vec![i; 10]).await) });
    }
    while let Some(joined) = within(LIMIT, "calls", calls.join_next()).await {
        let (i, reply) = joined.unwrap();
        assert_eq!(reply.unwrap(), vec![i; 10]);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 4, "40 concurrent calls should fill the limit");
    task.abort();
}

#[tokio::test]
async fn a_failing_service_leaves_the_call_to_the_clients_timeout_layer() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    let failing = tower::service_fn(|_: smt::Request| async { Err::<Bytes, _>("no database") });
    let serving = server.clone();
    let task = tokio::spawn(async move { serving.serve_service(failing, 8).await });
    let client = loopback_client(client_config(&id));
    let session =
        within(LIMIT, "connect", client.connect(server.local_addr(), "localhost")).await.unwrap();
    let timed = ServiceBuilder::new().timeout(Duration::from_millis(300)).service(session);
    let err = within(LIMIT, "call", timed.oneshot(Bytes::from("q"))).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(server.metrics().stats.requests_delivered, 1);
    task.abort();
}

#[tokio::test]
async fn serve_service_refuses_a_zero_limit() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    let echo = tower::service_fn(|r: smt::Request| async move {
        Ok::<_, std::convert::Infallible>(r.into_payload())
    });
    assert!(matches!(server.serve_service(echo, 0).await, Err(smt::Error::Config(_))));
}
