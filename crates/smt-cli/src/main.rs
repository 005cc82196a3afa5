//! `smt`: command-line tools for the SMT encrypted RPC transport.
//!
//! Every command exits 0 on success; on failure it prints one line `error: ...` to
//! stderr and exits non-zero (2 for bad arguments). Logs go to stderr, filtered by
//! `RUST_LOG` (default `info` for `serve`, `warn` otherwise), as text (coloured only on
//! a terminal) or, with `--log-format json`, one JSON object per line.
#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout (`smt call | head -1`): the output is
/// then unwanted, which is no reason to panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod call;
mod demo;
mod inspect;
mod keygen;
mod load;
mod metrics_http;
mod serve;
mod stats;
mod tls_config;
mod transport;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "smt",
    version,
    arg_required_else_help = true,
    about = "SMT: encrypted message-based RPC (TLS 1.3 records over a Homa-like transport)"
)]
struct Cli {
    /// Log line format on stderr (the filter is RUST_LOG; default: info for
    /// `serve`, warn otherwise).
    #[arg(long, value_enum, default_value_t, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (fields as keys), for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a self-signed certificate and key (DIR/cert.pem, DIR/key.pem).
    Keygen(keygen::KeygenArgs),
    /// Run an echo server; on SIGINT/SIGTERM print its counters as one JSON line and
    /// exit (SIGUSR1: print them and keep serving; SIGHUP is ignored).
    Serve(serve::ServeArgs),
    /// Make verified echo calls to a server and report latency and throughput.
    Call(call::CallArgs),
    /// Run a server and a client on loopback and print a latency/throughput table.
    Demo(demo::DemoArgs),
    /// Decode the SMT sessions of a packet capture (pcap/pcapng) with a TLS key log.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `smt` alone: the list of commands is the helpful answer.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {}", clap_error_line(&e));
            return ExitCode::from(2);
        }
    };
    init_logging(cli.log_format, &cli.command);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&error_chain(&e)));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let command = match command {
        Command::Keygen(args) => return keygen::run(&args),
        Command::Inspect(args) => return inspect::run(&args),
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        match &command {
            Command::Serve(args) => serve::run(args).await,
            Command::Call(args) => call::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Keygen(args) => keygen::run(args),
            Command::Inspect(args) => inspect::run(args),
        }
    });
    // Don't wait for stray tasks (e.g. a response still being sealed).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Logs to stderr, filtered by `RUST_LOG`. A server says by default why handshakes
/// failed or sessions were refused (info); other commands report their own errors
/// and stay quiet below warnings.
fn init_logging(format: LogFormat, command: &Command) {
    use std::io::IsTerminal;
    let default = match command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LossyStderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Stderr for log lines, ignoring write errors: a server whose stderr was closed
/// (a detached daemon, a supervisor that stopped reading) must keep serving, and
/// tracing-subscriber reports a failed write by printing to stderr again, which
/// panics when stderr is gone.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Clap's message without its "error: " prefix and usage block, on one line.
fn clap_error_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let message = rendered.split("\n\n").next().unwrap_or_default();
    let message = message.trim_start_matches("error:").trim();
    format!("{} (see smt --help)", one_line(message))
}

/// The error and its causes, joined by ": ", leaving out a cause whose text the
/// message already holds (some errors print their source in their own message and
/// also return it as `source()`; it should be said once).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let read = smt::tls::ConfigError::Read { file: "k/cert.pem".into(), source: io };
        let text = error_chain(&anyhow::Error::new(read));
        assert_eq!(text, "cannot read k/cert.pem: No such file or directory");
    }

    #[test]
    fn causes_the_message_does_not_hold_are_joined() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let text = error_chain(&anyhow::Error::new(io).context("loading the key"));
        assert_eq!(text, "loading the key: No such file or directory");
    }
}
