//! The client side of a session: packets about our requests and their responses.

use std::time::{Duration, Instant};

use super::endpoint::Context;
use super::event::Event;
use super::incoming::{open_whole, Absorbed, IncomingMessage};
use super::recv::{absorb, new_incoming, on_grant, resend_outgoing, Step};
use super::rpc::{ClientPhase, ClientRpc, Rpc, RpcState};
use super::rpc_table::RpcKey;
use super::session::{Session, Side};
use crate::wire::{Body, DataRepr, Flags, HeaderRepr, MAX_ACKS_PER_PACKET};

/// Handles a packet the server sent on an established client session.
pub(crate) fn on_packet(
    cx: &mut Context<'_>,
    session: &mut Session,
    now: Instant,
    header: &HeaderRepr,
    body: Body<'_>,
) {
    let key = (session.handle, header.message_id);
    match body {
        Body::Data(data) => {
            let phase = header.flags.contains(Flags::KEY_PHASE);
            on_response_data(cx, session, key, now, &data, phase);
        }
        Body::Grant(grant) => on_grant(cx, key, now, &grant),
        Body::Resend(resend) => {
            if resend_outgoing(cx, key, now, &resend).is_none() {
                // Tell the server we hold nothing, so it gives up on the RPC.
                cx.core.stats.unknown_rpc += 1;
                cx.core.send_control(session, key.1, Body::RpcUnknown);
            }
        }
        Body::RpcUnknown => on_rpc_unknown(cx, key, now),
        // BUSY means the request arrived whole and is being served: progress for a
        // client still waiting for the first byte of its response.
        Body::Busy => {
            cx.rpcs.update(key, |rpc| {
                if rpc.incoming().is_none() && !rpc.queued() {
                    rpc.live.last_heard = now;
                    rpc.live.last_progress = now;
                    if let Some(client) = client_mut(rpc) {
                        client.heard_back = true;
                    }
                }
            });
        }
        Body::NeedAck => on_need_ack(cx, session, key),
        // ACKs are for servers; session-level packets were handled before.
        Body::Ack(_) | Body::Handshake(_) | Body::Retry(_) | Body::SessionUnknown | Body::Close => {
        }
    }
}

/// The client RPC's state, if `rpc` is one.
fn client_mut(rpc: &mut Rpc) -> Option<&mut ClientRpc> {
    match &mut rpc.state {
        RpcState::Client(c) => Some(c),
        RpcState::Server(_) => None,
    }
}

fn on_response_data(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) {
    let Some(rpc) = cx.rpcs.get(key) else {
        // A response for no outstanding RPC: finished, failed, or forged.
        cx.core.stats.unknown_rpc += 1;
        return;
    };
    if rpc.incoming().is_none() && complete_whole(cx, session, key, now, data, phase) {
        return;
    }
    if rpc_receiving(cx, key) == Some(false) && !start_response(cx, session, key, now, data, phase)
    {
        cx.rpcs.update(key, |rpc| rpc.live.last_heard = now);
        return;
    }
    match absorb(cx, session, key, now, data, phase) {
        Step::Continue => {}
        Step::Complete => complete(cx, session, key, now),
        Step::Restart => {
            if drop_response(cx, key) && start_response(cx, session, key, now, data, phase) {
                absorb(cx, session, key, now, data, phase);
            }
        }
        Step::Discard => {
            drop_response(cx, key);
        }
    }
}

fn rpc_receiving(cx: &Context<'_>, key: RpcKey) -> Option<bool> {
    cx.rpcs.get(key).map(|rpc| rpc.incoming().is_some())
}

