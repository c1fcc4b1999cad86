//! The stream workload: XADD of unique payloads while consumers XREAD and
//! XREADGROUP, then a final XRANGE of each stream.
//!
//! Checked per stream:
//! - the ids acknowledged by XADD strictly increase in real-time order (an
//!   add that completed before another began has the smaller id), and no
//!   two acknowledged adds share an id (`non-monotonic-id`, `duplicate-id`);
//! - every read (XREAD, XREADGROUP or XRANGE) lists its entries in strictly
//!   increasing id order (`unordered-entries`), never the same entry twice
//!   (`duplicate-entry`), no payload that was never added or whose add
//!   failed (`unexpected-entry`), each payload under the id its XADD
//!   returned (`id-mismatch`), and an id always with the same payload, a
//!   payload always with the same id (`inconsistent-entry`, for adds whose
//!   reply was lost);
//! - every XRANGE contains each add acknowledged before it began
//!   (`lost-entry`); the final XRANGE is the one that sees them all. A
//!   stream with acknowledged adds but no successful XRANGE leaves the
//!   verdict unknown.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{end_of, precedes, preview, Counts, Report};
use crate::chaos::history::{History, OpIndex, OpKind, Outcome, StreamId, StreamReadVia, Verdict};

pub fn check(history: &History) -> Verdict {
    let mut counts = Counts::default();
    let mut streams: BTreeMap<&str, Stream> = BTreeMap::new();
    for (index, op) in history.ops.iter().enumerate() {
        match &op.kind {
            OpKind::StreamAdd { key, payload, id } => {
                counts.add(op.outcome);
                let stream = streams.entry(key).or_default();
                stream
                    .adds
                    .entry(*payload)
                    .or_insert((index, op.outcome, *id));
                if let (Outcome::Ok, Some(id)) = (op.outcome, id) {
                    stream.acknowledged.push((index, *id));
                }
            }
            OpKind::StreamRead { key, via, entries } => {
                counts.add(op.outcome);
                if let (Outcome::Ok, Some(entries)) = (op.outcome, entries) {
                    streams
                        .entry(key)
                        .or_default()
                        .reads
                        .push((index, *via, entries));
                }
            }
            _ => {}
        }
    }

    let mut report = Report::default();
    let mut unknown = false;
    for (key, stream) in &streams {
        let has_range = stream.reads.iter().any(|r| r.1 == StreamReadVia::Xrange);
        if !stream.acknowledged.is_empty() && !has_range {
            unknown = true;
        }
        stream.check_ids(history, key, &mut report);
        stream.check_reads(history, key, &mut report);
    }
    counts.verdict(report.anomalies, unknown)
}

#[derive(Default)]
struct Stream<'a> {
    /// payload -> its (first) add: index, outcome, id returned.
    adds: HashMap<u64, (OpIndex, Outcome, Option<StreamId>)>,
    /// Acknowledged adds with the id returned.
    acknowledged: Vec<(OpIndex, StreamId)>,
    /// Successful reads and what they returned.
    reads: Vec<(OpIndex, StreamReadVia, &'a [Entry])>,
}

/// A stream entry as read: (id, payload).
type Entry = (StreamId, u64);

fn show(id: StreamId) -> String {
    format!("{}-{}", id.ms, id.seq)
}

