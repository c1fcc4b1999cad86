//! CONFIG GET / SET / RESETSTAT / REWRITE (issue 18, docs/config.md) end to
//! end: replies and error texts compared byte for byte with a real
//! redis-server; cluster parameters set through one proxy seen through
//! another and by OBJECT ENCODING, and kept across a restart of every node;
//! proxy parameters written to the proxy's config file and read back from
//! it; `timeout` closing idle clients.
//!
//! Timing is only used as generous liveness bounds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{start_redis_server, wait_for, Cluster, ClusterOptions, RawConn};

fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn raw(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

fn expect(conn: &mut RawConn, args: &[&str], expected: &str) {
    assert_eq!(s(&conn.cmd(args)), expected, "reply to {args:?}");
}

/// A RESP2 flat array of bulk strings as name → value.
fn pairs(reply: &[u8]) -> BTreeMap<String, String> {
    let text = s(reply);
    let mut lines = text.split("\r\n");
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with('*'), "not an array: {text:?}");
    let items: Vec<&str> = lines
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| c[1])
        .collect();
    items
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect()
}

fn config_get(conn: &mut RawConn, pattern: &str) -> BTreeMap<String, String> {
    pairs(&conn.cmd(&["CONFIG", "GET", pattern]))
}

/// Parameters Redis 7.2 has and Debian's redis-server 7.0 does not.
const NEW_IN_7_2: &[&str] = &["set-max-listpack-entries", "set-max-listpack-value"];
/// Parameters whose default differs on purpose (docs/config.md).
const OWN_DEFAULT: &[&str] = &["proto-max-bulk-len", "databases"];

#[test]
fn get_and_set_answer_as_a_real_redis_server() {
    let Some(redis) = start_redis_server() else {
        eprintln!("[config] redis-server is not installed: nothing to compare with");
        return;
    };
    let cluster = Cluster::start();
    let mut ours = raw(cluster.proxy_addr());
    let mut theirs = raw(&redis.addr);

    // GET: the parameters by glob, name and alias, every default.
    for pattern in [
        "maxmemory*",
        "*-max-listpack-*",
        "*-max-ziplist-*",
        "*-max-intset-*",
        "stream-node-max-*",
        "notify-keyspace-events",
        "lua-time-limit",
        "busy-reply-threshold",
        "timeout",
        "TIMEOUT",
        "Hash-Max-Ziplist-Entries",
        "proto-max-bulk-len",
        "databases",
        "slowlog-*",
        "latency-*",
        "appendonly",
        "save",
        "nosuch",
        "nosuch*",
    ] {
        let got = config_get(&mut ours, pattern);
        let want = config_get(&mut theirs, pattern);
        for (name, value) in &got {
            if NEW_IN_7_2.contains(&name.as_str()) {
                continue;
            }
            let Some(theirs) = want.get(name) else {
                panic!("{pattern}: Rampart shows {name}, redis-server does not");
            };
            if !OWN_DEFAULT.contains(&name.as_str()) {
                assert_eq!(value, theirs, "default of {name}");
            }
        }
        for name in want.keys() {
            assert!(got.contains_key(name), "{pattern}: {name} missing");
        }
    }
    // Several patterns, each name once.
    let several = ["CONFIG", "GET", "timeout", "TIMEOUT", "hash-max-*-entries"];
    assert_eq!(pairs(&ours.cmd(&several)), pairs(&theirs.cmd(&several)));

    // SET: Redis's error texts, and nothing changes when anything fails.
    for command in [
        &["CONFIG", "SET", "foo", "bar"][..],
        &["CONFIG", "SET", "timeout", "5", "timeout", "6"],
        &["CONFIG", "SET", "timeout", "x", "TIMEOUT", "1"],
        &["CONFIG", "SET", "timeout", "abc"],
        &["CONFIG", "SET", "timeout", "-1"],
        &["CONFIG", "SET", "databases", "3"],
        &["CONFIG", "SET", "databases", "3", "foo", "bar"],
        &["CONFIG", "SET", "timeout", "x", "foo", "bar"],
        &["CONFIG", "SET", "timeout", "1", "maxmemory"],
        &["CONFIG", "SET", "timeout"],
        &["CONFIG", "GET"],
        &["CONFIG"],
        &["CONFIG", "FOO"],
        &["CONFIG", "RESETSTAT", "x"],
        &["CONFIG", "SET", "maxmemory", "10xb"],
        &["CONFIG", "SET", "maxmemory", "1.5mb"],
        &["CONFIG", "SET", "appendonly", "maybe"],
        &["CONFIG", "SET", "maxmemory-policy", "foo"],
        &["CONFIG", "SET", "notify-keyspace-events", "Z"],
        &["CONFIG", "SET", "hash-max-listpack-entries", "-1"],
        &["CONFIG", "SET", "save", "10 x"],
        &["CONFIG", "SET", "latency-tracking-info-percentiles", "101"],
        &["CONFIG", "SET", "maxmemory-clients", "101%"],
        // A proxy parameter and a cluster one: neither applies.
        &["CONFIG", "SET", "timeout", "5", "maxmemory", "10xb"],
        &["CONFIG", "SET", "maxmemory", "1mb", "timeout", "-1"],
        &["CONFIG", "RESETSTAT"],
        &["CONFIG", "REWRITE"],
        &["CONFIG", "HELP"],
    ] {
        let want = s(&theirs.cmd(command));
        assert_eq!(s(&ours.cmd(command)), want, "reply to {command:?}");
    }
    for name in ["timeout", "maxmemory"] {
        assert_eq!(config_get(&mut ours, name), config_get(&mut theirs, name));
    }
    assert_eq!(
        config_get(&mut ours, "maxmemory")["maxmemory"],
        "0",
        "a refused CONFIG SET changed nothing"
    );

    // Accepted values are shown as Redis shows them.
    let set = [
        "CONFIG",
        "SET",
        "maxmemory",
        "1mb",
        "notify-keyspace-events",
        "KEA",
        "maxmemory-policy",
        "ALLKEYS-LRU",
        "save",
        "10 1 20 2",
        "latency-tracking-info-percentiles",
        "99.90 50",
        "hash-max-ziplist-entries",
        "64",
        // (not appendonly: redis-server would write an AOF into the
        // working directory)
        "maxmemory-clients",
        "10%",
        "timeout",
        "30",
    ];
    assert_eq!(s(&ours.cmd(&set)), "+OK\r\n");
    assert_eq!(s(&theirs.cmd(&set)), "+OK\r\n");
    for pattern in [
        "maxmemory*",
        "notify-keyspace-events",
        "save",
        "latency-tracking-info-percentiles",
        "hash-max-*",
        "appendonly",
        "timeout",
    ] {
        let command = ["CONFIG", "GET", pattern];
        assert_eq!(
            s(&ours.cmd(&command)).len(),
            s(&theirs.cmd(&command)).len(),
            "{pattern}"
        );
        assert_eq!(
            config_get(&mut ours, pattern),
            config_get(&mut theirs, pattern)
        );
    }

    // RESP3: a map.
    for conn in [&mut ours, &mut theirs] {
        conn.cmd(&["HELLO", "3"]);
    }
    let command = ["CONFIG", "GET", "timeout"];
    let want = s(&theirs.cmd(&command));
    assert_eq!(want, "%1\r\n$7\r\ntimeout\r\n$2\r\n30\r\n");
    assert_eq!(s(&ours.cmd(&command)), want);
}

