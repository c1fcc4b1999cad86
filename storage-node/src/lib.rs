//! Rampart storage node: an openraft member keeping the Raft log and the
//! Redis data in one RocksDB, serving the Kv, RaftTransport and Admin gRPC
//! services.
//!
//! Threads: Raft's core, its storage tasks and the Raft transport server run
//! on a dedicated two-thread tokio runtime (`raft-*` threads), so heartbeats
//! and votes are not delayed by client traffic; the Kv server, the expiry
//! task and cheap blocking RocksDB reads run on the caller's runtime; heavy
//! reads run on the bounded heavy executor (`heavy-*` threads,
//! `exec::heavy`). Optionally the Raft threads get CPUs of their own
//! (`pinning`).

pub mod commands;
pub mod config;
pub mod engine;
pub mod exec;
pub mod expiry;
pub mod limits;
pub mod metrics;
pub mod pinning;
pub mod priority;
pub mod raft;
pub mod scripting;
pub mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;
use rampart_proto::cluster_tls::ClusterTls;
use rampart_proto::pb::admin_server::AdminServer;
use rampart_proto::pb::kv_server::KvServer;
use rampart_proto::pb::pub_sub_server::PubSubServer;
use rampart_proto::pb::raft_transport_server::RaftTransportServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

pub use config::{NodeArgs, NodeConfig};

use crate::engine::reclaim::Reclaimer;
use crate::engine::Engine;
use crate::exec::blocking::{self, KeyWaiters};
use crate::exec::heavy::{Demotion, HeavyExecutor, LaneSettings};
use crate::exec::proposals::ProposalBatcher;
use crate::exec::ExecCtx;
use crate::raft::commit_clock::CommitClock;
use crate::raft::log_store::LogStore;
use crate::raft::network::{NetworkFactory, MAX_RAFT_MESSAGE};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::Raft;
use crate::server::admin::AdminService;
use crate::server::grpc_metrics::GrpcMetricsLayer;
use crate::server::kv::KvService;
use crate::server::peer_auth::PeerAuthLayer;
use crate::server::pubsub::{NodeHub, PubSubService};
use crate::server::transport::TransportService;

/// What every service and task of one node shares: the execution paths'
/// state and the scripts running here. The two are kept apart so that
/// `exec` depends on neither `scripting` nor the services that call it;
/// [`Deref`](std::ops::Deref) lets all of them read the execution fields
/// directly (`ctx.engine`) and pass `&NodeCtx` where `&ExecCtx` is asked.
pub struct NodeCtx {
    pub exec: ExecCtx,
    /// Lua scripts running on this node (SCRIPT KILL) and their time limit.
    pub scripts: Arc<scripting::Scripts>,
}

impl std::ops::Deref for NodeCtx {
    type Target = ExecCtx;

    fn deref(&self) -> &ExecCtx {
        &self.exec
    }
}

// Largest Kv request or response (a pipelined batch and its replies).
use crate::limits::MAX_CLIENT_MESSAGE;
/// Deleted ranges smaller than this on disk are left to RocksDB's own
/// compactions (see `engine::reclaim`).
const RECLAIM_MIN_BYTES: u64 = 4 << 20;
/// How long shutdown waits for in-flight RPCs before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("grpc server: {0}")]
    Server(String),
}

/// Parses flags/env/file, runs the node until SIGINT or SIGTERM, then shuts
/// it down gracefully.
pub async fn run(args: NodeArgs) -> Result<(), NodeError> {
    let config = args.resolve()?;
    // Before anything registers a metric, so no handle is a no-op one.
    if let Some(addr) = config.metrics_addr {
        metrics::install(addr)?;
    }
    let node = start(config).await?;
    tokio::select! {
        signal = wait_for_signal() => signal?,
        reason = raft_stopped(node.raft().clone()) => {
            // Fail-stop: a node whose Raft core stopped (a storage error in
            // apply, say) must not linger as a member that answers RPCs but
            // applies nothing. Exit so the supervisor restarts it; the
            // restarted node replays the entry from its log.
            tracing::error!(id = node.id, %reason, "raft stopped on a fatal error: exiting");
            let _ = tokio::time::timeout(FATAL_SHUTDOWN_GRACE, node.shutdown()).await;
            std::process::exit(EXIT_RAFT_FATAL);
        }
    }
    tracing::info!(id = node.id, "shutting down");
    node.shutdown().await
}

