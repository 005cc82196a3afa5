//! What `smt inspect` prints: the same facts as text for people or as one JSON
//! document for scripts.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;

use serde_json::{json, Value};

use super::analyze::Stats;
use super::capture::CaptureInfo;
use super::ip::Encapsulation;
use super::keylog::{hex, KeyLog};
use super::keys::suite_from_code;
use super::message::{Direction, MessageState};
use super::session::{KeyStatus, Session, SessionKey};

pub struct Report {
    pub capture: String,
    pub info: CaptureInfo,
    pub keylog: String,
    pub keylog_connections: usize,
    pub keylog_ignored_lines: usize,
    pub keylog_first_ignored_line: Option<usize>,
    pub keylog_conflicts: usize,
    pub stats: Stats,
    pub sessions: Vec<SessionReport>,
}

pub struct SessionReport {
    pub encapsulation: Encapsulation,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub session_id: u64,
    pub first_frame: u64,
    pub client_random: Option<[u8; 32]>,
    /// IANA name, or "unknown (0x....)" for a code point SMT does not support.
    pub cipher_suite: Option<String>,
    pub suite_guessed: bool,
    pub keys: KeyStatus,
    /// Whether CLIENT_TRAFFIC_SECRET_0 / SERVER_TRAFFIC_SECRET_0 were logged.
    pub secrets_logged: (bool, bool),
    pub packet_counts: BTreeMap<&'static str, u64>,
    pub invalid_layouts: u64,
    pub messages: Vec<MessageReport>,
}

pub struct MessageReport {
    pub id: u64,
    pub direction: Direction,
    pub size: usize,
    pub wire_len: u32,
    pub record_size: u16,
    pub records: usize,
    pub first_frame: u64,
    pub data_packets: u64,
    pub retransmitted_packets: u64,
    pub flagged_retransmits: u64,
    pub complete: bool,
    pub key_phase: bool,
    /// Present when the key of the message's direction is known.
    pub decrypted: Option<Decrypted>,
}

pub struct Decrypted {
    pub generation: Option<usize>,
    pub records_opened: u64,
    /// (record index, what went wrong, failed copies).
    pub failed_records: Vec<(usize, String, u32)>,
    /// Copies that failed although a later copy of the same record opened.
    pub recovered_failures: u32,
    pub first_bytes: Vec<u8>,
}

impl Report {
    pub fn new(
        capture: &std::path::Path,
        info: CaptureInfo,
        keylog_path: &std::path::Path,
        keylog: &KeyLog,
        stats: Stats,
        sessions: Vec<(SessionKey, Session)>,
    ) -> Report {
        Report {
            capture: capture.display().to_string(),
            info,
            keylog: keylog_path.display().to_string(),
            keylog_connections: keylog.connections(),
            keylog_ignored_lines: keylog.ignored_lines,
            keylog_first_ignored_line: keylog.first_ignored_line,
            keylog_conflicts: keylog.conflicts,
            stats,
            sessions: sessions.into_iter().map(|(key, s)| session_report(key, s)).collect(),
        }
    }
}

fn session_report(key: SessionKey, session: Session) -> SessionReport {
    let keys = session.key_status();
    let cipher_suite = match (session.suite(), session.suite_code) {
        (Some(suite), _) => Some(suite.name().to_owned()),
        (None, Some(code)) => Some(match suite_from_code(code) {
            Some(suite) => suite.name().to_owned(),
            None => format!("unknown (0x{code:04x})"),
        }),
        (None, None) => None,
    };
    let secrets_logged = session.secrets_logged();
    let decryptable = |direction: Direction| {
        keys == KeyStatus::Found
            && match direction {
                Direction::Request => secrets_logged.0,
                Direction::Response => secrets_logged.1,
            }
    };
    let mut messages: Vec<MessageReport> =
        session.messages.iter().map(|m| message_report(m, decryptable(m.direction))).collect();
    // Each request next to its response.
    messages.sort_by_key(|m| (m.id, m.direction, m.first_frame));
    SessionReport {
        encapsulation: key.encapsulation,
        client: key.client,
        server: key.server,
        session_id: key.session_id,
        first_frame: session.first_frame,
        client_random: session.client_random,
        cipher_suite,
        suite_guessed: session.suite_guessed,
        keys,
        secrets_logged,
        packet_counts: session.packet_counts,
        invalid_layouts: session.invalid_layouts,
        messages,
    }
}

