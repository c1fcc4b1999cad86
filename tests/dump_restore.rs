//! DUMP and RESTORE against a real redis-server: values of every type
//! DUMPed by Redis are RESTOREd on Rampart and read back equal, and the
//! reverse; RESTORE's options and error replies are compared reply by
//! reply. Needs redis-server (`./dev.sh` installs Debian's 7.0).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{connect, query, render, shared_target, start_redis_server};

/// Sends a command whose arguments may be binary.
fn raw(con: &mut redis::Connection, args: &[&[u8]]) -> redis::Value {
    use redis::ConnectionLike;
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    con.req_command(&cmd)
        .unwrap_or_else(|e| panic!("transport error: {e}"))
}

fn dump(con: &mut redis::Connection, key: &str) -> Vec<u8> {
    match query(con, &["DUMP", key]) {
        redis::Value::BulkString(b) => b,
        other => panic!("DUMP {key}: {}", render(&other)),
    }
}

fn restore(
    con: &mut redis::Connection,
    key: &str,
    ttl: &str,
    payload: &[u8],
    opts: &[&str],
) -> String {
    let mut args: Vec<&[u8]> = vec![&b"RESTORE"[..], key.as_bytes(), ttl.as_bytes(), payload];
    args.extend(opts.iter().map(|o| o.as_bytes()));
    render(&raw(con, &args))
}

/// Builds one value of every type, small and large, so Redis uses both
/// its compact and its full encodings (and compresses what it can).
fn populate(con: &mut redis::Connection) {
    let _ = query(con, &["FLUSHALL"]);
    let run = |con: &mut redis::Connection, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = query(con, &args);
        assert!(
            !render(&reply).starts_with('-'),
            "{args:?}: {}",
            render(&reply)
        );
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    run(con, s(&["SET", "str", "hello world"]));
    run(con, s(&["SET", "int", "12345"]));
    run(con, s(&["SET", "neg", "-9000000000"]));
    run(con, s(&["SET", "long", &"compressible-".repeat(400)]));
    let noisy: String = (0..3000u32)
        .map(|i| char::from(b'!' + ((i * 7919 + i / 13) % 90) as u8))
        .collect();
    run(con, s(&["SET", "noisy", &noisy]));
    let mut list = s(&["RPUSH", "list_big"]);
    list.extend((0..1000).map(|i| {
        if i % 4 == 0 {
            i.to_string()
        } else {
            format!("item-{i}-{}", "x".repeat(i % 50))
        }
    }));
    run(con, list);
    run(
        con,
        s(&["RPUSH", "list_small", "a", "-1", "b", "70000", ""]),
    );
    run(con, s(&["SADD", "set_int", "1", "-2", "300", "4000000000"]));
    run(con, s(&["SADD", "set_str", "apple", "pear", "7"]));
    let mut set = s(&["SADD", "set_big"]);
    set.extend((0..600).map(|i| format!("member:{i}")));
    run(con, set);
    run(
        con,
        s(&[
            "ZADD",
            "zset_small",
            "1",
            "a",
            "2.5",
            "b",
            "-inf",
            "c",
            "1e10",
            "d",
        ]),
    );
    let mut zset = s(&["ZADD", "zset_big"]);
    for i in 0..200 {
        // Quarters print the same in every Redis version.
        zset.push(format!("{}", i as f64 / 4.0));
        zset.push(format!("m{i}"));
    }
    run(con, zset);
    run(con, s(&["HSET", "hash_small", "f1", "v1", "n", "42"]));
    run(
        con,
        s(&["HSET", "hash_wide", "f", &"v".repeat(100), "g", "short"]),
    );
    let mut hash = s(&["HSET", "hash_big"]);
    for i in 0..300 {
        hash.push(format!("field{i}"));
        hash.push(format!("value{i}"));
    }
    run(con, hash);
    // A stream with deletions, two groups, pending entries of two
    // consumers, an idle consumer, and enough entries for several nodes.
    for i in 1..=250 {
        let fields = if i % 50 == 0 {
            s(&["other", "layout"])
        } else {
            vec!["f".into(), format!("v{i}"), "n".into(), i.to_string()]
        };
        let mut args = vec![
            "XADD".to_string(),
            "stream".into(),
            format!("{}-{}", 1000 + i / 3, i % 3),
        ];
        args.extend(fields);
        run(con, args);
    }
    run(con, s(&["XDEL", "stream", "1001-0", "1010-1"]));
    run(con, s(&["XGROUP", "CREATE", "stream", "g1", "0"]));
    run(
        con,
        s(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "stream",
            ">",
        ]),
    );
    run(
        con,
        s(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "stream",
            ">",
        ]),
    );
    run(con, s(&["XACK", "stream", "g1", "1000-2"]));
    run(con, s(&["XGROUP", "CREATE", "stream", "g2", "$"]));
    run(
        con,
        s(&["XGROUP", "CREATECONSUMER", "stream", "g2", "idle"]),
    );
    run(con, s(&["XADD", "stream_empty", "5-5", "a", "b"]));
    run(con, s(&["XDEL", "stream_empty", "5-5"]));
}

