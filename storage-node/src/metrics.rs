//! Prometheus metrics of a storage node (names listed in `docs/metrics.md`).
//!
//! The exporter is only installed when `--metrics-addr` is set; without it
//! the `metrics` facade has no recorder and every update is a no-op.

use std::net::SocketAddr;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::raft::Raft;
use crate::NodeError;

pub const RAFT_TERM: &str = "rampart_raft_term";
pub const RAFT_IS_LEADER: &str = "rampart_raft_is_leader";
pub const RAFT_LEADER_ID: &str = "rampart_raft_leader_id";
pub const RAFT_LAST_LOG_INDEX: &str = "rampart_raft_last_log_index";
pub const RAFT_COMMITTED_INDEX: &str = "rampart_raft_committed_index";
pub const RAFT_APPLIED_INDEX: &str = "rampart_raft_applied_index";
pub const RAFT_SNAPSHOT_INDEX: &str = "rampart_raft_snapshot_index";
pub const RAFT_PURGED_INDEX: &str = "rampart_raft_purged_index";
/// `Kv.Execute` calls by `outcome` (replies, not_leader, unavailable).
pub const KV_REQUESTS: &str = "rampart_kv_requests_total";
/// From handing a write run to the proposal batcher to its replies.
pub const RAFT_WRITE_SECONDS: &str = "rampart_raft_write_seconds";
/// Leader: from proposing an entry (`client_write`) until the log store is
/// told it is committed (`save_committed`).
pub const RAFT_COMMIT_SECONDS: &str = "rampart_raft_commit_seconds";
/// Applying one committed entry to the state machine (one RocksDB batch).
pub const RAFT_APPLY_SECONDS: &str = "rampart_raft_apply_seconds";
/// Committed entries whose apply failed on a storage error; each stops the
/// node (fail-stop), which then replays the entry after a restart.
pub const APPLY_STORAGE_ERRORS: &str = "rampart_apply_storage_errors_total";
/// Committed but not yet applied entries (committed index - applied index).
pub const RAFT_APPLY_QUEUE_DEPTH: &str = "rampart_raft_apply_queue_depth";
/// Write runs waiting in the proposal batcher for a Raft entry.
pub const RAFT_PROPOSAL_QUEUE_DEPTH: &str = "rampart_raft_proposal_queue_depth";
/// The `step_queue_full` of the incident: write runs that found the proposal
/// queue full (`reason="queue_full"`, the submitter waits) or whose submitter
/// gave up before they could be proposed (`reason="expired"`).
pub const RAFT_PROPOSAL_OVERFLOW: &str = "rampart_raft_proposal_overflow_total";
/// Heavy executor, per `lane` (`reads`, `scripts`): jobs waiting for a
/// thread, running, admitted, answered `-BUSY`, and the time a job spent
/// executing.
pub const HEAVY_QUEUE_DEPTH: &str = "rampart_heavy_queue_depth";
pub const HEAVY_RUNNING: &str = "rampart_heavy_running";
pub const HEAVY_THREADS: &str = "rampart_heavy_threads";
pub const HEAVY_QUEUE_CAPACITY: &str = "rampart_heavy_queue_capacity";
pub const HEAVY_SUBMITTED: &str = "rampart_heavy_submitted_total";
pub const HEAVY_REJECTED: &str = "rampart_heavy_rejected_total";
pub const HEAVY_SECONDS: &str = "rampart_heavy_run_seconds";
/// Scripts lowered to the heavy reads' priority (they overran
/// `--script-demote-ms` or called a heavy command).
pub const HEAVY_DEMOTED: &str = "rampart_heavy_demoted_total";
/// Decodes of a legacy stream blob (reads and migration steps of streams
/// still in the one-blob layout; docs/streams.md).
pub const STREAM_LEGACY_READS: &str = "rampart_stream_legacy_format_reads_total";
/// Streams still (partly) in the legacy layout: the sidecar markers.
pub const STREAM_LEGACY_KEYS: &str = "rampart_stream_legacy_format_keys";
/// gRPC server handling time by `service` and `method`.
pub const GRPC_SERVER_SECONDS: &str = "rampart_grpc_server_seconds";
/// RocksDB properties, sampled every [`ROCKSDB_SAMPLE_INTERVAL`].
pub const ROCKSDB_SST_BYTES: &str = "rampart_rocksdb_sst_bytes";
pub const ROCKSDB_LIVE_DATA_BYTES: &str = "rampart_rocksdb_live_data_bytes";
pub const ROCKSDB_PENDING_COMPACTION_BYTES: &str = "rampart_rocksdb_pending_compaction_bytes";
pub const ROCKSDB_MEMTABLE_BYTES: &str = "rampart_rocksdb_memtable_bytes";
pub const ROCKSDB_DELAYED_WRITE_RATE: &str = "rampart_rocksdb_delayed_write_rate";
pub const ROCKSDB_WRITE_STOPPED: &str = "rampart_rocksdb_write_stopped";
pub const ROCKSDB_RUNNING_COMPACTIONS: &str = "rampart_rocksdb_running_compactions";

