//! What a chaos run reports: the JSON report (`--json`), the saved
//! histories (re-checkable offline with `chaos check --history FILE`) and
//! the summary printed on stdout.

use super::cluster::Event;
use super::error::ChaosError;
use super::faults::FaultRecord;
use super::history::{ClockSkew, History, Outcome, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The settings a run was made with (enough to replay it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportSettings {
    pub seed: u64,
    pub duration_secs: f64,
    pub workloads: Vec<String>,
    pub nemeses: Vec<String>,
    pub nodes: usize,
    pub proxies: usize,
    pub concurrency: usize,
    pub rate_per_workload: f64,
    pub op_timeout_ms: u64,
    pub election_timeout_ms: u64,
    pub proxy_retry_deadline_ms: u64,
    pub recovery_secs: f64,
    pub rampart_bin: PathBuf,
    /// The command line that replays the run.
    pub command: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Ok operations that started after every fault was healed: zero means
    /// the cluster never served this workload again.
    pub ok_after_heal: usize,
}

impl OpCounts {
    pub fn of(history: &History, heal_ns: u64) -> OpCounts {
        let mut c = OpCounts::default();
        for op in &history.ops {
            match op.outcome {
                Outcome::Ok => {
                    c.ok += 1;
                    if op.start_ns >= heal_ns {
                        c.ok_after_heal += 1;
                    }
                }
                Outcome::Fail => c.fail += 1,
                Outcome::Info => c.info += 1,
            }
        }
        c
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChaosReport {
    pub settings: ReportSettings,
    /// Run-clock times (ns): load started, every fault healed, run over.
    pub load_start_ns: u64,
    pub heal_ns: u64,
    pub end_ns: u64,
    pub ops: BTreeMap<String, OpCounts>,
    pub faults: Vec<FaultRecord>,
    /// Things the cluster did that the harness did not ask for.
    pub events: Vec<Event>,
    /// Per workload: replies that hint at a problem the history cannot
    /// express (a unique SADD answering 0...).
    pub notes: BTreeMap<String, Vec<String>>,
    pub verdicts: Vec<Verdict>,
    /// Anomalies over all verdicts.
    pub anomalies: usize,
    /// Workloads whose checker gave no verdict.
    pub unknown: Vec<String>,
    /// Workloads with no Ok operation after the heal.
    pub unrecovered: Vec<String>,
    /// Each node as the proxies saw it after the recovery load (`INFO
    /// rampart` lines).
    #[serde(default)]
    pub final_status: Vec<String>,
    /// Harness problems (an injection that failed...): the run proves less.
    pub harness_problems: Vec<String>,
    /// Where the full histories are (None if they were not kept).
    pub histories: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
}

/// How a run ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Clean,
    Anomalies,
    Unrecovered,
    NoVerdict,
    HarnessProblem,
}

impl Finding {
    pub fn exit_code(self) -> i32 {
        match self {
            Finding::Clean => 0,
            Finding::Anomalies | Finding::Unrecovered => 1,
            Finding::HarnessProblem => 2,
            Finding::NoVerdict => 3,
        }
    }
}

impl ChaosReport {
    /// The most serious thing the run found.
    pub fn finding(&self) -> Finding {
        if self.anomalies > 0 || self.verdicts.iter().any(|v| !v.valid && !v.unknown) {
            Finding::Anomalies
        } else if !self.unrecovered.is_empty() {
            Finding::Unrecovered
        } else if !self.harness_problems.is_empty() {
            Finding::HarnessProblem
        } else if !self.unknown.is_empty() {
            Finding::NoVerdict
        } else {
            Finding::Clean
        }
    }

    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = &self.settings;
        writeln!(out, "chaos run, seed {}", s.seed)?;
        writeln!(out, "  replay: {}", s.command)?;
        writeln!(
            out,
            "  {} nodes, {} proxies, {:.0} s + {:.0} s after healing, election timeout {} ms",
            s.nodes, s.proxies, s.duration_secs, s.recovery_secs, s.election_timeout_ms
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<12} {:>8} {:>8} {:>8} {:>14}",
            "workload", "ok", "fail", "info", "ok after heal"
        )?;
        for (name, c) in &self.ops {
            writeln!(
                out,
                "{:<12} {:>8} {:>8} {:>8} {:>14}",
                name, c.ok, c.fail, c.info, c.ok_after_heal
            )?;
        }
        writeln!(out)?;
        writeln!(out, "faults ({}):", self.faults.len())?;
        for f in &self.faults {
            let end = f
                .end_ns
                .map_or("   (open)".to_string(), |e| format!("{:>7.1}s", secs(e)));
            writeln!(
                out,
                "  {:>7.1}s-{}  {:<9} {}",
                secs(f.start_ns),
                end,
                f.kind.name(),
                f.detail
            )?;
            for n in &f.notes {
                writeln!(out, "                       {n}")?;
            }
        }
        if !self.events.is_empty() {
            writeln!(out, "\ncluster events:")?;
            for e in &self.events {
                writeln!(out, "  {:>7.1}s  {}", secs(e.t_ns), e.text)?;
            }
        }
        for (name, notes) in &self.notes {
            if notes.is_empty() {
                continue;
            }
            writeln!(out, "\nnotes for {name} ({}):", notes.len())?;
            for n in notes.iter().take(10) {
                writeln!(out, "  {n}")?;
            }
            if notes.len() > 10 {
                writeln!(out, "  ... {} more in the JSON report", notes.len() - 10)?;
            }
        }
        writeln!(out, "\nverdicts:")?;
        for v in &self.verdicts {
            let word = if v.unknown {
                "UNKNOWN (no verdict)"
            } else if v.valid {
                "valid"
            } else {
                "INVALID"
            };
            writeln!(
                out,
                "  {:<12} {word}, {} anomalies ({} ok / {} fail / {} info checked)",
                v.workload,
                v.anomalies.len(),
                v.ok,
                v.fail,
                v.info
            )?;
            for a in v.anomalies.iter().take(20) {
                writeln!(out, "    {}: {} (ops {:?})", a.kind, a.explanation, a.ops)?;
            }
            if v.anomalies.len() > 20 {
                writeln!(
                    out,
                    "    ... {} more in the JSON report",
                    v.anomalies.len() - 20
                )?;
            }
        }
        for w in &self.unrecovered {
            writeln!(
                out,
                "\nNOT RECOVERED: no {w} operation succeeded after every fault was healed"
            )?;
        }
        if !self.unrecovered.is_empty() {
            writeln!(out, "cluster after the recovery load:")?;
            for l in &self.final_status {
                writeln!(out, "  {l}")?;
            }
        }
        for p in &self.harness_problems {
            writeln!(out, "\nharness problem: {p}")?;
        }
        if let Some(h) = &self.histories {
            writeln!(out, "\nhistories: {}", h.display())?;
        }
        if let Some(d) = &self.run_dir {
            writeln!(out, "run dir (logs): {}", d.display())?;
        }
        let verdict = match self.finding() {
            Finding::Clean => "no anomalies".to_string(),
            Finding::Anomalies => format!("{} ANOMALIES", self.anomalies.max(1)),
            Finding::Unrecovered => "the cluster did not recover".into(),
            Finding::HarnessProblem => "harness problems (see above)".into(),
            Finding::NoVerdict => format!("no verdict for {}", self.unknown.join(", ")),
        };
        writeln!(out, "\nresult: {verdict}")?;
        Ok(())
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The histories of a run, as saved for offline checking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedHistories {
    pub seed: u64,
    /// Workload name → its history.
    pub workloads: BTreeMap<String, History>,
    /// The clock faults of the run: the ttl checker allows keys to expire
    /// early by their offset near them (docs/time.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_skews: Vec<ClockSkew>,
}

pub fn save_histories(path: &Path, saved: &SavedHistories) -> Result<(), ChaosError> {
    let text = serde_json::to_vec(saved).map_err(|e| ChaosError::HistoryFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| ChaosError::HistoryFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn load_histories(path: &Path) -> Result<SavedHistories, ChaosError> {
    let text = std::fs::read(path).map_err(|e| ChaosError::HistoryFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&text).map_err(|e| ChaosError::HistoryFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Runs the checker of every workload in `saved`. Workloads without a
/// checker get an unknown verdict.
pub fn check_all(saved: &SavedHistories) -> Vec<Verdict> {
    saved
        .workloads
        .iter()
        .map(|(name, h)| {
            super::check::run_with_skews(name, h, &saved.clock_skews).unwrap_or_else(|| Verdict {
                workload: name.clone(),
                unknown: true,
                ..Verdict::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{Anomaly, Op, OpKind};

    fn op(start_ns: u64, outcome: Outcome) -> Op {
        Op {
            process: 0,
            start_ns,
            end_ns: Some(start_ns + 1),
            outcome,
            kind: OpKind::CounterIncr {
                key: "k".into(),
                value: None,
            },
            error: None,
        }
    }

    #[test]
    fn counts_by_outcome_and_after_heal() {
        let h = History {
            ops: vec![
                op(1, Outcome::Ok),
                op(2, Outcome::Fail),
                op(3, Outcome::Info),
                op(10, Outcome::Ok),
            ],
        };
        assert_eq!(
            OpCounts::of(&h, 5),
            OpCounts {
                ok: 2,
                fail: 1,
                info: 1,
                ok_after_heal: 1
            }
        );
    }

    #[test]
    fn histories_round_trip_through_json() {
        let saved = SavedHistories {
            seed: 9,
            clock_skews: vec![ClockSkew {
                start_ns: 1,
                end_ns: None,
                max_offset_ms: 300_000,
            }],
            workloads: [(
                "counter".to_string(),
                History {
                    ops: vec![op(1, Outcome::Ok)],
                },
            )]
            .into_iter()
            .collect(),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("h.json");
        save_histories(&path, &saved).expect("save");
        let back = load_histories(&path).expect("load");
        assert_eq!(back.workloads, saved.workloads);
        assert_eq!(back.clock_skews, saved.clock_skews);
        assert!(load_histories(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn findings_rank_anomalies_first() {
        let settings = ReportSettings {
            seed: 1,
            duration_secs: 1.0,
            workloads: vec![],
            nemeses: vec![],
            nodes: 3,
            proxies: 2,
            concurrency: 1,
            rate_per_workload: 1.0,
            op_timeout_ms: 1,
            election_timeout_ms: 1,
            proxy_retry_deadline_ms: 1,
            recovery_secs: 1.0,
            rampart_bin: PathBuf::new(),
            command: String::new(),
        };
        let mut r = ChaosReport {
            settings,
            load_start_ns: 0,
            heal_ns: 0,
            end_ns: 0,
            ops: BTreeMap::new(),
            faults: vec![],
            events: vec![],
            notes: BTreeMap::new(),
            verdicts: vec![Verdict {
                workload: "set".into(),
                valid: true,
                ..Verdict::default()
            }],
            anomalies: 0,
            unknown: vec![],
            unrecovered: vec![],
            final_status: vec![],
            harness_problems: vec![],
            histories: None,
            run_dir: None,
        };
        assert_eq!(r.finding(), Finding::Clean);
        r.unknown.push("set".into());
        assert_eq!(r.finding(), Finding::NoVerdict);
        r.harness_problems.push("x".into());
        assert_eq!(r.finding(), Finding::HarnessProblem);
        r.verdicts[0].valid = false;
        r.verdicts[0].anomalies.push(Anomaly {
            kind: "lost".into(),
            explanation: String::new(),
            ops: vec![0],
        });
        r.anomalies = 1;
        assert_eq!(r.finding(), Finding::Anomalies);
        assert_eq!(r.finding().exit_code(), 1);
        let mut text = Vec::new();
        r.write_summary(&mut text).expect("summary");
        assert!(String::from_utf8_lossy(&text).contains("1 ANOMALIES"));
    }
}
