//! Runs the fault schedule against the cluster: inject, hold, heal, record.
//!
//! The nemesis task owns the [`Cluster`] for the length of the run (the
//! workload clients only need the proxies' addresses) and hands it back
//! when the schedule is over or the run is stopped, with every fault
//! healed and a [`FaultRecord`] per fault, on the same monotonic clock as
//! the histories.

use super::cluster::Cluster;
use super::error::ChaosError;
use super::history::ClockSkew;
use super::nemesis::{resolve, Action, ClockChange, NemesisKind, PlannedFault, Target};
use super::RunClock;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: NemesisKind,
    /// Nanoseconds since the run's start, like the histories.
    pub start_ns: u64,
    /// When the fault was healed (None if the run ended first).
    pub end_ns: Option<u64>,
    /// Nodes hit (1-based ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<usize>,
    /// Proxies hit (0-based).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<usize>,
    pub detail: String,
    /// What the harness saw while it lasted (bytes written before ENOSPC,
    /// an injection that failed...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A clock fault: the largest offset (ms, either way) the node's clock
    /// had during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clock_offset_ms: Option<u64>,
}

impl FaultRecord {
    /// The clock fault as the ttl checker sees it.
    pub fn clock_skew(&self) -> Option<ClockSkew> {
        self.max_clock_offset_ms.map(|max_offset_ms| ClockSkew {
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            max_offset_ms,
        })
    }
}

/// What must be undone when the window closes.
enum Active {
    Killed(usize),
    Paused(usize),
    Cut,
    Clock {
        node: usize,
        drift: Option<i64>,
        base: i64,
    },
    /// The node, and where its log stood when the disk filled.
    Balloon(usize, u64),
    ProxyDown(usize),
    Nothing,
}

/// Log text of a node meeting a full disk.
const STORAGE_ERRORS: &[&str] = &["No space left on device", "StorageError", "storage error"];

/// Step of the poll loop while a fault holds (exits are noticed this fast).
const POLL: Duration = Duration::from_millis(250);

