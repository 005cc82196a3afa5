//! Real TLS 1.3 handshakes (rustls, through `smt_proto::rustls`) over the simulated
//! network: under loss, duplication and reordering they complete and the session
//! carries RPCs; a refused certificate ends the session with the right typed alert.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{client_tls, connect, identity, identity_by, roots, server_tls, Identity};
use common::{closed, established};
use smt_proto::engine::{Alert, Config, RpcError, TlsError};
use smt_proto::rustls::client_config;
use smt_sim::{LinkConfig, Network};

#[test]
fn rustls_handshake_completes_under_loss_duplication_and_reordering_and_carries_rpcs() {
    let link = LinkConfig { loss: 0.1, duplicate: 0.05, reorder: 0.2, ..LinkConfig::default() };
    let (server_id, client_id) = (identity("server.test"), identity("client.test"));
    for seed in [1u64, 2, 3] {
        let mut net = Network::new(seed, link.clone());
        let client = net.add_host(Config::default());
        let server = net.add_host(Config::default());
        net.set_echo(server);
        net.endpoint(server).set_acceptor(Box::new(server_tls(&server_id, Some(&client_id))));
        let cs = connect(&mut net, client, server, client_tls(&server_id, Some(&client_id)));
        assert!(
            net.run_until(Duration::from_secs(20), |n| established(n, client, cs)),
            "seed {seed}: no session after {:?}",
            net.elapsed()
        );
        assert_eq!(
            net.endpoint_ref(client).peer_certificates(cs),
            Some(&[server_id.cert.as_ref().to_vec()][..])
        );
        let mut ids = Vec::new();
        for size in [0usize, 1, 1000, 20_000, 300_000] {
            ids.push((net.call(client, cs, &vec![size as u8; size]), size));
        }
        assert!(net.run_until(Duration::from_secs(60), |n| {
            common::responses(n, client).len() == ids.len()
        }));
        let responses = common::responses(&net, client);
        for (id, size) in ids {
            assert_eq!(responses[&id], vec![size as u8; size], "seed {seed}");
        }
        let stats = net.endpoint_ref(server).stats().clone();
        assert_eq!(stats.sessions_accepted, 1);
        assert_eq!(stats.handshakes_failed, 0);
        assert_eq!(stats.requests_delivered, 5);
    }
}

#[test]
fn untrusted_server_certificate_fails_the_client_with_unknown_ca_and_tells_the_server() {
    let server_id = identity("server.test");
    let impostor_ca = identity_by("server.test", "impostor CA");
    let mut net = Network::new(7, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    net.endpoint(server).set_acceptor(Box::new(server_tls(&server_id, None)));
    let cs = connect(&mut net, client, server, client_tls(&impostor_ca, None));
    assert!(net.run_until(Duration::from_secs(10), |n| closed(n, client, cs).is_some()));
    let Some(RpcError::Handshake(error)) = closed(&net, client, cs) else {
        panic!("{:?}", closed(&net, client, cs))
    };
    assert_eq!(error.alert(), Some(Alert::UnknownCa), "{error:?}");
    assert!(matches!(error, TlsError::Refused { .. }));
    assert!(!established(&net, client, cs));
    net.run_idle(Duration::from_secs(10));
    assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 1);
    assert_eq!(net.endpoint_ref(server).session_count(), 0);
}

#[test]
fn client_without_the_required_certificate_is_refused_with_certificate_required() {
    let (server_id, client_ca) = (identity("server.test"), identity("client.test"));
    let mut net = Network::new(8, LinkConfig::default());
    let client = net.add_host(Config::default());
    let server = net.add_host(Config::default());
    net.set_echo(server);
    net.endpoint(server).set_acceptor(Box::new(server_tls(&server_id, Some(&client_ca))));
    let cs = connect(&mut net, client, server, client_tls(&server_id, None));
    // TLS 1.3: the client completes first; the server's alert then ends the session.
    assert!(net.run_until(Duration::from_secs(10), |n| closed(n, client, cs).is_some()));
    assert_eq!(
        closed(&net, client, cs),
        Some(RpcError::Handshake(TlsError::AlertReceived(Alert::CertificateRequired)))
    );
    assert_eq!(net.endpoint_ref(server).stats().sessions_accepted, 0);
    assert_eq!(
        net.endpoint_ref(client).closed_reason(cs),
        closed(&net, client, cs).as_ref(),
        "the endpoint remembers why the session ended"
    );
}

/// A client offering only the hybrid post-quantum group, so the handshake succeeds
/// only if X25519MLKEM768 is negotiated.
fn post_quantum_only_client(trusted: &Identity) -> Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots(trusted))
        .with_no_client_auth();
    client_config(&config)
}

