//! Sessions: which packets belong together, which keys open them.
//!
//! A receiver matches a packet to a session by (peer address, session ID, local
//! role) (PROTOCOL.md 3). Seen from the wire that is the client's address, the
//! server's address and the session ID, with FROM_INITIATOR telling which address
//! is which. Addresses are those of the datagrams: IP address and UDP port in UDP
//! mode (where the header's ports are informational and NAT may change them), IP
//! address and the header's port in native IP mode. The ClientHello in the
//! client's handshake stream gives the client random, which finds the session's
//! secrets in the key log; the ServerHello gives the cipher suite.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use smt_proto::record::{CipherSuite, MessageLayout};
use smt_proto::wire::{DataRepr, Flags, MessageId};

use super::hello::{self, StreamStart};
use super::ip::Encapsulation;
use super::keylog::{KeyLog, Secrets};
use super::keys::{suite_from_code, DirectionKeys, SessionKeys};
use super::message::{Direction, MessageState};

/// What names a session in a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub encapsulation: Encapsulation,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub session_id: u64,
}

/// Messages are told apart by direction and ID, and also by the plaintext fields
/// that fix their layout and key: a packet that contradicts them belongs to no
/// message we know (it was forged or corrupted), so it gets an entry of its own
/// rather than spoiling the genuine one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MessageKey {
    direction: Direction,
    id: MessageId,
    wire_len: u32,
    record_size: u16,
    key_phase: bool,
}

/// Where the session's keys stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// The ClientHello is not in the capture, so the client random is unknown.
    NoHandshake,
    /// The key log has no application traffic secret for the client random.
    NotInKeyLog,
    /// Secrets found, and a cipher suite they fit.
    Found,
    /// Secrets found, but the cipher suite is unknown or unsupported and no
    /// supported suite opened a record.
    UnknownSuite,
}

#[derive(Default)]
pub struct Session {
    pub first_frame: u64,
    client_stream: StreamStart,
    server_stream: StreamStart,
    pub client_random: Option<[u8; 32]>,
    /// The ServerHello's cipher suite code point.
    pub suite_code: Option<u16>,
    /// Found in the capture (`false`) or by trying every supported suite (`true`).
    pub suite_guessed: bool,
    secrets: Option<Secrets>,
    keys: Option<SessionKeys>,
    pub messages: Vec<MessageState>,
    index: HashMap<MessageKey, usize>,
    /// Packets by type name.
    pub packet_counts: BTreeMap<&'static str, u64>,
    /// DATA packets whose (message length, record size) describe no valid message.
    pub invalid_layouts: u64,
}

impl Session {
    pub fn new(first_frame: u64) -> Session {
        Session { first_frame, ..Session::default() }
    }

    pub fn key_status(&self) -> KeyStatus {
        match (&self.client_random, &self.secrets, &self.keys) {
            (None, _, _) => KeyStatus::NoHandshake,
            (Some(_), None, _) => KeyStatus::NotInKeyLog,
            (Some(_), Some(_), Some(_)) => KeyStatus::Found,
            (Some(_), Some(_), None) => KeyStatus::UnknownSuite,
        }
    }

    /// The suite of the keys in use, if any.
    pub fn suite(&self) -> Option<CipherSuite> {
        self.keys.as_ref().map(|k| k.suite)
    }

    /// Which of the two secrets the key log held: (requests, responses).
    pub fn secrets_logged(&self) -> (bool, bool) {
        self.secrets.as_ref().map_or((false, false), |s| (s.client.is_some(), s.server.is_some()))
    }

    pub fn count(&mut self, type_name: &'static str) {
        *self.packet_counts.entry(type_name).or_default() += 1;
    }

    /// A chunk of one direction's handshake stream.
    pub fn handshake(&mut self, from_client: bool, offset: u32, data: &[u8], keylog: &KeyLog) {
        if from_client {
            self.client_stream.add(offset, data);
            if self.client_random.is_none() {
                self.client_random = hello::client_random(self.client_stream.contiguous());
                if let Some(random) = &self.client_random {
                    self.secrets = keylog.secrets(random).cloned();
                }
            }
        } else {
            self.server_stream.add(offset, data);
            if self.suite_code.is_none() {
                self.suite_code = hello::server_cipher_suite(self.server_stream.contiguous());
            }
        }
        if self.keys.is_none() {
            let suite = self.suite_code.and_then(suite_from_code);
            if let (Some(suite), Some(secrets)) = (suite, &self.secrets) {
                self.keys = SessionKeys::new(suite, secrets);
                self.open_all();
            }
        }
    }

    /// One DATA packet.
    pub fn data(
        &mut self,
        frame: u64,
        from_client: bool,
        id: MessageId,
        flags: Flags,
        data: &DataRepr<'_>,
    ) {
        let Some(layout) = MessageLayout::from_wire(data.message_length, data.record_size) else {
            self.invalid_layouts += 1;
            return;
        };
        let direction = if from_client { Direction::Request } else { Direction::Response };
        let key_phase = flags.contains(Flags::KEY_PHASE);
        let key = MessageKey {
            direction,
            id,
            wire_len: data.message_length,
            record_size: data.record_size,
            key_phase,
        };
        let index = *self.index.entry(key).or_insert_with(|| {
            self.messages.push(MessageState::new(direction, id, layout, key_phase, frame));
            self.messages.len() - 1
        });
        // Bytes are worth keeping only if this direction's secret was logged: its
        // keys exist, or will once the suite is known (from the ServerHello, or by
        // trying each at the end).
        let keep = self.secrets.as_ref().is_some_and(|s| match direction {
            Direction::Request => s.client.is_some(),
            Direction::Response => s.server.is_some(),
        });
        let Some(message) = self.messages.get_mut(index) else { return };
        message.add(data.offset, data.payload, flags.contains(Flags::RETRANSMIT), keep);
        if let Some(keys) = self.keys.as_mut() {
            if let Some(direction_keys) = direction_keys(keys, direction) {
                message.open_complete(direction_keys);
            }
        }
    }

    /// Opens what can be opened.
    fn open_all(&mut self) {
        let Some(keys) = self.keys.as_mut() else { return };
        for message in &mut self.messages {
            if let Some(direction_keys) = direction_keys(keys, message.direction) {
                message.open_complete(direction_keys);
            }
        }
    }

    /// End of the capture: if the secrets are known but the suite is not (no
    /// ServerHello captured, or not one SMT supports), try each supported suite the
    /// secrets fit on the records held, then open everything.
    pub fn finish(&mut self) {
        if self.keys.is_none() {
            if let Some(secrets) = self.secrets.clone() {
                for mut keys in CipherSuite::ALL
                    .into_iter()
                    .filter_map(|suite| SessionKeys::new(suite, &secrets))
                {
                    if self.any_opens(&mut keys) {
                        self.keys = Some(keys);
                        self.suite_guessed = true;
                        break;
                    }
                }
            }
        }
        self.open_all();
    }

    /// Whether `keys` open some complete record (fresh keys: trying only derives
    /// generations, it does not move them).
    fn any_opens(&self, keys: &mut SessionKeys) -> bool {
        self.messages.iter().any(|message| {
            direction_keys(keys, message.direction).is_some_and(|k| message.opens_with(k))
        })
    }
}

fn direction_keys(keys: &mut SessionKeys, direction: Direction) -> Option<&mut DirectionKeys> {
    match direction {
        Direction::Request => keys.requests.as_mut(),
        Direction::Response => keys.responses.as_mut(),
    }
}
