//! Hashes, lists, sets and sorted sets through a real proxy in front of a
//! real 3-node cluster: exact replies (RESP2 and RESP3), Redis 7.2 error
//! texts and the edge cases Redis documents (negative indexes, empty
//! results, count arguments, infinite and exclusive ranges, lex ranges,
//! WRONGTYPE across types, wrong arity).
//!
//! All tests share one cluster and use key names prefixed with their own
//! test name, so they run in parallel without touching each other's keys.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT cargo test --test collections`
//! runs the same expectations against a real Redis (checks that need Redis
//! 7.2 or are Rampart-only are skipped there).

mod common;

use common::{ask, check, connect, int, query, render, shared_target, RawConn};

fn con() -> redis::Connection {
    shared_target().connection()
}

fn con3() -> redis::Connection {
    connect(&shared_target().addr, Some("protocol=resp3"))
}

/// The string items of a flat array/set reply, sorted (for replies whose
/// order Redis leaves unspecified).
#[track_caller]
fn sorted(c: &mut redis::Connection, args: &[&str]) -> Vec<String> {
    let mut out = strings(&query(c, args), args);
    out.sort();
    out
}

#[track_caller]
fn strings(v: &redis::Value, args: &[&str]) -> Vec<String> {
    use redis::Value as V;
    let items = match v {
        V::Array(items) | V::Set(items) => items,
        other => panic!("expected an array reply to {args:?}, got {}", render(other)),
    };
    items
        .iter()
        .map(|i| match i {
            V::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            V::Int(n) => n.to_string(),
            V::Double(d) => d.to_string(),
            other => panic!("unexpected item in reply to {args:?}: {}", render(other)),
        })
        .collect()
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

#[track_caller]
fn arity(c: &mut redis::Connection, args: &[&str]) {
    let name = args[0].to_ascii_lowercase();
    check(
        c,
        args,
        &format!("-ERR wrong number of arguments for '{name}' command"),
    );
}

// ---------------------------------------------------------------------------
// Hashes.

#[test]
fn hash_basic_commands() {
    let mut c = con();
    let k = "hb:h";
    check(&mut c, &["HSET", k, "f1", "v1", "f2", "v2"], ":2");
    check(&mut c, &["HSET", k, "f1", "x", "f3", "v3"], ":1");
    check(&mut c, &["HGET", k, "f1"], "\"x\"");
    check(&mut c, &["HGET", k, "nosuch"], "nil");
    check(&mut c, &["HGET", "hb:none", "f"], "nil");
    check(&mut c, &["HSETNX", k, "f1", "y"], ":0");
    check(&mut c, &["HSETNX", k, "f4", "y"], ":1");
    check(&mut c, &["HMSET", k, "f5", "five", "f6", ""], "+OK");
    check(
        &mut c,
        &["HMGET", k, "f1", "nosuch", "f6"],
        "[\"x\", nil, \"\"]",
    );
    check(&mut c, &["HMGET", "hb:none", "a", "b"], "[nil, nil]");
    check(&mut c, &["HLEN", k], ":6");
    check(&mut c, &["HLEN", "hb:none"], ":0");
    check(&mut c, &["HEXISTS", k, "f2"], ":1");
    check(&mut c, &["HEXISTS", k, "zz"], ":0");
    check(&mut c, &["HEXISTS", "hb:none", "zz"], ":0");
    check(&mut c, &["HSTRLEN", k, "f5"], ":4");
    check(&mut c, &["HSTRLEN", k, "f6"], ":0");
    check(&mut c, &["HSTRLEN", k, "nosuch"], ":0");
    check(&mut c, &["HSTRLEN", "hb:none", "f"], ":0");
    assert_eq!(
        sorted(&mut c, &["HKEYS", k]),
        v(&["f1", "f2", "f3", "f4", "f5", "f6"])
    );
    assert_eq!(
        sorted(&mut c, &["HVALS", k]),
        v(&["", "five", "v2", "v3", "x", "y"])
    );
    // HGETALL pairs each field with its value.
    let all = strings(&query(&mut c, &["HGETALL", k]), &["HGETALL"]);
    let mut pairs: Vec<(String, String)> = all
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("f1".into(), "x".into()),
            ("f2".into(), "v2".into()),
            ("f3".into(), "v3".into()),
            ("f4".into(), "y".into()),
            ("f5".into(), "five".into()),
            ("f6".into(), "".into()),
        ]
    );
    check(&mut c, &["HKEYS", "hb:none"], "[]");
    check(&mut c, &["HVALS", "hb:none"], "[]");
    check(&mut c, &["HGETALL", "hb:none"], "[]");
    check(&mut c, &["HDEL", k, "f1", "nosuch", "f1"], ":1");
    check(&mut c, &["HDEL", "hb:none", "f1"], ":0");
    check(&mut c, &["TYPE", k], "+hash");
    // Deleting the last field deletes the key.
    check(&mut c, &["HSET", "hb:one", "only", "1"], ":1");
    check(&mut c, &["HDEL", "hb:one", "only"], ":1");
    check(&mut c, &["EXISTS", "hb:one"], ":0");
    check(&mut c, &["TYPE", "hb:one"], "+none");
    check(&mut c, &["DEL", k], ":1");
    check(&mut c, &["HLEN", k], ":0");
}

#[test]
fn hash_incr_and_errors() {
    let mut c = con();
    let k = "hi:h";
    check(&mut c, &["HINCRBY", k, "n", "5"], ":5");
    check(&mut c, &["HINCRBY", k, "n", "-7"], ":-2");
    check(
        &mut c,
        &["HSET", k, "s", "abc", "big", "9223372036854775807"],
        ":2",
    );
    check(
        &mut c,
        &["HINCRBY", k, "s", "1"],
        "-ERR hash value is not an integer",
    );
    check(
        &mut c,
        &["HINCRBY", k, "n", "x"],
        "-ERR value is not an integer or out of range",
    );
    check(
        &mut c,
        &["HINCRBY", k, "big", "1"],
        "-ERR increment or decrement would overflow",
    );
    check(&mut c, &["HGET", k, "big"], "\"9223372036854775807\"");
    check(&mut c, &["HINCRBYFLOAT", k, "f", "10.5"], "\"10.5\"");
    check(&mut c, &["HINCRBYFLOAT", k, "f", "0.1"], "\"10.6\"");
    check(&mut c, &["HINCRBYFLOAT", k, "g", "5.0e3"], "\"5000\"");
    check(&mut c, &["HINCRBYFLOAT", k, "g", "-0.25"], "\"4999.75\"");
    check(&mut c, &["HINCRBYFLOAT", k, "n", "1"], "\"-1\"");
    check(
        &mut c,
        &["HINCRBYFLOAT", k, "s", "1"],
        "-ERR hash value is not a float",
    );
    check(
        &mut c,
        &["HINCRBYFLOAT", k, "f", "abc"],
        "-ERR value is not a valid float",
    );
    check(
        &mut c,
        &["HINCRBYFLOAT", k, "f", "inf"],
        "-ERR value is NaN or Infinity",
    );
    check(&mut c, &["HGET", k, "f"], "\"10.6\"");
    arity(&mut c, &["HSET", k, "f"]);
    arity(&mut c, &["HSET", k, "f", "v", "g"]);
    arity(&mut c, &["HMSET", k, "f", "v", "g"]);
    arity(&mut c, &["HGET", k]);
    arity(&mut c, &["HSETNX", k, "f"]);
    arity(&mut c, &["HDEL", k]);
    arity(&mut c, &["HLEN"]);
    arity(&mut c, &["HINCRBY", k, "f"]);
    arity(&mut c, &["HGETALL", k, "x"]);
    arity(&mut c, &["HMGET", k]);
}

#[test]
fn hash_randfield_and_scan() {
    let mut c = con();
    let k = "hr:h";
    check(&mut c, &["HRANDFIELD", "hr:none"], "nil");
    check(&mut c, &["HRANDFIELD", "hr:none", "3"], "[]");
    check(&mut c, &["HRANDFIELD", "hr:none", "3", "WITHVALUES"], "[]");
    check(&mut c, &["HSET", k, "a", "1", "b", "2", "c", "3"], ":3");
    let one = ask(&mut c, &["HRANDFIELD", k]);
    assert!(
        ["\"a\"", "\"b\"", "\"c\""].contains(&one.as_str()),
        "HRANDFIELD gave {one}"
    );
    check(&mut c, &["HRANDFIELD", k, "0"], "[]");
    // A positive count larger than the hash returns every field once.
    assert_eq!(
        sorted(&mut c, &["HRANDFIELD", k, "10"]),
        v(&["a", "b", "c"])
    );
    let distinct = sorted(&mut c, &["HRANDFIELD", k, "2"]);
    assert_eq!(distinct.len(), 2);
    assert_ne!(distinct[0], distinct[1], "positive count: distinct fields");
    // A negative count allows repeats and returns exactly |count| fields.
    let many = sorted(&mut c, &["HRANDFIELD", k, "-7"]);
    assert_eq!(many.len(), 7);
    assert!(many.iter().all(|f| ["a", "b", "c"].contains(&f.as_str())));
    let wv = strings(
        &query(&mut c, &["HRANDFIELD", k, "-4", "WITHVALUES"]),
        &["HRANDFIELD"],
    );
    assert_eq!(wv.len(), 8);
    for pair in wv.chunks(2) {
        let expected = match pair[0].as_str() {
            "a" => "1",
            "b" => "2",
            "c" => "3",
            other => panic!("unknown field {other}"),
        };
        assert_eq!(pair[1], expected, "WITHVALUES pairs a field with its value");
    }
    check(
        &mut c,
        &["HRANDFIELD", k, "x"],
        "-ERR value is not an integer or out of range",
    );
    check(
        &mut c,
        &["HRANDFIELD", k, "1", "WITHVALUE"],
        "-ERR syntax error",
    );
    // The count is negated, so LONG_MIN is out of range.
    check(
        &mut c,
        &["HRANDFIELD", k, "-9223372036854775808"],
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
    );

    // HSCAN over a hash: every field exactly once when nothing changes.
    for i in 0..50 {
        query(
            &mut c,
            &["HSET", "hr:big", &format!("f{i}"), &i.to_string()],
        );
    }
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut rounds = 0;
    loop {
        let r = query(&mut c, &["HSCAN", "hr:big", &cursor, "COUNT", "7"]);
        let redis::Value::Array(parts) = r else {
            panic!("HSCAN reply {}", render(&r));
        };
        let next = match &parts[0] {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("HSCAN cursor {}", render(other)),
        };
        let items = strings(&parts[1], &["HSCAN"]);
        for pair in items.chunks(2) {
            assert_eq!(pair[0][1..], pair[1], "HSCAN pairs field and value");
            seen.push(pair[0].clone());
        }
        cursor = next;
        rounds += 1;
        assert!(rounds < 100, "HSCAN does not terminate");
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50, "HSCAN returned every field");
    let r = strings(
        &match query(
            &mut c,
            &["HSCAN", "hr:big", "0", "MATCH", "f1*", "COUNT", "1000"],
        ) {
            redis::Value::Array(p) => p[1].clone(),
            other => panic!("{}", render(&other)),
        },
        &["HSCAN"],
    );
    let mut fields: Vec<&String> = r.iter().step_by(2).collect();
    fields.sort();
    assert_eq!(fields.len(), 11, "f1 and f10..f19: {fields:?}");
    check(&mut c, &["HSCAN", "hr:none", "0"], "[\"0\", []]");
    check(&mut c, &["HSCAN", k, "abc"], "-ERR invalid cursor");
    check(
        &mut c,
        &["HSCAN", k, "0", "COUNT", "0"],
        "-ERR syntax error",
    );
}

