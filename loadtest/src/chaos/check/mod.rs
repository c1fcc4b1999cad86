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
pub mod ttl;

use std::collections::HashSet;

use super::history::{Anomaly, ClockSkew, History, Op, OpIndex, Outcome, Verdict};

/// The workloads a chaos run can record, by their command-line names.
pub const WORKLOADS: &[&str] = &["register", "list-append", "set", "counter", "stream", "ttl"];

/// Runs the checker of `workload` (one of [`WORKLOADS`]) over `history`,
/// with no clock fault known.
pub fn run(workload: &str, history: &History) -> Option<Verdict> {
    run_with_skews(workload, history, &[])
}

/// Runs the checker of `workload` over `history`; `skews` are the clock
/// faults of the run (only the ttl checker needs them).
pub fn run_with_skews(workload: &str, history: &History, skews: &[ClockSkew]) -> Option<Verdict> {
    let mut verdict = match workload {
        "register" => register::check(history),
        "list-append" => list_append::check(history),
        "set" => set::check(history),
        "counter" => counter::check(history),
        "stream" => stream::check(history),
        "ttl" => ttl::check(history, skews),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{ExpireVia, Mop, OpKind, StreamId, StreamReadVia, TtlReadVia};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Histories may come from a JSON file someone edited: nonsense times,
    /// values and outcomes must give a verdict, never a panic.
    #[test]
    fn checkers_survive_arbitrary_histories() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..300 {
            let ops = (0..rng.gen_range(0..60))
                .map(|_| arbitrary_op(&mut rng))
                .collect();
            let history = History { ops };
            let skews = [ClockSkew {
                start_ns: rng.gen_range(0..20),
                end_ns: rng.gen_bool(0.5).then_some(u64::MAX),
                max_offset_ms: [0, 1, u64::MAX][rng.gen_range(0..3)],
            }];
            for workload in WORKLOADS {
                let verdict = run(workload, &history).expect("a known workload");
                assert!(!verdict.valid || verdict.anomalies.is_empty());
                let verdict = run_with_skews(workload, &history, &skews).expect("known");
                assert!(!verdict.valid || verdict.anomalies.is_empty());
            }
        }
        assert!(run("nope", &History::default()).is_none());
    }

    fn arbitrary_op(rng: &mut StdRng) -> Op {
        let key = ["a", "b"][rng.gen_range(0..2)].to_string();
        let small = |rng: &mut StdRng| rng.gen_range(0..4u64);
        let signed = |rng: &mut StdRng| [0, 1, 2, -1, i64::MAX, i64::MIN][rng.gen_range(0..6)];
        let maybe = |rng: &mut StdRng| rng.gen_bool(0.8);
        let id = |rng: &mut StdRng| StreamId {
            ms: small(rng),
            seq: small(rng),
        };
        let kind = match rng.gen_range(0..14) {
            0 => OpKind::RegRead {
                key,
                value: maybe(rng).then(|| signed(rng)),
            },
            1 => OpKind::RegWrite {
                key,
                value: signed(rng),
            },
            2 => OpKind::RegCas {
                key,
                from: signed(rng),
                to: signed(rng),
            },
            3 => OpKind::Txn {
                mops: (0..rng.gen_range(0..4))
                    .map(|_| {
                        if rng.gen_bool(0.5) {
                            Mop::Append {
                                key: key.clone(),
                                value: small(rng),
                            }
                        } else {
                            Mop::Read {
                                key: key.clone(),
                                value: maybe(rng)
                                    .then(|| (0..small(rng)).map(|_| small(rng)).collect()),
                            }
                        }
                    })
                    .collect(),
            },
            4 => OpKind::SetAdd {
                key,
                element: small(rng),
            },
            5 => OpKind::SetRead {
                key,
                elements: maybe(rng).then(|| (0..small(rng)).map(|_| small(rng)).collect()),
            },
            6 => OpKind::CounterIncr {
                key,
                value: maybe(rng).then(|| signed(rng)),
            },
            7 => OpKind::CounterRead {
                key,
                value: maybe(rng).then(|| signed(rng)),
            },
            11 => OpKind::TtlSet {
                key,
                value: small(rng),
                ttl_ms: [0, 1, 1000, u64::MAX][rng.gen_range(0..4)],
            },
            12 => OpKind::TtlExpire {
                key,
                via: [ExpireVia::Pexpire, ExpireVia::Expire, ExpireVia::Pexpireat]
                    [rng.gen_range(0..3)],
                ttl_ms: [0, 1, 1000, u64::MAX][rng.gen_range(0..4)],
                applied: maybe(rng).then(|| rng.gen_bool(0.5)),
            },
            13 => OpKind::TtlRead {
                key,
                via: [TtlReadVia::Get, TtlReadVia::Pttl, TtlReadVia::Exists][rng.gen_range(0..3)],
                value: maybe(rng).then(|| maybe(rng).then(|| small(rng))),
                pttl: maybe(rng).then(|| signed(rng)),
                exists: maybe(rng).then(|| rng.gen_bool(0.5)),
            },
            8 => OpKind::StreamAdd {
                key,
                payload: small(rng),
                id: maybe(rng).then(|| id(rng)),
            },
            _ => OpKind::StreamRead {
                key,
                via: [
                    StreamReadVia::Xread,
                    StreamReadVia::Xreadgroup,
                    StreamReadVia::Xrange,
                ][rng.gen_range(0..3)],
                entries: maybe(rng)
                    .then(|| (0..small(rng)).map(|_| (id(rng), small(rng))).collect()),
            },
        };
        let times = [0, 1, 5, 10, u64::MAX - 1, u64::MAX];
        Op {
            process: rng.gen_range(0..3),
            start_ns: times[rng.gen_range(0..times.len())],
            end_ns: maybe(rng).then(|| times[rng.gen_range(0..times.len())]),
            outcome: [Outcome::Ok, Outcome::Fail, Outcome::Info][rng.gen_range(0..3)],
            kind,
            error: None,
        }
    }
}
