//! Open-loop load: Poisson arrivals with message sizes from a Homa workload, sent at
//! their scheduled times whatever the transport is doing, with every latency
//! measured from the scheduled send time (the coordinated-omission correction: a
//! transport that stalls the sender is charged for the stall).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smt_sim::workload::SizeSampler;
use tokio::sync::Semaphore;

use crate::stats::{co_corrected_ns, Latency};

/// One scheduled request: when (from the start) and how big.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub at: Duration,
    pub size: u32,
}

/// Poisson arrivals at `rate` per second for `duration`, sizes drawn from `sampler`;
/// the same seed gives the same schedule.
pub fn poisson_schedule(
    rate: f64,
    duration: Duration,
    sampler: &SizeSampler,
    seed: u64,
) -> Vec<Arrival> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0f64;
    let mut out = Vec::new();
    loop {
        // Exponential gap by inversion; 1 - u is in (0, 1] so ln is finite.
        let u: f64 = rng.gen();
        t += -(1.0 - u).ln() / rate;
        if t >= duration.as_secs_f64() {
            return out;
        }
        out.push(Arrival { at: Duration::from_secs_f64(t), size: sampler.sample(&mut rng) });
    }
}

/// One completed request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub scheduled: Duration,
    pub size: u32,
    /// Completion minus scheduled send time.
    pub latency_us: f64,
}

#[derive(Debug, Default)]
pub struct OpenLoopResult {
    pub samples: Vec<Sample>,
    /// How late the dispatcher released requests relative to the schedule (timer
    /// wake-ups, and waiting for the outstanding cap): the harness's own noise.
    pub lateness: Latency,
    pub failures: u64,
    /// Requests still outstanding when the drain timeout expired, plus requests never
    /// sent because the dispatcher fell more than [`MAX_BEHIND`] behind schedule
    /// (the transport could not sustain the offered load).
    pub unfinished: u64,
}

/// When the dispatcher is this far behind schedule, the rest of the schedule is
/// abandoned (and counted as unfinished).
pub const MAX_BEHIND: Duration = Duration::from_secs(2);

/// Releases `schedule` from a dedicated thread (sleeping with 1 ns timer slack
/// between arrivals), runs each request as `call(size)` on `runtime`, with at most
/// `cap` outstanding, then waits up to `drain` for the stragglers.
pub async fn run<F, Fut>(
    runtime: tokio::runtime::Handle,
    schedule: Vec<Arrival>,
    cap: usize,
    drain: Duration,
    call: F,
) -> Result<OpenLoopResult>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("open-loop".into())
        .spawn(move || {
            let _ = tx.send(dispatch(&runtime, &schedule, cap, drain, Arc::new(call)));
        })
        .map_err(|e| anyhow!("cannot start the dispatcher thread: {e}"))?;
    rx.await.map_err(|_| anyhow!("the dispatcher thread died"))
}

struct Shared {
    samples: Vec<Sample>,
    failures: u64,
}

