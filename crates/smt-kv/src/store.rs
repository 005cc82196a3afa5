//! The key space: shards of hash maps, each behind its own lock, so that commands
//! on different keys run on both cores at once. Keys expire lazily (a read of an
//! expired key finds nothing and removes it) and actively (a sweeper removes
//! expired keys a few at a time, as Redis does).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (bytes).
    Str(Bytes),
    /// A hash of fields to values (YCSB's Redis binding stores records as these).
    Hash(HashMap<Bytes, Bytes>),
}

/// A key's value and its expiry time.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub expires: Option<Instant>,
}

impl Entry {
    /// A value that does not expire.
    pub fn new(value: Value) -> Entry {
        Entry { value, expires: None }
    }

    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// One shard's keys.
#[derive(Debug, Default)]
pub struct Shard {
    map: HashMap<Bytes, Entry>,
}

impl Shard {
    /// The live entry of `key`; an expired one is removed first.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Sets `key` to `entry`, replacing whatever it held.
    pub fn insert(&mut self, key: Bytes, entry: Entry) {
        self.map.insert(key, entry);
    }

    /// Removes `key`; true if it held a live value.
    pub fn remove(&mut self, key: &[u8], now: Instant) -> bool {
        self.map.remove(key).is_some_and(|e| e.live(now))
    }

    /// Live keys.
    pub fn len(&self, now: Instant) -> usize {
        self.map.values().filter(|e| e.live(now)).count()
    }

    /// Whether the shard holds no keys at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn clear(&mut self) {
        self.map.clear();
    }

    /// Removes up to `budget` expired keys; returns how many it removed.
    fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let expired: Vec<Bytes> = self
            .map
            .iter()
            .filter(|(_, e)| !e.live(now))
            .map(|(k, _)| k.clone())
            .take(budget)
            .collect();
        for key in &expired {
            self.map.remove(key);
        }
        expired.len()
    }

    /// Live keys whose cursor hash is at least `from`, the `count` smallest by hash
    /// (and every other key sharing the last one's hash), in hash order.
    fn scan_from(
        &self,
        hasher: &RandomState,
        from: u64,
        count: usize,
        now: Instant,
    ) -> Vec<(u64, Bytes)> {
        let mut found: Vec<(u64, Bytes)> = self
            .map
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|(k, _)| (cursor_hash(hasher, k), k.clone()))
            .filter(|(h, _)| *h >= from)
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        if found.len() > count {
            let last = found[count - 1].0;
            let keep = found.iter().take_while(|(h, _)| *h <= last).count();
            found.truncate(keep);
        }
        found
    }
}

/// Bits of a SCAN cursor that hold the position within a shard; the shard index
/// sits above them.
const CURSOR_HASH_BITS: u32 = 48;

fn cursor_hash(hasher: &RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key) & ((1 << CURSOR_HASH_BITS) - 1)
}

