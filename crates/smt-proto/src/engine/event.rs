//! What the engine tells its driver: events, errors and counters.

use crate::wire::MessageId;

/// Names a session inside one [`Endpoint`](super::Endpoint). Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionHandle(pub u64);

/// Which side of the session this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Initiated the session; sends requests, receives responses.
    Client,
    /// Accepted the session; receives requests, sends responses.
    Server,
}

/// An output of the engine, taken with [`Endpoint::poll_event`](super::Endpoint::poll_event).
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A server session received a complete, authenticated request. Answer it with
    /// [`Endpoint::respond`](super::Endpoint::respond). Delivered exactly once.
    Request {
        /// The server session it arrived on.
        session: SessionHandle,
        /// The request's ID; the response reuses it.
        id: MessageId,
        /// The request's bytes.
        payload: bytes::Bytes,
    },
    /// A client's RPC completed. Delivered exactly once.
    Response {
        /// The client session of the RPC.
        session: SessionHandle,
        /// The ID `call` returned.
        id: MessageId,
        /// The response's bytes.
        payload: bytes::Bytes,
    },
    /// A client's RPC failed; no response will be delivered for it.
    RpcFailed {
        /// The client session of the RPC.
        session: SessionHandle,
        /// The ID `call` returned.
        id: MessageId,
        /// Why it failed.
        error: RpcError,
    },
    /// A session's handshake completed and its keys are installed.
    SessionEstablished {
        /// The handle `connect` returned (client), or a new one (server).
        session: SessionHandle,
    },
    /// A session ended; all its RPCs have failed with the same reason.
    SessionClosed {
        /// The session that ended; its handle is never reused.
        session: SessionHandle,
        /// Why it ended (also kept by [`Endpoint::closed_reason`](super::Endpoint::closed_reason)).
        reason: RpcError,
    },
}

/// Why an RPC or a session ended without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The RPC made no progress for the configured RPC timeout.
    #[error("peer silent for {0:?}: timed out")]
    Timeout(std::time::Duration),
    /// The local side closed the session.
    #[error("session closed locally")]
    LocallyClosed,
    /// The peer closed the session.
    #[error("session closed by peer")]
    PeerClosed,
    /// The peer no longer knows the session (it restarted or dropped the state).
    #[error("peer has no state for this session (restarted?)")]
    PeerReset,
    /// The response is larger than this endpoint accepts.
    #[error("response of {len} bytes exceeds the limit of {max} bytes")]
    ResponseTooLarge {
        /// The response's payload length, as its header announced.
        len: usize,
        /// `Config::max_message_len`.
        max: usize,
    },
    /// The TLS handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(super::TlsError),
    /// Nothing was received on the session, which held no RPC, for
    /// `Config::idle_timeout`: it expired.
    #[error("session idle for {0:?}: expired")]
    IdleTimeout(std::time::Duration),
    /// The session was idle and closed to make room for a new one
    /// (`Config::max_sessions` reached).
    #[error("idle session closed to make room for a new one (max_sessions reached)")]
    Reclaimed,
}

/// Why [`Endpoint::call`](super::Endpoint::call), `respond`, their `begin_*` halves
/// or `finish` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No session has this handle (and none closed with it recently).
    #[error("no such session")]
    UnknownSession,
    /// The session ended (recently: the endpoint remembers the reason for a while).
    #[error("the session ended: {0}")]
    SessionClosed(RpcError),
    /// The message was prepared for a session or request that is gone (the session
    /// ended, or the request timed out, while the message was being sealed).
    #[error("the message's RPC no longer exists")]
    RpcGone,
    /// The bytes given to `finish` are not a message sealed from its `PreparedMessage`.
    #[error("the sealed message does not match what was prepared")]
    SealMismatch,
    /// A client operation on a server session, or the other way round.
    #[error("this side of the session cannot {0}")]
    WrongRole(&'static str),
    /// The payload is longer than `Config::max_message_len`.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest accepted.
        max: usize,
    },
    /// So many requests are outstanding that a new ID would fall outside the
    /// server's replay window.
    #[error("{0} requests are outstanding: the replay window would refuse more")]
    TooManyOutstanding(usize),
    /// All 2^48 message IDs of the session were used.
    #[error("message ID space of the session is exhausted")]
    IdsExhausted,
    /// No delivered request with this ID awaits a response (already answered,
    /// abandoned, or never delivered).
    #[error("no request {0} awaits a response")]
    UnknownRequest(MessageId),
    /// Sealing the message would exceed the AEAD usage limit of the session's key
    /// (RFC 8446 5.5) and the key cannot be updated (no traffic secrets, or the peer
    /// has not confirmed the previous update yet).
    #[error("the session's traffic key reached its usage limit of {0} records; reconnect")]
    KeyExhausted(u64),
}

