//! The RPC load loop shared by `smt call` and `smt demo`: echo calls with
//! deterministic payloads, a bounded number in flight, every response verified, and
//! per-call latencies in an HDR histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Payload bytes per request (the echo response has the same size).
    pub size: usize,
    /// Number of calls.
    pub count: u64,
    /// Most calls in flight at once.
    pub concurrency: usize,
}

/// What happened: every completed call succeeded and echoed its payload exactly.
pub struct LoadReport {
    pub spec: LoadSpec,
    /// Calls completed and verified: `spec.count`, unless the run was interrupted.
    pub completed: u64,
    /// The run was stopped by Ctrl-C (SIGINT) before all calls completed.
    pub interrupted: bool,
    /// Wall time from the first call's start to the last call's end.
    pub elapsed: Duration,
    /// Per-call latency in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Latency at `percentile` (0-100), in microseconds.
    pub fn percentile_us(&self, percentile: f64) -> u64 {
        self.latency_us.value_at_percentile(percentile)
    }

    pub fn max_us(&self) -> u64 {
        self.latency_us.max()
    }

    pub fn calls_per_sec(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }

    /// Request plus response payload bits per second, in Gbit/s (headers, TLS
    /// overhead and retransmissions not counted).
    pub fn payload_gbit_per_sec(&self) -> f64 {
        let bits = 2.0 * 8.0 * self.spec.size as f64 * self.completed as f64;
        bits / self.elapsed.as_secs_f64() / 1e9
    }
}

/// How a run reports while it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing until the end.
    Quiet,
    /// A line on stderr every second once the run has lasted a second, and partial
    /// results on Ctrl-C (SIGINT) instead of an abrupt exit.
    Interactive,
}

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Runs `spec.count` echo calls on `session` and verifies each response.
/// The error names the first call that failed and why.
pub async fn run(session: &smt::Session, spec: LoadSpec, progress: Progress) -> Result<LoadReport> {
    if spec.count == 0 || spec.concurrency == 0 {
        bail!("count and concurrency must be at least 1");
    }
    let workers = spec.concurrency.min(usize::try_from(spec.count).unwrap_or(usize::MAX));
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        latency_us: Mutex::new(new_histogram()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..workers {
        let (session, shared) = (session.clone(), shared.clone());
        tasks.spawn(async move { worker(session, spec, &shared).await });
    }
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let interactive = progress == Progress::Interactive;
    let interrupt = async {
        if !interactive || tokio::signal::ctrl_c().await.is_err() {
            // No Ctrl-C handling: wait forever.
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                // Returning early drops `tasks`, which aborts the other workers.
                Some(joined) => joined.map_err(|e| anyhow!("load worker crashed: {e}"))??,
                None => break,
            },
            _ = ticks.tick(), if interactive => {
                let done = shared.done.load(Ordering::Relaxed);
                let rate = done as f64 / start.elapsed().as_secs_f64();
                eprintln!(
                    "progress: {done}/{} calls ({:.1} %), {rate:.0} calls/s",
                    spec.count,
                    100.0 * done as f64 / spec.count as f64
                );
            }
            _ = &mut interrupt => {
                interrupted = true;
                tasks.abort_all();
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let latency_us = shared.latency_us.lock().map_err(|_| anyhow!("a worker panicked"))?.clone();
    let completed = latency_us.len();
    Ok(LoadReport { spec, completed, interrupted, elapsed, latency_us })
}

/// What the workers share.
struct Shared {
    /// The next call number to take.
    next: AtomicU64,
    /// Calls completed and verified.
    done: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

/// Takes call numbers until all are taken; each verified call's latency goes into
/// the shared histogram at once, so an interrupted run keeps what it measured.
async fn worker(session: smt::Session, spec: LoadSpec, shared: &Shared) -> Result<()> {
    loop {
        let call = shared.next.fetch_add(1, Ordering::Relaxed);
        if call >= spec.count {
            return Ok(());
        }
        let what = || format!("call {} of {} ({} B)", call + 1, spec.count, spec.size);
        let request = payload(call, spec.size);
        let sent = Instant::now();
        let response = session
            .call(request.clone())
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("{} failed", what())))?;
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        check_echo(&request, &response).map_err(|e| anyhow!("{} failed: {e}", what()))?;
        shared
            .latency_us
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .record(micros)
            .map_err(|e| anyhow!("recording latency: {e}"))?;
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits.
    Histogram::new(3).expect("3 significant digits is valid")
}

/// Whether `response` is exactly `request`, and if not, a description of the first
/// difference.
fn check_echo(request: &[u8], response: &[u8]) -> Result<()> {
    if response.len() != request.len() {
        bail!("response has {} bytes, expected {}", response.len(), request.len());
    }
    if let Some(at) = request.iter().zip(response).position(|(a, b)| a != b) {
        bail!("response differs from the request at byte {at}");
    }
    Ok(())
}

/// The request payload of call number `call`: `size` pseudo-random bytes that depend
/// only on `call` and `size`, so every call sends different bytes and a run can be
/// reproduced.
pub fn payload(call: u64, size: usize) -> Bytes {
    let mut state = call.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (size as u64).rotate_left(32);
    let mut bytes = vec![0u8; size];
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = splitmix64(&mut state).to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    Bytes::from(bytes)
}

/// SplitMix64: a tiny, fast generator, plenty for test payloads.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_deterministic_and_distinct() {
        assert_eq!(payload(3, 100), payload(3, 100));
        assert_ne!(payload(3, 100), payload(4, 100));
        assert_eq!(payload(7, 13).len(), 13);
        assert!(payload(0, 0).is_empty());
    }

    #[test]
    fn mismatches_are_located() {
        assert!(check_echo(b"abc", b"abc").is_ok());
        let e = check_echo(b"abc", b"abd").unwrap_err().to_string();
        assert!(e.contains("byte 2"), "{e}");
        let e = check_echo(b"abc", b"ab").unwrap_err().to_string();
        assert!(e.contains("2 bytes"), "{e}");
    }
}
