//! DUMP and RESTORE in Redis's RDB payload format (`rampart_proto::rdb`),
//! so values move between Redis and Rampart with redis-cli, RIOT or any
//! tool that pipes DUMP into RESTORE (docs/dump-restore.md).
//!
//! DUMP reads the whole value through the families' own readers and
//! encodes it; RESTORE decodes and validates the whole payload first, then
//! writes through the families' own writers (SADD, HSET, RPUSH, the zset
//! store and the stream records), so the layouts stay theirs alone.

use std::collections::HashMap;

use prost::Message;
use rampart_proto::args::{parse_i64, Args};
use rampart_proto::rdb::{self, Consumer, PendingEntry, StreamEntry, StreamGroup, Value};
use rampart_proto::{errors, reply};

use super::collection as coll;
use super::streams::id::StreamId;
use super::streams::layout::{ConsumerRecord, GroupMeta, PendingRecord, Stream};
use super::streams::{legacy, pel};
use super::{hashes, lists, sets, zsets, CmdError, CmdResult};
use crate::engine::keys::ZSET_MEMBER_TAG;
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{live_meta, load_meta, DataRead, EngineError, Txn};

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_TTL: &str = "ERR Invalid TTL value, must be >= 0";
const BAD_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
const BAD_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";

/// DUMP key: the payload, or nil when the key does not exist.
pub fn dump<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = Args::new(args).next_bytes()?;
    let Some(meta) = live_meta(r, key, now)? else {
        return Ok(reply::null());
    };
    let value = read_value(r, key, meta, now)?;
    Ok(reply::bulk(rdb::encode(&value)))
}

/// The whole value of `key` (live, described by `meta`).
fn read_value<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: Meta,
    now: i64,
) -> Result<Value, CmdError> {
    let prefix = coll::prefix(key, &meta);
    Ok(match meta.kind {
        ValueType::String => Value::String(meta.payload),
        ValueType::List => {
            // Elements are keyed by their sequence number, so key order is
            // list order.
            let mut elements = Vec::new();
            coll::for_each_under(r, &prefix, &mut |_, element| {
                elements.push(element.to_vec());
                true
            })?;
            Value::List(elements)
        }
        ValueType::Set => Value::Set(sets::members(r, key, now)?),
        ValueType::Hash => Value::Hash(coll::hashed_elements(r, &prefix)?),
        ValueType::ZSet => {
            let by_member = coll::tagged(&prefix, ZSET_MEMBER_TAG);
            let mut items = Vec::new();
            for (member, score) in coll::hashed_elements(r, &by_member)? {
                items.push((member, score_of(&score)?));
            }
            Value::ZSet(items)
        }
        ValueType::Stream => Value::Stream(Box::new(read_stream(r, key, now)?)),
    })
}

/// A by-member record's value: the score's bits, big-endian (zsets.rs
/// writes them; its own decoder is private to it).
fn score_of(bytes: &[u8]) -> Result<f64, CmdError> {
    let word: [u8; 8] = bytes
        .try_into()
        .map_err(|_| EngineError::Corrupt("zset score of bad length".into()))?;
    Ok(f64::from_bits(u64::from_be_bytes(word)))
}

fn read_stream<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64) -> Result<rdb::Stream, CmdError> {
    legacy::with_readable(r, key, now, |r, stream| {
        let stream =
            stream.ok_or_else(|| EngineError::Corrupt("stream vanished during DUMP".into()))?;
        let info = &stream.info;
        let entries = stream
            .range(r, StreamId::MIN, StreamId::MAX, false, None)?
            .into_iter()
            .map(|e| StreamEntry {
                id: e.id,
                field_values: e.field_values,
            })
            .collect();
        let mut groups = Vec::with_capacity(info.groups.len());
        for g in &info.groups {
            let pending = pel::pel_range(
                r,
                stream,
                &g.name,
                StreamId::MIN,
                StreamId::MAX,
                false,
                usize::MAX,
            )?
            .into_iter()
            .map(|(id, p)| PendingEntry {
                id,
                consumer: p.consumer,
                delivery_time_ms: p.delivery_time_ms,
                delivery_count: p.delivery_count,
            })
            .collect();
            let consumers = pel::consumers(r, stream, &g.name)?
                .into_iter()
                .map(|(name, c)| Consumer {
                    name,
                    seen_time_ms: c.seen_time_ms,
                    active_time_ms: c.active_time_ms,
                })
                .collect();
            groups.push(StreamGroup {
                name: g.name.clone(),
                last_id: g.last_id(),
                entries_read: g.entries_read,
                pending,
                consumers,
            });
        }
        Ok(rdb::Stream {
            entries,
            last_id: info.last_id(),
            first_id: info.first_id(),
            max_deleted_id: info.max_deleted_id(),
            entries_added: info.entries_added,
            groups,
        })
    })
}

