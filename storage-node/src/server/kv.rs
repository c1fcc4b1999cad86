//! The Kv gRPC service, an adapter: it decodes an `Execute` request, hands
//! the batch to the path that runs it and encodes the outcome, with the
//! `kv.execute` span and the request metric. `ExecuteBlocking` is the same
//! for a blocking command sent alone, and also tells the proxy when the
//! command starts to wait.
//!
//! Why so little here: the handler, Lua scripting and the stream drainer
//! run commands through the same paths (`exec`), so what a command does is
//! written once, there; a batch holding EVAL* or SCRIPT goes to
//! `scripting`, which never runs on the Raft apply path (docs/scripting.md).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::Stream;
use rampart_proto::pb::admin_server::Admin;
use rampart_proto::pb::blocking_event::Event;
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::kv_server::Kv;
use rampart_proto::pb::{
    BlockingEvent, ClusterStatus, Command, ExecuteRequest, ExecuteResponse, Replies, StatusRequest,
    Waiting,
};
use rampart_proto::{Argv, Reply};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::exec::{self, Failure, OnWaiting};
use crate::raft::types::{WatchToken, WriteRun};
use crate::scripting;
use crate::server::admin::AdminService;
use crate::server::peer_auth;
use crate::NodeCtx;

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
        if let Some(refused) = internal_refusal(&request) {
            return Err(refused);
        }
        let response = serve(&self.ctx, request.into_inner(), &|_| {}).await;
        Ok(Response::new(response))
    }

    type ExecuteBlockingStream = BlockingEvents;

    async fn execute_blocking(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<BlockingEvents>, Status> {
        if let Some(refused) = internal_refusal(&request) {
            return Err(refused);
        }
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

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        AdminService::new(self.ctx.clone()).status(request).await
    }
}

/// Internal commands (`rampart.*`) only from a proxy or node certificate
/// (`peer_auth`): the refusal, if the request carries one it may not send.
fn internal_refusal(request: &Request<ExecuteRequest>) -> Option<Status> {
    let peer = request.extensions().get::<peer_auth::Peer>();
    let refused = request.get_ref().commands.iter().find_map(|command| {
        let name = command.args.first()?;
        peer_auth::check_internal_command(peer, name)
    })?;
    Some(Status::permission_denied(refused))
}

type BlockingEvents = Pin<Box<dyn Stream<Item = Result<BlockingEvent, Status>> + Send>>;

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

/// Decodes the request and runs it: a batch holding scripting commands
/// through `scripting`, any other through `exec`.
async fn execute(ctx: &NodeCtx, req: ExecuteRequest, on_waiting: OnWaiting<'_>) -> Outcome {
    if let Err(failure) = ctx.exec.check_quorum() {
        return failure.into_outcome();
    }
    let commands: Vec<Argv> = req.commands.into_iter().map(|c| c.args).collect();
    let scripted = commands
        .iter()
        .any(|argv| scripting::is_script_command(argv));
    // Who the scripts run for; their ACL denials travel back with the
    // replies, for the proxy's ACL LOG.
    let caller = scripting::acl::Caller::new(req.user);
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
        let result = if scripted {
            // Scripts never run on the apply path: the whole transaction
            // runs like a script (docs/transactions.md).
            scripting::execute_transaction(
                ctx,
                &req.client_id,
                req.request_seq,
                commands,
                watches,
                &caller,
            )
            .await
        } else {
            let run = WriteRun {
                client_id: req.client_id,
                seq: req.request_seq,
                part: 0,
                commands,
            };
            exec::transaction(ctx, run, watches).await
        };
        return with_denials(one_reply(result), &caller);
    }
    if scripted {
        // EVAL* / SCRIPT never go to the state machine (docs/scripting.md).
        let outcome =
            scripting::execute_batch(ctx, &req.client_id, req.request_seq, commands, &caller).await;
        return with_denials(outcome, &caller);
    }
    exec::run_batch(ctx, &req.client_id, req.request_seq, commands, on_waiting).await
}

/// Adds the ACL denials the request's scripts met to its replies.
fn with_denials(mut outcome: Outcome, caller: &scripting::acl::Caller) -> Outcome {
    if let Outcome::Replies(replies) = &mut outcome {
        replies.acl_denials = caller.denials.take();
    }
    outcome
}

/// The outcome of a request answered with one reply (a transaction).
fn one_reply(result: Result<Reply, Failure>) -> Outcome {
    match result {
        Ok(reply) => Outcome::Replies(Replies {
            replies: vec![reply],
            ..Default::default()
        }),
        Err(failure) => failure.into_outcome(),
    }
}
