//! `smt-bench`: SMT against TLS over TCP, QUIC, TCP and the raw UDP floor.
//!
//! `smt-bench all` (or `quick`) runs every experiment on loopback and, when the
//! testbed script exists, across two network namespaces joined by veth, then writes
//! `docs/PERFORMANCE.md`, SVG charts and `docs/perf/results.json`.
#![forbid(unsafe_code)]

mod bench;
mod bulk_floor;
mod client;
mod crypto_scaling;
mod engine_cost;
mod frame;
mod handshakes;
mod machine;
mod open_loop;
mod plan;
mod record;
mod report;
mod serve;
mod stats;
mod svg;
mod targets;
mod tls;
mod transport;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::bench::Link;
use crate::plan::Plan;
use crate::record::{exp, Record};
use crate::transport::Kind;

#[derive(Parser)]
#[command(version, about = "End-to-end benchmarks: SMT vs TLS/TCP, QUIC, TCP, raw UDP")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The full suite (about 10 minutes).
    All(RunArgs),
    /// A reduced set (under a minute), same outputs.
    Quick(RunArgs),
    /// Run one transport's echo server (used by the harness, also in other namespaces).
    Serve {
        #[arg(long, value_enum)]
        transport: Kind,
        #[arg(long)]
        listen: SocketAddr,
        /// Directory with cert.pem and key.pem.
        #[arg(long)]
        cert_dir: PathBuf,
    },
    /// In-process scaling of record crypto over worker threads (no sockets): N
    /// large requests sealed and opened through the engine and smt::CryptoPool.
    CryptoScaling {
        #[arg(long, default_value_t = 32)]
        messages: usize,
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
        /// Thread counts to compare (the first is the baseline).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        #[arg(long, default_value_t = 9)]
        reps: usize,
    },
    /// The engine's cost per DATA packet and per byte without AEAD or sockets
    /// (null cipher, 1412-byte packets, two engines in memory).
    EngineCost {
        #[arg(long, default_value_t = 16)]
        messages: usize,
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
        #[arg(long, default_value_t = 15)]
        reps: usize,
    },
    /// Handshake latency and handshakes per second on loopback, X25519 against
    /// X25519MLKEM768, SMT and TLS over TCP.
    Handshakes {
        /// Handshakes one after another, for latency.
        #[arg(long, default_value_t = 300)]
        sequential: usize,
        /// Clients making handshakes at once, for the rate.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Regenerate PERFORMANCE.md and the charts from results.json.
    Report {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One closed-loop measurement on loopback, for profiling (e.g. under `perf
    /// record -a`): `in-flight` workers call `size`-byte echoes for `seconds`.
    Probe {
        #[arg(long, value_enum)]
        transport: Kind,
        #[arg(long, default_value_t = 64)]
        size: u64,
        #[arg(long, default_value_t = 1)]
        in_flight: u32,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Instead: the head-of-line experiment, 64 B calls idle and then while this
        /// many 1 MiB echoes stream on the same session.
        #[arg(long)]
        hol: Option<u32>,
        /// Leave client and server free to run on any CPU (default: pinned to one
        /// each, as in the full runs).
        #[arg(long)]
        no_pin: bool,
    },
    /// Internal: run one link's experiments and write its records as JSON.
    #[command(hide = true)]
    LinkRun {
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        link: String,
        #[arg(long)]
        client_ip: IpAddr,
        #[arg(long)]
        server_ip: IpAddr,
        #[arg(long)]
        server_ns: Option<String>,
        #[arg(long)]
        cert_dir: PathBuf,
        #[arg(long)]
        json_out: PathBuf,
        #[arg(long)]
        budget_s: u64,
        #[arg(long, value_delimiter = ',')]
        transports: Vec<Kind>,
        #[arg(long)]
        no_pin: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Output directory: PERFORMANCE.md goes there, charts and results.json into
    /// its perf/ subdirectory. Default: the workspace's docs/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the veth link even if the testbed exists.
    #[arg(long)]
    no_veth: bool,
    /// Only these transports (comma-separated).
    #[arg(long, value_delimiter = ',')]
    transports: Vec<Kind>,
    /// Do not pin the client to CPU 0 and the servers to CPU 1 (busy-poll variants
    /// stay pinned).
    #[arg(long)]
    no_pin: bool,
}

/// The tokio runtime of clients and servers: multi-threaded, 2 workers.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    // Diagnostic only (used for the profiling notes): single-threaded runtimes.
    if std::env::var_os("SMT_BENCH_CURRENT_THREAD").is_some() {
        return Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?);
    }
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// The runtime for `kind`'s client or server: like [`runtime`], except that
/// busy-polling SMT gets a single-threaded runtime. Its driver never sleeps, so on
/// this 2-vCPU machine (client and server both spinning) a second worker thread
/// would only fight the spinning one for a CPU; with one thread, the driver's
/// `yield_now` hands the thread straight to the woken call or request.
pub fn runtime_for(kind: Kind) -> Result<tokio::runtime::Runtime> {
    if kind.busy_poll() {
        Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
    } else {
        runtime()
    }
}

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::All(args) => run(Plan::all(), args, "all"),
        Cmd::Quick(args) => run(Plan::quick(), args, "quick"),
        Cmd::Serve { transport, listen, cert_dir } => serve::run(transport, listen, &cert_dir),
        Cmd::Report { out } => {
            let out = out.unwrap_or_else(|| workspace().join("docs"));
            let json = std::fs::read_to_string(out.join("perf/results.json"))
                .context("reading results.json")?;
            let all: Vec<serde_json::Value> = serde_json::from_str(&json)?;
            let records = all
                .into_iter()
                .filter(|r| !written_by_other_tools(r))
                .map(serde_json::from_value)
                .collect::<Result<Vec<Record>, _>>()
                .context("a benchmark record of results.json")?;
            write_report(&out, &records)
        }
        Cmd::Handshakes { sequential, concurrency, seconds, rounds } => {
            handshakes::run(sequential, concurrency, seconds, rounds)
        }
        Cmd::EngineCost { messages, size, reps } => engine_cost::run(messages, size, reps),
        Cmd::CryptoScaling { messages, size, threads, reps } => {
            crypto_scaling::run(messages, size, &threads, reps)
        }
        Cmd::Probe { transport, size, in_flight, seconds, hol, no_pin } => {
            client::PIN.store(!no_pin, std::sync::atomic::Ordering::Relaxed);
            client::pin_client_thread();
            let cert_dir = std::env::temp_dir().join(format!("smt-bench-{}", std::process::id()));
            tls::generate(&cert_dir)?;
            // The same runtime as the full runs use for this transport (busy-polling
            // clients get a single-threaded one).
            let result = runtime_for(transport)?.block_on(bench::probe(
                transport,
                size,
                in_flight,
                Duration::from_secs_f64(seconds),
                hol,
                &cert_dir,
            ));
            let _ = std::fs::remove_dir_all(&cert_dir);
            result
        }
        Cmd::LinkRun {
            quick,
            link,
            client_ip,
            server_ip,
            server_ns,
            cert_dir,
            json_out,
            budget_s,
            transports,
            no_pin,
        } => {
            client::PIN.store(!no_pin, std::sync::atomic::Ordering::Relaxed);
            client::pin_client_thread();
            let mut plan = if quick { Plan::quick() } else { Plan::all() };
            if !transports.is_empty() {
                plan.transports = transports;
            }
            if !cert_dir.join("cert.pem").exists() {
                tls::generate(&cert_dir)?;
            }
            let link = Link { name: link, client_ip, server_ip, server_netns: server_ns };
            let deadline = Instant::now() + Duration::from_secs(budget_s);
            let records =
                runtime()?.block_on(bench::run_link(&plan, &link, &cert_dir, deadline))?;
            std::fs::write(&json_out, serde_json::to_string(&records)?)?;
            Ok(())
        }
    }
}

