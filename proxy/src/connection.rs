//! One client connection: read, decode every complete request (pipelining),
//! hand them to the dispatcher, write all replies (and pushed pub/sub
//! messages) in one write.
//!
//! This module only frames and dispatches: it owns the socket, the decoder
//! and the limits on what a client may buffer, and decides when the
//! connection ends. What each request does is decided in `dispatch.rs`,
//! which uses `pubsub_route.rs` (subscribe family, subscribed mode),
//! `transaction.rs` (MULTI/EXEC/WATCH) and `batch.rs` (the node tier).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rampart_policies::connections::ConnectionGuard;
use rampart_proto::{reply, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::batch::Batcher;
use crate::commands::{ConnectionSlot, Session, Shared};
use crate::config::OutputLimit;
use crate::dispatch::Dispatcher;
use crate::resp::{encode_reply, RequestDecoder};
use crate::service::{Batch, BoxError, ClientMeta};
use crate::tls::ClientStream;

const READ_CHUNK: usize = 16 * 1024;
/// How long closing a TLS connection may wait to send close_notify.
const TLS_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Serves one accepted socket until the client leaves, sends a protocol
/// error, is killed (`CLIENT KILL`) or the proxy shuts down. `_done` is held
/// until the end so the listener can wait for every connection to drain.
pub async fn serve<S>(
    socket: ClientStream,
    peer: SocketAddr,
    slot: ConnectionGuard,
    shared: Arc<Shared>,
    service: S,
    shutdown: CancellationToken,
    _done: mpsc::Sender<()>,
) where
    S: Service<Batch, Response = Vec<Reply>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let laddr = socket.tcp().local_addr().unwrap_or(shared.local_addr);
    let fd = raw_fd(socket.tcp());
    // Dropped with the session, however this function returns.
    let registration = shared.registry.register(peer, laddr, fd);
    let mut session = Session::new(registration, &shared);
    session.slot = ConnectionSlot::Ip(slot);
    let client = ClientMeta {
        peer,
        connection_id: session.id(),
        client_id: format!("{}:{}", shared.proxy_id, session.id()),
        identity: session.identity.clone(),
    };
    let batcher = Batcher::new(service, client, shared.registry.clone());
    let mut connection = Connection {
        socket,
        decoder: RequestDecoder::new(shared.config.max_bulk_len),
        peer,
        shared: shared.clone(),
        dispatcher: Dispatcher::new(session, shared, batcher),
    };
    match connection.run(shutdown).await {
        Ok(()) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
    // A TLS client is sent close_notify, so it can tell our close from a
    // truncated stream; bounded, as the client may not be reading.
    if matches!(connection.socket, ClientStream::Tls(_)) {
        let _ = tokio::time::timeout(TLS_CLOSE_TIMEOUT, connection.socket.shutdown()).await;
    }
}

/// Writes `data`, Redis's `client-output-buffer-limit normal` soft limit
/// applied: `Ok(false)` when more than `limit.soft` bytes stayed unwritten
/// for `limit.soft_for` (the client does not read its replies). The hard
/// limit is checked before, on what a round built: while a write is
/// pending no more requests are read, so pending bytes only shrink.
async fn write_bounded(
    socket: &mut ClientStream,
    mut data: &[u8],
    limit: OutputLimit,
) -> std::io::Result<bool> {
    if limit.soft > 0 && data.len() > limit.soft {
        let deadline = tokio::time::Instant::now() + limit.soft_for;
        while data.len() > limit.soft {
            tokio::select! {
                written = socket.write(data) => match written? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => data = &data[n..],
                },
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }
    socket.write_all(data).await?;
    // TLS buffers records: the flush sends them (a no-op on TCP).
    socket.flush().await?;
    Ok(true)
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
    socket: ClientStream,
    decoder: RequestDecoder,
    peer: SocketAddr,
    shared: Arc<Shared>,
    dispatcher: Dispatcher<S>,
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
        let kill = self.dispatcher.session.handle.kill.clone();
        // Pub/sub messages for this client arrive here, from any task.
        let outbox = self.dispatcher.session.pubsub.outbox().clone();
        let cut = outbox.cut().clone();
        let mut acl_changes = self.shared.acl.changes();
        // Redis's `timeout` (CONFIG SET): a client that neither sent nor
        // was sent anything for that long is closed; subscribers never are.
        let mut idle_timeout = self.shared.redis_config.idle_timeout();
        let mut last_activity = tokio::time::Instant::now();
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
                self.dispatcher
                    .run(requests, &mut output, self.socket.tcp())
                    .await;
                if self.dispatcher.session.abort {
                    // A login past its user's reject rate: a reset, no reply.
                    tracing::debug!(peer = %self.peer, "closing refused login without a reply");
                    let _ = socket2::SockRef::from(self.socket.tcp())
                        .set_linger(Some(std::time::Duration::ZERO));
                    return Ok(());
                }
            }
            if let Some(error) = &protocol_error {
                tracing::debug!(peer = %self.peer, %error, "closing after protocol error");
                encode_reply(
                    &mut output,
                    &reply::error(error.reply_text()),
                    self.dispatcher.session.protocol,
                );
            }
            // Pushed messages go after this round's replies.
            let pushed = outbox.drain_into(&mut output, self.dispatcher.session.protocol);
            let limit = self.shared.config.client_output;
            if limit.hard > 0 && output.len() > limit.hard {
                tracing::warn!(
                    peer = %self.peer,
                    pending = output.len(),
                    limit = limit.hard,
                    "closing client that reached the output buffer hard limit"
                );
                return Ok(());
            }
            if !output.is_empty() {
                tokio::select! {
                    written = write_bounded(&mut self.socket, &output, limit) => {
                        if !written? {
                            tracing::warn!(
                                peer = %self.peer,
                                limit = limit.soft,
                                seconds = limit.soft_for.as_secs(),
                                "closing client that stayed above the output buffer soft limit"
                            );
                            return Ok(());
                        }
                    }
                    // A subscriber that does not read while messages keep
                    // coming is cut off, even in the middle of a write.
                    () = cut.cancelled() => {}
                }
                output.clear();
                last_activity = tokio::time::Instant::now();
            }
            outbox.written(pushed);
            if cut.is_cancelled() {
                tracing::warn!(
                    peer = %self.peer,
                    limit = self.shared.config.pubsub_output_buffer_limit,
                    "closing pub/sub client that reached the output buffer limit"
                );
                return Ok(());
            }
            if protocol_error.is_some()
                || self.dispatcher.session.close_after_reply
                || kill.is_cancelled()
                || shutdown.is_cancelled()
            {
                return Ok(());
            }
            // Redis's client-query-buffer-limit: what is buffered now is one
            // incomplete command, which may not grow past the limit.
            if input.len() + self.decoder.pending_bytes() > self.shared.config.max_query_buffer {
                tracing::warn!(peer = %self.peer, "closing client that reached max query buffer length");
                return Ok(());
            }
            if input.capacity() - input.len() < READ_CHUNK / 4 {
                input.reserve(READ_CHUNK);
            }
            let idle_secs = *idle_timeout.borrow_and_update();
            let idle_deadline = (idle_secs > 0 && !self.dispatcher.session.pubsub.is_subscribed())
                .then(|| last_activity + std::time::Duration::from_secs(idle_secs));
            tokio::select! {
                read = self.socket.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    last_activity = tokio::time::Instant::now();
                }
                () = async {
                    match idle_deadline {
                        Some(deadline) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::debug!(peer = %self.peer, "closing client idle past the timeout");
                    return Ok(());
                }
                Ok(()) = idle_timeout.changed() => {}
                () = outbox.ready() => {}
                () = cut.cancelled() => {}
                Ok(()) = acl_changes.changed(), if self.dispatcher.session.pubsub.is_subscribed() => {
                    if !self.dispatcher.session.subscriptions_allowed(&self.shared) {
                        tracing::info!(
                            peer = %self.peer,
                            user = %self.dispatcher.session.user.name,
                            "closing subscriber whose channels are no longer granted"
                        );
                        return Ok(());
                    }
                }
                _ = kill.cancelled() => return Ok(()),
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}