const KEYS: &[&str] = &[
    "str",
    "int",
    "neg",
    "long",
    "noisy",
    "list_big",
    "list_small",
    "set_int",
    "set_str",
    "set_big",
    "zset_small",
    "zset_big",
    "hash_small",
    "hash_wide",
    "hash_big",
    "stream",
    "stream_empty",
];

/// Picks `fields` out of a flat name/value reply (XINFO's shape).
fn pick(reply: &redis::Value, fields: &[&str]) -> String {
    let redis::Value::Array(items) = reply else {
        return render(reply);
    };
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let name = render(&pair[0]);
        if fields.iter().any(|f| name == format!("{f:?}")) {
            out.push(format!("{name}={}", render(&pair[1])));
        }
    }
    out.join(" ")
}

/// The value at `key` as text independent of element order where the
/// type has none, and of times that differ between servers.
fn read_back(con: &mut redis::Connection, key: &str) -> String {
    let kind = render(&query(con, &["TYPE", key]));
    let sorted = |v: redis::Value| {
        let mut items: Vec<String> = match v {
            redis::Value::Array(items) => items.iter().map(render).collect(),
            other => vec![render(&other)],
        };
        items.sort();
        items.join(",")
    };
    let body = match kind.as_str() {
        "+string" => render(&query(con, &["GET", key])),
        "+list" => render(&query(con, &["LRANGE", key, "0", "-1"])),
        "+set" => sorted(query(con, &["SMEMBERS", key])),
        "+zset" => render(&query(con, &["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        "+hash" => {
            let redis::Value::Array(items) = query(con, &["HGETALL", key]) else {
                panic!()
            };
            let mut pairs: Vec<String> = items
                .chunks(2)
                .map(|p| format!("{}={}", render(&p[0]), render(&p[1])))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        "+stream" => {
            let mut out = vec![
                render(&query(con, &["XRANGE", key, "-", "+"])),
                pick(
                    &query(con, &["XINFO", "STREAM", key]),
                    &[
                        "length",
                        "last-generated-id",
                        "max-deleted-entry-id",
                        "entries-added",
                        "first-entry",
                        "last-entry",
                    ],
                ),
            ];
            let redis::Value::Array(groups) = query(con, &["XINFO", "GROUPS", key]) else {
                panic!()
            };
            for g in &groups {
                out.push(pick(
                    g,
                    &[
                        "name",
                        "consumers",
                        "pending",
                        "last-delivered-id",
                        "entries-read",
                        "lag",
                    ],
                ));
                let name = pick(g, &["name"]);
                let name = name
                    .trim_start_matches("\"name\"=\"")
                    .trim_end_matches('"')
                    .to_string();
                let redis::Value::Array(consumers) =
                    query(con, &["XINFO", "CONSUMERS", key, &name])
                else {
                    panic!()
                };
                for c in &consumers {
                    out.push(pick(c, &["name", "pending"]));
                }
                let redis::Value::Array(pending) =
                    query(con, &["XPENDING", key, &name, "-", "+", "1000"])
                else {
                    panic!()
                };
                for p in &pending {
                    // id, consumer, idle (differs), delivery count.
                    let redis::Value::Array(f) = p else { panic!() };
                    out.push(format!(
                        "{} {} {}",
                        render(&f[0]),
                        render(&f[1]),
                        render(&f[3])
                    ));
                }
            }
            out.join("\n")
        }
        other => other.to_string(),
    };
    format!("{kind} {body}")
}

fn servers() -> Option<(String, common::RedisServer)> {
    let target = shared_target();
    if !target.is_rampart() {
        return None;
    }
    let Some(redis) = start_redis_server() else {
        eprintln!("redis-server is not installed: nothing to compare with (./dev.sh installs it)");
        return None;
    };
    Some((target.addr.clone(), redis))
}

#[test]
fn values_move_both_ways_between_redis_and_rampart() {
    let Some((ours_addr, redis)) = servers() else {
        return;
    };
    let mut ours = connect(&ours_addr, None);
    let mut theirs = connect(&redis.addr, None);

    // Redis -> Rampart.
    populate(&mut theirs);
    let _ = query(&mut ours, &["FLUSHALL"]);
    for key in KEYS {
        let payload = dump(&mut theirs, key);
        assert_eq!(
            restore(&mut ours, key, "0", &payload, &[]),
            "+OK",
            "RESTORE {key} on Rampart"
        );
        assert_eq!(
            read_back(&mut ours, key),
            read_back(&mut theirs, key),
            "{key}: Redis -> Rampart"
        );
    }

    // Rampart -> Redis.
    populate(&mut ours);
    let _ = query(&mut theirs, &["FLUSHALL"]);
    for key in KEYS {
        let payload = dump(&mut ours, key);
        assert_eq!(
            restore(&mut theirs, key, "0", &payload, &[]),
            "+OK",
            "RESTORE {key} on Redis"
        );
        assert_eq!(
            read_back(&mut theirs, key),
            read_back(&mut ours, key),
            "{key}: Rampart -> Redis"
        );
    }
    // Redis still serves and extends what it restored.
    assert_eq!(
        render(&query(&mut theirs, &["RPUSH", "list_big", "tail"])),
        ":1001"
    );
    assert_eq!(render(&query(&mut theirs, &["SADD", "set_int", "5"])), ":1");
    let added = render(&query(&mut theirs, &["XADD", "stream", "*", "k", "v"]));
    assert!(added.starts_with('"'), "{added}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// With a valid checksum for whatever `body` is.
fn seal(body: &[u8], version: u16) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    let crc = rampart_proto::rdb::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn option_script(con: &mut redis::Connection) -> Vec<String> {
    let _ = query(con, &["FLUSHALL"]);
    query(con, &["SET", "src", "hello"]);
    let p = dump(con, "src");
    let body = &p[..p.len() - 10];
    let now = now_ms();
    let future = (now + 20_200).to_string();
    let past = (now - 1_000).to_string();
    let mut flipped = p.clone();
    *flipped.last_mut().unwrap() ^= 0xff;
    let mut out = Vec::new();
    let mut step = |label: &str, reply: String| out.push(format!("{label} -> {reply}"));
    step("plain", restore(con, "k", "0", &p, &[]));
    step("busy", restore(con, "k", "0", &p, &[]));
    step("busy before bad ttl", restore(con, "k", "-5", &p, &[]));
    step("replace", restore(con, "k", "0", &p, &["REPLACE"]));
    step(
        "replace lowercase",
        restore(con, "k", "0", &p, &["replace"]),
    );
    step("negative ttl", restore(con, "n", "-1", &p, &[]));
    step("ttl not integer", restore(con, "n", "soon", &p, &[]));
    step(
        "idletime negative",
        restore(con, "n", "0", &p, &["IDLETIME", "-1"]),
    );
    step(
        "idletime not integer",
        restore(con, "n", "0", &p, &["IDLETIME", "x"]),
    );
    step(
        "idletime missing value",
        restore(con, "n", "0", &p, &["IDLETIME"]),
    );
    step("freq too big", restore(con, "n", "0", &p, &["FREQ", "256"]));
    step("freq negative", restore(con, "n", "0", &p, &["FREQ", "-1"]));
    step(
        "idletime and freq",
        restore(con, "n", "0", &p, &["IDLETIME", "1", "FREQ", "1"]),
    );
    step(
        "freq and idletime",
        restore(con, "n", "0", &p, &["FREQ", "1", "IDLETIME", "1"]),
    );
    step("unknown option", restore(con, "n", "0", &p, &["FOO"]));
    step(
        "idletime ok",
        restore(con, "i", "0", &p, &["IDLETIME", "100"]),
    );
    step("freq ok", restore(con, "f", "0", &p, &["FREQ", "255"]));
    step("get i", render(&query(con, &["GET", "i"])));
    step("relative ttl", restore(con, "t", "30200", &p, &[]));
    step("ttl t", render(&query(con, &["TTL", "t"])));
    step("absttl", restore(con, "a", &future, &p, &["ABSTTL"]));
    step("ttl a", render(&query(con, &["TTL", "a"])));
    step("absttl past", restore(con, "gone", &past, &p, &["ABSTTL"]));
    step("exists gone", render(&query(con, &["EXISTS", "gone"])));
    step(
        "absttl past replace",
        restore(con, "k", &past, &p, &["ABSTTL", "REPLACE"]),
    );
    step("exists k", render(&query(con, &["EXISTS", "k"])));
    step("bad checksum", restore(con, "c", "0", &flipped, &[]));
    step("too short", restore(con, "c", "0", b"abc", &[]));
    step("version 12", restore(con, "c", "0", &seal(body, 12), &[]));
    step(
        "unknown type",
        restore(con, "c", "0", &seal(&[99, 1, b'x'], 10), &[]),
    );
    // Longer than what is left even counting the footer, which Redis
    // would read into.
    step(
        "truncated string",
        restore(con, "c", "0", &seal(&[0, 20, b'a', b'b'], 10), &[]),
    );
    step(
        "empty list",
        restore(con, "c", "0", &seal(&[1, 0], 10), &[]),
    );
    step("exists c", render(&query(con, &["EXISTS", "c"])));
    step("dump missing", render(&query(con, &["DUMP", "nothing"])));
    step("restore arity", render(&query(con, &["RESTORE", "k", "0"])));
    step("dump arity", render(&query(con, &["DUMP"])));
    out
}

#[test]
fn restore_options_and_errors_answer_as_redis() {
    let Some((ours_addr, redis)) = servers() else {
        return;
    };
    for protocol in [None, Some("protocol=resp3")] {
        let ours = option_script(&mut connect(&ours_addr, protocol));
        let theirs = option_script(&mut connect(&redis.addr, protocol));
        let differ: Vec<String> = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("ours:   {a}\ntheirs: {b}"))
            .collect();
        assert!(differ.is_empty(), "{protocol:?}:\n{}", differ.join("\n"));
        assert!(ours.contains(&"busy -> -BUSYKEY Target key name already exists.".to_string()));
        assert!(ours.contains(&"ttl t -> :30".to_string()), "{ours:?}");
    }
}