/// Time budgets: the loopback link gets until `loopback` after the start, the whole
/// run must end by `total` (checked before each transport/repetition cell).
struct Budget {
    loopback: Duration,
    total: Duration,
}

fn run(mut plan: Plan, args: RunArgs, mode: &str) -> Result<()> {
    let started = Instant::now();
    let mut machine = machine::collect(&workspace());
    client::PIN.store(!args.no_pin, std::sync::atomic::Ordering::Relaxed);
    client::pin_client_thread();
    if !args.transports.is_empty() {
        plan.transports = args.transports.clone();
    }
    let budget = if mode == "quick" {
        Budget { loopback: Duration::from_secs(45), total: Duration::from_secs(50) }
    } else {
        Budget { loopback: Duration::from_secs(300), total: Duration::from_secs(540) }
    };
    let out = args.out.clone().unwrap_or_else(|| workspace().join("docs"));
    std::fs::create_dir_all(out.join("perf"))?;
    let cert_dir = std::env::temp_dir().join(format!("smt-bench-{}", std::process::id()));
    tls::generate(&cert_dir)?;
    eprintln!(
        "smt-bench {mode}: {} on {} vCPUs, writing to {}",
        machine.cpu_model,
        machine.cores,
        out.display()
    );

    let loopback = Link {
        name: "loopback".into(),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        server_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        server_netns: None,
    };
    let rt = runtime()?;
    let mut records =
        rt.block_on(bench::run_link(&plan, &loopback, &cert_dir, started + budget.loopback))?;
    drop(rt);

    let veth_note = if args.no_veth {
        "veth1500 skipped (--no-veth)".to_owned()
    } else if mode == "quick" {
        "veth1500 is not part of the quick run".to_owned()
    } else {
        let remaining = budget.total.saturating_sub(started.elapsed());
        match veth(&plan, &cert_dir, remaining) {
            Ok(mut v) => {
                records.append(&mut v);
                "veth1500 measured".to_owned()
            }
            Err(e) => {
                eprintln!("veth1500 not measured: {e:#}");
                format!("veth1500 not measured: {e:#}")
            }
        }
    };
    let _ = std::fs::remove_dir_all(&cert_dir);

    machine.command = std::env::args().collect::<Vec<_>>().join(" ");
    machine.mode = mode.to_owned();
    machine.duration_s = started.elapsed().as_secs_f64();
    machine.links = format!("loopback measured; {veth_note}");
    let machine_record = Record { machine: Some(machine), ..Record::new(exp::MACHINE, "", "") };
    records.insert(0, machine_record);
    let path = out.join("perf/results.json");
    let mut all = serde_json::to_value(&records)?;
    if let Some(all) = all.as_array_mut() {
        all.extend(other_tools_records(&path));
    }
    std::fs::write(&path, serde_json::to_string_pretty(&all)? + "\n")?;
    write_report(&out, &records)?;
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Whether a record of results.json comes from another tool that shares the file
/// (`smt-kv ycsb --docs`, experiments `ycsb_*`) rather than from this suite.
fn written_by_other_tools(record: &serde_json::Value) -> bool {
    record["experiment"].as_str().is_some_and(|e| e.starts_with("ycsb_"))
}

/// The records other tools wrote into the results.json at `path`, which a new run of
/// this suite keeps.
fn other_tools_records(path: &Path) -> Vec<serde_json::Value> {
    let Ok(json) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok(all) = serde_json::from_str::<Vec<serde_json::Value>>(&json) else {
        return Vec::new();
    };
    all.into_iter().filter(written_by_other_tools).collect()
}

fn write_report(out: &Path, records: &[Record]) -> Result<()> {
    let md_path = out.join("PERFORMANCE.md");
    let preserved = std::fs::read_to_string(&md_path)
        .ok()
        .and_then(|s| report::preserved_section(&s))
        .or_else(|| {
            let repo = workspace().join("docs/PERFORMANCE.md");
            std::fs::read_to_string(repo).ok().and_then(|s| report::preserved_section(&s))
        })
        .or_else(|| {
            let out = Command::new("git")
                .args(["show", "HEAD:docs/PERFORMANCE.md"])
                .current_dir(workspace())
                .output()
                .ok()?;
            report::preserved_section(&String::from_utf8_lossy(&out.stdout))
        });
    let profiling = std::fs::read_to_string(out.join("perf/profiling.md"))
        .or_else(|_| std::fs::read_to_string(workspace().join("docs/perf/profiling.md")))
        .ok();
    let md = report::generate(
        records,
        &out.join("perf"),
        "perf",
        preserved.as_deref(),
        profiling.as_deref(),
    )?;
    std::fs::write(&md_path, md)?;
    Ok(())
}

/// The testbed prefix used by the benchmark, so it never touches the namespaces of
/// other users of scripts/testbed.sh (the default prefix is "smt").
const TESTBED_PREFIX: &str = "smtbench";

/// Runs the experiments across the veth testbed (`scripts/testbed.sh up 2` with
/// prefix [`TESTBED_PREFIX`]): the client in host 1 (10.77.0.1), servers in host 2
/// (10.77.0.2). Takes the testbed down afterwards.
fn veth(plan: &Plan, cert_dir: &Path, budget: Duration) -> Result<Vec<Record>> {
    let script = workspace().join("scripts/testbed.sh");
    if !script.exists() {
        bail!("scripts/testbed.sh does not exist");
    }
    if !machine::is_root() {
        bail!("needs root for network namespaces");
    }
    if budget < Duration::from_secs(30) {
        bail!("no time left in the budget");
    }
    let testbed = |args: &[&str]| {
        Command::new("bash").arg(&script).args(args).env("TESTBED_PREFIX", TESTBED_PREFIX).status()
    };
    let status = testbed(&["up", "2"])?;
    if !status.success() {
        bail!("`TESTBED_PREFIX={TESTBED_PREFIX} bash scripts/testbed.sh up 2` failed ({status})");
    }
    let (client_ns, server_ns) = (format!("{TESTBED_PREFIX}-h1"), format!("{TESTBED_PREFIX}-h2"));
    let json = cert_dir.join("veth.json");
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &client_ns]).arg(exe).args([
        "link-run",
        "--link",
        "veth1500",
        "--client-ip",
        "10.77.0.1",
        "--server-ip",
        "10.77.0.2",
        "--server-ns",
        &server_ns,
        "--budget-s",
        &budget.as_secs().to_string(),
    ]);
    cmd.arg("--cert-dir").arg(cert_dir).arg("--json-out").arg(&json);
    if plan.name == "quick" {
        cmd.arg("--quick");
    }
    let names: Vec<&str> = plan.transports.iter().map(|k| k.name()).collect();
    cmd.arg("--transports").arg(names.join(","));
    if !client::PIN.load(std::sync::atomic::Ordering::Relaxed) {
        cmd.arg("--no-pin");
    }
    let status = cmd.status();
    let _ = testbed(&["down"]);
    let status = status?;
    if !status.success() {
        bail!("the veth run failed ({status})");
    }
    let records: Vec<Record> = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    Ok(records)
}

#[cfg(test)]
mod results_file_tests {
    use super::*;

    #[test]
    fn a_new_run_keeps_the_ycsb_records_other_tools_wrote_into_results_json() {
        let dir = std::env::temp_dir().join(format!("smt-bench-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        let old = serde_json::json!([
            {"experiment": "rtt", "transport": "smt", "link": "loopback"},
            {"experiment": "ycsb_machine", "threads": 32},
            {"experiment": "ycsb_a", "transport": "smt", "ops_per_s": 1.0},
        ]);
        std::fs::write(&path, old.to_string()).unwrap();
        let kept = other_tools_records(&path);
        let names: Vec<&str> = kept.iter().filter_map(|r| r["experiment"].as_str()).collect();
        assert_eq!(names, ["ycsb_machine", "ycsb_a"]);
        assert!(!written_by_other_tools(&old[0]));
        assert!(other_tools_records(&dir.join("missing.json")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
