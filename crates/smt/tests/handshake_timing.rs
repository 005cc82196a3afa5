//! The handshake's retransmission timer against a real server: a server's first
//! flight (key exchange, certificate signature) takes longer than a round trip, the
//! first one in a process much longer (lazy initialisation), and a client timer
//! shorter than that resends its ClientHello for nothing (PROTOCOL.md 8.3). Its own
//! file and process, so that the first handshake here is a cold one.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use smt_proto::wire::{Body, PacketRepr};
use support::{client_config, identity, loopback_client, loopback_server, server_config, within};
use support::{Direction, Relay};

const STEP: Duration = Duration::from_secs(10);

/// Client HANDSHAKE datagrams that carried TLS bytes the client had sent before.
fn client_retransmissions(captured: &support::Captured) -> usize {
    let mut seen: HashMap<(u64, u32), usize> = HashMap::new();
    for (direction, bytes) in captured {
        if *direction != Direction::ToServer {
            continue;
        }
        let Ok(packet) = PacketRepr::parse(bytes) else { continue };
        if let Body::Handshake(h) = packet.body {
            if !h.data.is_empty() {
                *seen.entry((packet.header.session_id, h.stream_offset)).or_default() += 1;
            }
        }
    }
    seen.values().map(|n| n - 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_with_a_fresh_server_send_no_client_bytes_twice() {
    let id = identity(&["localhost"]);
    let server = loopback_server(server_config(&id));
    support::spawn_echo(server.clone());
    let mut report = Vec::new();
    let mut retransmitted = 0;
    for round in 0..5 {
        let relay = Relay::start(server.local_addr()).await;
        let client = loopback_client(client_config(&id));
        let started = Instant::now();
        let session = within(STEP, "connect", client.connect(relay.addr, "localhost")).await;
        let took = started.elapsed();
        let session = session.expect("connect");
        within(STEP, "call", session.call(b"ping".to_vec())).await.expect("call");
        let captured = relay.captured.lock().unwrap().clone();
        let again = client_retransmissions(&captured);
        retransmitted += again;
        report
            .push(format!("round {round}: connected in {took:?}, {again} client retransmissions"));
    }
    println!("{}", report.join("\n"));
    assert_eq!(retransmitted, 0, "{report:#?}");
}
