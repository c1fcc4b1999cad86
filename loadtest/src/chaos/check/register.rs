//! Per-key linearizability of a register (GET, SET, compare-and-set).
//!
//! Each key is checked on its own with Wing & Gong's search as improved by
//! Lowe: walk the calls and returns in time order, linearize a pending call
//! whenever the register allows it, backtrack when a return is reached whose
//! call could not be placed, and remember every (set of linearized
//! operations, register value) already explored so that no configuration is
//! searched twice. The search is our own code; `docs/reliability.md` says
//! why no crate.
//!
//! Outcomes: `Ok` operations must be linearized inside their interval.
//! `Fail` operations are dropped: a refused compare-and-set is evidence that
//! the value was not `from`, but `Fail` also covers requests never sent, so
//! it is treated as carrying no information (sound, only less strict).
//! `Info` writes and compare-and-sets may take effect at any time after
//! their start, or never; `Info` reads returned nothing and are dropped.
//!
//! When a key is not linearizable, the anomaly carries a small witness: the
//! shortest prefix of the history that cannot be linearized, then shrunk by
//! relaxing every operation it can do without (an `Ok` write becomes "may
//! or may not have happened, at any time after its start", a read is
//! dropped) while the rest still cannot be linearized.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::{end_of, Counts};
use crate::chaos::history::{Anomaly, History, OpIndex, OpKind, Outcome, Verdict};

/// Search steps allowed for one key before the verdict becomes "unknown".
/// A valid 2,000-operation key needs a few tens of thousands.
const STEP_BUDGET: u64 = 20_000_000;

/// Steps allowed to shrink the witness of a key found not linearizable;
/// when they run out the witness is reported larger than it could be.
const EXPLAIN_BUDGET: u64 = 4 * STEP_BUDGET;

pub fn check(history: &History) -> Verdict {
    check_with_budget(history, STEP_BUDGET, EXPLAIN_BUDGET)
}

fn check_with_budget(history: &History, step_budget: u64, explain_budget: u64) -> Verdict {
    let mut counts = Counts::default();
    let mut by_key: BTreeMap<&str, Vec<RegOp>> = BTreeMap::new();
    for (index, op) in history.ops.iter().enumerate() {
        let (key, f) = match &op.kind {
            OpKind::RegRead { key, value } => (key, RegFn::Read(*value)),
            OpKind::RegWrite { key, value } => (key, RegFn::Write(*value)),
            OpKind::RegCas { key, from, to } => (
                key,
                RegFn::Cas {
                    from: *from,
                    to: *to,
                },
            ),
            _ => continue,
        };
        counts.add(op.outcome);
        let must_apply = match (op.outcome, f) {
            (Outcome::Ok, _) => true,
            (Outcome::Fail, _) | (Outcome::Info, RegFn::Read(_)) => continue,
            (Outcome::Info, _) => false,
        };
        by_key.entry(key).or_default().push(RegOp {
            index,
            call: op.start_ns,
            ret: if must_apply { end_of(op) } else { u64::MAX },
            must_apply,
            f,
        });
    }

    let mut anomalies = Vec::new();
    let mut unknown = false;
    for (key, ops) in by_key {
        let mut budget = step_budget;
        match search(&prune(ops.clone()), &mut budget) {
            Search::Linearizable => {}
            Search::Exhausted => unknown = true,
            Search::Refuted => {
                let mut budget = explain_budget;
                anomalies.push(explain(key, &ops, &mut budget));
            }
        }
    }
    counts.verdict(anomalies, unknown)
}

/// What an operation does to the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegFn {
    /// Saw this value (None: the key did not exist, the initial state).
    Read(Option<i64>),
    Write(i64),
    Cas {
        from: i64,
        to: i64,
    },
}

impl RegFn {
    fn written(self) -> Option<i64> {
        match self {
            RegFn::Read(_) => None,
            RegFn::Write(value) | RegFn::Cas { to: value, .. } => Some(value),
        }
    }

    fn describe(self) -> String {
        let show = |v: Option<i64>| v.map_or("nil".to_string(), |v| v.to_string());
        match self {
            RegFn::Read(v) => format!("read {}", show(v)),
            RegFn::Write(v) => format!("write {v}"),
            RegFn::Cas { from, to } => format!("cas {from}->{to}"),
        }
    }
}

