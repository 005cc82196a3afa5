//! Commands as clients send them: RESP arrays of bulk strings (what redis-cli,
//! redis-benchmark and client libraries send), or inline commands (a line of
//! space-separated words, as typed into telnet).

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2;

/// Longest inline command line accepted (as Redis: 64 KiB).
const MAX_INLINE: usize = 64 * 1024;

/// A request that cannot be parsed: the connection answers with this error and
/// closes, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// Takes one command off the front of `buf`: its arguments (command name first),
/// `Ok(None)` if more bytes are needed. An empty inline line is skipped.
pub fn next_command(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else { return Ok(None) };
        if first == b'*' {
            let decoded =
                resp2::decode::decode_bytes_mut(buf).map_err(|e| ProtocolError(e.to_string()))?;
            let Some((frame, _, _)) = decoded else { return Ok(None) };
            return command_from_frame(frame).map(Some);
        }
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_INLINE {
                return Err(ProtocolError("too big inline request".into()));
            }
            return Ok(None);
        };
        let line = buf.split_to(end + 1).freeze();
        let words: Vec<Bytes> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| line.slice_ref(w))
            .collect();
        if !words.is_empty() {
            return Ok(Some(words));
        }
    }
}

/// Parses a whole message as exactly one command (how SMT carries them: one command
/// per request message).
pub fn single_command(message: &Bytes) -> Result<Vec<Bytes>, ProtocolError> {
    let mut buf = BytesMut::from(&message[..]);
    let command = next_command(&mut buf)?
        .ok_or_else(|| ProtocolError("incomplete command in the request message".into()))?;
    if !buf.is_empty() {
        return Err(ProtocolError("one command per request message".into()));
    }
    Ok(command)
}

fn command_from_frame(frame: resp2::types::BytesFrame) -> Result<Vec<Bytes>, ProtocolError> {
    use resp2::types::BytesFrame as F;
    let F::Array(items) = frame else {
        return Err(ProtocolError("expected an array of bulk strings".into()));
    };
    if items.is_empty() {
        return Err(ProtocolError("empty command".into()));
    }
    items
        .into_iter()
        .map(|item| match item {
            F::BulkString(b) | F::SimpleString(b) => Ok(b),
            F::Integer(i) => Ok(Bytes::from(i.to_string())),
            _ => Err(ProtocolError("expected '$', got something else".into())),
        })
        .collect()
}

/// Encodes a command as a RESP array of bulk strings (what a client sends).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    use resp2::types::BytesFrame as F;
    let frame =
        F::Array(args.iter().map(|a| F::BulkString(Bytes::copy_from_slice(a.as_ref()))).collect());
    // Growable buffer, well-formed frame: cannot fail.
    let result = resp2::encode::extend_encode(out, &frame, false);
    debug_assert!(result.is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_resp_commands_come_off_one_at_a_time_and_partial_ones_wait() {
        let mut buf =
            BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3"[..]);
        assert_eq!(next_command(&mut buf).unwrap().unwrap(), vec![Bytes::from("PING")]);
        assert_eq!(
            next_command(&mut buf).unwrap().unwrap(),
            vec![Bytes::from("GET"), Bytes::from("k")]
        );
        assert_eq!(next_command(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\r\nGET\r\n$1\r\nj\r\n");
        assert_eq!(next_command(&mut buf).unwrap().unwrap()[1], Bytes::from("j"));
        assert!(buf.is_empty());
    }

    #[test]
    fn inline_commands_split_on_whitespace_and_blank_lines_are_skipped() {
        let mut buf = BytesMut::from(&b"\r\nSET  k v\r\nPING"[..]);
        let cmd = next_command(&mut buf).unwrap().unwrap();
        assert_eq!(cmd, vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")]);
        assert_eq!(next_command(&mut buf).unwrap(), None);
    }

    #[test]
    fn malformed_requests_are_protocol_errors() {
        let mut buf = BytesMut::from(&b"*1\r\n:5\r\n"[..]);
        assert!(next_command(&mut buf).is_ok(), "integers are tolerated as arguments");
        let mut buf = BytesMut::from(&b"*0\r\n"[..]);
        assert!(next_command(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"*1\r\n*1\r\n$1\r\nx\r\n"[..]);
        assert!(next_command(&mut buf).is_err(), "nested arrays");
        let mut buf = BytesMut::from(vec![b'a'; MAX_INLINE + 1].as_slice());
        assert!(next_command(&mut buf).is_err());
    }

    #[test]
    fn a_message_holds_exactly_one_command() {
        let mut one = BytesMut::new();
        encode_command(&["GET", "k"], &mut one);
        let one = one.freeze();
        assert_eq!(single_command(&one).unwrap().len(), 2);
        let two = Bytes::from([&one[..], &one[..]].concat());
        assert!(single_command(&two).is_err());
        assert!(single_command(&one.slice(..one.len() - 2)).is_err());
    }
}
