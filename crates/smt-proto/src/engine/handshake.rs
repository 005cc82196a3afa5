//! The in-band handshake: a reliable byte stream per direction over HANDSHAKE packets.
//!
//! The client sends its stream from offset 0 (the ClientHello record first), padding
//! every datagram (including probes it sends while waiting for the server's flight) to [`MIN_FIRST_DATAGRAM`] bytes until its handshake completes. Each
//! side acknowledges the peer's contiguous TLS bytes in every HANDSHAKE packet and
//! retransmits its unacknowledged bytes after silence; only packets that carry TLS
//! bytes are answered, so acknowledgements never bounce back and forth. Until the
//! client's Finished has been verified (which a spoofing attacker cannot produce), the
//! server sends at most [`AMPLIFICATION_FACTOR`] times the bytes it received, so a
//! spoofed ClientHello cannot turn the server into an amplifier. Pending server handshakes are bounded by
//! `max_pending_handshakes`; each ends after `handshake_timeout`.
//!
//! The client considers the session established when its TLS library does (after the
//! server's Finished), and keeps retransmitting its last flight until the server
//! acknowledges it. The server establishes when the client's Finished arrives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, trace};

use super::endpoint::{Endpoint, Timer};
use super::event::{Event, Role, RpcError, SessionHandle};
use super::retry::AddressCheck;
use super::session::SessionParams;
use super::tls::{Alert, TlsAcceptor, TlsError, TlsSession};
use crate::wire::{Body, Flags, HandshakeRepr, HeaderRepr, MessageId, PacketRepr, PacketType};

/// The client pads its first HANDSHAKE datagram to at least this many bytes.
pub const MIN_FIRST_DATAGRAM: usize = 1200;
/// An unvalidated client gets at most this many bytes per byte it sent.
pub const AMPLIFICATION_FACTOR: usize = 3;
/// Most out-of-order handshake bytes buffered per handshake.
const MAX_REORDER_BYTES: usize = 64 * 1024;
/// Most bytes of one direction's handshake stream (certificate chains included).
const MAX_STREAM_BYTES: usize = 256 * 1024;
/// The handshake's retransmission timeout never grows beyond this.
const MAX_HANDSHAKE_RTO: Duration = Duration::from_secs(1);

pub(crate) struct Handshake {
    pub handle: SessionHandle,
    pub role: Role,
    pub peer: SocketAddr,
    pub session_id: u64,
    tls: Box<dyn TlsSession>,
    /// Everything we have to send, from stream offset 0.
    send: Vec<u8>,
    /// Peer has acknowledged `send[..acked]`.
    acked: u32,
    /// Peer's stream received contiguously.
    recv_len: u32,
    out_of_order: BTreeMap<u32, Vec<u8>>,
    reorder_bytes: usize,
    /// Datagram bytes received from and sent to the peer (amplification limit).
    bytes_in: usize,
    bytes_out: usize,
    /// Whether the peer proved it receives our packets.
    validated: bool,
    /// Bytes of `send` transmitted at least once.
    sent: u32,
    pub started: Instant,
    last_send: Instant,
    rto: Duration,
    /// A client's round-trip sample in progress: when its ClientHello went out, if
    /// it has not been sent again since (Karn's rule).
    hello_sent: Option<Instant>,
    /// The TLS handshake completed and the session is installed.
    pub established: bool,
    /// A client's token from the server's RETRY, echoed from stream offset 0.
    retry_token: Option<Vec<u8>>,
}

impl core::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("peer", &self.peer)
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

pub(crate) type HandshakeKey = (SocketAddr, u64, Role);

impl Handshake {
    fn new(
        handle: SessionHandle,
        role: Role,
        peer: SocketAddr,
        session_id: u64,
        tls: Box<dyn TlsSession>,
        now: Instant,
        rto: Duration,
    ) -> Handshake {
        Handshake {
            handle,
            role,
            peer,
            session_id,
            tls,
            send: Vec::new(),
            acked: 0,
            recv_len: 0,
            out_of_order: BTreeMap::new(),
            reorder_bytes: 0,
            bytes_in: 0,
            bytes_out: 0,
            validated: role == Role::Client,
            sent: 0,
            started: now,
            last_send: now,
            rto,
            hello_sent: (role == Role::Client).then_some(now),
            established: false,
            retry_token: None,
        }
    }