/// One operation of one key, as the search sees it.
#[derive(Debug, Clone, Copy)]
struct RegOp {
    /// Index in the history, for the report.
    index: OpIndex,
    call: u64,
    /// u64::MAX for operations that may take effect at any later time.
    ret: u64,
    /// `Ok` operations must be linearized; the others may be left out.
    must_apply: bool,
    f: RegFn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    Linearizable,
    Refuted,
    Exhausted,
}

/// Drops optional writes whose value nobody observed. If a linearization
/// uses such a write, removing it leaves a linearization: no read between it
/// and the next write saw its value and no compare-and-set expected it. This
/// keeps the search small when many writes timed out.
fn prune(ops: Vec<RegOp>) -> Vec<RegOp> {
    let observed: HashSet<i64> = ops
        .iter()
        .filter_map(|op| match op.f {
            RegFn::Read(seen) => seen,
            RegFn::Cas { from, .. } => Some(from),
            RegFn::Write(_) => None,
        })
        .collect();
    ops.into_iter()
        .filter(|op| op.must_apply || op.f.written().is_some_and(|v| observed.contains(&v)))
        .collect()
}

/// Register values renumbered densely for the search: 0 is nil, 1 stands
/// for every value no operation can observe (no read returned it and no
/// compare-and-set expected it; such values are interchangeable, so sharing
/// one state keeps the memo small), 2.. the observable values.
#[derive(Debug, Clone, Copy)]
enum Step {
    Read(u32),
    Write(u32),
    Cas { from: u32, to: u32 },
}

const NIL: u32 = 0;
const UNOBSERVABLE: u32 = 1;

impl Step {
    fn compile(ops: &[RegOp]) -> Vec<Step> {
        let mut ids: HashMap<i64, u32> = HashMap::new();
        for op in ops {
            if let RegFn::Read(Some(v)) | RegFn::Cas { from: v, .. } = op.f {
                let next = ids.len() as u32 + 2;
                ids.entry(v).or_insert(next);
            }
        }
        let id = |v: Option<i64>| match v {
            None => NIL,
            Some(v) => ids.get(&v).copied().unwrap_or(UNOBSERVABLE),
        };
        ops.iter()
            .map(|op| match op.f {
                RegFn::Read(seen) => Step::Read(id(seen)),
                RegFn::Write(v) => Step::Write(id(Some(v))),
                RegFn::Cas { from, to } => Step::Cas {
                    from: id(Some(from)),
                    to: id(Some(to)),
                },
            })
            .collect()
    }

    fn apply(self, value: u32) -> Option<u32> {
        match self {
            // Nobody reads an unobservable value, so a read never matches it.
            Step::Read(seen) => (seen == value).then_some(value),
            Step::Write(new) => Some(new),
            Step::Cas { from, to } => (value == from).then_some(to),
        }
    }
}

/// The search state besides the set of linearized operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Register {
    value: u32,
    /// The last operation linearized was optional, so the next one must
    /// observe its value: if some linearization includes an optional write
    /// that nothing observes right after it, dropping that write leaves a
    /// linearization too. Without this rule an `Info` write is tried at
    /// every point of its (unbounded) interval.
    awaiting_observer: bool,
}

/// Wing–Gong–Lowe: a depth-first search over the calls and returns in time
/// order, held in a doubly linked list so that a linearized operation can be
/// lifted out and put back in O(1).
fn search(ops: &[RegOp], budget: &mut u64) -> Search {
    let mut wgl = Wgl::new(ops);
    // At a fresh configuration, first look for a read to force.
    let mut fresh = true;
    let mut node = 0;
    loop {
        if *budget == 0 {
            return Search::Exhausted;
        }
        *budget -= 1;
        let mut dead_end = false;
        if fresh {
            fresh = false;
            node = wgl.next[0];
            if let Some(read) = wgl.matching_read() {
                if wgl.linearize(read, true) {
                    fresh = true;
                    continue;
                }
                // Explored before from this configuration, and it failed.
                dead_end = true;
            }
        }
        if !dead_end {
            if node == wgl.tail {
                return Search::Linearizable;
            }
            let op = Wgl::op_of(node);
            if Wgl::is_call(node) {
                if wgl.linearize(op, false) {
                    fresh = true;
                } else {
                    node = wgl.next[node];
                }
                continue;
            }
            if !ops[op].must_apply {
                return Search::Linearizable;
            }
        }
        // An operation returned before it could be linearized: undo the
        // latest real choice and try the call after it instead.
        node = match wgl.backtrack() {
            Some(node) => node,
            None => return Search::Refuted,
        };
    }
}

