//! Lua scripting (EVAL, EVALSHA, EVAL_RO, SCRIPT ...) through a real proxy
//! in front of a real 3-node cluster: Redis's documented examples, type
//! conversions both ways, error propagation, the sandbox, the script cache
//! (after a leader failover: tests/scripting_failover.rs, which needs a
//! cluster of its own), SCRIPT KILL while other clients are
//! served, and atomicity as a concurrent reader sees it.
//!
//! Expected bytes were checked against Redis 7.0 where the behaviour is
//! Redis's (error texts carry the script's SHA1 as Redis 7 does).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{resp_command_bytes, shared_target, RawConn};

/// The tests run one at a time: SCRIPT KILL stops every script running on
/// the leader and SCRIPT FLUSH forgets every script, so concurrent tests
/// would see each other's effects.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn proxy() -> &'static str {
    &shared_target().addr
}

fn raw(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

fn ask(c: &mut RawConn, args: &[&str]) -> String {
    String::from_utf8_lossy(&c.cmd(args)).into_owned()
}

#[track_caller]
fn expect(c: &mut RawConn, args: &[&str], expected: &str) {
    assert_eq!(ask(c, args), expected, "{args:?}");
}

fn sha1(s: &str) -> String {
    // Same digest the node uses (checked against Redis's SCRIPT LOAD).
    let mut c = raw(proxy());
    let got = ask(&mut c, &["SCRIPT", "LOAD", s]);
    got.lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn rate_limiter_example() {
    let _serial = serial();
    let mut c = raw(proxy());
    let script = "local current = redis.call('INCR', KEYS[1])\n\
                  if current == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n\
                  if current > tonumber(ARGV[2]) then return 0 end\n\
                  return current";
    expect(&mut c, &["DEL", "lua:rate"], ":0\r\n");
    for expected in [":1\r\n", ":2\r\n", ":3\r\n", ":0\r\n", ":0\r\n"] {
        expect(
            &mut c,
            &["EVAL", script, "1", "lua:rate", "60", "3"],
            expected,
        );
    }
    let ttl = ask(&mut c, &["TTL", "lua:rate"]);
    assert!(ttl == ":60\r\n" || ttl == ":59\r\n", "{ttl}");
    expect(&mut c, &["GET", "lua:rate"], "$1\r\n5\r\n");
}

#[test]
fn compare_and_set_example() {
    let _serial = serial();
    let mut c = raw(proxy());
    let cas = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
               redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";
    expect(&mut c, &["SET", "lua:cas", "old"], "+OK\r\n");
    expect(
        &mut c,
        &["EVAL", cas, "1", "lua:cas", "nope", "x"],
        ":0\r\n",
    );
    expect(&mut c, &["GET", "lua:cas"], "$3\r\nold\r\n");
    expect(
        &mut c,
        &["EVAL", cas, "1", "lua:cas", "old", "new"],
        ":1\r\n",
    );
    expect(&mut c, &["GET", "lua:cas"], "$3\r\nnew\r\n");
}

#[test]
fn lua_to_redis_conversions() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(
        &mut c,
        &["EVAL", "return {1,2,3.7,'a',nil,5}", "0"],
        "*4\r\n:1\r\n:2\r\n:3\r\n$1\r\na\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return {1,true,false,{ok='st'},{err='E x'}}", "0"],
        "*5\r\n:1\r\n:1\r\n$-1\r\n+st\r\n-E x\r\n",
    );
    expect(&mut c, &["EVAL", "return 3.99", "0"], ":3\r\n");
    expect(&mut c, &["EVAL", "return -3.99", "0"], ":-3\r\n");
    expect(&mut c, &["EVAL", "return true", "0"], ":1\r\n");
    expect(&mut c, &["EVAL", "return false", "0"], "$-1\r\n");
    expect(&mut c, &["EVAL", "return nil", "0"], "$-1\r\n");
    expect(&mut c, &["EVAL", "return 'hi'", "0"], "$2\r\nhi\r\n");
    expect(&mut c, &["EVAL", "return {}", "0"], "*0\r\n");
    expect(
        &mut c,
        &["EVAL", "return redis.status_reply('FINE')", "0"],
        "+FINE\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return redis.error_reply('MY err')", "0"],
        "-MY err\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return redis.error_reply('noprefix')", "0"],
        "-ERR noprefix\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return {{1,{2}},'x'}", "0"],
        "*2\r\n*2\r\n:1\r\n*1\r\n:2\r\n$1\r\nx\r\n",
    );
}

