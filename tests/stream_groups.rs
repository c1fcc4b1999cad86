//! Stream consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM, XINFO GROUPS/CONSUMERS) through a real proxy in front of a
//! real 3-node cluster: the workflows of issue 6 (consumers sharing a
//! group, acks, claims after idle, autoclaim with its cursor), history
//! reads, NOACK, both XPENDING forms, XINFO values, Redis 7.2's error
//! texts, RESP3 shapes, a blocked XREADGROUP woken by XADD or ended by
//! its stream or group going away, and group state across a leader
//! failover.
//!
//! Idle times are only asserted as bounds (these machines are shared and
//! noisy); "idle enough" is made with one sleep of 100 ms and a min-idle of
//! 50 ms, "not idle enough" with a min-idle of a minute.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT` runs the same expectations
//! against a real Redis (Rampart-only parts are skipped there; a Redis 7.0
//! lacks XINFO CONSUMERS' `inactive`, so those checks are Rampart-only too).

mod common;

use std::thread;
use std::time::Duration;

use common::{
    ask, check, connect, query, render, shared_target, spawn_blocked, wait_blocked, wait_for,
    wait_unblocked, Cluster, RawConn,
};

fn con() -> redis::Connection {
    shared_target().connection()
}

fn is_rampart() -> bool {
    shared_target().is_rampart()
}

/// A stream `key` with entries `1-0 .. n-0` (field `f`, value = ms) and a
/// group `g` reading from the start.
fn stream_with_group(c: &mut redis::Connection, key: &str, n: u64) {
    check(c, &["DEL", key], ":0");
    for ms in 1..=n {
        let id = format!("{ms}-0");
        check(
            c,
            &["XADD", key, &id, "f", &ms.to_string()],
            &format!("{id:?}"),
        );
    }
    check(c, &["XGROUP", "CREATE", key, "g", "0"], "+OK");
}

/// The rows of an extended XPENDING reply: (id, consumer, idle, deliveries).
fn pending_rows(c: &mut redis::Connection, args: &[&str]) -> Vec<(String, String, i64, i64)> {
    let redis::Value::Array(rows) = query(c, args) else {
        panic!("XPENDING {args:?} is not an array");
    };
    rows.iter()
        .map(|row| match row {
            redis::Value::Array(f) => match f.as_slice() {
                [redis::Value::BulkString(id), redis::Value::BulkString(owner), redis::Value::Int(idle), redis::Value::Int(n)] => (
                    String::from_utf8_lossy(id).into_owned(),
                    String::from_utf8_lossy(owner).into_owned(),
                    *idle,
                    *n,
                ),
                _ => panic!("bad XPENDING row {}", render(row)),
            },
            _ => panic!("bad XPENDING row {}", render(row)),
        })
        .collect()
}

/// The integer `field` of every map/flat-array item of an XINFO reply.
fn info_field(c: &mut redis::Connection, args: &[&str], field: &str) -> Vec<String> {
    let redis::Value::Array(items) = query(c, args) else {
        panic!("{args:?} is not an array");
    };
    items
        .iter()
        .map(|item| {
            let pairs: Vec<(String, String)> = match item {
                redis::Value::Array(flat) => flat
                    .chunks(2)
                    .map(|p| (render(&p[0]), render(&p[1])))
                    .collect(),
                redis::Value::Map(pairs) => {
                    pairs.iter().map(|(k, v)| (render(k), render(v))).collect()
                }
                other => panic!("bad XINFO item {}", render(other)),
            };
            pairs
                .into_iter()
                .find(|(k, _)| k == &format!("{field:?}"))
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no {field} in {}", render(item)))
        })
        .collect()
}

