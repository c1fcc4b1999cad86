//! One client connection: read, decode every complete request (pipelining),
//! execute them in order, write all replies in one write.
//!
//! Consecutive forwardable commands go to the node tier as one [`Batch`];
//! commands the proxy answers itself sit between batches, and commands that
//! fail before execution (unknown, wrong arity, NOAUTH) are answered in place
//! without splitting the batch. Replies are always in request order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rampart_proto::command_table::{lookup, CommandSpec, Runs};
use rampart_proto::pb::WatchedKey;
use rampart_proto::{errors, reply, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::commands::{self, Session, Shared};
use crate::registry::BlockedMark;
use crate::resp::{encode_reply, Argv, Protocol, RequestDecoder};
use crate::service::{rescue_batch, Batch, BoxError, ClientMeta};

/// A batch is cut at this many commands or bytes so one RPC stays well under
/// gRPC message limits and a huge pipeline streams through in pieces.
const MAX_BATCH_COMMANDS: usize = 4096;
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Serves one accepted socket until the client leaves, sends a protocol
/// error, is killed (`CLIENT KILL`) or the proxy shuts down. `_done` is held
/// until the end so the listener can wait for every connection to drain.
pub async fn serve<S>(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    service: S,
    shutdown: CancellationToken,
    _done: mpsc::Sender<()>,
) where
    S: Service<Batch, Response = Vec<Reply>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let laddr = socket.local_addr().unwrap_or(shared.local_addr);
    let fd = raw_fd(&socket);
    // Dropped with the session, however this function returns.
    let registration = shared.registry.register(peer, laddr, fd);
    let session = Session::new(registration, &shared);
    let client = ClientMeta {
        peer,
        connection_id: session.id(),
        client_id: format!("{}:{}", shared.proxy_id, session.id()),
    };
    let mut connection = Connection {
        socket,
        decoder: RequestDecoder::new(shared.config.max_bulk_len),
        session,
        shared,
        service,
        client,
        seq: 0,
        multi: None,
        watches: Vec::new(),
    };
    match connection.run(shutdown).await {
        Ok(()) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
}

#[cfg(unix)]
fn raw_fd(socket: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    socket.as_raw_fd() as i64
}

#[cfg(not(unix))]
fn raw_fd(_socket: &TcpStream) -> i64 {
    -1
}

struct Connection<S> {
    socket: TcpStream,
    decoder: RequestDecoder,
    session: Session,
    shared: Arc<Shared>,
    service: S,
    client: ClientMeta,
    seq: u64,
    /// Set between MULTI and EXEC/DISCARD.
    multi: Option<MultiState>,
    /// WATCHed keys and their revisions, until EXEC, DISCARD or UNWATCH.
    watches: Vec<WatchedKey>,
}

impl<S> Connection<S>
where
    S: Service<Batch, Response = Vec<Reply>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    async fn run(&mut self, shutdown: CancellationToken) -> std::io::Result<()> {
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let mut output = BytesMut::new();
        let kill = self.session.handle.kill.clone();
        // Pub/sub messages for this client arrive here, from any task.
        let outbox = self.session.pubsub.outbox().clone();
        let cut = outbox.cut().clone();
        loop {
            let mut requests = Vec::new();
            let mut protocol_error = None;
            loop {
                match self.decoder.decode(&mut input) {
                    Ok(Some(argv)) => requests.push(argv),
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
            if !requests.is_empty() {
                self.run_requests(requests, &mut output).await;
            }
            if let Some(error) = &protocol_error {
                tracing::debug!(peer = %self.client.peer, %error, "closing after protocol error");
                encode_reply(
                    &mut output,
                    &reply::error(error.reply_text()),
                    self.session.protocol,
                );
            }
            // Pushed messages go after this round's replies.
            let pushed = outbox.drain_into(&mut output, self.session.protocol);
            if !output.is_empty() {
                tokio::select! {
                    written = self.socket.write_all(&output) => written?,
                    // A subscriber that does not read while messages keep
                    // coming is cut off, even in the middle of a write.
                    () = cut.cancelled() => {}
                }
                output.clear();
            }
            outbox.written(pushed);
            if cut.is_cancelled() {
                tracing::warn!(
                    peer = %self.client.peer,
                    limit = self.shared.config.pubsub_output_buffer_limit,
                    "closing pub/sub client that reached the output buffer limit"
                );
                return Ok(());
            }
            if protocol_error.is_some()
                || self.session.close_after_reply
                || kill.is_cancelled()
                || shutdown.is_cancelled()
            {
                return Ok(());
            }
            // Redis's client-query-buffer-limit: what is buffered now is one
            // incomplete command, which may not grow past the limit.
            if input.len() + self.decoder.pending_bytes() > self.shared.config.max_query_buffer {
                tracing::warn!(peer = %self.client.peer, "closing client that reached max query buffer length");
                return Ok(());
            }
            if input.capacity() - input.len() < READ_CHUNK / 4 {
                input.reserve(READ_CHUNK);
            }
            tokio::select! {
                read = self.socket.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                () = outbox.ready() => {}
                () = cut.cancelled() => {}
                _ = kill.cancelled() => return Ok(()),
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Runs one round of decoded requests, writing every reply to `output`.
    ///
    /// Pub/sub needs this layer above [`Connection::execute`]: the subscribe
    /// family answers with one frame per channel (push frames in RESP3), and
    /// while a RESP2 client is subscribed only some commands may run. The
    /// requests are executed in chunks that end where the pub/sub state can
    /// change (a subscribe-family command or RESET), so every request is
    /// judged with the state its predecessors left.
    async fn run_requests(&mut self, requests: Vec<Argv>, output: &mut BytesMut) {
        let mut chunk = Vec::new();
        for argv in requests {
            if self.session.close_after_reply {
                break;
            }
            match self.pubsub_route(&argv) {
                PubSubRoute::Normal => chunk.push(argv),
                PubSubRoute::Reset => {
                    chunk.push(argv);
                    self.execute_chunk(std::mem::take(&mut chunk), output).await;
                    // RESET leaves subscribed mode without confirmations.
                    self.session.pubsub.clear();
                    self.session.pubsub.settle().await;
                }
                PubSubRoute::Local(spec) => {
                    self.execute_chunk(std::mem::take(&mut chunk), output).await;
                    if self.session.close_after_reply {
                        break;
                    }
                    {
                        let mut info = self.session.handle.info();
                        info.last_cmd = commands::display_name(spec, &argv);
                        info.last_active = Instant::now();
                    }
                    let args = &argv[1..];
                    if commands::pubsub::is_subscribe_family(spec.name) {
                        commands::pubsub::subscribe_family(
                            spec.name,
                            args,
                            &mut self.session,
                            output,
                        )
                        .await;
                    } else if spec.name == "ping" {
                        commands::pubsub::subscribed_ping(args, output);
                    } else {
                        let error = commands::pubsub::not_allowed_when_subscribed(spec, &argv);
                        encode_reply(output, &error, self.session.protocol);
                    }
                }
            }
        }
        self.execute_chunk(chunk, output).await;
    }

    async fn execute_chunk(&mut self, chunk: Vec<Argv>, output: &mut BytesMut) {
        if chunk.is_empty() || self.session.close_after_reply {
            return;
        }
        let replies = self.execute(chunk).await;
        for reply in &replies {
            encode_reply(output, reply, self.session.protocol);
        }
    }

    /// Whether a request is answered by the pub/sub layer of
    /// [`Connection::run_requests`]. Unknown commands, wrong arity and
    /// NOAUTH are left to [`Connection::execute`], as Redis checks them first.
    fn pubsub_route(&self, argv: &Argv) -> PubSubRoute {
        let Some(spec) = argv.first().and_then(|name| lookup(name)) else {
            return PubSubRoute::Normal;
        };
        if !spec.arity_ok(argv.len()) || !self.session.authenticated {
            return PubSubRoute::Normal;
        }
        // Inside MULTI everything but RESET queues (EXEC answers it).
        if self.multi.is_some() && spec.name != "reset" {
            return PubSubRoute::Normal;
        }
        if commands::pubsub::is_subscribe_family(spec.name) {
            return PubSubRoute::Local(spec);
        }
        let restricted =
            self.session.protocol == Protocol::Resp2 && self.session.pubsub.is_subscribed();
        match spec.name {
            "reset" => PubSubRoute::Reset,
            "ping" if restricted => PubSubRoute::Local(spec),
            "quit" => PubSubRoute::Normal,
            _ if restricted => PubSubRoute::Local(spec),
            _ => PubSubRoute::Normal,
        }
    }

    /// Executes decoded requests in order and returns one reply per request
    /// (fewer when QUIT stops the pipeline: Redis ignores what follows).
    async fn execute(&mut self, requests: Vec<Argv>) -> Vec<Reply> {
        let mut slots: Vec<Option<Reply>> = Vec::with_capacity(requests.len());
        let mut run = PendingBatch::default();
        for argv in requests {
            if self.session.close_after_reply {
                break;
            }
            let Some(name) = argv.first() else { continue };
            let Some(spec) = lookup(name) else {
                self.abort_queueing();
                slots.push(Some(reply::error(errors::unknown_command(
                    name,
                    &argv[1..],
                ))));
                continue;
            };
            if !spec.arity_ok(argv.len()) {
                self.abort_queueing();
                slots.push(Some(reply::error(errors::wrong_arity(spec.name))));
                continue;
            }
            if !self.session.authenticated && !spec.flags.contains(&"no_auth") {
                self.abort_queueing();
                slots.push(Some(reply::error(errors::NOAUTH)));
                continue;
            }
            {
                let mut info = self.session.handle.info();
                info.last_cmd = commands::display_name(spec, &argv);
                info.last_active = Instant::now();
            }
            if let Some(reply) = self
                .transaction_step(spec, &argv, &mut run, &mut slots)
                .await
            {
                slots.push(Some(reply));
                continue;
            }
            match spec.runs {
                Runs::NodeRead | Runs::NodeWrite | Runs::Script | Runs::ScriptAdmin => {
                    if let Some(block) = spec.block_timeout(&argv) {
                        // A blocking command travels alone, so the commands
                        // around it are not held up by its wait (see
                        // docs/policies.md, "Blocking commands").
                        self.flush(&mut run, &mut slots).await;
                        run.push(slots.len(), argv);
                        slots.push(None);
                        run.block = Some(block);
                        self.flush(&mut run, &mut slots).await;
                        continue;
                    }
                    run.push(slots.len(), argv);
                    slots.push(None);
                    if run.is_full() {
                        self.flush(&mut run, &mut slots).await;
                    }
                }
                Runs::Proxy => {
                    // Local commands may change what follows (AUTH, HELLO),
                    // so everything before them completes first.
                    self.flush(&mut run, &mut slots).await;
                    let reply =
                        commands::execute(spec, &argv, &mut self.session, &self.shared).await;
                    slots.push(Some(reply));
                }
            }
        }
        self.flush(&mut run, &mut slots).await;
        slots
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| reply::error("ERR internal error: missing reply")))
            .collect()
    }

    /// A queueing error inside MULTI makes the EXEC fail (EXECABORT).
    fn abort_queueing(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.dirty = true;
        }
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH, and queueing inside MULTI.
    /// `None`: the command runs as usual. Commands pending in `run` are
    /// flushed first where order matters (WATCH, EXEC).
    async fn transaction_step(
        &mut self,
        spec: &CommandSpec,
        argv: &Argv,
        run: &mut PendingBatch,
        slots: &mut [Option<Reply>],
    ) -> Option<Reply> {
        if spec.name == "reset" {
            self.multi = None;
            self.watches.clear();
            return None;
        }
        if let Some(multi) = &mut self.multi {
            return match spec.name {
                "exec" => {
                    let multi = self.multi.take().unwrap_or_default();
                    self.flush(run, slots).await;
                    Some(self.exec(multi).await)
                }
                "discard" => {
                    self.multi = None;
                    self.watches.clear();
                    Some(reply::ok())
                }
                "multi" => Some(reply::error("ERR MULTI calls can not be nested")),
                "watch" => Some(reply::error("ERR WATCH inside MULTI is not allowed")),
                "quit" => None,
                _ => {
                    multi.queued.push(argv.clone());
                    Some(reply::status("QUEUED"))
                }
            };
        }
        match spec.name {
            "multi" => {
                self.multi = Some(MultiState::default());
                Some(reply::ok())
            }
            "exec" => Some(reply::error("ERR EXEC without MULTI")),
            "discard" => Some(reply::error("ERR DISCARD without MULTI")),
            "unwatch" => {
                self.watches.clear();
                Some(reply::ok())
            }
            "watch" => {
                self.flush(run, slots).await;
                Some(self.watch(argv).await)
            }
            _ => None,
        }
    }

    /// Sends one batch through the service stack; `count` replies expected.
    async fn call_service(&mut self, batch: Batch, count: usize) -> Vec<Reply> {
        let service = &mut self.service;
        let result: Result<Vec<Reply>, BoxError> = match service.ready().await {
            Ok(service) => service.call(batch).await.map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        replies_or_errors(result, count)
    }

    /// WATCH: reads each key's revision on the leader (a linearizable read)
    /// and keeps it until EXEC, DISCARD or UNWATCH.
    async fn watch(&mut self, argv: &Argv) -> Reply {
        self.seq += 1;
        let batch = Batch {
            client: self.client.clone(),
            seq: self.seq,
            commands: vec![argv.clone()],
            block: None,
            on_waiting: None,
            transaction: None,
        };
        let reply = self.call_service(batch, 1).await.pop();
        let Some(reply) = reply else {
            return reply::error("ERR internal error: no reply to WATCH");
        };
        let Some(items) = reply.array_items() else {
            // An error (BUSY, CLUSTERDOWN...) is the WATCH reply.
            return reply;
        };
        for (key, token) in argv[1..].iter().zip(items) {
            let pair = token.array_items().unwrap_or_default();
            let int = |i: usize| pair.get(i).and_then(Reply::integer_value).unwrap_or(0);
            if self.watches.iter().any(|w| &w.key == key) {
                continue;
            }
            self.watches.push(WatchedKey {
                key: key.clone(),
                revision: int(0).max(0) as u64,
                existed: int(1) != 0,
            });
        }
        reply::ok()
    }

    /// EXEC: the queued node commands go to the leader as one transaction
    /// (one Raft entry, checked against the WATCHed revisions); commands the
    /// proxy answers itself (PING, ECHO...) run here, in their place.
    async fn exec(&mut self, multi: MultiState) -> Reply {
        let watches = std::mem::take(&mut self.watches);
        if multi.dirty {
            return reply::error("EXECABORT Transaction discarded because of previous errors.");
        }
        let specs: Vec<Option<&'static CommandSpec>> =
            multi.queued.iter().map(|argv| lookup(&argv[0])).collect();
        let is_local = |spec: &Option<&CommandSpec>| spec.is_some_and(|s| s.runs == Runs::Proxy);
        let mut results: Vec<Option<Reply>> = vec![None; multi.queued.len()];
        let node_commands: Vec<Argv> = multi
            .queued
            .iter()
            .zip(&specs)
            .filter(|(_, spec)| !is_local(spec))
            .map(|(argv, _)| argv.clone())
            .collect();
        if !node_commands.is_empty() || !watches.is_empty() {
            self.seq += 1;
            let batch = Batch {
                client: self.client.clone(),
                seq: self.seq,
                commands: node_commands,
                block: None,
                on_waiting: None,
                transaction: Some(watches),
            };
            let reply = self.call_service(batch, 1).await.pop();
            let Some(items) = reply.as_ref().and_then(Reply::array_items) else {
                // Aborted by WATCH (null array), or refused (BUSY...).
                return reply.unwrap_or_else(reply::null_array);
            };
            let mut items = items.into_iter();
            for (slot, spec) in results.iter_mut().zip(&specs) {
                if !is_local(spec) {
                    *slot = items.next();
                }
            }
        }
        for (i, argv) in multi.queued.iter().enumerate() {
            if let Some(spec) = specs[i].filter(|s| s.runs == Runs::Proxy) {
                let reply = commands::execute(spec, argv, &mut self.session, &self.shared).await;
                results[i] = Some(reply);
            }
        }
        reply::array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| reply::error("ERR internal error: missing reply")))
                .collect(),
        )
    }

    /// Sends the pending run as one batch and puts the replies in their slots.
    async fn flush(&mut self, run: &mut PendingBatch, slots: &mut [Option<Reply>]) {
        if run.commands.is_empty() {
            return;
        }
        let PendingBatch {
            commands,
            positions,
            block,
            ..
        } = std::mem::take(run);
        self.seq += 1;
        let count = commands.len();
        // Counted in `blocked_clients` only once the node says it waits, as
        // Redis counts a client only once it is blocked.
        let blocked = block.map(|_| BlockedMark::new(&self.shared.registry));
        let batch = Batch {
            client: self.client.clone(),
            seq: self.seq,
            commands,
            block,
            on_waiting: blocked.as_ref().map(BlockedMark::on_waiting),
            transaction: None,
        };
        let service = &mut self.service;
        let call = async move {
            match service.ready().await {
                Ok(service) => service.call(batch).await.map_err(Into::into),
                Err(e) => Err(e.into()),
            }
        };
        let result: Result<Vec<Reply>, BoxError> = if block.is_some() {
            // While a command blocks, a client that hangs up must end the
            // wait (as in Redis): dropping the call cancels the RPC, and the
            // node drops its waiter.
            tokio::select! {
                result = call => result,
                () = hangup(&self.socket) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "client closed the connection while blocked",
                ))),
            }
        } else {
            call.await
        };
        drop(blocked);
        let replies = replies_or_errors(result, count);
        for (position, reply) in positions.into_iter().zip(replies) {
            if let Some(slot) = slots.get_mut(position) {
                *slot = Some(reply);
            }
        }
    }
}

