//! The endpoint: all sessions of one local port, and the engine's public API.
//!
//! # Call order
//!
//! A driver owns one `Endpoint` and loops:
//!
//! 1. Feed every received datagram to [`Endpoint::handle_datagram`].
//! 2. If the time returned by [`Endpoint::poll_timeout`] has passed, call
//!    [`Endpoint::handle_timeout`].
//! 3. Apply application commands: [`Endpoint::call`], [`Endpoint::respond`],
//!    [`Endpoint::install_session`], [`Endpoint::close_session`].
//! 4. Drain [`Endpoint::poll_transmit`] until `None`, sending each batch (a batch is
//!    one datagram, or several equal-size datagrams for one destination with
//!    `segment_size` set: pass it to UDP GSO or split it).
//! 5. Drain [`Endpoint::poll_event`] until `None` and hand events to the application.
//! 6. Sleep until a datagram arrives, a command comes, or `poll_timeout` is reached.
//!
//! Every method takes the current time; the engine never reads a clock, so the same
//! inputs at the same times give the same outputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::config::{Config, ConfigError};
use super::event::{
    CallError, Event, InstallError, MemoryUsage, Role, RpcError, SessionHandle, Stats,
};
use super::handshake::{Handshake, HandshakeKey};
use super::incoming::IncomingMessage;
use super::outgoing::OutgoingMessage;
use super::replay::REPLAY_WINDOW;
use super::session::{Rpc, Session, SessionParams};
use super::tls::TlsAcceptor;
use crate::record::{seal_message, MessageLayout};
use crate::wire::{Body, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};

/// Refuses messages longer than the configured maximum.
fn check_len(config: &Config, len: usize) -> Result<(), CallError> {
    let max = config.max_message_len;
    if len > max {
        return Err(CallError::MessageTooLarge { len, max });
    }
    Ok(())
}

/// Counts the records a message of `len` bytes will seal under the session's key,
/// updating the key first when it has protected `key_update_after` records (and the
/// peer confirmed the previous update), and refusing if the message would pass the
/// key's usage limit.
fn charge_key_usage(
    s: &mut Session,
    config: &Config,
    stats: &mut Stats,
    len: usize,
) -> Result<(), CallError> {
    let records = MessageLayout::for_payload(len, config.record_size)
        .map_or(u64::MAX, |l| l.record_count() as u64);
    let limit = config.key_usage_limit.unwrap_or_else(|| s.tx.suite().confidentiality_limit());
    let update_after = config.key_update_after.unwrap_or(limit / 2).min(limit);
    let due = s.tx_records.saturating_add(records) > update_after;
    if due && s.tx_confirmed == s.tx_generation {
        if let Some(secret) = s.tx_secret.take() {
            let next = secret.next();
            s.tx = std::sync::Arc::new(next.record_key());
            s.tx_secret = Some(next);
            s.tx_phase = !s.tx_phase;
            s.tx_generation += 1;
            s.tx_records = 0;
            stats.key_updates_sent += 1;
        }
    }
    if s.tx_records.saturating_add(records) > limit {
        return Err(CallError::KeyExhausted(limit));
    }
    s.tx_records += records;
    Ok(())
}

/// A message with its ID allocated and its key at hand, ready to be sealed.
#[derive(Debug)]
pub struct PreparedMessage {
    pub session: SessionHandle,
    pub id: MessageId,
    key: std::sync::Arc<crate::record::RecordKey>,
    /// KEY_PHASE bit and generation of `key`.
    phase: bool,
    generation: u64,
    record_size: usize,
    len: usize,
    request: bool,
}

impl PreparedMessage {
    /// A message of `len` bytes on `s`, to be sealed with its current sending key.
    fn new(s: &Session, config: &Config, id: MessageId, len: usize, request: bool) -> Self {
        PreparedMessage {
            session: s.handle,
            id,
            key: s.tx.clone(),
            phase: s.tx_phase,
            generation: s.tx_generation,
            record_size: config.record_size,
            len,
            request,
        }
    }

    /// Seals the payload (which must be the length given to `begin_*`).
    pub fn seal(&self, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        if payload.len() != self.len {
            return Err(CallError::MessageTooLarge { len: payload.len(), max: self.len });
        }
        seal_message(&self.key, self.id, payload, self.record_size)
            .map_err(|_| CallError::MessageTooLarge { len: payload.len(), max: self.len })
    }

