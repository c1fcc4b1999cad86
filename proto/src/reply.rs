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

/// Keyed results such as XREAD's `key -> entries`: RESP3 clients receive a
/// map, RESP2 clients an array of `[key, value]` arrays.
pub fn keyed(pairs: Vec<(Reply, Reply)>) -> Reply {
    let mut items = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        items.push(k);
        items.push(v);
    }
    of(Kind::Keyed(ReplyList { items }))
}

pub fn set(items: Vec<Reply>) -> Reply {
    of(Kind::Set(ReplyList { items }))
}

pub fn double(value: f64) -> Reply {
    of(Kind::Double(value))
}

/// A double that RESP2 sends in Redis's human long-double form
/// ([`format_human_double`]) and RESP3 as a double.
pub fn human_double(value: f64) -> Reply {
    of(Kind::HumanDouble(value))
}

/// Redis's `ld2string(.., LD_STR_HUMAN)` of a double: 17 decimals, trailing
/// zeros and a trailing '.' removed, "-0" written "0".
pub fn format_human_double(value: f64) -> String {
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".into();
    }
    text
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

    /// The items of an array reply (a copy); `None` for anything else.
    pub fn array_items(&self) -> Option<Vec<Reply>> {
        match &self.kind {
            Some(Kind::Array(list)) => Some(list.items.clone()),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn integer_value(&self) -> Option<i64> {
        match &self.kind {
            Some(Kind::Integer(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Status and error lines cannot carry CR/LF; Redis replaces them with
/// spaces.
pub fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Replies with at least this many elements (nested ones included) leave a
/// node's heavy threads already encoded ([`encode_if_large`]).
pub const PRE_ENCODE_MIN_ELEMENTS: usize = 256;

/// `reply` as [`Kind::Resp`] when it is an array of at least `min_elements`
/// elements (nested included) whose RESP2 and RESP3 encodings are the same;
/// otherwise `reply` unchanged.
///
/// Written here rather than through `redis_protocol`'s frames: those copy
/// every element into a frame tree first, the per-element cost this exists
/// to take off the request path.
pub fn encode_if_large(reply: Reply, min_elements: usize) -> Reply {
    let Some(Kind::Array(list)) = &reply.kind else {
        return reply;
    };
    let mut elements = 0;
    if !list.items.iter().all(|item| neutral(item, &mut elements)) || elements < min_elements {
        return reply;
    }
    let mut out = Vec::with_capacity(16 * elements);
    write_neutral(&reply, &mut out);
    of(Kind::Resp(out))
}

/// Whether `reply`'s RESP2 and RESP3 encodings are the same, counting its
/// elements.
fn neutral(reply: &Reply, elements: &mut usize) -> bool {
    *elements += 1;
    match &reply.kind {
        Some(Kind::Bulk(_) | Kind::Integer(_) | Kind::Status(_)) => true,
        Some(Kind::Array(list)) => list.items.iter().all(|item| neutral(item, elements)),
        _ => false,
    }
}

fn write_neutral(reply: &Reply, out: &mut Vec<u8>) {
    match &reply.kind {
        Some(Kind::Bulk(b)) => {
            out.push(b'$');
            out.extend_from_slice(b.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Some(Kind::Integer(i)) => {
            out.push(b':');
            out.extend_from_slice(i.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Some(Kind::Status(text)) => {
            out.push(b'+');
            out.extend_from_slice(one_line(text).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Some(Kind::Array(list)) => {
            out.push(b'*');
            out.extend_from_slice(list.items.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            for item in &list.items {
                write_neutral(item, out);
            }
        }
        // `neutral` admitted nothing else.
        _ => {}
    }
}

/// Formats a float the way Redis 7.2 does for scores and RESP2 doubles
/// (`d2string`): integral values within ±2^62 print as integers, others as
/// the shortest round-trip digits, in plain notation unless the exponent is
/// large (`1e+20`, `1e-07`-style rules of Redis's bundled `fpconv_dtoa`),
/// and `inf`/`-inf`/`nan` spelled out.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    const INTEGER_LIMIT: f64 = (i64::MAX / 2) as f64;
    if value.fract() == 0.0 && (-INTEGER_LIMIT..=INTEGER_LIMIT).contains(&value) {
        return format!("{}", value as i64);
    }
    // `{:e}` yields the shortest digits that round-trip: "1.2345e20".
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let ndigits = digits.len() as i32;
    // value = digits × 10^k
    let k = exponent - (ndigits - 1);
    let negative = value < 0.0;
    let mut out = String::with_capacity(24);
    if negative {
        out.push('-');
    }
    let exp_abs = exponent.abs();
    if k >= 0 && exp_abs < ndigits + 7 {
        out.push_str(&digits);
        out.push_str(&"0".repeat(k as usize));
    } else if k < 0 && (k > -7 || exp_abs < 4) {
        let offset = ndigits + k;
        if offset <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-offset) as usize));
            out.push_str(&digits);
        } else {
            out.push_str(&digits[..offset as usize]);
            out.push('.');
            out.push_str(&digits[offset as usize..]);
        }
    } else {
        let kept = ndigits.min(18 - negative as i32) as usize;
        out.push_str(&digits[..1]);
        if kept > 1 {
            out.push('.');
            out.push_str(&digits[1..kept]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&exp_abs.to_string());
    }
    out
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
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(-2.25), "-2.25");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e300), "1.5e+300");
        assert_eq!(format_double(0.00001), "0.00001");
        assert_eq!(format_double(1e-7), "1e-7");
        assert_eq!(format_double(123456.789), "123456.789");
        assert_eq!(format_double(f64::NAN), "nan");
    }

    #[test]
    fn large_protocol_neutral_arrays_are_encoded_and_others_are_not() {
        let nested = array(vec![bulk("1-0"), array(vec![bulk("f"), bulk("v")])]);
        let value = array(vec![
            bulk("a\r\nb"),
            integer(-7),
            status("OK"),
            nested,
            array(vec![]),
        ]);
        // 5 items + 2 in the entry + 2 in its fields = 9 elements.
        assert_eq!(encode_if_large(value.clone(), 10), value, "below the bound");
        let encoded = encode_if_large(value, 9);
        assert_eq!(
            encoded.kind,
            Some(Kind::Resp(
                b"*5\r\n$4\r\na\r\nb\r\n:-7\r\n+OK\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*0\r\n"
                    .to_vec()
            ))
        );
        // Anything whose RESP2 and RESP3 forms differ stays a tree.
        for differs in [
            array(vec![bulk("a"), null()]),
            array(vec![bulk("a"), double(1.5)]),
            array(vec![map(vec![(bulk("k"), bulk("v"))])]),
            array(vec![bulk("a"), error("ERR x")]),
            map(vec![(bulk("k"), bulk("v"))]),
            bulk("x"),
        ] {
            assert_eq!(encode_if_large(differs.clone(), 0), differs);
        }
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
