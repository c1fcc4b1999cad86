//! Dispatch: who answers each decoded request, with replies in request order.
//!
//! A connection hands every round of decoded requests to its [`Dispatcher`],
//! which sends each one where it belongs:
//! - the pub/sub layer ([`crate::pubsub_route`]) for the subscribe family
//!   and RESP2 subscribed mode;
//! - the transaction state machine ([`crate::transaction`]) for MULTI,
//!   EXEC, DISCARD, WATCH, UNWATCH and queueing;
//! - the node tier, batched ([`crate::batch`]): consecutive forwardable
//!   commands go as one [`crate::Batch`];
//! - the proxy's own handlers ([`crate::commands`]), between batches.
//!
//! Commands that fail before execution (unknown, wrong arity, NOAUTH) are
//! answered in place without splitting the batch.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rampart_proto::command_table::{lookup, CommandSpec, Runs};
use rampart_proto::limits::{replicated_size, MAX_REPLICATED_BYTES};
use rampart_proto::{errors, reply, Argv, Reply};
use tokio::net::TcpStream;
use tower::Service;

use crate::batch::{Batcher, PendingBatch};
use crate::commands::{self, Session, Shared};
use crate::pubsub_route::{self, PubSubRoute};
use crate::resp::encode_reply;
use crate::service::{Batch, BoxError};
use crate::transaction::{Step, Transaction};

/// One connection's request state: its session, its way to the node tier
/// and its transaction.
pub(crate) struct Dispatcher<S> {
    pub(crate) session: Session,
    shared: Arc<Shared>,
    batcher: Batcher<S>,
    transaction: Transaction,
}

