//! `Endpoint::metrics`: the histograms count what happened, on both sides.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn metrics_count_calls_on_the_client_and_service_time_on_the_server() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    let serving = server.clone();
    // A handler that takes at least 2 ms: its service time must land at or above
    // the 2 ms bucket, while an echo answered inline stays far below it.
    let task = tokio::spawn(async move {
        serving
            .serve(|r| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                r.into_payload()
            })
            .await
    });
    let client = loopback_client(client_config(&id));
    let session = within(
        Duration::from_secs(10),
        "connect",
        client.connect(server.local_addr(), "localhost"),
    )
    .await
    .unwrap();
    for i in 0..20u8 {
        let reply =
            within(Duration::from_secs(10), "call", session.call(vec![i; 100 + i as usize]))
                .await
                .unwrap();
        assert_eq!(reply.len(), 100 + i as usize);
    }
    let client_side = client.metrics();
    assert_eq!(client_side.call_latency.count, 20);
    assert_eq!(client_side.calls_in_flight, 0);
    assert_eq!(client_side.stats.responses_delivered, 20);
    assert!(client_side.call_latency.sum >= Duration::from_millis(40));
    assert_eq!(client_side.service_time.count, 0, "the client serves nothing");

    let server_side = server.metrics();
    assert_eq!(server_side.service_time.count, 20);
    let p0 = server_side.service_time.quantile_upper_bound(0.0).unwrap();
    assert!(p0 >= Duration::from_millis(2), "fastest service time bucket {p0:?}");
    assert_eq!(server_side.stats.requests_delivered, 20);
    assert_eq!(server_side.memory.sessions, 1);
    assert!(server_side.stats.bytes_received > 20 * 100);
    task.abort();
}
