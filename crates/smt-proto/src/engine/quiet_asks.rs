//! How many RPCs of a quiet session ask for their responses at once.
//!
//! A client RPC whose request went out asks for its response (RESEND) when it has
//! heard nothing for one silence. When the whole session is quiet, the usual
//! cause is not loss but a server that is not running (descheduled on a busy
//! host, paused by the garbage collector of its application, ...): then every RPC
//! in flight would ask at the same moment, and with 10 000 in flight one stall of a
//! few milliseconds costs thousands of RESENDs that each only draw a BUSY.
//! [`QuietAsks`] lets a bounded number of RPCs ask per resend interval while the
//! session has heard nothing for that long; the others look again one interval
//! later. The first answer makes the session audible again, and from then on every
//! RPC that still misses its response asks for itself: a burst of lost responses is
//! recovered one round later than without the budget, never one RPC at a time.

use std::time::{Duration, Instant};

/// RPCs of one quiet session that may ask per resend interval. Above the in-flight
/// count of ordinary workloads (so their loss recovery is unchanged), far below the
/// thousands that make a storm.
pub(crate) const ASKS_PER_QUIET_INTERVAL: u32 = 16;

/// The per-session budget of asks while the session is quiet.
#[derive(Debug, Default)]
pub(crate) struct QuietAsks {
    /// When the current budget period began, and how many asks it has spent.
    period: Option<(Instant, u32)>,
}

impl QuietAsks {
    /// May one more RPC ask now? `quiet_for`: how long the session has heard
    /// nothing; `interval`: the session's resend interval, which is both how long
    /// counts as quiet and the budget's period. Counts the ask when it says yes.
    pub(crate) fn allow(&mut self, now: Instant, quiet_for: Duration, interval: Duration) -> bool {
        if quiet_for < interval {
            // The server is talking: a missing response is the RPC's own matter.
            return true;
        }
        let (began, spent) = match self.period {
            Some((began, spent)) if now.saturating_duration_since(began) < interval => {
                (began, spent)
            }
            _ => (now, 0),
        };
        let allowed = spent < ASKS_PER_QUIET_INTERVAL;
        self.period = Some((began, spent + u32::from(allowed)));
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(3);

    #[test]
    fn a_session_that_hears_its_server_lets_every_rpc_ask() {
        let (mut asks, now) = (QuietAsks::default(), Instant::now());
        let allowed =
            (0..1000).filter(|_| asks.allow(now, Duration::from_millis(1), INTERVAL)).count();
        assert_eq!(allowed, 1000);
    }

    #[test]
    fn a_quiet_session_lets_a_bounded_number_ask_per_interval() {
        let (mut asks, now) = (QuietAsks::default(), Instant::now());
        let quiet = Duration::from_millis(5);
        let first = (0..1000).filter(|_| asks.allow(now, quiet, INTERVAL)).count();
        assert_eq!(first, ASKS_PER_QUIET_INTERVAL as usize);
        let later_in_the_period = now + Duration::from_millis(2);
        assert!(!asks.allow(later_in_the_period, quiet, INTERVAL));
        let next_period = now + INTERVAL;
        let second = (0..1000).filter(|_| asks.allow(next_period, quiet, INTERVAL)).count();
        assert_eq!(second, ASKS_PER_QUIET_INTERVAL as usize);
    }

    #[test]
    fn asks_while_the_server_talks_do_not_spend_the_quiet_budget() {
        let (mut asks, now) = (QuietAsks::default(), Instant::now());
        for _ in 0..100 {
            assert!(asks.allow(now, Duration::ZERO, INTERVAL));
        }
        let quiet = (0..100).filter(|_| asks.allow(now, INTERVAL, INTERVAL)).count();
        assert_eq!(quiet, ASKS_PER_QUIET_INTERVAL as usize);
    }
}
