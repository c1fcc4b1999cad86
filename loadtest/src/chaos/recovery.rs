//! `chaos recovery`: how long writes are unavailable after the leader is
//! killed or isolated. Each trial waits for a steady cluster, hits the
//! leader, then writes through a proxy in a loop; the recovery time is from
//! the fault to the first acknowledged write (what a client sees, proxy
//! retries and backoff included). Issue 17's goal: at most twice the
//! election timeout.

use super::client::{argv, Call, ClientConfig, ProcessIds};
use super::cluster::{Cluster, ClusterConfig};
use super::error::ChaosError;
use super::firewall::Firewall;
use super::history::OpKind;
use super::janitor::{self, CleanupGuard};
use super::nemesis::{resolve, Shape};
use super::sys::{is_root, which};
use super::RunClock;
use crate::conn::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryFault {
    /// SIGKILL the leader (restarted after the trial).
    Kill,
    /// Cut the leader off from the other nodes (healed after the trial).
    Isolate,
}

#[derive(Debug, Clone)]
pub struct RecoverySettings {
    pub trials: usize,
    pub fault: RecoveryFault,
    pub nodes: usize,
    pub election_timeout_ms: u64,
    pub proxy_retry_deadline_ms: u64,
    pub rampart_bin: PathBuf,
    pub dir: PathBuf,
    /// A trial that has not written after this long counts as failed.
    pub trial_limit: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    pub fault: RecoveryFault,
    pub nodes: usize,
    pub election_timeout_ms: u64,
    /// Recovery time of each trial, ms (failed trials left out).
    pub trials_ms: Vec<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Issue 17's goal: 2 x the election timeout.
    pub goal_ms: f64,
    /// Trials in which no write succeeded within the limit.
    pub failed_trials: usize,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

pub async fn run_recovery(s: &RecoverySettings) -> Result<RecoveryReport, ChaosError> {
    if !is_root() || which("ip").is_none() {
        return Err(ChaosError::NoNamespaces(
            "the recovery benchmark needs root and the `ip` tool".into(),
        ));
    }
    let firewall = Firewall::detect()?;
    for r in janitor::sweep_leftovers().removed {
        eprintln!("chaos: removed a leftover of an earlier run: {r}");
    }
    let _guard = CleanupGuard::new();
    janitor::install_signal_handler().map_err(|e| ChaosError::io("install signal handlers", e))?;
    std::fs::create_dir_all(&s.dir)
        .map_err(|e| ChaosError::io(format!("create {}", s.dir.display()), e))?;
    let clock = RunClock::start();
    let mut cluster = Cluster::start(
        ClusterConfig {
            nodes: s.nodes,
            proxies: 1,
            rampart_bin: s.rampart_bin.clone(),
            dir: s.dir.clone(),
            election_timeout_ms: s.election_timeout_ms,
            proxy_retry_deadline_ms: s.proxy_retry_deadline_ms,
            faketime: None,
            tmpfs_mib: None,
            proxy_uids: false,
        },
        clock,
        firewall,
    )
    .await?;
    let cfg = Arc::new(ClientConfig {
        proxies: cluster.proxy_addrs(),
        op_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    });
    let mut client = super::client::Client::new(cfg, clock, ProcessIds::default(), 0, None);
    let mut times = Vec::new();
    let mut failed = 0;
    let et = Duration::from_millis(s.election_timeout_ms);
    for trial in 0..s.trials {
        // Steady: a leader, a write that works, followers caught up.
        cluster.wait_leader(Duration::from_secs(60)).await?;
        let key = format!("chaos:recovery:{trial}");
        write_until_ok(&mut client, &key, Instant::now() + s.trial_limit).await;
        tokio::time::sleep(et * 2).await;
        let Some(leader) = cluster.leader().await else {
            failed += 1;
            continue;
        };
        let t0 = Instant::now();
        let wall = utc_time_of_day();
        match s.fault {
            RecoveryFault::Kill => cluster.kill_node(leader),
            RecoveryFault::Isolate => {
                let order: Vec<usize> = (1..=cluster.node_count()).collect();
                let cut = resolve(Shape::IsolateLeader, &order, Some(leader), 0);
                cluster.set_drops(&cut.drops).await?;
            }
        }
        let ok = write_until_ok(&mut client, &key, t0 + s.trial_limit).await;
        let took = t0.elapsed();
        match s.fault {
            RecoveryFault::Kill => cluster.restart_node(leader)?,
            RecoveryFault::Isolate => cluster.set_drops(&BTreeMap::new()).await?,
        }
        if ok {
            let ms = took.as_secs_f64() * 1e3;
            println!(
                "trial {:>3}: n{leader} {:?} at {wall} UTC, first write after {ms:.0} ms",
                trial + 1,
                s.fault
            );
            times.push(ms);
        } else {
            println!(
                "trial {:>3}: n{leader} {:?} at {wall} UTC, no write within {:?}",
                trial + 1,
                s.fault,
                s.trial_limit
            );
            failed += 1;
        }
    }
    cluster.stop();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(RecoveryReport {
        fault: s.fault,
        nodes: s.nodes,
        election_timeout_ms: s.election_timeout_ms,
        p50_ms: percentile(&sorted, 0.5),
        p99_ms: percentile(&sorted, 0.99),
        max_ms: sorted.last().copied(),
        trials_ms: times,
        goal_ms: 2.0 * s.election_timeout_ms as f64,
        failed_trials: failed,
    })
}

/// `HH:MM:SS.mmm` UTC, to find a trial in the nodes' logs.
fn utc_time_of_day() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// SETs `key` until a write is acknowledged or `until`; whether one was.
async fn write_until_ok(client: &mut super::client::Client, key: &str, until: Instant) -> bool {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let start = client.clock().now_ns();
        let call = client.call(&[argv(&["SET", key, &n.to_string()])]).await;
        let ok = matches!(&call, Call::Replies(r) if r[0] == Value::Simple("OK".into()));
        // The client's bookkeeping (a new connection after a timeout).
        let outcome = match call {
            Call::Unknown(_) => super::history::Outcome::Info,
            _ => super::history::Outcome::Ok,
        };
        let _ = client.finish(
            start,
            outcome,
            OpKind::RegWrite {
                key: key.to_string(),
                value: n as i64,
            },
            None,
        );
        if ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.99), Some(20.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
    }
}