/// The search's working state for one key.
struct Wgl<'a> {
    ops: &'a [RegOp],
    steps: Vec<Step>,
    /// The event list: node 0 is the head sentinel, `tail` = 2n+1 the tail,
    /// node 2i+1 the call of operation i and 2i+2 its return.
    next: Vec<usize>,
    prev: Vec<usize>,
    tail: usize,
    linearized: Vec<u64>,
    seen: HashSet<MemoKey, BuildHasherDefault<FxHasher>>,
    /// Operations linearized so far: the state before each, and whether it
    /// was forced (a read, which has no alternative worth trying).
    stack: Vec<(usize, Register, bool)>,
    state: Register,
}

impl<'a> Wgl<'a> {
    fn new(ops: &'a [RegOp]) -> Self {
        let n = ops.len();
        let tail = 2 * n + 1;
        // At equal times calls come first: touching intervals are
        // concurrent. Among returns at u64::MAX the mandatory ones come
        // first, so reaching an optional return means every mandatory
        // operation is linearized.
        let mut order: Vec<usize> = (1..=2 * n).collect();
        order.sort_by_key(|&node| {
            let op = &ops[Self::op_of(node)];
            if Self::is_call(node) {
                (op.call, 0u8)
            } else {
                (op.ret, if op.must_apply { 1 } else { 2 })
            }
        });
        let mut next = vec![tail; 2 * n + 2];
        let mut prev = vec![0; 2 * n + 2];
        let mut last = 0;
        for &node in &order {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        next[last] = tail;
        prev[tail] = last;
        Wgl {
            ops,
            steps: Step::compile(ops),
            next,
            prev,
            tail,
            linearized: vec![0; n.div_ceil(64)],
            seen: HashSet::default(),
            stack: Vec::new(),
            state: Register {
                value: NIL,
                awaiting_observer: false,
            },
        }
    }

    fn op_of(node: usize) -> usize {
        (node - 1) / 2
    }

    fn is_call(node: usize) -> bool {
        node % 2 == 1
    }

    /// A pending read that can be linearized now and that sees the current
    /// value. Partial-order reduction: if the configuration can be extended
    /// at all, it can be extended by that read first (a read changes
    /// nothing, and every operation still pending returns after its call),
    /// so the search takes it without branching. Without this, every way of
    /// interleaving concurrent readers is explored.
    fn matching_read(&self) -> Option<usize> {
        let mut node = self.next[0];
        while node != self.tail && Self::is_call(node) {
            let op = Self::op_of(node);
            if matches!(self.steps[op], Step::Read(seen) if seen == self.state.value) {
                return Some(op);
            }
            node = self.next[node];
        }
        None
    }

    /// Linearizes `op` next if the register allows it and the resulting
    /// configuration is new.
    fn linearize(&mut self, op: usize, forced: bool) -> bool {
        let step = self.steps[op];
        if self.state.awaiting_observer && matches!(step, Step::Write(_)) {
            return false;
        }
        let Some(value) = step.apply(self.state.value) else {
            return false;
        };
        let after = Register {
            value,
            awaiting_observer: !self.ops[op].must_apply,
        };
        self.linearized[op / 64] ^= 1 << (op % 64);
        if !self.seen.insert(MemoKey::new(&self.linearized, after)) {
            self.linearized[op / 64] ^= 1 << (op % 64);
            return false;
        }
        self.stack.push((op, self.state, forced));
        self.state = after;
        for node in [2 * op + 1, 2 * op + 2] {
            self.next[self.prev[node]] = self.next[node];
            self.prev[self.next[node]] = self.prev[node];
        }
        true
    }

    /// Undoes linearizations back to the latest unforced one, and returns
    /// the node to continue from (the call after it), or None when there is
    /// nothing left to undo.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let (op, before, forced) = self.stack.pop()?;
            self.linearized[op / 64] ^= 1 << (op % 64);
            self.state = before;
            for node in [2 * op + 2, 2 * op + 1] {
                self.next[self.prev[node]] = node;
                self.prev[self.next[node]] = node;
            }
            if !forced {
                return Some(self.next[2 * op + 1]);
            }
        }
    }
}

/// A configuration already explored, exact and compact: the register, one
/// past the highest linearized operation, and the operations below it not
/// yet linearized. The search linearizes roughly in time order, so that
/// list holds only the operations still in flight.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MemoKey {
    state: Register,
    end: u32,
    pending: Box<[u32]>,
}

