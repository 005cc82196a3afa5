//! The experiments of one link: server processes, clients, measurement loops, and
//! the accumulation of repeated runs into records.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smt_sim::workload::{SizeSampler, Workload};

use crate::client::{self, Client, Floor, Holder, ServerProc};
use crate::open_loop;
use crate::plan::{self, Plan, MIB};
use crate::record::{exp, Record};
use crate::report::num;
use crate::stats::{self, Latency, SIZE_BUCKETS};
use crate::transport::Kind;

/// Where a link's client and server run.
#[derive(Clone, Debug)]
pub struct Link {
    /// "loopback" or "veth1500".
    pub name: String,
    pub client_ip: IpAddr,
    pub server_ip: IpAddr,
    /// Network namespace the servers run in (`ip netns exec`), if any.
    pub server_netns: Option<String>,
}

/// One measurement window's results.
#[derive(Debug, Default)]
pub struct RunStats {
    pub latency: Latency,
    /// Calls that completed inside the window.
    pub completed: u64,
    pub window: Duration,
}

impl RunStats {
    pub fn rpc_per_s(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }
    /// Request payload bits per second, in Gbit/s.
    pub fn gbps(&self, size: u64) -> f64 {
        self.completed as f64 * size as f64 * 8.0 / self.window.as_secs_f64() / 1e9
    }
}

/// A random payload of `size` bytes (the same bytes for every call of a run).
pub fn payload(size: u64, seed: u64) -> Bytes {
    let mut v = vec![0u8; size as usize];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

fn check_echo(request: &[u8], response: &[u8]) -> Result<()> {
    if response.len() != request.len()
        || response.first() != request.first()
        || response.last() != request.last()
    {
        bail!("bad echo: {} B for a {} B request", response.len(), request.len());
    }
    Ok(())
}

/// `in_flight` workers call back to back; calls started inside the window give the
/// latency, calls completed inside it the rate.
pub async fn closed_loop(
    client: &Client,
    request: Bytes,
    in_flight: u32,
    warmup: Duration,
    window: Duration,
) -> Result<RunStats> {
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + window);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let (client, request) = (client.clone(), request.clone());
        set.spawn(async move {
            let mut latency = Latency::new();
            let mut completed = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return Ok::<_, anyhow::Error>((latency, completed));
                }
                let response = client.call(request.clone()).await?;
                let t1 = Instant::now();
                check_echo(&request, &response)?;
                if t0 >= from {
                    latency.record(t1 - t0);
                }
                if t1 >= from && t1 <= end {
                    completed += 1;
                }
            }
        });
    }
    let limit = warmup + window + Duration::from_secs(20);
    let mut out = RunStats { window, ..RunStats::default() };
    let collect = async {
        while let Some(joined) = set.join_next().await {
            let (latency, completed) = joined.map_err(|e| anyhow!("worker crashed: {e}"))??;
            out.latency.merge(&latency);
            out.completed += completed;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(limit, collect).await.map_err(|_| anyhow!("calls hung"))??;
    Ok(out)
}

/// The raw UDP ping-pong loop (blocking, on its own thread).
pub fn closed_loop_blocking(
    udp: &mut Floor,
    request: &[u8],
    warmup: Duration,
    window: Duration,
) -> Result<RunStats> {
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + window);
    let mut out = RunStats { window, ..RunStats::default() };
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return Ok(out);
        }
        let n = udp.call(request)?;
        let t1 = Instant::now();
        if n != request.len() {
            bail!("bad echo: {n} B for a {} B request", request.len());
        }
        if t0 >= from {
            out.latency.record(t1 - t0);
        }
        if t1 >= from && t1 <= end {
            out.completed += 1;
        }
    }
}

