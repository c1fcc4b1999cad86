//! Request decoding: RESP multibulk arrays of bulk strings and inline commands.
//!
//! The parser is our own rather than `redis_protocol`'s decoder because the
//! limits must be enforced on the *declared* sizes, before anything is
//! buffered, and with Redis's exact error texts; `redis_protocol` only reports
//! "incomplete" for a frame announcing 1 GB and knows nothing of inline
//! commands. It follows Redis's `processMultibulkBuffer`/`processInlineBuffer`:
//! state survives between reads, so a large bulk arriving in many packets is
//! not rescanned, and no buffer is ever sized from a length the client sent.

use bytes::{Buf, BytesMut};

use super::inline;
/// What the decoder yields: the one command type shared with the nodes.
pub use rampart_proto::Argv;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command, and the longest
/// `*<n>` / `$<n>` header line we wait for.
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// The largest multibulk (argument count) accepted.
pub const MAX_MULTIBULK_LEN: i64 = 1024 * 1024;
/// Redis's default `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// A malformed request. The connection answers
/// `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(text: impl Into<String>) -> Self {
        ProtocolError(text.into())
    }

    /// The error reply text (without the leading '-').
    pub fn reply_text(&self) -> String {
        format!("ERR {self}")
    }
}

#[derive(Debug)]
enum State {
    /// Between commands.
    Idle,
    /// Inside `*<n>`: `remaining` bulks still to read.
    Multibulk {
        remaining: usize,
        args: Argv,
        args_bytes: usize,
        /// The declared length of the bulk being read, once its header is in.
        bulk_len: Option<usize>,
    },
}

/// Incremental decoder for one connection's requests.
#[derive(Debug)]
pub struct RequestDecoder {
    max_bulk_len: usize,
    state: State,
}

impl RequestDecoder {
    pub fn new(max_bulk_len: usize) -> Self {
        RequestDecoder {
            max_bulk_len,
            state: State::Idle,
        }
    }

    /// Bytes of a partially received command already moved out of the read
    /// buffer (counts toward the query buffer limit).
    pub fn pending_bytes(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::Multibulk { args_bytes, .. } => *args_bytes,
        }
    }

    /// Decodes the next complete command from `buf`, consuming its bytes.
    /// `Ok(None)` means more bytes are needed. Empty commands (`*0`, blank
    /// inline lines) are skipped, as Redis does.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Argv>, ProtocolError> {
        loop {
            if let State::Idle = self.state {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] != b'*' {
                    match decode_inline(buf)? {
                        Some(argv) if argv.is_empty() => continue,
                        other => return Ok(other),
                    }
                }
                let Some(count) = read_header_line(buf, "too big mbulk count string")? else {
                    return Ok(None);
                };
                let count = match inline_int(&count[1..]) {
                    Some(n) if n <= MAX_MULTIBULK_LEN => n,
                    _ => return Err(ProtocolError::new("invalid multibulk length")),
                };
                if count <= 0 {
                    continue;
                }
                let count = count as usize;
                self.state = State::Multibulk {
                    remaining: count,
                    // Bounded: a client declaring a million arguments gets
                    // room for them only as they actually arrive.
                    args: Vec::with_capacity(count.min(1024)),
                    args_bytes: 0,
                    bulk_len: None,
                };
            }
            return self.decode_bulks(buf);
        }
    }

    fn decode_bulks(&mut self, buf: &mut BytesMut) -> Result<Option<Argv>, ProtocolError> {
        let State::Multibulk {
            remaining,
            args,
            args_bytes,
            bulk_len,
        } = &mut self.state
        else {
            return Ok(None);
        };
        while *remaining > 0 {
            let len = match *bulk_len {
                Some(len) => len,
                None => {
                    let Some(line) = read_header_line(buf, "too big bulk count string")? else {
                        return Ok(None);
                    };
                    if line[0] != b'$' {
                        return Err(ProtocolError(format!(
                            "expected '$', got '{}'",
                            line[0] as char
                        )));
                    }
                    let len = match inline_int(&line[1..]) {
                        Some(n) if n >= 0 && n as u64 <= self.max_bulk_len as u64 => n as usize,
                        _ => return Err(ProtocolError::new("invalid bulk length")),
                    };
                    *bulk_len = Some(len);
                    len
                }
            };
            // Wait for the payload and its CRLF; the read buffer grows with
            // what actually arrives, never with what was declared.
            if buf.len() < len + 2 {
                return Ok(None);
            }
            let arg = buf.split_to(len).to_vec();
            // Like Redis, the two bytes after the payload are skipped unchecked.
            buf.advance(2);
            *args_bytes += arg.len();
            args.push(arg);
            *bulk_len = None;
            *remaining -= 1;
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Multibulk { args, .. } => Ok(Some(args)),
            State::Idle => Ok(None),
        }
    }
}

/// Takes one `\r\n`-terminated header line (`*3`, `$5`) off `buf`. Like
/// Redis, a line is located by its '\r'; without one after 64 KB the request
/// is refused with `too_big`.
fn read_header_line(buf: &mut BytesMut, too_big: &str) -> Result<Option<Vec<u8>>, ProtocolError> {
    let Some(cr) = buf.iter().position(|&b| b == b'\r') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::new(too_big));
        }
        return Ok(None);
    };
    if cr > INLINE_MAX_SIZE {
        return Err(ProtocolError::new(too_big));
    }
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    let line = buf.split_to(cr).to_vec();
    buf.advance(2);
    if line.is_empty() {
        // Only possible for a bulk header (a multibulk line starts with '*');
        // Redis reports the '\r' it found where '$' belonged.
        return Err(ProtocolError::new("expected '$', got '\r'"));
    }
    Ok(Some(line))
}

