//! In-process scaling of record crypto over worker threads, without sockets.
//!
//! Two engines (client and server, as `smt-sim` connects them) exchange N large
//! requests in memory. The client seals each message through `CryptoPool::seal`
//! (its records cut into parts by the engine); the server takes the records its
//! received packets completed (`take_records_to_open`), opens them through
//! `CryptoPool::open` and gives them back. The same run is made with 1 and with
//! more worker threads, and reported as: seal time, open time (the pool's work),
//! and the whole exchange (which adds the engine's single-threaded packet work:
//! cutting the images into datagrams, copying them into reassembly buffers).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use smt::CryptoPool;
use smt_proto::engine::{Config, Endpoint, Event};
use smt_proto::record::CipherSuite;
use smt_sim::{LinkConfig, Network};

/// One measured exchange.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub seal: Duration,
    pub open: Duration,
    pub total: Duration,
}

/// Engine parameters that let all N messages travel in one round: the point is the
/// crypto, not flow control.
fn config(messages: usize, size: usize) -> Config {
    let total = (messages * (size + size / 512 + 4096)) as u32;
    let mut c = Config::default();
    // Room to keep every buffer of an exchange for the next one.
    c.buffer_pool_bytes = 4 * total as usize;
    c.unscheduled_bytes = u32::MAX / 2;
    c.grant_window = total.max(c.largest_packet_payload as u32);
    c.max_grant_window = c.grant_window;
    c.max_incoming = c.grant_window;
    c
}

fn drain(endpoint: &mut Endpoint, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
    smt_sim::take_datagrams(endpoint, now, &mut Vec::new(), out);
}

/// A client and a server engine with a session, kept across exchanges so that
/// buffers are reused as in a long-running endpoint.
struct Rig {
    net: Network,
    client: smt_sim::HostId,
    server: smt_sim::HostId,
    session: smt_proto::engine::SessionHandle,
    caddr: SocketAddr,
    saddr: SocketAddr,
}

impl Rig {
    fn new(messages: usize, size: usize) -> Rig {
        let mut net = Network::new(1, LinkConfig::default());
        let client = net.add_host(config(messages, size));
        let server = net.add_host(config(messages, size));
        let (session, _) = net.connect(client, server, CipherSuite::Aes128GcmSha256);
        net.endpoint(server).set_defer_opening(true);
        let (caddr, saddr) = (net.addr(client), net.addr(server));
        // As on loopback: 32 KiB datagrams.
        net.endpoint(client).set_path_mtu(saddr.ip(), 65_507);
        net.endpoint(server).set_path_mtu(caddr.ip(), 65_507);
        Rig { net, client, server, session, caddr, saddr }
    }

    /// Sends `messages` requests of `size` bytes through `pool`; the server answers
    /// each with one byte (so that the client frees its requests).
    fn exchange(&mut self, pool: &CryptoPool, payload: &[u8], messages: usize) -> Result<Exchange> {
        let Rig { net, client, server, session, caddr, saddr } = self;
        let now = net.now();
        let start = Instant::now();
        let mut seal = Duration::ZERO;
        for _ in 0..messages {
            let endpoint = net.endpoint(*client);
            let prepared = endpoint.begin_call(*session, payload.len()).context("begin_call")?;
            let t = Instant::now();
            let sealed = pool.seal(&prepared, payload).context("seal")?;
            seal += t.elapsed();
            endpoint.finish(now, prepared, sealed).context("finish")?;
        }
        let mut open = Duration::ZERO;
        let (mut delivered, mut answered) = (0, 0);
        let mut datagrams = Vec::new();
        for _ in 0..1000 {
            datagrams.clear();
            drain(net.endpoint(*client), now, &mut datagrams);
            let endpoint = net.endpoint(*server);
            for (_, bytes) in &datagrams {
                endpoint.handle_datagram(now, *caddr, bytes);
            }
            let mut batch = endpoint.take_records_to_open();
            let t = Instant::now();
            pool.open(&mut batch);
            open += t.elapsed();
            endpoint.finish_opening(now, batch);
            while let Some(event) = endpoint.poll_event() {
                if let Event::Request { session, id, payload: got } = event {
                    ensure!(got == payload, "a request arrived altered");
                    delivered += 1;
                    endpoint.respond(now, session, id, b"k").context("respond")?;
                }
            }
            datagrams.clear();
            drain(endpoint, now, &mut datagrams);
            let endpoint = net.endpoint(*client);
            for (_, bytes) in &datagrams {
                endpoint.handle_datagram(now, *saddr, bytes);
            }
            while let Some(event) = endpoint.poll_event() {
                if let Event::Response { .. } = event {
                    answered += 1;
                }
            }
            if delivered == messages && answered == messages {
                return Ok(Exchange { seal, open, total: start.elapsed() });
            }
        }
        anyhow::bail!("only {delivered} of {messages} requests arrived")
    }
}

