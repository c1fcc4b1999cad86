//! MULTI / EXEC / DISCARD / WATCH / UNWATCH through real proxies in front of
//! a real 3-node cluster: queueing and its errors, per-command runtime
//! errors, WATCH races between clients on different proxies (writes,
//! deletes, expiry), and EXEC atomicity as a concurrent reader sees it.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT` runs the single-proxy tests
//! against a real Redis (the expected bytes were checked that way).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{shared_target, RawConn};

fn proxy() -> &'static str {
    &shared_target().addr
}

/// A second proxy in front of the same cluster (or the same Redis).
fn other_proxy() -> String {
    match &shared_target().cluster {
        Some(cluster) => cluster.start_proxy(&[1, 2, 3], None),
        None => proxy().to_string(),
    }
}

fn raw(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

#[track_caller]
fn expect(c: &mut RawConn, args: &[&str], expected: &str) {
    let got = String::from_utf8_lossy(&c.cmd(args)).into_owned();
    assert_eq!(got, expected, "{args:?}");
}

#[test]
fn queued_commands_run_in_order_with_their_own_replies() {
    let mut c = raw(proxy());
    expect(&mut c, &["DEL", "tx:a", "tx:l"], ":0\r\n");
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["SET", "tx:a", "1"], "+QUEUED\r\n");
    expect(&mut c, &["INCR", "tx:a"], "+QUEUED\r\n");
    expect(&mut c, &["PING"], "+QUEUED\r\n");
    // A runtime error fails that command only.
    expect(&mut c, &["LPUSH", "tx:a", "x"], "+QUEUED\r\n");
    expect(&mut c, &["GET", "tx:a"], "+QUEUED\r\n");
    expect(&mut c, &["RPUSH", "tx:l", "p", "q"], "+QUEUED\r\n");
    expect(&mut c, &["LRANGE", "tx:l", "0", "-1"], "+QUEUED\r\n");
    expect(
        &mut c,
        &["EXEC"],
        "*7\r\n+OK\r\n:2\r\n+PONG\r\n\
         -WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
         $1\r\n2\r\n:2\r\n*2\r\n$1\r\np\r\n$1\r\nq\r\n",
    );
    // An empty transaction.
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["EXEC"], "*0\r\n");
    // A blocking command inside MULTI does not block.
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["BLPOP", "tx:empty", "0"], "+QUEUED\r\n");
    expect(&mut c, &["EXEC"], "*1\r\n*-1\r\n");
}

#[test]
fn misuse_and_queueing_errors() {
    let mut c = raw(proxy());
    expect(&mut c, &["EXEC"], "-ERR EXEC without MULTI\r\n");
    expect(&mut c, &["DISCARD"], "-ERR DISCARD without MULTI\r\n");
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["MULTI"], "-ERR MULTI calls can not be nested\r\n");
    expect(
        &mut c,
        &["WATCH", "x"],
        "-ERR WATCH inside MULTI is not allowed\r\n",
    );
    expect(&mut c, &["SET", "mis:a", "1"], "+QUEUED\r\n");
    // Neither error above spoils the transaction.
    expect(&mut c, &["EXEC"], "*1\r\n+OK\r\n");

    // Unknown commands and wrong arity do: EXECABORT, nothing applied.
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["SET", "mis:b", "1"], "+QUEUED\r\n");
    expect(
        &mut c,
        &["NOSUCH"],
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    expect(
        &mut c,
        &["SET", "mis:b"],
        "-ERR wrong number of arguments for 'set' command\r\n",
    );
    expect(
        &mut c,
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    expect(&mut c, &["EXISTS", "mis:b"], ":0\r\n");

    // DISCARD drops the queue and the watches.
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["SET", "mis:c", "1"], "+QUEUED\r\n");
    expect(&mut c, &["DISCARD"], "+OK\r\n");
    expect(&mut c, &["EXISTS", "mis:c"], ":0\r\n");
    expect(&mut c, &["GET", "mis:a"], "$1\r\n1\r\n");
}

