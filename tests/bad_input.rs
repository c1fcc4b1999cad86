//! Malformed RESP on the wire: each bad connection gets a `-ERR Protocol
//! error...` reply and is closed, the proxy survives, and a client that was
//! connected before keeps working.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT cargo test --test bad_input` runs
//! the same expectations against a real Redis.

mod common;

use common::{shared_target, RawConn};
use std::time::Duration;

/// Sends `bytes` on a fresh connection and asserts a protocol error followed
/// by a close, then checks that `bystander` (connected earlier) still works.
fn assert_protocol_error(name: &str, bytes: &[u8], bystander: &mut RawConn) {
    let target = shared_target();
    let mut bad = RawConn::connect(&target.addr).expect("connect the bad client");
    bad.send(bytes)
        .unwrap_or_else(|e| panic!("{name}: send: {e}"));
    let reply = bad
        .read_to_eof(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{name}: the server must close the connection: {e}"));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("-ERR Protocol error"),
        "{name}: expected a '-ERR Protocol error...' reply, got {text:?}"
    );
    assert!(
        text.ends_with("\r\n"),
        "{name}: reply not CRLF-terminated: {text:?}"
    );
    assert_eq!(
        text.matches("\r\n").count(),
        1,
        "{name}: exactly one reply line expected, got {text:?}"
    );

    // The connected bystander is unaffected.
    assert_eq!(
        bystander.cmd(&["PING"]),
        b"+PONG\r\n",
        "{name}: bystander PING"
    );
    let key = format!("bad_input:{name}");
    assert_eq!(bystander.cmd(&["SET", &key, "still-ok"]), b"+OK\r\n");
    assert_eq!(bystander.cmd(&["GET", &key]), b"$8\r\nstill-ok\r\n");

    // And new clients can still connect.
    let mut fresh = RawConn::connect(&target.addr).expect("connect after bad input");
    assert_eq!(fresh.cmd(&["PING"]), b"+PONG\r\n", "{name}: fresh PING");

    if let Some(cluster) = target.cluster.as_ref() {
        assert!(
            cluster.proxy_alive(cluster.proxy_addr()),
            "{name}: the proxy process died\n{}",
            cluster.log_tail("proxy0", 60)
        );
        let log = cluster.log_tail("proxy0", 10_000);
        assert!(
            !log.contains("panicked"),
            "{name}: the proxy panicked:\n{log}"
        );
    }
}

fn bystander() -> RawConn {
    let mut c = RawConn::connect(&shared_target().addr).expect("connect the bystander");
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    c
}

#[test]
fn garbage_bytes() {
    let mut by = bystander();
    assert_protocol_error("garbage-header", b"*zz\xff\xfe\r\n", &mut by);
    assert_protocol_error("garbage-element", b"*1\r\n\xff\xfe garbage\r\n", &mut by);
    assert_protocol_error("garbage-binary", b"*\xde\xad\xbe\xef\r\n", &mut by);
}

#[test]
fn garbage_after_good_command_answers_it_first() {
    let mut by = bystander();
    let mut c = RawConn::connect(&shared_target().addr).expect("connect");
    c.send(b"*1\r\n$4\r\nPING\r\n*1\r\n!oops\r\n")
        .expect("send");
    assert_eq!(c.read_reply().expect("PING reply"), b"+PONG\r\n");
    let rest = c
        .read_to_eof(Duration::from_secs(15))
        .expect("closed after the protocol error");
    assert!(
        String::from_utf8_lossy(&rest).starts_with("-ERR Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(by.cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn bulk_length_over_the_limit() {
    let mut by = bystander();
    assert_protocol_error("bulk-600MB", b"*1\r\n$600000000\r\n", &mut by);
    assert_protocol_error("bulk-negative", b"*1\r\n$-5\r\n", &mut by);
}

#[test]
fn one_gigabyte_declared_bulk() {
    let mut by = bystander();
    assert_protocol_error(
        "bulk-1GB",
        b"*1\r\n$1073741824\r\nabcdefghijklmnop",
        &mut by,
    );
}

#[test]
fn multibulk_count_over_the_limit() {
    let mut by = bystander();
    assert_protocol_error("array-huge", b"*2147483648\r\n", &mut by);
}

#[test]
fn unterminated_array() {
    let mut by = bystander();
    // The array promises 3 bulk strings; a new array header arrives in place
    // of the third.
    assert_protocol_error(
        "unterminated-array",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
        &mut by,
    );
}

#[test]
fn half_sent_command_then_hangup_does_not_hurt_others() {
    let mut by = bystander();
    for _ in 0..20 {
        let mut c = RawConn::connect(&shared_target().addr).expect("connect");
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk").expect("send half");
        // Dropping closes the socket mid-frame.
    }
    assert_eq!(by.cmd(&["PING"]), b"+PONG\r\n");
    if let Some(cluster) = shared_target().cluster.as_ref() {
        assert!(cluster.proxy_alive(cluster.proxy_addr()));
    }
}
