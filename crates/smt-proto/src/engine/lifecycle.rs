//! Session lifecycle: the idle timeout, keep-alive probes, and what happens at
//! `max_sessions` (idle sessions make room; otherwise the new client is told no).
//!
//! Each session has one lazy `Timer::Idle`: packets only stamp
//! `Session::last_activity`, and the timer, when it fires, decides from the stamps
//! whether to expire the session, probe the peer, or look again later. So traffic
//! costs nothing per packet, and a quiet session one timer firing per interval.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info};

use super::endpoint::{Endpoint, Timer};
use super::event::{Role, RpcError, SessionHandle};
use crate::wire::{Body, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};

/// The Message ID that keep-alive probes and their answers carry: no RPC has it
/// (request IDs start at 1), so neither packet touches an RPC.
pub(crate) const KEEP_ALIVE_ID: MessageId = MessageId::ZERO;

impl Endpoint {
    /// Arms (or re-arms) a session's idle timer for its next check, if the
    /// configuration asks for idle expiry or keep-alives.
    pub(crate) fn arm_idle_timer(&mut self, handle: SessionHandle, now: Instant) {
        let busy = self.rpcs.session_usage(handle).rpcs > 0;
        let Some(session) = self.sessions.get(&handle) else { return };
        let config = &self.core.config;
        if let Some(at) = session.next_idle_check(now, config.idle_timeout, config.keep_alive, busy)
        {
            self.core.timers.arm(Timer::Idle(handle), at);
        }
    }

    /// The idle timer fired: expire the session if it has been quiet (and held no
    /// RPC) for the idle timeout, send a keep-alive probe if one is due, and arm the
    /// timer for the next check.
    pub(crate) fn on_idle_timer(&mut self, handle: SessionHandle, now: Instant) {
        let busy = self.rpcs.session_usage(handle).rpcs > 0;
        let (idle_timeout, keep_alive) =
            (self.core.config.idle_timeout, self.core.config.keep_alive);
        let Some(session) = self.sessions.get_mut(&handle) else { return };
        let quiet = session.quiet_for(now);
        if let Some(idle) = idle_timeout.filter(|&idle| quiet >= idle && !busy) {
            self.core.stats.sessions_expired += 1;
            debug!(peer = %session.peer, session_id = session.session_id, ?idle, "session expired: idle");
            // Tell the peer, so that its next call fails at once and says why
            // instead of drawing SESSION_UNKNOWN (if this CLOSE is lost, it will).
            self.core.send_control(session, MessageId::default(), Body::Close);
            self.end_session(handle, RpcError::IdleTimeout(idle));
            return;
        }
        // Only clients probe: a client wants its session kept; a server that probed
        // would keep sessions alive that their clients let go.
        if let Some(interval) = keep_alive.filter(|_| session.role() == Role::Client) {
            let since_probe =
                session.last_keep_alive.map_or(quiet, |t| now.saturating_duration_since(t));
            if quiet >= interval && since_probe >= interval {
                session.last_keep_alive = Some(now);
                self.core.stats.keep_alives_sent += 1;
                self.core.send_control(session, KEEP_ALIVE_ID, Body::NeedAck);
            }
        }
        self.arm_idle_timer(handle, now);
    }

    /// Closes the server-side session that has been idle longest, if one holds no
    /// RPC and has been idle for `reclaim_idle_after`. Returns whether one was.
    ///
    /// The search walks every session, so after one that found nothing the next
    /// waits a tick: a flood of ClientHellos at a full server costs one walk per
    /// tick, not one per packet.
    pub(crate) fn reclaim_idle_session(&mut self, now: Instant) -> bool {
        if self.core.no_reclaim_until.is_some_and(|until| now < until) {
            return false;
        }
        let min_idle = self.core.config.reclaim_idle_after;
        let candidate = self
            .sessions
            .values()
            .filter(|s| s.role() == Role::Server && s.quiet_for(now) >= min_idle)
            .filter(|s| self.rpcs.session_usage(s.handle).rpcs == 0)
            .min_by_key(|s| s.last_activity)
            .map(|s| s.handle);
        let Some(handle) = candidate else {
            self.core.no_reclaim_until = Some(now + self.core.config.tick);
            return false;
        };
        if let Some(session) = self.sessions.get(&handle) {
            debug!(peer = %session.peer, session_id = session.session_id, "idle session reclaimed");
            self.core.send_control(session, MessageId::default(), Body::Close);
        }
        self.core.stats.sessions_reclaimed += 1;
        self.end_session(handle, RpcError::Reclaimed);
        true
    }

    /// Whether a new session fits under `max_sessions`, closing an idle one to make
    /// room if needed. Handshakes in progress count: each will become a session.
    pub(crate) fn room_for_new_session(&mut self, now: Instant) -> bool {
        let max = self.core.config.max_sessions;
        self.sessions.len() + self.pending_handshakes() < max || self.reclaim_idle_session(now)
    }

    /// Refuses a ClientHello because the endpoint is full: counts and logs it, and
    /// tells the client (BUSY with Message ID 0 on its handshake's session ID), so
    /// that its handshake fails with `TlsError::ServerFull` at once instead of
    /// timing out. The reply is smaller than the ClientHello that caused it and
    /// shares the rate limit of replies to unknown sessions.
    pub(crate) fn refuse_new_client(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &HeaderRepr,
    ) {
        self.core.stats.sessions_refused += 1;
        if let Some(not_logged) = self.core.refusal_log.due(now) {
            info!(
                peer = %from,
                not_logged,
                limit = self.core.config.max_sessions,
                "ClientHello refused: max_sessions reached and no session idle long enough to free"
            );
        }
        if !self.unknown_reply_allowed(now) {
            return;
        }
        let reply = PacketRepr {
            header: HeaderRepr {
                src_port: self.core.local_port,
                dst_port: from.port(),
                packet_type: PacketType::Busy,
                flags: Flags::empty(),
                session_id: header.session_id,
                message_id: KEEP_ALIVE_ID,
            },
            body: Body::Busy,
        };
        self.core.control.push_back((from, reply.to_vec()));
    }

    /// A packet that is no session's: if it is a server's refusal of a handshake
    /// this endpoint is waiting on, fail that handshake. Returns whether it was.
    pub(crate) fn on_refusal_during_handshake(
        &mut self,
        now: Instant,
        key: (SocketAddr, u64, Role),
        header: &HeaderRepr,
    ) -> bool {
        let refusal = header.packet_type == PacketType::Busy
            && header.message_id == KEEP_ALIVE_ID
            && key.2 == Role::Client
            && self.handshakes.get(&key).is_some_and(|hs| !hs.established);
        if refusal {
            self.fail_handshake(now, key, super::TlsError::ServerFull);
        }
        refusal
    }
}
