//! A cursor over a command's arguments with Redis's exact parse errors.

use crate::errors;

/// Parses `bytes` as a Redis integer (strict: no spaces, no '+', no leading
/// zeros beyond "0", fits in i64).
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || text == "-0"
    {
        return None;
    }
    text.parse().ok()
}

/// Parses `bytes` as a Redis float: decimal or exponent notation, `inf`,
/// `+inf`, `-inf` (any case); NaN and surrounding spaces are rejected.
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let value: f64 = text.parse().ok()?;
    // Like Redis's strtod checks: overflow to ±inf and underflow of a
    // non-zero literal to 0 are errors, not silently rounded values.
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let underflow = value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if value.is_nan() || value.is_infinite() || underflow {
        None
    } else {
        Some(value)
    }
}

/// A blocking command's timeout in seconds (`BLPOP`, `BZPOPMIN`...) as
/// milliseconds, with Redis's errors; `Ok(None)` means "block forever".
///
/// Like Redis, the value is scaled to milliseconds and truncated, so a
/// timeout under 1 ms blocks forever, and a value too large for a 64-bit
/// millisecond count is reported as negative (what the C cast yields).
pub fn parse_timeout_secs(bytes: &[u8], now_ms: i64) -> Result<Option<u64>, &'static str> {
    let text = std::str::from_utf8(bytes).unwrap_or("");
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => parse_f64(bytes).ok_or("ERR timeout is not a float or out of range")?,
    };
    let scaled = value * 1000.0;
    if scaled.is_nan() || scaled.abs() >= 9.223_372_036_854_775e18 {
        return Err("ERR timeout is negative");
    }
    let ms = scaled as i64;
    if ms < 0 {
        return Err("ERR timeout is negative");
    }
    if ms > i64::MAX - now_ms.max(0) {
        return Err("ERR timeout is out of range");
    }
    Ok((ms > 0).then_some(ms as u64))
}

/// Reads a command's arguments one by one. `Err` values are complete Redis
/// error texts, ready to be sent as the reply.
pub struct Args<'a> {
    items: &'a [Vec<u8>],
    pos: usize,
}

impl<'a> Args<'a> {
    /// `items` are the arguments after the command name.
    pub fn new(items: &'a [Vec<u8>]) -> Self {
        Args { items, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.items.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next argument, or `ERR syntax error` when there is none.
    pub fn next_bytes(&mut self) -> Result<&'a [u8], String> {
        let item = self
            .items
            .get(self.pos)
            .ok_or_else(|| errors::SYNTAX.to_string())?;
        self.pos += 1;
        Ok(item)
    }

    /// The next argument upper-cased, for matching option keywords.
    pub fn next_keyword(&mut self) -> Result<String, String> {
        let bytes = self.next_bytes()?;
        Ok(String::from_utf8_lossy(bytes).to_ascii_uppercase())
    }

    pub fn next_i64(&mut self) -> Result<i64, String> {
        let bytes = self.next_bytes()?;
        parse_i64(bytes).ok_or_else(|| errors::NOT_INTEGER.to_string())
    }

    pub fn next_f64(&mut self) -> Result<f64, String> {
        let bytes = self.next_bytes()?;
        parse_f64(bytes).ok_or_else(|| errors::NOT_FLOAT.to_string())
    }

    /// All arguments not read yet.
    pub fn rest(&mut self) -> &'a [Vec<u8>] {
        let rest = &self.items[self.pos..];
        self.pos = self.items.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b" 1", b"+1", b"01", b"1.0", b"abc", b"-0", b"-"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn floats_accept_inf_and_reject_nan() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"x"), None);
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b"-1e400"), None);
        assert_eq!(parse_f64(b"1e-400"), None);
        assert_eq!(parse_f64(b"0e10"), Some(0.0));
        assert_eq!(parse_f64(b"1e308"), Some(1e308));
    }

    #[test]
    fn args_cursor_reports_redis_errors() {
        let items = vec![b"EX".to_vec(), b"ten".to_vec()];
        let mut args = Args::new(&items);
        assert_eq!(args.next_keyword().unwrap(), "EX");
        assert_eq!(args.next_i64().unwrap_err(), errors::NOT_INTEGER);
        assert_eq!(args.next_bytes().unwrap_err(), errors::SYNTAX);
    }

    #[test]
    fn blocking_timeouts_follow_redis() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_timeout_secs(b"0", now), Ok(None));
        assert_eq!(parse_timeout_secs(b"0.0001", now), Ok(None));
        assert_eq!(parse_timeout_secs(b"1.5", now), Ok(Some(1500)));
        assert_eq!(parse_timeout_secs(b"2", now), Ok(Some(2000)));
        assert_eq!(parse_timeout_secs(b"-0.0001", now), Ok(None));
        assert_eq!(
            parse_timeout_secs(b"-1", now),
            Err("ERR timeout is negative")
        );
        assert_eq!(
            parse_timeout_secs(b"inf", now),
            Err("ERR timeout is negative")
        );
        assert_eq!(
            parse_timeout_secs(b"abc", now),
            Err("ERR timeout is not a float or out of range")
        );
        assert_eq!(
            parse_timeout_secs(b"9223372036854770", now),
            Err("ERR timeout is out of range")
        );
    }
}
