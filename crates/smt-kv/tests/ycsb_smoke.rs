//! `smt-kv ycsb` end to end with small counts: every transport and server runs,
//! every read checks out, and the records carry the fields the report is built on.

mod support;

use std::process::Command;
use std::time::Duration;

#[test]
fn a_small_ycsb_run_covers_every_transport_and_server_and_writes_its_records() {
    support::tool("redis-server");
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_smt-kv"));
    command.args([
        "ycsb",
        "--workloads",
        "a,d,f",
        "--sizes",
        "64",
        "--threads",
        "2",
        "--reps",
        "1",
    ]);
    command.args(["--records", "200", "--operations", "1000", "--out"]).arg(out.path());
    let (ok, stdout, stderr) = support::run(&mut command, Duration::from_secs(120));
    assert!(ok, "{stdout}\n{stderr}");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("ycsb.json")).unwrap())
            .unwrap();
    let runs: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["experiment"] != "ycsb_machine").collect();
    // 3 workloads x (smt, tls-tcp, tcp on smt-kv; tls-tcp, tcp on redis).
    assert_eq!(runs.len(), 15, "{stdout}");
    for r in &runs {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["operations"], 1000, "{r}");
        assert!(r["ops_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p99_us"].as_u64().unwrap() >= r["p50_us"].as_u64().unwrap(), "{r}");
        assert_eq!(r["value_size"], 64);
    }
    let servers: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|r| format!("{}/{}", r["server"].as_str().unwrap(), r["transport"].as_str().unwrap()))
        .collect();
    assert_eq!(servers.len(), 5, "{servers:?}");
    // Workload F's read-modify-writes and D's inserts were measured.
    assert!(runs.iter().any(|r| r["experiment"] == "ycsb_f"
        && r["by_op"]["read_modify_write"]["count"].as_u64() > Some(0)));
    assert!(runs
        .iter()
        .any(|r| r["experiment"] == "ycsb_d" && r["by_op"]["insert"]["count"].as_u64() > Some(0)));
    assert!(stdout.contains("SMT / TLS-TCP (smt-kv)"), "{stdout}");
}