impl MemoKey {
    fn new(linearized: &[u64], state: Register) -> Self {
        let Some(top_word) = linearized.iter().rposition(|&w| w != 0) else {
            return MemoKey {
                state,
                end: 0,
                pending: Box::new([]),
            };
        };
        let end = top_word * 64 + 64 - linearized[top_word].leading_zeros() as usize;
        let mut pending = Vec::new();
        for (w, &word) in linearized[..=top_word].iter().enumerate() {
            let mut missing = !word;
            if w == top_word {
                missing &= (1u64 << (end - w * 64 - 1)) - 1;
            }
            while missing != 0 {
                pending.push((w * 64) as u32 + missing.trailing_zeros());
                missing &= missing - 1;
            }
        }
        MemoKey {
            state,
            end: end as u32,
            pending: pending.into_boxed_slice(),
        }
    }
}

/// The Fx hash (rustc's): the memo keys are small integers, for which
/// SipHash's flood resistance only costs time.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The history restricted to what happened up to `cutoff`, with only the
/// operations marked in `strict` held to their interval: the other `Ok`
/// writes become optional and the other reads are dropped. Both changes
/// only make a history easier to linearize, so a refutation of the result
/// refutes the whole history.
fn relaxed(ops: &[RegOp], strict: &[bool], cutoff: u64) -> Vec<RegOp> {
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        if op.call > cutoff {
            continue;
        }
        if !op.must_apply || (strict[i] && op.ret <= cutoff) {
            out.push(*op);
        } else if op.f.written().is_some() {
            out.push(RegOp {
                must_apply: false,
                ret: u64::MAX,
                ..*op
            });
        }
    }
    prune(out)
}