fn message_report(m: &MessageState, decryptable: bool) -> MessageReport {
    MessageReport {
        id: m.id.get(),
        direction: m.direction,
        size: m.layout.payload_len(),
        wire_len: m.layout.wire_len(),
        record_size: m.layout.record_size(),
        records: m.layout.record_count(),
        first_frame: m.first_frame,
        data_packets: m.data_packets,
        retransmitted_packets: m.duplicate_packets,
        flagged_retransmits: m.flagged_retransmits,
        complete: m.complete(),
        key_phase: m.key_phase,
        decrypted: decryptable.then(|| Decrypted {
            generation: m.generation,
            records_opened: m.records_opened(),
            failed_records: m
                .failed_records()
                .map(|(index, f)| (index, f.describe(), f.copies))
                .collect(),
            recovered_failures: m.recovered_failures(),
            first_bytes: m.head().to_vec(),
        }),
    }
}

fn transport_name(e: Encapsulation) -> &'static str {
    match e {
        Encapsulation::Udp => "udp",
        Encapsulation::NativeIp => "ip",
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Request => "request",
        Direction::Response => "response",
    }
}

fn key_status_name(k: KeyStatus) -> &'static str {
    match k {
        KeyStatus::Found => "found",
        KeyStatus::NotInKeyLog => "not_in_key_log",
        KeyStatus::NoHandshake => "no_handshake",
        KeyStatus::UnknownSuite => "unknown_cipher_suite",
    }
}

fn key_status_text(s: &SessionReport) -> String {
    match s.keys {
        KeyStatus::Found => {
            let logged: Vec<&str> = [
                (s.secrets_logged.0, "CLIENT_TRAFFIC_SECRET_0"),
                (s.secrets_logged.1, "SERVER_TRAFFIC_SECRET_0"),
            ]
            .into_iter()
            .filter_map(|(present, name)| present.then_some(name))
            .collect();
            format!("keys from the key log ({})", logged.join(", "))
        }
        KeyStatus::NotInKeyLog => "no keys in the key log".to_owned(),
        KeyStatus::NoHandshake => {
            "no keys: the handshake (ClientHello) is not in the capture".to_owned()
        }
        KeyStatus::UnknownSuite if s.cipher_suite.is_some() => {
            "secrets found in the key log, but SMT does not support this cipher suite".to_owned()
        }
        KeyStatus::UnknownSuite => "secrets found in the key log, but no ServerHello was \
                                    captured and no supported suite opened a record"
            .to_owned(),
    }
}

