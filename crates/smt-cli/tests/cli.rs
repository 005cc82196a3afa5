//! End-to-end tests of the `smt` binary: every command, driven as a script would.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{
    keygen, read_all_in_background, run, smt, wait_bounded, ChildGuard, Output, TempDir, QUICK,
};

/// A running `smt serve`.
struct Server {
    child: ChildGuard,
    addr: String,
    /// "HOST:PORT" of the metrics listener, if `--metrics` was given.
    metrics: Option<String>,
    /// Every line the server wrote to stderr so far.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `smt serve --listen LISTEN --cert .. --key .. EXTRA` and waits for its
    /// "listening on ADDR" line.
    fn start(listen: &str, cert: &Path, key: &Path, extra: &[&str]) -> Server {
        let mut command = smt();
        command
            .args(["serve", "--listen", listen, "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("spawn smt serve"));
        let (tx, rx) = mpsc::channel();
        let (metrics_tx, metrics_rx) = mpsc::channel();
        let stderr = child.0.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[smt serve] {line}");
                kept.lock().unwrap().push(line.clone());
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                if let Some(url) = line.strip_prefix("metrics on http://") {
                    let _ = metrics_tx.send(url.trim_end_matches("/metrics").to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(QUICK).expect("smt serve did not print 'listening on ADDR'");
        let metrics = extra.contains(&"--metrics").then(|| {
            metrics_rx.recv_timeout(QUICK).expect("smt serve did not print 'metrics on URL'")
        });
        Server { child, addr, metrics, stderr: lines }
    }

    /// Waits (bounded) for a stderr line containing `needle` and returns it.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + QUICK;
        loop {
            if let Some(line) = self.stderr.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no stderr line containing {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with `signal` and returns the one JSON line it prints.
    fn stop(mut self, signal: &str) -> serde_json::Value {
        support::signal(&self.child.0, signal);
        let stdout = read_all_in_background(self.child.0.stdout.take().unwrap());
        let status = wait_bounded(&mut self.child.0, QUICK).expect("smt serve did not exit");
        assert!(status.success(), "smt serve exited with {status:?}");
        let stdout = stdout.join().unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected exactly one line on stdout, got:\n{stdout}");
        let json: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
        for key in [
            "requests_delivered",
            "replays_rejected",
            "auth_failures",
            "sessions",
            "handshakes_failed",
            "malformed",
            "datagrams_received",
            "datagrams_sent",
        ] {
            assert!(json[key].is_u64(), "missing or non-numeric {key:?} in {json}");
        }
        json
    }
}

/// `smt call --connect ADDR --server-name NAME --ca CA EXTRA`.
fn call(addr: &str, name: &str, ca: &Path, extra: &[&str]) -> Output {
    let mut command = smt();
    command.args(["call", "--connect", addr, "--server-name", name, "--ca"]).arg(ca).args(extra);
    run(command, QUICK)
}

/// A UDP port that was free a moment ago.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn keygen_writes_certificate_and_key() {
    let tmp = TempDir::new("keygen");
    let out = tmp.path().join("nested/dir");
    let mut command = smt();
    command.arg("keygen").arg("--out").arg(&out).args(["--name", "server.example"]);
    let output = run(command, QUICK);
    output.assert_success();
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    assert_eq!(output.stdout, format!("{}\n{}\n", cert.display(), key.display()));
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{cert_pem}");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    // An IP address is a valid name too; nonsense is not.
    keygen(&tmp.path().join("ip"), "127.0.0.1");
    let mut command = smt();
    command.arg("keygen").arg("--out").arg(tmp.path()).args(["--name", "not a name"]);
    let error = run(command, QUICK);
    assert!(error.assert_one_line_error().contains("invalid name"));
}

#[test]
fn serve_and_call_round_trip_and_count() {
    let tmp = TempDir::new("roundtrip");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&listen, &cert, &key, &["--transport", "udp"]);
    assert_eq!(server.addr, listen);

    let single = call(&server.addr, "localhost", &cert, &[]);
    single.assert_success();
    assert!(single.stdout.contains("1 calls of 64 B"), "{}", single.stdout);
    assert!(single.stdout.contains("latency us: p50 "), "{}", single.stdout);

    let args = ["--size", "100000", "--count", "20", "--concurrency", "4"];
    let bulk = call(&server.addr, "localhost", &cert, &args);
    bulk.assert_success();
    assert!(bulk.stdout.contains("20 calls of 100000 B, concurrency 4"), "{}", bulk.stdout);
    assert!(bulk.stdout.contains("Gbit/s"), "{}", bulk.stdout);

    let json = call(&server.addr, "localhost", &cert, &["--json", "--count", "7", "--size", "0"]);
    json.assert_success();
    let report: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(report["count"], 7);
    assert_eq!(report["verified"], 7);
    assert!(report["p99_us"].as_u64().unwrap() >= report["p50_us"].as_u64().unwrap());

    let stats = server.stop("-TERM");
    assert_eq!(stats["requests_delivered"], 1 + 20 + 7, "{stats}");
    assert_eq!(stats["sessions"], 3, "{stats}");
    assert_eq!(stats["replays_rejected"], 0, "{stats}");
    assert_eq!(stats["auth_failures"], 0, "{stats}");
}

#[test]
fn wrong_server_name_fails_the_handshake() {
    let tmp = TempDir::new("wrongname");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &[]);
    let output = call(&server.addr, "other.example", &cert, &[]);
    let error = output.assert_one_line_error();
    assert!(error.contains("handshake"), "{error}");
    let stats = server.stop("-TERM");
    assert_eq!(stats["requests_delivered"], 0);
}

#[test]
fn mutual_tls_accepts_trusted_client_certificates_only() {
    let tmp = TempDir::new("mtls");
    let (server_cert, server_key) = keygen(&tmp.path().join("server"), "localhost");
    let (client_cert, client_key) = keygen(&tmp.path().join("client"), "client.example");
    let (other_cert, other_key) = keygen(&tmp.path().join("other"), "client.example");
    let client_ca = client_cert.to_str().unwrap();
    let server =
        Server::start("127.0.0.1:0", &server_cert, &server_key, &["--client-ca", client_ca]);

    let with = |cert: &Path, key: &Path| {
        let args = ["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
        call(&server.addr, "localhost", &server_cert, &args)
    };
    with(&client_cert, &client_key).assert_success();

    let untrusted = with(&other_cert, &other_key);
    untrusted.assert_one_line_error();
    let anonymous = call(&server.addr, "localhost", &server_cert, &[]);
    let error = anonymous.assert_one_line_error();
    assert!(error.contains("certificate_required"), "{error}");

    let stats = server.stop("-INT");
    assert_eq!(stats["requests_delivered"], 1, "{stats}");
    assert_eq!(stats["sessions"], 1, "{stats}");
    assert_eq!(stats["handshakes_failed"], 2, "{stats}");
}

#[test]
fn bad_arguments_and_files_give_one_line_errors() {
    let mut command = smt();
    command.args(["call", "--connect", "127.0.0.1:1"]);
    let output = run(command, QUICK);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.assert_one_line_error().contains("--server-name"));

    let mut command = smt();
    command.args(["demo", "--transport", "carrier-pigeon"]);
    let output = run(command, QUICK);
    assert_eq!(output.status.code(), Some(2));
    output.assert_one_line_error();

    let missing = Path::new("/nonexistent/ca.pem");
    let output = call("127.0.0.1:1", "localhost", missing, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.assert_one_line_error().contains("/nonexistent/ca.pem"));
}

#[test]
fn demo_runs_and_prints_the_table() {
    let mut command = smt();
    command.arg("demo");
    // Quick in release (~2 s); a debug build on a busy machine is much slower.
    let output = run(command, Duration::from_secs(300));
    output.assert_success();
    let out = &output.stdout;
    assert!(out.starts_with("SMT demo: encrypted echo RPCs over loopback"), "{out}");
    for expected in ["p50 us", "p99 us", "Gbit/s", "0 B", "64 KiB", "1 MiB", "16 MiB", "OK: "] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn smt_without_arguments_lists_the_commands() {
    let output = run(smt(), QUICK);
    assert_eq!(output.status.code(), Some(2));
    let text = format!("{}{}", output.stdout, output.stderr);
    for command in ["keygen", "serve", "call", "demo"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

#[test]
fn impossible_sizes_and_counts_are_refused_before_anything_is_allocated() {
    let mut command = smt();
    command.args(["call", "--connect", "127.0.0.1:1", "--server-name", "x", "--ca", "/dev/null"]);
    command.args(["--size", "999999999999"]);
    let output = run(command, QUICK);
    assert_eq!(output.status.code(), Some(2));
    let error = output.assert_one_line_error();
    assert!(error.contains("largest message"), "{error}");

    let mut command = smt();
    command.args(["call", "--connect", "127.0.0.1:1", "--server-name", "x", "--ca", "/dev/null"]);
    command.args(["--count", "0"]);
    let output = run(command, QUICK);
    assert_eq!(output.status.code(), Some(2));
    let error = output.assert_one_line_error();
    assert!(error.contains("at least 1"), "{error}");
}

#[test]
fn serve_prints_counters_on_sigusr1_survives_sighup_and_stops_on_sigterm() {
    let tmp = TempDir::new("signals");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let mut server = Server::start("127.0.0.1:0", &cert, &key, &[]);
    call(&server.addr, "localhost", &cert, &["--count", "3"]).assert_success();
    let pid = server.child.0.id().to_string();
    let mut stdout = BufReader::new(server.child.0.stdout.take().unwrap());
    for signal in ["-HUP", "-USR1"] {
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }
    // SIGUSR1: one JSON line of counters, and the server goes on.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let counters: serde_json::Value = serde_json::from_str(&line).expect("JSON counters");
    assert_eq!(counters["requests_delivered"], 3, "{counters}");
    call(&server.addr, "localhost", &cert, &["--count", "2"]).assert_success();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_bounded(&mut server.child.0, QUICK).expect("smt serve did not exit");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let last: serde_json::Value = serde_json::from_str(rest.trim()).expect("final counters");
    assert_eq!(last["requests_delivered"], 5, "{last}");
}

/// `GET /metrics` over a plain TCP connection: (status line, body).
fn scrape(addr: &str, path: &str) -> (String, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics port");
    stream.set_read_timeout(Some(QUICK)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// The exposition parsed by the Prometheus Python client's OpenMetrics parser (an
/// implementation independent of the one that wrote it), as "name value" lines for
/// every sample without labels and "name{le} value" for histogram buckets.
fn parse_with_prometheus_client(exposition: &str) -> std::collections::HashMap<String, f64> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        le = s.labels.get("le")
        print(s.name + ("{" + le + "}" if le else ""), s.value)
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/install-test-deps.sh installs python3-prometheus-client)");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the exposition: {}\n{exposition}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn serve_exposes_metrics_that_a_prometheus_parser_accepts_and_that_count_the_calls() {
    let tmp = TempDir::new("metrics");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &["--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics.clone().unwrap();
    // Before any session: valid, and zero.
    let (status, body) = scrape(&metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let before = parse_with_prometheus_client(&body);
    assert_eq!(before["smt_requests_delivered_total"], 0.0);
    assert_eq!(before["smt_service_time_seconds_count"], 0.0);

    let out = call(&server.addr, "localhost", &cert, &["--count", "40", "--size", "3000"]);
    out.assert_success();
    let (_, body) = scrape(&metrics, "/metrics");
    let after = parse_with_prometheus_client(&body);
    assert_eq!(after["smt_requests_delivered_total"], 40.0);
    assert_eq!(after["smt_sessions_accepted_total"], 1.0);
    assert_eq!(after["smt_service_time_seconds_count"], 40.0);
    assert_eq!(after["smt_service_time_seconds_bucket{+Inf}"], 40.0);
    assert!(after["smt_bytes_received_total"] > 40.0 * 3000.0, "{after:?}");
    assert!(after["smt_bytes_sent_total"] > 40.0 * 3000.0, "{after:?}");
    // The server makes no calls of its own.
    assert_eq!(after["smt_call_latency_seconds_count"], 0.0);
    assert_eq!(after["smt_calls_in_flight"], 0.0);

    let (status, _) = scrape(&metrics, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let json = server.stop("-INT");
    assert_eq!(json["requests_delivered"], 40);
}

#[test]
fn serve_logs_failed_handshakes_with_peer_and_reason_without_colour_codes() {
    let tmp = TempDir::new("handshake-log");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let (other_cert, _) = keygen(&tmp.path().join("other"), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &[]);
    // A client that trusts another certificate aborts the handshake.
    let out = call(&server.addr, "localhost", &other_cert, &[]);
    assert!(!out.status.success());
    let line = server.wait_for_log("client handshake failed");
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("reason="), "{line}");
    let all = server.stderr.lock().unwrap().join("\n");
    assert!(!all.contains('\u{1b}'), "ANSI escape codes in a non-terminal stderr:\n{all}");
    server.stop("-TERM");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let tmp = TempDir::new("json-log");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let (other_cert, _) = keygen(&tmp.path().join("other"), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &["--log-format", "json"]);
    let out = call(&server.addr, "localhost", &other_cert, &[]);
    assert!(!out.status.success());
    let line = server.wait_for_log("client handshake failed");
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(json["level"], "INFO");
    assert!(json["fields"]["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{json}");
    assert!(json["fields"]["reason"].is_string(), "{json}");
    server.stop("-TERM");
}

#[test]
fn call_shows_progress_on_long_runs_and_prints_partial_results_on_ctrl_c() {
    let tmp = TempDir::new("progress");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &[]);
    let mut command = smt();
    command
        .args(["call", "--connect", &server.addr, "--server-name", "localhost", "--ca"])
        .arg(&cert)
        .args(["--count", "100000000", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(command.spawn().expect("spawn smt call"));
    let stdout = read_all_in_background(child.0.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    let stderr_lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("progress: ") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    // A run this long reports progress within about a second.
    rx.recv_timeout(QUICK).expect("no progress line");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = wait_bounded(&mut child.0, QUICK).expect("smt call did not stop on SIGINT");
    assert_eq!(status.code(), Some(1), "an interrupted run is not a success");
    let json: serde_json::Value =
        serde_json::from_str(stdout.join().unwrap().trim()).expect("partial results as JSON");
    assert_eq!(json["interrupted"], true);
    let verified = json["verified"].as_u64().unwrap();
    assert!(verified > 0 && verified < 100_000_000, "{json}");
    assert!(json["p50_us"].as_u64().unwrap() > 0, "{json}");
    let lines = stderr_lines.join().unwrap();
    let progress = lines.iter().find(|l| l.starts_with("progress: ")).unwrap();
    assert!(progress.contains("/100000000 calls"), "{progress}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("error: interrupted (Ctrl-C) after "), "{last}");
    server.stop("-TERM");
}

#[test]
fn serve_keeps_serving_and_reports_after_its_stderr_is_closed() {
    let tmp = TempDir::new("closed-stderr");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let mut command = smt();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard(command.spawn().expect("spawn smt serve"));
    let mut first = String::new();
    BufReader::new(child.0.stderr.take().unwrap()).read_line(&mut first).unwrap();
    // The reader (and with it the pipe) is gone: every later log line fails to write.
    let addr = first.trim().strip_prefix("listening on ").expect("listening line").to_owned();
    let (other_cert, _) = keygen(&tmp.path().join("other"), "localhost");
    assert!(!call(&addr, "localhost", &other_cert, &[]).status.success()); // logs at info
    call(&addr, "localhost", &cert, &["--count", "5"]).assert_success();
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stdout = read_all_in_background(child.0.stdout.take().unwrap());
    let status = wait_bounded(&mut child.0, QUICK).expect("smt serve did not exit");
    assert!(status.success(), "smt serve exited with {status:?}");
    let json: serde_json::Value = serde_json::from_str(stdout.join().unwrap().trim()).unwrap();
    assert_eq!(json["requests_delivered"], 5);
}

#[test]
fn call_to_localhost_finds_a_server_listening_on_either_loopback_address() {
    // /etc/hosts often maps localhost to 127.0.0.1 only; a server on [::1] must
    // still be found (and one on 127.0.0.1, as before).
    let tmp = TempDir::new("localhost");
    let (cert, key) = keygen(tmp.path(), "localhost");
    for listen in ["[::1]:0", "127.0.0.1:0"] {
        let server = Server::start(listen, &cert, &key, &[]);
        let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
        let started = Instant::now();
        let out = call(&format!("localhost:{port}"), "localhost", &cert, &["--json"]);
        out.assert_success();
        let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(json["server"], server.addr, "connected to the wrong address");
        // The race does not wait for the silent address's handshake timeout.
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
        server.stop("-TERM");
    }
}

#[test]
fn serve_on_localhost_listens_on_both_loopback_addresses_and_sums_their_counters() {
    let tmp = TempDir::new("serve-localhost");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("localhost:0", &cert, &key, &["--metrics", "127.0.0.1:0"]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let v6 = server.wait_for_log(&format!("listening on [::1]:{port}"));
    assert!(v6.ends_with(&format!(":{port}")), "{v6}");
    for (addr, count) in [(format!("127.0.0.1:{port}"), "3"), (format!("[::1]:{port}"), "4")] {
        call(&addr, "localhost", &cert, &["--count", count]).assert_success();
    }
    // Metrics and the final counters are the sums over both endpoints.
    let (_, body) = scrape(server.metrics.as_ref().unwrap(), "/metrics");
    let metrics = parse_with_prometheus_client(&body);
    assert_eq!(metrics["smt_requests_delivered_total"], 7.0);
    assert_eq!(metrics["smt_sessions_accepted_total"], 2.0);
    assert_eq!(metrics["smt_service_time_seconds_count"], 7.0);
    let json = server.stop("-TERM");
    assert_eq!(json["requests_delivered"], 7, "{json}");
    assert_eq!(json["sessions"], 2, "{json}");
}

/// `smt call` running in the background until killed (a client that will crash).
fn call_forever(addr: &str, ca: &Path) -> ChildGuard {
    let mut command = smt();
    command
        .args(["call", "--connect", addr, "--server-name", "localhost", "--ca"])
        .arg(ca)
        .args(["--count", "1000000000", "--concurrency", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    ChildGuard(command.spawn().expect("spawn smt call"))
}

/// Kills a client with SIGKILL: it sends nothing more, not even CLOSE.
fn crash(mut client: ChildGuard) {
    client.0.kill().expect("kill smt call");
    wait_bounded(&mut client.0, QUICK).expect("smt call did not die");
}

#[test]
fn a_full_server_refuses_with_a_clear_error_while_busy_and_reclaims_crashed_clients_sessions() {
    let tmp = TempDir::new("max-sessions");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let extra = ["--max-sessions", "2", "--idle-timeout", "0"];
    let server = Server::start("127.0.0.1:0", &cert, &key, &extra);
    let busy = [call_forever(&server.addr, &cert), call_forever(&server.addr, &cert)];
    std::thread::sleep(Duration::from_millis(1500));
    // Both sessions are in use: the third client is told why it cannot get in.
    let refused = call(&server.addr, "localhost", &cert, &["--count", "1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    let error = refused.assert_one_line_error();
    assert!(error.contains("session limit"), "{error}");
    server.wait_for_log("max_sessions reached");
    // The two clients crash; their sessions stay behind, idle. The server frees the
    // longest-idle one for each newcomer instead of locking itself out. (Each
    // crashed session is idle once its last RPC timed out, 2 s, plus the 1 s a
    // session must be idle to be reclaimed.)
    busy.into_iter().for_each(crash);
    std::thread::sleep(Duration::from_millis(3500));
    for _ in 0..3 {
        call(&server.addr, "localhost", &cert, &["--count", "2"]).assert_success();
    }
    let counters = server.stop("-TERM");
    assert!(counters["sessions_refused"].as_u64() >= Some(1), "{counters}");
    assert!(counters["sessions_reclaimed"].as_u64() >= Some(1), "{counters}");
}

#[test]
fn serve_frees_a_crashed_clients_session_after_the_idle_timeout() {
    let tmp = TempDir::new("idle-timeout");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &["--idle-timeout", "1"]);
    let client = call_forever(&server.addr, &cert);
    std::thread::sleep(Duration::from_millis(800));
    crash(client);
    // Calls in flight at the crash time out (2 s), then the session is idle for 1 s.
    std::thread::sleep(Duration::from_millis(4500));
    let counters = server.stop("-TERM");
    assert_eq!(counters["sessions_expired"], 1, "{counters}");
    assert!(counters["requests_delivered"].as_u64() > Some(0), "{counters}");
}

#[test]
fn ten_thousand_calls_in_flight_on_one_session_complete_without_timeouts_or_a_resend_storm() {
    let tmp = TempDir::new("ten-thousand");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start("127.0.0.1:0", &cert, &key, &[]);
    for size in ["64", "4096"] {
        let args = ["--count", "20000", "--concurrency", "10000", "--size", size, "--json"];
        let out = call(&server.addr, "localhost", &cert, &args);
        support::assert_no_resend_storm(&out, 20000);
    }
    let counters = server.stop("-TERM");
    assert_eq!(counters["requests_delivered"], 40000, "{counters}");
    assert_eq!(counters["rpc_timeouts"], 0, "{counters}");
}
