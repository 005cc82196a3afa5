//! `smt-kv ycsb`: starts the servers (smt-kv as its own process, redis-server if
//! installed), runs every combination, prints the table and ratios, writes records.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::workload::{Layout, Workload};
use super::{load, run, Run, RunSpec, Transport};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workloads: Vec<Workload>,
    pub value_sizes: Vec<usize>,
    pub threads: usize,
    pub reps: usize,
    pub records: u64,
    pub operations: u64,
    pub redis: bool,
    pub out: PathBuf,
    /// Also merge the records into docs/perf/results.json and write docs/perf/ycsb.md.
    pub docs: Option<PathBuf>,
    pub command_line: String,
    /// See `RunSpec::smt_endpoint_per_thread`.
    pub smt_endpoint_per_thread: bool,
    /// Client endpoints the SMT sessions share (one driver task each).
    pub smt_endpoints: usize,
    /// Transports to run (names as `Transport::name`); empty: all.
    pub transports: Vec<String>,
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_for_tcp(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{what} did not start listening on {addr}")
}

fn write_cert(dir: &Path) -> anyhow::Result<()> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    std::fs::write(dir.join("cert.pem"), certified.cert.pem())?;
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem())?;
    Ok(())
}

/// Runs the plan; returns every run.
pub async fn execute(plan: &Plan) -> anyhow::Result<Vec<Run>> {
    let dir = tempfile::tempdir()?;
    write_cert(dir.path())?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let tls = smt::tls::client_config_from_pem(&cert, None)?;
    let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (kv_tcp, kv_tls, kv_smt) =
        (localhost(free_port()?), localhost(free_port()?), localhost(free_port()?));
    let exe = std::env::current_exe().context("locating the smt-kv binary")?;
    let _kv = Process(
        Command::new(exe)
            .arg("serve")
            .args([
                "--tcp",
                &kv_tcp.to_string(),
                "--tls",
                &kv_tls.to_string(),
                "--smt",
                &kv_smt.to_string(),
            ])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting smt-kv serve")?,
    );
    wait_for_tcp(kv_tcp, "smt-kv").await?;
    wait_for_tcp(kv_tls, "smt-kv (TLS)").await?;
    let mut targets: Vec<(Transport, &'static str, SocketAddr)> = vec![
        (Transport::Smt, "smt-kv", kv_smt),
        (Transport::TlsTcp, "smt-kv", kv_tls),
        (Transport::Tcp, "smt-kv", kv_tcp),
    ];
    let mut redis = None;
    let redis_server = Path::new("/usr/bin/redis-server");
    if plan.redis && redis_server.exists() {
        let (r_tcp, r_tls) = (localhost(free_port()?), localhost(free_port()?));
        let version = Command::new(redis_server).arg("--version").output()?;
        println!("reference: {}", String::from_utf8_lossy(&version.stdout).trim());
        redis = Some(Process(
            Command::new(redis_server)
                .args(["--bind", "127.0.0.1", "--port", &r_tcp.port().to_string()])
                .args(["--tls-port", &r_tls.port().to_string()])
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(&cert)
                .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .context("starting redis-server")?,
        ));
        wait_for_tcp(r_tcp, "redis-server").await?;
        wait_for_tcp(r_tls, "redis-server (TLS)").await?;
        targets.push((Transport::TlsTcp, "redis", r_tls));
        targets.push((Transport::Tcp, "redis", r_tcp));
    } else if plan.redis {
        println!("redis-server is not installed: the reference runs are skipped (apt-get install redis-server)");
    }
    if !plan.transports.is_empty() {
        targets.retain(|(t, _, _)| plan.transports.iter().any(|name| name == t.name()));
    }
    let mut runs = Vec::new();
    println!("workload  value transport server       ops/s    p50 us    p99 us  check");
    for rep in 0..plan.reps {
        for &size in &plan.value_sizes {
            let layout = Layout::for_value_size(size)
                .context("value size must be 64, 1024, 4096 or 8192")?;
            for &workload in &plan.workloads {
                for &(transport, server, addr) in &targets {
                    let spec = RunSpec {
                        workload,
                        transport,
                        server,
                        addr,
                        layout,
                        threads: plan.threads,
                        records: plan.records,
                        operations: plan.operations,
                        seed: 1 + rep as u64,
                        smt_endpoint_per_thread: plan.smt_endpoint_per_thread,
                        smt_endpoints: plan.smt_endpoints,
                    };
                    load(&spec, tls.clone())
                        .await
                        .with_context(|| format!("loading for {spec:?}"))?;
                    let result = run(&spec, tls.clone())
                        .await
                        .with_context(|| format!("running {spec:?}"))?;
                    println!(
                        "ycsb_{:<3} {:>6} {:<8} {:<7} {:>10.0} {:>9} {:>9}  {}",
                        workload.letter(),
                        size,
                        transport.name(),
                        server,
                        result.ops_per_s(),
                        result.all.value_at_quantile(0.5),
                        result.all.value_at_quantile(0.99),
                        if result.errors == 0 {
                            format!("ok ({} missing)", result.missing)
                        } else {
                            format!("{} ERRORS", result.errors)
                        }
                    );
                    runs.push((rep, result));
                }
            }
        }
    }
    drop(redis);
    let records = records(plan, &runs);
    std::fs::create_dir_all(&plan.out)?;
    let path = plan.out.join("ycsb.json");
    std::fs::write(&path, serde_json::to_string_pretty(&records)?)?;
    println!("records: {}", path.display());
    let summary = summary(plan, &runs);
    print!("{summary}");
    std::fs::write(plan.out.join("ycsb.svg"), chart(plan, &runs))?;
    if let Some(docs) = &plan.docs {
        merge_into_results(&docs.join("perf/results.json"), &records)?;
        std::fs::write(docs.join("perf/ycsb.md"), &summary)?;
        std::fs::write(docs.join("perf/ycsb.svg"), chart(plan, &runs))?;
        println!("updated {}/perf/results.json and ycsb.md", docs.display());
    }
    let failed: u64 = runs.iter().map(|(_, r)| r.errors).sum();
    if failed > 0 {
        bail!("{failed} operations returned wrong or error replies");
    }
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

fn machine(plan: &Plan) -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    serde_json::json!({
        "experiment": "ycsb_machine",
        "cpu_model": cpu,
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "commit": commit,
        "command": plan.command_line,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "records": plan.records,
        "operations": plan.operations,
        "threads": plan.threads,
        "smt_endpoint_per_thread": plan.smt_endpoint_per_thread,
        "smt_endpoints": plan.smt_endpoints,
    })
}