    /// The client's first bytes of the server's stream arrived: its retransmission
    /// timeout becomes twice that round trip (which includes the server's key
    /// exchange and signature, the slowest step), within `resend_after` and 1 s.
    fn measure_first_round_trip(&mut self, now: Instant, resend_after: Duration) {
        if let Some(sent) = self.hello_sent.take() {
            let sample = now.saturating_duration_since(sent);
            self.rto = (sample * 2).clamp(resend_after, MAX_HANDSHAKE_RTO);
        }
    }

    /// Takes the token of a server's RETRY (a client that has heard nothing else from
    /// the server, once per handshake) and rewinds to send the stream again from
    /// offset 0, since the server kept nothing. False if the RETRY is not followed.
    pub(crate) fn follow_retry(&mut self, now: Instant, token: &[u8], datagram_len: usize) -> bool {
        if self.role != Role::Client
            || self.established
            || self.recv_len > 0
            || self.retry_token.is_some()
        {
            return false;
        }
        self.retry_token = Some(token.to_vec());
        self.bytes_in += datagram_len;
        // The ClientHello goes again now, a new first transmission to measure from
        // (the caller sends it at once).
        self.hello_sent = Some(now);
        self.acked = 0;
        self.sent = 0;
        true
    }

    fn key(&self) -> HandshakeKey {
        (self.peer, self.session_id, self.role)
    }

    /// When the handshake's timer must next look at it: its timeout, or the end of
    /// the silence after which unacknowledged bytes (or a client's probe) go again.
    fn deadline(&self, timeout: Duration) -> Instant {
        let expiry = self.started + timeout;
        if self.established && self.role == Role::Server {
            return expiry; // the server's remnant only re-acknowledges
        }
        let unacked = (self.acked as usize) < self.send.len();
        let probe = self.role == Role::Client && !self.established;
        if unacked || probe {
            expiry.min(self.last_send + self.rto)
        } else {
            expiry
        }
    }

    /// Takes new outgoing bytes from the TLS library.
    fn pull(&mut self) {
        self.tls.write_handshake(&mut self.send);
    }

    /// Accepts stream bytes at `offset`; feeds whatever became contiguous to TLS.
    fn receive(&mut self, offset: u32, data: &[u8]) -> Result<(), TlsError> {
        let end = offset as usize + data.len();
        if end > MAX_STREAM_BYTES {
            return Err(TlsError::StreamTooLong(MAX_STREAM_BYTES));
        }
        if end as u32 <= self.recv_len {
            return Ok(()); // duplicate
        }
        if offset > self.recv_len {
            if self.reorder_bytes + data.len() > MAX_REORDER_BYTES {
                return Ok(()); // drop; it will be retransmitted
            }
            self.reorder_bytes += data.len();
            self.out_of_order.insert(offset, data.to_vec());
            return Ok(());
        }
        let skip = (self.recv_len - offset) as usize;
        self.tls.read_handshake(&data[skip..])?;
        self.recv_len = end as u32;
        while let Some((&o, _)) = self.out_of_order.first_key_value() {
            if o > self.recv_len {
                break;
            }
            // `first_key_value` just returned an entry, so the map is not empty.
            let (o, chunk) = self.out_of_order.pop_first().expect("first exists");
            self.reorder_bytes -= chunk.len();
            let end = o as usize + chunk.len();
            if end as u32 > self.recv_len {
                let skip = (self.recv_len - o) as usize;
                self.tls.read_handshake(&chunk[skip..])?;
                self.recv_len = end as u32;
            }
        }
        Ok(())
    }
}

impl Endpoint {
    /// Lets this endpoint accept in-band handshakes, creating server sessions.
    pub fn set_acceptor(&mut self, acceptor: Box<dyn TlsAcceptor>) {
        self.acceptor = Some(acceptor);
    }

