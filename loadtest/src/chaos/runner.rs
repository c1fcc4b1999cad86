//! One chaos run from start to verdict:
//!
//! 1. preflight (root, `ip`, a firewall tool, libfaketime when the clock
//!    nemesis is on) and removal of leftovers of dead runs;
//! 2. the cluster in its namespaces, the workloads' setup;
//! 3. load and faults for `duration`; then every fault healed, everything
//!    restarted, and load kept on for `recovery` (did the cluster come
//!    back?);
//! 4. load stopped, the final reads, the cluster removed;
//! 5. histories saved, checkers run, the report assembled.

use super::client::{ClientConfig, ProcessIds};
use super::cluster::{Cluster, ClusterConfig, Event, FAKETIME_LIB};
use super::error::ChaosError;
use super::firewall::Firewall;
use super::history::History;
use super::janitor::{self, CleanupGuard};
use super::nemesis::{self, NemesisKind, PlanSettings};
use super::report::{self, ChaosReport, OpCounts, ReportSettings, SavedHistories};
use super::sys::{is_root, run, which};
use super::workload::{self, Ctx, Recorded, WorkloadKind};
use super::{faults, RunClock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ChaosSettings {
    pub seed: u64,
    pub duration: Duration,
    pub workloads: Vec<WorkloadKind>,
    pub nemeses: Vec<NemesisKind>,
    pub nodes: usize,
    pub proxies: usize,
    /// Clients per workload.
    pub concurrency: usize,
    /// Operations per second per workload, over its clients.
    pub rate: f64,
    pub op_timeout: Duration,
    pub election_timeout_ms: u64,
    pub proxy_retry_deadline_ms: u64,
    /// Load after every fault is healed, before the final reads.
    pub recovery: Duration,
    pub rampart_bin: PathBuf,
    /// Run dir; None = a temp dir, removed after a clean run.
    pub dir: Option<PathBuf>,
    /// Size of each node's tmpfs with the disk nemesis.
    pub disk_mib: u64,
    /// Where to save the histories (default: the run dir).
    pub histories: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

/// Checks what the run needs before anything is created.
pub async fn preflight(s: &ChaosSettings) -> Result<Option<Firewall>, ChaosError> {
    if !is_root() {
        return Err(ChaosError::NoNamespaces(
            "the chaos tool must run as root (it creates network namespaces, mounts and \
             firewall rules)"
                .into(),
        ));
    }
    if which("ip").is_none() {
        return Err(ChaosError::NoNamespaces(
            "the `ip` tool (iproute2) is not installed".into(),
        ));
    }
    if !s.rampart_bin.is_file() {
        return Err(ChaosError::MissingTool(format!(
            "rampart binary {} not found (build it, or pass --rampart-bin)",
            s.rampart_bin.display()
        )));
    }
    let firewall = if s.nemeses.contains(&NemesisKind::Partition) {
        Some(Firewall::detect()?)
    } else {
        None
    };
    if s.nemeses.contains(&NemesisKind::Disk) && which("mount").is_none() {
        return Err(ChaosError::MissingTool(
            "the disk nemesis needs `mount` for its tmpfs".into(),
        ));
    }
    if s.nemeses.contains(&NemesisKind::Clock) {
        check_faketime().await?;
    }
    Ok(firewall)
}

/// libfaketime is installed and really moves the wall clock with the
/// settings the nodes get.
async fn check_faketime() -> Result<(), ChaosError> {
    if !Path::new(FAKETIME_LIB).is_file() {
        return Err(ChaosError::MissingTool(format!(
            "the clock nemesis needs libfaketime at {FAKETIME_LIB} (Debian: apt-get install \
             faketime), or leave `clock` out of --nemesis"
        )));
    }
    let file = std::env::temp_dir().join(format!("rampart-chaos-{}.faketime", std::process::id()));
    std::fs::write(&file, "+3600\n").map_err(|e| ChaosError::io("write a faketime file", e))?;
    let out = run(
        "env",
        &[
            &format!("LD_PRELOAD={FAKETIME_LIB}"),
            &format!("FAKETIME_TIMESTAMP_FILE={}", file.display()),
            "FAKETIME_NO_CACHE=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
            "date",
            "+%s",
        ],
    )
    .await;
    let _ = std::fs::remove_file(&file);
    let faked: i64 = out?.trim().parse().unwrap_or(0);
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (faked - real - 3600).abs() > 60 {
        return Err(ChaosError::MissingTool(format!(
            "libfaketime at {FAKETIME_LIB} did not shift the clock (date said {faked}, \
             expected about {})",
            real + 3600
        )));
    }
    Ok(())
}

/// The result of a run: the report, and the histories checked.
pub struct RunResult {
    pub report: ChaosReport,
    pub histories: BTreeMap<String, History>,
}

pub async fn run_chaos(s: &ChaosSettings) -> Result<RunResult, ChaosError> {
    let firewall = preflight(s).await?;
    let swept = janitor::sweep_leftovers();
    for r in &swept.removed {
        eprintln!("chaos: removed a leftover of an earlier run: {r}");
    }
    let _guard = CleanupGuard::new();
    janitor::install_signal_handler().map_err(|e| ChaosError::io("install signal handlers", e))?;

    let (dir, temp_dir) = match &s.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| ChaosError::io(format!("create {}", d.display()), e))?;
            (d.clone(), false)
        }
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let d =
                std::env::temp_dir().join(format!("rampart-chaos-{}-{stamp}", std::process::id()));
            std::fs::create_dir_all(&d)
                .map_err(|e| ChaosError::io(format!("create {}", d.display()), e))?;
            (d, true)
        }
    };
    // Absolute: mount points are compared with /proc/mounts at cleanup.
    let dir = std::fs::canonicalize(&dir)
        .map_err(|e| ChaosError::io(format!("resolve {}", dir.display()), e))?;
    println!("chaos: seed {} (replay with --seed {})", s.seed, s.seed);
    println!("chaos: run dir {}", dir.display());

    let plan = nemesis::plan(&PlanSettings {
        seed: s.seed,
        kinds: s.nemeses.clone(),
        duration: s.duration,
        nodes: s.nodes,
        proxies: s.proxies,
        election_timeout: Duration::from_millis(s.election_timeout_ms),
    });
    println!("chaos: {} faults planned", plan.len());
    for line in nemesis::describe_plan(&plan) {
        println!("{line}");
    }

    let clock = RunClock::start();
    let cluster_cfg = ClusterConfig {
        nodes: s.nodes,
        proxies: s.proxies,
        rampart_bin: s.rampart_bin.clone(),
        dir: dir.clone(),
        election_timeout_ms: s.election_timeout_ms,
        proxy_retry_deadline_ms: s.proxy_retry_deadline_ms,
        faketime: s
            .nemeses
            .contains(&NemesisKind::Clock)
            .then(|| PathBuf::from(FAKETIME_LIB)),
        tmpfs_mib: s.nemeses.contains(&NemesisKind::Disk).then_some(s.disk_mib),
        proxy_uids: s.nemeses.contains(&NemesisKind::Partition),
    };
    let cluster = Cluster::start(cluster_cfg, clock, firewall.unwrap_or(Firewall::Nft)).await?;
    println!(
        "chaos: {} nodes on {}, proxies {}",
        cluster.node_count(),
        cluster.subnet(),
        cluster.proxy_addrs().join(", ")
    );

    let client_cfg = Arc::new(ClientConfig {
        proxies: cluster.proxy_addrs(),
        op_timeout: s.op_timeout,
        connect_timeout: Duration::from_secs(1),
    });
    let ids = ProcessIds::default();
    let (stop_load, load_rx) = watch::channel(false);
    let ctxs: Vec<(WorkloadKind, Ctx)> = s
        .workloads
        .iter()
        .enumerate()
        .map(|(w, &kind)| {
            let ctx = Ctx {
                client: client_cfg.clone(),
                clock,
                ids: ids.clone(),
                concurrency: s.concurrency.max(1),
                rate: s.rate,
                seed: s.seed,
                stop: load_rx.clone(),
                unique: Arc::new(AtomicU64::new(0)),
                // One extra per workload for its setup and final reads.
                first_client: w * (s.concurrency.max(1) + 1),
            };
            (kind, ctx)
        })
        .collect();
    let mut recorded: BTreeMap<WorkloadKind, Recorded> = BTreeMap::new();
    for (kind, ctx) in &ctxs {
        let setup = workload::setup(*kind, ctx, Duration::from_secs(30)).await?;
        recorded.entry(*kind).or_default().extend(setup);
    }

    // Load and faults.
    let load_start = clock.elapsed();
    let mut clients = Vec::new();
    for (kind, ctx) in &ctxs {
        for i in 0..ctx.concurrency {
            let (kind, ctx) = (*kind, ctx.clone());
            clients.push((kind, tokio::spawn(workload::client(kind, ctx, i))));
        }
    }
    let (stop_nemesis, nemesis_rx) = watch::channel(false);
    let nemesis = tokio::spawn(faults::run(
        cluster, plan, clock, load_start, s.seed, nemesis_rx,
    ));
    tokio::time::sleep_until(tokio::time::Instant::now() + s.duration).await;
    let _ = stop_nemesis.send(true);
    let (mut cluster, fault_records, mut problems) = nemesis
        .await
        .map_err(|e| ChaosError::Setup(format!("the nemesis task failed: {e}")))?;

    // Heal, and let the load show whether the cluster came back.
    if let Err(e) = cluster.heal_all().await {
        problems.push(format!("healing at the end: {e}"));
    }
    let heal_ns = clock.now_ns();
    println!(
        "chaos: t={:.1}s every fault healed; {:.0} s more load",
        heal_ns as f64 / 1e9,
        s.recovery.as_secs_f64()
    );
    tokio::time::sleep(s.recovery).await;
    let _ = stop_load.send(true);
    for (kind, handle) in clients {
        match handle.await {
            Ok(r) => recorded.entry(kind).or_default().extend(r),
            Err(e) => problems.push(format!("a {} client failed: {e}", kind.name())),
        }
    }

    let final_status = cluster.status_lines().await;
    // Final reads on a settled cluster.
    if let Err(e) = cluster.wait_leader(Duration::from_secs(30)).await {
        problems.push(format!("before the final reads: {e}"));
    }
    for (kind, ctx) in &ctxs {
        let mut read_ctx = ctx.clone();
        // The final reads ignore the stop signal the load got.
        let (_keep, rx) = watch::channel(false);
        read_ctx.stop = rx;
        // Generous: each failed page is retried, and a loaded 2-core
        // machine can take seconds per page right after the heal.
        let fin = workload::final_read(*kind, &read_ctx, Duration::from_secs(120)).await;
        recorded.entry(*kind).or_default().extend(fin);
    }
    cluster.poll_exits();
    let mut events: Vec<Event> = cluster.take_events();
    cluster.stop();
    drop(cluster);
    let end_ns = clock.now_ns();

    // Histories, checkers, report.
    let mut histories = BTreeMap::new();
    let mut notes = BTreeMap::new();
    for (kind, r) in recorded {
        let (h, n) = r.into_history();
        histories.insert(kind.name().to_string(), h);
        notes.insert(kind.name().to_string(), n);
    }
    let saved = SavedHistories {
        seed: s.seed,
        workloads: histories.clone(),
        clock_skews: fault_records
            .iter()
            .filter_map(|f| f.clock_skew())
            .collect(),
    };
    let histories_path = s
        .histories
        .clone()
        .unwrap_or_else(|| dir.join("histories.json"));
    report::save_histories(&histories_path, &saved)?;
    let verdicts = report::check_all(&saved);
    let anomalies = verdicts.iter().map(|v| v.anomalies.len()).sum();
    let unknown = verdicts
        .iter()
        .filter(|v| v.unknown)
        .map(|v| v.workload.clone())
        .collect();
    let ops: BTreeMap<String, OpCounts> = histories
        .iter()
        .map(|(name, h)| (name.clone(), OpCounts::of(h, heal_ns)))
        .collect();
    let unrecovered = ops
        .iter()
        .filter(|(_, c)| c.ok_after_heal == 0)
        .map(|(n, _)| n.clone())
        .collect();
    events.sort_by_key(|e| e.t_ns);
    let mut report = ChaosReport {
        settings: ReportSettings {
            seed: s.seed,
            duration_secs: s.duration.as_secs_f64(),
            workloads: s.workloads.iter().map(|w| w.name().to_string()).collect(),
            nemeses: s.nemeses.iter().map(|n| n.name().to_string()).collect(),
            nodes: s.nodes,
            proxies: s.proxies,
            concurrency: s.concurrency,
            rate_per_workload: s.rate,
            op_timeout_ms: s.op_timeout.as_millis() as u64,
            election_timeout_ms: s.election_timeout_ms,
            proxy_retry_deadline_ms: s.proxy_retry_deadline_ms,
            recovery_secs: s.recovery.as_secs_f64(),
            rampart_bin: s.rampart_bin.clone(),
            command: s.command.clone(),
        },
        load_start_ns: load_start.as_nanos() as u64,
        heal_ns,
        end_ns,
        ops,
        faults: fault_records,
        events,
        notes,
        verdicts,
        anomalies,
        unknown,
        unrecovered,
        final_status,
        harness_problems: problems,
        histories: Some(histories_path.clone()),
        run_dir: Some(dir.clone()),
    };
    // A clean run in a temp dir leaves nothing behind but what was asked
    // for; anything else keeps its logs.
    let clean = report.finding() == report::Finding::Clean;
    if temp_dir && clean {
        let _ = std::fs::remove_dir_all(&dir);
        report.run_dir = None;
        if histories_path.starts_with(&dir) {
            report.histories = None;
        }
    }
    Ok(RunResult { report, histories })
}