/// RESTORE's options.
struct RestoreOptions {
    replace: bool,
    absttl: bool,
}

/// Parses `[REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]` as
/// Redis does: IDLETIME and FREQ exclude each other (the second one is a
/// syntax error), and their values are checked though Rampart keeps no
/// access times or frequencies.
fn restore_options(args: &[Vec<u8>]) -> Result<RestoreOptions, CmdError> {
    let mut opts = RestoreOptions {
        replace: false,
        absttl: false,
    };
    let (mut idle, mut freq) = (false, false);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_ascii_lowercase();
        let has_value = i + 1 < args.len();
        match arg.as_slice() {
            b"replace" => opts.replace = true,
            b"absttl" => opts.absttl = true,
            b"idletime" if has_value && !freq => {
                let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
                if n < 0 {
                    return Err(BAD_IDLETIME.into());
                }
                idle = true;
                i += 1;
            }
            b"freq" if has_value && !idle => {
                let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
                if !(0..=255).contains(&n) {
                    return Err(BAD_FREQ.into());
                }
                freq = true;
                i += 1;
            }
            _ => return Err(errors::SYNTAX.into()),
        }
        i += 1;
    }
    Ok(opts)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]. The checks run in Redis's order: options, BUSYKEY,
/// ttl, payload footer, payload body; nothing is written before all pass.
pub fn restore(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?.to_vec();
    let ttl = a.next_bytes()?;
    let payload = a.next_bytes()?;
    let opts = restore_options(a.rest())?;
    if !opts.replace && live_meta(&*txn, &key, now)?.is_some() {
        return Err(BUSYKEY.into());
    }
    let ttl = parse_i64(ttl).ok_or(errors::NOT_INTEGER)?;
    if ttl < 0 {
        return Err(BAD_TTL.into());
    }
    let value = rdb::decode(payload).map_err(|err| CmdError::from(err.to_string()))?;
    // Drops the old value (with REPLACE) or an expired record left behind.
    txn.delete_key(&key)?;
    let expire_at = match ttl {
        0 => 0,
        ttl if opts.absttl => ttl,
        ttl => ttl.saturating_add(now),
    };
    // A TTL already past restores nothing, yet answers OK (as Redis; the
    // old value is gone all the same with REPLACE).
    if expire_at != 0 && expire_at <= now {
        return Ok(reply::ok());
    }
    write_value(txn, &key, value, now)?;
    if expire_at != 0 {
        let mut meta = load_meta(&*txn, &key)?
            .ok_or_else(|| EngineError::Corrupt("restored key missing".into()))?;
        meta.expire_at_ms = expire_at;
        txn.put_meta(&key, &meta)?;
    }
    Ok(reply::ok())
}

/// Stores `value` at `key`, which holds nothing.
fn write_value(txn: &mut Txn<'_>, key: &[u8], value: Value, now: i64) -> Result<(), CmdError> {
    // The decoder refused empty collections and duplicates, so each write
    // below creates exactly the value decoded.
    let with_key = |rest: Vec<Vec<u8>>| {
        let mut argv = Vec::with_capacity(rest.len() + 1);
        argv.push(key.to_vec());
        argv.extend(rest);
        argv
    };
    match value {
        Value::String(s) => txn.put_meta(key, &Meta::string(s, 0))?,
        Value::List(elements) => {
            lists::push(txn, &with_key(elements), now, false, false)?;
        }
        Value::Set(members) => {
            sets::sadd(txn, &with_key(members), now)?;
        }
        Value::Hash(pairs) => {
            let flat = pairs.into_iter().flat_map(|(f, v)| [f, v]).collect();
            hashes::hset(txn, &with_key(flat), now, false)?;
        }
        Value::ZSet(items) => zsets::replace_with(txn, key, &items)?,
        Value::Stream(s) => write_stream(txn, key, *s)?,
    }
    Ok(())
}

