//! List-append transactions checked the way Elle checks them.
//!
//! Every append writes a value unique to its key, so a read of a list names
//! the transactions it observed and in which order. The longest read of a
//! key gives that key's version order (every other read must be a prefix of
//! it). From the orders come the dependencies between committed
//! transactions: ww (an append follows another in a key's order), wr (a
//! read observed an append), rw (a read missed the append that came next),
//! plus real-time edges (one transaction completed before the other
//! began). A cycle in that graph is an anomaly, named after the edges it
//! needs (G0, G1c, G-single, G2, with `-realtime` when it needs real-time
//! edges too). Because of the real-time edges, an acyclic graph means the
//! history is strict serializable as far as the reads can tell.
//!
//! Checked besides the cycles: reads that are not prefixes of each other
//! (`incompatible-order`), reads of failed transactions' appends (G1a), of
//! a transaction's intermediate state (G1b), of values never appended
//! (`garbage-read`), duplicated elements, a read inside a transaction that
//! misses its own appends (`internal`), and acknowledged appends that no
//! read ever saw although a read began after they completed
//! (`lost-append`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::graph::{Graph, Mask};
use super::{end_of, precedes, preview, Counts, Report};
use crate::chaos::history::{History, Mop, Op, OpIndex, OpKind, Outcome, Verdict};

const WW: Mask = 1;
const WR: Mask = 2;
const RW: Mask = 4;
const RT: Mask = 8;

/// Breadth-first searches allowed per component when looking for a cycle
/// with a single anti-dependency; past that, a cycle is reported as G2.
const SINGLE_RW_ATTEMPTS: usize = 1_000;

pub fn check(history: &History) -> Verdict {
    let mut counts = Counts::default();
    let txns: Vec<(OpIndex, &Op, &[Mop])> = history
        .ops
        .iter()
        .enumerate()
        .filter_map(|(index, op)| match &op.kind {
            OpKind::Txn { mops } => {
                counts.add(op.outcome);
                Some((index, op, mops.as_slice()))
            }
            _ => None,
        })
        .collect();

    let mut report = Report::default();
    let appends = index_appends(&txns);
    let reads: Vec<Read> = txns
        .iter()
        .filter(|(_, op, _)| op.outcome == Outcome::Ok)
        .flat_map(|&(txn, _, mops)| {
            mops.iter().filter_map(move |mop| match mop {
                Mop::Read {
                    key,
                    value: Some(values),
                } => Some(Read { txn, key, values }),
                _ => None,
            })
        })
        .collect();

    check_internal(&txns, &mut report);
    let orders = VersionOrders::infer(&reads, &mut report);
    check_elements(history, &reads, &orders, &appends, &mut report);
    let observed = orders.observed(&reads);
    check_lost(history, &txns, &reads, &observed, &mut report);
    check_cycles(
        history,
        &txns,
        &reads,
        &appends,
        &orders,
        &observed,
        &mut report,
    );
    counts.verdict(report.anomalies, false)
}

/// Who appended a value to a key.
#[derive(Debug, Clone, Copy)]
struct Append {
    txn: OpIndex,
    outcome: Outcome,
    /// Whether it was the transaction's last append to that key; a read
    /// ending on an earlier one saw the transaction half done.
    last_in_txn: bool,
}

/// One list read by a committed transaction.
#[derive(Debug, Clone, Copy)]
struct Read<'a> {
    txn: OpIndex,
    key: &'a str,
    values: &'a [u64],
}

/// The writer of every (key, value). Values are unique per key; should a
/// workload repeat one, the first append keeps it.
fn index_appends<'a>(txns: &[(OpIndex, &'a Op, &'a [Mop])]) -> HashMap<(&'a str, u64), Append> {
    let mut appends = HashMap::new();
    for &(txn, op, mops) in txns {
        let mut last: HashMap<&str, u64> = HashMap::new();
        for mop in mops {
            if let Mop::Append { key, value } = mop {
                last.insert(key, *value);
            }
        }
        for mop in mops {
            if let Mop::Append { key, value } = mop {
                appends.entry((key.as_str(), *value)).or_insert(Append {
                    txn,
                    outcome: op.outcome,
                    last_in_txn: last.get(key.as_str()) == Some(value),
                });
            }
        }
    }
    appends
}