#[test]
fn cluster_parameters_apply_on_every_proxy_and_survive_a_restart() {
    let cluster = Cluster::start();
    let a = cluster.proxy_addr().to_string();
    let b = cluster.start_proxy(&[1, 2, 3], None);
    let mut on_a = raw(&a);
    let mut on_b = raw(&b);
    expect(
        &mut on_b,
        &["HSET", "cfg:h", "f1", "v", "f2", "v", "f3", "v"],
        ":3\r\n",
    );
    expect(&mut on_b, &["SADD", "cfg:s", "1", "2", "3"], ":3\r\n");
    expect(&mut on_b, &["RPUSH", "cfg:l", "a", "b", "c"], ":3\r\n");
    let encoding = |conn: &mut RawConn, key: &str| s(&conn.cmd(&["OBJECT", "ENCODING", key]));
    assert_eq!(encoding(&mut on_b, "cfg:h"), "$8\r\nlistpack\r\n");
    assert_eq!(encoding(&mut on_b, "cfg:s"), "$6\r\nintset\r\n");
    assert_eq!(encoding(&mut on_b, "cfg:l"), "$8\r\nlistpack\r\n");

    // Cluster parameters (two of them under their old names) and a proxy
    // parameter, in one SET on proxy A.
    expect(
        &mut on_a,
        &[
            "CONFIG",
            "SET",
            "hash-max-ziplist-entries",
            "2",
            "set-max-intset-entries",
            "2",
            "list-max-ziplist-size",
            "2",
            "maxmemory",
            "64mb",
            "slowlog-max-len",
            "7",
        ],
        "+OK\r\n",
    );
    wait_for(
        "proxy B to show the cluster parameters set on proxy A",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let got = config_get(&mut on_b, "*-max-*");
            let want = [
                ("hash-max-listpack-entries", "2"),
                ("hash-max-ziplist-entries", "2"),
                ("set-max-intset-entries", "2"),
                ("list-max-listpack-size", "2"),
            ];
            match want
                .iter()
                .all(|(k, v)| got.get(*k).map(String::as_str) == Some(v))
            {
                true => Ok(()),
                false => Err(format!("{got:?}")),
            }
        },
    );
    assert_eq!(config_get(&mut on_b, "maxmemory")["maxmemory"], "67108864");
    // OBJECT ENCODING follows them, through either proxy.
    for conn in [&mut on_a, &mut on_b] {
        assert_eq!(encoding(conn, "cfg:h"), "$9\r\nhashtable\r\n");
        // Past the intset limit, within the listpack one.
        assert_eq!(encoding(conn, "cfg:s"), "$8\r\nlistpack\r\n");
        assert_eq!(encoding(conn, "cfg:l"), "$9\r\nquicklist\r\n");
    }
    // A proxy parameter belongs to the proxy it was set on.
    assert_eq!(
        config_get(&mut on_a, "slowlog-max-len")["slowlog-max-len"],
        "7"
    );
    assert_eq!(
        config_get(&mut on_b, "slowlog-max-len")["slowlog-max-len"],
        "128"
    );

    // Every node restarts from its disk.
    for id in 1..=3 {
        cluster.kill_node(id);
    }
    for id in 1..=3 {
        cluster.restart_node(id);
    }
    cluster.wait_for_leader(common::STARTUP_TIMEOUT);
    let mut after = wait_for(
        "proxy B to reach the restarted cluster",
        common::STARTUP_TIMEOUT,
        Duration::from_millis(200),
        || {
            let mut conn = raw(&b);
            match encoding(&mut conn, "cfg:h").as_str() {
                "$9\r\nhashtable\r\n" => Ok(conn),
                other => Err(other.to_string()),
            }
        },
    );
    let got = config_get(&mut after, "hash-max-listpack-entries");
    assert_eq!(got["hash-max-listpack-entries"], "2");
    assert_eq!(encoding(&mut after, "cfg:l"), "$9\r\nquicklist\r\n");

    // Back to the defaults: the encodings follow again.
    expect(
        &mut after,
        &[
            "CONFIG",
            "SET",
            "hash-max-listpack-entries",
            "512",
            "set-max-intset-entries",
            "512",
            "list-max-listpack-size",
            "-2",
        ],
        "+OK\r\n",
    );
    assert_eq!(encoding(&mut after, "cfg:h"), "$8\r\nlistpack\r\n");
    assert_eq!(encoding(&mut after, "cfg:s"), "$6\r\nintset\r\n");
    assert_eq!(encoding(&mut after, "cfg:l"), "$8\r\nlistpack\r\n");
}