fn write_stream(txn: &mut Txn<'_>, key: &[u8], s: rdb::Stream) -> Result<(), CmdError> {
    let mut stream = Stream::create(txn, key)?;
    stream.info.length = s.entries.len() as u64;
    stream.info.set_last_id(s.last_id);
    stream.info.set_first_id(s.first_id);
    stream.info.set_max_deleted_id(s.max_deleted_id);
    stream.info.entries_added = s.entries_added;
    for e in s.entries {
        stream.put_entry(txn, e.id, e.field_values);
    }
    for g in s.groups {
        let mut owned: HashMap<&[u8], u64> = HashMap::new();
        for p in &g.pending {
            *owned.entry(p.consumer.as_slice()).or_default() += 1;
            let record = PendingRecord {
                consumer: p.consumer.clone(),
                delivery_time_ms: p.delivery_time_ms,
                delivery_count: p.delivery_count,
            };
            txn.put(stream.pending_key(&g.name, p.id), record.encode_to_vec());
            txn.put(
                stream.consumer_pel_key(&g.name, &p.consumer, p.id),
                Vec::new(),
            );
        }
        for c in &g.consumers {
            let record = ConsumerRecord {
                seen_time_ms: c.seen_time_ms,
                active_time_ms: c.active_time_ms,
                pending: owned.get(c.name.as_slice()).copied().unwrap_or(0),
            };
            txn.put(
                stream.consumer_key(&g.name, &c.name),
                record.encode_to_vec(),
            );
        }
        stream.info.groups.push(GroupMeta {
            name: g.name.clone(),
            last_ms: g.last_id.ms,
            last_seq: g.last_id.seq,
            entries_read: g.entries_read,
            pending: g.pending.len() as u64,
        });
    }
    // XINFO GROUPS lists groups in name order; the decoder sorted them.
    stream.save(txn)
}

#[cfg(test)]
mod tests {
    use rampart_proto::pb::reply::Kind;
    use rampart_proto::rdb::{self, Value};

    use super::super::test_support::*;

    const NOW: i64 = 1_700_000_000_000;

    fn captured(key: &str) -> Vec<u8> {
        let line = include_str!("../../../proto/src/rdb/testdata/redis70.txt")
            .lines()
            .find(|l| l.split(' ').next() == Some(key))
            .unwrap();
        let hex = line.split(' ').nth(1).unwrap();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn cmd(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.to_vec()).collect()
    }

    fn restore(node: &Node, key: &str, payload: &[u8], extra: &[&str]) -> String {
        let mut argv = cmd(&[b"RESTORE", key.as_bytes(), b"0", payload]);
        argv.extend(extra.iter().map(|e| e.as_bytes().to_vec()));
        show(&node.run_at(NOW, &argv))
    }

    fn dump(node: &Node, key: &str) -> Option<Vec<u8>> {
        match node.run_at(NOW, &cmd(&[b"DUMP", key.as_bytes()])).kind {
            Some(Kind::Bulk(b)) => Some(b),
            Some(Kind::Null(_)) => None,
            other => panic!("DUMP {key}: {other:?}"),
        }
    }

    #[test]
    fn every_captured_redis_value_restores_and_dumps_back() {
        let node = Node::new();
        for key in [
            "s_raw", "s_int", "s_lzf", "l_small", "l_big", "l_plain", "set_int", "set_str",
            "set_big", "z_small", "z_big", "h_small", "h_big", "st", "st_big", "st_empty",
        ] {
            let payload = captured(key);
            assert_eq!(restore(&node, key, &payload, &[]), "+OK", "{key}");
            let back = dump(&node, key).unwrap();
            let (want, got) = (rdb::decode(&payload).unwrap(), rdb::decode(&back).unwrap());
            assert_eq!(normalize(want), normalize(got), "{key}");
        }
        check(
            &node,
            NOW,
            &[
                (
                    "LRANGE l_small 0 -1",
                    "[\"a\", \"1\", \"bb\", \"-300\", \"70000\"]",
                ),
                ("LLEN l_big", ":1000"),
                ("SCARD set_big", ":300"),
                ("ZSCORE z_small b", ",2.5"),
                ("HGET h_small f2", "\"2\""),
                ("XLEN st", ":3"),
                (
                    "XPENDING st g1",
                    "[:3, \"1-1\", \"3-0\", [[\"alice\", \"2\"], [\"bob\", \"1\"]]]",
                ),
            ],
        );
    }

    /// Order-insensitive form of set/hash/zset values.
    fn normalize(v: Value) -> Value {
        match v {
            Value::Set(mut m) => {
                m.sort();
                Value::Set(m)
            }
            Value::Hash(mut p) => {
                p.sort();
                Value::Hash(p)
            }
            Value::ZSet(mut p) => {
                p.sort_by(|a, b| a.0.cmp(&b.0));
                Value::ZSet(p)
            }
            other => other,
        }
    }