fn dispatch<F, Fut>(
    runtime: &tokio::runtime::Handle,
    schedule: &[Arrival],
    cap: usize,
    drain: Duration,
    call: Arc<F>,
) -> OpenLoopResult
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    // Default timer slack (50 us) would make every sleep overshoot by tens of us.
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
    let shared =
        Arc::new(Mutex::new(Shared { samples: Vec::with_capacity(schedule.len()), failures: 0 }));
    let permits = Arc::new(Semaphore::new(cap));
    let mut lateness = Latency::new();
    let start = Instant::now();
    let mut abandoned = 0u64;
    for (i, &arrival) in schedule.iter().enumerate() {
        if start.elapsed().saturating_sub(arrival.at) > MAX_BEHIND {
            abandoned = (schedule.len() - i) as u64;
            break;
        }
        let now = start.elapsed();
        if arrival.at > now {
            std::thread::sleep(arrival.at - now);
        }
        let permit = runtime
            .block_on(permits.clone().acquire_owned())
            .expect("the semaphore is never closed");
        lateness.record(start.elapsed().saturating_sub(arrival.at));
        let (call, shared) = (call.clone(), shared.clone());
        runtime.spawn(async move {
            let ok = call(arrival.size).await.is_ok();
            let done = start.elapsed();
            let ns = co_corrected_ns(nanos(arrival.at), nanos(done));
            {
                let mut s = shared.lock().expect("not poisoned");
                if ok {
                    s.samples.push(Sample {
                        scheduled: arrival.at,
                        size: arrival.size,
                        latency_us: ns as f64 / 1000.0,
                    });
                } else {
                    s.failures += 1;
                }
            }
            // Only after the result is recorded: the drain below reads the results as
            // soon as every permit is back.
            drop(permit);
        });
    }
    let cap32 = u32::try_from(cap).unwrap_or(u32::MAX);
    let drained = runtime
        .block_on(async { tokio::time::timeout(drain, permits.acquire_many(cap32)).await.is_ok() });
    let s = shared.lock().expect("not poisoned");
    let stuck = if drained { 0 } else { cap as u64 - permits.available_permits() as u64 };
    let unfinished = stuck + abandoned;
    OpenLoopResult { samples: s.samples.clone(), lateness, failures: s.failures, unfinished }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smt_sim::workload::Workload;

    #[test]
    fn poisson_schedule_has_the_right_rate_and_is_reproducible() {
        let sampler = SizeSampler::new(Workload::W3, Some(1 << 20));
        let s = poisson_schedule(10_000.0, Duration::from_secs(2), &sampler, 7);
        assert!((19_000..21_000).contains(&s.len()), "{}", s.len());
        assert!(s.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(s.iter().all(|a| a.size >= 1 && a.size <= 1 << 20));
        assert_eq!(s, poisson_schedule(10_000.0, Duration::from_secs(2), &sampler, 7));
        assert_ne!(s, poisson_schedule(10_000.0, Duration::from_secs(2), &sampler, 8));
        // Exponential gaps: about 63 % of them are shorter than the mean (100 us).
        let short = s.windows(2).filter(|w| w[1].at - w[0].at < Duration::from_micros(100));
        let frac = short.count() as f64 / (s.len() - 1) as f64;
        assert!((0.60..0.66).contains(&frac), "{frac}");
    }

    /// A server that takes 10 ms per request with one request at a time, offered one
    /// request per ms: the queue grows by 9 ms per request. Latency measured from the
    /// scheduled time shows that; measured from the (blocked) send it would stay 10 ms.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_is_counted_from_the_schedule() {
        let schedule: Vec<Arrival> =
            (0..20).map(|i| Arrival { at: Duration::from_millis(i), size: 1 }).collect();
        let call = |_size: u32| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        };
        let r = run(tokio::runtime::Handle::current(), schedule, 1, Duration::from_secs(5), call)
            .await
            .unwrap();
        assert_eq!(r.samples.len(), 20);
        assert_eq!((r.failures, r.unfinished), (0, 0));
        let mut by_time = r.samples.clone();
        by_time.sort_by_key(|s| s.scheduled);
        // Request k completes no earlier than (k + 1) * 10 ms, was due at k ms.
        for (k, s) in by_time.iter().enumerate() {
            let floor = (k as f64 + 1.0) * 10_000.0 - k as f64 * 1000.0;
            assert!(s.latency_us >= floor - 500.0, "request {k}: {} us", s.latency_us);
        }
        // The dispatcher was held back by the cap, and says so.
        assert!(r.lateness.percentile_us(99.0).unwrap() > 100_000.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_and_stragglers_are_counted() {
        let schedule: Vec<Arrival> =
            (0..4).map(|i| Arrival { at: Duration::from_millis(i), size: i as u32 }).collect();
        let call = |size: u32| async move {
            match size {
                0 => Err(anyhow!("boom")),
                3 => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        let r =
            run(tokio::runtime::Handle::current(), schedule, 8, Duration::from_millis(200), call)
                .await
                .unwrap();
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.failures, 1);
        assert_eq!(r.unfinished, 1);
    }
}
