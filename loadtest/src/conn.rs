//! A minimal pipelined RESP client over one tokio `TcpStream`.
//!
//! The load generator writes a window of encoded commands, then reads and
//! matches replies in order. Replies are only *scanned* on the hot path (their
//! length and whether they are errors), never decoded into values; control
//! commands (AUTH, PING, HLEN, ...) use [`RespConn::command`], which decodes a
//! full [`Value`]. Both RESP2 and the RESP3 reply types are understood.

use bytes::{Buf, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Nesting deeper than this is treated as a protocol error.
const MAX_DEPTH: usize = 64;

/// Errors of one connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot resolve {endpoint}: {source}")]
    Resolve {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("{endpoint} resolves to no address of the source address's family")]
    NoAddress { endpoint: String },
    #[error("bind source address {addr}: {source}")]
    Bind {
        addr: IpAddr,
        source: std::io::Error,
    },
    #[error("connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("connect to {endpoint}: timed out after {timeout:?}")]
    ConnectTimeout { endpoint: String, timeout: Duration },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("no reply for {0:?}")]
    ReplyTimeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("AUTH failed: {0}")]
    Auth(String),
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `HOST:PORT`.
    pub endpoint: String,
    /// Local address to bind before connecting (port chosen by the kernel).
    pub source_ip: Option<IpAddr>,
    /// Sent as `AUTH <password>` right after connecting.
    pub password: Option<String>,
    pub connect_timeout: Duration,
}

/// A decoded reply (control commands only; the hot path scans).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// Arrays, RESP3 sets and pushes; RESP3 maps as flattened key/value pairs.
    Array(Vec<Value>),
    /// RESP3 doubles, booleans and big numbers, as their text.
    Other(String),
}

/// What the hot path needs to know about a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// The full error text, e.g. `BUSY heavy class is full retry after 5ms`.
    Error(String),
}

/// First word of an error text (`ERR`, `BUSY`, `WRONGTYPE`, ...).
pub fn error_prefix(text: &str) -> &str {
    text.split_ascii_whitespace().next().unwrap_or("ERR")
}

/// Appends `args` to `out` as a RESP array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        push_decimal(out, a.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal digits of `n`.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Number of decimal digits of `n`.
pub fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Opens a TCP connection to `opts.endpoint`, bound to `opts.source_ip` if
/// set, with `TCP_NODELAY`.
pub async fn connect_tcp(opts: &ConnectOptions) -> Result<TcpStream, ConnError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&opts.endpoint)
        .await
        .map_err(|source| ConnError::Resolve {
            endpoint: opts.endpoint.clone(),
            source,
        })?
        .collect();
    let addr = addrs
        .iter()
        .copied()
        .find(|a| match opts.source_ip {
            Some(ip) => ip.is_ipv4() == a.is_ipv4(),
            None => true,
        })
        .ok_or_else(|| ConnError::NoAddress {
            endpoint: opts.endpoint.clone(),
        })?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = opts.source_ip {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|source| ConnError::Bind { addr: ip, source })?;
    }
    let stream = tokio::time::timeout(opts.connect_timeout, socket.connect(addr))
        .await
        .map_err(|_| ConnError::ConnectTimeout {
            endpoint: opts.endpoint.clone(),
            timeout: opts.connect_timeout,
        })?
        .map_err(|source| ConnError::Connect {
            endpoint: opts.endpoint.clone(),
            source,
        })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection with a write buffer and a read buffer.
pub struct RespConn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    scanner: Scanner,
}

