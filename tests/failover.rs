//! Failover with real processes: SIGKILL the leader under a continuous write
//! load and check that no acknowledged write is lost; restart the killed node
//! and check it catches up, also through a snapshot after log compaction.

mod common;

use common::{connect, wait_for, Cluster, ClusterOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the proxy may take to serve writes again after the leader dies.
const FAILOVER_BOUND: Duration = Duration::from_secs(20);

struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    ack_count: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    handle: thread::JoinHandle<()>,
}

/// Writes `SET key-i i` for i = 0, 1, ... through the proxy until stopped,
/// recording the i of every write that was answered `OK`. Failed or
/// unanswered writes are not retried (their fate is unknown, so they are
/// not checked) and the connection is re-established.
fn start_writer(addr: String) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let ack_count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (s, a, n, e) = (
        stop.clone(),
        acked.clone(),
        ack_count.clone(),
        errors.clone(),
    );
    let handle = thread::spawn(move || {
        let mut con: Option<redis::Connection> = None;
        let mut i: u64 = 0;
        while !s.load(Ordering::Relaxed) {
            if con.is_none() {
                let client = common::redis_client(&addr, None);
                match client.get_connection_with_timeout(Duration::from_secs(5)) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = c.set_write_timeout(Some(Duration::from_secs(10)));
                        con = Some(c);
                    }
                    Err(_) => {
                        e.fetch_add(1, Ordering::Relaxed);
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let Some(c) = con.as_mut() else { continue };
            let result: redis::RedisResult<redis::Value> = redis::cmd("SET")
                .arg(format!("key-{i}"))
                .arg(i.to_string())
                .query(c);
            match result {
                Ok(redis::Value::Okay) => {
                    a.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                    n.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {
                    e.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    e.fetch_add(1, Ordering::Relaxed);
                    // A server error (e.g. CLUSTERDOWN while electing) keeps
                    // the connection; an I/O error drops it.
                    if err.is_io_error() || err.is_unrecoverable_error() {
                        con = None;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            }
            i += 1;
        }
    });
    Writer {
        stop,
        acked,
        ack_count,
        errors,
        handle,
    }
}

impl Writer {
    fn acks(&self) -> u64 {
        self.ack_count.load(Ordering::Relaxed)
    }

    fn wait_for_acks(&self, n: u64, timeout: Duration, what: &str) {
        wait_for(what, timeout, Duration::from_millis(20), || {
            let a = self.acks();
            if a >= n {
                Ok(())
            } else {
                Err(format!(
                    "{a} acks, {} errors",
                    self.errors.load(Ordering::Relaxed)
                ))
            }
        });
    }

    fn finish(self) -> (Vec<u64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread panicked");
        let acked = std::mem::take(&mut *self.acked.lock().unwrap_or_else(|p| p.into_inner()));
        (acked, self.errors.load(Ordering::Relaxed))
    }
}

/// Reads every `key-i` in `ids` through `addr` and returns the ids whose
/// value is missing or wrong.
fn lost_writes(addr: &str, ids: &[u64]) -> Vec<(u64, Option<String>)> {
    let mut con = connect(addr, None);
    let mut lost = Vec::new();
    for chunk in ids.chunks(500) {
        let mut cmd = redis::cmd("MGET");
        for i in chunk {
            cmd.arg(format!("key-{i}"));
        }
        let values: Vec<Option<String>> = cmd
            .query(&mut con)
            .unwrap_or_else(|e| panic!("MGET of acknowledged keys through {addr}: {e}"));
        assert_eq!(values.len(), chunk.len());
        for (i, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(i.to_string().as_str()) {
                lost.push((*i, v));
            }
        }
    }
    lost
}

/// Waits until node `id` has applied at least `index`.
fn wait_caught_up(cluster: &Cluster, id: u64, index: u64, timeout: Duration) {
    wait_for(
        &format!("node {id} to apply up to index {index}"),
        timeout,
        Duration::from_millis(250),
        || {
            let s = cluster.try_status(id)?;
            if s.applied_index >= index {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    );
}

#[test]
fn acknowledged_writes_survive_leader_sigkill() {
    let started = Instant::now();
    let cluster = Cluster::start();
    let leader = cluster.leader_id();
    let writer = start_writer(cluster.proxy_addr().to_string());
    writer.wait_for_acks(300, Duration::from_secs(60), "300 acknowledged writes");

    let acks_before = writer.acks();
    let killed_at = Instant::now();
    cluster.kill_node(leader);
    writer.wait_for_acks(
        acks_before + 1,
        FAILOVER_BOUND,
        "the proxy to acknowledge a write again after the leader was killed",
    );
    let recovery = killed_at.elapsed();
    writer.wait_for_acks(
        acks_before + 300,
        Duration::from_secs(60),
        "300 more acknowledged writes after failover",
    );
    let (acked, errors) = writer.finish();
    let new_leader = cluster.leader_id();
    assert_ne!(new_leader, leader, "a different node leads after the kill");

    let lost = lost_writes(cluster.proxy_addr(), &acked);
    eprintln!(
        "[failover] {} writes acknowledged ({} before the kill), {} failed/unanswered, \
         writes served again {:?} after SIGKILL of leader {leader}; new leader {new_leader}; \
         {} acknowledged writes lost",
        acked.len(),
        acks_before,
        errors,
        recovery,
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes lost or wrong (first 20): {:?}",
        &lost[..lost.len().min(20)]
    );

    // The killed node comes back and catches up with the leader.
    let target = cluster.status(new_leader).applied_index;
    cluster.restart_node(leader);
    wait_caught_up(&cluster, leader, target, Duration::from_secs(60));
    let s = cluster.status(leader);
    assert_eq!(
        s.leader_id, new_leader,
        "restarted node follows the new leader: {s:?}"
    );
    eprintln!(
        "[failover] restarted node {leader} caught up: {s:?}; test took {:?}",
        started.elapsed()
    );
}

#[test]
fn restarted_node_catches_up_via_snapshot_after_compaction() {
    let started = Instant::now();
    let cluster = Cluster::start_with(ClusterOptions {
        snapshot_logs: Some(100),
        snapshot_keep_logs: Some(10),
        ..Default::default()
    });
    let leader = cluster.leader_id();
    let down = (1..=3).find(|&id| id != leader).expect("a follower");
    let mut con = cluster.connection();

    // Some data the down node has, then the node goes away.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    // A pipelined batch travels as one log entry; single writes make one
    // entry each, which is what grows the log.
    let mut write_batch = |con: &mut redis::Connection, from: u64, to: u64, pipelined: bool| {
        if !pipelined {
            for i in from..to {
                let (k, v) = (format!("snap-{i}"), format!("v{i}"));
                let r: redis::Value = redis::cmd("SET")
                    .arg(&k)
                    .arg(&v)
                    .query(con)
                    .unwrap_or_else(|e| panic!("SET {k}: {e}"));
                assert_eq!(r, redis::Value::Okay, "SET {k}");
                expected.insert(k, v);
            }
            return;
        }
        let mut pipe = redis::pipe();
        for i in from..to {
            pipe.cmd("SET")
                .arg(format!("snap-{i}"))
                .arg(format!("v{i}"));
            expected.insert(format!("snap-{i}"), format!("v{i}"));
        }
        let replies: Vec<redis::Value> = pipe
            .query(con)
            .unwrap_or_else(|e| panic!("writing snap-{from}..{to}: {e}"));
        for (k, r) in replies.iter().enumerate() {
            assert_eq!(*r, redis::Value::Okay, "SET snap-{}", from + k as u64);
        }
    };
    write_batch(&mut con, 0, 100, true);
    wait_caught_up(
        &cluster,
        down,
        cluster.status(leader).applied_index,
        Duration::from_secs(30),
    );
    let down_last = cluster.status(down).last_log_index;
    cluster.kill_node(down);

    // Many more writes while it is down, then compact the leader's log past
    // everything the down node has.
    for batch in 0..15u64 {
        let from = 100 + batch * 100;
        write_batch(&mut con, from, from + 100, true);
    }
    write_batch(&mut con, 1600, 1900, false);
    let leader = cluster.leader_id();
    cluster.snapshot(leader);
    let compacted = wait_for(
        "the leader to purge its log past the down node's last index",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let s = cluster.try_status(leader)?;
            if s.snapshot_index > down_last && s.purged_index > down_last {
                Ok(s)
            } else {
                Err(format!("down node's last index {down_last}; leader {s:?}"))
            }
        },
    );
    eprintln!("[snapshot] leader {leader} compacted: {compacted:?}; node {down} had {down_last}");

    cluster.restart_node(down);
    wait_caught_up(
        &cluster,
        down,
        cluster.status(leader).applied_index,
        Duration::from_secs(90),
    );
    let s = cluster.status(down);
    assert!(
        s.snapshot_index > down_last,
        "node {down} caught up without installing a snapshot past {down_last}: {s:?}"
    );
    eprintln!("[snapshot] node {down} caught up through a snapshot: {s:?}");

    // Make the restarted node the leader: kill whichever other node leads,
    // bring it back, repeat until the election goes to `down`.
    let mut current = cluster.leader_id();
    let mut rounds = 0;
    while current != down {
        rounds += 1;
        assert!(
            rounds <= 12,
            "node {down} never won an election in 12 rounds"
        );
        let applied = cluster.status(current).applied_index;
        wait_caught_up(&cluster, down, applied, Duration::from_secs(60));
        cluster.kill_node(current);
        let next = cluster.wait_for_leader(Duration::from_secs(45));
        cluster.restart_node(current);
        let applied = cluster.status(next).applied_index;
        wait_caught_up(&cluster, current, applied, Duration::from_secs(60));
        current = cluster.wait_for_leader(Duration::from_secs(45));
    }
    eprintln!("[snapshot] node {down} is leader after {rounds} leader kill(s)");

    // Read everything through a fresh proxy that only knows that node.
    let proxy = cluster.start_proxy(&[down], None);
    let mut c = connect(&proxy, None);
    let keys: Vec<&String> = expected.keys().collect();
    let mut missing = Vec::new();
    for chunk in keys.chunks(500) {
        let mut cmd = redis::cmd("MGET");
        for k in chunk {
            cmd.arg(k.as_str());
        }
        let values: Vec<Option<String>> = cmd
            .query(&mut c)
            .unwrap_or_else(|e| panic!("MGET through the proxy in front of node {down}: {e}"));
        for (k, v) in chunk.iter().zip(values) {
            if v.as_ref() != expected.get(*k) {
                missing.push(((*k).clone(), v));
            }
        }
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
    eprintln!(
        "[snapshot] {} keys checked through node {down}, {} wrong; DBSIZE {dbsize}; test took {:?}",
        expected.len(),
        missing.len(),
        started.elapsed()
    );
    assert!(
        missing.is_empty(),
        "data missing after snapshot catch-up (first 20): {:?}",
        &missing[..missing.len().min(20)]
    );
    assert_eq!(dbsize, expected.len() as i64);
}
