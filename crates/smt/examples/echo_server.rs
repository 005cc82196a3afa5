//! A minimal SMT echo server.
//!
//! It makes a self-signed certificate for `localhost`, writes the certificate (not the
//! key) to `DIR/cert.pem` for clients to trust, and answers every request with the
//! request's own bytes. Run it, then the client in another terminal:
//!
//! ```text
//! cargo run -p smt --example echo_server -- /tmp/smt-echo
//! cargo run -p smt --example echo_client -- /tmp/smt-echo
//! ```
//!
//! An optional second argument sets the listen address (default `127.0.0.1:4433`;
//! give the client the same one). Stop the server with Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr; try RUST_LOG=debug.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: echo_server DIR [ADDR]")?);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:4433").parse()?;

    // 1. A certificate. Real servers load theirs from files; a self-signed one for
    //    "localhost" is enough here. Clients must trust it, so publish it.
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::create_dir_all(&dir)?;
    let cert_file = dir.join("cert.pem");
    std::fs::write(&cert_file, generated.cert.pem())?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));

    // 2. A rustls server configuration: SMT runs a real TLS 1.3 handshake with it.
    //    Pick the crypto provider explicitly and allow TLS 1.3 only (SMT requires it);
    //    aws-lc-rs prefers the X25519MLKEM768 key exchange. From PEM files,
    //    `smt::tls::server_config_from_pem` builds the same in one call.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth() // or .with_client_cert_verifier(...) for mutual TLS
        .with_single_cert(vec![cert], key)?;

    // 3. The endpoint: one UDP socket for every session and every RPC.
    let endpoint = smt::Endpoint::server(addr, Arc::new(tls))?;
    println!("listening on {} (clients trust {})", endpoint.local_addr(), cert_file.display());

    // 4. Answer requests until Ctrl-C. `accept` yields requests from all sessions;
    //    respond to each (here: echo it). Responding does not block.
    let serve = async {
        while let Some(request) = endpoint.accept().await {
            let payload = request.payload().clone(); // `Bytes`: a cheap reference
            println!("{} bytes from {}", payload.len(), request.peer_addr());
            if let Err(e) = request.respond(payload) {
                eprintln!("respond failed: {e}");
            }
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
    }
    // The `serve` future (and its pending `accept`) is gone now; close tells
    // connected clients that their sessions ended.
    endpoint.close().await;
    println!("{:?}", endpoint.stats());
    Ok(())
}
