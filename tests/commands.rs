//! Every issue-2 command through a real proxy in front of a real 3-node
//! cluster, with exact replies and Redis 7.2 error texts.
//!
//! All tests share one cluster (started on first use). Tests that look at the
//! whole keyspace (DBSIZE, FLUSHDB, KEYS, SCAN, RANDOMKEY, active expiry)
//! take [`keyspace_exclusive`]; the others take [`keyspace_shared`] and use
//! key names prefixed with their own test name, so they never collide.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT cargo test --test commands` runs
//! the same expectations against a real Redis.

mod common;

use common::{ask, check, connect, int, query, render, shared_target, text, RawConn};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static KEYSPACE: RwLock<()> = RwLock::new(());

fn keyspace_shared() -> RwLockReadGuard<'static, ()> {
    KEYSPACE.read().unwrap_or_else(|p| p.into_inner())
}

fn keyspace_exclusive() -> RwLockWriteGuard<'static, ()> {
    KEYSPACE.write().unwrap_or_else(|p| p.into_inner())
}

fn con() -> redis::Connection {
    shared_target().connection()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[track_caller]
fn assert_in(v: i64, lo: i64, hi: i64, what: &str) {
    assert!(lo <= v && v <= hi, "{what}: {v} not in [{lo}, {hi}]");
}

// ---------------------------------------------------------------------------
// Connection commands.

#[test]
fn ping_echo_select_and_arity() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["PING"], "+PONG");
    check(&mut c, &["PING", "hello"], "\"hello\"");
    check(
        &mut c,
        &["PING", "a", "b"],
        "-ERR wrong number of arguments for 'ping' command",
    );
    check(&mut c, &["ECHO", "hi there"], "\"hi there\"");
    check(
        &mut c,
        &["ECHO"],
        "-ERR wrong number of arguments for 'echo' command",
    );
    check(&mut c, &["SELECT", "0"], "+OK");
    check(
        &mut c,
        &["SELECT", "abc"],
        "-ERR value is not an integer or out of range",
    );
    if shared_target().is_rampart() {
        // Rampart has a single database: any other index is an error.
        let r = ask(&mut c, &["SELECT", "1"]);
        assert!(r.starts_with("-ERR"), "SELECT 1 must be an error, got {r}");
        // ... and the connection still works on db 0 afterwards.
        check(&mut c, &["PING"], "+PONG");
    }
    // Wrong arity, both too few and too many.
    check(
        &mut c,
        &["GET"],
        "-ERR wrong number of arguments for 'get' command",
    );
    check(
        &mut c,
        &["GET", "a", "b"],
        "-ERR wrong number of arguments for 'get' command",
    );
    check(
        &mut c,
        &["set", "onlykey"],
        "-ERR wrong number of arguments for 'set' command",
    );
}

