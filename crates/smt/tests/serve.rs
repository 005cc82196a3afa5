//! `Endpoint::serve`: requests answered by an inline handler, on the endpoint's own
//! I/O task, with waiting handlers moved to tasks of their own. Every wait is bounded.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smt::Error;
use support::{loopback_client, loopback_server, pattern, within};

const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn inline_handler_answers_many_concurrent_calls_of_every_size_exactly_once() {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let serving = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .serve(move |request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let mut body = b"re:".to_vec();
                    body.extend_from_slice(request.payload());
                    async move { body }
                })
                .await
        })
    };
    let client = loopback_client(support::client_config(&id));
    let session = within(STEP, "connect", client.connect(server.local_addr(), "localhost"))
        .await
        .expect("connect");
    // 64 small calls at once (they leave and return in batches) and a few large ones.
    let sizes: Vec<usize> = (0..64).map(|i| i * 7).chain([100_000, 1 << 20]).collect();
    let calls = sizes.iter().enumerate().map(|(i, &n)| {
        let session = session.clone();
        async move { (i, n, session.call(pattern(n, i as u64)).await) }
    });
    let results = within(STEP, "calls", futures_join_all(calls)).await;
    for (i, n, result) in results {
        let got = result.expect("call");
        let mut want = b"re:".to_vec();
        want.extend_from_slice(&pattern(n, i as u64));
        assert_eq!(got, want, "call {i} of {n} bytes");
    }
    assert_eq!(runs.load(Ordering::Relaxed), sizes.len(), "each request ran exactly once");
    assert_eq!(server.stats().requests_delivered, sizes.len() as u64);
    within(STEP, "close", server.close()).await;
    let ended = within(STEP, "serve ends", serving).await.expect("task");
    assert!(ended.is_ok(), "serve ends cleanly when the endpoint closes: {ended:?}");
}

#[tokio::test]
async fn a_handler_that_waits_answers_from_its_own_task_without_blocking_others() {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    tokio::spawn({
        let server = server.clone();
        async move {
            server
                .serve(|request| async move {
                    if request.payload().as_ref() == b"slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    request.into_payload()
                })
                .await
        }
    });
    let client = loopback_client(support::client_config(&id));
    let session = within(STEP, "connect", client.connect(server.local_addr(), "localhost"))
        .await
        .expect("connect");
    let slow = tokio::spawn({
        let session = session.clone();
        async move { session.call("slow").await }
    });
    // A fast call made after the slow one returns long before it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    let fast = within(STEP, "fast call", session.call("fast")).await.expect("fast");
    assert_eq!(fast, "fast");
    assert!(started.elapsed() < Duration::from_millis(200), "fast call waited for the slow one");
    let slow = within(STEP, "slow call", slow).await.expect("task").expect("slow");
    assert_eq!(slow, Bytes::from_static(b"slow"));
}

#[tokio::test]
async fn serving_twice_on_one_endpoint_is_refused_and_serving_a_closed_one_fails() {
    let id = support::identity(&["localhost"]);
    let server = loopback_server(support::server_config(&id));
    let first = tokio::spawn({
        let server = server.clone();
        async move { server.serve(|r| async move { r.into_payload() }).await }
    });
    // Let the first serve install its handler (its first poll does).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let second =
        within(STEP, "second serve", server.serve(|r| async move { r.into_payload() })).await;
    assert!(matches!(second, Err(Error::Config(_))), "{second:?}");
    within(STEP, "close", server.close()).await;
    assert!(within(STEP, "first serve ends", first).await.expect("task").is_ok());
    let after =
        within(STEP, "serve after close", server.serve(|r| async move { r.into_payload() })).await;
    assert!(matches!(after, Err(Error::EndpointClosed)), "{after:?}");
}

/// Runs the futures as concurrent tasks; their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