/// Why a session could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A session with the same peer, ID and role exists.
    #[error("a session with this peer and ID already exists")]
    Duplicate,
    /// `Config::max_sessions` sessions are installed.
    #[error("the endpoint already holds its maximum of {0} sessions")]
    TooManySessions(usize),
}

/// Counters, for operators and tests. All only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams given to `handle_datagram`.
    pub datagrams_received: u64,
    /// Datagrams handed out by `poll_transmit` (a GSO batch counts each segment).
    pub datagrams_sent: u64,
    /// Bytes of the datagrams given to `handle_datagram` (SMT headers included, UDP
    /// and IP headers not).
    pub bytes_received: u64,
    /// Bytes of the datagrams handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// DATA packets sent again (asked for by a RESEND, or a message restarted after
    /// a timeout).
    pub data_retransmitted: u64,
    /// Packets that shared a datagram with others (bundles) instead of taking one.
    pub packets_bundled: u64,
    /// Datagrams that failed to parse, or described impossible messages.
    pub malformed: u64,
    /// Datagrams whose header names another destination port.
    pub misdirected: u64,
    /// Datagrams for no session of this endpoint.
    pub unknown_session: u64,
    /// Packets about an RPC the session does not hold.
    pub unknown_rpc: u64,
    /// DATA that carried no new bytes (retransmissions, duplicates, replays of a
    /// request already delivered).
    pub duplicate_packets: u64,
    /// DATA holding only bytes beyond the message's grant (never asked for: dropped).
    pub beyond_grant: u64,
    /// DATA for a message whose records were out being opened (see
    /// `Endpoint::take_records_to_open`): dropped, asked for again if needed.
    pub dropped_while_opening: u64,
    /// Client RPCs the application abandoned (`Endpoint::cancel_call`).
    pub calls_cancelled: u64,
    /// Calls that waited for their session's unscheduled window before their request
    /// went out (`Config::max_unscheduled_in_flight`).
    pub calls_queued: u64,
    /// Requests delivered to the application (each exactly once).
    pub requests_delivered: u64,
    /// Responses delivered to the application (each exactly once).
    pub responses_delivered: u64,
    /// DATA for request IDs the replay window refused (already run, or too old).
    pub replays_rejected: u64,
    /// Records that failed authentication, and messages whose prologue was forged.
    pub auth_failures: u64,
    /// New incoming messages refused by memory limits.
    pub admission_refused: u64,
    /// RESEND packets sent.
    pub resends_sent: u64,
    /// GRANT packets sent.
    pub grants_sent: u64,
    /// RPCs freed for lack of progress.
    pub rpc_timeouts: u64,
    /// Server sessions established by the in-band handshake.
    pub sessions_accepted: u64,
    /// Handshakes that failed (either side).
    pub handshakes_failed: u64,
    /// ClientHellos dropped because `max_pending_handshakes` were in progress.
    pub handshakes_refused: u64,
    /// RETRY packets sent: ClientHellos answered with a token instead of a handshake.
    pub retries_sent: u64,
    /// ClientHellos dropped because their retry token was forged, expired or issued
    /// to another address or session.
    pub retry_tokens_rejected: u64,
    /// RETRY packets a client followed (at most one per handshake).
    pub retries_followed: u64,
    /// New clients refused because `max_sessions` sessions were live and none had
    /// been idle for `reclaim_idle_after` (each was told: `TlsError::ServerFull`).
    pub sessions_refused: u64,
    /// Idle sessions closed to make room for new ones at `max_sessions`.
    pub sessions_reclaimed: u64,
    /// Sessions closed by the idle timeout.
    pub sessions_expired: u64,
    /// Keep-alive probes sent.
    pub keep_alives_sent: u64,
    /// Server sessions that moved to a new client address (NAT rebinding), on a
    /// packet from there that carried new, authenticated data.
    pub address_changes: u64,
    /// Packets of a live server session that came from another address and did not
    /// prove the session's key with new data: dropped, the session left where it is.
    pub address_changes_refused: u64,
    /// Key updates of our sending key.
    pub key_updates_sent: u64,
    /// Key updates of the peer's key, seen on its messages.
    pub key_updates_received: u64,
    /// RPC, acknowledgement and handshake timers that fired. Timers are kept in
    /// deadline order, so this counts all the timer work the endpoint did: idle RPCs
    /// (a request the application is still answering) cost none.
    pub timers_fired: u64,
}

