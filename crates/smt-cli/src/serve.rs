//! `smt serve`: an echo server that prints its counters as JSON when stopped (and on
//! SIGUSR1, without stopping).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, info};

use crate::tls_config::Kx;
use crate::transport::{self, Transport};
use crate::{metrics_http, stats};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free port; a line
    /// "listening on ADDR" on stderr tells which). A name is listened on at every
    /// address it resolves to, with one port; `localhost` means both 127.0.0.1 and
    /// ::1. The counters printed are the sums over all of them.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// The server's certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Require client certificates issued by (or equal to) a certificate in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub transport: Transport,
    /// Key-exchange groups the server accepts, in order of preference.
    #[arg(long, value_enum, default_value_t)]
    pub kx: Kx,
    /// Serve metrics at http://ADDR/metrics (OpenMetrics text, for Prometheus);
    /// the line "metrics on ADDR" on stderr tells the bound address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Most sessions held at once. At the limit, the session idle longest (at least
    /// a second) is closed to make room; if none is, the new client is refused and
    /// told so.
    #[arg(long, value_name = "N", default_value_t = smt::TransportConfig::default().max_sessions,
          value_parser = clap::value_parser!(usize))]
    pub max_sessions: usize,
    /// Close a session that has had no traffic and no RPC for SECONDS (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub idle_timeout: u64,
}

impl ServeArgs {
    /// The transport settings these options ask for.
    fn transport_config(&self) -> Result<smt::TransportConfig> {
        let mut config = smt::TransportConfig::default();
        if self.max_sessions == 0 {
            anyhow::bail!("--max-sessions must be at least 1");
        }
        config.max_sessions = self.max_sessions;
        config.idle_timeout =
            (self.idle_timeout > 0).then(|| std::time::Duration::from_secs(self.idle_timeout));
        Ok(config)
    }
}

pub async fn run(args: &ServeArgs) -> Result<()> {
    let identity = smt::tls::Identity::from_pem_files(&args.cert, &args.key)?;
    let client_ca = args.client_ca.as_deref().map(smt::tls::load_certs).transpose()?;
    let tls = smt::tls::server_config(args.kx.provider(), identity, client_ca.as_deref())?;
    let listen = transport::resolve_all(&args.listen).await?;
    // Handlers first: a signal arriving right after "listening on" must stop us cleanly.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    // SIGUSR1 prints the counters and keeps serving; SIGHUP (a closed terminal, a
    // config-reload habit) must not kill the server without its counters.
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let endpoints = bind_all(args, &listen, tls)?;
    for endpoint in &endpoints {
        eprintln!("listening on {}", endpoint.local_addr());
    }
    let metrics = match args.metrics {
        Some(addr) => {
            let (bound, task) = metrics_http::spawn(addr, endpoints.clone()).await?;
            eprintln!("metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };
    let echoes: Vec<_> = endpoints.iter().map(|e| tokio::spawn(echo(e.clone()))).collect();
    let signal = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigusr1.recv() => say!("{}", stats::to_json(&endpoints)),
            _ = sighup.recv() => info!("SIGHUP ignored (SIGINT or SIGTERM stop the server)"),
        }
    };
    info!(signal, "shutting down");
    if let Some(task) = metrics {
        task.abort();
    }
    for echo in echoes {
        stop_echo(echo).await;
    }
    // Tells connected clients goodbye; bounded so a stuck peer cannot block exit.
    let close_all = close_all(&endpoints);
    if tokio::time::timeout(Duration::from_secs(5), close_all).await.is_err() {
        debug!("endpoint close timed out");
    }
    say!("{}", stats::to_json(&endpoints));
    Ok(())
}

/// Closes every endpoint.
async fn close_all(endpoints: &[smt::Endpoint]) {
    for endpoint in endpoints {
        endpoint.close().await;
    }
}

/// One endpoint per address, all on the first one's port (so port 0 picks one free
/// port for all). An address after the first that cannot be bound (IPv6 disabled,
/// say) is reported and left out; the first must work.
fn bind_all(
    args: &ServeArgs,
    listen: &[SocketAddr],
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> Result<Vec<smt::Endpoint>> {
    let config = args.transport_config()?;
    let Some((&first, rest)) = listen.split_first() else {
        anyhow::bail!("{:?} resolves to no address", args.listen);
    };
    let primary = args.transport.server_endpoint(first, tls.clone(), config.clone())?;
    let port = primary.local_addr().port();
    let mut endpoints = vec![primary];
    for addr in rest {
        let addr = SocketAddr::new(addr.ip(), port);
        match args.transport.server_endpoint(addr, tls.clone(), config.clone()) {
            Ok(endpoint) => endpoints.push(endpoint),
            Err(e) => eprintln!("warning: not listening on {addr}: {e:#}"),
        }
    }
    Ok(endpoints)
}

/// Answers every request with its own payload until the endpoint closes, on the
/// endpoint's I/O task (`Endpoint::serve`: no thread hand-off; the library seals
/// large responses on tasks of their own).
pub async fn echo(endpoint: smt::Endpoint) {
    if let Err(e) = endpoint.serve(|request| async move { request.into_payload() }).await {
        debug!("echo stopped: {e}");
    }
}

/// Stops the echo loop (before `Endpoint::close`, which would also end it), bounded.
pub async fn stop_echo(echo: tokio::task::JoinHandle<()>) {
    echo.abort();
    if tokio::time::timeout(Duration::from_secs(2), echo).await.is_err() {
        debug!("echo loop did not stop");
    }
}
