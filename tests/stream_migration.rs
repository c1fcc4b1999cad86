//! Mode B (chunked) migration of legacy-layout streams, through the proxy:
//! streams of 0, 1, 1023, 1024, 1025 and 100,000 entries are rewritten in
//! the legacy layout (RAMPART.STREAMTOLEGACY) and migrated by ordinary
//! writes while every read command's reply is compared with an identical,
//! never-migrated reference stream after each write; the background
//! drainer migrates cold streams; a SIGKILLed leader mid-migration loses
//! nothing. The nodes' gauges end at zero legacy streams.

mod common;
mod stream_migration_support;

use std::time::Duration;

use common::{connect, render, wait_for, Cluster, ClusterOptions};
use stream_migration_support::{q, wait_for_mode, wait_for_zero_legacy_keys, Pair};

fn cluster(extra: &[&str]) -> Cluster {
    Cluster::start_with(ClusterOptions {
        node_metrics: true,
        node_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ClusterOptions::default()
    })
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[test]
fn mode_b_reads_equal_the_reference_at_every_step() {
    let cluster = cluster(&["--stream-drain-rate", "0"]);
    let mut con = cluster.connection();
    for n in [0u64, 1, 1023, 1024, 1025] {
        let mut pair = Pair::new(&n.to_string(), n);
        pair.create(&mut con);
        pair.migrate(&mut con, 3, 1);
        if n > 1024 {
            assert!(
                pair.formats.iter().any(|f| f.starts_with("mixed")),
                "{n} entries must pass through the mixed state: {:?}",
                pair.formats
            );
        }
    }
    // 100,000 entries: ~98 chunks of 1024. Whole-stream reads at the
    // start, every 25 rounds and at the end.
    let mut big = Pair::new("100k", 100_000);
    big.create(&mut con);
    big.migrate(&mut con, 3, 25);
    assert!(big.formats.len() > 10, "{:?}", big.formats);
    wait_for_zero_legacy_keys(&cluster, &[1, 2, 3]);
}

#[test]
fn internal_commands_are_refused_from_clients() {
    let cluster = cluster(&["--stream-drain-rate", "0"]);
    let mut con = cluster.connection();
    for argv in [
        args(&["rampart.stream.settings", "a"]),
        args(&["rampart.stream.migrate", "k"]),
        args(&["RAMPART.STREAM.MIGRATE", "k", "5"]),
    ] {
        let reply = render(&q(&mut con, &argv));
        assert!(
            reply.starts_with("-ERR unknown command"),
            "{argv:?}: {reply}"
        );
    }
    // Nor inside MULTI (queued commands are checked against the table).
    common::check(&mut con, &["MULTI"], "+OK");
    let queued = render(&q(&mut con, &args(&["rampart.stream.settings", "a"])));
    assert!(queued.starts_with("-ERR unknown command"), "{queued}");
    let exec = render(&q(&mut con, &args(&["EXEC"])));
    assert!(exec.starts_with("-EXECABORT"), "{exec}");
    // Nor from a script.
    let from_script = render(&q(
        &mut con,
        &args(&[
            "EVAL",
            "return redis.call('rampart.stream.settings', 'a')",
            "0",
        ]),
    ));
    assert!(
        from_script.contains("Unknown Redis command"),
        "{from_script}"
    );
    // The mode is still B with the default chunk.
    wait_for_mode(&mut con, "mixed 1");
}

/// The leader is SIGKILLed between migration steps (and again after the
/// migration ended); reads stay equal to the reference and the migration
/// completes on the new leader.
#[test]
fn sigkill_of_the_leader_between_steps_loses_nothing() {
    let cluster = cluster(&[
        "--stream-drain-rate",
        "0",
        "--stream-migration-chunk",
        "256",
    ]);
    let mut con = cluster.connection();
    wait_for_mode(&mut con, "mixed 769");
    let mut pair = Pair::new("crash", 3000);
    pair.create(&mut con);
    for _ in 0..3 {
        pair.round(&mut con, false);
    }
    assert!(
        pair.format(&mut con).starts_with("mixed"),
        "{:?}",
        pair.formats
    );
    let leader = cluster.leader_id();
    cluster.kill_node(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    let mut con = connect(cluster.proxy_addr(), None);
    pair.compare(&mut con, true);
    for _ in 0..2 {
        pair.round(&mut con, false);
    }
    cluster.restart_node(leader);
    pair.migrate(&mut con, 1, 4);
    // Kill the leader once more: the remaining nodes (one of them replayed
    // the migration after its restart) answer the same.
    let leader = cluster.leader_id();
    cluster.kill_node(leader);
    cluster.wait_for_leader(Duration::from_secs(30));
    let mut con = connect(cluster.proxy_addr(), None);
    pair.compare(&mut con, true);
    cluster.restart_node(leader);
    wait_for_zero_legacy_keys(&cluster, &[1, 2, 3]);
}

/// With a drain rate, cold legacy streams become per-entry without any
/// client write, also when the leader dies while the drainer runs.
#[test]
fn drainer_migrates_cold_streams_across_a_leader_kill() {
    let cluster = cluster(&[
        "--stream-drain-rate",
        "1000",
        "--stream-migration-chunk",
        "128",
    ]);
    let mut con = cluster.connection();
    let mut small = Pair::new("cold-small", 10);
    let mut empty = Pair::new("cold-empty", 0);
    let mut big = Pair::new("cold-big", 6000);
    small.create(&mut con);
    empty.create(&mut con);
    big.create(&mut con);
    // The drainer moves at most 1000 entries a second: mixed for seconds.
    wait_for(
        "the drainer to start on the big stream",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || match big.format(&mut con) {
            f if f.starts_with("mixed") => Ok(()),
            f => Err(f),
        },
    );
    big.compare(&mut con, true);
    let leader = cluster.leader_id();
    cluster.kill_node(leader);
    cluster.wait_for_leader(Duration::from_secs(30));
    let mut con = connect(cluster.proxy_addr(), None);
    for pair in [&mut small, &mut empty, &mut big] {
        wait_for(
            &format!("{} to be drained", pair.mig),
            Duration::from_secs(90),
            Duration::from_millis(250),
            || match pair.format(&mut con) {
                f if f == "per-entry" => Ok(()),
                f => Err(f),
            },
        );
        pair.compare(&mut con, true);
    }
    cluster.restart_node(leader);
    wait_for_zero_legacy_keys(&cluster, &[1, 2, 3]);
}
