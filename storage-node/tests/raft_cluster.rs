//! A three-node cluster in one process, on loopback with temp dirs, talking
//! over the real gRPC transport.

use std::time::{Duration, Instant};

use rampart_node::{start, NodeArgs, NodeHandle};
use rampart_proto::pb::admin_client::AdminClient;
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::kv_client::KvClient;
use rampart_proto::pb::{
    AddLearnerRequest, ClusterStatus, Command, ExecuteRequest, InitializeRequest, NodeAddress,
    StatusRequest,
};
use rampart_proto::{reply, Reply};
use tempfile::TempDir;

const SNAPSHOT_CHUNK: u64 = 4096;

struct Slot {
    dir: TempDir,
    node: Option<NodeHandle>,
    raft_addr: String,
    client_addr: String,
}

struct Cluster {
    slots: Vec<Slot>,
    snapshot_keep_logs: u64,
}

fn args(id: u64, dir: &TempDir, raft: &str, client: &str, keep: u64) -> NodeArgs {
    NodeArgs {
        id: Some(id),
        raft_addr: Some(raft.to_string()),
        client_addr: Some(client.to_string()),
        data_dir: Some(dir.path().join("db")),
        snapshot_logs: Some(100_000),
        snapshot_keep_logs: Some(keep),
        // Small chunks: a snapshot crosses the transport in many messages.
        snapshot_chunk_bytes: Some(SNAPSHOT_CHUNK),
        election_timeout_ms: Some(600),
        write_timeout_ms: Some(3000),
        config: None,
        metrics_addr: None,
        // In-process nodes on loopback: plaintext links (tests/mtls.rs
        // covers mutual TLS).
        insecure: Some(true),
        ..NodeArgs::default()
    }
}

async fn start_node(id: u64, dir: &TempDir, raft: &str, client: &str, keep: u64) -> NodeHandle {
    let cfg = args(id, dir, raft, client, keep).resolve().expect("config");
    start(cfg).await.expect("node starts")
}

fn addr_of(slot: &Slot, id: u64) -> NodeAddress {
    NodeAddress {
        id,
        raft_addr: slot.raft_addr.clone(),
        client_addr: slot.client_addr.clone(),
        metrics_url: String::new(),
    }
}

impl Cluster {
    async fn new(n: u64, keep: u64) -> Cluster {
        let mut slots = Vec::new();
        for id in 1..=n {
            slots.push(Self::fresh_slot(id, keep).await);
        }
        Cluster {
            slots,
            snapshot_keep_logs: keep,
        }
    }

    async fn fresh_slot(id: u64, keep: u64) -> Slot {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start_node(id, &dir, "127.0.0.1:0", "127.0.0.1:0", keep).await;
        Slot {
            raft_addr: node.raft_addr.to_string(),
            client_addr: node.client_addr.to_string(),
            dir,
            node: Some(node),
        }
    }

    fn slot(&self, id: u64) -> &Slot {
        &self.slots[(id - 1) as usize]
    }

    async fn admin(&self, id: u64) -> AdminClient<tonic::transport::Channel> {
        // Admin is served on the Raft listener only.
        AdminClient::connect(format!("http://{}", self.slot(id).raft_addr))
            .await
            .expect("admin connect")
    }

    async fn kv(&self, id: u64) -> KvClient<tonic::transport::Channel> {
        KvClient::connect(format!("http://{}", self.slot(id).client_addr))
            .await
            .expect("kv connect")
    }