#[test]
fn a_write_from_another_proxy_aborts_exec() {
    let other = other_proxy();
    let mut a = raw(proxy());
    let mut b = raw(&other);
    expect(&mut a, &["SET", "w:k", "0"], "+OK\r\n");
    expect(&mut a, &["WATCH", "w:k"], "+OK\r\n");
    expect(&mut b, &["SET", "w:k", "theirs"], "+OK\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["SET", "w:k", "mine"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*-1\r\n");
    expect(&mut a, &["GET", "w:k"], "$6\r\ntheirs\r\n");

    // EXEC cleared the watch: the next transaction goes through.
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["SET", "w:k", "mine"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*1\r\n+OK\r\n");

    // Unchanged watched keys (and writes to other keys) let EXEC run.
    expect(&mut a, &["WATCH", "w:k", "w:other"], "+OK\r\n");
    expect(&mut b, &["SET", "w:unrelated", "1"], "+OK\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["INCR", "w:counter"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*1\r\n:1\r\n");

    // UNWATCH forgets.
    expect(&mut a, &["WATCH", "w:k"], "+OK\r\n");
    expect(&mut b, &["SET", "w:k", "again"], "+OK\r\n");
    expect(&mut a, &["UNWATCH"], "+OK\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["GET", "w:k"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*1\r\n$5\r\nagain\r\n");

    // RESP3: an aborted EXEC is a null.
    let mut a3 = raw(proxy());
    a3.cmd(&["HELLO", "3"]);
    expect(&mut a3, &["WATCH", "w:k"], "+OK\r\n");
    expect(&mut b, &["DEL", "w:k"], ":1\r\n");
    expect(&mut a3, &["MULTI"], "+OK\r\n");
    expect(&mut a3, &["GET", "w:k"], "+QUEUED\r\n");
    expect(&mut a3, &["EXEC"], "_\r\n");
}

#[test]
fn deletes_recreations_and_expiry_of_watched_keys() {
    let other = other_proxy();
    let mut a = raw(proxy());
    let mut b = raw(&other);

    // Created and deleted again while watched (absent both times): changed.
    expect(&mut a, &["WATCH", "e:ghost"], "+OK\r\n");
    expect(&mut b, &["SET", "e:ghost", "1"], "+OK\r\n");
    expect(&mut b, &["DEL", "e:ghost"], ":1\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["PING"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*-1\r\n");

    // A command that changes nothing is not a change.
    expect(&mut a, &["WATCH", "e:absent"], "+OK\r\n");
    expect(&mut b, &["DEL", "e:absent"], ":0\r\n");
    expect(&mut b, &["LPOP", "e:absent"], "$-1\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["PING"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*1\r\n+PONG\r\n");

    // Expiring while watched is a change.
    expect(&mut a, &["SET", "e:ttl", "v", "PX", "150"], "+OK\r\n");
    expect(&mut a, &["WATCH", "e:ttl"], "+OK\r\n");
    thread::sleep(Duration::from_millis(400));
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["SET", "e:after", "1"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*-1\r\n");
    expect(&mut a, &["EXISTS", "e:after"], ":0\r\n");

    // Collections: an element write is a change.
    expect(&mut a, &["HSET", "e:h", "f", "1"], ":1\r\n");
    expect(&mut a, &["WATCH", "e:h"], "+OK\r\n");
    expect(&mut b, &["HSET", "e:h", "f", "2"], ":0\r\n");
    expect(&mut a, &["MULTI"], "+OK\r\n");
    expect(&mut a, &["HGET", "e:h", "f"], "+QUEUED\r\n");
    expect(&mut a, &["EXEC"], "*-1\r\n");
}

#[test]
fn exec_is_atomic_for_a_reader_on_another_proxy() {
    let other = other_proxy();
    let mut setup = raw(proxy());
    expect(&mut setup, &["MSET", "at:a", "0", "at:b", "0"], "+OK\r\n");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        thread::spawn(move || {
            let mut r = raw(&other);
            let mut reads = 0u32;
            let mut torn = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let reply = String::from_utf8_lossy(&r.cmd(&["MGET", "at:a", "at:b"])).into_owned();
                let values: Vec<&str> = reply
                    .split("\r\n")
                    .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
                    .collect();
                if values.len() != 2 || values[0] != values[1] {
                    torn.push(reply);
                }
                reads += 1;
            }
            (reads, torn)
        })
    };
    let mut w = raw(proxy());
    for _ in 0..150 {
        expect(&mut w, &["MULTI"], "+OK\r\n");
        expect(&mut w, &["INCR", "at:a"], "+QUEUED\r\n");
        expect(&mut w, &["GET", "at:b"], "+QUEUED\r\n");
        expect(&mut w, &["INCR", "at:b"], "+QUEUED\r\n");
        let reply = String::from_utf8_lossy(&w.cmd(&["EXEC"])).into_owned();
        assert!(reply.starts_with("*3\r\n:"), "EXEC replied {reply:?}");
    }
    done.store(true, Ordering::Relaxed);
    let (reads, torn) = reader.join().expect("reader");
    assert!(reads > 0);
    assert!(
        torn.is_empty(),
        "the reader saw partial transactions: {torn:?}"
    );
    expect(
        &mut w,
        &["MGET", "at:a", "at:b"],
        "*2\r\n$3\r\n150\r\n$3\r\n150\r\n",
    );
}

