//! The incident report: per-phase summary (the issue's JSON shape), details,
//! a per-second timeline, the table on stdout, and the `--compare` report.

use super::abuser::{AbuserCommands, AbuserOutcome, Backoff};
use super::cheap::CheapOutcome;
use super::nodes::{Delta, Sample};
use super::prepare::PrepareReport;
use super::{Clock, IncidentConfig, PHASES, PHASE_NAMES};
use crate::report::{ConnectionErrors, ErrorCount, Latency, Recorder, Summary};
use crate::workload::Mix;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// One phase, exactly the fields issue 7 asks for. The Raft fields are
/// `null` when no node metrics were scraped (or, for the p99, when no
/// commit was observed in the phase).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PhaseSummary {
    pub cheap_p50_ms: f64,
    pub cheap_p99_ms: f64,
    pub cheap_p999_ms: f64,
    pub cheap_errors: u64,
    pub abuser_ops: u64,
    pub abuser_busy: u64,
    pub abuser_conn_rejects: u64,
    pub raft_commit_p99_ms: Option<f64>,
    pub apply_overflow: Option<u64>,
}

/// The names of [`PhaseSummary`]'s fields, in order.
pub const SUMMARY_FIELDS: [&str; 9] = [
    "cheap_p50_ms",
    "cheap_p99_ms",
    "cheap_p999_ms",
    "cheap_errors",
    "abuser_ops",
    "abuser_busy",
    "abuser_conn_rejects",
    "raft_commit_p99_ms",
    "apply_overflow",
];

