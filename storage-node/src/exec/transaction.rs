//! MULTI/EXEC: the queued commands (reads included) and the WATCH tokens
//! in one `Op::Transaction` Raft entry of their own (not batched with other
//! clients' runs), applied all or nothing (see `commands::transactions`).
//!
//! One path for every guarded commit: a plain MULTI/EXEC comes here from
//! the Kv handler, and scripting commits a script's writes (or a MULTI
//! holding scripts) the same way, guarded by every key it read
//! (docs/transactions.md).

use rampart_proto::limits::{replicated_size, MAX_REPLICATED_BYTES};
use rampart_proto::{errors, reply, Reply};

use super::proposals::ProposeError;
use super::{propose_failure, single_reply, ExecCtx, Failure};
use crate::raft::types::{Op, Request as RaftRequest, WatchToken, WriteRun};

/// Commits `run` guarded by `watches`. One reply: the EXEC array, or a
/// null array when a watched key changed, or an error (nothing applied)
/// when the transaction is too large to replicate.
pub(crate) async fn transaction(
    ctx: &ExecCtx,
    run: WriteRun,
    watches: Vec<WatchToken>,
) -> Result<Reply, Failure> {
    let bytes = replicated_size(&run.commands);
    if bytes > MAX_REPLICATED_BYTES {
        return Ok(reply::error(errors::too_large_to_replicate(bytes)));
    }
    let stamp = ctx.clock.stamp_in_flight();
    let request = RaftRequest {
        now_ms: stamp.ms(),
        op: Op::Transaction { run, watches },
    };
    let started = std::time::Instant::now();
    // The write runs on in its own task after a timeout here, holding its
    // stamp until Raft answers: reads must not judge time past an entry
    // that may still apply (see `ClusterClock::now_ms`).
    let raft = ctx.raft.clone();
    let write = tokio::spawn(async move {
        let result = raft.client_write(request).await;
        drop(stamp);
        result
    });
    let result = tokio::time::timeout(ctx.write_timeout, write).await;
    metrics::histogram!(crate::metrics::RAFT_WRITE_SECONDS).record(started.elapsed());
    match result {
        Err(_) => Err(Failure::Unavailable(
            "timed out waiting for the transaction to commit".into(),
        )),
        Ok(Err(join)) => Err(Failure::Unavailable(format!(
            "transaction write task failed: {join}"
        ))),
        Ok(Ok(Ok(written))) => Ok(single_reply(written.data.replies)),
        Ok(Ok(Err(e))) => Err(propose_failure(ctx, ProposeError::Raft(e))),
    }
}
