//! Timer cost: an RPC that needs no timer (a request the application is still
//! answering) is looked at once, at the end of the silence its timer was armed for,
//! and never again, so afterwards `handle_timeout` does the same work with 100 000
//! idle RPCs in flight as with none. The engine counts every timer it
//! looks at (`Stats::timers_fired`), which makes the claim exact rather than timed;
//! `cargo bench -p smt-proto --bench timers` measures the time as well.

#[path = "support/pair.rs"]
mod pair;

use std::time::Duration;

use pair::Pair;
use smt_proto::engine::Config;

/// The default configuration without the idle timeout: each session's lazy idle
/// timer (one per session, `lifecycle.rs`) would add to the counts of RPC timers
/// these tests make exact.
fn config() -> Config {
    let mut config = Config::default();
    config.idle_timeout = None;
    config
}

/// Requests per session (below the replay window's limit on outstanding IDs).
const PER_SESSION: usize = 50_000;

/// A server holding `idle` requests in service and `active` responses sent and not
/// acknowledged (the client went silent), and the time it was built.
fn server_with(idle: usize, active: usize) -> Pair {
    let mut pair = Pair::new(config());
    let total = idle + active;
    let mut delivered = Vec::with_capacity(total);
    while delivered.len() < total {
        let (client, _) = pair.connect();
        let n = PER_SESSION.min(total - delivered.len());
        for i in 0..n {
            pair.client.call(pair.now, client, &(i as u64).to_be_bytes()).expect("call");
            if i % 1000 == 999 {
                pair.deliver_all();
            }
        }
        pair.deliver_all();
        delivered.extend(pair.server_requests());
    }
    assert_eq!(delivered.len(), total);
    for &(session, id) in &delivered[..active] {
        pair.server.respond(pair.now, session, id, b"answer").expect("respond");
    }
    // The client never hears the responses, so it never acknowledges them.
    pair.drop_server_output();
    pair
}

/// Timers the server runs over `rounds` silences of 4 ms (past `resend_after`).
fn timers_fired(pair: &mut Pair, rounds: usize) -> u64 {
    let before = pair.server.stats().timers_fired;
    for _ in 0..rounds {
        pair.advance(Duration::from_millis(4));
        pair.server.handle_timeout(pair.now);
        pair.drop_server_output();
    }
    pair.server.stats().timers_fired - before
}

#[test]
fn timer_work_is_independent_of_the_number_of_idle_rpcs() {
    let active = 10;
    let mut few = server_with(0, active);
    let mut many = server_with(100_000, active);
    assert_eq!(many.server.memory_usage().rpcs, 100_000 + active);
    // The first silence: every RPC armed while its request arrived is looked at
    // once; those in service find nothing to do and keep no timer.
    let settled = timers_fired(&mut many, 1);
    assert!(settled <= 100_000 + active as u64, "{settled} looks for {} RPCs", 100_000 + active);
    timers_fired(&mut few, 1);
    // From then on only the RPCs waiting for an acknowledgement have a timer.
    assert_eq!(few.server.armed_timers(), active);
    assert_eq!(many.server.armed_timers(), active);
    let (f, m) = (timers_fired(&mut few, 5), timers_fired(&mut many, 5));
    // Each active RPC fires at most once per silence (and sends NEED_ACK, backing
    // off while it goes unanswered: measured twice in these 5 rounds), idle ones never.
    assert!((active as u64..=5 * active as u64).contains(&f), "{f} timers for {active} RPCs");
    assert_eq!(m, f, "100 000 idle RPCs changed the timer work");
    assert_eq!(many.server.memory_usage().rpcs, 100_000 + active);
}

#[test]
fn a_request_in_service_loses_its_timer_and_the_acknowledgement_frees_the_response() {
    let mut pair = Pair::new(config());
    let (client, _) = pair.connect();
    pair.client.call(pair.now, client, b"ping").expect("call");
    pair.deliver_all();
    let requests = pair.server_requests();
    // The timer armed while the request arrived fires once and finds nothing to do.
    pair.advance(Duration::from_millis(4));
    pair.server.handle_timeout(pair.now);
    assert_eq!(pair.server.armed_timers(), 0, "a request in service needs no timer");
    assert_eq!(pair.server.poll_timeout(), None);
    let (session, id) = requests[0];
    pair.server.respond(pair.now, session, id, b"pong").expect("respond");
    pair.deliver_all();
    // The response went out: the server waits for the ACK with a timer; the client
    // holds its ACK for the next request or one tick.
    assert_eq!(pair.server.armed_timers(), 1);
    assert!(pair.client.armed_timers() >= 1);
    pair.advance(Duration::from_millis(1));
    pair.client.handle_timeout(pair.now);
    pair.deliver_all();
    assert_eq!(pair.server.memory_usage().rpcs, 0);
    assert_eq!(pair.server.armed_timers(), 0);
    assert_eq!(pair.server.poll_timeout(), None);
}
