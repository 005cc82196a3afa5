//! The NSS key log format (`SSLKEYLOGFILE`): `LABEL CLIENT_RANDOM SECRET` lines.
//!
//! SMT's endpoints write it through rustls's `KeyLogFile`, so the file holds the
//! labels rustls logs for TLS 1.3: `CLIENT_HANDSHAKE_TRAFFIC_SECRET`,
//! `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`,
//! `SERVER_TRAFFIC_SECRET_0` and `EXPORTER_SECRET`. SMT logs nothing of its own for
//! key updates: generation n+1 is derived from generation n (PROTOCOL.md 8.7), so the
//! two `*_TRAFFIC_SECRET_0` lines are all a decoder needs.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

/// A TLS client random, the key of every key log line.
pub type ClientRandom = [u8; 32];

/// The application traffic secrets logged for one connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// `CLIENT_TRAFFIC_SECRET_0`: protects requests.
    pub client: Option<Vec<u8>>,
    /// `SERVER_TRAFFIC_SECRET_0`: protects responses.
    pub server: Option<Vec<u8>>,
}

/// A parsed key log.
#[derive(Debug, Default)]
pub struct KeyLog {
    by_random: HashMap<ClientRandom, Secrets>,
    /// Lines that are neither comments, blank, nor well-formed entries.
    pub ignored_lines: usize,
    /// The first such line's number (1-based), to point the user at it.
    pub first_ignored_line: Option<usize>,
    /// Well-formed lines in total (any label).
    pub entries: usize,
    /// The same label and client random logged twice with different secrets (the
    /// first one is kept).
    pub conflicts: usize,
}

impl KeyLog {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<KeyLog> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read key log {}", path.display()))?;
        Ok(KeyLog::parse(&bytes))
    }

    /// Parses key log text. Never fails: bad lines are counted and skipped, since
    /// one stray line should not hide every other session's keys.
    pub fn parse(text: &[u8]) -> KeyLog {
        let mut log = KeyLog::default();
        for (number, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some((label, random, secret)) => {
                    log.entries += 1;
                    log.add(label, random, secret);
                }
                None => {
                    log.ignored_lines += 1;
                    log.first_ignored_line.get_or_insert(number + 1);
                }
            }
        }
        log
    }

    fn add(&mut self, label: &str, random: ClientRandom, secret: Vec<u8>) {
        let slot = match label {
            "CLIENT_TRAFFIC_SECRET_0" => &mut self.by_random.entry(random).or_default().client,
            "SERVER_TRAFFIC_SECRET_0" => &mut self.by_random.entry(random).or_default().server,
            // Handshake, exporter and early secrets decrypt nothing SMT sends.
            _ => return,
        };
        match slot {
            Some(existing) if *existing != secret => self.conflicts += 1,
            Some(_) => {}
            None => *slot = Some(secret),
        }
    }

    /// The application traffic secrets logged for `random`, if any.
    pub fn secrets(&self, random: &ClientRandom) -> Option<&Secrets> {
        self.by_random.get(random)
    }

    /// How many connections have at least one application traffic secret.
    pub fn connections(&self) -> usize {
        self.by_random.len()
    }
}

/// `LABEL RANDOM SECRET` with a 32-byte random and a non-empty secret, or `None`.
fn parse_line(line: &str) -> Option<(&str, ClientRandom, Vec<u8>)> {
    let mut fields = line.split_ascii_whitespace();
    let (label, random, secret) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some()
        || !label.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
    {
        return None;
    }
    let random: ClientRandom = unhex(random)?.try_into().ok()?;
    let secret = unhex(secret)?;
    if secret.is_empty() {
        return None;
    }
    Some((label, random, secret))
}

/// Decodes hex (either case); `None` for odd lengths or other characters.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            // Two hex digits are at most 0xff.
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM_A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const RANDOM_B: &str = "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";

    #[test]
    fn traffic_secrets_are_indexed_by_client_random() {
        let text = format!(
            "# comment\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM_A} {s1}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {s2}\n\
             SERVER_TRAFFIC_SECRET_0 {RANDOM_A} {s3}\r\n\
             \n\
             SERVER_TRAFFIC_SECRET_0 {RANDOM_B} {s4}\n",
            s1 = "11".repeat(32),
            s2 = "22".repeat(32),
            s3 = "33".repeat(48),
            s4 = "44".repeat(32),
        );
        let log = KeyLog::parse(text.as_bytes());
        assert_eq!(log.entries, 4);
        assert_eq!(log.ignored_lines, 0);
        assert_eq!(log.connections(), 2);
        let a = log.secrets(&[1; 32]).expect("random A");
        assert_eq!(a.client.as_deref(), Some(&[0x22; 32][..]));
        assert_eq!(a.server.as_deref(), Some(&[0x33; 48][..]));
        let b = log.secrets(&[0xab; 32]).expect("random B, upper-case hex");
        assert_eq!(b.client, None);
        assert_eq!(b.server.as_deref(), Some(&[0x44; 32][..]));
        assert!(log.secrets(&[2; 32]).is_none());
    }

    #[test]
    fn malformed_lines_are_counted_and_skipped() {
        let good = format!("CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {}", "22".repeat(32));
        let text = format!(
            "garbage\n\
             CLIENT_TRAFFIC_SECRET_0 0102 {s}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} 2\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} zz\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {s} extra\n\
             \u{fffd}\u{0} {RANDOM_A} {s}\n\
             {good}\n",
            s = "22".repeat(32)
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let log = KeyLog::parse(&bytes);
        assert_eq!(log.ignored_lines, 7);
        assert_eq!(log.first_ignored_line, Some(1));
        assert_eq!(log.entries, 1);
        assert!(log.secrets(&[1; 32]).and_then(|s| s.client.as_ref()).is_some());
    }

    #[test]
    fn a_conflicting_duplicate_keeps_the_first_secret() {
        let text = format!(
            "CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {a}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {a}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM_A} {b}\n",
            a = "aa".repeat(32),
            b = "bb".repeat(32)
        );
        let log = KeyLog::parse(text.as_bytes());
        assert_eq!(log.conflicts, 1);
        assert_eq!(log.secrets(&[1; 32]).unwrap().client.as_deref(), Some(&[0xaa; 32][..]));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        assert_eq!(unhex("00fF10"), Some(vec![0, 255, 16]));
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("é1"), None);
        assert_eq!(unhex(""), Some(vec![]));
    }
}
