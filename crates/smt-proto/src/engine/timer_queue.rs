//! Deadlines by time: arming, re-arming and cancelling are O(log n), and taking the
//! due ones costs O(expired), however many timers wait.
//!
//! Each key has at most one armed deadline. Owners that move a deadline *later* need
//! not re-arm: they may let the earlier deadline fire, look at their state, and arm
//! the real one then ([`TimerQueue::arm_no_later`] supports this), which keeps the
//! per-packet cost of "the peer was just heard from" at zero.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TimerQueue<K: Ord + Copy> {
    by_time: BTreeSet<(Instant, K)>,
    armed: BTreeMap<K, Instant>,
}

impl<K: Ord + Copy> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue { by_time: BTreeSet::new(), armed: BTreeMap::new() }
    }
}

impl<K: Ord + Copy> TimerQueue<K> {
    /// Sets `key`'s deadline to `at` (replacing any other).
    pub(crate) fn arm(&mut self, key: K, at: Instant) {
        if let Some(old) = self.armed.insert(key, at) {
            if old == at {
                return;
            }
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    /// Makes `key` fire no later than `at`: arms it if unarmed or armed later.
    pub(crate) fn arm_no_later(&mut self, key: K, at: Instant) {
        match self.armed.get(&key) {
            Some(&armed) if armed <= at => {}
            _ => self.arm(key, at),
        }
    }

    /// Disarms `key`.
    pub(crate) fn cancel(&mut self, key: K) {
        if let Some(at) = self.armed.remove(&key) {
            self.by_time.remove(&(at, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|&(at, _)| at)
    }

    /// Disarms and returns a key whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.pop_first();
        self.armed.remove(&key);
        Some(key)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_timers_come_out_in_time_order_and_rearming_replaces() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = TimerQueue::default();
        q.arm(1u32, t0 + ms(5));
        q.arm(2, t0 + ms(1));
        q.arm(3, t0 + ms(3));
        q.arm(1, t0 + ms(2)); // replaces 5 ms
        q.arm_no_later(3, t0 + ms(4)); // later: unchanged
        q.arm_no_later(2, t0 + ms(0)); // earlier: moved
        q.cancel(3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.next(), Some(t0));
        assert_eq!(q.pop_due(t0 + ms(10)), Some(2));
        assert_eq!(q.pop_due(t0 + ms(1)), None);
        assert_eq!(q.pop_due(t0 + ms(2)), Some(1));
        assert_eq!(q.pop_due(t0 + ms(100)), None);
        assert_eq!(q.next(), None);
    }
}
