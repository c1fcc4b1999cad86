//! The legacy-stream task (docs/streams.md, "Operations"), one per node:
//!
//! - every node refreshes the `rampart_stream_legacy_format_keys` gauge
//!   from the sidecar index (a scan of the markers: O(legacy streams));
//! - the leader writes its configured migration mode into the log when the
//!   replicated one differs (`rampart.stream.settings`), so every replica
//!   migrates the same way whatever its own flags say;
//! - the leader drains cold legacy streams: it proposes
//!   `rampart.stream.migrate <key> <max>` entries, each ONE migration step
//!   of at most `min(chunk, rate)` entries (Mode A: the whole stream), and
//!   sleeps `moved / rate` seconds after each, so it migrates at most
//!   `--stream-drain-rate` entries per second on average.
//!
//! Why this cannot starve anything: a step is an ordinary Raft entry of
//! bounded size, proposed through the same batcher as client writes, and
//! the drainer waits for its commit before the next one, so at most one
//! step is in flight; each step also holds a place of the heavy executor
//! while it is proposed, and when the executor is full the drainer backs
//! off until the next tick instead of competing with client heavy work.

use std::sync::Arc;
use std::time::Duration;

use rampart_proto::pb::reply::Kind;
use tokio::sync::watch;

use crate::commands::streams::admin;
use crate::commands::streams::legacy::{MigrationMode, MODE_SETTING};
use crate::engine::{keys, DataRead, Engine, EngineError};
use crate::exec::write_run;
use crate::metrics::STREAM_LEGACY_KEYS;
use crate::NodeCtx;

/// How often the task wakes up when there is nothing to do.
const TICK: Duration = Duration::from_secs(1);
/// The gauge is refreshed every this many ticks (and after a drain pass).
const GAUGE_TICKS: u32 = 5;
/// Markers read per drain pass.
const KEYS_PER_PASS: usize = 64;

/// The drainer's settings (from the node's flags).
#[derive(Debug, Clone, Copy)]
pub struct DrainConfig {
    /// The mode this node writes into the log when it leads.
    pub mode: MigrationMode,
    /// Entries per second; 0 = no draining (the mode is still replicated).
    pub rate: u64,
}

