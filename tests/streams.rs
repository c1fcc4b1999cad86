//! Stream entry commands (XADD XLEN XRANGE XREVRANGE XDEL XTRIM XSETID),
//! XREAD with and without BLOCK, XINFO STREAM, through real proxies in
//! front of a real 3-node cluster, with a real client: replies in RESP2 and
//! RESP3, Redis 7.2's error texts, wake-ups from another proxy, a big
//! stream and a leader failover.
//!
//! The expected replies were checked against Redis (7.0, plus 7.2's
//! `active-time` in XINFO STREAM FULL): `RAMPART_TEST_REDIS_ADDR=...` runs
//! the shared tests against a real server. Timing is only asserted as "not
//! before the timeout".

mod common;

use std::time::{Duration, Instant};

use common::{
    ask, check, connect, int, raw_connect as raw, shared_target, spawn_blocked, text, wait_blocked,
    wait_for, Cluster,
};
use nix::sys::signal::Signal;

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";
const INVALID_ID: &str = "-ERR Invalid stream ID specified as stream command argument";

fn bytes_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses `ms-seq`.
fn id_of(raw: &str) -> (u64, u64) {
    let (ms, seq) = raw
        .split_once('-')
        .unwrap_or_else(|| panic!("not a stream id: {raw:?}"));
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

/// Raw RESP2 of one entry with one field.
fn raw_entry(id: &str, field: &str, value: &str) -> String {
    format!(
        "*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{field}\r\n${}\r\n{value}\r\n",
        id.len(),
        field.len(),
        value.len()
    )
}

#[test]
fn xadd_ids_options_and_errors() {
    let mut c = shared_target().connection();
    check(&mut c, &["XADD", "a:s", "1-1", "f", "1"], "\"1-1\"");
    check(&mut c, &["XADD", "a:s", "1-*", "f", "2"], "\"1-2\"");
    check(&mut c, &["XADD", "a:s", "5", "f", "3"], "\"5-0\"");
    // `*`: the leader's clock, always above the last id.
    let auto = text(&mut c, &["XADD", "a:s", "*", "f", "4", "g", "5"]);
    assert!(id_of(&auto) > (5, 0), "{auto}");
    check(
        &mut c,
        &["XADD", "a:s", "5-0", "f", "x"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item",
    );
    check(
        &mut c,
        &["XADD", "a:s", "4-*", "f", "x"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item",
    );
    check(
        &mut c,
        &["XADD", "a:new", "0-0", "f", "x"],
        "-ERR The ID specified in XADD must be greater than 0-0",
    );
    check(
        &mut c,
        &["XADD", "a:new", "0", "f", "x"],
        "-ERR The ID specified in XADD must be greater than 0-0",
    );
    check(&mut c, &["XADD", "a:zero", "0-*", "f", "x"], "\"0-1\"");
    check(&mut c, &["XADD", "a:s", "-", "f", "x"], INVALID_ID);
    check(&mut c, &["XADD", "a:s", "1-x", "f", "x"], INVALID_ID);
    check(
        &mut c,
        &["XADD", "a:s", "*", "f", "x", "g"],
        "-ERR wrong number of arguments for 'xadd' command",
    );
    check(
        &mut c,
        &["XADD", "a:s", "*", "f"],
        "-ERR wrong number of arguments for 'xadd' command",
    );
    check(
        &mut c,
        &["XADD", "a:s", "MAXLEN", "5", "LIMIT", "10", "*", "f", "x"],
        "-ERR syntax error, LIMIT cannot be used without the special ~ option",
    );
    check(
        &mut c,
        &["XADD", "a:s", "MAXLEN", "1", "MINID", "1", "*", "f", "x"],
        "-ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
    );
    check(
        &mut c,
        &["XADD", "a:s", "MAXLEN", "-1", "*", "f", "x"],
        "-ERR The MAXLEN argument must be >= 0.",
    );
    check(
        &mut c,
        &[
            "XADD", "a:s", "MAXLEN", "~", "1", "LIMIT", "-1", "*", "f", "x",
        ],
        "-ERR The LIMIT argument must be >= 0.",
    );
    check(
        &mut c,
        &["XADD", "a:s", "MAXLEN", "x", "*", "f", "x"],
        "-ERR value is not an integer or out of range",
    );
    // NOMKSTREAM on a missing key: nil, and no key.
    check(
        &mut c,
        &["XADD", "a:none", "NOMKSTREAM", "*", "f", "x"],
        "nil",
    );
    check(&mut c, &["EXISTS", "a:none"], ":0");
    // MAXLEN 0 trims the new entry too; the empty stream stays.
    check(
        &mut c,
        &["XADD", "a:empty", "MAXLEN", "0", "7-1", "f", "x"],
        "\"7-1\"",
    );
    check(&mut c, &["XLEN", "a:empty"], ":0");
    check(&mut c, &["TYPE", "a:empty"], "+stream");
    // The exhausted id space.
    check(
        &mut c,
        &[
            "XADD",
            "a:max",
            "18446744073709551615-18446744073709551615",
            "f",
            "x",
        ],
        "\"18446744073709551615-18446744073709551615\"",
    );
    check(
        &mut c,
        &["XADD", "a:max", "*", "f", "x"],
        "-ERR The stream has exhausted the last possible ID, unable to add more items",
    );
    // Exact and approximate MAXLEN / MINID while adding.
    for i in 1..=20 {
        check(
            &mut c,
            &[
                "XADD",
                "a:cap",
                "MAXLEN",
                "=",
                "5",
                &format!("{i}-0"),
                "f",
                "x",
            ],
            &format!("\"{i}-0\""),
        );
    }
    check(&mut c, &["XLEN", "a:cap"], ":5");
    check(
        &mut c,
        &["XADD", "a:cap", "MINID", "19", "21-0", "f", "x"],
        "\"21-0\"",
    );
    check(&mut c, &["XLEN", "a:cap"], ":3");
    for i in 1..=300 {
        query_ok(
            &mut c,
            &[
                "XADD",
                "a:approx",
                "MAXLEN",
                "~",
                "100",
                &format!("{i}-0"),
                "f",
                "x",
            ],
        );
    }
    let len = int(&mut c, &["XLEN", "a:approx"]);
    assert!((100..200).contains(&len), "approximate trim kept {len}");
    // Wrong type.
    check(&mut c, &["SET", "a:str", "v"], "+OK");
    check(&mut c, &["XADD", "a:str", "*", "f", "x"], WRONGTYPE);
}

fn query_ok(c: &mut redis::Connection, args: &[&str]) {
    let reply = ask(c, args);
    assert!(!reply.starts_with('-'), "{args:?}: {reply}");
}

#[test]
fn xlen_xrange_xrevrange_xdel_xtrim_xsetid() {
    let mut c = shared_target().connection();
    for (id, v) in [("1-1", "a"), ("2-1", "b"), ("3-1", "c"), ("4-1", "d")] {
        query_ok(&mut c, &["XADD", "r:s", id, "f", v]);
    }
    check(&mut c, &["XLEN", "r:s"], ":4");
    check(&mut c, &["XLEN", "r:none"], ":0");
    check(
        &mut c,
        &["XRANGE", "r:s", "-", "+", "COUNT", "2"],
        r#"[["1-1", ["f", "a"]], ["2-1", ["f", "b"]]]"#,
    );
    check(
        &mut c,
        &["XRANGE", "r:s", "(1-1", "3"],
        r#"[["2-1", ["f", "b"]], ["3-1", ["f", "c"]]]"#,
    );
    check(
        &mut c,
        &["XREVRANGE", "r:s", "+", "(2-1", "COUNT", "5"],
        r#"[["4-1", ["f", "d"]], ["3-1", ["f", "c"]]]"#,
    );
    check(&mut c, &["XRANGE", "r:s", "-", "+", "COUNT", "0"], "nil");
    check(&mut c, &["XRANGE", "r:s", "-", "+", "COUNT", "-3"], "nil");
    check(&mut c, &["XRANGE", "r:s", "3", "2"], "[]");
    check(&mut c, &["XRANGE", "r:none", "-", "+"], "[]");
    check(
        &mut c,
        &["XRANGE", "r:s", "-", "+", "COUNT"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["XRANGE", "r:s", "-", "+", "COUNT", "x"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["XRANGE", "r:s", "(-", "+"], INVALID_ID);
    check(
        &mut c,
        &[
            "XRANGE",
            "r:s",
            "(18446744073709551615-18446744073709551615",
            "+",
        ],
        "-ERR invalid start ID for the interval",
    );
    check(
        &mut c,
        &["XRANGE", "r:s", "-", "(0-0"],
        "-ERR invalid end ID for the interval",
    );
    // XDEL: duplicates and missing ids count once / not at all.
    check(&mut c, &["XDEL", "r:s", "2-1", "2-1", "9-9"], ":1");
    check(&mut c, &["XDEL", "r:s", "x"], INVALID_ID);
    check(&mut c, &["XDEL", "r:none", "x"], ":0");
    check(&mut c, &["XLEN", "r:s"], ":3");
    // XTRIM
    check(&mut c, &["XTRIM", "r:s", "MAXLEN", "2"], ":1");
    check(&mut c, &["XTRIM", "r:s", "MINID", "4"], ":1");
    check(
        &mut c,
        &["XRANGE", "r:s", "-", "+"],
        r#"[["4-1", ["f", "d"]]]"#,
    );
    check(&mut c, &["XTRIM", "r:none", "MAXLEN", "0"], ":0");
    check(&mut c, &["XTRIM", "r:s", "FOO", "1"], "-ERR syntax error");
    check(
        &mut c,
        &["XTRIM", "r:s", "MAXLEN", "1", "LIMIT", "5"],
        "-ERR syntax error, LIMIT cannot be used without the special ~ option",
    );
    check(
        &mut c,
        &["XTRIM", "r:s", "MAXLEN", "~"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["XTRIM", "r:s", "MINID", "x"], INVALID_ID);
    // Approximate trims remove whole groups of 100 entries only.
    for i in 1..=250 {
        query_ok(&mut c, &["XADD", "r:big", &format!("{i}-0"), "f", "x"]);
    }
    check(&mut c, &["XTRIM", "r:big", "MAXLEN", "~", "100"], ":100");
    check(
        &mut c,
        &["XTRIM", "r:big", "MAXLEN", "~", "100", "LIMIT", "20"],
        ":0",
    );
    check(&mut c, &["XTRIM", "r:big", "MAXLEN", "=", "100"], ":50");
    check(
        &mut c,
        &["XRANGE", "r:big", "-", "+", "COUNT", "1"],
        r#"[["151-0", ["f", "x"]]]"#,
    );
    // XSETID
    check(
        &mut c,
        &["XSETID", "r:s", "4-0"],
        "-ERR The ID specified in XSETID is smaller than the target stream top item",
    );
    check(
        &mut c,
        &["XSETID", "r:s", "9-0", "ENTRIESADDED", "0"],
        "-ERR The entries_added specified in XSETID is smaller than the target stream length",
    );
    check(
        &mut c,
        &["XSETID", "r:s", "9-0", "ENTRIESADDED", "-1"],
        "-ERR entries_added must be positive",
    );
    check(
        &mut c,
        &["XSETID", "r:s", "9-0", "MAXDELETEDID", "10-0"],
        "-ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
    );
    check(
        &mut c,
        &["XSETID", "r:s", "9-0", "FOO"],
        "-ERR syntax error",
    );
    check(&mut c, &["XSETID", "r:none", "9-0"], "-ERR no such key");
    check(
        &mut c,
        &[
            "XSETID",
            "r:s",
            "9-0",
            "ENTRIESADDED",
            "50",
            "MAXDELETEDID",
            "8-0",
        ],
        "+OK",
    );
    if shared_target().is_rampart() {
        // Redis 7.2's check (7.0 has none).
        check(
            &mut c,
            &["XSETID", "r:s", "7-0"],
            "-ERR The ID specified in XSETID is smaller than current max_deleted_entry_id",
        );
    }
    check(
        &mut c,
        &["XADD", "r:s", "9-0", "f", "x"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item",
    );
    check(&mut c, &["XADD", "r:s", "9-*", "f", "e"], "\"9-1\"");
    // Wrong type everywhere.
    check(&mut c, &["SET", "r:str", "v"], "+OK");
    for args in [
        &["XLEN", "r:str"][..],
        &["XRANGE", "r:str", "-", "+"],
        &["XREVRANGE", "r:str", "+", "-"],
        &["XDEL", "r:str", "1"],
        &["XTRIM", "r:str", "MAXLEN", "1"],
        &["XSETID", "r:str", "1"],
        &["XINFO", "STREAM", "r:str"],
    ] {
        check(&mut c, args, WRONGTYPE);
    }
}

#[test]
fn xinfo_stream_summary_full_and_help() {
    let target = shared_target();
    let mut c = target.connection();
    query_ok(&mut c, &["XADD", "i:s", "1-1", "a", "1"]);
    query_ok(&mut c, &["XADD", "i:s", "2-1", "b", "2"]);
    query_ok(&mut c, &["XADD", "i:s", "3-1", "c", "3"]);
    check(&mut c, &["XDEL", "i:s", "1-1"], ":1");
    check(
        &mut c,
        &["XINFO", "STREAM", "i:s"],
        r#"["length", :2, "radix-tree-keys", :1, "radix-tree-nodes", :2, "last-generated-id", "3-1", "max-deleted-entry-id", "1-1", "entries-added", :3, "recorded-first-entry-id", "2-1", "groups", :0, "first-entry", ["2-1", ["b", "2"]], "last-entry", ["3-1", ["c", "3"]]]"#,
    );
    check(
        &mut c,
        &["XINFO", "STREAM", "i:s", "FULL", "COUNT", "1"],
        r#"["length", :2, "radix-tree-keys", :1, "radix-tree-nodes", :2, "last-generated-id", "3-1", "max-deleted-entry-id", "1-1", "entries-added", :3, "recorded-first-entry-id", "2-1", "entries", [["2-1", ["b", "2"]]], "groups", []]"#,
    );
    query_ok(&mut c, &["XADD", "i:e", "MAXLEN", "0", "5-5", "f", "x"]);
    check(
        &mut c,
        &["XINFO", "STREAM", "i:e"],
        r#"["length", :0, "radix-tree-keys", :0, "radix-tree-nodes", :1, "last-generated-id", "5-5", "max-deleted-entry-id", "0-0", "entries-added", :1, "recorded-first-entry-id", "0-0", "groups", :0, "first-entry", nil, "last-entry", nil]"#,
    );
    check(&mut c, &["XINFO", "STREAM", "i:none"], "-ERR no such key");
    check(
        &mut c,
        &["XINFO", "STREAM", "i:s", "FULL", "COUNT"],
        "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.",
    );
    check(
        &mut c,
        &["XINFO", "STREAM", "i:s", "FULLER"],
        "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.",
    );
    check(
        &mut c,
        &["XINFO", "FOO"],
        "-ERR unknown subcommand 'FOO'. Try XINFO HELP.",
    );
    check(
        &mut c,
        &["XINFO", "STREAM"],
        "-ERR wrong number of arguments for 'xinfo|stream' command",
    );
    let help = ask(&mut c, &["XINFO", "HELP"]);
    assert!(
        help.starts_with("[+XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:, +CONSUMERS <key> <groupname>"),
        "{help}"
    );
    // RESP3: a map.
    let mut c3 = connect(&target.addr, Some("protocol=resp3"));
    let info = ask(&mut c3, &["XINFO", "STREAM", "i:s"]);
    assert!(
        info.starts_with(r#"{"length": :2, "radix-tree-keys": :1"#),
        "{info}"
    );
    assert!(
        info.ends_with(r#""last-entry": ["3-1", ["c", "3"]]}"#),
        "{info}"
    );
}

#[test]
fn xinfo_stream_full_shows_groups_pel_and_consumers() {
    let target = shared_target();
    let mut c = target.connection();
    query_ok(&mut c, &["XADD", "ig:s", "1-1", "a", "1"]);
    query_ok(&mut c, &["XADD", "ig:s", "2-1", "b", "2"]);
    let created = ask(&mut c, &["XGROUP", "CREATE", "ig:s", "g", "0"]);
    if created != "+OK" {
        eprintln!("consumer groups not available yet ({created}): skipping");
        return;
    }
    let read = ask(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "ig:s",
            ">",
        ],
    );
    assert_eq!(read, r#"[["ig:s", [["1-1", ["a", "1"]]]]]"#);
    let full = ask(&mut c, &["XINFO", "STREAM", "ig:s", "FULL"]);
    // Delivery times come from the leader's clock: check the shape around them.
    assert!(
        full.contains(r#""groups", [["name", "g", "last-delivered-id", "1-1", "entries-read", :1, "lag", :1, "pel-count", :1, "pending", [["1-1", "alice", :"#),
        "{full}"
    );
    assert!(
        full.contains(r#""consumers", [["name", "alice", "seen-time", :"#),
        "{full}"
    );
    assert!(
        full.contains(r#""pel-count", :1, "pending", [["1-1", :"#),
        "{full}"
    );
}

#[test]
fn xread_without_block() {
    let target = shared_target();
    let mut c = target.connection();
    query_ok(&mut c, &["XADD", "x:a", "1-1", "f", "1"]);
    query_ok(&mut c, &["XADD", "x:a", "2-1", "f", "2"]);
    query_ok(&mut c, &["XADD", "x:b", "5-0", "g", "1"]);
    check(
        &mut c,
        &[
            "XREAD", "COUNT", "1", "STREAMS", "x:a", "x:none", "x:b", "1-1", "0", "0",
        ],
        r#"[["x:a", [["2-1", ["f", "2"]]]], ["x:b", [["5-0", ["g", "1"]]]]]"#,
    );
    check(
        &mut c,
        &["XREAD", "STREAMS", "x:a", "0-0"],
        r#"[["x:a", [["1-1", ["f", "1"]], ["2-1", ["f", "2"]]]]]"#,
    );
    // `$`: only entries added after the call; without BLOCK, nothing.
    check(&mut c, &["XREAD", "STREAMS", "x:a", "$"], "nil");
    check(&mut c, &["XREAD", "STREAMS", "x:none", "0"], "nil");
    check(
        &mut c,
        &["XREAD", "COUNT", "-5", "STREAMS", "x:b", "0"],
        r#"[["x:b", [["5-0", ["g", "1"]]]]]"#,
    );
    // Raw RESP2 shape: an array of [key, entries] arrays; nothing is *-1.
    let mut r = raw(&target.addr);
    assert_eq!(
        bytes_text(&r.cmd(&["XREAD", "STREAMS", "x:b", "0"])),
        format!(
            "*1\r\n*2\r\n$3\r\nx:b\r\n*1\r\n{}",
            raw_entry("5-0", "g", "1")
        )
    );
    assert_eq!(
        bytes_text(&r.cmd(&["XREAD", "STREAMS", "x:b", "$"])),
        "*-1\r\n"
    );
    // RESP3: a map, and a null.
    let mut c3 = connect(&target.addr, Some("protocol=resp3"));
    check(
        &mut c3,
        &["XREAD", "STREAMS", "x:a", "x:b", "1-1", "0"],
        r#"{"x:a": [["2-1", ["f", "2"]]], "x:b": [["5-0", ["g", "1"]]]}"#,
    );
    check(&mut c3, &["XREAD", "STREAMS", "x:a", "$"], "nil");
    // Errors.
    if target.is_rampart() {
        // Redis 7.2's wording (7.0 names the command as typed, unquoted).
        check(
            &mut c,
            &["XREAD", "STREAMS", "x:a", "x:b", "0"],
            "-ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.",
        );
    }
    check(
        &mut c,
        &["XREAD", "COUNT", "1", "x:a", "0"],
        "-ERR syntax error",
    );
    check(&mut c, &["XREAD", "STREAMS", "x:a", "+"], INVALID_ID);
    check(
        &mut c,
        &["XREAD", "STREAMS", "x:a", ">"],
        "-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
    );
    check(
        &mut c,
        &["XREAD", "GROUP", "g", "c", "STREAMS", "x:a", "0"],
        "-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
    );
    check(
        &mut c,
        &["XREAD", "BLOCK", "-1", "STREAMS", "x:a", "0"],
        "-ERR timeout is negative",
    );
    check(
        &mut c,
        &["XREAD", "BLOCK", "soon", "STREAMS", "x:a", "0"],
        "-ERR timeout is not an integer or out of range",
    );
    check(&mut c, &["SET", "x:str", "v"], "+OK");
    check(
        &mut c,
        &["XREAD", "STREAMS", "x:a", "x:str", "0", "x"],
        WRONGTYPE,
    );
    check(
        &mut c,
        &["XREAD", "STREAMS", "x:a", "x:str", "x", "0"],
        INVALID_ID,
    );
    // BLOCK with data already there answers at once.
    check(
        &mut c,
        &["XREAD", "BLOCK", "0", "STREAMS", "x:b", "0"],
        r#"[["x:b", [["5-0", ["g", "1"]]]]]"#,
    );
    // Inside MULTI, BLOCK cannot wait: null at once, as in Redis.
    check(&mut c, &["MULTI"], "+OK");
    check(
        &mut c,
        &["XREAD", "BLOCK", "0", "STREAMS", "x:b", "$"],
        "+QUEUED",
    );
    check(&mut c, &["EXEC"], "[nil]");
}

#[test]
fn xread_block_times_out_with_null() {
    let target = shared_target();
    let mut c = raw(&target.addr);
    c.cmd(&["XADD", "to:s", "1-1", "f", "v"]);
    for args in [
        &["XREAD", "BLOCK", "200", "STREAMS", "to:s", "$"][..],
        &[
            "XREAD", "BLOCK", "200", "STREAMS", "to:none", "to:s", "0", "1-1",
        ],
    ] {
        let started = Instant::now();
        let reply = bytes_text(&c.cmd(args));
        let took = started.elapsed();
        assert_eq!(reply, "*-1\r\n", "{args:?}");
        assert!(took >= Duration::from_millis(200), "{args:?} took {took:?}");
    }
    let mut c3 = raw(&target.addr);
    c3.cmd(&["HELLO", "3"]);
    assert_eq!(
        bytes_text(&c3.cmd(&["XREAD", "BLOCK", "100", "STREAMS", "to:s", "$"])),
        "_\r\n"
    );
    assert_eq!(bytes_text(&c.cmd(&["PING"])), "+PONG\r\n");
}

#[test]
fn xread_block_is_woken_by_xadd_through_another_proxy() {
    let target = shared_target();
    let cluster = target
        .cluster
        .as_ref()
        .expect("the wake-up test needs a Rampart cluster");
    let other = cluster.start_proxy(&[1, 2, 3], None);
    let mut c = raw(&target.addr);
    c.cmd(&["XADD", "w:s", "1-1", "f", "old"]);
    // Three readers: `$` (the entry added before the wait is not theirs),
    // an explicit id, and one on two streams. All of them are served.
    let dollar = spawn_blocked(
        &target.addr,
        &["XREAD", "BLOCK", "0", "STREAMS", "w:s", "$"],
    );
    let explicit = spawn_blocked(
        &target.addr,
        &[
            "XREAD", "COUNT", "5", "BLOCK", "20000", "STREAMS", "w:s", "1-1",
        ],
    );
    let two = spawn_blocked(
        &target.addr,
        &["XREAD", "BLOCK", "0", "STREAMS", "w:other", "w:s", "$", "$"],
    );
    wait_blocked(&target.addr, 3);
    let mut pusher = raw(&other);
    assert_eq!(
        bytes_text(&pusher.cmd(&["XADD", "w:s", "2-1", "f", "new"])),
        "$3\r\n2-1\r\n"
    );
    let expected = format!(
        "*1\r\n*2\r\n$3\r\nw:s\r\n*1\r\n{}",
        raw_entry("2-1", "f", "new")
    );
    assert_eq!(dollar.join().unwrap().0, expected);
    assert_eq!(explicit.join().unwrap().0, expected);
    assert_eq!(two.join().unwrap().0, expected);

    // A write of another type on the key does not serve the reader; a
    // stream write to one of its keys does.
    let waiter = spawn_blocked(
        &target.addr,
        &["XREAD", "BLOCK", "0", "STREAMS", "w:t", "w:s", "$", "$"],
    );
    wait_blocked(&target.addr, 1);
    assert_eq!(bytes_text(&pusher.cmd(&["SET", "w:t", "v"])), "+OK\r\n");
    assert_eq!(bytes_text(&pusher.cmd(&["DEL", "w:t"])), ":1\r\n");
    assert_eq!(
        bytes_text(&pusher.cmd(&["XADD", "w:t", "3-0", "g", "h"])),
        "$3\r\n3-0\r\n"
    );
    assert_eq!(
        waiter.join().unwrap().0,
        format!(
            "*1\r\n*2\r\n$3\r\nw:t\r\n*1\r\n{}",
            raw_entry("3-0", "g", "h")
        )
    );
}

/// A reader's `$` is resolved once, on the node where it first waited. If
/// its proxy must re-send the command to a new leader, an entry added in
/// between is still one the reader asked for (Redis never re-resolves `$`
/// for a blocked client). The reader's proxy is paused while the leader
/// dies and the entry is added, so its retry surely comes after the entry.
#[test]
fn a_blocked_reader_moved_to_a_new_leader_keeps_its_dollar() {
    let cluster = Cluster::start();
    let reader_proxy = cluster.proxy_addr().to_string();
    let other = cluster.start_proxy(&[1, 2, 3], None);
    let mut c = raw(&other);
    c.cmd(&["XADD", "mv:s", "1-1", "f", "old"]);
    let reader = spawn_blocked(
        &reader_proxy,
        &["XREAD", "BLOCK", "8000", "STREAMS", "mv:s", "$"],
    );
    wait_blocked(&reader_proxy, 1);

    cluster.signal_proxy(&reader_proxy, Signal::SIGSTOP);
    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new, old);
    let added = wait_for(
        "an XADD on the new leader",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match bytes_text(&c.cmd(&["XADD", "mv:s", "2-1", "f", "new"])) {
            reply if reply.starts_with('$') => Ok(reply),
            reply => Err(reply),
        },
    );
    assert_eq!(added, "$3\r\n2-1\r\n");
    cluster.signal_proxy(&reader_proxy, Signal::SIGCONT);

    assert_eq!(
        reader.join().unwrap().0,
        format!(
            "*1\r\n*2\r\n$4\r\nmv:s\r\n*1\r\n{}",
            raw_entry("2-1", "f", "new")
        )
    );
}

#[test]
fn xreadgroup_block_is_woken_by_xadd() {
    let target = shared_target();
    let mut c = target.connection();
    let created = ask(&mut c, &["XGROUP", "CREATE", "rg:s", "g", "$", "MKSTREAM"]);
    if created != "+OK" {
        eprintln!("consumer groups not available yet ({created}): skipping");
        return;
    }
    let waiter = spawn_blocked(
        &target.addr,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "0",
            "STREAMS",
            "rg:s",
            ">",
        ],
    );
    wait_blocked(&target.addr, 1);
    query_ok(&mut c, &["XADD", "rg:s", "1-1", "f", "v"]);
    assert_eq!(
        waiter.join().unwrap().0,
        format!(
            "*1\r\n*2\r\n$4\r\nrg:s\r\n*1\r\n{}",
            raw_entry("1-1", "f", "v")
        )
    );
    // Delivered once: the group has it pending, a second read waits out.
    let mut r = raw(&target.addr);
    assert_eq!(
        bytes_text(&r.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "BLOCK",
            "100",
            "STREAMS",
            "rg:s",
            ">"
        ])),
        "*-1\r\n"
    );
}

#[test]
fn a_big_stream_reads_only_what_it_returns() {
    let target = shared_target();
    let mut c = target.connection();
    const N: usize = 10_000;
    for chunk in (1..=N).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("XADD")
                .arg("big:s")
                .arg(format!("{i}-0"))
                .arg("n")
                .arg(i.to_string());
        }
        let ids: Vec<String> = pipe.query(&mut c).expect("pipelined XADD");
        assert_eq!(ids.len(), chunk.len());
    }
    check(&mut c, &["XLEN", "big:s"], &format!(":{N}"));
    let range = |from: usize, to: usize| {
        let items: Vec<String> = (from..=to)
            .map(|i| format!(r#"["{i}-0", ["n", "{i}"]]"#))
            .collect();
        items.join(", ")
    };
    check(
        &mut c,
        &["XRANGE", "big:s", "-", "+", "COUNT", "10"],
        &format!("[{}]", range(1, 10)),
    );
    check(
        &mut c,
        &["XRANGE", "big:s", "(5000-0", "+", "COUNT", "10"],
        &format!("[{}]", range(5001, 5010)),
    );
    check(
        &mut c,
        &["XREAD", "COUNT", "10", "STREAMS", "big:s", "9990-0"],
        &format!(r#"[["big:s", [{}]]]"#, range(9991, 10_000)),
    );
    check(
        &mut c,
        &["XREAD", "COUNT", "10", "STREAMS", "big:s", "4999-5"],
        &format!(r#"[["big:s", [{}]]]"#, range(5000, 5009)),
    );
    let rev: Vec<String> = (9_991..=N)
        .rev()
        .map(|i| format!(r#"["{i}-0", ["n", "{i}"]]"#))
        .collect();
    check(
        &mut c,
        &["XREVRANGE", "big:s", "+", "-", "COUNT", "10"],
        &format!("[{}]", rev.join(", ")),
    );
    check(&mut c, &["XTRIM", "big:s", "MAXLEN", "9000"], ":1000");
    check(
        &mut c,
        &["XRANGE", "big:s", "-", "+", "COUNT", "1"],
        &format!("[{}]", range(1001, 1001)),
    );
    check(&mut c, &["DEL", "big:s"], ":1");
    check(&mut c, &["XLEN", "big:s"], ":0");
}

#[test]
fn a_stream_and_a_blocked_reader_survive_a_leader_failover() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let mut c = connect(&addr, None);
    for i in 1..=100 {
        query_ok(
            &mut c,
            &["XADD", "fo:s", &format!("{i}-0"), "f", &i.to_string()],
        );
    }
    let last_auto = text(&mut c, &["XADD", "fo:s", "*", "f", "auto"]);
    check(&mut c, &["XDEL", "fo:s", "50-0"], ":1");
    let waiter = spawn_blocked(&addr, &["XREAD", "BLOCK", "0", "STREAMS", "fo:w", "0"]);
    wait_blocked(&addr, 1);

    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new, old);

    let mut c = connect(&addr, None);
    let len = wait_for(
        "XLEN after the leader change",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match common::query(&mut c, &["XLEN", "fo:s"]) {
            redis::Value::Int(n) => Ok(n),
            other => Err(common::render(&other)),
        },
    );
    assert_eq!(len, 100);
    check(
        &mut c,
        &["XRANGE", "fo:s", "49", "51"],
        r#"[["49-0", ["f", "49"]], ["51-0", ["f", "51"]]]"#,
    );
    let info = ask(&mut c, &["XINFO", "STREAM", "fo:s"]);
    assert!(
        info.contains(&format!(r#""last-generated-id", "{last_auto}", "max-deleted-entry-id", "50-0", "entries-added", :101"#)),
        "{info}"
    );
    // Ids stay monotonic across the failover.
    let next = text(&mut c, &["XADD", "fo:s", "*", "f", "after"]);
    assert!(id_of(&next) > id_of(&last_auto), "{next} after {last_auto}");
    // The blocked reader was re-armed on the new leader.
    query_ok(&mut c, &["XADD", "fo:w", "1-0", "f", "x"]);
    assert_eq!(
        waiter.join().unwrap().0,
        format!(
            "*1\r\n*2\r\n$4\r\nfo:w\r\n*1\r\n{}",
            raw_entry("1-0", "f", "x")
        )
    );
}