#[test]
fn post_quantum_client_hello_spans_datagrams_and_survives_losing_its_second_part() {
    use smt_proto::wire::{Body, PacketRepr};
    let link = LinkConfig { loss: 0.1, duplicate: 0.05, reorder: 0.2, ..LinkConfig::default() };
    let server_id = identity("server.test");
    for seed in [11u64, 12, 13] {
        let mut net = Network::new(seed, link.clone());
        let client = net.add_host(Config::default());
        let server = net.add_host(Config::default());
        net.set_echo(server);
        net.record_sends();
        // The first copy of every client HANDSHAKE datagram past offset 0 (the rest of
        // the ClientHello) is lost, on top of the link's random loss.
        let dropped = std::rc::Rc::new(std::cell::RefCell::new(std::collections::HashSet::new()));
        let dropped_once = dropped.clone();
        net.set_drop_filter(move |from, _to, bytes| {
            let Ok(PacketRepr { body: Body::Handshake(h), .. }) = PacketRepr::parse(bytes) else {
                return false;
            };
            from == client
                && h.stream_offset > 0
                && dropped_once.borrow_mut().insert(h.stream_offset)
        });
        net.endpoint(server).set_acceptor(Box::new(server_tls(&server_id, None)));
        let cs = connect(&mut net, client, server, post_quantum_only_client(&server_id));
        assert!(
            net.run_until(Duration::from_secs(20), |n| established(n, client, cs)),
            "seed {seed}: no session after {:?}",
            net.elapsed()
        );
        // The ClientHello (X25519MLKEM768 share: 1216 bytes) did not fit one datagram.
        let client_hello_end = net
            .sends()
            .iter()
            .filter(|s| s.from == client)
            .filter_map(|s| match PacketRepr::parse(&s.bytes).ok()?.body {
                Body::Handshake(h) => Some(h.stream_offset as usize + h.data.len()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        assert!(client_hello_end > 1300, "seed {seed}: client handshake bytes {client_hello_end}");
        assert!(!dropped.borrow().is_empty(), "seed {seed}: the filter dropped nothing");
        let id = net.call(client, cs, b"post-quantum ping");
        assert!(net.run_until(Duration::from_secs(20), |n| {
            common::responses(n, client).contains_key(&id)
        }));
        assert_eq!(common::responses(&net, client)[&id], b"post-quantum ping");
        assert_eq!(net.endpoint_ref(server).stats().handshakes_failed, 0);
    }
}

#[test]
fn a_first_call_waits_out_a_lost_client_finished_instead_of_timing_out() {
    // At 30 % handshake loss the red team saw a first call time out: the client had
    // finished its handshake, but its last flight was lost, so the server did not
    // have the session yet and dropped the request. The call must wait for the
    // handshake (bounded by handshake_timeout), not fail by its own timeout.
    use smt_proto::wire::{Body, PacketRepr};
    let server_id = identity("server.test");
    let mut config = Config::default();
    config.rpc_timeout = Duration::from_millis(40);
    let mut net = Network::new(21, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(config);
    net.set_echo(server);
    // The client's final flight (handshake bytes past its ClientHello at offset 0)
    // is lost six times: with backoff, about 190 ms, far beyond rpc_timeout.
    let lost = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let count = lost.clone();
    net.set_drop_filter(move |from, _to, bytes| {
        let Ok(PacketRepr { body: Body::Handshake(h), .. }) = PacketRepr::parse(bytes) else {
            return false;
        };
        let final_flight = from == client && h.stream_offset > 0 && !h.data.is_empty();
        if final_flight && count.get() < 6 {
            count.set(count.get() + 1);
            return true;
        }
        false
    });
    net.endpoint(server).set_acceptor(Box::new(server_tls(&server_id, None)));
    let classical = rustls::crypto::CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(classical))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots(&server_id))
        .with_no_client_auth();
    let cs = connect(&mut net, client, server, client_config(&tls));
    assert!(net.run_until(Duration::from_secs(5), |n| established(n, client, cs)));
    let id = net.call(client, cs, b"first call");
    assert!(net.run_until(net.elapsed() + Duration::from_secs(5), |n| {
        common::responses(n, client).contains_key(&id)
            || common::failures(n, client).iter().any(|(i, _)| *i == id)
    }));
    assert_eq!(common::failures(&net, client), vec![]);
    assert_eq!(lost.get(), 6, "the final flight was not lost as planned");
    assert_eq!(common::responses(&net, client)[&id], b"first call");
}
