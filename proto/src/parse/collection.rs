//! Options shared by several collection families: the *SCAN cursor and
//! `MATCH`/`COUNT`, the random-pick counts of HRANDFIELD / SRANDMEMBER /
//! ZRANDMEMBER, and the MPOP tail of LMPOP / BLMPOP / ZMPOP / BZMPOP.

use crate::args::{parse_i64, Args};
use crate::errors;

pub const INVALID_CURSOR: &str = "ERR invalid cursor";

/// Redis 7.2's reply to an integer outside `[-LONG_MAX, LONG_MAX]` where it
/// negates the value (`getRangeLongFromObjectOrReply`).
pub const OUTSIDE_LONG_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

/// The default COUNT of SCAN and its collection variants, as in Redis.
pub const DEFAULT_SCAN_COUNT: u64 = 10;

/// Parses a SCAN cursor like Redis's `strtoul`: optional sign, decimal
/// digits, no spaces; "-1" wraps around.
pub fn cursor(raw: &[u8]) -> Result<u64, String> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, raw),
    };
    if !digits.iter().all(u8::is_ascii_digit) || (digits.is_empty() && raw != b"") {
        return Err(INVALID_CURSOR.into());
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0') as u64))
            .ok_or(INVALID_CURSOR)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The arguments of SCAN (with `TYPE`) and HSCAN/SSCAN/ZSCAN (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanArgs<'a> {
    pub cursor: u64,
    /// `None` for no MATCH or `MATCH *`.
    pub pattern: Option<&'a [u8]>,
    pub count: u64,
    /// SCAN's TYPE, as given.
    pub type_name: Option<String>,
}

/// Parses `cursor [MATCH pattern] [COUNT count]` (and `[TYPE type]` when
/// `with_type`, for SCAN) like Redis.
pub fn scan_args(args: &[Vec<u8>], with_type: bool) -> Result<ScanArgs<'_>, String> {
    let mut a = Args::new(args);
    let cursor = cursor(a.next_bytes()?)?;
    let mut out = ScanArgs {
        cursor,
        pattern: None,
        count: DEFAULT_SCAN_COUNT,
        type_name: None,
    };
    while !a.is_empty() {
        let opt = a.next_keyword()?;
        if a.is_empty() {
            return Err(errors::SYNTAX.into());
        }
        match opt.as_str() {
            "COUNT" => {
                let n = a.next_i64()?;
                if n < 1 {
                    return Err(errors::SYNTAX.into());
                }
                out.count = n as u64;
            }
            "MATCH" => {
                let p = a.next_bytes()?;
                out.pattern = (p != b"*").then_some(p);
            }
            "TYPE" if with_type => {
                out.type_name = Some(String::from_utf8_lossy(a.next_bytes()?).into_owned())
            }
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    Ok(out)
}

/// Parses HRANDFIELD/ZRANDMEMBER's `key [count [OPTION]]` (OPTION =
/// WITHVALUES or WITHSCORES; `args` include the key): whether the option is
/// given, and the parsed count if any. Redis checks the option before the
/// count.
pub fn random_args(args: &[Vec<u8>], option: &[u8]) -> Result<(bool, Option<(u64, bool)>), String> {
    let with_option = match args.get(2) {
        Some(opt) if args.len() == 3 && opt.eq_ignore_ascii_case(option) => true,
        Some(_) => return Err(errors::SYNTAX.into()),
        None => false,
    };
    let counted = match args.get(1) {
        Some(raw) => Some(random_count(raw)?),
        None => None,
    };
    Ok((with_option, counted))
}

/// Parses the count of HRANDFIELD/SRANDMEMBER/ZRANDMEMBER: `(k, distinct)`.
pub fn random_count(raw: &[u8]) -> Result<(u64, bool), String> {
    let n = parse_i64(raw).ok_or(errors::NOT_INTEGER)?;
    if n == i64::MIN {
        return Err(OUTSIDE_LONG_RANGE.into());
    }
    // Redis 7.2's fix for CVE-2023-25155: a count whose double (WITHSCORES,
    // WITHVALUES) would overflow is refused.
    if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(errors::VALUE_OUT_OF_RANGE.into());
    }
    Ok((n.unsigned_abs(), n >= 0))
}

/// The parsed tail of the MPOP commands (LMPOP/BLMPOP, ZMPOP/BZMPOP):
/// `numkeys key [key ...] <end> [COUNT count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpopArgs<'a> {
    pub keys: &'a [Vec<u8>],
    /// The second of the two `ends` words was given (RIGHT, MAX).
    pub second_end: bool,
    pub count: u64,
}

