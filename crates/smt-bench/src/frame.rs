//! Length-prefixed messages for the TCP and TLS baselines: a 12-byte header (payload
//! length u32 LE, request id u64 LE) then the payload. The id lets one connection
//! carry many RPCs in flight; the echo server answers in arrival order.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

pub const HEADER: usize = 12;
/// Largest accepted payload (a guard against garbage lengths).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Buffer size of the buffered reader and writer on each side.
pub const BUF: usize = 64 * 1024;

pub fn encode(len: usize, id: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4..].copy_from_slice(&id.to_le_bytes());
    h
}

pub fn decode(h: &[u8; HEADER]) -> io::Result<(usize, u64)> {
    let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
    let id = u64::from_le_bytes(h[4..].try_into().expect("8 bytes"));
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} B")));
    }
    Ok((len, id))
}

/// Reads one frame into `payload` (resized); `Ok(None)` on a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    payload: &mut Vec<u8>,
) -> io::Result<Option<u64>> {
    let mut h = [0u8; HEADER];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (len, id) = decode(&h)?;
    payload.resize(len, 0);
    r.read_exact(payload).await?;
    Ok(Some(id))
}

/// Echo server loop for one connection: one task reads each request and writes it
/// back; responses are flushed when no further request is already buffered, so
/// pipelined small requests share system calls (and TLS records).
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> io::Result<()> {
    let mut io = BufReader::with_capacity(BUF, BufWriter::with_capacity(BUF, stream));
    let mut payload = Vec::new();
    while let Some(id) = read_frame(&mut io, &mut payload).await? {
        io.write_all(&encode(payload.len(), id)).await?;
        io.write_all(&payload).await?;
        if io.buffer().is_empty() {
            io.flush().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = encode(1 << 20, 0xdead_beef_0000_0001);
        assert_eq!(decode(&h).unwrap(), (1 << 20, 0xdead_beef_0000_0001));
        assert!(decode(&encode(MAX_PAYLOAD + 1, 0)).is_err());
    }

    #[tokio::test]
    async fn echo_answers_pipelined_frames_in_order() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(echo(server));
        let (mut r, mut w) = tokio::io::split(client);
        for (id, len) in [(1u64, 0usize), (2, 5), (3, 100_000)] {
            w.write_all(&encode(len, id)).await.unwrap();
            w.write_all(&vec![id as u8; len]).await.unwrap();
        }
        w.flush().await.unwrap();
        let mut buf = Vec::new();
        for (id, len) in [(1u64, 0usize), (2, 5), (3, 100_000)] {
            assert_eq!(read_frame(&mut r, &mut buf).await.unwrap(), Some(id));
            assert_eq!(buf, vec![id as u8; len]);
        }
        drop(w);
        drop(r);
        server.await.unwrap().unwrap();
    }
}
