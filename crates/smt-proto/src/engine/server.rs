//! The server side of a session: packets about requests and our responses.

use std::time::Instant;

use super::endpoint::Context;
use super::event::Event;
use super::incoming::{open_whole, Absorbed};
use super::recv::{absorb, new_incoming, on_grant, resend_outgoing, Step};
use super::replay::ReplayVerdict;
use super::rpc::{Rpc, RpcState, ServerPhase};
use super::rpc_table::RpcKey;
use super::session::{Session, Side};
use crate::wire::{AckRepr, Body, DataRepr, Flags, HeaderRepr};

/// Bytes a delivered request is charged beyond its payload while the application
/// holds it (the RPC's own state).
const QUEUED_OVERHEAD: usize = core::mem::size_of::<Rpc>();

/// Handles a packet the client sent on an established server session.
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
            on_request_data(cx, session, key, now, &data, phase);
        }
        Body::Grant(grant) => on_grant(cx, key, now, &grant),
        Body::Resend(resend) => match resend_outgoing(cx, key, now, &resend) {
            Some(true) => {}
            // The request is complete and the application is working on it. (While
            // the request is still arriving, our own RESENDs drive recovery.)
            Some(false) => {
                let working = cx.rpcs.get(key).is_some_and(|rpc| {
                    matches!(
                        &rpc.state,
                        RpcState::Server(s) if matches!(s.phase, ServerPhase::InService { .. } | ServerPhase::Sealing)
                    )
                });
                if working {
                    cx.core.send_control(session, key.1, Body::Busy);
                }
            }
            None => {
                cx.core.stats.unknown_rpc += 1;
                // A request that already ran (and was answered or abandoned) is never
                // run again, so inviting the client to resend it would only loop: stay
                // silent and let its RPC time out. Otherwise tell the client we hold
                // nothing, so it restarts.
                let Side::Server(server) = &session.side else { return };
                if server.replay.check(key.1.get()) == ReplayVerdict::Fresh {
                    cx.core.send_control(session, key.1, Body::RpcUnknown);
                }
            }
        },
        // The client holds no such RPC: it no longer wants the response, or the
        // request we are receiving never came from it (a corrupted or forged message
        // ID); either way nothing will complete it. A client that does hold the RPC
        // keeps sending its request, which starts it again.
        Body::RpcUnknown => {
            let abandoned = cx
                .rpcs
                .get(key)
                .is_some_and(|rpc| rpc.outgoing().is_some() || rpc.incoming().is_some());
            if abandoned {
                cx.rpcs.remove(key);
            }
        }
        Body::Ack(ack) => on_ack(cx, session, &ack),
        // BUSY and NEED_ACK are for clients; session-level packets were handled before.
        Body::Busy
        | Body::NeedAck
        | Body::Handshake(_)
        | Body::Retry(_)
        | Body::SessionUnknown
        | Body::Close => {}
    }
}

fn on_request_data(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) {
    match cx.rpcs.get(key) {
        Some(rpc) => {
            if rpc.incoming().is_none() {
                cx.rpcs.update(key, |rpc| rpc.live.last_heard = now);
                // Request bytes for a request already delivered: a retransmission or
                // a replay; either way it never runs twice.
                cx.core.stats.duplicate_packets += 1;
                return;
            }
        }
        None => {
            if deliver_whole(cx, session, key, now, data, phase) {
                return;
            }
            if !start_request(cx, session, key, now, data, phase) {
                return;
            }
        }
    }
    match absorb(cx, session, key, now, data, phase) {
        Step::Continue => {}
        Step::Complete => complete(cx, session, key),
        Step::Restart => {
            cx.rpcs.remove(key);
            if start_request(cx, session, key, now, data, phase) {
                absorb(cx, session, key, now, data, phase);
            }
        }
        Step::Discard => {
            cx.rpcs.remove(key);
        }
    }
}

