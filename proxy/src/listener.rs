//! The accept loop and the process lifecycle.
//!
//! **Zero-downtime upgrade.** The listening socket is bound with
//! `SO_REUSEADDR` and `SO_REUSEPORT`, so a new proxy process can bind the
//! same address while the old one still runs; the kernel then spreads new
//! connections over both. Sending SIGTERM (or SIGINT) to the old process makes
//! it stop accepting and close its listener at once, so every new connection
//! goes to the new process; its existing connections finish the batch they
//! are executing, get their replies, and are closed (clients reconnect to the
//! new process), bounded by `--drain-timeout-ms`. Connections still queued in
//! the old listener's accept backlog at that instant are reset by the kernel
//! and reconnect like any dropped connection.
//!
//! pingora-core was evaluated for this (it passes the listening fd to the new
//! process over a Unix socket) and not used for now; see docs/.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::commands::Shared;
use crate::config::Config;
use crate::connection;
use crate::error::ProxyError;
use crate::pubsub::PubSub;
use crate::registry::ClientRegistry;
use crate::service::{self, RequestService};
use crate::upstream::Upstream;
use rampart_policies::connections::ConnectionGuard;
use rampart_policies::{ConnectionLimiter, Decision, Policies};

/// Binds `addr` with SO_REUSEADDR and SO_REUSEPORT (see the module docs).
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// A bound proxy, ready to serve.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    service: RequestService,
    policies: Arc<Policies>,
}

impl Server {
    /// Binds the listen address and prepares the node clients (connections
    /// to the nodes are made lazily, so this succeeds with every node down).
    pub async fn bind(config: Config) -> Result<Server, ProxyError> {
        let policies = Arc::new(
            Policies::new(&config.policies)
                .map_err(|e| ProxyError::Config(format!("policies: {e}")))?,
        );
        let listener = bind_reuseport(config.listen)?;
        let local_addr = listener.local_addr()?;
        let upstream = Arc::new(Upstream::new(config.nodes.clone(), config.retry_deadline));
        let run_id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let pubsub = Arc::new(PubSub::new(
            &config.nodes,
            config.pubsub_limits(),
            config.retry_deadline,
        )?);
        let acl = Arc::new(crate::acl::AclStore::new(config.requirepass.as_deref()));
        let shared = Arc::new(Shared {
            pubsub,
            acl,
            config,
            registry: Arc::new(ClientRegistry::new()),
            upstream: upstream.clone(),
            proxy_id: uuid::Uuid::new_v4().to_string(),
            run_id,
            started: Instant::now(),
            local_addr,
        });
        let service = service::build(
            upstream,
            shared.config.retry_deadline,
            policies.admission.clone(),
        );
        Ok(Server {
            listener,
            shared,
            service,
            policies,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The live policies (for tests and reloads).
    pub fn policies(&self) -> Arc<Policies> {
        self.policies.clone()
    }

    /// The live client table (for tests and metrics).
    pub fn registry(&self) -> Arc<ClientRegistry> {
        self.shared.registry.clone()
    }

    /// Accepts clients until `shutdown` completes, then drains (module docs).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let Server {
            listener,
            shared,
            service,
            policies,
        } = self;
        let stop = CancellationToken::new();
        // Users are cluster state: follow them (docs/security.md, "ACL").
        tokio::spawn(crate::acl::poll(
            shared.acl.clone(),
            shared.upstream.clone(),
            shared.proxy_id.clone(),
            shared.registry.clone(),
            stop.child_token(),
        ));
        tokio::spawn(crate::reload::watch(
            policies.clone(),
            shared.config.args.clone(),
            stop.child_token(),
        ));
        // One pub/sub link per node (docs/pubsub.md).
        shared.pubsub.start(stop.child_token());
        let limiter = policies.connections.clone();
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => match &*policies.proxy_protocol() {
                        Some(pp) if pp.expects_header_from(peer.ip()) => {
                            // The real client address comes first: read the
                            // header off the accept loop.
                            let pp = pp.clone();
                            let start = Start {
                                limiter: limiter.clone(),
                                shared: shared.clone(),
                                service: service.clone(),
                                stop: stop.child_token(),
                                done: done_tx.clone(),
                            };
                            tokio::spawn(async move {
                                let mut socket = socket;
                                match pp.read(&mut socket).await {
                                    Ok(client) => {
                                        let client = client.unwrap_or(peer);
                                        if let Some((socket, guard)) =
                                            admit(&start.limiter, socket, client)
                                        {
                                            start.run(socket, client, guard);
                                        }
                                    }
                                    Err(e) => {
                                        tracing::debug!(%peer, error = %e, "closing connection without a valid PROXY header");
                                    }
                                }
                            });
                        }
                        // Rejects cost nothing beyond this check and a close:
                        // the per-connection state is only built once admitted.
                        _ => {
                            if let Some((socket, guard)) = admit(&limiter, socket, peer) {
                                Start {
                                    limiter: limiter.clone(),
                                    shared: shared.clone(),
                                    service: service.clone(),
                                    stop: stop.child_token(),
                                    done: done_tx.clone(),
                                }
                                .run(socket, peer, guard);
                            }
                        }
                    },
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        let open = shared.registry.len();
        tracing::info!(connections = open, "proxy stopped accepting; draining");
        stop.cancel();
        drop(done_tx);
        if tokio::time::timeout(shared.config.drain_timeout, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = shared.registry.len(),
                "drain timeout reached; closing remaining connections"
            );
        }
        tracing::info!("proxy stopped");
        Ok(())
    }
}

/// What a newly accepted connection needs to start.
struct Start {
    limiter: Arc<ConnectionLimiter>,
    shared: Arc<Shared>,
    service: RequestService,
    stop: CancellationToken,
    done: mpsc::Sender<()>,
}

/// Layer 3: the per-IP cap for `client` (the real client address). Closes
/// a rejected socket (error text or reset) and returns `None`.
fn admit(
    limiter: &ConnectionLimiter,
    socket: TcpStream,
    client: SocketAddr,
) -> Option<(TcpStream, ConnectionGuard)> {
    match limiter.admit(client.ip()) {
        Decision::Admit(guard) => Some((socket, guard)),
        rejected => {
            tracing::debug!(peer = %client, decision = ?rejected, "connection rejected");
            limiter.close_rejected(socket, &rejected);
            None
        }
    }
}

impl Start {
    /// Starts the connection's own task; `guard` is released when it ends.
    fn run(self, socket: TcpStream, client: SocketAddr, guard: ConnectionGuard) {
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(peer = %client, error = %e, "TCP_NODELAY failed");
        }
        let serve = connection::serve(
            socket,
            client,
            self.shared,
            self.service,
            self.stop,
            self.done,
        );
        tokio::spawn(async move {
            // Released however the connection ends.
            let _guard = guard;
            serve.await;
        });
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the proxy");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
