//! Issue scenarios for the sans-IO engine, run on the simulated network. Each test
//! asserts exact outcomes: every response arrives exactly once and byte-identical,
//! limits hold, state is freed.

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{Event, RpcError, SessionHandle};
use smt_proto::record::CipherSuite;
use smt_proto::wire::{
    Body, DataRepr, Flags, GrantRepr, HeaderRepr, MessageId, PacketRepr, PacketType, ResendRepr,
};
use smt_sim::{HostId, LinkConfig, Network};

mod common;
use common::{failures, payload, quiet_config, responses};

#[test]
fn incast_of_16_one_mib_requests_completes_within_max_incoming() {
    let mut net = Network::new(21, LinkConfig::default());
    let config = quiet_config();
    let max_incoming = u64::from(config.max_incoming);
    let server = net.add_host(config.clone());
    net.set_responder(server, |req| req[..16].to_vec());
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut calls = Vec::new();
    for _ in 0..16 {
        let client = net.add_host(config.clone());
        let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
        let p = payload(&mut rng, 1 << 20);
        let id = net.call(client, cs, &p);
        calls.push((client, id, p));
    }
    let ok = net.run_until(Duration::from_secs(10), |n| {
        calls.iter().all(|(c, id, _)| responses(n, *c).contains_key(id))
    });
    assert!(ok, "incast did not complete");
    for (client, id, p) in &calls {
        assert_eq!(responses(&net, *client)[id], p[..16]);
    }
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, 16);
    let peak = net.max_granted_unreceived(server);
    assert!(peak <= max_incoming, "granted-but-unreceived peaked at {peak} > {max_incoming}");
    assert!(peak > 0, "the scheduler never granted anything");
}

#[test]
fn small_rpc_overtakes_a_16_mib_message_on_the_same_session() {
    let mut net = Network::new(31, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let rpc_time = |net: &mut Network, cs: SessionHandle| {
        let start = net.elapsed();
        let id = net.call(client, cs, &[7u8; 100]);
        assert!(net.run_until(Duration::from_secs(10), |n| responses(n, client).contains_key(&id)));
        let (t, _) = net
            .events(client)
            .iter()
            .find(|(_, e)| matches!(e, Event::Response { id: r, .. } if *r == id))
            .unwrap();
        *t - start
    };
    let idle_rtt = rpc_time(&mut net, cs);
    let big = net.call(client, cs, &vec![1u8; 16 << 20]);
    // Let the big message get well under way.
    let until = net.elapsed() + Duration::from_millis(1);
    net.run_until(Duration::from_secs(10), |n| n.elapsed() >= until);
    assert!(!responses(&net, client).contains_key(&big), "16 MiB finished too early");
    let loaded = rpc_time(&mut net, cs);
    assert!(!responses(&net, client).contains_key(&big), "16 MiB finished before the small RPC");
    println!("idle 100 B RTT {idle_rtt:?}, during 16 MiB transfer {loaded:?}");
    assert!(loaded <= idle_rtt * 3, "small RPC took {loaded:?}, idle RTT {idle_rtt:?}");
    assert!(net.run_until(Duration::from_secs(10), |n| responses(n, client).contains_key(&big)));
}

#[test]
fn replayed_datagrams_deliver_nothing_and_run_no_request_again() {
    let mut net = Network::new(41, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    net.capture();
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let mut ids = Vec::new();
    for size in [0, 10, 1500, 70_000, 300_000] {
        ids.push(net.call(client, cs, &payload(&mut rng, size)));
    }
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).len() == ids.len()));
    let settle = net.elapsed() + Duration::from_secs(3);
    net.run_idle(settle);
    let captured = net.take_captured();
    assert!(captured.len() > 50);
    let delivered = net.endpoint_ref(server).stats().requests_delivered;
    let events_before = (net.events(client).len(), net.events(server).len());
    // Replay everything, twice, in order and reversed.
    for round in 0..2 {
        let mut all = captured.clone();
        if round == 1 {
            all.reverse();
        }
        for c in all {
            net.inject(c.to, c.from, c.bytes);
        }
        let limit = net.elapsed() + Duration::from_secs(3);
        net.run_idle(limit);
    }
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, delivered);
    assert_eq!((net.events(client).len(), net.events(server).len()), events_before);
    assert!(net.endpoint_ref(server).stats().replays_rejected > 0);
    assert_eq!(net.endpoint_ref(server).memory_usage().rpcs, 0);
}

