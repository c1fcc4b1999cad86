//! `Kv.Execute`: runs a pipelined batch in order. `Kv.ExecuteBlocking` is
//! the same for a blocking command sent alone, and also tells the proxy
//! when the command starts to wait.
//!
//! The batch is split into maximal runs of consecutive writes or reads.
//! Each write run is committed whole in ONE Raft entry (so a pipeline of
//! 1,000 SETs costs one commit, not 1,000), possibly together with runs of
//! other concurrent batches (`proposals`). A run is identified by
//! `(client_id, request_seq, part)` where
//! `part` is the run's position in the batch: an identical retried batch
//! gets identical part numbers, and the state machine answers parts it
//! already applied from its dedup records instead of applying them again.
//!
//! Reads use ReadIndex (`ensure_linearizable`): the leader confirms with a
//! quorum that it is still leader and waits until its state machine has
//! applied everything committed before the read. This costs a heartbeat
//! round trip, shared by all reads waiting at the same time (`read_index`),
//! but makes no assumption about clock drift, which a leader lease would (a
//! paused or skewed leader could serve stale reads).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::Stream;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use rampart_proto::pb::blocking_event::Event;
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::kv_server::Kv;
use rampart_proto::pb::{
    BlockingEvent, Command, ExecuteRequest, ExecuteResponse, NotLeader, Replies, Unavailable,
    Waiting,
};
use rampart_proto::{reply, Reply};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::blocking::BlockingCall;
use super::proposals::ProposeError;
use super::{now_ms, NodeCtx};
use crate::commands;
use crate::engine::meta::ValueType;
use crate::raft::types::{Op, Request as RaftRequest, WatchToken, WriteRun};

type Argv = Vec<Vec<u8>>;

pub struct KvService {
    ctx: Arc<NodeCtx>,
}

impl KvService {
    pub fn new(ctx: Arc<NodeCtx>) -> KvService {
        KvService { ctx }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let response = serve(&self.ctx, request.into_inner(), &|_| {}).await;
        Ok(Response::new(response))
    }

    type ExecuteBlockingStream = BlockingEvents;