fn records(plan: &Plan, runs: &[(usize, Run)]) -> Vec<serde_json::Value> {
    let mut out = vec![machine(plan)];
    for (rep, r) in runs {
        let by_op: serde_json::Map<String, serde_json::Value> = r
            .by_op
            .iter()
            .map(|(op, h)| {
                (
                    op.name().to_owned(),
                    serde_json::json!({"count": h.len(), "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99)}),
                )
            })
            .collect();
        out.push(serde_json::json!({
            "experiment": format!("ycsb_{}", r.workload.letter()),
            "transport": r.transport.name(),
            "server": r.server,
            "value_size": r.layout.value_size(),
            "threads": r.threads,
            "rep": rep,
            "ops_per_s": r.ops_per_s(),
            "p50_us": r.all.value_at_quantile(0.5),
            "p99_us": r.all.value_at_quantile(0.99),
            "operations": r.operations,
            "errors": r.errors,
            "missing": r.missing,
            "by_op": by_op,
        }));
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Medians over repetitions, their spread, and the ratios the experiment is about.
fn summary(plan: &Plan, runs: &[(usize, Run)]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "\nYCSB: {} records, {} operations per run, {} client threads (one connection or session each), {} repetition(s)\n",
        plan.records, plan.operations, plan.threads, plan.reps
    ));
    s.push_str("| workload | value | transport | server | ops/s (median, min-max) | p50 us | p99 us |\n|---|---|---|---|---|---|---|\n");
    let pick = |w: Workload, size: usize, t: Transport, server: &str| -> Vec<&Run> {
        runs.iter()
            .map(|(_, r)| r)
            .filter(|r| {
                r.workload == w
                    && r.layout.value_size() == size
                    && r.transport == t
                    && r.server == server
            })
            .collect()
    };
    let combos = COMBOS;
    let mut ratios = String::from("\n| workload | value | SMT / TLS-TCP (smt-kv) | p99 SMT / TLS-TCP | smt-kv / redis (tcp) | smt-kv / redis (tls-tcp) |\n|---|---|---|---|---|---|\n");
    for &size in &plan.value_sizes {
        for &w in &plan.workloads {
            for (t, server) in combos {
                let rs = pick(w, size, t, server);
                if rs.is_empty() {
                    continue;
                }
                let ops: Vec<f64> = rs.iter().map(|r| r.ops_per_s()).collect();
                let (lo, hi) =
                    ops.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {:.0} ({:.0}-{:.0}) | {:.0} | {:.0} |\n",
                    w.letter().to_ascii_uppercase(),
                    size,
                    t.name(),
                    server,
                    median(ops.clone()),
                    lo,
                    hi,
                    median(rs.iter().map(|r| r.all.value_at_quantile(0.5) as f64).collect()),
                    median(rs.iter().map(|r| r.all.value_at_quantile(0.99) as f64).collect()),
                ));
            }
            let m = |t, server| {
                median(pick(w, size, t, server).iter().map(|r| r.ops_per_s()).collect())
            };
            let p99 = |t, server| {
                median(
                    pick(w, size, t, server)
                        .iter()
                        .map(|r| r.all.value_at_quantile(0.99) as f64)
                        .collect(),
                )
            };
            let fmt = |x: f64| if x.is_nan() { "-".to_owned() } else { format!("{x:.2}x") };
            ratios.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                w.letter().to_ascii_uppercase(),
                size,
                fmt(m(Transport::Smt, "smt-kv") / m(Transport::TlsTcp, "smt-kv")),
                fmt(p99(Transport::Smt, "smt-kv") / p99(Transport::TlsTcp, "smt-kv")),
                fmt(m(Transport::Tcp, "smt-kv") / m(Transport::Tcp, "redis")),
                fmt(m(Transport::TlsTcp, "smt-kv") / m(Transport::TlsTcp, "redis")),
            ));
        }
    }
    s.push_str(&ratios);
    s
}