#[test]
fn two_consumers_share_a_group_ack_and_claim() {
    let mut c = con();
    stream_with_group(&mut c, "wf:s", 4);
    let mut alice = con();
    let mut bob = con();
    check(
        &mut alice,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "wf:s",
            ">",
        ],
        r#"[["wf:s", [["1-0", ["f", "1"]]]]]"#,
    );
    check(
        &mut bob,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "wf:s",
            ">",
        ],
        r#"[["wf:s", [["2-0", ["f", "2"]], ["3-0", ["f", "3"]]]]]"#,
    );
    check(
        &mut alice,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "wf:s", ">"],
        r#"[["wf:s", [["4-0", ["f", "4"]]]]]"#,
    );
    // Everything delivered: nothing new is a null reply.
    check(
        &mut bob,
        &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "wf:s", ">"],
        "nil",
    );
    check(
        &mut c,
        &["XPENDING", "wf:s", "g"],
        r#"[:4, "1-0", "4-0", [["alice", "2"], ["bob", "2"]]]"#,
    );
    // Bob processed 2-0; acking twice counts once.
    check(&mut bob, &["XACK", "wf:s", "g", "2-0", "2-0", "99-0"], ":1");
    check(
        &mut c,
        &["XPENDING", "wf:s", "g"],
        r#"[:3, "1-0", "4-0", [["alice", "2"], ["bob", "1"]]]"#,
    );

    // Alice dies: after she has been idle a while, bob claims her entries.
    check(
        &mut bob,
        &["XCLAIM", "wf:s", "g", "bob", "60000", "1-0"],
        "[]",
    );
    thread::sleep(Duration::from_millis(100));
    check(
        &mut bob,
        &["XCLAIM", "wf:s", "g", "bob", "50", "1-0", "4-0"],
        r#"[["1-0", ["f", "1"]], ["4-0", ["f", "4"]]]"#,
    );
    let rows = pending_rows(&mut c, &["XPENDING", "wf:s", "g", "-", "+", "10"]);
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|(id, o, _, n)| (id.clone(), o.clone(), *n))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("1-0".into(), "bob".into(), 2),
            ("3-0".into(), "bob".into(), 1),
            ("4-0".into(), "bob".into(), 2),
        ]
    );
    // A claim resets the idle time; 3-0 has been idle since its delivery.
    assert!(rows[0].2 < 60_000 && rows[2].2 < 60_000, "{rows:?}");
    assert!(rows[1].2 >= 100, "{rows:?}");
    check(&mut bob, &["XACK", "wf:s", "g", "1-0", "3-0", "4-0"], ":3");
    check(&mut c, &["XPENDING", "wf:s", "g"], "[:0, nil, nil, nil]");
    check(
        &mut c,
        &["XINFO", "GROUPS", "wf:s"],
        r#"[["name", "g", "consumers", :2, "pending", :0, "last-delivered-id", "4-0", "entries-read", :4, "lag", :0]]"#,
    );
}

#[test]
fn autoclaim_walks_the_pel_with_a_cursor() {
    let mut c = con();
    stream_with_group(&mut c, "ac:s", 5);
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "dead", "STREAMS", "ac:s", ">"],
        r#"[["ac:s", [["1-0", ["f", "1"]], ["2-0", ["f", "2"]], ["3-0", ["f", "3"]], ["4-0", ["f", "4"]], ["5-0", ["f", "5"]]]]]"#,
    );
    // Nothing is idle for a minute yet: the cursor walks to the end.
    check(
        &mut c,
        &["XAUTOCLAIM", "ac:s", "g", "w", "60000", "0"],
        r#"["0-0", [], []]"#,
    );
    check(&mut c, &["XDEL", "ac:s", "2-0"], ":1");
    thread::sleep(Duration::from_millis(100));
    // The deleted 2-0 leaves the PEL and counts against COUNT.
    check(
        &mut c,
        &["XAUTOCLAIM", "ac:s", "g", "w", "50", "0", "COUNT", "2"],
        r#"["3-0", [["1-0", ["f", "1"]]], ["2-0"]]"#,
    );
    check(
        &mut c,
        &[
            "XAUTOCLAIM",
            "ac:s",
            "g",
            "w",
            "50",
            "3-0",
            "COUNT",
            "2",
            "JUSTID",
        ],
        r#"["5-0", ["3-0", "4-0"], []]"#,
    );
    check(
        &mut c,
        &["XAUTOCLAIM", "ac:s", "g", "w", "50", "5-0", "COUNT", "2"],
        r#"["0-0", [["5-0", ["f", "5"]]], []]"#,
    );
    let rows = pending_rows(&mut c, &["XPENDING", "ac:s", "g", "-", "+", "10", "w"]);
    let got: Vec<(String, i64)> = rows.iter().map(|(id, _, _, n)| (id.clone(), *n)).collect();
    // JUSTID does not count as a delivery.
    assert_eq!(
        got,
        vec![
            ("1-0".into(), 2),
            ("3-0".into(), 1),
            ("4-0".into(), 1),
            ("5-0".into(), 2)
        ]
    );
    check(
        &mut c,
        &["XPENDING", "ac:s", "g"],
        r#"[:4, "1-0", "5-0", [["w", "4"]]]"#,
    );
}