/// Parses an MPOP tail whose `<end>` is one of `ends` (`["LEFT", "RIGHT"]`,
/// `["MIN", "MAX"]`), with Redis's error texts.
pub fn mpop<'a>(args: &'a [Vec<u8>], ends: [&str; 2]) -> Result<MpopArgs<'a>, String> {
    let numkeys = match args.first().and_then(|a| parse_i64(a)) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0".into()),
    };
    let end_idx = numkeys.saturating_add(1);
    let Some(end) = args.get(end_idx) else {
        return Err(errors::SYNTAX.into());
    };
    let second_end = if end.eq_ignore_ascii_case(ends[0].as_bytes()) {
        false
    } else if end.eq_ignore_ascii_case(ends[1].as_bytes()) {
        true
    } else {
        return Err(errors::SYNTAX.into());
    };
    let mut count = None;
    let mut a = Args::new(&args[end_idx + 1..]);
    while !a.is_empty() {
        let opt = a.next_keyword()?;
        if opt == "COUNT" && count.is_none() && !a.is_empty() {
            match parse_i64(a.next_bytes()?) {
                Some(n) if n >= 1 => count = Some(n as u64),
                _ => return Err("ERR count should be greater than 0".into()),
            }
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    Ok(MpopArgs {
        keys: &args[1..end_idx],
        second_end,
        count: count.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(cursor(b"0"), Ok(0));
        assert_eq!(cursor(b"+7"), Ok(7));
        assert_eq!(cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(cursor(b""), Ok(0));
        for bad in [&b"x"[..], b"-", b" 1", b"1 ", b"18446744073709551616"] {
            assert_eq!(cursor(bad), Err(INVALID_CURSOR.into()));
        }
    }

    #[test]
    fn scan_options() {
        let a = argv("0 match k* count 5 type string");
        let s = scan_args(&a, true).unwrap();
        assert_eq!((s.cursor, s.pattern, s.count), (0, Some(&b"k*"[..]), 5));
        assert_eq!(s.type_name.as_deref(), Some("string"));
        assert!(scan_args(&a, false).is_err());
        assert_eq!(
            scan_args(&argv("0 count 0"), false),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            scan_args(&argv("0 count"), false),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(scan_args(&argv("0 match *"), false).unwrap().pattern, None);
    }

    #[test]
    fn random_counts_refuse_cve_2023_25155() {
        assert_eq!(random_count(b"-3"), Ok((3, false)));
        assert_eq!(
            random_count(b"-9223372036854775808"),
            Err(OUTSIDE_LONG_RANGE.into())
        );
        assert_eq!(
            random_count(b"-9223372036854775807"),
            Err(errors::VALUE_OUT_OF_RANGE.into())
        );
        assert_eq!(
            random_args(&argv("k 1 withvalues x"), b"WITHVALUES"),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            random_args(&argv("k 2 WithValues"), b"WITHVALUES"),
            Ok((true, Some((2, true))))
        );
    }

    #[test]
    fn mpop_tails() {
        let a = argv("2 a b right count 3");
        let m = mpop(&a, ["LEFT", "RIGHT"]).unwrap();
        assert_eq!((m.keys.len(), m.second_end, m.count), (2, true, 3));
        assert_eq!(
            mpop(&argv("0 a left"), ["LEFT", "RIGHT"]),
            Err("ERR numkeys should be greater than 0".into())
        );
        assert_eq!(
            mpop(&argv("1 a left count 0"), ["LEFT", "RIGHT"]),
            Err("ERR count should be greater than 0".into())
        );
        assert_eq!(
            mpop(&argv("9223372036854775807 a"), ["MIN", "MAX"]),
            Err(errors::SYNTAX.into())
        );
    }
}
