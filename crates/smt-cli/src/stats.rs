//! Endpoint counters as JSON, for scripts.

use serde_json::{Map, Value};

/// Every engine counter by name (`smt::Stats::counters`), and `sessions`: the
/// sessions accepted over the endpoint's lifetime (the same as `sessions_accepted`).
pub fn to_json(stats: &smt::Stats) -> Value {
    let mut map = counters(stats);
    map.insert("sessions".to_owned(), stats.sessions_accepted.into());
    Value::Object(map)
}

/// Every engine counter by name, and nothing else (for a client's report).
pub fn counters_json(stats: &smt::Stats) -> Value {
    Value::Object(counters(stats))
}

fn counters(stats: &smt::Stats) -> Map<String, Value> {
    stats.counters().into_iter().map(|(name, _, value)| (name.to_owned(), value.into())).collect()
}
