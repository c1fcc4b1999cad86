//! PROXY protocol v1 and v2 (HAProxy's spec), so that behind a TCP load
//! balancer the per-IP policies see the real client address.
//!
//! The header is read with exact-length reads (never past its end), so the
//! bytes that follow it are left in the socket for the RESP decoder. Off by
//! default; when on, only peers in the trusted ranges (none by default: the
//! balancers must be listed) must send a header. From any other peer a
//! header is never read, so it cannot change the client's address: the
//! connection is served with its TCP address and the header's bytes reach
//! the RESP decoder as client input (a v1 line is answered like an unknown
//! command). Anybody could otherwise claim any address and escape the
//! per-IP caps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1 headers are at most 107 bytes including CRLF.
const V1_MAX: usize = 107;
/// v2 address blocks larger than this are refused (TLVs included).
const V2_MAX_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("timed out reading the PROXY protocol header")]
    Timeout,
    #[error("connection closed before the PROXY protocol header ended")]
    Closed,
}

/// Settings for the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    pub trusted: Vec<IpNet>,
    pub header_timeout: Duration,
}

impl ProxyProtocol {
    /// Whether connections from `peer` must start with a header.
    pub fn expects_header_from(&self, peer: IpAddr) -> bool {
        let peer = crate::config::canonical_ip(peer);
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// Reads the header; returns the client's address (`None` for LOCAL /
    /// UNKNOWN, meaning "use the TCP peer").
    pub async fn read<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<Option<SocketAddr>, ProxyHeaderError> {
        tokio::time::timeout(self.header_timeout, read_header(stream))
            .await
            .map_err(|_| ProxyHeaderError::Timeout)?
    }
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyHeaderError::Closed)
}

/// Reads one v1 or v2 header from `stream`, consuming exactly its bytes.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    // Both versions are at least 15 bytes ("PROXY UNKNOWN\r\n").
    // The first 6 bytes tell a header from a client talking RESP directly
    // (which is refused at once instead of waiting for more bytes).
    let mut head = [0u8; 15];
    read_exact(stream, &mut head[..6]).await?;
    if &head[..6] != b"PROXY " && head[..6] != V2_SIGNATURE[..6] {
        return Err(ProxyHeaderError::Missing);
    }
    read_exact(stream, &mut head[6..]).await?;
    if head[..12] == V2_SIGNATURE {
        let mut rest = [0u8; 1];
        read_exact(stream, &mut rest).await?;
        let ver_cmd = head[12];
        let family = head[13];
        let len = usize::from(u16::from_be_bytes([head[14], rest[0]]));
        if ver_cmd >> 4 != 2 {
            return Err(ProxyHeaderError::Malformed("unsupported v2 version"));
        }
        if len > V2_MAX_LEN {
            return Err(ProxyHeaderError::Malformed("v2 address block too long"));
        }
        let mut block = vec![0u8; len];
        read_exact(stream, &mut block).await?;
        return parse_v2(ver_cmd & 0x0f, family, &block);
    }
    if &head[..6] != b"PROXY " {
        return Err(ProxyHeaderError::Missing);
    }
    let mut line = head.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::Malformed(
                "v1 header longer than 107 bytes",
            ));
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(&line[..line.len() - 2])
}

fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::Malformed("not ASCII"))?;
    let parts: Vec<&str> = text.split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyHeaderError::Malformed("bad v1 source address"))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(ProxyHeaderError::Malformed("v1 address family mismatch"));
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| ProxyHeaderError::Malformed("bad v1 source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyHeaderError::Malformed("bad v1 header")),
    }
}

fn parse_v2(command: u8, family: u8, block: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    match command {
        0x0 => return Ok(None), // LOCAL: health check from the balancer itself
        0x1 => {}
        _ => return Err(ProxyHeaderError::Malformed("unknown v2 command")),
    }
    match family {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2)
        0x11 => {
            let b = block
                .get(..12)
                .ok_or(ProxyHeaderError::Malformed("short v2 IPv4 block"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let port = u16::from_be_bytes([b[8], b[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2)
        0x21 => {
            let b = block
                .get(..36)
                .ok_or(ProxyHeaderError::Malformed("short v2 IPv6 block"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            let port = u16::from_be_bytes([b[32], b[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // UNSPEC, UDP, unix sockets: no usable client address.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let result = read_header(&mut cursor).await;
        let mut rest = Vec::new();
        let _ = cursor.read_to_end(&mut rest).await;
        (result, rest)
    }

    #[tokio::test]
    async fn v1_tcp4_tcp6_and_unknown() {
        let (r, rest) =
            read(b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 6379\r\n*1\r\n$4\r\nPING\r\n").await;
        assert_eq!(r, Ok(Some("10.9.8.7:5555".parse().unwrap())));
        assert_eq!(
            rest, b"*1\r\n$4\r\nPING\r\n",
            "nothing after the header is consumed"
        );
        let (r, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::1]:1".parse().unwrap())));
        let (r, rest) = read(b"PROXY UNKNOWN\r\nPING\r\n").await;
        assert_eq!(r, Ok(None));
        assert_eq!(rest, b"PING\r\n");
    }

    #[tokio::test]
    async fn v2_proxy_and_local() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x18, 0xeb,
        ]);
        h.extend_from_slice(b"+rest");
        let (r, rest) = read(&h).await;
        assert_eq!(r, Ok(Some("192.0.2.7:8080".parse().unwrap())));
        assert_eq!(rest, b"+rest");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0, Ok(None));
        let mut v6 = V2_SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let mut src = [0u8; 16];
        src[15] = 1;
        v6.extend_from_slice(&src);
        v6.extend_from_slice(&[0u8; 16]);
        v6.extend_from_slice(&[0, 80, 0, 81]);
        assert_eq!(read(&v6).await.0, Ok(Some("[::1]:80".parse().unwrap())));
    }

    #[tokio::test]
    async fn bad_or_missing_headers_are_errors() {
        assert_eq!(
            read(b"*1\r\n$4\r\nPING\r\n").await.0,
            Err(ProxyHeaderError::Missing)
        );
        assert!(matches!(
            read(b"PROXY TCP4 nonsense 10.0.0.1 1 2\r\n").await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n").await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(matches!(
            read(long.as_bytes()).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert_eq!(
            read(b"PROXY TCP4 1.2").await.0,
            Err(ProxyHeaderError::Closed)
        );
        let mut v3 = V2_SIGNATURE.to_vec();
        v3.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert!(matches!(
            read(&v3).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out() {
        let pp = ProxyProtocol {
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            header_timeout: Duration::from_secs(3),
        };
        assert!(pp.expects_header_from("10.1.1.1".parse().unwrap()));
        assert!(!pp.expects_header_from("192.168.1.1".parse().unwrap()));
        let (client, mut server) = tokio::io::duplex(64);
        let reading = tokio::spawn(async move { pp.read(&mut server).await });
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(reading.await.unwrap(), Err(ProxyHeaderError::Timeout));
        drop(client);
    }
}
