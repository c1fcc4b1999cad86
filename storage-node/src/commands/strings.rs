//! String commands: GET, SET and its variants, MGET/MSET, GETEX/GETDEL,
//! APPEND, ranges and counters. Values live inline in the meta record, so
//! every command here is one point read plus at most one meta write.

use rampart_proto::args::{parse_f64, parse_i64, Args};
use rampart_proto::parse::strings::{ExpireKind, LcsOptions};
use rampart_proto::{errors, parse, reply, Reply};

use super::{CmdError, CmdResult};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{live_meta, DataRead, Txn};

/// The largest string value a command may build: the node's
/// `proto-max-bulk-len` ([`crate::limits`]).
pub fn max_string_len() -> u64 {
    crate::limits::max_bulk_len() as u64
}

const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";

/// Time unit of SETEX / PSETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

/// The live string value of `key`: `None` when absent, WRONGTYPE when the
/// key holds another type.
pub(super) fn live_string<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    now: i64,
) -> Result<Option<Meta>, CmdError> {
    match live_meta(r, key, now)? {
        Some(meta) if meta.kind != ValueType::String => Err(errors::WRONGTYPE.into()),
        other => Ok(other),
    }
}

fn bulk_or_null(value: Option<Vec<u8>>) -> Reply {
    match value {
        Some(value) => reply::bulk(value),
        None => reply::null(),
    }
}

/// Stores a string value, or removes the key when its deadline has already
/// passed (an absolute time in the past makes the key vanish at once).
fn write_string(
    txn: &mut Txn<'_>,
    key: &[u8],
    value: Vec<u8>,
    expire_at_ms: i64,
    now: i64,
) -> Result<(), CmdError> {
    if expire_at_ms != 0 && expire_at_ms <= now {
        txn.delete_key(key)?;
    } else {
        txn.put_meta(key, &Meta::string(value, expire_at_ms))?;
    }
    Ok(())
}

/// [`rampart_proto::parse::strings::expire_deadline`] as a command error.
fn expire_deadline(kind: ExpireKind, raw: &[u8], now: i64, command: &str) -> Result<i64, CmdError> {
    Ok(parse::strings::expire_deadline(kind, raw, now, command)?)
}

fn key_arg(args: &[Vec<u8>]) -> Result<&[u8], CmdError> {
    Ok(Args::new(args).next_bytes()?)
}

pub fn get<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = key_arg(args)?;
    Ok(bulk_or_null(live_string(r, key, now)?.map(|m| m.payload)))
}

pub fn mget<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut items = Vec::with_capacity(args.len());
    for key in args {
        items.push(match live_meta(r, key, now)? {
            Some(meta) if meta.kind == ValueType::String => reply::bulk(meta.payload),
            _ => reply::null(),
        });
    }
    Ok(reply::array(items))
}

pub fn strlen<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = key_arg(args)?;
    let len = live_string(r, key, now)?.map_or(0, |m| m.payload.len());
    Ok(reply::integer(len as i64))
}

pub fn getrange<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let mut start = a.next_i64()?;
    let mut end = a.next_i64()?;
    let Some(meta) = live_string(r, key, now)? else {
        return Ok(reply::bulk(Vec::new()));
    };
    let value = meta.payload;
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(reply::bulk(Vec::new()));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if len == 0 || start > end {
        return Ok(reply::bulk(Vec::new()));
    }
    Ok(reply::bulk(value[start as usize..=end as usize].to_vec()))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest
/// common subsequence by the classic table, which Redis bounds by
/// `proto-max-bulk-len` bytes of transient memory.
pub fn lcs<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let (key_a, key_b) = (a.next_bytes()?, a.next_bytes()?);
    let value = |key| match live_meta(r, key, now)? {
        Some(meta) if meta.kind != ValueType::String => Err(CmdError::from(
            "ERR The specified keys must contain string values",
        )),
        other => Ok(other.map_or_else(Vec::new, |m| m.payload)),
    };
    let (va, vb) = (value(key_a)?, value(key_b)?);
    let LcsOptions {
        len: get_len,
        idx: get_idx,
        with_match_len: with_len,
        min_match_len: min_len,
    } = parse::strings::lcs_options(a.rest())?;
    let (alen, blen) = (va.len(), vb.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > max_string_len() {
        return Err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into(),
        );
    }
    // table[i * (blen + 1) + j] = LCS length of va[..i] and vb[..j].
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if va[i - 1] == vb[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen] as usize;
    if get_len {
        return Ok(reply::integer(total as i64));
    }
    // Walk back from the end, as Redis does: matches come out last first.
    let mut common = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut k) = (alen, blen, total);
    let mut range: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    while i > 0 && j > 0 {
        let mut emit = false;
        if va[i - 1] == vb[j - 1] {
            common[k - 1] = va[i - 1];
            range = Some(match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                Some((a_start, a_end, b_start, b_end)) if a_start == i && b_start == j => {
                    (a_start - 1, a_end, b_start - 1, b_end)
                }
                Some(current) => {
                    emit = true;
                    current
                }
            });
            if range.is_some_and(|(a_start, _, b_start, _)| a_start == 0 || b_start == 0) {
                emit = true;
            }
            (i, j, k) = (i - 1, j - 1, k - 1);
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if let (true, Some((a_start, a_end, b_start, b_end))) = (emit, range) {
            let len = a_end - a_start + 1;
            if min_len == 0 || len as i64 >= min_len {
                let pair = |s: usize, e: usize| {
                    reply::array(vec![reply::integer(s as i64), reply::integer(e as i64)])
                };
                let mut entry = vec![pair(a_start, a_end), pair(b_start, b_end)];
                if with_len {
                    entry.push(reply::integer(len as i64));
                }
                matches.push(reply::array(entry));
            }
            range = None;
        }
    }
    if get_idx {
        return Ok(reply::map(vec![
            (reply::bulk("matches"), reply::array(matches)),
            (reply::bulk("len"), reply::integer(total as i64)),
        ]));
    }
    Ok(reply::bulk(common))
}

pub fn set(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let value = a.next_bytes()?;
    let flags = parse::strings::set_flags(a.rest(), true)?;
    let deadline = match flags.expire {
        Some((kind, raw)) => Some(expire_deadline(kind, raw, now, "set")?),
        None => None,
    };
    let old = live_meta(&*txn, key, now)?;
    let old_value = if flags.get {
        match &old {
            Some(meta) if meta.kind != ValueType::String => return Err(errors::WRONGTYPE.into()),
            Some(meta) => Some(meta.payload.clone()),
            None => None,
        }
    } else {
        None
    };
    let found = old.is_some();
    if (flags.nx && found) || (flags.xx && !found) {
        return Ok(if flags.get {
            bulk_or_null(old_value)
        } else {
            reply::null()
        });
    }
    let expire_at = match deadline {
        Some(at) => at,
        None if flags.keep_ttl => old.as_ref().map_or(0, |m| m.expire_at_ms),
        None => 0,
    };
    write_string(txn, key, value.to_vec(), expire_at, now)?;
    Ok(if flags.get {
        bulk_or_null(old_value)
    } else {
        reply::ok()
    })
}

pub fn setnx(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let value = a.next_bytes()?;
    if live_meta(&*txn, key, now)?.is_some() {
        return Ok(reply::integer(0));
    }
    write_string(txn, key, value.to_vec(), 0, now)?;
    Ok(reply::integer(1))
}

/// SETEX / PSETEX key time value.
pub fn setex(
    txn: &mut Txn<'_>,
    args: &[Vec<u8>],
    now: i64,
    unit: Unit,
    command: &str,
) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let time = a.next_bytes()?;
    let value = a.next_bytes()?;
    let kind = match unit {
        Unit::Seconds => ExpireKind::Ex,
        Unit::Millis => ExpireKind::Px,
    };
    let deadline = expire_deadline(kind, time, now, command)?;
    write_string(txn, key, value.to_vec(), deadline, now)?;
    Ok(reply::ok())
}

