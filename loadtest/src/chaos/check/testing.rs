//! Helpers for hand-made and generated histories in the checkers' tests.

use crate::chaos::history::{Op, OpKind, Outcome, Verdict};

/// An operation that ran from `start` to `end` (None: never answered).
pub fn op(process: u32, start: u64, end: Option<u64>, outcome: Outcome, kind: OpKind) -> Op {
    Op {
        process,
        start_ns: start,
        end_ns: end,
        outcome,
        kind,
        error: None,
    }
}

pub fn ok(process: u32, start: u64, end: u64, kind: OpKind) -> Op {
    op(process, start, Some(end), Outcome::Ok, kind)
}

pub fn fail(process: u32, start: u64, end: u64, kind: OpKind) -> Op {
    op(process, start, Some(end), Outcome::Fail, kind)
}

pub fn info(process: u32, start: u64, kind: OpKind) -> Op {
    op(process, start, None, Outcome::Info, kind)
}

/// The anomaly kinds found, for assertions.
pub fn kinds(verdict: &Verdict) -> Vec<&str> {
    verdict.anomalies.iter().map(|a| a.kind.as_str()).collect()
}

/// The operations of the only anomaly of `kind`, sorted.
pub fn ops_of(verdict: &Verdict, kind: &str) -> Vec<usize> {
    let found: Vec<_> = verdict
        .anomalies
        .iter()
        .filter(|a| a.kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {verdict:#?}");
    let mut ops = found[0].ops.clone();
    ops.sort_unstable();
    ops
}

/// Interval times for simulated clients: each client runs one operation at
/// a time, and each operation takes effect at one instant inside it.
pub struct Clock {
    next_free: Vec<u64>,
}

/// When a simulated operation started, took effect and ended.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub process: u32,
    pub start: u64,
    pub effect: u64,
    pub end: u64,
}

impl Clock {
    pub fn new(processes: usize) -> Self {
        Clock {
            next_free: vec![0; processes],
        }
    }

    /// The next operation, run by the client that is free first (a closed
    /// loop); overlapping intervals come from clients running side by side.
    pub fn next(&mut self, rng: &mut impl rand::Rng) -> Slot {
        let process = (0..self.next_free.len())
            .min_by_key(|&p| self.next_free[p])
            .unwrap_or(0);
        let start = self.next_free[process] + rng.gen_range(0..50);
        let effect = start + rng.gen_range(1..100);
        let end = effect + rng.gen_range(1..100);
        self.next_free[process] = end;
        Slot {
            process: process as u32,
            start,
            effect,
            end,
        }
    }
}
