//! The counter workload: INCR by 1 on a key that starts absent, and a final
//! GET.
//!
//! A read must lie between the increments acknowledged before it began and
//! all increments (acknowledged or unknown) begun before it ended; for the
//! final read that is [acknowledged, acknowledged + unknown]. Below, an
//! acknowledged increment was lost (`counter-too-low`); above, one was
//! applied twice (`counter-too-high`). Each INCR reply is checked the same
//! way (it counts its own increment), so every reply lies in [1,
//! attempted]; two acknowledged increments with the same reply mean one was
//! applied twice or another lost (`duplicate-incr-reply`). When a reply or
//! read is below the reply of an increment that completed before it began,
//! those two operations alone are the witness. A key that was incremented
//! but never read successfully leaves the verdict unknown.

use std::collections::{BTreeMap, HashMap};

use super::{end_of, Counts};
use crate::chaos::history::{Anomaly, History, Op, OpIndex, OpKind, Outcome, Verdict};

pub fn check(history: &History) -> Verdict {
    let mut counts = Counts::default();
    let mut keys: BTreeMap<&str, Key> = BTreeMap::new();
    for (index, op) in history.ops.iter().enumerate() {
        match &op.kind {
            OpKind::CounterIncr { key, value } => {
                counts.add(op.outcome);
                let key = keys.entry(key).or_default();
                match op.outcome {
                    Outcome::Ok => key.acknowledged.push((index, *value)),
                    Outcome::Info => key.unknown.push(index),
                    // Known not to have happened.
                    Outcome::Fail => {}
                }
            }
            OpKind::CounterRead { key, value } => {
                counts.add(op.outcome);
                if op.outcome == Outcome::Ok {
                    // nil: never incremented.
                    let value = value.unwrap_or(0);
                    keys.entry(key).or_default().reads.push((index, value));
                }
            }
            _ => {}
        }
    }

    let mut anomalies = Vec::new();
    let mut unknown = false;
    for (name, key) in &keys {
        if key.reads.is_empty() && !(key.acknowledged.is_empty() && key.unknown.is_empty()) {
            unknown = true;
        }
        key.check(history, name, &mut anomalies);
    }
    counts.verdict(anomalies, unknown)
}

/// One counter's operations.
#[derive(Default)]
struct Key {
    /// Acknowledged increments and their replies.
    acknowledged: Vec<(OpIndex, Option<i64>)>,
    /// Increments with an unknown outcome.
    unknown: Vec<OpIndex>,
    /// Successful reads and their values.
    reads: Vec<(OpIndex, i64)>,
}

impl Key {
    fn check(&self, history: &History, name: &str, anomalies: &mut Vec<Anomaly>) {
        let bounds = Bounds::new(history, self);
        let mut by_reply: HashMap<i64, Vec<OpIndex>> = HashMap::new();
        for &(incr, reply) in &self.acknowledged {
            let Some(reply) = reply else { continue };
            by_reply.entry(reply).or_default().push(incr);
            let what = format!("INCR op {incr} replied {reply}");
            bounds.judge(history, name, incr, reply, &what, anomalies);
        }
        let mut duplicated: Vec<(i64, Vec<OpIndex>)> = by_reply
            .into_iter()
            .filter(|(_, ops)| ops.len() > 1)
            .collect();
        duplicated.sort_unstable();
        for (reply, ops) in duplicated {
            anomalies.push(Anomaly {
                kind: "duplicate-incr-reply".into(),
                explanation: format!(
                    "counter {name:?}: ops {ops:?} all replied {reply}: an increment was \
                     applied twice or one was lost"
                ),
                ops,
            });
        }
        for &(read, value) in &self.reads {
            let what = format!("op {read} read {value}");
            bounds.judge(history, name, read, value, &what, anomalies);
        }
    }
}

/// What a counter may show at an operation, from real-time order.
struct Bounds {
    /// Ends of acknowledged increments, sorted, with the highest reply
    /// among those up to each one (and who gave it).
    acknowledged_ends: Vec<u64>,
    best_reply: Vec<Option<(i64, OpIndex)>>,
    /// Starts of all increments that may have happened, sorted.
    starts: Vec<u64>,
}

