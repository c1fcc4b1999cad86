//! Generic key commands: DEL/UNLINK, EXISTS, TYPE, RENAME(NX), the EXPIRE
//! family, TTL and friends, PERSIST, KEYS, SCAN and RANDOMKEY.

use rampart_proto::args::Args;
use rampart_proto::parse::collection::ScanArgs;
use rampart_proto::parse::keys::ExpireCondition;
use rampart_proto::{errors, parse, reply};

use super::CmdResult;
use crate::engine::keys::{self as layout, HASH_LIMIT};
use crate::engine::meta::{MetaHeader, ValueType};
use crate::engine::{live_meta, DataRead, EngineError, Pair, Txn};
use rampart_proto::glob::glob_match;

/// Visitor of [`for_each_live_key`]: `(h, user_key, header)`, where the
/// header is `None` for an expired record; returns whether to go on.
type KeyVisitor<'a> = dyn FnMut(u64, &[u8], Option<MetaHeader>) -> bool + 'a;

pub fn del(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut removed = 0;
    for key in args {
        let live = live_meta(&*txn, key, now)?.is_some();
        // An expired record is removed too, but does not count: to the
        // client it was already gone.
        if txn.delete_key(key)? && live {
            removed += 1;
        }
    }
    Ok(reply::integer(removed))
}

pub fn exists<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut count = 0;
    for key in args {
        if live_meta(r, key, now)?.is_some() {
            count += 1;
        }
    }
    Ok(reply::integer(count))
}

pub fn key_type<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = Args::new(args).next_bytes()?;
    Ok(reply::status(
        live_meta(r, key, now)?.map_or("none", |m| m.kind.name()),
    ))
}

/// RENAME (`nx` false) and RENAMENX (`nx` true): the value and its TTL move
/// to the new name.
pub fn rename(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, nx: bool) -> CmdResult {
    let mut a = Args::new(args);
    let source = a.next_bytes()?;
    let target = a.next_bytes()?;
    let Some(mut meta) = live_meta(&*txn, source, now)? else {
        return Err(errors::NO_SUCH_KEY.into());
    };
    if source == target {
        return Ok(if nx { reply::integer(0) } else { reply::ok() });
    }
    if nx && live_meta(&*txn, target, now)?.is_some() {
        return Ok(reply::integer(0));
    }
    if meta.kind.has_sub_keys() {
        // Sub-keys embed the user key: copy the elements under the new
        // name and a fresh version (the source's are dropped with it).
        let from = layout::sub_key_prefix(source, meta.version);
        let version = txn.next_version()?;
        let to = layout::sub_key_prefix(target, version);
        for (suffix, value) in sub_keys(&*txn, &from)? {
            let mut key = to.clone();
            key.extend_from_slice(&suffix);
            txn.put(key, value);
        }
        meta.version = version;
    }
    // A legacy stream's blob moved with its sub-keys; its marker must too
    // (delete_key below drops the source's).
    let legacy =
        meta.kind == ValueType::Stream && txn.get(&layout::legacy_stream_marker(source))?.is_some();
    txn.put_meta(target, &meta)?;
    txn.delete_key(source)?;
    if legacy {
        txn.put(layout::legacy_stream_marker(target), Vec::new());
    }
    Ok(if nx { reply::integer(1) } else { reply::ok() })
}

/// Every element under `prefix`, as (suffix, value).
fn sub_keys<R: DataRead + ?Sized>(r: &R, prefix: &[u8]) -> Result<Vec<Pair>, EngineError> {
    let mut out = Vec::new();
    if let Some(end) = layout::prefix_end(prefix) {
        r.for_each(prefix, &end, &mut |k, v| {
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
            true
        })?;
    }
    Ok(out)
}

pub use rampart_proto::parse::keys::ExpireBase;

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT].
pub fn expire(
    txn: &mut Txn<'_>,
    args: &[Vec<u8>],
    now: i64,
    base: ExpireBase,
    command: &str,
) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let time = a.next_bytes()?;
    let ExpireCondition { nx, xx, gt, lt } = parse::keys::expire_condition(a.rest())?;
    let when = parse::keys::expire_when(time, base, now, command)?;
    let Some(mut meta) = live_meta(&*txn, key, now)? else {
        return Ok(reply::integer(0));
    };
    let current = meta.has_ttl().then_some(meta.expire_at_ms);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        // No TTL counts as infinite: GT never beats it, LT always does.
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        return Ok(reply::integer(0));
    }
    if when <= now {
        txn.delete_key(key)?;
    } else {
        meta.expire_at_ms = when;
        txn.put_meta(key, &meta)?;
    }
    Ok(reply::integer(1))
}

