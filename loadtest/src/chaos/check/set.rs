//! The set workload: SADD of elements unique across the run, then a final
//! SMEMBERS of each key.
//!
//! Every read is judged (the final one is the read that matters; an earlier
//! one is held to the same rules): each add acknowledged before the read
//! began must be in it (`lost`); nothing may be in it that was never added
//! to that key, or whose add failed (`unexpected`); no element twice
//! (`duplicate`). An add with an unknown outcome may be there or not, and
//! so may an add still running when the read began. A key that was added
//! to but never read successfully leaves the verdict unknown.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{precedes, preview, Counts, Report};
use crate::chaos::history::{History, Op, OpIndex, OpKind, Outcome, Verdict};

pub fn check(history: &History) -> Verdict {
    let mut counts = Counts::default();
    // key -> element -> the add(s) of it
    let mut adds: BTreeMap<&str, HashMap<u64, Vec<OpIndex>>> = BTreeMap::new();
    let mut reads: BTreeMap<&str, Vec<(OpIndex, &[u64])>> = BTreeMap::new();
    for (index, op) in history.ops.iter().enumerate() {
        match &op.kind {
            OpKind::SetAdd { key, element } => {
                counts.add(op.outcome);
                adds.entry(key)
                    .or_default()
                    .entry(*element)
                    .or_default()
                    .push(index);
            }
            OpKind::SetRead { key, elements } => {
                counts.add(op.outcome);
                if let (Outcome::Ok, Some(elements)) = (op.outcome, elements) {
                    reads.entry(key).or_default().push((index, elements));
                }
            }
            _ => {}
        }
    }

    let unknown = adds.keys().any(|key| !reads.contains_key(key));
    let mut report = Report::default();
    let no_adds = HashMap::new();
    for (key, key_reads) in &reads {
        let key_adds = adds.get(key).unwrap_or(&no_adds);
        for &(read, elements) in key_reads {
            check_read(history, key, key_adds, read, elements, &mut report);
        }
    }
    counts.verdict(report.anomalies, unknown)
}

fn check_read(
    history: &History,
    key: &str,
    adds: &HashMap<u64, Vec<OpIndex>>,
    read: OpIndex,
    elements: &[u64],
    report: &mut Report,
) {
    let reader = &history.ops[read];
    let outcome_of = |add: OpIndex| history.ops[add].outcome;

    let mut present = HashSet::new();
    let mut duplicated = BTreeSet::new();
    let mut never_added = Vec::new();
    let mut failed = BTreeMap::new();
    for &element in elements {
        if !present.insert(element) {
            duplicated.insert(element);
        }
        match adds.get(&element) {
            None => never_added.push(element),
            // Present although every add of it is known not to have happened.
            Some(ops) if ops.iter().all(|&a| outcome_of(a) == Outcome::Fail) => {
                failed.insert(element, ops.clone());
            }
            Some(_) => {}
        }
    }

    if !duplicated.is_empty() {
        let shown: Vec<u64> = duplicated.iter().copied().collect();
        let mut ops = vec![read];
        ops.extend(shown.iter().filter_map(|e| adds.get(e)).flatten());
        ops.sort_unstable();
        report.push(
            "duplicate",
            ops,
            format!(
                "op {read} read key {key:?} with {} more than once",
                preview(&shown)
            ),
        );
    }
    if !never_added.is_empty() {
        report.push(
            "unexpected",
            vec![read],
            format!(
                "op {read} read key {key:?} containing {}, never added to it",
                preview(&never_added)
            ),
        );
    }
    if !failed.is_empty() {
        let shown: Vec<u64> = failed.keys().copied().collect();
        let mut ops: Vec<OpIndex> = failed.into_values().flatten().collect();
        ops.push(read);
        ops.sort_unstable();
        report.push(
            "unexpected",
            ops,
            format!(
                "op {read} read key {key:?} containing {}, whose add failed",
                preview(&shown)
            ),
        );
    }

    let mut lost: Vec<(u64, OpIndex)> = adds
        .iter()
        .filter(|(element, _)| !present.contains(element))
        .filter_map(|(&element, ops)| {
            ops.iter()
                .copied()
                .find(|&a| acknowledged_before(&history.ops[a], reader))
                .map(|a| (element, a))
        })
        .collect();
    if !lost.is_empty() {
        lost.sort_unstable_by_key(|&(_, add)| add);
        let shown: Vec<u64> = lost.iter().map(|&(e, _)| e).collect();
        let mut ops: Vec<OpIndex> = lost.iter().map(|&(_, add)| add).collect();
        ops.push(read);
        report.push(
            "lost",
            ops,
            format!(
                "op {read} read key {key:?} without {} acknowledged element(s) added \
                 before it began: {}",
                shown.len(),
                preview(&shown)
            ),
        );
    }
}

