//! What a session knows about the path to its peer: the packet size its MTU allows,
//! its measured grant round trip, and the windows and timeouts that follow from them.
//!
//! Nothing here guesses from the peer's address: the packet size comes from the MTU
//! the I/O layer reports ([`Endpoint::set_path_mtu`](super::Endpoint::set_path_mtu)),
//! the window from round trips measured on the session itself.

use std::time::Duration;

use super::rtt::RttEstimator;
use super::send::DATA_HEADER_LEN;
use super::Config;

/// The smallest DATA payload a path is given, whatever MTU is reported.
const MIN_PAYLOAD: usize = 64;

/// RESEND timeouts never exceed this, however slow the path looks: a lost packet
/// must not stall a message for longer.
const MAX_RESEND_AFTER: Duration = Duration::from_millis(250);

/// An RPC lives at least this many resend timeouts without progress, so that slow
/// paths get several RESEND rounds before an RPC gives up.
const RPC_TIMEOUT_IN_RESENDS: u32 = 32;

/// Sizes, windows and timeouts towards one peer.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    /// Largest DATA payload towards this peer.
    max_payload: usize,
    /// How much of our messages we send before a grant.
    unscheduled: u32,
    /// Our grant round trips towards the peer's messages.
    rtt: RttEstimator,
    /// How far past received bytes we grant the peer's messages.
    grant_window: u32,
    resend_after: Duration,
    rpc_timeout: Duration,
}

impl Path {
    /// A path whose MTU and round trip are not known yet.
    pub(crate) fn new(config: &Config) -> Path {
        Path {
            max_payload: config.max_packet_payload,
            unscheduled: config.unscheduled_bytes,
            rtt: RttEstimator::default(),
            grant_window: config.grant_window,
            resend_after: config.resend_after,
            rpc_timeout: config.rpc_timeout,
        }
    }

    /// The DATA payload that fills a datagram of `max_datagram` bytes (what the MTU
    /// leaves after the IP and UDP headers), within the configured bounds.
    pub(crate) fn payload_for(max_datagram: usize, config: &Config) -> usize {
        max_datagram
            .saturating_sub(DATA_HEADER_LEN)
            .clamp(MIN_PAYLOAD, config.largest_packet_payload)
    }

    /// The I/O layer reported the largest datagram the path carries.
    pub(crate) fn set_max_datagram(&mut self, max_datagram: usize, config: &Config) {
        self.max_payload = Path::payload_for(max_datagram, config);
    }

    /// Largest DATA payload towards this peer.
    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Bytes of our messages sent before the peer grants.
    pub(crate) fn unscheduled(&self) -> u32 {
        self.unscheduled
    }

    /// How far past the received bytes the peer's messages are granted: never less
    /// than one full packet, so that every grant releases at least one.
    pub(crate) fn grant_window(&self) -> u32 {
        // max_payload <= 65 000 (Config::validate).
        self.grant_window.max(self.max_payload as u32)
    }

    /// Silence on an RPC after which its peer is prodded.
    pub(crate) fn resend_after(&self) -> Duration {
        self.resend_after
    }

    /// Time without progress after which an RPC fails.
    pub(crate) fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }

    /// The measured round trips.
    pub(crate) fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// A grant round trip was measured: the window becomes one bandwidth-delay
    /// product of the smoothed round trip (which includes the thread wake-ups on the
    /// way), and the timeouts follow RFC 6298 above the configured floors.
    pub(crate) fn on_rtt_sample(&mut self, sample: Duration, config: &Config) {
        self.rtt.on_sample(sample);
        let Some(srtt) = self.rtt.smoothed() else { return };
        let bdp = u128::from(config.link_bandwidth) * srtt.as_nanos() / 1_000_000_000;
        let window =
            bdp.clamp(u128::from(config.grant_window), u128::from(config.max_grant_window));
        // Clamped to max_grant_window, a u32.
        self.grant_window = window as u32;
        self.resend_after = self.rtt.timeout(config.resend_after, MAX_RESEND_AFTER);
        self.rpc_timeout = config.rpc_timeout.max(self.resend_after * RPC_TIMEOUT_IN_RESENDS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn packet_size_follows_the_reported_mtu_within_bounds() {
        let config = Config::default();
        let mut path = Path::new(&config);
        assert_eq!(path.max_payload(), 1412, "unknown MTU: fits any Ethernet path");
        path.set_max_datagram(1472, &config); // IPv4 over a 1500-byte MTU
        assert_eq!(path.max_payload(), 1432);
        path.set_max_datagram(8972, &config); // jumbo frames
        assert_eq!(path.max_payload(), 8932);
        path.set_max_datagram(65_507, &config); // loopback
        assert_eq!(path.max_payload(), config.largest_packet_payload);
        path.set_max_datagram(10, &config);
        assert_eq!(path.max_payload(), MIN_PAYLOAD);
    }

    #[test]
    fn grant_window_is_one_bandwidth_delay_product_within_bounds() {
        let config = Config::default();
        let mut path = Path::new(&config);
        assert_eq!(path.grant_window(), config.grant_window, "before any sample");
        // 25 Gbit/s x 100 us = 312 500 bytes.
        path.on_rtt_sample(us(100), &config);
        assert_eq!(path.grant_window(), 312_500);
        // Very short round trips keep the floor, very long ones the cap.
        let mut fast = Path::new(&config);
        fast.on_rtt_sample(us(2), &config);
        assert_eq!(fast.grant_window(), config.grant_window);
        let mut slow = Path::new(&config);
        slow.on_rtt_sample(Duration::from_millis(50), &config);
        assert_eq!(slow.grant_window(), config.max_grant_window);
    }

    #[test]
    fn timeouts_keep_their_floors_on_fast_paths_and_stretch_on_slow_ones() {
        let config = Config::default();
        let mut fast = Path::new(&config);
        fast.on_rtt_sample(us(50), &config);
        assert_eq!(fast.resend_after(), config.resend_after);
        assert_eq!(fast.rpc_timeout(), config.rpc_timeout);
        let mut slow = Path::new(&config);
        slow.on_rtt_sample(Duration::from_millis(40), &config);
        // 40 ms + 4 x 20 ms = 120 ms; the RPC lives 32 of those.
        assert_eq!(slow.resend_after(), Duration::from_millis(120));
        assert_eq!(slow.rpc_timeout(), Duration::from_millis(120 * 32));
        let mut hopeless = Path::new(&config);
        hopeless.on_rtt_sample(Duration::from_secs(10), &config);
        assert_eq!(hopeless.resend_after(), MAX_RESEND_AFTER);
    }
}
