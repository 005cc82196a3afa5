//! SMT, the Secure Message Transport, for tokio.
//!
//! SMT carries RPCs between services as independent, encrypted messages: each message
//! is a sequence of TLS 1.3 records with its own record sequence space, so messages of
//! one session are sent, lost, retransmitted and decrypted independently. A small call
//! never waits behind a large one (no head-of-line blocking), short messages are
//! scheduled first (SRPT), and the keys come from a real TLS 1.3 handshake with your
//! rustls configuration, carried in-band on the same UDP port.
//!
//! ```no_run
//! use std::sync::Arc;
//! # async fn demo(client_tls: Arc<rustls::ClientConfig>) -> Result<(), smt::Error> {
//! let endpoint = smt::Endpoint::client("0.0.0.0:0".parse().unwrap(), client_tls)?;
//! let session = endpoint.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?;
//! let response = session.call("ping").await?;
//! assert_eq!(response, "ping"); // against an echo server
//! # Ok(()) }
//! ```
//!
//! Servers: build an endpoint with [`Endpoint::server`] and loop over
//! [`Endpoint::accept`], answering each [`IncomingRequest`]. Keys negotiated outside
//! SMT can be installed with [`Endpoint::install_session`]. If `SSLKEYLOGFILE` is set,
//! TLS secrets are written there in NSS key log format on both sides.
// `unsafe` is denied everywhere except `socket::raw_ip` (sendmmsg for native IP mode).
#![deny(unsafe_code)]

mod driver;
mod endpoint;
mod error;
mod keys;
mod session;
mod socket;
mod tls;

pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{Error, Result};
pub use keys::{SessionKeys, TrafficKey};
pub use session::{IncomingRequest, Session};
pub use smt_proto::engine::{Config as TransportConfig, Role, Stats};
pub use smt_proto::record::CipherSuite;
pub use socket::Transport;

/// Re-export of the rustls version SMT is built with.
pub use rustls;
