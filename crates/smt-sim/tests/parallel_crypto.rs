//! Record crypto outside the engine: records taken with `take_records_to_open` and
//! opened on other threads, in any order, then given back; messages sealed in parts
//! on other threads. The engine must deliver exactly what was sent, reject tampered
//! records as it does when it opens them itself, and recover packets it had to drop
//! while a message's records were out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use smt_proto::engine::{Endpoint, Event, OpenBatch, SealPart};
use smt_proto::record::CipherSuite;
use smt_sim::{HostId, LinkConfig, Network};

struct Pair {
    net: Network,
    client: HostId,
    server: HostId,
    session: smt_proto::engine::SessionHandle,
    now: Instant,
}

fn pair() -> Pair {
    let mut net = Network::new(7, LinkConfig::default());
    let client = net.add_host(Default::default());
    let server = net.add_host(Default::default());
    let (session, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
    net.endpoint(server).set_defer_opening(true);
    let now = net.now();
    Pair { net, client, server, session, now }
}

/// Every datagram `from` has to send, as (destination, bytes).
fn drain(endpoint: &mut Endpoint, now: std::time::Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    smt_sim::take_datagrams(endpoint, now, &mut Vec::new(), &mut out);
    out
}

/// Opens a batch's parts on two other threads, last part first.
fn open_elsewhere(batch: &mut OpenBatch) {
    let mut parts = batch.parts();
    parts.reverse();
    let half = parts.len() / 2;
    let (a, b) = parts.split_at_mut(half);
    std::thread::scope(|scope| {
        scope.spawn(|| a.iter_mut().for_each(|p| p.open()));
        scope.spawn(|| b.iter_mut().for_each(|p| p.open()));
    });
}

impl Pair {
    fn addr(&self, host: HostId) -> SocketAddr {
        self.net.addr(host)
    }

    /// Moves datagrams both ways until neither side sends, the server opening its
    /// records elsewhere after each batch. `tamper` may change (or drop, by
    /// returning false) each datagram to the server.
    fn exchange(&mut self, mut tamper: impl FnMut(&mut Vec<u8>) -> bool) {
        let (c, s) = (self.addr(self.client), self.addr(self.server));
        for _ in 0..10_000 {
            let to_server = drain(self.net.endpoint(self.client), self.now);
            let server = self.net.endpoint(self.server);
            let mut any = !to_server.is_empty();
            for (_, mut bytes) in to_server {
                if tamper(&mut bytes) {
                    server.handle_datagram(self.now, c, &bytes);
                }
            }
            let mut batch = server.take_records_to_open();
            open_elsewhere(&mut batch);
            server.finish_opening(self.now, batch);
            let to_client = drain(server, self.now);
            any |= !to_client.is_empty();
            let client = self.net.endpoint(self.client);
            for (_, bytes) in to_client {
                client.handle_datagram(self.now, s, &bytes);
            }
            if !any {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    /// Lets time pass and runs both sides' timers.
    fn wait(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        self.net.endpoint(self.client).handle_timeout(now);
        self.net.endpoint(self.server).handle_timeout(now);
    }

    fn requests(&mut self) -> Vec<Vec<u8>> {
        let server = self.net.endpoint(self.server);
        std::iter::from_fn(|| server.poll_event())
            .filter_map(|e| match e {
                Event::Request { payload, .. } => Some(payload.to_vec()),
                _ => None,
            })
            .collect()
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn records_opened_on_other_threads_in_any_order_deliver_the_exact_payloads() {
    let mut p = pair();
    let sent = [payload(1 << 20, 1), payload(100_000, 2), payload(5000, 3)];
    for request in &sent {
        p.net.endpoint(p.client).call(p.now, p.session, request).unwrap();
    }
    p.exchange(|_| true);
    let mut got = p.requests();
    assert_eq!(got.len(), 3);
    got.sort_by_key(Vec::len);
    let mut want = sent.to_vec();
    want.sort_by_key(Vec::len);
    assert!(got == want, "payloads differ");
    assert_eq!(p.net.endpoint_ref(p.server).stats().auth_failures, 0);
}

#[test]
fn a_tampered_record_fails_when_opened_elsewhere_and_is_asked_for_again() {
    let mut p = pair();
    let request = payload(300_000, 9);
    p.net.endpoint(p.client).call(p.now, p.session, &request).unwrap();
    // Flip one ciphertext byte in the 10th DATA datagram, once.
    let mut seen = 0;
    p.exchange(|bytes| {
        if bytes.len() > 1000 {
            seen += 1;
            if seen == 10 {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x40;
            }
        }
        true
    });
    assert!(p.requests().is_empty(), "a message with a forged record was delivered");
    assert_eq!(p.net.endpoint_ref(p.server).stats().auth_failures, 1);
    // The receiver's silence timer asks for the dropped record again.
    for _ in 0..4 {
        p.wait(Duration::from_millis(5));
        p.exchange(|_| true);
    }
    let got = p.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0] == request, "payload differs");
}

#[test]
fn packets_arriving_while_records_are_out_are_dropped_and_recovered() {
    let mut p = pair();
    let request = payload(200_000, 4);
    p.net.endpoint(p.client).call(p.now, p.session, &request).unwrap();
    let c = p.addr(p.client);
    let datagrams = drain(p.net.endpoint(p.client), p.now);
    assert!(datagrams.len() > 4, "the request spans several datagrams");
    let server = p.net.endpoint(p.server);
    let (first, rest) = datagrams.split_at(datagrams.len() / 2);
    for (_, bytes) in first {
        server.handle_datagram(p.now, c, bytes);
    }
    let mut batch = server.take_records_to_open();
    assert!(!batch.is_empty(), "completed records wait to be opened");
    // The rest arrives while the records are out: dropped, not written anywhere.
    for (_, bytes) in rest {
        server.handle_datagram(p.now, c, bytes);
    }
    let dropped = server.stats().dropped_while_opening;
    assert!(dropped > 0, "packets for a message whose records are out are dropped");
    open_elsewhere(&mut batch);
    server.finish_opening(p.now, batch);
    assert!(p.requests().is_empty());
    for _ in 0..6 {
        p.exchange(|_| true);
        p.wait(Duration::from_millis(5));
    }
    let got = p.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0] == request, "payload differs");
}

#[test]
fn a_message_sealed_in_parts_on_other_threads_equals_one_sealed_at_once() {
    let mut p = pair();
    let request = payload(1 << 20, 5);
    let client = p.net.endpoint(p.client);
    let prepared = client.begin_call(p.session, request.len()).unwrap();
    let whole = prepared.seal(&request).unwrap();
    let parts = prepared
        .seal_with(&request, |parts| {
            assert!(parts.len() > 1);
            parts.reverse();
            let half = parts.len() / 2;
            let (a, b) = parts.split_at_mut(half);
            std::thread::scope(|scope| {
                scope.spawn(|| a.iter_mut().for_each(SealPart::seal));
                scope.spawn(|| b.iter_mut().for_each(SealPart::seal));
            });
        })
        .unwrap();
    assert!(whole.as_bytes() == parts.as_bytes(), "images differ");
    // A part left unsealed fails the message instead of sending garbage.
    let unsealed = prepared.seal_with(&request, |parts| {
        for part in parts.iter_mut().skip(1) {
            part.seal();
        }
    });
    assert!(unsealed.is_err());
    // And the parallel image is a valid message.
    client.finish(p.now, prepared, parts).unwrap();
    p.exchange(|_| true);
    let got = p.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0] == request, "payload differs");
}
