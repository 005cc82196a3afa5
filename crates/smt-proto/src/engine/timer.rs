//! Timers: silence detection (RESEND / NEED_ACK / repeated GRANT prods), RPC
//! timeouts for lack of progress, delayed acknowledgements and handshake timers.
//!
//! Every deadline sits in a queue ordered by time (the [`RpcTable`]'s for RPCs, the
//! core's for the rest), so [`Endpoint::handle_timeout`] looks only at timers that
//! are due: an RPC waiting for the application, or one that heard from its peer
//! recently, costs nothing per call.
//!
//! [`RpcTable`]: super::rpc_table::RpcTable

use std::time::Instant;

use super::endpoint::{Endpoint, Timer};
use super::event::{Event, Role, RpcError, SessionHandle};
use super::rpc::{Prod, RpcState, Timeouts};
use super::rpc_table::RpcKey;
use super::session::Side;
use crate::wire::{Body, GrantRepr, ResendRepr};

/// Most RESEND packets one RPC sends per timer expiry.
const MAX_RESENDS_PER_TICK: usize = 8;

impl Endpoint {
    /// Runs timers that are due. Call when [`poll_timeout`](Self::poll_timeout) has
    /// passed (calling earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let fired_before = self.core.stats.timers_fired;
        while let Some(key) = self.rpcs.pop_due(now) {
            self.core.stats.timers_fired += 1;
            self.on_rpc_timer(key, now);
        }
        while let Some(timer) = self.core.timers.pop_due(now) {
            self.core.stats.timers_fired += 1;
            match timer {
                Timer::Acks(session) => {
                    let waiting = self.sessions.get(&session).is_some_and(
                        |s| matches!(&s.side, Side::Client(c) if !c.pending_acks.is_empty()),
                    );
                    if waiting {
                        self.core.acks_due.insert(session);
                    }
                }
                Timer::Handshake(key) => self.on_handshake_timer(key, now),
                Timer::Idle(session) => self.on_idle_timer(session, now),
            }
        }
        // Expired messages may have freed grant budget for others. Only when a timer
        // fired: an idle engine must report nothing to transmit.
        if self.core.stats.timers_fired != fired_before {
            self.core.grants_due = true;
        }
    }

    fn on_rpc_timer(&mut self, key: RpcKey, now: Instant) {
        let unscheduled = self.core.config.unscheduled_bytes;
        if self.client_handshake_unconfirmed(key.0) {
            // Our handshake finished but the server has not acknowledged our last
            // flight (it was lost): the server cannot have the session yet, so
            // silence is not the RPC's fault. The handshake's own retransmissions and
            // `handshake_timeout` bound this wait.
            self.rpcs.update(key, |rpc| rpc.live.last_progress = now);
        }
        // The session's answer pace may have changed since the RPC began (the first
        // calls of a burst start before any answer was measured): wait as it says.
        let ahead = self.rpcs.get(key).and_then(|rpc| rpc.ahead());
        if let (Some(ahead), Some(session)) = (ahead, self.sessions.get(&key.0)) {
            let answer_after = session.answer_after(ahead);
            self.rpcs.update(key, |rpc| rpc.live.timeouts.answer_after = answer_after);
        }
        let Some(rpc) = self.rpcs.get(key) else { return };
        let Timeouts { rpc_timeout, .. } = rpc.live.timeouts;
        let silence = rpc.silence();
        if !rpc.in_service() && now >= rpc.expiry() {
            let (role, oversized) = (rpc.role(), rpc.oversized_response());
            self.rpcs.remove(key);
            self.core.stats.rpc_timeouts += 1;
            if role == Role::Client {
                let max = self.core.config.max_message_len;
                let error = match oversized {
                    Some(len) => RpcError::ResponseTooLarge { len, max },
                    None => RpcError::Timeout(rpc_timeout),
                };
                self.core.events.push_back(Event::RpcFailed { session: key.0, id: key.1, error });
                self.fail_queued_if_server_silent(key.0, now, rpc_timeout);
            }
            return;
        }
        let silent = now.saturating_duration_since(rpc.live.last_heard) >= silence
            && now.saturating_duration_since(rpc.live.last_prod) >= silence;
        let mut prods: Vec<Body<'static>> = Vec::new();
        let resend_after = rpc.live.timeouts.resend_after;
        // A quiet session lets only a few RPCs ask per resend interval (see
        // `QuietAsks`); the others look again one interval later, by when the first
        // answers may have made the session audible.
        let deferred = silent
            && rpc.prod() == Some(Prod::AskForResponse)
            && !self.sessions.get_mut(&key.0).is_none_or(|s| s.allow_ask(now, resend_after));
        match rpc.prod() {
            Some(Prod::Incoming) if silent => {
                if let Some(inc) = rpc.incoming() {
                    // Until the message authenticates only gaps in record 0 matter (it
                    // decides whether the message is genuine; `grantable_limit` is its
                    // end then): forged DATA with holes everywhere draws no volley.
                    let mut gaps = inc.gaps(MAX_RESENDS_PER_TICK);
                    gaps.retain(|gap| gap.start < inc.grantable_limit());
                    if gaps.is_empty() && inc.granted() < inc.len() {
                        // Everything granted arrived: our last GRANT may have been lost.
                        prods.push(Body::Grant(GrantRepr { offset: inc.granted(), priority: 0 }));
                    }
                    prods.extend(gaps.into_iter().map(|gap| {
                        Body::Resend(ResendRepr {
                            offset: gap.start,
                            length: gap.end - gap.start,
                            priority: 0,
                        })
                    }));
                }
            }
            // Request sent, nothing back: ask for the response; the server answers
            // with data, BUSY, or RPC_UNKNOWN.
            Some(Prod::AskForResponse) if silent && !deferred => {
                prods.push(Body::Resend(ResendRepr {
                    offset: 0,
                    length: unscheduled.max(1),
                    priority: 0,
                }))
            }
            // Response sent, no ACK: ask whether it arrived.
            Some(Prod::NeedAck) if silent => prods.push(Body::NeedAck),
            _ => {}
        }
        if silent {
            // The silence was looked at (and the peer prodded, if there was anything
            // to prod with): the next look is one silence later, or one resend
            // interval for a deferred ask.
            let looked = match deferred {
                true => now.checked_sub(silence.saturating_sub(resend_after)).unwrap_or(now),
                false => now,
            };
            let recovering = !prods.is_empty();
            self.rpcs.update(key, |rpc| {
                rpc.live.last_prod = looked;
                if let Some(inc) = rpc.incoming_mut() {
                    inc.forget_round_trip();
                    inc.mark_stalled();
                    if recovering {
                        inc.note_prod();
                    }
                }
                if let RpcState::Client(client) = &mut rpc.state {
                    client.recovered |= recovering;
                }
            });
        }
        if !prods.is_empty() {
            if let Some(session) = self.sessions.get(&key.0) {
                for body in prods {
                    if matches!(body, Body::Resend(_)) {
                        self.core.stats.resends_sent += 1;
                    }
                    self.core.send_control(session, key.1, body);
                }
            }
        }
        // The timer fired (and was disarmed) whether or not anything changed.
        self.rpcs.rearm(key);
    }

    /// A call timed out and the server sent nothing at all for as long: the calls
    /// queued behind it would only wait for a window that never opens (and then
    /// time out one window at a time). They fail now, with the same error.
    fn fail_queued_if_server_silent(
        &mut self,
        session: SessionHandle,
        now: Instant,
        rpc_timeout: std::time::Duration,
    ) {
        let silent = self
            .sessions
            .get(&session)
            .is_some_and(|s| now.saturating_duration_since(s.last_activity) >= rpc_timeout);
        if !silent {
            return;
        }
        for id in self.rpcs.remove_queued(session) {
            self.core.stats.rpc_timeouts += 1;
            let error = RpcError::Timeout(rpc_timeout);
            self.core.events.push_back(Event::RpcFailed { session, id, error });
        }
    }
}
