//! A set of disjoint byte ranges, for tracking which parts of a message arrived.

use core::ops::Range;

/// Sorted, disjoint, non-adjacent half-open ranges of `u32` offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RangeSet {
    ranges: Vec<Range<u32>>,
}

impl RangeSet {
    /// Adds `range`; returns how many of its bytes were new.
    pub(super) fn insert(&mut self, range: Range<u32>) -> u32 {
        if range.is_empty() {
            return 0;
        }
        // First range that ends at or after range.start (could merge).
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let mut last = first;
        let mut covered = 0;
        let mut start = range.start;
        let mut end = range.end;
        while last < self.ranges.len() && self.ranges[last].start <= range.end {
            let r = &self.ranges[last];
            covered += r.end.min(range.end).saturating_sub(r.start.max(range.start));
            start = start.min(r.start);
            end = end.max(r.end);
            last += 1;
        }
        self.ranges.splice(first..last, core::iter::once(start..end));
        (range.end - range.start) - covered
    }

    /// Removes `range` from the set.
    pub(super) fn remove(&mut self, range: Range<u32>) {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if r.end <= range.start || r.start >= range.end {
                out.push(r);
                continue;
            }
            if r.start < range.start {
                out.push(r.start..range.start);
            }
            if r.end > range.end {
                out.push(range.end..r.end);
            }
        }
        self.ranges = out;
    }

    /// Whether every byte of `range` is present.
    pub(super) fn contains(&self, range: Range<u32>) -> bool {
        if range.is_empty() {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.end < range.end);
        self.ranges.get(i).is_some_and(|r| r.start <= range.start && r.end >= range.end)
    }

    /// The missing ranges within `0..limit`, at most `max` of them.
    pub(super) fn gaps(&self, limit: u32, max: usize) -> Vec<Range<u32>> {
        let mut gaps = Vec::new();
        let mut cursor = 0;
        for r in &self.ranges {
            if gaps.len() == max || cursor >= limit {
                break;
            }
            if r.start > cursor {
                gaps.push(cursor..r.start.min(limit));
            }
            cursor = cursor.max(r.end);
        }
        if gaps.len() < max && cursor < limit {
            gaps.push(cursor..limit);
        }
        gaps
    }

    /// Removes and returns up to `max` bytes from the front of the first range.
    pub(super) fn pop_front(&mut self, max: u32) -> Option<Range<u32>> {
        let first = self.ranges.first_mut()?;
        let end = first.end.min(first.start.saturating_add(max.max(1)));
        let taken = first.start..end;
        if end == first.end {
            self.ranges.remove(0);
        } else {
            first.start = end;
        }
        Some(taken)
    }

    /// How many bytes of `range` are present.
    pub(super) fn covered_within(&self, range: Range<u32>) -> u32 {
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges[first..]
            .iter()
            .take_while(|r| r.start < range.end)
            .map(|r| r.end.min(range.end) - r.start.max(range.start))
            .sum()
    }

    /// Calls `f` for each part of `range` that is not present, in order, without
    /// allocating.
    pub(super) fn for_each_missing(&self, range: Range<u32>, mut f: impl FnMut(Range<u32>)) {
        let mut cursor = range.start;
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        for r in self.ranges[first..].iter().take_while(|r| r.start < range.end) {
            if r.start > cursor {
                f(cursor..r.start);
            }
            cursor = cursor.max(r.end);
        }
        if cursor < range.end {
            f(cursor..range.end);
        }
    }

    /// The parts of `range` that are not present.
    #[cfg(test)]
    pub(crate) fn missing_within(&self, range: Range<u32>) -> Vec<Range<u32>> {
        let mut missing = Vec::new();
        let mut cursor = range.start;
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        for r in self.ranges[first..].iter().take_while(|r| r.start < range.end) {
            if r.start > cursor {
                missing.push(cursor..r.start);
            }
            cursor = cursor.max(r.end);
        }
        if cursor < range.end {
            missing.push(cursor..range.end);
        }
        missing
    }

    /// The lowest range.
    pub(super) fn first(&self) -> Option<&Range<u32>> {
        self.ranges.first()
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the set is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_and_counts_new_bytes() {
        let mut s = RangeSet::default();
        assert_eq!(s.insert(10..20), 10);
        assert_eq!(s.insert(30..40), 10);
        assert_eq!(s.insert(15..35), 10);
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert(0..10), 10);
        assert_eq!(s.insert(0..40), 0);
        assert!(s.contains(0..40));
        assert_eq!(s.gaps(50, 10), vec![40..50]);
    }

    #[test]
    fn remove_splits_ranges() {
        let mut s = RangeSet::default();
        s.insert(0..100);
        s.remove(20..30);
        assert!(!s.contains(19..21));
        assert_eq!(s.gaps(100, 10), vec![20..30]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_bitmap(ops in prop::collection::vec((0u32..500, 0u32..60, any::<bool>()), 1..60)) {
            let mut s = RangeSet::default();
            let mut bits = vec![false; 600];
            for (start, len, add) in ops {
                let range = start..start + len;
                if add {
                    let new = range.clone().filter(|&i| !bits[i as usize]).count() as u32;
                    prop_assert_eq!(s.insert(range.clone()), new);
                    for i in range { bits[i as usize] = true; }
                } else {
                    s.remove(range.clone());
                    for i in range { bits[i as usize] = false; }
                }
            }
            let probe = 100..400;
            let covered = probe.clone().filter(|&i| bits[i as usize]).count() as u32;
            prop_assert_eq!(s.covered_within(probe.clone()), covered);
            let missing: u32 = s.missing_within(probe.clone()).iter().map(|r| r.end - r.start).sum();
            prop_assert_eq!(missing, 300 - covered);
            let gaps = s.gaps(600, usize::MAX);
            let mut from_gaps = vec![true; 600];
            for g in gaps { for i in g { from_gaps[i as usize] = false; } }
            prop_assert_eq!(from_gaps, bits);
        }
    }
}