pub fn persist(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = Args::new(args).next_bytes()?;
    match live_meta(&*txn, key, now)? {
        Some(mut meta) if meta.has_ttl() => {
            meta.expire_at_ms = 0;
            txn.put_meta(key, &meta)?;
            Ok(reply::integer(1))
        }
        _ => Ok(reply::integer(0)),
    }
}

/// What TTL-family commands report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlOutput {
    /// TTL: remaining seconds, rounded.
    Seconds,
    /// PTTL: remaining ms.
    Millis,
    /// EXPIRETIME: absolute Unix seconds.
    AbsSeconds,
    /// PEXPIRETIME: absolute Unix ms.
    AbsMillis,
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME: -2 for no key, -1 for no TTL.
pub fn ttl<R: DataRead + ?Sized>(
    r: &R,
    args: &[Vec<u8>],
    now: i64,
    output: TtlOutput,
) -> CmdResult {
    let key = Args::new(args).next_bytes()?;
    let Some(meta) = live_meta(r, key, now)? else {
        return Ok(reply::integer(-2));
    };
    if !meta.has_ttl() {
        return Ok(reply::integer(-1));
    }
    let value = match output {
        TtlOutput::Seconds | TtlOutput::Millis => (meta.expire_at_ms - now).max(0),
        TtlOutput::AbsSeconds | TtlOutput::AbsMillis => meta.expire_at_ms,
    };
    Ok(reply::integer(match output {
        // Redis rounds to the nearest second.
        TtlOutput::Seconds | TtlOutput::AbsSeconds => (value + 500) / 1000,
        TtlOutput::Millis | TtlOutput::AbsMillis => value,
    }))
}

/// Calls `f(h, user_key, header)` for every live meta record from hash
/// `start_h` on, until `f` returns false.
fn for_each_live_key<R: DataRead + ?Sized>(
    r: &R,
    start_h: u64,
    now: i64,
    f: &mut KeyVisitor<'_>,
) -> Result<(), EngineError> {
    let start = layout::meta_seek_key(start_h);
    let (_, end) = layout::meta_range();
    let mut failure = None;
    r.for_each(&start, &end, &mut |k, v| {
        let Some((h, user_key)) = layout::decode_meta_key(k) else {
            return true;
        };
        match MetaHeader::decode(v) {
            // Expired records are passed as `None` so callers can still
            // count them as visited.
            Ok(header) => f(h, user_key, (!header.is_expired(now)).then_some(header)),
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })?;
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

pub fn keys<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let pattern = Args::new(args).next_bytes()?;
    let match_all = pattern == b"*";
    let mut found = Vec::new();
    for_each_live_key(r, 0, now, &mut |_, key, header| {
        if header.is_some() && (match_all || glob_match(pattern, key)) {
            found.push(reply::bulk(key.to_vec()));
        }
        true
    })?;
    Ok(reply::array(found))
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
///
/// The cursor is `h + 1` of the next key to visit (see `engine::keys`).
/// A page never ends inside a run of keys sharing one `h`, so without
/// concurrent writes every key is returned exactly once, and the cursor
/// always advances.
pub fn scan<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let ScanArgs {
        cursor,
        pattern,
        count,
        type_name,
    } = parse::collection::scan_args(args, true)?;
    let start_h = cursor.saturating_sub(1);
    let mut found = Vec::new();
    let mut next_cursor = 0u64;
    if start_h < HASH_LIMIT {
        let mut visited = 0u64;
        let mut last_h = None;
        for_each_live_key(r, start_h, now, &mut |h, key, header| {
            if visited >= count && last_h != Some(h) {
                next_cursor = h + 1;
                return false;
            }
            visited += 1;
            last_h = Some(h);
            let Some(header) = header else {
                return true;
            };
            let type_ok = type_name
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(header.kind.name()));
            if type_ok && pattern.is_none_or(|p| glob_match(p, key)) {
                found.push(reply::bulk(key.to_vec()));
            }
            true
        })?;
    }
    Ok(reply::array(vec![
        reply::bulk(next_cursor.to_string()),
        reply::array(found),
    ]))
}

