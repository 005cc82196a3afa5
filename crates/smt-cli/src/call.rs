//! `smt call`: handshake with an echo server, run N verified calls, report latency.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::load::{self, LoadReport, LoadSpec};
use crate::tls_config::Kx;
use crate::transport::{self, Transport};

/// Bound on the handshake (the transport's own handshake timeout is shorter; this
/// only guards against a hang).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// Server address, HOST:PORT. A name's addresses are all tried at once and the
    /// first handshake to succeed is used; `localhost` means both 127.0.0.1 and ::1.
    #[arg(long, value_name = "ADDR")]
    pub connect: String,
    /// Name the server's certificate must be valid for (DNS name or IP address).
    #[arg(long, value_name = "NAME")]
    pub server_name: String,
    /// Trusted CA certificates (PEM); a self-signed server certificate is its own CA.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// Request (and echoed response) payload size in bytes, at most 128 MiB (the
    /// largest message SMT carries by default).
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = parse_size)]
    pub size: usize,
    /// Number of calls (at least 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_count)]
    pub count: u64,
    /// Most calls in flight at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub concurrency: u64,
    /// Client certificate chain (PEM) for mutual TLS; requires --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; requires --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub transport: Transport,
    /// Key-exchange groups the ClientHello offers (post-quantum sends X25519MLKEM768
    /// and X25519 key shares).
    #[arg(long, value_enum, default_value_t)]
    pub kx: Kx,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Largest `--size`: the default `max_message_len`, checked before anything is
/// allocated.
const MAX_SIZE: usize = 128 << 20;

fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let size: usize = text.parse().map_err(|_| format!("{text:?} is not a byte count"))?;
    if size > MAX_SIZE {
        return Err(format!("{size} bytes is more than the largest message, {MAX_SIZE} (128 MiB)"));
    }
    Ok(size)
}

fn parse_count(text: &str) -> std::result::Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("0 calls would test nothing: give at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of calls")),
    }
}

pub async fn run(args: &CallArgs) -> Result<()> {
    let roots = smt::tls::load_certs(&args.ca)?;
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(smt::tls::Identity::from_pem_files(cert, key)?),
        _ => None,
    };
    let tls = smt::tls::client_config(args.kx.provider(), &roots, identity)?;
    let candidates = transport::resolve_all(&args.connect).await?;
    let started = Instant::now();
    let (server, endpoint, session) = connect_first(args, &candidates, &tls).await?;
    let handshake = started.elapsed();

    let spec = LoadSpec {
        size: args.size,
        count: args.count,
        concurrency: usize::try_from(args.concurrency).context("--concurrency")?,
    };
    let report = load::run(&session, spec, load::Progress::Interactive).await;
    let path = session.path();
    let client_stats = endpoint.stats();
    endpoint.close().await;
    let report = report.map_err(explain_rejection)?;
    if args.json {
        let mut json = report_json(server, handshake, &report, path.as_ref());
        json["client_counters"] = crate::stats::counters_json(&client_stats);
        say!("{json}");
    } else {
        print_report(server, &args.server_name, handshake, &report, path.as_ref());
    }
    if report.interrupted {
        bail!(
            "interrupted (Ctrl-C) after {} of {} calls; the results above cover those",
            report.completed,
            report.spec.count
        );
    }
    Ok(())
}

