//! A flood of spoofed ClientHellos against a real server on loopback (the simulator
//! versions are in `crates/smt-sim/tests/handshake_and_control.rs`, section 5b):
//! 3000 real rustls ClientHellos per second, each with a fresh session ID, from
//! addresses that never answer, while genuine clients connect. With address
//! validation the server answers the flood with stateless RETRYs and every genuine
//! client connects within a bounded time (PROTOCOL.md 8.4, 9.4).

mod support;

use std::time::{Duration, Instant};

use smt::{AddressValidation, TransportConfig};
use smt_proto::wire::HEADER_LEN;
use support::{client_config, identity, loopback_client, server_config, within};

const STEP: Duration = Duration::from_secs(10);
/// Spoofed ClientHellos per second, as in the red team's attack.
const FLOOD_RATE: u64 = 3000;
const FLOOD_FOR: Duration = Duration::from_secs(2);
/// Longest a genuine client may take to connect during the flood. Without address
/// validation the flood fills the 1024 handshake slots in a third of a second and
/// genuine ClientHellos are refused until spoofed handshakes expire (5 s).
const CONNECT_BOUND: Duration = Duration::from_secs(1);

/// The tests of this file run one at a time: each one's flood would slow the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The first datagram a real client sends: a padded HANDSHAKE with its ClientHello.
async fn real_client_hello(id: &support::Identity) -> Vec<u8> {
    let trap = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lure = loopback_client(client_config(id));
    let target = trap.local_addr().unwrap();
    let connecting = tokio::spawn(async move { lure.connect(target, "localhost").await });
    let mut buf = vec![0u8; 65536];
    let (n, _) = within(STEP, "ClientHello", trap.recv_from(&mut buf)).await.unwrap();
    connecting.abort();
    buf.truncate(n);
    buf
}

/// Sends `FLOOD_RATE` copies of `hello` per second, each under a new session ID,
/// from sockets on 127.0.0.2 to 127.0.0.9 that never read what comes back.
async fn flood(hello: Vec<u8>, server: std::net::SocketAddr) -> u64 {
    let mut sockets = Vec::new();
    for host in 2..10u8 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, host], 0));
        sockets.push(tokio::net::UdpSocket::bind(addr).await.unwrap());
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let (mut sent, mut datagram) = (0u64, hello);
    while started.elapsed() < FLOOD_FOR {
        tick.tick().await;
        let due = started.elapsed().as_micros() as u64 * FLOOD_RATE / 1_000_000;
        while sent < due {
            datagram[8..16].copy_from_slice(&(0x5000_0000_0000_0000 | sent).to_be_bytes());
            let socket = &sockets[(sent % sockets.len() as u64) as usize];
            let _ = socket.send_to(&datagram, server).await;
            sent += 1;
        }
    }
    sent
}

async fn genuine_clients_through_a_flood(
    validation: AddressValidation,
) -> (Vec<Duration>, smt::Stats) {
    let id = identity(&["localhost"]);
    let mut config = TransportConfig::default();
    config.address_validation = validation;
    let server = smt::Endpoint::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .server_config(server_config(&id))
        .transport_config(config)
        .build()
        .unwrap();
    support::spawn_echo(server.clone());
    let hello = real_client_hello(&id).await;
    assert!(hello.len() >= 1200 && hello.len() > HEADER_LEN + 12, "{} bytes", hello.len());
    let flooding = tokio::spawn(flood(hello, server.local_addr()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Six genuine clients, each its own endpoint, connect one after another.
    let mut connect_times = Vec::new();
    let mut clients = Vec::new();
    for i in 0..6u64 {
        let client = loopback_client(client_config(&id));
        let started = Instant::now();
        let connect = client.connect(server.local_addr(), "localhost");
        let Ok(Ok(session)) = tokio::time::timeout(CONNECT_BOUND, connect).await else {
            connect_times.push(CONNECT_BOUND);
            continue;
        };
        connect_times.push(started.elapsed());
        let request = support::pattern(64, i);
        let response = within(STEP, "call", session.call(request.clone())).await.unwrap();
        assert_eq!(response.as_ref(), &request[..]);
        clients.push(client);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = flooding.await.unwrap();
    assert!(sent >= FLOOD_RATE * FLOOD_FOR.as_secs() * 9 / 10, "only {sent} spoofed hellos sent");
    (connect_times, server.stats())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_clients_connect_through_3000_spoofed_client_hellos_per_second() {
    let _serial = SERIAL.lock().await;
    let validation = TransportConfig::default().address_validation;
    let (connect_times, stats) = genuine_clients_through_a_flood(validation).await;
    println!(
        "connect times {connect_times:?}; retries sent {}, refused {}, accepted {}",
        stats.retries_sent, stats.handshakes_refused, stats.sessions_accepted
    );
    assert!(connect_times.iter().all(|t| *t < CONNECT_BOUND), "{connect_times:?}");
    assert_eq!(stats.handshakes_refused, 0);
    assert!(stats.retries_sent >= 5000, "{} RETRYs", stats.retries_sent);
    assert_eq!(stats.sessions_accepted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_address_validation_the_same_flood_locks_genuine_clients_out() {
    let _serial = SERIAL.lock().await;
    let (connect_times, stats) = genuine_clients_through_a_flood(AddressValidation::Never).await;
    println!(
        "connect times {connect_times:?}; refused {}, accepted {}",
        stats.handshakes_refused, stats.sessions_accepted
    );
    // The attack the defence is for: the handshake table fills with spoofed
    // handshakes, which last 5 s, so the genuine clients that try while it is full
    // are refused.
    let locked_out = connect_times.iter().filter(|t| **t >= CONNECT_BOUND).count();
    assert!(locked_out >= 3, "{connect_times:?}");
    assert!(stats.handshakes_refused > 1000, "{} refused", stats.handshakes_refused);
    assert_eq!(stats.retries_sent, 0);
}
