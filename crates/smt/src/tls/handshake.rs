//! rustls behind the engine's handshake interface: the adapter lives in
//! `smt_proto::rustls` (so the simulator can run real handshakes too); this module
//! maps its start-up errors into this crate's.

pub(crate) use smt_proto::rustls::{client_config, server_config, RustlsAcceptor};

use crate::error::Error;

/// A client handshake with `server_name`.
pub(crate) fn client_session(
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<smt_proto::rustls::RustlsSession, Error> {
    use smt_proto::rustls::ClientStartError;
    smt_proto::rustls::RustlsSession::client(config, server_name).map_err(|e| match e {
        ClientStartError::InvalidServerName(name) => Error::InvalidServerName(name),
        other => Error::Config(other.to_string()),
    })
}