    async fn status(&self, id: u64) -> ClusterStatus {
        self.admin(id)
            .await
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    async fn initialize(&self) {
        let members = (1..=self.slots.len() as u64)
            .map(|id| addr_of(self.slot(id), id))
            .collect();
        let reply = self
            .admin(1)
            .await
            .initialize(InitializeRequest { members })
            .await
            .expect("initialize")
            .into_inner();
        assert!(reply.ok, "{}", reply.message);
    }

    /// Waits until every running node agrees on one leader among `among`.
    async fn wait_leader(&self, among: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = Vec::new();
            for &id in among {
                seen.push(self.status(id).await.leader_id);
            }
            if seen[0] != 0 && among.contains(&seen[0]) && seen.iter().all(|l| *l == seen[0]) {
                return seen[0];
            }
            assert!(Instant::now() < deadline, "no leader agreed: {seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(&mut self, id: u64) {
        let node = self.slots[(id - 1) as usize].node.take().expect("running");
        node.shutdown().await.expect("clean shutdown");
    }

    async fn restart(&mut self, id: u64) {
        let keep = self.snapshot_keep_logs;
        let slot = &self.slots[(id - 1) as usize];
        let node = start_node(id, &slot.dir, &slot.raft_addr, &slot.client_addr, keep).await;
        self.slots[(id - 1) as usize].node = Some(node);
    }

    async fn shutdown(mut self) {
        for id in 1..=self.slots.len() as u64 {
            if self.slot(id).node.is_some() {
                self.stop(id).await;
            }
        }
    }
}

fn cmd(parts: &[&str]) -> Command {
    Command {
        args: parts.iter().map(|p| p.as_bytes().to_vec()).collect(),
    }
}

async fn execute(
    kv: &mut KvClient<tonic::transport::Channel>,
    client_id: &str,
    seq: u64,
    commands: Vec<Command>,
) -> Outcome {
    kv.execute(ExecuteRequest {
        commands,
        client_id: client_id.to_string(),
        request_seq: seq,
        ..Default::default()
    })
    .await
    .expect("execute rpc")
    .into_inner()
    .outcome
    .expect("outcome set")
}

fn replies(outcome: Outcome) -> Vec<Reply> {
    match outcome {
        Outcome::Replies(r) => r.replies,
        other => panic!("expected replies, got {other:?}"),
    }
}

async fn wait_applied(cluster: &Cluster, id: u64, at_least: u64) -> ClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = cluster.status(id).await;
        if st.applied_index >= at_least {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} stuck at applied {} < {at_least}",
            st.applied_index
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_reads_redirects_dedup_and_failover() {
    let mut cluster = Cluster::new(3, 1000).await;
    cluster.initialize().await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let mut kv = cluster.kv(leader).await;

    // A pipelined batch: writes and reads interleaved, replies in order.
    let out = execute(
        &mut kv,
        "test-client",
        1,
        vec![
            cmd(&["SET", "k", "v1"]),
            cmd(&["GET", "k"]),
            cmd(&["SET", "k", "v2"]),
            cmd(&["INCR", "n"]),
            cmd(&["GET", "k"]),
        ],
    )
    .await;
    assert_eq!(
        replies(out),
        vec![
            reply::ok(),
            reply::bulk("v1"),
            reply::ok(),
            reply::integer(1),
            reply::bulk("v2"),
        ]
    );

    // Empty batch and empty command are answered, not crashed on.
    let out = execute(&mut kv, "test-client", 2, vec![]).await;
    assert!(
        matches!(&replies(out)[..], [r] if matches!(r.kind, Some(rampart_proto::pb::reply::Kind::Error(_))))
    );
    let out = execute(
        &mut kv,
        "test-client",
        3,
        vec![cmd(&[]), cmd(&["GET", "k"])],
    )
    .await;
    let r = replies(out);
    assert!(matches!(
        r[0].kind,
        Some(rampart_proto::pb::reply::Kind::Error(_))
    ));
    assert_eq!(r[1], reply::bulk("v2"));

    // The same (client_id, seq) twice is applied once.
    let batch = vec![cmd(&["INCR", "n"]), cmd(&["GET", "n"]), cmd(&["INCR", "n"])];
    let first = replies(execute(&mut kv, "dedup-client", 7, batch.clone()).await);
    let again = replies(execute(&mut kv, "dedup-client", 7, batch.clone()).await);
    assert_eq!(
        first,
        vec![reply::integer(2), reply::bulk("2"), reply::integer(3)]
    );
    assert_eq!(again[0], reply::integer(2));
    assert_eq!(again[2], reply::integer(3));
    let after = replies(execute(&mut kv, "dedup-client", 8, vec![cmd(&["GET", "n"])]).await);
    assert_eq!(after, vec![reply::bulk("3")]);
    // A different client with the same seq is not deduplicated against it.
    let other = replies(execute(&mut kv, "other-client", 7, vec![cmd(&["INCR", "n"])]).await);
    assert_eq!(other, vec![reply::integer(4)]);

    // A follower redirects to the leader's client address.
    let follower = (1..=3).find(|id| *id != leader).expect("follower");
    let mut fkv = cluster.kv(follower).await;
    for commands in [vec![cmd(&["SET", "x", "1"])], vec![cmd(&["GET", "k"])]] {
        match execute(&mut fkv, "test-client", 20, commands).await {
            Outcome::NotLeader(nl) => {
                assert_eq!(nl.leader_id, leader);
                assert_eq!(nl.leader_addr, cluster.slot(leader).client_addr);
            }
            other => panic!("expected NotLeader, got {other:?}"),
        }
    }

    // Kill the leader: the other two elect a new one and keep every write.
    cluster.stop(leader).await;
    let rest: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = cluster.wait_leader(&rest).await;
    assert_ne!(new_leader, leader);
    let mut kv = cluster.kv(new_leader).await;
    let out = replies(
        execute(
            &mut kv,
            "test-client",
            30,
            vec![
                cmd(&["GET", "k"]),
                cmd(&["GET", "n"]),
                cmd(&["SET", "k", "v3"]),
            ],
        )
        .await,
    );
    assert_eq!(out, vec![reply::bulk("v2"), reply::bulk("4"), reply::ok()]);

    // The old leader comes back from its data dir and follows.
    cluster.restart(leader).await;
    let st = cluster.status(new_leader).await;
    let back = wait_applied(&cluster, leader, st.applied_index).await;
    assert_eq!(back.leader_id, new_leader);
    assert_eq!(back.state, "follower");

    cluster.shutdown().await;
}

/// Many clients at once: their write runs share Raft entries, yet each
/// batch gets its own replies in order, reads between runs see the run
/// before them, and an identical retry of every batch applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_share_entries_and_stay_deduplicated() {
    const CLIENTS: u64 = 40;
    let cluster = Cluster::new(3, 1000).await;
    cluster.initialize().await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let kv = cluster.kv(leader).await;
    let applied_before = cluster.status(leader).await.applied_index;

    let batch = |i: u64| {
        let key = format!("k{i}");
        let value = format!("v{i}");
        vec![
            cmd(&["INCR", "total"]),
            cmd(&["SET", &key, &value]),
            cmd(&["GET", &key]),
            cmd(&["APPEND", &key, "!"]),
            cmd(&["INCR", "total"]),
        ]
    };
    let run_all = |round: &'static str| {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let mut kv = kv.clone();
                let commands = batch(i);
                tokio::spawn(async move {
                    let client = format!("client-{i}");
                    let out = replies(execute(&mut kv, &client, 1, commands).await);
                    (i, out)
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for task in tasks {
                all.push(task.await.unwrap_or_else(|e| panic!("{round}: {e}")));
            }
            all
        }
    };

    let first = run_all("first").await;
    let mut totals = Vec::new();
    for (i, out) in &first {
        assert_eq!(out.len(), 5);
        assert_eq!(out[1], reply::ok());
        assert_eq!(out[2], reply::bulk(format!("v{i}")));
        assert_eq!(out[3], reply::integer(format!("v{i}").len() as i64 + 1));
        // The two INCRs of one batch are in different runs: other clients'
        // increments may land between them, but never the same value twice.
        for r in [&out[0], &out[4]] {
            match r.kind {
                Some(rampart_proto::pb::reply::Kind::Integer(n)) => totals.push(n),
                ref other => panic!("expected an integer, got {other:?}"),
            }
        }
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=2 * CLIENTS as i64).collect::<Vec<_>>());

