//! The insecure null cipher (feature `insecure-null-cipher`, used only by the
//! benchmark's smt-plain): it must really carry messages unencrypted when both ends
//! enable it, and must never be in effect otherwise.
#![cfg(feature = "insecure-null-cipher")]
mod support;

use std::time::Duration;

use smt::Endpoint;
use support::{Direction, Relay};

async fn request_on_the_wire(null_cipher: bool) -> bool {
    let id = support::identity(&["localhost"]);
    let server = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .server_config(support::server_config(&id))
        .insecure_null_cipher(null_cipher)
        .build()
        .unwrap();
    support::spawn_echo(server.clone());
    let relay = Relay::start(server.local_addr()).await;
    let client = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .client_config(support::client_config(&id))
        .insecure_null_cipher(null_cipher)
        .build()
        .unwrap();
    let session = client.connect(relay.addr, "localhost").await.unwrap();
    let request = b"plainly visible benchmark payload".to_vec();
    let response = tokio::time::timeout(Duration::from_secs(5), session.call(request.clone()))
        .await
        .expect("call timed out")
        .expect("call");
    assert_eq!(response, request);
    relay
        .captured(Direction::ToServer)
        .iter()
        .any(|datagram| datagram.windows(request.len()).any(|w| w == request.as_slice()))
}

#[tokio::test]
async fn null_cipher_sends_plaintext_only_when_both_ends_enable_it() {
    assert!(request_on_the_wire(true).await, "null cipher: payload should be visible");
    assert!(!request_on_the_wire(false).await, "default: payload must be encrypted");
}