    async fn execute_blocking(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<BlockingEvents>, Status> {
        // `waiting` and `done`: the channel never fills.
        let (tx, rx) = mpsc::channel(2);
        let ctx = self.ctx.clone();
        let request = request.into_inner();
        // The span stays a child of the `grpc.server` span of this call.
        let parent = tracing::Span::current();
        tokio::spawn(
            async move {
                let notify = tx.clone();
                let told = AtomicBool::new(false);
                let on_waiting = move |resume: Option<&Argv>| {
                    if told.swap(true, Ordering::Relaxed) {
                        return;
                    }
                    let waiting = Event::Waiting(Waiting {
                        resume: resume.map(|args| Command { args: args.clone() }),
                    });
                    let _ = notify.try_send(Ok(BlockingEvent {
                        event: Some(waiting),
                    }));
                };
                tokio::select! {
                    response = serve(&ctx, request, &on_waiting) => {
                        let done = Event::Done(response);
                        let _ = tx.send(Ok(BlockingEvent { event: Some(done) })).await;
                    }
                    // The proxy cancelled the call (its client hung up):
                    // dropping `serve` ends the wait.
                    () = tx.closed() => {}
                }
            }
            .instrument(parent),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type BlockingEvents = Pin<Box<dyn Stream<Item = Result<BlockingEvent, Status>> + Send>>;

/// Told when a blocking command starts to wait (ExecuteBlocking's
/// `waiting` event), with the command a retry must send instead of the
/// original, if any; a no-op for Execute.
pub(crate) type OnWaiting<'a> = &'a (dyn Fn(Option<&Argv>) + Sync);

/// One Execute call: [`execute`] in a `kv.execute` span, with its metric.
async fn serve(
    ctx: &NodeCtx,
    request: ExecuteRequest,
    on_waiting: OnWaiting<'_>,
) -> ExecuteResponse {
    // Child of the `grpc.server` span that carries the proxy's trace.
    let span = tracing::debug_span!(
        "kv.execute",
        rampart.node.id = ctx.id as i64,
        rampart.batch.commands = request.commands.len() as i64,
        rampart.outcome = tracing::field::Empty,
    );
    let outcome = execute(ctx, request, on_waiting)
        .instrument(span.clone())
        .await;
    let label = match &outcome {
        Outcome::Replies(_) => "replies",
        Outcome::NotLeader(_) => "not_leader",
        Outcome::Unavailable(_) => "unavailable",
    };
    span.record("rampart.outcome", label);
    if let Outcome::Unavailable(u) = &outcome {
        rampart_telemetry::record_error(&span, u.reason.clone());
    }
    metrics::counter!(crate::metrics::KV_REQUESTS, "outcome" => label).increment(1);
    ExecuteResponse {
        outcome: Some(outcome),
    }
}

/// Why a run could not be served.
#[derive(Debug)]
pub(crate) enum Failure {
    NotLeader(NotLeader),
    Unavailable(String),
}

impl Failure {
    pub(crate) fn into_outcome(self) -> Outcome {
        match self {
            Failure::NotLeader(n) => Outcome::NotLeader(n),
            Failure::Unavailable(reason) => Outcome::Unavailable(Unavailable { reason }),
        }
    }

    /// Per-command error for commands that could not run after part of a
    /// batch without a client id (which cannot be retried safely) committed.
    pub(crate) fn error_reply(&self) -> Reply {
        match self {
            Failure::NotLeader(_) => {
                reply::error("TRYAGAIN leadership changed while the batch was running")
            }
            Failure::Unavailable(reason) => reply::error(format!(
                "TRYAGAIN the cluster could not complete the batch: {reason}"
            )),
        }
    }
}

/// Splits `commands` into maximal runs of consecutive writes / reads.
fn split_runs(commands: Vec<Argv>) -> Vec<(bool, Vec<Argv>)> {
    let mut runs: Vec<(bool, Vec<Argv>)> = Vec::new();
    for argv in commands {
        let write = commands::is_write(&argv);
        match runs.last_mut() {
            Some((w, run)) if *w == write => run.push(argv),
            _ => runs.push((write, vec![argv])),
        }
    }
    runs
}

pub(crate) async fn execute(
    ctx: &NodeCtx,
    req: ExecuteRequest,
    on_waiting: OnWaiting<'_>,
) -> Outcome {
    let commands: Vec<Argv> = req.commands.into_iter().map(|c| c.args).collect();
    if req.transaction {
        let watches = req
            .watches
            .into_iter()
            .map(|w| WatchToken {
                key: w.key,
                revision: w.revision,
                existed: w.existed,
            })
            .collect();
        if commands
            .iter()
            .any(|argv| crate::scripting::is_script_command(argv))
        {
            // Scripts never run on the apply path: the whole transaction
            // runs like a script (docs/transactions.md).
            let result = crate::scripting::execute_transaction(
                ctx,
                &req.client_id,
                req.request_seq,
                commands,
                watches,
            )
            .await;
            return match result {
                Ok(reply) => Outcome::Replies(Replies {
                    replies: vec![reply],
                }),
                Err(failure) => failure.into_outcome(),
            };
        }
        let run = WriteRun {
            client_id: req.client_id,
            seq: req.request_seq,
            part: 0,
            commands,
        };
        return match transaction(ctx, run, watches).await {
            Ok(reply) => Outcome::Replies(Replies {
                replies: vec![reply],
            }),
            Err(failure) => failure.into_outcome(),
        };
    }
    if commands.is_empty() {
        return Outcome::Replies(Replies {
            replies: vec![reply::error("ERR empty command batch")],
        });
    }
    if commands
        .iter()
        .any(|argv| crate::scripting::is_script_command(argv))
    {
        // EVAL* / SCRIPT never go to the state machine (docs/scripting.md).
        return crate::scripting::execute_batch(ctx, &req.client_id, req.request_seq, commands)
            .await;
    }
    if commands.len() == 1 && commands::is_blocking(&commands[0]) {
        let argv = commands.into_iter().next().unwrap_or_default();
        return match blocking_command(ctx, &req.client_id, req.request_seq, argv, on_waiting).await
        {
            Ok(reply) => Outcome::Replies(Replies {
                replies: vec![reply],
            }),
            Err(failure) => failure.into_outcome(),
        };
    }
    let total = commands.len();
    let mut replies = Vec::with_capacity(total);
    let mut applied_any = false;
    for (part, (write, run)) in split_runs(commands).into_iter().enumerate() {
        let len = run.len();
        let result = if write {
            // A write to a legacy stream pays its migration: heavy class,
            // -BUSY (nothing proposed) when the heavy executor is full.
            let _slot = match super::stream_drainer::legacy_write_slot(ctx, &run) {
                Ok(slot) => slot,
                Err(busy) => {
                    replies.extend(std::iter::repeat_n(busy, len));
                    continue;
                }
            };
            // Batches have far fewer than 2^32 runs (gRPC message size).
            write_run(ctx, &req.client_id, req.request_seq, part as u32, run).await
        } else {
            read_run(ctx, run).await
        };
        match result {
            Ok(run_replies) => {
                debug_assert_eq!(run_replies.len(), len);
                replies.extend(run_replies);
                applied_any |= write;
            }
            // Nothing applied yet, or a retry is deduplicated: the caller may
            // retry the whole batch elsewhere.
            Err(failure) if !applied_any || !req.client_id.is_empty() => {
                return failure.into_outcome();
            }
            Err(failure) => {
                let err = failure.error_reply();
                replies.resize(total, err);
                break;
            }
        }
    }
    Outcome::Replies(Replies { replies })
}

pub(crate) async fn write_run(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    run: Vec<Argv>,
) -> Result<Vec<Reply>, Failure> {
    let len = run.len();
    let run = WriteRun {
        client_id: client_id.to_string(),
        seq,
        part,
        commands: run,
    };
    // Propose, replicate to a quorum, commit and apply: one span, since the
    // proposal batcher answers after apply.
    let span = tracing::debug_span!(
        "raft.propose",
        rampart.run.part = i64::from(part),
        rampart.run.commands = len as i64,
    );
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(ctx.write_timeout, ctx.proposals.submit(run))
        .instrument(span.clone())
        .await;
    metrics::histogram!(crate::metrics::RAFT_WRITE_SECONDS).record(started.elapsed());
    match &result {
        Err(_) => rampart_telemetry::record_error(&span, "timed out waiting for the commit"),
        Ok(Err(e)) => rampart_telemetry::record_error(&span, e.to_string()),
        Ok(Ok(_)) => {}
    }
    match result {
        Err(_) => Err(Failure::Unavailable(
            "timed out waiting for the write to commit".into(),
        )),
        Ok(Ok(replies)) => {
            if replies.len() == len {
                Ok(replies)
            } else {
                // Only possible when a client reuses (client_id, seq) for a
                // different batch: the stored replies belong to another one.
                Ok(vec![
                    reply::error(
                        "ERR request id reused for a different batch"
                    );
                    len
                ])
            }
        }
        Ok(Err(e)) => Err(propose_failure(ctx, e)),
    }
}

/// MULTI/EXEC: the commands (reads included) and the WATCH tokens in one
/// Raft entry of their own, applied all or nothing (see
/// `commands::transactions`). One reply: the EXEC array, or a null array
/// when a watched key changed.
pub(crate) async fn transaction(
    ctx: &NodeCtx,
    run: WriteRun,
    watches: Vec<WatchToken>,
) -> Result<Reply, Failure> {
    let request = RaftRequest {
        now_ms: now_ms(),
        op: Op::Transaction { run, watches },
    };
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(ctx.write_timeout, ctx.raft.client_write(request)).await;
    metrics::histogram!(crate::metrics::RAFT_WRITE_SECONDS).record(started.elapsed());
    match result {
        Err(_) => Err(Failure::Unavailable(
            "timed out waiting for the transaction to commit".into(),
        )),
        Ok(Ok(written)) => Ok(single_reply(written.data.replies)),
        Ok(Err(e)) => Err(propose_failure(ctx, ProposeError::Raft(e))),
    }
}

fn propose_failure(ctx: &NodeCtx, err: ProposeError) -> Failure {
    match err {
        ProposeError::Unavailable(reason) => Failure::Unavailable(reason),
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd))) => {
            Failure::NotLeader(ctx.not_leader(&fwd))
        }
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Failure::Unavailable(e.to_string())
        }
        ProposeError::Raft(RaftError::Fatal(e)) => {
            Failure::Unavailable(format!("raft stopped: {e}"))
        }
    }
}