    // Without batching this is one entry per write run; how many runs share
    // an entry depends on timing, so the count is only reported.
    let entries = cluster.status(leader).await.applied_index - applied_before;
    eprintln!("{} write runs took {entries} entries", 2 * CLIENTS);

    // Retries of every batch, concurrently: stored replies for the writes,
    // nothing applied again.
    let again = run_all("retry").await;
    for ((_, a), (_, b)) in first.iter().zip(&again) {
        assert_eq!(a[0], b[0]);
        assert_eq!(a[1], b[1]);
        assert_eq!(a[3], b[3]);
        assert_eq!(a[4], b[4]);
    }
    let mut kv = kv.clone();
    let out = replies(
        execute(
            &mut kv,
            "checker",
            1,
            vec![cmd(&["GET", "total"]), cmd(&["GET", "k7"])],
        )
        .await,
    );
    assert_eq!(
        out,
        vec![reply::bulk((2 * CLIENTS).to_string()), reply::bulk("v7!")]
    );

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_and_catch_up_through_snapshots() {
    // Keep no log behind a snapshot, so compaction purges everything.
    let mut cluster = Cluster::new(3, 0).await;
    cluster.initialize().await;
    let leader = cluster.wait_leader(&[1, 2, 3]).await;
    let lagging = (1..=3).find(|id| *id != leader).expect("follower");
    let mut kv = cluster.kv(leader).await;

    for i in 0..20u64 {
        let key = format!("key{i}");
        let out = replies(execute(&mut kv, "c", i, vec![cmd(&["SET", &key, "before"])]).await);
        assert_eq!(out, vec![reply::ok()]);
    }
    cluster.stop(lagging).await;
    // Values of several chunks each, so the snapshot is many chunks.
    let big = "v".repeat(3 * SNAPSHOT_CHUNK as usize);
    for i in 0..10u64 {
        let key = format!("big{i}");
        let out = replies(execute(&mut kv, "c", 100 + i, vec![cmd(&["SET", &key, &big])]).await);
        assert_eq!(out, vec![reply::ok()]);
    }
    for i in 20..60u64 {
        let key = format!("key{i}");
        let out = replies(execute(&mut kv, "c", i, vec![cmd(&["SET", &key, "while-down"])]).await);
        assert_eq!(out, vec![reply::ok()]);
    }

    // Compaction: snapshot then purge on the leader.
    let r = cluster
        .admin(leader)
        .await
        .trigger_snapshot(StatusRequest {})
        .await
        .expect("trigger")
        .into_inner();
    assert!(r.ok, "{}", r.message);
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader_status = loop {
        let st = cluster.status(leader).await;
        if st.snapshot_index > 0 && st.purged_index >= st.snapshot_index {
            break st;
        }
        assert!(Instant::now() < deadline, "log not purged: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(leader_status.purged_index >= 60, "{leader_status:?}");

    // The lagging node restarts; the log it needs is gone, so it gets the
    // snapshot.
    cluster.restart(lagging).await;
    let st = wait_applied(&cluster, lagging, leader_status.snapshot_index).await;
    assert!(st.snapshot_index >= leader_status.snapshot_index, "{st:?}");
    // What it received and keeps as its current snapshot spans many chunks.
    let snapshots = cluster.slot(lagging).dir.path().join("db/raft-snapshots");
    let sizes: Vec<u64> = std::fs::read_dir(&snapshots)
        .expect("snapshot folder")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| e.metadata().expect("meta").len())
        .collect();
    assert_eq!(sizes.len(), 1, "one current snapshot file: {sizes:?}");
    assert!(sizes[0] > 20 * SNAPSHOT_CHUNK, "{sizes:?}");

    // A brand-new node joins as a learner and catches up the same way.
    cluster.slots.push(Cluster::fresh_slot(4, 0).await);
    let r = cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            node: Some(addr_of(cluster.slot(4), 4)),
        })
        .await
        .expect("add learner")
        .into_inner();
    assert!(r.ok, "{}", r.message);
    let st = wait_applied(&cluster, 4, leader_status.snapshot_index).await;
    assert!(st.snapshot_index >= leader_status.snapshot_index, "{st:?}");
    assert_eq!(st.state, "learner");

