//! The receive path: one datagram in, parsed, matched to its session and handed to
//! that session's side (`client.rs` or `server.rs`); what both sides share about
//! absorbing DATA into an incoming message lives here too.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, trace};

use super::endpoint::{Context, Endpoint};
use super::event::{Role, RpcError};
use super::incoming::{Absorbed, IncomingMessage};
use super::lifecycle::KEEP_ALIVE_ID;
use super::rpc::RpcState;
use super::rpc_table::RpcKey;
use super::session::Session;
use super::{client, server};
use crate::wire::{
    split_bundle, Body, DataRepr, Flags, GrantRepr, HeaderRepr, MessageId, PacketRepr,
};

/// Replies to packets for unknown sessions are limited to this many per tick, so the
/// endpoint cannot be used to flood a spoofed address (replies are never larger than
/// the packets that caused them, so there is no amplification either).
const UNKNOWN_SESSION_REPLIES_PER_TICK: u32 = 64;

impl Endpoint {
    /// Processes one received datagram from `from` (for native IP mode, the peer's IP
    /// with the SMT source port): one packet, or several bundled. Never panics,
    /// whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.core.stats.datagrams_received += 1;
        self.core.stats.bytes_received += datagram.len() as u64;
        self.core.last_now = Some(now);
        let mut rest = datagram;
        let mut first = true;
        loop {
            let (packet, next) = match split_bundle(rest) {
                Ok(split) => split,
                Err(error) => {
                    self.core.stats.malformed += 1;
                    trace!(%from, %error, "dropping the rest of a malformed bundle");
                    break;
                }
            };
            let alone = first && next.is_empty();
            self.handle_packet(now, from, packet, alone);
            if next.is_empty() {
                break;
            }
            rest = next;
            first = false;
        }
        self.core.grants_due = true;
    }

    /// One packet of a datagram; `alone` if the datagram holds nothing else.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], alone: bool) {
        let packet = match PacketRepr::parse(datagram) {
            Ok(p) => p,
            Err(error) => {
                self.core.stats.malformed += 1;
                trace!(%from, %error, "dropping malformed datagram");
                return;
            }
        };
        trace!(%from, %packet, "recv");
        let header = packet.header;
        // In UDP mode the socket already chose this endpoint and address translation
        // may have changed the ports on the way: header ports are informational.
        // Over native IP they are the only demultiplexer.
        if self.core.check_ports && header.dst_port != self.core.local_port {
            self.core.stats.misdirected += 1;
            debug!(
                %from,
                src_port = header.src_port,
                dst_port = header.dst_port,
                local_port = self.core.local_port,
                "dropping packet for another port"
            );
            return;
        }
        let role =
            if header.flags.contains(Flags::FROM_INITIATOR) { Role::Server } else { Role::Client };
        if let Body::Handshake(hs) = packet.body {
            if !alone {
                // HANDSHAKE packets always travel alone (the anti-amplification
                // accounting counts whole datagrams).
                self.core.stats.malformed += 1;
                return;
            }
            self.handle_handshake_packet(now, from, &header, role, &hs);
            return;
        }
        if let Body::Retry(retry) = packet.body {
            if !alone {
                self.core.stats.malformed += 1;
                return;
            }
            let len = crate::wire::HEADER_LEN + retry.buffer_len();
            self.handle_retry(now, from, &header, role, &retry, len);
            return;
        }
        let key = (from, header.session_id, role);
        let Some(&handle) = self.by_key.get(&key) else {
            if self.on_refusal_during_handshake(now, key, &header) {
                return;
            }
            if role == Role::Server && self.handle_from_new_address(now, from, &header, packet.body)
            {
                return;
            }
            self.core.stats.unknown_session += 1;
            // While the handshake is still finishing, data may overtake the client's
            // last flight: drop it quietly, the client's timers will resend it.
            if !self.handshakes.contains_key(&key) {
                self.reply_session_unknown(now, from, &header);
            }
            return;
        };
        match packet.body {
            Body::SessionUnknown => self.end_session(handle, RpcError::PeerReset),
            Body::Close => self.end_session(handle, RpcError::PeerClosed),
            body => {
                let (sessions, mut cx) = self.context();
                let Some(session) = sessions.get_mut(&handle) else { return };
                session.last_activity = now;
                if header.message_id == KEEP_ALIVE_ID && matches!(body, Body::NeedAck) {
                    // A keep-alive probe: answer that we are here.
                    cx.core.send_control(session, KEEP_ALIVE_ID, Body::Busy);
                    return;
                }
                match role {
                    Role::Client => client::on_packet(&mut cx, session, now, &header, body),
                    Role::Server => server::on_packet(&mut cx, session, now, &header, body),
                }
            }
        }
    }

    fn reply_session_unknown(&mut self, now: Instant, to: SocketAddr, header: &HeaderRepr) {
        use crate::wire::PacketType::*;
        if !matches!(header.packet_type, Data | Grant | Resend | NeedAck | Ack | Busy) {
            return; // never answer SESSION_UNKNOWN/CLOSE/RPC_UNKNOWN: no reply loops
        }
        if !self.unknown_reply_allowed(now) {
            return;
        }
        let mut flags = Flags::empty();
        // We answer as the other side of the session the packet claimed.
        flags.set(Flags::FROM_INITIATOR, !header.flags.contains(Flags::FROM_INITIATOR));
        let reply = PacketRepr {
            header: HeaderRepr {
                src_port: self.core.local_port,
                dst_port: to.port(),
                packet_type: SessionUnknown,
                flags,
                session_id: header.session_id,
                message_id: MessageId::default(),
            },
            body: Body::SessionUnknown,
        };
        self.core.control.push_back((to, reply.to_vec()));
    }
}

