//! The request path as a tower [`Service`]: a [`Batch`] of consecutive
//! forwardable commands from one connection goes to the node tier as one
//! `Execute` RPC and comes back as one reply per command, in order.
//!
//! Later policies (admission, class-based concurrency) wrap
//! [`ProxyService`] as tower layers; [`build`] is the one place the stack is
//! assembled and [`rescue`] the one place errors become Redis replies.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_proto::{reply, Reply};
use tower::Service;

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
}

/// Errors from any layer of the stack, boxed as tower does.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Forwards batches to the leader through [`Upstream`].
#[derive(Clone)]
pub struct ProxyService {
    upstream: Arc<Upstream>,
}

impl ProxyService {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        ProxyService { upstream }
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
        Box::pin(async move {
            upstream
                .execute(batch.commands, batch.client.client_id, batch.seq)
                .await
        })
    }
}

/// Builds the request stack. Policy layers are pushed here.
pub fn build(upstream: Arc<Upstream>) -> ProxyService {
    ProxyService::new(upstream)
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
    use std::time::Duration;

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
