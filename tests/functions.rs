//! Redis 7 functions (FUNCTION LOAD/DELETE/FLUSH/LIST/DUMP/RESTORE/STATS/
//! KILL, FCALL, FCALL_RO) through a real proxy in front of a real cluster,
//! compared reply by reply (RESP2 and RESP3) with a real redis-server
//! running the same script where one is installed; then what only a
//! replicated service has: a library loaded through one proxy is called
//! through another, and survives a snapshot and a restart of every node.

mod common;

use std::time::Duration;

use common::{assert_answers_as_redis, connect, query, render, shared_target, Cluster};

const LIB1: &str = "#!lua name=lib1\n\
redis.register_function('f_echo', function(keys, args) return {keys[1], args[1]} end)\n\
redis.register_function{function_name='f_get', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads a key'}\n\
redis.register_function('f_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)\n\
redis.register_function{function_name='f_ro_write', callback=function(keys) local r = redis.call('SET', keys[1], 'x') return r end, flags={'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}}\n\
redis.register_function('f_err', function() error('boom') end)\n\
redis.register_function('f_reply_err', function() return redis.error_reply('MY failure') end)\n\
redis.register_function('f_global', function() return nonexistent end)\n\
redis.register_function('f_setglobal', function() x = 1 end)\n\
redis.register_function('f_keys', function() return KEYS end)\n\
redis.register_function('f_env', function() return {type(1), string.len('abc'), cjson.encode({1}), redis.sha1hex('x')} end)\n\
redis.register_function('f_unknown', function() local r = redis.call('NOSUCH') return r end)\n\
redis.register_function('f_resp3', function(keys) redis.setresp(3) return redis.call('HGETALL', keys[1]) end)\n\
redis.register_function('f_types', function() return {1, 2.5, 'a', true, false, {ok='fine'}} end)";

const LIB2: &str = "#!lua name=lib2\n\
local function helper(n) return n * 2 end\n\
redis.register_function('f_double', function(keys, args) return helper(tonumber(args[1])) end)";

/// One-function libraries, so FUNCTION LIST's order cannot differ.
const SOLO: &str = "#!lua name=solo\n\
redis.register_function{function_name='s1', callback=function() return 1 end, description='only one', flags={'no-writes'}}";