#[test]
fn history_reads_noack_and_deleted_entries() {
    let mut c = con();
    stream_with_group(&mut c, "hist:s", 3);
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "2",
            "STREAMS",
            "hist:s",
            ">",
        ],
        r#"[["hist:s", [["1-0", ["f", "1"]], ["2-0", ["f", "2"]]]]]"#,
    );
    check(&mut c, &["XDEL", "hist:s", "1-0"], ":1");
    // The consumer's own history; a deleted entry comes back as [id, nil].
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "hist:s", "0"],
        r#"[["hist:s", [["1-0", nil], ["2-0", ["f", "2"]]]]]"#,
    );
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "hist:s",
            "1",
        ],
        r#"[["hist:s", [["2-0", ["f", "2"]]]]]"#,
    );
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "hist:s", "0"],
        r#"[["hist:s", []]]"#,
    );
    let rows = pending_rows(&mut c, &["XPENDING", "hist:s", "g", "-", "+", "10"]);
    let got: Vec<(String, i64)> = rows.iter().map(|(id, _, _, n)| (id.clone(), *n)).collect();
    // History reads count deliveries of entries that still exist.
    assert_eq!(got, vec![("1-0".into(), 1), ("2-0".into(), 3)]);
    // NOACK: delivered without a PEL entry.
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "NOACK",
            "STREAMS",
            "hist:s",
            ">",
        ],
        r#"[["hist:s", [["3-0", ["f", "3"]]]]]"#,
    );
    check(
        &mut c,
        &["XPENDING", "hist:s", "g"],
        r#"[:2, "1-0", "2-0", [["c1", "2"]]]"#,
    );
    // XDEL and XTRIM leave the PEL alone; DELCONSUMER drops it.
    check(&mut c, &["XTRIM", "hist:s", "MAXLEN", "0"], ":2");
    check(
        &mut c,
        &["XPENDING", "hist:s", "g"],
        r#"[:2, "1-0", "2-0", [["c1", "2"]]]"#,
    );
    check(
        &mut c,
        &["XGROUP", "DELCONSUMER", "hist:s", "g", "c1"],
        ":2",
    );
    check(&mut c, &["XPENDING", "hist:s", "g"], "[:0, nil, nil, nil]");
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "hist:s", "0"],
        r#"[["hist:s", []]]"#,
    );
}