impl Stats {
    /// Every counter as `(name, description, value)`, in declaration order: for
    /// exporters (metrics, JSON) that should not need a list of their own.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("datagrams_received", "Datagrams given to `handle_datagram`", self.datagrams_received),
            ("datagrams_sent", "Datagrams handed out by `poll_transmit` (a GSO batch counts each segment)", self.datagrams_sent),
            ("bytes_received", "Bytes of the datagrams given to `handle_datagram` (SMT headers included, UDP and IP headers not)", self.bytes_received),
            ("bytes_sent", "Bytes of the datagrams handed out by `poll_transmit`", self.bytes_sent),
            ("data_retransmitted", "DATA packets sent again (asked for by a RESEND, or a message restarted after a timeout)", self.data_retransmitted),
            ("packets_bundled", "Packets that shared a datagram with others (bundles) instead of taking one", self.packets_bundled),
            ("malformed", "Datagrams that failed to parse, or described impossible messages", self.malformed),
            ("misdirected", "Datagrams whose header names another destination port", self.misdirected),
            ("unknown_session", "Datagrams for no session of this endpoint", self.unknown_session),
            ("unknown_rpc", "Packets about an RPC the session does not hold", self.unknown_rpc),
            ("duplicate_packets", "DATA that carried no new bytes (retransmissions, duplicates, replays of a request already delivered)", self.duplicate_packets),
            ("beyond_grant", "DATA holding only bytes beyond the message's grant (never asked for: dropped)", self.beyond_grant),
            ("dropped_while_opening", "DATA for a message whose records were out being opened (see `Endpoint::take_records_to_open`): dropped, asked for again if needed", self.dropped_while_opening),
            ("calls_cancelled", "Client RPCs the application abandoned (`Endpoint::cancel_call`)", self.calls_cancelled),
            ("calls_queued", "Calls that waited for their session's unscheduled window before their request went out", self.calls_queued),
            ("requests_delivered", "Requests delivered to the application (each exactly once)", self.requests_delivered),
            ("responses_delivered", "Responses delivered to the application (each exactly once)", self.responses_delivered),
            ("replays_rejected", "DATA for request IDs the replay window refused (already run, or too old)", self.replays_rejected),
            ("auth_failures", "Records that failed authentication, and messages whose prologue was forged", self.auth_failures),
            ("admission_refused", "New incoming messages refused by memory limits", self.admission_refused),
            ("resends_sent", "RESEND packets sent", self.resends_sent),
            ("grants_sent", "GRANT packets sent", self.grants_sent),
            ("rpc_timeouts", "RPCs freed for lack of progress", self.rpc_timeouts),
            ("sessions_accepted", "Server sessions established by the in-band handshake", self.sessions_accepted),
            ("handshakes_failed", "Handshakes that failed (either side)", self.handshakes_failed),
            ("handshakes_refused", "ClientHellos dropped because `max_pending_handshakes` were in progress", self.handshakes_refused),
            ("retries_sent", "RETRY packets sent: ClientHellos answered with a token instead of a handshake", self.retries_sent),
            ("retry_tokens_rejected", "ClientHellos dropped because their retry token was forged, expired or issued to another address or session", self.retry_tokens_rejected),
            ("retries_followed", "RETRY packets a client followed (at most one per handshake)", self.retries_followed),
            ("sessions_refused", "New clients refused because `max_sessions` sessions were live and none had been idle for `reclaim_idle_after`", self.sessions_refused),
            ("sessions_reclaimed", "Idle sessions closed to make room for new ones at `max_sessions`", self.sessions_reclaimed),
            ("sessions_expired", "Sessions closed by the idle timeout", self.sessions_expired),
            ("keep_alives_sent", "Keep-alive probes sent", self.keep_alives_sent),
            ("address_changes", "Server sessions that moved to a new client address on a packet from there that carried new, authenticated data", self.address_changes),
            ("address_changes_refused", "Packets of a live server session from another address that did not prove the session's key with new data (dropped)", self.address_changes_refused),
            ("key_updates_sent", "Key updates of our sending key", self.key_updates_sent),
            ("key_updates_received", "Key updates of the peer's key, seen on its messages", self.key_updates_received),
            ("timers_fired", "RPC, acknowledgement and handshake timers that fired", self.timers_fired),
        ]
    }
}

