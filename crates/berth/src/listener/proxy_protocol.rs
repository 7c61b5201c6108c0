//! The PROXY protocol (versions 1 and 2, as HAProxy's `send-proxy`/`send-proxy-v2`, nginx's
//! `proxy_protocol on` and AWS NLBs send it): the balancer prefixes each connection with the
//! client's address, so IAM conditions (`aws:SourceIp`) and the failed-login log see the
//! client rather than the balancer.
//!
//! Framing is done here (exactly the header's bytes are read, nothing after them, so the
//! stream then carries the TLS handshake or HTTP untouched); the header's contents are
//! parsed by the `ppp` crate. Only peers in `[server] proxy_protocol_from` may connect:
//! anyone else could claim any address.

use std::net::SocketAddr;

use ppp::HeaderResult;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// Version 2 headers carry addresses and TLVs; HAProxy's are a few dozen bytes. Larger
/// ones are refused rather than buffered.
const V2_MAX_PAYLOAD: usize = 2048;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    #[error("malformed PROXY header")]
    Malformed,
}

/// Reads one PROXY header from the start of `io` and returns the client's address it
/// names; `None` for a header that names none (v2 `LOCAL`, as balancers' own health
/// checks send, `UNKNOWN`, or a UNIX socket), which means "use the connection's own peer".
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = vec![0u8; 12];
    io.read_exact(&mut buf).await?;
    if buf == V2_SIGNATURE {
        // Version/command, family/protocol, then the payload's length (big-endian).
        let mut fixed = [0u8; 4];
        io.read_exact(&mut fixed).await?;
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if len > V2_MAX_PAYLOAD {
            return Err(ProxyHeaderError::TooLong(16 + V2_MAX_PAYLOAD));
        }
        buf.extend_from_slice(&fixed);
        let start = buf.len();
        buf.resize(start + len, 0);
        io.read_exact(buf.get_mut(start..).ok_or(ProxyHeaderError::Malformed)?)
            .await?;
    } else if buf.starts_with(b"PROXY ") {
        // Byte by byte up to CRLF: reading ahead would swallow the client's first bytes.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyHeaderError::TooLong(V1_MAX));
            }
            let mut byte = [0u8; 1];
            io.read_exact(&mut byte).await?;
            buf.push(byte[0]);
        }
    } else {
        return Err(ProxyHeaderError::Missing);
    }
    client_address(&buf)
}

/// The client's address in a complete header (exactly its bytes).
fn client_address(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use ppp::{v1, v2};
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => Ok(match (h.command, h.addresses) {
            (v2::Command::Local, _) => None,
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
        }),
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Err(ProxyHeaderError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut io = bytes;
        let r = read_header(&mut io).await;
        (r, io.to_vec())
    }

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_leaves_the_rest_of_the_stream() {
        let (r, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.11 51000 5000\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(r.unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (r, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 443 5000\r\n").await;
        assert_eq!(r.unwrap(), Some("[2001:db8::7]:443".parse().unwrap()));
        let (r, rest) = read(b"PROXY UNKNOWN\r\n\x16\x03\x01").await;
        assert_eq!(r.unwrap(), None);
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn version_2_names_the_client_and_local_names_none() {
        let mut payload = vec![203, 0, 113, 7, 10, 0, 0, 11];
        payload.extend_from_slice(&51000u16.to_be_bytes());
        payload.extend_from_slice(&5000u16.to_be_bytes());
        // A TLV (type 0x04, NOOP, 2 bytes) after the addresses is skipped with them.
        payload.extend_from_slice(&[0x04, 0, 2, 9, 9]);
        let mut bytes = v2(1, 0x11, &payload);
        bytes.extend_from_slice(b"rest");
        let (r, rest) = read(&bytes).await;
        assert_eq!(r.unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(rest, b"rest");

        let mut bytes = v2(0, 0x00, &[]);
        bytes.extend_from_slice(b"GET");
        let (r, rest) = read(&bytes).await;
        assert_eq!(r.unwrap(), None);
        assert_eq!(rest, b"GET");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let (r, _) = read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(r, Err(ProxyHeaderError::Missing)), "{r:?}");
        let (r, _) = read(b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n").await;
        assert!(matches!(r, Err(ProxyHeaderError::Malformed)), "{r:?}");
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (r, _) = read(long.as_bytes()).await;
        assert!(matches!(r, Err(ProxyHeaderError::TooLong(_))), "{r:?}");
        let (r, _) = read(&v2(1, 0x11, &vec![0u8; 3000])[..20]).await;
        assert!(matches!(r, Err(ProxyHeaderError::TooLong(_))), "{r:?}");
        // Cut short: the peer closed before the header ended.
        let (r, _) = read(b"PROXY TCP4 1.2.3.4").await;
        assert!(matches!(r, Err(ProxyHeaderError::Io(_))), "{r:?}");
        // A v2 header whose address block is shorter than its family needs.
        let (r, _) = read(&v2(1, 0x11, &[1, 2, 3])).await;
        assert!(matches!(r, Err(ProxyHeaderError::Malformed)), "{r:?}");
    }
}