fn acknowledged_before(add: &Op, read: &Op) -> bool {
    add.outcome == Outcome::Ok && precedes(add, read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn add(element: u64) -> OpKind {
        OpKind::SetAdd {
            key: "s".into(),
            element,
        }
    }
    fn read(elements: &[u64]) -> OpKind {
        OpKind::SetRead {
            key: "s".into(),
            elements: Some(elements.to_vec()),
        }
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops })
    }

    #[test]
    fn a_lost_element_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, add(1)),
            ok(2, 0, 10, add(2)),
            ok(3, 20, 30, read(&[2])),
        ]);
        assert_eq!(kinds(&v), vec!["lost"]);
        assert_eq!(ops_of(&v, "lost"), vec![0, 2]);
    }

    #[test]
    fn unexpected_and_duplicated_elements_are_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, add(1)),
            fail(2, 0, 10, add(2)),
            ok(3, 20, 30, read(&[1, 1, 2, 9])),
        ]);
        assert_eq!(ops_of(&v, "duplicate"), vec![0, 2]);
        let unexpected: Vec<_> = v
            .anomalies
            .iter()
            .filter(|a| a.kind == "unexpected")
            .collect();
        assert_eq!(unexpected.len(), 2, "{v:#?}");
        assert_eq!(unexpected[0].ops, vec![2]);
        assert_eq!(unexpected[1].ops, vec![1, 2]);
    }

    #[test]
    fn info_and_concurrent_adds_may_be_missing_or_present() {
        let v = verdict(vec![
            ok(1, 0, 10, add(1)),
            info(2, 0, add(2)),
            info(3, 0, add(3)),
            ok(4, 15, 40, add(4)),
            ok(5, 20, 30, read(&[1, 3])),
        ]);
        assert!(v.valid, "{v:#?}");
        assert_eq!((v.ok, v.fail, v.info), (3, 0, 2));
    }

    #[test]
    fn no_successful_read_is_unknown() {
        let v = verdict(vec![ok(1, 0, 10, add(1)), info(2, 20, read(&[]))]);
        assert!(v.unknown && !v.valid, "{v:#?}");
    }

    #[test]
    fn simulated_histories_pass_and_a_dropped_element_fails() {
        for seed in 0..20 {
            let mut history = simulate(seed, 2_000);
            let v = check(&history);
            assert!(v.valid, "seed {seed}: {v:#?}");

            // Drop an acknowledged element from the final read.
            let final_read = history.ops.len() - 1;
            let acknowledged: Vec<(OpIndex, u64)> = history
                .ops
                .iter()
                .enumerate()
                .filter_map(|(i, op)| match op.kind {
                    OpKind::SetAdd { element, .. } if op.outcome == Outcome::Ok => {
                        Some((i, element))
                    }
                    _ => None,
                })
                .collect();
            let (adder, dropped) = acknowledged[acknowledged.len() / 2];
            if let OpKind::SetRead {
                elements: Some(elements),
                ..
            } = &mut history.ops[final_read].kind
            {
                elements.retain(|&e| e != dropped);
            }
            let v = check(&history);
            assert_eq!(kinds(&v), vec!["lost"], "seed {seed}: {v:#?}");
            assert_eq!(ops_of(&v, "lost"), vec![adder, final_read]);
        }
    }

    /// Concurrent clients adding unique elements to one set; 5% of adds end
    /// unknown (applied or not), 2% fail. Then one final read.
    fn simulate(seed: u64, count: u64) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(8);
        let mut ops = Vec::new();
        let mut applied = Vec::new();
        let mut last_end = 0;
        for element in 0..count {
            let slot = clock.next(&mut rng);
            last_end = last_end.max(slot.end);
            let mut op = ok(slot.process, slot.start, slot.end, add(element));
            match rng.gen_range(0..100) {
                0..=4 => {
                    op.outcome = Outcome::Info;
                    op.end_ns = None;
                    if rng.gen_bool(0.5) {
                        applied.push(element);
                    }
                }
                5..=6 => op.outcome = Outcome::Fail,
                _ => applied.push(element),
            }
            ops.push(op);
        }
        ops.sort_by_key(|op| op.start_ns);
        ops.push(ok(0, last_end + 1, last_end + 10, read(&applied)));
        History { ops }
    }
}
