//! Stream entry ids (`<ms>-<seq>`) and the ways commands spell them:
//! XADD's `*` / `<ms>-*` / explicit ids, range bounds (`-`, `+`, `(` for
//! exclusive, a bare `<ms>`), and XREAD's `$`.

use std::fmt;

use super::super::CmdError;

/// `ERR Invalid stream ID specified as stream command argument`.
pub const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// A stream entry id. Ordered by `(ms, seq)`, as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// 16 bytes whose byte order is id order (the entry key suffix).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<StreamId> {
        if bytes.len() != 16 {
            return None;
        }
        Some(StreamId {
            ms: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            seq: u64::from_be_bytes(bytes[8..].try_into().ok()?),
        })
    }

    /// The next id after this one, `None` at the maximum.
    pub fn successor(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The id before this one, `None` at 0-0.
    pub fn predecessor(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The id as a bulk-string reply payload.
    pub fn to_reply_bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses a decimal u64 the way Redis's `string2ull` does: digits only,
/// no sign, no spaces, no overflow.
fn parse_u64(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Parses `<ms>-<seq>` or `<ms>`; a missing seq becomes `missing_seq`.
/// `-` and `+` are accepted as the minimum and maximum id.
pub fn parse_id(raw: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_opt(raw, missing_seq).ok_or_else(|| INVALID_ID.into())
}

fn parse_id_opt(raw: &[u8], missing_seq: u64) -> Option<StreamId> {
    match raw {
        b"-" => return Some(StreamId::MIN),
        b"+" => return Some(StreamId::MAX),
        _ => {}
    }
    match raw.iter().position(|&b| b == b'-') {
        None => Some(StreamId::new(parse_u64(raw)?, missing_seq)),
        Some(dash) => Some(StreamId::new(
            parse_u64(&raw[..dash])?,
            parse_u64(&raw[dash + 1..])?,
        )),
    }
}

/// An XADD id argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the leader's clock, or last id + 1.
    Auto,
    /// `<ms>-*`: the given ms with the next free sequence number.
    AutoSeq(u64),
    /// A complete id.
    Explicit(StreamId),
}

/// Parses XADD's id argument (`*`, `<ms>-*`, `<ms>-<seq>`, `<ms>`).
pub fn parse_add_id(raw: &[u8]) -> Result<AddId, CmdError> {
    if raw == b"*" {
        return Ok(AddId::Auto);
    }
    if let Some(ms) = raw.strip_suffix(b"-*") {
        return parse_u64(ms)
            .map(AddId::AutoSeq)
            .ok_or_else(|| INVALID_ID.into());
    }
    if raw == b"-" || raw == b"+" {
        return Err(INVALID_ID.into());
    }
    parse_id(raw, 0).map(AddId::Explicit)
}

/// Which end of an XRANGE/XREVRANGE/XPENDING interval a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    Start,
    End,
}

/// Parses a range bound: `-`, `+`, `<id>`, `<ms>` (seq 0 as a start, max as
/// an end), or `(<id>` for exclusive; returns it as an inclusive id.
pub fn parse_range_bound(raw: &[u8], end: RangeEnd) -> Result<StreamId, CmdError> {
    let missing_seq = match end {
        RangeEnd::Start => 0,
        RangeEnd::End => u64::MAX,
    };
    if let Some(inner) = raw.strip_prefix(b"(") {
        if inner == b"-" || inner == b"+" {
            return Err(INVALID_ID.into());
        }
        let id = parse_id(inner, missing_seq)?;
        return match end {
            RangeEnd::Start => match id.successor() {
                Some(next) => Ok(next),
                None => Err("ERR invalid start ID for the interval".into()),
            },
            RangeEnd::End => match id.predecessor() {
                Some(prev) => Ok(prev),
                None => Err("ERR invalid end ID for the interval".into()),
            },
        };
    }
    parse_id(raw, missing_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_like_redis() {
        assert_eq!(parse_id(b"5-3", 0).unwrap(), StreamId::new(5, 3));
        assert_eq!(parse_id(b"5", 7).unwrap(), StreamId::new(5, 7));
        assert_eq!(parse_id(b"-", 0).unwrap(), StreamId::MIN);
        assert_eq!(parse_id(b"+", 0).unwrap(), StreamId::MAX);
        for bad in [
            &b""[..],
            b"a",
            b"1-",
            b"-1",
            b"1-2-3",
            b"+1",
            b" 1",
            b"99999999999999999999999",
        ] {
            assert!(
                parse_id(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(StreamId::new(1, 2).to_string(), "1-2");
    }

    #[test]
    fn byte_order_is_id_order() {
        let ids = [
            StreamId::new(0, 1),
            StreamId::new(0, 256),
            StreamId::new(1, 0),
            StreamId::new(1 << 40, 3),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
            assert_eq!(StreamId::from_bytes(&pair[1].to_bytes()), Some(pair[1]));
        }
    }

    #[test]
    fn add_ids() {
        assert_eq!(parse_add_id(b"*").unwrap(), AddId::Auto);
        assert_eq!(parse_add_id(b"12-*").unwrap(), AddId::AutoSeq(12));
        assert_eq!(
            parse_add_id(b"12").unwrap(),
            AddId::Explicit(StreamId::new(12, 0))
        );
        assert!(parse_add_id(b"x-*").is_err());
        assert!(parse_add_id(b"+").is_err());
    }

    #[test]
    fn exclusive_bounds() {
        assert_eq!(
            parse_range_bound(b"(5-3", RangeEnd::Start).unwrap(),
            StreamId::new(5, 4)
        );
        assert_eq!(
            parse_range_bound(b"(5", RangeEnd::End).unwrap(),
            StreamId::new(5, u64::MAX - 1)
        );
        assert!(parse_range_bound(b"(0-0", RangeEnd::End).is_err());
        assert!(parse_range_bound(b"(-", RangeEnd::Start).is_err());
        assert_eq!(
            parse_range_bound(b"7", RangeEnd::End).unwrap(),
            StreamId::new(7, u64::MAX)
        );
    }
}
