//! The request path as a tower [`Service`]: a [`Batch`] of consecutive
//! forwardable commands from one connection goes to the node tier as one
//! `Execute` RPC and comes back as one reply per command, in order.
//!
//! The policies (Layer 1 admission: class-based concurrency and the global
//! in-flight cap, from `rampart-policies`) wrap [`ProxyService`] as tower
//! layers; [`build`] is the one place the stack is assembled and [`rescue`]
//! the one place errors become Redis replies. Admission is per command: a
//! rejected command's `-BUSY` reply takes its place in the batch's replies
//! and the other commands still run.
//!
//! [`Traced`] is the outermost layer: when traces are on (see
//! `rampart-telemetry`) it opens the `proxy.command` span every later step
//! of the batch (admission, the gRPC call to the node) is a child of.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use rampart_policies::admission::Admission;
use rampart_policies::{AdmissionControl, AdmissionLayer, CommandBatch};
use rampart_proto::pb::WatchedKey;
use rampart_proto::{reply, Argv, Reply};
use tower::{Layer, Service, ServiceBuilder};
use tracing::field::Empty;
use tracing::Instrument;

use crate::error::{ProxyError, CLUSTERDOWN_TEXT};
use crate::upstream::{CallOptions, OnWaiting, Upstream};

/// Who sent a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMeta {
    /// The client's TCP peer address.
    pub peer: SocketAddr,
    /// The proxy-local connection id (`CLIENT ID`).
    pub connection_id: u64,
    /// `<proxy instance uuid>:<connection id>`: the node deduplicates retried
    /// writes by (client_id, seq).
    pub client_id: String,
    /// Who Layer 1 charges the batch to (IP, or ACL user at an IP).
    pub identity: rampart_policies::Identity,
}

/// Consecutive forwardable commands of one connection, in order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub client: ClientMeta,
    /// Increments per batch per connection; resent unchanged on retries.
    pub seq: u64,
    /// Each command is its argv: name, then arguments.
    pub commands: Vec<Argv>,
    /// Set for a blocking command (sent alone): how long it may block
    /// (`Some(None)`: forever). The upstream deadline is extended by it.
    pub block: Option<Option<Duration>>,
    /// Set with `block`: called when the node reports the command waits.
    pub on_waiting: Option<OnWaiting>,
    /// Set for MULTI/EXEC: the commands run all or nothing in one Raft
    /// entry, if none of these watched keys changed; the response is ONE
    /// reply (the EXEC array or a null array).
    pub transaction: Option<Vec<WatchedKey>>,
}

/// Errors from any layer of the stack, boxed as tower does.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Forwards batches to the leader through [`Upstream`].
#[derive(Clone)]
pub struct ProxyService {
    upstream: Arc<Upstream>,
    retry_deadline: Duration,
}

/// Stands for "no deadline" for a blocking command with timeout 0.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl ProxyService {
    pub fn new(upstream: Arc<Upstream>, retry_deadline: Duration) -> Self {
        ProxyService {
            upstream,
            retry_deadline,
        }
    }
}

impl Service<Batch> for ProxyService {
    type Response = Vec<Reply>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness (backpressure) belongs to the policy layers around us.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let upstream = self.upstream.clone();
        // A blocking command may legitimately take its whole timeout; a
        // large batch (a 100,000-command EXEC) its replication and apply.
        let deadline = match batch.block {
            None => self
                .retry_deadline
                .saturating_add(size_allowance(&batch.commands)),
            Some(None) => FOREVER,
            Some(Some(wait)) => self.retry_deadline.saturating_add(wait),
        };
        // The session's ACL user, for the node's check of what a script
        // calls (docs/security.md); the identity names it (none: default).
        let user = batch.client.identity.user.as_deref().unwrap_or("default");
        let options = CallOptions {
            deadline: Some(deadline),
            unbounded: batch.commands.iter().any(|argv| runs_script(argv)),
            blocking: batch.on_waiting.clone(),
            transaction: batch.transaction,
            user: Some(user.to_string()),
        };
        Box::pin(async move {
            upstream
                .call(batch.commands, batch.client.client_id, batch.seq, options)
                .await
        })
    }
}

/// Extra time a batch gets for its size: one second per 10,000 commands or
/// per MiB, whichever is more (replicating and applying it grows with both;
/// a retry after a timeout is deduplicated, so a longer wait costs nothing
/// but time).
fn size_allowance(commands: &[Argv]) -> Duration {
    let bytes: usize = commands.iter().flatten().map(Vec::len).sum();
    let by_count = commands.len() as f64 / 10_000.0;
    let by_bytes = bytes as f64 / (1024.0 * 1024.0);
    Duration::from_secs_f64(by_count.max(by_bytes))
}

/// Whether `argv` runs a Lua script (EVAL, EVALSHA and their _RO forms).
fn runs_script(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .and_then(|name| rampart_proto::command_table::lookup(name))
        .is_some_and(|spec| spec.runs == rampart_proto::command_table::Runs::Script)
}

impl CommandBatch for Batch {
    fn commands(&self) -> &[Argv] {
        &self.commands
    }

    fn all_or_nothing(&self) -> bool {
        self.transaction.is_some()
    }

    fn client(&self) -> Option<&rampart_policies::Identity> {
        Some(&self.client.identity)
    }

    fn retain_commands(&mut self, keep: &[bool]) {
        let mut flags = keep.iter();
        self.commands
            .retain(|_| flags.next().copied().unwrap_or(true));
    }
}

/// The assembled request path: the trace span around Layer 1 admission
/// around the upstream.
pub type RequestService = Traced<Admission<ProxyService>>;

