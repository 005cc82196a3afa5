//! Thousands of calls in flight on one session: answers that take long because
//! many are queued ahead of them, and a short outage while they wait, cost a
//! bounded number of RESENDs and no failure.

mod common;

use std::time::Duration;

use common::{failures, payload, quiet_config, responses};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{RpcError, SessionHandle};
use smt_proto::record::CipherSuite;
use smt_proto::wire::MessageId;
use smt_sim::{HostId, LinkConfig, Network};

const CALLS: usize = 10_000;

/// A client and an echo server over a 100 Mbit/s link: 10 000 small requests take
/// about 0.1 s to cross it, so the last answer comes that long after the first
/// without anything being lost (at 3 ms per RESEND interval, ~40 intervals).
fn slow_pair(seed: u64) -> (Network, HostId, HostId, SessionHandle) {
    pair(seed, LinkConfig { bandwidth_bps: 100_000_000, ..LinkConfig::default() })
}

/// A client with a session to an echo server over `link`.
fn pair(seed: u64, link: LinkConfig) -> (Network, HostId, HostId, SessionHandle) {
    let mut net = Network::new(seed, link);
    let client = net.add_host(quiet_config());
    let server = net.add_host(quiet_config());
    net.set_echo(server);
    let (cs, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    (net, client, server, cs)
}

/// Responses the client delivered so far (cheap enough to test after every step).
fn delivered(net: &Network, client: HostId) -> usize {
    net.endpoint_ref(client).stats().responses_delivered as usize
}

fn make_calls(
    net: &mut Network,
    client: HostId,
    session: SessionHandle,
) -> Vec<(MessageId, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..CALLS)
        .map(|_| {
            let request = payload(&mut rng, 64);
            (net.call(client, session, &request), request)
        })
        .collect()
}

fn assert_all_answered(
    net: &Network,
    client: HostId,
    server: HostId,
    calls: &[(MessageId, Vec<u8>)],
) {
    assert!(failures(net, client).is_empty(), "{:?}", &failures(net, client)[..1]);
    let got = responses(net, client);
    assert_eq!(got.len(), calls.len());
    for (id, request) in calls {
        assert!(got[id] == *request, "response {id} differs from its request");
    }
    assert_eq!(
        net.endpoint_ref(server).stats().requests_delivered,
        CALLS as u64,
        "each request once"
    );
}

#[test]
fn ten_thousand_calls_queued_behind_each_other_ask_for_almost_no_resends() {
    let (mut net, client, server, cs) = slow_pair(1);
    let calls = make_calls(&mut net, client, cs);
    let limit = net.elapsed() + Duration::from_secs(10);
    assert!(net.run_until(limit, |n| delivered(n, client) == CALLS), "calls unanswered");
    let took = net.elapsed();
    assert_all_answered(&net, client, server, &calls);
    let resends = net.endpoint_ref(client).stats().resends_sent;
    println!("{CALLS} calls in flight over 100 Mbit/s: {took:?}, {resends} RESENDs");
    // Each call waits for the answers due before it (measured: none); asking every
    // resend interval instead would cost tens of thousands.
    assert!(resends <= CALLS as u64 / 100, "{resends} RESENDs for {CALLS} calls");
    // The server backs off its NEED_ACKs while the ACKs queue behind requests
    // (measured: 6.9 datagrams per call; 69 with a NEED_ACK every resend interval).
    let server_sent = net.endpoint_ref(server).stats().datagrams_sent;
    assert!(server_sent <= 10 * CALLS as u64, "server sent {server_sent} datagrams");
}

#[test]
fn an_outage_under_a_thousand_waiting_calls_draws_a_bounded_number_of_resends() {
    const WAITING: usize = 1000;
    let (mut net, client, server, cs) = pair(2, LinkConfig::default());
    // The path goes dark for 30 ms (10 RESEND intervals) just as 1000 calls are
    // made: every request is lost, and the session hears nothing while each call
    // would ask for its response every interval.
    let outage = Duration::from_millis(30);
    net.set_drop_filter(|_, _, _| true);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let calls: Vec<_> = (0..WAITING)
        .map(|_| {
            let request = payload(&mut rng, 64);
            (net.call(client, cs, &request), request)
        })
        .collect();
    let until = net.elapsed() + outage;
    net.advance_to(until);
    net.clear_drop_filter();
    let during = net.endpoint_ref(client).stats().resends_sent;
    let limit = net.elapsed() + Duration::from_secs(10);
    assert!(net.run_until(limit, |n| delivered(n, client) == WAITING), "calls unanswered");
    assert!(failures(&net, client).is_empty(), "{:?}", &failures(&net, client)[..1]);
    let got = responses(&net, client);
    for (id, request) in &calls {
        assert!(got[id] == *request, "response {id} differs from its request");
    }
    assert_eq!(net.endpoint_ref(server).stats().requests_delivered, WAITING as u64);
    let resends = net.endpoint_ref(client).stats().resends_sent;
    println!("30 ms outage under {WAITING} calls: {during} RESENDs during it, {resends} in all");
    // A quiet session lets 16 calls ask per silence (measured: 160 in 30 ms;
    // 10 000 when every call asks every interval).
    assert!(during <= 16 * 11, "{during} RESENDs while the session heard nothing");
    // Afterwards each call whose request was lost asks once to learn so (RPC_UNKNOWN)
    // and restarts; a few ask twice.
    assert!(resends <= during + 2 * WAITING as u64, "{resends} RESENDs in all");
}

#[test]
fn ten_thousand_4kib_calls_go_out_a_window_at_a_time_without_asking_for_answers_on_their_way() {
    let link = LinkConfig { bandwidth_bps: 1_000_000_000, ..LinkConfig::default() };
    let (mut net, client, server, cs) = pair(4, link);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let request = payload(&mut rng, 4096);
            (net.call(client, cs, &request), request)
        })
        .collect();
    let limit = net.elapsed() + Duration::from_secs(5);
    let done = net.run_until(limit, |n| delivered(n, client) == CALLS);
    assert!(done, "calls unanswered: {:?}", net.endpoint_ref(client).stats());
    assert_all_answered(&net, client, server, &calls);
    let stats = net.endpoint_ref(client).stats();
    println!(
        "{CALLS} calls of 4 KiB over 1 Gbit/s: {:?}, {} queued, {} RESENDs",
        net.elapsed(),
        stats.calls_queued,
        stats.resends_sent
    );
    assert!(stats.calls_queued > 9000, "only {} calls waited", stats.calls_queued);
    assert!(stats.resends_sent <= CALLS as u64 / 100, "{} RESENDs", stats.resends_sent);
}

#[test]
fn calls_queued_behind_a_silent_server_fail_with_the_first_timeout_not_a_window_at_a_time() {
    let (mut net, client, server, cs) = pair(5, LinkConfig::default());
    // The server goes away: nothing it would send arrives any more.
    net.set_drop_filter(move |from, _, _| from == server);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..CALLS {
        net.call(client, cs, &payload(&mut rng, 4096));
    }
    let queued = net.endpoint_ref(client).stats().calls_queued;
    assert!(queued > 9000, "only {queued} calls waited for the window");
    let limit = net.elapsed() + Duration::from_secs(60);
    assert!(net.run_until(limit, |n| failures(n, client).len() == CALLS), "calls still pending");
    // One RPC timeout (2 s) for all of them; a window at a time would take 20.
    assert!(net.elapsed() < Duration::from_secs(3), "took {:?}", net.elapsed());
    for (_, error) in failures(&net, client) {
        assert!(matches!(error, RpcError::Timeout(_)), "{error:?}");
    }
}