/// The anomaly of a key known not to be linearizable, with a small witness.
fn explain(key: &str, ops: &[RegOp], budget: &mut u64) -> Anomaly {
    let mut refuted = |strict: &[bool], cutoff: u64| {
        search(&relaxed(ops, strict, cutoff), budget) == Search::Refuted
    };
    let mut mandatory: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].must_apply).collect();
    mandatory.sort_by_key(|&i| (ops[i].ret, ops[i].call));
    let all: Vec<bool> = ops.iter().map(|op| op.must_apply).collect();

    // The shortest prefix (by return time) that cannot be linearized; the
    // whole history is known not to be. An exhausted search counts as "not
    // refuted", which only makes the witness longer.
    let (mut lo, mut hi) = (1, mandatory.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if refuted(&all, ops[mandatory[mid - 1]].ret) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let Some(&stuck) = mandatory.get(hi.wrapping_sub(1)) else {
        // Unreachable for a refuted history (it has a mandatory operation),
        // but a report beats a panic.
        return Anomaly {
            kind: "nonlinearizable".into(),
            explanation: format!("key {key:?} is not linearizable"),
            ops: ops.iter().map(|op| op.index).collect(),
        };
    };
    let cutoff = ops[stuck].ret;

    if let Some(anomaly) = stale_read(key, ops, stuck) {
        return anomaly;
    }

    // Shrink: relax the oldest operations in one go, then the rest one at a
    // time, keeping each relaxation that still leaves no linearization.
    let mut strict: Vec<bool> = ops
        .iter()
        .map(|op| op.must_apply && op.ret <= cutoff)
        .collect();
    let others: Vec<usize> = mandatory
        .iter()
        .copied()
        .filter(|&i| i != stuck && strict[i])
        .collect();
    let relax_oldest = |count: usize, strict: &mut Vec<bool>| {
        for &i in &others {
            strict[i] = ops[i].must_apply && ops[i].ret <= cutoff;
        }
        for &i in &others[..count] {
            strict[i] = false;
        }
    };
    let (mut lo, mut hi) = (0, others.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        relax_oldest(mid, &mut strict);
        if refuted(&strict, cutoff) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    relax_oldest(lo, &mut strict);
    for &i in &others[lo..] {
        strict[i] = false;
        if !refuted(&strict, cutoff) {
            strict[i] = true;
        }
    }

    let mut witness: Vec<usize> = (0..ops.len()).filter(|&i| strict[i]).collect();
    // The writers of the values the witness's reads saw belong to the story
    // even when their timing alone is not what makes it impossible.
    let read_values: Vec<Option<i64>> = witness
        .iter()
        .filter_map(|&i| match ops[i].f {
            RegFn::Read(seen) => Some(seen),
            _ => None,
        })
        .collect();
    for (i, op) in ops.iter().enumerate() {
        if !witness.contains(&i)
            && op
                .f
                .written()
                .is_some_and(|v| read_values.contains(&Some(v)))
        {
            witness.push(i);
        }
    }
    witness.sort_by_key(|&i| (ops[i].call, i));
    let listed: Vec<String> = witness
        .iter()
        .map(|&i| format!("op {} ({})", ops[i].index, ops[i].f.describe()))
        .collect();
    Anomaly {
        kind: "nonlinearizable".into(),
        explanation: format!(
            "key {key:?}: no order of {} respects both their real-time order and a \
             register's semantics; the search gets stuck at op {} ({})",
            listed.join(", "),
            ops[stuck].index,
            ops[stuck].f.describe(),
        ),
        ops: witness.iter().map(|&i| ops[i].index).collect(),
    }
}

/// The classic stale read, explained with three operations: `stuck` read a
/// value, yet a write of another value completed before the read started,
/// and every write of the value read had completed before that write began.
fn stale_read(key: &str, ops: &[RegOp], stuck: usize) -> Option<Anomaly> {
    let read = &ops[stuck];
    let RegFn::Read(seen) = read.f else {
        return None;
    };
    let writers: Vec<usize> = (0..ops.len())
        .filter(|&i| seen.is_some() && ops[i].f.written() == seen)
        .collect();
    let newer = (0..ops.len())
        .filter(|&i| {
            let op = &ops[i];
            op.must_apply
                && op.f.written().is_some_and(|v| Some(v) != seen)
                && op.ret < read.call
                && writers.iter().all(|&w| ops[w].ret < op.call)
        })
        .max_by_key(|&i| ops[i].ret)?;
    let shown = |v: Option<i64>| v.map_or("nil".to_string(), |v| v.to_string());
    let origin = match writers.as_slice() {
        [] => "nil is only the initial state".to_string(),
        _ => format!(
            "every write of {} (op {}) had completed before op {} started",
            shown(seen),
            writers
                .iter()
                .map(|&w| ops[w].index.to_string())
                .collect::<Vec<_>>()
                .join(", op "),
            ops[newer].index
        ),
    };
    let mut witness: Vec<OpIndex> = writers.iter().map(|&w| ops[w].index).collect();
    witness.push(ops[newer].index);
    witness.push(read.index);
    Some(Anomaly {
        kind: "nonlinearizable".into(),
        explanation: format!(
            "stale read of key {key:?}: op {} read {}, but op {} ({}) had completed \
             before it started, and {origin}",
            read.index,
            shown(seen),
            ops[newer].index,
            ops[newer].f.describe(),
        ),
        ops: witness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use crate::chaos::history::Op;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn read(value: Option<i64>) -> OpKind {
        OpKind::RegRead {
            key: "k".into(),
            value,
        }
    }
    fn write(value: i64) -> OpKind {
        OpKind::RegWrite {
            key: "k".into(),
            value,
        }
    }
    fn cas(from: i64, to: i64) -> OpKind {
        OpKind::RegCas {
            key: "k".into(),
            from,
            to,
        }
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops })
    }

    #[test]
    fn stale_read_is_caught_with_the_three_ops_that_show_it() {
        let v = verdict(vec![
            ok(1, 0, 10, write(1)),
            ok(2, 5, 8, read(None)),
            ok(1, 20, 30, write(2)),
            ok(3, 40, 50, read(Some(1))),
        ]);
        assert!(!v.valid);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 2, 3]);
        assert!(
            v.anomalies[0].explanation.starts_with("stale read"),
            "{v:?}"
        );
    }

    #[test]
    fn nil_after_a_completed_write_is_a_stale_read() {
        let v = verdict(vec![ok(1, 0, 10, write(1)), ok(2, 11, 20, read(None))]);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 1]);
        assert!(v.anomalies[0].explanation.starts_with("stale read"));
    }

    #[test]
    fn concurrent_writes_and_reads_may_be_ordered_either_way() {
        let v = verdict(vec![
            ok(1, 0, 100, write(1)),
            ok(2, 10, 90, write(2)),
            ok(3, 20, 30, read(Some(2))),
            ok(4, 40, 50, read(Some(1))),
            ok(3, 95, 99, read(Some(1))),
        ]);
        assert!(v.valid, "{v:?}");
        assert_eq!((v.ok, v.fail, v.info), (5, 0, 0));
    }

    #[test]
    fn reads_that_flip_back_are_not_linearizable() {
        // Two writes overlap, but readers that finished in sequence saw 1,
        // then 2, then 1 again: whichever write went second, one reader is
        // wrong.
        let v = verdict(vec![
            ok(1, 0, 100, write(1)),
            ok(2, 0, 100, write(2)),
            ok(3, 10, 20, read(Some(1))),
            ok(3, 30, 40, read(Some(2))),
            ok(3, 50, 60, read(Some(1))),
        ]);
        assert!(!v.valid);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 1, 2, 3, 4]);
        assert!(
            v.anomalies[0].explanation.contains("stuck at op 4"),
            "{v:?}"
        );
    }

    #[test]
    fn a_read_of_a_value_written_later_is_caught() {
        let v = verdict(vec![ok(1, 0, 10, read(Some(7))), ok(2, 20, 30, write(7))]);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 1]);
    }

    #[test]
    fn an_info_write_may_take_effect_late_or_never() {
        let v = verdict(vec![
            ok(1, 0, 10, write(1)),
            info(2, 5, write(2)),
            ok(3, 20, 30, read(Some(1))),
            ok(3, 500, 510, read(Some(2))),
            info(4, 600, write(3)),
            ok(3, 700, 710, read(Some(2))),
            info(5, 800, read(None)),
        ]);
        assert!(v.valid, "{v:?}");
        assert_eq!((v.ok, v.fail, v.info), (4, 0, 3));
    }

    #[test]
    fn an_info_write_cannot_be_seen_before_it_started() {
        let v = verdict(vec![ok(1, 0, 10, read(Some(2))), info(2, 20, write(2))]);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 1]);
    }

    #[test]
    fn compare_and_set_follows_the_register() {
        let valid = verdict(vec![
            ok(1, 0, 10, write(1)),
            ok(2, 20, 30, cas(1, 2)),
            fail(3, 35, 40, cas(1, 3)),
            ok(1, 50, 60, read(Some(2))),
        ]);
        assert!(valid.valid, "{valid:?}");
        assert_eq!((valid.ok, valid.fail), (3, 1));

        let swapped_a_replaced_value = verdict(vec![
            ok(1, 0, 10, write(1)),
            ok(1, 20, 30, write(5)),
            ok(2, 40, 50, cas(1, 2)),
        ]);
        assert_eq!(
            ops_of(&swapped_a_replaced_value, "nonlinearizable"),
            vec![0, 1, 2]
        );

        let swapped_a_value_never_written =
            verdict(vec![ok(1, 0, 10, write(5)), ok(2, 20, 30, cas(1, 2))]);
        assert_eq!(
            ops_of(&swapped_a_value_never_written, "nonlinearizable"),
            vec![1]
        );
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let v = verdict(vec![
            ok(1, 0, 10, write(1)),
            ok(1, 20, 30, write(2)),
            ok(2, 40, 50, read(Some(1))),
        ]);
        assert_eq!(ops_of(&v, "nonlinearizable"), vec![0, 1, 2]);
    }

    #[test]
    fn keys_are_checked_independently() {
        let other = |value| OpKind::RegRead {
            key: "other".into(),
            value,
        };
        let v = verdict(vec![
            ok(1, 0, 10, write(1)),
            ok(2, 20, 30, other(None)),
            ok(2, 40, 50, read(Some(1))),
        ]);
        assert!(v.valid, "{v:?}");
    }

    #[test]
    fn malformed_times_do_not_panic() {
        let mut odd = ok(1, 50, 10, write(1));
        odd.end_ns = Some(10);
        let mut open_ok = ok(2, 0, 0, read(Some(1)));
        open_ok.end_ns = None;
        let v = verdict(vec![odd, open_ok, ok(3, u64::MAX, u64::MAX, read(None))]);
        assert_eq!(v.ok, 3);
    }

    #[test]
    fn an_exhausted_search_is_unknown_not_valid() {
        let history = simulate(7, 200, 1, 5, 0.05);
        let v = check_with_budget(&history, 10, 10);
        assert!(v.unknown && !v.valid, "{v:?}");
    }

    #[test]
    fn simulated_histories_pass() {
        for seed in 0..20 {
            let history = simulate(seed, 500, 2, 6, 0.05);
            let v = check(&history);
            assert!(v.valid, "seed {seed}: {v:#?}");
        }
    }

    #[test]
    fn ten_thousand_simulated_ops_check_in_seconds() {
        let history = simulate(42, 10_000, 5, 10, 0.03);
        let started = std::time::Instant::now();
        let v = check(&history);
        println!(
            "register: {} ops ({} ok, {} fail, {} info) checked in {:?}",
            history.ops.len(),
            v.ok,
            v.fail,
            v.info,
            started.elapsed()
        );
        assert!(v.valid, "{v:#?}");
    }

    #[test]
    fn a_hot_key_with_twenty_clients_and_info_ops_is_decided() {
        let history = simulate(3, 10_000, 1, 20, 0.05);
        let v = check(&history);
        assert!(v.valid, "{v:#?}");
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = StdRng::seed_from_u64(17);
        let (mut valid, mut invalid) = (0, 0);
        for case in 0..20_000 {
            let ops: Vec<Op> = (0..rng.gen_range(1..=7))
                .map(|p| {
                    let start = rng.gen_range(0..40);
                    let end = start + rng.gen_range(0..25);
                    let small = |rng: &mut StdRng| rng.gen_range(1..=3);
                    let kind = match rng.gen_range(0..10) {
                        0..=3 => read(if rng.gen_bool(0.2) {
                            None
                        } else {
                            Some(small(&mut rng))
                        }),
                        4..=7 => write(small(&mut rng)),
                        _ => cas(small(&mut rng), small(&mut rng)),
                    };
                    match rng.gen_range(0..10) {
                        0 => info(p, start, kind),
                        1 => fail(p, start, end, kind),
                        _ => ok(p, start, end, kind),
                    }
                })
                .collect();
            let history = History { ops };
            let expected = brute_force(&history);
            let v = check(&history);
            assert_eq!(v.valid, expected, "case {case}: {history:#?} {v:#?}");
            if expected {
                valid += 1;
            } else {
                invalid += 1;
                // The witness alone must still be impossible.
                let witness = History {
                    ops: v.anomalies[0]
                        .ops
                        .iter()
                        .map(|&i| history.ops[i].clone())
                        .collect(),
                };
                assert!(!brute_force(&witness), "case {case}: {history:#?} {v:#?}");
            }
        }
        assert!(
            valid > 1_000 && invalid > 1_000,
            "{valid} valid, {invalid} invalid"
        );
    }

    /// Every order of every choice of optional operations, the obvious way.
    fn brute_force(history: &History) -> bool {
        let mut mandatory = Vec::new();
        let mut optional = Vec::new();
        for op in &history.ops {
            let f = match &op.kind {
                OpKind::RegRead { value, .. } => RegFn::Read(*value),
                OpKind::RegWrite { value, .. } => RegFn::Write(*value),
                OpKind::RegCas { from, to, .. } => RegFn::Cas {
                    from: *from,
                    to: *to,
                },
                _ => continue,
            };
            match (op.outcome, f) {
                (Outcome::Ok, _) => mandatory.push((op.start_ns, end_of(op), f)),
                (Outcome::Info, RegFn::Write(_) | RegFn::Cas { .. }) => {
                    optional.push((op.start_ns, u64::MAX, f))
                }
                _ => {}
            }
        }
        fn extend(left: &[(u64, u64, RegFn)], value: Option<i64>) -> bool {
            if left.is_empty() {
                return true;
            }
            (0..left.len()).any(|i| {
                let (call, _, f) = left[i];
                let blocked = left.iter().any(|&(_, ret, _)| ret < call);
                let after = match f {
                    RegFn::Read(seen) => (seen == value).then_some(value),
                    RegFn::Write(v) => Some(Some(v)),
                    RegFn::Cas { from, to } => (value == Some(from)).then_some(Some(to)),
                };
                let mut rest = left.to_vec();
                rest.remove(i);
                !blocked && after.is_some_and(|after| extend(&rest, after))
            })
        }
        (0..1u32 << optional.len()).any(|chosen| {
            let mut ops = mandatory.clone();
            for (i, op) in optional.iter().enumerate() {
                if chosen & (1 << i) != 0 {
                    ops.push(*op);
                }
            }
            extend(&ops, None)
        })
    }

    #[test]
    fn simulated_histories_with_an_injected_stale_read_fail() {
        for seed in 0..10 {
            let mut history = simulate(seed, 2_000, 3, 8, 0.03);
            let stale = inject_stale_read(&mut history).expect("a read to corrupt");
            let v = check(&history);
            assert_eq!(kinds(&v), vec!["nonlinearizable"], "seed {seed}: {v:#?}");
            assert!(v.anomalies[0].ops.contains(&stale), "seed {seed}: {v:#?}");
            assert!(v.anomalies[0].explanation.starts_with("stale read"));
        }
    }

    /// A history of an atomic register: each operation takes effect at one
    /// instant inside its interval. Values are unique; a compare-and-set
    /// expects one of the key's recent values. An `Info` operation takes
    /// effect (possibly long after its client gave up) or not at all.
    fn simulate(seed: u64, count: usize, keys: usize, processes: usize, info_rate: f64) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(processes);
        let mut recent: Vec<Vec<i64>> = vec![Vec::new(); keys];
        let mut next_value = 1;
        // (op, effect time, applied if info)
        let mut planned: Vec<(Op, u64, bool)> = Vec::with_capacity(count);
        for _ in 0..count {
            let slot = clock.next(&mut rng);
            let key = rng.gen_range(0..keys);
            let name = format!("k{key}");
            let roll = rng.gen_range(0..100);
            let kind = if roll < 50 {
                OpKind::RegRead {
                    key: name,
                    value: None,
                }
            } else {
                next_value += 1;
                recent[key].push(next_value);
                if roll < 80 || recent[key].len() < 2 {
                    OpKind::RegWrite {
                        key: name,
                        value: next_value,
                    }
                } else {
                    let back = rng.gen_range(2..=recent[key].len().min(4));
                    OpKind::RegCas {
                        key: name,
                        from: recent[key][recent[key].len() - back],
                        to: next_value,
                    }
                }
            };
            let mut op = ok(slot.process, slot.start, slot.end, kind);
            let mut effect = slot.effect;
            let mut applied = true;
            if rng.gen_bool(info_rate) {
                op.outcome = Outcome::Info;
                op.end_ns = None;
                applied = rng.gen_bool(0.5);
                effect = slot.start + rng.gen_range(1..2_000);
            }
            planned.push((op, effect, applied));
        }
        planned.sort_by_key(|(_, effect, _)| *effect);
        let mut values: BTreeMap<String, i64> = BTreeMap::new();
        for (op, _, applied) in &mut planned {
            let info = op.outcome == Outcome::Info;
            match &mut op.kind {
                OpKind::RegRead { key, value } if !info => *value = values.get(key).copied(),
                OpKind::RegWrite { key, value } if *applied => {
                    values.insert(key.clone(), *value);
                }
                OpKind::RegCas { key, from, to } => {
                    let swapped = values.get(key) == Some(from);
                    if swapped && *applied {
                        values.insert(key.clone(), *to);
                    } else if !swapped && !info {
                        op.outcome = Outcome::Fail;
                    }
                }
                _ => {}
            }
        }
        let mut ops: Vec<Op> = planned.into_iter().map(|(op, _, _)| op).collect();
        ops.sort_by_key(|op| op.start_ns);
        History { ops }
    }

    /// Makes a late read return the value of a write that a later,
    /// completed write had replaced before the read began. Returns its index.
    fn inject_stale_read(history: &mut History) -> Option<OpIndex> {
        let written = |op: &Op| match (&op.kind, op.outcome) {
            (OpKind::RegWrite { key, value }, Outcome::Ok) => Some((key.clone(), *value)),
            _ => None,
        };
        for r in (0..history.ops.len()).rev() {
            let reader = &history.ops[r];
            let OpKind::RegRead { key, .. } = &reader.kind else {
                continue;
            };
            if reader.outcome != Outcome::Ok {
                continue;
            }
            let before = |limit: u64| {
                history
                    .ops
                    .iter()
                    .filter(|op| written(op).is_some_and(|(k, _)| &k == key))
                    .filter(|op| op.end_ns.is_some_and(|end| end < limit))
                    .max_by_key(|op| op.end_ns)
            };
            let Some(newer) = before(reader.start_ns) else {
                continue;
            };
            let Some(older) = before(newer.start_ns) else {
                continue;
            };
            let stale = written(older).map(|(_, v)| v);
            if let OpKind::RegRead { value, .. } = &mut history.ops[r].kind {
                *value = stale;
            }
            return Some(r);
        }
        None
    }
}
