//! Command replies, encoded as RESP2 or RESP3 with the `redis-protocol` crate.

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::{resp2, resp3};

/// A command's reply, independent of the protocol version it is sent in.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK` and other status replies.
    Simple(&'static str),
    /// `-ERR ...`: the text after the minus sign, error code first.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3); sent as a flat array of alternating keys and values in RESP2,
    /// as Redis does.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple("OK");

    /// An error reply with Redis's generic `ERR` code.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// The reply Redis gives to a command with the wrong number of arguments.
    pub fn wrong_arity(command: &str) -> Reply {
        Reply::err(format_args!(
            "wrong number of arguments for '{}' command",
            command.to_ascii_lowercase()
        ))
    }

    /// The reply Redis gives when a key holds another type.
    pub fn wrong_type() -> Reply {
        Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// Appends the reply to `out` in RESP `version` (2 or 3).
    pub fn encode(&self, version: u8, out: &mut BytesMut) {
        // Encoding into a growable buffer cannot fail: `extend_encode` sizes the
        // buffer first and our frames are well formed.
        let result = if version >= 3 {
            resp3::encode::complete::extend_encode(out, &self.to_resp3(), false).map(drop)
        } else {
            resp2::encode::extend_encode(out, &self.to_resp2(), false).map(drop)
        };
        debug_assert!(result.is_ok(), "encoding a reply failed: {result:?}");
    }

    fn to_resp2(&self) -> resp2::types::BytesFrame {
        use resp2::types::BytesFrame as F;
        match self {
            Reply::Simple(s) => F::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Error(e) => F::Error(Str::from(e.as_str())),
            Reply::Integer(i) => F::Integer(*i),
            Reply::Bulk(b) => F::BulkString(b.clone()),
            Reply::Null => F::Null,
            Reply::Array(items) => F::Array(items.iter().map(Reply::to_resp2).collect()),
            Reply::Map(pairs) => {
                F::Array(pairs.iter().flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()]).collect())
            }
        }
    }

    fn to_resp3(&self) -> resp3::types::BytesFrame {
        use resp3::types::BytesFrame as F;
        match self {
            Reply::Simple(s) => {
                F::SimpleString { data: Bytes::from_static(s.as_bytes()), attributes: None }
            }
            Reply::Error(e) => F::SimpleError { data: Str::from(e.as_str()), attributes: None },
            Reply::Integer(i) => F::Number { data: *i, attributes: None },
            Reply::Bulk(b) => F::BlobString { data: b.clone(), attributes: None },
            Reply::Null => F::Null,
            Reply::Array(items) => {
                F::Array { data: items.iter().map(Reply::to_resp3).collect(), attributes: None }
            }
            Reply::Map(pairs) => F::Map {
                data: pairs.iter().map(|(k, v)| (k.to_resp3(), v.to_resp3())).collect(),
                attributes: None,
            },
        }
    }

    /// Parses one reply from the start of `bytes` (RESP2, or RESP3 if `version` is
    /// 3): the reply and the bytes it took, `Ok(None)` if incomplete.
    pub fn decode(version: u8, bytes: &Bytes) -> Result<Option<(Reply, usize)>, DecodeError> {
        if version >= 3 {
            let decoded = resp3::decode::complete::decode_bytes(bytes)
                .map_err(|e| DecodeError(e.to_string()))?;
            return Ok(decoded.map(|(frame, n)| (from_resp3(frame), n)));
        }
        let decoded = resp2::decode::decode_bytes(bytes).map_err(|e| DecodeError(e.to_string()))?;
        Ok(decoded.map(|(frame, n)| (from_resp2(frame), n)))
    }

    /// The bytes of a bulk or simple string reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// A reply that is not valid RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RESP reply: {0}")]
pub struct DecodeError(pub String);

/// Status replies a client may receive, interned so `Reply::Simple` keeps a static str.
fn intern_status(bytes: &[u8]) -> Reply {
    const KNOWN: [&str; 4] = ["OK", "PONG", "QUEUED", "NONE"];
    for known in KNOWN {
        if bytes == known.as_bytes() {
            return Reply::Simple(known);
        }
    }
    Reply::Bulk(Bytes::copy_from_slice(bytes))
}

fn from_resp2(frame: resp2::types::BytesFrame) -> Reply {
    use resp2::types::BytesFrame as F;
    match frame {
        F::SimpleString(s) => intern_status(&s),
        F::Error(e) => Reply::Error(e.to_string()),
        F::Integer(i) => Reply::Integer(i),
        F::BulkString(b) => Reply::Bulk(b),
        F::Array(items) => Reply::Array(items.into_iter().map(from_resp2).collect()),
        F::Null => Reply::Null,
    }
}

fn from_resp3(frame: resp3::types::BytesFrame) -> Reply {
    use resp3::types::BytesFrame as F;
    match frame {
        F::SimpleString { data, .. } => intern_status(&data),
        F::SimpleError { data, .. } => Reply::Error(data.to_string()),
        F::BlobError { data, .. } => Reply::Error(String::from_utf8_lossy(&data).into_owned()),
        F::Number { data, .. } => Reply::Integer(data),
        F::BlobString { data, .. } | F::VerbatimString { data, .. } | F::BigNumber { data, .. } => {
            Reply::Bulk(data)
        }
        F::ChunkedString(data) => Reply::Bulk(data),
        F::Boolean { data, .. } => Reply::Integer(i64::from(data)),
        F::Double { data, .. } => Reply::Bulk(Bytes::from(data.to_string())),
        F::Null => Reply::Null,
        F::Array { data, .. } | F::Push { data, .. } => {
            Reply::Array(data.into_iter().map(from_resp3).collect())
        }
        F::Set { data, .. } => Reply::Array(data.into_iter().map(from_resp3).collect()),
        F::Map { data, .. } => {
            Reply::Map(data.into_iter().map(|(k, v)| (from_resp3(k), from_resp3(v))).collect())
        }
        F::Hello { .. } => Reply::err("unexpected HELLO frame in a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply, version: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(version, &mut out);
        out.to_vec()
    }

    #[test]
    fn replies_encode_as_redis_sends_them_in_both_protocol_versions() {
        assert_eq!(encoded(&Reply::OK, 2), b"+OK\r\n");
        assert_eq!(encoded(&Reply::Integer(-7), 2), b":-7\r\n");
        assert_eq!(encoded(&Reply::bulk("hi"), 2), b"$2\r\nhi\r\n");
        assert_eq!(encoded(&Reply::Null, 2), b"$-1\r\n");
        assert_eq!(encoded(&Reply::Null, 3), b"_\r\n");
        assert_eq!(encoded(&Reply::err("boom"), 2), b"-ERR boom\r\n");
        let map = Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))]);
        assert_eq!(encoded(&map, 2), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
        assert_eq!(encoded(&map, 3), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    }

    #[test]
    fn encoded_replies_decode_back() {
        let reply = Reply::Array(vec![Reply::bulk("a"), Reply::Null, Reply::Integer(3)]);
        for version in [2, 3] {
            let bytes = Bytes::from(encoded(&reply, version));
            let (back, used) = Reply::decode(version, &bytes).unwrap().unwrap();
            assert_eq!((back, used), (reply.clone(), bytes.len()));
            assert_eq!(Reply::decode(version, &bytes.slice(..bytes.len() - 1)).unwrap(), None);
        }
    }
}