#[test]
fn forged_flood_stays_within_memory_bounds_and_delivers_nothing() {
    let config = quiet_config();
    let mut net = Network::new(51, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(config.clone());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    // One genuine RPC so the attacker can learn the session ID from the wire.
    let id = net.call(client, cs, b"hello");
    assert!(net.run_until(Duration::from_secs(1), |n| responses(n, client).contains_key(&id)));
    let (_, _, session_id) = net.endpoint_ref(client).session_info(cs).unwrap();
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let mut peak_bytes = 0;
    let mut peak_messages = 0;
    for i in 0..100_000u32 {
        let header = |t: PacketType, rng: &mut ChaCha8Rng| HeaderRepr {
            src_port: caddr.port(),
            dst_port: saddr.port(),
            packet_type: t,
            flags: Flags::FROM_INITIATOR,
            session_id,
            message_id: MessageId::new(rng.gen_range(1..1u64 << 48)).unwrap(),
        };
        let junk_len = rng.gen_range(1..1400);
        let junk = payload(&mut rng, junk_len);
        let packet = match i % 4 {
            0 | 1 => {
                let record_size = rng.gen_range(1..=16384u16);
                let len = rng.gen_range(junk.len() as u32..16 << 20);
                let offset = rng.gen_range(0..=len - junk.len() as u32);
                PacketRepr {
                    header: header(PacketType::Data, &mut rng),
                    body: Body::Data(DataRepr {
                        message_length: len,
                        offset,
                        unscheduled: rng.gen_range(0..=len),
                        record_size,
                        priority: 0,
                        payload: &junk,
                    }),
                }
            }
            2 => PacketRepr {
                header: header(PacketType::Grant, &mut rng),
                body: Body::Grant(GrantRepr { offset: rng.gen(), priority: 0 }),
            },
            _ => PacketRepr {
                header: header(PacketType::Resend, &mut rng),
                body: Body::Resend(ResendRepr { offset: 0, length: 1000, priority: 0 }),
            },
        };
        net.inject(server, caddr, packet.to_vec());
        if i % 1000 == 999 {
            while net.step() && net.elapsed() < Duration::from_millis(50) {}
            let m = net.endpoint_ref(server).memory_usage();
            peak_bytes = peak_bytes.max(m.incoming_bytes);
            peak_messages = peak_messages.max(m.incoming_messages);
        }
    }
    let limit = net.elapsed() + Duration::from_millis(100);
    net.run_until(limit, |n| n.elapsed() >= limit);
    let m = net.endpoint_ref(server).memory_usage();
    peak_bytes = peak_bytes.max(m.incoming_bytes);
    println!("forged flood: peak incoming {peak_bytes} B in {peak_messages} messages");
    assert!(peak_bytes <= config.max_incoming_bytes_per_session);
    assert!(peak_messages <= config.max_incoming_messages_per_session);
    let stats = net.endpoint_ref(server).stats().clone();
    assert_eq!(stats.requests_delivered, 1, "a forged request was delivered");
    assert!(stats.admission_refused > 0 || stats.malformed > 0);
    // Once the forged messages time out, memory returns to zero and service resumes.
    let limit = net.elapsed() + config.rpc_timeout * 2;
    net.run_until(limit, |n| n.elapsed() >= limit);
    assert_eq!(net.endpoint_ref(server).memory_usage().incoming_bytes, 0);
    let id = net.call(client, cs, b"after the flood");
    assert!(net.run_until(Duration::from_secs(60), |n| responses(n, client).contains_key(&id)));
}

#[test]
fn silent_peer_fails_rpcs_with_timeout_and_frees_all_state() {
    let config = quiet_config();
    let mut net = Network::new(61, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(config.clone());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    // Let requests reach the server, then cut the network in both directions.
    let mut ids = Vec::new();
    for size in [10, 100_000, 2 << 20] {
        ids.push(net.call(client, cs, &vec![3u8; size]));
    }
    let cut = net.elapsed() + Duration::from_micros(400);
    net.run_until(Duration::from_secs(1), |n| n.elapsed() >= cut);
    net.set_link(LinkConfig { loss: 1.0, ..LinkConfig::default() });
    net.run_idle(Duration::from_secs(30));
    let failed = failures(&net, client);
    let completed = responses(&net, client);
    assert_eq!(failed.len() + completed.len(), ids.len());
    assert!(!failed.is_empty());
    for (_, error) in &failed {
        assert_eq!(*error, RpcError::Timeout(config.rpc_timeout));
    }
    for host in [client, server] {
        let m = net.endpoint_ref(host).memory_usage();
        assert_eq!(
            (m.rpcs, m.incoming_bytes, m.outgoing_bytes, m.granted_unreceived),
            (0, 0, 0, 0)
        );
        assert_eq!(net.endpoint_ref(host).poll_timeout(), None, "timers still armed");
    }
}

#[test]
fn a_client_asking_for_its_response_does_not_silence_the_servers_resends() {
    // The client prods every 3 ms once its request is out; the server waits 5 ms of
    // silence before it asks for missing request bytes. The client's prods must not
    // count as the server hearing about the request, or the server never asks and
    // the RPC times out.
    let mut net = Network::new(62, LinkConfig::default());
    let with_resend_after = |ms| {
        let mut config = quiet_config();
        config.resend_after = Duration::from_millis(ms);
        config
    };
    let client = net.add_host(with_resend_after(3));
    let server = net.add_host(with_resend_after(5));
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    // Lose the second DATA packet of the 3-packet request, once.
    let dropped = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let count = dropped.clone();
    net.set_drop_filter(move |from, _, bytes| {
        let second = from == client
            && PacketRepr::parse(bytes).is_ok_and(|p| {
                matches!(p.body, Body::Data(DataRepr { offset, .. }) if offset > 0 && offset < 2000)
            });
        if second && count.get() == 0 {
            count.set(1);
            return true;
        }
        false
    });
    let request = vec![5u8; 3000];
    let start = net.elapsed();
    let id = net.call(client, cs, &request);
    let done = net.run_until(Duration::from_secs(5), |n| {
        responses(n, client).contains_key(&id) || !failures(n, client).is_empty()
    });
    assert!(done);
    assert_eq!(dropped.get(), 1, "the scenario did not unfold as planned");
    assert_eq!(failures(&net, client), vec![]);
    assert_eq!(responses(&net, client)[&id], request);
    let took = net.elapsed() - start;
    assert!(took < Duration::from_millis(50), "recovery took {took:?}");
    assert!(net.endpoint_ref(server).stats().resends_sent >= 1, "the server never asked");
}

#[test]
fn two_hundred_clients_with_twenty_concurrent_rpcs_each_complete() {
    let mut net = Network::new(71, LinkConfig::default());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let mut rng = ChaCha8Rng::seed_from_u64(71);
    let mut expected = Vec::new();
    for _ in 0..200 {
        let client = net.add_host(quiet_config());
        let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
        for _ in 0..20 {
            let len = rng.gen_range(0..8000);
            let p = payload(&mut rng, len);
            let id = net.call(client, cs, &p);
            expected.push((client, id, p));
        }
    }
    let ok = net.run_until(Duration::from_secs(30), |n| {
        n.endpoint_ref(server).stats().requests_delivered == 4000
            && (1..=200).all(|c| n.events(HostId(c)).len() == 20)
    });
    assert!(ok, "only {} requests delivered", net.endpoint_ref(server).stats().requests_delivered);
    let mut by_client: HashMap<HostId, HashMap<MessageId, Vec<u8>>> = HashMap::new();
    for c in 1..=200 {
        by_client.insert(HostId(c), responses(&net, HostId(c)));
    }
    for (client, id, p) in &expected {
        assert!(by_client[client][id] == *p);
    }
}

#[test]
fn same_seed_gives_the_same_trace_and_different_seeds_differ() {
    let run = |seed| {
        let link =
            LinkConfig { loss: 0.05, duplicate: 0.05, reorder: 0.2, ..LinkConfig::default() };
        let mut net = Network::new(seed, link);
        let client = net.add_host(quiet_config());
        let server = net.add_host(quiet_config());
        net.set_echo(server);
        let (cs, _) = net.connect(client, server, CipherSuite::Chacha20Poly1305Sha256);
        let mut ids = Vec::new();
        for size in [1, 5000, 200_000] {
            ids.push(net.call(client, cs, &vec![9u8; size]));
        }
        assert!(net.run_until(Duration::from_secs(10), |n| responses(n, client).len() == 3));
        net.trace_hash()
    };
    assert_eq!(run(81), run(81));
    assert_ne!(run(81), run(82));
}

#[test]
fn sessions_refuse_to_seal_past_the_key_usage_limit_while_an_update_is_unconfirmed() {
    // 10 records per key, update after 5. All calls are issued before any answer
    // returns, so the first update (after 5 records) cannot be confirmed and no second
    // one may follow: 5 + 10 one-record requests go out, the 16th is refused.
    let mut config = quiet_config();
    config.key_usage_limit = Some(10);
    config.key_update_after = Some(5);
    let mut net = Network::new(91, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let now = net.now();
    for i in 0..15u8 {
        net.endpoint(client).call(now, cs, &[i; 100]).expect("within the limit");
    }
    assert_eq!(
        net.endpoint(client).call(now, cs, &[0; 100]),
        Err(smt_proto::engine::CallError::KeyExhausted(10))
    );
    net.pump_host(client);
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).len() == 15));
    assert_eq!(net.endpoint_ref(client).stats().key_updates_sent, 1);
    assert_eq!(net.endpoint_ref(server).stats().key_updates_received, 1);
    // Once answers confirmed the update, the client may update again and go on.
    let id = net.call(client, cs, b"after confirmation");
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).contains_key(&id)));
    assert_eq!(net.endpoint_ref(client).stats().key_updates_sent, 2);
}

