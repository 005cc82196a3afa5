//! Handshake latency and handshakes per second on loopback, X25519 against
//! X25519MLKEM768, for SMT (in-band rustls handshake over UDP) and, as the baseline,
//! TLS over TCP (tokio-rustls, TCP connect included).
//!
//! Latency: one client makes handshakes one after another (a new session each time,
//! closed before the next). Rate: `concurrency` clients do the same at once for a
//! fixed time. Rounds alternate between the groups so that machine noise hits both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// The groups compared, by IANA name.
fn groups() -> [(&'static str, &'static dyn SupportedKxGroup); 2] {
    [
        ("X25519", aws_lc_rs::kx_group::X25519),
        ("X25519MLKEM768", aws_lc_rs::kx_group::X25519MLKEM768),
    ]
}

fn provider(group: &'static dyn SupportedKxGroup) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![group],
        ..aws_lc_rs::default_provider()
    })
}

struct Configs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn configs(group: &'static dyn SupportedKxGroup) -> Result<Configs> {
    let made = rcgen::generate_simple_self_signed(vec![crate::tls::SERVER_NAME.to_owned()])?;
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    let server = smt::tls::server_config(
        provider(group),
        smt::tls::Identity { certs: vec![cert.clone()], key },
        None,
    )?;
    let client = smt::tls::client_config(provider(group), &[cert], None)?;
    Ok(Configs { server, client })
}

/// What one round measured for one group and transport.
#[derive(Debug, Clone, Copy)]
struct Round {
    p50_us: f64,
    p99_us: f64,
    per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Smt,
    TlsTcp,
}

impl Over {
    fn name(self) -> &'static str {
        match self {
            Over::Smt => "smt",
            Over::TlsTcp => "tls-tcp",
        }
    }
}

pub fn run(sequential: usize, concurrency: usize, seconds: f64, rounds: usize) -> Result<()> {
    let runtime = crate::runtime()?;
    let mut results: Vec<(Over, &str, Vec<Round>)> = Vec::new();
    for over in [Over::Smt, Over::TlsTcp] {
        for (name, _) in groups() {
            results.push((over, name, Vec::new()));
        }
    }
    for round in 0..rounds {
        for (over, name, rounds_of) in results.iter_mut() {
            let group = groups().into_iter().find(|(n, _)| n == name).map(|(_, g)| g);
            let group = group.context("group")?;
            let r = runtime.block_on(measure(*over, group, sequential, concurrency, seconds))?;
            eprintln!(
                "round {round}: {:8} {:15} p50 {:7.1} us  p99 {:7.1} us  {:7.0}/s",
                over.name(),
                name,
                r.p50_us,
                r.p99_us,
                r.per_s
            );
            rounds_of.push(r);
        }
    }
    println!(
        "handshakes on loopback ({sequential} sequential for latency, {concurrency} clients for {seconds} s for rate), median of {rounds} rounds"
    );
    println!("| transport | group | p50 (us) | p99 (us) | handshakes/s |");
    println!("|---|---|---:|---:|---:|");
    for (over, name, rounds_of) in &results {
        let med = |f: fn(&Round) -> f64| {
            let mut v: Vec<f64> = rounds_of.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |",
            over.name(),
            name,
            med(|r| r.p50_us),
            med(|r| r.p99_us),
            med(|r| r.per_s)
        );
    }
    Ok(())
}

async fn measure(
    over: Over,
    group: &'static dyn SupportedKxGroup,
    sequential: usize,
    concurrency: usize,
    seconds: f64,
) -> Result<Round> {
    let configs = configs(group)?;
    let server = Server::start(over, configs.server).await?;
    let client = match over {
        // One client endpoint (one UDP socket) opens every session, as an SMT client
        // talking to many servers would.
        Over::Smt => Client::Smt(smt::Endpoint::client("127.0.0.1:0".parse()?, configs.client)?),
        Over::TlsTcp => Client::TlsTcp(tokio_rustls::TlsConnector::from(configs.client)),
    };
    let client = Arc::new(client);
    // Latency: one at a time.
    let mut hist = Histogram::<u64>::new(3)?;
    for _ in 0..sequential.max(1) {
        let started = Instant::now();
        client.handshake(server.addr).await?;
        hist.record(started.elapsed().as_nanos() as u64)?;
    }
    // Rate: `concurrency` loops until the deadline.
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, addr) = (client.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                client.handshake(addr).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.stop().await;
    Ok(Round {
        p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        per_s: total as f64 / elapsed,
    })
}

enum Client {
    Smt(smt::Endpoint),
    TlsTcp(tokio_rustls::TlsConnector),
}

impl Client {
    /// One complete handshake: for SMT a new session (closed when dropped), for
    /// TLS/TCP a TCP connection and a TLS handshake on it.
    async fn handshake(&self, addr: SocketAddr) -> Result<()> {
        match self {
            Client::Smt(endpoint) => {
                let session = endpoint.connect(addr, crate::tls::SERVER_NAME).await?;
                drop(session);
            }
            Client::TlsTcp(connector) => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(crate::tls::SERVER_NAME)?;
                drop(connector.connect(name, tcp).await?);
            }
        }
        Ok(())
    }
}

struct Server {
    addr: SocketAddr,
    smt: Option<smt::Endpoint>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(over: Over, config: Arc<rustls::ServerConfig>) -> Result<Server> {
        let local: SocketAddr = "127.0.0.1:0".parse()?;
        match over {
            Over::Smt => {
                let endpoint = smt::Endpoint::server(local, config)?;
                let serving = endpoint.clone();
                let task = tokio::spawn(async move {
                    let _ = serving.serve(|r| async move { r.into_payload() }).await;
                });
                Ok(Server { addr: endpoint.local_addr(), smt: Some(endpoint), task })
            }
            Over::TlsTcp => {
                let listener = tokio::net::TcpListener::bind(local).await?;
                let addr = listener.local_addr()?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let task = tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            // Only the handshake is measured; the stream is dropped.
                            let _ = acceptor.accept(tcp).await;
                        });
                    }
                });
                Ok(Server { addr, smt: None, task })
            }
        }
    }

    async fn stop(self) {
        self.task.abort();
        if let Some(server) = self.smt {
            let _ = tokio::time::timeout(Duration::from_secs(2), server.close()).await;
        }
    }
}
