//! Batching: how a connection's forwardable commands reach the node tier.
//!
//! Consecutive forwardable commands travel as one [`Batch`] through the
//! tower service stack (one `Execute` RPC). This module exists so that
//! cutting batches (size limits; a blocking command travels alone),
//! numbering them (the node deduplicates a retried write by client id and
//! seq, so every batch of a connection needs the next seq) and turning a
//! failed call into one error reply per command happen in one place, for a
//! pipeline, a WATCH and an EXEC alike.

use std::sync::Arc;
use std::time::Duration;

use rampart_proto::pb::WatchedKey;
use rampart_proto::{Argv, Reply};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

use crate::registry::{BlockedMark, ClientRegistry};
use crate::service::{rescue_batch, Batch, BoxError, ClientMeta};

/// A batch is cut at this many commands or bytes so one RPC stays well under
/// gRPC message limits and a huge pipeline streams through in pieces.
const MAX_BATCH_COMMANDS: usize = 4096;
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Forwardable commands waiting to be sent, with their reply positions.
#[derive(Default)]
pub(crate) struct PendingBatch {
    commands: Vec<Argv>,
    positions: Vec<usize>,
    bytes: usize,
    /// Set when the batch is one blocking command.
    block: Option<Option<Duration>>,
}

impl PendingBatch {
    /// Adds a command whose reply goes to slot `position`.
    pub(crate) fn push(&mut self, position: usize, argv: Argv) {
        self.bytes += argv.iter().map(Vec::len).sum::<usize>();
        self.commands.push(argv);
        self.positions.push(position);
    }

    /// Marks the batch (holding only a blocking command) as blocking for
    /// `block` (`None`: forever).
    pub(crate) fn set_block(&mut self, block: Option<Duration>) {
        self.block = Some(block);
    }

    pub(crate) fn is_full(&self) -> bool {
        self.commands.len() >= MAX_BATCH_COMMANDS || self.bytes >= MAX_BATCH_BYTES
    }
}

/// One connection's way to the node tier: the service stack, who the client
/// is (sent with every batch) and the batch counter.
pub(crate) struct Batcher<S> {
    service: S,
    client: ClientMeta,
    /// The seq of the last batch sent.
    seq: u64,
    /// Counts blocked clients (`blocked_clients`).
    registry: Arc<ClientRegistry>,
}

impl<S> Batcher<S>
where
    S: Service<Batch, Response = Vec<Reply>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    /// Batches from now on are charged to `identity` (after a login).
    pub(crate) fn set_identity(&mut self, identity: &rampart_policies::Identity) {
        if self.client.identity != *identity {
            self.client.identity = identity.clone();
        }
    }

    pub(crate) fn new(service: S, client: ClientMeta, registry: Arc<ClientRegistry>) -> Self {
        Batcher {
            service,
            client,
            seq: 0,
            registry,
        }
    }

    /// Sends `commands` now, as one batch of their own: a WATCH, or with
    /// `transaction` an EXEC (then ONE reply comes back, the EXEC reply).
    /// Returns one reply per command (one for a transaction); a failed call
    /// gives error replies.
    pub(crate) async fn send(
        &mut self,
        commands: Vec<Argv>,
        transaction: Option<Vec<WatchedKey>>,
    ) -> Vec<Reply> {
        let count = if transaction.is_some() {
            1
        } else {
            commands.len()
        };
        self.seq += 1;
        let batch = Batch {
            client: self.client.clone(),
            seq: self.seq,
            commands,
            block: None,
            on_waiting: None,
            transaction,
        };
        let service = &mut self.service;
        let result: Result<Vec<Reply>, BoxError> = match service.ready().await {
            Ok(service) => service.call(batch).await.map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        replies_or_errors(result, count)
    }

    /// Sends the pending run as one batch and puts the replies in their
    /// slots. `socket` is the client's: a client that hangs up while a
    /// blocking command waits ends the wait.
    pub(crate) async fn flush(
        &mut self,
        run: &mut PendingBatch,
        slots: &mut [Option<Reply>],
        socket: &TcpStream,
    ) {
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
        let blocked = block.map(|_| BlockedMark::new(&self.registry));
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
                () = hangup(socket) => Err(Box::new(std::io::Error::new(
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