#[test]
fn keys_update_many_times_under_loss_and_reordering_without_losing_a_message() {
    // A new key every 5 records: 300 RPCs (2 to 7 records each way) force dozens of
    // updates in both directions, while loss, duplication and reordering keep
    // messages of the old and new key in flight together.
    let mut config = quiet_config();
    config.key_update_after = Some(5);
    config.record_size = 4096;
    let link = LinkConfig { loss: 0.05, duplicate: 0.05, reorder: 0.3, ..LinkConfig::default() };
    let mut net = Network::new(101, link);
    let client = net.add_host(config.clone());
    let server = net.add_host(config);
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes256GcmSha384);
    let mut rng = ChaCha8Rng::seed_from_u64(101);
    let mut sent = HashMap::new();
    // Waves of 10 calls: an update waits until the peer confirmed the previous one
    // (answered a message sealed with it), so waves let both sides update often.
    for wave in 1..=30 {
        for _ in 0..10 {
            let len = rng.gen_range(0..25_000);
            let p = payload(&mut rng, len);
            sent.insert(net.call(client, cs, &p), p);
        }
        assert!(net.run_until(Duration::from_secs(60), |n| responses(n, client).len() == wave * 10));
    }
    let got = responses(&net, client);
    for (id, p) in &sent {
        assert!(got[id] == *p, "response {id} differs");
    }
    let (c, s) =
        (net.endpoint_ref(client).stats().clone(), net.endpoint_ref(server).stats().clone());
    println!(
        "key updates: client sent {} received {}, server sent {} received {}",
        c.key_updates_sent, c.key_updates_received, s.key_updates_sent, s.key_updates_received
    );
    assert!(c.key_updates_sent >= 10 && s.key_updates_sent >= 10, "{c:?} {s:?}");
    // Every update one side made, the other side followed.
    assert_eq!(s.key_updates_received, c.key_updates_sent);
    assert_eq!(c.key_updates_received, s.key_updates_sent);
    assert_eq!((c.auth_failures, s.auth_failures), (0, 0));
    assert_eq!(s.requests_delivered, 300);
}

