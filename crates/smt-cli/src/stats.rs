//! Endpoint counters as JSON, for scripts.

use serde_json::{json, Value};

/// The endpoint's counters; `sessions` counts sessions accepted over its lifetime.
pub fn to_json(stats: &smt::Stats) -> Value {
    json!({
        "requests_delivered": stats.requests_delivered,
        "responses_delivered": stats.responses_delivered,
        "replays_rejected": stats.replays_rejected,
        "auth_failures": stats.auth_failures,
        "sessions": stats.sessions_accepted,
        "handshakes_failed": stats.handshakes_failed,
        "handshakes_refused": stats.handshakes_refused,
        "malformed": stats.malformed,
        "misdirected": stats.misdirected,
        "unknown_session": stats.unknown_session,
        "unknown_rpc": stats.unknown_rpc,
        "duplicate_packets": stats.duplicate_packets,
        "admission_refused": stats.admission_refused,
        "resends_sent": stats.resends_sent,
        "grants_sent": stats.grants_sent,
        "rpc_timeouts": stats.rpc_timeouts,
        "datagrams_received": stats.datagrams_received,
        "datagrams_sent": stats.datagrams_sent,
    })
}
