//! Helpers shared by the simulator scenario tests.
#![allow(dead_code)]

pub mod tls;

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{Config, Event, RpcError, SessionHandle};
use smt_proto::wire::MessageId;
use smt_sim::{HostId, Network};

pub fn payload(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    rng.fill(&mut p[..]);
    p
}

/// Responses seen by `host`, by ID, failing the test on any duplicate delivery.
pub fn responses(net: &Network, host: HostId) -> HashMap<MessageId, Vec<u8>> {
    let mut seen = HashMap::new();
    for (_, e) in net.events(host) {
        if let Event::Response { id, payload, .. } = e {
            assert!(seen.insert(*id, payload.to_vec()).is_none(), "response {id} delivered twice");
        }
    }
    seen
}

pub fn failures(net: &Network, host: HostId) -> Vec<(MessageId, RpcError)> {
    net.events(host)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::RpcFailed { id, error, .. } => Some((*id, error.clone())),
            _ => None,
        })
        .collect()
}

/// The default configuration without the idle timeout. These scenarios run the
/// network until it goes quiet (every timer disarmed), which a session's idle
/// timer never lets happen; the idle timeout has scenarios of its own
/// (`lifecycle.rs`).
pub fn quiet_config() -> Config {
    let mut config = Config::default();
    config.idle_timeout = None;
    config
}

/// Whether `host` saw `session` established.
pub fn established(net: &Network, host: HostId, session: SessionHandle) -> bool {
    net.events(host)
        .iter()
        .any(|(_, e)| matches!(e, Event::SessionEstablished { session: s } if *s == session))
}

/// Why `host` saw `session` close, if it did.
pub fn closed(net: &Network, host: HostId, session: SessionHandle) -> Option<RpcError> {
    net.events(host).iter().find_map(|(_, e)| match e {
        Event::SessionClosed { session: s, reason } if *s == session => Some(reason.clone()),
        _ => None,
    })
}