/// Builds the request stack. Policy layers are pushed here.
pub fn build(
    upstream: Arc<Upstream>,
    retry_deadline: Duration,
    admission: Arc<AdmissionControl>,
) -> RequestService {
    ServiceBuilder::new()
        .layer(TraceLayer::new(admission.clone()))
        .layer(AdmissionLayer::new(admission))
        .service(ProxyService::new(upstream, retry_deadline))
}

/// Wraps the stack in [`Traced`].
#[derive(Clone)]
pub struct TraceLayer {
    admission: Arc<AdmissionControl>,
}

impl TraceLayer {
    /// `admission` names each command's class for the span.
    pub fn new(admission: Arc<AdmissionControl>) -> Self {
        TraceLayer { admission }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            admission: self.admission.clone(),
        }
    }
}

/// One `proxy.command` span per batch (OpenTelemetry kind server, named
/// after the command, `PIPELINE` for a batch of several commands), the root
/// of the command's trace. Attributes: `db.operation.name`, the batch size,
/// the commands' classes, the client; admission fills in its decision and
/// wait (`rampart.admission*`), and the answer `rampart.reply.errors`. A
/// failed batch, or one with error replies, gets status Error.
///
/// When traces are off the call goes straight to the inner service: no
/// span, no allocation.
#[derive(Clone)]
pub struct Traced<S> {
    inner: S,
    admission: Arc<AdmissionControl>,
}

/// Commands looked at for the span's names and classes (a pipeline may hold
/// thousands).
const TRACE_SCAN: usize = 64;
/// Distinct command names listed in `db.operation.name`.
const TRACE_NAMES: usize = 8;

impl<S> Traced<S> {
    fn span(&self, batch: &Batch) -> tracing::Span {
        let mut names: Vec<String> = Vec::new();
        let mut classes: Vec<&'static str> = Vec::new();
        for argv in batch.commands.iter().take(TRACE_SCAN) {
            if let Some(name) = argv.first() {
                let name = String::from_utf8_lossy(name).to_ascii_uppercase();
                if names.len() < TRACE_NAMES && !names.contains(&name) {
                    names.push(name);
                }
            }
            if let Some(class) = self.admission.class_of(argv) {
                if !classes.contains(&class) {
                    classes.push(class);
                }
            }
        }
        let span_name = match names.as_slice() {
            [one] if batch.commands.len() == 1 => one.clone(),
            _ => "PIPELINE".to_string(),
        };
        tracing::debug_span!(
            "proxy.command",
            otel.name = span_name.as_str(),
            otel.kind = "server",
            db.system = "redis",
            db.operation.name = names.join(" ").as_str(),
            db.operation.batch.size = batch.commands.len() as i64,
            client.address = %batch.client.peer.ip(),
            client.port = i64::from(batch.client.peer.port()),
            rampart.client.id = batch.client.client_id.as_str(),
            rampart.request.seq = batch.seq as i64,
            rampart.blocking = batch.block.is_some(),
            rampart.class = classes.join(",").as_str(),
            rampart.admission = Empty,
            rampart.admission.wait_ms = Empty,
            rampart.admission.rejected = Empty,
            rampart.reply.errors = Empty,
        )
    }
}

type TracedFuture<E> = Pin<Box<dyn Future<Output = Result<Vec<Reply>, E>> + Send>>;

impl<S> Service<Batch> for Traced<S>
where
    S: Service<Batch, Response = Vec<Reply>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
{
    type Response = Vec<Reply>;
    type Error = S::Error;
    type Future = Either<S::Future, TracedFuture<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        if !rampart_telemetry::enabled() {
            return Either::Left(self.inner.call(batch));
        }
        let span = self.span(&batch);
        // Entered for the call too: layers may start work before the future
        // is first polled.
        let fut = {
            let _entered = span.enter();
            self.inner.call(batch)
        };
        let recorded = span.clone();
        Either::Right(Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(replies) => {
                        let count = replies.iter().filter(|r| r.error_text().is_some()).count();
                        recorded.record("rampart.reply.errors", count as i64);
                        if let Some(first) = replies.iter().find_map(Reply::error_text) {
                            rampart_telemetry::record_error(&recorded, first.to_string());
                        }
                    }
                    Err(e) => rampart_telemetry::record_error(&recorded, e.to_string()),
                }
                result
            }
            .instrument(span),
        ))
    }
}

/// The one place an error from the stack becomes the Redis error text every
/// command of the failed batch receives.
pub fn rescue(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(proxy) = err.downcast_ref::<ProxyError>() {
            return match proxy {
                ProxyError::ClusterDown(_) => CLUSTERDOWN_TEXT.to_string(),
                other => format!("ERR {other}"),
            };
        }
        current = err.source();
    }
    format!("ERR {error}")
}

/// `commands` error replies carrying [`rescue`]'s text.
pub fn rescue_batch(error: &(dyn std::error::Error + 'static), commands: usize) -> Vec<Reply> {
    let text = rescue(error);
    (0..commands).map(|_| reply::error(text.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_down_is_rescued_with_the_documented_text() {
        let err = ProxyError::ClusterDown(Duration::from_secs(5));
        assert_eq!(
            rescue(&err),
            "CLUSTERDOWN The cluster is down: no leader reachable"
        );
        let boxed: BoxError = Box::new(ProxyError::ClusterDown(Duration::from_secs(1)));
        let replies = rescue_batch(boxed.as_ref(), 2);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1].error_text(), Some(CLUSTERDOWN_TEXT));
    }

    #[test]
    fn other_errors_become_err_replies() {
        let err = ProxyError::Upstream("node x: boom".into());
        assert_eq!(rescue(&err), "ERR upstream error: node x: boom");
    }
}
