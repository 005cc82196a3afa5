//! Why recently closed sessions ended, so that a late call on a closed session gets
//! the real reason ("the peer closed it", "the handshake was refused: bad_certificate")
//! instead of "no such session". Bounded: the oldest entries are forgotten first.

use std::collections::{BTreeMap, VecDeque};

use super::event::{RpcError, SessionHandle};

#[derive(Debug)]
pub(crate) struct Tombstones {
    reasons: BTreeMap<SessionHandle, RpcError>,
    order: VecDeque<SessionHandle>,
    capacity: usize,
}

impl Tombstones {
    pub(crate) fn new(capacity: usize) -> Tombstones {
        Tombstones { reasons: BTreeMap::new(), order: VecDeque::new(), capacity }
    }

    /// Remembers why `session` ended, forgetting the oldest entry when full.
    pub(crate) fn bury(&mut self, session: SessionHandle, reason: RpcError) {
        if self.capacity == 0 {
            return;
        }
        if self.reasons.insert(session, reason).is_none() {
            self.order.push_back(session);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.reasons.remove(&old);
            }
        }
    }

    /// Why `session` ended, if it ended recently.
    pub(crate) fn reason(&self, session: SessionHandle) -> Option<&RpcError> {
        self.reasons.get(&session)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.reasons.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_reasons_up_to_its_capacity() {
        let mut t = Tombstones::new(2);
        t.bury(SessionHandle(1), RpcError::PeerClosed);
        t.bury(SessionHandle(2), RpcError::PeerReset);
        t.bury(SessionHandle(3), RpcError::LocallyClosed);
        assert_eq!(t.len(), 2);
        assert_eq!(t.reason(SessionHandle(1)), None);
        assert_eq!(t.reason(SessionHandle(2)), Some(&RpcError::PeerReset));
        assert_eq!(t.reason(SessionHandle(3)), Some(&RpcError::LocallyClosed));
    }
}
