//! The proxy's error type. Handlers and the upstream return typed errors;
//! [`crate::service::rescue`] is the one place that turns them into Redis
//! error replies.

use std::time::Duration;

/// Everything that can go wrong in the proxy outside a single command's own
/// Redis error reply.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No node answered as leader before the retry deadline. Sent to the
    /// client as [`CLUSTERDOWN_TEXT`].
    #[error("no leader reachable within {0:?}")]
    ClusterDown(Duration),
    /// A node answered, but with something the proxy cannot use (an error
    /// status that is not safe to retry, or a reply count that does not match
    /// the batch).
    #[error("upstream error: {0}")]
    Upstream(String),
    /// Invalid configuration (flags, environment or config file).
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The reply every command of a batch gets when no leader could be reached
/// within the retry deadline (`--retry-deadline-ms`). Writes of that batch
/// may or may not have been applied (a commit can succeed while its answer is
/// lost), exactly as with a Redis connection that drops mid-command.
pub const CLUSTERDOWN_TEXT: &str = "CLUSTERDOWN The cluster is down: no leader reachable";
