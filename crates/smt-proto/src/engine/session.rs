//! Per-session state: identity, keys, path parameters, and what only one side keeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::event::{Role, SessionHandle};
use super::keys::{RxKeys, TxKeys};
use super::path::Path;
use super::quiet_asks::QuietAsks;
use super::replay::ReplayWindow;
use super::rpc::Timeouts;
use super::rtt::RttEstimator;
use crate::record::{RecordKey, TrafficSecret};
use crate::wire::MessageId;

/// Keys and identity of a session, as installed after a handshake (in-band or not).
#[derive(Debug)]
pub struct SessionParams {
    /// The peer's address (for native IP mode: its IP and SMT port).
    pub peer: SocketAddr,
    /// The session ID both sides agreed on (in-band: chosen by the client).
    pub session_id: u64,
    /// Which side this endpoint is.
    pub role: Role,
    /// Protects what this endpoint sends.
    pub tx: RecordKey,
    /// Opens what the peer sends.
    pub rx: RecordKey,
    /// The secret behind `tx`, if known: enables key updates of what we send.
    pub tx_secret: Option<TrafficSecret>,
    /// The secret behind `rx`, if known: lets us follow the peer's key updates.
    pub rx_secret: Option<TrafficSecret>,
}

/// What only a client session keeps.
#[derive(Debug)]
pub(crate) struct ClientSide {
    /// The next request ID (IDs start at 1 and are never reused).
    pub next_id: u64,
    /// Responses received but not yet acknowledged to the server.
    pub pending_acks: Vec<MessageId>,
    /// How many RPCs may ask for their responses while the server is quiet.
    pub quiet_asks: QuietAsks,
}

/// What only a server session keeps.
#[derive(Debug)]
pub(crate) struct ServerSide {
    /// Which request IDs already ran.
    pub replay: ReplayWindow,
}

#[derive(Debug)]
pub(crate) enum Side {
    Client(ClientSide),
    Server(ServerSide),
}

#[derive(Debug)]
pub(crate) struct Session {
    pub handle: SessionHandle,
    pub peer: SocketAddr,
    pub session_id: u64,
    pub tx: TxKeys,
    pub rx: RxKeys,
    pub path: Path,
    /// Time per answer of this (client) session: call -> response times of RPCs
    /// answered without a restart whose response came whole in one packet, each
    /// divided by one more than the RPCs that were waiting ahead of it.
    pub answer_pace: RttEstimator,
    pub side: Side,
    /// When a packet of this session last arrived (or the session was installed):
    /// the idle timeout and keep-alive count from here.
    pub last_activity: Instant,
    /// When we last sent a keep-alive probe.
    pub last_keep_alive: Option<Instant>,
}

impl Session {
    pub(crate) fn new(
        handle: SessionHandle,
        params: SessionParams,
        config: &super::Config,
        now: Instant,
    ) -> Session {
        let path = Path::new(config);
        let side = match params.role {
            Role::Client => Side::Client(ClientSide {
                next_id: 1,
                pending_acks: Vec::new(),
                quiet_asks: QuietAsks::default(),
            }),
            Role::Server => Side::Server(ServerSide { replay: ReplayWindow::default() }),
        };
        Session {
            handle,
            peer: params.peer,
            session_id: params.session_id,
            tx: TxKeys::new(params.tx, params.tx_secret),
            rx: RxKeys::new(params.rx, params.rx_secret),
            path,
            answer_pace: RttEstimator::default(),
            side,
            last_activity: now,
            last_keep_alive: None,
        }
    }

    /// When the idle timer must next look at this session, if the configuration
    /// asks for idle expiry or keep-alives. `busy`: the session holds RPCs (it does
    /// not expire then; look again one idle timeout later).
    pub(crate) fn next_idle_check(
        &self,
        now: Instant,
        idle_timeout: Option<Duration>,
        keep_alive: Option<Duration>,
        busy: bool,
    ) -> Option<Instant> {
        let expiry =
            idle_timeout.map(|idle| if busy { now + idle } else { self.last_activity + idle });
        let probe = keep_alive.filter(|_| self.role() == Role::Client).map(|interval| {
            let since =
                self.last_keep_alive.map_or(self.last_activity, |t| t.max(self.last_activity));
            since + interval
        });
        let next = match (expiry, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Never in the past: a timer that fires must move the deadline forward.
        next.map(|at| at.max(now + Duration::from_micros(1)))
    }

    /// How long nothing has arrived on this session.
    pub(crate) fn quiet_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_activity)
    }

    /// Whether one more of this client session's RPCs may ask for its response now
    /// (see [`QuietAsks`]); a server session never asks.
    pub(crate) fn allow_ask(&mut self, now: Instant, resend_after: Duration) -> bool {
        let quiet_for = self.quiet_for(now);
        match &mut self.side {
            Side::Client(client) => client.quiet_asks.allow(now, quiet_for, resend_after),
            Side::Server(_) => true,
        }
    }

    /// The timeouts RPCs of this session run with (`answer_after` as for a call
    /// with nothing ahead of it: see [`answer_after`](Self::answer_after)).
    pub(crate) fn timeouts(&self) -> Timeouts {
        let (resend_after, rpc_timeout) = (self.path.resend_after(), self.path.rpc_timeout());
        Timeouts { resend_after, rpc_timeout, answer_after: self.answer_after(0) }
    }

    /// How long a call made with `ahead` RPCs already waiting waits for its
    /// response before asking for it: twice the session's time per answer for each
    /// answer due before it. With thousands of calls in flight the last is answered
    /// long after the first without anything being lost; with a few in flight this
    /// stays near `resend_after`, so a lost response is asked for soon.
    pub(crate) fn answer_after(&self, ahead: u32) -> Duration {
        let (resend_after, rpc_timeout) = (self.path.resend_after(), self.path.rpc_timeout());
        // Twice the smoothed pace, not RFC 6298's SRTT + 4 RTTVAR: losses make
        // answer times vary a lot, and the variance term would then slow the
        // recovery of exactly the answers that were lost. At most a quarter of the
        // RPC timeout: a lost response is still asked for a few times before the RPC
        // gives up.
        let pace = self.answer_pace.smoothed().unwrap_or_default();
        let expected = pace.saturating_mul(2).saturating_mul(ahead.saturating_add(1));
        expected.clamp(resend_after, (rpc_timeout / 4).max(resend_after))
    }

    pub(crate) fn role(&self) -> Role {
        match self.side {
            Side::Client(_) => Role::Client,
            Side::Server(_) => Role::Server,
        }
    }

    /// Fixed memory cost of a session, excluding its RPCs.
    pub(crate) fn overhead(&self) -> usize {
        let window = match self.side {
            Side::Server(_) => ReplayWindow::MEMORY,
            Side::Client(_) => 0,
        };
        core::mem::size_of::<Session>() + window
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use crate::engine::rpc::Rpc;

    /// The per-session and per-RPC costs stated in docs/ARCHITECTURE.md ("Memory").
    #[test]
    fn fixed_costs_match_the_documentation() {
        let session = core::mem::size_of::<Session>();
        let rpc = core::mem::size_of::<Rpc>();
        println!("Session {session} B, Rpc {rpc} B, replay window {} B", ReplayWindow::MEMORY);
        assert!(session <= 512, "Session grew to {session} B: update the docs");
        assert!(rpc <= 512, "Rpc grew to {rpc} B: update the docs");
        assert_eq!(ReplayWindow::MEMORY, 8192);
    }
}
