//! In-band handshake packets. (Filled in with the TLS handshake driver.)

use std::net::SocketAddr;
use std::time::Instant;

use super::endpoint::Endpoint;
use super::event::Role;
use crate::wire::{HandshakeRepr, HeaderRepr};

impl Endpoint {
    pub(crate) fn handle_handshake_packet(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _header: &HeaderRepr,
        _role: Role,
        _packet: &HandshakeRepr<'_>,
    ) {
        self.core.stats.unknown_session += 1;
    }
}
