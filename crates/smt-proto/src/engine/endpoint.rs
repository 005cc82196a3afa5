//! The endpoint: all sessions of one local port, and the engine's public API.
//!
//! # Call order
//!
//! A driver owns one `Endpoint` and loops:
//!
//! 1. Feed every received datagram to [`Endpoint::handle_datagram`].
//! 2. If the time returned by [`Endpoint::poll_timeout`] has passed, call
//!    [`Endpoint::handle_timeout`].
//! 3. Apply application commands: [`Endpoint::call`], [`Endpoint::respond`] (or their
//!    two halves `begin_*` / [`Endpoint::finish`]), [`Endpoint::connect`],
//!    [`Endpoint::install_session`], [`Endpoint::close_session`].
//! 4. Drain [`Endpoint::poll_transmit`] until `None`, sending each batch (a batch is
//!    one datagram, or several equal-size datagrams for one destination with
//!    `segment_size` set: pass it to UDP GSO or split it).
//! 5. Drain [`Endpoint::poll_event`] until `None` and hand events to the application.
//! 6. Sleep until a datagram arrives, a command comes, or `poll_timeout` is reached.
//!
//! Every method takes the current time; the engine never reads a clock, so the same
//! inputs at the same times give the same outputs.
//!
//! # Who owns what
//!
//! * [`RpcTable`] owns every RPC and the indices derived from them (SRPT sets, byte
//!   and message counters, RPC timers); everything else changes RPCs through it.
//! * `Session` owns a session's identity, keys ([`TxKeys`](super::keys::TxKeys),
//!   [`RxKeys`](super::keys::RxKeys)), path parameters and its side's state.
//! * `Core` owns the output queues, counters and the endpoint's other timers.
//! * Packets are handled per side in `client.rs` and `server.rs`, timers in
//!   `timer.rs`, transmission in `send.rs`, grants in `grants.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::buffers::{Buffer, BufferPool};
use super::config::{Config, ConfigError};
use super::event::{
    CallError, Event, InstallError, MemoryUsage, PathInfo, Role, RpcError, SessionHandle, Stats,
};
use super::handshake::{Handshake, HandshakeKey};
use super::keys::SealingKey;
use super::outgoing::OutgoingMessage;
use super::path::Path;
use super::replay::REPLAY_WINDOW;
use super::rpc::{Rpc, RpcState, ServerPhase};
use super::rpc_table::{Limits, RpcKey, RpcTable};
use super::send::DATA_HEADER_LEN;
use super::session::{Session, SessionParams, Side};
use super::timer_queue::TimerQueue;
use super::tls::TlsAcceptor;
use super::tombstones::Tombstones;
use crate::record::{seal_message_into, MessageLayout};
use crate::wire::{Body, Flags, HeaderRepr, MessageId, PacketRepr, PacketType};

/// How many closed sessions' reasons the endpoint remembers.
const TOMBSTONES: usize = 4096;

/// Most peers whose path MTU the endpoint remembers (see `set_path_mtu`).
const MAX_KNOWN_PATHS: usize = 4096;

/// A message with its ID allocated and its key at hand, ready to be sealed.
#[derive(Debug)]
pub struct PreparedMessage {
    /// The session the message belongs to.
    pub session: SessionHandle,
    /// The message's ID (the request's ID, for a response).
    pub id: MessageId,
    key: SealingKey,
    record_size: usize,
    len: usize,
    request: bool,
    buffers: BufferPool,
}

impl PreparedMessage {
    /// Seals the payload (which must be the length given to `begin_*`) into a wire
    /// image (for large messages, a buffer from the endpoint's pool).
    pub fn seal(&self, payload: &[u8]) -> Result<SealedMessage, CallError> {
        let (layout, mut image) = self.layout_and_image(payload)?;
        seal_message_into(&self.key.key, self.id, payload, &layout, &mut image)
            .map_err(|_| CallError::MessageTooLarge { len: payload.len(), max: self.len })?;
        Ok(SealedMessage { image })
    }

