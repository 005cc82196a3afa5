//! Header ports: the demultiplexer over native IP, informational over UDP, where
//! NAT and port mappings rewrite the UDP ports and the header no longer matches.

use std::net::SocketAddr;

use smt_proto::engine::{Endpoint, Event};
use smt_proto::record::CipherSuite;
use smt_proto::wire::PacketRepr;
use smt_sim::{LinkConfig, Network};

fn drain(endpoint: &mut Endpoint, now: std::time::Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    smt_sim::take_datagrams(endpoint, now, &mut Vec::new(), &mut out);
    out
}

/// A request whose header ports were rewritten on the way (as if the server were
/// published on port 30000 and the client's port translated to 5555): what the
/// server does with it, with and without the port check.
fn rewritten_request(check_ports: bool) -> (Network, Vec<(SocketAddr, Vec<u8>)>) {
    let mut net = Network::new(11, LinkConfig::default());
    let client = net.add_host(Default::default());
    let server = net.add_host(Default::default());
    let (session, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    net.endpoint(server).set_port_check(check_ports);
    let now = net.now();
    let from = net.addr(client);
    net.endpoint(client).call(now, session, b"through a port mapping").unwrap();
    let replies = {
        let datagrams = drain(net.endpoint(client), now);
        assert_eq!(datagrams.len(), 1);
        let server_ep = net.endpoint(server);
        for (_, mut bytes) in datagrams {
            bytes[0..2].copy_from_slice(&5555u16.to_be_bytes());
            bytes[2..4].copy_from_slice(&30000u16.to_be_bytes());
            server_ep.handle_datagram(now, from, &bytes);
        }
        let mut replies = Vec::new();
        while let Some(event) = server_ep.poll_event() {
            if let Event::Request { session, id, payload } = event {
                server_ep.respond(now, session, id, &payload).unwrap();
            }
        }
        replies.extend(drain(server_ep, now));
        replies
    };
    (net, replies)
}

#[test]
fn over_native_ip_a_packet_for_another_port_is_dropped() {
    let (net, replies) = rewritten_request(true);
    let stats = net.endpoint_ref(smt_sim::HostId(1)).stats();
    assert_eq!(stats.misdirected, 1);
    assert_eq!(stats.requests_delivered, 0);
    assert!(replies.is_empty());
}

#[test]
fn over_udp_rewritten_ports_are_ignored_and_the_reply_goes_where_the_packet_came_from() {
    let (net, replies) = rewritten_request(false);
    let stats = net.endpoint_ref(smt_sim::HostId(1)).stats();
    assert_eq!(stats.misdirected, 0);
    assert_eq!(stats.requests_delivered, 1);
    let client = net.addr(smt_sim::HostId(0));
    assert!(!replies.is_empty());
    for (to, bytes) in &replies {
        assert_eq!(*to, client, "replies go to the address the request came from");
        let packet = PacketRepr::parse(bytes).expect("valid reply");
        assert_eq!(packet.header.dst_port, client.port(), "destination port: where it goes");
        assert_eq!(packet.header.src_port, net.addr(smt_sim::HostId(1)).port());
    }
}