/// Throughput bars per workload and value size.
fn chart(plan: &Plan, runs: &[(usize, Run)]) -> String {
    use super::chart::{grouped_bars, Bar, Group};
    let mut groups = Vec::new();
    for &size in &plan.value_sizes {
        for &w in &plan.workloads {
            let mut bars = Vec::new();
            for (t, server) in COMBOS {
                let ops: Vec<f64> = runs
                    .iter()
                    .map(|(_, r)| r)
                    .filter(|r| {
                        r.workload == w
                            && r.layout.value_size() == size
                            && r.transport == t
                            && r.server == server
                    })
                    .map(Run::ops_per_s)
                    .collect();
                if ops.is_empty() {
                    continue;
                }
                let (lo, hi) =
                    ops.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                bars.push(Bar {
                    label: format!("{} / {server}", t.name()),
                    median: median(ops),
                    lo,
                    hi,
                });
            }
            groups.push(Group {
                label: format!("{} {size} B", w.letter().to_ascii_uppercase()),
                bars,
            });
        }
    }
    let title = format!(
        "YCSB throughput, {} client threads (median of {}, whiskers min-max)",
        plan.threads, plan.reps
    );
    grouped_bars(&title, "operations per second", &groups)
}

const COMBOS: [(Transport, &str); 5] = [
    (Transport::Smt, "smt-kv"),
    (Transport::TlsTcp, "smt-kv"),
    (Transport::Tcp, "smt-kv"),
    (Transport::TlsTcp, "redis"),
    (Transport::Tcp, "redis"),
];

/// Replaces the YCSB records of docs/perf/results.json with `records`.
fn merge_into_results(path: &Path, records: &[serde_json::Value]) -> anyhow::Result<()> {
    let mut all: Vec<serde_json::Value> = match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        Err(_) => Vec::new(),
    };
    all.retain(|r| !r["experiment"].as_str().is_some_and(|e| e.starts_with("ycsb_")));
    all.extend(records.iter().cloned());
    std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    Ok(())
}
