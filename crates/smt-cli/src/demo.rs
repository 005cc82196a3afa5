//! `smt demo`: a server and a client in one process on loopback, echo calls of
//! growing sizes, every response verified, and a latency/throughput table.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::load::{self, LoadReport, LoadSpec};
use crate::transport::Transport;
use crate::{keygen, serve, tls_config};

/// Payload sizes and how many calls of each: enough calls for a stable p99 at small
/// sizes, few at large sizes to stay well under 20 s in a release build.
const STEPS: &[(usize, u64)] = &[
    (0, 5000),
    (64, 5000),
    (1024, 5000),
    (16 << 10, 2000),
    (64 << 10, 1000),
    (1 << 20, 100),
    (16 << 20, 10),
];

/// Fail rather than hang if something goes wrong.
const DEADLINE: Duration = Duration::from_secs(120);

/// The server's certificate name.
const SERVER_NAME: &str = "localhost";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[arg(long, value_enum, default_value_t)]
    pub transport: Transport,
}

pub async fn run(args: &DemoArgs) -> Result<()> {
    tokio::time::timeout(DEADLINE, demo(args.transport))
        .await
        .map_err(|_| anyhow!("the demo did not finish within {DEADLINE:?}"))?
}

async fn demo(transport: Transport) -> Result<()> {
    // A fresh self-signed certificate; the client trusts exactly that certificate.
    let generated = keygen::self_signed(SERVER_NAME)?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let provider = tls_config::pinned_provider();
    let identity = smt::tls::Identity { certs: vec![cert.clone()], key };
    let server_tls = smt::tls::server_config(provider.clone(), identity, None)?;
    let client_tls = smt::tls::client_config(provider, std::slice::from_ref(&cert), None)?;

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server =
        transport.server_endpoint(loopback, server_tls, smt::TransportConfig::default())?;
    let echo = tokio::spawn(serve::echo(server.clone()));
    let client = transport.client_endpoint(server.local_addr(), client_tls)?;
    let started = Instant::now();
    let session = connect(&client, server.local_addr()).await?;
    let cold_handshake = started.elapsed();
    // The first handshake pays one-time library initialisation; time another one.
    let started = Instant::now();
    connect(&client, server.local_addr()).await?.close();
    let warm_handshake = started.elapsed();
    let presented = session.peer_certificates().unwrap_or_default();
    if presented.first().map(Vec::as_slice) != Some(cert.as_ref()) {
        bail!("the server did not present the generated certificate");
    }

    let defaults = smt::TransportConfig::default();
    say!(
        "SMT demo: encrypted echo RPCs over loopback (TLS 1.3, {}, in-band handshake)",
        tls_config::PINNED_SUITE
    );
    detail(
        "server",
        format!(
            "{} over {}, self-signed ECDSA P-256 certificate for {SERVER_NAME:?} made in memory",
            server.local_addr(),
            transport.name()
        ),
    );
    detail(
        "client",
        format!(
            "{}, trusts only that certificate; the server presented it ({} B DER)",
            client.local_addr(),
            cert.len()
        ),
    );
    detail(
        "TLS",
        format!(
            "1.3 only; cipher suite {}, key exchange {} (the only ones offered)",
            tls_config::PINNED_SUITE,
            tls_config::PINNED_KX_GROUP
        ),
    );
    detail(
        "handshake",
        format!(
            "{} us for the first session (includes one-time initialisation), {} us for a second",
            cold_handshake.as_micros(),
            warm_handshake.as_micros()
        ),
    );
    detail(
        "records",
        format!(
            "up to {} B plaintext per TLS record; up to {} B payload per datagram on \
             this path (from its MTU; {} B where the MTU is unknown)",
            defaults.record_size,
            session.path().map_or(defaults.max_packet_payload, |p| p.max_payload),
            defaults.max_packet_payload
        ),
    );
    detail("calls", "one at a time; every response compared byte for byte with its request");
    say!();
    say!(
        "{:>8} {:>6} {:>8} {:>8} {:>9} {:>8}",
        "size",
        "calls",
        "p50 us",
        "p99 us",
        "calls/s",
        "Gbit/s*"
    );

    let mut total_calls = 0;
    let run_started = Instant::now();
    for &(size, count) in STEPS {
        let spec = LoadSpec { size, count, concurrency: 1 };
        let report = load::run(&session, spec, load::Progress::Quiet)
            .await
            .with_context(|| format!("{} calls of {}", count, human_size(size)))?;
        print_row(&report);
        total_calls += count;
    }
    let run_time = run_started.elapsed();
    say!("* request + response payload bits / wall time (TLS, SMT, UDP, IP headers not counted)");
    say!();

    client.close().await;
    let client_stats = client.stats();
    let stats = server.stats();
    serve::stop_echo(echo).await;
    server.close().await;

    detail(
        "server",
        format!(
            "{} requests delivered, {} replays rejected, {} auth failures, {} sessions accepted",
            stats.requests_delivered,
            stats.replays_rejected,
            stats.auth_failures,
            stats.sessions_accepted
        ),
    );
    detail(
        "datagrams",
        format!(
            "server {} in / {} out, client {} in / {} out; resends: server {}, client {}",
            stats.datagrams_received,
            stats.datagrams_sent,
            client_stats.datagrams_received,
            client_stats.datagrams_sent,
            stats.resends_sent,
            client_stats.resends_sent
        ),
    );
    if stats.requests_delivered != total_calls || client_stats.responses_delivered != total_calls {
        bail!(
            "counters disagree: {total_calls} calls made, server delivered {} requests, client {} responses",
            stats.requests_delivered,
            client_stats.responses_delivered
        );
    }
    if stats.replays_rejected != 0 || stats.auth_failures != 0 {
        bail!("unexpected replays or authentication failures on loopback");
    }
    say!("OK: {total_calls} calls verified in {:.1} s", run_time.as_secs_f64());
    Ok(())
}

async fn connect(client: &smt::Endpoint, server: SocketAddr) -> Result<smt::Session> {
    tokio::time::timeout(Duration::from_secs(15), client.connect(server, SERVER_NAME))
        .await
        .map_err(|_| anyhow!("handshake with {server} timed out"))?
        .with_context(|| format!("handshake with {server} failed"))
}

/// One indented "label  text" line of the header or summary.
fn detail(label: &str, text: impl std::fmt::Display) {
    say!("  {label:<10} {text}");
}

fn print_row(r: &LoadReport) {
    say!(
        "{:>8} {:>6} {:>8} {:>8} {:>9.0} {:>8.3}",
        human_size(r.spec.size),
        r.spec.count,
        r.percentile_us(50.0),
        r.percentile_us(99.0),
        r.calls_per_sec(),
        r.payload_gbit_per_sec()
    );
}

/// "0 B", "64 B", "1 KiB", "16 MiB".
fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