    #[test]
    fn restore_options_and_errors() {
        let node = Node::new();
        let payload = captured("s_raw");
        assert_eq!(restore(&node, "k", &payload, &[]), "+OK");
        assert_eq!(
            restore(&node, "k", &payload, &[]),
            "-BUSYKEY Target key name already exists."
        );
        assert_eq!(restore(&node, "k", &payload, &["REPLACE"]), "+OK");
        let run = |args: &[&[u8]]| show(&node.run_at(NOW, &cmd(args)));
        assert_eq!(
            run(&[b"RESTORE", b"n", b"-1", &payload]),
            "-ERR Invalid TTL value, must be >= 0"
        );
        assert_eq!(
            run(&[b"RESTORE", b"n", b"x", &payload]),
            "-ERR value is not an integer or out of range"
        );
        assert_eq!(
            run(&[b"RESTORE", b"n", b"0", &payload, b"IDLETIME", b"-1"]),
            "-ERR Invalid IDLETIME value, must be >= 0"
        );
        assert_eq!(
            run(&[b"RESTORE", b"n", b"0", &payload, b"FREQ", b"256"]),
            "-ERR Invalid FREQ value, must be >= 0 and <= 255"
        );
        assert_eq!(
            run(&[
                b"RESTORE",
                b"n",
                b"0",
                &payload,
                b"FREQ",
                b"1",
                b"IDLETIME",
                b"1"
            ]),
            "-ERR syntax error"
        );
        assert_eq!(
            run(&[b"RESTORE", b"n", b"0", &payload, b"IDLETIME"]),
            "-ERR syntax error"
        );
        assert_eq!(
            run(&[
                b"RESTORE",
                b"n",
                b"0",
                &payload,
                b"IDLETIME",
                b"10",
                b"REPLACE"
            ]),
            "+OK"
        );
        assert_eq!(
            run(&[b"RESTORE", b"c", b"0", &payload[..payload.len() - 1]]),
            "-ERR DUMP payload version or checksum are wrong"
        );
        // TTLs: relative, absolute, already past.
        assert_eq!(run(&[b"RESTORE", b"t", b"5000", &payload]), "+OK");
        check(&node, NOW, &[("PTTL t", ":5000")]);
        let at = (NOW + 9000).to_string();
        assert_eq!(
            run(&[b"RESTORE", b"a", at.as_bytes(), &payload, b"ABSTTL"]),
            "+OK"
        );
        check(&node, NOW, &[("PTTL a", ":9000")]);
        let past = (NOW - 1).to_string();
        assert_eq!(
            run(&[
                b"RESTORE",
                b"k",
                past.as_bytes(),
                &payload,
                b"ABSTTL",
                b"REPLACE"
            ]),
            "+OK"
        );
        check(&node, NOW, &[("EXISTS k", ":0")]);
        // A TTL'd list keeps its TTL and elements.
        assert_eq!(run(&[b"RESTORE", b"l", b"100", &captured("l_big")]), "+OK");
        check(&node, NOW, &[("PTTL l", ":100"), ("LLEN l", ":1000")]);
        assert_eq!(dump(&node, "missing"), None);
    }

    #[test]
    fn dump_round_trips_rampart_values() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RPUSH l a b 3", ":3"),
                ("SADD s x 1 y", ":3"),
                ("ZADD z 1 a -2.5 b inf c", ":3"),
                ("HSET h f v g 10", ":2"),
                ("XADD x 1-1 a 1", "\"1-1\""),
                ("XADD x 2-1 b 2 c 3", "\"2-1\""),
                ("XGROUP CREATE x g 0", "+OK"),
            ],
        );
        let read = node.run(NOW, "XREADGROUP GROUP g c1 COUNT 1 STREAMS x >");
        assert!(!read.is_error(), "{}", show(&read));
        for key in ["l", "s", "z", "h", "x"] {
            let payload = dump(&node, key).unwrap();
            let target = format!("{key}2");
            assert_eq!(restore(&node, &target, &payload, &[]), "+OK");
            let again = dump(&node, &target).unwrap();
            assert_eq!(
                normalize(rdb::decode(&payload).unwrap()),
                normalize(rdb::decode(&again).unwrap()),
                "{key}"
            );
        }
        check(
            &node,
            NOW,
            &[
                ("LRANGE l2 0 -1", "[\"a\", \"b\", \"3\"]"),
                (
                    "ZRANGE z2 0 -1 WITHSCORES",
                    "[[\"b\", ,-2.5], [\"a\", ,1], [\"c\", ,inf]]",
                ),
                ("XPENDING x2 g", "[:1, \"1-1\", \"1-1\", [[\"c1\", \"1\"]]]"),
            ],
        );
    }
}
