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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_policies::admission::Admission;
use rampart_policies::{AdmissionControl, AdmissionLayer, CommandBatch};
use rampart_proto::{reply, Reply};
use tower::{Service, ServiceBuilder};

use crate::error::{ProxyError, CLUSTERDOWN_TEXT};
use crate::upstream::Upstream;

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
}

/// Consecutive forwardable commands of one connection, in order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub client: ClientMeta,
    /// Increments per batch per connection; resent unchanged on retries.
    pub seq: u64,
    /// Each command is its argv: name, then arguments.
    pub commands: Vec<Vec<Vec<u8>>>,
    /// Set for a blocking command (sent alone): how long it may block
    /// (`Some(None)`: forever). The upstream deadline is extended by it.
    pub block: Option<Option<Duration>>,
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
        // A blocking command may legitimately take its whole timeout.
        let deadline = match batch.block {
            None => self.retry_deadline,
            Some(None) => FOREVER,
            Some(Some(wait)) => self.retry_deadline.saturating_add(wait),
        };
        Box::pin(async move {
            upstream
                .execute_within(batch.commands, batch.client.client_id, batch.seq, deadline)
                .await
        })
    }
}

impl CommandBatch for Batch {
    fn commands(&self) -> &[Vec<Vec<u8>>] {
        &self.commands
    }

    fn retain_commands(&mut self, keep: &[bool]) {
        let mut flags = keep.iter();
        self.commands
            .retain(|_| flags.next().copied().unwrap_or(true));
    }
}

/// The assembled request path: Layer 1 admission around the upstream.
pub type RequestService = Admission<ProxyService>;

/// Builds the request stack. Policy layers are pushed here.
pub fn build(
    upstream: Arc<Upstream>,
    retry_deadline: Duration,
    admission: Arc<AdmissionControl>,
) -> RequestService {
    ServiceBuilder::new()
        .layer(AdmissionLayer::new(admission))
        .service(ProxyService::new(upstream, retry_deadline))
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