/// Each entry is one command; both servers start with no keys and no
/// libraries.
fn script() -> Vec<Vec<String>> {
    let lib1_clash = "#!lua name=other\nredis.register_function('f_echo', function() return 1 end)";
    let load_errors: &[&str] = &[
        "redis.register_function('b-ad', function() return 1 end)",
        "redis.register_function('', function() return 1 end)",
        "redis.register_function{function_name='g', callback=function() end, flags={'bad'}}",
        "redis.register_function{function_name='g', callback=function() end, foo=1}",
        "redis.register_function{function_name='g', callback=function() end, flags='no-writes'}",
        "redis.register_function('g')",
        "redis.register_function('g', 1)",
        "redis.register_function('g', function() end, 3)",
        "redis.register_function({function_name='g'})",
        "redis.register_function({callback=function() end})",
        "redis.register_function('g', function() end) redis.register_function('g', function() end)",
        "redis.call('SET', 'a', 'b')",
        "redis.register_function('g', function() end) local a = redis.pcall",
        "redis.register_function('g', function() end) redis.setresp(3)",
        "local a = KEYS",
        "x = 1",
        "return +",
        "return 1",
        "while true do end",
        "redis.register_function('g', function() end) local s = string.len('x')",
        "redis.register_function('g', function() end) error('boom')",
        // Loads (Redis takes a number as a name): last, deleted below.
        "redis.register_function(1, function() end)",
    ];
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut add = |args: &[&str]| lines.push(args.iter().map(|a| a.to_string()).collect());
    add(&["FUNCTION", "FLUSH"]);
    add(&["FUNCTION", "LIST"]);
    add(&["FUNCTION", "STATS"]);
    add(&["FUNCTION", "LOAD", LIB1]);
    add(&["FUNCTION", "LOAD", LIB1]);
    add(&["FUNCTION", "LOAD", "REPLACE", LIB1]);
    add(&["FUNCTION", "LOAD", "replace", LIB1]);
    add(&["FUNCTION", "LOAD", lib1_clash]);
    add(&["FUNCTION", "LOAD", "REPLACE", lib1_clash]);
    add(&["FUNCTION", "LOAD", LIB2]);
    add(&["FUNCTION", "LOAD", SOLO]);
    add(&["FUNCTION", "LOAD", "return 1"]);
    add(&["FUNCTION", "LOAD", "#!lua name=x"]);
    add(&["FUNCTION", "LOAD", "#!lua\nreturn 1"]);
    add(&["FUNCTION", "LOAD", "#!lua name=x foo=bar\nreturn 1"]);
    add(&["FUNCTION", "LOAD", "#!lua name=a name=b\nreturn 1"]);
    add(&["FUNCTION", "LOAD", "#!luax name=x\nreturn 1"]);
    add(&["FUNCTION", "LOAD", "#!lua name=a-b\nreturn 1"]);
    add(&["FUNCTION", "LOAD", "BADOPT", LIB2]);
    add(&["FUNCTION", "LOAD"]);
    for body in load_errors {
        add(&["FUNCTION", "LOAD", &format!("#!lua name=bad\n{body}")]);
    }
    add(&["FCALL", "1", "0"]);
    add(&["FUNCTION", "DELETE", "bad"]);
    add(&["FUNCTION", "STATS"]);
    add(&["FCALL", "f_echo", "1", "k1", "a1"]);
    add(&["FCALL", "f_echo", "0"]);
    add(&["SET", "fk", "v"]);
    add(&["FCALL", "f_get", "1", "fk"]);
    add(&["FCALL_RO", "f_get", "1", "fk"]);
    add(&["FCALL", "f_set", "1", "fk", "w"]);
    add(&["GET", "fk"]);
    add(&["FCALL_RO", "f_set", "1", "fk", "w"]);
    add(&["FCALL", "f_ro_write", "1", "fk"]);
    add(&["FCALL", "f_err", "0"]);
    add(&["FCALL", "f_reply_err", "0"]);
    add(&["FCALL", "f_global", "0"]);
    add(&["FCALL", "f_setglobal", "0"]);
    add(&["FCALL", "f_keys", "0"]);
    add(&["FCALL", "f_env", "0"]);
    add(&["FCALL", "f_unknown", "0"]);
    add(&["HSET", "fh", "a", "1"]);
    add(&["FCALL", "f_resp3", "1", "fh"]);
    add(&["FCALL", "f_types", "0"]);
    add(&["FCALL", "f_double", "0", "21"]);
    add(&["FCALL", "nosuch", "0"]);
    add(&["FCALL", "nosuch", "x"]);
    add(&["FCALL", "f_echo", "x"]);
    add(&["FCALL", "f_echo", "-1"]);
    add(&["FCALL", "f_echo", "5", "a"]);
    add(&["FCALL", "f_echo"]);
    add(&["FCALL_RO", "f_echo", "0"]);
    add(&["FUNCTION", "LIST", "LIBRARYNAME", "solo"]);
    add(&["FUNCTION", "LIST", "LIBRARYNAME", "so*", "WITHCODE"]);
    add(&["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "lib2"]);
    add(&["FUNCTION", "LIST", "LIBRARYNAME", "nomatch*"]);
    add(&["FUNCTION", "LIST", "LIBRARYNAME"]);
    add(&["FUNCTION", "LIST", "foo"]);
    add(&["FUNCTION", "LIST", "WITHCODE", "WITHCODE"]);
    add(&["FUNCTION", "STATS"]);
    add(&["FUNCTION", "STATS", "x"]);
    add(&["FUNCTION", "DELETE", "nosuch"]);
    add(&["FUNCTION", "DELETE", "lib2"]);
    add(&["FCALL", "f_double", "0", "21"]);
    add(&["FUNCTION", "DELETE"]);
    add(&["FUNCTION", "DELETE", "a", "b"]);
    add(&["FUNCTION", "RESTORE", "garbage"]);
    add(&["FUNCTION", "RESTORE", "garbage", "BADPOLICY"]);
    add(&["FUNCTION", "KILL"]);
    add(&["FUNCTION", "KILL", "x"]);
    add(&["FUNCTION", "HELP"]);
    add(&["FUNCTION", "NOSUCH"]);
    add(&["FUNCTION", "FLUSH", "BAD"]);
    add(&["FUNCTION", "FLUSH", "ASYNC", "extra"]);
    add(&["FUNCTION", "FLUSH", "SYNC"]);
    add(&["FUNCTION", "LIST"]);
    add(&["FCALL", "f_echo", "0"]);
    // FLUSHALL keeps libraries.
    add(&["FUNCTION", "LOAD", SOLO]);
    add(&["FLUSHALL"]);
    add(&["FCALL", "s1", "0"]);
    // Inside MULTI/EXEC.
    add(&["MULTI"]);
    add(&["FUNCTION", "LOAD", LIB2]);
    add(&["FCALL", "f_double", "0", "4"]);
    add(&["FCALL", "s1", "0"]);
    add(&["EXEC"]);
    add(&["FUNCTION", "FLUSH"]);
    lines
}

fn run_script(addr: &str, protocol: Option<&str>) -> Vec<String> {
    let mut con = connect(addr, protocol);
    let _ = query(&mut con, &["FLUSHALL"]);
    script()
        .iter()
        .map(|line| {
            let args: Vec<&str> = line.iter().map(String::as_str).collect();
            format!(
                "{} -> {}",
                args.join(" ").replace('\n', "\\n"),
                render(&query(&mut con, &args))
            )
        })
        .collect()
}

#[test]
fn functions_answer_as_redis() {
    let target = shared_target();
    let ours = run_script(&target.addr, None);
    for expected in [
        "FCALL f_echo 1 k1 a1 -> [\"k1\", \"a1\"]",
        "FCALL nosuch 0 -> -ERR Function not found",
        "FUNCTION DELETE nosuch -> -ERR Library not found",
        "FCALL_RO f_set 1 fk w -> -ERR Can not execute a script with write flag using *_ro command.",
        "FUNCTION RESTORE garbage -> -ERR DUMP payload version or checksum are wrong",
    ] {
        assert!(
            ours.iter().any(|line| line == expected),
            "missing {expected:?} in\n{}",
            ours.join("\n")
        );
    }
    if !target.is_rampart() {
        return;
    }
    assert_answers_as_redis(&target.addr, run_script, |_, _| false);
}

fn raw_query(con: &mut redis::Connection, cmd: &redis::Cmd) -> redis::Value {
    use redis::ConnectionLike;
    con.req_command(cmd)
        .unwrap_or_else(|e| panic!("transport error: {e}"))
}

fn bytes(v: &redis::Value) -> Vec<u8> {
    match v {
        redis::Value::BulkString(b) => b.clone(),
        other => panic!("expected a bulk string, got {}", render(other)),
    }
}

#[test]
fn dump_and_restore_round_trip_with_every_policy() {
    let target = shared_target();
    if !target.is_rampart() {
        return;
    }
    let mut con = target.connection();
    assert_eq!(render(&query(&mut con, &["FUNCTION", "FLUSH"])), "+OK");
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LOAD", LIB2])),
        "\"lib2\""
    );
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LOAD", SOLO])),
        "\"solo\""
    );
    let payload = bytes(&query(&mut con, &["FUNCTION", "DUMP"]));
    let listed = render(&query(&mut con, &["FUNCTION", "LIST", "WITHCODE"]));
    let restore = |con: &mut redis::Connection, policy: Option<&str>| -> String {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("RESTORE").arg(payload.as_slice());
        if let Some(p) = policy {
            cmd.arg(p);
        }
        render(&raw_query(con, &cmd))
    };
    // APPEND (the default) refuses a library that exists.
    assert_eq!(restore(&mut con, None), "-ERR Library lib2 already exists");
    assert_eq!(
        restore(&mut con, Some("APPEND")),
        "-ERR Library lib2 already exists"
    );
    assert_eq!(restore(&mut con, Some("REPLACE")), "+OK");
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LIST", "WITHCODE"])),
        listed
    );
    assert_eq!(render(&query(&mut con, &["FUNCTION", "FLUSH"])), "+OK");
    assert_eq!(restore(&mut con, None), "+OK");
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LIST", "WITHCODE"])),
        listed
    );
    assert_eq!(
        render(&query(&mut con, &["FCALL", "f_double", "0", "5"])),
        ":10"
    );
    // FLUSH replaces whatever is there, even a clashing function name.
    let clash = "#!lua name=clash\nredis.register_function('f_double', function() return 0 end)";
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "DELETE", "lib2"])),
        "+OK"
    );
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LOAD", clash])),
        "\"clash\""
    );
    assert_eq!(
        restore(&mut con, Some("REPLACE")),
        "-ERR Function f_double already exists"
    );
    assert_eq!(restore(&mut con, Some("FLUSH")), "+OK");
    assert_eq!(
        render(&query(&mut con, &["FUNCTION", "LIST", "WITHCODE"])),
        listed
    );
    // A payload with one byte changed is refused.
    let mut bad = payload.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    let mut cmd = redis::cmd("FUNCTION");
    cmd.arg("RESTORE").arg(bad.as_slice());
    let got = render(&raw_query(&mut con, &cmd));
    assert!(
        got.contains("DUMP payload version or checksum are wrong"),
        "{got}"
    );
    assert_eq!(render(&query(&mut con, &["FUNCTION", "FLUSH"])), "+OK");
}