/// A response that arrived whole in one packet and opens completes the RPC at once,
/// with no reassembly state. False if it is not such a response (the ordinary path
/// then handles it, failures included).
fn complete_whole(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> bool {
    if data.payload.len() > cx.core.config.max_message_len {
        return false;
    }
    let Some(keys) = session.rx.candidates(phase, now) else { return false };
    let Some((payload, next)) = open_whole(key.1, data, &keys) else { return false };
    if let Some(next) = next {
        if session.rx.advance_if_next(&next, now, cx.core.config.rpc_timeout) {
            cx.core.stats.key_updates_received += 1;
        }
    }
    let Some(Rpc { state: RpcState::Client(rpc), .. }) = cx.rpcs.remove(key) else { return true };
    sample_answer_pace(session, &rpc, now);
    deliver(cx, session, key, now, rpc.tx_generation, payload);
    true
}

/// A call's time to the first packet of its answer, divided by the answers due
/// before it, is a sample of the session's answer pace; taken once the answer
/// authenticated, so forged packets cannot make it up. The first packet, not the
/// last: the pace decides how long a call waits before asking for an answer that
/// has not begun, and a response slowed by its own losses says nothing about that.
fn sample_answer_pace(session: &mut Session, rpc: &ClientRpc, now: Instant) {
    if let Some(answer_time) = rpc.answer_time(now) {
        session.answer_pace.on_sample(answer_time / rpc.ahead.saturating_add(1));
    }
}

/// Begins receiving the response announced by `data`. False if refused.
fn start_response(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> bool {
    let Some(response) = new_incoming(cx, session, now, data, phase) else { return false };
    let (len, max) = (response.layout().payload_len(), cx.core.config.max_message_len);
    if len > max {
        // The length is unauthenticated here: a corrupted or forged packet must not
        // fail the RPC. Drop the packet; remember the length for the timeout's error.
        cx.core.stats.malformed += 1;
        cx.rpcs.update(key, |rpc| {
            if let Some(c) = client_mut(rpc) {
                c.oversized_response = c.oversized_response.max(Some(len));
            }
        });
        return false;
    }
    if !cx.rpcs.admits(key.0, response.charge()) {
        cx.core.stats.admission_refused += 1;
        return false;
    }
    cx.rpcs.update(key, |rpc| client_mut(rpc).map(|c| c.start_receiving(response, now)))
        == Some(Some(true))
}

impl ClientRpc {
    /// Requesting -> Receiving. False (nothing changes) in any other phase: a
    /// response for a request not sent yet is forged or misdirected.
    fn start_receiving(&mut self, response: IncomingMessage, now: Instant) -> bool {
        if !matches!(self.phase, ClientPhase::Requesting { .. }) {
            return false;
        }
        self.answer_began.get_or_insert(now);
        let receiving = ClientPhase::Receiving { request: None, response: Box::new(response) };
        if let ClientPhase::Requesting { request } = std::mem::replace(&mut self.phase, receiving) {
            if let ClientPhase::Receiving { request: slot, .. } = &mut self.phase {
                *slot = Some(request);
            }
        }
        true
    }

    /// The time from the request's last byte to the first packet of its answer, if
    /// it is a fair sample of the answer pace (Karn): not after a restart or any
    /// other loss recovery (`recovered`), whose time is not one answer's wait. `now`:
    /// a response that arrives whole now. From the last byte, not the call: the pace
    /// sets how long a call whose request went out waits before asking, and a large
    /// request's own transfer (or a wait for the session's window) is no part of
    /// that.
    fn answer_time(&self, now: Instant) -> Option<Duration> {
        if self.restarts > 0 || self.recovered || matches!(self.phase, ClientPhase::Queued { .. }) {
            return None;
        }
        let began = self.answer_began.unwrap_or(now);
        Some(began.saturating_duration_since(self.request_sent.unwrap_or(self.called_at)))
    }

    /// Receiving -> Requesting, dropping the response so far. False if the request
    /// is gone (only after the response authenticated, when this is never needed).
    fn drop_response(&mut self) -> bool {
        let ClientPhase::Receiving { request, .. } = &mut self.phase else { return true };
        let Some(request) = request.take() else { return false };
        self.phase = ClientPhase::Requesting { request };
        true
    }
}

/// Drops the response received so far; removes the RPC if that leaves it nothing.
fn drop_response(cx: &mut Context<'_>, key: RpcKey) -> bool {
    let kept = cx.rpcs.update(key, |rpc| client_mut(rpc).is_some_and(ClientRpc::drop_response));
    if kept == Some(false) {
        cx.rpcs.remove(key);
    }
    kept == Some(true)
}

/// Records of a response were opened elsewhere (see `opening`): `Complete` delivers
/// it, `Forged` drops the state built from forged header fields.
pub(crate) fn on_opened(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    outcome: Absorbed,
) {
    match outcome {
        Absorbed::Complete => complete(cx, session, key, now),
        Absorbed::Forged => {
            drop_response(cx, key);
        }
        _ => {}
    }
}

/// The response is complete: deliver it and owe the server an acknowledgement.
fn complete(cx: &mut Context<'_>, session: &mut Session, key: RpcKey, now: Instant) {
    let Some(Rpc { state: RpcState::Client(rpc), .. }) = cx.rpcs.remove(key) else { return };
    sample_answer_pace(session, &rpc, now);
    let ClientPhase::Receiving { response, .. } = rpc.phase else { return };
    deliver(cx, session, key, now, rpc.tx_generation, response.into_payload());
}

/// Hands a response to the application and owes the server an acknowledgement.
fn deliver(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    tx_generation: u64,
    payload: bytes::Bytes,
) {
    // The server answered a request sealed with this generation of our key.
    session.tx.confirm(tx_generation);
    cx.core.stats.responses_delivered += 1;
    cx.core.events.push_back(Event::Response { session: key.0, id: key.1, payload });
    let Side::Client(client) = &mut session.side else { return };
    client.pending_acks.push(key.1);
    if client.pending_acks.len() >= MAX_ACKS_PER_PACKET {
        cx.core.acks_now(key.0);
    } else {
        cx.core.acks_soon(key.0, now);
    }
}

/// The server lost (or never got) the request: send it again from byte 0,
/// byte-identical. Harmless if forged: the server runs a request only once.
/// Response bytes that have not authenticated may be forged, so they do not prevent
/// the restart.
fn on_rpc_unknown(cx: &mut Context<'_>, key: RpcKey, now: Instant) {
    let Some(rpc) = cx.rpcs.get(key) else { return };
    let RpcState::Client(client) = &rpc.state else { return };
    let authenticated = rpc.incoming().is_some_and(IncomingMessage::authenticated);
    if authenticated || rpc.outgoing().is_none() || rpc.queued() {
        return;
    }
    let backoff = client.restart_backoff(rpc.live.timeouts.resend_after);
    if client.restarts > 0 && now.saturating_duration_since(client.last_restart) < backoff {
        return;
    }
    if !drop_response(cx, key) {
        return;
    }
    cx.rpcs.update(key, |rpc| {
        rpc.live.last_heard = now;
        if let Some(client) = client_mut(rpc) {
            client.restarts += 1;
            client.last_restart = now;
            // Sent again from byte 0: its unscheduled bytes are in flight again.
            client.heard_back = false;
        }
        if let Some(out) = rpc.outgoing_mut() {
            out.restart();
        }
    });
}

/// The server asks whether a response arrived: if we no longer hold the RPC, it did
/// (or we gave up): acknowledge it now.
fn on_need_ack(cx: &mut Context<'_>, session: &mut Session, key: RpcKey) {
    if cx.rpcs.contains(key) {
        return; // still receiving: our own RESEND timer drives recovery
    }
    let Side::Client(client) = &mut session.side else { return };
    if !client.pending_acks.contains(&key.1) {
        client.pending_acks.push(key.1);
    }
    cx.core.acks_now(key.0);
}
