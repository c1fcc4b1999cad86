//! Checkers: each takes a workload's [`History`] and returns a [`Verdict`].
//! What each one verifies, and how, is written down in `docs/reliability.md`.

pub mod counter;
mod graph;
pub mod list_append;
pub mod register;
pub mod set;
pub mod stream;
#[cfg(test)]
mod testing;

use std::collections::HashSet;

use super::history::{Anomaly, History, Op, OpIndex, Outcome, Verdict};

/// The workloads a chaos run can record, by their command-line names.
pub const WORKLOADS: &[&str] = &["register", "list-append", "set", "counter", "stream"];

/// Runs the checker of `workload` (one of [`WORKLOADS`]) over `history`.
pub fn run(workload: &str, history: &History) -> Option<Verdict> {
    let mut verdict = match workload {
        "register" => register::check(history),
        "list-append" => list_append::check(history),
        "set" => set::check(history),
        "counter" => counter::check(history),
        "stream" => stream::check(history),
        _ => return None,
    };
    verdict.workload = workload.to_string();
    Some(verdict)
}

/// Operations a checker looked at, by outcome.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ok: usize,
    fail: usize,
    info: usize,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info => self.info += 1,
        }
    }

    /// The verdict: valid only when nothing was found and nothing was left
    /// undecided.
    fn verdict(self, anomalies: Vec<Anomaly>, unknown: bool) -> Verdict {
        Verdict {
            workload: String::new(),
            valid: anomalies.is_empty() && !unknown,
            ok: self.ok,
            fail: self.fail,
            info: self.info,
            anomalies,
            unknown,
        }
    }
}

/// The anomalies found so far, each (kind, operations) reported once: the
/// same fact is often reachable from several reads.
#[derive(Default)]
struct Report {
    anomalies: Vec<Anomaly>,
    seen: HashSet<(String, Vec<OpIndex>)>,
}

impl Report {
    fn push(&mut self, kind: &str, ops: Vec<OpIndex>, explanation: String) {
        if self.seen.insert((kind.to_string(), ops.clone())) {
            self.anomalies.push(Anomaly {
                kind: kind.to_string(),
                explanation,
                ops,
            });
        }
    }
}

/// The end used for real-time order. An edited history may carry an end
/// before its start; clamping keeps every interval well formed.
fn end_of(op: &Op) -> u64 {
    op.effective_end().max(op.start_ns)
}

/// Whether `a` finished before `b` began, so every correct system orders `a`
/// first. Touching intervals count as concurrent: the clocks are not that
/// precise, and erring that way can only hide an anomaly, never invent one.
fn precedes(a: &Op, b: &Op) -> bool {
    end_of(a) < b.start_ns
}

/// A short, readable list of values for explanations (long runs can lose
/// thousands of elements; the ops list carries them all).
fn preview<T: std::fmt::Display>(values: &[T]) -> String {
    const SHOWN: usize = 10;
    let mut text = values
        .iter()
        .take(SHOWN)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        text.push_str(&format!(" and {} more", values.len() - SHOWN));
    }
    text
}
