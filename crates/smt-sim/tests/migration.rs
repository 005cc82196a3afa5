//! NAT rebinding over the simulated network: a server session follows its client to
//! a new address once a packet from there carries new, authenticated data; replays
//! and forgeries from a third address, and control packets, leave it where it is.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{payload, responses};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{Config, Role, SessionHandle};
use smt_proto::record::CipherSuite;
use smt_proto::wire::{Body, DataRepr, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};
use smt_sim::{HostId, LinkConfig, Network};

/// Where the client's NAT maps it after the rebinding.
fn new_address() -> SocketAddr {
    "127.99.0.1:31000".parse().unwrap()
}

/// A third party's address.
fn attacker() -> SocketAddr {
    "127.66.0.1:4433".parse().unwrap()
}

/// A client and an echo server with a session between them, ports not checked
/// (UDP mode: the rebinding changes the client's port).
fn pair(seed: u64) -> (Network, HostId, HostId, SessionHandle, SessionHandle) {
    let mut net = Network::new(seed, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    for host in [client, server] {
        net.endpoint(host).set_port_check(false);
    }
    net.set_echo(server);
    let (cs, ss) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    (net, client, server, cs, ss)
}

/// Makes `count` ping-pong calls of `size` bytes, checking each response.
fn ping_pong(net: &mut Network, client: HostId, session: SessionHandle, count: usize, size: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(count as u64);
    for _ in 0..count {
        let request = payload(&mut rng, size);
        let id = net.call(client, session, &request);
        let limit = net.elapsed() + Duration::from_secs(3);
        assert!(net.run_until(limit, |n| responses(n, client).contains_key(&id)), "call {id} lost");
        assert_eq!(responses(net, client)[&id], request);
    }
}

fn server_peer(net: &Network, server: HostId, session: SessionHandle) -> SocketAddr {
    let (peer, role, _) = net.endpoint_ref(server).session_info(session).expect("live session");
    assert_eq!(role, Role::Server);
    peer
}

#[test]
fn a_session_follows_its_client_to_a_new_address_on_its_next_request() {
    let (mut net, client, server, cs, ss) = pair(1);
    let old = net.addr(client);
    ping_pong(&mut net, client, cs, 5, 64);
    net.rebind(client, new_address());
    ping_pong(&mut net, client, cs, 20, 64);
    ping_pong(&mut net, client, cs, 3, 200_000);
    assert_eq!(server_peer(&net, server, ss), new_address());
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!(stats.address_changes, 1);
    assert_eq!(stats.requests_delivered, 28, "every request exactly once");
    assert_ne!(old, new_address());
}

#[test]
fn calls_in_flight_across_a_rebinding_complete_each_exactly_once() {
    let (mut net, client, server, cs, ss) = pair(2);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut sent = Vec::new();
    for size in [64, 1_000, 30_000, 150_000, 600_000, 64, 2_000_000, 10] {
        let request = payload(&mut rng, size);
        sent.push((net.call(client, cs, &request), request));
    }
    // Rebind while the large requests are still crossing.
    net.advance_to(net.elapsed() + Duration::from_micros(300));
    assert!(responses(&net, client).len() < sent.len());
    net.rebind(client, new_address());
    // The client's next request proves the new address; everything in flight then
    // recovers through the ordinary RESEND machinery.
    let request = payload(&mut rng, 64);
    sent.push((net.call(client, cs, &request), request));
    let limit = net.elapsed() + Duration::from_secs(10);
    assert!(net.run_until(limit, |n| responses(n, client).len() == sent.len()), "calls lost");
    let got = responses(&net, client);
    for (id, request) in &sent {
        assert_eq!(&got[id], request, "response {id}");
    }
    assert_eq!(server_peer(&net, server, ss), new_address());
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, sent.len() as u64);
    assert!(common::failures(&net, client).is_empty());
}

#[test]
fn replayed_datagrams_from_a_third_address_leave_the_session_where_it_is() {
    let (mut net, client, server, cs, ss) = pair(3);
    net.capture();
    ping_pong(&mut net, client, cs, 5, 64);
    ping_pong(&mut net, client, cs, 2, 100_000);
    let to_server: Vec<_> =
        net.take_captured().into_iter().filter(|c| c.to == server).map(|c| c.bytes).collect();
    assert!(to_server.len() > 20);
    let delivered = net.endpoint_ref(server).stats().requests_delivered;
    // Everything the client ever sent, replayed from a third address, twice.
    for _ in 0..2 {
        for bytes in &to_server {
            net.inject(server, attacker(), bytes.clone());
        }
        net.advance_to(net.elapsed() + Duration::from_secs(1));
    }
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!(stats.address_changes, 0);
    assert!(stats.address_changes_refused >= to_server.len() as u64, "{stats:?}");
    assert_eq!(stats.requests_delivered, delivered, "a replay ran a request again");
    assert_eq!(server_peer(&net, server, ss), net.addr(client));
    // Nothing was sent to the third address, and the genuine client goes on.
    ping_pong(&mut net, client, cs, 3, 64);
}

/// A DATA packet holding a whole one-record message of `len` bytes with garbage
/// for its record, as a forger without the key would build it.
fn forged_data(session_id: u64, id: u64, len: u32) -> Vec<u8> {
    let garbage = vec![0xA5; len as usize + 8 + 5 + 17];
    let header = HeaderRepr {
        src_port: 4433,
        dst_port: 4433,
        packet_type: PacketType::Data,
        flags: Flags::FROM_INITIATOR,
        session_id,
        message_id: MessageId::new(id).unwrap(),
    };
    let data = DataRepr {
        message_length: garbage.len() as u32,
        offset: 0,
        record_size: 16_384,
        unscheduled: garbage.len() as u32,
        priority: 0,
        payload: &garbage,
    };
    PacketRepr { header, body: Body::Data(data) }.to_vec()
}

#[test]
fn forged_data_and_control_packets_from_a_third_address_leave_the_session_where_it_is() {
    let (mut net, client, server, cs, ss) = pair(4);
    ping_pong(&mut net, client, cs, 2, 64);
    let (_, _, session_id) = net.endpoint_ref(server).session_info(ss).unwrap();
    for id in 100..140 {
        net.inject(server, attacker(), forged_data(session_id, id, 64));
    }
    net.advance_to(net.elapsed() + Duration::from_millis(100));
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!(stats.address_changes, 0);
    assert!(stats.auth_failures + stats.malformed >= 40, "{stats:?}");
    assert_eq!(server_peer(&net, server, ss), net.addr(client));
    ping_pong(&mut net, client, cs, 2, 64);
}
