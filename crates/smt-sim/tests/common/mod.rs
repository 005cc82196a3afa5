//! Helpers shared by the simulator scenario tests.
#![allow(dead_code)]

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use smt_proto::engine::{Event, RpcError};
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
