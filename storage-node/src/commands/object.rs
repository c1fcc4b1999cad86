//! OBJECT (ENCODING, FREQ, IDLETIME, REFCOUNT, HELP) and COPY.
//!
//! Rampart keeps every value in RocksDB (see `engine::keys`), so it has no
//! in-memory encodings. OBJECT ENCODING reports the encoding Redis 7.2 would
//! pick for the same contents with the cluster's thresholds (the replicated
//! `*-max-listpack-*` / `*-max-intset-*` CONFIG parameters, Redis's defaults
//! until `CONFIG SET` changes them, see `commands::config`), so clients and
//! tools that branch on it behave as they would against Redis. Deciding
//! reads at most as many elements as the thresholds allow (plus one), never
//! more of the collection.

use rampart_proto::args::{parse_i64, Args};
use rampart_proto::parse::keys::{CopyOptions, ObjectSub};
use rampart_proto::{errors, reply};

use super::collection as coll;
use super::{CmdError, CmdResult};
use crate::engine::keys as layout;
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{live_meta, DataRead, Txn};

/// A list's listpack size limits by `list-max-listpack-size` -1..-5
/// (quicklist's `optimization_level`); lower values count as -5.
const LIST_LISTPACK_BYTES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// With a positive `list-max-listpack-size` (an element count), a listpack
/// still holds at most this many bytes (quicklist's `SIZE_SAFETY_LIMIT`).
const LIST_SIZE_SAFETY_LIMIT: usize = 8192;
/// Strings up to this length are `embstr` (OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
const EMBSTR_SIZE_LIMIT: usize = 44;
/// Redis shares the integer objects 0..=9999 (OBJ_SHARED_INTEGERS); their
/// refcount is reported as OBJ_SHARED_REFCOUNT.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const NO_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const SAME_OBJECT: &str = "ERR source and destination objects are the same";

/// OBJECT <subcommand> [key].
pub fn object<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let sub = rampart_proto::parse::keys::object_subcommand(args)?;
    if sub == ObjectSub::Help {
        return Ok(reply::array(
            HELP.iter().map(|l| reply::status(*l)).collect(),
        ));
    }
    let key = &args[1];
    let Some(meta) = live_meta(r, key, now)? else {
        return Ok(reply::null());
    };
    Ok(match sub {
        ObjectSub::Encoding => reply::bulk(encoding(r, key, &meta)?),
        // Rampart does not track access times; the default policy
        // (noeviction) makes FREQ an error in Redis too.
        ObjectSub::Freq => return Err(NO_LFU.into()),
        ObjectSub::IdleTime => reply::integer(0),
        ObjectSub::RefCount | ObjectSub::Help => reply::integer(refcount(&meta)),
    })
}

fn refcount(meta: &Meta) -> i64 {
    match (meta.kind, canonical_int(&meta.payload)) {
        (ValueType::String, Some(n)) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
        _ => 1,
    }
}

/// A `size_t` threshold parameter of the cluster's CONFIG.
fn threshold<R: DataRead + ?Sized>(r: &R, name: &str) -> u64 {
    u64::try_from(super::config::integer(r, name)).unwrap_or(0)
}

/// A value-length threshold, as a byte count.
fn length_threshold<R: DataRead + ?Sized>(r: &R, name: &str) -> usize {
    usize::try_from(threshold(r, name)).unwrap_or(usize::MAX)
}

