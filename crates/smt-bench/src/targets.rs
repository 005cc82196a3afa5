//! Ratios against the baselines and the performance targets of the fast-path
//! issues (#10: small RPCs, #11: bulk), computed from records only (so anyone can
//! recompute them from `results.json`).

use crate::record::{exp, find, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    AtMost,
    AtLeast,
}

/// One target: `ratio` (numerator / denominator) must be at most / at least
/// `threshold`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub link: String,
    pub what: String,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub unit: &'static str,
    pub cmp: Cmp,
    pub threshold: f64,
    /// A contrast row: shown, not a target.
    pub informational: bool,
}

impl Target {
    pub fn ratio(&self) -> Option<f64> {
        match (self.numerator, self.denominator) {
            (Some(n), Some(d)) if d > 0.0 && n.is_finite() && d.is_finite() => Some(n / d),
            _ => None,
        }
    }

    /// `Some(true)` if met, `None` if either side was not measured.
    pub fn met(&self) -> Option<bool> {
        let r = self.ratio()?;
        Some(match self.cmp {
            Cmp::AtMost => r <= self.threshold,
            Cmp::AtLeast => r >= self.threshold,
        })
    }

    /// "met", "missed by 23 %", or "not measured"; the percentage is how far the
    /// ratio is from the threshold, relative to the threshold.
    pub fn verdict(&self) -> String {
        let Some(r) = self.ratio() else { return "not measured".into() };
        let off = (r / self.threshold - 1.0).abs() * 100.0;
        if self.informational {
            return "(contrast, not a target)".into();
        }
        let off = if off < 1.0 { format!("{off:.1}") } else { format!("{off:.0}") };
        match self.met() {
            Some(true) => format!("**met** ({off} % margin)"),
            _ => format!("**missed** by {off} %"),
        }
    }

    pub fn bound(&self) -> String {
        match self.cmp {
            Cmp::AtMost => format!("<= {}x", self.threshold),
            Cmp::AtLeast => format!(">= {}x", self.threshold),
        }
    }
}

fn value(
    records: &[Record],
    e: &str,
    t: &str,
    link: &str,
    size: u64,
    inf: u32,
    f: fn(&Record) -> Option<f64>,
) -> Option<f64> {
    find(records, e, t, link, Some(size), Some(inf)).and_then(f)
}

/// A size as "4 KiB" / "1 MiB".
fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// The best of a transport's 1 MiB throughputs over the in-flight counts measured.
pub fn peak_gbps(records: &[Record], t: &str, link: &str) -> Option<f64> {
    records
        .iter()
        .filter(|r| r.is(exp::THROUGHPUT, t, link, Some(1 << 20), None))
        .filter_map(|r| r.gbps)
        .reduce(f64::max)
}

/// The highest in-flight count of the 64 B rate experiment present on `link`.
fn top_rate_in_flight(records: &[Record], link: &str) -> Option<u32> {
    records
        .iter()
        .filter(|r| r.experiment == exp::RATE && r.link == link)
        .filter_map(|r| r.in_flight)
        .max()
}

