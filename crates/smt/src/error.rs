//! The errors a user of the `smt` crate sees.

use std::time::Duration;

use smt_proto::engine::{CallError, RpcError, TlsError};

/// Everything that can go wrong with an SMT endpoint, session or RPC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TLS handshake failed: the peer's alert, or this side's TLS library's
    /// reason (an untrusted certificate, a name mismatch), with the alert it sent.
    /// Match on [`TlsError`]'s variants or [`TlsError::alert`].
    #[error("TLS handshake failed: {0}")]
    Handshake(TlsError),
    /// The peer was silent for the configured timeout.
    #[error("peer did not answer within {0:?}")]
    Timeout(Duration),
    /// A request or response exceeds the configured maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The message's payload length.
        len: usize,
        /// `TransportConfig::max_message_len` of the side that refused it.
        max: usize,
    },
    /// The session was closed by this side.
    #[error("session closed locally")]
    SessionClosed,
    /// The peer closed the session (explicitly, or because it was idle there for
    /// the peer's idle timeout, or to make room at its session limit).
    #[error("session closed by the peer")]
    PeerClosed,
    /// Nothing arrived on the session, which had no RPC in flight, for the idle
    /// timeout (`TransportConfig::idle_timeout`), and it was closed. Connect again,
    /// or set `TransportConfig::keep_alive` to keep quiet sessions open.
    #[error(
        "the session expired after {0:?} without traffic: connect again, or enable keep-alive"
    )]
    IdleTimeout(Duration),
    /// The peer no longer knows the session, typically because it restarted.
    #[error("the peer has no state for this session (did it restart?)")]
    PeerReset,
    /// The endpoint was shut down.
    #[error("endpoint is closed")]
    EndpointClosed,
    /// The request was already answered, or never existed.
    #[error("request already answered or unknown")]
    UnknownRequest,
    /// Too many requests are outstanding on the session.
    #[error("too many outstanding requests on this session ({0})")]
    TooManyOutstanding(usize),
    /// The session's traffic key has protected as many records as is safe (RFC 8446
    /// 5.5: 2^24.5 for AES-GCM) and cannot be updated: the session was installed
    /// without traffic secrets, or the peer has not confirmed the previous update.
    #[error("the session's key reached its usage limit of {0} records; open a new session")]
    KeyExhausted(u64),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// `connect` was called on an endpoint built without a client TLS configuration.
    #[error("no client TLS configuration: use EndpointBuilder::client_config")]
    NoClientConfig,
    /// Key material given to `install_session` is unusable.
    #[error("invalid key material: {0}")]
    InvalidKeys(String),
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Native IP mode opens raw sockets, which Linux allows only with CAP_NET_RAW.
    #[error("native IP mode needs CAP_NET_RAW: run as root, or grant it with `setcap cap_net_raw+ep <binary>`")]
    NeedsCapNetRaw,
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Timeout(d) => Error::Timeout(d),
            RpcError::LocallyClosed => Error::SessionClosed,
            RpcError::PeerClosed => Error::PeerClosed,
            RpcError::PeerReset => Error::PeerReset,
            RpcError::ResponseTooLarge { len, max } => Error::MessageTooLarge { len, max },
            RpcError::Handshake(reason) => Error::Handshake(reason),
            RpcError::IdleTimeout(idle) => Error::IdleTimeout(idle),
            RpcError::Reclaimed => Error::SessionClosed,
            other => Error::Config(other.to_string()),
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::UnknownSession => Error::SessionClosed,
            CallError::SessionClosed(reason) => reason.into(),
            CallError::RpcGone => Error::UnknownRequest,
            CallError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            CallError::TooManyOutstanding(n) => Error::TooManyOutstanding(n),
            CallError::UnknownRequest(_) => Error::UnknownRequest,
            CallError::KeyExhausted(limit) => Error::KeyExhausted(limit),
            other => Error::Config(other.to_string()),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
