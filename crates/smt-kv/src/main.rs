//! The `smt-kv` command: `serve` runs the store on TCP, TLS and SMT listeners;
//! `cli` sends one command to the SMT listener and prints the reply.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use smt_kv::{Client, Reply, Server, ServerOptions};

#[derive(Parser)]
#[command(
    name = "smt-kv",
    version,
    about = "A RESP key-value store served over TCP, TLS over TCP and SMT at once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one store on the listeners given (at least one).
    Serve {
        /// Plain TCP listener (redis-cli -p PORT).
        #[arg(long)]
        tcp: Option<SocketAddr>,
        /// TLS-over-TCP listener (redis-cli --tls --cacert CERT -p PORT).
        #[arg(long)]
        tls: Option<SocketAddr>,
        /// SMT listener (smt-kv cli, smt_kv::Client).
        #[arg(long)]
        smt: Option<SocketAddr>,
        /// Certificate chain (PEM) for the TLS and SMT listeners (`smt keygen` makes one).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Private key (PEM) of the certificate.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Store shards (0: four per CPU).
        #[arg(long, default_value_t = 0)]
        shards: usize,
    },
    /// YCSB core workloads (A, B, C, D, F) against smt-kv over SMT, TLS/TCP and TCP,
    /// and against redis-server over TLS/TCP and TCP (started here if installed).
    Ycsb {
        /// Under a minute: workloads A and C, 1 KB values, 8 threads, 1 repetition.
        #[arg(long)]
        quick: bool,
        /// Workloads to run (default: a,b,c,d,f; quick: a,c).
        #[arg(long, value_delimiter = ',')]
        workloads: Option<Vec<String>>,
        /// Value sizes: 64 (8 x 8 B), 1024 (10 x 100 B), 4096 (40 x 100 B), 8192 (80 x 100 B).
        #[arg(long, value_delimiter = ',')]
        sizes: Option<Vec<usize>>,
        /// Client threads, each with its own connection or session (default 32, the paper's; quick 8).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        reps: Option<usize>,
        #[arg(long)]
        records: Option<u64>,
        /// Operations per run (split over the threads).
        #[arg(long)]
        operations: Option<u64>,
        /// Skip the redis-server reference runs.
        #[arg(long)]
        no_redis: bool,
        /// Give each SMT client thread its own endpoint (socket and driver task)
        /// instead of a session on one shared client endpoint.
        #[arg(long)]
        smt_endpoint_per_thread: bool,
        /// Client endpoints (sockets, each with its own driver task) the SMT
        /// sessions are spread over (default 1; see docs/PERFORMANCE.md).
        #[arg(long)]
        smt_endpoints: Option<usize>,
        /// Only these transports (smt, tls-tcp, tcp); default all.
        #[arg(long, value_delimiter = ',')]
        transports: Vec<String>,
        /// Directory for ycsb.json.
        #[arg(long, default_value = "target/ycsb")]
        out: PathBuf,
        /// Also replace the YCSB records in DIR/perf/results.json and write DIR/perf/ycsb.md.
        #[arg(long)]
        docs: Option<PathBuf>,
    },
    /// Send one command to an SMT listener and print the reply as redis-cli does.
    Cli {
        /// The SMT listener's address.
        #[arg(long)]
        connect: SocketAddr,
        /// Name to check the server's certificate against.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// Trusted certificate (the server's own, or its CA), PEM.
        #[arg(long)]
        ca: PathBuf,
        /// The command and its arguments, e.g. `SET k v`.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { tcp, tls, smt, cert, key, shards } => {
            let tls_config = match (cert, key) {
                (Some(cert), Some(key)) => Some(
                    smt::tls::server_config_from_pem(&cert, &key, None::<PathBuf>).with_context(
                        || format!("loading {} and {}", cert.display(), key.display()),
                    )?,
                ),
                (None, None) => None,
                _ => bail!("--cert and --key go together"),
            };
            let server = Server::start(ServerOptions { tcp, tls, smt, tls_config, shards }).await?;
            let listening: Vec<String> = [
                ("tcp", server.tcp_addr()),
                ("tls", server.tls_addr()),
                ("smt", server.smt_addr()),
            ]
            .into_iter()
            .filter_map(|(name, addr)| addr.map(|a| format!("{name} {a}")))
            .collect();
            println!("smt-kv listening: {}", listening.join(", "));
            tokio::select! {
                _ = server.run() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
        Command::Ycsb {
            quick,
            workloads,
            sizes,
            threads,
            reps,
            records,
            operations,
            no_redis,
            smt_endpoint_per_thread,
            smt_endpoints,
            transports,
            out,
            docs,
        } => {
            use smt_kv::ycsb::workload::Workload;
            let workloads = workloads.unwrap_or_else(|| {
                if quick {
                    vec!["a".into(), "c".into()]
                } else {
                    "a,b,c,d,f".split(',').map(String::from).collect()
                }
            });
            let workloads = workloads
                .iter()
                .map(|w| {
                    Workload::parse(w)
                        .with_context(|| format!("unknown workload {w} (a, b, c, d or f)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let plan = smt_kv::ycsb::bench::Plan {
                workloads,
                value_sizes: sizes.unwrap_or_else(|| {
                    if quick {
                        vec![1024]
                    } else {
                        vec![64, 1024, 4096]
                    }
                }),
                threads: threads.unwrap_or(if quick { 8 } else { 32 }),
                reps: reps.unwrap_or(if quick { 1 } else { 3 }),
                records: records.unwrap_or(if quick { 2_000 } else { 5_000 }),
                operations: operations.unwrap_or(if quick { 60_000 } else { 100_000 }),
                redis: !no_redis,
                out,
                docs,
                command_line: std::env::args().collect::<Vec<_>>().join(" "),
                smt_endpoint_per_thread,
                transports,
                smt_endpoints: smt_endpoints.unwrap_or(1),
            };
            smt_kv::ycsb::bench::execute(&plan).await?;
            Ok(())
        }
        Command::Cli { connect, server_name, ca, args } => {
            let tls = smt::tls::client_config_from_pem(&ca, None)
                .with_context(|| format!("loading {}", ca.display()))?;
            let client = Client::connect(connect, &server_name, tls).await?;
            let reply = client.command(&args).await?;
            let mut out = String::new();
            print_reply(&reply, 0, &mut out);
            print!("{out}");
            if matches!(reply, Reply::Error(_)) {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Formats a reply the way redis-cli prints it on a terminal.
fn print_reply(reply: &Reply, indent: usize, out: &mut String) {
    match reply {
        Reply::Simple(s) => out.push_str(&format!("{s}\n")),
        Reply::Error(e) => out.push_str(&format!("(error) {e}\n")),
        Reply::Integer(i) => out.push_str(&format!("(integer) {i}\n")),
        Reply::Bulk(b) => out.push_str(&format!("\"{}\"\n", b.escape_ascii())),
        Reply::Null => out.push_str("(nil)\n"),
        Reply::Array(items) if items.is_empty() => out.push_str("(empty array)\n"),
        Reply::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let pad = if i == 0 { String::new() } else { " ".repeat(indent) };
                let label = format!("{pad}{}) ", i + 1);
                out.push_str(&label);
                print_reply(item, label.len(), out);
            }
        }
        Reply::Map(pairs) => {
            let flat: Vec<Reply> = pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
            print_reply(&Reply::Array(flat), indent, out);
        }
    }
}