/// Runs until `shutdown` turns true (or its sender is dropped).
pub async fn run(ctx: Arc<NodeCtx>, cfg: DrainConfig, mut shutdown: watch::Receiver<bool>) {
    metrics::counter!(crate::metrics::STREAM_LEGACY_READS).increment(0);
    let mut ticks = 0u32;
    loop {
        if ticks.is_multiple_of(GAUGE_TICKS) {
            refresh_gauge(&ctx.engine).await;
        }
        ticks = ticks.wrapping_add(1);
        if *ctx.leadership.borrow() {
            replicate_mode(&ctx, cfg.mode).await;
            if cfg.rate > 0 && drain_pass(&ctx, cfg, &shutdown).await {
                refresh_gauge(&ctx.engine).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            changed = shutdown.changed() => if changed.is_err() { return },
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Number of legacy-stream markers (the streams still in the legacy or
/// mixed layout).
pub fn count_legacy_streams<R: DataRead + ?Sized>(r: &R) -> Result<u64, EngineError> {
    let (start, end) = keys::legacy_stream_range();
    let mut n = 0u64;
    r.for_each(&start, &end, &mut |_, _| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// The user keys of the first `limit` markers.
fn legacy_streams<R: DataRead + ?Sized>(r: &R, limit: usize) -> Result<Vec<Vec<u8>>, EngineError> {
    let (start, end) = keys::legacy_stream_range();
    let mut out = Vec::new();
    r.for_each(&start, &end, &mut |k, _| {
        out.push(k[1..].to_vec());
        out.len() < limit
    })?;
    Ok(out)
}

async fn refresh_gauge(engine: &Engine) {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || count_legacy_streams(&engine.read_view())).await {
        Ok(Ok(n)) => metrics::gauge!(STREAM_LEGACY_KEYS).set(n as f64),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot count legacy streams"),
        Err(e) => tracing::error!(error = %e, "legacy stream count task failed"),
    }
}

/// Writes `mode` into the log unless the replicated setting already says
/// so (also when it was never written: the default could change between
/// versions, the log must not).
async fn replicate_mode(ctx: &NodeCtx, mode: MigrationMode) {
    let engine = ctx.engine.clone();
    let stored = tokio::task::spawn_blocking(move || {
        engine
            .read_view()
            .get(&keys::setting_key(MODE_SETTING))
            .ok()
            .flatten()
    })
    .await
    .ok()
    .flatten();
    if stored.as_deref().and_then(MigrationMode::decode) == Some(mode) {
        return;
    }
    match write_run(ctx, "", 0, 0, vec![admin::settings_command(mode)]).await {
        Ok(replies) if replies.iter().all(|r| !r.is_error()) => {
            tracing::info!(?mode, "stream migration mode written to the log");
        }
        Ok(replies) => tracing::warn!(?replies, "stream migration mode not written"),
        Err(e) => tracing::debug!(error = ?e, "stream migration mode not written"),
    }
}

/// Migrates legacy streams, one step per Raft entry, at the configured
/// rate, until none is left, leadership is lost, the heavy executor is
/// full or the node shuts down. Returns whether it moved anything.
async fn drain_pass(ctx: &NodeCtx, cfg: DrainConfig, shutdown: &watch::Receiver<bool>) -> bool {
    let engine = ctx.engine.clone();
    let keys = match tokio::task::spawn_blocking(move || {
        legacy_streams(&engine.read_view(), KEYS_PER_PASS)
    })
    .await
    {
        Ok(Ok(keys)) => keys,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "stream drainer: cannot read the legacy index");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "stream drainer: index scan failed");
            return false;
        }
    };
    let max = Some(cfg.rate).filter(|_| cfg.mode != MigrationMode::A);
    let mut worked = false;
    for key in keys {
        loop {
            if *shutdown.borrow() || !*ctx.leadership.borrow() {
                return worked;
            }
            // Back off while client heavy work fills the executor.
            let Ok(slot) = ctx.heavy.try_reserve() else {
                return worked;
            };
            let result = write_run(ctx, "", 0, 0, vec![admin::migrate_command(&key, max)]).await;
            drop(slot);
            let reply = match result {
                Ok(mut replies) => replies.pop(),
                Err(e) => {
                    tracing::debug!(error = ?e, "stream drainer: step not committed");
                    return worked;
                }
            };
            let Some((moved, remaining)) = reply.as_ref().and_then(step_counts) else {
                tracing::warn!(key = %String::from_utf8_lossy(&key), ?reply, "stream drainer: step failed");
                break;
            };
            worked = true;
            if moved > 0 {
                let pause = Duration::from_secs_f64(moved as f64 / cfg.rate as f64);
                let mut shutdown = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return worked,
                }
            }
            if remaining == 0 || moved == 0 {
                break;
            }
        }
    }
    worked
}

/// `[moved, remaining]` of a `rampart.stream.migrate` reply.
fn step_counts(reply: &rampart_proto::Reply) -> Option<(u64, u64)> {
    let Some(Kind::Array(list)) = &reply.kind else {
        return None;
    };
    match list.items.as_slice() {
        [moved, remaining] => Some((
            u64::try_from(moved.integer_value()?).ok()?,
            u64::try_from(remaining.integer_value()?).ok()?,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::commands::streams::legacy::{LegacyEntry, LegacyStream};
    use crate::commands::test_support::Node;

    const NOW: i64 = 1_700_000_000_000;

    fn import(node: &Node, key: &str) {
        let blob = LegacyStream {
            entries: vec![LegacyEntry {
                ms: 1,
                seq: 1,
                field_values: vec![b"f".to_vec(), b"v".to_vec()],
            }],
            last_ms: 1,
            last_seq: 1,
            max_deleted_ms: 0,
            max_deleted_seq: 0,
            entries_added: 1,
            groups: vec![],
        };
        let args = vec![
            b"RAMPART.STREAMIMPORT".to_vec(),
            key.as_bytes().to_vec(),
            blob.encode_to_vec(),
        ];
        assert_eq!(node.run_at(NOW, &args).integer_value(), Some(1));
    }

    /// Applies an internal command the way the state machine does.
    fn apply(node: &Node, argv: &[Vec<u8>]) -> rampart_proto::Reply {
        let mut txn = node.engine.txn();
        let reply = crate::commands::apply_write(&mut txn, argv, NOW);
        let batch = txn.into_batch().expect("batch");
        node.engine.write_batch(batch, false).expect("write");
        reply
    }

    #[test]
    fn counts_lists_and_drains_markers() {
        let node = Node::new();
        assert_eq!(count_legacy_streams(&node.engine.read_view()).unwrap(), 0);
        for key in ["s1", "s2", "s3"] {
            import(&node, key);
        }
        let view = node.engine.read_view();
        assert_eq!(count_legacy_streams(&view).unwrap(), 3);
        assert_eq!(
            legacy_streams(&view, 2).unwrap(),
            vec![b"s1".to_vec(), b"s2".to_vec()]
        );
        drop(view);
        let reply = apply(&node, &admin::migrate_command(b"s1", Some(10)));
        assert_eq!(step_counts(&reply), Some((1, 0)));
        assert_eq!(count_legacy_streams(&node.engine.read_view()).unwrap(), 2);
        // A marker whose stream is gone is dropped by the step.
        node.run(NOW, "SET s2 x");
        let reply = apply(&node, &admin::migrate_command(b"s2", None));
        assert_eq!(step_counts(&reply), Some((0, 0)));
        assert_eq!(count_legacy_streams(&node.engine.read_view()).unwrap(), 1);
    }
}
