//! Address validation under handshake floods: stateless RETRY tokens.
//!
//! A server that must not spend state or cryptography on a ClientHello (see
//! [`AddressValidation`]) answers it with a RETRY carrying a token and forgets it.
//! The token is an HMAC, under a key only this endpoint knows, of the client's
//! address and port, the session ID and the time it was issued. A client that
//! receives at that address echoes the token in its ClientHello; the server checks
//! the MAC and the age and starts the handshake as it would have, with the
//! amplification limit lifted since the address is proven. A spoofer never sees
//! the token, so its ClientHellos cost the server one HMAC and a RETRY smaller than
//! what it received (PROTOCOL.md 4.11, 8.4, 9.4).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, hmac, rand};
use tracing::{debug, trace};

use super::config::AddressValidation;
use super::endpoint::Endpoint;
use super::event::Role;
use crate::wire::{
    Body, Flags, HandshakeRepr, HeaderRepr, MessageId, PacketRepr, PacketType, RetryRepr,
};

/// Bytes of the issue time at the start of a token: milliseconds since the
/// endpoint's first token, wrapping after 49 days (ages are computed modulo 2^32).
const ISSUED_LEN: usize = 4;
/// Bytes of the HMAC-SHA256 tag kept in a token.
const TAG_LEN: usize = 16;
/// Length of every token this endpoint issues.
pub(crate) const TOKEN_LEN: usize = ISSUED_LEN + TAG_LEN;

/// Issues and checks this endpoint's retry tokens.
pub(crate) struct RetryTokens {
    key: hmac::Key,
    /// The instant token times count from: the first `issue`.
    epoch: Option<Instant>,
}

impl RetryTokens {
    /// A fresh random key; `None` if the system has no randomness to give.
    pub(crate) fn new() -> Option<RetryTokens> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rand::SystemRandom::new()).ok()?;
        Some(RetryTokens { key, epoch: None })
    }

    /// A token for a ClientHello from `peer` for `session_id`, issued at `now`.
    pub(crate) fn issue(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        session_id: u64,
    ) -> [u8; TOKEN_LEN] {
        let epoch = *self.epoch.get_or_insert(now);
        let issued = millis_since(epoch, now).to_be_bytes();
        let tag = self.tag(issued, peer, session_id);
        let mut token = [0u8; TOKEN_LEN];
        token[..ISSUED_LEN].copy_from_slice(&issued);
        token[ISSUED_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        token
    }

    /// Whether `token` was issued by this endpoint to `peer` for `session_id` at most
    /// `lifetime` before `now`.
    pub(crate) fn check(
        &self,
        now: Instant,
        lifetime: Duration,
        peer: SocketAddr,
        session_id: u64,
        token: &[u8],
    ) -> bool {
        let Some(epoch) = self.epoch else { return false };
        let Some((issued, tag)) = token.split_first_chunk::<ISSUED_LEN>() else { return false };
        if tag.len() != TAG_LEN {
            return false;
        }
        let expected = self.tag(*issued, peer, session_id);
        if constant_time::verify_slices_are_equal(&expected.as_ref()[..TAG_LEN], tag).is_err() {
            return false;
        }
        let age = millis_since(epoch, now).wrapping_sub(u32::from_be_bytes(*issued));
        u128::from(age) <= lifetime.as_millis()
    }

    fn tag(&self, issued: [u8; ISSUED_LEN], peer: SocketAddr, session_id: u64) -> hmac::Tag {
        let ip = match peer {
            SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped().octets(),
            SocketAddr::V6(v6) => v6.ip().octets(),
        };
        let mut input = [0u8; ISSUED_LEN + 16 + 2 + 8];
        input[..4].copy_from_slice(&issued);
        input[4..20].copy_from_slice(&ip);
        input[20..22].copy_from_slice(&peer.port().to_be_bytes());
        input[22..].copy_from_slice(&session_id.to_be_bytes());
        hmac::sign(&self.key, &input)
    }
}

/// Milliseconds from `epoch` to `now`, modulo 2^32.
fn millis_since(epoch: Instant, now: Instant) -> u32 {
    // Truncation is the point: token times wrap, and ages are taken modulo 2^32.
    now.saturating_duration_since(epoch).as_millis() as u32
}

/// What a ClientHello that may start a handshake needs before it does.
pub(crate) enum AddressCheck {
    /// Start the handshake; `true` if the token proved the client's address.
    Proceed(bool),
    /// Nothing more: a RETRY was sent, or the token was rejected.
    Stop,
}