#[test]
fn unknown_command_text() {
    let _g = keyspace_shared();
    let mut c = con();
    check(
        &mut c,
        &["foo", "a"],
        "-ERR unknown command 'foo', with args beginning with: 'a' ",
    );
    check(
        &mut c,
        &["NOSUCHCMD", "x", "y"],
        "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' 'y' ",
    );
    check(
        &mut c,
        &["foo"],
        "-ERR unknown command 'foo', with args beginning with: ",
    );
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn client_subcommands() {
    let _g = keyspace_shared();
    let mut c = con();
    let id = int(&mut c, &["CLIENT", "ID"]);
    assert!(id > 0, "CLIENT ID must be positive, got {id}");
    assert_eq!(int(&mut c, &["CLIENT", "ID"]), id, "CLIENT ID is stable");
    let mut other = con();
    assert_ne!(
        int(&mut other, &["CLIENT", "ID"]),
        id,
        "two connections have different ids"
    );

    check(&mut c, &["CLIENT", "SETNAME", "itest-conn"], "+OK");
    check(&mut c, &["CLIENT", "GETNAME"], "\"itest-conn\"");
    check(
        &mut c,
        &["CLIENT", "SETNAME", "has space"],
        "-ERR Client names cannot contain spaces, newlines or special characters.",
    );
    check(&mut c, &["CLIENT", "GETNAME"], "\"itest-conn\"");

    let info = text(&mut c, &["CLIENT", "INFO"]);
    assert!(
        info.starts_with(&format!("id={id} ")),
        "CLIENT INFO starts with id={id}: {info:?}"
    );
    for field in [" addr=", " name=itest-conn ", " resp=2"] {
        assert!(
            info.contains(field),
            "CLIENT INFO lacks {field:?}: {info:?}"
        );
    }
    assert!(info.ends_with('\n'), "CLIENT INFO ends with a newline");

    let list = text(&mut c, &["CLIENT", "LIST"]);
    let mine = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .unwrap_or_else(|| panic!("CLIENT LIST lacks id={id}: {list:?}"));
    assert!(mine.contains(" name=itest-conn "), "{mine:?}");
    assert!(
        list.lines().count() >= 2,
        "both connections listed: {list:?}"
    );

    check(&mut c, &["CLIENT", "SETNAME", ""], "+OK");
    check(&mut c, &["CLIENT", "GETNAME"], "nil");
    check(
        &mut c,
        &["CLIENT", "NOSUCH"],
        "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.",
    );
    check(
        &mut c,
        &["CLIENT"],
        "-ERR wrong number of arguments for 'client' command",
    );
}

/// HELLO 2 replies with a flat array of field/value pairs.
fn hello_fields(v: &redis::Value) -> Vec<(String, String)> {
    let pairs: Vec<(redis::Value, redis::Value)> = match v {
        redis::Value::Array(items) => {
            assert!(items.len() % 2 == 0, "odd HELLO array: {}", render(v));
            items
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect()
        }
        redis::Value::Map(pairs) => pairs.clone(),
        other => panic!("HELLO reply is not an array/map: {}", render(other)),
    };
    pairs
        .iter()
        .map(|(k, v)| {
            let k = match k {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                redis::Value::SimpleString(s) => s.clone(),
                other => panic!("HELLO field name {}", render(other)),
            };
            (k, render(v))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("HELLO reply lacks {name:?}: {fields:?}"))
}

#[test]
fn hello_2_and_errors() {
    let _g = keyspace_shared();
    let mut c = con();
    let id = int(&mut c, &["CLIENT", "ID"]);
    let fields = hello_fields(&query(&mut c, &["HELLO", "2"]));
    assert_eq!(field(&fields, "server"), "\"redis\"");
    assert!(field(&fields, "version").starts_with("\"7."), "{fields:?}");
    assert_eq!(field(&fields, "proto"), ":2");
    assert_eq!(field(&fields, "id"), format!(":{id}"));
    assert_eq!(field(&fields, "role"), "\"master\"");
    field(&fields, "mode");
    field(&fields, "modules");

    let fields = hello_fields(&query(&mut c, &["HELLO", "2", "SETNAME", "via-hello"]));
    assert_eq!(field(&fields, "proto"), ":2");
    check(&mut c, &["CLIENT", "GETNAME"], "\"via-hello\"");

    // Without requirepass, the default user accepts any password.
    let fields = hello_fields(&query(
        &mut c,
        &["HELLO", "2", "AUTH", "default", "whatever"],
    ));
    assert_eq!(field(&fields, "proto"), ":2");

    check(
        &mut c,
        &["HELLO", "4"],
        "-NOPROTO unsupported protocol version",
    );
    check(
        &mut c,
        &["HELLO", "abc"],
        "-ERR Protocol version is not an integer or out of range",
    );
    check(
        &mut c,
        &["AUTH", "pw"],
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
    );
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn requirepass_proxy() {
    let _g = keyspace_shared();
    let target = shared_target();
    let Some(cluster) = target.cluster.as_ref() else {
        eprintln!("skipped: needs a Rampart cluster");
        return;
    };
    let addr = cluster.start_proxy(&[1, 2, 3], Some("s3cret"));

    let mut raw = RawConn::connect(&addr).expect("connect to the requirepass proxy");
    assert_eq!(raw.cmd(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    assert_eq!(
        raw.cmd(&["GET", "requirepass:k"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw.cmd(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        raw.cmd(&["AUTH", "default", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let hello = raw.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with(b"-NOAUTH"), "{hello:?}");
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(raw.cmd(&["AUTH", "default", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["SET", "requirepass:k", "v"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["GET", "requirepass:k"]), b"$1\r\nv\r\n");

    // HELLO with AUTH and SETNAME on a fresh connection.
    let mut raw2 = RawConn::connect(&addr).expect("connect");
    let bad = raw2.cmd(&["HELLO", "3", "AUTH", "default", "nope"]);
    assert_eq!(
        bad,
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let ok = raw2.cmd(&["HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "pwd"]);
    assert!(ok.starts_with(b"*"), "HELLO 2 reply: {ok:?}");
    assert_eq!(raw2.cmd(&["CLIENT", "GETNAME"]), b"$3\r\npwd\r\n");

    // The redis crate with the password in the URL.
    let mut c = connect(&addr, None);
    let client = common::redis_client(&format!(":s3cret@{addr}"), None);
    let mut authed = client
        .get_connection_with_timeout(Duration::from_secs(15))
        .expect("redis crate connects with a password");
    check(&mut authed, &["GET", "requirepass:k"], "\"v\"");
    check(
        &mut c,
        &["GET", "requirepass:k"],
        "-NOAUTH Authentication required.",
    );
}

#[test]
fn info_sections() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["SET", "info:k", "v"], "+OK");
    let all = text(&mut c, &["INFO"]);
    let parsed = common::parse_info(&all);
    for section in ["server", "clients", "replication", "keyspace"] {
        assert!(
            parsed.contains_key(section),
            "INFO lacks section {section}: {all}"
        );
    }
    assert!(parsed["server"]
        .get("redis_version")
        .is_some_and(|v| v.starts_with("7.")));
    let clients: i64 = parsed["clients"]
        .get("connected_clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("connected_clients missing: {all}"));
    assert!(clients >= 1);
    assert_eq!(
        parsed["replication"].get("role").map(String::as_str),
        Some("master")
    );
    let db0 = parsed["keyspace"]
        .get("db0")
        .unwrap_or_else(|| panic!("keyspace section lacks db0: {all}"));
    assert!(db0.starts_with("keys="), "db0 line: {db0}");

    let server = common::parse_info(&text(&mut c, &["INFO", "server"]));
    assert!(server.contains_key("server"));
    assert!(
        !server.contains_key("clients"),
        "INFO server only: {server:?}"
    );
    let ks = common::parse_info(&text(&mut c, &["INFO", "keyspace"]));
    assert!(ks.contains_key("keyspace") && !ks.contains_key("server"));
    let two = common::parse_info(&text(&mut c, &["INFO", "clients", "replication"]));
    assert!(two.contains_key("clients") && two.contains_key("replication"));
    assert!(!two.contains_key("server"));
}

#[test]
fn command_count_info_docs() {
    let _g = keyspace_shared();
    let mut c = con();
    let count = int(&mut c, &["COMMAND", "COUNT"]);
    assert!(count >= 50, "COMMAND COUNT {count} too small for issue 2");
    match query(&mut c, &["COMMAND"]) {
        redis::Value::Array(items) => assert_eq!(items.len() as i64, count),
        other => panic!("COMMAND: {}", render(&other)),
    }
    let info = ask(&mut c, &["COMMAND", "INFO", "get", "set", "nosuchcmd"]);
    assert!(
        info.starts_with("[[\"get\", :2, ~[") || info.starts_with("[[\"get\", :2, ["),
        "COMMAND INFO get: {info}"
    );
    // get: first key 1, last key 1, step 1; set: arity -3.
    match query(&mut c, &["COMMAND", "INFO", "get", "set", "nosuchcmd"]) {
        redis::Value::Array(items) => {
            assert_eq!(items.len(), 3);
            let get = match &items[0] {
                redis::Value::Array(g) => g,
                other => panic!("{}", render(other)),
            };
            assert_eq!(render(&get[3]), ":1");
            assert_eq!(render(&get[4]), ":1");
            assert_eq!(render(&get[5]), ":1");
            let set = match &items[1] {
                redis::Value::Array(s) => s,
                other => panic!("{}", render(other)),
            };
            assert_eq!(render(&set[0]), "\"set\"");
            assert_eq!(render(&set[1]), ":-3");
            assert_eq!(render(&items[2]), "nil");
        }
        other => panic!("COMMAND INFO: {}", render(&other)),
    }
    let docs = ask(&mut c, &["COMMAND", "DOCS", "get"]);
    assert!(docs.starts_with("[\"get\", ["), "COMMAND DOCS get: {docs}");
    assert!(docs.contains("\"summary\""), "COMMAND DOCS get: {docs}");
    check(
        &mut c,
        &["COMMAND", "NOSUCH"],
        "-ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP.",
    );
}

#[test]
fn quit_and_reset() {
    let _g = keyspace_shared();
    let mut raw = RawConn::connect(&shared_target().addr).expect("connect");
    assert_eq!(raw.cmd(&["CLIENT", "SETNAME", "before-reset"]), b"+OK\r\n");
    let hello = raw.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "HELLO 3 is a map: {hello:?}");
    assert_eq!(raw.cmd(&["GET", "reset:missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&["RESET"]), b"+RESET\r\n");
    // RESET drops the name and goes back to RESP2.
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert_eq!(raw.cmd(&["GET", "reset:missing"]), b"$-1\r\n");
    assert_eq!(raw.cmd(&["QUIT"]), b"+OK\r\n");
    let rest = raw
        .read_to_eof(Duration::from_secs(10))
        .expect("the server closes the connection after QUIT");
    assert!(rest.is_empty(), "nothing after QUIT's +OK: {rest:?}");
}

#[test]
fn dbsize_flushdb_flushall() {
    let _g = keyspace_exclusive();
    let mut c = con();
    check(&mut c, &["FLUSHDB"], "+OK");
    check(&mut c, &["DBSIZE"], ":0");
    check(&mut c, &["MSET", "f:a", "1", "f:b", "2", "f:c", "3"], "+OK");
    check(&mut c, &["DBSIZE"], ":3");
    check(&mut c, &["FLUSHDB", "SYNC"], "+OK");
    check(&mut c, &["DBSIZE"], ":0");
    check(&mut c, &["GET", "f:a"], "nil");
    check(&mut c, &["SET", "f:a", "1"], "+OK");
    check(&mut c, &["FLUSHALL"], "+OK");
    check(&mut c, &["DBSIZE"], ":0");
    check(&mut c, &["SET", "f:a", "1"], "+OK");
    check(&mut c, &["FLUSHALL", "ASYNC"], "+OK");
    check(&mut c, &["EXISTS", "f:a"], ":0");
    check(&mut c, &["FLUSHDB", "bogus"], "-ERR syntax error");
    check(
        &mut c,
        &["DBSIZE", "x"],
        "-ERR wrong number of arguments for 'dbsize' command",
    );
}

// ---------------------------------------------------------------------------
// Strings.

#[test]
fn set_get_and_options() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["GET", "s:missing"], "nil");
    check(&mut c, &["SET", "s:k", "v"], "+OK");
    check(&mut c, &["GET", "s:k"], "\"v\"");
    check(&mut c, &["SET", "s:k", ""], "+OK");
    check(&mut c, &["GET", "s:k"], "\"\"");
    check(&mut c, &["TTL", "s:k"], ":-1");

    check(&mut c, &["SET", "s:ex", "v", "EX", "100"], "+OK");
    assert_in(int(&mut c, &["TTL", "s:ex"]), 90, 100, "TTL after EX 100");
    check(&mut c, &["SET", "s:px", "v", "PX", "100000"], "+OK");
    assert_in(
        int(&mut c, &["PTTL", "s:px"]),
        90_000,
        100_000,
        "PTTL after PX",
    );
    let at = (now_secs() + 100).to_string();
    check(&mut c, &["SET", "s:exat", "v", "EXAT", &at], "+OK");
    assert_in(int(&mut c, &["TTL", "s:exat"]), 90, 101, "TTL after EXAT");
    let pat = (now_ms() + 100_000).to_string();
    check(&mut c, &["SET", "s:pxat", "v", "PXAT", &pat], "+OK");
    assert_in(
        int(&mut c, &["PTTL", "s:pxat"]),
        90_000,
        101_000,
        "PTTL after PXAT",
    );
    // A time in the past deletes at once.
    check(&mut c, &["SET", "s:past", "v", "PXAT", "1000"], "+OK");
    check(&mut c, &["GET", "s:past"], "nil");

    for (opt, val) in [
        ("EX", "0"),
        ("EX", "-1"),
        ("PX", "0"),
        ("EXAT", "0"),
        ("PXAT", "-5"),
    ] {
        check(
            &mut c,
            &["SET", "s:bad", "v", opt, val],
            "-ERR invalid expire time in 'set' command",
        );
    }
    check(
        &mut c,
        &["SET", "s:bad", "v", "EX", "abc"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["SET", "s:bad", "v", "EX"], "-ERR syntax error");
    check(
        &mut c,
        &["SET", "s:bad", "v", "EX", "10", "PX", "10"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["SET", "s:bad", "v", "NX", "XX"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["SET", "s:bad", "v", "KEEPTTL", "EX", "10"],
        "-ERR syntax error",
    );
    check(&mut c, &["SET", "s:bad", "v", "bogus"], "-ERR syntax error");
    check(&mut c, &["EXISTS", "s:bad"], ":0");

    // NX / XX
    check(&mut c, &["SET", "s:nx", "1", "NX"], "+OK");
    check(&mut c, &["SET", "s:nx", "2", "NX"], "nil");
    check(&mut c, &["GET", "s:nx"], "\"1\"");
    check(&mut c, &["SET", "s:xx", "1", "XX"], "nil");
    check(&mut c, &["EXISTS", "s:xx"], ":0");
    check(&mut c, &["SET", "s:nx", "3", "XX"], "+OK");
    check(&mut c, &["GET", "s:nx"], "\"3\"");

    // KEEPTTL
    check(&mut c, &["SET", "s:keep", "1", "EX", "100"], "+OK");
    check(&mut c, &["SET", "s:keep", "2", "KEEPTTL"], "+OK");
    assert_in(int(&mut c, &["TTL", "s:keep"]), 90, 100, "TTL kept");
    check(&mut c, &["SET", "s:keep", "3"], "+OK");
    check(&mut c, &["TTL", "s:keep"], ":-1");

    // GET
    check(&mut c, &["SET", "s:get", "old"], "+OK");
    check(&mut c, &["SET", "s:get", "new", "GET"], "\"old\"");
    check(&mut c, &["GET", "s:get"], "\"new\"");
    check(&mut c, &["SET", "s:get-missing", "v", "GET"], "nil");
    check(&mut c, &["GET", "s:get-missing"], "\"v\"");
    check(&mut c, &["SET", "s:get", "newer", "NX", "GET"], "\"new\"");
    check(&mut c, &["GET", "s:get"], "\"new\"");
    check(&mut c, &["SET", "s:get-xx", "v", "XX", "GET"], "nil");
    check(&mut c, &["EXISTS", "s:get-xx"], ":0");
    check(
        &mut c,
        &["SET", "s:get", "ttl", "GET", "EX", "100"],
        "\"new\"",
    );
    assert_in(
        int(&mut c, &["TTL", "s:get"]),
        90,
        100,
        "TTL after SET GET EX",
    );

    // Binary-safe values.
    check(&mut c, &["SET", "s:bin", "a\r\nb\0c"], "+OK");
    check(&mut c, &["STRLEN", "s:bin"], ":6");
}

#[test]
fn setnx_setex_psetex_getset_getdel() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["SETNX", "sx:k", "1"], ":1");
    check(&mut c, &["SETNX", "sx:k", "2"], ":0");
    check(&mut c, &["GET", "sx:k"], "\"1\"");

    check(&mut c, &["SETEX", "sx:ex", "100", "v"], "+OK");
    assert_in(int(&mut c, &["TTL", "sx:ex"]), 90, 100, "SETEX TTL");
    check(&mut c, &["GET", "sx:ex"], "\"v\"");
    check(
        &mut c,
        &["SETEX", "sx:ex", "0", "v"],
        "-ERR invalid expire time in 'setex' command",
    );
    check(
        &mut c,
        &["SETEX", "sx:ex", "abc", "v"],
        "-ERR value is not an integer or out of range",
    );
    check(
        &mut c,
        &["SETEX", "sx:ex", "10"],
        "-ERR wrong number of arguments for 'setex' command",
    );
    check(&mut c, &["PSETEX", "sx:px", "100000", "v"], "+OK");
    assert_in(
        int(&mut c, &["PTTL", "sx:px"]),
        90_000,
        100_000,
        "PSETEX PTTL",
    );
    check(
        &mut c,
        &["PSETEX", "sx:px", "-3", "v"],
        "-ERR invalid expire time in 'psetex' command",
    );

    check(&mut c, &["GETSET", "sx:gs", "a"], "nil");
    check(&mut c, &["GETSET", "sx:gs", "b"], "\"a\"");
    check(&mut c, &["GET", "sx:gs"], "\"b\"");
    // GETSET clears the TTL.
    check(&mut c, &["SETEX", "sx:gs", "100", "c"], "+OK");
    check(&mut c, &["GETSET", "sx:gs", "d"], "\"c\"");
    check(&mut c, &["TTL", "sx:gs"], ":-1");

    check(&mut c, &["GETDEL", "sx:gs"], "\"d\"");
    check(&mut c, &["GETDEL", "sx:gs"], "nil");
    check(&mut c, &["EXISTS", "sx:gs"], ":0");
}

#[test]
fn mget_mset_msetnx() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["MSET", "m:a", "1", "m:b", "2"], "+OK");
    check(
        &mut c,
        &["MGET", "m:a", "m:b", "m:missing", "m:a"],
        "[\"1\", \"2\", nil, \"1\"]",
    );
    check(
        &mut c,
        &["MSET", "m:a"],
        "-ERR wrong number of arguments for 'mset' command",
    );
    check(
        &mut c,
        &["MSET", "m:a", "1", "m:b"],
        "-ERR wrong number of arguments for 'mset' command",
    );
    check(
        &mut c,
        &["MGET"],
        "-ERR wrong number of arguments for 'mget' command",
    );
    check(&mut c, &["MSETNX", "m:c", "3", "m:d", "4"], ":1");
    check(&mut c, &["MSETNX", "m:c", "5", "m:e", "6"], ":0");
    check(
        &mut c,
        &["MGET", "m:c", "m:d", "m:e"],
        "[\"3\", \"4\", nil]",
    );
    check(
        &mut c,
        &["MSETNX", "m:c", "3", "m:d"],
        "-ERR wrong number of arguments for 'msetnx' command",
    );
    // MSET overwrites and clears TTLs.
    check(&mut c, &["SETEX", "m:a", "100", "x"], "+OK");
    check(&mut c, &["MSET", "m:a", "y"], "+OK");
    check(&mut c, &["TTL", "m:a"], ":-1");
}

#[test]
fn getex() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["GETEX", "gx:missing"], "nil");
    check(&mut c, &["GETEX", "gx:missing", "EX", "10"], "nil");
    check(&mut c, &["SET", "gx:k", "v"], "+OK");
    check(&mut c, &["GETEX", "gx:k"], "\"v\"");
    check(&mut c, &["TTL", "gx:k"], ":-1");
    check(&mut c, &["GETEX", "gx:k", "EX", "100"], "\"v\"");
    assert_in(int(&mut c, &["TTL", "gx:k"]), 90, 100, "GETEX EX");
    check(&mut c, &["GETEX", "gx:k", "PX", "200000"], "\"v\"");
    assert_in(int(&mut c, &["TTL", "gx:k"]), 190, 200, "GETEX PX");
    let at = (now_secs() + 300).to_string();
    check(&mut c, &["GETEX", "gx:k", "EXAT", &at], "\"v\"");
    assert_in(int(&mut c, &["TTL", "gx:k"]), 290, 301, "GETEX EXAT");
    let pat = (now_ms() + 400_000).to_string();
    check(&mut c, &["GETEX", "gx:k", "PXAT", &pat], "\"v\"");
    assert_in(int(&mut c, &["TTL", "gx:k"]), 390, 401, "GETEX PXAT");
    check(&mut c, &["GETEX", "gx:k", "PERSIST"], "\"v\"");
    check(&mut c, &["TTL", "gx:k"], ":-1");
    check(
        &mut c,
        &["GETEX", "gx:k", "EX", "0"],
        "-ERR invalid expire time in 'getex' command",
    );
    check(
        &mut c,
        &["GETEX", "gx:k", "EX", "10", "PX", "10"],
        "-ERR syntax error",
    );
    check(&mut c, &["GETEX", "gx:k", "bogus"], "-ERR syntax error");
    check(
        &mut c,
        &["GETEX", "gx:k", "EX", "abc"],
        "-ERR value is not an integer or out of range",
    );
}

#[test]
fn append_strlen_getrange_setrange() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["APPEND", "ar:k", "Hello"], ":5");
    check(&mut c, &["APPEND", "ar:k", " World"], ":11");
    check(&mut c, &["GET", "ar:k"], "\"Hello World\"");
    check(&mut c, &["STRLEN", "ar:k"], ":11");
    check(&mut c, &["STRLEN", "ar:missing"], ":0");

    check(&mut c, &["SET", "ar:r", "This is a string"], "+OK");
    check(&mut c, &["GETRANGE", "ar:r", "0", "3"], "\"This\"");
    check(&mut c, &["GETRANGE", "ar:r", "-3", "-1"], "\"ing\"");
    check(
        &mut c,
        &["GETRANGE", "ar:r", "0", "-1"],
        "\"This is a string\"",
    );
    check(&mut c, &["GETRANGE", "ar:r", "10", "100"], "\"string\"");
    check(&mut c, &["GETRANGE", "ar:r", "5", "3"], "\"\"");
    check(&mut c, &["GETRANGE", "ar:missing", "0", "-1"], "\"\"");
    check(
        &mut c,
        &["GETRANGE", "ar:r", "a", "1"],
        "-ERR value is not an integer or out of range",
    );

    check(&mut c, &["SET", "ar:s", "Hello World"], "+OK");
    check(&mut c, &["SETRANGE", "ar:s", "6", "Redis"], ":11");
    check(&mut c, &["GET", "ar:s"], "\"Hello Redis\"");
    check(&mut c, &["SETRANGE", "ar:pad", "5", "x"], ":6");
    check(&mut c, &["GET", "ar:pad"], "\"\\0\\0\\0\\0\\0x\"");
    check(&mut c, &["SETRANGE", "ar:empty", "0", ""], ":0");
    check(&mut c, &["EXISTS", "ar:empty"], ":0");
    check(
        &mut c,
        &["SETRANGE", "ar:s", "-1", "x"],
        "-ERR offset is out of range",
    );
    check(
        &mut c,
        &["SETRANGE", "ar:s", "536870912", "x"],
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
    );
}

#[test]
fn incr_decr_family() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["INCR", "n:k"], ":1");
    check(&mut c, &["INCRBY", "n:k", "10"], ":11");
    check(&mut c, &["DECR", "n:k"], ":10");
    check(&mut c, &["DECRBY", "n:k", "3"], ":7");
    check(&mut c, &["INCRBY", "n:k", "-10"], ":-3");
    check(&mut c, &["GET", "n:k"], "\"-3\"");
    check(&mut c, &["DECR", "n:new"], ":-1");

    check(&mut c, &["SET", "n:s", "abc"], "+OK");
    for args in [
        vec!["INCR", "n:s"],
        vec!["DECR", "n:s"],
        vec!["INCRBY", "n:k", "abc"],
        vec!["DECRBY", "n:k", "1.5"],
        vec!["INCRBY", "n:k", "99999999999999999999"],
    ] {
        check(
            &mut c,
            &args,
            "-ERR value is not an integer or out of range",
        );
    }
    check(&mut c, &["SET", "n:sp", " 1"], "+OK");
    check(
        &mut c,
        &["INCR", "n:sp"],
        "-ERR value is not an integer or out of range",
    );
    check(&mut c, &["SET", "n:max", "9223372036854775807"], "+OK");
    check(
        &mut c,
        &["INCR", "n:max"],
        "-ERR increment or decrement would overflow",
    );
    check(&mut c, &["SET", "n:min", "-9223372036854775808"], "+OK");
    check(
        &mut c,
        &["DECR", "n:min"],
        "-ERR increment or decrement would overflow",
    );
    check(&mut c, &["GET", "n:min"], "\"-9223372036854775808\"");
    // INCR keeps the TTL.
    check(&mut c, &["SET", "n:ttl", "1", "EX", "100"], "+OK");
    check(&mut c, &["INCR", "n:ttl"], ":2");
    assert_in(int(&mut c, &["TTL", "n:ttl"]), 90, 100, "TTL after INCR");

    check(&mut c, &["SET", "n:f", "10.50"], "+OK");
    check(&mut c, &["INCRBYFLOAT", "n:f", "0.1"], "\"10.6\"");
    check(&mut c, &["INCRBYFLOAT", "n:f", "-5"], "\"5.6\"");
    check(&mut c, &["SET", "n:f", "5.0e3"], "+OK");
    check(&mut c, &["INCRBYFLOAT", "n:f", "2.0e2"], "\"5200\"");
    check(&mut c, &["INCRBYFLOAT", "n:fnew", "3"], "\"3\"");
    check(
        &mut c,
        &["INCRBYFLOAT", "n:s", "1"],
        "-ERR value is not a valid float",
    );
    check(
        &mut c,
        &["INCRBYFLOAT", "n:f", "abc"],
        "-ERR value is not a valid float",
    );
    check(
        &mut c,
        &["INCRBYFLOAT", "n:f", "inf"],
        "-ERR increment would produce NaN or Infinity",
    );
    check(&mut c, &["GET", "n:f"], "\"5200\"");
}

// ---------------------------------------------------------------------------
// Keys.

#[test]
fn del_exists_type_rename() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["MSET", "k:a", "1", "k:b", "2", "k:c", "3"], "+OK");
    check(&mut c, &["EXISTS", "k:a", "k:a", "k:missing", "k:b"], ":3");
    check(&mut c, &["TYPE", "k:a"], "+string");
    check(&mut c, &["TYPE", "k:missing"], "+none");
    check(&mut c, &["DEL", "k:a", "k:missing", "k:a"], ":1");
    check(&mut c, &["UNLINK", "k:b", "k:missing"], ":1");
    check(&mut c, &["EXISTS", "k:a", "k:b"], ":0");
    check(
        &mut c,
        &["DEL"],
        "-ERR wrong number of arguments for 'del' command",
    );

    check(&mut c, &["SET", "k:r1", "v", "EX", "100"], "+OK");
    check(&mut c, &["RENAME", "k:r1", "k:r2"], "+OK");
    check(&mut c, &["EXISTS", "k:r1"], ":0");
    check(&mut c, &["GET", "k:r2"], "\"v\"");
    assert_in(int(&mut c, &["TTL", "k:r2"]), 90, 100, "RENAME keeps TTL");
    check(&mut c, &["RENAME", "k:r2", "k:r2"], "+OK");
    check(&mut c, &["GET", "k:r2"], "\"v\"");
    check(&mut c, &["RENAME", "k:missing", "k:x"], "-ERR no such key");
    check(&mut c, &["SET", "k:c", "c"], "+OK");
    check(&mut c, &["RENAME", "k:r2", "k:c"], "+OK");
    check(&mut c, &["GET", "k:c"], "\"v\"");

    check(&mut c, &["SET", "k:n1", "1"], "+OK");
    check(&mut c, &["RENAMENX", "k:n1", "k:c"], ":0");
    check(&mut c, &["GET", "k:c"], "\"v\"");
    check(&mut c, &["RENAMENX", "k:n1", "k:n2"], ":1");
    check(&mut c, &["GET", "k:n2"], "\"1\"");
    check(
        &mut c,
        &["RENAMENX", "k:missing", "k:n3"],
        "-ERR no such key",
    );
}

#[test]
fn expire_family_and_flags() {
    let _g = keyspace_shared();
    let mut c = con();
    check(&mut c, &["EXPIRE", "e:missing", "100"], ":0");
    check(&mut c, &["SET", "e:k", "v"], "+OK");
    check(&mut c, &["TTL", "e:k"], ":-1");
    check(&mut c, &["PTTL", "e:k"], ":-1");
    check(&mut c, &["TTL", "e:missing"], ":-2");
    check(&mut c, &["PTTL", "e:missing"], ":-2");
    check(&mut c, &["EXPIRETIME", "e:k"], ":-1");
    check(&mut c, &["EXPIRETIME", "e:missing"], ":-2");
    check(&mut c, &["PEXPIRETIME", "e:missing"], ":-2");

    // GT / LT on a key without a TTL (an infinite TTL).
    check(&mut c, &["EXPIRE", "e:k", "100", "XX"], ":0");
    check(&mut c, &["EXPIRE", "e:k", "100", "GT"], ":0");
    check(&mut c, &["TTL", "e:k"], ":-1");
    check(&mut c, &["EXPIRE", "e:k", "100", "LT"], ":1");
    assert_in(int(&mut c, &["TTL", "e:k"]), 90, 100, "EXPIRE LT");
    check(&mut c, &["EXPIRE", "e:k", "200", "NX"], ":0");
    check(&mut c, &["EXPIRE", "e:k", "50", "GT"], ":0");
    check(&mut c, &["EXPIRE", "e:k", "200", "GT"], ":1");
    assert_in(int(&mut c, &["TTL", "e:k"]), 190, 200, "EXPIRE GT");
    check(&mut c, &["EXPIRE", "e:k", "300", "LT"], ":0");
    check(&mut c, &["EXPIRE", "e:k", "150", "XX"], ":1");
    assert_in(int(&mut c, &["TTL", "e:k"]), 140, 150, "EXPIRE XX");
    check(
        &mut c,
        &["EXPIRE", "e:k", "100", "NX", "XX"],
        "-ERR NX and XX, GT or LT options at the same time are not compatible",
    );
    check(
        &mut c,
        &["EXPIRE", "e:k", "100", "GT", "LT"],
        "-ERR GT and LT options at the same time are not compatible",
    );
    check(
        &mut c,
        &["EXPIRE", "e:k", "100", "bogus"],
        "-ERR Unsupported option bogus",
    );
    check(
        &mut c,
        &["EXPIRE", "e:k", "abc"],
        "-ERR value is not an integer or out of range",
    );
    check(
        &mut c,
        &["EXPIRE", "e:k", "9223372036854775807"],
        "-ERR invalid expire time in 'expire' command",
    );
    check(
        &mut c,
        &["PEXPIRE", "e:k", "9223372036854775807"],
        "-ERR invalid expire time in 'pexpire' command",
    );

    check(&mut c, &["PEXPIRE", "e:k", "100000"], ":1");
    assert_in(int(&mut c, &["PTTL", "e:k"]), 90_000, 100_000, "PEXPIRE");
    let at = now_secs() + 500;
    check(&mut c, &["EXPIREAT", "e:k", &at.to_string()], ":1");
    assert_eq!(int(&mut c, &["EXPIRETIME", "e:k"]), at);
    assert_eq!(int(&mut c, &["PEXPIRETIME", "e:k"]), at * 1000);
    let pat = now_ms() + 600_000;
    check(&mut c, &["PEXPIREAT", "e:k", &pat.to_string()], ":1");
    assert_eq!(int(&mut c, &["PEXPIRETIME", "e:k"]), pat);
    // Redis rounds milliseconds to the nearest second here.
    assert_eq!(int(&mut c, &["EXPIRETIME", "e:k"]), (pat + 500) / 1000);
    check(
        &mut c,
        &["PEXPIREAT", "e:k", &(pat + 1000).to_string(), "LT"],
        ":0",
    );
    check(&mut c, &["EXPIREAT", "e:k", &at.to_string(), "LT"], ":1");

    check(&mut c, &["PERSIST", "e:k"], ":1");
    check(&mut c, &["PERSIST", "e:k"], ":0");
    check(&mut c, &["PERSIST", "e:missing"], ":0");
    check(&mut c, &["TTL", "e:k"], ":-1");

    // A non-positive TTL or a time in the past deletes the key.
    check(&mut c, &["EXPIRE", "e:k", "-1"], ":1");
    check(&mut c, &["EXISTS", "e:k"], ":0");
    check(&mut c, &["SET", "e:k2", "v"], "+OK");
    check(&mut c, &["EXPIREAT", "e:k2", "1000"], ":1");
    check(&mut c, &["GET", "e:k2"], "nil");
    check(&mut c, &["SET", "e:k3", "v"], "+OK");
    check(&mut c, &["PEXPIRE", "e:k3", "0"], ":1");
    check(&mut c, &["TTL", "e:k3"], ":-2");
}

#[test]
fn short_ttl_expires_and_active_expiry_shrinks_dbsize() {
    let _g = keyspace_exclusive();
    let mut c = con();
    check(&mut c, &["FLUSHDB"], "+OK");
    check(&mut c, &["SET", "ttl:keep", "v"], "+OK");
    for i in 0..5 {
        check(
            &mut c,
            &["SET", &format!("ttl:short{i}"), "v", "PX", "200"],
            "+OK",
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    // Expired keys are invisible at once; bounded polling absorbs a slow box.
    common::wait_for(
        "keys with PX 200 to read as missing",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match ask(&mut c, &["GET", "ttl:short0"]).as_str() {
            "nil" => Ok(()),
            other => Err(format!("GET still returns {other}")),
        },
    );
    for i in 0..5 {
        let k = format!("ttl:short{i}");
        check(&mut c, &["GET", &k], "nil");
        check(&mut c, &["EXISTS", &k], ":0");
        check(&mut c, &["TTL", &k], ":-2");
        check(&mut c, &["PTTL", &k], ":-2");
    }
    // The active expiry process (driven through the log) removes them.
    common::wait_for(
        "active expiry to drop DBSIZE to 1",
        Duration::from_secs(40),
        Duration::from_millis(250),
        || match int(&mut c, &["DBSIZE"]) {
            1 => Ok(()),
            n => Err(format!("DBSIZE {n}")),
        },
    );
    check(&mut c, &["GET", "ttl:keep"], "\"v\"");
}

#[test]
fn keys_scan_randomkey() {
    let _g = keyspace_exclusive();
    let mut c = con();
    check(&mut c, &["FLUSHDB"], "+OK");
    check(&mut c, &["RANDOMKEY"], "nil");
    check(&mut c, &["KEYS", "*"], "[]");
    let mut expected_user: Vec<String> = (1..=50).map(|i| format!("user:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &expected_user {
        mset.push(k.clone());
        mset.push("v".into());
    }
    for i in 1..=10 {
        mset.push(format!("other:{i}"));
        mset.push("v".into());
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    check(&mut c, &mset, "+OK");
    expected_user.sort();

    let keys = |c: &mut redis::Connection, pattern: &str| -> Vec<String> {
        let mut v: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(c)
            .unwrap_or_else(|e| panic!("KEYS {pattern}: {e}"));
        v.sort();
        v
    };
    assert_eq!(keys(&mut c, "user:*"), expected_user);
    assert_eq!(keys(&mut c, "*").len(), 60);
    assert_eq!(keys(&mut c, "user:[12]"), vec!["user:1", "user:2"]);
    assert_eq!(keys(&mut c, "user:?").len(), 9);
    assert_eq!(keys(&mut c, "other:1?"), vec!["other:10"]);
    assert!(keys(&mut c, "nomatch*").is_empty());

    // SCAN iterates to cursor 0 and returns every matching key.
    let scan_all = |c: &mut redis::Connection, extra: &[&str]| -> Vec<String> {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(&cursor);
            for a in extra {
                cmd.arg(*a);
            }
            let (next, batch): (String, Vec<String>) = cmd
                .query(c)
                .unwrap_or_else(|e| panic!("SCAN {cursor} {extra:?}: {e}"));
            seen.extend(batch);
            if next == "0" {
                seen.sort();
                seen.dedup();
                return seen;
            }
            cursor = next;
        }
        panic!("SCAN {extra:?} did not return to cursor 0 in 10000 calls");
    };
    assert_eq!(
        scan_all(&mut c, &["MATCH", "user:*", "COUNT", "7"]),
        expected_user
    );
    assert_eq!(scan_all(&mut c, &[]).len(), 60);
    assert_eq!(scan_all(&mut c, &["COUNT", "1000"]).len(), 60);
    assert_eq!(
        scan_all(&mut c, &["TYPE", "string", "COUNT", "5"]).len(),
        60
    );
    assert!(scan_all(&mut c, &["TYPE", "list"]).is_empty());
    assert_eq!(
        scan_all(&mut c, &["MATCH", "other:*", "TYPE", "string"]).len(),
        10
    );
    check(&mut c, &["SCAN", "abc"], "-ERR invalid cursor");
    check(&mut c, &["SCAN", "0", "COUNT", "0"], "-ERR syntax error");
    check(&mut c, &["SCAN", "0", "BOGUS", "1"], "-ERR syntax error");

    let r = text(&mut c, &["RANDOMKEY"]);
    assert!(
        r.starts_with("user:") || r.starts_with("other:"),
        "RANDOMKEY returned {r}"
    );
    check(&mut c, &["FLUSHDB"], "+OK");
    check(&mut c, &["RANDOMKEY"], "nil");
}

// ---------------------------------------------------------------------------
// RESP3, pipelining, raw TCP.

#[test]
fn resp3_replies() {
    let _g = keyspace_shared();
    let mut c = connect(&shared_target().addr, Some("protocol=resp3"));
    match query(&mut c, &["HELLO", "3"]) {
        v @ redis::Value::Map(_) => {
            let fields = hello_fields(&v);
            assert_eq!(field(&fields, "proto"), ":3");
            assert_eq!(field(&fields, "server"), "\"redis\"");
        }
        other => panic!("HELLO 3 must be a map, got {}", render(&other)),
    }
    check(&mut c, &["GET", "r3:missing"], "nil");
    check(&mut c, &["SET", "r3:k", "v"], "+OK");
    check(&mut c, &["GET", "r3:k"], "\"v\"");
    check(&mut c, &["MGET", "r3:k", "r3:missing"], "[\"v\", nil]");
    check(&mut c, &["INCRBYFLOAT", "r3:f", "1.5"], "\"1.5\"");
    check(&mut c, &["INCR", "r3:n"], ":1");
    check(&mut c, &["EXISTS", "r3:k"], ":1");
    check(&mut c, &["TTL", "r3:k"], ":-1");
    check(&mut c, &["TYPE", "r3:k"], "+string");
    check(&mut c, &["SET", "r3:k", "w", "GET"], "\"v\"");
    check(&mut c, &["SET", "r3:k", "x", "NX"], "nil");
    check(&mut c, &["GET", "r3:k"], "\"w\"");
    check(&mut c, &["PING"], "+PONG");
    check(
        &mut c,
        &["GET"],
        "-ERR wrong number of arguments for 'get' command",
    );
    let info = ask(&mut c, &["CLIENT", "INFO"]);
    assert!(
        info.starts_with("=txt:id=") || info.starts_with("\"id="),
        "CLIENT INFO in RESP3: {info}"
    );
    assert!(info.contains(" resp=3"), "CLIENT INFO in RESP3: {info}");
    let docs = query(&mut c, &["COMMAND", "DOCS", "get"]);
    assert!(
        matches!(docs, redis::Value::Map(_)),
        "COMMAND DOCS in RESP3 is a map: {}",
        render(&docs)
    );
    // HELLO 2 switches the same connection back.
    let back = query(&mut c, &["HELLO", "2"]);
    assert!(matches!(back, redis::Value::Array(_)), "{}", render(&back));
}

#[test]
fn resp3_raw_bytes() {
    let _g = keyspace_shared();
    let mut raw = RawConn::connect(&shared_target().addr).expect("connect");
    let hello = raw.cmd(&["HELLO", "3"]);
    assert!(
        hello.starts_with(b"%"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(raw.cmd(&["GET", "r3raw:missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&["SET", "r3raw:k", "v"]), b"+OK\r\n");
    assert_eq!(
        raw.cmd(&["MGET", "r3raw:k", "r3raw:missing"]),
        b"*2\r\n$1\r\nv\r\n_\r\n"
    );
    assert_eq!(
        raw.cmd(&["INCRBYFLOAT", "r3raw:f", "2.5"]),
        b"$3\r\n2.5\r\n"
    );
    assert_eq!(raw.cmd(&["EXISTS", "r3raw:k"]), b":1\r\n");
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), b"_\r\n");
    let info = raw.cmd(&["INFO", "server"]);
    assert!(info.starts_with(b"="), "INFO is verbatim in RESP3");
}

#[test]
fn pipeline_of_1000_commands_replies_in_order() {
    let _g = keyspace_shared();
    let mut c = con();
    let mut pipe = redis::pipe();
    let mut expected: Vec<String> = Vec::new();
    let mut model: std::collections::HashMap<String, i64> = Default::default();
    for i in 0..1000 {
        let key = format!("pipe:{}", i % 37);
        match i % 3 {
            0 => {
                pipe.cmd("SET").arg(&key).arg(i);
                model.insert(key, i);
                expected.push("+OK".into());
            }
            1 => {
                pipe.cmd("INCR").arg(&key);
                let v = model.entry(key).or_insert(0);
                *v += 1;
                expected.push(format!(":{v}"));
            }
            _ => {
                pipe.cmd("GET").arg(&key);
                expected.push(match model.get(&key) {
                    Some(v) => format!("\"{v}\""),
                    None => "nil".into(),
                });
            }
        }
    }
    let replies: Vec<redis::Value> = pipe.query(&mut c).expect("pipeline of 1000 commands");
    assert_eq!(replies.len(), 1000);
    for (i, (got, want)) in replies.iter().zip(&expected).enumerate() {
        assert_eq!(&render(got), want, "reply #{i} of the pipeline");
    }
}

#[test]
fn raw_tcp_resp_and_inline() {
    let _g = keyspace_shared();
    let mut raw = RawConn::connect(&shared_target().addr).expect("connect");
    raw.send(b"PING\r\n").expect("send inline PING");
    assert_eq!(raw.read_reply().expect("reply"), b"+PONG\r\n");
    raw.send(b"SET raw:k hello\r\n").expect("send inline SET");
    assert_eq!(raw.read_reply().expect("reply"), b"+OK\r\n");
    raw.send(b"*2\r\n$3\r\nGET\r\n$5\r\nraw:k\r\n")
        .expect("send GET");
    assert_eq!(raw.read_reply().expect("reply"), b"$5\r\nhello\r\n");
    // Several commands in one write, replies in order.
    raw.send(b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nINCR\r\n$7\r\nraw:ctr\r\n*2\r\n$3\r\nGET\r\n$7\r\nraw:nix\r\n")
        .expect("send batch");
    assert_eq!(raw.read_reply().expect("reply"), b"+PONG\r\n");
    assert_eq!(raw.read_reply().expect("reply"), b"$2\r\nhi\r\n");
    assert_eq!(raw.read_reply().expect("reply"), b":1\r\n");
    assert_eq!(raw.read_reply().expect("reply"), b"$-1\r\n");
    // A command split across writes.
    raw.send(b"*2\r\n$3\r\nGE").expect("send half");
    std::thread::sleep(Duration::from_millis(50));
    raw.send(b"T\r\n$5\r\nraw:k\r\n").expect("send rest");
    assert_eq!(raw.read_reply().expect("reply"), b"$5\r\nhello\r\n");
    assert_eq!(
        raw.cmd(&["foo", "a"]),
        b"-ERR unknown command 'foo', with args beginning with: 'a' \r\n"
    );
    raw.send(b"QUIT\r\n").expect("send QUIT");
    assert_eq!(raw.read_reply().expect("reply"), b"+OK\r\n");
    raw.read_to_eof(Duration::from_secs(10))
        .expect("connection closes after QUIT");
}