/// "hex |ascii|" of `bytes`.
pub fn hex_and_ascii(bytes: &[u8]) -> (String, String) {
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    let ascii = bytes
        .iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' })
        .collect();
    (hex, ascii)
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "frames": s.frames,
        "datagrams": s.datagrams,
        "smt_packets": s.smt_packets,
        "not_smt": s.not_smt,
        "not_ip": s.not_ip,
        "loopback_duplicates": s.loopback_duplicates,
        "malformed_ip": s.malformed_ip,
        "ip_fragments": s.ip_fragments,
        "other_protocols": s.other_protocols,
        "other_ports": s.other_ports,
        "truncated_datagrams": s.truncated_datagrams,
        "gso_batches": s.gso_batches,
        "broken_bundles": s.broken_bundles,
    })
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "capture": {
                "file": self.capture,
                "format": self.info.format.to_string(),
                "link_types": self.info.link_types.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>(),
                "frames": self.info.frames,
                "unsupported_frames": self.info.unsupported_frames,
                "damaged_end": self.info.damaged_end,
            },
            "keylog": {
                "file": self.keylog,
                "connections": self.keylog_connections,
                "ignored_lines": self.keylog_ignored_lines,
                "first_ignored_line": self.keylog_first_ignored_line,
                "conflicting_lines": self.keylog_conflicts,
            },
            "packets": stats_json(&self.stats),
            "sessions": self.sessions.iter().map(session_json).collect::<Vec<_>>(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let info = &self.info;
        let links: Vec<String> = info.link_types.iter().map(|l| format!("{l:?}")).collect();
        writeln!(
            out,
            "capture {}: {}, link type {}, {} frames",
            self.capture,
            info.format,
            links.join(", "),
            info.frames
        )?;
        if let Some(why) = &info.damaged_end {
            writeln!(out, "  warning: the capture ends early ({why})")?;
        }
        let s = &self.stats;
        writeln!(out, "  {} SMT packets in {} datagrams", s.smt_packets, s.datagrams)?;
        let skipped: Vec<String> = [
            (info.unsupported_frames, "frames on interfaces of unsupported link types"),
            (s.not_ip, "frames without IP"),
            (s.loopback_duplicates, "outgoing loopback copies"),
            (s.malformed_ip, "malformed IP/UDP"),
            (s.ip_fragments, "IP fragments"),
            (s.other_protocols, "other IP protocols"),
            (s.other_ports, "other ports"),
            (s.not_smt, "not SMT"),
            (s.broken_bundles, "broken bundles"),
            (
                s.truncated_datagrams,
                "truncated datagrams (snap length; decoded as far as captured)",
            ),
        ]
        .into_iter()
        .filter(|&(n, _)| n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !skipped.is_empty() {
            writeln!(out, "  skipped or noted: {}", skipped.join(", "))?;
        }
        writeln!(
            out,
            "key log {}: traffic secrets of {} connection(s)",
            self.keylog, self.keylog_connections
        )?;
        if self.keylog_ignored_lines > 0 {
            writeln!(
                out,
                "  warning: {} line(s) are not key log entries (first: line {})",
                self.keylog_ignored_lines,
                self.keylog_first_ignored_line.unwrap_or(0)
            )?;
        }
        if self.keylog_conflicts > 0 {
            writeln!(
                out,
                "  warning: {} line(s) repeat a client random and label with another secret \
                 (the first was used)",
                self.keylog_conflicts
            )?;
        }
        if self.sessions.is_empty() {
            writeln!(out, "\nno SMT sessions found")?;
        }
        for (number, session) in self.sessions.iter().enumerate() {
            writeln!(out)?;
            write_session(out, number + 1, session)?;
        }
        Ok(())
    }
}

fn session_json(s: &SessionReport) -> Value {
    json!({
        "transport": transport_name(s.encapsulation),
        "client": s.client.to_string(),
        "server": s.server.to_string(),
        "session_id": format!("{:#018x}", s.session_id),
        "first_frame": s.first_frame,
        "client_random": s.client_random.map(|r| hex(&r)),
        "cipher_suite": s.cipher_suite,
        "cipher_suite_guessed": s.suite_guessed,
        "keys": key_status_name(s.keys),
        "keys_note": key_status_text(s),
        "client_traffic_secret_logged": s.secrets_logged.0,
        "server_traffic_secret_logged": s.secrets_logged.1,
        "packets": s.packet_counts,
        "data_packets_with_invalid_layout": s.invalid_layouts,
        "requests": s.messages.iter().filter(|m| m.direction == Direction::Request).count(),
        "responses": s.messages.iter().filter(|m| m.direction == Direction::Response).count(),
        "messages": s.messages.iter().map(message_json).collect::<Vec<_>>(),
    })
}

fn message_json(m: &MessageReport) -> Value {
    let mut value = json!({
        "id": m.id,
        "direction": direction_name(m.direction),
        "size": m.size,
        "wire_length": m.wire_len,
        "record_size": m.record_size,
        "records": m.records,
        "first_frame": m.first_frame,
        "data_packets": m.data_packets,
        "retransmitted_packets": m.retransmitted_packets,
        "retransmit_flagged_packets": m.flagged_retransmits,
        "complete": m.complete,
        "key_phase": u8::from(m.key_phase),
        "decrypted": m.decrypted.is_some(),
    });
    if let (Some(d), Some(object)) = (&m.decrypted, value.as_object_mut()) {
        let (hex, ascii) = hex_and_ascii(&d.first_bytes);
        object.insert("key_generation".into(), json!(d.generation));
        object.insert("records_opened".into(), json!(d.records_opened));
        object.insert("authenticated".into(), json!(d.records_opened == m.records as u64));
        object.insert(
            "failed_records".into(),
            d.failed_records
                .iter()
                .map(|(index, error, copies)| {
                    json!({"record": index, "error": error, "failed_copies": copies})
                })
                .collect::<Vec<_>>()
                .into(),
        );
        object.insert("recovered_failed_copies".into(), json!(d.recovered_failures));
        object.insert("first_bytes_hex".into(), json!(hex.replace(' ', "")));
        object.insert("first_bytes_ascii".into(), json!(ascii));
    }
    value
}

