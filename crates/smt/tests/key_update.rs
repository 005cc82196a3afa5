//! TLS 1.3 key updates over real sockets: with the secrets rustls produced in the
//! in-band handshake, and with secrets installed through the kTLS-style API.
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use smt::{CipherSuite, Endpoint, Role, SessionKeys, TrafficKey, TransportConfig};

fn updating_config() -> TransportConfig {
    let mut config = TransportConfig::default();
    config.key_update_after = Some(3);
    config
}

async fn echo_many(session: &smt::Session, n: usize) {
    for i in 0..n {
        let payload = vec![i as u8; 1000 + i * 37];
        let got = tokio::time::timeout(Duration::from_secs(10), session.call(payload.clone()))
            .await
            .expect("call timed out")
            .expect("call");
        assert_eq!(got, payload, "call {i}");
    }
}

#[tokio::test]
async fn in_band_sessions_update_keys_with_the_rustls_secrets() {
    let id = support::identity(&["localhost"]);
    let server = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .server_config(support::server_config(&id))
        .transport_config(updating_config())
        .build()
        .unwrap();
    support::spawn_echo(server.clone());
    let client = Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .client_config(support::client_config(&id))
        .transport_config(updating_config())
        .build()
        .unwrap();
    let session = client.connect(server.local_addr(), "localhost").await.unwrap();
    echo_many(&session, 40).await;
    let (c, s) = (client.stats(), server.stats());
    assert!(c.key_updates_sent >= 10, "client updated {} times", c.key_updates_sent);
    assert!(s.key_updates_sent >= 10, "server updated {} times", s.key_updates_sent);
    assert_eq!(s.key_updates_received, c.key_updates_sent);
    assert_eq!(c.key_updates_received, s.key_updates_sent);
    assert_eq!((c.auth_failures, s.auth_failures), (0, 0));
}

#[tokio::test]
async fn installed_sessions_with_secrets_update_keys_and_without_them_stop_at_the_limit() {
    let secret = |b: u8| vec![b; 32];
    let suite = CipherSuite::Chacha20Poly1305Sha256;
    let pair = |with_secrets: bool, limit: Option<u64>| {
        let mut config = updating_config();
        config.key_usage_limit = limit;
        let key = |b| {
            let mut k = TrafficKey::from_secret(suite, &secret(b)).unwrap();
            if !with_secrets {
                k.secret = None;
            }
            k
        };
        let build = || {
            Endpoint::builder()
                .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .transport_config(config.clone())
                .build()
                .unwrap()
        };
        let (server, client) = (build(), build());
        let keys = |peer, role, tx, rx| SessionKeys {
            peer,
            session_id: 77,
            role,
            tx: key(tx),
            rx: key(rx),
        };
        server.install_session(keys(client.local_addr(), Role::Server, 2, 1)).unwrap();
        let session =
            client.install_session(keys(server.local_addr(), Role::Client, 1, 2)).unwrap();
        support::spawn_echo(server.clone());
        (client, server, session)
    };

    let (client, server, session) = pair(true, None);
    echo_many(&session, 30).await;
    assert!(client.stats().key_updates_sent >= 5);
    assert_eq!(server.stats().key_updates_received, client.stats().key_updates_sent);

    // Without secrets no update is possible: at the usage limit calls fail clearly.
    let (_client, _server, session) = pair(false, Some(5));
    echo_many(&session, 5).await;
    match session.call(vec![0u8; 10]).await {
        Err(smt::Error::KeyExhausted(5)) => {}
        other => panic!("expected KeyExhausted(5), got {other:?}"),
    }
}
