//! The ttl workload: `SET key value PX t`, `PEXPIRE`, `EXPIRE` and
//! `PEXPIREAT` on a few keys, read with `GET`, `PTTL` and `EXISTS`.
//!
//! Each operation that observes a key says "absent" (GET nil, PTTL -2,
//! EXISTS 0, an expire that answered 0) or "present" (a value, PTTL >= -1,
//! EXISTS 1, an expire that answered 1). Mutations are the SETs and the
//! expires that may have taken effect (acknowledged ones that answered 1,
//! and unknown ones); failed operations are known not to have happened.
//!
//! Anomalies, each judged in real time (`a` precedes `b` when `a` ended
//! before `b` began):
//! - `expired-key-returned`: a read saw value `v` after an earlier read saw
//!   the key absent although the SET of `v` had completed before that
//!   earlier read began (values are unique: nothing wrote `v` again); or a
//!   read saw the key present after a read saw it absent with no SET that
//!   could lie between them.
//! - `early-expiry`: an acknowledged SET (or an expire that answered 1)
//!   completed, no other mutation of the key can be placed between it and a
//!   read that began after it, and the read, which ended more than the
//!   margin before the TTL could end, saw the key absent. The TTL counts
//!   from the operation's start (the leader stamps the entry after the
//!   client sent it, docs/time.md); the margin is [`MARGIN_MS`] plus, for
//!   every clock fault near the window, the offset it injected (a leader
//!   whose clock runs ahead expires keys early on every replica, by design).
//! - `unwritten-value`: a GET returned a value never written to that key, or
//!   written only by SETs that failed; `future-read`: every SET of the value
//!   began after the read ended.
//! - `stale-read`: a GET returned `v` although another SET of the key began
//!   after the SET of `v` completed and completed before the read began.
//! - `no-ttl`: PTTL answered -1; every SET of the workload has a TTL.
//!
//! A key's TTL running late is not an anomaly: a leader whose clock stands
//! still (docs/time.md) lets keys live longer, and so does a slow apply.

use std::collections::{BTreeMap, HashMap};

use super::{end_of, precedes, Counts, Report};
use crate::chaos::history::{
    ClockSkew, ExpireVia, History, Op, OpIndex, OpKind, Outcome, TtlReadVia, Verdict,
};

/// A read that ends this close to the end of a TTL proves nothing: wall
/// clocks are read in milliseconds on different processes, and the history's
/// clock (monotonic) and the nodes' wall clocks may drift apart by a little.
pub const MARGIN_MS: u64 = 100;
/// How long after a clock fault's heal an entry stamped with the skewed
/// clock may still be applied (and a node still judge by it).
pub const SKEW_SLACK_MS: u64 = 2_000;

const MS: u64 = 1_000_000;

pub fn check(history: &History, skews: &[ClockSkew]) -> Verdict {
    let mut counts = Counts::default();
    let mut keys: BTreeMap<&str, Key> = BTreeMap::new();
    let mut report = Report::default();
    for (index, op) in history.ops.iter().enumerate() {
        let key = match &op.kind {
            OpKind::TtlSet { key, .. }
            | OpKind::TtlExpire { key, .. }
            | OpKind::TtlRead { key, .. } => key.as_str(),
            _ => continue,
        };
        counts.add(op.outcome);
        keys.entry(key).or_default().add(index, op, &mut report);
    }
    let mut observed = false;
    for (name, key) in &keys {
        observed |= !(key.absent.is_empty() && key.present.is_empty());
        key.check(history, name, skews, &mut report);
    }
    // Writes but not one successful observation: nothing was checked.
    let unknown = !observed && counts.ok + counts.info > 0;
    counts.verdict(report.anomalies, unknown)
}

/// How the TTL of an anchor counts.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ttl_ms: u64,
    /// `PEXPIREAT`: an absolute time of the client's clock.
    absolute: bool,
}