#[test]
fn rewrite_saves_proxy_parameters_and_timeout_closes_idle_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        "# kept by CONFIG REWRITE\ndrain_timeout_ms = 10000\n",
    )
    .expect("write config file");
    let cluster = Cluster::start_with(ClusterOptions {
        proxy_args: vec!["--config".into(), file.display().to_string()],
        ..ClusterOptions::default()
    });
    let addr = cluster.proxy_addr().to_string();
    let mut idle = raw(&addr);
    expect(&mut idle, &["PING"], "+PONG\r\n");
    let mut subscriber = raw(&addr);
    expect(
        &mut subscriber,
        &["SUBSCRIBE", "cfg:ch"],
        "*3\r\n$9\r\nsubscribe\r\n$6\r\ncfg:ch\r\n:1\r\n",
    );

    let mut admin = raw(&addr);
    expect(
        &mut admin,
        &[
            "CONFIG",
            "SET",
            "timeout",
            "1",
            "slowlog-max-len",
            "64",
            "maxmemory",
            "2mb",
        ],
        "+OK\r\n",
    );
    expect(&mut admin, &["CONFIG", "REWRITE"], "+OK\r\n");
    let text = std::fs::read_to_string(&file).expect("read config file");
    assert!(
        text.starts_with("# kept by CONFIG REWRITE\ndrain_timeout_ms = 10000\n"),
        "{text}"
    );
    assert!(text.contains("[redis]\n"), "{text}");
    assert!(text.contains("timeout = \"1\"\n"), "{text}");
    assert!(text.contains("slowlog-max-len = \"64\"\n"), "{text}");
    assert!(
        !text.contains("maxmemory"),
        "cluster parameters stay in the cluster: {text}"
    );

    // The idle client is closed; the subscriber is not.
    idle.read_to_eof(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("idle client not closed: {e}"));
    expect(&mut subscriber, &["PING"], "*2\r\n$4\r\npong\r\n$0\r\n\r\n");

    // A proxy started with the file has the saved values.
    let second = cluster.start_proxy(&[1, 2, 3], None);
    let mut on_second = raw(&second);
    let got = config_get(&mut on_second, "slowlog-max-len");
    assert_eq!(got["slowlog-max-len"], "64");
    expect(
        &mut on_second,
        &["CONFIG", "SET", "timeout", "0"],
        "+OK\r\n",
    );

    // Back to the default: the line goes, the rest stays.
    let mut admin = raw(&addr);
    expect(&mut admin, &["CONFIG", "SET", "timeout", "0"], "+OK\r\n");
    expect(&mut admin, &["CONFIG", "REWRITE"], "+OK\r\n");
    let text = std::fs::read_to_string(&file).expect("read config file");
    assert!(!text.contains("\ntimeout"), "{text}");
    assert!(text.contains("slowlog-max-len = \"64\"\n"), "{text}");
    assert!(text.starts_with("# kept by CONFIG REWRITE\n"), "{text}");
}