/// Runs `plan` until it ends or `stop` turns true; returns the cluster and
/// the records. Injection errors are recorded (and returned separately as
/// harness problems), not fatal: one failed `nft` should not void a run.
/// `base` is when the load started on the run clock; the plan's offsets
/// count from there.
pub async fn run(
    mut cluster: Cluster,
    plan: Vec<PlannedFault>,
    clock: RunClock,
    base: Duration,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> (Cluster, Vec<FaultRecord>, Vec<String>) {
    // Runtime choices (a node when no leader is known) from the seed too.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6661_756c_7473);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for fault in plan {
        if !wait_until(&mut cluster, &clock, base + fault.at, &mut stop).await {
            break;
        }
        let mut record = FaultRecord {
            kind: fault.action.kind(),
            start_ns: clock.now_ns(),
            end_ns: None,
            nodes: Vec::new(),
            proxies: Vec::new(),
            detail: String::new(),
            notes: Vec::new(),
            max_clock_offset_ms: None,
        };
        let active = match inject(&mut cluster, &fault.action, &mut record, &mut rng).await {
            Ok(a) => a,
            Err(e) => {
                record.notes.push(format!("injection failed: {e}"));
                problems.push(format!(
                    "{:?} at t={:.1}s: {e}",
                    record.kind,
                    secs(record.start_ns)
                ));
                Active::Nothing
            }
        };
        eprintln!(
            "chaos: t={:>6.1}s  {}{}",
            secs(record.start_ns),
            record.detail,
            record
                .notes
                .iter()
                .map(|n| format!("; {n}"))
                .collect::<String>()
        );
        let until = base + fault.at + fault.hold;
        hold(&mut cluster, &clock, until, &active, &mut stop).await;
        if let Err(e) = heal(&mut cluster, &active, &mut record).await {
            record.notes.push(format!("heal failed: {e}"));
            problems.push(format!("healing {:?}: {e}", record.kind));
        }
        // A node that stopped by itself during the window (a crash, a
        // fail-stop on a full disk) is noted by poll_exits; bring it back so
        // the next fault meets a whole cluster.
        match cluster.revive().await {
            Ok(revived) if !revived.is_empty() => record.notes.push(format!(
                "restarted after the window: {}",
                revived.join(", ")
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("restarting after {:?}: {e}", record.kind)),
        }
        record.end_ns = Some(clock.now_ns());
        if let Active::Clock { drift, base, .. } = &active {
            // A drift reaches at most its rate times the whole window.
            let window = secs(record.end_ns.unwrap_or(0).saturating_sub(record.start_ns));
            let offset_secs = match drift {
                Some(rate) => rate.unsigned_abs() as f64 * window.ceil(),
                None => base.unsigned_abs() as f64,
            };
            record.max_clock_offset_ms = Some((offset_secs * 1000.0) as u64);
        }
        eprintln!("chaos: t={:>6.1}s  healed", secs(clock.now_ns()));
        records.push(record);
        if *stop.borrow() {
            break;
        }
    }
    (cluster, records, problems)
}

/// Sleeps until `at` (run time), noticing process exits; false if stopped.
async fn wait_until(
    cluster: &mut Cluster,
    clock: &RunClock,
    at: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        cluster.poll_exits();
        if *stop.borrow() {
            return false;
        }
        let now = clock.elapsed();
        if now >= at {
            return true;
        }
        let nap = (at - now).min(POLL);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Holds the fault until `until`; a drifting clock is advanced meanwhile.
async fn hold(
    cluster: &mut Cluster,
    clock: &RunClock,
    until: Duration,
    active: &Active,
    stop: &mut watch::Receiver<bool>,
) {
    let started = clock.elapsed();
    loop {
        cluster.poll_exits();
        if let Active::Clock {
            node,
            drift: Some(rate),
            base,
        } = active
        {
            let t = clock.elapsed().saturating_sub(started).as_secs_f64();
            let _ = cluster.set_clock(*node, base + (*rate as f64 * t) as i64);
        }
        if *stop.borrow() {
            return;
        }
        let now = clock.elapsed();
        if now >= until {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(POLL)) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn pick(cluster: &Cluster, target: Target, rng: &mut impl Rng) -> (usize, String) {
    match target {
        Target::Node(i) => (i, format!("n{i}")),
        Target::Leader => match cluster.leader().await {
            Some(l) => (l, format!("n{l} (leader)")),
            None => {
                let i = rng.gen_range(1..=cluster.node_count());
                (i, format!("n{i} (no leader known)"))
            }
        },
    }
}

async fn inject(
    cluster: &mut Cluster,
    action: &Action,
    record: &mut FaultRecord,
    rng: &mut impl Rng,
) -> Result<Active, ChaosError> {
    match action {
        Action::Kill { target } => {
            let (id, who) = pick(cluster, *target, rng).await;
            record.nodes = vec![id];
            if !cluster.node_running(id) {
                record.detail = format!("kill {who}: already down");
                return Ok(Active::Nothing);
            }
            cluster.kill_node(id);
            record.detail = format!("SIGKILL {who}");
            Ok(Active::Killed(id))
        }
        Action::Pause { target } => {
            let (id, who) = pick(cluster, *target, rng).await;
            record.nodes = vec![id];
            cluster.pause_node(id)?;
            record.detail = format!("SIGSTOP {who}");
            Ok(Active::Paused(id))
        }
        Action::Partition { shape, order } => {
            let leader = cluster.leader().await;
            let cut = resolve(*shape, order, leader, cluster.proxy_addrs().len());
            record.nodes = cut.nodes();
            record.proxies = cut.proxies();
            record.detail = match leader {
                Some(l) => format!("{} (leader n{l})", cut.description),
                None => format!("{} (no leader known)", cut.description),
            };
            cluster.set_drops(&cut.drops).await?;
            cluster.set_proxy_drops(&cut.proxy_drops).await?;
            Ok(Active::Cut)
        }
        Action::Clock { target, change } => {
            if !cluster.has_faketime() {
                record.detail = "clock: nodes not under faketime".into();
                return Ok(Active::Nothing);
            }
            let (id, who) = pick(cluster, *target, rng).await;
            record.nodes = vec![id];
            match *change {
                ClockChange::Jump { secs } => {
                    cluster.set_clock(id, secs)?;
                    record.detail = format!("clock of {who} jumps {secs:+} s");
                    Ok(Active::Clock {
                        node: id,
                        drift: None,
                        base: secs,
                    })
                }
                ClockChange::Drift { secs_per_sec } => {
                    record.detail = format!("clock of {who} drifts {secs_per_sec:+} s per s");
                    Ok(Active::Clock {
                        node: id,
                        drift: Some(secs_per_sec),
                        base: 0,
                    })
                }
            }
        }
        Action::Disk { target } => {
            if !cluster.has_tmpfs() {
                record.detail = "disk: nodes have no tmpfs".into();
                return Ok(Active::Nothing);
            }
            let (id, who) = pick(cluster, *target, rng).await;
            record.nodes = vec![id];
            let mark = cluster.log_mark(id);
            let bytes = cluster.fill_disk(id).await?;
            record.detail = format!("disk of {who} full");
            record
                .notes
                .push(format!("balloon of {} MiB until ENOSPC", bytes >> 20));
            Ok(Active::Balloon(id, mark))
        }
        Action::Proxy { index } => {
            let j = index % cluster.proxy_addrs().len().max(1);
            record.proxies = vec![j];
            cluster.kill_proxy(j);
            record.detail = format!("SIGKILL proxy {j}");
            Ok(Active::ProxyDown(j))
        }
    }
}

async fn heal(
    cluster: &mut Cluster,
    active: &Active,
    record: &mut FaultRecord,
) -> Result<(), ChaosError> {
    match *active {
        Active::Killed(id) => cluster.restart_node(id),
        Active::Paused(id) => cluster.resume_node(id),
        Active::Cut => {
            cluster.set_drops(&BTreeMap::new()).await?;
            cluster.set_proxy_drops(&BTreeMap::new()).await
        }
        Active::Clock { node, .. } => cluster.set_clock(node, 0),
        Active::Balloon(id, mark) => {
            cluster.free_disk(id)?;
            // What the node made of it: the history shows what clients saw,
            // the log whether the node noticed (and whether it stopped).
            let (n, first) = cluster.log_lines_since(id, mark, STORAGE_ERRORS);
            if let Some(first) = first {
                record.notes.push(format!(
                    "n{id} logged {n} storage error lines; first: {first}"
                ));
            }
            if !cluster.node_running(id) {
                record.notes.push(format!(
                    "n{id} was down when the disk was freed; restarting it"
                ));
                cluster.restart_node(id)?;
            }
            Ok(())
        }
        Active::ProxyDown(j) => cluster.restart_proxy(j).await,
        Active::Nothing => Ok(()),
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}