#[test]
fn requests_waiting_for_the_application_count_against_the_memory_limits() {
    // The server's application is slow: it answers what it holds only every 20 ms.
    // Delivered requests stay charged until answered, so with a 64 KiB per-session
    // budget the server holds at most ~48 requests of 1000 B; the rest are refused
    // (the client retries after RPC_UNKNOWN) instead of queueing without bound, and
    // in the end every request is answered exactly once.
    let mut net = Network::new(97, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let mut config = quiet_config();
    config.max_incoming_bytes_per_session = 64 * 1024;
    let server = net.add_host(config.clone());
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let mut expected = HashMap::new();
    for i in 0..200u32 {
        let request = [i.to_be_bytes().as_slice(), &[0u8; 996]].concat();
        expected.insert(net.call(client, cs, &request), request);
    }
    let mut peak_queued = 0;
    let mut answered = 0;
    for _ in 0..500 {
        let until = net.elapsed() + Duration::from_millis(20);
        net.advance_to(until);
        let usage = net.endpoint_ref(server).memory_usage();
        peak_queued = peak_queued.max(usage.queued_request_bytes + usage.incoming_bytes);
        let now = net.now();
        for (_, event) in net.take_events(server) {
            if let Event::Request { session, id, payload } = event {
                net.endpoint(server).respond(now, session, id, &payload).expect("respond");
                answered += 1;
            }
        }
        net.pump_host(server);
        if responses(&net, client).len() == expected.len() {
            break;
        }
    }
    let got = responses(&net, client);
    assert!(failures(&net, client).is_empty(), "{:?}", failures(&net, client));
    assert_eq!(got.len(), 200);
    for (id, request) in &expected {
        assert_eq!(&got[id], request);
    }
    assert_eq!(answered, 200, "each request ran exactly once");
    let stats = net.endpoint_ref(server).stats();
    assert!(stats.admission_refused > 0, "the budget never filled: the test tests nothing");
    assert!(
        peak_queued <= config.max_incoming_bytes_per_session,
        "held {peak_queued} B of requests with a budget of {} B",
        config.max_incoming_bytes_per_session
    );
}

#[test]
fn small_messages_share_datagrams_and_an_ack_rides_with_the_next_request() {
    let mut net = Network::new(98, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    // 32 requests of 100 B issued together: a few datagrams, not 32.
    let now = net.now();
    let ids: Vec<_> =
        (0..32u8).map(|i| net.endpoint(client).call(now, cs, &[i; 100]).expect("call")).collect();
    net.pump_host(client);
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).len() == 32));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(responses(&net, client)[id], vec![i as u8; 100]);
    }
    let sent = net.endpoint_ref(client).stats().datagrams_sent;
    assert!(sent <= 6, "32 small requests took {sent} datagrams");
    assert!(net.endpoint_ref(server).stats().datagrams_sent <= 6);
    assert!(net.endpoint_ref(client).stats().packets_bundled >= 26);
    // A ping-pong: each request carries the ACK of the previous response, so the
    // client sends one datagram per RPC.
    net.run_idle(net.elapsed() + Duration::from_millis(50));
    let before = net.endpoint_ref(client).stats().datagrams_sent;
    for i in 0..20u8 {
        let id = net.call(client, cs, &[i; 64]);
        assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).contains_key(&id)));
    }
    let per_rpc = net.endpoint_ref(client).stats().datagrams_sent - before;
    assert_eq!(per_rpc, 20, "the client sent {per_rpc} datagrams for 20 ping-pong RPCs");
}