/// Redis's `string2ll`: optional '-', digits without leading zeros.
fn inline_int(bytes: &[u8]) -> Option<i64> {
    rampart_proto::args::parse_i64(bytes)
}

/// One inline command line (`PING\r\n`, `SET k "a b"\n`).
fn decode_inline(buf: &mut BytesMut) -> Result<Option<Argv>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    if nl > INLINE_MAX_SIZE {
        return Err(ProtocolError::new("too big inline request"));
    }
    let mut line = &buf[..nl];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let argv = inline::split_args(line)
        .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
    buf.advance(nl + 1);
    Ok(Some(argv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn decoder() -> RequestDecoder {
        RequestDecoder::new(DEFAULT_MAX_BULK_LEN)
    }

    fn decode_all(input: &[u8]) -> (Vec<Argv>, Option<ProtocolError>) {
        let mut d = decoder();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut buf) {
                Ok(Some(argv)) => out.push(argv),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn argv(items: &[&str]) -> Argv {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn decodes_pipelined_multibulk_and_inline() {
        let (cmds, err) =
            decode_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nECHO hi\r\n");
        assert_eq!(err, None);
        assert_eq!(
            cmds,
            vec![
                argv(&["PING"]),
                argv(&["SET", "k", ""]),
                argv(&["ECHO", "hi"])
            ]
        );
    }

    #[test]
    fn byte_by_byte_delivery_gives_the_same_commands() {
        let input = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\nPING\r\n";
        let mut d = decoder();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(argv) = d.decode(&mut buf).unwrap() {
                out.push(argv);
            }
        }
        assert_eq!(out, vec![argv(&["ECHO", "hello"]), argv(&["PING"])]);
    }

    #[test]
    fn empty_commands_are_skipped() {
        let (cmds, err) = decode_all(b"*0\r\n*-1\r\n\r\n   \r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(err, None);
        assert_eq!(cmds, vec![argv(&["PING"])]);
    }

    #[test]
    fn bulk_over_the_limit_is_refused_before_buffering() {
        let mut d = RequestDecoder::new(10);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err().reply_text(),
            "ERR Protocol error: invalid bulk length"
        );
        let (_, err) = decode_all(b"*1\r\n$1073741824\r\n");
        assert_eq!(err.unwrap().0, "invalid bulk length");
    }

    #[test]
    fn declared_large_bulk_does_not_reserve_memory() {
        let mut d = decoder();
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1024 * 1024, "capacity {}", buf.capacity());
        assert_eq!(d.pending_bytes(), 0);
    }

    #[test]
    fn bad_lengths_and_types_get_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "invalid multibulk length"),
            (b"*1048577\r\n", "invalid multibulk length"),
            (b"*1\r\nx\r\n", "expected '$', got 'x'"),
            (b"*2\r\n$1\r\na\r\n*1\r\n", "expected '$', got '*'"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$x\r\n", "invalid bulk length"),
            (b"*1\r\n$01\r\n", "invalid bulk length"),
            (b"SET k \"abc\r\n", "unbalanced quotes in request"),
            (b"SET k 'a'b\r\n", "unbalanced quotes in request"),
        ];
        for (input, text) in cases {
            let (_, err) = decode_all(input);
            assert_eq!(
                err.map(|e| e.0).as_deref(),
                Some(*text),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn multibulk_limit_is_inclusive() {
        let (cmds, err) = decode_all(b"*1048576\r\n");
        assert!(cmds.is_empty() && err.is_none());
    }

    #[test]
    fn oversized_lines_are_refused() {
        let long = vec![b'a'; INLINE_MAX_SIZE + 1];
        let (_, err) = decode_all(&long);
        assert_eq!(err.unwrap().0, "too big inline request");
        let mut header = b"*".to_vec();
        header.extend(vec![b'1'; INLINE_MAX_SIZE + 1]);
        let (_, err) = decode_all(&header);
        assert_eq!(err.unwrap().0, "too big mbulk count string");
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(vec![b'1'; INLINE_MAX_SIZE + 1]);
        let (_, err) = decode_all(&bulk);
        assert_eq!(err.unwrap().0, "too big bulk count string");
    }

    #[test]
    fn valid_commands_before_an_error_are_kept() {
        let (cmds, err) = decode_all(b"PING\r\n*1\r\n$x\r\n");
        assert_eq!(cmds, vec![argv(&["PING"])]);
        assert!(err.is_some());
    }

    #[test]
    fn random_garbage_and_truncations_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let alphabet = b"*$\r\n0123456789-+ \"'\\xab:";
        let valid = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nPING \"a\\x41\" 'b'\r\n";
        for round in 0..20_000 {
            let mut input: Vec<u8> = if round % 3 == 0 {
                // Truncations and single-byte corruptions of a valid pipeline.
                let cut = rng.gen_range(0..=valid.len());
                let mut v = valid[..cut].to_vec();
                if !v.is_empty() && rng.gen_bool(0.5) {
                    let i = rng.gen_range(0..v.len());
                    v[i] = rng.gen();
                }
                v
            } else {
                let len = rng.gen_range(0..64);
                (0..len)
                    .map(|_| {
                        if rng.gen_bool(0.7) {
                            alphabet[rng.gen_range(0..alphabet.len())]
                        } else {
                            rng.gen()
                        }
                    })
                    .collect()
            };
            // Feed in random chunks, as the network would.
            let mut d = RequestDecoder::new(1024);
            let mut buf = BytesMut::new();
            while !input.is_empty() {
                let n = rng.gen_range(1..=input.len());
                buf.extend_from_slice(&input[..n]);
                input.drain(..n);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => {
                            input.clear();
                            break;
                        }
                    }
                }
            }
        }
    }
}
