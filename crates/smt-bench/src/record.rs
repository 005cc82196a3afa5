//! The records of `results.json`, and how per-run values become one record.

use serde::{Deserialize, Serialize};

use crate::stats;

/// Experiment names used in `results.json`.
pub mod exp {
    pub const MACHINE: &str = "machine";
    pub const RTT: &str = "rtt";
    pub const THROUGHPUT: &str = "throughput";
    pub const RATE: &str = "rate";
    pub const HOL_IDLE: &str = "hol_idle";
    pub const HOL_LOADED: &str = "hol_loaded";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const LINK_PARAMS: &str = "link_params";
    /// Followed by the lower-case workload name: "slowdown_w3".
    pub const SLOWDOWN_PREFIX: &str = "slowdown_";
}

/// Describes the machine and the code that produced a results file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct MachineInfo {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub date_utc: String,
    pub commit: String,
    pub worktree_dirty: bool,
    pub rustc: String,
    pub command: String,
    pub mode: String,
    pub duration_s: f64,
    pub note: String,
    /// Files with uncommitted changes when the run started (`git status --porcelain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirty_paths: Vec<String>,
    /// Which links were measured, and why not if one was not.
    #[serde(default)]
    pub links: String,
}

/// One line of `results.json`. The first nine fields are always present (null where
/// not measured); the others are extra detail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Record {
    pub experiment: String,
    pub transport: String,
    pub link: String,
    pub message_size: Option<u64>,
    pub in_flight: Option<u32>,
    /// Median over runs of each run's p50.
    pub p50_us: Option<f64>,
    /// Median over runs of each run's p99.
    pub p99_us: Option<f64>,
    /// Median over runs; request payload bits per second (the echo carries as many
    /// back).
    pub gbps: Option<f64>,
    /// Median over runs; completed RPCs per second.
    pub rpc_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p50_us_runs: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p99_us_runs: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gbps_runs: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rpc_per_s_runs: Vec<f64>,
    /// Latency samples over all runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u64>,
    /// Slowdown experiments: the bucket's lower bound (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_lower: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_slowdown: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_slowdown: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p50_slowdown_runs: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p99_slowdown_runs: Vec<f64>,
    /// Link parameters (experiment "link_params"): base RTT, link rate, load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_rtt_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Record {
    pub fn new(experiment: &str, transport: &str, link: &str) -> Record {
        Record {
            experiment: experiment.to_owned(),
            transport: transport.to_owned(),
            link: link.to_owned(),
            ..Record::default()
        }
    }

    /// Sets the headline values to the medians of the per-run values.
    pub fn summarize(mut self) -> Record {
        self.p50_us = stats::median(&self.p50_us_runs);
        self.p99_us = stats::median(&self.p99_us_runs);
        self.gbps = stats::median(&self.gbps_runs);
        self.rpc_per_s = stats::median(&self.rpc_per_s_runs);
        self.p50_slowdown = stats::median(&self.p50_slowdown_runs);
        self.p99_slowdown = stats::median(&self.p99_slowdown_runs);
        self
    }

    /// Whether this record is the measurement `experiment` of `transport` on `link`
    /// with the given size and in-flight count (`None` matches anything).
    pub fn is(
        &self,
        experiment: &str,
        transport: &str,
        link: &str,
        size: Option<u64>,
        in_flight: Option<u32>,
    ) -> bool {
        self.experiment == experiment
            && self.transport == transport
            && self.link == link
            && (size.is_none() || self.message_size == size)
            && (in_flight.is_none() || self.in_flight == in_flight)
    }
}

/// The first record matching (see [`Record::is`]).
pub fn find<'a>(
    records: &'a [Record],
    experiment: &str,
    transport: &str,
    link: &str,
    size: Option<u64>,
    in_flight: Option<u32>,
) -> Option<&'a Record> {
    records.iter().find(|r| r.is(experiment, transport, link, size, in_flight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_serialize_as_null() {
        let r = Record::new(exp::RTT, "smt", "loopback");
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for field in [
            "experiment",
            "transport",
            "link",
            "message_size",
            "in_flight",
            "p50_us",
            "p99_us",
            "gbps",
            "rpc_per_s",
        ] {
            assert!(v.get(field).is_some(), "{field} missing");
        }
        assert!(v["gbps"].is_null());
        assert!(v.get("p50_us_runs").is_none());
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn summary_is_the_median_of_runs() {
        let r = Record {
            p50_us_runs: vec![3.0, 1.0, 2.0],
            p99_us_runs: vec![9.0, 7.0, 8.0],
            gbps_runs: vec![1.0, 5.0],
            ..Record::new(exp::RTT, "tcp", "loopback")
        }
        .summarize();
        assert_eq!(r.p50_us, Some(2.0));
        assert_eq!(r.p99_us, Some(8.0));
        assert_eq!(r.gbps, Some(3.0));
        assert_eq!(r.rpc_per_s, None);
    }
}