    /// Payload length this message was prepared for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the prepared payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One batch of datagrams to send, written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// Bytes written into the buffer.
    pub size: usize,
    /// `Some(n)`: the buffer holds several datagrams of `n` bytes each (the last may
    /// be shorter), as UDP GSO expects. `None`: one datagram.
    pub segment_size: Option<usize>,
}

type QueueKey = (u32, SessionHandle, MessageId);

/// Bookkeeping shared by all sessions: queues, scheduler sets, limits, counters.
#[derive(Debug)]
pub(crate) struct Core {
    pub config: Config,
    pub local_port: u16,
    pub control: VecDeque<(SocketAddr, Vec<u8>)>,
    pub events: VecDeque<Event>,
    /// Outgoing messages with bytes to send, by remaining bytes (sender SRPT).
    pub ready: BTreeSet<QueueKey>,
    /// Incoming messages not fully granted, by remaining bytes (receiver SRPT).
    pub grantable: BTreeSet<QueueKey>,
    pub granted_unreceived: u64,
    pub incoming_bytes: usize,
    pub incoming_messages: usize,
    pub outgoing_bytes: usize,
    /// Sessions holding acknowledgements that may wait: they leave with the next
    /// request to the same server or at the next tick, whichever is first, so a
    /// ping-pong does not cost the server an extra datagram and wake-up per RPC.
    pub acks_pending: BTreeSet<SessionHandle>,
    /// Sessions whose acknowledgements go out now.
    pub acks_due: BTreeSet<SessionHandle>,
    pub stats: Stats,
    pub unknown_reply_window: Option<Instant>,
    pub unknown_replies: u32,
    pub rpc_count: usize,
}

/// Snapshot of an incoming message's scheduler-relevant state.
pub(crate) type InSnap = (Option<u32>, u32);

pub(crate) fn snap_in(inc: Option<&IncomingMessage>) -> InSnap {
    inc.map_or((None, 0), |m| (m.grant_key(), m.outstanding()))
}

pub(crate) fn snap_out(out: Option<&OutgoingMessage>) -> Option<u32> {
    out.and_then(|m| m.ready_key())
}

impl Core {
    pub fn track_in(&mut self, h: SessionHandle, id: MessageId, before: InSnap, after: InSnap) {
        if before.0 != after.0 {
            if let Some(k) = before.0 {
                self.grantable.remove(&(k, h, id));
            }
            if let Some(k) = after.0 {
                self.grantable.insert((k, h, id));
            }
        }
        self.granted_unreceived =
            self.granted_unreceived - u64::from(before.1) + u64::from(after.1);
    }

    pub fn track_out(
        &mut self,
        h: SessionHandle,
        id: MessageId,
        before: Option<u32>,
        after: Option<u32>,
    ) {
        if before != after {
            if let Some(k) = before {
                self.ready.remove(&(k, h, id));
            }
            if let Some(k) = after {
                self.ready.insert((k, h, id));
            }
        }
    }

    /// Header for a packet this endpoint sends on `session`.
    pub fn header(&self, session: &Session, packet_type: PacketType, id: MessageId) -> HeaderRepr {
        let mut flags = Flags::empty();
        flags.set(Flags::FROM_INITIATOR, session.role == Role::Client);
        HeaderRepr {
            src_port: self.local_port,
            dst_port: session.peer.port(),
            packet_type,
            flags,
            session_id: session.session_id,
            message_id: id,
        }
    }

    /// Queues a small control packet.
    pub fn send_control(&mut self, session: &Session, id: MessageId, body: Body<'_>) {
        let header = self.header(session, body.packet_type(), id);
        let packet = PacketRepr { header, body };
        self.control.push_back((session.peer, packet.to_vec()));
    }

    /// Detaches an RPC's incoming message, releasing its memory charge and its place
    /// in the grant scheduler.
    pub fn take_incoming(
        &mut self,
        session: &mut Session,
        id: MessageId,
    ) -> Option<IncomingMessage> {
        let h = session.handle;
        let inc = session.rpcs.get_mut(&id)?.inc.take()?;
        self.track_in(h, id, snap_in(Some(&inc)), (None, 0));
        self.incoming_bytes -= inc.charge();
        self.incoming_messages -= 1;
        session.incoming_bytes -= inc.charge();
        session.incoming_messages -= 1;
        Some(inc)
    }