impl Endpoint {
    /// Decides whether the ClientHello in `packet`, from `from`, starts a handshake
    /// now or is answered with a RETRY (sent here).
    pub(crate) fn check_client_address(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &HeaderRepr,
        packet: &HandshakeRepr<'_>,
    ) -> AddressCheck {
        let lifetime = self.core.config.handshake_timeout;
        if !packet.token.is_empty() {
            if self.retry_tokens.check(now, lifetime, from, header.session_id, packet.token) {
                return AddressCheck::Proceed(true);
            }
            // Never answered: a RETRY here could loop with a client that keeps an old
            // token, and a forger learns nothing.
            self.core.stats.retry_tokens_rejected += 1;
            debug!(%from, session_id = header.session_id, "ClientHello with an invalid retry token dropped");
            return AddressCheck::Stop;
        }
        let retry = match self.core.config.address_validation {
            AddressValidation::Never => false,
            AddressValidation::Always => true,
            AddressValidation::UnderLoad { pending_handshakes } => {
                self.pending_handshakes() >= pending_handshakes
            }
        };
        if !retry {
            return AddressCheck::Proceed(false);
        }
        let token = self.retry_tokens.issue(now, from, header.session_id);
        let reply = PacketRepr {
            header: HeaderRepr {
                src_port: self.core.local_port,
                dst_port: from.port(),
                packet_type: PacketType::Retry,
                flags: Flags::empty(),
                session_id: header.session_id,
                message_id: MessageId::default(),
            },
            body: Body::Retry(RetryRepr { token: &token }),
        };
        self.core.control.push_back((from, reply.to_vec()));
        self.core.stats.retries_sent += 1;
        trace!(%from, session_id = header.session_id, "ClientHello answered with RETRY");
        AddressCheck::Stop
    }

    /// A RETRY from a server: a client handshake that has heard nothing from the
    /// server yet sends its stream again from offset 0, echoing the token. Anything
    /// else (a second RETRY, one after the server's flight began, one for no
    /// handshake of ours) is dropped.
    pub(crate) fn handle_retry(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &HeaderRepr,
        role: Role,
        retry: &RetryRepr<'_>,
        datagram_len: usize,
    ) {
        let key = (from, header.session_id, role);
        let followed = match self.handshakes.get_mut(&key) {
            Some(hs) if role == Role::Client => hs.follow_retry(now, retry.token, datagram_len),
            _ => false,
        };
        if !followed {
            self.core.stats.unknown_session += 1;
            return;
        }
        self.core.stats.retries_followed += 1;
        debug!(peer = %from, session_id = header.session_id, "following the server's RETRY");
        self.flush_handshake(now, key, false);
        self.arm_handshake(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_token_is_valid_only_for_its_address_port_and_session_within_its_lifetime() {
        let mut tokens = RetryTokens::new().unwrap();
        let t0 = Instant::now();
        let life = Duration::from_secs(5);
        let peer = addr("192.0.2.7:4000");
        let token = tokens.issue(t0, peer, 42);
        let later = t0 + Duration::from_secs(1);
        assert!(tokens.check(later, life, peer, 42, &token));
        assert!(!tokens.check(later, life, addr("192.0.2.8:4000"), 42, &token), "other IP");
        assert!(!tokens.check(later, life, addr("192.0.2.7:4001"), 42, &token), "other port");
        assert!(!tokens.check(later, life, peer, 43, &token), "other session");
        assert!(!tokens.check(t0 + Duration::from_secs(6), life, peer, 42, &token), "expired");
        let mut flipped = token;
        flipped[TOKEN_LEN - 1] ^= 1;
        assert!(!tokens.check(later, life, peer, 42, &flipped), "forged tag");
        let mut younger = token;
        younger[3] = younger[3].wrapping_add(1);
        assert!(!tokens.check(later, life, peer, 42, &younger), "altered issue time");
        assert!(!tokens.check(later, life, peer, 42, &token[..TOKEN_LEN - 1]), "truncated");
    }

    #[test]
    fn another_endpoints_tokens_are_rejected() {
        let mut ours = RetryTokens::new().unwrap();
        let mut theirs = RetryTokens::new().unwrap();
        let now = Instant::now();
        let peer = addr("[2001:db8::1]:9");
        let _ = ours.issue(now, peer, 1);
        let foreign = theirs.issue(now, peer, 1);
        assert!(!ours.check(now, Duration::from_secs(5), peer, 1, &foreign));
    }

    #[test]
    fn an_endpoint_that_issued_nothing_accepts_no_token() {
        let tokens = RetryTokens::new().unwrap();
        let now = Instant::now();
        assert!(!tokens.check(
            now,
            Duration::from_secs(5),
            addr("192.0.2.1:1"),
            1,
            &[0; TOKEN_LEN]
        ));
    }
}