impl PhaseSummary {
    /// The fields as numbers, in [`SUMMARY_FIELDS`] order.
    pub fn values(&self) -> [Option<f64>; 9] {
        [
            Some(self.cheap_p50_ms),
            Some(self.cheap_p99_ms),
            Some(self.cheap_p999_ms),
            Some(self.cheap_errors as f64),
            Some(self.abuser_ops as f64),
            Some(self.abuser_busy as f64),
            Some(self.abuser_conn_rejects as f64),
            self.raft_commit_p99_ms,
            self.apply_overflow.map(|v| v as f64),
        ]
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Phases {
    pub baseline: PhaseSummary,
    pub abuse: PhaseSummary,
    pub recovery: PhaseSummary,
}

impl Phases {
    pub fn get(&self, i: usize) -> &PhaseSummary {
        match i {
            0 => &self.baseline,
            1 => &self.abuse,
            _ => &self.recovery,
        }
    }
}

/// More about one phase than the summary holds.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseDetail {
    /// Ordinary-client replies (error replies included).
    pub cheap_ops: u64,
    pub cheap_ops_per_sec: f64,
    pub cheap_latency_ms: Latency,
    pub cheap_errors_by_prefix: BTreeMap<String, ErrorCount>,
    /// Per command of the ordinary mix.
    pub cheap_commands: Vec<Summary>,
    pub cheap_connections: ConnectionErrors,
    /// Commits observed by the commit histogram in the phase.
    pub raft_commits: Option<u64>,
    pub raft_commit_p50_ms: Option<f64>,
    /// Nodes whose metrics were scraped at both ends of the phase.
    pub nodes_scraped: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseDetails {
    pub baseline: Option<PhaseDetail>,
    pub abuse: Option<PhaseDetail>,
    pub recovery: Option<PhaseDetail>,
}

/// The abusive host over the abuse phase.
#[derive(Clone, Debug, Serialize)]
pub struct AbuserDetail {
    pub ops: u64,
    pub busy: u64,
    pub conn_rejects: u64,
    /// Connections lost after at least one reply.
    pub broken: u64,
    /// Error replies other than BUSY and the per-IP cap, by first word.
    pub errors_by_prefix: BTreeMap<String, u64>,
    /// Per command: replies (errors included), latency, errors.
    pub commands: Vec<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_reject: Option<String>,
}

/// One second of the run, by scheduled time.
#[derive(Clone, Debug, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the baseline.
    pub t: u64,
    pub phase: &'static str,
    pub cheap_ops: u64,
    pub cheap_errors: u64,
    pub cheap_p50_ms: Option<f64>,
    pub cheap_p99_ms: Option<f64>,
    pub abuser_ops: u64,
    pub raft_commit_p99_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeMetricsInfo {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Settings echoed into the report.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentSettings {
    pub stream_entries: u64,
    pub value_size: usize,
    pub hash_fields: u64,
    pub cheap_keyspace: u64,
    pub phase_secs: f64,
    pub cheap_clients: usize,
    pub cheap_source_ips: Vec<String>,
    pub cheap_rate: f64,
    pub cheap_commands: Vec<String>,
    pub cheap_weights: Vec<u32>,
    pub abusers: usize,
    pub abuser_source_ip: Option<String>,
    /// ACL users of the two sides, when they log in as users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cheap_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abuser_user: Option<String>,
    pub abuser_commands: Vec<String>,
    pub abuser_weights: [u32; 3],
    pub abuser_backoff: Backoff,
    pub seed: u64,
}

/// One run of the scenario. `phases` is the shape of issue 7; the other
/// keys are extra.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentReport {
    pub phases: Phases,
    pub endpoint: String,
    pub phase_details: PhaseDetails,
    pub abuser: AbuserDetail,
    pub prepare: PrepareReport,
    pub node_metrics: NodeMetricsInfo,
    pub settings: IncidentSettings,
    pub timeline: Vec<TimelinePoint>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Assembles the report from what the tasks recorded.
#[allow(clippy::too_many_arguments)]
pub fn build(
    cfg: &IncidentConfig,
    mix: &Mix,
    abuser_commands: &AbuserCommands,
    clock: Clock,
    prepare: PrepareReport,
    urls: Vec<String>,
    note: Option<String>,
    cheap: CheapOutcome,
    abuser: AbuserOutcome,
    scrapes: Option<Vec<Vec<Option<Sample>>>>,
) -> IncidentReport {
    let phase_secs = cfg.phase.as_secs_f64();
    let per_phase = clock.phase.as_secs() as usize;
    let delta = |from: usize, to: usize| -> Option<Delta> {
        let s = scrapes.as_ref()?;
        let d = Delta::between(s.get(from)?, s.get(to)?);
        (d.nodes > 0).then_some(d)
    };
    let mut phases = Phases::default();
    let mut details = PhaseDetails::default();
    for i in 0..PHASES {
        let mut all = Recorder::default();
        for r in &cheap.by_template[i] {
            all.merge(r);
        }
        let lat = Latency::of(&all.hist);
        let raft = delta(i * per_phase, (i + 1) * per_phase);
        let summary = PhaseSummary {
            cheap_p50_ms: lat.p50,
            cheap_p99_ms: lat.p99,
            cheap_p999_ms: lat.p999,
            cheap_errors: all.error_count(),
            abuser_ops: if i == 1 { abuser.ops } else { 0 },
            abuser_busy: if i == 1 { abuser.busy } else { 0 },
            abuser_conn_rejects: if i == 1 { abuser.conn_rejects } else { 0 },
            raft_commit_p99_ms: raft.as_ref().and_then(|d| d.commit_quantile_ms(0.99)),
            apply_overflow: raft.as_ref().and_then(|d| d.overflow).map(|v| v as u64),
        };
        let detail = PhaseDetail {
            cheap_ops: all.ops,
            cheap_ops_per_sec: if phase_secs > 0.0 {
                all.ops as f64 / phase_secs
            } else {
                0.0
            },
            cheap_latency_ms: lat,
            cheap_errors_by_prefix: all.errors.clone(),
            cheap_commands: mix
                .templates
                .iter()
                .zip(&cheap.by_template[i])
                .zip(&mix.weights)
                .map(|((t, r), &w)| r.summary(&t.text, Some(w), phase_secs))
                .collect(),
            cheap_connections: cheap.conn_errors[i].clone(),
            raft_commits: raft.as_ref().map(|d| d.commits() as u64),
            raft_commit_p50_ms: raft.as_ref().and_then(|d| d.commit_quantile_ms(0.5)),
            nodes_scraped: raft.as_ref().map_or(0, |d| d.nodes),
        };
        match i {
            0 => (phases.baseline, details.baseline) = (summary, Some(detail)),
            1 => (phases.abuse, details.abuse) = (summary, Some(detail)),
            _ => (phases.recovery, details.recovery) = (summary, Some(detail)),
        }
    }
    let timeline = cheap
        .seconds
        .iter()
        .enumerate()
        .map(|(t, s)| {
            let at = clock.t0 + std::time::Duration::from_secs(t as u64);
            let quantile = |q| (!s.hist.is_empty()).then(|| ms(s.hist.value_at_quantile(q)));
            TimelinePoint {
                t: t as u64,
                phase: PHASE_NAMES[clock.phase_of(at)],
                cheap_ops: s.hist.len(),
                cheap_errors: s.errors,
                cheap_p50_ms: quantile(0.5),
                cheap_p99_ms: quantile(0.99),
                abuser_ops: abuser.ops_per_second.get(t).copied().unwrap_or(0),
                raft_commit_p99_ms: delta(t, t + 1).and_then(|d| d.commit_quantile_ms(0.99)),
            }
        })
        .collect();
    let abuse_secs = phase_secs;
    IncidentReport {
        phases,
        endpoint: cfg.connect.endpoint.clone(),
        phase_details: details,
        abuser: AbuserDetail {
            ops: abuser.ops,
            busy: abuser.busy,
            conn_rejects: abuser.conn_rejects,
            broken: abuser.broken,
            errors_by_prefix: abuser.errors.clone(),
            commands: abuser_commands
                .names
                .iter()
                .zip(&abuser.commands)
                .zip(cfg.abuser_weights)
                .map(|((n, r), w)| r.summary(n, Some(w), abuse_secs))
                .collect(),
            example_reject: abuser.example_reject.clone(),
        },
        prepare,
        node_metrics: NodeMetricsInfo { urls, note },
        settings: IncidentSettings {
            stream_entries: cfg.stream_entries,
            value_size: cfg.value_size,
            hash_fields: cfg.hash_fields,
            cheap_keyspace: cfg.cheap_keyspace,
            cheap_user: cfg.cheap_login.as_ref().map(|l| l.user.clone()),
            abuser_user: cfg.abuser_login.as_ref().map(|l| l.user.clone()),
            phase_secs,
            cheap_clients: cfg.cheap_clients,
            cheap_source_ips: cfg.cheap_source_ips.iter().map(|i| i.to_string()).collect(),
            cheap_rate: cfg.cheap_rate,
            cheap_commands: cfg.cheap_commands(),
            cheap_weights: mix.weights.clone(),
            abusers: cfg.abusers,
            abuser_source_ip: cfg.abuser_source_ip.map(|i| i.to_string()),
            abuser_commands: abuser_commands.names.clone(),
            abuser_weights: cfg.abuser_weights,
            abuser_backoff: cfg.abuser_backoff,
            seed: cfg.seed,
        },
        timeline,
    }
}

/// `b / a`, when both exist and `a` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    }
}

fn cell(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// An error text cut for the table (the JSON keeps it whole).
fn shorten(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("×{v:.2}"))
}

const HEADERS: [&str; 9] = [
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "abuser ok",
    "BUSY",
    "conn rejects",
    "raft p99 ms",
    "overflow",
];

impl IncidentReport {
    /// abuse p99 / baseline p99 for the ordinary clients and Raft commit.
    pub fn abuse_over_baseline(&self) -> BTreeMap<&'static str, Option<f64>> {
        let (b, a) = (&self.phases.baseline, &self.phases.abuse);
        BTreeMap::from([
            (
                "cheap_p50_ms",
                ratio(Some(b.cheap_p50_ms), Some(a.cheap_p50_ms)),
            ),
            (
                "cheap_p99_ms",
                ratio(Some(b.cheap_p99_ms), Some(a.cheap_p99_ms)),
            ),
            (
                "cheap_p999_ms",
                ratio(Some(b.cheap_p999_ms), Some(a.cheap_p999_ms)),
            ),
            (
                "raft_commit_p99_ms",
                ratio(b.raft_commit_p99_ms, a.raft_commit_p99_ms),
            ),
        ])
    }

    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = &self.settings;
        let p = &self.prepare;
        writeln!(
            out,
            "incident on {}: {} × {} s phases; stream {} entries (XLEN {}{}), {} prepare errors",
            self.endpoint,
            PHASES,
            s.phase_secs,
            p.stream_entries,
            p.stream_len.map_or("?".into(), |n| n.to_string()),
            if p.reused { ", reused" } else { "" },
            p.errors
        )?;
        writeln!(
            out,
            "ordinary: {} clients, {} ops/s{}; abuser: {} connections{}, {} ({} backoff)",
            s.cheap_clients,
            s.cheap_rate,
            if s.cheap_source_ips.is_empty() {
                String::new()
            } else {
                format!(" from {}", s.cheap_source_ips.join(","))
            },
            s.abusers,
            s.abuser_source_ip
                .as_ref()
                .map_or(String::new(), |ip| format!(" from {ip}")),
            s.abuser_commands
                .iter()
                .zip(s.abuser_weights)
                .map(|(c, w)| format!("{c} ×{w}"))
                .collect::<Vec<_>>()
                .join(", "),
            match s.abuser_backoff {
                Backoff::Hint => "retry-after",
                Backoff::None => "no",
            }
        )?;
        match (&self.node_metrics.urls, &self.node_metrics.note) {
            (urls, _) if !urls.is_empty() => writeln!(out, "node metrics: {}", urls.join(" "))?,
            (_, Some(note)) => writeln!(out, "node metrics: none ({note})")?,
            _ => writeln!(out, "node metrics: none")?,
        }
        writeln!(out)?;
        write!(out, "{:<9}", "phase")?;
        for h in HEADERS {
            write!(out, "  {h:>12}")?;
        }
        writeln!(out)?;
        for (i, name) in PHASE_NAMES.iter().enumerate() {
            write!(out, "{name:<9}")?;
            for v in self.phases.get(i).values() {
                write!(out, "  {:>12}", cell(v))?;
            }
            writeln!(out)?;
        }
        let r = self.abuse_over_baseline();
        writeln!(
            out,
            "\nabuse / baseline: ordinary p99 {}, raft commit p99 {}",
            times(r["cheap_p99_ms"]),
            times(r["raft_commit_p99_ms"])
        )?;
        for (i, name) in PHASE_NAMES.iter().enumerate() {
            let d = match i {
                0 => &self.phase_details.baseline,
                1 => &self.phase_details.abuse,
                _ => &self.phase_details.recovery,
            };
            if let Some(d) = d {
                for (prefix, e) in &d.cheap_errors_by_prefix {
                    writeln!(
                        out,
                        "ordinary errors in {name}: {prefix} ×{} e.g. {:?}",
                        e.count,
                        shorten(&e.example)
                    )?;
                }
            }
        }
        let a = &self.abuser;
        if !a.errors_by_prefix.is_empty() || a.broken > 0 {
            writeln!(
                out,
                "abuser: {} broken connections, other errors {:?}",
                a.broken, a.errors_by_prefix
            )?;
        }
        Ok(())
    }
}