impl Endpoint {
    /// Whether one more reply to a packet of no session fits this tick's allowance
    /// (and takes it).
    pub(crate) fn unknown_reply_allowed(&mut self, now: Instant) -> bool {
        let window_over =
            self.core.unknown_reply_window.is_none_or(|start| now >= start + self.core.config.tick);
        if window_over {
            self.core.unknown_reply_window = Some(now);
            self.core.unknown_replies = 0;
        }
        if self.core.unknown_replies >= UNKNOWN_SESSION_REPLIES_PER_TICK {
            return false;
        }
        self.core.unknown_replies += 1;
        true
    }
}

/// State for a message announced by its first DATA packet, or `None` (counted as
/// malformed) if its fields describe no valid message or no key can open it.
pub(crate) fn new_incoming(
    cx: &mut Context<'_>,
    session: &mut Session,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> Option<IncomingMessage> {
    let message = session
        .rx
        .candidates(phase, now)
        .and_then(|keys| IncomingMessage::new(data, phase, keys, &cx.core.buffers))
        .map(|m| m.limit_unscheduled(cx.core.config.unscheduled_bytes).began_at(now))
        .map(|m| if cx.core.defer_opening { m.defer_opening() } else { m });
    if message.is_none() {
        cx.core.stats.malformed += 1;
    }
    message
}

/// What absorbing a DATA packet means for the RPC, beyond the new bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more to do.
    Continue,
    /// Every record opened: deliver the message.
    Complete,
    /// The packet describes another layout than the unauthenticated state built so
    /// far: start the message again from this packet.
    Restart,
    /// Record 0's prologue proved the state was built from forged fields: drop it.
    Discard,
}