/// A committed transaction must see its own appends: after reading a key
/// and appending to it, its next read is exactly that plus the appends;
/// without an earlier read, its read ends with its appends.
fn check_internal(txns: &[(OpIndex, &Op, &[Mop])], report: &mut Report) {
    for &(txn, op, mops) in txns {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let mut known: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut own: HashMap<&str, Vec<u64>> = HashMap::new();
        for mop in mops {
            match mop {
                Mop::Append { key, value } => {
                    own.entry(key).or_default().push(*value);
                    if let Some(list) = known.get_mut(key.as_str()) {
                        list.push(*value);
                    }
                }
                Mop::Read {
                    key,
                    value: Some(values),
                } => {
                    let expected = known.get(key.as_str());
                    let mine = own.get(key.as_str()).map_or(&[][..], |v| v.as_slice());
                    let consistent = match expected {
                        Some(list) => list == values,
                        None => values.ends_with(mine),
                    };
                    if !consistent {
                        let wanted = match expected {
                            Some(list) => format!("[{}]", preview(list)),
                            None => format!("a list ending with [{}]", preview(mine)),
                        };
                        report.push(
                            "internal",
                            vec![txn],
                            format!(
                                "op {txn} read key {key:?} as [{}] but its own earlier \
                                 operations imply {wanted}",
                                preview(values)
                            ),
                        );
                        break;
                    }
                    known.insert(key, values.clone());
                }
                Mop::Read { value: None, .. } => {}
            }
        }
    }
}

/// What the reads contain, element by element: duplicates, values never
/// appended, values of failed transactions (G1a), and a list ending on a
/// transaction's non-final append (G1b). Reads that are prefixes of their
/// key's order are covered by walking the order once, each finding charged
/// to the earliest read that contains it; the other reads are walked whole.
fn check_elements(
    history: &History,
    reads: &[Read],
    orders: &VersionOrders,
    appends: &HashMap<(&str, u64), Append>,
    report: &mut Report,
) {
    // (reader, key) -> what it saw that it should not have.
    let mut findings: BTreeMap<(OpIndex, &str), Findings> = BTreeMap::new();
    let mut inspect = |reader: OpIndex, key, value, earlier: &mut HashSet<u64>| {
        let found = findings.entry((reader, key)).or_default();
        if !earlier.insert(value) {
            found.duplicated.push(value);
        }
        match appends.get(&(key, value)) {
            None => found.garbage.push(value),
            Some(append) if append.outcome == Outcome::Fail => {
                found.aborted.entry(append.txn).or_default().push(value)
            }
            Some(_) => {}
        }
    };

    let mut keys: Vec<&str> = orders.order.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let order = orders.order[key];
        // The earliest-starting compatible read covering each position.
        let mut by_start: Vec<&Read> = reads
            .iter()
            .zip(&orders.compatible)
            .filter(|(r, ok)| **ok && r.key == key)
            .map(|(r, _)| r)
            .collect();
        by_start.sort_by_key(|r| (history.ops[r.txn].start_ns, r.txn));
        let mut covered = 0;
        let mut earlier = HashSet::new();
        for read in by_start {
            for &value in &order[covered.min(read.values.len())..read.values.len()] {
                inspect(read.txn, key, value, &mut earlier);
            }
            covered = covered.max(read.values.len());
        }
    }
    for (read, _) in reads.iter().zip(&orders.compatible).filter(|(_, ok)| !**ok) {
        let mut earlier = HashSet::new();
        for &value in read.values {
            inspect(read.txn, read.key, value, &mut earlier);
        }
    }

    for ((reader, key), found) in findings {
        if !found.duplicated.is_empty() {
            let mut ops = vec![reader];
            ops.extend(
                found
                    .duplicated
                    .iter()
                    .filter_map(|&v| appends.get(&(key, v)).map(|a| a.txn))
                    .collect::<BTreeSet<_>>(),
            );
            report.push(
                "duplicate-elements",
                ops,
                format!(
                    "op {reader} read key {key:?} with {} appearing more than once",
                    preview(&found.duplicated)
                ),
            );
        }
        if !found.garbage.is_empty() {
            report.push(
                "garbage-read",
                vec![reader],
                format!(
                    "op {reader} read key {key:?} containing {}, never appended to it",
                    preview(&found.garbage)
                ),
            );
        }
        for (writer, values) in found.aborted {
            report.push(
                "G1a",
                vec![writer, reader],
                format!(
                    "aborted read: op {reader} read key {key:?} containing {} appended by \
                     op {writer}, which failed",
                    preview(&values)
                ),
            );
        }
    }

    for read in reads {
        let key = read.key;
        let Some(&last) = read.values.last() else {
            continue;
        };
        if let Some(append) = appends.get(&(key, last)) {
            if append.outcome != Outcome::Fail && !append.last_in_txn && append.txn != read.txn {
                report.push(
                    "G1b",
                    vec![append.txn, read.txn],
                    format!(
                        "intermediate read: op {} read key {key:?} ending with {last}, but op \
                         {} appended more to it after {last}",
                        read.txn, append.txn
                    ),
                );
            }
        }
    }
}