#[test]
fn libraries_are_cluster_state_seen_by_every_proxy_and_kept_across_restarts() {
    if std::env::var("RAMPART_TEST_REDIS_ADDR").is_ok() {
        return;
    }
    let cluster = Cluster::start();
    let other = cluster.start_proxy(&[1, 2, 3], None);
    let mut a = connect(cluster.proxy_addr(), None);
    let mut b = connect(&other, None);
    assert_eq!(
        render(&query(&mut a, &["FUNCTION", "LOAD", LIB2])),
        "\"lib2\""
    );
    assert_eq!(
        render(&query(&mut b, &["FCALL", "f_double", "0", "21"])),
        ":42"
    );
    assert_eq!(
        render(&query(&mut b, &["FUNCTION", "LOAD", LIB2])),
        "-ERR Library 'lib2' already exists"
    );
    assert_eq!(
        render(&query(&mut b, &["FUNCTION", "LOAD", LIB1])),
        "\"lib1\""
    );
    assert_eq!(
        render(&query(&mut a, &["FCALL", "f_set", "1", "k", "v"])),
        "+OK"
    );
    assert_eq!(render(&query(&mut b, &["GET", "k"])), "\"v\"");
    // A snapshot on every node, then every node restarts.
    for id in 1..=3 {
        cluster.snapshot(id);
    }
    assert_eq!(
        render(&query(&mut a, &["FUNCTION", "DELETE", "lib1"])),
        "+OK"
    );
    for id in 1..=3 {
        cluster.kill_node(id);
    }
    for id in 1..=3 {
        cluster.restart_node(id);
    }
    cluster.wait_for_leader(Duration::from_secs(30));
    let mut a = connect(cluster.proxy_addr(), None);
    common::wait_for(
        "FCALL after the restart",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match render(&query(&mut a, &["FCALL", "f_double", "0", "4"])) {
            got if got == ":8" => Ok(()),
            got => Err(got),
        },
    );
    assert_eq!(
        render(&query(&mut a, &["FCALL", "f_set", "1", "k", "v"])),
        "-ERR Function not found"
    );
    let mut b = connect(&other, None);
    assert_eq!(
        render(&query(&mut b, &["FUNCTION", "STATS"])),
        "[\"running_script\", nil, \"engines\", [\"LUA\", [\"libraries_count\", :1, \"functions_count\", :1]]]"
    );
}