/// 64 B calls, one at a time, while `background` 1 MiB calls stream on the same
/// client. Returns the small calls' stats and the background's Gbit/s.
pub async fn head_of_line(
    client: &Client,
    background: u32,
    warmup: Duration,
    window: Duration,
) -> Result<(RunStats, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let big = payload(MIB, 2);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..background {
        let (client, big, stop, bytes) = (client.clone(), big.clone(), stop.clone(), bytes.clone());
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client.call(big.clone()).await?;
                check_echo(&big, &r)?;
                bytes.fetch_add(big.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    // Let the stream get going before measuring.
    tokio::time::sleep(warmup).await;
    let before = bytes.load(Ordering::Relaxed);
    let small = closed_loop(client, payload(64, 1), 1, Duration::ZERO, window).await;
    let streamed = bytes.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let finish = async {
        while let Some(j) = set.join_next().await {
            j.map_err(|e| anyhow!("background crashed: {e}"))??;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(20), finish)
        .await
        .map_err(|_| anyhow!("background calls hung"))??;
    let small = small?;
    let gbps = streamed as f64 * 8.0 / small.window.as_secs_f64() / 1e9;
    Ok((small, gbps))
}

/// One closed-loop measurement on loopback, printed (for profiling).
pub async fn probe(
    k: Kind,
    size: u64,
    in_flight: u32,
    window: Duration,
    hol: Option<u32>,
    cert_dir: &Path,
) -> Result<()> {
    let ip = IpAddr::from([127, 0, 0, 1]);
    let server = ServerProc::start(k, ip, None, cert_dir).await?;
    if let Some(background) = hol {
        let result = async {
            let (client, holder) =
                client::connect(k, server.addr, ip, cert_dir, background as usize + 1).await?;
            let warmup = Duration::from_millis(100);
            let idle = closed_loop(&client, payload(64, 1), 1, warmup, window).await?;
            let (loaded, gbps) = head_of_line(&client, background, warmup, window).await?;
            drop(client);
            holder.close().await;
            println!("{k} hol idle   {}", fmt_lat(&idle));
            println!("{k} hol loaded {} bg {gbps:.2} Gbit/s", fmt_lat(&loaded));
            println!(
                "{k} hol p99 ratio {:.2}x p50 ratio {:.2}x",
                loaded.latency.percentile_us(99.0).unwrap_or(f64::NAN)
                    / idle.latency.percentile_us(99.0).unwrap_or(f64::NAN),
                loaded.latency.percentile_us(50.0).unwrap_or(f64::NAN)
                    / idle.latency.percentile_us(50.0).unwrap_or(f64::NAN)
            );
            Ok(())
        }
        .await;
        server.stop().await;
        return result;
    }
    let run = async {
        if k.is_bulk_floor() {
            let (addr, size) = (server.addr, size as usize);
            let run = tokio::task::spawn_blocking(move || {
                crate::bulk_floor::closed_loop(
                    addr,
                    ip,
                    k == Kind::RawUdpGsoAead,
                    size,
                    in_flight as usize,
                    Duration::from_millis(100),
                    window,
                )
            })
            .await??;
            return Ok(run);
        }
        if k.is_floor() {
            let mut udp = Floor::connect(k, server.addr, ip)?;
            let request = payload(size, 1);
            let run = tokio::task::spawn_blocking(move || {
                closed_loop_blocking(&mut udp, &request, Duration::from_millis(100), window)
            })
            .await??;
            return Ok(run);
        }
        let (client, holder) =
            client::connect(k, server.addr, ip, cert_dir, in_flight as usize).await?;
        let run =
            closed_loop(&client, payload(size, 1), in_flight, Duration::from_millis(100), window)
                .await;
        if let Client::Smt(session) = &client {
            // What the client's session learnt about the path (its grant round trips
            // are those of the responses it received).
            if let Some(path) = session.path() {
                println!("client path: {path:?}");
            }
        }
        if let client::Holder::Smt(endpoint) = &holder {
            println!("client stats: {:?}", endpoint.stats());
        }
        drop(client);
        holder.close().await;
        run
    }
    .await;
    server.stop().await;
    let run = run?;
    println!(
        "{k} {size} B x{in_flight}: {} RPC/s {:.2} Gbit/s {}",
        num(run.rpc_per_s()),
        run.gbps(size),
        fmt_lat(&run)
    );
    Ok(())
}

type Key = (String, Kind, Option<u64>, Option<u32>);

/// Per-run values of every measurement of one link, by (experiment, transport,
/// size, in flight).
#[derive(Default)]
pub struct Acc {
    link: String,
    map: BTreeMap<Key, Record>,
}

impl Acc {
    fn entry(&mut self, e: &str, k: Kind, size: Option<u64>, inf: Option<u32>) -> &mut Record {
        let link = self.link.clone();
        self.map.entry((e.to_owned(), k, size, inf)).or_insert_with(|| Record {
            message_size: size,
            in_flight: inf,
            samples: Some(0),
            ..Record::new(e, k.name(), &link)
        })
    }

    fn add_run(&mut self, e: &str, k: Kind, size: u64, inf: u32, run: &RunStats) {
        let r = self.entry(e, k, Some(size), Some(inf));
        if let Some(p50) = run.latency.percentile_us(50.0) {
            r.p50_us_runs.push(p50);
        }
        if let Some(p99) = run.latency.percentile_us(99.0) {
            r.p99_us_runs.push(p99);
        }
        if e == exp::THROUGHPUT {
            r.gbps_runs.push(run.gbps(size));
        }
        if e == exp::RATE || e == exp::THROUGHPUT {
            r.rpc_per_s_runs.push(run.rpc_per_s());
        }
        *r.samples.get_or_insert(0) += run.latency.len();
    }

    fn note(&mut self, e: &str, k: Kind, size: Option<u64>, inf: Option<u32>, note: String) {
        let r = self.entry(e, k, size, inf);
        match &mut r.note {
            Some(n) if n.len() < 2000 => {
                n.push_str("; ");
                n.push_str(&note);
            }
            Some(_) => {}
            None => r.note = Some(note),
        }
    }

    fn records(&self) -> Vec<Record> {
        self.map.values().cloned().map(Record::summarize).collect()
    }
}

/// Runs every experiment of `plan` on `link` and returns its records.
pub async fn run_link(
    plan: &Plan,
    link: &Link,
    cert_dir: &Path,
    deadline: Instant,
) -> Result<Vec<Record>> {
    let mut acc = Acc { link: link.name.clone(), ..Acc::default() };
    let is_root = crate::machine::is_root();
    let mut kinds = Vec::new();
    for &k in &plan.transports {
        if k.needs_root() && !is_root {
            acc.note(exp::UNAVAILABLE, k, None, None, "skipped: needs root (raw IP)".into());
        } else {
            kinds.push(k);
        }
    }
    for rep in 0..plan.reps {
        for &k in &kinds {
            if Instant::now() > deadline {
                acc.note(exp::UNAVAILABLE, k, None, None, format!("rep {rep}: time budget"));
                continue;
            }
            if let Err(e) = cell(plan, link, cert_dir, k, rep, &mut acc).await {
                eprintln!("[{}] {k} rep {rep}: {e:#}", link.name);
                acc.note(exp::UNAVAILABLE, k, None, None, format!("rep {rep}: {e:#}"));
            }
        }
    }
    let mut records = acc.records();
    if plan.workloads.is_empty() {
        return Ok(records);
    }
    let params = LinkParams::from_records(&records, plan, &link.name);
    records.extend(params.records(plan, &link.name));
    eprintln!(
        "[{}] slowdown reference: base RTT {:.1} us, link {:.2} Gbit/s",
        link.name, params.base_rtt_us, params.link_gbps
    );
    let mut wacc = Acc { link: link.name.clone(), ..Acc::default() };
    let mut wruns: BTreeMap<(Workload, Kind), Vec<open_loop::OpenLoopResult>> = BTreeMap::new();
    for rep in 0..plan.reps {
        for &w in &plan.workloads {
            for &k in kinds.iter().filter(|k| plan::in_workloads(**k)) {
                if Instant::now() > deadline {
                    wacc.note(&slowdown_exp(w), k, None, None, format!("rep {rep}: time budget"));
                    continue;
                }
                let rate = params.arrivals_per_s(plan, w);
                match workload_cell(plan, link, cert_dir, k, w, rate, rep).await {
                    Ok(r) => wruns.entry((w, k)).or_default().push(r),
                    Err(e) => {
                        eprintln!("[{}] {k} {} rep {rep}: {e:#}", link.name, w.name());
                        wacc.note(&slowdown_exp(w), k, None, None, format!("rep {rep}: {e:#}"));
                    }
                }
            }
        }
    }
    for ((w, k), runs) in &wruns {
        workload_records(&mut wacc, plan, &params, *w, *k, runs);
    }
    records.extend(wacc.records());
    Ok(records)
}

pub fn slowdown_exp(w: Workload) -> String {
    format!("{}{}", exp::SLOWDOWN_PREFIX, w.name().to_lowercase())
}

/// One transport, one repetition: every closed-loop experiment against one server.
async fn cell(
    plan: &Plan,
    link: &Link,
    cert_dir: &Path,
    k: Kind,
    rep: usize,
    acc: &mut Acc,
) -> Result<()> {
    let server =
        ServerProc::start(k, link.server_ip, link.server_netns.as_deref(), cert_dir).await?;
    let result = if k.busy_poll() {
        // A busy-polling client runs on a thread of its own pinned to one CPU (the
        // server is pinned to the other), with a single-threaded runtime so that the
        // spinning driver and the calls share that thread (see crate::runtime_for).
        tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let cpu = core_affinity::CoreId { id: client::CLIENT_CPU };
                    if !core_affinity::set_for_current(cpu) {
                        eprintln!("cannot pin the {k} client to CPU {}", cpu.id);
                    }
                    crate::runtime_for(k)?
                        .block_on(cell_inner(plan, link, cert_dir, k, rep, acc, &server))
                })
                .join()
                .map_err(|_| anyhow!("the busy-poll cell panicked"))?
            })
        })
    } else {
        cell_inner(plan, link, cert_dir, k, rep, acc, &server).await
    };
    server.stop().await;
    result
}