// ---------------------------------------------------------------------------
// Lists.

#[test]
fn list_push_range_index() {
    let mut c = con();
    let k = "lp:l";
    check(&mut c, &["RPUSH", k, "c", "d", "e"], ":3");
    check(&mut c, &["LPUSH", k, "b", "a"], ":5");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"a\", \"b\", \"c\", \"d\", \"e\"]",
    );
    check(&mut c, &["LRANGE", k, "-2", "-1"], "[\"d\", \"e\"]");
    check(&mut c, &["LRANGE", k, "1", "2"], "[\"b\", \"c\"]");
    check(
        &mut c,
        &["LRANGE", k, "-100", "100"],
        "[\"a\", \"b\", \"c\", \"d\", \"e\"]",
    );
    check(&mut c, &["LRANGE", k, "5", "10"], "[]");
    check(&mut c, &["LRANGE", k, "3", "1"], "[]");
    check(&mut c, &["LRANGE", k, "-1", "-2"], "[]");
    check(&mut c, &["LRANGE", "lp:none", "0", "-1"], "[]");
    check(
        &mut c,
        &["LRANGE", k, "a", "1"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["LINDEX", k, "0"], "\"a\"");
    check(&mut c, &["LINDEX", k, "-1"], "\"e\"");
    check(&mut c, &["LINDEX", k, "-5"], "\"a\"");
    check(&mut c, &["LINDEX", k, "5"], "nil");
    check(&mut c, &["LINDEX", k, "-6"], "nil");
    check(&mut c, &["LINDEX", "lp:none", "0"], "nil");
    check(
        &mut c,
        &["LINDEX", k, "x"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["LLEN", k], ":5");
    check(&mut c, &["LLEN", "lp:none"], ":0");
    check(&mut c, &["LPUSHX", "lp:none", "a"], ":0");
    check(&mut c, &["RPUSHX", "lp:none", "a", "b"], ":0");
    check(&mut c, &["EXISTS", "lp:none"], ":0");
    check(&mut c, &["LPUSHX", k, "z"], ":6");
    check(&mut c, &["RPUSHX", k, "y", "x"], ":8");
    check(&mut c, &["LINDEX", k, "-1"], "\"x\"");
    check(&mut c, &["LINDEX", k, "0"], "\"z\"");
    check(&mut c, &["TYPE", k], "+list");
    arity(&mut c, &["LPUSH", k]);
    arity(&mut c, &["RPUSH"]);
    arity(&mut c, &["LRANGE", k, "0"]);
    arity(&mut c, &["LINDEX", k]);
    arity(&mut c, &["LLEN"]);
}

#[test]
fn list_pop_with_counts() {
    let mut c = con();
    let k = "lc:l";
    check(&mut c, &["RPUSH", k, "a", "b", "c", "d", "e", "f"], ":6");
    check(&mut c, &["LPOP", k], "\"a\"");
    check(&mut c, &["RPOP", k], "\"f\"");
    check(&mut c, &["LPOP", k, "2"], "[\"b\", \"c\"]");
    check(&mut c, &["RPOP", k, "1"], "[\"e\"]");
    check(&mut c, &["LPOP", k, "0"], "[]");
    check(
        &mut c,
        &["LPOP", k, "-1"],
        "-ERR value is out of range, must be positive",
    );
    check(
        &mut c,
        &["RPOP", k, "x"],
        "-ERR value is out of range, must be positive",
    );
    check(&mut c, &["RPOP", k, "10"], "[\"d\"]");
    check(&mut c, &["EXISTS", k], ":0");
    check(&mut c, &["LPOP", k], "nil");
    check(&mut c, &["LPOP", k, "3"], "nil");
    check(&mut c, &["RPOP", k, "0"], "nil");
    arity(&mut c, &["LPOP"]);
    arity(&mut c, &["RPOP", k, "1", "2"]);
}

#[test]
fn list_set_insert_rem_trim() {
    let mut c = con();
    let k = "ls:l";
    check(&mut c, &["RPUSH", k, "a", "b", "a", "c", "a", "d"], ":6");
    check(&mut c, &["LSET", k, "1", "B"], "+OK");
    check(&mut c, &["LSET", k, "-1", "D"], "+OK");
    check(&mut c, &["LSET", k, "6", "x"], "-ERR index out of range");
    check(&mut c, &["LSET", k, "-7", "x"], "-ERR index out of range");
    check(&mut c, &["LSET", "ls:none", "0", "x"], "-ERR no such key");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"a\", \"B\", \"a\", \"c\", \"a\", \"D\"]",
    );
    check(&mut c, &["LINSERT", k, "BEFORE", "c", "x"], ":7");
    check(&mut c, &["LINSERT", k, "after", "D", "y"], ":8");
    check(&mut c, &["LINSERT", k, "AFTER", "a", "z"], ":9");
    check(&mut c, &["LINSERT", k, "BEFORE", "nosuch", "q"], ":-1");
    check(&mut c, &["LINSERT", "ls:none", "BEFORE", "a", "q"], ":0");
    check(
        &mut c,
        &["LINSERT", k, "MIDDLE", "a", "q"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"a\", \"z\", \"B\", \"a\", \"x\", \"c\", \"a\", \"D\", \"y\"]",
    );
    // LREM: count > 0 from the head, < 0 from the tail, 0 all.
    check(&mut c, &["LREM", k, "-1", "a"], ":1");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"a\", \"z\", \"B\", \"a\", \"x\", \"c\", \"D\", \"y\"]",
    );
    check(&mut c, &["LREM", k, "1", "a"], ":1");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"z\", \"B\", \"a\", \"x\", \"c\", \"D\", \"y\"]",
    );
    check(&mut c, &["RPUSH", k, "a", "a"], ":9");
    check(&mut c, &["LREM", k, "0", "a"], ":3");
    check(&mut c, &["LREM", k, "0", "nosuch"], ":0");
    check(&mut c, &["LREM", "ls:none", "0", "a"], ":0");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"z\", \"B\", \"x\", \"c\", \"D\", \"y\"]",
    );
    // LTRIM with negative indexes, then out of range empties the key.
    check(&mut c, &["LTRIM", k, "1", "-2"], "+OK");
    check(
        &mut c,
        &["LRANGE", k, "0", "-1"],
        "[\"B\", \"x\", \"c\", \"D\"]",
    );
    check(&mut c, &["LTRIM", k, "-3", "100"], "+OK");
    check(&mut c, &["LRANGE", k, "0", "-1"], "[\"x\", \"c\", \"D\"]");
    check(&mut c, &["LTRIM", k, "2", "1"], "+OK");
    check(&mut c, &["EXISTS", k], ":0");
    check(&mut c, &["LTRIM", "ls:none", "0", "1"], "+OK");
    arity(&mut c, &["LSET", k, "0"]);
    arity(&mut c, &["LINSERT", k, "BEFORE", "a"]);
    arity(&mut c, &["LREM", k, "0"]);
    arity(&mut c, &["LTRIM", k, "0"]);
}

#[test]
fn list_lpos() {
    let mut c = con();
    let k = "lq:l";
    check(
        &mut c,
        &["RPUSH", k, "a", "b", "c", "1", "2", "3", "c", "c"],
        ":8",
    );
    check(&mut c, &["LPOS", k, "c"], ":2");
    check(&mut c, &["LPOS", k, "nosuch"], "nil");
    check(&mut c, &["LPOS", "lq:none", "c"], "nil");
    check(&mut c, &["LPOS", k, "c", "RANK", "2"], ":6");
    check(&mut c, &["LPOS", k, "c", "RANK", "-1"], ":7");
    check(&mut c, &["LPOS", k, "c", "RANK", "4"], "nil");
    check(&mut c, &["LPOS", k, "c", "COUNT", "2"], "[:2, :6]");
    check(&mut c, &["LPOS", k, "c", "COUNT", "0"], "[:2, :6, :7]");
    check(
        &mut c,
        &["LPOS", k, "c", "RANK", "-1", "COUNT", "2"],
        "[:7, :6]",
    );
    check(
        &mut c,
        &["LPOS", k, "c", "COUNT", "0", "MAXLEN", "3"],
        "[:2]",
    );
    check(&mut c, &["LPOS", k, "nosuch", "COUNT", "0"], "[]");
    check(&mut c, &["LPOS", "lq:none", "c", "COUNT", "2"], "[]");
    check(
        &mut c,
        &["LPOS", k, "c", "RANK", "0"],
        "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
    );
    check(
        &mut c,
        &["LPOS", k, "c", "COUNT", "-1"],
        "-ERR COUNT can't be negative",
    );
    check(
        &mut c,
        &["LPOS", k, "c", "MAXLEN", "-1"],
        "-ERR MAXLEN can't be negative",
    );
    check(&mut c, &["LPOS", k, "c", "FOO", "1"], "-ERR syntax error");
    check(
        &mut c,
        &["LPOS", k, "c", "COUNT", "x"],
        "-ERR COUNT can't be negative",
    );
    check(
        &mut c,
        &["LPOS", k, "c", "MAXLEN", "x"],
        "-ERR MAXLEN can't be negative",
    );
    check(
        &mut c,
        &["LPOS", k, "c", "RANK", "x"],
        "-ERR value is not an integer or out of range",
    );
    if shared_target().is_rampart() {
        // Redis 7.2 range-checks RANK (7.0 answered 0 here).
        check(
            &mut c,
            &["LPOS", k, "c", "RANK", "-9223372036854775808"],
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        );
    }
    arity(&mut c, &["LPOS", k]);
}