impl Stream<'_> {
    /// Acknowledged ids: unique, and increasing in real-time order. Sorted
    /// by completion, a prefix maximum gives for each add the largest id
    /// among the adds that completed before it began.
    fn check_ids(&self, history: &History, key: &str, report: &mut Report) {
        let mut by_id: BTreeMap<StreamId, Vec<OpIndex>> = BTreeMap::new();
        for &(add, id) in &self.acknowledged {
            by_id.entry(id).or_default().push(add);
        }
        for (id, adds) in by_id.into_iter().filter(|(_, adds)| adds.len() > 1) {
            report.push(
                "duplicate-id",
                adds.clone(),
                format!(
                    "stream {key:?}: XADD ops {adds:?} were all acknowledged with id {}",
                    show(id)
                ),
            );
        }

        let mut by_end: Vec<(u64, StreamId, OpIndex)> = self
            .acknowledged
            .iter()
            .map(|&(add, id)| (end_of(&history.ops[add]), id, add))
            .collect();
        by_end.sort_unstable();
        let mut highest: Vec<(StreamId, OpIndex)> = Vec::with_capacity(by_end.len());
        for &(_, id, add) in &by_end {
            let best = match highest.last() {
                Some(&(top, by)) if top >= id => (top, by),
                _ => (id, add),
            };
            highest.push(best);
        }
        for &(add, id) in &self.acknowledged {
            let start = history.ops[add].start_ns;
            let before = by_end.partition_point(|&(end, _, _)| end < start);
            let Some(&(top, earlier)) = before.checked_sub(1).and_then(|i| highest.get(i)) else {
                continue;
            };
            if top >= id {
                report.push(
                    "non-monotonic-id",
                    vec![earlier, add],
                    format!(
                        "stream {key:?}: XADD op {add} got id {} although XADD op {earlier} \
                         had completed with id {} before it began",
                        show(id),
                        show(top)
                    ),
                );
            }
        }
    }

    fn check_reads(&self, history: &History, key: &str, report: &mut Report) {
        // The first id seen for each payload and payload for each id, with
        // who showed it; acknowledged adds come first.
        let mut id_of: HashMap<u64, (StreamId, OpIndex)> = self
            .acknowledged
            .iter()
            .filter_map(|&(add, id)| match history.ops[add].kind {
                OpKind::StreamAdd { payload, .. } => Some((payload, (id, add))),
                _ => None,
            })
            .collect();
        let mut payload_of: HashMap<StreamId, (u64, OpIndex)> = id_of
            .iter()
            .map(|(&payload, &(id, add))| (id, (payload, add)))
            .collect();

        for &(read, via, entries) in &self.reads {
            let mut seen_ids = HashSet::new();
            let mut seen_payloads = HashSet::new();
            let mut never_added = Vec::new();
            for (position, &(id, payload)) in entries.iter().enumerate() {
                let new_id = seen_ids.insert(id);
                let new_payload = seen_payloads.insert(payload);
                if !new_id || !new_payload {
                    report.push(
                        "duplicate-entry",
                        vec![read],
                        format!(
                            "stream {key:?}: {via:?} op {read} returned {} (payload {payload}) \
                             more than once",
                            show(id)
                        ),
                    );
                } else if let Some(&(previous, _)) = position.checked_sub(1).map(|p| &entries[p]) {
                    if previous >= id {
                        report.push(
                            "unordered-entries",
                            vec![read],
                            format!(
                                "stream {key:?}: {via:?} op {read} returned {} after {}",
                                show(id),
                                show(previous)
                            ),
                        );
                    }
                }

                match self.adds.get(&payload) {
                    None => never_added.push(payload),
                    Some(&(add, Outcome::Fail, _)) => report.push(
                        "unexpected-entry",
                        vec![add, read],
                        format!(
                            "stream {key:?}: {via:?} op {read} returned payload {payload}, \
                             whose XADD op {add} failed"
                        ),
                    ),
                    Some(_) => {}
                }
                match id_of.get(&payload) {
                    Some(&(expected, by)) if expected != id => {
                        let by_add = matches!(history.ops[by].kind, OpKind::StreamAdd { .. });
                        report.push(
                            if by_add {
                                "id-mismatch"
                            } else {
                                "inconsistent-entry"
                            },
                            vec![by, read],
                            format!(
                                "stream {key:?}: {via:?} op {read} returned payload {payload} \
                                 as {}, but op {by} {} it as {}",
                                show(id),
                                if by_add {
                                    "was acknowledged with"
                                } else {
                                    "returned"
                                },
                                show(expected)
                            ),
                        );
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        id_of.insert(payload, (id, read));
                    }
                }
                match payload_of.get(&id) {
                    Some(&(expected, by)) if expected != payload => report.push(
                        "inconsistent-entry",
                        vec![by, read],
                        format!(
                            "stream {key:?}: {via:?} op {read} returned {} with payload \
                             {payload}, but op {by} had it with payload {expected}",
                            show(id)
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        payload_of.insert(id, (payload, read));
                    }
                }
            }
            if !never_added.is_empty() {
                report.push(
                    "unexpected-entry",
                    vec![read],
                    format!(
                        "stream {key:?}: {via:?} op {read} returned payload(s) {}, never added \
                         to it",
                        preview(&never_added)
                    ),
                );
            }
            if via == StreamReadVia::Xrange {
                self.check_complete(history, key, read, &seen_payloads, report);
            }
        }
    }

    /// A full XRANGE must contain every add acknowledged before it began.
    fn check_complete(
        &self,
        history: &History,
        key: &str,
        read: OpIndex,
        present: &HashSet<u64>,
        report: &mut Report,
    ) {
        let mut lost: Vec<(OpIndex, u64)> = self
            .acknowledged
            .iter()
            .filter(|&&(add, _)| precedes(&history.ops[add], &history.ops[read]))
            .filter_map(|&(add, _)| match history.ops[add].kind {
                OpKind::StreamAdd { payload, .. } if !present.contains(&payload) => {
                    Some((add, payload))
                }
                _ => None,
            })
            .collect();
        if lost.is_empty() {
            return;
        }
        lost.sort_unstable();
        let payloads: Vec<u64> = lost.iter().map(|&(_, p)| p).collect();
        let mut ops: Vec<OpIndex> = lost.iter().map(|&(add, _)| add).collect();
        ops.push(read);
        report.push(
            "lost-entry",
            ops,
            format!(
                "stream {key:?}: XRANGE op {read} lacks {} entries acknowledged before it \
                 began, payloads {}",
                payloads.len(),
                preview(&payloads)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use crate::chaos::history::Op;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }
    fn add(payload: u64, ms: Option<u64>) -> OpKind {
        OpKind::StreamAdd {
            key: "s".into(),
            payload,
            id: ms.map(id),
        }
    }
    fn read(via: StreamReadVia, entries: &[(u64, u64)]) -> OpKind {
        OpKind::StreamRead {
            key: "s".into(),
            via,
            entries: Some(entries.iter().map(|&(ms, p)| (id(ms), p)).collect()),
        }
    }
    fn range(entries: &[(u64, u64)]) -> OpKind {
        read(StreamReadVia::Xrange, entries)
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops })
    }

    #[test]
    fn a_duplicated_entry_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(1))),
            ok(1, 20, 30, add(101, Some(2))),
            ok(2, 40, 50, range(&[(1, 100), (2, 101), (2, 101)])),
        ]);
        assert_eq!(kinds(&v), vec!["duplicate-entry"], "{v:#?}");
        assert_eq!(ops_of(&v, "duplicate-entry"), vec![2]);
    }

    #[test]
    fn a_lost_entry_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(1))),
            ok(1, 20, 30, add(101, Some(2))),
            ok(3, 25, 60, add(102, Some(3))),
            ok(2, 40, 50, range(&[(2, 101)])),
        ]);
        assert_eq!(kinds(&v), vec!["lost-entry"], "{v:#?}");
        assert_eq!(ops_of(&v, "lost-entry"), vec![0, 3]);
    }

    #[test]
    fn ids_must_grow_in_real_time_order() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(5))),
            ok(2, 5, 15, add(102, Some(1))),
            ok(1, 20, 30, add(101, Some(4))),
            ok(2, 40, 50, range(&[(1, 102), (4, 101), (5, 100)])),
        ]);
        assert_eq!(kinds(&v), vec!["non-monotonic-id"], "{v:#?}");
        assert_eq!(ops_of(&v, "non-monotonic-id"), vec![0, 2]);
    }

    #[test]
    fn entries_out_of_order_and_shared_ids_are_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(1))),
            ok(2, 0, 10, add(101, Some(1))),
            ok(3, 20, 30, read(StreamReadVia::Xread, &[(1, 100), (0, 7)])),
        ]);
        assert_eq!(ops_of(&v, "duplicate-id"), vec![0, 1]);
        assert_eq!(ops_of(&v, "unordered-entries"), vec![2]);
        assert_eq!(ops_of(&v, "unexpected-entry"), vec![2]);
    }

    #[test]
    fn a_consumer_sees_the_id_the_add_returned() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(1))),
            ok(2, 5, 15, read(StreamReadVia::Xreadgroup, &[(2, 100)])),
            ok(3, 20, 30, range(&[(1, 100)])),
        ]);
        assert_eq!(kinds(&v), vec!["id-mismatch"], "{v:#?}");
        assert_eq!(ops_of(&v, "id-mismatch"), vec![0, 1]);
    }

    #[test]
    fn entries_of_unknown_adds_must_stay_consistent() {
        let v = verdict(vec![
            info(1, 0, add(100, None)),
            ok(2, 5, 15, read(StreamReadVia::Xread, &[(3, 100)])),
            ok(3, 20, 30, range(&[(4, 100)])),
        ]);
        assert_eq!(kinds(&v), vec!["inconsistent-entry"], "{v:#?}");
        assert_eq!(ops_of(&v, "inconsistent-entry"), vec![1, 2]);
    }

    #[test]
    fn a_failed_add_must_not_appear() {
        let v = verdict(vec![
            fail(1, 0, 10, add(100, None)),
            ok(3, 20, 30, range(&[(4, 100)])),
        ]);
        assert_eq!(ops_of(&v, "unexpected-entry"), vec![0, 1]);
    }

    #[test]
    fn concurrency_and_unknown_adds_can_be_valid() {
        let v = verdict(vec![
            ok(1, 0, 20, add(100, Some(2))),
            ok(2, 0, 20, add(101, Some(1))),
            info(3, 5, add(102, None)),
            info(4, 5, add(103, None)),
            ok(5, 10, 12, read(StreamReadVia::Xread, &[(1, 101)])),
            ok(1, 30, 40, add(104, Some(9))),
            ok(2, 50, 60, range(&[(1, 101), (2, 100), (7, 103), (9, 104)])),
        ]);
        assert!(v.valid, "{v:#?}");
        assert_eq!((v.ok, v.fail, v.info), (5, 0, 2));
    }

    #[test]
    fn no_successful_range_is_unknown() {
        let v = verdict(vec![
            ok(1, 0, 10, add(100, Some(1))),
            ok(2, 20, 30, read(StreamReadVia::Xread, &[(1, 100)])),
        ]);
        assert!(v.unknown && !v.valid, "{v:#?}");
    }

    #[test]
    fn simulated_streams_pass_and_injected_faults_fail() {
        for seed in 0..10 {
            let history = simulate(seed, 2_000);
            let v = check(&history);
            assert!(v.valid, "seed {seed}: {v:#?}");

            let last = history.ops.len() - 1;
            let OpKind::StreamRead {
                entries: Some(entries),
                ..
            } = &history.ops[last].kind
            else {
                panic!("the final XRANGE is last");
            };
            // An acknowledged entry dropped from the final XRANGE.
            let (dropped_id, _) = entries[entries.len() / 2];
            let adder = history
                .ops
                .iter()
                .position(|op| {
                    matches!(op.kind, OpKind::StreamAdd { id: Some(i), .. } if i == dropped_id)
                })
                .expect("the entry's add");
            let mut lossy = history.clone();
            if let OpKind::StreamRead {
                entries: Some(entries),
                ..
            } = &mut lossy.ops[last].kind
            {
                entries.retain(|&(id, _)| id != dropped_id);
            }
            let v = check(&lossy);
            assert_eq!(kinds(&v), vec!["lost-entry"], "seed {seed}: {v:#?}");
            assert_eq!(ops_of(&v, "lost-entry"), vec![adder, last]);

            // A consumer that got the same entry twice.
            let mut doubled = history.clone();
            let consumer = doubled
                .ops
                .iter()
                .position(|op| {
                    matches!(&op.kind, OpKind::StreamRead { via: StreamReadVia::Xread, entries: Some(e), .. } if !e.is_empty())
                })
                .expect("a consumer read");
            if let OpKind::StreamRead {
                entries: Some(entries),
                ..
            } = &mut doubled.ops[consumer].kind
            {
                entries.push(*entries.last().expect("not empty"));
            }
            let v = check(&doubled);
            assert_eq!(kinds(&v), vec!["duplicate-entry"], "seed {seed}: {v:#?}");
            assert_eq!(ops_of(&v, "duplicate-entry"), vec![consumer]);
        }
    }

    /// One stream: producers XADD (ids from the instant each takes effect),
    /// consumers XREAD everything after the last id they saw, and a final
    /// XRANGE. 5% of adds end unknown, 2% fail.
    fn simulate(seed: u64, count: usize) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(8);
        let mut planned: Vec<(Op, u64, bool)> = Vec::new();
        for payload in 0..count as u64 {
            let slot = clock.next(&mut rng);
            let kind = if rng.gen_bool(0.7) {
                add(payload, None)
            } else {
                let via = if rng.gen_bool(0.5) {
                    StreamReadVia::Xread
                } else {
                    StreamReadVia::Xreadgroup
                };
                read(via, &[])
            };
            let mut op = ok(slot.process, slot.start, slot.end, kind);
            let mut applied = true;
            if matches!(op.kind, OpKind::StreamAdd { .. }) {
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
            }
            planned.push((op, slot.effect, applied));
        }
        planned.sort_by_key(|(_, effect, _)| *effect);
        let mut stream: Vec<(StreamId, u64)> = Vec::new();
        // Each consumer reads on from where it stopped.
        let mut cursor: HashMap<u32, usize> = HashMap::new();
        let mut last_end = 0;
        let mut ops = Vec::new();
        for (mut op, effect, applied) in planned {
            let process = op.process;
            let acknowledged = op.outcome == Outcome::Ok;
            match &mut op.kind {
                OpKind::StreamAdd { payload, id, .. } if applied => {
                    let seq = stream.iter().filter(|(i, _)| i.ms == effect).count() as u64;
                    let new = StreamId { ms: effect, seq };
                    stream.push((new, *payload));
                    if acknowledged {
                        *id = Some(new);
                    }
                }
                OpKind::StreamRead { entries, .. } => {
                    let from = cursor.entry(process).or_default();
                    let upto = (*from + rng.gen_range(0..20)).min(stream.len());
                    *entries = Some(stream[*from..upto].to_vec());
                    *from = upto;
                }
                _ => {}
            }
            last_end = last_end.max(op.end_ns.unwrap_or(0));
            ops.push(op);
        }
        ops.sort_by_key(|op| op.start_ns);
        let everything: Vec<(u64, u64)> = Vec::new();
        let mut final_read = ok(0, last_end + 1, last_end + 10, range(&everything));
        if let OpKind::StreamRead { entries, .. } = &mut final_read.kind {
            *entries = Some(stream);
        }
        ops.push(final_read);
        History { ops }
    }
}