/// The whole key space.
#[derive(Debug)]
pub struct Store {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Store {
    /// A store of `shards` shards (at least 1, at most 65 536).
    pub fn new(shards: usize) -> Store {
        let shards = shards.clamp(1, 1 << 16);
        Store {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Which shard holds `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) >> 48) as usize % self.shards.len()
    }

    /// The shard holding `key`, locked.
    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.lock_shard(self.shard_of(key))
    }

    /// Shard `index`, locked.
    pub fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while a shard was locked leaves it consistent (every operation
        // is a single map update), so a poisoned lock is still usable.
        self.shards[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Live keys in all shards.
    pub fn len(&self, now: Instant) -> usize {
        (0..self.shards.len()).map(|i| self.lock_shard(i).len(now)).sum()
    }

    /// Whether no shard holds any key.
    pub fn is_empty(&self) -> bool {
        (0..self.shards.len()).all(|i| self.lock_shard(i).is_empty())
    }

    /// Removes every key.
    pub fn clear(&self) {
        for i in 0..self.shards.len() {
            self.lock_shard(i).clear();
        }
    }

    /// Removes up to `budget` expired keys per shard.
    pub fn sweep(&self, now: Instant, budget: usize) -> usize {
        (0..self.shards.len()).map(|i| self.lock_shard(i).sweep(now, budget)).sum()
    }

    /// One step of SCAN: up to about `count` live keys from `cursor` on, and the
    /// cursor to continue from (0 when the scan is complete). Every key present
    /// for the whole scan is returned exactly once; keys added or removed meanwhile
    /// may or may not be (Redis's guarantee).
    pub fn scan(&self, cursor: u64, count: usize, now: Instant) -> (u64, Vec<Bytes>) {
        let count = count.max(1);
        let mut shard = (cursor >> CURSOR_HASH_BITS) as usize;
        let mut from = cursor & ((1 << CURSOR_HASH_BITS) - 1);
        let mut keys = Vec::new();
        while shard < self.shards.len() && keys.len() < count {
            let found =
                self.lock_shard(shard).scan_from(&self.hasher, from, count - keys.len(), now);
            let complete = found.len() < count - keys.len();
            let next_from = found.last().map(|(h, _)| h + 1);
            keys.extend(found.into_iter().map(|(_, k)| k));
            match next_from {
                Some(next) if !complete && next < (1 << CURSOR_HASH_BITS) => {
                    return (((shard as u64) << CURSOR_HASH_BITS) | next, keys);
                }
                _ => {
                    shard += 1;
                    from = 0;
                }
            }
        }
        if shard >= self.shards.len() {
            (0, keys)
        } else {
            ((shard as u64) << CURSOR_HASH_BITS, keys)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn put(store: &Store, key: &str) {
        store
            .lock(key.as_bytes())
            .insert(Bytes::from(key.to_owned()), Entry::new(Value::Str(Bytes::new())));
    }

    #[test]
    fn an_expired_key_is_gone_on_read_and_swept_without_one() {
        let store = Store::new(4);
        let now = Instant::now();
        let mut entry = Entry::new(Value::Str(Bytes::from("v")));
        entry.expires = Some(now + Duration::from_millis(10));
        store.lock(b"a").insert(Bytes::from("a"), entry.clone());
        store.lock(b"b").insert(Bytes::from("b"), entry);
        assert!(store.lock(b"a").get(b"a", now).is_some());
        let later = now + Duration::from_millis(11);
        assert!(store.lock(b"a").get(b"a", later).is_none());
        assert_eq!(store.len(later), 0);
        assert_eq!(store.sweep(later, 10), 1, "b was still stored");
        assert!(store.is_empty());
    }

    #[test]
    fn scan_returns_every_key_exactly_once_whatever_the_count() {
        let store = Store::new(8);
        let now = Instant::now();
        for i in 0..1000 {
            put(&store, &format!("key:{i}"));
        }
        for count in [1, 7, 10, 1000, 5000] {
            let (mut cursor, mut seen, mut steps) = (0u64, Vec::new(), 0);
            loop {
                let (next, keys) = store.scan(cursor, count, now);
                seen.extend(keys);
                steps += 1;
                if next == 0 {
                    break;
                }
                cursor = next;
                assert!(steps < 10_000, "scan does not end");
            }
            let unique: HashSet<_> = seen.iter().cloned().collect();
            assert_eq!((seen.len(), unique.len()), (1000, 1000), "count {count}");
        }
    }

    #[test]
    fn scan_keeps_returning_keys_present_throughout_while_others_are_deleted() {
        let store = Store::new(4);
        let now = Instant::now();
        for i in 0..200 {
            put(&store, &format!("k{i}"));
        }
        let (mut cursor, mut seen) = (0u64, HashSet::new());
        let mut round = 0;
        loop {
            let (next, keys) = store.scan(cursor, 10, now);
            seen.extend(keys);
            // Delete an odd key each step.
            let victim = format!("k{}", 2 * round + 1);
            store.lock(victim.as_bytes()).remove(victim.as_bytes(), now);
            round += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in (0..200).step_by(2) {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }
}
