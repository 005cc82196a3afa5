//! Timers: silence detection (RESEND / NEED_ACK / repeated GRANT prods) and RPC
//! timeouts for lack of progress.

use std::time::Instant;

use super::endpoint::Endpoint;
use super::event::{Event, Role, RpcError};
use crate::wire::{Body, GrantRepr, MessageId, ResendRepr};

/// Most RESEND packets one RPC sends per tick.
const MAX_RESENDS_PER_TICK: usize = 8;

impl Endpoint {
    /// Runs timers that are due. Call when [`poll_timeout`](Self::poll_timeout) has
    /// passed (calling earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.next_tick else { return };
        if now < due {
            return;
        }
        self.next_tick = None;
        // Acknowledgements have waited long enough.
        let waiting = std::mem::take(&mut self.core.acks_pending);
        self.core.acks_due.extend(waiting);
        self.tick(now);
        self.handshake_tick(now);
        // Expired messages may have freed grant budget for others.
        self.schedule_grants();
        self.ensure_tick(now);
    }

    fn tick(&mut self, now: Instant) {
        let c = self.core.config.clone();
        let handles: Vec<_> = self.sessions.keys().copied().collect();
        for h in handles {
            let Some(session) = self.sessions.get_mut(&h) else { continue };
            let mut expired = Vec::new();
            let mut prods: Vec<(MessageId, Body<'static>)> = Vec::new();
            for (&id, rpc) in session.rpcs.iter_mut() {
                if now.saturating_duration_since(rpc.last_progress) >= c.rpc_timeout {
                    expired.push(id);
                    continue;
                }
                let silent = now.saturating_duration_since(rpc.last_heard);
                if silent < c.resend_after
                    || now.saturating_duration_since(rpc.last_prod) < c.resend_after
                {
                    continue;
                }
                let before = prods.len();
                if let Some(inc) = rpc.inc.as_ref() {
                    let gaps = inc.gaps(MAX_RESENDS_PER_TICK);
                    if gaps.is_empty() && inc.granted < inc.len() {
                        // Everything granted arrived: our last GRANT may have been lost.
                        prods.push((
                            id,
                            Body::Grant(GrantRepr { offset: inc.granted, priority: 0 }),
                        ));
                    }
                    for gap in gaps {
                        prods.push((
                            id,
                            Body::Resend(ResendRepr {
                                offset: gap.start,
                                length: gap.end - gap.start,
                                priority: 0,
                            }),
                        ));
                    }
                } else if let Some(out) = rpc.out.as_ref() {
                    if out.ready_key().is_none() {
                        match session.role {
                            // Request sent, nothing back: ask for the response; the
                            // server answers with data, BUSY, or RPC_UNKNOWN.
                            Role::Client => prods.push((
                                id,
                                Body::Resend(ResendRepr {
                                    offset: 0,
                                    length: c.unscheduled_bytes.max(1),
                                    priority: 0,
                                }),
                            )),
                            // Response sent, no ACK: ask whether it arrived.
                            Role::Server => prods.push((id, Body::NeedAck)),
                        }
                    }
                }
                if prods.len() > before {
                    rpc.last_prod = now;
                }
            }
            for (id, body) in prods {
                if matches!(body, Body::Resend(_)) {
                    self.core.stats.resends_sent += 1;
                }
                self.core.send_control(session, id, body);
            }
            for id in expired {
                let in_service = session.rpcs.get(&id).is_some_and(|r| r.in_service);
                if in_service {
                    // The application still owes this response; the client may be
                    // gone, but the RPC's fate is the application's to decide.
                    continue;
                }
                self.core.remove_rpc(session, id);
                self.core.stats.rpc_timeouts += 1;
                if session.role == Role::Client {
                    self.core.events.push_back(Event::RpcFailed {
                        session: h,
                        id,
                        error: RpcError::Timeout(c.rpc_timeout),
                    });
                }
            }
        }
    }
}
