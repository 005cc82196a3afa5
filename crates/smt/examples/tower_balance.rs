//! tower over SMT: three servers answer through `Endpoint::serve_service` with a
//! concurrency limit; a client balances calls over one session per server (power of
//! two choices by pending calls) behind retry, timeout and concurrency-limit layers.
//! Halfway through, one server shuts down: its calls fail, are retried, and the
//! balancer drops its session. Self-contained on loopback:
//!
//! ```sh
//! cargo run --release -p smt --features tower --example tower_balance
//! ```

use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::{ServiceBuilder, ServiceExt};

/// Retries a failed call up to `0` more times. Only safe for idempotent requests:
/// a call that timed out may still have run on the server.
#[derive(Clone)]
struct Attempts(usize);

impl tower::retry::Policy<Bytes, Bytes, tower::BoxError> for Attempts {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Bytes,
        result: &mut Result<Bytes, tower::BoxError>,
    ) -> Option<Self::Future> {
        if result.is_err() && self.0 > 0 {
            self.0 -= 1;
            return Some(std::future::ready(()));
        }
        None
    }

    fn clone_request(&mut self, request: &Bytes) -> Option<Bytes> {
        Some(request.clone())
    }
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    let identity = smt::tls::Identity { certs: vec![cert.clone()], key };
    let server_tls = smt::tls::server_config(smt::tls::provider(), identity, None)?;
    let client_tls = smt::tls::client_config(smt::tls::provider(), &[cert], None)?;

    // Three servers, each answering "<name>:<request>" with at most 16 in service.
    let mut servers = Vec::new();
    for name in ["a", "b", "c"] {
        let server = smt::Endpoint::server("127.0.0.1:0".parse()?, server_tls.clone())?;
        let handler = tower::service_fn(move |request: smt::Request| async move {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(request.payload());
            Ok::<_, std::convert::Infallible>(reply)
        });
        let serving = server.clone();
        tokio::spawn(async move { serving.serve_service(handler, 16).await });
        servers.push(server);
    }

    let client = smt::Endpoint::client("127.0.0.1:0".parse()?, client_tls)?;
    let mut sessions = Vec::new();
    for server in &servers {
        sessions.push(client.connect(server.local_addr(), "localhost").await?);
    }
    let loaded = sessions
        .into_iter()
        .map(|s| tower::load::PendingRequests::new(s, tower::load::CompleteOnResponse::default()));
    let balanced = tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(loaded));
    // `Buffer` makes the balancer shareable (retries need a clonable service).
    let service = ServiceBuilder::new()
        .concurrency_limit(32)
        .retry(Attempts(2))
        .timeout(Duration::from_secs(2))
        .buffer(256)
        .service(balanced);
    // One concrete type for the composed stack (also lets the compiler see that its
    // futures are `Send`, which it cannot work out through the retry layer inside
    // `spawn`).
    let service = tower::util::BoxCloneSyncService::new(service);

    let before = run_calls(&service, 0..300).await?;
    servers[1].close().await; // server "b" goes away
    let after = run_calls(&service, 300..600).await?;
    println!("answers per server with all three up: {before:?}");
    println!("answers per server after b closed:    {after:?}");
    // What this example demonstrates, checked (scripts/test.sh runs it).
    if before.len() != 3 || after.contains_key("b") || after.values().sum::<usize>() != 300 {
        return Err("the balancer did not spread calls, or kept using the closed server".into());
    }
    Ok(())
}

type Client = tower::util::BoxCloneSyncService<Bytes, Bytes, tower::BoxError>;

/// Makes the calls numbered `range` at once; returns how many each server answered.
async fn run_calls(
    service: &Client,
    range: std::ops::Range<u32>,
) -> Result<std::collections::BTreeMap<String, usize>, tower::BoxError> {
    let mut calls = tokio::task::JoinSet::new();
    for i in range {
        let service = service.clone();
        calls.spawn(async move {
            let reply = service.oneshot(Bytes::from(format!("call {i}"))).await?;
            let reply = String::from_utf8(reply.to_vec())?;
            let (name, echoed) = reply.split_once(':').ok_or("malformed reply")?;
            if echoed != format!("call {i}") {
                return Err(format!("call {i} got the answer to {echoed:?}").into());
            }
            Ok::<_, tower::BoxError>(name.to_owned())
        });
    }
    let mut answered_by = std::collections::BTreeMap::new();
    while let Some(result) = calls.join_next().await {
        *answered_by.entry(result??).or_default() += 1;
    }
    Ok(answered_by)
}
