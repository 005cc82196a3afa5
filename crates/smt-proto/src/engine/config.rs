//! Engine parameters, in one place, with the reasons for their defaults.

use std::time::Duration;

/// Transport parameters of an SMT endpoint (in the `smt` crate: `TransportConfig`,
/// given to `EndpointBuilder::transport_config`). `Default` gives values tuned for
/// loopback and 1500-byte-MTU datacenter links; see each field. Fields are public;
/// build one with `Config::default()` and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Bytes of a message sent before any GRANT (Homa: `unsched_bytes`). Homa's default
    /// is 40 000 B, about one bandwidth-delay product at 10-25 Gbps and 10-20 us RTT.
    /// Larger values make incast overflow socket buffers.
    pub unscheduled_bytes: u32,
    /// The smallest grant window: how far past the received bytes the receiver grants
    /// each scheduled message before the session has measured its round trip, and
    /// the least it grants after (and never less than one full packet of the path).
    /// (Homa grants one RTT of bytes ahead: 40 000 B.)
    pub grant_window: u32,
    /// The largest grant window. Once a session has measured its grant round trip
    /// (see `link_bandwidth`), its window is `link_bandwidth` x that round trip,
    /// between `grant_window` and this. A larger window buys bulk throughput on paths
    /// where the round trip is long (on one host: two thread wake-ups), but lets more
    /// bytes queue ahead of small messages.
    pub max_grant_window: u32,
    /// The rate, in bytes per second, grant windows are sized for (the bandwidth of
    /// the bandwidth-delay product). 25 Gbit/s by default: a datacenter NIC, and about
    /// what one core moves through the kernel's loopback.
    pub link_bandwidth: u64,
    /// How many messages the receiver grants at once (Homa: `max_overcommit`, 8).
    pub max_overcommit: usize,
    /// Most unscheduled request bytes one client session has in flight: sent, with
    /// no word back yet (a response, BUSY or a GRANT). Further calls wait, in call
    /// order, and go out as earlier ones are answered (`Stats::calls_queued` counts
    /// them); a call whose unscheduled part alone exceeds this goes out when nothing
    /// else is in flight (0: one call at a time). Without it, thousands of
    /// concurrent calls leave at once (10 000 of 4 KiB are 40 MB) into a server
    /// socket buffer that Linux caps at `net.core.rmem_max` (often 4 MiB), and what
    /// overflows is lost and sent again. The price: against a server that takes
    /// long to answer, a session has at most this many bytes of requests waiting at
    /// once until the server says BUSY (which it does when asked). 2 MiB keeps a
    /// loopback or 25 Gbit/s path busy (64 calls of 16 KiB are 1 MiB).
    pub max_unscheduled_in_flight: usize,
    /// Upper bound on granted-but-not-yet-received scheduled bytes over all incoming
    /// messages of the endpoint (Homa: `max_incoming`, 400 000 B). It bounds what
    /// senders may have in flight towards this endpoint at once, so it should fit
    /// the socket's receive buffer.
    pub max_incoming: u32,
    /// Largest DATA payload on a path whose MTU the endpoint was not told (see
    /// `Endpoint::set_path_mtu`). 1500-byte MTU minus IPv6 (40), UDP (8) and the DATA
    /// header (40) leaves 1412: it fits every Ethernet path.
    pub max_packet_payload: usize,
    /// Largest DATA payload however large a path's MTU (loopback's is 64 KiB). 64 000
    /// bytes fills a loopback datagram: each costs the kernel about the same whatever
    /// its size, and most 16 KiB records then lie whole in one datagram. Set it to
    /// `max_packet_payload` to send the same packet size on every path.
    pub largest_packet_payload: usize,
    /// Most bytes of spare buffers the endpoint keeps for reuse by large messages
    /// (reassembly buffers, sealed images, payloads the application dropped), so
    /// that streaming large messages does not zero or fault in fresh memory for
    /// each one. 0 disables reuse.
    pub buffer_pool_bytes: usize,
    /// Plaintext bytes per TLS record (at most 16 384). Large records amortise the
    /// per-record AEAD setup (measured: 2.6x cheaper per byte at 16 KiB than at 1400 B).
    pub record_size: usize,
    /// Largest message payload accepted in either direction.
    pub max_message_len: usize,
    /// At most this many equal-size datagrams in one transmit batch (GSO segments).
    pub max_segments: usize,
    /// How long a client holds acknowledgements of received responses, hoping to send
    /// them with its next request to the same server; also the period of the limit
    /// on replies to unknown sessions. (RPC timers run at their exact deadlines.)
    pub tick: Duration,
    /// Silence on an incomplete message after which its receiver sends RESEND
    /// (Homa: 5 ticks of 1 ms; loopback and datacenter RTTs are tens of us).
    pub resend_after: Duration,
    /// Time without progress (new bytes, a larger grant, BUSY for a delivered request)
    /// after which an RPC fails with a timeout error (`smt::Error::Timeout`) and its
    /// state is freed. Homa uses 100 ticks of 1 ms; we allow slower servers. Mere
    /// chatter without progress (wrong keys, a request that already ran) does not
    /// keep an RPC alive.
    pub rpc_timeout: Duration,
    /// Most sessions an endpoint holds.
    pub max_sessions: usize,
    /// Most incomplete incoming messages per session (bounds forged-packet state).
    pub max_incoming_messages_per_session: usize,
    /// Most bytes of incoming wire images buffered per session, counting delivered
    /// requests the application has not answered yet.
    pub max_incoming_bytes_per_session: usize,
    /// Most bytes of incoming wire images buffered by the endpoint in total, counting
    /// delivered requests the application has not answered yet.
    pub max_incoming_bytes_total: usize,
    /// Records one session may seal under one traffic key. `None`: the cipher suite's
    /// confidentiality limit (RFC 8446 5.5; 2^24.5 records for AES-GCM). Sessions
    /// update their key before it (see `key_update_after`); one that cannot (no
    /// traffic secrets) refuses further messages at the limit
    /// (`smt::Error::KeyExhausted`) and must be re-established. Lower it only for tests.
    pub key_usage_limit: Option<u64>,
    /// Records sealed under one traffic key before the sender updates it (TLS 1.3 key
    /// update, signalled by the KEY_PHASE bit). `None`: half the usage limit. Updates
    /// need the traffic secrets (the in-band handshake and `TrafficSecret`-based key
    /// installs have them); sessions installed with bare keys cannot update.
    pub key_update_after: Option<u64>,
    /// INSECURE, benchmarks only (feature `insecure-null-cipher`): once the TLS
    /// handshake completes, protect the session with the null cipher instead of the
    /// negotiated keys, to measure what encryption costs. Both sides must set it.
    #[cfg(feature = "insecure-null-cipher")]
    pub insecure_null_cipher: bool,
    /// Most server-side handshakes in progress at once (handshake-flood bound).
    pub max_pending_handshakes: usize,
    /// When the server makes a new client prove its address, with a stateless RETRY,
    /// before it keeps any state or does any cryptography for its handshake
    /// (PROTOCOL.md 8.4). The default retries only under load: at 64 or more
    /// handshakes in progress, so a flood of spoofed ClientHellos costs the server an
    /// HMAC each while genuine clients pay one more round trip.
    pub address_validation: AddressValidation,
    /// A handshake not finished after this long fails.
    pub handshake_timeout: Duration,
    /// The handshake's first retransmission timeout, on both sides, before any
    /// round trip was measured (PROTOCOL.md 8.3): it doubles on each retransmission,
    /// and a client sets it to twice the round trip of its ClientHello once the
    /// server's first bytes arrive. A server's first flight costs a key exchange and
    /// a signature (about 0.5 ms on loopback in a release build, 2 ms in a debug
    /// build, more on a loaded host or across a slower path); with `resend_after`'s
    /// 3 ms, a client on a path with a longer round trip than that resends every
    /// ClientHello for nothing.
    pub handshake_resend_after: Duration,
    /// A session that has received nothing from its peer for this long, and holds
    /// no RPC, is closed (the peer is told with CLOSE) and its state freed, on
    /// either side (`smt::Error::IdleTimeout`). RPCs in flight keep their session:
    /// their own timeouts decide when it has gone quiet. `None`: sessions live until
    /// closed. Like QUIC's common setting, 30 s; a client that calls less often
    /// either reconnects or sets `keep_alive`.
    pub idle_timeout: Option<Duration>,
    /// A client session that has received nothing for this long sends a keep-alive
    /// probe (NEED_ACK with Message ID 0, answered with BUSY with Message ID 0), so
    /// that both sides see traffic and neither expires the session; a dead server is
    /// then detected by `idle_timeout`. Servers never probe: a session is kept by the
    /// client that wants it. `None` (the default): no probes. Must be shorter than
    /// `idle_timeout`.
    pub keep_alive: Option<Duration>,
    /// When a new session would exceed `max_sessions`, the server-side session that
    /// has been idle longest (no RPC, nothing received) is closed to make room, if
    /// it has been idle at least this long; otherwise the new client is refused
    /// (its handshake fails with `TlsError::ServerFull`, counted in
    /// `Stats::sessions_refused`).
    pub reclaim_idle_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            unscheduled_bytes: 40_000,
            grant_window: 40_000,
            max_grant_window: 1 << 20,
            link_bandwidth: 25_000_000_000 / 8,
            max_overcommit: 8,
            max_incoming: 4 << 20,
            max_unscheduled_in_flight: 2 << 20,
            max_packet_payload: 1412,
            largest_packet_payload: 64_000,
            buffer_pool_bytes: 32 << 20,
            record_size: 16 * 1024,
            max_message_len: 128 << 20,
            max_segments: 44,
            tick: Duration::from_millis(1),
            resend_after: Duration::from_millis(3),
            rpc_timeout: Duration::from_secs(2),
            max_sessions: 16 * 1024,
            max_incoming_messages_per_session: 4096,
            max_incoming_bytes_per_session: 512 << 20,
            max_incoming_bytes_total: 2 << 30,
            key_usage_limit: None,
            key_update_after: None,
            #[cfg(feature = "insecure-null-cipher")]
            insecure_null_cipher: false,
            max_pending_handshakes: 1024,
            address_validation: AddressValidation::UnderLoad { pending_handshakes: 64 },
            handshake_timeout: Duration::from_secs(5),
            handshake_resend_after: Duration::from_millis(10),
            idle_timeout: Some(Duration::from_secs(30)),
            keep_alive: None,
            reclaim_idle_after: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Checks that the values are consistent; creating an endpoint calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: &'static str| Err(ConfigError(what));
        if !(crate::record::MIN_RECORD_SIZE..=crate::record::MAX_PLAINTEXT_LEN)
            .contains(&self.record_size)
        {
            return fail("record_size must be in 8..=16384");
        }
        if self.max_packet_payload < 64 || self.max_packet_payload > 65_000 {
            return fail("max_packet_payload must be in 64..=65000");
        }
        if self.largest_packet_payload < self.max_packet_payload
            || self.largest_packet_payload > 65_000
        {
            return fail("largest_packet_payload must be in max_packet_payload..=65000");
        }
        if self.max_overcommit == 0 {
            return fail("max_overcommit must be at least 1");
        }
        if self.max_grant_window < self.grant_window {
            return fail("max_grant_window must be at least grant_window");
        }
        if self.max_incoming < self.max_grant_window {
            return fail("max_incoming must be at least max_grant_window");
        }
        if (self.grant_window as usize) < self.max_packet_payload {
            return fail("grant_window must be at least max_packet_payload");
        }
        if self.max_segments == 0 || self.max_segments * self.max_packet_payload > 65_000 {
            return fail("max_segments * max_packet_payload must fit a 64 KiB GSO batch");
        }
        if self.tick.is_zero()
            || self.resend_after < self.tick
            || self.rpc_timeout < self.resend_after
        {
            return fail("need 0 < tick <= resend_after <= rpc_timeout");
        }
        if crate::record::MessageLayout::for_payload(self.max_message_len, self.record_size)
            .is_none()
        {
            return fail("max_message_len does not fit 65536 records of record_size");
        }
        if self.handshake_resend_after < self.resend_after
            || self.handshake_resend_after > self.handshake_timeout
        {
            return fail("need resend_after <= handshake_resend_after <= handshake_timeout");
        }
        if self.idle_timeout.is_some_and(|idle| idle < self.tick) {
            return fail("idle_timeout must be at least tick");
        }
        if let Some(keep_alive) = self.keep_alive {
            if keep_alive < self.tick || self.idle_timeout.is_some_and(|idle| keep_alive >= idle) {
                return fail("need tick <= keep_alive < idle_timeout");
            }
        }
        if self.max_sessions == 0 {
            return fail("max_sessions must be at least 1");
        }
        if let AddressValidation::UnderLoad { pending_handshakes } = self.address_validation {
            if pending_handshakes > self.max_pending_handshakes {
                return fail(
                    "address_validation's threshold must not exceed max_pending_handshakes",
                );
            }
        }
        Ok(())
    }
}

