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