#[test]
fn xpending_forms_and_xinfo_values() {
    let mut c = con();
    stream_with_group(&mut c, "info:s", 4);
    check(
        &mut c,
        &["XGROUP", "CREATE", "info:s", "a-first", "$"],
        "+OK",
    );
    check(
        &mut c,
        &["XGROUP", "CREATECONSUMER", "info:s", "g", "idle-one"],
        ":1",
    );
    check(
        &mut c,
        &["XGROUP", "CREATECONSUMER", "info:s", "g", "idle-one"],
        ":0",
    );
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "r",
            "COUNT",
            "3",
            "STREAMS",
            "info:s",
            ">",
        ],
        r#"[["info:s", [["1-0", ["f", "1"]], ["2-0", ["f", "2"]], ["3-0", ["f", "3"]]]]]"#,
    );
    check(
        &mut c,
        &["XINFO", "GROUPS", "info:s"],
        r#"[["name", "a-first", "consumers", :0, "pending", :0, "last-delivered-id", "4-0", "entries-read", nil, "lag", :0], ["name", "g", "consumers", :2, "pending", :3, "last-delivered-id", "3-0", "entries-read", :3, "lag", :1]]"#,
    );
    assert_eq!(
        info_field(&mut c, &["XINFO", "CONSUMERS", "info:s", "g"], "name"),
        vec![r#""idle-one""#, r#""r""#]
    );
    assert_eq!(
        info_field(&mut c, &["XINFO", "CONSUMERS", "info:s", "g"], "pending"),
        vec![":0", ":3"]
    );
    if is_rampart() {
        let inactive = info_field(&mut c, &["XINFO", "CONSUMERS", "info:s", "g"], "inactive");
        assert_eq!(inactive[0], ":-1", "never active");
        let r: i64 = inactive[1][1..].parse().unwrap();
        assert!((0..60_000).contains(&r), "{inactive:?}");
    }

    // Extended form: range, exclusive bounds, COUNT, consumer filter, IDLE.
    let ids = |rows: Vec<(String, String, i64, i64)>| -> Vec<String> {
        rows.into_iter().map(|r| r.0).collect()
    };
    assert_eq!(
        ids(pending_rows(
            &mut c,
            &["XPENDING", "info:s", "g", "-", "+", "10"]
        )),
        vec!["1-0", "2-0", "3-0"]
    );
    assert_eq!(
        ids(pending_rows(
            &mut c,
            &["XPENDING", "info:s", "g", "(1-0", "+", "1"]
        )),
        vec!["2-0"]
    );
    assert_eq!(
        ids(pending_rows(
            &mut c,
            &["XPENDING", "info:s", "g", "-", "(3-0", "10", "r"]
        )),
        vec!["1-0", "2-0"]
    );
    check(
        &mut c,
        &["XPENDING", "info:s", "g", "-", "+", "10", "idle-one"],
        "[]",
    );
    check(
        &mut c,
        &["XPENDING", "info:s", "g", "-", "+", "10", "nobody"],
        "[]",
    );
    check(
        &mut c,
        &["XPENDING", "info:s", "g", "IDLE", "60000", "-", "+", "10"],
        "[]",
    );
    thread::sleep(Duration::from_millis(100));
    let rows = pending_rows(
        &mut c,
        &["XPENDING", "info:s", "g", "IDLE", "50", "-", "+", "10", "r"],
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(_, o, idle, n)| o == "r" && *idle >= 50 && *n == 1),
        "{rows:?}"
    );
    check(&mut c, &["XPENDING", "info:s", "g", "-", "+", "0"], "[]");
}