#[test]
fn a_bundle_with_a_handshake_or_a_bad_length_is_dropped_from_there_on() {
    use smt_proto::wire::{mark_bundled, HandshakeRepr};
    let mut net = Network::new(99, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let id = net.call(client, cs, b"hello");
    assert!(net.run_until(Duration::from_secs(1), |n| n
        .endpoint_ref(server)
        .stats()
        .requests_delivered
        == 1));
    let header = |packet_type| HeaderRepr {
        src_port: 4433,
        dst_port: 4433,
        packet_type,
        flags: Flags::FROM_INITIATOR,
        session_id: 1,
        message_id: MessageId::default(),
    };
    // A bundle of a CLOSE for an unknown session and a HANDSHAKE: the handshake
    // is dropped as malformed, whatever it says.
    let mut bytes = PacketRepr { header: header(PacketType::Close), body: Body::Close }.to_vec();
    mark_bundled(&mut bytes);
    let hs = HandshakeRepr {
        stream_offset: 0,
        acknowledged: 0,
        data: &[1; 1300],
        token: &[],
        padding_len: 0,
    };
    bytes.extend(
        PacketRepr { header: header(PacketType::Handshake), body: Body::Handshake(hs) }.to_vec(),
    );
    let malformed = net.endpoint_ref(server).stats().malformed;
    net.inject(server, net.addr(client), bytes);
    net.run_idle(net.elapsed() + Duration::from_millis(10));
    assert_eq!(net.endpoint_ref(server).stats().malformed, malformed + 1);
    assert_eq!(net.endpoint_ref(server).pending_handshakes(), 0, "no handshake from a bundle");
    // A bundle whose first packet claims more bytes than the datagram has.
    let mut bytes = PacketRepr { header: header(PacketType::Close), body: Body::Close }.to_vec();
    mark_bundled(&mut bytes);
    bytes[16..18].copy_from_slice(&500u16.to_be_bytes());
    bytes.extend_from_slice(&[0; 30]);
    net.inject(server, net.addr(client), bytes);
    net.run_idle(net.elapsed() + Duration::from_millis(10));
    assert_eq!(net.endpoint_ref(server).stats().malformed, malformed + 2);
    // The real session is untouched: its response arrives.
    net.set_echo(server);
    let _ = id;
    let id2 = net.call(client, cs, b"again");
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).contains_key(&id2)));
}