#[test]
fn redis_to_lua_conversions() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(&mut c, &["DEL", "lua:conv", "lua:h", "lua:none"], ":0\r\n");
    // Integer -> number, bulk -> string, nil bulk -> false, status -> {ok}.
    expect(
        &mut c,
        &[
            "EVAL",
            "return type(redis.call('INCR', KEYS[1]))",
            "1",
            "lua:conv",
        ],
        "$6\r\nnumber\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "return type(redis.call('GET', KEYS[1]))",
            "1",
            "lua:conv",
        ],
        "$6\r\nstring\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "local v = redis.call('GET', KEYS[1]) return type(v) .. tostring(v)",
            "1",
            "lua:none",
        ],
        "$12\r\nbooleanfalse\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "return redis.call('SET', KEYS[1], 5)['ok']",
            "1",
            "lua:conv",
        ],
        "$2\r\nOK\r\n",
    );
    // Numbers as arguments are sent as their Lua string form.
    expect(
        &mut c,
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], 3.5) return redis.call('GET', KEYS[1])",
            "1",
            "lua:conv",
        ],
        "$3\r\n3.5\r\n",
    );
    // Multi-bulk -> table.
    expect(&mut c, &["HSET", "lua:h", "f", "v"], ":1\r\n");
    expect(
        &mut c,
        &[
            "EVAL",
            "local t = redis.call('HGETALL', KEYS[1]) return #t .. t[1] .. t[2]",
            "1",
            "lua:h",
        ],
        "$3\r\n2fv\r\n",
    );
    // Error replies seen through pcall are {err = ...} tables.
    expect(
        &mut c,
        &[
            "EVAL",
            "return redis.pcall('INCR', KEYS[1])['err']",
            "1",
            "lua:h",
        ],
        "$65\r\nWRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    // A reply passed back unchanged.
    expect(
        &mut c,
        &[
            "EVAL",
            "return redis.call('HGETALL', KEYS[1])",
            "1",
            "lua:h",
        ],
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
}

#[test]
fn errors_propagate_like_redis_7() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(&mut c, &["SET", "lua:str", "v"], "+OK\r\n");
    let s = "return redis.call('INCR', KEYS[1])";
    expect(
        &mut c,
        &["EVAL", s, "1", "lua:str"],
        &format!(
            "-ERR value is not an integer or out of range script: {}, on @user_script:1.\r\n",
            sha1(s)
        ),
    );
    // pcall returns the error as a value instead.
    expect(
        &mut c,
        &[
            "EVAL",
            "return redis.pcall('INCR', KEYS[1])",
            "1",
            "lua:str",
        ],
        "-ERR value is not an integer or out of range\r\n",
    );
    let s = "local ok = pcall(redis.call, 'INCR', KEYS[1]) return ok";
    expect(&mut c, &["EVAL", s, "1", "lua:str"], "$-1\r\n");
    let s = "error('boom')";
    expect(
        &mut c,
        &["EVAL", s, "0"],
        &format!(
            "-ERR user_script:1: boom script: {}, on @user_script:1.\r\n",
            sha1(s)
        ),
    );
    let s = "error({err='MY boom'})";
    expect(
        &mut c,
        &["EVAL", s, "0"],
        &format!("-MY boom script: {}, on @user_script:1.\r\n", sha1(s)),
    );
    let s = "return redis.call('nosuch')";
    expect(
        &mut c,
        &["EVAL", s, "0"],
        &format!(
            "-ERR Unknown Redis command called from script script: {}, on @user_script:1.\r\n",
            sha1(s)
        ),
    );
    let s = "return redis.call('incr','x','y')";
    expect(&mut c, &["EVAL", s, "0"], &format!(
        "-ERR Wrong number of args calling Redis command from script script: {}, on @user_script:1.\r\n", sha1(s)));
    let s = "return redis.call('get', {})";
    expect(&mut c, &["EVAL", s, "0"], &format!(
        "-ERR Lua redis lib command arguments must be strings or integers script: {}, on @user_script:1.\r\n", sha1(s)));
    let s = "return redis.call('eval','return 1', 0)";
    expect(
        &mut c,
        &["EVAL", s, "0"],
        &format!(
            "-ERR This Redis command is not allowed from script script: {}, on @user_script:1.\r\n",
            sha1(s)
        ),
    );
    // The error is on the line of the call.
    let s = "local a = 1\nlocal v = redis.call('INCR', KEYS[1]) return v";
    expect(
        &mut c,
        &["EVAL", s, "1", "lua:str"],
        &format!(
            "-ERR value is not an integer or out of range script: {}, on @user_script:2.\r\n",
            sha1(s)
        ),
    );
    expect(
        &mut c,
        &["EVAL", "syntax error here", "0"],
        "-ERR Error compiling script (new function): user_script:1: '=' expected near 'error'\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return 1", "-1"],
        "-ERR Number of keys can't be negative\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return 1", "2", "a"],
        "-ERR Number of keys can't be greater than number of args\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return 1"],
        "-ERR wrong number of arguments for 'eval' command\r\n",
    );
    // Writes made before a runtime error stay (Redis has no rollback).
    expect(&mut c, &["DEL", "lua:partial"], ":0\r\n");
    let s = "redis.call('SET', KEYS[1], 'done') error('after')";
    let got = ask(&mut c, &["EVAL", s, "1", "lua:partial"]);
    assert!(got.starts_with("-ERR user_script:1: after"), "{got}");
    expect(&mut c, &["GET", "lua:partial"], "$4\r\ndone\r\n");
}

