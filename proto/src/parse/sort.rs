//! SORT and SORT_RO, the pure parts of Redis 7.2's `sortCommandGeneric`:
//! the option walk (with its error texts and their order), the LIMIT
//! window, BY/GET pattern substitution (`lookupKeyByPattern`), the C
//! `strtod` reading of weights, and the ALPHA comparison. The node reads
//! the data and sorts with these.
//!
//! Redis reads options and patterns as C strings in a few places (keyword
//! comparison, the `*` and `->` searches): an argument is cut at its first
//! NUL byte there, as in Redis, so binary arguments answer exactly as it does.

use std::cmp::Ordering;

use crate::args::parse_i64;
use crate::errors;

pub const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";
pub const BY_DENIED: &str = "ERR BY option of SORT denied due to insufficient ACL permissions.";
pub const GET_DENIED: &str = "ERR GET option of SORT denied due to insufficient ACL permissions.";

/// SORT's options, in the form `sortCommandGeneric` keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortOptions<'a> {
    pub desc: bool,
    pub alpha: bool,
    /// LIMIT's offset and count as given (0 and -1 without LIMIT); they are
    /// clamped against the collection's length by [`window`].
    pub limit_start: i64,
    pub limit_count: i64,
    /// The last BY pattern.
    pub by: Option<&'a [u8]>,
    /// Set by any BY pattern without `*` (`BY nosort`) and never cleared by
    /// a later BY, as in Redis: the elements keep their stored order.
    pub dont_sort: bool,
    /// GET patterns in order (`#` is the element itself).
    pub get: Vec<&'a [u8]>,
    /// The last STORE destination (SORT only).
    pub store: Option<&'a [u8]>,
}

/// The part of `arg` a C string function sees: up to its first NUL.
fn c_str(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|&b| b == 0) {
        Some(nul) => &arg[..nul],
        None => arg,
    }
}