/// A key and its new value, borrowed from the arguments.
type KeyValue<'a> = (&'a [u8], &'a [u8]);

fn pairs<'a>(args: &'a [Vec<u8>], command: &str) -> Result<Vec<KeyValue<'a>>, CmdError> {
    if args.is_empty() || args.len() % 2 == 1 {
        return Err(errors::wrong_arity(command).into());
    }
    Ok(args
        .chunks_exact(2)
        .map(|pair| (pair[0].as_slice(), pair[1].as_slice()))
        .collect())
}

pub fn mset(txn: &mut Txn<'_>, args: &[Vec<u8>]) -> CmdResult {
    for (key, value) in pairs(args, "mset")? {
        txn.put_meta(key, &Meta::string(value.to_vec(), 0))?;
    }
    Ok(reply::ok())
}

pub fn msetnx(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let pairs = pairs(args, "msetnx")?;
    for (key, _) in &pairs {
        if live_meta(&*txn, key, now)?.is_some() {
            return Ok(reply::integer(0));
        }
    }
    for (key, value) in pairs {
        txn.put_meta(key, &Meta::string(value.to_vec(), 0))?;
    }
    Ok(reply::integer(1))
}

pub fn getset(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let value = a.next_bytes()?;
    let old = live_string(&*txn, key, now)?;
    txn.put_meta(key, &Meta::string(value.to_vec(), 0))?;
    Ok(bulk_or_null(old.map(|m| m.payload)))
}

pub fn getdel(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = key_arg(args)?;
    let old = live_string(&*txn, key, now)?;
    if old.is_some() {
        txn.delete_key(key)?;
    }
    Ok(bulk_or_null(old.map(|m| m.payload)))
}

pub fn getex(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let flags = parse::strings::set_flags(a.rest(), false)?;
    let Some(mut meta) = live_string(&*txn, key, now)? else {
        return Ok(reply::null());
    };
    let deadline = match flags.expire {
        Some((kind, raw)) => Some(expire_deadline(kind, raw, now, "getex")?),
        None => None,
    };
    let value = reply::bulk(meta.payload.clone());
    if let Some(at) = deadline {
        if at <= now {
            txn.delete_key(key)?;
        } else {
            meta.expire_at_ms = at;
            txn.put_meta(key, &meta)?;
        }
    } else if flags.persist && meta.has_ttl() {
        meta.expire_at_ms = 0;
        txn.put_meta(key, &meta)?;
    }
    Ok(value)
}

fn check_length(current: usize, added: u64) -> Result<(), CmdError> {
    if (current as u64).saturating_add(added) > max_string_len() {
        return Err(errors::STRING_TOO_LONG.into());
    }
    Ok(())
}

pub fn append(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let suffix = a.next_bytes()?;
    let meta = match live_string(&*txn, key, now)? {
        Some(mut meta) => {
            check_length(meta.payload.len(), suffix.len() as u64)?;
            meta.payload.extend_from_slice(suffix);
            meta
        }
        None => Meta::string(suffix.to_vec(), 0),
    };
    let len = meta.payload.len();
    txn.put_meta(key, &meta)?;
    Ok(reply::integer(len as i64))
}

pub fn setrange(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let offset = a.next_i64()?;
    let patch = a.next_bytes()?;
    if offset < 0 {
        return Err(errors::OFFSET_OUT_OF_RANGE.into());
    }
    let existing = live_string(&*txn, key, now)?;
    if patch.is_empty() {
        // Setting nothing changes nothing, not even a missing key.
        return Ok(reply::integer(
            existing.map_or(0, |m| m.payload.len() as i64),
        ));
    }
    check_length(offset as usize, patch.len() as u64)?;
    let mut meta = existing.unwrap_or_else(|| Meta::string(Vec::new(), 0));
    let offset = offset as usize;
    let end = offset + patch.len();
    if meta.payload.len() < end {
        meta.payload.resize(end, 0);
    }
    meta.payload[offset..end].copy_from_slice(patch);
    let len = meta.payload.len();
    txn.put_meta(key, &meta)?;
    Ok(reply::integer(len as i64))
}

