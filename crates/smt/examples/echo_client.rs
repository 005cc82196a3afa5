//! A minimal SMT client for the `echo_server` example.
//!
//! ```text
//! cargo run -p smt --example echo_server -- /tmp/smt-echo
//! cargo run -p smt --example echo_client -- /tmp/smt-echo
//! ```
//!
//! It trusts the certificate the server wrote to `DIR/cert.pem`, connects to
//! `127.0.0.1:4433` (or the address given as the second argument), sends a few
//! requests, and prints the responses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: echo_client DIR [ADDR]")?);
    let server: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:4433").parse()?;

    // 1. Trust the server's certificate (a self-signed certificate is its own CA).
    let cert_file = dir.join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cert_file)
        .with_context(|| format!("reading {} (is echo_server running?)", cert_file.display()))?
    {
        roots.add(cert?)?;
    }

    // 2. A rustls client configuration: aws-lc-rs (X25519MLKEM768 key exchange
    //    preferred), TLS 1.3 only. `smt::tls::client_config_from_pem` does steps 1
    //    and 2 in one call; this spells out the plain rustls way.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth(); // or .with_client_auth_cert(...) for mutual TLS

    // 3. A client endpoint on any free local port, then a session: a TLS 1.3
    //    handshake, carried in SMT packets, checking that the server is "localhost".
    let endpoint = smt::Endpoint::client("127.0.0.1:0".parse()?, Arc::new(tls))?;
    let started = Instant::now();
    let session = endpoint.connect(server, "localhost").await?;
    println!("connected to {server} in {:?}", started.elapsed());

    // 4. Calls. Each request and response is its own encrypted message.
    let response = session.call("hello, SMT").await?;
    println!("response: {:?}", String::from_utf8_lossy(&response));

    // Calls on one session run concurrently: the small call is not stuck behind
    // the large one.
    let big = vec![7u8; 4 << 20];
    let started = Instant::now();
    let (small, large) = tokio::join!(session.call("small"), session.call(big.clone()));
    ensure!(small? == "small", "small echo mismatch");
    ensure!(large? == big, "large echo mismatch");
    println!("a 5-byte and a 4 MiB call in parallel took {:?}", started.elapsed());

    // 5. Closing the endpoint ends its sessions and tells the server.
    endpoint.close().await;
    Ok(())
}
