mod support;

use std::time::Duration;

#[tokio::test]
async fn echo_round_trip_over_loopback() {
    let id = support::identity(&["localhost"]);
    let server =
        smt::Endpoint::server("127.0.0.1:0".parse().unwrap(), support::server_config(&id)).unwrap();
    support::spawn_echo(server.clone());
    let client =
        smt::Endpoint::client("127.0.0.1:0".parse().unwrap(), support::client_config(&id)).unwrap();
    let session = tokio::time::timeout(
        Duration::from_secs(5),
        client.connect(server.local_addr(), "localhost"),
    )
    .await
    .expect("connect timed out")
    .expect("connect");
    for size in [0usize, 1, 1400, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let got = tokio::time::timeout(Duration::from_secs(10), session.call(payload.clone()))
            .await
            .expect("call timed out")
            .expect("call");
        assert_eq!(got, payload, "size {size}");
    }
}