#[test]
fn error_texts_match_redis() {
    let mut c = con();
    stream_with_group(&mut c, "err:s", 1);
    check(&mut c, &["SET", "err:str", "v"], "+OK");
    let cases: &[(&[&str], &str)] = &[
        (&["XGROUP", "CREATE", "err:none", "g", "$"], "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."),
        (&["XGROUP", "CREATE", "err:s", "g", "$"], "-BUSYGROUP Consumer Group name already exists"),
        (&["XGROUP", "CREATE", "err:s", "g2", "+"], "-ERR Invalid stream ID specified as stream command argument"),
        (&["XGROUP", "CREATE", "err:s", "g2", "0", "foo"], "-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."),
        (&["XGROUP", "CREATE", "err:s"], "-ERR wrong number of arguments for 'xgroup|create' command"),
        (&["XGROUP", "FOO", "err:s"], "-ERR unknown subcommand 'FOO'. Try XGROUP HELP."),
        (&["XGROUP", "SETID", "err:s", "nog", "0"], "-NOGROUP No such consumer group 'nog' for key name 'err:s'"),
        (&["XGROUP", "SETID", "err:s", "g", "$", "ENTRIESREAD", "-2"], "-ERR value for ENTRIESREAD must be positive or -1"),
        (&["XGROUP", "DELCONSUMER", "err:s", "nog", "c"], "-NOGROUP No such consumer group 'nog' for key name 'err:s'"),
        (&["XGROUP", "CREATE", "err:str", "g", "$"], "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:s", "$"], "-ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."),
        (&["XREADGROUP", "GROUP", "nog", "c", "STREAMS", "err:s", ">"], "-NOGROUP No such key 'err:s' or consumer group 'nog' in XREADGROUP with GROUP option"),
        (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:none", ">"], "-NOGROUP No such key 'err:none' or consumer group 'g' in XREADGROUP with GROUP option"),
        (&["XREADGROUP", "COUNT", "1", "NOACK", "STREAMS", "err:s", ">"], "-ERR Missing GROUP option for XREADGROUP"),
        (&["XREADGROUP", "GROUP", "g", "c", "COUNT", "x", "STREAMS", "err:s", ">"], "-ERR value is not an integer or out of range"),
        (&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "x", "STREAMS", "err:s", ">"], "-ERR timeout is not an integer or out of range"),
        (&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "-1", "STREAMS", "err:s", ">"], "-ERR timeout is negative"),
        (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:s", "+"], "-ERR Invalid stream ID specified as stream command argument"),
        (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:str", ">"], "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:s"], "-ERR wrong number of arguments for 'xreadgroup' command"),
        (&["XACK", "err:s", "g", "bad"], "-ERR Invalid stream ID specified as stream command argument"),
        (&["XACK", "err:none", "g", "bad"], ":0"),
        (&["XACK", "err:str", "g", "1-0"], "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        (&["XPENDING", "err:s", "nog"], "-NOGROUP No such key 'err:s' or consumer group 'nog'"),
        (&["XPENDING", "err:s", "g", "-", "+"], "-ERR syntax error"),
        (&["XPENDING", "err:s", "g", "IDLE", "x", "-", "+", "10"], "-ERR value is not an integer or out of range"),
        (&["XPENDING", "err:s", "g", "-", "(0-0", "10"], "-ERR invalid end ID for the interval"),
        (&["XCLAIM", "err:s", "nog", "c", "0", "1-0"], "-NOGROUP No such key 'err:s' or consumer group 'nog'"),
        (&["XCLAIM", "err:s", "g", "c", "x", "1-0"], "-ERR Invalid min-idle-time argument for XCLAIM"),
        (&["XCLAIM", "err:s", "g", "c", "0", "1-0", "IDLE", "x"], "-ERR Invalid IDLE option argument for XCLAIM"),
        (&["XCLAIM", "err:s", "g", "c", "0", "1-0", "TIME", "x"], "-ERR Invalid TIME option argument for XCLAIM"),
        (&["XCLAIM", "err:s", "g", "c", "0", "1-0", "RETRYCOUNT", "x"], "-ERR Invalid RETRYCOUNT option argument for XCLAIM"),
        (&["XCLAIM", "err:s", "g", "c", "0", "1-0", "FOO"], "-ERR Unrecognized XCLAIM option 'FOO'"),
        (&["XAUTOCLAIM", "err:s", "g", "c", "0", "0", "COUNT", "0"], "-ERR COUNT must be > 0"),
        (&["XAUTOCLAIM", "err:s", "g", "c", "x", "0"], "-ERR Invalid min-idle-time argument for XAUTOCLAIM"),
        (&["XAUTOCLAIM", "err:s", "g", "c", "0", "0", "FOO"], "-ERR syntax error"),
        (&["XAUTOCLAIM", "err:s", "nog", "c", "0", "0"], "-NOGROUP No such key 'err:s' or consumer group 'nog'"),
        (&["XINFO", "GROUPS", "err:none"], "-ERR no such key"),
        (&["XINFO", "CONSUMERS", "err:s", "nog"], "-NOGROUP No such consumer group 'nog' for key name 'err:s'"),
        (&["XINFO", "GROUPS", "err:str"], "-WRONGTYPE Operation against a key holding the wrong kind of value"),
    ];
    for (args, expected) in cases {
        check(&mut c, args, expected);
    }
    if is_rampart() {
        // Redis 7.2's wording (7.0 said "Unbalanced XREAD list ... '$'").
        check(
            &mut c,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "err:s", ">", ">"],
            "-ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.",
        );
    }
    // XGROUP HELP has no key; it still reaches a node.
    let help = ask(&mut c, &["XGROUP", "HELP"]);
    assert!(
        help.starts_with("[+XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:, +CREATE <key> <groupname> <id|$> [option]"),
        "{help}"
    );
    // Nothing was created by the failed commands.
    check(&mut c, &["EXISTS", "err:none"], ":0");
    check(
        &mut c,
        &["XINFO", "GROUPS", "err:s"],
        r#"[["name", "g", "consumers", :0, "pending", :0, "last-delivered-id", "0-0", "entries-read", nil, "lag", :1]]"#,
    );
}