/// Handshakes with every address of `candidates` at once (a name such as
/// `localhost` may have an IPv4 and an IPv6 address, and the server may listen on
/// only one) and keeps the first session that succeeds; the others are dropped,
/// which closes them. If all fail, the error names each address and why.
async fn connect_first(
    args: &CallArgs,
    candidates: &[std::net::SocketAddr],
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<(std::net::SocketAddr, smt::Endpoint, smt::Session)> {
    let mut attempts = tokio::task::JoinSet::new();
    for &server in candidates {
        let endpoint = args.transport.client_endpoint(server, tls.clone())?;
        let name = args.server_name.clone();
        attempts.spawn(async move {
            let outcome =
                tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(server, &name)).await;
            (server, endpoint, outcome)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        let (server, endpoint, outcome) = joined.context("a connection attempt crashed")?;
        match outcome {
            Ok(Ok(session)) => return Ok((server, endpoint, session)),
            // No answer from this address: another may still answer.
            Ok(Err(e @ smt::Error::Handshake(smt::TlsError::NoReply { .. })))
            | Ok(Err(e @ smt::Error::Timeout(_))) => failures.push((server, format!("{e}"))),
            // A server answered and the handshake failed: that is the answer.
            Ok(Err(e)) => bail!("handshake with {server} ({}) failed: {e}", args.server_name),
            Err(_) => failures.push((server, format!("timed out after {CONNECT_TIMEOUT:?}"))),
        }
    }
    failures.sort_by_key(|(server, _)| candidates.iter().position(|c| c == server));
    if let [(server, reason)] = failures.as_slice() {
        bail!("handshake with {server} ({}) failed: {reason}", args.server_name);
    }
    let reasons: Vec<String> = failures.iter().map(|(s, e)| format!("{s}: {e}")).collect();
    bail!(
        "handshake with {} ({}) failed at every address: {}",
        args.connect,
        args.server_name,
        reasons.join("; ")
    )
}

/// In TLS 1.3 the client finishes its handshake before the server has checked the
/// client's certificate, so a server that rejects it (mutual TLS) shows up as a
/// session the server does not know: say so.
fn explain_rejection(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<smt::Error>() {
        Some(smt::Error::PeerReset) => anyhow::anyhow!(
            "{e:#}; if the server requires a client certificate (mutual TLS), it rejected \
             ours or we sent none (see --cert/--key)"
        ),
        _ => e,
    }
}

fn print_report(
    server: std::net::SocketAddr,
    name: &str,
    handshake: Duration,
    r: &LoadReport,
    path: Option<&smt::PathInfo>,
) {
    say!("connected to {server} (server name {name}) in {} us", handshake.as_micros());
    say!(
        "{} calls of {} B, concurrency {}: all responses verified{}",
        r.completed,
        r.spec.size,
        r.spec.concurrency,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    if r.completed == 0 {
        return;
    }
    say!(
        "latency us: p50 {} p90 {} p99 {} max {}",
        r.percentile_us(50.0),
        r.percentile_us(90.0),
        r.percentile_us(99.0),
        r.max_us()
    );
    say!(
        "throughput: {:.1} calls/s, {:.3} Gbit/s request+response payload, {:.3} s total",
        r.calls_per_sec(),
        r.payload_gbit_per_sec(),
        r.elapsed.as_secs_f64()
    );
    if let Some(p) = path {
        let rtt = p.smoothed_rtt.map_or("not measured".into(), |d| format!("{} us", d.as_micros()));
        say!(
            "path: {} B per DATA packet (from the path MTU), grant round trip {rtt} \
             ({} samples), grant window {} B",
            p.max_payload,
            p.rtt_samples,
            p.grant_window
        );
    }
}

fn report_json(
    server: std::net::SocketAddr,
    handshake: Duration,
    r: &LoadReport,
    path: Option<&smt::PathInfo>,
) -> serde_json::Value {
    json!({
        "server": server.to_string(),
        "handshake_us": u64::try_from(handshake.as_micros()).unwrap_or(u64::MAX),
        "size": r.spec.size,
        "count": r.spec.count,
        "concurrency": r.spec.concurrency,
        "verified": r.completed,
        "interrupted": r.interrupted,
        "p50_us": r.percentile_us(50.0),
        "p90_us": r.percentile_us(90.0),
        "p99_us": r.percentile_us(99.0),
        "max_us": r.max_us(),
        "elapsed_s": r.elapsed.as_secs_f64(),
        "calls_per_sec": r.calls_per_sec(),
        "payload_gbit_per_sec": r.payload_gbit_per_sec(),
        "packet_payload": path.map(|p| p.max_payload),
        "grant_rtt_us": path.and_then(|p| p.smoothed_rtt).map(|d| d.as_secs_f64() * 1e6),
        "grant_window": path.map(|p| p.grant_window),
    })
}