/// Adds `delta` to the integer at `key` (0 when absent), keeping its TTL.
fn incr_by(txn: &mut Txn<'_>, key: &[u8], delta: i64, now: i64) -> CmdResult {
    let old = live_string(&*txn, key, now)?;
    let current = match &old {
        Some(meta) => parse_i64(&meta.payload).ok_or(errors::NOT_INTEGER)?,
        None => 0,
    };
    let value = current.checked_add(delta).ok_or(errors::OVERFLOW)?;
    let expire_at = old.map_or(0, |m| m.expire_at_ms);
    txn.put_meta(
        key,
        &Meta::string(value.to_string().into_bytes(), expire_at),
    )?;
    Ok(reply::integer(value))
}

/// INCR (`delta` 1) and DECR (`delta` -1).
pub fn incr(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, delta: i64) -> CmdResult {
    let key = key_arg(args)?;
    incr_by(txn, key, delta, now)
}

/// INCRBY, or DECRBY when `negate`.
pub fn incrby(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, negate: bool) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let mut delta = a.next_i64()?;
    if negate {
        if delta == i64::MIN {
            return Err(DECREMENT_OVERFLOW.into());
        }
        delta = -delta;
    }
    incr_by(txn, key, delta, now)
}

pub fn incrbyfloat(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let increment = a.next_bytes()?;
    let old = live_string(&*txn, key, now)?;
    let current = match &old {
        Some(meta) => parse_f64(&meta.payload).ok_or(errors::NOT_FLOAT)?,
        None => 0.0,
    };
    let increment = parse_f64(increment).ok_or(errors::NOT_FLOAT)?;
    let value = current + increment;
    if !value.is_finite() {
        return Err(errors::INCR_NAN_OR_INF.into());
    }
    let text = format_float(value);
    let expire_at = old.map_or(0, |m| m.expire_at_ms);
    txn.put_meta(key, &Meta::string(text.clone().into_bytes(), expire_at))?;
    Ok(reply::bulk(text))
}