#[test]
fn resp3_shapes() {
    let mut c2 = con();
    stream_with_group(&mut c2, "r3:s", 2);
    let mut c = connect(&shared_target().addr, Some("protocol=resp3"));
    // XREADGROUP's top level is a map in RESP3.
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "r3:s",
            ">",
        ],
        r#"{"r3:s": [["1-0", ["f", "1"]]]}"#,
    );
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "r3:s", "0"],
        r#"{"r3:s": [["1-0", ["f", "1"]]]}"#,
    );
    check(
        &mut c,
        &["XINFO", "GROUPS", "r3:s"],
        r#"[{"name": "g", "consumers": :1, "pending": :1, "last-delivered-id": "1-0", "entries-read": :1, "lag": :1}]"#,
    );
    check(
        &mut c,
        &["XPENDING", "r3:s", "g"],
        r#"[:1, "1-0", "1-0", [["c", "1"]]]"#,
    );
    check(
        &mut c,
        &["XAUTOCLAIM", "r3:s", "g", "d", "0", "0", "JUSTID"],
        r#"["0-0", ["1-0"], []]"#,
    );
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "5",
            "STREAMS",
            "r3:s",
            ">",
        ],
        r#"{"r3:s": [["2-0", ["f", "2"]]]}"#,
    );
    // Exact bytes: nothing new is `*-1` in RESP2 and `_` in RESP3; a
    // deleted entry in a history read is `[id, *-1]`.
    let addr = &shared_target().addr;
    let mut raw2 = RawConn::connect(addr).unwrap();
    let nothing = ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "r3:s", ">"];
    assert_eq!(raw2.cmd(&nothing), b"*-1\r\n");
    check(&mut c2, &["XDEL", "r3:s", "2-0"], ":1");
    assert_eq!(
        String::from_utf8_lossy(&raw2.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "r3:s",
            "1-0"
        ])),
        "*1\r\n*2\r\n$4\r\nr3:s\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n"
    );
    let mut raw3 = RawConn::connect(addr).unwrap();
    let hello = raw3.cmd(&["HELLO", "3"]);
    assert!(
        hello.starts_with(b"%"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(raw3.cmd(&nothing), b"_\r\n");
    assert_eq!(
        String::from_utf8_lossy(&raw3.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "r3:s",
            "1-0"
        ])),
        "%1\r\n$4\r\nr3:s\r\n*1\r\n*2\r\n$3\r\n2-0\r\n_\r\n"
    );
    let info = raw3.cmd(&["XINFO", "CONSUMERS", "r3:s", "g"]);
    assert!(
        info.starts_with(b"*2\r\n%"),
        "{}",
        String::from_utf8_lossy(&info)
    );
}

