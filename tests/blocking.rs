//! Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) through real proxies in front of a real 3-node
//! cluster: immediate service, timeouts, wake-ups from another proxy,
//! first-come-first-served, exactly one element per waiter, chained
//! wake-ups done before the push returns, disconnects and a leader change
//! while clients are blocked.
//!
//! Timing is only ever asserted as "not before the timeout" plus generous
//! liveness bounds: these machines are shared and noisy.

mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    blocked_clients, check, raw_connect as raw, shared_target, spawn_blocked, wait_blocked,
    wait_for, wait_unblocked, Cluster, RawConn,
};

fn proxy() -> &'static str {
    &shared_target().addr
}

fn second_proxy() -> String {
    let cluster = shared_target()
        .cluster
        .as_ref()
        .expect("the blocking tests need a Rampart cluster");
    cluster.start_proxy(&[1, 2, 3], None)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `*2 key value` as raw RESP2 bytes.
fn pair(key: &str, value: &str) -> String {
    format!(
        "*2\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
}

/// RPUSH `key` `value`, retried while the cluster answers errors (a leader
/// change in progress); the integer reply.
fn rpush_once_served(c: &mut RawConn, key: &str, value: &str) -> String {
    wait_for(
        &format!("RPUSH {key} to be served"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let reply = text(&c.cmd(&["RPUSH", key, value]));
            if reply.starts_with(':') {
                Ok(reply)
            } else {
                Err(reply)
            }
        },
    )
}

#[test]
fn data_already_there_is_served_at_once() {
    let mut c = raw(proxy());
    c.cmd(&["RPUSH", "imm:l1", "a", "b", "c"]);
    c.cmd(&["RPUSH", "imm:l2", "x"]);
    // The first non-empty key in argument order.
    assert_eq!(
        text(&c.cmd(&["BLPOP", "imm:none", "imm:l1", "imm:l2", "0"])),
        pair("imm:l1", "a")
    );
    assert_eq!(text(&c.cmd(&["BRPOP", "imm:l1", "1"])), pair("imm:l1", "c"));
    assert_eq!(
        text(&c.cmd(&["BLMOVE", "imm:l1", "imm:dst", "LEFT", "RIGHT", "0"])),
        "$1\r\nb\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["BRPOPLPUSH", "imm:dst", "imm:l2", "0"])),
        "$1\r\nb\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["LRANGE", "imm:l2", "0", "-1"])),
        "*2\r\n$1\r\nb\r\n$1\r\nx\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["BLMPOP", "0", "2", "imm:none", "imm:l2", "RIGHT", "COUNT", "5"])),
        "*2\r\n$6\r\nimm:l2\r\n*2\r\n$1\r\nx\r\n$1\r\nb\r\n"
    );
    // The emptied list is gone.
    assert_eq!(text(&c.cmd(&["EXISTS", "imm:l1", "imm:l2"])), ":0\r\n");

    c.cmd(&["ZADD", "imm:z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(
        text(&c.cmd(&["BZPOPMIN", "imm:none", "imm:z", "0"])),
        "*3\r\n$5\r\nimm:z\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["BZPOPMAX", "imm:z", "0"])),
        "*3\r\n$5\r\nimm:z\r\n$1\r\nc\r\n$1\r\n3\r\n"
    );
    assert_eq!(
        text(&c.cmd(&["BZMPOP", "0", "1", "imm:z", "MIN", "COUNT", "9"])),
        "*2\r\n$5\r\nimm:z\r\n*1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );

    // RESP3: the score is a double.
    let mut c3 = raw(proxy());
    c3.cmd(&["HELLO", "3"]);
    c3.cmd(&["ZADD", "imm:z3", "1.5", "m"]);
    assert_eq!(
        text(&c3.cmd(&["BZPOPMIN", "imm:z3", "0"])),
        "*3\r\n$6\r\nimm:z3\r\n$1\r\nm\r\n,1.5\r\n"
    );
}

#[test]
fn argument_errors_and_wrong_types_answer_at_once() {
    let target = shared_target();
    let mut c = target.connection();
    check(
        &mut c,
        &["BLPOP", "err:l", "-1"],
        "-ERR timeout is negative",
    );
    check(
        &mut c,
        &["BLPOP", "err:l", "soon"],
        "-ERR timeout is not a float or out of range",
    );
    check(
        &mut c,
        &["BZPOPMIN", "err:z", "-0.5"],
        "-ERR timeout is negative",
    );
    check(
        &mut c,
        &["BLMOVE", "err:a", "err:b", "UP", "LEFT", "0"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["BLMPOP", "0", "0", "err:a", "LEFT"],
        "-ERR numkeys should be greater than 0",
    );
    check(
        &mut c,
        &["BLMPOP", "0", "1", "err:a", "LEFT", "COUNT", "0"],
        "-ERR count should be greater than 0",
    );
    check(
        &mut c,
        &["BZMPOP", "0", "1", "err:a", "MIDDLE"],
        "-ERR syntax error",
    );
    check(
        &mut c,
        &["BLPOP", "err:l"],
        "-ERR wrong number of arguments for 'blpop' command",
    );
    check(&mut c, &["SET", "err:s", "v"], "+OK");
    check(
        &mut c,
        &["BLPOP", "err:s", "0"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value",
    );
    check(
        &mut c,
        &["BZPOPMAX", "err:s", "0"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value",
    );
    // The connection stays usable.
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn timeouts_answer_null_after_the_timeout() {
    let mut c = raw(proxy());
    for args in [
        &["BLPOP", "to:a", "to:b", "0.2"][..],
        &["BRPOP", "to:a", "0.2"],
        &["BLMOVE", "to:a", "to:b", "LEFT", "LEFT", "0.2"],
        &["BRPOPLPUSH", "to:a", "to:b", "0.2"],
        &["BLMPOP", "0.2", "1", "to:a", "LEFT"],
        &["BZPOPMIN", "to:z", "0.2"],
        &["BZMPOP", "0.2", "1", "to:z", "MAX"],
    ] {
        let started = Instant::now();
        let reply = text(&c.cmd(args));
        let took = started.elapsed();
        assert_eq!(reply, "*-1\r\n", "{args:?}");
        assert!(took >= Duration::from_millis(200), "{args:?} took {took:?}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    // RESP3 null.
    let mut c3 = raw(proxy());
    c3.cmd(&["HELLO", "3"]);
    assert_eq!(text(&c3.cmd(&["BLPOP", "to:a", "0.1"])), "_\r\n");
    // The connection keeps working after a timeout.
    assert_eq!(text(&c.cmd(&["PING"])), "+PONG\r\n");
}

#[test]
fn a_push_through_another_proxy_wakes_the_blocked_client() {
    let other = second_proxy();
    let blpop = spawn_blocked(proxy(), &["BLPOP", "wake:l", "0"]);
    let bzpop = spawn_blocked(proxy(), &["BZPOPMAX", "wake:z", "wake:z2", "0"]);
    let blmove = spawn_blocked(
        proxy(),
        &["BLMOVE", "wake:src", "wake:dst", "RIGHT", "LEFT", "0"],
    );
    wait_blocked(proxy(), 3);

    let mut pusher = raw(&other);
    assert_eq!(text(&pusher.cmd(&["LPUSH", "wake:l", "hello"])), ":1\r\n");
    assert_eq!(text(&pusher.cmd(&["ZADD", "wake:z2", "7", "m"])), ":1\r\n");
    assert_eq!(
        text(&pusher.cmd(&["RPUSH", "wake:src", "x", "y"])),
        ":2\r\n"
    );

    assert_eq!(blpop.join().unwrap().0, pair("wake:l", "hello"));
    assert_eq!(
        bzpop.join().unwrap().0,
        "*3\r\n$7\r\nwake:z2\r\n$1\r\nm\r\n$1\r\n7\r\n"
    );
    assert_eq!(blmove.join().unwrap().0, "$1\r\ny\r\n");
    assert_eq!(
        text(&pusher.cmd(&["LRANGE", "wake:dst", "0", "-1"])),
        "*1\r\n$1\r\ny\r\n"
    );
    assert_eq!(
        text(&pusher.cmd(&["LRANGE", "wake:src", "0", "-1"])),
        "*1\r\n$1\r\nx\r\n"
    );
    // Both pops emptied their keys.
    assert_eq!(
        text(&pusher.cmd(&["EXISTS", "wake:l", "wake:z2"])),
        ":0\r\n"
    );
}

#[test]
fn a_key_of_another_type_does_not_serve_or_break_a_waiter() {
    // Redis keeps a client blocked while its key holds another type, and
    // serves it from whichever of its keys gets data of the right type.
    let other = second_proxy();
    let waiter = spawn_blocked(proxy(), &["BLPOP", "ty:a", "ty:b", "0"]);
    wait_blocked(proxy(), 1);
    let mut c = raw(&other);
    assert_eq!(text(&c.cmd(&["ZADD", "ty:a", "1", "m"])), ":1\r\n");
    assert_eq!(text(&c.cmd(&["RPUSH", "ty:b", "v"])), ":1\r\n");
    assert_eq!(waiter.join().unwrap().0, pair("ty:b", "v"));
    assert_eq!(text(&c.cmd(&["ZCARD", "ty:a"])), ":1\r\n");
}

/// `*N` of bulk strings as raw RESP2 bytes (an LRANGE reply).
fn list(items: &[&str]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for item in items {
        out.push_str(&format!("${}\r\n{item}\r\n", item.len()));
    }
    out
}

/// Redis serves blocked clients before it runs the next command, so the
/// moves a push unblocks, down a chain, are done when the push returns
/// (Redis's own "Linked LMOVEs", "Circular BRPOPLPUSH" and
/// "Self-referential BRPOPLPUSH" tests). Each check reads right after the
/// push, from another proxy.
#[test]
fn a_push_returns_after_the_moves_it_unblocks() {
    let other = second_proxy();
    let mut c = raw(&other);

    let first = spawn_blocked(proxy(), &["BLMOVE", "ch:1", "ch:2", "RIGHT", "LEFT", "0"]);
    wait_blocked(proxy(), 1);
    let second = spawn_blocked(proxy(), &["BLMOVE", "ch:2", "ch:3", "LEFT", "RIGHT", "0"]);
    wait_blocked(proxy(), 2);
    assert_eq!(text(&c.cmd(&["RPUSH", "ch:1", "foo"])), ":1\r\n");
    assert_eq!(text(&c.cmd(&["LRANGE", "ch:1", "0", "-1"])), list(&[]));
    assert_eq!(text(&c.cmd(&["LRANGE", "ch:2", "0", "-1"])), list(&[]));
    assert_eq!(text(&c.cmd(&["LRANGE", "ch:3", "0", "-1"])), list(&["foo"]));
    assert_eq!(first.join().unwrap().0, "$3\r\nfoo\r\n");
    assert_eq!(second.join().unwrap().0, "$3\r\nfoo\r\n");

    wait_unblocked(proxy());
    let first = spawn_blocked(proxy(), &["BRPOPLPUSH", "circ:1", "circ:2", "0"]);
    wait_blocked(proxy(), 1);
    let second = spawn_blocked(proxy(), &["BRPOPLPUSH", "circ:2", "circ:1", "0"]);
    wait_blocked(proxy(), 2);
    assert_eq!(text(&c.cmd(&["RPUSH", "circ:1", "foo"])), ":1\r\n");
    assert_eq!(
        text(&c.cmd(&["LRANGE", "circ:1", "0", "-1"])),
        list(&["foo"])
    );
    assert_eq!(text(&c.cmd(&["LRANGE", "circ:2", "0", "-1"])), list(&[]));
    assert_eq!(first.join().unwrap().0, "$3\r\nfoo\r\n");
    assert_eq!(second.join().unwrap().0, "$3\r\nfoo\r\n");

    wait_unblocked(proxy());
    let own = spawn_blocked(proxy(), &["BRPOPLPUSH", "self:l", "self:l", "0"]);
    wait_blocked(proxy(), 1);
    assert_eq!(text(&c.cmd(&["RPUSH", "self:l", "foo"])), ":1\r\n");
    assert_eq!(
        text(&c.cmd(&["LRANGE", "self:l", "0", "-1"])),
        list(&["foo"])
    );
    assert_eq!(own.join().unwrap().0, "$3\r\nfoo\r\n");
}

#[test]
fn first_blocked_is_first_served() {
    let first = spawn_blocked(proxy(), &["BRPOP", "fifo:l", "0"]);
    wait_blocked(proxy(), 1);
    let second = spawn_blocked(proxy(), &["BRPOP", "fifo:l", "0"]);
    wait_blocked(proxy(), 2);
    let mut c = raw(proxy());
    c.cmd(&["RPUSH", "fifo:l", "one"]);
    assert_eq!(first.join().unwrap().0, pair("fifo:l", "one"));
    c.cmd(&["RPUSH", "fifo:l", "two"]);
    assert_eq!(second.join().unwrap().0, pair("fifo:l", "two"));
}

#[test]
fn a_hundred_waiters_each_get_exactly_one_element() {
    const WAITERS: usize = 100;
    let addr = proxy().to_string();
    // The proxy admits 8 connections per client IP: spread the waiters
    // over loopback source addresses.
    let handles: Vec<_> = (0..WAITERS)
        .map(|i| {
            let addr = addr.clone();
            let source = format!("127.0.0.{}", 2 + i / 8);
            thread::spawn(move || {
                let mut c = RawConn::connect_from(&source, &addr)
                    .unwrap_or_else(|e| panic!("connect from {source}: {e}"));
                text(&c.cmd(&["BLPOP", "many:l", "0"]))
            })
        })
        .collect();
    wait_blocked(&addr, WAITERS);
    let mut c = raw(&addr);
    let values: Vec<String> = (0..WAITERS).map(|i| format!("v{i}")).collect();
    let mut push = vec!["RPUSH", "many:l"];
    push.extend(values.iter().map(String::as_str));
    c.cmd(&push);
    let got: BTreeSet<String> = handles
        .into_iter()
        .map(|h| h.join().expect("waiter thread"))
        .collect();
    let expected: BTreeSet<String> = values.iter().map(|v| pair("many:l", v)).collect();
    assert_eq!(got, expected, "every element went to exactly one waiter");
    assert_eq!(text(&c.cmd(&["EXISTS", "many:l"])), ":0\r\n");
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_nothing_behind() {
    let mut gone = raw(proxy());
    gone.send(&common::resp_command(&["BLPOP", "dc:l", "0"]))
        .expect("send BLPOP");
    wait_blocked(proxy(), 1);
    drop(gone);
    // The proxy and the node drop the wait: no client is blocked any more...
    let mut c = raw(proxy());
    wait_for(
        "the disconnected waiter to be gone",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let info = text(&c.cmd(&["INFO", "clients"]));
            if info.contains("blocked_clients:0\r\n") {
                Ok(())
            } else {
                Err(info)
            }
        },
    );
    // ...and nobody pops what is pushed next.
    c.cmd(&["RPUSH", "dc:l", "kept"]);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        text(&c.cmd(&["LRANGE", "dc:l", "0", "-1"])),
        "*1\r\n$4\r\nkept\r\n"
    );
    // A new waiter is served normally.
    assert_eq!(text(&c.cmd(&["BLPOP", "dc:l", "1"])), pair("dc:l", "kept"));
}

#[test]
fn a_waiter_survives_a_leader_change() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let waiter = spawn_blocked(&addr, &["BLPOP", "lc:l", "0"]);
    wait_blocked(&addr, 1);
    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new, old);
    // The push goes through the same proxy, which follows the new leader;
    // the waiter was re-armed there.
    let mut c = raw(&addr);
    let pushed = rpush_once_served(&mut c, "lc:l", "after");
    assert_eq!(pushed, ":1\r\n");
    let (reply, _) = waiter.join().unwrap();
    assert_eq!(reply, pair("lc:l", "after"));
    assert_eq!(text(&c.cmd(&["EXISTS", "lc:l"])), ":0\r\n");
}

/// A blocked command that the proxy retries on the new leader waits only
/// what is left of its timeout, not all of it again. Without that it would
/// answer after at least 4 s + the failover + 8 s; the bound leaves room
/// for a slow failover on a noisy machine.
#[test]
fn a_waiter_retried_after_a_leader_change_keeps_its_deadline() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let waiter = spawn_blocked(&addr, &["BLPOP", "dl:l", "8"]);
    wait_blocked(&addr, 1);
    thread::sleep(Duration::from_secs(4));
    let old = cluster.leader_id();
    cluster.kill_node(old);
    let (reply, took) = waiter.join().unwrap();
    assert_eq!(reply, "*-1\r\n");
    assert!(
        took >= Duration::from_millis(7_900),
        "answered early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(12_000),
        "waited its timeout again after the failover: {took:?}"
    );
}

/// Redis counts a client in `blocked_clients` once it is blocked. A
/// command the proxy cannot yet place on a node that waits (no quorum: its
/// first attempt cannot run) is not blocked; counting it would tell a
/// client that writes made now reach it, when they may land before it
/// looks (an XREAD's `$`).
#[test]
fn a_command_that_cannot_wait_yet_is_not_counted_as_blocked() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let mut c = raw(&addr);
    let leader = cluster.leader_id();
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &followers {
        cluster.kill_node(*id);
    }
    let waiter = spawn_blocked(&addr, &["BLPOP", "nq:l", "0"]);
    // The proxy has the command (CLIENT LIST names it) and sends it on.
    wait_for(
        "the BLPOP in CLIENT LIST",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let list = text(&c.cmd(&["CLIENT", "LIST"]));
            if list.contains("cmd=blpop") {
                Ok(())
            } else {
                Err(list)
            }
        },
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(blocked_clients(&mut c), 0, "counted before it could wait");

    // With a quorum again the command waits, and from then on counts.
    for id in &followers {
        cluster.restart_node(*id);
    }
    cluster.wait_for_leader(Duration::from_secs(30));
    wait_blocked(&addr, 1);
    let pushed = rpush_once_served(&mut c, "nq:l", "v");
    assert_eq!(pushed, ":1\r\n");
    let (reply, _) = waiter.join().unwrap();
    assert_eq!(reply, pair("nq:l", "v"));
    assert_eq!(blocked_clients(&mut c), 0);
}