fn write_session(out: &mut dyn Write, number: usize, s: &SessionReport) -> io::Result<()> {
    let transport = match s.encapsulation {
        Encapsulation::Udp => "UDP",
        Encapsulation::NativeIp => "native IP",
    };
    writeln!(
        out,
        "session {number}: client {} -> server {} over {transport}, session ID {:#018x} \
         (from frame {})",
        s.client, s.server, s.session_id, s.first_frame
    )?;
    if let Some(random) = &s.client_random {
        writeln!(out, "  client random {}", hex(random))?;
    }
    let suite = match (&s.cipher_suite, s.suite_guessed) {
        (Some(name), false) => format!("cipher suite {name}"),
        (Some(name), true) => {
            format!("cipher suite {name} (ServerHello not captured; found by trial)")
        }
        (None, _) => "cipher suite unknown".to_owned(),
    };
    writeln!(out, "  {suite}, {}", key_status_text(s))?;
    let counts: Vec<String> = s.packet_counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    writeln!(out, "  packets: {}", counts.join(", "))?;
    if s.invalid_layouts > 0 {
        writeln!(
            out,
            "  {} DATA packet(s) whose message length and record size describe no message",
            s.invalid_layouts
        )?;
    }
    let requests = s.messages.iter().filter(|m| m.direction == Direction::Request).count();
    let failures: usize = s
        .messages
        .iter()
        .filter_map(|m| m.decrypted.as_ref())
        .map(|d| d.failed_records.len())
        .sum();
    write!(out, "  {requests} request(s), {} response(s)", s.messages.len() - requests)?;
    if s.keys == KeyStatus::Found {
        write!(out, ", {failures} record(s) failing authentication")?;
    }
    writeln!(out)?;
    for m in &s.messages {
        write_message(out, m)?;
    }
    Ok(())
}

fn write_message(out: &mut dyn Write, m: &MessageReport) -> io::Result<()> {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    write!(
        out,
        "  {:<8} {}: {} B, {}, {} ({} retransmitted), {}",
        direction_name(m.direction),
        m.id,
        m.size,
        plural(m.records as u64, "record", "records"),
        plural(m.data_packets, "DATA packet", "DATA packets"),
        m.retransmitted_packets,
        if m.complete { "complete" } else { "INCOMPLETE" },
    )?;
    let Some(d) = &m.decrypted else { return writeln!(out) };
    match d.generation {
        Some(g) if g > 0 => write!(out, ", key generation {g}")?,
        _ => {}
    }
    writeln!(out, ", {}/{} records authenticated", d.records_opened, m.records)?;
    if !d.first_bytes.is_empty() {
        let (hex, ascii) = hex_and_ascii(&d.first_bytes);
        writeln!(out, "      first bytes: {hex}  |{ascii}|")?;
    }
    for (index, error, copies) in &d.failed_records {
        let copies = if *copies > 1 { format!(" ({copies} copies)") } else { String::new() };
        writeln!(out, "      record {index}: {error}{copies}")?;
    }
    if d.recovered_failures > 0 {
        writeln!(
            out,
            "      {} copy(ies) of records failed authentication but a later copy opened",
            d.recovered_failures
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_show_as_hex_and_printable_ascii() {
        let (hex, ascii) = hex_and_ascii(b"Hi \x00\xff~");
        assert_eq!(hex, "48 69 20 00 ff 7e");
        assert_eq!(ascii, "Hi ..~");
    }
}