/// A blocking pop sent alone: attempts through Raft until one pops data,
/// waiting between attempts for a write to one of its keys (see
/// `server::blocking`). In a larger batch the same command is applied as a
/// single attempt, as Redis does inside MULTI.
async fn blocking_command(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    argv: Argv,
    on_waiting: OnWaiting<'_>,
) -> Result<Reply, Failure> {
    if argv[0].eq_ignore_ascii_case(b"xread") {
        return blocking_xread(ctx, argv, on_waiting).await;
    }
    let Some(call) = BlockingCall::parse(&argv, now_ms()) else {
        // Invalid arguments: the attempt answers the error.
        return Ok(single_reply(
            write_run(ctx, client_id, seq, 0, vec![argv]).await?,
        ));
    };
    let deadline = call.timeout.map(|t| tokio::time::Instant::now() + t);
    // Registered before the first attempt, so no write after it is missed.
    let registration = ctx.waiters.register(call.kind, &call.keys);
    let mut leadership = ctx.leadership.clone();
    let mut attempt = argv.clone();
    loop {
        let reply = single_reply(write_run(ctx, client_id, seq, 0, vec![attempt]).await?);
        if !commands::is_empty_blocking_reply(&reply) {
            return Ok(reply);
        }
        // Retries resend the command unchanged (dedup by request id).
        on_waiting(None);
        attempt = loop {
            tokio::select! {
                _ = registration.woken() => {}
                _ = sleep_until(deadline) => return Ok(reply::null_array()),
                _ = leadership.wait_for(|leader| !*leader) => {
                    // The proxy retries on the new leader, where the wait
                    // is re-armed (same request id: a pop that did commit
                    // here is answered from deduplication).
                    return Err(Failure::NotLeader(ctx.current_not_leader()));
                }
            }
            let ready = call.ready_keys(&ctx.engine, now_ms());
            if !ready.is_empty() {
                break call.narrowed(&argv, &ready);
            }
        };
    }
}

