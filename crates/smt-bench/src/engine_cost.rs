//! The engine's own cost per DATA packet, without AEAD and without sockets.
//!
//! Two engines in memory, with a session under the insecure null cipher (TLS 1.3
//! record framing, no encryption: what remains is SMT's work). The client sends
//! large requests in 1412-byte DATA packets (the default payload, as on a
//! 1500-byte MTU); the server answers each with one byte. Timed separately:
//! the sender's `poll_transmit` (scheduling, headers, copying the sealed image into
//! datagrams) and the receiver's `handle_datagram` plus opening and delivery
//! (parsing, reassembly copy, record checks, grants). Reported per packet and per
//! payload byte, the best of several repetitions (the machine is shared: the least
//! disturbed run is closest to the cost).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use smt_proto::engine::{Config, Event};
use smt_proto::record::CipherSuite;
use smt_sim::{LinkConfig, Network};

struct Costs {
    send: Duration,
    receive: Duration,
    packets: u64,
    bytes: u64,
}

fn exchange(messages: usize, size: usize) -> Result<Costs> {
    let mut config = Config::default();
    config.unscheduled_bytes = u32::MAX / 2;
    config.grant_window = (messages * size * 2) as u32;
    config.max_grant_window = config.grant_window;
    config.max_incoming = config.grant_window;
    config.buffer_pool_bytes = messages * size * 4;
    let mut net = Network::new(3, LinkConfig::default());
    let client = net.add_host(config.clone());
    let server = net.add_host(config);
    let (session, _) = net.connect(client, server, CipherSuite::NullInsecure);
    let (caddr, saddr): (SocketAddr, SocketAddr) = (net.addr(client), net.addr(server));
    let payload = vec![0x5au8; size];
    let now = net.now();
    let mut costs = Costs { send: Duration::ZERO, receive: Duration::ZERO, packets: 0, bytes: 0 };
    let mut buf = Vec::with_capacity(64 * 1024);
    // Transmit buffers with their segment size, handed over without a copy (and
    // kept across rounds, so the measured round does not fault in fresh pages).
    let mut datagrams: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // Two rounds: the first warms the buffer pools, the second is measured.
    for round in 0..2 {
        for _ in 0..messages {
            net.endpoint(client).call(now, session, &payload).context("call")?;
        }
        let (mut delivered, mut answered) = (0, 0);
        for _ in 0..10_000 {
            // Sender: every datagram it may send now.
            let endpoint = net.endpoint(client);
            let t = Instant::now();
            let mut packets = 0;
            while let Some(tx) = endpoint.poll_transmit(now, &mut buf) {
                let segment = tx.segment_size.unwrap_or(tx.size);
                packets += tx.size.div_ceil(segment) as u64;
                buf.truncate(tx.size);
                let next = spare.pop().unwrap_or_else(|| Vec::with_capacity(64 * 1024));
                datagrams.push((std::mem::replace(&mut buf, next), segment));
            }
            let send = t.elapsed();
            // Receiver: parse, reassemble, open (null cipher), deliver, grant.
            let endpoint = net.endpoint(server);
            let t = Instant::now();
            for (batch, segment) in &datagrams {
                for d in batch.chunks(*segment) {
                    endpoint.handle_datagram(now, caddr, d);
                }
            }
            let mut batch = endpoint.take_records_to_open();
            batch.open_here();
            endpoint.finish_opening(now, batch);
            let mut requests = Vec::new();
            while let Some(event) = endpoint.poll_event() {
                if let Event::Request { session, id, payload: got } = event {
                    ensure!(got.len() == size, "a request arrived altered");
                    requests.push((session, id));
                }
            }
            let receive = t.elapsed();
            if round == 1 {
                costs.send += send;
                costs.receive += receive;
                costs.packets += packets;
            }
            spare.extend(datagrams.drain(..).map(|(b, _)| b));
            delivered += requests.len();
            for (session, id) in requests {
                endpoint.respond(now, session, id, b"k").context("respond")?;
            }
            let mut back = Vec::new();
            smt_sim::take_datagrams(endpoint, now, &mut buf, &mut back);
            let endpoint = net.endpoint(client);
            for (_, d) in &back {
                endpoint.handle_datagram(now, saddr, d);
            }
            while let Some(event) = endpoint.poll_event() {
                if let Event::Response { .. } = event {
                    answered += 1;
                }
            }
            if delivered == messages && answered == messages {
                break;
            }
        }
        ensure!(delivered == messages && answered == messages, "the exchange did not finish");
    }
    costs.bytes = (messages * size) as u64;
    Ok(costs)
}

pub fn run(messages: usize, size: usize, reps: usize) -> Result<()> {
    let mut best: Option<Costs> = None;
    for _ in 0..reps {
        let c = exchange(messages, size)?;
        let total = |c: &Costs| c.send + c.receive;
        if best.as_ref().is_none_or(|b| total(&c) < total(b)) {
            best = Some(c);
        }
    }
    let c = best.context("no repetition")?;
    let per = |d: Duration, n: u64| d.as_nanos() as f64 / n as f64;
    println!(
        "engine-cost: {messages} x {size} B requests in {} DATA packets of up to 1412 B, null \
         cipher (no AEAD), no sockets; best of {reps}",
        c.packets
    );
    println!(
        "sender   (poll_transmit):            {:>7.1} ns/packet {:>6.3} ns/byte",
        per(c.send, c.packets),
        per(c.send, c.bytes)
    );
    println!(
        "receiver (handle_datagram .. event): {:>7.1} ns/packet {:>6.3} ns/byte",
        per(c.receive, c.packets),
        per(c.receive, c.bytes)
    );
    println!(
        "both:                                {:>7.1} ns/packet {:>6.3} ns/byte",
        per(c.send + c.receive, c.packets),
        per(c.send + c.receive, c.bytes)
    );
    Ok(())
}