#[test]
fn sandbox_rejects_globals_and_has_no_os_or_io() {
    let _serial = serial();
    let mut c = raw(proxy());
    let cases = [
        ("x = 1", "Attempt to modify a readonly table"),
        (
            "return os.time()",
            "Script attempted to access nonexistent global variable 'os'",
        ),
        (
            "return io",
            "Script attempted to access nonexistent global variable 'io'",
        ),
        (
            "return dofile",
            "Script attempted to access nonexistent global variable 'dofile'",
        ),
        (
            "return loadfile",
            "Script attempted to access nonexistent global variable 'loadfile'",
        ),
        (
            "return require",
            "Script attempted to access nonexistent global variable 'require'",
        ),
        (
            "return undefined_thing",
            "Script attempted to access nonexistent global variable 'undefined_thing'",
        ),
        ("_G.y = 1", "Attempt to modify a readonly table"),
    ];
    for (script, message) in cases {
        expect(
            &mut c,
            &["EVAL", script, "0"],
            &format!(
                "-ERR user_script:1: {message} script: {}, on @user_script:1.\r\n",
                sha1(script)
            ),
        );
    }
    // Locals are fine, and the libraries Redis ships are there.
    expect(
        &mut c,
        &["EVAL", "local t = {} t.x = 1 return t.x", "0"],
        ":1\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "return string.format('%d-%s', 5, table.concat({'a','b'}, ','))",
            "0",
        ],
        "$5\r\n5-a,b\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return cjson.encode({1,2,{a=1}})", "0"],
        "$13\r\n[1,2,{\"a\":1}]\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return cjson.decode('[1,2,{\"a\":3.5}]')[3].a", "0"],
        ":3\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "return bit.band(7,3)..' '..bit.tohex(255)..' '..bit.bnot(0)..' '..bit.lshift(1,4)",
            "0",
        ],
        "$16\r\n3 000000ff -1 16\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return redis.sha1hex('')", "0"],
        "$40\r\nda39a3ee5e6b4b0d3255bfef95601890afd80709\r\n",
    );
    expect(
        &mut c,
        &[
            "EVAL",
            "redis.log(redis.LOG_WARNING, 'from a test') return 1",
            "0",
        ],
        ":1\r\n",
    );
    // A runaway table (cycle) is cut, not a crash.
    let got = ask(&mut c, &["EVAL", "local t = {} t[1] = t return t", "0"]);
    assert!(got.starts_with('*'), "{got}");
}

