//! EVALSHA after the leader dies: scripts are cached through Raft, so the
//! new leader knows them. A test binary of its own because it needs its own
//! cluster (the harness runs one cluster per test process at a time, and
//! killing the shared cluster's leader would disturb the other tests).

mod common;

use std::time::Duration;

use common::{Cluster, RawConn};

fn ask(c: &mut RawConn, args: &[&str]) -> String {
    String::from_utf8_lossy(&c.cmd(args)).into_owned()
}

#[test]
fn evalsha_works_after_the_leader_fails() {
    if std::env::var("RAMPART_TEST_REDIS_ADDR").is_ok() {
        return;
    }
    let cluster = Cluster::start();
    let mut c = RawConn::connect(cluster.proxy_addr()).expect("connect");
    let got = ask(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"],
    );
    let sha = got.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(sha.len(), 40, "{got}");
    assert_eq!(ask(&mut c, &["EVALSHA", &sha, "1", "lua:fo"]), ":1\r\n");
    // A script cached by EVAL (not SCRIPT LOAD) survives too.
    let body = "return 'eval-cached'";
    assert_eq!(ask(&mut c, &["EVAL", body, "0"]), "$11\r\neval-cached\r\n");
    let got = ask(
        &mut c,
        &["EVAL", "return redis.sha1hex(ARGV[1])", "0", body],
    );
    let eval_sha = got.lines().nth(1).unwrap_or_default().to_string();
    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new, old);
    let mut c = RawConn::connect(cluster.proxy_addr()).expect("connect");
    assert_eq!(ask(&mut c, &["EVALSHA", &sha, "1", "lua:fo"]), ":2\r\n");
    assert_eq!(
        ask(
            &mut c,
            &[
                "SCRIPT",
                "EXISTS",
                &sha,
                "0000000000000000000000000000000000000000"
            ]
        ),
        "*2\r\n:1\r\n:0\r\n"
    );
    assert_eq!(
        ask(&mut c, &["EVALSHA", &eval_sha, "0"]),
        "$11\r\neval-cached\r\n"
    );
}