impl<S> Dispatcher<S>
where
    S: Service<Batch, Response = Vec<Reply>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    pub(crate) fn new(session: Session, shared: Arc<Shared>, batcher: Batcher<S>) -> Self {
        Dispatcher {
            session,
            shared,
            batcher,
            transaction: Transaction::default(),
        }
    }

    /// Runs one round of decoded requests, writing every reply to `output`.
    /// `socket` is the client's, watched for a hang-up while a blocking
    /// command waits.
    ///
    /// The requests are executed in chunks that end where the pub/sub state
    /// can change (a subscribe-family command or RESET), so every request
    /// is judged with the state its predecessors left.
    pub(crate) async fn run(
        &mut self,
        requests: Vec<Argv>,
        output: &mut BytesMut,
        socket: &TcpStream,
    ) {
        let mut chunk = Vec::new();
        for argv in requests {
            if self.session.close_after_reply {
                break;
            }
            match pubsub_route::route(&argv, &self.session, self.transaction.in_multi()) {
                PubSubRoute::Normal => chunk.push(argv),
                PubSubRoute::Reset => {
                    chunk.push(argv);
                    self.execute_chunk(std::mem::take(&mut chunk), output, socket)
                        .await;
                    pubsub_route::reset(&mut self.session).await;
                }
                PubSubRoute::Local(spec) => {
                    self.execute_chunk(std::mem::take(&mut chunk), output, socket)
                        .await;
                    if self.session.close_after_reply {
                        break;
                    }
                    self.note_command(spec, &argv);
                    if let Some(refused) =
                        commands::acl::check(spec, &argv, false, &mut self.session, &self.shared)
                    {
                        encode_reply(output, &refused, self.session.protocol);
                        continue;
                    }
                    pubsub_route::answer(spec, &argv, &mut self.session, output).await;
                }
            }
        }
        self.execute_chunk(chunk, output, socket).await;
    }

    async fn execute_chunk(&mut self, chunk: Vec<Argv>, output: &mut BytesMut, socket: &TcpStream) {
        if chunk.is_empty() || self.session.close_after_reply {
            return;
        }
        // Over the output hard limit the connection is closed after this
        // round (connection.rs): building more replies would be wasted.
        let hard = self.shared.config.client_output.hard;
        if hard > 0 && output.len() > hard {
            return;
        }
        let replies = self.execute(chunk, socket).await;
        for reply in &replies {
            encode_reply(output, reply, self.session.protocol);
        }
    }

    /// What `CLIENT LIST` shows as the client's last command and activity.
    fn note_command(&self, spec: &CommandSpec, argv: &Argv) {
        let mut info = self.session.handle.info();
        info.last_cmd = commands::display_name(spec, argv);
        info.last_active = Instant::now();
    }

    /// Executes decoded requests in order and returns one reply per request
    /// (fewer when QUIT stops the pipeline: Redis ignores what follows).
    async fn execute(&mut self, requests: Vec<Argv>, socket: &TcpStream) -> Vec<Reply> {
        self.batcher.set_identity(&self.session.identity);
        let mut slots: Vec<Option<Reply>> = Vec::with_capacity(requests.len());
        let mut run = PendingBatch::default();
        for argv in requests {
            if self.session.close_after_reply {
                break;
            }
            let Some(name) = argv.first() else { continue };
            let Some(spec) = lookup(name) else {
                self.transaction.abort_queueing();
                slots.push(Some(reply::error(errors::unknown_command(
                    name,
                    &argv[1..],
                ))));
                continue;
            };
            if !spec.arity_ok(argv.len()) {
                self.transaction.abort_queueing();
                slots.push(Some(reply::error(errors::wrong_arity(spec.name))));
                continue;
            }
            if !self.session.authenticated && !spec.flags.contains(&"no_auth") {
                self.transaction.abort_queueing();
                slots.push(Some(reply::error(errors::NOAUTH)));
                continue;
            }
            // ACL: the command, its keys and channels, before it runs or is
            // queued (Redis checks MULTI's commands at queue time).
            let in_multi = self.transaction.in_multi();
            if let Some(refused) =
                commands::acl::check(spec, &argv, in_multi, &mut self.session, &self.shared)
            {
                self.transaction.abort_queueing();
                slots.push(Some(refused));
                continue;
            }
            // Inside MULTI this is an error of the command itself, answered
            // in EXEC's reply (transaction.rs), not at queue time.
            if !in_multi {
                let denied =
                    commands::acl::sort_patterns_denied(&argv, &mut self.session, &self.shared);
                if let Some(reply) = denied {
                    slots.push(Some(reply));
                    continue;
                }
            }
            if spec.is_write() {
                // Refused here rather than shipped to the leader, which
                // would refuse it anyway (an entry this large stalls
                // replication); the commands around it go on.
                let bytes = replicated_size(std::iter::once(&argv));
                if bytes > MAX_REPLICATED_BYTES {
                    self.transaction.abort_queueing();
                    slots.push(Some(reply::error(errors::too_large_to_replicate(bytes))));
                    continue;
                }
            }
            self.note_command(spec, &argv);
            match self.transaction.step(spec, &argv) {
                Step::Run => {}
                Step::Reply(reply) => {
                    slots.push(Some(reply));
                    continue;
                }
                // WATCH and EXEC see the effects of the commands before
                // them, so those are sent first.
                Step::Watch => {
                    self.batcher.flush(&mut run, &mut slots, socket).await;
                    let reply = self.transaction.watch(&argv, &mut self.batcher).await;
                    slots.push(Some(reply));
                    continue;
                }
                Step::Exec(exec) => {
                    self.batcher.flush(&mut run, &mut slots, socket).await;
                    let reply = exec
                        .run(&mut self.batcher, &mut self.session, &self.shared)
                        .await;
                    slots.push(Some(reply));
                    continue;
                }
            }
            match spec.runs {
                Runs::NodeRead | Runs::NodeWrite | Runs::Script | Runs::ScriptAdmin => {
                    if let Some(block) = spec.block_timeout(&argv) {
                        // A blocking command travels alone, so the commands
                        // around it are not held up by its wait (see
                        // docs/policies.md, "Blocking commands").
                        self.batcher.flush(&mut run, &mut slots, socket).await;
                        run.push(slots.len(), argv);
                        slots.push(None);
                        run.set_block(block);
                        self.batcher.flush(&mut run, &mut slots, socket).await;
                        continue;
                    }
                    run.push(slots.len(), argv);
                    slots.push(None);
                    if run.is_full() {
                        self.batcher.flush(&mut run, &mut slots, socket).await;
                    }
                }
                Runs::Proxy => {
                    // Local commands may change what follows (AUTH, HELLO),
                    // so everything before them completes first.
                    self.batcher.flush(&mut run, &mut slots, socket).await;
                    let reply =
                        commands::execute(spec, &argv, &mut self.session, &self.shared).await;
                    // AUTH / HELLO / RESET change who the next batches are
                    // charged to.
                    self.batcher.set_identity(&self.session.identity);
                    slots.push(Some(reply));
                }
            }
        }
        self.batcher.flush(&mut run, &mut slots, socket).await;
        slots
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| reply::error("ERR internal error: missing reply")))
            .collect()
    }
}
