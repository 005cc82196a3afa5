//! The receive path: one datagram in, state changes and queued replies out.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::trace;

use super::endpoint::{snap_in, snap_out, Core, Endpoint};
use super::event::{Event, Role, RpcError, SessionHandle};
use super::incoming::{Absorbed, IncomingMessage};
use super::replay::ReplayVerdict;
use super::session::{Rpc, Session};
use crate::wire::{
    AckRepr, Body, DataRepr, Flags, GrantRepr, HeaderRepr, MessageId, PacketRepr, ResendRepr,
};

/// Replies to packets for unknown sessions are limited to this many per tick, so the
/// endpoint cannot be used to flood a spoofed address (replies are never larger than
/// the packets that caused them, so there is no amplification either).
const UNKNOWN_SESSION_REPLIES_PER_TICK: u32 = 64;

impl Endpoint {
    /// Processes one received datagram from `from` (for native IP mode, the peer's IP
    /// with the SMT source port). Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.core.stats.datagrams_received += 1;
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
        if header.dst_port != self.core.local_port {
            self.core.stats.misdirected += 1;
            return;
        }
        let role =
            if header.flags.contains(Flags::FROM_INITIATOR) { Role::Server } else { Role::Client };
        if let Body::Handshake(hs) = packet.body {
            self.handle_handshake_packet(now, from, &header, role, &hs);
            return;
        }
        let key = (from, header.session_id, role);
        let Some(&handle) = self.by_key.get(&key) else {
            self.core.stats.unknown_session += 1;
            // While the handshake is still finishing, data may overtake the client's
            // last flight: drop it quietly, the client's timers will resend it.
            if !self.handshakes.contains_key(&key) {
                self.reply_session_unknown(now, from, &header);
            }
            return;
        };
        let id = header.message_id;
        let Some(session) = self.sessions.get_mut(&handle) else { return };
        let core = &mut self.core;
        match packet.body {
            Body::Data(data) => {
                let phase = header.flags.contains(Flags::KEY_PHASE);
                on_data(core, session, now, id, &data, phase)
            }
            Body::Grant(grant) => on_grant(core, session, now, id, &grant),
            Body::Resend(resend) => on_resend(core, session, now, id, &resend),
            Body::RpcUnknown => on_rpc_unknown(core, session, now, id),
            // BUSY means the request arrived whole and is being served; only a client
            // waiting for its response takes it as progress.
            Body::Busy if session.role == Role::Client => {
                if let Some(rpc) = session.rpcs.get_mut(&id).filter(|r| r.inc.is_none()) {
                    rpc.last_heard = now;
                    rpc.last_progress = now;
                }
            }
            Body::Busy => {}
            Body::NeedAck => on_need_ack(core, session, id),
            Body::Ack(ack) => on_ack(core, session, &ack),
            Body::SessionUnknown => self.end_session(handle, RpcError::PeerReset),
            Body::Close => self.end_session(handle, RpcError::PeerClosed),
            Body::Handshake(_) => {}
        }
        self.schedule_grants();
        self.ensure_tick(now);
    }

    pub(crate) fn end_session(&mut self, handle: SessionHandle, reason: RpcError) {
        self.handshakes.retain(|_, hs| hs.handle != handle);
        let Some(mut session) = self.sessions.remove(&handle) else { return };
        self.by_key.remove(&(session.peer, session.session_id, session.role));
        self.peer_certs.remove(&handle);
        self.core.fail_session(&mut session, reason);
    }

    fn reply_session_unknown(&mut self, now: Instant, to: SocketAddr, header: &HeaderRepr) {
        use crate::wire::PacketType::*;
        if !matches!(header.packet_type, Data | Grant | Resend | NeedAck | Ack | Busy) {
            return; // never answer SESSION_UNKNOWN/CLOSE/RPC_UNKNOWN: no reply loops
        }
        let window_over =
            self.core.unknown_reply_window.is_none_or(|start| now >= start + self.core.config.tick);
        if window_over {
            self.core.unknown_reply_window = Some(now);
            self.core.unknown_replies = 0;
        }
        if self.core.unknown_replies >= UNKNOWN_SESSION_REPLIES_PER_TICK {
            return;
        }
        self.core.unknown_replies += 1;
        let mut flags = Flags::empty();
        // We answer as the other side of the session the packet claimed.
        flags.set(Flags::FROM_INITIATOR, !header.flags.contains(Flags::FROM_INITIATOR));
        let reply = PacketRepr {
            header: HeaderRepr {
                src_port: header.dst_port,
                dst_port: header.src_port,
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

fn on_data(
    core: &mut Core,
    session: &mut Session,
    now: Instant,
    id: MessageId,
    data: &DataRepr<'_>,
    phase: bool,
) {
    match session.rpcs.get_mut(&id) {
        Some(rpc) => {
            rpc.last_heard = now;
            if rpc.inc.is_none() {
                match session.role {
                    // Request bytes for a request already delivered: a retransmission
                    // or a replay; either way it never runs twice.
                    Role::Server => {
                        core.stats.duplicate_packets += 1;
                        return;
                    }
                    Role::Client => {
                        if !start_incoming(core, session, now, id, data, phase) {
                            return;
                        }
                    }
                }
            }
        }
        None => {
            if session.role == Role::Client {
                // A response for no outstanding RPC: finished, failed, or forged.
                core.stats.unknown_rpc += 1;
                return;
            }
            let verdict =
                session.replay.as_ref().map_or(ReplayVerdict::TooOld, |w| w.check(id.get()));
            if verdict != ReplayVerdict::Fresh {
                core.stats.replays_rejected += 1;
                return;
            }
            session.rpcs.insert(id, Rpc::new(now));
            core.rpc_count += 1;
            if !start_incoming(core, session, now, id, data, phase) {
                core.remove_rpc(session, id);
                return;
            }
        }
    }
    absorb(core, session, now, id, data, phase);
}

/// Creates the incoming message for `id` from its first packet. False if refused.
fn start_incoming(
    core: &mut Core,
    session: &mut Session,
    now: Instant,
    id: MessageId,
    data: &DataRepr<'_>,
    phase: bool,
) -> bool {
    let keys = session.rx_candidates(phase, now);
    let Some(inc) = IncomingMessage::new(data, phase, keys) else {
        core.stats.malformed += 1;
        return false;
    };
    let max = core.config.max_message_len;
    if inc.layout.payload_len() > max {
        if session.role == Role::Client {
            // Our own RPC: fail it clearly rather than wait for a timeout.
            let len = inc.layout.payload_len();
            core.remove_rpc(session, id);
            core.events.push_back(Event::RpcFailed {
                session: session.handle,
                id,
                error: RpcError::ResponseTooLarge { len, max },
            });
        } else {
            core.stats.admission_refused += 1;
        }
        return false;
    }
    let Some(inc) = core.admit_incoming(session, inc) else { return false };
    core.attach_incoming(session, id, inc);
    true
}

fn absorb(
    core: &mut Core,
    session: &mut Session,
    now: Instant,
    id: MessageId,
    data: &DataRepr<'_>,
    phase: bool,
) {
    let h = session.handle;
    let Some(rpc) = session.rpcs.get_mut(&id) else { return };
    let Some(inc) = rpc.inc.as_mut() else { return };
    let before = snap_in(Some(inc));
    let high_water = inc.high_water;
    let outcome = inc.absorb(id, data, phase);
    let authenticated = inc.authenticated;
    let next_key = inc.opened_with_next.take();
    if inc.high_water > high_water {
        rpc.last_progress = now;
    }
    core.track_in(h, id, before, snap_in(Some(inc)));
    // Once the response authenticates, the server provably has the whole request:
    // stop keeping it. (Not earlier: a forged response packet must not make the
    // client unable to resend its request.)
    if authenticated && session.role == Role::Client && rpc.out.is_some() {
        core.drop_outgoing(session, id);
    }
    // The peer updated its key and this message proves it: follow, keeping the old
    // key for messages sealed before the update that are still arriving.
    if let Some(key) = next_key {
        if session.rx_next.as_ref().is_some_and(|next| std::sync::Arc::ptr_eq(next, &key)) {
            session.advance_rx(now, core.config.rpc_timeout);
            core.stats.key_updates_received += 1;
        }
    }
    match outcome {
        Absorbed::Progress => {}
        Absorbed::Duplicate => core.stats.duplicate_packets += 1,
        Absorbed::RecordRejected => core.stats.auth_failures += 1,
        Absorbed::Inconsistent => {
            // Two different layouts claim this ID. Until record 0 authenticates we
            // cannot tell which is genuine, so the newest wins; after that, the
            // authenticated layout stays and the packet is dropped.
            core.stats.malformed += 1;
            if !authenticated {
                core.drop_incoming(session, id);
                if start_incoming(core, session, now, id, data, phase) {
                    absorb(core, session, now, id, data, phase);
                } else if session.role == Role::Server {
                    core.remove_rpc(session, id);
                }
            }
        }
        Absorbed::Forged => {
            core.stats.auth_failures += 1;
            core.drop_incoming(session, id);
            if session.role == Role::Server {
                core.remove_rpc(session, id);
            }
        }
        Absorbed::Complete => complete(core, session, id),
    }
}

fn complete(core: &mut Core, session: &mut Session, id: MessageId) {
    let h = session.handle;
    let Some(inc) = core.take_incoming(session, id) else { return };
    let Some(rpc) = session.rpcs.get_mut(&id) else { return };
    let payload = inc.into_payload();
    match session.role {
        Role::Server => {
            if let Some(window) = session.replay.as_mut() {
                window.mark(id.get());
            }
            rpc.in_service = true;
            core.stats.requests_delivered += 1;
            core.events.push_back(Event::Request { session: h, id, payload });
        }
        Role::Client => {
            // The server answered a request sealed with this generation of our key.
            session.tx_confirmed = session.tx_confirmed.max(rpc.tx_generation);
            core.remove_rpc(session, id);
            core.stats.responses_delivered += 1;
            core.events.push_back(Event::Response { session: h, id, payload });
            session.pending_acks.push(id);
            if session.pending_acks.len() >= crate::wire::MAX_ACKS_PER_PACKET {
                core.acks_pending.remove(&h);
                core.acks_due.insert(h);
            } else if !core.acks_due.contains(&h) {
                core.acks_pending.insert(h);
            }
        }
    }
}

fn on_grant(
    core: &mut Core,
    session: &mut Session,
    now: Instant,
    id: MessageId,
    grant: &GrantRepr,
) {
    let h = session.handle;
    let Some(rpc) = session.rpcs.get_mut(&id) else {
        core.stats.unknown_rpc += 1;
        return;
    };
    rpc.last_heard = now;
    if let Some(out) = rpc.out.as_mut() {
        let before = snap_out(Some(out));
        let granted = out.granted;
        out.grant(grant.offset, grant.priority);
        if out.granted > granted {
            rpc.last_progress = now;
        }
        core.track_out(h, id, before, snap_out(Some(out)));
    }
}

fn on_resend(
    core: &mut Core,
    session: &mut Session,
    now: Instant,
    id: MessageId,
    resend: &ResendRepr,
) {
    let h = session.handle;
    let Some(rpc) = session.rpcs.get_mut(&id) else {
        core.stats.unknown_rpc += 1;
        // A request that already ran (and was answered or abandoned) is never run
        // again, so inviting the client to resend it would only loop: stay silent
        // and let its RPC time out. Otherwise tell the peer we hold nothing, so it
        // restarts (client) or gives up (server).
        let already_ran =
            session.replay.as_ref().is_some_and(|w| w.check(id.get()) != ReplayVerdict::Fresh);
        if !already_ran {
            core.send_control(session, id, Body::RpcUnknown);
        }
        return;
    };
    rpc.last_heard = now;
    match rpc.out.as_mut() {
        Some(out) => {
            let before = snap_out(Some(out));
            // A RESEND implies a grant up to its end (Homa): it also recovers lost GRANTs.
            out.grant(resend.offset + resend.length, resend.priority);
            out.request_resend(resend.offset..resend.offset + resend.length);
            core.track_out(h, id, before, snap_out(Some(out)));
        }
        // The request is complete and the application is working on it. (While
        // the request is still arriving, the server's own RESENDs drive recovery.)
        None if session.role == Role::Server && rpc.inc.is_none() => {
            core.send_control(session, id, Body::Busy);
        }
        None => {}
    }
}

fn on_rpc_unknown(core: &mut Core, session: &mut Session, now: Instant, id: MessageId) {
    let h = session.handle;
    let Some(rpc) = session.rpcs.get(&id) else { return };
    match session.role {
        Role::Client => {
            // The server lost (or never got) the request: send it again from byte 0,
            // byte-identical. Harmless if forged: the server runs a request only once.
            // Response bytes that have not authenticated may be forged, so they do
            // not prevent the restart.
            let authenticated = rpc.inc.as_ref().is_some_and(|inc| inc.authenticated);
            if authenticated || rpc.out.is_none() {
                return;
            }
            let backoff = core.config.resend_after * 2u32.saturating_pow(rpc.restarts.min(16));
            if rpc.restarts > 0 && now.saturating_duration_since(rpc.last_restart) < backoff {
                return;
            }
            core.drop_incoming(session, id);
            let Some(rpc) = session.rpcs.get_mut(&id) else { return };
            rpc.restarts += 1;
            rpc.last_restart = now;
            rpc.last_heard = now;
            if let Some(out) = rpc.out.as_mut() {
                let before = snap_out(Some(out));
                out.restart();
                core.track_out(h, id, before, snap_out(Some(out)));
            }
        }
        Role::Server => {
            // The client no longer wants the response.
            if rpc.out.is_some() {
                core.remove_rpc(session, id);
            }
        }
    }
}

fn on_need_ack(core: &mut Core, session: &mut Session, id: MessageId) {
    if session.role != Role::Client || session.rpcs.contains_key(&id) {
        return; // still receiving: our own RESEND timer drives recovery
    }
    if !session.pending_acks.contains(&id) {
        session.pending_acks.push(id);
    }
    // The server asked: answer now.
    core.acks_pending.remove(&session.handle);
    core.acks_due.insert(session.handle);
}

fn on_ack(core: &mut Core, session: &mut Session, ack: &AckRepr) {
    if session.role != Role::Server {
        return;
    }
    for &id in ack.ids() {
        // Only responses can be acknowledged: an ACK never frees a request still in
        // service, so a forged one cannot make the application's answer fail.
        if let Some(rpc) = session.rpcs.get(&id).filter(|rpc| rpc.out.is_some()) {
            // The client received a response sealed with this generation of our key.
            session.tx_confirmed = session.tx_confirmed.max(rpc.tx_generation);
            core.remove_rpc(session, id);
        }
    }
}
