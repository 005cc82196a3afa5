//! A set of byte ranges `[start, end)`: which parts of a message have been seen.

/// Disjoint, non-adjacent ranges in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// Adds `[start, end)`; returns whether any of it was already present.
    pub fn insert(&mut self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        let overlapped = self.overlaps(start, end);
        // Ranges that touch or overlap the new one merge with it.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        let (mut new_start, mut new_end) = (start, end);
        if first < last {
            new_start = new_start.min(self.ranges[first].0);
            new_end = new_end.max(self.ranges[last - 1].1);
        }
        self.ranges.splice(first..last, [(new_start, new_end)]);
        overlapped
    }

    /// Whether any byte of `[start, end)` is present.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(i).is_some_and(|&(s, _)| s < end)
    }

    /// Whether every byte of `[start, end)` is present.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let i = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    /// The parts of `[start, end)` that are not present, in order.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = start;
        let first = self.ranges.partition_point(|&(_, e)| e <= start);
        for &(s, e) in self.ranges.get(first..).unwrap_or_default() {
            if s >= end {
                break;
            }
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }

    /// How many bytes are present.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserting_reports_overlap_and_merges_neighbours() {
        let mut set = RangeSet::default();
        assert!(!set.insert(10, 20));
        assert!(!set.insert(30, 40));
        assert!(!set.insert(20, 30), "touching is not overlapping");
        assert_eq!(set.ranges, vec![(10, 40)]);
        assert!(set.insert(35, 50));
        assert_eq!(set.ranges, vec![(10, 50)]);
        assert!(!set.insert(0, 5));
        assert!(set.insert(0, 100));
        assert_eq!(set.ranges, vec![(0, 100)]);
        assert!(!set.insert(7, 7), "empty ranges add nothing");
        assert_eq!(set.len(), 100);
    }

    #[test]
    fn coverage_and_gaps_are_exact_at_the_edges() {
        let mut set = RangeSet::default();
        set.insert(10, 20);
        set.insert(30, 40);
        assert!(set.covers(10, 20) && set.covers(12, 18) && set.covers(5, 5));
        assert!(!set.covers(10, 21) && !set.covers(9, 20) && !set.covers(15, 35));
        assert!(set.overlaps(19, 30) && !set.overlaps(20, 30) && !set.overlaps(0, 10));
        assert_eq!(set.gaps(0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(set.gaps(12, 35), vec![(20, 30)]);
        assert_eq!(set.gaps(10, 20), vec![]);
        assert_eq!(set.gaps(45, 50), vec![(45, 50)]);
    }
}
