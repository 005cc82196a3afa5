//! The receiver's grant scheduler: SRPT over every incoming message of the endpoint.

use std::time::Instant;

use super::endpoint::Endpoint;
use crate::wire::{Body, GrantRepr};

impl Endpoint {
    /// Grants scheduled bytes: to the messages with the fewest bytes left, at most
    /// `max_overcommit` at once, never more than `max_incoming` outstanding.
    /// The first byte each new grant releases is watched for: its arrival measures
    /// the session's grant round trip (see `rtt.rs`).
    pub(crate) fn schedule_grants(&mut self, now: Instant) {
        let c = &self.core.config;
        let (overcommit, max_incoming) = (c.max_overcommit, u64::from(c.max_incoming));
        let mut order = std::mem::take(&mut self.grant_scratch);
        self.rpcs.grant_order(overcommit, &mut order);
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
            let grant = self.rpcs.update(key, |rpc| {
                let inc = rpc.incoming_mut()?;
                let target = inc.len().min(inc.bytes_received().saturating_add(window));
                if target <= inc.granted() {
                    return None;
                }
                let new = u64::from(target).min(u64::from(inc.granted()) + budget) as u32;
                inc.set_granted(new);
                let send = new == inc.len()
                    || new - inc.grant_sent() >= step
                    || inc.bytes_received().saturating_add(step) >= inc.grant_sent();
                send.then(|| {
                    inc.watch_round_trip(now);
                    inc.mark_grant_sent();
                    new
                })
            });
            if let Some(Some(offset)) = grant {
                let priority = (overcommit - rank).min(255) as u8;
                self.core.send_control(session, key.1, Body::Grant(GrantRepr { offset, priority }));
                self.core.stats.grants_sent += 1;
            }
        }
        self.grant_scratch = order;
    }
}
