//! The paper's application experiment: YCSB core workloads against smt-kv over SMT,
//! TLS over TCP and TCP, and against a real redis-server over TLS and TCP as the
//! reference. Records are hashes (`user<hash>` -> `field0..`), as in YCSB's Redis
//! binding: read = HGETALL, update = HSET of one field, insert = HSET of all
//! fields, read-modify-write = both. Each client thread has its own connection or
//! session and one operation outstanding (closed loop).

pub mod bench;
pub mod chart;
pub mod conn;
pub mod generator;
pub mod workload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;

pub use conn::{Conn, Transport};
use generator::{Latest, Rng, ScrambledZipfian};
use workload::{field, key, value, Layout, Op, Workload};

use crate::reply::Reply;

/// One measured run.
#[derive(Debug, Clone)]
pub struct Run {
    pub workload: Workload,
    pub transport: Transport,
    pub server: &'static str,
    pub layout: Layout,
    pub threads: usize,
    pub records: u64,
    pub operations: u64,
    pub elapsed: Duration,
    /// Latency of every operation (microseconds), and per operation type.
    pub all: Histogram<u64>,
    pub by_op: HashMap<Op, Histogram<u64>>,
    /// Reads that found a record with the wrong shape, or replies that were errors.
    pub errors: u64,
    /// Reads of records not (yet) there: in D, a record whose insert by another
    /// thread had not finished.
    pub missing: u64,
}

impl Run {
    pub fn ops_per_s(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }
}

/// What one run needs to know.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub workload: Workload,
    pub transport: Transport,
    pub server: &'static str,
    pub addr: SocketAddr,
    pub layout: Layout,
    pub threads: usize,
    pub records: u64,
    pub operations: u64,
    pub seed: u64,
    /// Give every SMT client thread its own endpoint (socket and driver task)
    /// instead of a session on one shared endpoint.
    pub smt_endpoint_per_thread: bool,
    /// Client endpoints the SMT sessions are spread over (when not one per thread).
    pub smt_endpoints: usize,
}

