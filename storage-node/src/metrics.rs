//! Prometheus metrics of a storage node (names listed in `docs/metrics.md`).
//!
//! The exporter is only installed when `--metrics-addr` is set; without it
//! the `metrics` facade has no recorder and every update is a no-op.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use openraft::ServerState;
use tokio::sync::watch;

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

/// Histogram buckets (seconds) for every `*_seconds` metric: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often the Raft gauges may be refreshed at most: metrics change on
/// every applied entry, and reading the commit index is a call into the
/// Raft core.
const RAFT_GAUGE_INTERVAL: Duration = Duration::from_millis(200);

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the process-wide Prometheus recorder and serves
/// `http://ADDR/metrics` on the current tokio runtime.
///
/// Returns `Ok(false)` (after logging a warning) when a recorder is already
/// installed in this process, e.g. several nodes started by one test; an
/// address that cannot be bound is an error.
pub fn install(addr: SocketAddr) -> Result<bool, NodeError> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        tracing::warn!(%addr, "a metrics exporter already runs in this process; not starting another");
        return Ok(false);
    }
    let result = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install);
    match result {
        Ok(()) => {
            tracing::info!("metrics http://{addr}/metrics");
            Ok(true)
        }
        Err(BuildError::FailedToSetGlobalRecorder(e)) => {
            tracing::warn!(%addr, error = %e, "another metrics recorder is installed; not exporting");
            Ok(false)
        }
        Err(e) => {
            INSTALLED.store(false, Ordering::SeqCst);
            Err(NodeError::Config(format!(
                "metrics exporter on {addr}: {e}"
            )))
        }
    }
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
        metrics::gauge!(RAFT_APPLIED_INDEX).set(m.last_applied.map_or(0, |l| l.index) as f64);
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