/// The machine's own ceiling: AES-128-GCM sealing of `bytes` in 16 KiB records,
/// split evenly over `threads` plain threads (aws-lc-rs directly, no SMT code).
fn raw_aes(bytes: usize, threads: usize) -> Duration {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).expect("16-byte key"));
    let per_thread = bytes / threads;
    let mut buffers: Vec<Vec<u8>> = (0..threads).map(|_| vec![1u8; per_thread]).collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for buf in &mut buffers {
            let key = &key;
            scope.spawn(move || {
                for (i, record) in buf.chunks_mut(16 * 1024).enumerate() {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    let nonce = Nonce::assume_unique_for_key(nonce);
                    // Sealing a fixed-size buffer with a fresh nonce cannot fail.
                    let _ = key.seal_in_place_separate_tag(nonce, Aad::empty(), record);
                }
            });
        }
    });
    start.elapsed()
}

/// The report: per thread count, the median of `reps` exchanges.
pub fn run(messages: usize, size: usize, threads: &[usize], reps: usize) -> Result<()> {
    println!(
        "crypto-scaling: {messages} x {size} B requests sealed and opened through the engine \
         and smt::CryptoPool, median of {reps} (AES-128-GCM, 16 KiB records, no sockets)"
    );
    let mut base: Option<Exchange> = None;
    for &n in threads {
        let pool = CryptoPool::new(n)?;
        let mut rig = Rig::new(messages, size);
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        // Warm-up: buffers into the pools, threads started.
        for _ in 0..2 {
            rig.exchange(&pool, &payload, messages)?;
        }
        let mut runs: Vec<Exchange> =
            (0..reps).map(|_| rig.exchange(&pool, &payload, messages)).collect::<Result<_>>()?;
        let median = |f: fn(&Exchange) -> Duration, runs: &mut Vec<Exchange>| {
            runs.sort_by_key(f);
            f(&runs[runs.len() / 2])
        };
        let e = Exchange {
            seal: median(|e| e.seal, &mut runs),
            open: median(|e| e.open, &mut runs),
            total: median(|e| e.total, &mut runs),
        };
        let crypto = e.seal + e.open;
        let gbps = |d: Duration| (messages * size) as f64 * 8.0 / d.as_secs_f64() / 1e9;
        let speedup = base.map(|b| (b.seal + b.open).as_secs_f64() / crypto.as_secs_f64());
        let total_speedup = base.map(|b| b.total.as_secs_f64() / e.total.as_secs_f64());
        println!(
            "threads {n}: seal {:>8.2} ms  open {:>8.2} ms  crypto {:>6.2} Gbit/s{}  \
             whole exchange {:>8.2} ms {:>6.2} Gbit/s{}",
            e.seal.as_secs_f64() * 1e3,
            e.open.as_secs_f64() * 1e3,
            gbps(crypto),
            speedup.map_or(String::new(), |s| format!(" ({s:.2}x 1 thread)")),
            e.total.as_secs_f64() * 1e3,
            gbps(e.total),
            total_speedup.map_or(String::new(), |s| format!(" ({s:.2}x)")),
        );
        base.get_or_insert(e);
    }
    // The same amount of AES work without SMT, on plain threads: what the CPUs allow.
    let bytes = messages * size;
    let mut raw_base = None;
    for &n in threads {
        let mut runs: Vec<Duration> = (0..reps).map(|_| raw_aes(bytes, n.max(1))).collect();
        runs.sort();
        let t = runs[runs.len() / 2];
        let speedup = raw_base.map(|b: Duration| b.as_secs_f64() / t.as_secs_f64());
        println!(
            "raw AES-128-GCM seal, {n} plain thread(s): {:>8.2} ms {:>6.2} Gbit/s{}",
            t.as_secs_f64() * 1e3,
            bytes as f64 * 8.0 / t.as_secs_f64() / 1e9,
            speedup.map_or(String::new(), |s| format!(" ({s:.2}x 1 thread)")),
        );
        raw_base.get_or_insert(t);
    }
    Ok(())
}