    // Writes keep flowing to everyone after the catch-up.
    let out = replies(execute(&mut kv, "c", 1000, vec![cmd(&["SET", "after", "1"])]).await);
    assert_eq!(out, vec![reply::ok()]);
    let target = cluster.status(leader).await.applied_index;
    wait_applied(&cluster, lagging, target).await;
    wait_applied(&cluster, 4, target).await;
    let out = replies(
        execute(
            &mut kv,
            "c",
            1001,
            vec![
                cmd(&["GET", "key59"]),
                cmd(&["GET", "key0"]),
                cmd(&["GET", "big9"]),
            ],
        )
        .await,
    );
    assert_eq!(
        out,
        vec![
            reply::bulk("while-down"),
            reply::bulk("before"),
            reply::bulk(big.clone())
        ]
    );

    // The node that caught up through the snapshot holds the data itself.
    // (Its folder is kept out of the cluster, whose shutdown deletes them.)
    let kept = std::mem::replace(
        &mut cluster.slots[(lagging - 1) as usize].dir,
        tempfile::tempdir().expect("tempdir"),
    );
    cluster.shutdown().await;
    let engine = rampart_node::engine::Engine::open(&kept.path().join("db")).expect("open");
    let get = |key: &str| {
        let argv = [b"GET".to_vec(), key.as_bytes().to_vec()];
        rampart_node::commands::execute_read(&engine, &argv, 0)
    };
    assert_eq!(get("big9"), reply::bulk(big));
    assert_eq!(get("key59"), reply::bulk("while-down"));
}
