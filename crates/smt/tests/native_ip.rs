//! Native IP mode (raw sockets, protocol 253) on loopback. Needs CAP_NET_RAW: when it
//! is missing the tests say so and pass, unless SMT_REQUIRE_PRIVILEGED_TESTS=1 (set by
//! CI, which runs as root), in which case they fail.
mod support;

use std::time::Duration;

use smt::{Endpoint, Error, Transport};

/// Whether this process may open raw sockets; panics if required but missing.
fn privileged() -> bool {
    let ok = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(253)),
    )
    .is_ok();
    if !ok {
        assert!(
            std::env::var_os("SMT_REQUIRE_PRIVILEGED_TESTS").is_none(),
            "native IP tests need CAP_NET_RAW but SMT_REQUIRE_PRIVILEGED_TESTS is set"
        );
        eprintln!("SKIPPED: native IP mode needs CAP_NET_RAW (run as root)");
    }
    ok
}

async fn echo_over(ip: &str, protocol: u8) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let id = support::identity(&["localhost"]);
    let network = Transport::NativeIp { protocol };
    let server = Endpoint::builder()
        .bind(format!("{ip}:4433").parse().unwrap())
        .server_config(support::server_config(&id))
        .network(network)
        .build()
        .unwrap();
    support::spawn_echo(server.clone());
    let client = Endpoint::builder()
        .bind(format!("{ip}:0").parse().unwrap())
        .client_config(support::client_config(&id))
        .network(network)
        .build()
        .unwrap();
    let session = tokio::time::timeout(
        Duration::from_secs(5),
        client.connect(server.local_addr(), "localhost"),
    )
    .await
    .expect("connect timed out")
    .expect("connect");
    for size in [0usize, 1, 1400, 100_000, 4 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let got = tokio::time::timeout(Duration::from_secs(20), session.call(payload.clone()))
            .await
            .expect("call timed out")
            .expect("call");
        assert_eq!(got, payload, "size {size}");
    }
    client.close().await;
    server.close().await;
}

#[tokio::test]
async fn echo_over_native_ipv4_on_loopback() {
    if privileged() {
        echo_over("127.0.0.1", 253).await;
    }
}

#[tokio::test]
async fn echo_over_native_ipv6_on_loopback() {
    if privileged() {
        echo_over("[::1]", 254).await;
    }
}

#[tokio::test]
async fn missing_cap_net_raw_gives_a_clear_error() {
    // Only meaningful without the capability; as root, check the error text instead.
    let result = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .network(Transport::native_ip())
        .build();
    match result {
        Ok(_) => assert!(privileged()),
        Err(e) => {
            assert!(matches!(e, Error::NeedsCapNetRaw), "{e}");
            assert!(e.to_string().contains("CAP_NET_RAW"));
        }
    }
}