/// How often the RocksDB gauges are sampled (property reads are in-memory
/// and cheap; this only bounds how stale a gauge can be).
pub const ROCKSDB_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// How often the Raft gauges may be refreshed at most: metrics change on
/// every applied entry, and reading the commit index is a call into the
/// Raft core.
const RAFT_GAUGE_INTERVAL: Duration = Duration::from_millis(200);

/// Installs the Prometheus exporter on `addr` (see
/// [`rampart_telemetry::prometheus::install`]).
pub fn install(addr: SocketAddr) -> Result<bool, NodeError> {
    rampart_telemetry::prometheus::install(addr).map_err(|e| NodeError::Config(e.to_string()))
}

/// Keeps the `rampart_raft_*` gauges in step with `raft.metrics()` until
/// `shutdown` turns true or Raft stops.
pub async fn export_raft_gauges(raft: Raft, mut shutdown: watch::Receiver<bool>) {
    let mut rx = raft.metrics();
    loop {
        let m = rx.borrow_and_update().clone();
        let committed = raft
            .with_raft_state(|st| st.committed.map(|l| l.index).unwrap_or(0))
            .await
            .unwrap_or(0);
        let is_leader = m.state == ServerState::Leader;
        // Indexes and ids stay far below 2^53, so f64 holds them exactly.
        metrics::gauge!(RAFT_TERM).set(m.current_term as f64);
        metrics::gauge!(RAFT_IS_LEADER).set(if is_leader { 1.0 } else { 0.0 });
        metrics::gauge!(RAFT_LEADER_ID).set(m.current_leader.unwrap_or(0) as f64);
        metrics::gauge!(RAFT_LAST_LOG_INDEX).set(m.last_log_index.unwrap_or(0) as f64);
        metrics::gauge!(RAFT_COMMITTED_INDEX).set(committed as f64);
        let applied = m.last_applied.map_or(0, |l| l.index);
        metrics::gauge!(RAFT_APPLIED_INDEX).set(applied as f64);
        metrics::gauge!(RAFT_APPLY_QUEUE_DEPTH).set(committed.saturating_sub(applied) as f64);
        metrics::gauge!(RAFT_SNAPSHOT_INDEX).set(m.snapshot.map_or(0, |l| l.index) as f64);
        metrics::gauge!(RAFT_PURGED_INDEX).set(m.purged.map_or(0, |l| l.index) as f64);

        tokio::select! {
            _ = tokio::time::sleep(RAFT_GAUGE_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        // Also refresh now and then without a change, so the commit index
        // (not part of the watched metrics) cannot stay stale for long.
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// The RocksDB properties exported per column family: (property, gauge).
const ROCKSDB_CF_GAUGES: &[(&str, &str)] = &[
    ("rocksdb.total-sst-files-size", ROCKSDB_SST_BYTES),
    ("rocksdb.estimate-live-data-size", ROCKSDB_LIVE_DATA_BYTES),
    (
        "rocksdb.estimate-pending-compaction-bytes",
        ROCKSDB_PENDING_COMPACTION_BYTES,
    ),
    ("rocksdb.cur-size-all-mem-tables", ROCKSDB_MEMTABLE_BYTES),
];

/// Whole-DB RocksDB properties: (property, gauge).
const ROCKSDB_DB_GAUGES: &[(&str, &str)] = &[
    (
        "rocksdb.actual-delayed-write-rate",
        ROCKSDB_DELAYED_WRITE_RATE,
    ),
    ("rocksdb.is-write-stopped", ROCKSDB_WRITE_STOPPED),
    (
        "rocksdb.num-running-compactions",
        ROCKSDB_RUNNING_COMPACTIONS,
    ),
];

/// Sets the `rampart_rocksdb_*` gauges from the DB's properties once.
pub fn sample_rocksdb(engine: &Engine) {
    for cf_name in crate::engine::cf::ALL {
        for (property, gauge) in ROCKSDB_CF_GAUGES {
            if let Ok(Some(v)) = engine.property_int_cf(cf_name, property) {
                metrics::gauge!(*gauge, "cf" => *cf_name).set(v as f64);
            }
        }
    }
    for (property, gauge) in ROCKSDB_DB_GAUGES {
        if let Ok(Some(v)) = engine.property_int(property) {
            metrics::gauge!(*gauge).set(v as f64);
        }
    }
}

/// Samples the RocksDB gauges every [`ROCKSDB_SAMPLE_INTERVAL`] until
/// `shutdown` turns true.
pub async fn export_rocksdb_gauges(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    loop {
        sample_rocksdb(&engine);
        tokio::select! {
            _ = tokio::time::sleep(ROCKSDB_SAMPLE_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
