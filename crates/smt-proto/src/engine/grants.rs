//! The receiver's grant scheduler: SRPT over every incoming message of the endpoint,
//! shared fairly between peers.

use std::net::IpAddr;
use std::time::Instant;

use super::endpoint::Endpoint;
use super::rpc_table::RpcKey;
use crate::wire::{Body, GrantRepr};

/// Most grantable messages looked at per scheduling pass when choosing one per peer
/// (the pass stays cheap however many messages wait).
const MAX_CANDIDATES: usize = 1024;

impl Endpoint {
    /// Grants scheduled bytes: to the messages with the fewest bytes left, at most
    /// `max_overcommit` at once, never more than `max_incoming` outstanding, and never
    /// past a session's memory budget. While several peers (client addresses) wait,
    /// each gets at most one of the granted messages, its shortest: a peer with many
    /// messages (or many sessions) cannot take every grant slot. Messages whose first
    /// record has not authenticated are granted only up to its end, and senders that
    /// went silent with granted bytes missing get nothing until they send (see
    /// `IncomingMessage::grant_key`).
    /// The first byte each new grant releases is watched for: its arrival measures
    /// the session's grant round trip (see `rtt.rs`).
    pub(crate) fn schedule_grants(&mut self, now: Instant) {
        let c = &self.core.config;
        let (overcommit, max_incoming) = (c.max_overcommit, u64::from(c.max_incoming));
        let mut order = std::mem::take(&mut self.grant_scratch);
        self.fair_grant_order(overcommit, &mut order);
        for (rank, &key) in order.iter().enumerate() {
            let outstanding = self.rpcs.totals().granted_unreceived;
            if outstanding >= max_incoming {
                break;
            }
            let Some(session) = self.sessions.get(&key.0) else { continue };
            let window = session.path.grant_window();
            // Grants go out in steps of an eighth of the window (at least a packet),
            // not after every packet.
            let step = (window / 8).max(session.path.max_payload() as u32);
            let budget = max_incoming - outstanding;
            let room = self.rpcs.room(key.0);
            let grant = self.rpcs.update(key, |rpc| {
                let inc = rpc.incoming_mut()?;
                let limit = inc.grantable_limit();
                let target = limit.min(inc.bytes_received().saturating_add(window));
                if target <= inc.granted() {
                    return None;
                }
                // A message's charge grows byte for byte with its grant.
                let new = u64::from(target)
                    .min(u64::from(inc.granted()) + budget)
                    .min(u64::from(inc.granted()) + room as u64) as u32;
                if new <= inc.granted() {
                    return None;
                }
                inc.set_granted(new);
                let send = new == inc.len()
                    || new == limit
                    || new - inc.grant_sent() >= step
                    || inc.bytes_received().saturating_add(step) >= inc.grant_sent();
                if !send {
                    return None;
                }
                inc.watch_round_trip(now);
                inc.mark_grant_sent();
                // The sender needs a silence to answer the new grant before the
                // receiver asks again (or judges it stalled): a message that waited
                // long for a grant must not be prodded the moment it gets one.
                rpc.live.last_prod = now;
                Some(new)
            });
            if let Some(Some(offset)) = grant {
                let priority = (overcommit - rank).min(255) as u8;
                self.core.send_control(session, key.1, Body::Grant(GrantRepr { offset, priority }));
                self.core.stats.grants_sent += 1;
            }
        }
        self.grant_scratch = order;
    }

    /// Up to `n` messages to grant, in SRPT order: first the shortest of each peer
    /// address, then, if slots remain, the next shortest of any peer.
    fn fair_grant_order(&self, n: usize, out: &mut Vec<RpcKey>) {
        out.clear();
        let mut peers: Vec<IpAddr> = Vec::with_capacity(n);
        // (SRPT position, key) of the chosen, and of the runners-up.
        let mut chosen: Vec<(usize, RpcKey)> = Vec::with_capacity(n);
        let mut rest: Vec<(usize, RpcKey)> = Vec::new();
        for (position, key) in self.rpcs.grantable().take(MAX_CANDIDATES).enumerate() {
            if chosen.len() == n {
                break;
            }
            let Some(session) = self.sessions.get(&key.0) else { continue };
            let peer = session.peer.ip();
            if peers.contains(&peer) {
                if rest.len() < n {
                    rest.push((position, key));
                }
            } else {
                peers.push(peer);
                chosen.push((position, key));
            }
        }
        let free = n - chosen.len();
        chosen.extend(rest.into_iter().take(free));
        // Ranks set priorities: SRPT order among the chosen.
        chosen.sort_unstable_by_key(|&(position, _)| position);
        out.extend(chosen.into_iter().map(|(_, key)| key));
    }
}
