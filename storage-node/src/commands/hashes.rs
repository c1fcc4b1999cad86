//! Hash commands. A hash is a meta record (type, version, field count) plus
//! one record per field at `prefix + eh(field) + field` (see
//! `engine::keys`), so single-field commands are one meta read plus one
//! point read/write, whatever the size of the hash.

use rampart_proto::args::{parse_f64, parse_i64, Args};
use rampart_proto::{errors, reply, Reply};

use super::collection::{self as coll, SplitMix};
use super::strings::format_float;
use super::CmdResult;
use crate::engine::keys as layout;
use crate::engine::meta::ValueType;
use crate::engine::{DataRead, Txn};

const KIND: ValueType = ValueType::Hash;
const NOT_INTEGER_VALUE: &str = "ERR hash value is not an integer";
const NOT_FLOAT_VALUE: &str = "ERR hash value is not a float";
const NAN_OR_INF: &str = "ERR value is NaN or Infinity";

fn field_value<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    field: &[u8],
) -> Result<Option<Vec<u8>>, super::CmdError> {
    Ok(r.get(&layout::hashed_element_key(prefix, field))?)
}

/// HSET key field value [field value ...] (`multi` false) and HMSET.
pub fn hset(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, hmset: bool) -> CmdResult {
    if args.len() < 3 || args.len().is_multiple_of(2) {
        return Err(errors::wrong_arity(if hmset { "hmset" } else { "hset" }).into());
    }
    let key = &args[0];
    let mut meta = coll::lookup_or_create(txn, key, KIND, now)?;
    let mut count = coll::count(&meta)?;
    let prefix = coll::prefix(key, &meta);
    let mut added = 0;
    for pair in args[1..].chunks(2) {
        let field_key = layout::hashed_element_key(&prefix, &pair[0]);
        if txn.get(&field_key)?.is_none() {
            added += 1;
            count += 1;
        }
        txn.put(field_key, pair[1].clone());
    }
    coll::store(txn, key, &mut meta, count)?;
    Ok(if hmset {
        reply::ok()
    } else {
        reply::integer(added)
    })
}

pub fn hsetnx(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let (key, field, value) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    let mut meta = coll::lookup_or_create(txn, key, KIND, now)?;
    let prefix = coll::prefix(key, &meta);
    let field_key = layout::hashed_element_key(&prefix, field);
    if txn.get(&field_key)?.is_some() {
        return Ok(reply::integer(0));
    }
    txn.put(field_key, value.to_vec());
    let count = coll::count(&meta)? + 1;
    coll::store(txn, key, &mut meta, count)?;
    Ok(reply::integer(1))
}

pub fn hget<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let (key, field) = (a.next_bytes()?, a.next_bytes()?);
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(reply::null());
    };
    Ok(match field_value(r, &coll::prefix(key, &meta), field)? {
        Some(v) => reply::bulk(v),
        None => reply::null(),
    })
}

pub fn hmget<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let meta = coll::lookup(r, key, KIND, now)?;
    let mut items = Vec::with_capacity(args.len() - 1);
    for field in &args[1..] {
        let value = match &meta {
            Some(meta) => field_value(r, &coll::prefix(key, meta), field)?,
            None => None,
        };
        items.push(value.map_or_else(reply::null, reply::bulk));
    }
    Ok(reply::array(items))
}

pub fn hdel(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(reply::integer(0));
    };
    let prefix = coll::prefix(key, &meta);
    let mut count = coll::count(&meta)?;
    let mut removed = 0;
    for field in &args[1..] {
        let field_key = layout::hashed_element_key(&prefix, field);
        if txn.get(&field_key)?.is_some() {
            txn.delete(field_key);
            removed += 1;
            count = count.saturating_sub(1);
        }
    }
    if removed > 0 {
        coll::store(txn, key, &mut meta, count)?;
    }
    Ok(reply::integer(removed))
}

pub fn hexists<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, field) = (&args[0], &args[1]);
    let found = match coll::lookup(r, key, KIND, now)? {
        Some(meta) => field_value(r, &coll::prefix(key, &meta), field)?.is_some(),
        None => false,
    };
    Ok(reply::integer(found as i64))
}

pub fn hlen<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let len = match coll::lookup(r, &args[0], KIND, now)? {
        Some(meta) => coll::count(&meta)?,
        None => 0,
    };
    Ok(reply::integer(len as i64))
}

pub fn hstrlen<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, field) = (&args[0], &args[1]);
    let len = match coll::lookup(r, key, KIND, now)? {
        Some(meta) => field_value(r, &coll::prefix(key, &meta), field)?.map_or(0, |v| v.len()),
        None => 0,
    };
    Ok(reply::integer(len as i64))
}