/// XREAD with BLOCK sent alone: linearizable reads (never Raft writes)
/// until one returns entries, waiting between them for a write to one of
/// its streams. `$` is resolved once, when the call starts, so entries
/// added while it waits are the ones it returns. A leader change ends the
/// wait with NotLeader; the proxy re-sends the command to the new leader
/// with the ids resolved here (the `resume` of the `waiting` event), so
/// entries added in between are not skipped.
async fn blocking_xread(
    ctx: &NodeCtx,
    argv: Argv,
    on_waiting: OnWaiting<'_>,
) -> Result<Reply, Failure> {
    let started = tokio::time::Instant::now();
    let now = now_ms();
    let Ok(call) = commands::streams::read::parse(&argv[1..], now) else {
        // Invalid arguments: the read answers the error.
        return Ok(single_reply(read_run(ctx, vec![argv]).await?));
    };
    // Registered before `$` is resolved, so no entry added after it is missed.
    let registration = ctx.waiters.register(ValueType::Stream, &call.keys);
    confirm_leadership(ctx, "a blocking read").await?;
    let engine = ctx.engine.clone();
    let command = argv.clone();
    let resolved = tokio::task::spawn_blocking(move || {
        let view = engine.read_view();
        commands::streams::read::resolve_for_wait(&view, &command, now)
    })
    .await
    .map_err(|e| Failure::Unavailable(format!("blocking read failed: {e}")))?;
    let wait = match resolved {
        Some(Ok(wait)) => wait,
        Some(Err(reply)) => return Ok(reply),
        // Not reachable (`is_blocking` and the parser agree on BLOCK), but
        // a plain read is the right answer for an XREAD that cannot wait.
        None => return Ok(single_reply(read_run(ctx, vec![argv]).await?)),
    };
    let deadline = wait
        .call
        .block
        .flatten()
        .map(|ms| started + std::time::Duration::from_millis(ms));
    // XREAD's ids are its last arguments, one per key.
    let mut resume = argv[..argv.len() - wait.after.len()].to_vec();
    resume.extend(wait.after.iter().map(|id| id.to_reply_bytes()));
    let mut leadership = ctx.leadership.clone();
    loop {
        let reply = single_reply(read_run(ctx, vec![wait.attempt.clone()]).await?);
        if !commands::is_empty_blocking_reply(&reply) {
            return Ok(reply);
        }
        on_waiting(Some(&resume));
        loop {
            tokio::select! {
                _ = registration.woken() => {}
                _ = sleep_until(deadline) => return Ok(reply::null_array()),
                _ = leadership.wait_for(|leader| !*leader) => {
                    return Err(Failure::NotLeader(ctx.current_not_leader()));
                }
            }
            // A cheap local look before paying for a linearizable read.
            let keys = &wait.call.keys;
            if commands::streams::read::may_have_new(&ctx.engine, keys, &wait.after, now_ms()) {
                break;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn single_reply(mut replies: Vec<Reply>) -> Reply {
    replies
        .pop()
        .unwrap_or_else(|| reply::error("ERR internal error: no reply for the command"))
}

/// ReadIndex: waits until this node has confirmed its leadership with a
/// quorum and applied everything committed before the call (`what` names
/// the caller in the timeout text).
pub(crate) async fn confirm_leadership(ctx: &NodeCtx, what: &str) -> Result<(), Failure> {
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

pub(crate) async fn read_run(ctx: &NodeCtx, run: Vec<Argv>) -> Result<Vec<Reply>, Failure> {
    confirm_leadership(ctx, "a read").await?;
    let len = run.len();

    // RocksDB reads block: keep them off the async workers. A run holding a
    // heavy command goes to the bounded heavy executor, which answers its
    // heavy commands -BUSY when full; cheap runs use the blocking pool.
    let read = tracing::debug_span!("kv.read", rampart.run.commands = len as i64);
    match super::heavy::run_reads(&ctx.heavy, ctx.engine.clone(), run)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn runs_group_consecutive_reads_and_writes_in_order() {
        let batch = vec![
            argv(&["SET", "a", "1"]),
            argv(&["INCR", "a"]),
            argv(&["GET", "a"]),
            argv(&[]),
            argv(&["NOSUCHCMD"]),
            argv(&["DEL", "a"]),
        ];
        let runs = split_runs(batch);
        let shape: Vec<(bool, usize)> = runs.iter().map(|(w, r)| (*w, r.len())).collect();
        assert_eq!(shape, vec![(true, 2), (false, 3), (true, 1)]);
        assert_eq!(runs[1].1[0], argv(&["GET", "a"]));
    }
}
