//! The sans-IO RPC engine: Homa-style receiver-driven transport of encrypted messages.
//!
//! See [`Endpoint`] for the call order. Sub-modules, in the direction data flows:
//! [`recv`](self) (datagram to state), `incoming` (reassembly and record opening),
//! `session` (RPC state), `outgoing` and `send` (SRPT transmission and grants),
//! `timer` (loss recovery and timeouts), `replay` (exactly-once).

mod config;
mod endpoint;
mod event;
mod handshake;
mod incoming;
mod outgoing;
mod ranges;
mod recv;
mod replay;
mod send;
mod session;
mod timer;
mod tls;

pub use config::{Config, ConfigError};
pub use endpoint::{Endpoint, PreparedMessage, Transmit};
pub use event::{
    CallError, Event, InstallError, MemoryUsage, Role, RpcError, SessionHandle, Stats,
};
pub use handshake::{AMPLIFICATION_FACTOR, MIN_FIRST_DATAGRAM};
pub use replay::{ReplayVerdict, ReplayWindow, REPLAY_WINDOW};
pub use send::DATA_HEADER_LEN;
pub use session::SessionParams;
pub use tls::{TlsAcceptor, TlsFailure, TlsSession};
