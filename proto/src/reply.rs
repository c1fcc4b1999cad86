//! Constructors for [`Reply`], so command code reads like the Redis docs
//! (`reply::ok()`, `reply::bulk(v)`, `reply::error(errors::SYNTAX)`).

use crate::pb::reply::Kind;
use crate::pb::{NullValue, Reply, ReplyList, Verbatim};

fn of(kind: Kind) -> Reply {
    Reply { kind: Some(kind) }
}

/// `+OK`
pub fn ok() -> Reply {
    status("OK")
}

pub fn status(text: impl Into<String>) -> Reply {
    of(Kind::Status(text.into()))
}

/// An error reply; `text` starts with the error code (`ERR`, `WRONGTYPE`...).
pub fn error(text: impl Into<String>) -> Reply {
    of(Kind::Error(text.into()))
}

pub fn integer(value: i64) -> Reply {
    of(Kind::Integer(value))
}

pub fn bulk(value: impl Into<Vec<u8>>) -> Reply {
    of(Kind::Bulk(value.into()))
}

/// Null bulk string: `$-1` in RESP2, `_` in RESP3.
pub fn null() -> Reply {
    of(Kind::Null(NullValue {}))
}

/// Null array: `*-1` in RESP2, `_` in RESP3.
pub fn null_array() -> Reply {
    of(Kind::NullArray(NullValue {}))
}

pub fn array(items: Vec<Reply>) -> Reply {
    of(Kind::Array(ReplyList { items }))
}

pub fn bulk_array<I, B>(items: I) -> Reply
where
    I: IntoIterator<Item = B>,
    B: Into<Vec<u8>>,
{
    array(items.into_iter().map(bulk).collect())
}

/// A map given as key, value pairs. RESP2 clients receive a flat array.
pub fn map(pairs: Vec<(Reply, Reply)>) -> Reply {
    let mut items = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        items.push(k);
        items.push(v);
    }
    of(Kind::Map(ReplyList { items }))
}

/// Pairs such as ZRANGE ... WITHSCORES: RESP3 clients receive an array of
/// 2-element arrays, RESP2 clients the flat array `[a1, b1, a2, b2...]`.
pub fn pairs(pairs: Vec<(Reply, Reply)>) -> Reply {
    let mut items = Vec::with_capacity(pairs.len() * 2);
    for (a, b) in pairs {
        items.push(a);
        items.push(b);
    }
    of(Kind::Pairs(ReplyList { items }))
}

pub fn set(items: Vec<Reply>) -> Reply {
    of(Kind::Set(ReplyList { items }))
}

pub fn double(value: f64) -> Reply {
    of(Kind::Double(value))
}

pub fn boolean(value: bool) -> Reply {
    of(Kind::Boolean(value))
}

pub fn verbatim(format: &str, text: impl Into<Vec<u8>>) -> Reply {
    of(Kind::Verbatim(Verbatim {
        format: format.to_string(),
        text: text.into(),
    }))
}

impl Reply {
    pub fn is_error(&self) -> bool {
        matches!(self.kind, Some(Kind::Error(_)))
    }

    /// The error text when this reply is an error.
    pub fn error_text(&self) -> Option<&str> {
        match &self.kind {
            Some(Kind::Error(text)) => Some(text),
            _ => None,
        }
    }
}

/// Formats a float the way Redis does for INCRBYFLOAT and scores: the
/// shortest representation that round-trips, no exponent for ordinary
/// magnitudes, `inf`/`-inf` for infinities.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value == value.trunc() && value.abs() < 1e17 {
        // Integral values print without a fractional part ("3", not "3.0").
        return format!("{}", value as i64);
    }
    let text = format!("{}", value);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(10.5), "10.5");
        assert_eq!(format_double(-0.1), "-0.1");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(5.0e3), "5000");
    }

    #[test]
    fn map_flattens_pairs() {
        let m = map(vec![(bulk("a"), integer(1))]);
        match m.kind {
            Some(Kind::Map(list)) => assert_eq!(list.items.len(), 2),
            other => panic!("not a map: {other:?}"),
        }
    }
}
