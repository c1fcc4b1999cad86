//! One read run, linearizable.
//!
//! Reads use ReadIndex (`ensure_linearizable`): the leader confirms with a
//! quorum that it is still leader and waits until its state machine has
//! applied everything committed before the read. This costs a heartbeat
//! round trip, shared by all reads waiting at the same time
//! ([`read_index`](super::read_index)), but makes no assumption about clock
//! drift, which a leader lease would (a paused or skewed leader could serve
//! stale reads).

use openraft::error::{CheckIsLeaderError, RaftError};
use rampart_proto::{reply, Argv, Reply};
use tracing::Instrument;

use super::{ExecCtx, Failure};

/// ReadIndex: waits until this node has confirmed its leadership with a
/// quorum and applied everything committed before the call (`what` names
/// the caller in the timeout text).
pub(crate) async fn confirm_leadership(ctx: &ExecCtx, what: &str) -> Result<(), Failure> {
    let confirm = tracing::debug_span!("raft.read_index");
    let confirmed = tokio::time::timeout(ctx.write_timeout, ctx.reads.wait(&ctx.raft))
        .instrument(confirm.clone())
        .await;
    if !matches!(confirmed, Ok(Ok(_))) {
        rampart_telemetry::record_error(&confirm, "leadership not confirmed");
    }
    match confirmed {
        Err(_) => Err(Failure::Unavailable(format!(
            "timed out confirming leadership for {what}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fwd)))) => {
            Err(Failure::NotLeader(ctx.not_leader(&fwd)))
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
            Err(Failure::Unavailable(e.to_string()))
        }
        Ok(Err(RaftError::Fatal(e))) => Err(Failure::Unavailable(format!("raft stopped: {e}"))),
    }
}

/// Confirms leadership, then reads; one reply per command.
pub(crate) async fn read_run(ctx: &ExecCtx, run: Vec<Argv>) -> Result<Vec<Reply>, Failure> {
    confirm_leadership(ctx, "a read").await?;
    let len = run.len();

    // RocksDB reads block: keep them off the async workers. A run holding a
    // heavy command goes to the bounded heavy executor, which answers its
    // heavy commands -BUSY when full; cheap runs use the blocking pool.
    let read = tracing::debug_span!("kv.read", rampart.run.commands = len as i64);
    match super::heavy::run_reads(&ctx.heavy, ctx.engine.clone(), ctx.clock.now_ms(), run)
        .instrument(read)
        .await
    {
        Ok(replies) => Ok(replies),
        Err(e) => {
            tracing::error!(error = %e, "read command failed");
            Ok(vec![reply::error("ERR internal error while reading"); len])
        }
    }
}