#[test]
fn concurrent_watch_increments_never_lose_an_update() {
    // The classic optimistic counter: WATCH, GET, MULTI, SET n+1, EXEC,
    // retried on abort, from two clients on two proxies.
    let other = other_proxy();
    let addrs = [proxy().to_string(), other];
    let workers: Vec<_> = addrs
        .into_iter()
        .map(|addr| {
            thread::spawn(move || {
                let mut c = raw(&addr);
                let mut aborts = 0u32;
                for _ in 0..40 {
                    loop {
                        expect(&mut c, &["WATCH", "cas:n"], "+OK\r\n");
                        let got = String::from_utf8_lossy(&c.cmd(&["GET", "cas:n"])).into_owned();
                        let n: i64 = got
                            .split("\r\n")
                            .nth(1)
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        expect(&mut c, &["MULTI"], "+OK\r\n");
                        let next = (n + 1).to_string();
                        expect(&mut c, &["SET", "cas:n", &next], "+QUEUED\r\n");
                        let exec = String::from_utf8_lossy(&c.cmd(&["EXEC"])).into_owned();
                        if exec == "*1\r\n+OK\r\n" {
                            break;
                        }
                        assert_eq!(exec, "*-1\r\n");
                        aborts += 1;
                    }
                }
                aborts
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut c = raw(proxy());
    expect(&mut c, &["GET", "cas:n"], "$2\r\n80\r\n");
}

fn sha_of(c: &mut RawConn, body: &str) -> String {
    let got = String::from_utf8_lossy(&c.cmd(&["SCRIPT", "LOAD", body])).into_owned();
    got.lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn scripts_inside_multi_run_in_order_with_the_other_commands() {
    let mut c = raw(proxy());
    c.cmd(&["DEL", "txs:a"]);
    let incrby = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let incrby_sha = sha_of(&mut c, incrby);
    let bad = "return redis.call('LPUSH', KEYS[1], 'x')";
    let bad_sha = sha_of(&mut c, bad);
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["SET", "txs:a", "1"], "+QUEUED\r\n");
    expect(
        &mut c,
        &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "txs:a"],
        "+QUEUED\r\n",
    );
    expect(
        &mut c,
        &["EVALSHA", &incrby_sha, "1", "txs:a", "10"],
        "+QUEUED\r\n",
    );
    // A script's runtime error is that command's reply only.
    expect(&mut c, &["EVAL", bad, "1", "txs:a"], "+QUEUED\r\n");
    expect(
        &mut c,
        &["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "txs:a"],
        "+QUEUED\r\n",
    );
    expect(
        &mut c,
        &["EVAL", "return {1, 'two', {ok='fine'}}", "0"],
        "+QUEUED\r\n",
    );
    expect(&mut c, &["EVALSHA", &"0".repeat(40), "0"], "+QUEUED\r\n");
    expect(&mut c, &["GET", "txs:a"], "+QUEUED\r\n");
    expect(
        &mut c,
        &["EXEC"],
        &format!(
            "*8\r\n+OK\r\n:2\r\n:12\r\n\
             -WRONGTYPE Operation against a key holding the wrong kind of value script: {bad_sha}, on @user_script:1.\r\n\
             $2\r\n12\r\n*3\r\n:1\r\n$3\r\ntwo\r\n+fine\r\n\
             -NOSCRIPT No matching script. Please use EVAL.\r\n$2\r\n12\r\n"
        ),
    );
    // A script first seen inside MULTI is cached by its EXEC.
    let fresh = "return 'fresh-txs-script'";
    let fresh_sha = {
        expect(&mut c, &["MULTI"], "+OK\r\n");
        expect(&mut c, &["EVAL", fresh, "0"], "+QUEUED\r\n");
        expect(&mut c, &["EXEC"], "*1\r\n$16\r\nfresh-txs-script\r\n");
        sha_of(&mut c, fresh)
    };
    expect(
        &mut c,
        &["EVALSHA", &fresh_sha, "0"],
        "$16\r\nfresh-txs-script\r\n",
    );
}

#[test]
fn watch_aborts_a_transaction_holding_a_script() {
    let other = other_proxy();
    let mut c = raw(proxy());
    let mut o = raw(&other);
    expect(
        &mut c,
        &["MSET", "txw:k", "1", "txw:out", "none"],
        "+OK\r\n",
    );
    let body = "redis.call('SET', KEYS[2], redis.call('GET', KEYS[1])) return 'done'";
    // Changed through another proxy between WATCH and EXEC: nothing applies.
    expect(&mut c, &["WATCH", "txw:k"], "+OK\r\n");
    expect(&mut o, &["SET", "txw:k", "2"], "+OK\r\n");
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(
        &mut c,
        &["EVAL", body, "2", "txw:k", "txw:out"],
        "+QUEUED\r\n",
    );
    expect(&mut c, &["SET", "txw:other", "x"], "+QUEUED\r\n");
    expect(&mut c, &["EXEC"], "*-1\r\n");
    expect(&mut c, &["GET", "txw:out"], "$4\r\nnone\r\n");
    expect(&mut c, &["EXISTS", "txw:other"], ":0\r\n");
    // Unchanged: it applies, and the script saw the latest value.
    expect(&mut c, &["WATCH", "txw:k"], "+OK\r\n");
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(
        &mut c,
        &["EVAL", body, "2", "txw:k", "txw:out"],
        "+QUEUED\r\n",
    );
    expect(&mut c, &["EXEC"], "*1\r\n$4\r\ndone\r\n");
    expect(&mut o, &["GET", "txw:out"], "$1\r\n2\r\n");
}

#[test]
fn transactions_with_scripts_are_atomic_and_lose_no_update() {
    // Read-modify-write inside a script inside MULTI, from two proxies at
    // once: conflicting commits are re-run, so no increment is lost, and a
    // reader on a third connection never sees the two keys apart.
    let other = other_proxy();
    let mut setup = raw(proxy());
    expect(&mut setup, &["MSET", "txa:a", "0", "txa:b", "0"], "+OK\r\n");
    let body = "local v = tonumber(redis.call('GET', KEYS[1])) \
                redis.call('SET', KEYS[1], v + 1) return v + 1";
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let addr = other.clone();
        thread::spawn(move || {
            let mut r = raw(&addr);
            let mut torn = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let reply =
                    String::from_utf8_lossy(&r.cmd(&["MGET", "txa:a", "txa:b"])).into_owned();
                let values: Vec<&str> = reply
                    .split("\r\n")
                    .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
                    .collect();
                if values.len() != 2 || values[0] != values[1] {
                    torn.push(reply);
                }
            }
            torn
        })
    };
    let workers: Vec<_> = [proxy().to_string(), other]
        .into_iter()
        .map(|addr| {
            thread::spawn(move || {
                let mut c = raw(&addr);
                for _ in 0..30 {
                    expect(&mut c, &["MULTI"], "+OK\r\n");
                    expect(&mut c, &["EVAL", body, "1", "txa:a"], "+QUEUED\r\n");
                    expect(&mut c, &["INCR", "txa:b"], "+QUEUED\r\n");
                    let reply = String::from_utf8_lossy(&c.cmd(&["EXEC"])).into_owned();
                    let values: Vec<&str> = reply.split("\r\n").collect();
                    assert!(
                        values.len() == 4 && values[0] == "*2" && values[1] == values[2],
                        "EXEC replied {reply:?}"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    done.store(true, Ordering::Relaxed);
    let torn = reader.join().expect("reader");
    assert!(
        torn.is_empty(),
        "the reader saw partial transactions: {torn:?}"
    );
    expect(
        &mut setup,
        &["MGET", "txa:a", "txa:b"],
        "*2\r\n$2\r\n60\r\n$2\r\n60\r\n",
    );
}