/// Two runs of the scenario (`--compare`).
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// The run names (keys of `runs`), first then second.
    pub order: [String; 2],
    pub runs: BTreeMap<String, IncidentReport>,
    pub ratios: CompareRatios,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareRatios {
    /// Per run name: abuse phase / baseline phase.
    pub abuse_over_baseline: BTreeMap<String, BTreeMap<&'static str, Option<f64>>>,
    /// Per phase, per summary field: second run / first run.
    pub second_over_first: BTreeMap<&'static str, BTreeMap<&'static str, Option<f64>>>,
}

impl CompareReport {
    pub fn new(a: (String, IncidentReport), b: (String, IncidentReport)) -> CompareReport {
        let mut second_over_first = BTreeMap::new();
        for (i, name) in PHASE_NAMES.iter().enumerate() {
            let (va, vb) = (a.1.phases.get(i).values(), b.1.phases.get(i).values());
            let row = SUMMARY_FIELDS
                .iter()
                .zip(va.iter().zip(vb))
                .map(|(f, (x, y))| (*f, ratio(*x, y)))
                .collect();
            second_over_first.insert(*name, row);
        }
        let abuse_over_baseline = BTreeMap::from([
            (a.0.clone(), a.1.abuse_over_baseline()),
            (b.0.clone(), b.1.abuse_over_baseline()),
        ]);
        CompareReport {
            order: [a.0.clone(), b.0.clone()],
            runs: BTreeMap::from([a, b]),
            ratios: CompareRatios {
                abuse_over_baseline,
                second_over_first,
            },
        }
    }