/// Stores a DATA packet's bytes in the RPC's incoming message and opens the records
/// they complete; follows the peer's key update if a record proves one. (The peer
/// was heard from, whatever the bytes.)
pub(crate) fn absorb(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> Step {
    let absorbed = cx.rpcs.update(key, |rpc| {
        rpc.live.last_heard = now;
        let inc = rpc.incoming_mut()?;
        let high_water = inc.high_water();
        let round_trip = inc.round_trip(data, now);
        let opened_before = inc.records_open();
        let outcome = inc.absorb(key.1, data, phase, cx.probation);
        if inc.records_open() > opened_before {
            cx.authenticated_new_data = true;
        }
        let progressed = inc.high_water() > high_water;
        let authenticated = inc.authenticated();
        let next_key = inc.take_opened_with_next();
        if progressed {
            rpc.live.last_progress = now;
        }
        if authenticated {
            rpc.drop_answered_request();
        }
        Some((outcome, authenticated, next_key, round_trip))
    });
    let Some(Some((outcome, authenticated, next_key, round_trip))) = absorbed else {
        return Step::Continue;
    };
    if let Some(sample) = round_trip {
        session.path.on_rtt_sample(sample, &cx.core.config);
        let timeouts = session.timeouts();
        cx.rpcs.update(key, |rpc| rpc.live.timeouts = timeouts);
    }
    // The peer updated its key and this message proves it: follow, keeping the old
    // key for messages sealed before the update that are still arriving.
    if let Some(next) = next_key {
        if session.rx.advance_if_next(&next, now, cx.core.config.rpc_timeout) {
            cx.core.stats.key_updates_received += 1;
        }
    }
    match outcome {
        Absorbed::Progress => Step::Continue,
        Absorbed::Queued => {
            cx.core.open_queue.push(key);
            Step::Continue
        }
        Absorbed::Busy => {
            cx.core.stats.dropped_while_opening += 1;
            Step::Continue
        }
        Absorbed::Duplicate => {
            cx.core.stats.duplicate_packets += 1;
            Step::Continue
        }
        Absorbed::BeyondGrant => {
            cx.core.stats.beyond_grant += 1;
            Step::Continue
        }
        Absorbed::RecordRejected => {
            cx.core.stats.auth_failures += 1;
            Step::Continue
        }
        Absorbed::Inconsistent => {
            // Two different layouts claim this ID. Until record 0 authenticates we
            // cannot tell which is genuine, so the newest wins; after that, the
            // authenticated layout stays and the packet is dropped.
            cx.core.stats.malformed += 1;
            if authenticated {
                Step::Continue
            } else {
                Step::Restart
            }
        }
        Absorbed::Forged => {
            cx.core.stats.auth_failures += 1;
            Step::Discard
        }
        Absorbed::Complete => Step::Complete,
    }
}

/// GRANT for a message we send (either side): raise its grant.
pub(crate) fn on_grant(cx: &mut Context<'_>, key: RpcKey, now: Instant, grant: &GrantRepr) {
    let found = cx.rpcs.update(key, |rpc| {
        if rpc.queued() {
            return; // the server cannot know of a request not sent yet
        }
        rpc.live.last_heard = now;
        // A GRANT for a request means the server has its first bytes.
        if let RpcState::Client(client) = &mut rpc.state {
            client.heard_back = true;
        }
        let progressed = rpc.outgoing_mut().is_some_and(|out| {
            let before = out.granted();
            out.grant(grant.offset, grant.priority);
            out.granted() > before
        });
        if progressed {
            rpc.live.last_progress = now;
        }
    });
    if found.is_none() {
        cx.core.stats.unknown_rpc += 1;
    }
}

/// RESEND for a message we hold the sealed image of: queue the range again. A
/// RESEND implies a grant up to its end (Homa): it also recovers lost GRANTs.
/// Returns whether the RPC had an outgoing message.
pub(crate) fn resend_outgoing(
    cx: &mut Context<'_>,
    key: RpcKey,
    now: Instant,
    resend: &crate::wire::ResendRepr,
) -> Option<bool> {
    cx.rpcs.update(key, |rpc| {
        // Only a RESEND for what we send counts as hearing about the RPC: a peer
        // that asks for a response while we still miss parts of its request must not
        // keep our own silence timer (and so our RESENDs for those parts) from firing.
        if rpc.outgoing().is_none() {
            return false;
        }
        if rpc.queued() {
            return true; // not sent yet: nothing to send again
        }
        rpc.live.last_heard = now;
        // Half our own resend interval: a peer's (RTT-derived) interval may be a
        // little shorter than ours, and its honest second ask must get through.
        let interval = rpc.live.timeouts.resend_after / 2;
        let Some(out) = rpc.outgoing_mut() else { return false };
        let end = resend.offset.saturating_add(resend.length);
        out.grant(end, resend.priority);
        out.request_resend(resend.offset..end, now, interval);
        true
    })
}