fn histogram() -> Histogram<u64> {
    // 1 us to 60 s at 3 significant digits: cannot fail with these bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Loads the records (all fields), split over the threads.
pub async fn load(spec: &RunSpec, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<()> {
    let mut first = Conn::open(spec.transport, spec.addr, tls.clone()).await?;
    if let Reply::Error(e) = first.command(&["FLUSHALL"]).await? {
        anyhow::bail!("FLUSHALL: {e}");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..spec.threads as u64 {
        let (spec, tls) = (spec.clone(), tls.clone());
        tasks.spawn(async move {
            let mut conn = Conn::open(spec.transport, spec.addr, tls).await?;
            let mut n = t;
            while n < spec.records {
                insert(&mut conn, n, spec.layout).await?;
                n += spec.threads as u64;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("load task")??;
    }
    Ok(())
}

async fn insert(conn: &mut Conn, record: u64, layout: Layout) -> anyhow::Result<()> {
    let mut args: Vec<Bytes> = vec![Bytes::from_static(b"HSET"), key(record)];
    for f in 0..layout.fields {
        args.push(field(f));
        args.push(value(record, f, 0, layout.field_len));
    }
    match conn.command(&args).await? {
        Reply::Integer(_) => Ok(()),
        other => anyhow::bail!("insert of record {record}: {other:?}"),
    }
}

/// Runs the operations of `spec` (after [`load`]).
pub async fn run(spec: &RunSpec, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Run> {
    let inserted = Arc::new(AtomicU64::new(spec.records));
    let next_insert = Arc::new(AtomicU64::new(spec.records));
    let per_thread = spec.operations / spec.threads as u64;
    let mut conns = Vec::new();
    // SMT's point is many sessions on one socket: by default the threads' sessions
    // share one client endpoint (see `RunSpec::smt_endpoint_per_thread`).
    let mut shared = Vec::new();
    if spec.transport == Transport::Smt && !spec.smt_endpoint_per_thread {
        for _ in 0..spec.smt_endpoints.max(1) {
            shared.push(smt::Endpoint::client("127.0.0.1:0".parse()?, tls.clone())?);
        }
    }
    for i in 0..spec.threads {
        match shared.get(i % shared.len().max(1)) {
            Some(endpoint) => {
                let session = endpoint.connect(spec.addr, "localhost").await?;
                conns.push(Conn::Smt(crate::Client::from_session(session, endpoint.clone())));
            }
            None => conns.push(Conn::open(spec.transport, spec.addr, tls.clone()).await?),
        }
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (t, mut conn) in conns.into_iter().enumerate() {
        let (spec, inserted, next_insert) = (spec.clone(), inserted.clone(), next_insert.clone());
        tasks.spawn(async move {
            let mut rng = Rng::new(spec.seed ^ ((t as u64 + 1) * 0x1000_0001));
            let zipf = ScrambledZipfian::new(spec.records);
            let latest = Latest::new(spec.records);
            let mut all = histogram();
            let mut by_op: HashMap<Op, Histogram<u64>> = HashMap::new();
            let (mut errors, mut missing) = (0u64, 0u64);
            for i in 0..per_thread {
                let op = spec.workload.op(rng.unit());
                let record = if spec.workload.latest() {
                    latest.next(&mut rng, inserted.load(Ordering::Relaxed))
                } else {
                    zipf.next(&mut rng)
                };
                let began = Instant::now();
                match op {
                    Op::Read => match read(&mut conn, record, spec.layout).await? {
                        ReadOutcome::Ok => {}
                        ReadOutcome::Missing => missing += 1,
                        ReadOutcome::Wrong => errors += 1,
                    },
                    Op::Update => {
                        errors +=
                            u64::from(!update(&mut conn, record, &mut rng, spec.layout, i).await?)
                    }
                    Op::Insert => {
                        let n = next_insert.fetch_add(1, Ordering::Relaxed);
                        insert(&mut conn, n, spec.layout).await?;
                        inserted.fetch_max(n + 1, Ordering::Relaxed);
                    }
                    Op::ReadModifyWrite => {
                        match read(&mut conn, record, spec.layout).await? {
                            ReadOutcome::Ok => {}
                            ReadOutcome::Missing => missing += 1,
                            ReadOutcome::Wrong => errors += 1,
                        }
                        errors +=
                            u64::from(!update(&mut conn, record, &mut rng, spec.layout, i).await?);
                    }
                }
                let us = began.elapsed().as_micros().max(1) as u64;
                all.saturating_record(us);
                by_op.entry(op).or_insert_with(histogram).saturating_record(us);
            }
            anyhow::Ok((all, by_op, errors, missing))
        });
    }
    let mut result = Run {
        workload: spec.workload,
        transport: spec.transport,
        server: spec.server,
        layout: spec.layout,
        threads: spec.threads,
        records: spec.records,
        operations: per_thread * spec.threads as u64,
        elapsed: Duration::ZERO,
        all: histogram(),
        by_op: HashMap::new(),
        errors: 0,
        missing: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (all, by_op, errors, missing) = done.context("client task")??;
        result.all.add(&all).context("merging histograms")?;
        for (op, h) in by_op {
            result
                .by_op
                .entry(op)
                .or_insert_with(histogram)
                .add(&h)
                .context("merging histograms")?;
        }
        result.errors += errors;
        result.missing += missing;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

enum ReadOutcome {
    Ok,
    Missing,
    Wrong,
}

async fn read(conn: &mut Conn, record: u64, layout: Layout) -> anyhow::Result<ReadOutcome> {
    let reply = conn.command(&[&b"HGETALL"[..], &key(record)]).await?;
    let pairs: Vec<(Reply, Reply)> = match reply {
        Reply::Array(flat) if flat.len() % 2 == 0 => {
            flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()
        }
        Reply::Map(pairs) => pairs,
        _ => return Ok(ReadOutcome::Wrong),
    };
    if pairs.is_empty() {
        return Ok(ReadOutcome::Missing);
    }
    let right = pairs.len() == layout.fields
        && pairs.iter().all(|(f, v)| {
            f.as_bytes().is_some_and(|f| f.starts_with(b"field"))
                && v.as_bytes().is_some_and(|v| v.len() == layout.field_len)
        });
    Ok(if right { ReadOutcome::Ok } else { ReadOutcome::Wrong })
}

async fn update(
    conn: &mut Conn,
    record: u64,
    rng: &mut Rng,
    layout: Layout,
    version: u64,
) -> anyhow::Result<bool> {
    let f = rng.below(layout.fields as u64) as usize;
    let v = value(record, f, version + 1, layout.field_len);
    let reply = conn.command(&[&b"HSET"[..], &key(record), &field(f), &v]).await?;
    Ok(matches!(reply, Reply::Integer(_)))
}