#[test]
fn a_response_packet_with_an_implausible_length_is_dropped_without_failing_the_call() {
    // The red team's single flipped bit in a response's Message Length failed the
    // call at once ("message of 536151048 bytes exceeds the maximum"). The length is
    // not authenticated before the first record opens: the packet must be dropped.
    let mut net = Network::new(71, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let (_, _, session_id) = net.endpoint_ref(client).session_info(cs).unwrap();
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    let malformed_before = net.endpoint_ref(client).stats().malformed;
    let id = net.call(client, cs, b"ping");
    let forged = PacketRepr {
        header: HeaderRepr {
            src_port: saddr.port(),
            dst_port: caddr.port(),
            packet_type: PacketType::Data,
            flags: Flags::empty(),
            session_id,
            message_id: id,
        },
        body: Body::Data(DataRepr {
            message_length: 536_151_048,
            offset: 0,
            unscheduled: 1400,
            record_size: 16384,
            priority: 0,
            payload: &[0x17; 64],
        }),
    }
    .to_vec();
    // Arrives before the server's real response.
    net.inject(client, saddr, forged);
    assert!(net.run_until(Duration::from_secs(1), |n| responses(n, client).contains_key(&id)));
    assert_eq!(responses(&net, client)[&id], b"ping");
    assert!(failures(&net, client).is_empty(), "{:?}", failures(&net, client));
    assert_eq!(net.endpoint_ref(client).stats().malformed, malformed_before + 1);
}

#[test]
fn a_request_with_a_message_id_the_client_never_used_is_freed_on_its_rpc_unknown() {
    // The red team flipped a bit of a request's message ID: the server began a
    // request no client holds and asked for the missing bytes every few
    // milliseconds, forever, while the client answered RPC_UNKNOWN each time.
    let mut net = Network::new(72, LinkConfig::default());
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let (_, _, session_id) = net.endpoint_ref(client).session_info(cs).unwrap();
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    let forged = PacketRepr {
        header: HeaderRepr {
            src_port: caddr.port(),
            dst_port: saddr.port(),
            packet_type: PacketType::Data,
            flags: Flags::FROM_INITIATOR,
            session_id,
            message_id: MessageId::new(0x0000_4000_0000_0001).unwrap(),
        },
        body: Body::Data(DataRepr {
            message_length: 10_000,
            offset: 0,
            unscheduled: 10_000,
            record_size: 16384,
            priority: 0,
            payload: &[0x17; 1000],
        }),
    }
    .to_vec();
    let resends_before = net.endpoint_ref(server).stats().resends_sent;
    net.inject(server, caddr, forged);
    let start = net.elapsed();
    net.run_until(start + Duration::from_millis(1), |_| false);
    assert_eq!(net.endpoint_ref(server).memory_usage().rpcs, 1, "the bogus request began");
    // Within a few of the server's resend intervals the client's RPC_UNKNOWN ends it.
    net.run_until(start + Duration::from_millis(200), |_| false);
    assert_eq!(net.endpoint_ref(server).memory_usage().rpcs, 0, "the bogus request is freed");
    let resends = net.endpoint_ref(server).stats().resends_sent - resends_before;
    assert!(resends <= 2, "{resends} RESENDs for a request no client holds");
    // The session still works.
    let id = net.call(client, cs, b"after");
    let deadline = net.elapsed() + Duration::from_secs(1);
    assert!(net.run_until(deadline, |n| responses(n, client).contains_key(&id)));
}

#[test]
fn forged_control_packets_for_a_queued_call_neither_send_it_early_nor_count_as_answers() {
    // A call waiting for its session's unscheduled window was never sent: the
    // server cannot know of it. An attacker who names its ID in GRANT, BUSY,
    // RESEND or RPC_UNKNOWN must not make it go out beyond the window, nor free
    // window room for later calls.
    let mut config = quiet_config();
    config.max_unscheduled_in_flight = 0; // one call in flight at a time
    let mut net = Network::new(72, LinkConfig::default());
    let client = net.add_host(config);
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    let (_, _, session_id) = net.endpoint_ref(client).session_info(cs).unwrap();
    let (caddr, saddr) = (net.addr(client), net.addr(server));
    // Hold back everything the client sends while the forgeries arrive.
    net.set_drop_filter(move |from, _, _| from == client);
    net.record_sends();
    let first = net.call(client, cs, b"first");
    let queued = net.call(client, cs, b"queued");
    let third = net.call(client, cs, b"third");
    assert_eq!(net.endpoint_ref(client).stats().calls_queued, 2);
    let bodies = [
        Body::Grant(GrantRepr { offset: 1 << 20, priority: 0 }),
        Body::Busy,
        Body::Resend(ResendRepr { offset: 0, length: 1 << 20, priority: 0 }),
        Body::RpcUnknown,
    ];
    for body in bodies {
        let header = HeaderRepr {
            src_port: saddr.port(),
            dst_port: caddr.port(),
            packet_type: body.packet_type(),
            flags: Flags::empty(),
            session_id,
            message_id: queued,
        };
        net.inject(client, saddr, PacketRepr { header, body }.to_vec());
    }
    net.advance_to(net.elapsed() + Duration::from_millis(1));
    let data_ids: Vec<MessageId> = net
        .sends()
        .iter()
        .filter(|s| s.from == client)
        .filter_map(|s| PacketRepr::parse(&s.bytes).ok())
        .filter(|p| p.header.packet_type == PacketType::Data)
        .map(|p| p.header.message_id)
        .collect();
    assert!(data_ids.contains(&first), "the first call went out");
    assert!(data_ids.iter().all(|id| *id == first), "sent beyond the window: {data_ids:?}");
    // Once the path works, all three complete, in turn.
    net.clear_drop_filter();
    assert!(net.run_until(Duration::from_secs(5), |n| responses(n, client).len() == 3));
    let got = responses(&net, client);
    assert_eq!(
        (&got[&first][..], &got[&queued][..], &got[&third][..]),
        (&b"first"[..], &b"queued"[..], &b"third"[..])
    );
    assert!(failures(&net, client).is_empty(), "{:?}", failures(&net, client));
}