    /// Starts a client handshake with `peer`. The session becomes usable when
    /// [`Event::SessionEstablished`] arrives for the returned handle, or fails with
    /// [`Event::SessionClosed`].
    pub fn connect(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        session_id: u64,
        tls: Box<dyn TlsSession>,
    ) -> SessionHandle {
        let handle = self.allocate_handle();
        let mut hs = Handshake::new(
            handle,
            Role::Client,
            peer,
            session_id,
            tls,
            now,
            self.core.config.handshake_resend_after,
        );
        hs.pull();
        let key = hs.key();
        self.handshakes.insert(key, hs);
        self.flush_handshake(now, key, false);
        self.arm_handshake(key);
        handle
    }

    /// Number of handshakes in progress (server and client).
    pub fn pending_handshakes(&self) -> usize {
        self.handshakes.values().filter(|h| !h.established).count()
    }

    /// The peer's certificate chain (DER) as presented in the handshake, if any.
    pub fn peer_certificates(&self, session: SessionHandle) -> Option<&[Vec<u8>]> {
        self.peer_certs.get(&session).map(Vec::as_slice)
    }

    pub(crate) fn handle_handshake_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &HeaderRepr,
        role: Role,
        packet: &HandshakeRepr<'_>,
    ) {
        let key = (from, header.session_id, role);
        let datagram_len = crate::wire::HEADER_LEN + packet.buffer_len();
        if !self.handshakes.contains_key(&key) {
            if self.by_key.contains_key(&key) {
                // Established and remnant gone: re-acknowledge data so the peer stops
                // retransmitting; never answer a bare acknowledgement.
                if !packet.data.is_empty() {
                    self.ack_established(from, header, packet);
                }
                return;
            }
            if role != Role::Server || packet.stream_offset != 0 || packet.data.is_empty() {
                self.core.stats.unknown_session += 1;
                return;
            }
            if self.acceptor.is_none() {
                self.core.stats.unknown_session += 1;
                return;
            }
            if datagram_len < MIN_FIRST_DATAGRAM {
                self.core.stats.malformed += 1;
                return; // an unpadded first flight could be an amplification probe
            }
            let address_proven = match self.check_client_address(now, from, header, packet) {
                AddressCheck::Proceed(proven) => proven,
                AddressCheck::Stop => return,
            };
            if self.pending_handshakes() >= self.core.config.max_pending_handshakes {
                self.core.stats.handshakes_refused += 1;
                if let Some(not_logged) = self.core.refusal_log.due(now) {
                    info!(
                        peer = %from,
                        not_logged,
                        limit = self.core.config.max_pending_handshakes,
                        "ClientHello refused: too many handshakes in progress"
                    );
                }
                return;
            }
            if !self.room_for_new_session(now) {
                self.refuse_new_client(now, from, header);
                return;
            }
            let Some(acceptor) = self.acceptor.as_ref() else { return };
            let tls = acceptor.start(from);
            let handle = self.allocate_handle();
            let mut hs = Handshake::new(
                handle,
                Role::Server,
                from,
                header.session_id,
                tls,
                now,
                self.core.config.handshake_resend_after,
            );
            // A valid retry token proves that the client receives at its address.
            hs.validated = address_proven;
            self.handshakes.insert(key, hs);
            debug!(%from, session_id = header.session_id, "handshake started");
        }
        let Some(hs) = self.handshakes.get_mut(&key) else { return };
        hs.bytes_in += datagram_len;
        if packet.acknowledged > hs.acked && packet.acknowledged as usize <= hs.send.len() {
            hs.acked = packet.acknowledged;
        }
        // A client packet acknowledging less than we sent, after our timer ran out,
        // means our packets were lost (perhaps while the amplification limit held back
        // the retransmission): resend at once, within the allowance it just raised.
        if hs.role == Role::Server
            && !hs.established
            && (packet.acknowledged as usize) < hs.send.len()
            && now.saturating_duration_since(hs.last_send) >= hs.rto
        {
            hs.sent = hs.acked;
        }
        let end = packet.stream_offset as usize + packet.data.len();
        // (Only TLS bytes extend a stream: a pure acknowledgement's Stream Offset
        // says nothing, section 8.3.)
        if hs.established
            && hs.role == Role::Client
            && !packet.data.is_empty()
            && end > hs.recv_len as usize
        {
            // The server's stream continues after the handshake completed here: in
            // TLS 1.3 that is an alert (it rejected our certificate, say).
            let skip = (hs.recv_len as usize).saturating_sub(packet.stream_offset as usize);
            let extra = packet.data.get(skip..).unwrap_or_default().to_vec();
            self.post_handshake_failure(key, &extra);
            return;
        }
        if !packet.data.is_empty() {
            if hs.role == Role::Client && hs.recv_len == 0 {
                hs.measure_first_round_trip(now, self.core.config.resend_after);
            }
            if let Err(error) = hs.receive(packet.stream_offset, packet.data) {
                self.fail_handshake(now, key, error);
                return;
            }
        }
        hs.pull();
        let ack_needed = !packet.data.is_empty();
        if !hs.established && !hs.tls.is_handshaking() {
            self.establish(now, key);
        }
        let Some(hs) = self.handshakes.get(&key) else { return };
        // The client's remnant is done once the server has everything.
        if hs.established && hs.role == Role::Client && hs.acked as usize == hs.send.len() {
            self.handshakes.remove(&key);
            self.core.timers.cancel(Timer::Handshake(key));
            if ack_needed {
                self.ack_established(from, header, packet);
            }
            return;
        }
        self.flush_handshake(now, key, ack_needed);
        self.arm_handshake(key);
    }

    /// Ends a client session whose server aborted the handshake after our side had
    /// completed it, reporting the server's alert if it can be read.
    fn post_handshake_failure(&mut self, key: HandshakeKey, bytes: &[u8]) {
        let Some(hs) = self.handshakes.remove(&key) else { return };
        self.core.timers.cancel(Timer::Handshake(key));
        self.core.stats.handshakes_failed += 1;
        let reason = match self.sessions.get(&hs.handle) {
            Some(session) => describe_alert(session.rx.current(), bytes),
            None => TlsError::PeerAborted,
        };
        info!(peer = %hs.peer, %reason, "handshake failed: the server rejected it");
        self.end_session(hs.handle, RpcError::Handshake(reason));
    }

    /// Whether `session` is a client session whose final handshake flight the
    /// server has not acknowledged yet.
    pub(crate) fn client_handshake_unconfirmed(&self, session: SessionHandle) -> bool {
        let Some(s) = self.sessions.get(&session) else { return false };
        if s.role() != Role::Client {
            return false;
        }
        self.handshakes
            .get(&(s.peer, s.session_id, Role::Client))
            .is_some_and(|hs| hs.established && (hs.acked as usize) < hs.send.len())
    }

    fn ack_established(&mut self, to: SocketAddr, header: &HeaderRepr, packet: &HandshakeRepr<'_>) {
        let end = packet.stream_offset.saturating_add(packet.data.len() as u32);
        let mut flags = Flags::empty();
        flags.set(Flags::FROM_INITIATOR, !header.flags.contains(Flags::FROM_INITIATOR));
        let reply = PacketRepr {
            header: HeaderRepr {
                src_port: self.core.local_port,
                dst_port: to.port(),
                packet_type: PacketType::Handshake,
                flags,
                session_id: header.session_id,
                message_id: MessageId::default(),
            },
            body: Body::Handshake(HandshakeRepr {
                stream_offset: 0,
                acknowledged: end,
                data: &[],
                token: &[],
                padding_len: 0,
            }),
        };
        self.core.control.push_back((to, reply.to_vec()));
    }

    fn establish(&mut self, now: Instant, key: HandshakeKey) {
        let Some(hs) = self.handshakes.get_mut(&key) else { return };
        let certs = hs.tls.peer_certificates();
        let secrets = hs.tls.traffic_secrets();
        let keys = hs.tls.traffic_keys();
        let (tx, rx) = match keys {
            Ok(k) => k,
            Err(e) => {
                self.fail_handshake(now, key, e);
                return;
            }
        };
        hs.established = true;
        // A verified Finished proves the client receives at its address.
        hs.validated = true;
        let (handle, role, peer, session_id) = (hs.handle, hs.role, hs.peer, hs.session_id);
        #[allow(unused_mut)]
        let (mut tx, mut rx, mut secrets) = (tx, rx, secrets);
        #[cfg(feature = "insecure-null-cipher")]
        if self.core.config.insecure_null_cipher {
            use crate::record::{CipherSuite, RecordKey};
            let null = || RecordKey::new(CipherSuite::NullInsecure, &[0; 16], &[0; 12]);
            // Lengths match the null suite, so construction cannot fail.
            if let (Ok(t), Ok(r)) = (null(), null()) {
                (tx, rx, secrets) = (t, r, None);
            }
        }
        let (tx_secret, rx_secret) = secrets.map_or((None, None), |(t, r)| (Some(t), Some(r)));
        let params = SessionParams { peer, session_id, role, tx, rx, tx_secret, rx_secret };
        match self.install_with_handle(now, handle, params) {
            Ok(()) => {
                if let Some(certs) = certs {
                    self.peer_certs.insert(handle, certs);
                }
                if role == Role::Server {
                    self.core.stats.sessions_accepted += 1;
                }
                debug!(%peer, session_id, ?role, "session established");
                self.core.events.push_back(Event::SessionEstablished { session: handle });
            }
            Err(e) => self.fail_handshake(now, key, TlsError::Install(e)),
        }
    }

    pub(crate) fn fail_handshake(&mut self, now: Instant, key: HandshakeKey, reason: TlsError) {
        let Some(mut hs) = self.handshakes.remove(&key) else { return };
        self.core.timers.cancel(Timer::Handshake(key));
        match hs.role {
            Role::Client => info!(peer = %hs.peer, %reason, "handshake failed"),
            Role::Server => {
                if let Some(not_logged) = self.core.server_failure_log.due(now) {
                    info!(peer = %hs.peer, %reason, not_logged, "client handshake failed");
                }
            }
        }
        self.core.stats.handshakes_failed += 1;
        // Send whatever the TLS library queued (typically an alert) so the peer
        // learns why, then forget the handshake.
        hs.pull();
        let (handle, role, established) = (hs.handle, hs.role, hs.established);
        if (hs.sent as usize) < hs.send.len() {
            self.handshakes.insert(key, hs);
            self.flush_handshake(now, key, false);
            self.handshakes.remove(&key);
        }
        // Only a client has a handle the application is waiting on.
        if role == Role::Client && !established {
            let reason = RpcError::Handshake(reason);
            self.closed.bury(handle, reason.clone());
            self.core.events.push_back(Event::SessionClosed { session: handle, reason });
        }
    }

    /// Sends unsent bytes (and, if `ack`, at least an acknowledgement).
    pub(crate) fn flush_handshake(&mut self, now: Instant, key: HandshakeKey, ack: bool) {
        let max = self.core.config.max_packet_payload;
        let local_port = self.core.local_port;
        let Some(hs) = self.handshakes.get_mut(&key) else { return };
        let mut sent_any = false;
        while (hs.sent as usize) < hs.send.len() {
            let start = hs.sent as usize;
            // The retry token rides in the packet that starts the stream, where the
            // server decides whether to keep state.
            let token: &[u8] = match &hs.retry_token {
                Some(token) if start == 0 => token,
                _ => &[],
            };
            let end = hs.send.len().min(start + max - token.len());
            let base = crate::wire::HEADER_LEN + 12 + token.len() + (end - start);
            let padding = client_padding(hs, base);
            if !hs.validated && hs.bytes_out + base > hs.bytes_in * AMPLIFICATION_FACTOR {
                trace!(peer = %hs.peer, "amplification limit: waiting for validation");
                break;
            }
            emit_handshake(
                &mut self.core.control,
                local_port,
                hs,
                start as u32,
                &hs.send[start..end],
                token,
                padding,
            );
            hs.bytes_out += base + padding;
            hs.sent = end as u32;
            sent_any = true;
        }
        if ack && !sent_any {
            let base = crate::wire::HEADER_LEN + 12;
            let padding = client_padding(hs, base);
            // Acknowledgements count against the amplification limit too; a skipped
            // one costs only a retransmission by the peer.
            if hs.validated || hs.bytes_out + base <= hs.bytes_in * AMPLIFICATION_FACTOR {
                emit_handshake(&mut self.core.control, local_port, hs, hs.sent, &[], &[], padding);
                hs.bytes_out += base + padding;
            }
        }
        if sent_any {
            hs.last_send = now;
        }
    }

    /// Retransmits a handshake's unacknowledged bytes, or ends it if it timed out.
    pub(crate) fn on_handshake_timer(&mut self, key: HandshakeKey, now: Instant) {
        let timeout = self.core.config.handshake_timeout;
        let Some(hs) = self.handshakes.get_mut(&key) else { return };
        let age = now.saturating_duration_since(hs.started);
        if age >= timeout {
            if hs.established {
                self.handshakes.remove(&key);
            } else if hs.role == Role::Client && hs.bytes_in == 0 {
                let peer = hs.peer;
                self.fail_handshake(now, key, TlsError::NoReply { peer, timeout });
            } else {
                self.fail_handshake(now, key, TlsError::TimedOut(timeout));
            }
            return;
        }
        if !(hs.established && hs.role == Role::Server) {
            let unacked = (hs.acked as usize) < hs.send.len();
            let due = now.saturating_duration_since(hs.last_send) >= hs.rto;
            // A client still waiting for the server's flight probes even when all its
            // own bytes are acknowledged: the padded probe both tells the server what
            // arrived and raises the server's amplification allowance, so a server
            // that ran out of allowance while its packets were lost can go on.
            let probe = hs.role == Role::Client && !hs.established;
            if due && (unacked || probe) {
                hs.sent = hs.acked;
                if hs.acked == 0 {
                    hs.hello_sent = None; // sent again: a reply no longer times one send
                }
                hs.rto = (hs.rto * 2).min(MAX_HANDSHAKE_RTO);
                self.flush_handshake(now, key, probe && !unacked);
                if let Some(hs) = self.handshakes.get_mut(&key) {
                    hs.last_send = now;
                }
            }
        }
        self.arm_handshake(key);
    }

    /// Arms the handshake's timer at its next deadline (or disarms it if it is gone).
    pub(crate) fn arm_handshake(&mut self, key: HandshakeKey) {
        let timeout = self.core.config.handshake_timeout;
        match self.handshakes.get(&key) {
            Some(hs) => self.core.timers.arm(Timer::Handshake(key), hs.deadline(timeout)),
            None => self.core.timers.cancel(Timer::Handshake(key)),
        }
    }
}