/// [`ask`] with binary-safe arguments.
fn ask_bytes(c: &mut RawConn, args: &[&[u8]]) -> String {
    c.send(&resp_command_bytes(args)).expect("send");
    String::from_utf8_lossy(&c.read_reply().expect("reply")).into_owned()
}

#[test]
fn precompiled_chunks_are_refused() {
    // Lua 5.1 does not verify bytecode: a crafted chunk could corrupt the
    // node's memory, so neither EVAL, SCRIPT LOAD nor load() accepts one.
    let _serial = serial();
    let mut c = raw(proxy());
    let dumped = c.cmd(&["EVAL", "return string.dump(function() return 42 end)", "0"]);
    let header_end = dumped
        .iter()
        .position(|&b| b == b'\n')
        .expect("bulk header")
        + 1;
    let bytecode = dumped[header_end..dumped.len() - 2].to_vec();
    assert_eq!(bytecode.first(), Some(&0x1b), "{dumped:?}");
    let refused = "-ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'\r\n";
    assert_eq!(ask_bytes(&mut c, &[b"EVAL", &bytecode, b"0"]), refused);
    assert_eq!(ask_bytes(&mut c, &[b"SCRIPT", b"LOAD", &bytecode]), refused);
    // load() with a reader: text still loads, bytecode gives nil + message.
    let via_load = "local src = ARGV[1] \
        local done = false \
        local f, err = load(function() if done then return nil end done = true return src end) \
        if f then return f() end return err";
    assert_eq!(
        ask_bytes(&mut c, &[b"EVAL", via_load.as_bytes(), b"0", b"return 7"]),
        ":7\r\n"
    );
    assert_eq!(
        ask_bytes(&mut c, &[b"EVAL", via_load.as_bytes(), b"0", &bytecode]),
        "$34\r\nprecompiled chunks are not allowed\r\n"
    );
    // The connection is still usable.
    expect(&mut c, &["EVAL", "return 1", "0"], ":1\r\n");
}

#[test]
fn keys_and_argv() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(
        &mut c,
        &[
            "EVAL",
            "return {KEYS[1],ARGV[1],#KEYS,#ARGV}",
            "1",
            "a",
            "b",
            "c",
        ],
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n:2\r\n",
    );
    expect(&mut c, &["EVAL", "return #KEYS + #ARGV", "0"], ":0\r\n");
}