/// Elements one read should not have seen.
#[derive(Default)]
struct Findings {
    duplicated: Vec<u64>,
    garbage: Vec<u64>,
    /// By the failed transaction that appended them.
    aborted: BTreeMap<OpIndex, Vec<u64>>,
}

/// Each key's order of appends, taken from its longest read.
struct VersionOrders<'a> {
    order: HashMap<&'a str, &'a [u64]>,
    /// Per read: whether it is a prefix of its key's order. Reads that are
    /// not were reported and give no dependencies.
    compatible: Vec<bool>,
}

impl<'a> VersionOrders<'a> {
    fn infer(reads: &[Read<'a>], report: &mut Report) -> Self {
        let mut longest: HashMap<&str, Read> = HashMap::new();
        for read in reads {
            let best = longest.entry(read.key).or_insert(*read);
            if read.values.len() > best.values.len() {
                *best = *read;
            }
        }
        let compatible = reads
            .iter()
            .map(|read| {
                let reference = &longest[read.key];
                let prefix = reference.values.starts_with(read.values);
                if !prefix {
                    report.push(
                        "incompatible-order",
                        vec![read.txn, reference.txn],
                        format!(
                            "reads of key {:?} disagree on its order: op {} saw [{}] and op {} \
                             saw [{}]; one should be a prefix of the other",
                            read.key,
                            read.txn,
                            preview(read.values),
                            reference.txn,
                            preview(reference.values)
                        ),
                    );
                }
                prefix
            })
            .collect();
        VersionOrders {
            order: longest.into_iter().map(|(k, r)| (k, r.values)).collect(),
            compatible,
        }
    }

    /// Every (key, value) some read saw: the orders hold all that the
    /// compatible reads saw.
    fn observed(&self, reads: &[Read<'a>]) -> HashSet<(&'a str, u64)> {
        let mut observed: HashSet<(&str, u64)> = self
            .order
            .iter()
            .flat_map(|(&key, values)| values.iter().map(move |&v| (key, v)))
            .collect();
        for (read, _) in reads.iter().zip(&self.compatible).filter(|(_, ok)| !**ok) {
            observed.extend(read.values.iter().map(|&v| (read.key, v)));
        }
        observed
    }
}

/// An acknowledged append that no read ever saw, although a read of its key
/// began after it completed.
fn check_lost(
    history: &History,
    txns: &[(OpIndex, &Op, &[Mop])],
    reads: &[Read],
    observed: &HashSet<(&str, u64)>,
    report: &mut Report,
) {
    let mut reads_of: HashMap<&str, Vec<&Read>> = HashMap::new();
    for read in reads {
        reads_of.entry(read.key).or_default().push(read);
    }
    for &(txn, op, mops) in txns {
        if op.outcome != Outcome::Ok {
            continue;
        }
        for mop in mops {
            let Mop::Append { key, value } = mop else {
                continue;
            };
            if observed.contains(&(key.as_str(), *value)) {
                continue;
            }
            let later = reads_of
                .get(key.as_str())
                .into_iter()
                .flatten()
                .filter(|r| precedes(op, &history.ops[r.txn]))
                .max_by_key(|r| history.ops[r.txn].start_ns);
            if let Some(read) = later {
                report.push(
                    "lost-append",
                    vec![txn, read.txn],
                    format!(
                        "op {txn} appended {value} to key {key:?} and completed, yet op {} \
                         began later and read [{}] without it, and no read ever saw it",
                        read.txn,
                        preview(read.values)
                    ),
                );
            }
        }
    }
}

/// Builds the dependency graph and reports one cycle per strongly
/// connected component: the most telling one (fewest anti-dependencies,
/// real-time edges only if needed).
fn check_cycles(
    history: &History,
    txns: &[(OpIndex, &Op, &[Mop])],
    reads: &[Read],
    appends: &HashMap<(&str, u64), Append>,
    orders: &VersionOrders,
    observed: &HashSet<(&str, u64)>,
    report: &mut Report,
) {
    // Committed transactions, and unknown ones whose appends were seen.
    let observed: HashSet<OpIndex> = observed
        .iter()
        .filter_map(|key_value| appends.get(key_value))
        .map(|a| a.txn)
        .collect();
    let nodes: Vec<OpIndex> = txns
        .iter()
        .filter(|(txn, op, _)| {
            op.outcome == Outcome::Ok || (op.outcome == Outcome::Info && observed.contains(txn))
        })
        .map(|&(txn, _, _)| txn)
        .collect();
    let node_of: HashMap<OpIndex, usize> = nodes.iter().enumerate().map(|(n, &t)| (t, n)).collect();
    let mut graph = Graph::new(nodes.len());
    let mut edge_keys: HashMap<(usize, usize, Mask), &str> = HashMap::new();
    let mut link = |from: OpIndex, to: OpIndex, types: Mask, key| {
        if let (Some(&a), Some(&b)) = (node_of.get(&from), node_of.get(&to)) {
            graph.add(a, b, types);
            edge_keys.entry((a, b, types)).or_insert(key);
        }
    };
    let writer = |key: &str, value: u64| {
        appends
            .get(&(key, value))
            .map(|a| a.txn)
            .filter(|t| node_of.contains_key(t))
    };

    let mut keys: Vec<&&str> = orders.order.keys().collect();
    keys.sort();
    for &&key in &keys {
        let writers: Vec<OpIndex> = orders.order[key]
            .iter()
            .filter_map(|&v| writer(key, v))
            .collect();
        for pair in writers.windows(2) {
            link(pair[0], pair[1], WW, key);
        }
    }
    for (read, _) in reads.iter().zip(&orders.compatible).filter(|(_, ok)| **ok) {
        let seen_from = read
            .values
            .iter()
            .rev()
            .filter_map(|&v| writer(read.key, v))
            .find(|&w| w != read.txn);
        if let Some(w) = seen_from {
            link(w, read.txn, WR, read.key);
        }
        let order = orders.order[read.key];
        let missed = order
            .get(read.values.len()..)
            .unwrap_or_default()
            .iter()
            .find_map(|&v| writer(read.key, v));
        if let Some(w) = missed.filter(|&w| w != read.txn) {
            link(read.txn, w, RW, read.key);
        }
    }
    for (from, to) in realtime_edges(history, &nodes) {
        graph.add(from, to, RT);
    }

    let everything = vec![true; graph.len()];
    for component in graph.components(WW | WR | RW | RT, &everything) {
        let Some(cycle) = telling_cycle(&graph, &component) else {
            continue;
        };
        let kind = classify(&cycle);
        let mut steps = String::new();
        for (i, &(node, label)) in cycle.iter().enumerate() {
            let to = cycle[(i + 1) % cycle.len()].0;
            let key = edge_keys
                .get(&(node, to, label))
                .map(|k| format!(" {k:?}"))
                .unwrap_or_default();
            steps.push_str(&format!("op {} -{}{key}-> ", nodes[node], name(label)));
        }
        steps.push_str(&format!("op {}", nodes[cycle[0].0]));
        report.push(
            &kind,
            cycle.iter().map(|&(node, _)| nodes[node]).collect(),
            format!("{}: {steps}", describe(&kind)),
        );
    }
}

/// Real-time order, transitively reduced: `a -> b` when `a` completed
/// before `b` began and no transaction fits between them. A sweep keeps the
/// frontier of completed transactions not yet followed by another one; a
/// transaction that begins follows all of them.
fn realtime_edges(history: &History, nodes: &[OpIndex]) -> Vec<(usize, usize)> {
    let op = |node: usize| &history.ops[nodes[node]];
    // (time, 0 = begins / 1 = completes, node): at equal times beginnings
    // come first, as touching intervals are concurrent.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * nodes.len());
    for node in 0..nodes.len() {
        events.push((op(node).start_ns, 0, node));
        if op(node).outcome == Outcome::Ok {
            events.push((end_of(op(node)), 1, node));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<usize> = Vec::new();
    let mut edges = Vec::new();
    for (_, completes, node) in events {
        if completes == 0 {
            edges.extend(frontier.iter().map(|&before| (before, node)));
        } else {
            frontier.retain(|&before| !precedes(op(before), op(node)));
            frontier.push(node);
        }
    }
    edges
}

/// A cycle in a strongly connected component, as (node, type of the edge
/// to the next node): the most precise explanation found. Fewest
/// anti-dependencies first (none, then one, then any), and for each, a
/// cycle without real-time edges before one that needs them; so a stale
/// read shows as the one append it missed, G-single-realtime, even when
/// the same component also holds longer G2 cycles.
fn telling_cycle(graph: &Graph, component: &[usize]) -> Option<Vec<(usize, Mask)>> {
    let mut within = vec![false; graph.len()];
    for &node in component {
        within[node] = true;
    }
    for allowed in [WW, WW | WR, WW | RT, WW | WR | RT] {
        if let Some(cycle) = cycle_in(graph, allowed, &within) {
            return Some(cycle);
        }
    }
    for base in [WW | WR, WW | WR | RT] {
        if let Some(cycle) = single_rw_cycle(graph, base, &within, component) {
            return Some(cycle);
        }
    }
    for allowed in [WW | WR | RW, WW | WR | RW | RT] {
        if let Some(cycle) = cycle_in(graph, allowed, &within) {
            return Some(cycle);
        }
    }
    None
}

/// A short cycle using only `allowed` edges, if any.
fn cycle_in(graph: &Graph, allowed: Mask, within: &[bool]) -> Option<Vec<(usize, Mask)>> {
    const STARTS: usize = 16;
    let component = graph.components(allowed, within).into_iter().next()?;
    let mut inside = vec![false; graph.len()];
    for &node in &component {
        inside[node] = true;
    }
    component
        .iter()
        .take(STARTS)
        .filter_map(|&start| graph.shortest_path(start, start, allowed, &inside))
        .min_by_key(|path| path.len())
        .map(|path| labelled(graph, &path, allowed))
}

/// A short cycle made of one rw edge and a path back of `base` edges.
fn single_rw_cycle(
    graph: &Graph,
    base: Mask,
    within: &[bool],
    component: &[usize],
) -> Option<Vec<(usize, Mask)>> {
    let mut best: Option<Vec<(usize, Mask)>> = None;
    let anti_dependencies = component.iter().flat_map(|&from| {
        graph
            .edges_from(from)
            .filter(|&(to, mask)| within[to] && mask & RW != 0)
            .map(move |(to, _)| (from, to))
    });
    for (from, to) in anti_dependencies.take(SINGLE_RW_ATTEMPTS) {
        let Some(back) = graph.shortest_path(to, from, base, within) else {
            continue;
        };
        if best.as_ref().is_some_and(|b| b.len() <= back.len()) {
            continue;
        }
        let label = best_label(graph.mask(from, to) & (base | RW));
        let mut cycle = vec![(from, label)];
        cycle.extend(labelled(graph, &back, base));
        best = Some(cycle);
    }
    best
}

/// A path of nodes turned into (node, type of its edge to the next node);
/// the last node (the path's end) is dropped when it closes a cycle.
fn labelled(graph: &Graph, path: &[usize], allowed: Mask) -> Vec<(usize, Mask)> {
    path.windows(2)
        .map(|pair| (pair[0], best_label(graph.mask(pair[0], pair[1]) & allowed)))
        .collect()
}

/// The type an edge is shown as: data dependencies before real time, and
/// an anti-dependency only when nothing else explains the edge.
fn best_label(mask: Mask) -> Mask {
    [WW, WR, RW, RT]
        .into_iter()
        .find(|&t| mask & t != 0)
        .unwrap_or(0)
}

fn name(label: Mask) -> &'static str {
    match label {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        _ => "rt",
    }
}

/// Adya's names: G0 (write cycle), G1c (ww and wr only), G-single (one
/// anti-dependency), G2 (more); `-realtime` when real-time edges are needed.
fn classify(cycle: &[(usize, Mask)]) -> String {
    let rw = cycle.iter().filter(|&&(_, l)| l == RW).count();
    let wr = cycle.iter().any(|&(_, l)| l == WR);
    let realtime = cycle.iter().any(|&(_, l)| l == RT);
    let base = match (rw, wr) {
        (0, false) => "G0",
        (0, true) => "G1c",
        (1, _) => "G-single",
        _ => "G2",
    };
    if realtime {
        format!("{base}-realtime")
    } else {
        base.to_string()
    }
}

fn describe(kind: &str) -> String {
    let base = match kind.trim_end_matches("-realtime") {
        "G0" => "write cycle (appends ordered one way on a key and the other way on another)",
        "G1c" => "circular information flow (each transaction saw or overwrote the other)",
        "G-single" => "read skew (a cycle with exactly one anti-dependency)",
        _ => "anti-dependency cycle (e.g. write skew)",
    };
    if kind.ends_with("-realtime") {
        format!(
            "{base}, closed by real-time order: not strict serializable (a transaction \
             missed the effect of one that had already completed)"
        )
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::check::testing::{fail, info, kinds, ok, ops_of, Clock};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn ap(key: &str, value: u64) -> Mop {
        Mop::Append {
            key: key.into(),
            value,
        }
    }
    fn rd(key: &str, values: &[u64]) -> Mop {
        Mop::Read {
            key: key.into(),
            value: Some(values.to_vec()),
        }
    }
    fn txn(mops: Vec<Mop>) -> OpKind {
        OpKind::Txn { mops }
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&History { ops })
    }

    #[test]
    fn g0_appends_ordered_both_ways() {
        let v = verdict(vec![
            ok(1, 0, 100, txn(vec![ap("x", 1), ap("y", 1)])),
            ok(2, 0, 100, txn(vec![ap("x", 2), ap("y", 2)])),
            ok(3, 200, 300, txn(vec![rd("x", &[1, 2]), rd("y", &[2, 1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G0"], "{v:#?}");
        assert_eq!(ops_of(&v, "G0"), vec![0, 1]);
    }

    #[test]
    fn g1c_each_saw_the_other() {
        let v = verdict(vec![
            ok(1, 0, 100, txn(vec![ap("x", 1), rd("y", &[1])])),
            ok(2, 0, 100, txn(vec![ap("y", 1), rd("x", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G1c"], "{v:#?}");
        assert_eq!(ops_of(&v, "G1c"), vec![0, 1]);
    }

    #[test]
    fn g_single_read_skew() {
        let v = verdict(vec![
            ok(1, 0, 100, txn(vec![ap("x", 1), ap("y", 1)])),
            ok(2, 0, 100, txn(vec![rd("x", &[]), rd("y", &[1])])),
            ok(3, 200, 300, txn(vec![rd("x", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G-single"], "{v:#?}");
        assert_eq!(ops_of(&v, "G-single"), vec![0, 1]);
        assert!(v.anomalies[0].explanation.contains("-rw \"x\"->"), "{v:#?}");
    }

    #[test]
    fn g2_write_skew() {
        let v = verdict(vec![
            ok(1, 0, 100, txn(vec![rd("x", &[]), ap("y", 1)])),
            ok(2, 0, 100, txn(vec![rd("y", &[]), ap("x", 1)])),
            ok(3, 200, 300, txn(vec![rd("x", &[1]), rd("y", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G2"], "{v:#?}");
        assert_eq!(ops_of(&v, "G2"), vec![0, 1]);
    }

    #[test]
    fn a_stale_read_is_a_realtime_g_single() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![ap("x", 1)])),
            ok(2, 20, 30, txn(vec![rd("x", &[])])),
            ok(3, 40, 50, txn(vec![rd("x", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G-single-realtime"], "{v:#?}");
        assert_eq!(ops_of(&v, "G-single-realtime"), vec![0, 1]);
    }

    #[test]
    fn g1a_a_failed_append_was_read() {
        let v = verdict(vec![
            fail(1, 0, 10, txn(vec![ap("x", 1)])),
            ok(2, 20, 30, txn(vec![rd("x", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G1a"], "{v:#?}");
        assert_eq!(ops_of(&v, "G1a"), vec![0, 1]);
        assert_eq!((v.ok, v.fail, v.info), (1, 1, 0));
    }

    #[test]
    fn g1b_a_transaction_seen_half_done() {
        let v = verdict(vec![
            ok(1, 0, 100, txn(vec![ap("x", 1), ap("x", 2)])),
            ok(2, 0, 100, txn(vec![rd("x", &[1])])),
        ]);
        assert_eq!(kinds(&v), vec!["G1b"], "{v:#?}");
        assert_eq!(ops_of(&v, "G1b"), vec![0, 1]);
    }

    #[test]
    fn lost_append_never_seen_by_a_later_read() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![ap("x", 1)])),
            ok(2, 0, 10, txn(vec![ap("x", 2)])),
            ok(3, 20, 30, txn(vec![rd("x", &[2])])),
        ]);
        assert_eq!(kinds(&v), vec!["lost-append"], "{v:#?}");
        assert_eq!(ops_of(&v, "lost-append"), vec![0, 2]);
    }

    #[test]
    fn an_unseen_append_is_not_lost_without_a_later_read() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![rd("x", &[])])),
            ok(2, 5, 20, txn(vec![ap("x", 1)])),
            info(3, 5, txn(vec![ap("x", 2)])),
        ]);
        assert!(v.valid, "{v:#?}");
    }

    #[test]
    fn duplicated_and_garbage_elements() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![ap("x", 1)])),
            ok(2, 20, 30, txn(vec![rd("x", &[1, 1])])),
            ok(3, 20, 30, txn(vec![rd("y", &[9])])),
        ]);
        assert_eq!(ops_of(&v, "duplicate-elements"), vec![0, 1]);
        assert_eq!(ops_of(&v, "garbage-read"), vec![2]);
    }

    #[test]
    fn reads_that_are_not_prefixes_of_each_other() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![ap("x", 1)])),
            ok(2, 0, 10, txn(vec![ap("x", 2)])),
            ok(3, 20, 30, txn(vec![rd("x", &[1, 2])])),
            ok(4, 20, 30, txn(vec![rd("x", &[2])])),
        ]);
        assert_eq!(ops_of(&v, "incompatible-order"), vec![2, 3]);
    }

    #[test]
    fn a_transaction_must_see_its_own_appends() {
        let v = verdict(vec![ok(1, 0, 10, txn(vec![ap("x", 1), rd("x", &[])]))]);
        assert_eq!(ops_of(&v, "internal"), vec![0]);
        let fine = verdict(vec![ok(
            1,
            0,
            10,
            txn(vec![rd("x", &[]), ap("x", 1), ap("x", 2), rd("x", &[1, 2])]),
        )]);
        assert!(fine.valid, "{fine:#?}");
    }

    #[test]
    fn an_info_append_seen_before_it_began() {
        let v = verdict(vec![
            ok(1, 0, 10, txn(vec![rd("x", &[5])])),
            info(2, 20, txn(vec![ap("x", 5)])),
        ]);
        assert_eq!(kinds(&v), vec!["G1c-realtime"], "{v:#?}");
        assert_eq!(ops_of(&v, "G1c-realtime"), vec![0, 1]);
    }

    #[test]
    fn concurrency_info_and_failures_can_be_valid() {
        let v = verdict(vec![
            ok(1, 0, 50, txn(vec![ap("x", 1)])),
            info(2, 10, txn(vec![ap("x", 2)])),
            ok(3, 20, 60, txn(vec![rd("x", &[1])])),
            info(4, 30, txn(vec![ap("x", 3), ap("y", 1), rd("y", &[])])),
            ok(5, 100, 110, txn(vec![rd("x", &[1, 2]), rd("y", &[])])),
            fail(6, 100, 110, txn(vec![ap("y", 2)])),
        ]);
        assert!(v.valid, "{v:#?}");
        assert_eq!((v.ok, v.fail, v.info), (3, 1, 2));
    }

    #[test]
    fn simulated_histories_pass() {
        for seed in 0..10 {
            let history = simulate(seed, 2_000, 5, 8);
            let v = check(&history);
            assert!(v.valid, "seed {seed}: {:#?}", v.anomalies);
        }
    }

    #[test]
    fn ten_thousand_simulated_transactions_pass() {
        let history = simulate(99, 10_000, 8, 10);
        let started = std::time::Instant::now();
        let v = check(&history);
        println!(
            "list-append: {} transactions checked in {:?}",
            history.ops.len(),
            started.elapsed()
        );
        assert!(v.valid, "{:#?}", v.anomalies);
    }

    #[test]
    fn simulated_histories_with_a_lost_append_fail() {
        for seed in 0..10 {
            let mut history = simulate(seed, 1_000, 4, 6);
            let (writer, reader) = lose_an_append(&mut history).expect("an append to lose");
            let v = check(&history);
            let lost: Vec<_> = v
                .anomalies
                .iter()
                .filter(|a| a.kind == "lost-append")
                .collect();
            assert_eq!(lost.len(), 1, "seed {seed}: {v:#?}");
            assert_eq!(lost[0].ops[0], writer);
            assert!(history.ops[reader].start_ns <= history.ops[lost[0].ops[1]].start_ns);
        }
    }

    #[test]
    fn simulated_histories_with_a_stale_read_fail() {
        for seed in 0..10 {
            let mut history = simulate(seed, 1_000, 4, 6);
            let (writer, reader) = make_a_read_stale(&mut history).expect("a read to corrupt");
            let v = check(&history);
            let found = v
                .anomalies
                .iter()
                .find(|a| a.kind.starts_with("G-single"))
                .unwrap_or_else(|| panic!("seed {seed}: {v:#?}"));
            assert!(
                found.ops.contains(&writer) && found.ops.contains(&reader),
                "seed {seed}: {v:#?}"
            );
        }
    }

    /// A strict serializable list store: each transaction takes effect
    /// atomically at one instant inside its interval. 3% of transactions
    /// end unknown (applied or not, possibly late), 2% fail (not applied).
    fn simulate(seed: u64, count: usize, keys: usize, processes: usize) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clock = Clock::new(processes);
        let mut next_value = 0;
        let mut planned: Vec<(Op, u64, bool)> = Vec::with_capacity(count);
        for _ in 0..count {
            let slot = clock.next(&mut rng);
            let mops = (0..rng.gen_range(1..=4))
                .map(|_| {
                    let key = format!("k{}", rng.gen_range(0..keys));
                    if rng.gen_bool(0.5) {
                        next_value += 1;
                        Mop::Append {
                            key,
                            value: next_value,
                        }
                    } else {
                        Mop::Read { key, value: None }
                    }
                })
                .collect();
            let mut op = ok(slot.process, slot.start, slot.end, txn(mops));
            let (mut effect, mut applied) = (slot.effect, true);
            match rng.gen_range(0..100) {
                0..=2 => {
                    op.outcome = Outcome::Info;
                    op.end_ns = None;
                    applied = rng.gen_bool(0.5);
                    effect = slot.start + rng.gen_range(1..2_000);
                }
                3..=4 => {
                    op.outcome = Outcome::Fail;
                    applied = false;
                }
                _ => {}
            }
            planned.push((op, effect, applied));
        }
        planned.sort_by_key(|(_, effect, _)| *effect);
        let mut lists: HashMap<String, Vec<u64>> = HashMap::new();
        for (op, _, applied) in &mut planned {
            let committed = op.outcome == Outcome::Ok;
            if let OpKind::Txn { mops } = &mut op.kind {
                for mop in mops {
                    match mop {
                        Mop::Append { key, value } if *applied => {
                            lists.entry(key.clone()).or_default().push(*value)
                        }
                        Mop::Read { key, value } if committed => {
                            *value = Some(lists.get(key).cloned().unwrap_or_default())
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut ops: Vec<Op> = planned.into_iter().map(|(op, _, _)| op).collect();
        ops.sort_by_key(|op| op.start_ns);
        History { ops }
    }

    /// The (index, read values) of each committed read of `key`.
    fn reads_of(history: &History, key: &str) -> Vec<OpIndex> {
        (0..history.ops.len())
            .filter(|&i| {
                let op = &history.ops[i];
                op.outcome == Outcome::Ok
                    && matches!(&op.kind, OpKind::Txn { mops } if mops.iter().any(
                        |m| matches!(m, Mop::Read { key: k, .. } if k == key)))
            })
            .collect()
    }

    /// Removes a committed append from every read, choosing one that a
    /// later read should have seen. Returns (writer, that later reader).
    fn lose_an_append(history: &mut History) -> Option<(OpIndex, OpIndex)> {
        for writer in 0..history.ops.len() {
            let op = &history.ops[writer];
            let OpKind::Txn { mops } = &op.kind else {
                continue;
            };
            let Some((key, value)) = mops.iter().find_map(|m| match m {
                Mop::Append { key, value } => Some((key.clone(), *value)),
                _ => None,
            }) else {
                continue;
            };
            if op.outcome != Outcome::Ok {
                continue;
            }
            let reader = reads_of(history, &key)
                .into_iter()
                .find(|&r| precedes(&history.ops[writer], &history.ops[r]));
            let Some(reader) = reader else {
                continue;
            };
            for op in &mut history.ops {
                if let OpKind::Txn { mops } = &mut op.kind {
                    for mop in mops {
                        if let Mop::Read {
                            key: k,
                            value: Some(values),
                        } = mop
                        {
                            if *k == key {
                                values.retain(|&v| v != value);
                            }
                        }
                    }
                }
            }
            return Some((writer, reader));
        }
        None
    }

    /// Drops the last element of a read whose writer had completed before
    /// the reader began. Returns (writer, reader).
    fn make_a_read_stale(history: &mut History) -> Option<(OpIndex, OpIndex)> {
        let writer_of = |history: &History, key: &str, value: u64| {
            history.ops.iter().position(|op| {
                matches!(&op.kind, OpKind::Txn { mops } if mops.iter().any(|m| matches!(
                    m, Mop::Append { key: k, value: v } if k == key && *v == value)))
            })
        };
        for reader in (0..history.ops.len()).rev() {
            let OpKind::Txn { mops } = &history.ops[reader].kind else {
                continue;
            };
            if history.ops[reader].outcome != Outcome::Ok {
                continue;
            }
            for (m, mop) in mops.iter().enumerate() {
                let Mop::Read {
                    key,
                    value: Some(values),
                } = mop
                else {
                    continue;
                };
                let Some(&last) = values.last() else {
                    continue;
                };
                let Some(writer) = writer_of(history, key, last) else {
                    continue;
                };
                if writer == reader || !precedes(&history.ops[writer], &history.ops[reader]) {
                    continue;
                }
                if let OpKind::Txn { mops } = &mut history.ops[reader].kind {
                    if let Mop::Read {
                        value: Some(values),
                        ..
                    } = &mut mops[m]
                    {
                        values.pop();
                    }
                }
                return Some((writer, reader));
            }
        }
        None
    }
}
