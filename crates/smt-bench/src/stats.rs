//! The harness's own statistics: latency histograms, percentiles, the spread of
//! repeated runs, and Homa-style slowdown by message-size bucket.

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant digits: values
/// are exact to 0.1 %).
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Records one latency; values outside the range are clamped into it.
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    pub fn record(&mut self, d: std::time::Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("histograms with equal bounds merge");
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at `percentile` (0-100) in microseconds, `None` without samples.
    /// hdrhistogram returns the highest value equivalent to the one at that rank, so
    /// the result is at most 0.1 % above the exact sample.
    pub fn percentile_us(&self, percentile: f64) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        Some(self.hist.value_at_percentile(percentile) as f64 / 1000.0)
    }
}

/// Nearest-rank percentile (0-100) of unsorted values: the smallest value with at
/// least `percentile` % of the values at or below it. `None` for no values.
pub fn percentile(values: &[f64], percentile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = ((percentile.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Min, median and max of the per-run values of one measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// The spread of `values` (the median of an even count is the mean of the middle
/// two), `None` if there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
    Some(Spread { min: sorted[0], median, max: sorted[n - 1] })
}

/// The median of `values`, `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    spread(values).map(|s| s.median)
}

/// Latency of an open-loop request corrected for coordinated omission: measured from
/// the time the schedule said it should be sent, not from when the (possibly
/// delayed) sender got around to it. Never negative.
pub fn co_corrected_ns(scheduled_ns: u64, completed_ns: u64) -> u64 {
    completed_ns.saturating_sub(scheduled_ns)
}

/// The ideal (unloaded, best-case) time in microseconds of an echo RPC carrying
/// `size` bytes each way: the base round trip plus both messages at link rate, since
/// an echo server sends its response only after the whole request arrived.
pub fn ideal_us(size: u64, base_rtt_us: f64, link_gbps: f64) -> f64 {
    base_rtt_us + 2.0 * size as f64 * 8.0 / (link_gbps * 1e3)
}

/// Homa's slowdown: measured RPC time over the ideal time for its size.
pub fn slowdown(rtt_us: f64, size: u64, base_rtt_us: f64, link_gbps: f64) -> f64 {
    rtt_us / ideal_us(size, base_rtt_us, link_gbps)
}

/// Upper bounds (inclusive) of the message-size buckets used for slowdown: every
/// size falls in the first bucket whose bound is at least the size.
pub const SIZE_BUCKETS: [u64; 6] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// Index into `bounds` of the bucket holding `size`; sizes above the last bound go
/// to the last bucket.
pub fn bucket_of(size: u64, bounds: &[u64]) -> usize {
    bounds.partition_point(|&b| b < size).min(bounds.len().saturating_sub(1))
}

/// A human label for bucket `i` of `bounds`, e.g. "1K-4K" ("<=1K" for the first).
pub fn bucket_label(i: usize, bounds: &[u64]) -> String {
    if i == 0 {
        format!("<={}", size_label(bounds[0]))
    } else {
        format!("{}-{}", size_label(bounds[i - 1]), size_label(bounds[i]))
    }
}

/// "64 B", "4K", "1M" style short labels.
pub fn size_label(size: u64) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{}M", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{}K", size >> 10)
    } else {
        format!("{size}B")
    }
}

/// Slowdown percentiles of one size bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketStats {
    pub upper: u64,
    pub count: usize,
    pub p50_slowdown: f64,
    pub p99_slowdown: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Groups `(size, rtt_us)` samples by size bucket and computes p50/p99 of the RTT