/// An ACL user to log in as (`AUTH user password`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::str::FromStr for Login {
    type Err = String;

    /// `user:password`.
    fn from_str(s: &str) -> Result<Login, String> {
        let (user, password) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected USER:PASSWORD"))?;
        Ok(Login {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}

impl RespConn {
    /// Connects, then logs in as `login` when given (else as
    /// [`RespConn::connect`] does).
    pub async fn connect_as(
        opts: &ConnectOptions,
        login: Option<&Login>,
    ) -> Result<RespConn, ConnError> {
        let Some(login) = login else {
            return RespConn::connect(opts).await;
        };
        let mut conn = RespConn::connect(&ConnectOptions {
            password: None,
            ..opts.clone()
        })
        .await?;
        let auth: [&[u8]; 3] = [b"AUTH", login.user.as_bytes(), login.password.as_bytes()];
        if let Value::Error(e) = conn.command(&auth).await? {
            return Err(ConnError::Auth(e));
        }
        Ok(conn)
    }

    /// Connects and, when a password is set, authenticates.
    pub async fn connect(opts: &ConnectOptions) -> Result<RespConn, ConnError> {
        let stream = connect_tcp(opts).await?;
        let mut conn = RespConn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: Vec::with_capacity(64 * 1024),
            scanner: Scanner::default(),
        };
        if let Some(pw) = &opts.password {
            if let Value::Error(e) = conn.command(&[b"AUTH", pw.as_bytes()]).await? {
                return Err(ConnError::Auth(e));
            }
        }
        Ok(conn)
    }

    /// The pending output; encode commands into it, then [`flush`](Self::flush).
    pub fn wbuf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Writes all pending output.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads at least one more byte into the read buffer, waiting at most
    /// `timeout`.
    pub async fn read_more(&mut self, timeout: Duration) -> Result<(), ConnError> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.rbuf))
            .await
            .map_err(|_| ConnError::ReplyTimeout(timeout))??;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        Ok(())
    }

    /// The next complete reply already in the read buffer, scanned.
    pub fn try_next_reply(&mut self) -> Result<Option<Reply>, ConnError> {
        let Some(end) = self.scanner.advance(&self.rbuf)? else {
            return Ok(None);
        };
        let reply = match self.rbuf[0] {
            b'-' | b'!' => Reply::Error(error_text(&self.rbuf[..end])),
            _ => Reply::Ok,
        };
        self.rbuf.advance(end);
        Ok(Some(reply))
    }

    /// The next complete reply already in the read buffer, decoded.
    pub fn try_next_value(&mut self) -> Result<Option<Value>, ConnError> {
        let Some((value, end)) = parse(&self.rbuf, 0, 0)? else {
            return Ok(None);
        };
        self.rbuf.advance(end);
        // The bytes the scanner may have looked at are gone.
        self.scanner = Scanner::default();
        Ok(Some(value))
    }

    /// Sends one command and waits (up to 30 s) for its decoded reply.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Value, ConnError> {
        encode_command(&mut self.wbuf, args);
        self.flush().await?;
        loop {
            if let Some(v) = self.try_next_value()? {
                return Ok(v);
            }
            self.read_more(Duration::from_secs(30)).await?;
        }
    }
}

/// Text of a simple (`-...`) or blob (`!n\r\n...`) error reply.
fn error_text(raw: &[u8]) -> String {
    let body = if raw[0] == b'!' {
        let header_end = raw.iter().position(|&b| b == b'\n').unwrap_or(0) + 1;
        &raw[header_end.min(raw.len())..]
    } else {
        &raw[1..]
    };
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    String::from_utf8_lossy(body).into_owned()
}

/// The line starting at `pos` without its CRLF, and the position after it.
fn line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, ConnError> {
    let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let end = pos + nl;
    if end == pos || buf[end - 1] != b'\r' {
        return Err(ConnError::Protocol(format!(
            "line not CRLF-terminated: {:?}",
            String::from_utf8_lossy(&buf[pos..=end])
        )));
    }
    Ok(Some((&buf[pos + 1..end - 1], end + 1)))
}

fn number(text: &[u8]) -> Result<i64, ConnError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ConnError::Protocol(format!("bad length {:?}", String::from_utf8_lossy(text)))
        })
}

/// End position of the complete reply at the start of `buf`, or `None` if
/// the buffer does not hold all of it yet.
#[cfg(test)]
fn scan(buf: &[u8]) -> Result<Option<usize>, ConnError> {
    Scanner::default().advance(buf)
}

/// Finds where the reply at the start of the read buffer ends, resuming
/// where the previous call stopped: a multi-megabyte reply (an XREAD without
/// COUNT over a big stream) arrives in many reads, and rescanning it from
/// the start after each one would be quadratic.
#[derive(Debug, Default)]
struct Scanner {
    /// Start of the next element not yet scanned.
    pos: usize,
    /// Elements still missing in each open aggregate, outermost first.
    pending: Vec<u64>,
}

impl Scanner {
    fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, ConnError> {
        loop {
            if self.pos >= buf.len() {
                return Ok(None);
            }
            let kind = buf[self.pos];
            let Some((head, next)) = line(buf, self.pos)? else {
                return Ok(None);
            };
            let children = match kind {
                b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
                    self.pos = next;
                    0
                }
                b'$' | b'!' | b'=' => {
                    let n = number(head)?;
                    if n >= 0 {
                        let end = next.saturating_add(n as usize).saturating_add(2);
                        if end > buf.len() {
                            return Ok(None);
                        }
                        self.pos = end;
                    } else {
                        self.pos = next;
                    }
                    0
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = number(head)?.max(0) as u64;
                    let mut items = if matches!(kind, b'%' | b'|') {
                        n * 2
                    } else {
                        n
                    };
                    // An attribute is followed by the reply it annotates.
                    if kind == b'|' {
                        items += 1;
                    }
                    self.pos = next;
                    items
                }
                other => {
                    return Err(ConnError::Protocol(format!(
                        "unknown reply type byte {:?}",
                        other as char
                    )))
                }
            };
            if children > 0 {
                if self.pending.len() >= MAX_DEPTH {
                    return Err(ConnError::Protocol("reply nested too deeply".into()));
                }
                self.pending.push(children);
                continue;
            }
            // One element is complete; close every aggregate it completes.
            loop {
                let Some(left) = self.pending.last_mut() else {
                    let end = self.pos;
                    self.pos = 0;
                    return Ok(Some(end));
                };
                *left -= 1;
                if *left > 0 {
                    break;
                }
                self.pending.pop();
            }
        }
    }
}