/// `list-max-listpack-size` as (byte limit, element limit), Redis's
/// `quicklistNodeLimit`.
fn list_limits<R: DataRead + ?Sized>(r: &R) -> (usize, u64) {
    let fill = super::config::integer(r, "list-max-listpack-size");
    if fill >= 0 {
        (LIST_SIZE_SAFETY_LIMIT, fill.max(1) as u64)
    } else {
        let level = usize::try_from(fill.saturating_neg().saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(LIST_LISTPACK_BYTES.len() - 1);
        (LIST_LISTPACK_BYTES[level], u64::MAX)
    }
}

/// `bytes` as an integer when Redis would store it as one: the canonical
/// decimal form of an i64 (no sign on zero, no leading zeros or '+').
fn canonical_int(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 20 {
        return None;
    }
    let n = parse_i64(bytes)?;
    (n.to_string().as_bytes() == bytes).then_some(n)
}

/// The encoding name Redis 7.2 would report for the value `meta` of `key`.
pub(crate) fn encoding<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
) -> Result<&'static str, CmdError> {
    let prefix = coll::prefix(key, meta);
    Ok(match meta.kind {
        ValueType::String => {
            if canonical_int(&meta.payload).is_some() {
                "int"
            } else if meta.payload.len() <= EMBSTR_SIZE_LIMIT {
                "embstr"
            } else {
                "raw"
            }
        }
        ValueType::Hash => {
            let n = coll::count(meta)?;
            let max_value = length_threshold(r, "hash-max-listpack-value");
            let small = n <= threshold(r, "hash-max-listpack-entries")
                && all_hashed(r, &prefix, |field, value| {
                    field.len() <= max_value && value.len() <= max_value
                })?;
            if small {
                "listpack"
            } else {
                "hashtable"
            }
        }
        ValueType::Set => {
            let n = coll::count(meta)?;
            let max_value = length_threshold(r, "set-max-listpack-value");
            if n <= threshold(r, "set-max-intset-entries")
                && all_hashed(r, &prefix, |member, _| canonical_int(member).is_some())?
            {
                "intset"
            } else if n <= threshold(r, "set-max-listpack-entries")
                && all_hashed(r, &prefix, |member, _| member.len() <= max_value)?
            {
                "listpack"
            } else {
                "hashtable"
            }
        }
        ValueType::ZSet => {
            let n = coll::count(meta)?;
            let by_member = coll::tagged(&prefix, b'm');
            let max_value = length_threshold(r, "zset-max-listpack-value");
            if n <= threshold(r, "zset-max-listpack-entries")
                && all_hashed(r, &by_member, |member, _| member.len() <= max_value)?
            {
                "listpack"
            } else {
                "skiplist"
            }
        }
        ValueType::List => {
            if coll::count(meta)? <= list_limits(r).1 && list_fits_listpack(r, &prefix)? {
                "listpack"
            } else {
                "quicklist"
            }
        }
        ValueType::Stream => "stream",
    })
}

/// Whether `ok(element, value)` holds for every hashed element under
/// `prefix` (hash fields, set members, zset by-member records). Stops at the
/// first failure; callers bound the collection size first.
fn all_hashed<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    ok: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<bool, CmdError> {
    let mut all = true;
    coll::for_each_under(r, prefix, &mut |suffix, value| {
        if let Some((_, element)) = layout::decode_hashed_element(suffix) {
            all = ok(element, value);
        }
        all
    })?;
    Ok(all)
}

/// Whether the list's elements fit one listpack of the size
/// `list-max-listpack-size` allows, estimated with listpack's entry sizes.
/// Reads at most ~32K elements (every entry costs at least 2 bytes of at
/// most 64 KiB).
fn list_fits_listpack<R: DataRead + ?Sized>(r: &R, prefix: &[u8]) -> Result<bool, CmdError> {
    let (limit, _) = list_limits(r);
    // Header (6 bytes) and terminator (1 byte).
    let mut bytes = 7usize;
    coll::for_each_under(r, prefix, &mut |_, element| {
        bytes += listpack_entry_size(element);
        bytes <= limit
    })?;
    Ok(bytes <= limit)
}

/// Bytes one element takes in a listpack: encoding header, data, back-length.
fn listpack_entry_size(element: &[u8]) -> usize {
    let body = match canonical_int(element) {
        Some(n) if (0..128).contains(&n) => 1,
        Some(n) if (-4096..4096).contains(&n) => 2,
        Some(n) if i16::try_from(n).is_ok() => 3,
        Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
        Some(n) if i32::try_from(n).is_ok() => 5,
        Some(_) => 9,
        None => {
            let len = element.len();
            let header = if len < 64 {
                1
            } else if len < 4096 {
                2
            } else {
                5
            };
            header + len
        }
    };
    let backlen = match body {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    };
    body + backlen
}

