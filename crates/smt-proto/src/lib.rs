//! The sans-IO core of SMT, the Secure Message Transport.
//!
//! SMT carries RPC messages between two endpoints as sequences of TLS 1.3 records,
//! with a per-message record sequence space (`message_id << 16 | record_index`) so
//! that messages are encrypted, sent, lost, retransmitted and decrypted independently.
//! This crate has no sockets, no clock and no threads: it turns bytes into bytes.
//!
//! Layers, in the direction data flows:
//!
//! * [`wire`]: packet formats (typed views and `Repr`s).
//! * [`record`]: TLS 1.3 record protection and the message-to-record layout.
//! * [`engine`]: sessions, RPCs, Homa-style scheduling and loss recovery.
//!
//! With the `rustls` feature, `rustls` implements the engine's TLS interface
//! ([`engine::TlsSession`]) with rustls, so the engine runs real TLS 1.3 handshakes
//! wherever it is driven (the `smt` crate, the simulator).
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, missing_docs, unreachable_pub)]

pub mod engine;
pub mod record;
#[cfg(feature = "rustls")]
pub mod rustls;
pub mod wire;
