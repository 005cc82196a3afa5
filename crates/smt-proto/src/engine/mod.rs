//! The sans-IO RPC engine: Homa-style receiver-driven transport of encrypted messages.
//!
//! See [`Endpoint`] for the call order and for who owns what. Sub-modules, in the
//! direction data flows: `recv` (datagram to session), `client` / `server` (each
//! side's packets, over the RPC states of `rpc`), `incoming` (reassembly and record
//! opening), `rpc_table` (RPCs and the scheduler indices derived from them),
//! `outgoing`, `send` and `grants` (SRPT transmission and grants), `timer` and
//! `timer_queue` (loss recovery and timeouts), `keys` (traffic keys and key update),
//! `replay` (exactly-once), `handshake` (the in-band TLS stream), `retry` (address
//! validation under handshake floods).

mod buffers;
mod client;
mod config;
mod endpoint;
mod event;
mod grants;
mod handshake;
mod incoming;
mod keys;
mod lifecycle;
mod log_throttle;
mod migration;
mod opening;
mod outgoing;
mod path;
mod quiet_asks;
mod ranges;
mod recv;
mod replay;
mod retry;
mod rpc;
mod rpc_table;
mod rtt;
mod sealing;
mod send;
mod server;
mod session;
mod timer;
mod timer_queue;
mod tls;
mod tombstones;

pub use config::{AddressValidation, Config, ConfigError};
pub use endpoint::{Endpoint, PreparedMessage, SealedMessage, Transmit};
pub use event::{
    CallError, Event, InstallError, MemoryUsage, PathInfo, Role, RpcError, SessionHandle, Stats,
};
pub use handshake::{AMPLIFICATION_FACTOR, MIN_FIRST_DATAGRAM};
pub use opening::{OpenBatch, OpenPart};
pub use replay::{ReplayVerdict, ReplayWindow, REPLAY_WINDOW};
pub use sealing::SealPart;
pub use send::DATA_HEADER_LEN;
pub use session::SessionParams;
pub use tls::{Alert, TlsAcceptor, TlsError, TlsLibraryError, TlsSession};