    pub fn first(&self) -> &IncidentReport {
        &self.runs[&self.order[0]]
    }

    pub fn second(&self) -> &IncidentReport {
        &self.runs[&self.order[1]]
    }

    /// Both tables, then every summary field side by side with the ratio.
    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        for name in &self.order {
            writeln!(out, "=== {name} ===")?;
            self.runs[name].write_table(out)?;
            writeln!(out)?;
        }
        let (na, nb) = (&self.order[0], &self.order[1]);
        let (a, b) = (self.first(), self.second());
        let ca = format!("{na} ({})", a.endpoint);
        let cb = format!("{nb} ({})", b.endpoint);
        let w = ca.len().max(cb.len()).max(12);
        let ratio_head = format!("{nb} / {na}");
        writeln!(
            out,
            "=== side by side ===\n{:<30}  {ca:>w$}  {cb:>w$}  {ratio_head:>12}",
            "metric"
        )?;
        for (i, phase) in PHASE_NAMES.iter().enumerate() {
            let (va, vb) = (a.phases.get(i).values(), b.phases.get(i).values());
            for (h, (x, y)) in HEADERS.iter().zip(va.iter().zip(vb)) {
                if i != 1 && matches!(*h, "abuser ok" | "BUSY" | "conn rejects") {
                    continue; // always 0 outside the abuse phase
                }
                writeln!(
                    out,
                    "{:<30}  {:>w$}  {:>w$}  {:>12}",
                    format!("{phase} {h}"),
                    cell(*x),
                    cell(y),
                    times(ratio(*x, y))
                )?;
            }
        }
        let (ra, rb) = (a.abuse_over_baseline(), b.abuse_over_baseline());
        for (key, label) in [
            ("cheap_p99_ms", "abuse/baseline ordinary p99"),
            ("raft_commit_p99_ms", "abuse/baseline raft p99"),
        ] {
            writeln!(
                out,
                "{label:<30}  {:>w$}  {:>w$}  {:>12}",
                times(ra[key]),
                times(rb[key]),
                times(ratio(ra[key], rb[key]))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_summary_serializes_exactly_the_issue_fields() {
        let v = serde_json::to_value(PhaseSummary::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = SUMMARY_FIELDS.to_vec();
        want.sort();
        assert_eq!(keys, want);
        assert!(v["raft_commit_p99_ms"].is_null());
    }

    #[test]
    fn ratios_skip_missing_and_zero() {
        assert_eq!(ratio(Some(2.0), Some(5.0)), Some(2.5));
        assert_eq!(ratio(Some(0.0), Some(5.0)), None);
        assert_eq!(ratio(None, Some(5.0)), None);
        assert_eq!(cell(Some(3.0)), "3");
        assert_eq!(cell(Some(0.1234)), "0.123");
        assert_eq!(cell(None), "-");
    }
}
