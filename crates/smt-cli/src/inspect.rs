//! `smt inspect`: decodes the SMT sessions of a packet capture with a TLS key log.
//!
//! ```text
//! smt inspect CAPTURE --keylog FILE [--port P] [--ip-protocol N] [--json]
//! ```
//!
//! SMT encrypts every message as TLS 1.3 records, so a capture shows only the
//! plaintext headers (ports, session ID, message IDs, lengths, offsets). With the
//! traffic secrets both sides' TLS libraries write to `SSLKEYLOGFILE` (NSS key log
//! format; SMT endpoints write it when the variable is set), `smt inspect` decrypts
//! and authenticates every record and reports, per session:
//!
//! * the endpoints (client and server address; UDP or native IP), session ID,
//!   client random and cipher suite, and whether the key log had its keys;
//! * every message: its ID, direction (request: client to server; response: server
//!   to client), payload size, record count, DATA packets and how many of them
//!   repeated bytes already seen (retransmissions), whether all its bytes were
//!   captured, how many records authenticated, the first 16 payload bytes (hex and
//!   ASCII), and each record that failed ("record 3: authentication FAILED": the
//!   bytes were modified, forged, or sealed with other keys).
//!
//! Typical use, capturing on loopback:
//!
//! ```text
//! tcpdump -i lo -U --immediate-mode -w smt.pcap udp port 4433 &
//! SSLKEYLOGFILE=keys.log smt call --connect 127.0.0.1:4433 --server-name localhost --ca cert.pem
//! kill -INT %1
//! smt inspect smt.pcap --keylog keys.log
//! ```
//!
//! Input: pcap or pcapng files with Ethernet, Linux cooked (SLL, SLL2: `tcpdump -i
//! any`), raw IPv4/IPv6 or BSD loopback link types; UDP (any port, or `--port`)
//! and SMT's own IP protocol (native IP mode, 253 unless `--ip-protocol` says
//! otherwise). Datagrams that are not SMT are counted and skipped; bundles and
//! GSO/GRO batches are taken apart. Captured bytes are untrusted input: nothing in
//! them can make the command fail, only the files themselves (unreadable, not a
//! capture, no supported link type) are errors.
//!
//! How it works: a session is the pair of UDP (or native IP) addresses seen on its
//! handshake plus its session ID, in both directions (the SMT header's ports are
//! informational in UDP mode, and NAT may rewrite the UDP ones). The ClientHello
//! in the handshake stream gives the client random that names the session in the
//! key log; `CLIENT_TRAFFIC_SECRET_0` opens requests and `SERVER_TRAFFIC_SECRET_0`
//! responses, with record sequence number `message_id << 16 | record_index` and key
//! updates derived from those secrets (PROTOCOL.md 5.2, 8.7). Records are opened as
//! a receiver opens them (PROTOCOL.md 5.4, 7.3). A session whose client random is not
//! in the key log is listed with "no keys in the key log" and its messages' sizes.

mod analyze;
mod capture;
#[cfg(test)]
mod fixtures;
mod hello;
mod ip;
mod keylog;
mod keys;
mod link;
mod message;
mod packets;
mod ranges;
mod report;
mod session;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// Arguments of `smt inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Per session it prints the endpoints, session ID, client random and cipher suite, and every \
message: ID, request (client to server) or response, payload size, records, DATA packets and \
retransmissions, whether all bytes were captured, how many records authenticated, the first 16 \
plaintext bytes, and each record that failed (\"record 3: authentication FAILED\"). A session \
whose client random is not in the key log is listed with \"no keys in the key log\" and its \
message sizes. Datagrams that are not SMT are counted and skipped.

Example:
  tcpdump -i lo -U --immediate-mode -w smt.pcap udp port 4433 &
  SSLKEYLOGFILE=keys.log smt call --connect 127.0.0.1:4433 --server-name localhost --ca cert.pem
  kill -INT %1
  smt inspect smt.pcap --keylog keys.log")]
pub struct InspectArgs {
    /// The capture to read (pcap or pcapng; Ethernet, Linux cooked SLL/SLL2 as from
    /// `tcpdump -i any`, raw IP or loopback link types).
    pub capture: PathBuf,
    /// The NSS key log (SSLKEYLOGFILE) written by either side during the capture.
    #[arg(long, value_name = "FILE")]
    pub keylog: PathBuf,
    /// Only UDP datagrams from or to this port (native IP mode: SMT header ports).
    /// Default: every UDP datagram; those that are not SMT are counted and skipped.
    #[arg(long, value_name = "P")]
    pub port: Option<u16>,
    /// SMT's IP protocol number, for captures of native IP mode.
    #[arg(long, value_name = "N", default_value_t = smt_proto::wire::DEFAULT_IP_PROTOCOL)]
    pub ip_protocol: u8,
    /// One JSON document instead of the text report.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let keylog = keylog::KeyLog::read(&args.keylog)?;
    let options = analyze::Options { port: args.port, ip_protocol: args.ip_protocol };
    let mut analyzer = analyze::Analyzer::new(&keylog, options);
    let info = capture::read(&args.capture, |frame| analyzer.frame(frame))?;
    let (sessions, stats) = analyzer.finish();
    let report = report::Report::new(&args.capture, info, &args.keylog, &keylog, stats, sessions);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if args.json {
        writeln!(out, "{:#}", report.to_json())
    } else {
        report.write_text(&mut out)
    }
    .and_then(|()| out.flush());
    match written {
        // `smt inspect ... | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the report"),
    }
}