#[test]
fn evalsha_script_load_exists_and_flush() {
    let _serial = serial();
    let mut c = raw(proxy());
    let body = "return 'cached:' .. ARGV[1]";
    let sha = "5da4f4b8d6d2ba9b60e4bbd6a5ff17b0b5be8a3c";
    let got = ask(&mut c, &["SCRIPT", "LOAD", body]);
    let loaded = got.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(loaded.len(), 40, "{got}");
    assert_ne!(loaded, sha);
    expect(
        &mut c,
        &["EVALSHA", &loaded, "0", "x"],
        "$8\r\ncached:x\r\n",
    );
    // Upper-case SHA works too.
    expect(
        &mut c,
        &["EVALSHA", &loaded.to_uppercase(), "0", "y"],
        "$8\r\ncached:y\r\n",
    );
    expect(
        &mut c,
        &["EVALSHA_RO", &loaded, "0", "z"],
        "$8\r\ncached:z\r\n",
    );
    expect(
        &mut c,
        &["SCRIPT", "EXISTS", &loaded, sha],
        "*2\r\n:1\r\n:0\r\n",
    );
    expect(
        &mut c,
        &["EVALSHA", sha, "0"],
        "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    );
    // EVAL caches the script it runs.
    let eval_body = "return 'via eval'";
    expect(&mut c, &["EVAL", eval_body, "0"], "$8\r\nvia eval\r\n");
    let eval_sha = sha1(eval_body);
    expect(&mut c, &["SCRIPT", "EXISTS", &eval_sha], "*1\r\n:1\r\n");
    // Through another proxy too.
    if let Some(cluster) = &shared_target().cluster {
        let other = cluster.start_proxy(&[1, 2, 3], None);
        let mut d = raw(&other);
        expect(&mut d, &["EVALSHA", &eval_sha, "0"], "$8\r\nvia eval\r\n");
    }
    expect(
        &mut c,
        &["SCRIPT", "LOAD", "syntax error here"],
        "-ERR Error compiling script (new function): user_script:1: '=' expected near 'error'\r\n",
    );
    expect(
        &mut c,
        &["SCRIPT", "NOPE"],
        "-ERR unknown subcommand 'NOPE'. Try SCRIPT HELP.\r\n",
    );
    expect(
        &mut c,
        &["SCRIPT", "FLUSH", "BAD"],
        "-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n",
    );
    // SCRIPT FLUSH forgets scripts. Here, not in a test of its own: it
    // would race with this test's cached scripts. (That FLUSHALL keeps
    // scripts is a unit test: FLUSHALL here would race every other test.)
    let body = "return 'flush-me'";
    let sha = sha1(body);
    expect(&mut c, &["SCRIPT", "EXISTS", &sha], "*1\r\n:1\r\n");
    expect(&mut c, &["SCRIPT", "FLUSH"], "+OK\r\n");
    expect(&mut c, &["SCRIPT", "EXISTS", &sha], "*1\r\n:0\r\n");
    expect(
        &mut c,
        &["EVALSHA", &sha, "0"],
        "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    );
}

#[test]
fn eval_ro_rejects_writes() {
    let _serial = serial();
    let mut c = raw(proxy());
    let s = "return redis.call('SET', KEYS[1], 'v')";
    expect(&mut c, &["EVAL_RO", s, "1", "lua:ro"], &format!(
        "-ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.\r\n", sha1(s)));
    expect(&mut c, &["EXISTS", "lua:ro"], ":0\r\n");
    expect(&mut c, &["SET", "lua:ro", "r"], "+OK\r\n");
    expect(
        &mut c,
        &[
            "EVAL_RO",
            "return redis.call('GET', KEYS[1])",
            "1",
            "lua:ro",
        ],
        "$1\r\nr\r\n",
    );
}

#[test]
fn scripts_mix_with_other_commands_in_a_pipeline() {
    let _serial = serial();
    let mut c = raw(proxy());
    let mut batch = Vec::new();
    batch.extend(common::resp_command(&["SET", "lua:pipe", "1"]));
    batch.extend(common::resp_command(&[
        "EVAL",
        "return redis.call('INCR', KEYS[1])",
        "1",
        "lua:pipe",
    ]));
    batch.extend(common::resp_command(&["GET", "lua:pipe"]));
    batch.extend(common::resp_command(&["SCRIPT", "KILL"]));
    c.send(&batch).expect("send");
    let replies: Vec<String> = (0..4)
        .map(|_| String::from_utf8_lossy(&c.read_reply().expect("reply")).into_owned())
        .collect();
    assert_eq!(
        replies,
        vec![
            "+OK\r\n",
            ":2\r\n",
            "$1\r\n2\r\n",
            "-NOTBUSY No scripts in execution right now.\r\n"
        ]
    );
}

/// The node's `--script-time-limit-ms` (default, as in the harness).
const TIME_LIMIT: Duration = Duration::from_millis(5000);

#[test]
fn script_kill_stops_a_busy_script_while_others_are_served() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(&mut c, &["SET", "lua:busy:k", "v"], "+OK\r\n");
    let body = "while true do end";
    let sha = sha1(body);
    let addr = proxy().to_string();
    let started = Instant::now();
    let runner = thread::spawn(move || {
        let mut r = raw(&addr);
        ask(&mut r, &["EVAL", body, "0"])
    });
    // Other clients keep being served while it spins.
    let mut g = raw(proxy());
    thread::sleep(Duration::from_millis(300));
    let reads = Instant::now();
    for _ in 0..20 {
        expect(&mut g, &["GET", "lua:busy:k"], "$1\r\nv\r\n");
    }
    assert!(
        reads.elapsed() < Duration::from_secs(2),
        "GETs were slow: {:?}",
        reads.elapsed()
    );
    // Before the time limit the script is not "busy" yet (Redis answers
    // nothing else then; we answer everyone): SCRIPT KILL leaves it alone.
    expect(
        &mut g,
        &["SCRIPT", "KILL"],
        "-NOTBUSY No scripts in execution right now.\r\n",
    );
    // Past the limit it keeps running, and other clients are still served.
    thread::sleep((TIME_LIMIT + Duration::from_millis(500)).saturating_sub(started.elapsed()));
    assert!(!runner.is_finished(), "the busy script ended on its own");
    for _ in 0..5 {
        expect(&mut g, &["GET", "lua:busy:k"], "$1\r\nv\r\n");
    }
    expect(&mut g, &["SCRIPT", "KILL"], "+OK\r\n");
    let reply = runner.join().expect("runner");
    assert_eq!(
        reply,
        format!(
            "-ERR Script killed by user with SCRIPT KILL... script: {sha}, on @user_script:1.\r\n"
        )
    );
    expect(
        &mut g,
        &["SCRIPT", "KILL"],
        "-NOTBUSY No scripts in execution right now.\r\n",
    );
}

#[test]
fn a_long_script_returns_its_result_and_once_it_wrote_is_unkillable() {
    let _serial = serial();
    // A busy loop of n steps that writes first; n is sized to run about
    // 7 s (past the time limit and the proxy's 5 s retry deadline).
    let body = "redis.call('SET', KEYS[1], 'started') \
                local n = tonumber(ARGV[1]) local i = 0 \
                while i < n do i = i + 1 end \
                return i";
    let mut c = raw(proxy());
    let timed = |c: &mut RawConn, n: u64| -> (String, Duration) {
        let started = Instant::now();
        let reply = ask(c, &["EVAL", body, "1", "lua:long:k", &n.to_string()]);
        (reply, started.elapsed())
    };
    let probe = 20_000_000u64;
    let (reply, took) = timed(&mut c, probe);
    assert_eq!(reply, format!(":{probe}\r\n"));
    let per_sec = probe as f64 / took.as_secs_f64().max(0.01);
    let n = (per_sec * 7.0) as u64;
    let addr = proxy().to_string();
    let started = Instant::now();
    let runner = thread::spawn(move || {
        let mut r = raw(&addr);
        let reply = ask(&mut r, &["EVAL", body, "1", "lua:long:k", &n.to_string()]);
        (reply, Instant::now())
    });
    let mut g = raw(proxy());
    thread::sleep((TIME_LIMIT + Duration::from_millis(300)).saturating_sub(started.elapsed()));
    if !runner.is_finished() {
        // Busy, but it already wrote: Redis refuses to kill it.
        expect(
            &mut g,
            &["SCRIPT", "KILL"],
            "-UNKILLABLE Sorry the script already executed write commands against the dataset. \
             You can either wait the script termination or kill the server in a hard way using \
             the SHUTDOWN NOSAVE command.\r\n",
        );
    }
    let (reply, ended) = runner.join().expect("runner");
    assert_eq!(reply, format!(":{n}\r\n"));
    eprintln!("the long script ran {:?}", ended - started);
    expect(&mut g, &["GET", "lua:long:k"], "$7\r\nstarted\r\n");
}

#[test]
fn resp3_replies_and_redis_setresp() {
    let _serial = serial();
    let mut c2 = raw(proxy());
    let mut c3 = raw(proxy());
    let hello = ask(&mut c3, &["HELLO", "3"]);
    assert!(hello.starts_with('%'), "{hello}");
    c2.cmd(&["DEL", "lua:r3:h"]);
    expect(&mut c2, &["HSET", "lua:r3:h", "f", "v"], ":1\r\n");
    for (body, resp2, resp3) in [
        // Typed tables keep their type; RESP2 callers get Redis's downgrade.
        (
            "return {map={a=1}}",
            "*2\r\n$1\r\na\r\n:1\r\n",
            "%1\r\n$1\r\na\r\n:1\r\n",
        ),
        ("return {double=1.5}", "$3\r\n1.5\r\n", ",1.5\r\n"),
        (
            "return {set={x=true}}",
            "*1\r\n$1\r\nx\r\n",
            "~1\r\n$1\r\nx\r\n",
        ),
        // Booleans follow the script's protocol, not the caller's.
        ("return true", ":1\r\n", ":1\r\n"),
        ("return false", "$-1\r\n", "_\r\n"),
        ("redis.setresp(3) return true", ":1\r\n", "#t\r\n"),
        ("redis.setresp(3) return false", ":0\r\n", "#f\r\n"),
        // After setresp(3) command replies are RESP3 typed in Lua.
        (
            "redis.setresp(3) return redis.call('HGETALL', KEYS[1])",
            "*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
            "%1\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ),
        (
            "redis.setresp(3) return redis.call('HGETALL', KEYS[1]).map.f",
            "$1\r\nv\r\n",
            "$1\r\nv\r\n",
        ),
        (
            "redis.setresp(3) return tostring(redis.call('GET', 'lua:r3:none'))",
            "$3\r\nnil\r\n",
            "$3\r\nnil\r\n",
        ),
        (
            "return tostring(redis.call('GET', 'lua:r3:none'))",
            "$5\r\nfalse\r\n",
            "$5\r\nfalse\r\n",
        ),
        ("return redis.breakpoint()", "$-1\r\n", "_\r\n"),
        ("return redis.debug('x')", "$-1\r\n", "_\r\n"),
        ("return redis.set_repl(redis.REPL_ALL)", "$-1\r\n", "_\r\n"),
    ] {
        expect(&mut c2, &["EVAL", body, "1", "lua:r3:h"], resp2);
        expect(&mut c3, &["EVAL", body, "1", "lua:r3:h"], resp3);
    }
    let sha = |body: &str| sha1(body);
    for (body, error) in [
        ("redis.setresp(4)", "RESP version must be 2 or 3."),
        ("redis.setresp()", "redis.setresp() requires one argument."),
        (
            "redis.set_repl(9)",
            "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
        ),
    ] {
        expect(
            &mut c2,
            &["EVAL", body, "0"],
            &format!("-ERR {error} script: {}, on @user_script:1.\r\n", sha(body)),
        );
    }
}

#[test]
fn cmsgpack_and_struct_libraries() {
    let _serial = serial();
    let mut c = raw(proxy());
    let packed = c.cmd(&[
        "EVAL",
        "return cmsgpack.pack({1,2,3}, 1.5, 0.1, 'abc')",
        "0",
    ]);
    assert_eq!(
        packed,
        b"$22\r\n\x93\x01\x02\x03\xca\x3f\xc0\x00\x00\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a\xa3abc\r\n".to_vec()
    );
    let cases: [(&str, &[u8]); 8] = [
        (
            "return cmsgpack.unpack(cmsgpack.pack({a=1,b={2,3}})).b[2]",
            b":3\r\n",
        ),
        (
            "return {cmsgpack.unpack_one(cmsgpack.pack(1,2,3))}",
            b"*2\r\n:1\r\n:1\r\n",
        ),
        (
            "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2, 1)}",
            b"*3\r\n:-1\r\n:2\r\n:3\r\n",
        ),
        (
            "return {struct.unpack('>I2', struct.pack('>I2', 258))}",
            b"*2\r\n:258\r\n:3\r\n",
        ),
        (
            "return {struct.unpack('B c0', struct.pack('B c0', 3, 'abc'))}",
            b"*2\r\n$3\r\nabc\r\n:5\r\n",
        ),
        ("return struct.size('>!4 b i')", b":8\r\n"),
        (
            "return struct.pack('<i2s', -2, 'hi')",
            b"$5\r\n\xfe\xffhi\x00\r\n",
        ),
        // Inside pcall a library error is a plain string without position.
        (
            "local ok, err = pcall(cmsgpack.unpack, '\\193') return {tostring(ok), err}",
            b"*2\r\n$5\r\nfalse\r\n$25\r\nBad data format in input.\r\n",
        ),
    ];
    for (body, expected) in cases {
        let got = c.cmd(&["EVAL", body, "0"]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "{body}"
        );
    }
    // Uncaught, it carries the caller's position, as Redis's C libraries do
    // (not after a tail call, `return struct.pack(...)`, which in our Lua
    // wrappers drops the caller's frame: docs/scripting.md).
    for (body, error) in [
        (
            "local r = struct.pack('z') return r",
            "bad argument #1 to 'pack' (invalid format option 'z')",
        ),
        (
            "local r = struct.pack('c5', 'ab') return r",
            "bad argument #3 to 'pack' (string too short)",
        ),
        (
            "local r = struct.size('s') return r",
            "bad argument #1 to 'size' (option 's' has no fixed size)",
        ),
        (
            "local r = cmsgpack.unpack('\\193') return r",
            "Bad data format in input.",
        ),
        (
            "local r = cmsgpack.pack() return r",
            "bad argument #0 to 'pack' (MessagePack pack needs input.)",
        ),
        (
            "local r = cmsgpack.unpack_one('\\1', 5) return r",
            "Start offset 5 greater than input length 1.",
        ),
    ] {
        expect(
            &mut c,
            &["EVAL", body, "0"],
            &format!(
                "-ERR user_script:1: {error} script: {}, on @user_script:1.\r\n",
                sha1(body)
            ),
        );
    }
}

#[test]
fn scripts_are_atomic_and_read_modify_write_is_not_lost() {
    let _serial = serial();
    let mut c = raw(proxy());
    expect(
        &mut c,
        &["DEL", "lua:at:a", "lua:at:b", "lua:at:n"],
        ":0\r\n",
    );
    // Read-modify-write in Lua (GET then SET): lost updates would show up
    // as a final count below the number of runs if conflicts went unseen.
    let bump = "local a = tonumber(redis.call('GET', KEYS[1]) or '0')\n\
                redis.call('SET', KEYS[1], a + 1)\n\
                local n = tonumber(redis.call('GET', KEYS[3]) or '0')\n\
                redis.call('SET', KEYS[2], a + 1)\n\
                redis.call('SET', KEYS[3], n + 1)\n\
                return a + 1";
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let reader = {
        let stop = stop.clone();
        let checks = checks.clone();
        let addr = match &shared_target().cluster {
            Some(cluster) => cluster.start_proxy(&[1, 2, 3], None),
            None => proxy().to_string(),
        };
        thread::spawn(move || {
            let mut r = raw(&addr);
            while !stop.load(Ordering::Relaxed) {
                let got = ask(&mut r, &["MGET", "lua:at:a", "lua:at:b"]);
                // *2, then two values: equal, or both null.
                let mut lines = got.split("\r\n").skip(1);
                let mut value = || match lines.next() {
                    Some("$-1") | None => None,
                    Some(_) => lines.next().map(str::to_string),
                };
                let (a, b) = (value(), value());
                assert_eq!(a, b, "a reader saw a partial script: {got:?}");
                checks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let addr = proxy().to_string();
            thread::spawn(move || {
                let mut w = raw(&addr);
                for _ in 0..30 {
                    // Three writers may exceed the script class's slots on
                    // a small host: a client retries -BUSY after the hint.
                    let got = loop {
                        let got = ask(
                            &mut w,
                            &["EVAL", bump, "3", "lua:at:a", "lua:at:b", "lua:at:n"],
                        );
                        if !got.starts_with("-BUSY") {
                            break got;
                        }
                        thread::sleep(Duration::from_millis(20));
                    };
                    assert!(got.starts_with(':'), "{got}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    assert!(checks.load(Ordering::Relaxed) > 0);
    expect(&mut c, &["GET", "lua:at:n"], "$2\r\n90\r\n");
    expect(
        &mut c,
        &["MGET", "lua:at:a", "lua:at:b"],
        "*2\r\n$2\r\n90\r\n$2\r\n90\r\n",
    );
}
