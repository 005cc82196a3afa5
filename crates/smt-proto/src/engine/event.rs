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
    Request { session: SessionHandle, id: MessageId, payload: Vec<u8> },
    /// A client's RPC completed. Delivered exactly once.
    Response { session: SessionHandle, id: MessageId, payload: Vec<u8> },
    /// A client's RPC failed; no response will be delivered for it.
    RpcFailed { session: SessionHandle, id: MessageId, error: RpcError },
    /// A session's handshake completed and its keys are installed.
    SessionEstablished { session: SessionHandle },
    /// A session ended; all its RPCs have failed with the same reason.
    SessionClosed { session: SessionHandle, reason: RpcError },
}

/// Why an RPC or a session ended without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The peer was silent for the configured RPC timeout.
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
    ResponseTooLarge { len: usize, max: usize },
    /// The TLS handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(super::TlsError),
}

/// Why [`Endpoint::call`](super::Endpoint::call) or `respond` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
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
    #[error("session is not established yet")]
    NotEstablished,
    #[error("this side of the session cannot {0}")]
    WrongRole(&'static str),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { len: usize, max: usize },
    #[error("{0} requests are outstanding: the replay window would refuse more")]
    TooManyOutstanding(usize),
    #[error("message ID space of the session is exhausted")]
    IdsExhausted,
    #[error("no request {0} awaits a response")]
    UnknownRequest(MessageId),
    /// Sealing the message would exceed the AEAD usage limit of the session's key
    /// (RFC 8446 5.5); without key update the session must be re-established.
    #[error("the session's traffic key reached its usage limit of {0} records; reconnect")]
    KeyExhausted(u64),
}

/// Why a session could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("a session with this peer and ID already exists")]
    Duplicate,
    #[error("the endpoint already holds its maximum of {0} sessions")]
    TooManySessions(usize),
}

/// Counters, for operators and tests. All only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    pub malformed: u64,
    pub misdirected: u64,
    pub unknown_session: u64,
    pub unknown_rpc: u64,
    pub duplicate_packets: u64,
    pub requests_delivered: u64,
    pub responses_delivered: u64,
    /// DATA for request IDs the replay window refused (already run, or too old).
    pub replays_rejected: u64,
    /// Records that failed authentication, and messages whose prologue was forged.
    pub auth_failures: u64,
    /// New incoming messages refused by memory limits.
    pub admission_refused: u64,
    pub resends_sent: u64,
    pub grants_sent: u64,
    pub rpc_timeouts: u64,
    pub sessions_accepted: u64,
    pub handshakes_failed: u64,
    /// ClientHellos dropped because `max_pending_handshakes` were in progress.
    pub handshakes_refused: u64,
    /// Key updates of our sending key, and of the peer's (seen on its messages).
    pub key_updates_sent: u64,
    pub key_updates_received: u64,
    /// RPC, acknowledgement and handshake timers that fired. Timers are kept in
    /// deadline order, so this counts all the timer work the endpoint did: idle RPCs
    /// (a request the application is still answering) cost none.
    pub timers_fired: u64,
}

/// A snapshot of what the endpoint holds in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    pub sessions: usize,
    pub rpcs: usize,
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
    /// Sessions' fixed costs (replay windows and bookkeeping).
    pub session_overhead_bytes: usize,
}
