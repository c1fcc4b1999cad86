//! rampart-proxy: a stateless RESP2/RESP3 endpoint that forwards commands to
//! the Raft storage nodes over gRPC.
//!
//! - [`listener`]: accept loop, SO_REUSEPORT binding, graceful drain.
//! - [`connection`]: per-connection read/write loop: frames requests and
//!   hands them to the dispatcher.
//! - `dispatch`: who answers each request, replies in request order.
//! - `pubsub_route`: the subscribe family and RESP2 subscribed mode.
//! - `transaction`: the MULTI/EXEC/WATCH state machine.
//! - `batch`: consecutive forwardable commands sent as one [`Batch`].
//! - [`resp`]: request decoding with Redis's limits, reply encoding.
//! - [`commands`]: what the proxy answers itself (PING, HELLO, CLIENT...).
//! - [`service`]: the request path as a tower `Service<Batch>`.
//! - [`upstream`]: leader discovery, redirects and retries.
//! - [`pubsub`]: pub/sub across proxies through links to every node.
//! - [`acl`]: the cluster's ACL users, followed, and the ACL log.
//! - [`redis_config`]: `CONFIG` parameters: the proxy's and the cluster's.
//! - [`reload`]: SIGHUP / config-file-change reload of the policies (and
//!   SIGHUP reload of the client TLS certificates).
//! - [`tls`]: TLS for clients: certificates, client authentication, the
//!   plain-or-TLS client stream.

pub mod acl;
mod batch;
pub mod commands;
pub mod config;
pub mod connection;
mod dispatch;
pub mod error;
pub mod listener;
pub mod metrics_http;
pub mod pubsub;
mod pubsub_route;
pub mod redis_config;
pub mod registry;
pub mod reload;
pub mod resp;
pub mod service;
pub mod tls;
mod transaction;
pub mod upstream;

pub use config::{Config, ProxyArgs};
pub use error::{ProxyError, CLUSTERDOWN_TEXT};
pub use listener::Server;
pub use service::{Batch, ClientMeta, ProxyService, RequestService};

/// Runs a proxy until SIGINT/SIGTERM: loads the configuration, binds, logs
/// `proxy listening on ADDR`, serves and drains.
pub async fn run(args: ProxyArgs) -> Result<(), ProxyError> {
    let config = Config::load(args)?;
    // Before `Server::bind` builds the policy tables, which register the
    // per-command metric handles.
    if let Some(addr) = config.metrics_addr {
        metrics_http::install(addr)?;
    }
    let server = Server::bind(config).await?;
    if let Some(addr) = server.plaintext_addr() {
        tracing::info!("proxy listening on {addr}");
    }
    if let Some(addr) = server.tls_addr() {
        tracing::info!("proxy listening for TLS clients on {addr}");
    }
    server.serve(listener::shutdown_signal()).await
}