/// and of the slowdown in each non-empty bucket.
pub fn slowdown_by_bucket(
    samples: &[(u64, f64)],
    bounds: &[u64],
    base_rtt_us: f64,
    link_gbps: f64,
) -> Vec<BucketStats> {
    let mut rtts: Vec<Vec<f64>> = vec![Vec::new(); bounds.len()];
    let mut slows: Vec<Vec<f64>> = vec![Vec::new(); bounds.len()];
    for &(size, rtt) in samples {
        let b = bucket_of(size, bounds);
        rtts[b].push(rtt);
        slows[b].push(slowdown(rtt, size, base_rtt_us, link_gbps));
    }
    let mut out = Vec::new();
    for (i, (r, s)) in rtts.iter().zip(&slows).enumerate() {
        if r.is_empty() {
            continue;
        }
        out.push(BucketStats {
            upper: bounds[i],
            count: r.len(),
            p50_slowdown: percentile(s, 50.0).unwrap_or(f64::NAN),
            p99_slowdown: percentile(s, 99.0).unwrap_or(f64::NAN),
            p50_us: percentile(r, 50.0).unwrap_or(f64::NAN),
            p99_us: percentile(r, 99.0).unwrap_or(f64::NAN),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_match_exact_ranks() {
        let mut h = Latency::new();
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        let p50 = h.percentile_us(50.0).unwrap();
        let p99 = h.percentile_us(99.0).unwrap();
        assert!((p50 - 500.0).abs() <= 0.5, "{p50}");
        assert!((p99 - 990.0).abs() <= 1.0, "{p99}");
        assert_eq!(h.len(), 1000);
        assert!(Latency::new().percentile_us(50.0).is_none());
    }

    #[test]
    fn histograms_merge_and_clamp() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_ns(0); // clamped to 1 ns
        b.record_ns(u64::MAX); // clamped to the top of the range
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert!(a.percentile_us(100.0).unwrap() >= 99_000_000.0);
    }

    #[test]
    fn nearest_rank_percentile() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // 3 values: p50 is the 2nd, p99 the 3rd.
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
    }

    #[test]
    fn spread_of_runs() {
        let s = spread(&[30.0, 10.0, 20.0]).unwrap();
        assert_eq!(s, Spread { min: 10.0, median: 20.0, max: 30.0 });
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn coordinated_omission_correction_counts_from_schedule() {
        // Scheduled at 100, actually sent at 900 (sender stalled), done at 1000:
        // the corrected latency is 900, not the 100 a naive sender-side timer sees.
        assert_eq!(co_corrected_ns(100, 1000), 900);
        assert_eq!(co_corrected_ns(1000, 900), 0);
    }

    #[test]
    fn ideal_time_and_slowdown() {
        // 1 MB each way at 8 Gbps is 1 ms each way; plus 50 us base.
        let ideal = ideal_us(1_000_000, 50.0, 8.0);
        assert!((ideal - 2050.0).abs() < 1e-9);
        assert!((slowdown(4100.0, 1_000_000, 50.0, 8.0) - 2.0).abs() < 1e-9);
        // A tiny message's ideal is essentially the base RTT.
        assert!((slowdown(100.0, 0, 50.0, 10.0) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let b = SIZE_BUCKETS;
        assert_eq!(bucket_of(1, &b), 0);
        assert_eq!(bucket_of(1024, &b), 0);
        assert_eq!(bucket_of(1025, &b), 1);
        assert_eq!(bucket_of(1 << 20, &b), 5);
        assert_eq!(bucket_of(u64::MAX, &b), 5);
        assert_eq!(bucket_label(0, &b), "<=1K");
        assert_eq!(bucket_label(1, &b), "1K-4K");
        assert_eq!(bucket_label(5, &b), "256K-1M");
        assert_eq!(size_label(64), "64B");
    }

    #[test]
    fn slowdown_buckets_skip_empty_and_rank_correctly() {
        // Base 10 us and a link so fast that ideal == base for these sizes.
        let samples: Vec<(u64, f64)> =
            (1..=100).map(|i| (100, 10.0 * f64::from(i))).chain([(100_000, 50.0)]).collect();
        let stats = slowdown_by_bucket(&samples, &SIZE_BUCKETS, 10.0, 1e9);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].upper, 1024);
        assert_eq!(stats[0].count, 100);
        assert!((stats[0].p50_slowdown - 50.0).abs() < 1e-6);
        assert!((stats[0].p99_slowdown - 99.0).abs() < 1e-6);
        assert_eq!(stats[0].p99_us, 990.0);
        assert_eq!(stats[1].upper, 256 << 10);
        assert!((stats[1].p50_slowdown - 5.0).abs() < 1e-6);
    }
}