/// Exit status after a fatal Raft error (EX_SOFTWARE).
pub const EXIT_RAFT_FATAL: i32 = 70;
/// How long a node whose Raft core stopped spends stopping its servers
/// before it exits anyway.
const FATAL_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Resolves when `raft`'s core has stopped (a fatal error, or its task
/// ended); never while it runs.
async fn raft_stopped(raft: Raft) -> String {
    let mut rx = raft.metrics();
    loop {
        if let Err(fatal) = &rx.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if rx.changed().await.is_err() {
            return "the raft core ended".into();
        }
    }
}

async fn wait_for_signal() -> Result<(), NodeError> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

/// The Raft runtime; shut down without blocking (dropping a runtime inside
/// async code would panic).
struct RaftRuntime(Option<tokio::runtime::Runtime>);

impl RaftRuntime {
    /// `cores`: pin every thread of the runtime to these CPUs.
    fn new(cores: Option<Vec<usize>>) -> Result<RaftRuntime, NodeError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name_fn(|| format!("raft-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
            .on_thread_start(move || {
                if let Some(cores) = &cores {
                    pinning::pin_current(cores);
                }
            })
            .enable_all()
            .build()?;
        Ok(RaftRuntime(Some(rt)))
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, NodeError> {
        self.0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| NodeError::Raft("raft runtime already stopped".into()))
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A running node. Dropping it without [`NodeHandle::shutdown`] stops the
/// Raft runtime abruptly (like a crash, minus the process exit).
pub struct NodeHandle {
    pub id: u64,
    /// The bound Raft/admin address (the actual port when 0 was asked).
    pub raft_addr: SocketAddr,
    /// The bound client/admin address.
    pub client_addr: SocketAddr,
    raft: Raft,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), NodeError>>>,
    expiry: JoinHandle<()>,
    runtime: RaftRuntime,
}

impl NodeHandle {
    /// The local Raft handle (metrics, waiting in tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Stops the gRPC servers (letting in-flight calls finish), the expiry
    /// task and Raft, then the Raft runtime.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.shutdown_tx.send(true);
        let mut first_err = None;
        for task in self.tasks.drain(..) {
            match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(NodeError::Server(e.to_string()));
                }
                Err(_) => tracing::warn!("a gRPC server did not stop in time"),
            }
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut self.expiry).await;
        self.expiry.abort();
        if let Err(e) = self.raft.shutdown().await {
            first_err.get_or_insert(NodeError::Raft(e.to_string()));
        }
        if let Some(rt) = self.runtime.0.take() {
            rt.shutdown_background();
        }
        tracing::info!(id = self.id, "node stopped");
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A gRPC server builder, with mutual TLS when `tls` is set.
fn server_builder(tls: Option<&ClusterTls>) -> Result<Server, NodeError> {
    let builder = Server::builder();
    match tls {
        Some(tls) => builder
            .tls_config(tls.server())
            .map_err(|e| NodeError::Config(format!("TLS: {e:?}"))),
        None => Ok(builder),
    }
}

fn bind(addr: &str) -> Result<std::net::TcpListener, NodeError> {
    let listen_err = |source| NodeError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    Ok(listener)
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn raft_config(cfg: &NodeConfig) -> Result<openraft::Config, NodeError> {
    openraft::Config {
        cluster_name: "rampart".to_string(),
        heartbeat_interval: cfg.heartbeat_ms,
        // openraft makes a follower that knows a leader wait the leader
        // lease (= election_timeout_max) plus a random timeout in
        // [min, max] after the last heartbeat. With min = T/2 and max =
        // 3T/4 that silence is 1.25T..1.5T, so a failover stays within the
        // 2T the operations docs promise (it was 3T..4T with [T, 2T]).
        election_timeout_min: cfg.election_timeout_ms / 2,
        election_timeout_max: cfg.election_timeout_ms * 3 / 4,
        // A snapshot chunk of 3 MiB must fit comfortably in one call; the
        // last one, answered after the install, gets more (raft::network).
        install_snapshot_timeout: cfg.election_timeout_ms.max(1000) * 2,
        snapshot_max_chunk_size: cfg.snapshot_chunk_bytes,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs),
        max_in_snapshot_log_to_keep: cfg.snapshot_keep_logs,
        ..Default::default()
    }
    .validate()
    .map_err(|e| NodeError::Config(e.to_string()))
}

/// The heavy executor's two lanes: heavy reads at the lowest priority
/// (`--heavy-nice`, `--heavy-sched-idle`); scripts at normal priority until
/// they have used `--script-demote-ms` of CPU, then at the reads' priority.
fn heavy_executor(cfg: &NodeConfig, others: Option<Vec<usize>>) -> std::io::Result<HeavyExecutor> {
    let pin = Arc::new(move || {
        if let Some(cores) = &others {
            pinning::pin_current(cores);
        }
    });
    let (nice, idle) = (cfg.heavy_nice, cfg.heavy_sched_idle);
    let lower = Arc::new(move || {
        priority::lower_current_thread_priority(nice);
        if idle {
            priority::make_current_thread_idle();
        }
    });
    let low_priority_start = {
        let (pin, lower) = (pin.clone(), lower.clone());
        move || {
            pin();
            lower();
        }
    };
    let reads = LaneSettings::new(
        cfg.heavy_threads,
        cfg.heavy_queue,
        low_priority_start.clone(),
    );
    let scripts = if cfg.script_demote_ms == 0 {
        LaneSettings::new(cfg.script_threads, cfg.heavy_queue, low_priority_start)
    } else {
        LaneSettings::new(cfg.script_threads, cfg.heavy_queue, move || pin()).with_demotion(
            Demotion {
                after: Duration::from_millis(cfg.script_demote_ms),
                lower,
            },
        )
    };
    HeavyExecutor::start(reads, scripts)
}

/// Opens the engine, starts Raft and both gRPC servers, and returns once
/// they are listening.
pub async fn start(cfg: NodeConfig) -> Result<NodeHandle, NodeError> {
    // First: a node without certificates (and without --insecure) must not
    // open its data or listen at all.
    let tls = cfg
        .cluster_security
        .load()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let raft_config = Arc::new(raft_config(&cfg)?);
    cfg.limits.check().map_err(NodeError::Config)?;
    limits::install(cfg.limits);
    // Before any thread of ours exists, so RocksDB's and the heavy
    // executor's threads inherit the non-Raft CPUs.
    let pin = cfg.pin_cores.as_ref().and_then(|cores| {
        let requested = (!cores.is_empty()).then_some(cores.as_slice());
        pinning::plan(&pinning::available(), requested)
    });
    if let Some(plan) = &pin {
        if let Some(others) = &plan.others {
            pinning::pin_all_threads(others);
        }
        tracing::info!(raft = ?plan.raft, others = ?plan.others, "pinning threads to CPUs");
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let engine = {
        let dir = cfg.data_dir.clone();
        tokio::task::spawn_blocking(move || Engine::open(&dir))
            .await
            .map_err(|e| NodeError::Raft(format!("engine open task failed: {e}")))??
    };

    let raft_listener = bind(&cfg.raft_addr)?;
    let client_listener = bind(&cfg.client_addr)?;
    let raft_addr = raft_listener.local_addr()?;
    let client_addr = client_listener.local_addr()?;

    let runtime = RaftRuntime::new(pin.as_ref().map(|p| p.raft.clone()))?;
    let rt = runtime.handle()?;
    let waiters = Arc::new(KeyWaiters::default());
    let commit_clock = Arc::new(CommitClock::new());
    let state_machine = StateMachineStore::new(engine.clone())
        .map_err(|e| NodeError::Raft(e.to_string()))?
        .with_snapshot_build_nice(cfg.heavy_nice)
        .with_observer(waiters.clone())
        .with_reclaimer(Reclaimer::start(engine.clone(), RECLAIM_MIN_BYTES)?);
    let clock = state_machine.clock();
    let raft = {
        let log_store = LogStore::new(engine.clone()).with_commit_clock(commit_clock.clone());
        let id = cfg.id;
        let network = NetworkFactory::new(tls.clone());
        rt.spawn(async move { Raft::new(id, raft_config, network, log_store, state_machine).await })
            .await
            .map_err(|e| NodeError::Raft(format!("raft start task failed: {e}")))?
            .map_err(|e| NodeError::Raft(e.to_string()))?
    };

    let ctx = Arc::new(NodeCtx {
        exec: ExecCtx {
            id: cfg.id,
            raft: raft.clone(),
            engine,
            write_timeout: Duration::from_millis(cfg.write_timeout_ms),
            quorum_timeout: Duration::from_millis(cfg.election_timeout_ms),
            reads: Default::default(),
            proposals: ProposalBatcher::new(
                raft.clone(),
                commit_clock,
                clock.clone(),
                waiters.clone(),
            ),
            heavy: heavy_executor(&cfg, pin.as_ref().and_then(|p| p.others.clone()))?,
            waiters,
            leadership: blocking::leadership(&raft, cfg.id),
            clock,
        },
        scripts: Arc::new(scripting::Scripts::new(Duration::from_millis(
            cfg.script_time_limit_ms,
        ))),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tls_on = tls.is_some();

    // Raft transport + admin, on the Raft runtime. The listener is
    // registered with that runtime's reactor by converting it there. Admin
    // is served here only: operators reach it on the peer network, and its
    // role check (admin certificates) is the only way in.
    let raft_server = {
        let ctx = ctx.clone();
        let signal = shutdown_signal(shutdown_rx.clone());
        let builder = server_builder(tls.as_ref())?;
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(raft_listener)?;
            let incoming = TcpIncoming::from_listener(listener, true, None)
                .map_err(|e| NodeError::Server(e.to_string()))?;
            builder
                .layer(GrpcMetricsLayer)
                .layer(PeerAuthLayer { tls: tls_on })
                .add_service(
                    RaftTransportServer::new(TransportService::new(ctx.clone()))
                        .max_decoding_message_size(MAX_RAFT_MESSAGE)
                        .max_encoding_message_size(MAX_RAFT_MESSAGE),
                )
                .add_service(AdminServer::new(AdminService::new(ctx)))
                .serve_with_incoming_shutdown(incoming, signal)
                .await
                .map_err(|e| NodeError::Server(e.to_string()))
        })
    };

    // Kv + pub/sub, on the caller's runtime.
    let client_server = {
        let builder = server_builder(tls.as_ref())?;
        let ctx = ctx.clone();
        let pubsub_hub = Arc::new(NodeHub::default());
        let pubsub_shutdown = shutdown_rx.clone();
        let signal = shutdown_signal(shutdown_rx.clone());
        let listener = tokio::net::TcpListener::from_std(client_listener)?;
        let incoming = TcpIncoming::from_listener(listener, true, None)
            .map_err(|e| NodeError::Server(e.to_string()))?;
        tokio::spawn(async move {
            builder
                .layer(GrpcMetricsLayer)
                // Kv calls continue the proxy's trace (no-op with traces off).
                .layer(rampart_telemetry::grpc::ServerTraceLayer::for_services(&[
                    "rampart.v1.Kv",
                ]))
                .layer(PeerAuthLayer { tls: tls_on })
                .add_service(
                    KvServer::new(KvService::new(ctx.clone()))
                        .max_decoding_message_size(MAX_CLIENT_MESSAGE)
                        .max_encoding_message_size(MAX_CLIENT_MESSAGE),
                )
                .add_service(
                    // Pub/sub relay (not Raft-logged; docs/pubsub.md).
                    PubSubServer::new(PubSubService::new(pubsub_hub, pubsub_shutdown))
                        .max_decoding_message_size(MAX_CLIENT_MESSAGE)
                        .max_encoding_message_size(MAX_CLIENT_MESSAGE),
                )
                .serve_with_incoming_shutdown(incoming, signal)
                .await
                .map_err(|e| NodeError::Server(e.to_string()))
        })
    };

    let gauges = {
        let raft = raft.clone();
        let shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            metrics::export_raft_gauges(raft, shutdown).await;
            Ok(())
        })
    };
    let rocksdb_gauges = {
        let engine = ctx.engine.clone();
        let shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            metrics::export_rocksdb_gauges(engine, shutdown).await;
            Ok(())
        })
    };
    let stream_drainer = {
        let drain = server::stream_drainer::DrainConfig {
            mode: cfg.stream_migration,
            rate: cfg.stream_drain_rate,
        };
        let ctx = ctx.clone();
        let shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            server::stream_drainer::run(ctx, drain, shutdown).await;
            Ok(())
        })
    };
    let expiry = tokio::spawn(expiry::run(ctx, shutdown_rx));

    tracing::info!(
        "node {} listening raft={} client={} data_dir={}",
        cfg.id,
        raft_addr,
        client_addr,
        cfg.data_dir.display()
    );
    Ok(NodeHandle {
        id: cfg.id,
        raft_addr,
        client_addr,
        raft,
        shutdown_tx,
        tasks: vec![
            raft_server,
            client_server,
            gauges,
            rocksdb_gauges,
            stream_drainer,
        ],
        expiry,
        runtime,
    })
}