#[test]
fn blocked_xreadgroup_is_woken_by_xadd_from_another_connection() {
    let mut c = con();
    check(
        &mut c,
        &["XGROUP", "CREATE", "blk:s", "g", "$", "MKSTREAM"],
        "+OK",
    );
    // Another proxy when there is a cluster: the wake-up crosses proxies.
    let writer_addr = match &shared_target().cluster {
        Some(cluster) => cluster.start_proxy(&[1, 2, 3], None),
        None => shared_target().addr.clone(),
    };
    let waiter = spawn_blocked(
        &shared_target().addr,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "w",
            "BLOCK",
            "20000",
            "STREAMS",
            "blk:s",
            ">",
        ],
    );
    wait_blocked(&shared_target().addr, 1);
    let mut writer = connect(&writer_addr, None);
    check(&mut writer, &["XADD", "blk:s", "7-0", "k", "v"], r#""7-0""#);
    let (reply, waited) = waiter.join().expect("waiter thread");
    assert_eq!(
        reply,
        "*1\r\n*2\r\n$5\r\nblk:s\r\n*1\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    );
    assert!(waited < Duration::from_secs(15), "woken late: {waited:?}");
    check(
        &mut c,
        &["XPENDING", "blk:s", "g"],
        r#"[:1, "7-0", "7-0", [["w", "1"]]]"#,
    );
    // A timeout answers a null array.
    let (reply, waited) = spawn_blocked(
        &shared_target().addr,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "w",
            "BLOCK",
            "100",
            "STREAMS",
            "blk:s",
            ">",
        ],
    )
    .join()
    .expect("waiter thread");
    assert_eq!(reply, "*-1\r\n");
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
}

/// Redis 7 ends the wait of an XREADGROUP whose stream is deleted or
/// overwritten (`UNBLOCKED`) or whose group is destroyed (`NOGROUP`)
/// instead of leaving the client waiting for entries that cannot come.
#[test]
fn blocked_xreadgroup_ends_when_its_stream_or_group_goes() {
    let addr = shared_target().addr.clone();
    let mut c = con();
    let key_gone = "-UNBLOCKED the stream key no longer exists\r\n";
    let group_gone = "-NOGROUP the consumer group this client was blocked on no longer exists\r\n";
    let cases: [(&str, &[&str], &str); 4] = [
        ("gone:del", &["DEL", "gone:del"], key_gone),
        ("gone:set", &["SET", "gone:set", "x"], key_gone),
        ("gone:unlink", &["UNLINK", "gone:unlink"], key_gone),
        (
            "gone:group",
            &["XGROUP", "DESTROY", "gone:group", "g"],
            group_gone,
        ),
    ];
    for (key, end, expected) in cases {
        check(
            &mut c,
            &["XGROUP", "CREATE", key, "g", "$", "MKSTREAM"],
            "+OK",
        );
        // The previous case's client has left before this one counts.
        wait_unblocked(&addr);
        let waiter = spawn_blocked(
            &addr,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "w",
                "BLOCK",
                "0",
                "STREAMS",
                key,
                ">",
            ],
        );
        wait_blocked(&addr, 1);
        let _ = query(&mut c, end);
        let (reply, _) = waiter.join().expect("waiter thread");
        assert_eq!(reply, expected, "after {end:?}");
    }
    // XGROUP DESTROY ended the wait but left the stream.
    check(&mut c, &["EXISTS", "gone:group"], ":1");
}