/// Decodes the complete reply starting at `pos`.
fn parse(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Value, usize)>, ConnError> {
    if pos >= buf.len() {
        return Ok(None);
    }
    if depth > MAX_DEPTH {
        return Err(ConnError::Protocol("reply nested too deeply".into()));
    }
    let kind = buf[pos];
    let Some((head, next)) = line(buf, pos)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    let value = match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(number(head)?),
        b'_' => Value::Nil,
        b'#' | b',' | b'(' => Value::Other(text()),
        b'$' | b'!' | b'=' => {
            let n = number(head)?;
            if n < 0 {
                return Ok(Some((Value::Nil, next)));
            }
            let end = next + n as usize;
            if end + 2 > buf.len() {
                return Ok(None);
            }
            let body = &buf[next..end];
            let v = match kind {
                b'!' => Value::Error(String::from_utf8_lossy(body).into_owned()),
                // Verbatim strings carry a 4-byte "txt:" format prefix.
                b'=' if body.len() >= 4 => Value::Bulk(body[4..].to_vec()),
                _ => Value::Bulk(body.to_vec()),
            };
            return Ok(Some((v, end + 2)));
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(head)?;
            if n < 0 {
                return Ok(Some((Value::Nil, next)));
            }
            let items = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut out = Vec::with_capacity(items.min(1024) as usize);
            let mut at = next;
            for _ in 0..items {
                match parse(buf, at, depth + 1)? {
                    Some((v, end)) => {
                        out.push(v);
                        at = end;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // Drop the attribute, keep the reply it annotates.
                return parse(buf, at, depth + 1);
            }
            return Ok(Some((Value::Array(out), at)));
        }
        other => {
            return Err(ConnError::Protocol(format!(
                "unknown reply type byte {:?}",
                other as char
            )))
        }
    };
    Ok(Some((value, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn decimal_helpers_agree() {
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            assert_eq!(decimal_len(n), out.len());
        }
    }

    #[test]
    fn scans_complete_and_partial_replies() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR bad\r\n",
            b":12\r\n",
            b"$3\r\nabc\r\n",
            b"$-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"*-1\r\n",
            b"%1\r\n+k\r\n:1\r\n",
            b"|1\r\n+a\r\n+b\r\n:5\r\n",
            b"!5\r\nBUSY!\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"_\r\n",
        ];
        for case in cases {
            assert_eq!(scan(case).unwrap(), Some(case.len()), "{case:?}");
            for cut in 0..case.len() {
                assert_eq!(scan(&case[..cut]).unwrap(), None, "{case:?} cut {cut}");
                assert!(parse(&case[..cut], 0, 0).unwrap().is_none());
            }
            assert_eq!(parse(case, 0, 0).unwrap().unwrap().1, case.len());
        }
    }

    #[test]
    fn scanner_resumes_across_reads() {
        let reply: &[u8] = b"*3\r\n*2\r\n$2\r\nab\r\n:1\r\n%1\r\n+k\r\n$1\r\nv\r\n_\r\n+NEXT\r\n";
        let first = reply.len() - b"+NEXT\r\n".len();
        let mut s = Scanner::default();
        for cut in 0..first {
            assert_eq!(s.advance(&reply[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(s.advance(reply).unwrap(), Some(first));
        // The state is reset for the reply after it.
        assert_eq!(s.advance(&reply[first..]).unwrap(), Some(7));
    }

    #[test]
    fn decodes_values() {
        let v = parse(b"*3\r\n$1\r\na\r\n:7\r\n$-1\r\n", 0, 0)
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(
            v,
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(7), Value::Nil])
        );
        assert_eq!(
            parse(b"-BUSY full retry after 5ms\r\n", 0, 0)
                .unwrap()
                .unwrap()
                .0,
            Value::Error("BUSY full retry after 5ms".into())
        );
    }

    #[test]
    fn error_texts_and_prefixes() {
        assert_eq!(error_text(b"-BUSY x y\r\n"), "BUSY x y");
        assert_eq!(error_text(b"!6\r\nERR no\r\n"), "ERR no");
        assert_eq!(error_prefix("CLUSTERDOWN no leader"), "CLUSTERDOWN");
        assert_eq!(error_prefix(""), "ERR");
    }

    #[test]
    fn rejects_garbage() {
        assert!(scan(b"?x\r\n").is_err());
        assert!(scan(b"+OK\n").is_err());
        assert!(scan(b"$x\r\n").is_err());
    }
}
