//! Record keys of one session, from its logged application traffic secrets, with
//! key-update generations derived on demand (PROTOCOL.md 8.7).

use smt_proto::record::{CipherSuite, KeyError, RecordKey, TrafficSecret};

use super::keylog::Secrets;

/// A generation bound, so that no capture content makes us derive keys forever.
/// A real session updates every ~10 million records.
const MAX_GENERATIONS: usize = 1 << 16;

/// The keys of one direction: generation 0 from the key log, later ones derived.
pub struct DirectionKeys {
    /// `secrets[g]` and `keys[g]` are generation `g`.
    secrets: Vec<TrafficSecret>,
    keys: Vec<RecordKey>,
    /// The newest generation a message has opened with; the receiver's view.
    current: usize,
}

impl DirectionKeys {
    pub fn new(suite: CipherSuite, secret: &[u8]) -> Result<DirectionKeys, KeyError> {
        let secret = TrafficSecret::new(suite, secret)?;
        let key = secret.record_key();
        Ok(DirectionKeys { secrets: vec![secret], keys: vec![key], current: 0 })
    }

    /// The generations that may have sealed a message whose KEY_PHASE is `phase`,
    /// most likely first: the current one if its parity matches, else the next
    /// (an update) and the previous (a message sealed before it), as a receiver
    /// tries them.
    pub fn candidates(&self, phase: bool) -> Vec<usize> {
        let current = self.current;
        if (current % 2 == 1) == phase {
            return vec![current];
        }
        let mut candidates = vec![current + 1];
        if let Some(previous) = current.checked_sub(1) {
            candidates.push(previous);
        }
        candidates
    }

    /// The key of `generation`, deriving the generations up to it if needed.
    pub fn key(&mut self, generation: usize) -> Option<&RecordKey> {
        if generation >= MAX_GENERATIONS {
            return None;
        }
        while self.keys.len() <= generation {
            let next = self.secrets.last()?.next();
            self.keys.push(next.record_key());
            self.secrets.push(next);
        }
        self.keys.get(generation)
    }

    /// A message opened with `generation`: the sender has moved at least that far.
    pub fn confirm(&mut self, generation: usize) {
        self.current = self.current.max(generation);
    }
}

/// Both directions' keys (either may be missing from the key log).
pub struct SessionKeys {
    pub suite: CipherSuite,
    pub requests: Option<DirectionKeys>,
    pub responses: Option<DirectionKeys>,
}

impl SessionKeys {
    /// Keys for `suite` from the logged secrets; `None` if neither secret fits the
    /// suite (a SHA-384 secret for a SHA-256 suite, say).
    pub fn new(suite: CipherSuite, secrets: &Secrets) -> Option<SessionKeys> {
        let direction =
            |s: &Option<Vec<u8>>| s.as_deref().and_then(|s| DirectionKeys::new(suite, s).ok());
        let keys = SessionKeys {
            suite,
            requests: direction(&secrets.client),
            responses: direction(&secrets.server),
        };
        (keys.requests.is_some() || keys.responses.is_some()).then_some(keys)
    }
}

/// The suite with IANA code point `code`, if SMT supports it.
pub fn suite_from_code(code: u16) -> Option<CipherSuite> {
    CipherSuite::ALL.into_iter().find(|s| s.code() == code)
}

#[cfg(test)]
mod tests {
    use smt_proto::record::{open_message, seal_message};
    use smt_proto::wire::MessageId;

    use super::*;

    #[test]
    fn candidates_follow_the_receiver_rules_of_key_update() {
        let mut keys = DirectionKeys::new(CipherSuite::Aes128GcmSha256, &[7; 32]).unwrap();
        assert_eq!(keys.candidates(false), vec![0]);
        assert_eq!(keys.candidates(true), vec![1]);
        keys.confirm(1);
        assert_eq!(keys.candidates(true), vec![1]);
        assert_eq!(keys.candidates(false), vec![2, 0]);
        keys.confirm(0);
        assert_eq!(keys.candidates(false), vec![2, 0], "generations never go back");
    }

    #[test]
    fn derived_generations_are_the_key_schedules_successors() {
        let suite = CipherSuite::Aes256GcmSha384;
        let secret = [3u8; 48];
        let mut keys = DirectionKeys::new(suite, &secret).unwrap();
        let second = TrafficSecret::new(suite, &secret).unwrap().next().next().record_key();
        let id = MessageId::new(9).unwrap();
        let wire = seal_message(&second, id, b"after two updates", 16384).unwrap();
        let opened = open_message(keys.key(2).unwrap(), id, wire.clone(), 16384);
        assert_eq!(opened.unwrap(), b"after two updates");
        assert!(open_message(keys.key(0).unwrap(), id, wire, 16384).is_err());
        assert!(keys.key(MAX_GENERATIONS).is_none());
    }

    #[test]
    fn secrets_of_the_wrong_length_for_the_suite_give_no_keys() {
        let secrets = Secrets { client: Some(vec![1; 48]), server: Some(vec![2; 48]) };
        assert!(SessionKeys::new(CipherSuite::Aes128GcmSha256, &secrets).is_none());
        let keys = SessionKeys::new(CipherSuite::Aes256GcmSha384, &secrets).unwrap();
        assert!(keys.requests.is_some() && keys.responses.is_some());
        let only_server = Secrets { client: None, server: Some(vec![2; 32]) };
        let keys = SessionKeys::new(CipherSuite::Chacha20Poly1305Sha256, &only_server).unwrap();
        assert!(keys.requests.is_none() && keys.responses.is_some());
        assert_eq!(suite_from_code(0x1303), Some(CipherSuite::Chacha20Poly1305Sha256));
        assert_eq!(suite_from_code(0x1304), None);
    }
}
