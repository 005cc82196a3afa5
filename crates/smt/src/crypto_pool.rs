//! Threads for the record crypto of large messages.
//!
//! Every record of an SMT message has its own sequence number (message ID, record
//! index), so records of different messages, and records within one message, can
//! be sealed and opened independently on different cores. The engine hands out the
//! work as parts of a few records ([`SealPart`], [`OpenPart`]); this pool runs them
//! on a rayon thread pool. Small amounts of work stay on the calling thread, where
//! they are cheapest, and so does everything when the process may use one CPU only.

use std::sync::{Arc, Mutex, PoisonError};

use smt_proto::engine::{CallError, OpenBatch, PreparedMessage, SealPart, SealedMessage};

/// Below this many bytes, work stays on the calling thread: handing it to other
/// threads costs a few microseconds, as much as sealing 16-32 KiB.
pub(crate) const PARALLEL_MIN_BYTES: usize = 64 * 1024;

/// Worker threads for sealing and opening records (cheap to clone: clones share the
/// threads). See [`EndpointBuilder::crypto_threads`](crate::EndpointBuilder::crypto_threads).
#[derive(Clone)]
pub struct CryptoPool {
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for CryptoPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoPool").field("threads", &self.threads()).finish()
    }
}

impl CryptoPool {
    /// Crypto on `threads` threads: the calling thread and `threads - 1` workers;
    /// with 0 or 1 everything runs on the calling thread.
    pub fn new(threads: usize) -> std::io::Result<CryptoPool> {
        if threads <= 1 {
            return Ok(CryptoPool { pool: None });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads - 1)
            .thread_name(|i| format!("smt-crypto-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(CryptoPool { pool: Some(Arc::new(pool)) })
    }

    /// One worker per CPU this process may run on (as `sched_getaffinity` reports:
    /// a process pinned to one CPU gets no workers and seals and opens inline).
    pub fn per_cpu() -> std::io::Result<CryptoPool> {
        CryptoPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Threads that do crypto, the calling one included.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads() + 1)
    }

    /// Runs `work` on every item, on the calling thread and the workers at once: each
    /// takes the next item until none is left. The caller never waits for a worker
    /// to wake up before starting, and takes everything if none does.
    fn share<T: Send>(pool: &rayon::ThreadPool, items: &mut [T], work: impl Fn(&mut T) + Sync) {
        let queue = Mutex::new(items.iter_mut());
        let drain = || loop {
            // The lock only hands out items; a panic elsewhere cannot break the iterator.
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            match next {
                Some(item) => work(item),
                None => break,
            }
        };
        pool.in_place_scope(|scope| {
            for _ in 0..pool.current_num_threads() {
                scope.spawn(|_| drain());
            }
            drain();
        });
    }

    /// Opens every record of `batch`, in parallel if it is large enough.
    pub fn open(&self, batch: &mut OpenBatch) {
        match &self.pool {
            Some(pool) if batch.bytes() >= PARALLEL_MIN_BYTES => {
                let mut parts = batch.parts();
                Self::share(pool, &mut parts, |part| part.open());
            }
            _ => batch.open_here(),
        }
    }

    /// Seals `payload` as `prepared`, its records in parallel if it is large enough.
    pub fn seal(
        &self,
        prepared: &PreparedMessage,
        payload: &[u8],
    ) -> Result<SealedMessage, CallError> {
        match &self.pool {
            Some(pool) if payload.len() >= PARALLEL_MIN_BYTES => {
                prepared.seal_with(payload, |parts| Self::share(pool, parts, SealPart::seal))
            }
            _ => prepared.seal(payload),
        }
    }
}
