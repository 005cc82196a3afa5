//! Address changes (NAT rebinding): a server session follows its client to a new
//! address only on a packet from there that carries new, authenticated data.
//!
//! A packet whose session ID names a live server session but whose source address
//! is not that session's peer is handled *on probation*: DATA is absorbed as usual
//! (its bytes can never be delivered unless they authenticate, exactly as for a
//! packet spoofed from the genuine address) with the records it completes opened at
//! once, and replies keep going to the old address. Only if the packet completed a
//! record that opened under the session's key, or delivered a fresh whole request,
//! does the session move. A replayed packet carries nothing new (the bytes were
//! received, or the replay window refuses the request), so it cannot move a
//! session; neither can control packets, which are not authenticated. Such packets
//! are dropped without a SESSION_UNKNOWN reply, which would reset the genuine client.
//! PROTOCOL.md section 7.12 states the rule and its limits.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::info;

use super::endpoint::Endpoint;
use super::event::{Role, SessionHandle};
use super::send::DATA_HEADER_LEN;
use super::server;
use crate::wire::{Body, HeaderRepr};

/// Most sessions sharing one session ID that a packet from a new address is tried
/// against (clients choose session IDs; a malicious one may copy another's).
const MAX_CANDIDATES: usize = 4;

impl Endpoint {
    /// A client packet from `from` that matched no session there. Returns whether it
    /// belonged to a live server session at another address (handled on probation,
    /// and the session moved if the packet proved it); false if no session has its
    /// session ID, so the caller treats it as for an unknown session.
    pub(crate) fn handle_from_new_address(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &HeaderRepr,
        body: Body<'_>,
    ) -> bool {
        let Some(handles) = self.by_id.get(&header.session_id) else { return false };
        let candidates: Vec<SessionHandle> = handles.iter().copied().take(MAX_CANDIDATES).collect();
        if !matches!(body, Body::Data(_)) {
            // Only DATA can prove the key.
            self.core.stats.address_changes_refused += 1;
            return true;
        }
        for handle in candidates {
            let (sessions, mut cx) = self.context();
            let Some(session) = sessions.get_mut(&handle) else { continue };
            cx.probation = true;
            server::on_packet(&mut cx, session, now, header, body);
            if cx.authenticated_new_data {
                self.move_session(handle, from, now);
                return true;
            }
        }
        self.core.stats.address_changes_refused += 1;
        true
    }

    /// Re-keys a server session under its client's new address.
    fn move_session(&mut self, handle: SessionHandle, to: SocketAddr, now: Instant) {
        let Some(session) = self.sessions.get_mut(&handle) else { return };
        let old = session.peer;
        self.by_key.remove(&(old, session.session_id, Role::Server));
        self.by_key.insert((to, session.session_id, Role::Server), handle);
        session.peer = to;
        session.last_activity = now;
        if let Some(&payload) = self.core.path_payloads.get(&to.ip()) {
            session.path.set_max_datagram(payload + DATA_HEADER_LEN, &self.core.config);
        }
        self.core.stats.address_changes += 1;
        info!(session_id = session.session_id, %old, new = %to, "client moved to a new address");
    }
}