    /// Removes an RPC's incoming message, releasing its memory charge.
    pub fn drop_incoming(&mut self, session: &mut Session, id: MessageId) {
        self.take_incoming(session, id);
    }

    /// Removes an RPC's outgoing message.
    pub fn drop_outgoing(&mut self, session: &mut Session, id: MessageId) {
        let h = session.handle;
        let Some(rpc) = session.rpcs.get_mut(&id) else { return };
        let Some(out) = rpc.out.take() else { return };
        self.track_out(h, id, snap_out(Some(&out)), None);
        self.outgoing_bytes -= out.wire.len();
    }

    /// Removes an RPC and everything it holds.
    pub fn remove_rpc(&mut self, session: &mut Session, id: MessageId) -> bool {
        self.drop_incoming(session, id);
        self.drop_outgoing(session, id);
        let removed = session.rpcs.remove(&id).is_some();
        if removed {
            self.rpc_count -= 1;
        }
        removed
    }

    /// Creates an incoming message if the memory limits allow it.
    pub fn admit_incoming(
        &mut self,
        session: &mut Session,
        inc: IncomingMessage,
    ) -> Option<IncomingMessage> {
        let c = &self.config;
        let charge = inc.charge();
        if session.incoming_messages >= c.max_incoming_messages_per_session
            || session.incoming_bytes + charge > c.max_incoming_bytes_per_session
            || self.incoming_bytes + charge > c.max_incoming_bytes_total
        {
            self.stats.admission_refused += 1;
            return None;
        }
        session.incoming_messages += 1;
        session.incoming_bytes += charge;
        self.incoming_messages += 1;
        self.incoming_bytes += charge;
        Some(inc)
    }

    /// Attaches an admitted incoming message to an RPC and registers it.
    pub fn attach_incoming(&mut self, session: &mut Session, id: MessageId, inc: IncomingMessage) {
        let h = session.handle;
        let after = snap_in(Some(&inc));
        if let Some(rpc) = session.rpcs.get_mut(&id) {
            rpc.inc = Some(inc);
            self.track_in(h, id, (None, 0), after);
        }
    }

    /// Fails every RPC of a session and reports its end.
    pub fn fail_session(&mut self, session: &mut Session, reason: RpcError) {
        let ids: Vec<MessageId> = session.rpcs.keys().copied().collect();
        for id in ids {
            self.remove_rpc(session, id);
            if session.role == Role::Client {
                self.events.push_back(Event::RpcFailed {
                    session: session.handle,
                    id,
                    error: reason.clone(),
                });
            }
        }
        self.acks_pending.remove(&session.handle);
        self.acks_due.remove(&session.handle);
        self.events.push_back(Event::SessionClosed { session: session.handle, reason });
    }
}

