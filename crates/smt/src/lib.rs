//! SMT, the Secure Message Transport, for tokio.
//!
//! SMT carries RPCs between services as independent, encrypted messages: each message
//! is a sequence of TLS 1.3 records with its own record sequence space, so messages of
//! one session are sent, lost, retransmitted and decrypted independently. A small call
//! never waits behind a large one (no head-of-line blocking), short messages are
//! scheduled first (SRPT), and the keys come from a real TLS 1.3 handshake with your
//! rustls configuration, carried in-band on the same UDP port.
//!
//! A complete round trip, runnable as is (it makes its own certificate; use yours):
//!
//! ```
//! use std::sync::Arc;
//! use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
//! let cert = CertificateDer::from(made.cert.der().to_vec());
//! let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
//! let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
//! let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
//!     .with_protocol_versions(&[&rustls::version::TLS13])?
//!     .with_no_client_auth()
//!     .with_single_cert(vec![cert.clone()], key)?;
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(cert)?;
//! let client_tls = rustls::ClientConfig::builder_with_provider(provider)
//!     .with_protocol_versions(&[&rustls::version::TLS13])?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//!
//! // An echo server...
//! let server = smt::Endpoint::server("127.0.0.1:0".parse()?, Arc::new(server_tls))?;
//! let server_addr = server.local_addr();
//! tokio::spawn(async move {
//!     while let Some(request) = server.accept().await {
//!         let echo = request.payload().clone();
//!         let _ = request.respond(echo);
//!     }
//! });
//!
//! // ...and a client with two calls in flight on one session.
//! let client = smt::Endpoint::client("127.0.0.1:0".parse()?, Arc::new(client_tls))?;
//! let session = client.connect(server_addr, "localhost").await?;
//! let (small, big) = tokio::join!(session.call("ping"), session.call(vec![7u8; 1 << 20]));
//! assert_eq!(small?, "ping");
//! assert_eq!(big?.len(), 1 << 20);
//! # Ok(())
//! # }
//! ```
//!
//! Servers: build an endpoint with [`Endpoint::server`] and loop over
//! [`Endpoint::accept`], answering each [`IncomingRequest`]. Keys negotiated outside
//! SMT can be installed with [`Endpoint::install_session`]. If `SSLKEYLOGFILE` is set,
//! TLS secrets are written there in NSS key log format on both sides.
// `unsafe` is denied everywhere except `socket::raw_ip` (sendmmsg for native IP mode).
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod crypto_pool;
mod driver;
mod endpoint;
mod error;
mod keys;
pub mod metrics;
mod serve;
mod session;
mod socket;
pub mod tls;
#[cfg(feature = "tower")]
pub mod tower;

pub use crypto_pool::CryptoPool;
pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{Error, Result};
pub use keys::{SessionKeys, TrafficKey};
pub use metrics::Metrics;
pub use serve::Request;
pub use session::{IncomingRequest, Session};
pub use smt_proto::engine::{
    AddressValidation, Alert, Config as TransportConfig, MemoryUsage, PathInfo, Role, Stats,
    TlsError,
};
pub use smt_proto::record::CipherSuite;
pub use socket::Transport;

// The README's Rust examples are doctests of this crate: they compile and run.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// Re-export of the rustls version SMT is built with.
pub use rustls;