/// What HKEYS / HVALS / HGETALL return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Keys,
    Values,
    All,
}

pub fn hgetall<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, part: Part) -> CmdResult {
    let key = &args[0];
    let fields = match coll::lookup(r, key, KIND, now)? {
        Some(meta) => coll::hashed_elements(r, &coll::prefix(key, &meta))?,
        None => Vec::new(),
    };
    Ok(match part {
        Part::Keys => reply::bulk_array(fields.into_iter().map(|(f, _)| f)),
        Part::Values => reply::bulk_array(fields.into_iter().map(|(_, v)| v)),
        Part::All => reply::map(
            fields
                .into_iter()
                .map(|(f, v)| (reply::bulk(f), reply::bulk(v)))
                .collect(),
        ),
    })
}

pub fn hincrby(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, field) = (&args[0], &args[1]);
    let incr = parse_i64(&args[2]).ok_or(errors::NOT_INTEGER)?;
    let mut meta = coll::lookup_or_create(txn, key, KIND, now)?;
    let prefix = coll::prefix(key, &meta);
    let mut count = coll::count(&meta)?;
    let old = field_value(&*txn, &prefix, field)?;
    let current = match &old {
        Some(v) => parse_i64(v).ok_or(NOT_INTEGER_VALUE)?,
        None => 0,
    };
    let value = current.checked_add(incr).ok_or(errors::OVERFLOW)?;
    if old.is_none() {
        count += 1;
    }
    txn.put(
        layout::hashed_element_key(&prefix, field),
        value.to_string().into_bytes(),
    );
    coll::store(txn, key, &mut meta, count)?;
    Ok(reply::integer(value))
}

pub fn hincrbyfloat(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, field) = (&args[0], &args[1]);
    let incr = parse_f64(&args[2]).ok_or(errors::NOT_FLOAT)?;
    if !incr.is_finite() {
        return Err(NAN_OR_INF.into());
    }
    let mut meta = coll::lookup_or_create(txn, key, KIND, now)?;
    let prefix = coll::prefix(key, &meta);
    let mut count = coll::count(&meta)?;
    let old = field_value(&*txn, &prefix, field)?;
    let current = match &old {
        Some(v) => parse_f64(v).ok_or(NOT_FLOAT_VALUE)?,
        None => 0.0,
    };
    let value = current + incr;
    if !value.is_finite() {
        return Err(errors::INCR_NAN_OR_INF.into());
    }
    if old.is_none() {
        count += 1;
    }
    let text = format_float(value);
    txn.put(
        layout::hashed_element_key(&prefix, field),
        text.clone().into_bytes(),
    );
    coll::store(txn, key, &mut meta, count)?;
    Ok(reply::bulk(text))
}

/// HRANDFIELD key [count [WITHVALUES]].
pub fn hrandfield<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let (with_values, counted) = coll::parse_random_args(args, b"WITHVALUES")?;
    let meta = coll::lookup(r, key, KIND, now)?;
    let mut rng = SplitMix(rand::random());
    let Some((k, distinct)) = counted else {
        let Some(meta) = meta else {
            return Ok(reply::null());
        };
        let prefix = coll::prefix(key, &meta);
        let picked = coll::random_elements(r, &prefix, coll::count(&meta)?, 1, true, &mut rng)?;
        return Ok(picked
            .into_iter()
            .next()
            .map_or_else(reply::null, |(f, _)| reply::bulk(f)));
    };
    let picked = match meta {
        Some(meta) => {
            let prefix = coll::prefix(key, &meta);
            coll::random_elements(r, &prefix, coll::count(&meta)?, k, distinct, &mut rng)?
        }
        None => Vec::new(),
    };
    Ok(if with_values {
        coll::pairs_reply(
            picked
                .into_iter()
                .map(|(f, v)| (reply::bulk(f), reply::bulk(v)))
                .collect(),
        )
    } else {
        reply::bulk_array(picked.into_iter().map(|(f, _)| f))
    })
}

pub fn hscan<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let scan = coll::parse_scan_args(&args[1..])?;
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(empty_scan());
    };
    coll::scan_page(r, &coll::prefix(key, &meta), &scan, &mut |f, v, out| {
        out.push(reply::bulk(f.to_vec()));
        out.push(reply::bulk(v.to_vec()));
    })
}