/// Every target on `link`, for SMT over UDP and (where measured) SMT over IP.
pub fn evaluate(records: &[Record], link: &str) -> Vec<Target> {
    let p50 = |r: &Record| r.p50_us;
    let p99 = |r: &Record| r.p99_us;
    let rps = |r: &Record| r.rpc_per_s;
    let rtt64 = |t: &str| value(records, exp::RTT, t, link, 64, 1, p50);
    let mut out = Vec::new();
    let mut push = |what: String,
                    numerator: Option<f64>,
                    denominator: Option<f64>,
                    unit: &'static str,
                    cmp: Cmp,
                    threshold: f64,
                    informational: bool| {
        out.push(Target {
            link: link.to_owned(),
            what,
            numerator,
            denominator,
            unit,
            cmp,
            threshold,
            informational,
        })
    };
    let rtt = |t: &str, size: u64| value(records, exp::RTT, t, link, size, 1, p50);
    let has = |t: &str| records.iter().any(|r| r.transport == t && r.link == link);
    // #10: small-RPC latency and rate.
    push(
        "[#10] smt 64 B p50 RTT / raw-udp floor (blocking)".into(),
        rtt64("smt"),
        rtt64("raw-udp"),
        "us",
        Cmp::AtMost,
        1.10,
        false,
    );
    push(
        "[#10] smt 64 B p50 RTT / tls-tcp".into(),
        rtt64("smt"),
        rtt64("tls-tcp"),
        "us",
        Cmp::AtMost,
        0.95,
        false,
    );
    for size in [1024u64, 4096] {
        if records.iter().any(|r| r.is(exp::RTT, "smt", link, Some(size), Some(1))) {
            push(
                format!("[#10] smt {} KiB p50 RTT / raw-udp floor (blocking)", size / 1024),
                rtt("smt", size),
                rtt("raw-udp", size),
                "us",
                Cmp::AtMost,
                1.15,
                false,
            );
        }
    }
    if has("smt-busy") {
        push(
            "[#10] smt-busy 64 B p50 RTT / raw-udp-busy floor".into(),
            rtt64("smt-busy"),
            rtt64("raw-udp-busy"),
            "us",
            Cmp::AtMost,
            1.5,
            false,
        );
        if has("tcp-busy") {
            push(
                "smt-busy 64 B p50 RTT / tcp-busy".into(),
                rtt64("smt-busy"),
                rtt64("tcp-busy"),
                "us",
                Cmp::AtMost,
                1.0,
                true,
            );
        }
    }
    if let Some(top) = top_rate_in_flight(records, link) {
        for (base, threshold) in [("quic", 1.5), ("tls-tcp", 1.2)] {
            push(
                format!("[#10] smt 64 B RPC rate at {top} in flight / {base}"),
                value(records, exp::RATE, "smt", link, 64, top, rps),
                value(records, exp::RATE, base, link, 64, top, rps),
                "RPC/s",
                Cmp::AtLeast,
                threshold,
                false,
            );
        }
    }
    // #11: bulk throughput, head of line, native IP.
    for (base, threshold, informational) in
        [("tls-tcp", 1.4, false), ("raw-udp-gso-aead", 0.75, false), ("raw-udp-gso", 1.0, true)]
    {
        push(
            format!("[#11] smt 1 MiB peak single-session throughput / {base}"),
            peak_gbps(records, "smt", link),
            peak_gbps(records, base, link),
            "Gbit/s",
            Cmp::AtLeast,
            threshold,
            informational,
        );
    }
    if link != "loopback" && has("smt-ip") {
        push(
            "[#11] smt-ip 1 MiB peak throughput / smt".into(),
            peak_gbps(records, "smt-ip", link),
            peak_gbps(records, "smt", link),
            "Gbit/s",
            Cmp::AtLeast,
            0.5,
            false,
        );
    }
    // W3/W4 p99 slowdown, bucket by bucket, no worse than tls-tcp's.
    for w in ["w3", "w4"] {
        let e = format!("{}{w}", exp::SLOWDOWN_PREFIX);
        let buckets: Vec<u64> = records
            .iter()
            .filter(|r| r.experiment == e && r.transport == "smt" && r.link == link)
            .filter_map(|r| r.message_size)
            .collect();
        for bucket in buckets {
            let slowdown = |t: &str| {
                find(records, &e, t, link, Some(bucket), None).and_then(|r| r.p99_slowdown)
            };
            push(
                format!(
                    "[#11] smt {} p99 slowdown, sizes up to {} / tls-tcp",
                    w.to_uppercase(),
                    human(bucket)
                ),
                slowdown("smt"),
                slowdown("tls-tcp"),
                "x",
                Cmp::AtMost,
                1.0,
                false,
            );
        }
    }
    let hol_bound = if link == "loopback" { 2.0 } else { 3.0 };
    for t in ["smt", "smt-ip", "tls-tcp", "tls-tcp-pool", "tcp", "quic"] {
        let loaded = value(records, exp::HOL_LOADED, t, link, 64, 1, p99);
        let idle = value(records, exp::HOL_IDLE, t, link, 64, 1, p99);
        if loaded.is_none() && idle.is_none() {
            continue;
        }
        push(
            format!("[#11] {t} 64 B p99 with 1 MiB streaming / idle p99"),
            loaded,
            idle,
            "us",
            Cmp::AtMost,
            hol_bound,
            t != "smt",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(e: &str, t: &str, size: u64, inf: u32, p50: f64, p99: f64) -> Record {
        Record {
            message_size: Some(size),
            in_flight: Some(inf),
            p50_us: Some(p50),
            p99_us: Some(p99),
            ..Record::new(e, t, "loopback")
        }
    }

    fn tput(t: &str, inf: u32, gbps: f64) -> Record {
        Record { gbps: Some(gbps), ..rec(exp::THROUGHPUT, t, 1 << 20, inf, 0.0, 0.0) }
    }

    fn rate(t: &str, inf: u32, rps: f64) -> Record {
        Record { rpc_per_s: Some(rps), ..rec(exp::RATE, t, 64, inf, 0.0, 0.0) }
    }

    #[test]
    fn ratios_and_verdicts() {
        let records = vec![
            rec(exp::RTT, "smt", 64, 1, 40.0, 80.0),
            rec(exp::RTT, "tls-tcp", 64, 1, 60.0, 90.0),
            rec(exp::RTT, "raw-udp", 64, 1, 30.0, 50.0),
            tput("smt", 1, 3.0),
            tput("smt", 16, 9.0),
            tput("tls-tcp", 4, 8.0),
            tput("quic", 16, 5.0),
            rate("smt", 8, 1e6),
            rate("smt", 64, 3e5),
            rate("quic", 64, 1e5),
            rec(exp::HOL_IDLE, "smt", 64, 1, 40.0, 100.0),
            rec(exp::HOL_LOADED, "smt", 64, 1, 50.0, 250.0),
            rec(exp::HOL_IDLE, "tls-tcp", 64, 1, 40.0, 100.0),
            rec(exp::HOL_LOADED, "tls-tcp", 64, 1, 5000.0, 9000.0),
        ];
        let t = evaluate(&records, "loopback");
        let get = |prefix: &str| t.iter().find(|x| x.what.starts_with(prefix)).unwrap();

        let vs_tls = get("[#10] smt 64 B p50 RTT / tls-tcp");
        assert!((vs_tls.ratio().unwrap() - 40.0 / 60.0).abs() < 1e-12);
        assert_eq!(vs_tls.met(), Some(true));
        assert!(vs_tls.verdict().starts_with("**met**"), "{}", vs_tls.verdict());

        let vs_floor = get("[#10] smt 64 B p50 RTT / raw-udp");
        assert!((vs_floor.ratio().unwrap() - 40.0 / 30.0).abs() < 1e-12);
        assert_eq!(vs_floor.met(), Some(false));
        // 1.333 / 1.1 - 1 = 21 %.
        assert_eq!(vs_floor.verdict(), "**missed** by 21 %");

        // Peak over in-flight counts: 9 / 8 < 1.4 (missed).
        let tls = get("[#11] smt 1 MiB peak single-session throughput / tls-tcp");
        assert!((tls.ratio().unwrap() - 9.0 / 8.0).abs() < 1e-12);
        assert_eq!(tls.met(), Some(false));
        // No floor measured: reported as such.
        let floor = get("[#11] smt 1 MiB peak single-session throughput / raw-udp-gso-aead");
        assert_eq!(floor.verdict(), "not measured");

        let r = get("[#10] smt 64 B RPC rate at 64 in flight / quic");
        assert!((r.ratio().unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(r.met(), Some(true));

        let hol = get("[#11] smt 64 B p99 with 1 MiB");
        assert_eq!(hol.met(), Some(false)); // 2.5x
        let contrast = get("[#11] tls-tcp 64 B p99 with 1 MiB");
        assert!(contrast.informational);
        assert_eq!(contrast.verdict(), "(contrast, not a target)");

        // No busy records: no busy target.
        assert!(t.iter().all(|x| !x.what.contains("busy")));
    }

    #[test]
    fn missing_measurements_are_reported_as_such() {
        let records = vec![rec(exp::RTT, "smt", 64, 1, 40.0, 80.0)];
        let t = evaluate(&records, "loopback");
        let vs_tls = t.iter().find(|x| x.what.contains("/ tls-tcp")).unwrap();
        assert_eq!(vs_tls.ratio(), None);
        assert_eq!(vs_tls.met(), None);
        assert_eq!(vs_tls.verdict(), "not measured");
        assert!(evaluate(&records, "veth1500").iter().all(|x| x.ratio().is_none()));
    }
}