#[test]
fn group_state_survives_a_leader_failover() {
    // Its own cluster (it kills a node); nothing to do against a Redis.
    if std::env::var("RAMPART_TEST_REDIS_ADDR").is_ok() {
        return;
    }
    let cluster = Cluster::start();
    let mut c = cluster.connection();
    stream_with_group(&mut c, "fo:s", 3);
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "a",
            "COUNT",
            "2",
            "STREAMS",
            "fo:s",
            ">",
        ],
        r#"[["fo:s", [["1-0", ["f", "1"]], ["2-0", ["f", "2"]]]]]"#,
    );
    check(&mut c, &["XACK", "fo:s", "g", "1-0"], ":1");
    check(
        &mut c,
        &["XGROUP", "CREATECONSUMER", "fo:s", "g", "b"],
        ":1",
    );
    let before = (
        ask(&mut c, &["XPENDING", "fo:s", "g"]),
        ask(&mut c, &["XINFO", "GROUPS", "fo:s"]),
    );

    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new, old);
    let mut c = cluster.connection();
    let after = wait_for(
        "XPENDING after the leader change",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let pending = ask(&mut c, &["XPENDING", "fo:s", "g"]);
            if pending.starts_with('-') {
                Err(pending)
            } else {
                Ok(pending)
            }
        },
    );
    assert_eq!(after, before.0);
    check(&mut c, &["XINFO", "GROUPS", "fo:s"], &before.1);
    // The group goes on from where it was on the new leader.
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "b", "STREAMS", "fo:s", ">"],
        r#"[["fo:s", [["3-0", ["f", "3"]]]]]"#,
    );
    check(
        &mut c,
        &["XCLAIM", "fo:s", "g", "b", "0", "2-0", "JUSTID"],
        r#"["2-0"]"#,
    );
    check(
        &mut c,
        &["XPENDING", "fo:s", "g"],
        r#"[:2, "2-0", "3-0", [["b", "2"]]]"#,
    );
    // The restarted node catches up with the same group state.
    cluster.restart_node(old);
    check(&mut c, &["XACK", "fo:s", "g", "2-0", "3-0"], ":2");
    check(&mut c, &["XPENDING", "fo:s", "g"], "[:0, nil, nil, nil]");
}

#[test]
fn a_group_on_a_legacy_stream_reads_the_same_and_migrates() {
    if !is_rampart() {
        return;
    }
    let mut c = con();
    stream_with_group(&mut c, "leg:s", 3);
    check(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "a",
            "COUNT",
            "2",
            "STREAMS",
            "leg:s",
            ">",
        ],
        r#"[["leg:s", [["1-0", ["f", "1"]], ["2-0", ["f", "2"]]]]]"#,
    );
    let summary = ask(&mut c, &["XPENDING", "leg:s", "g"]);
    let groups = ask(&mut c, &["XINFO", "GROUPS", "leg:s"]);
    check(&mut c, &["RAMPART.STREAMTOLEGACY", "leg:s"], ":3");
    check(&mut c, &["RAMPART.STREAMFORMAT", "leg:s"], r#""legacy""#);
    // Reads decode the blob and answer exactly as before.
    check(&mut c, &["XPENDING", "leg:s", "g"], &summary);
    check(&mut c, &["XINFO", "GROUPS", "leg:s"], &groups);
    assert_eq!(
        info_field(&mut c, &["XINFO", "CONSUMERS", "leg:s", "g"], "pending"),
        vec![":2"]
    );
    // The first group write migrates; the group goes on where it was.
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "b", "STREAMS", "leg:s", ">"],
        r#"[["leg:s", [["3-0", ["f", "3"]]]]]"#,
    );
    check(&mut c, &["RAMPART.STREAMFORMAT", "leg:s"], r#""per-entry""#);
    check(&mut c, &["XACK", "leg:s", "g", "1-0", "2-0", "3-0"], ":3");
    check(&mut c, &["XPENDING", "leg:s", "g"], "[:0, nil, nil, nil]");
}
