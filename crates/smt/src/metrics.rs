//! What an endpoint exposes for monitoring: its counters, gauges of what it holds,
//! and latency histograms, in one snapshot ([`Endpoint::metrics`](crate::Endpoint::metrics)).
//!
//! The histograms are recorded by this crate, not the engine: the client's call
//! latency runs from `Session::call` being polled first to its response (sealing,
//! the network, the server and opening included); the server's service time runs
//! from a request being handed to the application (`accept` returning it, or the
//! `serve` handler being called) to its response being given back to SMT. Both use
//! fixed buckets ([`LATENCY_BUCKETS`]) updated with relaxed atomic increments, so
//! recording costs a few nanoseconds and takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smt_proto::engine::{MemoryUsage, Stats};

/// Upper bounds of the latency histograms' buckets (a last, unbounded bucket
/// follows): 1 us to 10 s in 1-2-5 steps.
pub const LATENCY_BUCKETS: [Duration; 22] = {
    const fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }
    [
        us(1),
        us(2),
        us(5),
        us(10),
        us(20),
        us(50),
        us(100),
        us(200),
        us(500),
        us(1_000),
        us(2_000),
        us(5_000),
        us(10_000),
        us(20_000),
        us(50_000),
        us(100_000),
        us(200_000),
        us(500_000),
        us(1_000_000),
        us(2_000_000),
        us(5_000_000),
        us(10_000_000),
    ]
};

/// A snapshot of one endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// The protocol engine's counters (they only grow).
    pub stats: Stats,
    /// What the endpoint holds in memory.
    pub memory: MemoryUsage,
    /// Client calls waiting for their response.
    pub calls_in_flight: usize,
    /// Latency of successful client calls.
    pub call_latency: HistogramSnapshot,
    /// Server time from a request reaching the application to its response.
    pub service_time: HistogramSnapshot,
    /// Receive batches handled by the endpoint's receive helpers rather than its
    /// driver (see [`EndpointBuilder::receive_helpers`](crate::EndpointBuilder::receive_helpers));
    /// it only grows.
    pub helper_batches: u64,
}

/// The counts of a latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// Observations per bucket: `buckets[i]` counts values at most
    /// `LATENCY_BUCKETS[i]` and above the previous bound; the last entry (one more
    /// than the bounds) counts values above 10 s.
    pub buckets: Vec<u64>,
    /// Number of observations.
    pub count: u64,
    /// Sum of all observations.
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding the `q`-quantile (0..=1), or `None`
    /// without observations; values above the last bound report `Duration::MAX`.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(Duration::MAX));
            }
        }
        Some(Duration::MAX)
    }
}

/// A latency histogram shared by the tasks that record into it.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn record(&self, value: Duration) {
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < value);
        // `partition_point` returns at most `LATENCY_BUCKETS.len()`, the last index.
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        // The count is the buckets' sum, so the snapshot is consistent even while
        // other threads record.
        let count = buckets.iter().sum();
        HistogramSnapshot {
            buckets,
            count,
            sum: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed)),
        }
    }
}

/// The endpoint's histograms.
#[derive(Debug, Default)]
pub(crate) struct Histograms {
    pub(crate) call_latency: LatencyHistogram,
    pub(crate) service_time: LatencyHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_whose_bound_is_the_first_not_below_them() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(10)); // the 10 us bucket (bounds are inclusive)
        h.record(Duration::from_micros(11)); // the 20 us bucket
        h.record(Duration::from_millis(3)); // the 5 ms bucket
        h.record(Duration::from_secs(60)); // unbounded bucket
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[3], 1);
        assert_eq!(s.buckets[4], 1);
        assert_eq!(s.buckets[11], 1);
        assert_eq!(s.buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(s.sum, Duration::from_micros(10 + 11 + 3000) + Duration::from_secs(60));
        assert_eq!(s.quantile_upper_bound(0.5), Some(Duration::from_micros(20)));
        assert_eq!(s.quantile_upper_bound(1.0), Some(Duration::MAX));
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        assert_eq!(LatencyHistogram::default().snapshot().quantile_upper_bound(0.5), None);
    }
}
