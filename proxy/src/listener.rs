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
use crate::tls::{ClientStream, ClientTls, HANDSHAKE_TIMEOUT};
use crate::upstream::Upstream;
use rampart_policies::connections::ConnectionGuard;
use rampart_policies::{ConnectionLimiter, Decision, Policies};
use tokio_rustls::TlsAcceptor;

/// Client TLS handshakes by `result`: ok, error (refused certificate,
/// plaintext on the TLS port...), timeout.
pub const TLS_HANDSHAKES: &str = "rampart_tls_handshakes_total";

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
    /// The plaintext listener (`None`: turned off, TLS only).
    listener: Option<TcpListener>,
    tls: Option<TlsListener>,
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
        let tls = match &config.tls {
            Some(settings) => {
                let client_tls = ClientTls::load(settings.files.clone())
                    .map_err(|e| ProxyError::Config(format!("TLS: {e}")))?;
                let listener = bind_reuseport(settings.addr)?;
                Some(TlsListener {
                    local_addr: listener.local_addr()?,
                    listener,
                    tls: Arc::new(client_tls),
                })
            }
            None => None,
        };
        let listener = if config.plaintext() {
            Some(bind_reuseport(config.listen)?)
        } else {
            None
        };
        let local_addr = match (&listener, &tls) {
            (Some(listener), _) => listener.local_addr()?,
            (None, Some(tls)) => tls.local_addr,
            (None, None) => unreachable!("Config::plaintext is true without TLS"),
        };
        // Refuses to start without certificates or --insecure.
        let cluster_tls = config
            .cluster_security
            .load()
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        let upstream = Arc::new(
            Upstream::new(config.nodes.clone(), config.retry_deadline)
                .with_tls(cluster_tls.clone()),
        );
        let run_id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let pubsub = Arc::new(PubSub::with_tls(
            &config.nodes,
            config.pubsub_limits(),
            config.retry_deadline,
            cluster_tls.as_ref(),
        )?);
        let acl = Arc::new(crate::acl::AclStore::new(config.requirepass.as_deref()));
        let redis_config = Arc::new(crate::redis_config::ConfigStore::new(&config));
        let shared = Arc::new(Shared {
            pubsub,
            acl,
            redis_config,
            config,
            registry: Arc::new(ClientRegistry::new()),
            upstream: upstream.clone(),
            proxy_id: uuid::Uuid::new_v4().to_string(),
            run_id,
            started: Instant::now(),
            local_addr,
            policies: policies.clone(),
        });
        // Denials of scripts' calls come back from the nodes: the ACL LOG
        // records them here, like the proxy's own (Weak: the hook lives in
        // the upstream that `shared` holds).
        let weak = Arc::downgrade(&shared);
        shared
            .upstream
            .on_script_denials(Box::new(move |client_id, denials| {
                if let Some(shared) = weak.upgrade() {
                    crate::commands::acl::log_script_denials(&shared, client_id, denials);
                }
            }));
        let service = service::build(
            upstream,
            shared.config.retry_deadline,
            policies.admission.clone(),
        );
        Ok(Server {
            listener,
            tls,
            shared,
            service,
            policies,
        })
    }

    /// The plaintext listener's address (the TLS one's when plaintext is off).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Where the plaintext listener is bound, if it is on.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|_| self.shared.local_addr)
    }

    /// Where the TLS listener is bound, if it is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.local_addr)
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
            tls,
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
            tls.as_ref().map(|t| t.tls.clone()),
            shared.config.args.clone(),
            stop.child_token(),
        ));
        // One pub/sub link per node (docs/pubsub.md).
        shared.pubsub.start(stop.child_token());
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let starter = Starter {
            limiter: policies.connections.clone(),
            shared: shared.clone(),
            service,
            stop: stop.clone(),
            done: done_tx,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                // Both listeners feed the same path: PROXY header, per-IP
                // admission, then (TLS only) the handshake in the
                // connection's own task.
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok((socket, peer)) => handle_accepted(socket, peer, None, &policies, &starter),
                    Err(e) => accept_failed(e).await,
                },
                accepted = accept(tls.as_ref().map(|t| &t.listener)) => match accepted {
                    Ok((socket, peer)) => {
                        // The certificate in force when the client connects.
                        let acceptor = tls.as_ref().map(|t| t.tls.acceptor());
                        handle_accepted(socket, peer, acceptor, &policies, &starter)
                    }
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drop(listener);
        drop(tls);
        let open = shared.registry.len();
        tracing::info!(connections = open, "proxy stopped accepting; draining");
        stop.cancel();
        drop(starter);
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

/// The TLS client listener and its (reloadable) certificates.
struct TlsListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Arc<ClientTls>,
}

