//! Endpoint counters as JSON, for scripts.

use serde_json::{Map, Value};

/// Every engine counter by name (`smt::Stats::counters`), summed over `endpoints`
/// (a server listening on several addresses), and `sessions`: the sessions
/// accepted over their lifetime (the same as `sessions_accepted`).
pub fn to_json(endpoints: &[smt::Endpoint]) -> Value {
    let counters = sum_counters(endpoints.iter().map(|e| e.stats()));
    let sessions = counters.iter().find(|(name, ..)| *name == "sessions_accepted");
    let sessions = sessions.map_or(0, |(_, _, n)| *n);
    let mut map = to_map(&counters);
    map.insert("sessions".to_owned(), sessions.into());
    Value::Object(map)
}

/// Every engine counter by name, and nothing else (for a client's report).
pub fn counters_json(stats: &smt::Stats) -> Value {
    Value::Object(to_map(&stats.counters()))
}

/// `(name, description, value)` of every counter, summed over `stats` (all list
/// the same counters in the same order).
pub fn sum_counters(
    stats: impl IntoIterator<Item = smt::Stats>,
) -> Vec<(&'static str, &'static str, u64)> {
    let mut sum = smt::Stats::default().counters();
    for s in stats {
        for (total, (_, _, value)) in sum.iter_mut().zip(s.counters()) {
            total.2 += value;
        }
    }
    sum
}

fn to_map(counters: &[(&'static str, &'static str, u64)]) -> Map<String, Value> {
    counters.iter().map(|&(name, _, value)| (name.to_owned(), value.into())).collect()
}