fn log(link: &Link, rep: usize, k: Kind, what: &str, detail: String) {
    eprintln!("[{} {}] {k:<12} {what:<22} {detail}", link.name, rep + 1);
}

async fn cell_inner(
    plan: &Plan,
    link: &Link,
    cert_dir: &Path,
    k: Kind,
    rep: usize,
    acc: &mut Acc,
    server: &ServerProc,
) -> Result<()> {
    if k.is_bulk_floor() {
        // At most 4 in flight: without flow control, more overflows socket buffers.
        for &inf in plan.tput_in_flight.iter().filter(|&&i| i <= 4) {
            let (addr, ip, size) = (server.addr, link.client_ip, plan.tput_size as usize);
            let (warmup, window, aead) = (plan.warmup, plan.tput_window, k == Kind::RawUdpGsoAead);
            let run = tokio::task::spawn_blocking(move || {
                crate::bulk_floor::closed_loop(addr, ip, aead, size, inf as usize, warmup, window)
            })
            .await?;
            record(acc, link, rep, k, exp::THROUGHPUT, plan.tput_size, inf, run);
        }
        return Ok(());
    }
    if k.is_floor() {
        let mut udp = Floor::connect(k, server.addr, link.client_ip)?;
        for &size in plan.rtt_sizes.iter().filter(|&&s| s as usize <= k.max_message()) {
            let request = payload(size, size);
            let (warmup, window) = (plan.warmup, plan.rtt_window_for(size));
            let (u, run) = tokio::task::spawn_blocking(move || {
                let r = closed_loop_blocking(&mut udp, &request, warmup, window);
                (udp, r)
            })
            .await?;
            udp = u;
            match run {
                Ok(run) => {
                    log(link, rep, k, &format!("rtt {size}"), fmt_lat(&run));
                    acc.add_run(exp::RTT, k, size, 1, &run);
                }
                Err(e) => acc.note(exp::RTT, k, Some(size), Some(1), format!("rep {rep}: {e:#}")),
            }
        }
        return Ok(());
    }

    let (client, holder) =
        client::connect(k, server.addr, link.client_ip, cert_dir, 1).await.context("connect")?;
    for &size in &plan.rtt_sizes {
        let run =
            closed_loop(&client, payload(size, size), 1, plan.warmup, plan.rtt_window_for(size))
                .await;
        record(acc, link, rep, k, exp::RTT, size, 1, run);
    }
    if plan::in_throughput(k) {
        for &inf in &plan.tput_in_flight {
            let (c, h) = pooled(k, &client, server, link, cert_dir, inf).await?;
            let run =
                closed_loop(&c, payload(plan.tput_size, 3), inf, plan.warmup, plan.tput_window)
                    .await;
            close_pooled(h).await;
            record(acc, link, rep, k, exp::THROUGHPUT, plan.tput_size, inf, run);
        }
    }
    if plan::in_rate(k) {
        for &inf in &plan.rate_in_flight {
            let (c, h) = pooled(k, &client, server, link, cert_dir, inf).await?;
            let run =
                closed_loop(&c, payload(plan.rate_size, 4), inf, plan.warmup, plan.rate_window)
                    .await;
            close_pooled(h).await;
            record(acc, link, rep, k, exp::RATE, plan.rate_size, inf, run);
        }
    }
    if plan::in_hol(k) {
        let (c, h) = pooled(k, &client, server, link, cert_dir, plan.hol_background + 1).await?;
        let idle = closed_loop(&c, payload(64, 1), 1, plan.warmup, plan.hol_window).await;
        record(acc, link, rep, k, exp::HOL_IDLE, 64, 1, idle);
        match head_of_line(&c, plan.hol_background, plan.warmup, plan.hol_window).await {
            Ok((run, gbps)) => {
                log(link, rep, k, "hol_loaded", format!("{} bg {gbps:.2} Gbit/s", fmt_lat(&run)));
                acc.add_run(exp::HOL_LOADED, k, 64, 1, &run);
                acc.entry(exp::HOL_LOADED, k, Some(64), Some(1)).gbps_runs.push(gbps);
            }
            Err(e) => acc.note(exp::HOL_LOADED, k, Some(64), Some(1), format!("rep {rep}: {e:#}")),
        }
        close_pooled(h).await;
    }
    drop(client);
    holder.close().await;
    Ok(())
}