/// COPY source destination [DB destination-db] [REPLACE]. Rampart has one
/// database, so any DB other than 0 is out of range (as in Redis with
/// `databases 1`). The value and its TTL are copied; a collection's
/// elements are copied under a fresh version, O(n).
pub fn copy(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let source = a.next_bytes()?;
    let target = a.next_bytes()?;
    let CopyOptions { replace, db } = rampart_proto::parse::keys::copy_options(a.rest())?;
    if db != 0 {
        return Err(errors::DB_INDEX_OUT_OF_RANGE.into());
    }
    if source == target {
        return Err(SAME_OBJECT.into());
    }
    let Some(mut meta) = live_meta(&*txn, source, now)? else {
        return Ok(reply::integer(0));
    };
    if live_meta(&*txn, target, now)?.is_some() && !replace {
        return Ok(reply::integer(0));
    }
    // Drops the old target (live or expired) with its elements.
    txn.delete_key(target)?;
    if meta.kind.has_sub_keys() {
        let from = coll::prefix(source, &meta);
        meta.version = txn.next_version()?;
        let to = coll::prefix(target, &meta);
        let mut elements = Vec::new();
        coll::for_each_under(&*txn, &from, &mut |suffix, value| {
            elements.push((suffix.to_vec(), value.to_vec()));
            true
        })?;
        for (suffix, value) in elements {
            let mut k = to.clone();
            k.extend_from_slice(&suffix);
            txn.put(k, value);
        }
    }
    txn.put_meta(target, &meta)?;
    Ok(reply::integer(1))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    const NOW: i64 = 1_000_000;

    fn encoding(node: &Node, key: &str) -> String {
        show(&node.run(NOW, &format!("OBJECT ENCODING {key}")))
    }

    #[test]
    fn string_encodings_follow_redis_rules() {
        let node = Node::new();
        let long = "x".repeat(45);
        let edge = "y".repeat(44);
        check(
            &node,
            NOW,
            &[
                ("SET i 12345", "+OK"),
                ("SET neg -7", "+OK"),
                ("SET lead 007", "+OK"),
                ("SET f 1.5", "+OK"),
                (&format!("SET edge {edge}"), "+OK"),
                (&format!("SET long {long}"), "+OK"),
            ],
        );
        assert_eq!(encoding(&node, "i"), "\"int\"");
        assert_eq!(encoding(&node, "neg"), "\"int\"");
        assert_eq!(encoding(&node, "lead"), "\"embstr\"");
        assert_eq!(encoding(&node, "f"), "\"embstr\"");
        assert_eq!(encoding(&node, "edge"), "\"embstr\"");
        assert_eq!(encoding(&node, "long"), "\"raw\"");
        assert_eq!(encoding(&node, "missing"), "nil");
    }

    #[test]
    fn collection_encodings_switch_at_the_thresholds() {
        let node = Node::new();
        for i in 0..128 {
            node.run(NOW, &format!("ZADD z {i} m{i}"));
            node.run(NOW, &format!("SADD s m{i}"));
        }
        // redis-server's built-in default is 512 (its sample redis.conf
        // says 128).
        for i in 0..512 {
            node.run(NOW, &format!("HSET h f{i} v"));
        }
        assert_eq!(encoding(&node, "h"), "\"listpack\"");
        assert_eq!(encoding(&node, "z"), "\"listpack\"");
        assert_eq!(encoding(&node, "s"), "\"listpack\"");
        node.run(NOW, "HSET h f512 v");
        node.run(NOW, "ZADD z 1 m128");
        node.run(NOW, "SADD s m128");
        assert_eq!(encoding(&node, "h"), "\"hashtable\"");
        assert_eq!(encoding(&node, "z"), "\"skiplist\"");
        assert_eq!(encoding(&node, "s"), "\"hashtable\"");

        let big = "v".repeat(65);
        node.run(NOW, &format!("HSET h2 f {big}"));
        node.run(NOW, &format!("ZADD z2 1 {big}"));
        assert_eq!(encoding(&node, "h2"), "\"hashtable\"");
        assert_eq!(encoding(&node, "z2"), "\"skiplist\"");

        for i in 0..512 {
            node.run(NOW, &format!("SADD ints {i}"));
        }
        assert_eq!(encoding(&node, "ints"), "\"intset\"");
        node.run(NOW, "SADD ints 512");
        assert_eq!(encoding(&node, "ints"), "\"hashtable\"");
        node.run(NOW, "SADD mixed 1 2 x");
        assert_eq!(encoding(&node, "mixed"), "\"listpack\"");

        node.run(NOW, "RPUSH l a b c");
        assert_eq!(encoding(&node, "l"), "\"listpack\"");
        let chunk = "e".repeat(1000);
        for _ in 0..9 {
            node.run(NOW, &format!("RPUSH l {chunk}"));
        }
        assert_eq!(encoding(&node, "l"), "\"quicklist\"");
    }

    #[test]
    fn encodings_follow_the_replicated_thresholds() {
        let node = Node::new();
        node.run(NOW, "HSET h a 1 b 2 c 3");
        node.run(NOW, "SADD ints 1 2 3");
        node.run(NOW, "SADD s a b c");
        node.run(NOW, "ZADD z 1 a 2 b 3 c");
        node.run(NOW, "RPUSH l a b c");
        for key in ["h", "s", "z", "l"] {
            assert_eq!(encoding(&node, key), "\"listpack\"", "{key}");
        }
        assert_eq!(encoding(&node, "ints"), "\"intset\"");
        let set = "rampart.config.set hash-max-ziplist-entries 2 set-max-intset-entries 2 \
                   set-max-listpack-entries 2 zset-max-listpack-entries 2 list-max-listpack-size 2";
        assert_eq!(show(&node.run(NOW, set)), "+OK");
        assert_eq!(encoding(&node, "h"), "\"hashtable\"");
        assert_eq!(encoding(&node, "ints"), "\"hashtable\"");
        assert_eq!(encoding(&node, "s"), "\"hashtable\"");
        assert_eq!(encoding(&node, "z"), "\"skiplist\"");
        assert_eq!(encoding(&node, "l"), "\"quicklist\"");
        let set = "rampart.config.set hash-max-listpack-entries 8 hash-max-listpack-value 0 \
                   set-max-listpack-entries 8 zset-max-listpack-entries 8 zset-max-ziplist-value 0 \
                   list-max-listpack-size -1";
        assert_eq!(show(&node.run(NOW, set)), "+OK");
        assert_eq!(
            encoding(&node, "h"),
            "\"hashtable\"",
            "values longer than 0"
        );
        assert_eq!(encoding(&node, "s"), "\"listpack\"");
        assert_eq!(encoding(&node, "z"), "\"skiplist\"");
        assert_eq!(encoding(&node, "l"), "\"listpack\"");
        // a, b, c and four 1,000-byte entries take 4,032 bytes (still a
        // listpack in Redis too); a fifth goes past 4 KiB.
        let chunk = "e".repeat(1000);
        for _ in 0..5 {
            node.run(NOW, &format!("RPUSH l {chunk}"));
        }
        assert_eq!(encoding(&node, "l"), "\"quicklist\"", "past 4 KiB at -1");
    }

    #[test]
    fn object_subcommands_and_errors() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SET n 42", "+OK"),
                ("SET s hello", "+OK"),
                ("OBJECT REFCOUNT n", ":2147483647"),
                ("OBJECT REFCOUNT s", ":1"),
                ("OBJECT IDLETIME s", ":0"),
                ("OBJECT IDLETIME nokey", "nil"),
                ("OBJECT REFCOUNT nokey", "nil"),
                ("OBJECT FREQ nokey", "nil"),
                (
                    "OBJECT FREQ s",
                    "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
                ),
                ("OBJECT FOO s", "-ERR unknown subcommand 'FOO'. Try OBJECT HELP."),
                (
                    "OBJECT ENCODING",
                    "-ERR wrong number of arguments for 'object|encoding' command",
                ),
                (
                    "OBJECT ENCODING a b",
                    "-ERR wrong number of arguments for 'object|encoding' command",
                ),
                (
                    "OBJECT HELP x",
                    "-ERR wrong number of arguments for 'object|help' command",
                ),
            ],
        );
        let help = show(&node.run(NOW, "OBJECT HELP"));
        assert!(
            help.starts_with("[+OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:, +ENCODING <key>"),
            "{help}"
        );
    }

    #[test]
    fn copy_every_type_with_ttl_and_replace() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SET s v PX 5000", "+OK"),
                ("HSET h f v g w", ":2"),
                ("RPUSH l a b c", ":3"),
                ("SADD set x y", ":2"),
                ("ZADD z 1 a 2 b", ":2"),
                ("COPY s s2", ":1"),
                ("GET s2", "\"v\""),
                ("PTTL s2", ":5000"),
                ("COPY h h2", ":1"),
                ("HGET h2 g", "\"w\""),
                ("HLEN h2", ":2"),
                ("COPY l l2", ":1"),
                ("LRANGE l2 0 -1", "[\"a\", \"b\", \"c\"]"),
                ("COPY set set2", ":1"),
                ("SISMEMBER set2 y", ":1"),
                ("COPY z z2", ":1"),
                ("ZRANGE z2 0 -1 WITHSCORES", "[[\"a\", ,1], [\"b\", ,2]]"),
                ("PTTL z2", ":-1"),
                // The copies are independent of their sources.
                ("HSET h2 f changed", ":0"),
                ("HGET h f", "\"v\""),
                ("RPOP l2", "\"c\""),
                ("LLEN l", ":3"),
                // Existing destination: 0 unless REPLACE.
                ("COPY h l", ":0"),
                ("TYPE l", "+list"),
                ("COPY h l REPLACE", ":1"),
                ("TYPE l", "+hash"),
                ("HLEN l", ":2"),
                ("HGET l g", "\"w\""),
                ("COPY nokey x", ":0"),
                ("EXISTS x", ":0"),
                (
                    "COPY h h",
                    "-ERR source and destination objects are the same",
                ),
                ("COPY h x DB 1", "-ERR DB index is out of range"),
                ("COPY h x DB -1", "-ERR DB index is out of range"),
                (
                    "COPY h x DB abc",
                    "-ERR value is not an integer or out of range",
                ),
                ("COPY h x DB 0", ":1"),
                ("COPY h x2 REPLACE FOO", "-ERR syntax error"),
                ("COPY h x2 DB", "-ERR syntax error"),
                (
                    "COPY a",
                    "-ERR wrong number of arguments for 'copy' command",
                ),
            ],
        );
        // An expired source copies nothing.
        check(
            &node,
            NOW + 6000,
            &[("COPY s s3", ":0"), ("EXISTS s s2 s3", ":0")],
        );
    }
}