/// Accepts on `listener`; never completes when it is off.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_failed(e: std::io::Error) {
    // Typically EMFILE: back off instead of spinning.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One accepted socket, from either listener: the PROXY protocol header
/// (from trusted peers, off the accept loop), the per-IP cap on the real
/// client address, then the connection's task. `tls` is the acceptor of a
/// connection to the TLS port.
fn handle_accepted(
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    policies: &Policies,
    starter: &Starter,
) {
    match &*policies.proxy_protocol() {
        Some(pp) if pp.expects_header_from(peer.ip()) => {
            // The real client address comes first: read the header off the
            // accept loop.
            let pp = pp.clone();
            let start = starter.start(tls);
            tokio::spawn(async move {
                let mut socket = socket;
                match pp.read(&mut socket).await {
                    Ok(client) => {
                        let client = client.unwrap_or(peer);
                        if let Some((socket, guard)) = admit(&start.limiter, socket, client) {
                            start.run(socket, client, guard);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "closing connection without a valid PROXY header");
                    }
                }
            });
        }
        // Rejects cost nothing beyond this check and a close: the
        // per-connection state is only built once admitted. A peer outside
        // the trusted list is served with its TCP address, whatever it sends.
        _ => {
            if let Some((socket, guard)) = admit(&starter.limiter, socket, peer) {
                starter.start(tls).run(socket, peer, guard);
            }
        }
    }
}

/// What every connection shares; [`Starter::start`] makes one's [`Start`].
struct Starter {
    limiter: Arc<ConnectionLimiter>,
    shared: Arc<Shared>,
    service: RequestService,
    stop: CancellationToken,
    /// Held by every connection; the drain waits until all are dropped.
    done: mpsc::Sender<()>,
}

impl Starter {
    fn start(&self, tls: Option<TlsAcceptor>) -> Start {
        Start {
            limiter: self.limiter.clone(),
            shared: self.shared.clone(),
            service: self.service.clone(),
            stop: self.stop.child_token(),
            done: self.done.clone(),
            tls,
        }
    }
}

/// What a newly accepted connection needs to start.
struct Start {
    limiter: Arc<ConnectionLimiter>,
    shared: Arc<Shared>,
    service: RequestService,
    stop: CancellationToken,
    done: mpsc::Sender<()>,
    tls: Option<TlsAcceptor>,
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
        tokio::spawn(async move {
            // Held by the session (which may move it to a user's count at
            // login); released however the connection ends.
            let stream = match self.tls {
                None => ClientStream::Plain(socket),
                Some(acceptor) => match handshake(acceptor, socket, &self.stop).await {
                    Some(stream) => stream,
                    None => return,
                },
            };
            connection::serve(
                stream,
                client,
                guard,
                self.shared,
                self.service,
                self.stop,
                self.done,
            )
            .await;
        });
    }
}

/// The server side of a client's TLS handshake, bounded by
/// [`HANDSHAKE_TIMEOUT`] and by shutdown. Failures are the client's
/// business (wrong CA, no certificate where one is required, plaintext on
/// the TLS port): logged at debug and counted, the socket closed.
async fn handshake(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    stop: &CancellationToken,
) -> Option<ClientStream> {
    let peer = socket.peer_addr().ok();
    let result = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => r,
        () = stop.cancelled() => return None,
    };
    let outcome = match result {
        Ok(Ok(stream)) => {
            metrics::counter!(TLS_HANDSHAKES, "result" => "ok").increment(1);
            return Some(ClientStream::Tls(Box::new(stream)));
        }
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            "error"
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            "timeout"
        }
    };
    metrics::counter!(TLS_HANDSHAKES, "result" => outcome).increment(1);
    None
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