pub(crate) fn empty_scan() -> Reply {
    reply::array(vec![reply::bulk("0"), reply::array(Vec::new())])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::test_support::{check, show, Node};

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn set_get_delete_and_counts() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("HSET h f1 v1 f2 v2", ":2"),
                ("HSET h f1 x f3 v3", ":1"),
                ("HGET h f1", "\"x\""),
                ("HGET h nope", "nil"),
                ("HGET nokey f", "nil"),
                ("HLEN h", ":3"),
                ("HLEN nokey", ":0"),
                ("HMGET h f1 nope f3", "[\"x\", nil, \"v3\"]"),
                ("HMGET nokey a b", "[nil, nil]"),
                ("HEXISTS h f2", ":1"),
                ("HEXISTS h f9", ":0"),
                ("HSTRLEN h f3", ":2"),
                ("HSTRLEN h f9", ":0"),
                ("HSETNX h f1 y", ":0"),
                ("HSETNX h f4 y", ":1"),
                ("HMSET h f5 a f6 b", "+OK"),
                ("HLEN h", ":6"),
                ("HDEL h f1 f1 nope", ":1"),
                ("HDEL nokey f", ":0"),
                ("HDEL h f2 f3 f4 f5", ":4"),
                ("TYPE h", "+hash"),
                ("HDEL h f6", ":1"),
                // The last field gone, the key is gone.
                ("EXISTS h", ":0"),
                ("TYPE h", "+none"),
                ("DBSIZE", ":0"),
            ],
        );
    }

    #[test]
    fn arity_and_wrong_type() {
        let node = Node::new();
        let wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value";
        check(
            &node,
            NOW,
            &[
                (
                    "HSET h f",
                    "-ERR wrong number of arguments for 'hset' command",
                ),
                (
                    "HSET h f v g",
                    "-ERR wrong number of arguments for 'hset' command",
                ),
                (
                    "HMSET h f",
                    "-ERR wrong number of arguments for 'hmset' command",
                ),
                (
                    "HGET h",
                    "-ERR wrong number of arguments for 'hget' command",
                ),
                (
                    "HDEL h",
                    "-ERR wrong number of arguments for 'hdel' command",
                ),
                ("SET s v", "+OK"),
                ("HSET s f v", wrongtype),
                ("HGET s f", wrongtype),
                ("HMGET s f", wrongtype),
                ("HGETALL s", wrongtype),
                ("HLEN s", wrongtype),
                ("HINCRBY s f 1", wrongtype),
                ("HSCAN s 0", wrongtype),
                ("HRANDFIELD s", wrongtype),
                ("HSET h f v", ":1"),
                ("GET h", wrongtype),
                ("GET s", "\"v\""),
            ],
        );
    }

    #[test]
    fn getall_keys_vals() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("HGETALL nokey", "[]"),
                ("HKEYS nokey", "[]"),
                ("HVALS nokey", "[]"),
                ("HSET h a 1", ":1"),
                ("HGETALL h", "[\"a\", \"1\"]"),
                ("HKEYS h", "[\"a\"]"),
                ("HVALS h", "[\"1\"]"),
            ],
        );
        check(&node, NOW, &[("HSET h b 2 c 3", ":2")]);
        let all = show(&node.run(NOW, "HGETALL h"));
        for pair in ["\"a\", \"1\"", "\"b\", \"2\"", "\"c\", \"3\""] {
            assert!(all.contains(pair), "{all}");
        }
        assert!(matches!(
            node.run(NOW, "HGETALL h").kind,
            Some(rampart_proto::pb::reply::Kind::Map(_))
        ));
    }

    #[test]
    fn counters() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("HINCRBY h n 5", ":5"),
                ("HINCRBY h n -7", ":-2"),
                ("HGET h n", "\"-2\""),
                (
                    "HINCRBY h n x",
                    "-ERR value is not an integer or out of range",
                ),
                ("HSET h s abc", ":1"),
                ("HINCRBY h s 1", "-ERR hash value is not an integer"),
                ("HSET h big 9223372036854775807", ":1"),
                (
                    "HINCRBY h big 1",
                    "-ERR increment or decrement would overflow",
                ),
                ("HINCRBYFLOAT h f 10.5", "\"10.5\""),
                ("HINCRBYFLOAT h f 0.1", "\"10.6\""),
                ("HINCRBYFLOAT h f -5.0e3", "\"-4989.4\""),
                ("HINCRBYFLOAT h n 2", "\"0\""),
                ("HINCRBYFLOAT h s 1", "-ERR hash value is not a float"),
                ("HINCRBYFLOAT h f x", "-ERR value is not a valid float"),
                ("HINCRBYFLOAT h f inf", "-ERR value is NaN or Infinity"),
                ("HSET h m 1.7976931348623157e308", ":1"),
                (
                    "HINCRBYFLOAT h m 1.7976931348623157e308",
                    "-ERR increment would produce NaN or Infinity",
                ),
                ("HLEN h", ":5"),
            ],
        );
    }

    #[test]
    fn expired_hash_is_replaced_not_merged() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[("HSET h old 1", ":1"), ("PEXPIRE h 10", ":1")],
        );
        check(
            &node,
            NOW + 10,
            &[
                ("HGET h old", "nil"),
                ("HSET h new 1", ":1"),
                ("HGETALL h", "[\"new\", \"1\"]"),
                ("HLEN h", ":1"),
                ("TTL h", ":-1"),
            ],
        );
    }

    #[test]
    fn randfield_counts() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("HRANDFIELD nokey", "nil"),
                ("HRANDFIELD nokey 3", "[]"),
                ("HRANDFIELD nokey 3 WITHVALUES", "[]"),
                ("HSET h a 1 b 2 c 3", ":3"),
                ("HRANDFIELD h 0", "[]"),
                ("HRANDFIELD h 1 FOO", "-ERR syntax error"),
                ("HRANDFIELD h 1 WITHVALUES x", "-ERR syntax error"),
                (
                    "HRANDFIELD h x",
                    "-ERR value is not an integer or out of range",
                ),
            ],
        );
        let one = show(&node.run(NOW, "HRANDFIELD h"));
        assert!(["\"a\"", "\"b\"", "\"c\""].contains(&one.as_str()), "{one}");
        // Positive count: distinct fields, at most the hash size.
        let all = show(&node.run(NOW, "HRANDFIELD h 10"));
        let fields: BTreeSet<&str> = all.trim_matches(['[', ']']).split(", ").collect();
        assert_eq!(fields.len(), 3);
        let two = show(&node.run(NOW, "HRANDFIELD h 2"));
        let fields: BTreeSet<&str> = two.trim_matches(['[', ']']).split(", ").collect();
        assert_eq!(fields.len(), 2);
        // Negative count: exactly |count| picks, repeats allowed.
        let many = show(&node.run(NOW, "HRANDFIELD h -10"));
        assert_eq!(many.split(", ").count(), 10);
        // WITHVALUES pairs each field with its value.
        let with = show(&node.run(NOW, "HRANDFIELD h -5 WITHVALUES"));
        assert_eq!(with.matches('[').count(), 6, "{with}");
        for pair in with.trim_matches(['[', ']']).split("], [") {
            assert!(
                ["\"a\", \"1\"", "\"b\", \"2\"", "\"c\", \"3\""].contains(&pair),
                "{with}"
            );
        }
    }

    #[test]
    fn randfield_on_a_large_hash_samples_distinct_fields() {
        let node = Node::new();
        let mut args = vec![b"HSET".to_vec(), b"h".to_vec()];
        for i in 0..1_000 {
            args.push(format!("f{i}").into_bytes());
            args.push(b"v".to_vec());
        }
        assert_eq!(show(&node.run_at(NOW, &args)), ":1000");
        let picked = show(&node.run(NOW, "HRANDFIELD h 50"));
        let fields: BTreeSet<&str> = picked.trim_matches(['[', ']']).split(", ").collect();
        assert_eq!(fields.len(), 50);
    }

    #[test]
    fn hscan_visits_every_field_once() {
        let node = Node::new();
        let mut args = vec![b"HSET".to_vec(), b"h".to_vec()];
        for i in 0..300 {
            args.push(format!("f{i}").into_bytes());
            args.push(format!("v{i}").into_bytes());
        }
        node.run_at(NOW, &args);
        check(
            &node,
            NOW,
            &[
                ("HSCAN nokey 0", "[\"0\", []]"),
                ("HSCAN h x", "-ERR invalid cursor"),
                ("HSCAN h 0 COUNT 0", "-ERR syntax error"),
                ("HSCAN h 0 FOO", "-ERR syntax error"),
            ],
        );
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let reply = node.run(NOW, &format!("HSCAN h {cursor} COUNT 7"));
            let text = show(&reply);
            let (head, rest) = text[2..].split_once("\", [").expect("scan reply");
            cursor = head.to_string();
            let body = rest.trim_end_matches("]]");
            let items: Vec<&str> = if body.is_empty() {
                Vec::new()
            } else {
                body.split(", ").collect()
            };
            for pair in items.chunks(2) {
                let field = pair[0].trim_matches('"');
                let value = pair[1].trim_matches('"');
                assert_eq!(&value[1..], &field[1..]);
                seen.push(field.to_string());
            }
            pages += 1;
            if cursor == "0" {
                break;
            }
            assert!(pages < 1_000);
        }
        let unique: BTreeSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), 300);
        assert_eq!(unique.len(), 300);
        assert!(pages > 10);
        let matched = show(&node.run(NOW, "HSCAN h 0 MATCH f1?? COUNT 1000"));
        assert_eq!(matched.matches("\"f1").count(), 100);
    }
}