/// A fresh request that arrived whole in one packet and opens: delivered at once,
/// with no reassembly state. False if it is not such a request (the ordinary path
/// then handles it, refusals and failures included).
fn deliver_whole(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> bool {
    let Side::Server(server) = &session.side else { return false };
    if server.replay.check(key.1.get()) != ReplayVerdict::Fresh
        || data.payload.len() > cx.core.config.max_message_len
        || !cx.rpcs.admits(key.0, data.payload.len() + QUEUED_OVERHEAD)
    {
        return false;
    }
    let Some(keys) = session.rx.candidates(phase, now) else { return false };
    let Some((payload, next)) = open_whole(key.1, data, &keys) else { return false };
    if let Some(next) = next {
        if session.rx.advance_if_next(&next, now, cx.core.config.rpc_timeout) {
            cx.core.stats.key_updates_received += 1;
        }
    }
    cx.rpcs.insert(key, Rpc::delivered(now, session.timeouts(), payload.len() + QUEUED_OVERHEAD));
    if let Side::Server(server) = &mut session.side {
        server.replay.mark(key.1.get());
    }
    cx.core.stats.requests_delivered += 1;
    cx.core.events.push_back(Event::Request { session: key.0, id: key.1, payload });
    cx.authenticated_new_data = true;
    true
}

/// Creates the RPC for a request announced by `data`, if its ID is fresh and the
/// memory limits allow it. False if refused.
fn start_request(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    now: Instant,
    data: &DataRepr<'_>,
    phase: bool,
) -> bool {
    let Side::Server(server) = &session.side else { return false };
    if server.replay.check(key.1.get()) != ReplayVerdict::Fresh {
        cx.core.stats.replays_rejected += 1;
        return false;
    }
    let Some(request) = new_incoming(cx, session, now, data, phase) else { return false };
    // Admitted for the larger of what it holds now and what it will hold once
    // delivered (payload plus RPC state, until answered), so that delivering it can
    // never take the session past its budget.
    let charge = request.charge().max(request.layout().payload_len() + QUEUED_OVERHEAD);
    if request.layout().payload_len() > cx.core.config.max_message_len
        || !cx.rpcs.admits(key.0, charge)
    {
        cx.core.stats.admission_refused += 1;
        return false;
    }
    cx.rpcs.insert(key, Rpc::server(now, session.timeouts(), request))
}

/// Records of a request were opened elsewhere (see `opening`): `Complete` delivers
/// it, `Forged` discards the state built from forged header fields.
pub(crate) fn on_opened(
    cx: &mut Context<'_>,
    session: &mut Session,
    key: RpcKey,
    outcome: Absorbed,
) {
    match outcome {
        Absorbed::Complete => complete(cx, session, key),
        Absorbed::Forged => {
            cx.rpcs.remove(key);
        }
        _ => {}
    }
}

/// The request is complete: mark its ID as run and deliver it.
fn complete(cx: &mut Context<'_>, session: &mut Session, key: RpcKey) {
    let taken = cx.rpcs.update(key, |rpc| {
        let RpcState::Server(server) = &mut rpc.state else { return None };
        let ServerPhase::Receiving { .. } = server.phase else { return None };
        let ServerPhase::Receiving { request } =
            std::mem::replace(&mut server.phase, ServerPhase::InService { charge: 0 })
        else {
            return None;
        };
        let payload = request.into_payload();
        server.phase = ServerPhase::InService { charge: payload.len() + QUEUED_OVERHEAD };
        Some(payload)
    });
    let Some(Some(payload)) = taken else { return };
    if let Side::Server(server) = &mut session.side {
        server.replay.mark(key.1.get());
    }
    cx.core.stats.requests_delivered += 1;
    cx.core.events.push_back(Event::Request { session: key.0, id: key.1, payload });
}

/// The client has these responses: free them.
fn on_ack(cx: &mut Context<'_>, session: &mut Session, ack: &AckRepr) {
    for &id in ack.ids() {
        let key = (session.handle, id);
        // Only responses can be acknowledged: an ACK never frees a request still in
        // service, so a forged one cannot make the application's answer fail.
        let Some(rpc) = cx.rpcs.get(key) else { continue };
        let RpcState::Server(server) = &rpc.state else { continue };
        if let ServerPhase::Responding { .. } = server.phase {
            // The client received a response sealed with this generation of our key.
            session.tx.confirm(server.tx_generation);
            cx.rpcs.remove(key);
        }
    }
}