/// For tls-tcp-pool, a fresh pool of `size` connections; otherwise the client itself.
async fn pooled(
    k: Kind,
    client: &Client,
    server: &ServerProc,
    link: &Link,
    cert_dir: &Path,
    size: u32,
) -> Result<(Client, Option<Holder>)> {
    if k == Kind::TlsTcpPool {
        let (c, h) = client::connect(k, server.addr, link.client_ip, cert_dir, size as usize)
            .await
            .context("connect pool")?;
        Ok((c, Some(h)))
    } else {
        Ok((client.clone(), None))
    }
}

async fn close_pooled(h: Option<Holder>) {
    if let Some(h) = h {
        h.close().await;
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    acc: &mut Acc,
    link: &Link,
    rep: usize,
    k: Kind,
    e: &str,
    size: u64,
    inf: u32,
    run: Result<RunStats>,
) {
    match run {
        Ok(run) => {
            let detail = match e {
                exp::THROUGHPUT => format!("{} {:.2} Gbit/s", fmt_lat(&run), run.gbps(size)),
                exp::RATE => format!("{} {:.0} RPC/s", fmt_lat(&run), run.rpc_per_s()),
                _ => fmt_lat(&run),
            };
            log(link, rep, k, &format!("{e} {size} x{inf}"), detail);
            acc.add_run(e, k, size, inf, &run);
        }
        Err(err) => {
            eprintln!("[{} {}] {k} {e} {size} x{inf}: {err:#}", link.name, rep + 1);
            acc.note(e, k, Some(size), Some(inf), format!("rep {rep}: {err:#}"));
        }
    }
}

fn fmt_lat(run: &RunStats) -> String {
    format!(
        "p50 {:>9.1} us p99 {:>9.1} us n={}",
        run.latency.percentile_us(50.0).unwrap_or(f64::NAN),
        run.latency.percentile_us(99.0).unwrap_or(f64::NAN),
        run.latency.len()
    )
}

/// The references of the slowdown metric and the offered load, from this run's own
/// closed-loop measurements on the link.
#[derive(Clone, Debug)]
pub struct LinkParams {
    /// p50 RTT of 64 B on the blocking raw UDP floor (else the lowest p50 of any
    /// non-busy-polling transport).
    pub base_rtt_us: f64,
    /// Twice the highest 1 MiB throughput (request payload) of any transport on the
    /// link: the payload rate of both directions together.
    pub link_gbps: f64,
    /// Per reference transport: (name, 64 B RPC rate at the highest in-flight count,
    /// peak 1 MiB Gbit/s).
    pub capacities: Vec<(String, f64, f64)>,
}

/// The transports whose capacity sets the offered load of the workload runs (the
/// experimental smt-ip is run at the same load but does not lower it).
pub const LOAD_REFERENCES: [Kind; 5] =
    [Kind::Tcp, Kind::TlsTcp, Kind::TlsTcpPool, Kind::Quic, Kind::Smt];

impl LinkParams {
    pub fn from_records(records: &[Record], plan: &Plan, link: &str) -> LinkParams {
        let on_link =
            |e: &'static str| records.iter().filter(move |r| r.link == link && r.experiment == e);
        let base = on_link(exp::RTT)
            .find(|r| r.transport == Kind::RawUdp.name() && r.message_size == Some(64))
            .and_then(|r| r.p50_us)
            .or_else(|| {
                on_link(exp::RTT)
                    .filter(|r| r.message_size == Some(64))
                    .filter(|r| Kind::from_name(&r.transport).is_some_and(|k| !k.busy_poll()))
                    .filter_map(|r| r.p50_us)
                    .reduce(f64::min)
            })
            .unwrap_or(50.0);
        let link_gbps = on_link(exp::THROUGHPUT).filter_map(|r| r.gbps).reduce(f64::max);
        let top = plan.rate_in_flight.iter().max().copied();
        let mut capacities = Vec::new();
        for k in LOAD_REFERENCES {
            let rate = on_link(exp::RATE)
                .find(|r| r.transport == k.name() && r.in_flight == top)
                .and_then(|r| r.rpc_per_s);
            let gbps = crate::targets::peak_gbps(records, k.name(), link);
            if let (Some(rate), Some(gbps)) = (rate, gbps) {
                capacities.push((k.name().to_owned(), rate, gbps));
            }
        }
        // Both directions: an echo of 1 MiB at G Gbit/s of requests moves 2 G Gbit/s.
        let link_gbps = 2.0 * link_gbps.unwrap_or(1.0);
        LinkParams { base_rtt_us: base, link_gbps, capacities }
    }

    /// What transport `(rate, gbps)` can sustain of workload `w`, in RPC/s: the
    /// smaller of its 64 B RPC rate and its byte rate over the mean message size.
    fn capacity(rate: f64, gbps: f64, w: Workload) -> f64 {
        let mean = SizeSampler::new(w, Some(MIB as u32)).mean();
        rate.min(gbps * 1e9 / (8.0 * mean))
    }

    /// Poisson arrival rate for `w`: `load` times the capacity of the weakest
    /// reference transport (1000/s if none was measured).
    pub fn arrivals_per_s(&self, plan: &Plan, w: Workload) -> f64 {
        let weakest = self
            .capacities
            .iter()
            .map(|(_, rate, gbps)| Self::capacity(*rate, *gbps, w))
            .reduce(f64::min)
            .unwrap_or(2000.0);
        plan.load * weakest
    }

    fn records(&self, plan: &Plan, link: &str) -> Vec<Record> {
        plan.workloads
            .iter()
            .map(|&w| {
                let weakest = self
                    .capacities
                    .iter()
                    .map(|(n, rate, gbps)| (n, Self::capacity(*rate, *gbps, w)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                Record {
                    base_rtt_us: Some(self.base_rtt_us),
                    link_gbps: Some(self.link_gbps),
                    arrivals_per_s: Some(self.arrivals_per_s(plan, w)),
                    note: Some(format!(
                        "{} mean size {:.0} B; load {} x the capacity of the weakest reference \
transport ({}: {:.0} RPC/s = min(64 B rate, peak Gbit/s / mean size))",
                        w.name(),
                        SizeSampler::new(w, Some(MIB as u32)).mean(),
                        plan.load,
                        weakest.map(|w| w.0.as_str()).unwrap_or("none"),
                        weakest.map(|w| w.1).unwrap_or(f64::NAN),
                    )),
                    ..Record::new(exp::LINK_PARAMS, &w.name().to_lowercase(), link)
                }
            })
            .collect()
    }
}

async fn workload_cell(
    plan: &Plan,
    link: &Link,
    cert_dir: &Path,
    k: Kind,
    w: Workload,
    rate: f64,
    rep: usize,
) -> Result<open_loop::OpenLoopResult> {
    let server =
        ServerProc::start(k, link.server_ip, link.server_netns.as_deref(), cert_dir).await?;
    let result = async {
        let (client, holder) =
            client::connect(k, server.addr, link.client_ip, cert_dir, plan.workload_pool).await?;
        // Warm the connection(s) up.
        closed_loop(&client, payload(64, 1), 8, Duration::ZERO, plan.warmup).await?;
        let sampler = SizeSampler::new(w, Some(MIB as u32));
        let seed = 1000 * rep as u64 + w as u64;
        let schedule = open_loop::poisson_schedule(rate, plan.workload_window, &sampler, seed);
        let big = payload(MIB, 9);
        let c = client.clone();
        let call = move |size: u32| {
            let (c, request) = (c.clone(), big.slice(..size as usize));
            async move {
                let response = c.call(request.clone()).await?;
                check_echo(&request, &response)
            }
        };
        let handle = tokio::runtime::Handle::current();
        let r =
            open_loop::run(handle, schedule, plan.outstanding_cap, Duration::from_secs(5), call)
                .await?;
        drop(client);
        holder.close().await;
        log(
            link,
            rep,
            k,
            w.name(),
            format!(
                "{} done, {} failed, {} unfinished, dispatch lateness p99 {:.0} us",
                r.samples.len(),
                r.failures,
                r.unfinished,
                r.lateness.percentile_us(99.0).unwrap_or(f64::NAN)
            ),
        );
        Ok::<_, anyhow::Error>(r)
    }
    .await;
    server.stop().await;
    result
}

fn workload_records(
    acc: &mut Acc,
    plan: &Plan,
    params: &LinkParams,
    w: Workload,
    k: Kind,
    runs: &[open_loop::OpenLoopResult],
) {
    let e = slowdown_exp(w);
    for run in runs {
        let samples: Vec<(u64, f64)> = run
            .samples
            .iter()
            .filter(|s| s.scheduled >= plan.workload_warmup)
            .map(|s| (u64::from(s.size), s.latency_us))
            .collect();
        let buckets = stats::slowdown_by_bucket(
            &samples,
            &SIZE_BUCKETS,
            params.base_rtt_us,
            params.link_gbps,
        );
        for b in &buckets {
            let r = acc.entry(&e, k, Some(b.upper), None);
            let i = SIZE_BUCKETS.iter().position(|&u| u == b.upper).unwrap_or(0);
            r.bucket_lower = Some(if i == 0 { 0 } else { SIZE_BUCKETS[i - 1] });
            r.p50_us_runs.push(b.p50_us);
            r.p99_us_runs.push(b.p99_us);
            r.p50_slowdown_runs.push(b.p50_slowdown);
            r.p99_slowdown_runs.push(b.p99_slowdown);
            *r.samples.get_or_insert(0) += b.count as u64;
        }
        // All sizes together.
        let all =
            stats::slowdown_by_bucket(&samples, &[u64::MAX], params.base_rtt_us, params.link_gbps);
        let window = (plan.workload_window - plan.workload_warmup).as_secs_f64();
        let r = acc.entry(&e, k, None, None);
        if let Some(b) = all.first() {
            r.p50_us_runs.push(b.p50_us);
            r.p99_us_runs.push(b.p99_us);
            r.p50_slowdown_runs.push(b.p50_slowdown);
            r.p99_slowdown_runs.push(b.p99_slowdown);
            *r.samples.get_or_insert(0) += b.count as u64;
        }
        r.rpc_per_s_runs.push(samples.len() as f64 / window);
        r.arrivals_per_s = Some(params.arrivals_per_s(plan, w));
        let lateness = run.lateness.percentile_us(99.0).unwrap_or(f64::NAN);
        let note = format!(
            "run: {} failed, {} unfinished, dispatcher lateness p50 {:.0} us p99 {:.0} us",
            run.failures,
            run.unfinished,
            run.lateness.percentile_us(50.0).unwrap_or(f64::NAN),
            lateness
        );
        acc.note(&e, k, None, None, note);
    }
}
