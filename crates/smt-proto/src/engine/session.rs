//! Per-session and per-RPC state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::event::{Role, SessionHandle};
use super::incoming::IncomingMessage;
use super::outgoing::OutgoingMessage;
use super::replay::ReplayWindow;
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

/// One RPC. A client RPC holds the request until the response's first record
/// authenticates, and the response as it arrives; a server RPC holds the request until it is delivered, then
/// waits for the application, then holds the response until the client acknowledges.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub out: Option<OutgoingMessage>,
    pub inc: Option<IncomingMessage>,
    /// Server: the request was delivered and no response was given yet.
    pub in_service: bool,
    /// Last time the peer sent anything about this RPC (drives RESEND timing).
    pub last_heard: Instant,
    /// Last time the RPC made progress: new bytes beyond the most ever received, a
    /// larger grant, or BUSY for a delivered request. Only progress keeps an RPC
    /// alive, so peers that keep talking without getting anywhere (wrong keys, a
    /// request that was already run) still end in a timeout.
    pub last_progress: Instant,
    /// Last time we prodded the peer (RESEND, NEED_ACK, repeated GRANT).
    pub last_prod: Instant,
    /// Client: how often the request was restarted after RPC_UNKNOWN, and when last.
    /// Restarts back off exponentially so a server that keeps refusing the request
    /// (too large, out of memory) is not flooded until the RPC times out.
    pub restarts: u32,
    pub last_restart: Instant,
    /// Key generation our outgoing message was sealed with.
    pub tx_generation: u64,
}

impl Rpc {
    pub fn new(now: Instant) -> Rpc {
        Rpc {
            out: None,
            inc: None,
            in_service: false,
            last_heard: now,
            last_progress: now,
            last_prod: now,
            restarts: 0,
            last_restart: now,
            tx_generation: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    pub handle: SessionHandle,
    pub role: Role,
    pub peer: SocketAddr,
    pub session_id: u64,
    pub tx: Arc<RecordKey>,
    pub rx: Arc<RecordKey>,
    pub rpcs: BTreeMap<MessageId, Rpc>,
    /// Client: the next request ID (IDs start at 1 and are never reused).
    pub next_id: u64,
    /// Server: which request IDs already ran.
    pub replay: Option<ReplayWindow>,
    /// Client: responses received but not yet acknowledged to the server.
    pub pending_acks: Vec<MessageId>,
    pub incoming_messages: usize,
    pub incoming_bytes: usize,
    /// Largest DATA payload towards this peer (larger on loopback).
    pub max_payload: usize,
    /// How far past received bytes we grant this peer's messages, and how much of
    /// our messages we send unscheduled (larger on loopback).
    pub grant_window: u32,
    pub unscheduled: u32,
    /// Records sealed under `tx` so far (the AEAD usage limit applies to this).
    pub tx_records: u64,
    pub tx_secret: Option<TrafficSecret>,
    /// KEY_PHASE bit of messages sealed with `tx`, and `tx`'s generation.
    pub tx_phase: bool,
    pub tx_generation: u64,
    /// Highest generation the peer provably received (it answered or acknowledged a
    /// message sealed with it). A new update waits for the previous one to be
    /// confirmed, so the peer is never two generations behind: the phase bit then
    /// always tells old from current.
    pub tx_confirmed: u64,
    pub rx_secret: Option<TrafficSecret>,
    /// KEY_PHASE bit of the peer's current key.
    pub rx_phase: bool,
    /// The peer's previous key, kept until the instant given, for its messages sealed
    /// before its update and still arriving.
    pub rx_previous: Option<(Arc<RecordKey>, Instant)>,
    /// The peer's next key (derived when first needed).
    pub rx_next: Option<Arc<RecordKey>>,
}

impl Session {
    pub fn new(handle: SessionHandle, params: SessionParams, config: &super::Config) -> Session {
        let loopback = params.peer.ip().is_loopback();
        let (max_payload, grant_window, unscheduled) = if loopback {
            (
                config.loopback_packet_payload.max(config.max_packet_payload),
                config.loopback_grant_window,
                config.loopback_unscheduled_bytes,
            )
        } else {
            (config.max_packet_payload, config.grant_window, config.unscheduled_bytes)
        };
        Session {
            handle,
            role: params.role,
            peer: params.peer,
            session_id: params.session_id,
            tx: Arc::new(params.tx),
            rx: Arc::new(params.rx),
            rpcs: BTreeMap::new(),
            next_id: 1,
            replay: (params.role == Role::Server).then(ReplayWindow::default),
            pending_acks: Vec::new(),
            incoming_messages: 0,
            incoming_bytes: 0,
            max_payload,
            grant_window,
            unscheduled,
            tx_records: 0,
            tx_secret: params.tx_secret,
            tx_phase: false,
            tx_generation: 0,
            tx_confirmed: 0,
            rx_secret: params.rx_secret,
            rx_phase: false,
            rx_previous: None,
            rx_next: None,
        }
    }

    /// Keys to try for a peer message whose KEY_PHASE bit is `phase`: the current key
    /// for the current phase; otherwise the previous key (if still kept) and the next
    /// one (if the secret is known), most likely first. `bool`: "this is the next key".
    pub fn rx_candidates(&mut self, phase: bool, now: Instant) -> Vec<(Arc<RecordKey>, bool)> {
        if phase == self.rx_phase {
            return vec![(self.rx.clone(), false)];
        }
        let mut keys = Vec::with_capacity(2);
        if let Some((previous, until)) = &self.rx_previous {
            if now < *until {
                keys.push((previous.clone(), false));
            }
        }
        if let Some(secret) = &self.rx_secret {
            let next = self.rx_next.get_or_insert_with(|| Arc::new(secret.next().record_key()));
            keys.push((next.clone(), true));
        }
        keys
    }

    /// The peer's messages now use its next key: keep the current one for `grace`.
    pub fn advance_rx(&mut self, now: Instant, grace: std::time::Duration) {
        let (Some(secret), Some(next)) = (self.rx_secret.take(), self.rx_next.take()) else {
            return;
        };
        let previous = std::mem::replace(&mut self.rx, next);
        self.rx_previous = Some((previous, now + grace));
        self.rx_secret = Some(secret.next());
        self.rx_phase = !self.rx_phase;
    }

    /// Fixed memory cost of a session, excluding its messages.
    pub fn overhead(&self) -> usize {
        let window = if self.replay.is_some() { ReplayWindow::MEMORY } else { 0 };
        core::mem::size_of::<Session>() + window + self.rpcs.len() * core::mem::size_of::<Rpc>()
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

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