#[test]
fn list_move_and_mpop() {
    let mut c = con();
    let (a, b) = ("lm:{x}a", "lm:{x}b");
    check(&mut c, &["RPUSH", a, "1", "2", "3"], ":3");
    check(&mut c, &["LMOVE", a, b, "LEFT", "RIGHT"], "\"1\"");
    check(&mut c, &["LMOVE", a, b, "RIGHT", "LEFT"], "\"3\"");
    check(&mut c, &["LRANGE", b, "0", "-1"], "[\"3\", \"1\"]");
    check(&mut c, &["RPOPLPUSH", a, b], "\"2\"");
    check(&mut c, &["EXISTS", a], ":0");
    check(&mut c, &["LRANGE", b, "0", "-1"], "[\"2\", \"3\", \"1\"]");
    // Same source and destination rotates the list.
    check(&mut c, &["LMOVE", b, b, "LEFT", "RIGHT"], "\"2\"");
    check(&mut c, &["LRANGE", b, "0", "-1"], "[\"3\", \"1\", \"2\"]");
    check(&mut c, &["RPOPLPUSH", b, b], "\"2\"");
    check(&mut c, &["LRANGE", b, "0", "-1"], "[\"2\", \"3\", \"1\"]");
    check(&mut c, &["LMOVE", "lm:{x}none", b, "LEFT", "LEFT"], "nil");
    check(&mut c, &["RPOPLPUSH", "lm:{x}none", b], "nil");
    check(&mut c, &["LMOVE", a, b, "UP", "LEFT"], "-ERR syntax error");
    check(&mut c, &["SET", "lm:{x}s", "v"], "+OK");
    check(&mut c, &["LMOVE", b, "lm:{x}s", "LEFT", "LEFT"], WRONGTYPE);
    check(&mut c, &["LLEN", b], ":3");

    check(
        &mut c,
        &["LMPOP", "2", "lm:{x}none", b, "LEFT"],
        "[\"lm:{x}b\", [\"2\"]]",
    );
    check(
        &mut c,
        &["LMPOP", "1", b, "RIGHT", "COUNT", "5"],
        "[\"lm:{x}b\", [\"1\", \"3\"]]",
    );
    check(&mut c, &["LMPOP", "1", b, "LEFT"], "nil");
    check(
        &mut c,
        &["LMPOP", "0", b, "LEFT"],
        "-ERR numkeys should be greater than 0",
    );
    check(
        &mut c,
        &["LMPOP", "1", b, "LEFT", "COUNT", "0"],
        "-ERR count should be greater than 0",
    );
    check(&mut c, &["LMPOP", "1", b, "MIDDLE"], "-ERR syntax error");
    check(&mut c, &["LMPOP", "3", b, "LEFT"], "-ERR syntax error");
    arity(&mut c, &["LMPOP", "1", b]);
    arity(&mut c, &["LMOVE", a, b, "LEFT"]);
    arity(&mut c, &["RPOPLPUSH", a]);
}

// ---------------------------------------------------------------------------
// Sets.

#[test]
fn set_basic_commands() {
    let mut c = con();
    let k = "sb:s";
    check(&mut c, &["SADD", k, "a", "b", "c", "a"], ":3");
    check(&mut c, &["SADD", k, "c", "d"], ":1");
    check(&mut c, &["SCARD", k], ":4");
    check(&mut c, &["SCARD", "sb:none"], ":0");
    check(&mut c, &["SISMEMBER", k, "a"], ":1");
    check(&mut c, &["SISMEMBER", k, "z"], ":0");
    check(&mut c, &["SISMEMBER", "sb:none", "a"], ":0");
    check(&mut c, &["SMISMEMBER", k, "a", "z", "d"], "[:1, :0, :1]");
    check(&mut c, &["SMISMEMBER", "sb:none", "a"], "[:0]");
    assert_eq!(sorted(&mut c, &["SMEMBERS", k]), v(&["a", "b", "c", "d"]));
    check(&mut c, &["SMEMBERS", "sb:none"], "[]");
    check(&mut c, &["SREM", k, "a", "z", "a"], ":1");
    check(&mut c, &["SREM", "sb:none", "a"], ":0");
    check(&mut c, &["TYPE", k], "+set");
    check(&mut c, &["SREM", k, "b", "c", "d"], ":3");
    check(&mut c, &["EXISTS", k], ":0");
    // Integer members stay distinct from their string forms only by bytes.
    check(&mut c, &["SADD", k, "1", "01", "1"], ":2");
    assert_eq!(sorted(&mut c, &["SMEMBERS", k]), v(&["01", "1"]));
    arity(&mut c, &["SADD", k]);
    arity(&mut c, &["SREM", k]);
    arity(&mut c, &["SISMEMBER", k]);
    arity(&mut c, &["SMISMEMBER", k]);
    arity(&mut c, &["SCARD"]);
    arity(&mut c, &["SMEMBERS", k, "x"]);
}