/// One key's operations, classified.
#[derive(Default)]
struct Key {
    /// SETs that may have happened (Ok, Info), by value.
    writers: HashMap<u64, Vec<OpIndex>>,
    /// SETs known not to have happened, by value.
    failed_writers: HashMap<u64, Vec<OpIndex>>,
    /// SETs that may have happened.
    sets: Vec<OpIndex>,
    /// Acknowledged SETs.
    ok_sets: Vec<OpIndex>,
    /// Everything that may have changed the key, and whether (and how) it
    /// guarantees the key's life from its start.
    mutations: Vec<(OpIndex, Option<Anchor>)>,
    /// Operations that saw the key absent.
    absent: Vec<OpIndex>,
    /// Operations that saw it present, with the value when they read it.
    present: Vec<(OpIndex, Option<u64>)>,
}

impl Key {
    fn add(&mut self, index: OpIndex, op: &Op, report: &mut Report) {
        match (&op.kind, op.outcome) {
            (OpKind::TtlSet { value, ttl_ms, .. }, Outcome::Ok) => {
                self.writers.entry(*value).or_default().push(index);
                self.sets.push(index);
                self.ok_sets.push(index);
                let anchor = Anchor {
                    ttl_ms: *ttl_ms,
                    absolute: false,
                };
                self.mutations.push((index, Some(anchor)));
            }
            (OpKind::TtlSet { value, .. }, Outcome::Info) => {
                self.writers.entry(*value).or_default().push(index);
                self.sets.push(index);
                self.mutations.push((index, None));
            }
            (OpKind::TtlSet { value, .. }, Outcome::Fail) => {
                self.failed_writers.entry(*value).or_default().push(index);
            }
            (
                OpKind::TtlExpire {
                    via,
                    ttl_ms,
                    applied,
                    ..
                },
                Outcome::Ok,
            ) => match applied {
                Some(true) => {
                    let anchor = Anchor {
                        ttl_ms: *ttl_ms,
                        absolute: *via == ExpireVia::Pexpireat,
                    };
                    self.mutations.push((index, Some(anchor)));
                    self.present.push((index, None));
                }
                Some(false) => self.absent.push(index),
                // Malformed: it may have changed the key.
                None => self.mutations.push((index, None)),
            },
            (OpKind::TtlExpire { .. }, Outcome::Info) => self.mutations.push((index, None)),
            (
                OpKind::TtlRead {
                    via,
                    value,
                    pttl,
                    exists,
                    ..
                },
                Outcome::Ok,
            ) => match via {
                TtlReadVia::Get => match value {
                    Some(None) => self.absent.push(index),
                    Some(Some(v)) => self.present.push((index, Some(*v))),
                    None => {}
                },
                TtlReadVia::Pttl => match pttl {
                    Some(-2) => self.absent.push(index),
                    Some(-1) => {
                        self.present.push((index, None));
                        report.push(
                            "no-ttl",
                            vec![index],
                            format!(
                                "op {index}: PTTL answered -1 (a key without TTL), but every SET \
                                 of this workload sets one"
                            ),
                        );
                    }
                    Some(n) if *n >= 0 => self.present.push((index, None)),
                    _ => {}
                },
                TtlReadVia::Exists => match exists {
                    Some(false) => self.absent.push(index),
                    Some(true) => self.present.push((index, None)),
                    None => {}
                },
            },
            // Failed expires and reads changed nothing; unknown reads
            // returned nothing.
            _ => {}
        }
    }

