//! Reused buffers for large messages: reassembly buffers, sealed images and the
//! payloads handed to the application come from one pool per endpoint and go back
//! to it when dropped.
//!
//! Why: a fresh megabyte from the allocator is zeroed (or faulted in page by page,
//! 256 faults per MiB) every time, and with several large messages in flight the
//! system allocator hands memory back to the kernel often enough that this cost
//! rivalled AES-GCM in the profiles. A reused buffer is warm and needs no zeroing:
//! its bytes are overwritten before anything reads them.
//!
//! What stops stale bytes from leaking: a [`Buffer`] exposes only its first `len`
//! bytes; a reassembly buffer is read only where records were received and opened;
//! a sealed image is written in full by sealing (header, content, type, tag of
//! every record) before it is sent. Small messages do not use the pool.

use std::sync::{Arc, Mutex, MutexGuard};

/// Buffers smaller than this are allocated normally (cheap, and never faulted in
/// page by page).
pub(crate) const MIN_POOLED: usize = 64 * 1024;

/// Most buffers the pool keeps.
const MAX_POOLED_BUFFERS: usize = 64;

#[derive(Debug, Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    /// Most bytes kept (the endpoint's `buffer_pool_bytes`).
    limit: usize,
}

/// A bounded set of spare buffers, shared by the endpoint and the buffers it hands
/// out (which may be dropped on any thread).
#[derive(Debug, Clone, Default)]
pub(crate) struct BufferPool {
    free: Arc<Mutex<Free>>,
}

impl BufferPool {
    /// A pool keeping at most `limit` bytes of spare buffers.
    pub(crate) fn new(limit: usize) -> BufferPool {
        BufferPool { free: Arc::new(Mutex::new(Free { limit, ..Free::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        // The critical sections only move vectors; a panic elsewhere cannot leave
        // the list inconsistent, so a poisoned lock is still usable.
        self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer of `len` bytes whose contents are unspecified (zeroes, or bytes of
    /// an earlier message): the caller overwrites what it reads.
    pub(crate) fn take(&self, len: usize) -> Buffer {
        if len < MIN_POOLED {
            return Buffer { storage: vec![0; len], len, pool: None };
        }
        let reused = {
            let mut free = self.lock();
            // Best fit: the smallest spare that is large enough.
            let best = free
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            best.map(|i| {
                let buffer = free.buffers.swap_remove(i);
                free.bytes -= buffer.len();
                buffer
            })
        };
        let storage = reused.unwrap_or_else(|| vec![0; len]);
        Buffer { storage, len, pool: Some(self.clone()) }
    }

    fn give(&self, storage: Vec<u8>) {
        let mut free = self.lock();
        if free.buffers.len() >= MAX_POOLED_BUFFERS || free.bytes + storage.len() > free.limit {
            return; // dropped: the pool is full
        }
        free.bytes += storage.len();
        free.buffers.push(storage);
    }

    /// Bytes of spare buffers held.
    pub(crate) fn spare_bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// A byte buffer of a fixed length that returns its storage to the pool it came
/// from when dropped. Only the first `len` bytes are ever visible.
#[derive(Debug)]
pub(crate) struct Buffer {
    /// Fully initialised; at least `len` bytes long.
    storage: Vec<u8>,
    len: usize,
    pool: Option<BufferPool>,
}

impl Buffer {
    /// A buffer holding exactly `bytes` (not pooled).
    #[cfg(test)]
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Buffer {
        let len = bytes.len();
        Buffer { storage: bytes, len, pool: None }
    }

    /// A buffer of no bytes (a placeholder while the real one is elsewhere).
    pub(crate) fn empty() -> Buffer {
        Buffer { storage: Vec::new(), len: 0, pool: None }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Shortens the visible part to `len` bytes (never lengthens it).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Hands the buffer to the application as `Bytes`; dropping the last clone
    /// returns the storage to the pool.
    pub(crate) fn into_bytes(self) -> bytes::Bytes {
        if self.pool.is_none() {
            let mut this = self;
            let mut storage = std::mem::take(&mut this.storage);
            storage.truncate(this.len);
            return bytes::Bytes::from(storage);
        }
        bytes::Bytes::from_owner(self)
    }
}

impl core::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[..self.len]
    }
}

impl core::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[..self.len]
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.storage));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back_and_are_reused_without_zeroing() {
        let pool = BufferPool::new(16 << 20);
        let mut a = pool.take(1 << 20);
        assert_eq!(a.len(), 1 << 20);
        a[..4].copy_from_slice(b"old!");
        let address = a.as_ptr();
        drop(a);
        assert_eq!(pool.spare_bytes(), 1 << 20);
        // A smaller request gets the same storage, contents as left.
        let b = pool.take(100_000);
        assert_eq!(b.as_ptr(), address);
        assert_eq!(b.len(), 100_000);
        assert_eq!(&b[..4], b"old!");
        assert_eq!(pool.spare_bytes(), 0);
    }

    #[test]
    fn bytes_handed_out_return_their_storage_when_the_last_clone_drops() {
        let pool = BufferPool::new(16 << 20);
        let mut buffer = pool.take(200_000);
        buffer.fill(7);
        buffer.truncate(150_000);
        let bytes = buffer.into_bytes();
        assert_eq!(bytes.len(), 150_000);
        assert!(bytes.iter().all(|&b| b == 7));
        let clone = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.spare_bytes(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(pool.spare_bytes(), 200_000);
    }

    #[test]
    fn small_buffers_bypass_the_pool_and_the_pool_stays_within_its_limit() {
        let pool = BufferPool::new(3 << 20);
        drop(pool.take(1000));
        assert_eq!(pool.spare_bytes(), 0);
        let held: Vec<Buffer> = (0..5).map(|_| pool.take(1 << 20)).collect();
        drop(held);
        assert_eq!(pool.spare_bytes(), 3 << 20, "kept three of five");
        let small = pool.take(10).into_bytes();
        assert_eq!(small.len(), 10);
    }
}
