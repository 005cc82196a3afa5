//! Helpers shared by the integration tests of the `smt` binary (cli.rs, inspect.rs,
//! testbed.rs, wireshark_dissector.rs): running `smt` and other programs with a bound
//! on their run time and their output captured, child processes and directories that
//! do not outlive a failing test, and the SKIP-or-FAIL convention of tests that need
//! privileges or tools.

// Every test binary compiles its own copy of this module and uses a different subset
// of it, so what one of them leaves unused is not dead code.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bound on any single command that should be quick.
pub const QUICK: Duration = Duration::from_secs(60);

/// Path of the `smt` binary under test.
pub fn smt_bin() -> &'static str {
    env!("CARGO_BIN_EXE_smt")
}

/// A command running `smt`, without the caller's `RUST_LOG` (which would change what
/// it logs) or `SSLKEYLOGFILE` (a test that wants a key log sets it).
pub fn smt() -> Command {
    let mut command = Command::new(smt_bin());
    command.env_remove("RUST_LOG").env_remove("SSLKEYLOGFILE");
    command
}

/// Kills the child when dropped, so a failing test leaves no process behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `smt-test-PID-NAME-N` in the system's temporary directory, N counting
    /// the directories this process has made (a leftover of an earlier process with
    /// the same ID is emptied first).
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("smt-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished command said.
pub struct Output {
    /// The command as run (its `Debug` form), for failure messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// A failure reported as the one-line `error: ...` message the CLI promises.
    pub fn assert_one_line_error(&self) -> &str {
        assert!(!self.status.success(), "expected failure; stdout:\n{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr should be one line:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0]
    }
}

/// Runs `command` to completion with no input, killing it (and failing) after
/// `limit`.
pub fn run(mut command: Command, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child =
        ChildGuard(command.spawn().unwrap_or_else(|e| panic!("spawn {command:?}: {e}")));
    // Both pipes were requested just above.
    let stdout = read_all_in_background(child.0.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.0.stderr.take().expect("piped stderr"));
    let status = wait_bounded(&mut child.0, limit)
        .unwrap_or_else(|| panic!("{command:?} did not finish within {limit:?}"));
    Output {
        command: format!("{command:?}"),
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads `pipe` to its end on a thread of its own, so that a child never blocks on a
/// full pipe while the test waits for it.
pub fn read_all_in_background(
    mut pipe: impl Read + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Waits for `child` to exit; `None` if it is still running after `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (such as "-TERM") to `child` with kill(1): the tests use no libc.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
}

/// Skips the test with `reason`, or fails it if SMT_REQUIRE_PRIVILEGED_TESTS is set
/// (CI sets it, so that a test that needs root or a tool cannot pass by not running).
/// The caller returns after a skip.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("SMT_REQUIRE_PRIVILEGED_TESTS").is_none(),
        "{reason}, and SMT_REQUIRE_PRIVILEGED_TESTS is set"
    );
    // Straight to stderr, not eprintln!: the test harness captures the macros'
    // output of passing tests, and a skip should be visible.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// Whether `program --version` runs and succeeds.
pub fn tool_runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `smt keygen --out DIR --name NAME`, returning (cert.pem, key.pem).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let mut command = smt();
    command.arg("keygen").arg("--out").arg(dir).args(["--name", name]);
    run(command, QUICK).assert_success();
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Checks the `smt call --json` report of `calls` calls made with thousands in
/// flight: every response verified, no call timed out, and fewer than 0.05 RESENDs
/// per call (issue 12's target; measured below 0.01 on loopback, a busy loop on one
/// vCPU included; 0.10-0.28 before the fixes, see docs/perf/profiling.md).
pub fn assert_no_resend_storm(out: &Output, calls: u64) {
    out.assert_success();
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(report["verified"], calls, "{report}");
    let client = &report["client_counters"];
    assert_eq!(client["rpc_timeouts"], 0, "{report}");
    let resends = client["resends_sent"].as_u64().expect("resends_sent") as f64 / calls as f64;
    assert!(resends < 0.05, "{resends:.3} RESENDs per call: {report}");
}
