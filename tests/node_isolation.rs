//! Layer 2: the Raft loop keeps committing (heartbeats and writes) while a
//! node's heavy executor is saturated.
//!
//! The nodes run with a one-thread heavy executor and a one-place queue, and
//! the proxy with every policy off, so nothing in front of the node holds
//! the heavy reads back: the node's own executor is what saturates. Many
//! connections then flood HGETALL on a large hash (some must get the node's
//! `-BUSY heavy executor is full`, proving saturation) while writes run; the
//! writes must all succeed and the leader and term must not change (no
//! missed heartbeats, no election).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Cluster, ClusterOptions};

const FIELDS: usize = 5_000;
const FLOODERS: usize = 8;
const WRITE_PHASE: Duration = Duration::from_secs(6);

#[derive(Default)]
struct FloodStats {
    served: AtomicU64,
    busy: AtomicU64,
    other_errors: AtomicU64,
}

#[test]
fn raft_keeps_committing_while_the_heavy_executor_is_saturated() {
    let cluster = Cluster::start_with(ClusterOptions {
        node_args: ["--heavy-threads", "1", "--heavy-queue", "1"]
            .map(String::from)
            .to_vec(),
        proxy_args: ["--policies", "false"].map(String::from).to_vec(),
        ..Default::default()
    });
    let addr = cluster.proxy_addr().to_string();
    let mut con = cluster.connection();

    // A hash large enough that HGETALL takes real time on the node.
    for chunk in 0..FIELDS / 1000 {
        let mut cmd = redis::cmd("HSET");
        cmd.arg("big");
        for i in chunk * 1000..(chunk + 1) * 1000 {
            cmd.arg(format!("field:{i}"))
                .arg(format!("value-{i}-xxxxxxxxxxxxxxxx"));
        }
        let added: i64 = cmd.query(&mut con).expect("HSET chunk");
        assert_eq!(added, 1000);
    }
    assert_eq!(common::int(&mut con, &["HLEN", "big"]), FIELDS as i64);

    let leader = cluster.leader_id();
    let before: Vec<_> = (1..=3).map(|id| cluster.status(id)).collect();
    let term = before[(leader - 1) as usize].term;

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(FloodStats::default());
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let stop = stop.clone();
            let stats = stats.clone();
            let addr = addr.clone();
            thread::spawn(move || {
                let mut c = common::connect(&addr, None);
                while !stop.load(Ordering::Relaxed) {
                    let v = common::query(&mut c, &["HGETALL", "big"]);
                    match common::error_text(&v) {
                        None => {
                            stats.served.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(e) if e.starts_with("BUSY heavy executor is full, retry after ") => {
                            stats.busy.fetch_add(1, Ordering::Relaxed);
                            // A polite client backs off a little; the flood
                            // stays far above what one thread can serve.
                            thread::sleep(Duration::from_millis(2));
                        }
                        Some(e) => {
                            eprintln!("flooder got {e}");
                            stats.other_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    // Wait (bounded) until the executor is observably saturated.
    common::wait_for(
        "BUSY replies from the node's heavy executor",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || match stats.busy.load(Ordering::Relaxed) {
            0 => Err(format!(
                "served={} busy=0",
                stats.served.load(Ordering::Relaxed)
            )),
            n => Ok(n),
        },
    );

    // Writes while saturated: every one must commit.
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < WRITE_PHASE || writes < 20 {
        let key = format!("iso:{writes}");
        common::check(&mut con, &["SET", &key, &writes.to_string()], "+OK");
        writes += 1;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {writes} writes committed in 120 s while the heavy executor was saturated"
        );
    }
    let busy_during_writes = stats.busy.load(Ordering::Relaxed);

    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().expect("flooder thread");
    }
    let served = stats.served.load(Ordering::Relaxed);
    let busy = stats.busy.load(Ordering::Relaxed);
    eprintln!("writes={writes} heavy served={served} busy={busy}");
    assert_eq!(stats.other_errors.load(Ordering::Relaxed), 0);
    assert!(served > 0, "no HGETALL was served at all");
    assert!(busy_during_writes > 0);

    // The last write is readable and every write is there.
    common::check(
        &mut con,
        &["GET", &format!("iso:{}", writes - 1)],
        &format!("{:?}", (writes - 1).to_string()),
    );
    // Heartbeats kept flowing: same leader, same term on every node, and
    // the log advanced by at least the writes.
    for id in 1..=3 {
        let now = cluster.status(id);
        assert_eq!(now.term, term, "node {id}: term changed: {now:?}");
        assert_eq!(now.leader_id, leader, "node {id}: leader changed: {now:?}");
    }
    let after = cluster.status(leader);
    assert!(after.is_leader());
    assert!(
        after.committed_index >= before[(leader - 1) as usize].committed_index + writes,
        "committed index {} did not advance by {writes} writes",
        after.committed_index
    );
}

/// (thread name, nice, policy) of every thread of process `pid`.
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> Vec<(String, i64, i64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task list")
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            let name = stat[open + 1..close].to_string();
            // Fields after the name start at field 3 (state); nice is field
            // 19 and the scheduling policy field 41.
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            Some((
                name,
                fields.get(16)?.parse().ok()?,
                fields.get(38)?.parse().ok()?,
            ))
        })
        .collect()
}

/// `--heavy-nice` and `--heavy-sched-idle` (on by default): the heavy
/// executor's reads lane runs at a lower CPU priority than the rest of the
/// node and in the SCHED_IDLE policy, while the Raft threads keep the
/// normal one (Linux keeps both per thread). The scripts lane starts at the
/// normal priority; a script calling a heavy command lowers its thread,
/// which ends after its run while a fresh normal thread takes its place.
#[cfg(target_os = "linux")]
#[test]
fn heavy_threads_run_at_a_lower_cpu_priority_than_raft() {
    const SCHED_OTHER: i64 = 0;
    const SCHED_IDLE: i64 = 5;
    let cluster = Cluster::start_with(ClusterOptions {
        node_args: [
            "--heavy-nice",
            "7",
            "--heavy-threads",
            "2",
            "--script-threads",
            "2",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let pid = cluster.node_pid(leader).expect("the leader runs");
    let threads = threads_of(pid);
    let raft: Vec<&(String, i64, i64)> = threads
        .iter()
        .filter(|(n, _, _)| n.starts_with("raft-"))
        .collect();
    assert!(!raft.is_empty(), "{threads:?}");
    assert!(
        raft.iter().all(|(_, _, policy)| *policy == SCHED_OTHER),
        "raft threads keep the normal policy: {threads:?}"
    );
    let base = raft[0].1;
    let named = |threads: &[(String, i64, i64)], prefix: &str| -> Vec<(String, i64, i64)> {
        threads
            .iter()
            .filter(|(n, _, _)| n.starts_with(prefix))
            .cloned()
            .collect()
    };
    let heavy = named(&threads, "heavy-");
    assert_eq!(heavy.len(), 2, "{threads:?}");
    assert!(
        heavy
            .iter()
            .all(|(_, nice, policy)| *nice == (base + 7).min(19) && *policy == SCHED_IDLE),
        "heavy threads at base {base} + 7 and SCHED_IDLE: {threads:?}"
    );
    let normal = |t: &(String, i64, i64)| t.1 == base && t.2 == SCHED_OTHER;
    let scripts = named(&threads, "script-");
    assert_eq!(scripts.len(), 2, "{threads:?}");
    assert!(
        scripts.iter().all(normal),
        "script threads at the normal priority: {threads:?}"
    );

    // A script that calls KEYS runs it at the heavy reads' priority: its
    // thread is lowered and replaced.
    let mut con = cluster.connection();
    let reply: Vec<String> = redis::cmd("EVAL")
        .arg("redis.call('SET', 'iso:k', 'v') return redis.call('KEYS', 'iso:*')")
        .arg(0)
        .query(&mut con)
        .expect("EVAL with KEYS");
    assert_eq!(reply, vec!["iso:k".to_string()]);
    common::wait_for(
        "the lowered script thread to end and a fresh one to take its place",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let scripts = named(&threads_of(pid), "script-");
            let mut names: Vec<&str> = scripts.iter().map(|(n, _, _)| n.as_str()).collect();
            names.sort_unstable();
            let replaced = names == ["script-0", "script-2"] || names == ["script-1", "script-2"];
            if replaced && scripts.iter().all(normal) {
                Ok(())
            } else {
                Err(format!("{scripts:?}"))
            }
        },
    );
}