/// When a server answers a ClientHello with a RETRY (a token bound to the client's
/// address and session ID) instead of starting the handshake; the client then sends
/// its ClientHello again with the token, which proves that it receives at its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressValidation {
    /// Never: every acceptable ClientHello starts a handshake, up to
    /// `max_pending_handshakes`; beyond that they are dropped.
    Never,
    /// When at least `pending_handshakes` server handshakes are in progress.
    UnderLoad {
        /// The threshold (at most `max_pending_handshakes`).
        pending_handshakes: usize,
    },
    /// For every new client (one more round trip each).
    Always,
}

/// A configuration value is out of range; the message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMT configuration: {0}")]
pub struct ConfigError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let mut c = Config { record_size: 0, ..Config::default() };
        assert!(c.validate().is_err());
        c = Config { max_segments: 1000, ..Config::default() };
        assert!(c.validate().is_err());
        c = Config { rpc_timeout: Duration::from_micros(1), ..Config::default() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_keep_alive_not_shorter_than_the_idle_timeout_is_rejected() {
        let secs = |s| Some(Duration::from_secs(s));
        let c = Config { keep_alive: secs(30), ..Config::default() };
        assert!(c.validate().is_err(), "keep_alive equal to idle_timeout");
        let c = Config { keep_alive: secs(10), ..Config::default() };
        assert!(c.validate().is_ok());
        let c = Config { keep_alive: secs(60), idle_timeout: None, ..Config::default() };
        assert!(c.validate().is_ok(), "keep-alive without idle timeout is allowed");
        let c = Config { max_sessions: 0, ..Config::default() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_retry_threshold_above_the_pending_handshake_limit_is_rejected() {
        let c = Config {
            address_validation: AddressValidation::UnderLoad { pending_handshakes: 2000 },
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
