//! TLS configuration for SMT: PEM loading and rustls configurations built the way SMT
//! expects them, always with an explicit crypto provider.
//!
//! SMT takes a plain `rustls::ClientConfig` / `ServerConfig`, so any rustls
//! configuration works. These helpers are the short road: TLS 1.3 only, the aws-lc-rs
//! provider with post-quantum hybrid key exchange preferred ([`provider`]), and errors
//! that name the file at fault. Because they never call `ClientConfig::builder()`
//! (which picks the process-wide default provider and panics when an application links
//! two rustls providers), they work in any process.
//!
//! ```no_run
//! # fn main() -> Result<(), smt::tls::ConfigError> {
//! // A server presenting its certificate; clients need no certificate.
//! let server = smt::tls::server_config_from_pem("cert.pem", "key.pem", None::<&str>)?;
//! // A client trusting the CA (or self-signed certificate) in ca.pem.
//! let client = smt::tls::client_config_from_pem("ca.pem", None)?;
//! # let _ = (server, client);
//! # Ok(())
//! # }
//! ```

mod config;
mod handshake;
mod pem;

pub use config::{
    client_config, client_config_from_pem, provider, provider_with_kx_groups, server_config,
    server_config_from_pem, ConfigError, KxPreference,
};
pub(crate) use handshake::{
    client_config as adapt_client_config, server_config as adapt_server_config,
};
pub(crate) use handshake::{client_session, RustlsAcceptor};
pub use pem::{load_certs, load_key, Identity};