impl Bounds {
    fn new(history: &History, key: &Key) -> Self {
        let mut acknowledged: Vec<(u64, Option<i64>, OpIndex)> = key
            .acknowledged
            .iter()
            .map(|&(i, reply)| (end_of(&history.ops[i]), reply, i))
            .collect();
        acknowledged.sort_unstable();
        let mut best: Option<(i64, OpIndex)> = None;
        let best_reply = acknowledged
            .iter()
            .map(|&(_, reply, i)| {
                if let Some(reply) = reply {
                    if best.is_none_or(|(b, _)| reply > b) {
                        best = Some((reply, i));
                    }
                }
                best
            })
            .collect();
        let mut starts: Vec<u64> = key
            .acknowledged
            .iter()
            .map(|&(i, _)| i)
            .chain(key.unknown.iter().copied())
            .map(|i| history.ops[i].start_ns)
            .collect();
        starts.sort_unstable();
        Bounds {
            acknowledged_ends: acknowledged.iter().map(|&(end, _, _)| end).collect(),
            best_reply,
            starts,
        }
    }

    /// Checks that operation `at` could see the counter at `value`.
    fn judge(
        &self,
        history: &History,
        name: &str,
        at: OpIndex,
        value: i64,
        what: &str,
        anomalies: &mut Vec<Anomaly>,
    ) {
        let op: &Op = &history.ops[at];
        let own = matches!(op.kind, OpKind::CounterIncr { .. }) as i64;
        // Acknowledged increments completed before it began (plus its own).
        let done = self
            .acknowledged_ends
            .partition_point(|&end| end < op.start_ns);
        let low = done as i64 + own;
        // Increments begun before it ended; touching counts as concurrent.
        let high = self.starts.partition_point(|&start| start <= end_of(op)) as i64;
        let witness = done
            .checked_sub(1)
            .and_then(|last| self.best_reply[last])
            .filter(|&(reply, _)| value < reply.saturating_add(own));
        if let Some((reply, earlier)) = witness {
            anomalies.push(Anomaly {
                kind: "counter-too-low".into(),
                explanation: format!(
                    "counter {name:?}: {what}, but INCR op {earlier} had replied {reply} and \
                     completed before it began: an acknowledged increment was lost"
                ),
                ops: vec![earlier, at],
            });
        } else if value < low {
            anomalies.push(Anomaly {
                kind: "counter-too-low".into(),
                explanation: format!(
                    "counter {name:?}: {what}, below the {done} increments acknowledged \
                     before it began{}: an acknowledged increment was lost",
                    if own == 1 { " plus its own" } else { "" }
                ),
                ops: vec![at],
            });
        } else if value > high {
            anomalies.push(Anomaly {
                kind: "counter-too-high".into(),
                explanation: format!(
                    "counter {name:?}: {what}, above the {high} increments (acknowledged or \
                     unknown) begun before it ended: an increment was applied twice"
                ),
                ops: vec![at],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn incr(value: Option<i64>) -> OpKind {
        OpKind::CounterIncr {
            key: "c".into(),
            value,
        }
    }
    fn read(value: Option<i64>) -> OpKind {
        OpKind::CounterRead {
            key: "c".into(),
            value,
        }
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops })
    }

    #[test]
    fn a_final_value_over_the_bound_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, incr(Some(1))),
            info(2, 0, incr(None)),
            fail(3, 0, 10, incr(None)),
            ok(1, 20, 30, read(Some(3))),
        ]);
        assert_eq!(kinds(&v), vec!["counter-too-high"], "{v:#?}");
        assert_eq!(ops_of(&v, "counter-too-high"), vec![3]);
        assert_eq!((v.ok, v.fail, v.info), (2, 1, 1));
    }

    #[test]
    fn a_final_value_under_the_acknowledged_count_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, incr(None)),
            ok(2, 0, 10, incr(None)),
            ok(1, 20, 30, read(Some(1))),
        ]);
        assert_eq!(ops_of(&v, "counter-too-low"), vec![2]);
    }

    #[test]
    fn a_read_below_an_earlier_reply_names_both() {
        let v = verdict(vec![
            ok(1, 0, 10, incr(Some(1))),
            ok(1, 20, 30, incr(Some(2))),
            ok(2, 40, 50, read(Some(1))),
        ]);
        assert_eq!(kinds(&v), vec!["counter-too-low"]);
        assert_eq!(ops_of(&v, "counter-too-low"), vec![1, 2]);
    }

    #[test]
    fn duplicate_and_impossible_replies_are_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, incr(Some(1))),
            ok(2, 0, 10, incr(Some(1))),
            ok(3, 0, 10, incr(Some(7))),
            ok(1, 20, 30, read(Some(3))),
        ]);
        assert_eq!(ops_of(&v, "duplicate-incr-reply"), vec![0, 1]);
        assert_eq!(ops_of(&v, "counter-too-high"), vec![2]);
    }

    #[test]
    fn unknown_increments_widen_the_bound() {
        let v = verdict(vec![
            ok(1, 0, 10, incr(Some(2))),
            info(2, 0, incr(None)),
            info(3, 5, incr(None)),
            ok(1, 20, 30, read(Some(3))),
        ]);
        assert!(v.valid, "{v:#?}");
        let none_applied = verdict(vec![
            ok(1, 0, 10, incr(Some(1))),
            info(2, 0, incr(None)),
            ok(1, 20, 30, read(Some(1))),
        ]);
        assert!(none_applied.valid, "{none_applied:#?}");
    }

    #[test]
    fn no_successful_read_is_unknown() {
        let v = verdict(vec![ok(1, 0, 10, incr(Some(1)))]);
        assert!(v.unknown && !v.valid, "{v:#?}");
    }

    #[test]
    fn simulated_counters_pass_and_an_extra_increment_fails() {
        for seed in 0..20 {
            let mut history = simulate(seed, 2_000);
            let v = check(&history);
            assert!(v.valid, "seed {seed}: {v:#?}");

            let attempted = history
                .ops
                .iter()
                .filter(|op| {
                    matches!(op.kind, OpKind::CounterIncr { .. }) && op.outcome != Outcome::Fail
                })
                .count() as i64;
            let last = history.ops.len() - 1;
            history.ops[last].kind = read(Some(attempted + 1));
            let v = check(&history);
            assert_eq!(kinds(&v), vec!["counter-too-high"], "seed {seed}: {v:#?}");
            assert_eq!(ops_of(&v, "counter-too-high"), vec![last]);
        }
    }

    #[test]
    fn simulated_counters_with_a_repeated_reply_fail() {
        let mut history = simulate(5, 500);
        let (first, second) = {
            let mut acknowledged = (0..history.ops.len()).filter(|&i| {
                let op = &history.ops[i];
                op.outcome == Outcome::Ok && matches!(op.kind, OpKind::CounterIncr { .. })
            });
            (acknowledged.next().unwrap(), acknowledged.nth(100).unwrap())
        };
        history.ops[second].kind = history.ops[first].kind.clone();
        let v = check(&history);
        assert_eq!(ops_of(&v, "duplicate-incr-reply"), vec![first, second]);
        // Witnessed by the highest reply acknowledged before it began.
        let low = ops_of(&v, "counter-too-low");
        assert_eq!(low.len(), 2);
        assert_eq!(low[1], second);
    }

    /// Concurrent INCRs of an atomic counter; 5% end unknown (applied or
    /// not), 2% fail. Then one final read.
    fn simulate(seed: u64, count: usize) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(8);
        let mut planned = Vec::new();
        for _ in 0..count {
            let slot = clock.next(&mut rng);
            let mut op = ok(slot.process, slot.start, slot.end, incr(None));
            let mut applied = true;
            match rng.gen_range(0..100) {
                0..=4 => {
                    op.outcome = Outcome::Info;
                    op.end_ns = None;
                    applied = rng.gen_bool(0.5);
                }
                5..=6 => {
                    op.outcome = Outcome::Fail;
                    applied = false;
                }
                _ => {}
            }
            planned.push((op, slot.effect, applied));
        }
        planned.sort_by_key(|(_, effect, _)| *effect);
        let mut counter = 0;
        let mut last_end = 0;
        let mut ops = Vec::new();
        for (mut op, _, applied) in planned {
            if applied {
                counter += 1;
                if op.outcome == Outcome::Ok {
                    op.kind = incr(Some(counter));
                }
            }
            last_end = last_end.max(op.end_ns.unwrap_or(0));
            ops.push(op);
        }
        ops.sort_by_key(|op| op.start_ns);
        ops.push(ok(0, last_end + 1, last_end + 10, read(Some(counter))));
        History { ops }
    }
}