/// `strcasecmp(arg, word) == 0`.
fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// Parses the options after the key. `readonly` is SORT_RO (STORE is then
/// a syntax error). `full_key_access` is Redis's "the user may read every
/// key" (`ACLUserCheckCmdWithUnrestrictedKeyAccess`): without it, a BY
/// pattern with `*` and any GET are refused where they appear, since their
/// keys cannot be checked against the user's key patterns.
pub fn sort_options(
    options: &[Vec<u8>],
    readonly: bool,
    full_key_access: bool,
) -> Result<SortOptions<'_>, String> {
    let mut o = SortOptions {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        by: None,
        dont_sort: false,
        get: Vec::new(),
        store: None,
    };
    let mut j = 0;
    while j < options.len() {
        let arg = &options[j];
        let left = options.len() - j - 1;
        if is(arg, "asc") {
            o.desc = false;
        } else if is(arg, "desc") {
            o.desc = true;
        } else if is(arg, "alpha") {
            o.alpha = true;
        } else if is(arg, "limit") && left >= 2 {
            let number = |raw: &[u8]| parse_i64(raw).ok_or_else(|| errors::NOT_INTEGER.to_string());
            o.limit_start = number(&options[j + 1])?;
            o.limit_count = number(&options[j + 2])?;
            j += 2;
        } else if !readonly && is(arg, "store") && left >= 1 {
            o.store = Some(options[j + 1].as_slice());
            j += 1;
        } else if is(arg, "by") && left >= 1 {
            let pattern = options[j + 1].as_slice();
            o.by = Some(pattern);
            if !c_str(pattern).contains(&b'*') {
                o.dont_sort = true;
            } else if !full_key_access {
                return Err(BY_DENIED.into());
            }
            j += 1;
        } else if is(arg, "get") && left >= 1 {
            if !full_key_access {
                return Err(GET_DENIED.into());
            }
            o.get.push(options[j + 1].as_slice());
            j += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    Ok(o)
}

/// The output range `[start, end]` (0-based, inclusive; empty when
/// `end < start`) of `len` sorted elements under LIMIT, clamped exactly as
/// Redis clamps it: a negative offset is 0, a negative count is "all".
pub fn window(limit_start: i64, limit_count: i64, len: usize) -> (i64, i64) {
    let len = len as i64;
    let mut start = limit_start.clamp(0, len);
    let count = limit_count.clamp(-1, len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// What a BY or GET pattern names for one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `#`: the element itself.
    Element,
    /// The string value of `key`, or with `field` the value of that field
    /// of the hash at `key` (`pattern->field`).
    Key {
        key: Vec<u8>,
        field: Option<Vec<u8>>,
    },
    /// A pattern without `*`: never a value (nil).
    Nothing,
}

/// `lookupKeyByPattern`'s substitution: the first `*` becomes `element`;
/// a `->` after it (with at least one byte after the arrow) splits off a
/// hash field.
pub fn target(pattern: &[u8], element: &[u8]) -> Target {
    let text = c_str(pattern);
    if text == b"#" {
        return Target::Element;
    }
    let Some(star) = text.iter().position(|&b| b == b'*') else {
        return Target::Nothing;
    };
    let arrow = text[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|at| star + 1 + at)
        .filter(|&at| at + 2 < text.len());
    // Lengths come from the whole argument (Redis's sdslen), the searches
    // from its C-string part.
    let (postfix_end, field) = match arrow {
        Some(at) => (at, Some(pattern[at + 2..].to_vec())),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    Target::Key { key, field }
}

/// A weight as SORT reads it: C's `strtod` over the C string, which must
/// consume all of it (leading spaces allowed, trailing ones not), without
/// overflow, underflow or NaN. An empty weight is 0, as `strtod` leaves
/// nothing unread. `None`: Redis answers [`NOT_DOUBLE`].
pub fn weight(raw: &[u8]) -> Option<f64> {
    let text = c_str(raw);
    if text.is_empty() {
        return Some(0.0);
    }
    // C's isspace, vertical tab included.
    let spaces = text
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .count();
    let body = &text[spaces..];
    let (negative, unsigned) = match body.first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let lower = unsigned.to_ascii_lowercase();
    let magnitude = if lower == b"inf" || lower == b"infinity" {
        f64::INFINITY
    } else if lower.starts_with(b"0x") {
        hex_float(&unsigned[2..])?
    } else {
        decimal_float(unsigned)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// An unsigned decimal float (`digits[.digits][e[sign]digits]`), refused
/// where strtod reports ERANGE: overflow, or a non-zero value that
/// underflows to zero or to a subnormal.
fn decimal_float(text: &[u8]) -> Option<f64> {
    let ok_chars = text
        .iter()
        .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !ok_chars || text.first().is_some_and(|b| matches!(b, b'+' | b'-')) {
        return None;
    }
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    let mantissa = text
        .split(|&b| b == b'e' || b == b'E')
        .next()
        .unwrap_or(text);
    let nonzero = mantissa.iter().any(|b| (b'1'..=b'9').contains(b));
    if value.is_infinite() || (nonzero && value < f64::MIN_POSITIVE) {
        return None;
    }
    Some(value)
}

/// strtod's hexadecimal form after `0x`: `hexdigits[.hexdigits][p[sign]digits]`.
fn hex_float(text: &[u8]) -> Option<f64> {
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'p' || b == b'P') {
        Some(p) => (&text[..p], Some(&text[p + 1..])),
        None => (text, None),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    if int_part.len() + frac_part.len() == 0
        || !int_part.iter().chain(frac_part).all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    let mut exp: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e
                .strip_prefix(b"-")
                .or_else(|| e.strip_prefix(b"+"))
                .unwrap_or(e);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Beyond any double's range either way; keeps the sum finite.
            let n: i64 = std::str::from_utf8(digits).ok()?.parse().unwrap_or(100_000);
            if e.first() == Some(&b'-') {
                -n.min(100_000)
            } else {
                n.min(100_000)
            }
        }
    };
    // Digits are kept while a u64 has room for another; later ones only
    // scale the value (integer part) or are dropped (fraction).
    let mut bits: u64 = 0;
    let mut nonzero = false;
    for (i, &b) in int_part.iter().chain(frac_part).enumerate() {
        let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
        nonzero |= digit != 0;
        let in_fraction = i >= int_part.len();
        if bits < 1 << 59 {
            bits = bits * 16 + digit;
            if in_fraction {
                exp -= 4;
            }
        } else if !in_fraction {
            exp += 4;
        }
    }
    // Two steps, so a large mantissa times a tiny power of two does not
    // round the power to zero first.
    let exp = exp.clamp(-5000, 5000) as i32;
    let value = bits as f64 * 2f64.powi(exp / 2) * 2f64.powi(exp - exp / 2);
    if value.is_infinite() || (nonzero && value < f64::MIN_POSITIVE) {
        return None;
    }
    Some(value)
}

/// SORT ALPHA's order of two strings. A returned result is ordered by
/// `strcoll`, which compares C strings (up to a NUL); Rampart collates in
/// the C locale, so that is byte order. A STOREd result is ordered by
/// whole binary strings (Redis's `compareStringObjects`), as the stored
/// list must not depend on the locale.
pub fn alpha_cmp(a: &[u8], b: &[u8], store: bool) -> Ordering {
    if store {
        a.cmp(b)
    } else {
        c_str(a).cmp(c_str(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<Vec<u8>> {
        text.split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    fn parse(text: &str, readonly: bool) -> Result<SortOptions<'static>, String> {
        let args: &'static [Vec<u8>] = Box::leak(argv(text).into_boxed_slice());
        sort_options(args, readonly, true)
    }

    #[test]
    fn options_follow_redis_and_later_ones_win() {
        let o = parse(
            "BY w_* LIMIT 1 2 GET # GET h_*->f desc ALPHA asc STORE a STORE b",
            false,
        )
        .unwrap();
        assert!(!o.desc && o.alpha && !o.dont_sort);
        assert_eq!((o.limit_start, o.limit_count), (1, 2));
        assert_eq!(o.by, Some(&b"w_*"[..]));
        assert_eq!(o.get, vec![&b"#"[..], &b"h_*->f"[..]]);
        assert_eq!(o.store, Some(&b"b"[..]));
        // A BY without `*` switches sorting off for good.
        let o = parse("BY nosort BY w_*", false).unwrap();
        assert!(o.dont_sort);
        assert_eq!(o.by, Some(&b"w_*"[..]));
        assert_eq!(parse("", true).unwrap().limit_count, -1);
    }

    #[test]
    fn errors_are_redis_texts_in_argument_order() {
        let err = |text: &str, ro: bool| parse(text, ro).unwrap_err();
        assert_eq!(err("LIMIT 1", false), errors::SYNTAX);
        assert_eq!(err("LIMIT x 1", false), errors::NOT_INTEGER);
        assert_eq!(err("LIMIT 1 1.5", false), errors::NOT_INTEGER);
        assert_eq!(err("STORE", false), errors::SYNTAX);
        assert_eq!(err("STORE d", true), errors::SYNTAX);
        assert_eq!(err("BY", false), errors::SYNTAX);
        assert_eq!(err("GET", false), errors::SYNTAX);
        assert_eq!(err("NOSUCH", false), errors::SYNTAX);
        assert_eq!(err("LIMIT 0 1 FOO LIMIT x y", false), errors::SYNTAX);
        let args = argv("LIMIT 0 1 BY nosort BY w_* GET #");
        assert_eq!(sort_options(&args, false, false).unwrap_err(), BY_DENIED);
        let args = argv("BY nosort GET # BY w_*");
        assert_eq!(sort_options(&args, false, false).unwrap_err(), GET_DENIED);
        let args = argv("BY nosort LIMIT 0 1");
        assert!(sort_options(&args, false, false).is_ok());
        let args = argv("LIMIT a b GET #");
        assert_eq!(
            sort_options(&args, false, false).unwrap_err(),
            errors::NOT_INTEGER
        );
    }

    #[test]
    fn keywords_are_c_strings() {
        let args = vec![b"desc\0junk".to_vec(), b"BY".to_vec(), b"a\0*".to_vec()];
        let o = sort_options(&args, false, true).unwrap();
        assert!(o.desc && o.dont_sort, "the * after a NUL is not seen");
    }

    #[test]
    fn the_limit_window_is_clamped_like_redis() {
        assert_eq!(window(0, -1, 5), (0, 4));
        assert_eq!(window(-1, 2, 5), (0, 1));
        assert_eq!(window(10, 2, 5), (4, 3));
        assert_eq!(window(2, -5, 5), (2, 4));
        assert_eq!(window(3, 10, 5), (3, 4));
        assert_eq!(window(0, 0, 5), (0, -1));
        assert_eq!(window(0, -1, 0), (-1, -2));
        assert_eq!(window(i64::MAX, i64::MAX, 3), (2, 1));
        assert_eq!(window(i64::MIN, i64::MIN, 3), (0, 2));
    }

    #[test]
    fn patterns_substitute_the_first_star_and_split_a_field() {
        let key = |k: &str, f: Option<&str>| Target::Key {
            key: k.as_bytes().to_vec(),
            field: f.map(|f| f.as_bytes().to_vec()),
        };
        assert_eq!(target(b"#", b"x"), Target::Element);
        assert_eq!(target(b"nosort", b"x"), Target::Nothing);
        assert_eq!(target(b"w_*", b"x"), key("w_x", None));
        assert_eq!(target(b"w_*_*", b"x"), key("w_x_*", None));
        assert_eq!(target(b"h_*->f", b"x"), key("h_x", Some("f")));
        assert_eq!(target(b"h_*->", b"x"), key("h_x->", None));
        assert_eq!(target(b"a->b_*", b"x"), key("a->b_x", None));
        assert_eq!(target(b"h_*->f->g", b"x"), key("h_x", Some("f->g")));
        assert_eq!(target(b"##", b"x"), Target::Nothing);
        assert_eq!(target(b"#\0x", b"x"), Target::Element);
    }

    #[test]
    fn weights_read_like_strtod() {
        assert_eq!(weight(b"3"), Some(3.0));
        assert_eq!(weight(b"-2.5e1"), Some(-25.0));
        assert_eq!(weight(b"  7"), Some(7.0));
        assert_eq!(weight(b".5"), Some(0.5));
        assert_eq!(weight(b"5."), Some(5.0));
        assert_eq!(weight(b"+inf"), Some(f64::INFINITY));
        assert_eq!(weight(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(weight(b"0x10"), Some(16.0));
        assert_eq!(weight(b"0x1.8p1"), Some(3.0));
        assert_eq!(weight(b"-0X.8"), Some(-0.5));
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b"1\0junk"), Some(1.0));
        for bad in [
            &b"7 "[..],
            b"   ",
            b"abc",
            b"1e400",
            b"1e-400",
            b"nan",
            b"1e",
            b"0x",
            b"0x1p",
            b"--1",
            b"+-1",
            b"1,5",
        ] {
            assert_eq!(weight(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn alpha_order_is_bytes_and_c_strings_unless_stored() {
        assert_eq!(alpha_cmp(b"B", b"a", false), Ordering::Less);
        assert_eq!(alpha_cmp(b"ab", b"a", false), Ordering::Greater);
        assert_eq!(alpha_cmp(b"a\0x", b"a\0y", false), Ordering::Equal);
        assert_eq!(alpha_cmp(b"a\0x", b"a\0y", true), Ordering::Less);
    }
}