/// The sans-IO SMT endpoint. See the module documentation for the call order.
pub struct Endpoint {
    pub(crate) sessions: BTreeMap<SessionHandle, Session>,
    pub(crate) by_key: BTreeMap<(SocketAddr, u64, Role), SessionHandle>,
    next_handle: u64,
    pub(crate) core: Core,
    pub(crate) next_tick: Option<Instant>,
    pub(crate) acceptor: Option<Box<dyn TlsAcceptor>>,
    pub(crate) handshakes: BTreeMap<HandshakeKey, Handshake>,
    pub(crate) peer_certs: BTreeMap<SessionHandle, Vec<Vec<u8>>>,
    /// Reused by the grant scheduler, which runs after every packet.
    pub(crate) grant_scratch: Vec<QueueKey>,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_port", &self.core.local_port)
            .field("sessions", &self.sessions.len())
            .field("handshakes", &self.handshakes.len())
            .field("stats", &self.core.stats)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint whose packets carry `local_port` as source port.
    pub fn new(config: Config, local_port: u16) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        Ok(Endpoint {
            sessions: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_handle: 1,
            core: Core {
                config,
                local_port,
                control: VecDeque::new(),
                events: VecDeque::new(),
                ready: BTreeSet::new(),
                grantable: BTreeSet::new(),
                granted_unreceived: 0,
                incoming_bytes: 0,
                incoming_messages: 0,
                outgoing_bytes: 0,
                acks_pending: BTreeSet::new(),
                acks_due: BTreeSet::new(),
                stats: Stats::default(),
                unknown_reply_window: None,
                unknown_replies: 0,
                rpc_count: 0,
            },
            next_tick: None,
            acceptor: None,
            handshakes: BTreeMap::new(),
            peer_certs: BTreeMap::new(),
            grant_scratch: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The port written as source port in every packet.
    pub fn local_port(&self) -> u16 {
        self.core.local_port
    }

    /// Installs a session whose keys were negotiated elsewhere (the kTLS-style path)
    /// or by the in-band handshake.
    pub fn install_session(
        &mut self,
        params: SessionParams,
    ) -> Result<SessionHandle, InstallError> {
        let handle = self.allocate_handle();
        self.install_with_handle(handle, params)?;
        Ok(handle)
    }

    pub(crate) fn allocate_handle(&mut self) -> SessionHandle {
        let handle = SessionHandle(self.next_handle);
        self.next_handle += 1;
        handle
    }

    pub(crate) fn install_with_handle(
        &mut self,
        handle: SessionHandle,
        params: SessionParams,
    ) -> Result<(), InstallError> {
        let key = (params.peer, params.session_id, params.role);
        if self.by_key.contains_key(&key) {
            return Err(InstallError::Duplicate);
        }
        if self.sessions.len() >= self.core.config.max_sessions {
            return Err(InstallError::TooManySessions(self.core.config.max_sessions));
        }
        self.by_key.insert(key, handle);
        self.sessions.insert(handle, Session::new(handle, params, &self.core.config));
        Ok(())
    }

    /// The peer address and role of a session.
    pub fn session_info(&self, session: SessionHandle) -> Option<(SocketAddr, Role, u64)> {
        self.sessions.get(&session).map(|s| (s.peer, s.role, s.session_id))
    }

    /// Starts an RPC on a client session: seals `request` and queues it. The response
    /// (or failure) arrives as an event carrying the returned ID.
    pub fn call(
        &mut self,
        now: Instant,
        session: SessionHandle,
        request: &[u8],
    ) -> Result<MessageId, CallError> {
        let prepared = self.begin_call(session, request.len())?;
        let wire = prepared.seal(request)?;
        let id = prepared.id;
        self.finish(now, prepared, wire);
        Ok(id)
    }

    /// Answers request `id` of a server session with `response`.
    pub fn respond(
        &mut self,
        now: Instant,
        session: SessionHandle,
        id: MessageId,
        response: &[u8],
    ) -> Result<(), CallError> {
        let prepared = self.begin_response(session, id, response.len())?;
        let wire = prepared.seal(response)?;
        self.finish(now, prepared, wire);
        Ok(())
    }

    /// First half of [`call`](Self::call): checks limits and allocates the request's
    /// ID. Seal with [`PreparedMessage::seal`] (anywhere, on any thread: messages have
    /// independent sequence spaces) and hand the result to [`finish`](Self::finish).
    pub fn begin_call(
        &mut self,
        session: SessionHandle,
        len: usize,
    ) -> Result<PreparedMessage, CallError> {
        let s = self.sessions.get_mut(&session).ok_or(CallError::UnknownSession)?;
        if s.role != Role::Client {
            return Err(CallError::WrongRole("call"));
        }
        check_len(&self.core.config, len)?;
        if let Some((oldest, _)) = s.rpcs.first_key_value() {
            if s.next_id - oldest.get() >= REPLAY_WINDOW - 1 {
                return Err(CallError::TooManyOutstanding(s.rpcs.len()));
            }
        }
        let id = MessageId::new(s.next_id).ok_or(CallError::IdsExhausted)?;
        charge_key_usage(s, &self.core.config, &mut self.core.stats, len)?;
        s.next_id += 1;
        Ok(PreparedMessage::new(s, &self.core.config, id, len, true))
    }

    /// First half of [`respond`](Self::respond); see [`begin_call`](Self::begin_call).
    pub fn begin_response(
        &mut self,
        session: SessionHandle,
        id: MessageId,
        len: usize,
    ) -> Result<PreparedMessage, CallError> {
        let s = self.sessions.get_mut(&session).ok_or(CallError::UnknownSession)?;
        if s.role != Role::Server {
            return Err(CallError::WrongRole("respond"));
        }
        check_len(&self.core.config, len)?;
        if !s.rpcs.get(&id).is_some_and(|rpc| rpc.in_service) {
            return Err(CallError::UnknownRequest(id));
        }
        charge_key_usage(s, &self.core.config, &mut self.core.stats, len)?;
        if let Some(rpc) = s.rpcs.get_mut(&id) {
            // A second respond for the same request fails from now on.
            rpc.in_service = false;
        }
        Ok(PreparedMessage::new(s, &self.core.config, id, len, false))
    }

    /// Gives up on answering request `id`: its state is freed. The server no longer
    /// answers the client's probes for it (the request already ran and never runs
    /// again), so the client's RPC fails by the progress timeout.
    pub fn abandon_request(&mut self, session: SessionHandle, id: MessageId) {
        if let Some(s) = self.sessions.get_mut(&session) {
            if s.role == Role::Server && s.rpcs.get(&id).is_some_and(|r| r.in_service) {
                self.core.remove_rpc(s, id);
            }
        }
    }

    /// Second half of `call` / `respond`: queues a message sealed from `prepared`.
    /// If the session ended in between, the message is dropped silently (the RPC's
    /// failure was already reported).
    pub fn finish(&mut self, now: Instant, prepared: PreparedMessage, wire: Vec<u8>) {
        let Some(layout) = MessageLayout::for_payload(prepared.len, prepared.record_size) else {
            return;
        };
        if wire.len() != layout.wire_len() as usize {
            return;
        }
        let (h, id) = (prepared.session, prepared.id);
        let Some(s) = self.sessions.get_mut(&h) else { return };
        if !prepared.request && !s.rpcs.contains_key(&id) {
            return;
        }
        let mut out = OutgoingMessage::new(layout, wire, s.unscheduled);
        out.phase = prepared.phase;
        self.core.outgoing_bytes += out.wire.len();
        let after = snap_out(Some(&out));
        if prepared.request {
            s.rpcs.insert(id, Rpc::new(now));
            self.core.rpc_count += 1;
            // Acknowledgements waiting for this server leave just before the request.
            if self.core.acks_pending.remove(&h) {
                self.core.acks_due.insert(h);
            }
        }
        if let Some(rpc) = s.rpcs.get_mut(&id) {
            rpc.out = Some(out);
            rpc.tx_generation = prepared.generation;
            rpc.last_heard = now;
            rpc.last_progress = now;
            rpc.last_prod = now;
        }
        self.core.track_out(h, id, None, after);
        self.ensure_tick(now);
    }

    /// Closes a session: tells the peer, fails its RPCs locally, frees its state.
    pub fn close_session(&mut self, _now: Instant, session: SessionHandle) {
        self.handshakes.retain(|_, hs| hs.handle != session);
        let Some(mut s) = self.sessions.remove(&session) else { return };
        self.by_key.remove(&(s.peer, s.session_id, s.role));
        self.peer_certs.remove(&session);
        self.core.send_control(&s, MessageId::default(), Body::Close);
        self.core.fail_session(&mut s, RpcError::LocallyClosed);
    }

    /// Closes every session (graceful shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let handles: Vec<SessionHandle> = self.sessions.keys().copied().collect();
        for h in handles {
            self.close_session(now, h);
        }
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Counters since creation.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// What the endpoint holds in memory right now.
    pub fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage {
            sessions: self.sessions.len(),
            rpcs: self.core.rpc_count,
            incoming_messages: self.core.incoming_messages,
            incoming_bytes: self.core.incoming_bytes,
            outgoing_bytes: self.core.outgoing_bytes,
            granted_unreceived: self.core.granted_unreceived,
            session_overhead_bytes: self.sessions.values().map(Session::overhead).sum(),
        }
    }

    /// Scheduled bytes granted but not yet received, over all incoming messages.
    pub fn granted_unreceived(&self) -> u64 {
        self.core.granted_unreceived
    }

    /// Whether anything is waiting in the transmit queues.
    pub fn has_transmit(&self) -> bool {
        !self.core.control.is_empty()
            || !self.core.acks_due.is_empty()
            || !self.core.ready.is_empty()
    }

    pub(crate) fn ensure_tick(&mut self, now: Instant) {
        let busy = self.core.rpc_count > 0
            || !self.core.acks_pending.is_empty()
            || !self.core.acks_due.is_empty()
            || !self.handshakes.is_empty();
        if self.next_tick.is_none() && busy {
            self.next_tick = Some(now + self.core.config.tick);
        }
    }
}