/// A snapshot of what the endpoint holds in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// Live sessions.
    pub sessions: usize,
    /// RPCs of all sessions.
    pub rpcs: usize,
    /// Incomplete incoming messages.
    pub incoming_messages: usize,
    /// Bytes charged for incoming wire images of incomplete messages.
    pub incoming_bytes: usize,
    /// Bytes of delivered requests the application has not answered yet. The memory
    /// limits apply to these plus `incoming_bytes`.
    pub queued_request_bytes: usize,
    /// Bytes of outgoing wire images kept for retransmission.
    pub outgoing_bytes: usize,
    /// Scheduled bytes granted but not yet received (bounded by `max_incoming`).
    pub granted_unreceived: u64,
    /// Spare buffers kept for reuse by large messages (at most `buffer_pool_bytes`).
    pub spare_buffer_bytes: usize,
    /// Fixed costs of sessions and RPCs (replay windows and bookkeeping).
    pub session_overhead_bytes: usize,
}

/// What a session has learnt about its path ([`Endpoint::path_info`](super::Endpoint::path_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathInfo {
    /// Largest DATA payload sent towards the peer (from the path MTU, if reported).
    pub max_payload: usize,
    /// Grant round trips measured so far (GRANT sent to first byte it released).
    pub rtt_samples: u64,
    /// Smoothed grant round trip (RFC 6298 SRTT), once measured.
    pub smoothed_rtt: Option<std::time::Duration>,
    /// Mean deviation of the round trip (RFC 6298 RTTVAR).
    pub rtt_variance: std::time::Duration,
    /// Smallest round trip measured.
    pub min_rtt: Option<std::time::Duration>,
    /// How far past received bytes the peer's messages are granted.
    pub grant_window: u32,
    /// Silence after which the peer is prodded (RESEND, NEED_ACK).
    pub resend_after: std::time::Duration,
    /// Time without progress after which an RPC fails.
    pub rpc_timeout: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_counters_lists_every_field() {
        // Debug prints every field; a field missing from `counters` fails here.
        let fields = format!("{:?}", Stats::default()).matches(": 0").count();
        assert_eq!(Stats::default().counters().len(), fields);
    }
}
