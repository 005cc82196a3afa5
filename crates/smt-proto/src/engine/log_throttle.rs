//! Rate limits for log lines that a peer can trigger at will.

use std::time::Instant;

/// Lets an event that a peer can repeat at will be logged at most `LINES` times per
/// second; the first line after a suppressed stretch carries how many were skipped.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    window: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogThrottle {
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
    const LINES: u32 = 10;

    /// `Some(occurrences not logged before this one)` if this occurrence gets a line.
    pub(crate) fn due(&mut self, now: Instant) -> Option<u64> {
        let fresh = self.window.is_none_or(|w| now.saturating_duration_since(w) >= Self::INTERVAL);
        if fresh {
            self.window = Some(now);
            self.lines = 0;
        }
        if self.lines >= Self::LINES {
            self.suppressed += 1;
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_event_logs_ten_lines_a_second_then_says_how_many_it_skipped() {
        let start = Instant::now();
        let ms = |n| start + std::time::Duration::from_millis(n);
        let mut throttle = LogThrottle::default();
        for i in 0..10 {
            assert_eq!(throttle.due(ms(i)), Some(0), "line {i}");
        }
        for i in 10..15 {
            assert_eq!(throttle.due(ms(i)), None);
        }
        assert_eq!(throttle.due(ms(1000)), Some(5));
        assert_eq!(throttle.due(ms(1001)), Some(0));
    }
}