/// RANDOMKEY: the first live key at or after a random hash, wrapping
/// around; nil when there is none. Only reads use randomness.
pub fn randomkey<R: DataRead + ?Sized>(r: &R, now: i64) -> CmdResult {
    let start_h = rand::random::<u64>() % HASH_LIMIT;
    let found = match first_live_key(r, start_h, now)? {
        Some(key) => Some(key),
        None => first_live_key(r, 0, now)?,
    };
    Ok(match found {
        Some(key) => reply::bulk(key),
        None => reply::null(),
    })
}

fn first_live_key<R: DataRead + ?Sized>(
    r: &R,
    start_h: u64,
    now: i64,
) -> Result<Option<Vec<u8>>, EngineError> {
    let mut found = None;
    for_each_live_key(r, start_h, now, &mut |_, key, header| {
        if header.is_some() {
            found = Some(key.to_vec());
            return false;
        }
        true
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rampart_proto::Reply;

    use super::super::test_support::{argv, check, show, Node};
    use super::*;
    use crate::engine::meta::{Meta, ValueType};

    const NOW: i64 = 1_700_000_000_000;

    /// SCAN's reply as (cursor, keys).
    fn parse_scan_reply(reply: &Reply) -> Option<(u64, Vec<Vec<u8>>)> {
        use rampart_proto::pb::reply::Kind;
        let Some(Kind::Array(outer)) = &reply.kind else {
            return None;
        };
        let [cursor, keys] = outer.items.as_slice() else {
            return None;
        };
        let Some(Kind::Bulk(cursor)) = &cursor.kind else {
            return None;
        };
        let cursor = std::str::from_utf8(cursor).ok()?.parse().ok()?;
        let Some(Kind::Array(keys)) = &keys.kind else {
            return None;
        };
        let keys = keys
            .items
            .iter()
            .map(|item| match &item.kind {
                Some(Kind::Bulk(b)) => Some(b.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((cursor, keys))
    }

    #[test]
    fn del_exists_type() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("MSET a 1 b 2 c 3", "+OK"),
                ("EXISTS a a b nope", ":3"),
                ("TYPE a", "+string"),
                ("TYPE nope", "+none"),
                ("DEL a b nope", ":2"),
                ("UNLINK c c", ":1"),
                ("EXISTS a b c", ":0"),
                ("DBSIZE", ":0"),
            ],
        );
    }

    #[test]
    fn rename_and_renamenx() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RENAME nope x", "-ERR no such key"),
                ("RENAMENX nope x", "-ERR no such key"),
                ("SET a 1 EX 100", "+OK"),
                ("RENAME a a", "+OK"),
                ("RENAMENX a a", ":0"),
                ("RENAME a b", "+OK"),
                ("EXISTS a", ":0"),
                ("GET b", "\"1\""),
                ("TTL b", ":100"),
                ("SET c 3", "+OK"),
                ("RENAMENX b c", ":0"),
                ("RENAME b c", "+OK"),
                ("GET c", "\"1\""),
                ("TTL c", ":100"),
                ("DBSIZE", ":1"),
                ("RENAMENX c d", ":1"),
                ("GET d", "\"1\""),
                ("DBSIZE", ":1"),
            ],
        );
    }

    #[test]
    fn rename_moves_collection_elements() {
        let node = Node::new();
        let mut txn = node.engine.txn();
        let version = txn.next_version().unwrap();
        let hash = Meta {
            kind: ValueType::Hash,
            version,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        txn.put_meta(b"h", &hash).unwrap();
        let mut field = layout::sub_key_prefix(b"h", version);
        field.extend_from_slice(b"f");
        txn.put(field.clone(), b"v".to_vec());
        node.engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        check(&node, NOW, &[("RENAME h g", "+OK"), ("TYPE g", "+hash")]);
        let view = node.engine.read_view();
        let meta = live_meta(&view, b"g", NOW).unwrap().unwrap();
        assert_ne!(meta.version, version);
        let moved = sub_keys(&view, &layout::sub_key_prefix(b"g", meta.version)).unwrap();
        assert_eq!(moved, vec![(b"f".to_vec(), b"v".to_vec())]);
        assert_eq!(view.get(&field).unwrap(), None);
    }

    #[test]
    fn expire_family_with_flags() {
        let node = Node::new();
        let at = NOW / 1000 + 500;
        check(
            &node,
            NOW,
            &[
                ("EXPIRE nope 10", ":0"),
                ("SET k v", "+OK"),
                ("EXPIRE k 100 XX", ":0"),
                ("EXPIRE k 100 GT", ":0"),
                ("EXPIRE k 100 NX", ":1"),
                ("EXPIRE k 200 NX", ":0"),
                ("TTL k", ":100"),
                ("EXPIRE k 50 GT", ":0"),
                ("EXPIRE k 150 GT", ":1"),
                ("EXPIRE k 200 LT", ":0"),
                ("PEXPIRE k 120000 LT", ":1"),
                ("PTTL k", ":120000"),
                ("EXPIRE k 300 XX", ":1"),
                ("TTL k", ":300"),
                (&format!("EXPIREAT k {at}"), ":1"),
                ("TTL k", ":500"),
                ("EXPIRETIME k", &format!(":{at}")),
                ("PEXPIRETIME k", &format!(":{}", at * 1000)),
                (&format!("PEXPIREAT k {}", NOW + 42), ":1"),
                ("PTTL k", ":42"),
                ("PERSIST k", ":1"),
                ("PERSIST k", ":0"),
                ("PERSIST nope", ":0"),
                ("TTL k", ":-1"),
                ("EXPIRETIME k", ":-1"),
                ("EXPIRETIME nope", ":-2"),
                ("TTL nope", ":-2"),
                ("PTTL nope", ":-2"),
                // Without a TTL, LT applies (infinite > anything).
                ("EXPIRE k 100 LT", ":1"),
                ("PERSIST k", ":1"),
                (
                    "EXPIRE k 10 NX XX",
                    "-ERR NX and XX, GT or LT options at the same time are not compatible",
                ),
                (
                    "EXPIRE k 10 NX GT",
                    "-ERR NX and XX, GT or LT options at the same time are not compatible",
                ),
                (
                    "EXPIRE k 10 GT LT",
                    "-ERR GT and LT options at the same time are not compatible",
                ),
                ("EXPIRE k 10 FOO", "-ERR Unsupported option FOO"),
                (
                    "EXPIRE k ten",
                    "-ERR value is not an integer or out of range",
                ),
                (
                    "EXPIRE k 9223372036854775807",
                    "-ERR invalid expire time in 'expire' command",
                ),
                (
                    "PEXPIRE k 9223372036854775807",
                    "-ERR invalid expire time in 'pexpire' command",
                ),
                (
                    "EXPIREAT k 9223372036854775807",
                    "-ERR invalid expire time in 'expireat' command",
                ),
                ("TTL k", ":-1"),
                // Past or zero times delete the key and return 1.
                ("EXPIRE k -1", ":1"),
                ("EXISTS k", ":0"),
                ("SET k v", "+OK"),
                ("EXPIREAT k 0", ":1"),
                ("EXISTS k", ":0"),
                ("SET k v", "+OK"),
                ("PEXPIRE k 0", ":1"),
                ("DBSIZE", ":0"),
            ],
        );
    }

    #[test]
    fn ttl_rounds_to_the_nearest_second() {
        let node = Node::new();
        check(&node, NOW, &[("SET k v PX 1499", "+OK"), ("TTL k", ":1")]);
        check(&node, NOW, &[("SET k v PX 1500", "+OK"), ("TTL k", ":2")]);
        check(&node, NOW + 1_499, &[("TTL k", ":0"), ("PTTL k", ":1")]);
        check(&node, NOW + 1_500, &[("TTL k", ":-2"), ("PTTL k", ":-2")]);
    }

    #[test]
    fn expiry_keeps_counters_and_index_exact() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SET a 1 PX 100", "+OK"),
                ("SET b 1 PX 100", "+OK"),
                ("SET c 1", "+OK"),
                (
                    "INFO keyspace",
                    "\"# Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=0\r\n\"",
                ),
            ],
        );
        let later = NOW + 200;
        check(
            &node,
            later,
            &[
                // Expired but not removed yet: still counted, like Redis.
                ("DBSIZE", ":3"),
                ("KEYS *", "[\"c\"]"),
                ("DEL a", ":0"),
                ("DBSIZE", ":2"),
                ("SET b 2", "+OK"),
                (
                    "INFO keyspace",
                    "\"# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n\"",
                ),
            ],
        );
        assert!(node.engine.expired_keys(later, 10).unwrap().is_empty());
    }

    #[test]
    fn keys_filters_by_glob() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("MSET user:1 a user:2 b other c", "+OK"),
                ("KEYS nomatch*", "[]"),
            ],
        );
        let reply = node.run(NOW, "KEYS user:*");
        let mut keys: Vec<String> = match reply.kind {
            Some(rampart_proto::pb::reply::Kind::Array(list)) => {
                list.items.iter().map(show).collect()
            }
            other => panic!("not an array: {other:?}"),
        };
        keys.sort();
        assert_eq!(keys, vec!["\"user:1\"", "\"user:2\""]);
        let all = node.run(NOW, "KEYS *");
        assert_eq!(show(&all).matches('"').count(), 6);
    }

    fn scan_all(node: &Node, now: i64, extra: &str) -> (Vec<Vec<u8>>, usize) {
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        let mut pages = 0;
        loop {
            let reply = node.run(now, &format!("SCAN {cursor} {extra}"));
            let (next, page) = parse_scan_reply(&reply).expect("scan reply");
            keys.extend(page);
            pages += 1;
            assert!(pages < 10_000, "scan does not terminate");
            if next == 0 {
                return (keys, pages);
            }
            assert_ne!(next, cursor, "cursor must advance");
            cursor = next;
        }
    }

    #[test]
    fn scan_returns_every_key_exactly_once() {
        let node = Node::new();
        let mut args = vec![b"MSET".to_vec()];
        for i in 0..1_000 {
            args.push(format!("key:{i}").into_bytes());
            args.push(b"v".to_vec());
        }
        assert_eq!(show(&node.run_at(NOW, &args)), "+OK");
        for extra in ["", "COUNT 1", "COUNT 7", "COUNT 1000", "COUNT 5000"] {
            let (keys, pages) = scan_all(&node, NOW, extra);
            let unique: BTreeSet<_> = keys.iter().cloned().collect();
            assert_eq!(keys.len(), 1_000, "duplicates with {extra:?}");
            assert_eq!(unique.len(), 1_000, "missing keys with {extra:?}");
            if extra.is_empty() {
                assert!(pages >= 100);
            }
        }
        let (matched, _) = scan_all(&node, NOW, "MATCH key:1?? COUNT 100");
        assert_eq!(matched.len(), 100);
        let (typed, _) = scan_all(&node, NOW, "TYPE STRING COUNT 100");
        assert_eq!(typed.len(), 1_000);
        let (none, _) = scan_all(&node, NOW, "TYPE hash COUNT 100");
        assert!(none.is_empty());
    }

    #[test]
    fn scan_skips_expired_keys_and_validates_arguments() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SCAN 0", "[\"0\", []]"),
                ("SET live 1", "+OK"),
                ("SET dead 1 PX 10", "+OK"),
                ("SCAN abc", "-ERR invalid cursor"),
                ("SCAN 1.5", "-ERR invalid cursor"),
                ("SCAN 99999999999999999999", "-ERR invalid cursor"),
                ("SCAN 0 COUNT 0", "-ERR syntax error"),
                (
                    "SCAN 0 COUNT x",
                    "-ERR value is not an integer or out of range",
                ),
                ("SCAN 0 COUNT", "-ERR syntax error"),
                ("SCAN 0 FOO bar", "-ERR syntax error"),
                // A cursor past every key ends the iteration.
                ("SCAN 18446744073709551615", "[\"0\", []]"),
                ("SCAN -1", "[\"0\", []]"),
            ],
        );
        let (keys, _) = scan_all(&node, NOW + 10, "");
        assert_eq!(keys, vec![b"live".to_vec()]);
    }

    #[test]
    fn randomkey_returns_a_live_key_or_nil() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[("RANDOMKEY", "nil"), ("SET gone 1 PX 5", "+OK")],
        );
        check(&node, NOW + 5, &[("RANDOMKEY", "nil")]);
        check(&node, NOW, &[("MSET a 1 b 2 c 3", "+OK")]);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let reply = node.run_at(NOW + 5, &argv("RANDOMKEY"));
            seen.insert(show(&reply));
        }
        let expected: BTreeSet<String> = ["\"a\"", "\"b\"", "\"c\""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(seen, expected);
    }
}
