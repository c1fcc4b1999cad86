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
use rampart_proto::command_table::{lookup, Runs};
use rampart_proto::{errors, reply, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::commands::{self, Session, Shared};
use crate::resp::{encode_reply, Argv, RequestDecoder};
use crate::service::{rescue_batch, Batch, BoxError, ClientMeta};
use rampart_policies::classes::block_timeout;

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
                let replies = self.execute(requests).await;
                for reply in &replies {
                    encode_reply(&mut output, reply, self.session.protocol);
                }
            }
            if let Some(error) = &protocol_error {
                tracing::debug!(peer = %self.client.peer, %error, "closing after protocol error");
                encode_reply(
                    &mut output,
                    &reply::error(error.reply_text()),
                    self.session.protocol,
                );
            }
            if !output.is_empty() {
                self.socket.write_all(&output).await?;
                output.clear();
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
                _ = kill.cancelled() => return Ok(()),
                _ = shutdown.cancelled() => return Ok(()),
            }
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
                slots.push(Some(reply::error(errors::unknown_command(
                    name,
                    &argv[1..],
                ))));
                continue;
            };
            if !spec.arity_ok(argv.len()) {
                slots.push(Some(reply::error(errors::wrong_arity(spec.name))));
                continue;
            }
            if !self.session.authenticated && !spec.flags.contains(&"no_auth") {
                slots.push(Some(reply::error(errors::NOAUTH)));
                continue;
            }
            {
                let mut info = self.session.handle.info();
                info.last_cmd = commands::display_name(spec, &argv);
                info.last_active = Instant::now();
            }
            match spec.runs {
                Runs::NodeRead | Runs::NodeWrite => {
                    if let Some(block) = block_timeout(&argv) {
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
        let batch = Batch {
            client: self.client.clone(),
            seq: self.seq,
            commands,
            block,
        };
        let service = &mut self.service;
        let call = async move {
            match service.ready().await {
                Ok(service) => service.call(batch).await.map_err(Into::into),
                Err(e) => Err(e.into()),
            }
        };
        let result: Result<Vec<Reply>, BoxError> = if block.is_some() {
            let _blocked = self.shared.registry.blocked_guard();
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
        let replies = match result {
            Ok(replies) if replies.len() == count => replies,
            Ok(replies) => {
                let err = crate::error::ProxyError::Upstream(format!(
                    "{} replies for {count} commands",
                    replies.len()
                ));
                rescue_batch(&err, count)
            }
            Err(error) => rescue_batch(error.as_ref(), count),
        };
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

/// Forwardable commands waiting to be sent, with their reply positions.
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