/// Formats an INCRBYFLOAT result like Redis's human long-double format
/// (`%.17Lf`, trailing zeros and a trailing '.' removed, never an exponent,
/// never "-0"): the shortest round-tripping digits, cut to at most 17
/// fractional digits.
pub fn format_float(value: f64) -> String {
    let mut text = format!("{value}");
    if let Some(dot) = text.find('.') {
        if text.len() - dot - 1 > 17 {
            text = format!("{value:.17}");
            while text.ends_with('0') {
                text.pop();
            }
            if text.ends_with('.') {
                text.pop();
            }
        }
    }
    if text == "-0" {
        text = "0".to_string();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, show, Node};
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn get_set_and_wrongtype_free_basics() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("GET k", "nil"),
                ("SET k v", "+OK"),
                ("GET k", "\"v\""),
                ("SET k w", "+OK"),
                ("GET k", "\"w\""),
                ("STRLEN k", ":1"),
                ("STRLEN missing", ":0"),
                ("DBSIZE", ":1"),
            ],
        );
    }

    #[test]
    fn set_options_follow_redis() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SET k v NX", "+OK"),
                ("SET k v2 NX", "nil"),
                ("SET other v XX", "nil"),
                ("EXISTS other", ":0"),
                ("SET k v3 XX", "+OK"),
                ("SET k v4 GET", "\"v3\""),
                ("SET fresh v GET", "nil"),
                ("SET k v5 NX GET", "\"v4\""),
                ("GET k", "\"v4\""),
                ("SET k v EX 100", "+OK"),
                ("PTTL k", ":100000"),
                ("SET k v PX 1500", "+OK"),
                ("PTTL k", ":1500"),
                ("SET k v KEEPTTL", "+OK"),
                ("PTTL k", ":1500"),
                ("SET k v", "+OK"),
                ("PTTL k", ":-1"),
                ("SET k v EX 10 EX 20", "+OK"),
                ("TTL k", ":20"),
                ("SET k v nx xx", "-ERR syntax error"),
                ("SET k v EX 10 PX 100", "-ERR syntax error"),
                ("SET k v EX 10 KEEPTTL", "-ERR syntax error"),
                ("SET k v KEEPTTL PXAT 100", "-ERR syntax error"),
                ("SET k v EX", "-ERR syntax error"),
                ("SET k v PERSIST", "-ERR syntax error"),
                ("SET k v FOO", "-ERR syntax error"),
                (
                    "SET k v EX ten",
                    "-ERR value is not an integer or out of range",
                ),
                ("SET k v EX 0", "-ERR invalid expire time in 'set' command"),
                ("SET k v PX -5", "-ERR invalid expire time in 'set' command"),
                (
                    "SET k v EX 9223372036854775",
                    "-ERR invalid expire time in 'set' command",
                ),
                (
                    "SET k v PX 9223372036854775807",
                    "-ERR invalid expire time in 'set' command",
                ),
            ],
        );
        let exat = (NOW / 1000 + 50).to_string();
        let pxat = (NOW + 7_000).to_string();
        check(
            &node,
            NOW,
            &[
                (&format!("SET k v EXAT {exat}"), "+OK"),
                ("TTL k", ":50"),
                (&format!("SET k v PXAT {pxat}"), "+OK"),
                ("PTTL k", ":7000"),
                // An absolute time in the past: OK, and the key is gone.
                ("SET k v PXAT 1", "+OK"),
                ("EXISTS k", ":0"),
                ("DBSIZE", ":1"),
            ],
        );
    }

    #[test]
    fn set_get_on_a_non_string_is_wrongtype_and_writes_nothing() {
        let node = Node::new();
        let mut txn = node.engine.txn();
        let hash = Meta {
            kind: ValueType::Hash,
            version: 1,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        txn.put_meta(b"h", &hash).unwrap();
        node.engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        let wrongtype = format!("-{}", errors::WRONGTYPE);
        check(
            &node,
            NOW,
            &[
                ("SET h v GET", wrongtype.as_str()),
                ("TYPE h", "+hash"),
                ("GET h", wrongtype.as_str()),
                ("MGET h nope", "[nil, nil]"),
                ("APPEND h x", wrongtype.as_str()),
                ("INCR h", wrongtype.as_str()),
                ("GETDEL h", wrongtype.as_str()),
                ("STRLEN h", wrongtype.as_str()),
                // Plain SET overwrites any type.
                ("SET h v", "+OK"),
                ("TYPE h", "+string"),
            ],
        );
    }

    #[test]
    fn setnx_setex_psetex_mset_msetnx() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SETNX a 1", ":1"),
                ("SETNX a 2", ":0"),
                ("GET a", "\"1\""),
                ("SETEX b 10 v", "+OK"),
                ("TTL b", ":10"),
                ("PSETEX c 2500 v", "+OK"),
                ("PTTL c", ":2500"),
                ("SETEX b 0 v", "-ERR invalid expire time in 'setex' command"),
                (
                    "PSETEX b -1 v",
                    "-ERR invalid expire time in 'psetex' command",
                ),
                (
                    "SETEX b x v",
                    "-ERR value is not an integer or out of range",
                ),
                ("MSET x 1 y 2", "+OK"),
                ("MGET x y nope", "[\"1\", \"2\", nil]"),
                (
                    "MSET x 1 y",
                    "-ERR wrong number of arguments for 'mset' command",
                ),
                ("MSETNX y 9 z 9", ":0"),
                ("EXISTS z", ":0"),
                ("MSETNX z 9 w 8", ":1"),
                ("MGET z w", "[\"9\", \"8\"]"),
                (
                    "MSETNX z",
                    "-ERR wrong number of arguments for 'msetnx' command",
                ),
                ("MSET d 1 d 2", "+OK"),
                ("GET d", "\"2\""),
            ],
        );
    }

    #[test]
    fn getset_getdel_getex() {
        let node = Node::new();
        let exat = (NOW / 1000 + 100).to_string();
        check(
            &node,
            NOW,
            &[
                ("GETSET k 1", "nil"),
                ("SETEX k 100 v", "+OK"),
                ("GETSET k 2", "\"v\""),
                ("TTL k", ":-1"),
                ("GETDEL k", "\"2\""),
                ("GETDEL k", "nil"),
                ("EXISTS k", ":0"),
                ("GETEX k", "nil"),
                ("SET k v", "+OK"),
                ("GETEX k EX 10", "\"v\""),
                ("TTL k", ":10"),
                ("GETEX k PX 1234", "\"v\""),
                ("PTTL k", ":1234"),
                (&format!("GETEX k EXAT {exat}"), "\"v\""),
                ("TTL k", ":100"),
                ("GETEX k PERSIST", "\"v\""),
                ("TTL k", ":-1"),
                ("GETEX k", "\"v\""),
                ("GETEX k EX 10 PERSIST", "-ERR syntax error"),
                ("GETEX k KEEPTTL", "-ERR syntax error"),
                ("GETEX k NX", "-ERR syntax error"),
                (
                    "GETEX k EX 0",
                    "-ERR invalid expire time in 'getex' command",
                ),
                ("GETEX missing EX 0", "nil"),
                ("GETEX k PXAT 1", "\"v\""),
                ("EXISTS k", ":0"),
                ("DBSIZE", ":0"),
            ],
        );
    }

    #[test]
    fn append_strlen_getrange_setrange() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("APPEND k Hello", ":5"),
                ("APPEND k _World", ":11"),
                ("GET k", "\"Hello_World\""),
                ("GETRANGE k 0 4", "\"Hello\""),
                ("GETRANGE k -5 -1", "\"World\""),
                ("GETRANGE k 6 100", "\"World\""),
                ("GETRANGE k -100 2", "\"Hel\""),
                ("GETRANGE k 5 3", "\"\""),
                ("GETRANGE k -1 -5", "\"\""),
                ("GETRANGE missing 0 -1", "\"\""),
                (
                    "GETRANGE k a 1",
                    "-ERR value is not an integer or out of range",
                ),
                ("SETRANGE k 6 Redis", ":11"),
                ("GET k", "\"Hello_Redis\""),
                ("SETRANGE pad 3 ab", ":5"),
                ("GET pad", "\"\u{0}\u{0}\u{0}ab\""),
                ("SETRANGE k -1 x", "-ERR offset is out of range"),
                (
                    "SETRANGE k 536870911 ab",
                    "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                ),
                (
                    "SETRANGE k 9223372036854775807 ab",
                    "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                ),
                ("GET k", "\"Hello_Redis\""),
            ],
        );
        // An empty patch neither creates the key nor changes it.
        let reply = node.run_at(
            NOW,
            &[
                b"SETRANGE".to_vec(),
                b"none".to_vec(),
                b"5".to_vec(),
                Vec::new(),
            ],
        );
        assert_eq!(show(&reply), ":0");
        check(&node, NOW, &[("EXISTS none", ":0")]);
    }

    #[test]
    fn the_length_limit_is_proto_max_bulk_len() {
        let max = max_string_len() as usize;
        assert!(check_length(max - 1, 1).is_ok());
        assert!(check_length(max - 1, 2).is_err());
        assert!(check_length(usize::MAX, u64::MAX).is_err());
    }

    #[test]
    fn integer_counters() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("INCR n", ":1"),
                ("INCRBY n 10", ":11"),
                ("DECR n", ":10"),
                ("DECRBY n 3", ":7"),
                ("INCRBY n -10", ":-3"),
                ("GET n", "\"-3\""),
                ("SET n 9223372036854775806", "+OK"),
                ("INCR n", ":9223372036854775807"),
                ("INCR n", "-ERR increment or decrement would overflow"),
                ("SET n -9223372036854775808", "+OK"),
                ("DECR n", "-ERR increment or decrement would overflow"),
                (
                    "DECRBY n -9223372036854775808",
                    "-ERR decrement would overflow",
                ),
                ("INCRBY n x", "-ERR value is not an integer or out of range"),
                ("SET s abc", "+OK"),
                ("INCR s", "-ERR value is not an integer or out of range"),
                ("SET s 1.5", "+OK"),
                ("INCR s", "-ERR value is not an integer or out of range"),
                ("SET s 007", "+OK"),
                ("INCR s", "-ERR value is not an integer or out of range"),
                ("SET t 5 EX 100", "+OK"),
                ("INCR t", ":6"),
                ("TTL t", ":100"),
            ],
        );
    }

    #[test]
    fn float_counters_format_like_redis() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SET f 10.50", "+OK"),
                ("INCRBYFLOAT f 0.1", "\"10.6\""),
                ("INCRBYFLOAT f -5", "\"5.6\""),
                ("SET f 5.0e3", "+OK"),
                ("INCRBYFLOAT f 2.0e2", "\"5200\""),
                ("INCRBYFLOAT new 1.5", "\"1.5\""),
                ("INCRBYFLOAT new -1.5", "\"0\""),
                ("SET big 17179869184", "+OK"),
                ("INCRBYFLOAT big 1.5", "\"17179869185.5\""),
                ("INCRBYFLOAT f x", "-ERR value is not a valid float"),
                ("INCRBYFLOAT f nan", "-ERR value is not a valid float"),
                (
                    "INCRBYFLOAT f inf",
                    "-ERR increment would produce NaN or Infinity",
                ),
                ("SET s abc", "+OK"),
                ("INCRBYFLOAT s 1", "-ERR value is not a valid float"),
                ("SET t 1 PX 5000", "+OK"),
                ("INCRBYFLOAT t 1", "\"2\""),
                ("PTTL t", ":5000"),
            ],
        );
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(1e-20), "0");
        assert_eq!(
            format_float(0.000_123_456_789_012_345_68),
            "0.00012345678901235"
        );
        assert_eq!(format_float(3.0e20), "300000000000000000000");
    }

    #[test]
    fn expired_strings_are_invisible_to_every_command() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[("SET k v PX 100", "+OK"), ("SET n 5 PX 100", "+OK")],
        );
        let later = NOW + 100;
        check(
            &node,
            later,
            &[
                ("GET k", "nil"),
                ("STRLEN k", ":0"),
                ("MGET k", "[nil]"),
                ("SET k w NX", "+OK"),
                ("TTL k", ":-1"),
                ("INCR n", ":1"),
                ("TTL n", ":-1"),
                ("DBSIZE", ":2"),
            ],
        );
    }

    #[test]
    fn lcs_follows_redis_documentation() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("MSET key1 ohmytext key2 mynewtext", "+OK"),
                ("LCS key1 key2", "\"mytext\""),
                ("LCS key1 key2 LEN", ":6"),
                (
                    "LCS key1 key2 IDX",
                    "[\"matches\", [[[:4, :7], [:5, :8]], [[:2, :3], [:0, :1]]], \"len\", :6]",
                ),
                (
                    "LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN",
                    "[\"matches\", [[[:4, :7], [:5, :8], :4]], \"len\", :6]",
                ),
                (
                    "LCS key1 key2 LEN IDX",
                    "-ERR If you want both the length and indexes, please just use IDX.",
                ),
                ("LCS key1 key2 MINMATCHLEN", "-ERR syntax error"),
                ("LCS key1 nokey", "\"\""),
                ("HSET h f v", ":1"),
                (
                    "LCS key1 h",
                    "-ERR The specified keys must contain string values",
                ),
                ("SUBSTR key1 0 1", "\"oh\""),
            ],
        );
    }
}
