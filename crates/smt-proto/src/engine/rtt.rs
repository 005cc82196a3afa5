//! Round-trip time estimation per session (RFC 6298's smoothed RTT and variance,
//! plus the minimum seen).
//!
//! What is measured is the receiver's grant round trip: from sending a GRANT that
//! lets the sender go past an offset to the arrival of the first byte beyond it.
//! On a datacenter path that time is mostly thread wake-ups and the sender's own
//! queue, not wire delay, and it is exactly the time a grant window must cover.

use std::time::Duration;

/// RFC 6298 gains: alpha = 1/8 for the mean, beta = 1/4 for the variance.
const ALPHA_DIV: u32 = 8;
const BETA_DIV: u32 = 4;

/// Smoothed RTT, its variance and the minimum, from samples fed in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RttEstimator {
    smoothed: Option<Duration>,
    variance: Duration,
    min: Option<Duration>,
    samples: u64,
}

impl RttEstimator {
    /// Folds in one measured round trip.
    pub(crate) fn on_sample(&mut self, sample: Duration) {
        self.samples += 1;
        self.min = Some(self.min.map_or(sample, |m| m.min(sample)));
        match self.smoothed {
            None => {
                // RFC 6298 2.2: the first sample sets SRTT = R, RTTVAR = R/2.
                self.smoothed = Some(sample);
                self.variance = sample / 2;
            }
            Some(srtt) => {
                // RFC 6298 2.3: RTTVAR first (with the old SRTT), then SRTT.
                let deviation = srtt.abs_diff(sample);
                self.variance = self.variance - self.variance / BETA_DIV + deviation / BETA_DIV;
                self.smoothed = Some(srtt - srtt / ALPHA_DIV + sample / ALPHA_DIV);
            }
        }
    }

    /// The smoothed RTT, once there was a sample.
    pub(crate) fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    /// The mean deviation (RTTVAR).
    pub(crate) fn variance(&self) -> Duration {
        self.variance
    }

    /// The smallest sample seen.
    pub(crate) fn min(&self) -> Option<Duration> {
        self.min
    }

    /// How many samples were folded in.
    pub(crate) fn samples(&self) -> u64 {
        self.samples
    }

    /// The retransmission timeout, SRTT + 4 RTTVAR (RFC 6298 2.3), kept within
    /// `[floor, cap]`; `floor` before any sample.
    pub(crate) fn timeout(&self, floor: Duration, cap: Duration) -> Duration {
        let Some(srtt) = self.smoothed else { return floor };
        (srtt + self.variance * 4).clamp(floor, cap.max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn first_sample_sets_mean_and_half_variance() {
        let mut rtt = RttEstimator::default();
        assert_eq!(rtt.smoothed(), None);
        assert_eq!(rtt.timeout(us(3000), us(1_000_000)), us(3000), "floor before samples");
        rtt.on_sample(us(100));
        assert_eq!(rtt.smoothed(), Some(us(100)));
        assert_eq!(rtt.variance(), us(50));
        assert_eq!(rtt.min(), Some(us(100)));
        // 100 + 4 * 50 = 300 us, above a 10 us floor.
        assert_eq!(rtt.timeout(us(10), us(1_000_000)), us(300));
    }

    #[test]
    fn later_samples_move_the_mean_by_an_eighth_and_the_variance_by_a_quarter() {
        let mut rtt = RttEstimator::default();
        rtt.on_sample(us(100));
        rtt.on_sample(us(180));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 180| = 37.5 + 20 = 57.5 us
        assert_eq!(rtt.variance(), Duration::from_nanos(57_500));
        // SRTT = 7/8 * 100 + 1/8 * 180 = 87.5 + 22.5 = 110 us
        assert_eq!(rtt.smoothed(), Some(us(110)));
        assert_eq!(rtt.min(), Some(us(100)));
        assert_eq!(rtt.samples(), 2);
    }

    #[test]
    fn steady_samples_converge_and_the_timeout_stays_within_its_bounds() {
        let mut rtt = RttEstimator::default();
        for _ in 0..200 {
            rtt.on_sample(us(40));
        }
        let srtt = rtt.smoothed().unwrap();
        assert!(srtt.abs_diff(us(40)) < us(1), "{srtt:?}");
        assert!(rtt.variance() < us(1));
        assert_eq!(rtt.timeout(us(3000), us(1_000_000)), us(3000), "floored");
        for _ in 0..200 {
            rtt.on_sample(Duration::from_secs(5));
        }
        assert_eq!(rtt.timeout(us(3000), Duration::from_secs(1)), Duration::from_secs(1), "capped");
        assert_eq!(rtt.min(), Some(us(40)));
    }
}