    /// The layout for `payload` and a buffer of its wire length.
    pub(crate) fn layout_and_image(
        &self,
        payload: &[u8],
    ) -> Result<(MessageLayout, Buffer), CallError> {
        let too_large = || CallError::MessageTooLarge { len: payload.len(), max: self.len };
        if payload.len() != self.len {
            return Err(too_large());
        }
        let layout =
            MessageLayout::for_payload(self.len, self.record_size).ok_or_else(too_large)?;
        Ok((layout, self.buffers.take(layout.wire_len() as usize)))
    }

    /// The key this message is sealed with.
    pub(crate) fn sealing_key(&self) -> &crate::record::RecordKey {
        &self.key.key
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

/// The sealed wire image of a prepared message, for [`Endpoint::finish`].
#[derive(Debug)]
pub struct SealedMessage {
    image: Buffer,
}

impl SealedMessage {
    pub(crate) fn from_image(image: Buffer) -> SealedMessage {
        SealedMessage { image }
    }

    /// Bytes of the wire image (records with their headers and tags).
    pub fn len(&self) -> usize {
        self.image.len()
    }

    /// Whether the image is empty (it never is: even an empty payload has a record).
    pub fn is_empty(&self) -> bool {
        self.image.len() == 0
    }

    /// The sealed bytes, as they will be sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.image
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

/// Timers of the endpoint other than RPCs' (those live in the [`RpcTable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A client session's delayed acknowledgements are due.
    Acks(SessionHandle),
    /// A handshake needs a retransmission or has timed out.
    Handshake(HandshakeKey),
    /// A session may have been idle too long, or owe its peer a keep-alive probe.
    Idle(SessionHandle),
}

/// Output queues, counters and non-RPC timers, shared by all sessions.
#[derive(Debug)]
pub(crate) struct Core {
    pub config: Config,
    pub local_port: u16,
    /// Drop packets whose header destination port is not `local_port` (native IP
    /// mode, where the header ports are the only demultiplexer).
    pub check_ports: bool,
    /// Leave complete records of multi-packet messages for `take_records_to_open`.
    pub defer_opening: bool,
    pub control: VecDeque<(SocketAddr, Vec<u8>)>,
    pub events: VecDeque<Event>,
    pub stats: Stats,
    /// Client sessions whose acknowledgements go out now.
    pub acks_due: BTreeSet<SessionHandle>,
    pub timers: TimerQueue<Timer>,
    pub unknown_reply_window: Option<Instant>,
    pub unknown_replies: u32,
    /// DATA payload sizes of paths whose MTU the I/O layer reported, by peer IP.
    pub path_payloads: BTreeMap<IpAddr, usize>,
    /// Packets arrived (or timers ran) since the grant scheduler last ran: it runs
    /// once before the next transmit, not after every packet of a receive batch.
    pub grants_due: bool,
    /// Spare buffers for large messages (shared with what the endpoint hands out).
    pub buffers: BufferPool,
    /// RPCs whose incoming message has complete records waiting to be opened.
    pub open_queue: Vec<RpcKey>,
    /// The time of the latest input, for work `poll_event` does without a clock.
    pub last_now: Option<Instant>,
    /// Refused ClientHellos and failed server-side handshakes are logged at most
    /// ten times a second each (a flood of spoofed ClientHellos must not become a log
    /// flood).
    /// A search for an idle session to reclaim found none: none until then.
    pub no_reclaim_until: Option<Instant>,
    pub refusal_log: super::log_throttle::LogThrottle,
    pub server_failure_log: super::log_throttle::LogThrottle,
}

/// What packet handlers work with besides the session: the queues and the RPCs.
pub(crate) struct Context<'a> {
    pub core: &'a mut Core,
    pub rpcs: &'a mut RpcTable,
    /// The packet came from an address that is not the session's: open what it
    /// completes at once, so that `authenticated_new_data` is known on return.
    pub probation: bool,
    /// Handling the packet opened a record it completed, or delivered a fresh
    /// request it held whole: it carried new, authenticated data.
    pub authenticated_new_data: bool,
}

impl Core {
    /// Header for a packet this endpoint sends on `session`.
    pub(crate) fn header(
        &self,
        session: &Session,
        packet_type: PacketType,
        id: MessageId,
    ) -> HeaderRepr {
        let mut flags = Flags::empty();
        flags.set(Flags::FROM_INITIATOR, session.role() == Role::Client);
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
    pub(crate) fn send_control(&mut self, session: &Session, id: MessageId, body: Body<'_>) {
        let header = self.header(session, body.packet_type(), id);
        let packet = PacketRepr { header, body };
        self.control.push_back((session.peer, packet.to_vec()));
    }

    /// A client session's acknowledgements leave now (with the next transmit).
    pub(crate) fn acks_now(&mut self, session: SessionHandle) {
        self.timers.cancel(Timer::Acks(session));
        self.acks_due.insert(session);
    }

    /// A client session's acknowledgements may wait for the next request, but not
    /// longer than one tick.
    pub(crate) fn acks_soon(&mut self, session: SessionHandle, now: Instant) {
        if !self.acks_due.contains(&session) {
            self.timers.arm_no_later(Timer::Acks(session), now + self.config.tick);
        }
    }
}

/// The sans-IO SMT endpoint. See the module documentation for the call order.
pub struct Endpoint {
    pub(crate) sessions: BTreeMap<SessionHandle, Session>,
    pub(crate) by_key: BTreeMap<(SocketAddr, u64, Role), SessionHandle>,
    /// Server sessions by session ID alone, whatever their peer's address: where a
    /// packet from a new address may belong (see `migration.rs`). Clients choose
    /// session IDs, so several sessions may share one.
    pub(crate) by_id: BTreeMap<u64, Vec<SessionHandle>>,
    next_handle: u64,
    pub(crate) core: Core,
    pub(crate) rpcs: RpcTable,
    pub(crate) acceptor: Option<Box<dyn TlsAcceptor>>,
    pub(crate) handshakes: BTreeMap<HandshakeKey, Handshake>,
    pub(crate) peer_certs: BTreeMap<SessionHandle, Vec<Vec<u8>>>,
    pub(crate) closed: Tombstones,
    /// Reused by the grant scheduler, which runs after every packet.
    pub(crate) grant_scratch: Vec<RpcKey>,
    pub(crate) retry_tokens: super::retry::RetryTokens,
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

/// Refuses messages longer than the configured maximum.
fn check_len(config: &Config, len: usize) -> Result<(), CallError> {
    let max = config.max_message_len;
    if len > max {
        return Err(CallError::MessageTooLarge { len, max });
    }
    Ok(())
}

impl Endpoint {
    /// An endpoint whose packets carry `local_port` as source port.
    pub fn new(config: Config, local_port: u16) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        let limits = Limits {
            messages_per_session: config.max_incoming_messages_per_session,
            bytes_per_session: config.max_incoming_bytes_per_session,
            bytes_total: config.max_incoming_bytes_total,
        };
        let rpcs = RpcTable::new(limits);
        let buffer_pool_bytes = config.buffer_pool_bytes;
        let retry_tokens = super::retry::RetryTokens::new()
            .ok_or(ConfigError("the system gave no randomness for the retry-token key"))?;
        Ok(Endpoint {
            sessions: BTreeMap::new(),
            by_key: BTreeMap::new(),
            by_id: BTreeMap::new(),
            next_handle: 1,
            core: Core {
                config,
                local_port,
                check_ports: true,
                defer_opening: false,
                control: VecDeque::new(),
                events: VecDeque::new(),
                stats: Stats::default(),
                acks_due: BTreeSet::new(),
                timers: TimerQueue::default(),
                unknown_reply_window: None,
                unknown_replies: 0,
                path_payloads: BTreeMap::new(),
                grants_due: false,
                buffers: BufferPool::new(buffer_pool_bytes),
                open_queue: Vec::new(),
                last_now: None,
                no_reclaim_until: None,
                refusal_log: Default::default(),
                server_failure_log: Default::default(),
            },
            rpcs,
            acceptor: None,
            handshakes: BTreeMap::new(),
            peer_certs: BTreeMap::new(),
            closed: Tombstones::new(TOMBSTONES),
            grant_scratch: Vec::new(),
            retry_tokens,
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

    /// Whether packets whose header Destination Port differs from
    /// [`local_port`](Self::local_port) are dropped (counted as `misdirected`). On by
    /// default, as native IP mode needs (every endpoint of a host sees every packet
    /// of the protocol). Turn it off in UDP mode: the socket already demultiplexed,
    /// and NAT or a port mapping may have rewritten the UDP ports, which the header
    /// then no longer matches.
    pub fn set_port_check(&mut self, check: bool) {
        self.core.check_ports = check;
    }

    /// Whether records of multi-packet messages are left for
    /// [`take_records_to_open`](Self::take_records_to_open) (to be opened on other
    /// threads) instead of being opened as their last packet arrives. Off by
    /// default: opening at once is cheapest on one core, while the record's bytes
    /// are still in the cache. Applies to messages that start arriving after the
    /// call.
    pub fn set_defer_opening(&mut self, defer: bool) {
        self.core.defer_opening = defer;
    }

    /// Installs a session whose keys were negotiated elsewhere (the kTLS-style path)
    /// or by the in-band handshake.
    pub fn install_session(
        &mut self,
        now: Instant,
        params: SessionParams,
    ) -> Result<SessionHandle, InstallError> {
        let handle = self.allocate_handle();
        self.install_with_handle(now, handle, params)?;
        Ok(handle)
    }

    pub(crate) fn allocate_handle(&mut self) -> SessionHandle {
        let handle = SessionHandle(self.next_handle);
        self.next_handle += 1;
        handle
    }

    pub(crate) fn install_with_handle(
        &mut self,
        now: Instant,
        handle: SessionHandle,
        params: SessionParams,
    ) -> Result<(), InstallError> {
        let key = (params.peer, params.session_id, params.role);
        if self.by_key.contains_key(&key) {
            return Err(InstallError::Duplicate);
        }
        if self.sessions.len() >= self.core.config.max_sessions && !self.reclaim_idle_session(now) {
            return Err(InstallError::TooManySessions(self.core.config.max_sessions));
        }
        self.by_key.insert(key, handle);
        if params.role == Role::Server {
            self.by_id.entry(params.session_id).or_default().push(handle);
        }
        let mut session = Session::new(handle, params, &self.core.config, now);
        if let Some(&payload) = self.core.path_payloads.get(&session.peer.ip()) {
            session.path.set_max_datagram(payload + DATA_HEADER_LEN, &self.core.config);
        }
        self.sessions.insert(handle, session);
        self.arm_idle_timer(handle, now);
        Ok(())
    }

    /// Tells the endpoint the largest datagram the path to `peer` carries: the path
    /// MTU minus the IP and UDP headers (or, in native IP mode, the IP header). DATA
    /// packets towards the peer are cut to fill such datagrams (within
    /// `largest_packet_payload`); until this is called for a peer, packets carry
    /// `max_packet_payload` bytes. Applies to the peer's live sessions and to later
    /// ones. The endpoint remembers a bounded number of peers.
    pub fn set_path_mtu(&mut self, peer: IpAddr, max_datagram: usize) {
        let config = &self.core.config;
        let payload = Path::payload_for(max_datagram, config);
        if self.core.path_payloads.len() >= MAX_KNOWN_PATHS
            && !self.core.path_payloads.contains_key(&peer)
        {
            // Forgetting is harmless: those peers' new sessions start with the
            // default packet size until the I/O layer reports their MTU again.
            self.core.path_payloads.clear();
        }
        self.core.path_payloads.insert(peer, payload);
        for session in self.sessions.values_mut().filter(|s| s.peer.ip() == peer) {
            session.path.set_max_datagram(max_datagram, config);
        }
    }

    /// Whether [`set_path_mtu`](Self::set_path_mtu) was called for `peer` (and not
    /// forgotten since).
    pub fn knows_path(&self, peer: IpAddr) -> bool {
        self.core.path_payloads.contains_key(&peer)
    }

    /// What a session has learnt about its path: packet size, measured grant round
    /// trip, and the window and timeouts derived from them.
    pub fn path_info(&self, session: SessionHandle) -> Option<PathInfo> {
        let path = &self.sessions.get(&session)?.path;
        let rtt = path.rtt();
        Some(PathInfo {
            max_payload: path.max_payload(),
            rtt_samples: rtt.samples(),
            smoothed_rtt: rtt.smoothed(),
            rtt_variance: rtt.variance(),
            min_rtt: rtt.min(),
            grant_window: path.grant_window(),
            resend_after: path.resend_after(),
            rpc_timeout: path.rpc_timeout(),
        })
    }

    /// The peer address, role and session ID of a live session.
    pub fn session_info(&self, session: SessionHandle) -> Option<(SocketAddr, Role, u64)> {
        self.sessions.get(&session).map(|s| (s.peer, s.role(), s.session_id))
    }

    /// Why a recently closed session ended (the endpoint remembers the last few
    /// thousand), or `None` for a live or unknown session.
    pub fn closed_reason(&self, session: SessionHandle) -> Option<&RpcError> {
        self.closed.reason(session)
    }

    /// The error for an operation on a session that is not live.
    fn gone(&self, session: SessionHandle) -> CallError {
        match self.closed.reason(session) {
            Some(reason) => CallError::SessionClosed(reason.clone()),
            None => CallError::UnknownSession,
        }
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
        self.finish(now, prepared, wire)?;
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
        let prepared = self.begin_response(now, session, id, response.len())?;
        let wire = prepared.seal(response)?;
        self.finish(now, prepared, wire)
    }

    /// First half of [`call`](Self::call): checks limits and allocates the request's
    /// ID. Seal with [`PreparedMessage::seal`] (anywhere, on any thread: messages have
    /// independent sequence spaces) and hand the result to [`finish`](Self::finish).
    pub fn begin_call(
        &mut self,
        session: SessionHandle,
        len: usize,
    ) -> Result<PreparedMessage, CallError> {
        let config = &self.core.config;
        let Some(s) = self.sessions.get_mut(&session) else { return Err(self.gone(session)) };
        let Side::Client(client) = &mut s.side else { return Err(CallError::WrongRole("call")) };
        check_len(config, len)?;
        // IDs start at 1: below the window size no ID can be a window behind.
        if client.next_id >= REPLAY_WINDOW - 1 {
            if let Some(oldest) = self.rpcs.oldest(session) {
                if client.next_id - oldest.get() >= REPLAY_WINDOW - 1 {
                    let outstanding = self.rpcs.session_usage(session).rpcs;
                    return Err(CallError::TooManyOutstanding(outstanding));
                }
            }
        }
        let id = MessageId::new(client.next_id).ok_or(CallError::IdsExhausted)?;
        let key = charge_key(s, config, &mut self.core.stats, len)?;
        if let Side::Client(client) = &mut s.side {
            client.next_id += 1;
        }
        Ok(PreparedMessage {
            session,
            id,
            key,
            record_size: config.record_size,
            len,
            request: true,
            buffers: self.core.buffers.clone(),
        })
    }

    /// First half of [`respond`](Self::respond); see [`begin_call`](Self::begin_call).
    /// From here until [`finish`](Self::finish), a second response to the same
    /// request is refused.
    pub fn begin_response(
        &mut self,
        now: Instant,
        session: SessionHandle,
        id: MessageId,
        len: usize,
    ) -> Result<PreparedMessage, CallError> {
        let config = &self.core.config;
        let Some(s) = self.sessions.get_mut(&session) else { return Err(self.gone(session)) };
        if s.role() != Role::Server {
            return Err(CallError::WrongRole("respond"));
        }
        check_len(config, len)?;
        if !self.rpcs.get((session, id)).is_some_and(Rpc::in_service) {
            return Err(CallError::UnknownRequest(id));
        }
        let key = charge_key(s, config, &mut self.core.stats, len)?;
        self.rpcs.update((session, id), |rpc| {
            if let RpcState::Server(server) = &mut rpc.state {
                server.phase = ServerPhase::Sealing;
            }
            // Sealing has `rpc_timeout` to finish; a response never finished frees
            // the RPC then.
            rpc.live.last_progress = now;
        });
        Ok(PreparedMessage {
            session,
            id,
            key,
            record_size: config.record_size,
            len,
            request: false,
            buffers: self.core.buffers.clone(),
        })
    }

    /// Abandons client RPC `id` (the caller no longer wants the response): its state
    /// is freed at once, no event follows, and the server is told (RPC_UNKNOWN), which
    /// frees a response it is sending. A server still receiving or serving the
    /// request finishes on its own; a response that arrives later is dropped and
    /// acknowledged when the server asks (NEED_ACK), which frees it there. False if
    /// there is no such client RPC.
    pub fn cancel_call(&mut self, session: SessionHandle, id: MessageId) -> bool {
        let is_client = self.rpcs.get((session, id)).is_some_and(|rpc| rpc.role() == Role::Client);
        if !is_client {
            return false;
        }
        self.rpcs.remove((session, id));
        self.core.stats.calls_cancelled += 1;
        if let Some(s) = self.sessions.get(&session) {
            self.core.send_control(s, id, crate::wire::Body::RpcUnknown);
        }
        true
    }

    /// Gives up on answering request `id`: its state is freed. The server no longer
    /// answers the client's probes for it (the request already ran and never runs
    /// again), so the client's RPC fails by the progress timeout.
    pub fn abandon_request(&mut self, session: SessionHandle, id: MessageId) {
        let awaiting = self.rpcs.get((session, id)).is_some_and(|rpc| {
            matches!(
                &rpc.state,
                RpcState::Server(s) if matches!(s.phase, ServerPhase::InService { .. } | ServerPhase::Sealing)
            )
        });
        if awaiting {
            self.rpcs.remove((session, id));
        }
    }

    /// Second half of `call` / `respond`: queues a message sealed from `prepared`.
    /// Fails if the session ended or the request timed out in between (the RPC's
    /// failure, if any, was already reported), or if `wire` is not what `prepared`
    /// seals.
    pub fn finish(
        &mut self,
        now: Instant,
        prepared: PreparedMessage,
        sealed: SealedMessage,
    ) -> Result<(), CallError> {
        let layout = MessageLayout::for_payload(prepared.len, prepared.record_size)
            .ok_or(CallError::SealMismatch)?;
        let wire = sealed.image;
        if wire.len() != layout.wire_len() as usize {
            return Err(CallError::SealMismatch);
        }
        let (h, id) = (prepared.session, prepared.id);
        let Some(s) = self.sessions.get_mut(&h) else { return Err(self.gone(h)) };
        let mut out = OutgoingMessage::new(layout, wire, s.path.unscheduled());
        out.set_phase(prepared.key.phase);
        let generation = prepared.key.generation;
        if prepared.request {
            let ahead = u32::try_from(self.rpcs.session_usage(h).rpcs).unwrap_or(u32::MAX);
            let mut timeouts = s.timeouts();
            timeouts.answer_after = s.answer_after(ahead);
            let window = self.core.config.max_unscheduled_in_flight;
            let queued = !self.rpcs.window_admits(h, out.unscheduled() as usize, window);
            self.core.stats.calls_queued += u64::from(queued);
            let rpc = Rpc::client(now, timeouts, out, generation, ahead, queued);
            if !self.rpcs.insert((h, id), rpc) {
                return Err(CallError::RpcGone);
            }
            // Acknowledgements waiting for this server leave together with the request.
            if matches!(&s.side, Side::Client(c) if !c.pending_acks.is_empty()) {
                self.core.acks_now(h);
            }
            return Ok(());
        }
        let timeouts = s.timeouts();
        let attached = self.rpcs.update((h, id), |rpc| {
            let RpcState::Server(server) = &mut rpc.state else { return false };
            if !matches!(server.phase, ServerPhase::Sealing) {
                return false;
            }
            server.phase = ServerPhase::Responding { response: out };
            server.tx_generation = generation;
            rpc.live.timeouts = timeouts;
            rpc.live.reset(now);
            true
        });
        if attached == Some(true) {
            Ok(())
        } else {
            Err(CallError::RpcGone)
        }
    }

    /// Closes a session: tells the peer, fails its RPCs locally, frees its state.
    pub fn close_session(&mut self, _now: Instant, session: SessionHandle) {
        if let Some(s) = self.sessions.get(&session) {
            self.core.send_control(s, MessageId::default(), Body::Close);
        }
        self.end_session(session, RpcError::LocallyClosed);
    }

    /// Closes every session (graceful shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let handles: Vec<SessionHandle> = self.sessions.keys().copied().collect();
        for h in handles {
            self.close_session(now, h);
        }
    }

    /// Ends a session for `reason`: fails its RPCs, frees its state, remembers why.
    pub(crate) fn end_session(&mut self, handle: SessionHandle, reason: RpcError) {
        let handshakes: Vec<HandshakeKey> =
            self.handshakes.iter().filter(|(_, hs)| hs.handle == handle).map(|(k, _)| *k).collect();
        for key in handshakes {
            self.handshakes.remove(&key);
            self.core.timers.cancel(Timer::Handshake(key));
        }
        let Some(session) = self.sessions.remove(&handle) else { return };
        self.by_key.remove(&(session.peer, session.session_id, session.role()));
        if let Some(handles) = self.by_id.get_mut(&session.session_id) {
            handles.retain(|&h| h != handle);
            if handles.is_empty() {
                self.by_id.remove(&session.session_id);
            }
        }
        self.peer_certs.remove(&handle);
        for (id, rpc) in self.rpcs.remove_session(handle) {
            if rpc.role() == Role::Client {
                self.core.events.push_back(Event::RpcFailed {
                    session: handle,
                    id,
                    error: reason.clone(),
                });
            }
        }
        self.core.acks_due.remove(&handle);
        self.core.timers.cancel(Timer::Acks(handle));
        self.core.timers.cancel(Timer::Idle(handle));
        self.closed.bury(handle, reason.clone());
        self.core.events.push_back(Event::SessionClosed { session: handle, reason });
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(now) = self.core.last_now.filter(|_| !self.core.open_queue.is_empty()) {
            self.open_received_here(now);
        }
        self.core.events.pop_front()
    }

    /// How many events wait for [`poll_event`](Self::poll_event).
    pub fn pending_events(&self) -> usize {
        self.core.events.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the
    /// earliest timer of any RPC, acknowledgement or handshake.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.rpcs.next_deadline(), self.core.timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
        let t = self.rpcs.totals();
        MemoryUsage {
            sessions: self.sessions.len(),
            rpcs: t.rpcs,
            incoming_messages: t.incoming_messages,
            incoming_bytes: t.incoming_bytes,
            queued_request_bytes: t.queued_bytes,
            outgoing_bytes: t.outgoing_bytes,
            granted_unreceived: t.granted_unreceived,
            spare_buffer_bytes: self.core.buffers.spare_bytes(),
            session_overhead_bytes: self.sessions.values().map(Session::overhead).sum::<usize>()
                + t.rpcs * core::mem::size_of::<Rpc>(),
        }
    }

    /// Scheduled bytes granted but not yet received, over all incoming messages.
    pub fn granted_unreceived(&self) -> u64 {
        self.rpcs.totals().granted_unreceived
    }

    /// Whether anything is waiting in the transmit queues.
    pub fn has_transmit(&self) -> bool {
        (self.core.grants_due && self.rpcs.has_grantable())
            || !self.core.open_queue.is_empty()
            || !self.core.control.is_empty()
            || !self.core.acks_due.is_empty()
            || self.rpcs.has_ready()
    }

    /// Number of armed timers (RPCs, acknowledgements, handshakes).
    pub fn armed_timers(&self) -> usize {
        self.rpcs.armed_timers() + self.core.timers.len()
    }

    pub(crate) fn context(&mut self) -> (&mut BTreeMap<SessionHandle, Session>, Context<'_>) {
        let cx = Context {
            core: &mut self.core,
            rpcs: &mut self.rpcs,
            probation: false,
            authenticated_new_data: false,
        };
        (&mut self.sessions, cx)
    }
}

/// Reserves the records of a `len`-byte message on the session's sending key,
/// updating the key when it is due (see [`TxKeys::charge`](super::keys::TxKeys)).
fn charge_key(
    s: &mut Session,
    config: &Config,
    stats: &mut Stats,
    len: usize,
) -> Result<SealingKey, CallError> {
    let records = MessageLayout::for_payload(len, config.record_size)
        .map_or(u64::MAX, |l| l.record_count() as u64);
    let limit =
        config.key_usage_limit.unwrap_or_else(|| s.tx.current().suite().confidentiality_limit());
    let update_after = config.key_update_after.unwrap_or(limit / 2);
    let (key, charged) = s.tx.charge(records, limit, update_after)?;
    if charged == super::keys::Charged::Updated {
        stats.key_updates_sent += 1;
    }
    Ok(key)
}