/// Completes when the peer has closed its side (EOF or error) and never
/// when it sends data (pipelined commands after a blocking one are legal and
/// stay in the socket until the blocking command answers).
async fn hangup(socket: &TcpStream) {
    let mut probe = [0u8; 1];
    match socket.peek(&mut probe).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending::<()>().await,
    }
}

/// Who answers a request (see [`Connection::run_requests`]).
enum PubSubRoute {
    /// [`Connection::execute`], in the current chunk.
    Normal,
    /// [`Connection::execute`], then subscriptions are dropped.
    Reset,
    /// The pub/sub layer: the subscribe family, and in RESP2 subscribed
    /// mode PING and the refusal of everything else.
    Local(&'static CommandSpec),
}

/// Forwardable commands waiting to be sent, with their reply positions.
/// `count` replies from a service result: its replies, or one error reply
/// per command when it failed or answered the wrong number.
fn replies_or_errors(result: Result<Vec<Reply>, BoxError>, count: usize) -> Vec<Reply> {
    match result {
        Ok(replies) if replies.len() == count => replies,
        Ok(replies) => {
            let err = crate::error::ProxyError::Upstream(format!(
                "{} replies for {count} commands",
                replies.len()
            ));
            rescue_batch(&err, count)
        }
        Err(error) => rescue_batch(error.as_ref(), count),
    }
}

/// A MULTI in progress: the queued commands, and whether one failed to
/// queue (then EXEC answers EXECABORT).
#[derive(Debug, Default)]
struct MultiState {
    queued: Vec<Argv>,
    dirty: bool,
}

#[derive(Default)]
struct PendingBatch {
    commands: Vec<Argv>,
    positions: Vec<usize>,
    bytes: usize,
    /// Set when the batch is one blocking command.
    block: Option<Option<std::time::Duration>>,
}

impl PendingBatch {
    fn push(&mut self, position: usize, argv: Argv) {
        self.bytes += argv.iter().map(Vec::len).sum::<usize>();
        self.commands.push(argv);
        self.positions.push(position);
    }

    fn is_full(&self) -> bool {
        self.commands.len() >= MAX_BATCH_COMMANDS || self.bytes >= MAX_BATCH_BYTES
    }
}