/// Padding that brings a client datagram to [`MIN_FIRST_DATAGRAM`] bytes while its
/// handshake is in progress: the server may answer each with three times as much.
fn client_padding(hs: &Handshake, len: usize) -> usize {
    if hs.role == Role::Client && !hs.established {
        MIN_FIRST_DATAGRAM.saturating_sub(len)
    } else {
        0
    }
}

fn emit_handshake(
    control: &mut std::collections::VecDeque<(SocketAddr, Vec<u8>)>,
    local_port: u16,
    hs: &Handshake,
    offset: u32,
    data: &[u8],
    token: &[u8],
    padding_len: usize,
) {
    let mut flags = Flags::empty();
    flags.set(Flags::FROM_INITIATOR, hs.role == Role::Client);
    let packet = PacketRepr {
        header: HeaderRepr {
            src_port: local_port,
            dst_port: hs.peer.port(),
            packet_type: PacketType::Handshake,
            flags,
            session_id: hs.session_id,
            message_id: MessageId::default(),
        },
        body: Body::Handshake(HandshakeRepr {
            stream_offset: offset,
            acknowledged: hs.recv_len,
            data,
            token,
            padding_len,
        }),
    };
    control.push_back((hs.peer, packet.to_vec()));
}

/// Reads the TLS alert the server sent after its Finished (encrypted under the
/// server's application traffic key, one of its first records).
fn describe_alert(rx: &crate::record::RecordKey, bytes: &[u8]) -> TlsError {
    const ALERT: u8 = 21;
    if bytes.len() < 5 {
        return TlsError::PeerAborted;
    }
    let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    let Some(record) = bytes.get(..5 + len) else { return TlsError::PeerAborted };
    if record[0] == ALERT && len >= 2 {
        return TlsError::AlertReceived(Alert::from_u8(record[6]));
    }
    for sequence in 0..4 {
        let mut copy = record.to_vec();
        if let Ok(opened) = rx.open_in_place(sequence, &mut copy) {
            if opened.content_type == ALERT && opened.content.len() >= 2 {
                return TlsError::AlertReceived(Alert::from_u8(opened.content[1]));
            }
        }
    }
    TlsError::PeerAborted
}
