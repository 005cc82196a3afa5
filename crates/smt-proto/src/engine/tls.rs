//! The interface between the engine and a TLS 1.3 implementation.
//!
//! The engine carries the handshake's bytes (reliably, over HANDSHAKE packets) and
//! installs the resulting traffic keys; the TLS library does the cryptography of the
//! handshake. The `smt` crate implements these traits with rustls; tests may use any
//! implementation.

use crate::record::{RecordKey, TrafficSecret};

/// One side of one TLS 1.3 handshake.
pub trait TlsSession: Send {
    /// Feeds bytes of the peer's handshake stream, in order, without gaps.
    fn read_handshake(&mut self, bytes: &[u8]) -> Result<(), TlsFailure>;
    /// Appends bytes the peer must receive (the TLS records the library wants sent).
    fn write_handshake(&mut self, out: &mut Vec<u8>);
    /// Whether the handshake is still in progress.
    fn is_handshaking(&self) -> bool;
    /// The negotiated traffic keys: `(tx, rx)` for this side. Called once, after the
    /// handshake completed and every byte from `write_handshake` was taken.
    fn traffic_keys(&mut self) -> Result<(RecordKey, RecordKey), TlsFailure>;
    /// The peer's certificate chain (DER), if it presented one.
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>>;
    /// The application traffic secrets `(tx, rx)` behind the traffic keys, which
    /// let the session update its keys. Called before `traffic_keys`. Without them the
    /// session works but cannot update keys (and refuses to seal past the usage limit).
    fn traffic_secrets(&mut self) -> Option<(TrafficSecret, TrafficSecret)> {
        None
    }
}

/// Creates the server side of new handshakes.
pub trait TlsAcceptor: Send {
    /// A fresh server-side session for a client at `peer`.
    fn start(&self, peer: std::net::SocketAddr) -> Box<dyn TlsSession>;
}

/// Why a handshake failed, in words for the user (e.g. rustls's error text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsFailure(pub String);
