//! A deterministic simulated network with virtual time, for driving SMT's sans-IO
//! engine at scale without sockets: many hosts, per-link delay, bandwidth, loss,
//! duplication and reordering, all drawn from one seed. The same seed gives the same
//! trace, byte for byte.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod fuzz;
pub mod network;
pub mod workload;

pub use network::{take_datagrams, HostId, LinkConfig, Network, TraceEvent};