#[test]
fn set_pop_randmember_move() {
    let mut c = con();
    let k = "sp:{s}a";
    check(&mut c, &["SPOP", k], "nil");
    check(&mut c, &["SPOP", k, "2"], "[]");
    check(&mut c, &["SRANDMEMBER", k], "nil");
    check(&mut c, &["SRANDMEMBER", k, "2"], "[]");
    check(&mut c, &["SADD", k, "a", "b", "c", "d", "e"], ":5");
    check(&mut c, &["SRANDMEMBER", k, "0"], "[]");
    let r = sorted(&mut c, &["SRANDMEMBER", k, "3"]);
    assert_eq!(r.len(), 3);
    let mut d = r.clone();
    d.dedup();
    assert_eq!(d.len(), 3, "positive count: distinct members {r:?}");
    assert_eq!(
        sorted(&mut c, &["SRANDMEMBER", k, "100"]),
        v(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(sorted(&mut c, &["SRANDMEMBER", k, "-12"]).len(), 12);
    check(
        &mut c,
        &["SRANDMEMBER", k, "x"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["SPOP", k, "0"], "[]");
    check(
        &mut c,
        &["SPOP", k, "-1"],
        "-ERR value is out of range, must be positive",
    );
    let popped = text_of(&query(&mut c, &["SPOP", k]));
    check(&mut c, &["SISMEMBER", k, &popped], ":0");
    check(&mut c, &["SCARD", k], ":4");
    let two = sorted(&mut c, &["SPOP", k, "2"]);
    assert_eq!(two.len(), 2);
    check(&mut c, &["SCARD", k], ":2");
    let rest = sorted(&mut c, &["SPOP", k, "10"]);
    assert_eq!(rest.len(), 2);
    let mut all: Vec<String> = [vec![popped], two, rest].concat();
    all.sort();
    assert_eq!(all, v(&["a", "b", "c", "d", "e"]));
    check(&mut c, &["EXISTS", k], ":0");

    let (src, dst) = ("sp:{s}src", "sp:{s}dst");
    check(&mut c, &["SADD", src, "x", "y"], ":2");
    check(&mut c, &["SMOVE", src, dst, "x"], ":1");
    check(&mut c, &["SMOVE", src, dst, "nosuch"], ":0");
    check(&mut c, &["SMOVE", "sp:{s}none", dst, "x"], ":0");
    check(&mut c, &["SMEMBERS", dst], "[\"x\"]");
    check(&mut c, &["SADD", dst, "y"], ":1");
    // Moving a member the destination already has only removes it.
    check(&mut c, &["SMOVE", src, dst, "y"], ":1");
    check(&mut c, &["EXISTS", src], ":0");
    check(&mut c, &["SCARD", dst], ":2");
    check(&mut c, &["SET", "sp:{s}str", "v"], "+OK");
    check(&mut c, &["SMOVE", dst, "sp:{s}str", "x"], WRONGTYPE);
    check(&mut c, &["SMOVE", "sp:{s}str", dst, "x"], WRONGTYPE);
    arity(&mut c, &["SMOVE", src, dst]);
}

fn text_of(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a bulk string, got {}", render(other)),
    }
}

#[test]
fn set_algebra() {
    let mut c = con();
    let (a, b, e, d) = ("sa:{t}a", "sa:{t}b", "sa:{t}none", "sa:{t}dst");
    check(&mut c, &["SADD", a, "1", "2", "3", "x"], ":4");
    check(&mut c, &["SADD", b, "2", "3", "4"], ":3");
    assert_eq!(sorted(&mut c, &["SINTER", a, b]), v(&["2", "3"]));
    check(&mut c, &["SINTER", a, e], "[]");
    assert_eq!(
        sorted(&mut c, &["SUNION", a, b, e]),
        v(&["1", "2", "3", "4", "x"])
    );
    assert_eq!(sorted(&mut c, &["SDIFF", a, b]), v(&["1", "x"]));
    assert_eq!(sorted(&mut c, &["SDIFF", a, e]), v(&["1", "2", "3", "x"]));
    check(&mut c, &["SDIFF", e, a], "[]");
    check(&mut c, &["SINTERCARD", "2", a, b], ":2");
    check(&mut c, &["SINTERCARD", "2", a, b, "LIMIT", "1"], ":1");
    check(&mut c, &["SINTERCARD", "2", a, b, "LIMIT", "0"], ":2");
    check(&mut c, &["SINTERCARD", "2", a, e], ":0");
    check(
        &mut c,
        &["SINTERCARD", "0", a],
        "-ERR numkeys should be greater than 0",
    );
    check(
        &mut c,
        &["SINTERCARD", "3", a, b],
        "-ERR Number of keys can't be greater than number of args",
    );
    check(
        &mut c,
        &["SINTERCARD", "2", a, b, "LIMIT", "-1"],
        "-ERR LIMIT can't be negative",
    );
    check(
        &mut c,
        &["SINTERCARD", "2", a, b, "LIMIT", "x"],
        "-ERR LIMIT can't be negative",
    );
    check(
        &mut c,
        &["SINTERCARD", "x", a],
        "-ERR numkeys should be greater than 0",
    );
    check(&mut c, &["SINTERSTORE", d, a, b], ":2");
    assert_eq!(sorted(&mut c, &["SMEMBERS", d]), v(&["2", "3"]));
    check(&mut c, &["SUNIONSTORE", d, a, b], ":5");
    check(&mut c, &["SDIFFSTORE", d, a, b], ":2");
    assert_eq!(sorted(&mut c, &["SMEMBERS", d]), v(&["1", "x"]));
    // An empty result deletes the destination.
    check(&mut c, &["SINTERSTORE", d, a, e], ":0");
    check(&mut c, &["EXISTS", d], ":0");
    // The destination may be one of the sources.
    check(&mut c, &["SUNIONSTORE", a, a, b], ":5");
    check(&mut c, &["SCARD", a], ":5");
    // A string destination is overwritten, a string source is WRONGTYPE.
    check(&mut c, &["SET", d, "v"], "+OK");
    check(&mut c, &["SINTERSTORE", d, a, b], ":3");
    check(&mut c, &["TYPE", d], "+set");
    check(&mut c, &["SET", "sa:{t}str", "v"], "+OK");
    check(&mut c, &["SINTER", a, "sa:{t}str"], WRONGTYPE);
    check(&mut c, &["SUNIONSTORE", d, a, "sa:{t}str"], WRONGTYPE);
    check(&mut c, &["SINTERCARD", "2", a, "sa:{t}str"], WRONGTYPE);
    arity(&mut c, &["SINTER"]);
    arity(&mut c, &["SINTERSTORE", d]);
    arity(&mut c, &["SINTERCARD", "1"]);
}

#[test]
fn set_scan() {
    let mut c = con();
    let k = "ss:s";
    let members: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let mut args = vec!["SADD", k];
    args.extend(members.iter().map(|s| s.as_str()));
    check(&mut c, &args, ":40");
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = query(&mut c, &["SSCAN", k, &cursor, "COUNT", "6"]);
        let redis::Value::Array(parts) = r else {
            panic!("SSCAN reply {}", render(&r));
        };
        seen.extend(strings(&parts[1], &["SSCAN"]));
        cursor = text_of(&parts[0]);
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "SSCAN terminates");
    seen.sort();
    seen.dedup();
    let mut expected = members.clone();
    expected.sort();
    assert_eq!(seen, expected);
    let r = match query(&mut c, &["SSCAN", k, "0", "MATCH", "m3?", "COUNT", "100"]) {
        redis::Value::Array(p) => p,
        other => panic!("{}", render(&other)),
    };
    let mut m = strings(&r[1], &["SSCAN"]);
    m.sort();
    assert_eq!(m.len(), 10, "m30..m39: {m:?}");
    check(&mut c, &["SSCAN", "ss:none", "0"], "[\"0\", []]");
}

// ---------------------------------------------------------------------------
// Sorted sets.

#[test]
fn zadd_flags_and_scores() {
    let mut c = con();
    let k = "za:z";
    check(&mut c, &["ZADD", k, "1", "a", "2", "b", "3", "c"], ":3");
    check(
        &mut c,
        &["ZADD", k, "CH", "5", "a", "2", "b", "9", "d"],
        ":2",
    );
    check(&mut c, &["ZADD", k, "GT", "1", "a"], ":0");
    check(&mut c, &["ZSCORE", k, "a"], "\"5\"");
    check(&mut c, &["ZADD", k, "GT", "CH", "6", "a"], ":1");
    check(&mut c, &["ZADD", k, "LT", "CH", "7", "a", "0", "b"], ":1");
    check(&mut c, &["ZSCORE", k, "a"], "\"6\"");
    check(&mut c, &["ZSCORE", k, "b"], "\"0\"");
    check(&mut c, &["ZADD", k, "NX", "100", "a", "4", "e"], ":1");
    check(&mut c, &["ZADD", k, "XX", "4.5", "e", "1", "newone"], ":0");
    check(&mut c, &["ZSCORE", k, "e"], "\"4.5\"");
    check(&mut c, &["ZSCORE", k, "newone"], "nil");
    check(&mut c, &["ZADD", k, "INCR", "1.5", "a"], "\"7.5\"");
    check(&mut c, &["ZADD", k, "XX", "INCR", "1", "nosuch"], "nil");
    check(&mut c, &["ZADD", k, "NX", "INCR", "1", "a"], "nil");
    check(&mut c, &["ZADD", k, "GT", "INCR", "-1", "a"], "nil");
    check(
        &mut c,
        &["ZADD", k, "XX", "NX", "1", "a"],
        "-ERR XX and NX options at the same time are not compatible",
    );
    check(
        &mut c,
        &["ZADD", k, "GT", "LT", "1", "a"],
        "-ERR GT, LT, and/or NX options at the same time are not compatible",
    );
    check(
        &mut c,
        &["ZADD", k, "NX", "GT", "1", "a"],
        "-ERR GT, LT, and/or NX options at the same time are not compatible",
    );
    check(
        &mut c,
        &["ZADD", k, "INCR", "1", "a", "2", "b"],
        "-ERR INCR option supports a single increment-element pair",
    );
    check(
        &mut c,
        &["ZADD", k, "nan", "a"],
        "-ERR value is not a valid float",
    );
    check(
        &mut c,
        &["ZADD", k, "abc", "a"],
        "-ERR value is not a valid float",
    );
    check(&mut c, &["ZADD", k, "1", "a", "2"], "-ERR syntax error");
    // Infinite scores and their formatting.
    check(&mut c, &["ZADD", k, "+inf", "top", "-inf", "bottom"], ":2");
    check(&mut c, &["ZSCORE", k, "top"], "\"inf\"");
    check(&mut c, &["ZSCORE", k, "bottom"], "\"-inf\"");
    check(
        &mut c,
        &["ZINCRBY", k, "-inf", "top"],
        "-ERR resulting score is not a number (NaN)",
    );
    check(&mut c, &["ZINCRBY", k, "2.5", "b"], "\"2.5\"");
    check(&mut c, &["ZINCRBY", k, "1", "fresh"], "\"1\"");
    check(
        &mut c,
        &["ZINCRBY", k, "x", "b"],
        "-ERR value is not a valid float",
    );
    check(&mut c, &["ZSCORE", "za:none", "a"], "nil");
    check(
        &mut c,
        &["ZMSCORE", k, "b", "nosuch", "top"],
        "[\"2.5\", nil, \"inf\"]",
    );
    check(&mut c, &["ZMSCORE", "za:none", "a", "b"], "[nil, nil]");
    check(
        &mut c,
        &["ZADD", "za:fmt", "0.1", "a", "1e20", "b", "0", "c"],
        ":3",
    );
    if shared_target().is_rampart() {
        // Redis 7.2 prints the shortest round-trip form (7.0 printed %.17g).
        check(&mut c, &["ZSCORE", "za:fmt", "a"], "\"0.1\"");
    }
    check(&mut c, &["ZSCORE", "za:fmt", "b"], "\"1e+20\"");
    check(&mut c, &["ZSCORE", "za:fmt", "c"], "\"0\"");
    check(&mut c, &["TYPE", k], "+zset");
    arity(&mut c, &["ZADD", k, "1"]);
    arity(&mut c, &["ZSCORE", k]);
    arity(&mut c, &["ZINCRBY", k, "1"]);
    arity(&mut c, &["ZMSCORE", k]);
    arity(&mut c, &["ZCARD"]);
}

#[test]
fn zset_rank_count_rem() {
    let mut c = con();
    let k = "zr:z";
    check(
        &mut c,
        &[
            "ZADD", k, "1", "a", "2", "b", "2", "c", "3", "d", "-inf", "m", "inf", "M",
        ],
        ":6",
    );
    check(&mut c, &["ZCARD", k], ":6");
    check(&mut c, &["ZCARD", "zr:none"], ":0");
    check(&mut c, &["ZRANK", k, "m"], ":0");
    check(&mut c, &["ZRANK", k, "c"], ":3");
    check(&mut c, &["ZREVRANK", k, "c"], ":2");
    check(&mut c, &["ZREVRANK", k, "M"], ":0");
    check(&mut c, &["ZRANK", k, "nosuch"], "nil");
    check(&mut c, &["ZRANK", "zr:none", "a"], "nil");
    check(&mut c, &["ZCOUNT", k, "-inf", "+inf"], ":6");
    check(&mut c, &["ZCOUNT", k, "2", "2"], ":2");
    check(&mut c, &["ZCOUNT", k, "(1", "3"], ":3");
    check(&mut c, &["ZCOUNT", k, "(1", "(3"], ":2");
    check(&mut c, &["ZCOUNT", k, "3", "1"], ":0");
    check(&mut c, &["ZCOUNT", k, "(inf", "+inf"], ":0");
    check(&mut c, &["ZCOUNT", "zr:none", "-inf", "inf"], ":0");
    check(
        &mut c,
        &["ZCOUNT", k, "x", "1"],
        "-ERR min or max is not a float",
    );
    check(
        &mut c,
        &["ZCOUNT", k, "((1", "1"],
        "-ERR min or max is not a float",
    );
    // Lex commands on members that share one score.
    let l = "zr:lex";
    check(
        &mut c,
        &["ZADD", l, "0", "a", "0", "b", "0", "c", "0", "d", "0", "e"],
        ":5",
    );
    check(&mut c, &["ZLEXCOUNT", l, "-", "+"], ":5");
    check(&mut c, &["ZLEXCOUNT", l, "[b", "(d"], ":2");
    check(&mut c, &["ZLEXCOUNT", l, "(a", "[e"], ":4");
    check(&mut c, &["ZLEXCOUNT", l, "+", "-"], ":0");
    check(
        &mut c,
        &["ZLEXCOUNT", l, "b", "d"],
        "-ERR min or max not valid string range item",
    );
    check(&mut c, &["ZREMRANGEBYLEX", l, "[b", "(d"], ":2");
    check(&mut c, &["ZRANGE", l, "0", "-1"], "[\"a\", \"d\", \"e\"]");
    check(&mut c, &["ZREMRANGEBYLEX", l, "-", "+"], ":3");
    check(&mut c, &["EXISTS", l], ":0");
    // ZREM / ZREMRANGEBYRANK / ZREMRANGEBYSCORE.
    check(&mut c, &["ZREM", k, "a", "nosuch", "a"], ":1");
    check(&mut c, &["ZREM", "zr:none", "a"], ":0");
    check(&mut c, &["ZREMRANGEBYRANK", k, "-1", "-1"], ":1");
    check(
        &mut c,
        &["ZRANGE", k, "0", "-1"],
        "[\"m\", \"b\", \"c\", \"d\"]",
    );
    check(&mut c, &["ZREMRANGEBYRANK", k, "10", "20"], ":0");
    check(&mut c, &["ZREMRANGEBYSCORE", k, "(2", "+inf"], ":1");
    check(&mut c, &["ZREMRANGEBYSCORE", k, "-inf", "(-inf"], ":0");
    check(&mut c, &["ZREMRANGEBYSCORE", k, "-inf", "-inf"], ":1");
    check(&mut c, &["ZRANGE", k, "0", "-1"], "[\"b\", \"c\"]");
    check(&mut c, &["ZREMRANGEBYRANK", k, "0", "-1"], ":2");
    check(&mut c, &["EXISTS", k], ":0");
    check(
        &mut c,
        &["ZREMRANGEBYSCORE", k, "a", "1"],
        "-ERR min or max is not a float",
    );
    arity(&mut c, &["ZRANK", k]);
    arity(&mut c, &["ZRANK", k, "a", "b", "c"]);
    arity(&mut c, &["ZCOUNT", k, "1"]);
    arity(&mut c, &["ZLEXCOUNT", k, "-"]);
    arity(&mut c, &["ZREM", k]);
    arity(&mut c, &["ZREMRANGEBYRANK", k, "0"]);
}

#[test]
fn zrange_variants() {
    let mut c = con();
    let k = "zv:z";
    check(
        &mut c,
        &["ZADD", k, "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"],
        ":5",
    );
    check(
        &mut c,
        &["ZRANGE", k, "0", "-1"],
        "[\"a\", \"b\", \"c\", \"d\", \"e\"]",
    );
    check(&mut c, &["ZRANGE", k, "-2", "-1"], "[\"d\", \"e\"]");
    check(&mut c, &["ZRANGE", k, "5", "10"], "[]");
    check(&mut c, &["ZRANGE", k, "3", "1"], "[]");
    check(&mut c, &["ZRANGE", "zv:none", "0", "-1"], "[]");
    check(
        &mut c,
        &["ZRANGE", k, "0", "1", "WITHSCORES"],
        "[\"a\", \"1\", \"b\", \"2\"]",
    );
    check(&mut c, &["ZRANGE", k, "0", "1", "REV"], "[\"e\", \"d\"]");
    check(&mut c, &["ZREVRANGE", k, "0", "1"], "[\"e\", \"d\"]");
    check(
        &mut c,
        &["ZREVRANGE", k, "-1", "-1", "WITHSCORES"],
        "[\"a\", \"1\"]",
    );
    // BYSCORE with exclusive bounds, infinities and LIMIT.
    check(
        &mut c,
        &["ZRANGE", k, "(1", "+inf", "BYSCORE", "LIMIT", "0", "2"],
        "[\"b\", \"c\"]",
    );
    check(
        &mut c,
        &["ZRANGE", k, "(1", "+inf", "BYSCORE", "LIMIT", "1", "-1"],
        "[\"c\", \"d\", \"e\"]",
    );
    check(
        &mut c,
        &["ZRANGE", k, "+inf", "(3", "BYSCORE", "REV", "WITHSCORES"],
        "[\"e\", \"5\", \"d\", \"4\"]",
    );
    check(&mut c, &["ZRANGE", k, "-inf", "(1", "BYSCORE"], "[]");
    check(
        &mut c,
        &[
            "ZRANGEBYSCORE",
            k,
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "1",
            "1",
        ],
        "[\"b\", \"2\"]",
    );
    check(&mut c, &["ZRANGEBYSCORE", k, "(2", "(4"], "[\"c\"]");
    check(
        &mut c,
        &["ZREVRANGEBYSCORE", k, "+inf", "-inf", "LIMIT", "0", "2"],
        "[\"e\", \"d\"]",
    );
    check(&mut c, &["ZREVRANGEBYSCORE", k, "1", "5"], "[]");
    check(
        &mut c,
        &["ZRANGEBYSCORE", k, "1", "x"],
        "-ERR min or max is not a float",
    );
    // BYLEX (all scores equal).
    let l = "zv:lex";
    check(
        &mut c,
        &[
            "ZADD", l, "0", "apple", "0", "banana", "0", "cherry", "0", "date",
        ],
        ":4",
    );
    check(
        &mut c,
        &["ZRANGE", l, "[b", "(d", "BYLEX"],
        "[\"banana\", \"cherry\"]",
    );
    check(
        &mut c,
        &["ZRANGE", l, "+", "-", "BYLEX", "REV", "LIMIT", "0", "2"],
        "[\"date\", \"cherry\"]",
    );
    check(
        &mut c,
        &["ZRANGEBYLEX", l, "-", "+", "LIMIT", "1", "2"],
        "[\"banana\", \"cherry\"]",
    );
    check(&mut c, &["ZRANGEBYLEX", l, "(date", "+"], "[]");
    check(
        &mut c,
        &["ZREVRANGEBYLEX", l, "(cherry", "-"],
        "[\"banana\", \"apple\"]",
    );
    check(
        &mut c,
        &["ZRANGEBYLEX", l, "a", "+"],
        "-ERR min or max not valid string range item",
    );
    check(
        &mut c,
        &["ZRANGE", l, "0", "-1", "LIMIT", "0", "1"],
        "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
    );
    check(
        &mut c,
        &["ZRANGE", l, "-", "+", "BYLEX", "WITHSCORES"],
        "-ERR syntax error, WITHSCORES not supported in combination with BYLEX",
    );
    check(
        &mut c,
        &["ZRANGE", l, "0", "-1", "BYSCORE", "BYLEX"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["ZRANGE", l, "x", "-1"],
        "-ERR value is not an integer or out of range",
    );
    // ZRANGESTORE.
    let d = "zv:dst";
    check(&mut c, &["ZRANGESTORE", d, k, "1", "(4", "BYSCORE"], ":3");
    check(
        &mut c,
        &["ZRANGE", d, "0", "-1", "WITHSCORES"],
        "[\"a\", \"1\", \"b\", \"2\", \"c\", \"3\"]",
    );
    check(&mut c, &["ZRANGESTORE", d, l, "[c", "+", "BYLEX"], ":2");
    check(&mut c, &["ZRANGE", d, "0", "-1"], "[\"cherry\", \"date\"]");
    check(&mut c, &["ZRANGESTORE", d, "zv:none", "0", "-1"], ":0");
    check(&mut c, &["EXISTS", d], ":0");
    arity(&mut c, &["ZRANGE", k, "0"]);
    arity(&mut c, &["ZRANGESTORE", d, k, "0"]);
    arity(&mut c, &["ZRANGEBYSCORE", k, "0"]);
}

#[test]
fn zset_pop_random_mpop() {
    let mut c = con();
    let k = "zp:{z}a";
    check(&mut c, &["ZPOPMIN", k], "[]");
    check(&mut c, &["ZPOPMAX", k, "3"], "[]");
    check(&mut c, &["ZRANDMEMBER", k], "nil");
    check(&mut c, &["ZRANDMEMBER", k, "3"], "[]");
    check(
        &mut c,
        &["ZADD", k, "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"],
        ":5",
    );
    check(&mut c, &["ZPOPMIN", k], "[\"a\", \"1\"]");
    check(&mut c, &["ZPOPMAX", k], "[\"e\", \"5\"]");
    check(&mut c, &["ZPOPMIN", k, "2"], "[\"b\", \"2\", \"c\", \"3\"]");
    check(&mut c, &["ZPOPMIN", k, "0"], "[]");
    check(
        &mut c,
        &["ZPOPMIN", k, "-1"],
        "-ERR value is out of range, must be positive",
    );
    check(&mut c, &["ZPOPMAX", k, "10"], "[\"d\", \"4\"]");
    check(&mut c, &["EXISTS", k], ":0");

    check(&mut c, &["ZADD", k, "1", "a", "2", "b", "3", "c"], ":3");
    let one = ask(&mut c, &["ZRANDMEMBER", k]);
    assert!(["\"a\"", "\"b\"", "\"c\""].contains(&one.as_str()), "{one}");
    check(&mut c, &["ZRANDMEMBER", k, "0"], "[]");
    assert_eq!(
        sorted(&mut c, &["ZRANDMEMBER", k, "5"]),
        v(&["a", "b", "c"])
    );
    assert_eq!(sorted(&mut c, &["ZRANDMEMBER", k, "-6"]).len(), 6);
    let ws = strings(
        &query(&mut c, &["ZRANDMEMBER", k, "-4", "WITHSCORES"]),
        &["ZRANDMEMBER"],
    );
    assert_eq!(ws.len(), 8);
    for pair in ws.chunks(2) {
        let expected = match pair[0].as_str() {
            "a" => "1",
            "b" => "2",
            "c" => "3",
            other => panic!("unknown member {other}"),
        };
        assert_eq!(pair[1], expected);
    }

    let b = "zp:{z}b";
    check(&mut c, &["ZADD", b, "10", "x", "20", "y"], ":2");
    check(
        &mut c,
        &["ZMPOP", "2", "zp:{z}none", k, "MIN"],
        "[\"zp:{z}a\", [[\"a\", \"1\"]]]",
    );
    check(
        &mut c,
        &["ZMPOP", "2", k, b, "MAX", "COUNT", "5"],
        "[\"zp:{z}a\", [[\"c\", \"3\"], [\"b\", \"2\"]]]",
    );
    check(
        &mut c,
        &["ZMPOP", "2", k, b, "MIN"],
        "[\"zp:{z}b\", [[\"x\", \"10\"]]]",
    );
    check(&mut c, &["ZMPOP", "1", "zp:{z}none", "MIN"], "nil");
    check(
        &mut c,
        &["ZMPOP", "0", k, "MIN"],
        "-ERR numkeys should be greater than 0",
    );
    check(
        &mut c,
        &["ZMPOP", "1", b, "MIN", "COUNT", "0"],
        "-ERR count should be greater than 0",
    );
    check(&mut c, &["ZMPOP", "1", b, "MIDDLE"], "-ERR syntax error");
    arity(&mut c, &["ZPOPMIN"]);
    arity(&mut c, &["ZMPOP", "1", b]);
}

#[test]
fn zset_algebra() {
    let mut c = con();
    let (a, b, s, d) = ("zs:{q}a", "zs:{q}b", "zs:{q}set", "zs:{q}dst");
    check(&mut c, &["ZADD", a, "1", "x", "2", "y", "3", "z"], ":3");
    check(&mut c, &["ZADD", b, "10", "y", "20", "z", "30", "w"], ":3");
    check(&mut c, &["SADD", s, "x", "w"], ":2");
    check(
        &mut c,
        &["ZUNION", "2", a, b, "WITHSCORES"],
        "[\"x\", \"1\", \"y\", \"12\", \"z\", \"23\", \"w\", \"30\"]",
    );
    check(
        &mut c,
        &["ZINTER", "2", a, b, "WEIGHTS", "2", "1", "WITHSCORES"],
        "[\"y\", \"14\", \"z\", \"26\"]",
    );
    check(
        &mut c,
        &["ZINTER", "2", a, b, "AGGREGATE", "MAX", "WITHSCORES"],
        "[\"y\", \"10\", \"z\", \"20\"]",
    );
    check(
        &mut c,
        &["ZUNION", "2", a, b, "AGGREGATE", "MIN"],
        "[\"x\", \"y\", \"z\", \"w\"]",
    );
    check(
        &mut c,
        &["ZDIFF", "2", a, b, "WITHSCORES"],
        "[\"x\", \"1\"]",
    );
    check(&mut c, &["ZDIFF", "1", "zs:{q}none"], "[]");
    // A plain set counts as a sorted set with every score 1.
    check(
        &mut c,
        &["ZUNION", "2", a, s, "WITHSCORES"],
        "[\"w\", \"1\", \"x\", \"2\", \"y\", \"2\", \"z\", \"3\"]",
    );
    check(&mut c, &["ZUNIONSTORE", d, "2", a, b], ":4");
    check(
        &mut c,
        &["ZRANGE", d, "0", "-1", "WITHSCORES"],
        "[\"x\", \"1\", \"y\", \"12\", \"z\", \"23\", \"w\", \"30\"]",
    );
    check(&mut c, &["ZINTERSTORE", d, "2", a, "zs:{q}none"], ":0");
    check(&mut c, &["EXISTS", d], ":0");
    check(&mut c, &["ZDIFFSTORE", d, "2", b, a], ":1");
    check(
        &mut c,
        &["ZRANGE", d, "0", "-1", "WITHSCORES"],
        "[\"w\", \"30\"]",
    );
    check(
        &mut c,
        &["ZUNIONSTORE", d, "0", a],
        "-ERR at least 1 input key is needed for 'zunionstore' command",
    );
    check(
        &mut c,
        &["ZUNION", "0", a],
        "-ERR at least 1 input key is needed for 'zunion' command",
    );
    check(&mut c, &["ZUNION", "3", a, b], "-ERR syntax error");
    check(
        &mut c,
        &["ZUNION", "2", a, b, "WEIGHTS", "1"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["ZUNION", "2", a, b, "WEIGHTS", "1", "x"],
        "-ERR weight value is not a float",
    );
    check(
        &mut c,
        &["ZUNION", "2", a, b, "AGGREGATE", "AVG"],
        "-ERR syntax error",
    );
    check(&mut c, &["SET", "zs:{q}str", "v"], "+OK");
    check(&mut c, &["ZUNION", "2", a, "zs:{q}str"], WRONGTYPE);
    check(&mut c, &["ZINTERSTORE", d, "2", a, "zs:{q}str"], WRONGTYPE);
    arity(&mut c, &["ZUNION", "1"]);
    arity(&mut c, &["ZUNIONSTORE", d, "1"]);
}

#[test]
fn zset_scan() {
    let mut c = con();
    let k = "zsc:z";
    for i in 0..30 {
        query(&mut c, &["ZADD", k, &i.to_string(), &format!("m{i}")]);
    }
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = query(&mut c, &["ZSCAN", k, &cursor, "COUNT", "4"]);
        let redis::Value::Array(parts) = r else {
            panic!("ZSCAN reply {}", render(&r));
        };
        let items = strings(&parts[1], &["ZSCAN"]);
        for pair in items.chunks(2) {
            assert_eq!(pair[0][1..], pair[1], "ZSCAN pairs member and score");
            seen.push(pair[0].clone());
        }
        cursor = text_of(&parts[0]);
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "ZSCAN terminates");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30);
    check(&mut c, &["ZSCAN", "zsc:none", "0"], "[\"0\", []]");
}

// ---------------------------------------------------------------------------
// RESP3 shapes.

#[test]
fn resp3_collection_reply_types() {
    let mut c = con3();
    check(&mut c, &["HSET", "r3c:h", "f", "v"], ":1");
    check(&mut c, &["HGETALL", "r3c:h"], "{\"f\": \"v\"}");
    check(&mut c, &["HGETALL", "r3c:none"], "{}");
    check(
        &mut c,
        &["HRANDFIELD", "r3c:h", "1", "WITHVALUES"],
        "[[\"f\", \"v\"]]",
    );
    check(&mut c, &["SADD", "r3c:s", "m"], ":1");
    check(&mut c, &["SMEMBERS", "r3c:s"], "~[\"m\"]");
    check(&mut c, &["SMEMBERS", "r3c:none"], "~[]");
    check(&mut c, &["SINTER", "r3c:s", "r3c:s"], "~[\"m\"]");
    check(&mut c, &["SISMEMBER", "r3c:s", "m"], ":1");
    check(&mut c, &["SMISMEMBER", "r3c:s", "m", "x"], "[:1, :0]");
    check(&mut c, &["ZADD", "r3c:z", "1.5", "a", "2", "b"], ":2");
    check(&mut c, &["ZSCORE", "r3c:z", "a"], ",1.5");
    check(&mut c, &["ZSCORE", "r3c:z", "nosuch"], "nil");
    check(&mut c, &["ZMSCORE", "r3c:z", "a", "x"], "[,1.5, nil]");
    check(&mut c, &["ZINCRBY", "r3c:z", "1", "b"], ",3");
    check(&mut c, &["ZADD", "r3c:z", "INCR", "1", "b"], ",4");
    check(
        &mut c,
        &["ZRANGE", "r3c:z", "0", "-1", "WITHSCORES"],
        "[[\"a\", ,1.5], [\"b\", ,4]]",
    );
    check(&mut c, &["ZRANGE", "r3c:z", "0", "-1"], "[\"a\", \"b\"]");
    check(
        &mut c,
        &["ZRANGEBYSCORE", "r3c:z", "-inf", "inf", "WITHSCORES"],
        "[[\"a\", ,1.5], [\"b\", ,4]]",
    );
    check(
        &mut c,
        &["ZUNION", "1", "r3c:z", "WITHSCORES"],
        "[[\"a\", ,1.5], [\"b\", ,4]]",
    );
    // ZPOPMIN without a count is one flat pair; with a count, nested pairs.
    check(&mut c, &["ZPOPMIN", "r3c:z"], "[\"a\", ,1.5]");
    check(&mut c, &["ZADD", "r3c:z", "1", "a"], ":1");
    check(
        &mut c,
        &["ZPOPMAX", "r3c:z", "2"],
        "[[\"b\", ,4], [\"a\", ,1]]",
    );
    check(&mut c, &["ZADD", "r3c:z", "inf", "i"], ":1");
    check(&mut c, &["ZSCORE", "r3c:z", "i"], ",inf");
    check(
        &mut c,
        &["ZMPOP", "1", "r3c:z", "MIN"],
        "[\"r3c:z\", [[\"i\", ,inf]]]",
    );
    check(&mut c, &["LPOP", "r3c:none", "2"], "nil");
    check(&mut c, &["LMPOP", "1", "r3c:none", "LEFT"], "nil");
}

#[test]
fn resp3_raw_bytes_of_collections() {
    let mut raw = RawConn::connect(&shared_target().addr).expect("connect");
    assert!(raw.cmd(&["HELLO", "3"]).starts_with(b"%"));
    raw.cmd(&["DEL", "r3b:h", "r3b:s", "r3b:z", "r3b:l"]);
    assert_eq!(raw.cmd(&["HSET", "r3b:h", "f", "v"]), b":1\r\n");
    assert_eq!(
        raw.cmd(&["HGETALL", "r3b:h"]),
        b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(raw.cmd(&["SADD", "r3b:s", "m"]), b":1\r\n");
    assert_eq!(raw.cmd(&["SMEMBERS", "r3b:s"]), b"~1\r\n$1\r\nm\r\n");
    assert_eq!(raw.cmd(&["SMEMBERS", "r3b:none"]), b"~0\r\n");
    assert_eq!(raw.cmd(&["ZADD", "r3b:z", "2.5", "a"]), b":1\r\n");
    assert_eq!(raw.cmd(&["ZSCORE", "r3b:z", "a"]), b",2.5\r\n");
    assert_eq!(
        raw.cmd(&["ZRANGE", "r3b:z", "0", "-1", "WITHSCORES"]),
        b"*1\r\n*2\r\n$1\r\na\r\n,2.5\r\n"
    );
    assert_eq!(raw.cmd(&["ZSCORE", "r3b:z", "nosuch"]), b"_\r\n");
    assert_eq!(raw.cmd(&["LPOP", "r3b:l"]), b"_\r\n");
    assert_eq!(raw.cmd(&["LPOP", "r3b:l", "1"]), b"_\r\n");
    assert_eq!(raw.cmd(&["LPOS", "r3b:l", "x"]), b"_\r\n");
    // The same commands in RESP2.
    assert!(raw.cmd(&["HELLO", "2"]).starts_with(b"*"));
    assert_eq!(
        raw.cmd(&["HGETALL", "r3b:h"]),
        b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(raw.cmd(&["SMEMBERS", "r3b:s"]), b"*1\r\n$1\r\nm\r\n");
    assert_eq!(raw.cmd(&["ZSCORE", "r3b:z", "a"]), b"$3\r\n2.5\r\n");
    assert_eq!(
        raw.cmd(&["ZRANGE", "r3b:z", "0", "-1", "WITHSCORES"]),
        b"*2\r\n$1\r\na\r\n$3\r\n2.5\r\n"
    );
    assert_eq!(raw.cmd(&["ZSCORE", "r3b:z", "nosuch"]), b"$-1\r\n");
    assert_eq!(raw.cmd(&["LPOP", "r3b:l", "1"]), b"*-1\r\n");
    assert_eq!(raw.cmd(&["LPOP", "r3b:l"]), b"$-1\r\n");
}

// ---------------------------------------------------------------------------
// Cross-type access and generic key commands on collections.

#[test]
fn wrongtype_across_all_types() {
    let mut c = con();
    check(&mut c, &["SET", "wt:string", "v"], "+OK");
    check(&mut c, &["HSET", "wt:hash", "f", "v"], ":1");
    check(&mut c, &["RPUSH", "wt:list", "a"], ":1");
    check(&mut c, &["SADD", "wt:set", "a"], ":1");
    check(&mut c, &["ZADD", "wt:zset", "1", "a"], ":1");
    let probes: &[(&str, &[&str])] = &[
        ("string", &["GET", "{}"]),
        ("string", &["STRLEN", "{}"]),
        ("string", &["INCR", "{}"]),
        ("hash", &["HGET", "{}", "f"]),
        ("hash", &["HSET", "{}", "f", "v"]),
        ("hash", &["HGETALL", "{}"]),
        ("hash", &["HLEN", "{}"]),
        ("hash", &["HINCRBY", "{}", "f", "1"]),
        ("list", &["LPUSH", "{}", "x"]),
        ("list", &["LRANGE", "{}", "0", "-1"]),
        ("list", &["LLEN", "{}"]),
        ("list", &["LPOP", "{}"]),
        ("list", &["LINDEX", "{}", "0"]),
        ("set", &["SADD", "{}", "x"]),
        ("set", &["SMEMBERS", "{}"]),
        ("set", &["SISMEMBER", "{}", "x"]),
        ("set", &["SCARD", "{}"]),
        ("zset", &["ZADD", "{}", "1", "x"]),
        ("zset", &["ZSCORE", "{}", "x"]),
        ("zset", &["ZRANGE", "{}", "0", "-1"]),
        ("zset", &["ZCARD", "{}"]),
        ("zset", &["ZPOPMIN", "{}"]),
    ];
    for kind in ["string", "hash", "list", "set", "zset"] {
        let key = format!("wt:{kind}");
        for (owner, probe) in probes {
            let args: Vec<&str> = probe
                .iter()
                .map(|a| if *a == "{}" { key.as_str() } else { a })
                .collect();
            let got = ask(&mut c, &args);
            if *owner == kind {
                assert!(
                    !got.starts_with("-WRONGTYPE"),
                    "{args:?} on a {kind}: {got}"
                );
            } else {
                assert_eq!(got, WRONGTYPE, "{args:?} on a {kind}");
            }
        }
        check(&mut c, &["TYPE", &key], &format!("+{kind}"));
    }
    // Nothing above changed a key of another type.
    check(&mut c, &["GET", "wt:string"], "\"v\"");
    check(&mut c, &["SCARD", "wt:set"], ":2");
    check(&mut c, &["HGETALL", "wt:hash"], "[\"f\", \"v\"]");
}

#[test]
fn generic_commands_on_collections() {
    let mut c = con();
    check(&mut c, &["HSET", "gc:{g}h", "f", "v"], ":1");
    check(&mut c, &["RPUSH", "gc:{g}l", "a", "b"], ":2");
    check(&mut c, &["SADD", "gc:{g}s", "a"], ":1");
    check(&mut c, &["ZADD", "gc:{g}z", "1", "a"], ":1");
    check(
        &mut c,
        &[
            "EXISTS",
            "gc:{g}h",
            "gc:{g}l",
            "gc:{g}s",
            "gc:{g}z",
            "gc:{g}none",
        ],
        ":4",
    );
    // RENAME moves the elements and the TTL; the old name is gone.
    check(&mut c, &["EXPIRE", "gc:{g}h", "100"], ":1");
    check(&mut c, &["RENAME", "gc:{g}h", "gc:{g}h2"], "+OK");
    check(&mut c, &["HGET", "gc:{g}h2", "f"], "\"v\"");
    check(&mut c, &["HGET", "gc:{g}h", "f"], "nil");
    let ttl = int(&mut c, &["TTL", "gc:{g}h2"]);
    assert!((90..=100).contains(&ttl), "TTL after RENAME: {ttl}");
    check(&mut c, &["RENAME", "gc:{g}l", "gc:{g}z"], "+OK");
    check(&mut c, &["TYPE", "gc:{g}z"], "+list");
    check(&mut c, &["LRANGE", "gc:{g}z", "0", "-1"], "[\"a\", \"b\"]");
    check(&mut c, &["RENAMENX", "gc:{g}s", "gc:{g}z"], ":0");
    // Overwriting a collection with SET, then re-creating it, starts empty.
    check(&mut c, &["SET", "gc:{g}s", "x"], "+OK");
    check(&mut c, &["TYPE", "gc:{g}s"], "+string");
    check(&mut c, &["DEL", "gc:{g}s"], ":1");
    check(&mut c, &["SADD", "gc:{g}s", "b"], ":1");
    check(&mut c, &["SMEMBERS", "gc:{g}s"], "[\"b\"]");
    // A collection with a past TTL is gone, elements included.
    check(&mut c, &["PEXPIRE", "gc:{g}z", "1"], ":1");
    std::thread::sleep(std::time::Duration::from_millis(20));
    check(&mut c, &["LLEN", "gc:{g}z"], ":0");
    check(&mut c, &["RPUSH", "gc:{g}z", "fresh"], ":1");
    check(&mut c, &["LRANGE", "gc:{g}z", "0", "-1"], "[\"fresh\"]");
    check(&mut c, &["DEL", "gc:{g}h2", "gc:{g}s", "gc:{g}z"], ":3");
}

// ---------------------------------------------------------------------------
// OBJECT and COPY.

#[test]
fn object_encoding_follows_redis_thresholds() {
    let mut c = con();
    let rampart = shared_target().is_rampart();
    check(&mut c, &["SET", "oe:int", "12"], "+OK");
    check(&mut c, &["SET", "oe:emb", "hello"], "+OK");
    check(&mut c, &["SET", "oe:raw", &"r".repeat(45)], "+OK");
    check(&mut c, &["OBJECT", "ENCODING", "oe:int"], "\"int\"");
    check(&mut c, &["OBJECT", "ENCODING", "oe:emb"], "\"embstr\"");
    check(&mut c, &["OBJECT", "ENCODING", "oe:raw"], "\"raw\"");
    check(&mut c, &["OBJECT", "ENCODING", "oe:none"], "nil");
    check(&mut c, &["OBJECT", "REFCOUNT", "oe:int"], ":2147483647");
    check(&mut c, &["OBJECT", "REFCOUNT", "oe:emb"], ":1");

    check(&mut c, &["HSET", "oe:h", "f", "v"], ":1");
    check(&mut c, &["OBJECT", "ENCODING", "oe:h"], "\"listpack\"");
    check(&mut c, &["HSET", "oe:h", "big", &"v".repeat(65)], ":1");
    check(&mut c, &["OBJECT", "ENCODING", "oe:h"], "\"hashtable\"");
    check(&mut c, &["ZADD", "oe:z", "1", "a"], ":1");
    check(&mut c, &["OBJECT", "ENCODING", "oe:z"], "\"listpack\"");
    let mut zadd = vec!["ZADD".to_string(), "oe:z".to_string()];
    for i in 0..128 {
        zadd.push(i.to_string());
        zadd.push(format!("m{i}"));
    }
    let refs: Vec<&str> = zadd.iter().map(String::as_str).collect();
    check(&mut c, &refs, ":128");
    check(&mut c, &["OBJECT", "ENCODING", "oe:z"], "\"skiplist\"");
    check(&mut c, &["SADD", "oe:si", "1", "2", "-3"], ":3");
    check(&mut c, &["OBJECT", "ENCODING", "oe:si"], "\"intset\"");
    if rampart {
        // Redis 7.2: small non-integer sets and small lists are listpacks
        // (7.0 reports hashtable / quicklist).
        check(&mut c, &["SADD", "oe:si", "x"], ":1");
        check(&mut c, &["OBJECT", "ENCODING", "oe:si"], "\"listpack\"");
        check(&mut c, &["RPUSH", "oe:l", "a", "b"], ":2");
        check(&mut c, &["OBJECT", "ENCODING", "oe:l"], "\"listpack\"");
        for _ in 0..9 {
            query(&mut c, &["RPUSH", "oe:l", &"e".repeat(1000)]);
        }
        check(&mut c, &["OBJECT", "ENCODING", "oe:l"], "\"quicklist\"");
    }
    check(
        &mut c,
        &["OBJECT", "FOO", "oe:h"],
        "-ERR unknown subcommand 'FOO'. Try OBJECT HELP.",
    );
    check(
        &mut c,
        &["OBJECT", "ENCODING"],
        "-ERR wrong number of arguments for 'object|encoding' command",
    );
    arity(&mut c, &["OBJECT"]);
    let help = ask(&mut c, &["OBJECT", "HELP"]);
    assert!(
        help.starts_with("[+OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
        "{help}"
    );
    assert!(help.contains("+ENCODING <key>"), "{help}");
}

#[test]
fn copy_every_type() {
    let mut c = con();
    check(&mut c, &["SET", "cp:{c}s", "v", "EX", "100"], "+OK");
    check(&mut c, &["HSET", "cp:{c}h", "f", "v", "g", "w"], ":2");
    check(&mut c, &["RPUSH", "cp:{c}l", "a", "b", "c"], ":3");
    check(&mut c, &["SADD", "cp:{c}set", "x", "y"], ":2");
    check(&mut c, &["ZADD", "cp:{c}z", "1", "a", "2.5", "b"], ":2");
    check(&mut c, &["COPY", "cp:{c}s", "cp:{c}s2"], ":1");
    check(&mut c, &["GET", "cp:{c}s2"], "\"v\"");
    let ttl = int(&mut c, &["TTL", "cp:{c}s2"]);
    assert!((90..=100).contains(&ttl), "COPY keeps the TTL: {ttl}");
    check(&mut c, &["COPY", "cp:{c}h", "cp:{c}h2"], ":1");
    check(&mut c, &["HGET", "cp:{c}h2", "g"], "\"w\"");
    check(&mut c, &["COPY", "cp:{c}l", "cp:{c}l2"], ":1");
    check(
        &mut c,
        &["LRANGE", "cp:{c}l2", "0", "-1"],
        "[\"a\", \"b\", \"c\"]",
    );
    check(&mut c, &["COPY", "cp:{c}set", "cp:{c}set2"], ":1");
    assert_eq!(sorted(&mut c, &["SMEMBERS", "cp:{c}set2"]), v(&["x", "y"]));
    check(&mut c, &["COPY", "cp:{c}z", "cp:{c}z2"], ":1");
    check(
        &mut c,
        &["ZRANGE", "cp:{c}z2", "0", "-1", "WITHSCORES"],
        "[\"a\", \"1\", \"b\", \"2.5\"]",
    );
    check(&mut c, &["TTL", "cp:{c}z2"], ":-1");
    // Copies are independent.
    check(&mut c, &["RPOP", "cp:{c}l2"], "\"c\"");
    check(&mut c, &["LLEN", "cp:{c}l"], ":3");
    check(&mut c, &["COPY", "cp:{c}h", "cp:{c}l"], ":0");
    check(&mut c, &["TYPE", "cp:{c}l"], "+list");
    check(&mut c, &["COPY", "cp:{c}h", "cp:{c}l", "REPLACE"], ":1");
    check(&mut c, &["TYPE", "cp:{c}l"], "+hash");
    check(&mut c, &["HLEN", "cp:{c}l"], ":2");
    check(&mut c, &["COPY", "cp:{c}none", "cp:{c}x"], ":0");
    check(&mut c, &["COPY", "cp:{c}h", "cp:{c}x", "DB", "0"], ":1");
    check(
        &mut c,
        &["COPY", "cp:{c}h", "cp:{c}h"],
        "-ERR source and destination objects are the same",
    );
    check(
        &mut c,
        &["COPY", "cp:{c}h", "cp:{c}y", "DB", "-1"],
        "-ERR DB index is out of range",
    );
    check(
        &mut c,
        &["COPY", "cp:{c}h", "cp:{c}y", "DB", "x"],
        "-ERR value is not an integer or out of range",
    );
    check(
        &mut c,
        &["COPY", "cp:{c}h", "cp:{c}y", "REPLACE", "NOW"],
        "-ERR syntax error",
    );
    if shared_target().is_rampart() {
        // One database, like Redis with `databases 1`.
        check(
            &mut c,
            &["COPY", "cp:{c}h", "cp:{c}y", "DB", "1"],
            "-ERR DB index is out of range",
        );
    }
    arity(&mut c, &["COPY", "cp:{c}h"]);
}

/// Every key SCAN returns for `args` (after the cursor), following the
/// cursor to 0.
fn scan_all(c: &mut redis::Connection, args: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    for _ in 0..10_000 {
        let mut full = vec!["SCAN", cursor.as_str()];
        full.extend_from_slice(args);
        let r = query(c, &full);
        let redis::Value::Array(parts) = r else {
            panic!("SCAN reply {}", render(&r));
        };
        keys.extend(strings(&parts[1], &["SCAN"]));
        cursor = text_of(&parts[0]);
        if cursor == "0" {
            keys.sort();
            keys.dedup();
            return keys;
        }
    }
    panic!("SCAN {args:?} did not finish");
}

#[test]
fn scan_type_keys_and_ttl_on_collections() {
    let mut c = con();
    check(&mut c, &["HSET", "sk:h", "f", "v"], ":1");
    check(&mut c, &["RPUSH", "sk:l", "a"], ":1");
    check(&mut c, &["SADD", "sk:s", "a"], ":1");
    check(&mut c, &["ZADD", "sk:z", "1", "a"], ":1");
    check(&mut c, &["SET", "sk:str", "v"], "+OK");
    for (kind, key) in [
        ("hash", "sk:h"),
        ("list", "sk:l"),
        ("set", "sk:s"),
        ("zset", "sk:z"),
        ("string", "sk:str"),
    ] {
        assert_eq!(
            scan_all(&mut c, &["MATCH", "sk:*", "TYPE", kind, "COUNT", "50"]),
            v(&[key]),
            "SCAN TYPE {kind}"
        );
    }
    assert_eq!(
        scan_all(&mut c, &["MATCH", "sk:*", "TYPE", "nosuchtype"]),
        Vec::<String>::new()
    );
    assert_eq!(
        sorted(&mut c, &["KEYS", "sk:*"]),
        v(&["sk:h", "sk:l", "sk:s", "sk:str", "sk:z"])
    );
    // TTLs on collections, and PERSIST.
    check(&mut c, &["TTL", "sk:z"], ":-1");
    check(&mut c, &["EXPIRE", "sk:z", "100"], ":1");
    let ttl = int(&mut c, &["TTL", "sk:z"]);
    assert!((90..=100).contains(&ttl), "TTL {ttl}");
    // Writing elements keeps the TTL, as in Redis.
    check(&mut c, &["ZADD", "sk:z", "2", "b"], ":1");
    assert!(int(&mut c, &["TTL", "sk:z"]) > 0, "ZADD keeps the TTL");
    check(&mut c, &["PERSIST", "sk:z"], ":1");
    check(&mut c, &["TTL", "sk:z"], ":-1");
    check(&mut c, &["TTL", "sk:none"], ":-2");
}

#[test]
fn large_collections_delete_and_stay_consistent() {
    let mut c = con();
    // 2000 members in batches: point commands keep working at size.
    for batch in 0..20 {
        let mut args = vec!["ZADD".to_string(), "lg:z".to_string()];
        let mut hargs = vec!["HSET".to_string(), "lg:h".to_string()];
        for i in 0..100 {
            let n = batch * 100 + i;
            args.push(n.to_string());
            args.push(format!("m{n:05}"));
            hargs.push(format!("f{n}"));
            hargs.push(n.to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&mut c, &refs, ":100");
        let refs: Vec<&str> = hargs.iter().map(String::as_str).collect();
        check(&mut c, &refs, ":100");
    }
    check(&mut c, &["ZCARD", "lg:z"], ":2000");
    check(&mut c, &["HLEN", "lg:h"], ":2000");
    check(&mut c, &["ZSCORE", "lg:z", "m01234"], "\"1234\"");
    check(&mut c, &["HGET", "lg:h", "f1999"], "\"1999\"");
    check(&mut c, &["ZRANK", "lg:z", "m01500"], ":1500");
    check(&mut c, &["ZREVRANK", "lg:z", "m01500"], ":499");
    check(
        &mut c,
        &["ZRANGE", "lg:z", "-2", "-1", "WITHSCORES"],
        "[\"m01998\", \"1998\", \"m01999\", \"1999\"]",
    );
    check(
        &mut c,
        &["ZRANGE", "lg:z", "1000", "1001"],
        "[\"m01000\", \"m01001\"]",
    );
    check(&mut c, &["ZCOUNT", "lg:z", "(100", "200"], ":100");
    check(&mut c, &["OBJECT", "ENCODING", "lg:z"], "\"skiplist\"");
    check(&mut c, &["OBJECT", "ENCODING", "lg:h"], "\"hashtable\"");
    check(&mut c, &["DEL", "lg:z", "lg:h"], ":2");
    check(&mut c, &["ZCARD", "lg:z"], ":0");
    // A re-created key starts empty: no element of the old one shows up.
    check(&mut c, &["ZADD", "lg:z", "5", "fresh"], ":1");
    check(&mut c, &["ZRANGE", "lg:z", "0", "-1"], "[\"fresh\"]");
    check(&mut c, &["HSET", "lg:h", "f1", "x"], ":1");
    check(&mut c, &["HLEN", "lg:h"], ":1");
    check(&mut c, &["HGET", "lg:h", "f2"], "nil");
}

#[test]
fn redis_7_2_only_replies() {
    if !shared_target().is_rampart() {
        // Redis 7.0 (the one installed for cross-checks) lacks these.
        return;
    }
    let mut c = con();
    check(&mut c, &["ZADD", "r72:z", "1", "a", "2.5", "b"], ":2");
    check(
        &mut c,
        &["ZRANK", "r72:z", "b", "WITHSCORE"],
        "[:1, \"2.5\"]",
    );
    check(
        &mut c,
        &["ZREVRANK", "r72:z", "b", "WITHSCORE"],
        "[:0, \"2.5\"]",
    );
    check(&mut c, &["ZRANK", "r72:z", "nosuch", "WITHSCORE"], "nil");
    check(
        &mut c,
        &["ZRANK", "r72:z", "a", "WITHSCOREZ"],
        "-ERR syntax error",
    );
    let mut c3 = con3();
    check(&mut c3, &["ZRANK", "r72:z", "b", "WITHSCORE"], "[:1, ,2.5]");
    let one = ask(&mut c3, &["ZRANDMEMBER", "r72:z", "1", "WITHSCORES"]);
    assert!(
        one == "[[\"a\", ,1]]" || one == "[[\"b\", ,2.5]]",
        "RESP3 ZRANDMEMBER WITHSCORES: {one}"
    );
    let pairs = ask(&mut c3, &["ZRANDMEMBER", "r72:z", "-3", "WITHSCORES"]);
    assert!(
        pairs.starts_with("[[\"") && pairs.matches('[').count() == 4,
        "RESP3 ZRANDMEMBER WITHSCORES is an array of pairs: {pairs}"
    );
}

#[test]
fn wrongtype_for_every_collection_command() {
    let mut c = con();
    let create: &[(&str, &[&str])] = &[
        ("string", &["SET", "{}", "v"]),
        ("hash", &["HSET", "{}", "f", "v"]),
        ("list", &["RPUSH", "{}", "a", "b"]),
        ("set", &["SADD", "{}", "a", "b"]),
        ("zset", &["ZADD", "{}", "1", "a", "2", "b"]),
    ];
    let probes: &[(&str, &[&str])] = &[
        ("hash", &["HSETNX", "{}", "g", "v"]),
        ("hash", &["HMSET", "{}", "g", "v"]),
        ("hash", &["HMGET", "{}", "f"]),
        ("hash", &["HDEL", "{}", "f"]),
        ("hash", &["HEXISTS", "{}", "f"]),
        ("hash", &["HSTRLEN", "{}", "f"]),
        ("hash", &["HKEYS", "{}"]),
        ("hash", &["HVALS", "{}"]),
        ("hash", &["HINCRBYFLOAT", "{}", "n", "1.5"]),
        ("hash", &["HRANDFIELD", "{}"]),
        ("hash", &["HRANDFIELD", "{}", "2", "WITHVALUES"]),
        ("hash", &["HSCAN", "{}", "0"]),
        ("list", &["RPUSH", "{}", "x"]),
        ("list", &["LPUSHX", "{}", "x"]),
        ("list", &["RPUSHX", "{}", "x"]),
        ("list", &["RPOP", "{}", "1"]),
        ("list", &["LSET", "{}", "0", "x"]),
        ("list", &["LINSERT", "{}", "BEFORE", "a", "x"]),
        ("list", &["LREM", "{}", "0", "a"]),
        ("list", &["LTRIM", "{}", "0", "0"]),
        ("list", &["LPOS", "{}", "a"]),
        ("list", &["LMOVE", "{}", "wt2:other", "LEFT", "LEFT"]),
        ("list", &["RPOPLPUSH", "{}", "wt2:other"]),
        ("list", &["LMPOP", "1", "{}", "LEFT"]),
        ("set", &["SREM", "{}", "a"]),
        ("set", &["SMISMEMBER", "{}", "a"]),
        ("set", &["SRANDMEMBER", "{}", "2"]),
        ("set", &["SPOP", "{}"]),
        ("set", &["SMOVE", "{}", "wt2:other", "a"]),
        ("set", &["SINTER", "{}"]),
        ("set", &["SUNION", "{}"]),
        ("set", &["SDIFF", "{}"]),
        ("set", &["SINTERCARD", "1", "{}"]),
        ("set", &["SUNIONSTORE", "wt2:dst", "{}"]),
        ("set", &["SSCAN", "{}", "0"]),
        ("zset", &["ZINCRBY", "{}", "1", "a"]),
        ("zset", &["ZREM", "{}", "a"]),
        ("zset", &["ZMSCORE", "{}", "a"]),
        ("zset", &["ZRANK", "{}", "a"]),
        ("zset", &["ZREVRANK", "{}", "a"]),
        ("zset", &["ZCOUNT", "{}", "-inf", "+inf"]),
        ("zset", &["ZLEXCOUNT", "{}", "-", "+"]),
        ("zset", &["ZRANGEBYSCORE", "{}", "-inf", "+inf"]),
        ("zset", &["ZREVRANGEBYLEX", "{}", "+", "-"]),
        ("zset", &["ZRANGESTORE", "wt2:dst", "{}", "0", "-1"]),
        ("zset", &["ZREMRANGEBYRANK", "{}", "0", "0"]),
        ("zset", &["ZREMRANGEBYSCORE", "{}", "0", "1"]),
        ("zset", &["ZPOPMAX", "{}"]),
        ("zset", &["ZMPOP", "1", "{}", "MIN"]),
        ("zset", &["ZRANDMEMBER", "{}"]),
        ("zset", &["ZSCAN", "{}", "0"]),
    ];
    for (kind, make) in create {
        let key = format!("wt2:{kind}");
        let bind = |args: &[&str]| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "{}" {
                        key.clone()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        for (owner, probe) in probes {
            // Every probe starts from a fresh key of `kind`: destructive
            // probes of the owning type may have emptied it.
            query(&mut c, &["DEL", &key, "wt2:other", "wt2:dst"]);
            let made = bind(make);
            query(&mut c, &made.iter().map(String::as_str).collect::<Vec<_>>());
            let args = bind(probe);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let got = ask(&mut c, &refs);
            if owner == kind {
                assert!(
                    !got.starts_with("-WRONGTYPE"),
                    "{args:?} on a {kind}: {got}"
                );
            } else {
                assert_eq!(got, WRONGTYPE, "{args:?} on a {kind}");
                check(&mut c, &["TYPE", &key], &format!("+{kind}"));
            }
        }
    }
}
