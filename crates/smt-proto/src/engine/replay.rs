//! The replay window over message IDs: a request ID is accepted at most once per
//! session, for the session's whole life.
//!
//! IDs are marked only after the message authenticated (all records opened), so a
//! forged packet can neither advance the window nor burn an ID. IDs more than
//! [`REPLAY_WINDOW`] below the highest marked ID are refused outright; a client keeps
//! fewer than that many requests outstanding, so a genuine request is never refused.

/// Number of message IDs below the highest one whose status is remembered.
pub const REPLAY_WINDOW: u64 = 1 << 16;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Why an ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Never seen: may be accepted.
    Fresh,
    /// Already accepted once.
    Duplicate,
    /// Too far below the highest accepted ID to tell: refused.
    TooOld,
}

/// A sliding bitmap of accepted IDs (8 KiB per session).
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted ID; 0 when none (ID 0 is never used).
    highest: u64,
    bits: Box<[u64; WORDS]>,
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("highest", &self.highest).finish_non_exhaustive()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { highest: 0, bits: Box::new([0; WORDS]) }
    }
}

impl ReplayWindow {
    /// Bytes of memory the window uses.
    pub const MEMORY: usize = WORDS * 8;

    /// Classifies `id` without changing the window.
    pub fn check(&self, id: u64) -> ReplayVerdict {
        if id == 0 {
            return ReplayVerdict::TooOld;
        }
        if id > self.highest {
            return ReplayVerdict::Fresh;
        }
        if self.highest - id >= REPLAY_WINDOW {
            return ReplayVerdict::TooOld;
        }
        if self.bit(id) {
            ReplayVerdict::Duplicate
        } else {
            ReplayVerdict::Fresh
        }
    }

    /// Records `id` as accepted. Returns the verdict it had before.
    pub fn mark(&mut self, id: u64) -> ReplayVerdict {
        let verdict = self.check(id);
        if verdict != ReplayVerdict::Fresh {
            return verdict;
        }
        if id > self.highest {
            let advance = id - self.highest;
            if advance >= REPLAY_WINDOW {
                self.bits.fill(0);
            } else {
                for old in self.highest + 1..id {
                    self.clear(old);
                }
            }
            self.highest = id;
        }
        self.set(id);
        ReplayVerdict::Fresh
    }

    /// Highest accepted ID (0 if none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    fn slot(id: u64) -> (usize, u64) {
        let index = (id % REPLAY_WINDOW) as usize;
        (index / 64, 1 << (index % 64))
    }
    fn bit(&self, id: u64) -> bool {
        let (w, m) = Self::slot(id);
        self.bits[w] & m != 0
    }
    fn set(&mut self, id: u64) {
        let (w, m) = Self::slot(id);
        self.bits[w] |= m;
    }
    fn clear(&mut self, id: u64) {
        let (w, m) = Self::slot(id);
        self.bits[w] &= !m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn accepts_each_id_once_in_any_order() {
        let mut w = ReplayWindow::default();
        for id in [5, 3, 9, 1, 2] {
            assert_eq!(w.mark(id), ReplayVerdict::Fresh);
        }
        for id in [5, 3, 9, 1, 2] {
            assert_eq!(w.mark(id), ReplayVerdict::Duplicate);
        }
        assert_eq!(w.check(4), ReplayVerdict::Fresh);
    }

    #[test]
    fn ids_below_the_window_are_refused() {
        let mut w = ReplayWindow::default();
        w.mark(REPLAY_WINDOW + 10);
        assert_eq!(w.check(10), ReplayVerdict::TooOld);
        assert_eq!(w.check(11), ReplayVerdict::Fresh);
        assert_eq!(w.check(0), ReplayVerdict::TooOld);
    }

    #[test]
    fn holds_65536_outstanding_ids() {
        let mut w = ReplayWindow::default();
        // Accept every even ID up to 2^17; the odd ones in the window stay acceptable.
        for id in (2..=2 * REPLAY_WINDOW).step_by(2) {
            assert_eq!(w.mark(id), ReplayVerdict::Fresh);
        }
        let lowest_in_window = 2 * REPLAY_WINDOW - REPLAY_WINDOW + 1;
        assert_eq!(w.check(lowest_in_window), ReplayVerdict::Fresh);
        assert_eq!(w.check(lowest_in_window + 1), ReplayVerdict::Duplicate);
        assert_eq!(w.check(lowest_in_window - 1), ReplayVerdict::TooOld);
    }

    #[test]
    fn large_jumps_forget_old_bits_without_false_duplicates() {
        let mut w = ReplayWindow::default();
        w.mark(7);
        w.mark(7 + 3 * REPLAY_WINDOW);
        // 7 + 2 * REPLAY_WINDOW + 1 maps to a slot near 7's; it must be fresh.
        assert_eq!(w.check(7 + 2 * REPLAY_WINDOW + 1), ReplayVerdict::Fresh);
        assert_eq!(w.check(7 + 3 * REPLAY_WINDOW), ReplayVerdict::Duplicate);
    }

    proptest! {
        /// Against a model that remembers everything: the window never accepts an ID
        /// twice, and never refuses a fresh ID within the window.
        #[test]
        fn matches_a_perfect_memory_model(ops in prop::collection::vec(1u64..300_000, 1..2000)) {
            let mut w = ReplayWindow::default();
            let mut seen = BTreeSet::new();
            for id in ops {
                let highest = w.highest();
                let verdict = w.mark(id);
                match verdict {
                    ReplayVerdict::Fresh => prop_assert!(seen.insert(id)),
                    ReplayVerdict::Duplicate => prop_assert!(seen.contains(&id)),
                    ReplayVerdict::TooOld => prop_assert!(highest - id >= REPLAY_WINDOW),
                }
            }
        }
    }
}
