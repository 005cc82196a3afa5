//! What a run measures: sizes, in-flight counts, durations, repetitions, and which
//! transports take part in which experiment.

use std::time::Duration;

use smt_sim::workload::Workload;

use crate::transport::Kind;

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: &'static str,
    pub reps: usize,
    /// Calls before each measurement window that are not recorded.
    pub warmup: Duration,
    pub rtt_sizes: Vec<u64>,
    pub rtt_window: Duration,
    pub tput_size: u64,
    pub tput_in_flight: Vec<u32>,
    pub tput_window: Duration,
    pub rate_size: u64,
    pub rate_in_flight: Vec<u32>,
    pub rate_window: Duration,
    /// 1 MiB calls kept in flight in the background of the head-of-line test.
    pub hol_background: u32,
    pub hol_window: Duration,
    pub workloads: Vec<Workload>,
    pub workload_window: Duration,
    /// Samples scheduled before this are discarded.
    pub workload_warmup: Duration,
    /// Offered load as a fraction of the link's capacity (see the report).
    pub load: f64,
    /// Most open-loop requests outstanding at once.
    pub outstanding_cap: usize,
    /// Pool size of tls-tcp-pool in the workload runs.
    pub workload_pool: usize,
    pub transports: Vec<Kind>,
}

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

impl Plan {
    pub fn all() -> Plan {
        Plan {
            name: "all",
            reps: 3,
            warmup: Duration::from_millis(50),
            rtt_sizes: vec![64, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB],
            rtt_window: Duration::from_millis(250),
            tput_size: MIB,
            tput_in_flight: vec![1, 4, 16],
            tput_window: Duration::from_millis(500),
            rate_size: 64,
            rate_in_flight: vec![1, 8, 64],
            rate_window: Duration::from_millis(300),
            hol_background: 2,
            hol_window: Duration::from_millis(400),
            workloads: vec![Workload::W3, Workload::W4],
            workload_window: Duration::from_millis(1500),
            workload_warmup: Duration::from_millis(250),
            load: 0.5,
            outstanding_cap: 256,
            workload_pool: 16,
            transports: Kind::ALL.to_vec(),
        }
    }

    pub fn quick() -> Plan {
        Plan {
            name: "quick",
            reps: 2,
            warmup: Duration::from_millis(20),
            rtt_sizes: vec![64, KIB, 4 * KIB, 16 * KIB, MIB],
            rtt_window: Duration::from_millis(100),
            tput_in_flight: vec![4, 16],
            tput_window: Duration::from_millis(200),
            rate_in_flight: vec![64],
            rate_window: Duration::from_millis(150),
            hol_window: Duration::from_millis(200),
            workloads: vec![Workload::W3],
            workload_window: Duration::from_millis(600),
            workload_warmup: Duration::from_millis(100),
            ..Plan::all()
        }
    }

    /// The window of the RTT measurement at `size`: longer for big messages so that
    /// the p99 rests on enough samples.
    pub fn rtt_window_for(&self, size: u64) -> Duration {
        if size >= 256 * KIB {
            self.rtt_window * 8 / 5
        } else {
            self.rtt_window
        }
    }
}

/// Which experiments a transport takes part in (all take part in the RTT one).
pub fn in_throughput(k: Kind) -> bool {
    !k.is_floor() && !k.busy_poll()
}

pub fn in_rate(k: Kind) -> bool {
    !k.is_floor()
}

pub fn in_hol(k: Kind) -> bool {
    !k.is_floor() && !k.busy_poll()
}

pub fn in_workloads(k: Kind) -> bool {
    !k.is_floor() && !k.busy_poll()
}