    fn check(&self, history: &History, name: &str, skews: &[ClockSkew], report: &mut Report) {
        let ops = &history.ops;
        let absent = PrefixBest::by_end(ops, &self.absent);
        let ok_sets = PrefixBest::by_end(ops, &self.ok_sets);
        let sets = LatestEnd::new(ops, &self.sets);

        for &(read, value) in &self.present {
            let r = &ops[read];
            let Some(v) = value else {
                // Present without a value: some SET must fit between the
                // latest absent observation before it and it.
                let latest_set_end = sets.max_end_started_by(end_of(r));
                if let Some((r1, r1_start)) = absent.best_before(r.start_ns) {
                    if latest_set_end.is_none_or(|(end, _)| end < r1_start) {
                        let mut witness = vec![r1, read];
                        witness.extend(latest_set_end.map(|(_, s)| s));
                        report.push(
                            "expired-key-returned",
                            witness,
                            format!(
                                "key {name:?}: op {r1} saw it absent, then op {read} (which began \
                                 after op {r1} ended) saw it present, and no SET can be placed \
                                 between them"
                            ),
                        );
                    }
                }
                continue;
            };
            let Some(writers) = self.writers.get(&v) else {
                let mut witness: Vec<OpIndex> =
                    self.failed_writers.get(&v).cloned().unwrap_or_default();
                witness.push(read);
                let why = if witness.len() > 1 {
                    "whose only SETs failed"
                } else {
                    "never written to it"
                };
                report.push(
                    "unwritten-value",
                    witness,
                    format!("key {name:?}: op {read} read {v}, {why}"),
                );
                continue;
            };
            // The most permissive writer: the one that may have ended last.
            let Some(&w) = writers.iter().max_by_key(|&&w| end_of(&ops[w])) else {
                continue;
            };
            if writers.iter().all(|&w| precedes(r, &ops[w])) {
                report.push(
                    "future-read",
                    vec![w, read],
                    format!(
                        "key {name:?}: op {read} read {v}, but op {w} began writing it only \
                         after the read ended"
                    ),
                );
                continue;
            }
            let w_end = end_of(&ops[w]);
            if let Some((s2, s2_start)) = ok_sets.best_before(r.start_ns) {
                if s2_start > w_end {
                    report.push(
                        "stale-read",
                        vec![w, s2, read],
                        format!(
                            "key {name:?}: op {read} read {v}, written by op {w}, but op {s2} \
                             wrote the key after op {w} completed and before op {read} began"
                        ),
                    );
                }
            }
            if let Some((r1, r1_start)) = absent.best_before(r.start_ns) {
                if r1_start > w_end {
                    report.push(
                        "expired-key-returned",
                        vec![w, r1, read],
                        format!(
                            "key {name:?}: op {w} wrote {v}; op {r1}, begun after that, saw the \
                             key absent (expired); op {read}, begun after op {r1} ended, read {v} \
                             again"
                        ),
                    );
                }
            }
        }

        // Early expiry: an absent observation right after an anchor that
        // nothing else can follow.
        let mut mutations: Vec<(u64, u64, OpIndex, Option<Anchor>)> = self
            .mutations
            .iter()
            .map(|&(i, a)| (ops[i].start_ns, end_of(&ops[i]), i, a))
            .collect();
        mutations.sort_unstable_by_key(|&(start, end, i, _)| (start, end, i));
        let mut prefix_end = Vec::with_capacity(mutations.len());
        let mut latest = 0u64;
        for &(_, end, _, _) in &mutations {
            latest = latest.max(end);
            prefix_end.push(latest);
        }
        for &read in &self.absent {
            let r = &ops[read];
            let r_end = end_of(r);
            let n = mutations.partition_point(|&(start, ..)| start <= r_end);
            let Some(&(a_start, a_end, a, Some(anchor))) = n.checked_sub(1).map(|i| &mutations[i])
            else {
                continue;
            };
            // Another mutation may be placed after the anchor.
            if n >= 2 && prefix_end[n - 2] >= a_start {
                continue;
            }
            // The read must begin after the anchor completed.
            if a_end >= r.start_ns {
                continue;
            }
            let allowance_ms =
                MARGIN_MS.saturating_add(skew_allowance_ms(skews, a_start, r_end, anchor.absolute));
            let alive_until = a_start.saturating_add(anchor.ttl_ms.saturating_mul(MS));
            if r_end.saturating_add(allowance_ms.saturating_mul(MS)) < alive_until {
                let early_ms = (alive_until - r_end) / MS;
                report.push(
                    "early-expiry",
                    vec![a, read],
                    format!(
                        "key {name:?}: op {a} gave it a TTL of {} ms{} and completed; nothing \
                         else changed the key before op {read}, which began after and ended \
                         {early_ms} ms before the TTL could end (allowed: {allowance_ms} ms), \
                         but saw it absent",
                        anchor.ttl_ms,
                        if anchor.absolute {
                            " (an absolute time)"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
    }
}

/// How early (ms) a key may expire over `[from, to]` because of clock
/// faults: the offset of every fault whose influence overlaps the window.
/// A fault's influence lasts from its injection to its heal (plus
/// [`SKEW_SLACK_MS`]): a relative TTL counts on the cluster's time, which
/// can only leap ahead while a skewed clock is in use (a clock ahead, or a
/// clock behind coming back). An absolute deadline is judged against the
/// cluster's time itself, which after a leap ahead stays ahead until the
/// real time catches up: its influence lasts the offset longer.
pub fn skew_allowance_ms(skews: &[ClockSkew], from: u64, to: u64, absolute: bool) -> u64 {
    skews
        .iter()
        .filter(|s| {
            let mut until = s
                .end_ns
                .unwrap_or(u64::MAX)
                .saturating_add(SKEW_SLACK_MS.saturating_mul(MS));
            if absolute {
                until = until.saturating_add(s.max_offset_ms.saturating_mul(MS));
            }
            s.start_ns <= to && until >= from
        })
        .fold(0u64, |sum, s| sum.saturating_add(s.max_offset_ms))
}

/// Operations sorted by end, with the latest start among each prefix: the
/// operation that began last among those that ended before a time.
struct PrefixBest {
    ends: Vec<u64>,
    best: Vec<(OpIndex, u64)>,
}

impl PrefixBest {
    fn by_end(ops: &[Op], which: &[OpIndex]) -> PrefixBest {
        let mut sorted: Vec<(u64, u64, OpIndex)> = which
            .iter()
            .map(|&i| (end_of(&ops[i]), ops[i].start_ns, i))
            .collect();
        sorted.sort_unstable();
        let mut best: Option<(OpIndex, u64)> = None;
        let best = sorted
            .iter()
            .map(|&(_, start, i)| {
                let b = match best {
                    Some(b) if b.1 >= start => b,
                    _ => (i, start),
                };
                best = Some(b);
                b
            })
            .collect();
        PrefixBest {
            ends: sorted.iter().map(|&(end, _, _)| end).collect(),
            best,
        }
    }

    /// Among operations that ended before `t`, the one that began last.
    fn best_before(&self, t: u64) -> Option<(OpIndex, u64)> {
        let n = self.ends.partition_point(|&end| end < t);
        n.checked_sub(1).map(|i| self.best[i])
    }
}

/// Operations sorted by start, with the latest end among each prefix.
struct LatestEnd {
    starts: Vec<u64>,
    latest: Vec<(u64, OpIndex)>,
}

impl LatestEnd {
    fn new(ops: &[Op], which: &[OpIndex]) -> LatestEnd {
        let mut sorted: Vec<(u64, u64, OpIndex)> = which
            .iter()
            .map(|&i| (ops[i].start_ns, end_of(&ops[i]), i))
            .collect();
        sorted.sort_unstable();
        let mut latest: Option<(u64, OpIndex)> = None;
        let latest = sorted
            .iter()
            .map(|&(_, end, i)| {
                let l = match latest {
                    Some(l) if l.0 >= end => l,
                    _ => (end, i),
                };
                latest = Some(l);
                l
            })
            .collect();
        LatestEnd {
            starts: sorted.iter().map(|&(start, _, _)| start).collect(),
            latest,
        }
    }

    /// Among operations begun by `t` (inclusive), the latest end and who.
    fn max_end_started_by(&self, t: u64) -> Option<(u64, OpIndex)> {
        let n = self.starts.partition_point(|&start| start <= t);
        n.checked_sub(1).map(|i| self.latest[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const K: &str = "k";

    fn set(value: u64, ttl_ms: u64) -> OpKind {
        OpKind::TtlSet {
            key: K.into(),
            value,
            ttl_ms,
        }
    }
    fn expire(via: ExpireVia, ttl_ms: u64, applied: Option<bool>) -> OpKind {
        OpKind::TtlExpire {
            key: K.into(),
            via,
            ttl_ms,
            applied,
        }
    }
    fn get(value: Option<u64>) -> OpKind {
        OpKind::TtlRead {
            key: K.into(),
            via: TtlReadVia::Get,
            value: Some(value),
            pttl: None,
            exists: None,
        }
    }
    fn pttl(n: i64) -> OpKind {
        OpKind::TtlRead {
            key: K.into(),
            via: TtlReadVia::Pttl,
            value: None,
            pttl: Some(n),
            exists: None,
        }
    }
    fn exists(e: bool) -> OpKind {
        OpKind::TtlRead {
            key: K.into(),
            via: TtlReadVia::Exists,
            value: None,
            pttl: None,
            exists: Some(e),
        }
    }
    /// Times in milliseconds.
    fn at(process: u32, start_ms: u64, end_ms: u64, kind: OpKind) -> Op {
        ok(process, start_ms * MS, end_ms * MS, kind)
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops }, &[])
    }

    #[test]
    fn a_key_that_expired_and_came_back_is_caught() {
        // SET 1 PX 1000 at 0-10; absent at 1500 (expired, fine); 1 again
        // at 2000: nothing wrote 1 after op 0.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 1_500, 1_510, get(None)),
            at(3, 2_000, 2_010, get(Some(1))),
        ]);
        assert_eq!(kinds(&v), vec!["expired-key-returned"], "{v:#?}");
        assert_eq!(ops_of(&v, "expired-key-returned"), vec![0, 1, 2]);
        // Seen absent by EXISTS, present again by PTTL, no SET between.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 1_500, 1_510, exists(false)),
            at(3, 2_000, 2_010, pttl(300)),
        ]);
        assert_eq!(ops_of(&v, "expired-key-returned"), vec![0, 1, 2]);
        // An expire that answered 0 saw it absent; one that answered 1
        // later saw it present.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(
                2,
                1_500,
                1_510,
                expire(ExpireVia::Pexpire, 500, Some(false)),
            ),
            at(
                3,
                2_000,
                2_010,
                expire(ExpireVia::Expire, 1_000, Some(true)),
            ),
        ]);
        assert_eq!(kinds(&v), vec!["expired-key-returned"], "{v:#?}");
    }

    #[test]
    fn a_new_set_between_absent_and_present_is_fine() {
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 1_500, 1_510, get(None)),
            at(1, 1_600, 1_610, set(2, 1_000)),
            at(3, 2_000, 2_010, exists(true)),
            at(3, 2_020, 2_030, get(Some(2))),
        ]);
        assert!(v.valid, "{v:#?}");
        // An unknown SET may take effect any time after its start.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            info(4, 20 * MS, set(2, 5_000)),
            at(2, 1_500, 1_510, get(None)),
            at(3, 2_000, 2_010, get(Some(2))),
        ]);
        assert!(v.valid, "{v:#?}");
        // A read concurrent with the absent one proves nothing.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 1_500, 1_510, get(None)),
            at(3, 1_505, 1_520, get(Some(1))),
        ]);
        assert!(v.valid, "{v:#?}");
    }

    #[test]
    fn a_key_expiring_early_is_caught() {
        // PX 1000 from 0: absent at 500-510.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 500, 510, get(None)),
        ]);
        assert_eq!(kinds(&v), vec!["early-expiry"], "{v:#?}");
        assert_eq!(ops_of(&v, "early-expiry"), vec![0, 1]);
        // The same through PTTL -2, and after an expire that answered 1.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 10_000)),
            at(1, 100, 110, expire(ExpireVia::Pexpireat, 2_000, Some(true))),
            at(2, 500, 510, pttl(-2)),
        ]);
        assert_eq!(ops_of(&v, "early-expiry"), vec![1, 2]);
    }

    #[test]
    fn expiry_within_the_margin_or_after_a_shorter_ttl_is_fine() {
        // Ends 50 ms before the TTL: within the margin.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 1_000)),
            at(2, 900, 950, get(None)),
        ]);
        assert!(v.valid, "{v:#?}");
        // A PEXPIRE that may have shortened the TTL, unknown or concurrent.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 10_000)),
            info(3, 20 * MS, expire(ExpireVia::Pexpire, 100, None)),
            at(2, 500, 510, exists(false)),
        ]);
        assert!(v.valid, "{v:#?}");
        // A read that began before the SET completed.
        let v = verdict(vec![
            at(1, 0, 200, set(1, 10_000)),
            at(2, 100, 300, get(None)),
        ]);
        assert!(v.valid, "{v:#?}");
        // A failed expire changed nothing, and neither did one that
        // answered 0: the early expiry is still caught.
        let v = verdict(vec![
            at(1, 0, 10, set(1, 10_000)),
            fail(3, 20 * MS, 30 * MS, expire(ExpireVia::Pexpire, 1, None)),
            at(2, 500, 510, get(None)),
        ]);
        assert_eq!(kinds(&v), vec!["early-expiry"], "{v:#?}");
    }

    #[test]
    fn clock_faults_widen_the_margin_near_them_only() {
        let ops = vec![at(1, 0, 10, set(1, 10_000)), at(2, 500, 510, get(None))];
        let history = History { ops };
        let near = ClockSkew {
            start_ns: 200 * MS,
            end_ns: Some(300 * MS),
            max_offset_ms: 30_000,
        };
        assert!(check(&history, &[near]).valid);
        // Healed long before: no excuse.
        let history_later = History {
            ops: vec![
                at(1, 60_000, 60_010, set(1, 10_000)),
                at(2, 60_500, 60_510, get(None)),
            ],
        };
        let v = check(&history_later, &[near]);
        assert_eq!(kinds(&v), vec!["early-expiry"], "{v:#?}");
        // A small skew excuses only that much.
        let small = ClockSkew {
            max_offset_ms: 1_000,
            ..near
        };
        assert_eq!(kinds(&check(&history, &[small])), vec!["early-expiry"]);
        // An absolute deadline stays exposed until the real time catches
        // up with the cluster's after the heal.
        let absolute = History {
            ops: vec![
                at(1, 0, 10, set(1, 100_000)),
                at(
                    1,
                    20_000,
                    20_010,
                    expire(ExpireVia::Pexpireat, 10_000, Some(true)),
                ),
                at(2, 20_500, 20_510, get(None)),
            ],
        };
        assert!(check(&absolute, &[near]).valid);
        assert_eq!(kinds(&check(&absolute, &[])), vec!["early-expiry"]);
    }

    #[test]
    fn values_never_written_stale_or_from_the_future_are_caught() {
        let v = verdict(vec![
            at(1, 0, 10, set(1, 10_000)),
            at(2, 20, 30, get(Some(9))),
        ]);
        assert_eq!(ops_of(&v, "unwritten-value"), vec![1]);
        let v = verdict(vec![
            fail(1, 0, 10 * MS, set(1, 10_000)),
            at(2, 20, 30, get(Some(1))),
        ]);
        assert_eq!(ops_of(&v, "unwritten-value"), vec![0, 1]);
        let v = verdict(vec![
            at(2, 0, 10, get(Some(1))),
            at(1, 20, 30, set(1, 10_000)),
        ]);
        assert_eq!(ops_of(&v, "future-read"), vec![0, 1]);
        let v = verdict(vec![
            at(1, 0, 10, set(1, 10_000)),
            at(1, 20, 30, set(2, 10_000)),
            at(2, 40, 50, get(Some(1))),
        ]);
        assert_eq!(kinds(&v), vec!["stale-read"], "{v:#?}");
        assert_eq!(ops_of(&v, "stale-read"), vec![0, 1, 2]);
        let v = verdict(vec![at(1, 0, 10, set(1, 10_000)), at(2, 20, 30, pttl(-1))]);
        assert_eq!(kinds(&v), vec!["no-ttl"]);
    }

    #[test]
    fn no_successful_read_is_unknown() {
        let v = verdict(vec![at(1, 0, 10, set(1, 10_000))]);
        assert!(v.unknown && !v.valid, "{v:#?}");
    }

    /// A key-value store with TTLs judged by one cluster time that never
    /// goes backwards; `jump` moves it ahead by `offset` ms over a window
    /// of real time (then it stands still until the real time catches up),
    /// as a leader whose clock jumped ahead does.
    struct Sim {
        keys: Vec<Option<(u64, u64)>>,
        jump: Option<(u64, u64, u64)>,
    }

    impl Sim {
        /// Cluster time (ms) at real time `t` (ms).
        fn now(&self, t: u64) -> u64 {
            match self.jump {
                Some((from, to, offset)) if t >= from && t <= to => t + offset,
                Some((_, to, offset)) if t > to => t.max(to + offset),
                _ => t,
            }
        }
        fn live(&mut self, k: usize, now: u64) -> Option<u64> {
            match self.keys[k] {
                Some((v, deadline)) if now < deadline => Some(v),
                _ => {
                    self.keys[k] = None;
                    None
                }
            }
        }
    }

    /// Random operations on 3 keys; 4% unknown (applied or not), 2% failed.
    /// Times in the history are ns; the simulation's unit is the ms. Writes
    /// are `sparse` (1 in 20 instead of 1 in 4, TTLs up to 3 s) to leave
    /// keys alone long enough for reads to judge their TTLs.
    fn simulate(seed: u64, count: usize, jump: Option<(u64, u64, u64)>, sparse: bool) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(6);
        let mut planned = Vec::new();
        let mut next_value = 1u64;
        for _ in 0..count {
            let slot = clock.next(&mut rng);
            let k = rng.gen_range(0..3usize);
            let key = format!("k{k}");
            let ttl_ms = rng.gen_range(20..if sparse { 3_000 } else { 600u64 });
            let roll = if sparse {
                match rng.gen_range(0..100) {
                    0..=2 => 0,
                    3..=4 => 15,
                    r => r.max(25),
                }
            } else {
                rng.gen_range(0..100)
            };
            let kind = match roll {
                0..=14 => {
                    next_value += 1;
                    OpKind::TtlSet {
                        key,
                        value: next_value,
                        ttl_ms,
                    }
                }
                15..=24 => OpKind::TtlExpire {
                    key,
                    via: [ExpireVia::Pexpire, ExpireVia::Expire, ExpireVia::Pexpireat]
                        [rng.gen_range(0..3)],
                    ttl_ms,
                    applied: None,
                },
                25..=59 => OpKind::TtlRead {
                    key,
                    via: TtlReadVia::Get,
                    value: None,
                    pttl: None,
                    exists: None,
                },
                60..=79 => OpKind::TtlRead {
                    key,
                    via: TtlReadVia::Pttl,
                    value: None,
                    pttl: None,
                    exists: None,
                },
                _ => OpKind::TtlRead {
                    key,
                    via: TtlReadVia::Exists,
                    value: None,
                    pttl: None,
                    exists: None,
                },
            };
            let mut op = ok(slot.process, slot.start * MS, slot.end * MS, kind);
            let mut applied = true;
            match rng.gen_range(0..100) {
                0..=3 => {
                    op.outcome = Outcome::Info;
                    op.end_ns = None;
                    applied = rng.gen_bool(0.5);
                }
                4..=5 => {
                    op.outcome = Outcome::Fail;
                    applied = false;
                }
                _ => {}
            }
            planned.push((op, slot.start, slot.effect, applied, k));
        }
        planned.sort_by_key(|p| p.2);
        let mut sim = Sim {
            keys: vec![None; 3],
            jump,
        };
        let mut ops = Vec::new();
        for (mut op, start, effect, applied, k) in planned {
            let now = sim.now(effect);
            // What the client computed for PEXPIREAT: its (real) clock at
            // the start plus the TTL.
            let live = sim.live(k, now);
            let reads = op.outcome == Outcome::Ok;
            match &mut op.kind {
                OpKind::TtlSet { value, ttl_ms, .. } if applied => {
                    sim.keys[k] = Some((*value, now + *ttl_ms));
                }
                OpKind::TtlExpire {
                    via,
                    ttl_ms,
                    applied: reply,
                    ..
                } if applied => {
                    let deadline = match via {
                        ExpireVia::Pexpireat => start + *ttl_ms,
                        _ => now + *ttl_ms,
                    };
                    if let Some(v) = live {
                        sim.keys[k] = Some((v, deadline));
                    }
                    if reads {
                        *reply = Some(live.is_some());
                    }
                }
                OpKind::TtlRead {
                    via,
                    value,
                    pttl,
                    exists,
                    ..
                } if reads => match via {
                    TtlReadVia::Get => *value = Some(live),
                    TtlReadVia::Pttl => {
                        *pttl = Some(match sim.keys[k] {
                            Some((_, deadline)) if live.is_some() => (deadline - now) as i64,
                            _ => -2,
                        })
                    }
                    TtlReadVia::Exists => *exists = Some(live.is_some()),
                },
                _ => {}
            }
            ops.push(op);
        }
        ops.sort_by_key(|op| op.start_ns);
        History { ops }
    }

    #[test]
    fn simulated_histories_pass() {
        for seed in 0..20 {
            let history = simulate(seed, 3_000, None, seed % 2 == 0);
            let v = check(&history, &[]);
            assert!(v.valid, "seed {seed}: {v:#?}");
            assert!(v.ok > 2_500);
        }
    }

    #[test]
    fn a_simulated_clock_jump_passes_only_with_its_skew() {
        let mut caught = 0;
        for seed in 0..10 {
            // The cluster's time leaps 5 s ahead for 1 s of real time.
            let jump = (20_000, 21_000, 5_000);
            let history = simulate(seed, 4_000, Some(jump), true);
            let skew = ClockSkew {
                start_ns: jump.0 * MS,
                end_ns: Some(jump.1 * MS),
                max_offset_ms: jump.2,
            };
            let v = check(&history, &[skew]);
            assert!(v.valid, "seed {seed}: {v:#?}");
            let without = check(&history, &[]);
            assert!(
                without.valid || kinds(&without).iter().all(|k| *k == "early-expiry"),
                "{without:#?}"
            );
            caught += (!without.valid) as usize;
        }
        assert!(caught > 0, "the jump made no key expire early");
    }

    #[test]
    fn a_simulated_history_with_a_value_back_from_the_dead_fails() {
        let mut history = simulate(3, 3_000, None, false);
        // The first acknowledged SET's value, read again at the very end.
        let (first, value) = history
            .ops
            .iter()
            .enumerate()
            .find_map(|(i, op)| match (&op.kind, op.outcome) {
                (OpKind::TtlSet { value, key, .. }, Outcome::Ok) if key == "k0" => {
                    Some((i, *value))
                }
                _ => None,
            })
            .expect("an acknowledged SET");
        let last_end = history.ops.iter().filter_map(|o| o.end_ns).max().unwrap();
        history.ops.push(ok(
            99,
            last_end + 1,
            last_end + 2,
            OpKind::TtlRead {
                key: "k0".into(),
                via: TtlReadVia::Get,
                value: Some(Some(value)),
                pttl: None,
                exists: None,
            },
        ));
        let v = check(&history, &[]);
        assert!(!v.valid, "{v:#?}");
        let found = v
            .anomalies
            .iter()
            .find(|a| a.kind == "expired-key-returned")
            .expect("caught");
        assert!(found.ops.contains(&first) && found.ops.contains(&(history.ops.len() - 1)));
    }
}
