//! The fault schedule: which fault when, for how long, drawn from the seed
//! alone, so a seed replays the same sequence of faults (the nodes they hit
//! may differ when a fault targets "the leader", which is a fact of the run,
//! not of the seed). One fault at a time, with heal periods between.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisKind {
    /// SIGKILL a node (leader-biased), restart it after the window.
    Kill,
    /// SIGSTOP the leader for longer than an election, then SIGCONT.
    Pause,
    /// Packet drops between nodes, or between proxies and nodes (several
    /// shapes).
    Partition,
    /// One node's wall clock jumps or drifts (libfaketime).
    Clock,
    /// One node's data dir fills up until ENOSPC.
    Disk,
    /// SIGKILL a proxy, restart it on the same port.
    Proxy,
}

pub const ALL_NEMESES: &[NemesisKind] = &[
    NemesisKind::Kill,
    NemesisKind::Pause,
    NemesisKind::Partition,
    NemesisKind::Clock,
    NemesisKind::Disk,
    NemesisKind::Proxy,
];

impl NemesisKind {
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Clock => "clock",
            NemesisKind::Disk => "disk",
            NemesisKind::Proxy => "proxy",
        }
    }

    pub fn parse(name: &str) -> Option<NemesisKind> {
        ALL_NEMESES.iter().copied().find(|k| k.name() == name)
    }
}

/// A node chosen at schedule time, or the leader found at injection time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Leader,
    /// 1-based node index.
    Node(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The leader cut off from every other node, both ways.
    IsolateLeader,
    /// The nodes split into a minority and a majority, both ways; the
    /// leader on the minority side or not.
    MajorityMinority { leader_in_minority: bool },
    /// The leader stops hearing the other nodes (it still sends to them).
    LeaderDeaf,
    /// One node stops hearing one other node only.
    OneWay,
    /// Two halves that cannot talk, joined by one node that talks to both.
    Bridge,
    /// One proxy (0-based, modulo the proxies) cannot reach the leader; the
    /// nodes still talk to each other.
    ProxyFromLeader { proxy: usize },
    /// One proxy cannot reach any node.
    ProxyFromAll { proxy: usize },
    /// No proxy can reach the leader, which keeps its quorum.
    ProxiesFromLeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockChange {
    /// The offset jumps to this many seconds (negative = back in time).
    Jump { secs: i64 },
    /// The offset grows by this many seconds per second of the window.
    Drift { secs_per_sec: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    Kill {
        target: Target,
    },
    Pause {
        target: Target,
    },
    Partition {
        shape: Shape,
        /// A random order of the node indices (1-based): the shapes take
        /// their sides from it, after moving the leader where the shape
        /// wants it.
        order: Vec<usize>,
    },
    Clock {
        target: Target,
        change: ClockChange,
    },
    Disk {
        target: Target,
    },
    Proxy {
        /// 0-based proxy index.
        index: usize,
    },
}

impl Action {
    pub fn kind(&self) -> NemesisKind {
        match self {
            Action::Kill { .. } => NemesisKind::Kill,
            Action::Pause { .. } => NemesisKind::Pause,
            Action::Partition { .. } => NemesisKind::Partition,
            Action::Clock { .. } => NemesisKind::Clock,
            Action::Disk { .. } => NemesisKind::Disk,
            Action::Proxy { .. } => NemesisKind::Proxy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Offset from the start of the run.
    pub at: Duration,
    /// How long the fault stays before it is healed.
    pub hold: Duration,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub seed: u64,
    pub kinds: Vec<NemesisKind>,
    pub duration: Duration,
    pub nodes: usize,
    pub proxies: usize,
    pub election_timeout: Duration,
}

/// Draws the schedule. Windows: fault 3-10 s, heal 3-6 s, scaled down for
/// runs shorter than a minute (never below what a fault needs to matter:
/// a pause lasts at least two maximal election timeouts).
pub fn plan(s: &PlanSettings) -> Vec<PlannedFault> {
    // A stream of its own: adding a workload never changes the faults.
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x6e65_6d65_7369_7321);
    let mut kinds = s.kinds.clone();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() || s.nodes == 0 {
        return Vec::new();
    }
    let total = s.duration.as_secs_f64();
    let scale = (total / 60.0).clamp(0.3, 1.0);
    // The election timeout is drawn from [et, 2 et]: beyond 2 et + margin
    // the followers have certainly started an election.
    let pause_min = 2.0 * s.election_timeout.as_secs_f64() + 1.0;
    let mut t = (total * 0.05).clamp(2.0, 5.0);
    let mut out = Vec::new();
    loop {
        let kind = *kinds.choose(&mut rng).expect("not empty");
        let mut hold = rng.gen_range(3.0..10.0) * scale;
        let heal = rng.gen_range(3.0..6.0) * scale;
        let action = draw_action(kind, s, &mut rng);
        if kind == NemesisKind::Pause {
            hold = hold.max(pause_min);
        }
        hold = hold.max(1.0);
        // Leave a heal period after the last fault inside the run.
        if t + hold + heal.min(3.0) > total {
            break;
        }
        out.push(PlannedFault {
            at: Duration::from_secs_f64(t),
            hold: Duration::from_secs_f64(hold),
            action,
        });
        t += hold + heal;
    }
    out
}

fn draw_action(kind: NemesisKind, s: &PlanSettings, rng: &mut impl Rng) -> Action {
    let node = |rng: &mut dyn rand::RngCore, leader_bias: f64| {
        if rng.gen_bool(leader_bias) {
            Target::Leader
        } else {
            Target::Node(rng.gen_range(1..=s.nodes))
        }
    };
    match kind {
        NemesisKind::Kill => Action::Kill {
            target: node(rng, 0.7),
        },
        NemesisKind::Pause => Action::Pause {
            target: Target::Leader,
        },
        NemesisKind::Partition => {
            let shapes = [
                Shape::IsolateLeader,
                Shape::MajorityMinority {
                    leader_in_minority: true,
                },
                Shape::MajorityMinority {
                    leader_in_minority: false,
                },
                Shape::LeaderDeaf,
                Shape::OneWay,
                Shape::Bridge,
            ];
            let proxy = rng.gen_range(0..s.proxies.max(1));
            let proxy_shapes = [
                Shape::ProxyFromLeader { proxy },
                Shape::ProxyFromAll { proxy },
                Shape::ProxiesFromLeader,
            ];
            let mut all = shapes.to_vec();
            if s.proxies > 0 {
                all.extend(proxy_shapes);
            }
            let shape = *all.choose(rng).expect("not empty");
            let mut order: Vec<usize> = (1..=s.nodes).collect();
            order.shuffle(rng);
            Action::Partition { shape, order }
        }
        NemesisKind::Clock => {
            let change = match rng.gen_range(0..3) {
                0 => ClockChange::Jump {
                    secs: rng.gen_range(5..=300),
                },
                1 => ClockChange::Jump {
                    secs: -rng.gen_range(5..=300),
                },
                _ => ClockChange::Drift {
                    secs_per_sec: *[-20i64, -5, 5, 20].choose(rng).expect("not empty"),
                },
            };
            Action::Clock {
                target: node(rng, 0.5),
                change,
            }
        }
        NemesisKind::Disk => Action::Disk {
            target: node(rng, 0.5),
        },
        NemesisKind::Proxy => Action::Proxy {
            index: rng.gen_range(0..s.proxies.max(1)),
        },
    }
}

/// A partition resolved against the current leader: who drops what from
/// whom (`receiver -> senders`, 1-based), which proxy (0-based) cannot
/// reach which nodes, and a description for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub drops: BTreeMap<usize, BTreeSet<usize>>,
    pub proxy_drops: BTreeMap<usize, BTreeSet<usize>>,
    pub description: String,
}

impl Cut {
    fn new() -> Cut {
        Cut {
            drops: BTreeMap::new(),
            proxy_drops: BTreeMap::new(),
            description: String::new(),
        }
    }

    /// Proxy `proxy` stops reaching `nodes`.
    fn proxy_cut(&mut self, proxy: usize, nodes: &[usize]) {
        self.proxy_drops
            .entry(proxy)
            .or_default()
            .extend(nodes.iter().copied());
    }

    /// Every proxy the cut touches.
    pub fn proxies(&self) -> Vec<usize> {
        self.proxy_drops.keys().copied().collect()
    }

    fn one_way(&mut self, receiver: usize, sender: usize) {
        if receiver != sender {
            self.drops.entry(receiver).or_default().insert(sender);
        }
    }

    fn both_ways(&mut self, side_a: &[usize], side_b: &[usize]) {
        for &a in side_a {
            for &b in side_b {
                self.one_way(a, b);
                self.one_way(b, a);
            }
        }
    }

    /// Every node the cut touches.
    pub fn nodes(&self) -> Vec<usize> {
        let mut all: BTreeSet<usize> = BTreeSet::new();
        for (r, senders) in &self.drops {
            all.insert(*r);
            all.extend(senders);
        }
        for nodes in self.proxy_drops.values() {
            all.extend(nodes);
        }
        all.into_iter().collect()
    }
}

fn list(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Resolves `shape` over `order` (a permutation of 1..=n) and `proxies`
/// proxies. `leader` is the current leader if one is known; shapes about
/// "the leader" fall back to the first node of `order`.
pub fn resolve(shape: Shape, order: &[usize], leader: Option<usize>, proxies: usize) -> Cut {
    let mut order = order.to_vec();
    if let Some(l) = leader {
        if let Some(pos) = order.iter().position(|&n| n == l) {
            order.remove(pos);
            order.insert(0, l);
        }
    }
    let n = order.len();
    let mut cut = Cut::new();
    let proxy_shape = match shape {
        Shape::ProxyFromLeader { proxy } | Shape::ProxyFromAll { proxy } => Some(proxy),
        Shape::ProxiesFromLeader => Some(0),
        _ => None,
    };
    if let Some(proxy) = proxy_shape {
        if n == 0 || proxies == 0 {
            cut.description = "no proxy partition possible".into();
            return cut;
        }
        let p = proxy % proxies;
        let head = order[0];
        match shape {
            Shape::ProxyFromLeader { .. } => {
                cut.proxy_cut(p, &[head]);
                cut.description = format!("proxy {p} cut from n{head}");
            }
            Shape::ProxyFromAll { .. } => {
                cut.proxy_cut(p, &order);
                cut.description = format!("proxy {p} cut from every node");
            }
            _ => {
                for p in 0..proxies {
                    cut.proxy_cut(p, &[head]);
                }
                cut.description = format!("every proxy cut from n{head}");
            }
        }
        return cut;
    }
    if n < 2 {
        cut.description = "no partition possible with one node".into();
        return cut;
    }
    let head = order[0];
    match shape {
        Shape::IsolateLeader => {
            cut.both_ways(&order[..1], &order[1..]);
            cut.description = format!("isolate n{head} from {}", list(&order[1..]));
        }
        Shape::MajorityMinority { leader_in_minority } => {
            let minority = n / 2;
            // `order` starts with the leader: the minority is the first
            // `minority` nodes, or the last ones to keep the leader out.
            let (minor, major) = if leader_in_minority {
                (order[..minority].to_vec(), order[minority..].to_vec())
            } else {
                (
                    order[n - minority..].to_vec(),
                    order[..n - minority].to_vec(),
                )
            };
            cut.both_ways(&minor, &major);
            cut.description = format!("minority {} | majority {}", list(&minor), list(&major));
        }
        Shape::LeaderDeaf => {
            for &other in &order[1..] {
                cut.one_way(head, other);
            }
            cut.description = format!("n{head} drops packets from {}", list(&order[1..]));
        }
        Shape::OneWay => {
            // Not necessarily involving the leader: take the last two.
            let (a, b) = (order[n - 1], order[n - 2]);
            cut.one_way(a, b);
            cut.description = format!("n{a} drops packets from n{b}");
        }
        Shape::Bridge => {
            if n < 3 {
                cut.both_ways(&order[..1], &order[1..]);
                cut.description = format!("bridge impossible; isolate n{head}");
                return cut;
            }
            // Sides around a middle node that hears both; the leader (at
            // the front of `order`) ends up on one side.
            let mid = n / 2;
            let (left, bridge, right) = (&order[..mid], order[mid], &order[mid + 1..]);
            cut.both_ways(left, right);
            cut.description = format!(
                "bridge: {} <-> n{bridge} <-> {}, {} and {} cut",
                list(left),
                list(right),
                list(left),
                list(right)
            );
        }
        Shape::ProxyFromLeader { .. } | Shape::ProxyFromAll { .. } | Shape::ProxiesFromLeader => {}
    }
    cut
}

/// One line per planned fault, for the start of a run.
pub fn describe_plan(plan: &[PlannedFault]) -> Vec<String> {
    plan.iter()
        .map(|f| {
            format!(
                "  {:>7.1}s +{:>4.1}s  {}",
                f.at.as_secs_f64(),
                f.hold.as_secs_f64(),
                describe_action(&f.action)
            )
        })
        .collect()
}

pub fn describe_action(a: &Action) -> String {
    let target = |t: &Target| match t {
        Target::Leader => "the leader".to_string(),
        Target::Node(i) => format!("n{i}"),
    };
    match a {
        Action::Kill { target: t } => format!("kill {}", target(t)),
        Action::Pause { target: t } => format!("pause {}", target(t)),
        Action::Partition { shape, .. } => format!("partition {shape:?}"),
        Action::Clock { target: t, change } => match change {
            ClockChange::Jump { secs } => format!("clock of {} jumps {secs:+} s", target(t)),
            ClockChange::Drift { secs_per_sec } => {
                format!("clock of {} drifts {secs_per_sec:+} s/s", target(t))
            }
        },
        Action::Disk { target: t } => format!("fill the disk of {}", target(t)),
        Action::Proxy { index } => format!("kill proxy {index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64, kinds: &[NemesisKind], secs: u64) -> PlanSettings {
        PlanSettings {
            seed,
            kinds: kinds.to_vec(),
            duration: Duration::from_secs(secs),
            nodes: 3,
            proxies: 2,
            election_timeout: Duration::from_millis(1000),
        }
    }

    #[test]
    fn same_seed_same_schedule() {
        let a = plan(&settings(7, ALL_NEMESES, 300));
        let b = plan(&settings(7, ALL_NEMESES, 300));
        assert_eq!(a, b);
        assert!(a.len() > 10, "{}", a.len());
        let c = plan(&settings(8, ALL_NEMESES, 300));
        assert_ne!(a, c);
        // The order the kinds were given in does not matter.
        let mut reversed = ALL_NEMESES.to_vec();
        reversed.reverse();
        assert_eq!(a, plan(&settings(7, &reversed, 300)));
    }

    #[test]
    fn faults_do_not_overlap_and_end_inside_the_run() {
        for seed in 0..50 {
            let p = plan(&settings(seed, ALL_NEMESES, 60));
            assert!(!p.is_empty(), "seed {seed}");
            for w in p.windows(2) {
                assert!(w[0].at + w[0].hold < w[1].at, "seed {seed}: {w:?}");
            }
            let last = p.last().expect("not empty");
            assert!(last.at + last.hold < Duration::from_secs(60));
            for f in &p {
                if f.action.kind() == NemesisKind::Pause {
                    assert!(f.hold >= Duration::from_secs(3), "pause {:?}", f.hold);
                }
            }
        }
    }

    #[test]
    fn only_selected_kinds_are_planned() {
        let p = plan(&settings(3, &[NemesisKind::Kill, NemesisKind::Pause], 600));
        assert!(p
            .iter()
            .all(|f| matches!(f.action.kind(), NemesisKind::Kill | NemesisKind::Pause)));
        assert!(plan(&settings(3, &[], 600)).is_empty());
    }

    fn pairs(cut: &Cut) -> Vec<(usize, usize)> {
        cut.drops
            .iter()
            .flat_map(|(r, s)| s.iter().map(move |s| (*r, *s)))
            .collect()
    }

    #[test]
    fn isolating_the_leader_cuts_it_both_ways() {
        let cut = resolve(Shape::IsolateLeader, &[1, 2, 3], Some(2), 2);
        assert_eq!(pairs(&cut), vec![(1, 2), (2, 1), (2, 3), (3, 2)]);
        assert_eq!(cut.description, "isolate n2 from n1,n3");
    }

    #[test]
    fn majority_minority_places_the_leader_as_asked() {
        let order = [3, 1, 4, 5, 2];
        let with = resolve(
            Shape::MajorityMinority {
                leader_in_minority: true,
            },
            &order,
            Some(5),
            2,
        );
        assert_eq!(with.description, "minority n5,n3 | majority n1,n4,n2");
        let without = resolve(
            Shape::MajorityMinority {
                leader_in_minority: false,
            },
            &order,
            Some(5),
            2,
        );
        assert_eq!(without.description, "minority n4,n2 | majority n5,n3,n1");
        // Symmetric: 2 x 3 x 2 directed pairs.
        assert_eq!(pairs(&without).len(), 12);
    }

    #[test]
    fn one_way_shapes_drop_in_one_direction_only() {
        let deaf = resolve(Shape::LeaderDeaf, &[1, 2, 3], Some(3), 2);
        assert_eq!(pairs(&deaf), vec![(3, 1), (3, 2)]);
        let one = resolve(Shape::OneWay, &[1, 2, 3], None, 2);
        assert_eq!(pairs(&one), vec![(3, 2)]);
    }

    #[test]
    fn proxy_shapes_cut_proxies_from_nodes_only() {
        let one = resolve(Shape::ProxyFromLeader { proxy: 3 }, &[1, 2, 3], Some(2), 2);
        assert!(one.drops.is_empty());
        assert_eq!(one.proxies(), vec![1]);
        assert_eq!(one.proxy_drops[&1], BTreeSet::from([2]));
        assert_eq!(one.description, "proxy 1 cut from n2");
        let all = resolve(Shape::ProxyFromAll { proxy: 0 }, &[3, 1, 2], None, 2);
        assert_eq!(all.proxy_drops[&0], BTreeSet::from([1, 2, 3]));
        assert_eq!(all.nodes(), vec![1, 2, 3]);
        let both = resolve(Shape::ProxiesFromLeader, &[1, 2, 3], Some(3), 2);
        assert_eq!(both.proxies(), vec![0, 1]);
        assert!(both.proxy_drops.values().all(|n| *n == BTreeSet::from([3])));
        assert!(resolve(Shape::ProxiesFromLeader, &[1, 2, 3], Some(3), 0)
            .proxy_drops
            .is_empty());
    }

    #[test]
    fn proxy_shapes_are_drawn_when_there_are_proxies() {
        let shapes: Vec<Shape> = (0..40)
            .flat_map(|seed| plan(&settings(seed, &[NemesisKind::Partition], 300)))
            .filter_map(|f| match f.action {
                Action::Partition { shape, .. } => Some(shape),
                _ => None,
            })
            .collect();
        assert!(shapes
            .iter()
            .any(|s| matches!(s, Shape::ProxyFromLeader { .. })));
        assert!(shapes
            .iter()
            .any(|s| matches!(s, Shape::ProxyFromAll { .. })));
        assert!(shapes.contains(&Shape::ProxiesFromLeader));
        assert!(shapes.contains(&Shape::Bridge));
    }

    #[test]
    fn bridge_keeps_the_middle_node_connected() {
        let cut = resolve(Shape::Bridge, &[1, 2, 3], Some(1), 2);
        assert_eq!(pairs(&cut), vec![(1, 3), (3, 1)]);
        let five = resolve(Shape::Bridge, &[1, 2, 3, 4, 5], None, 2);
        // n3 is the bridge: it drops nothing and nobody drops it.
        assert!(!five.drops.contains_key(&3));
        assert!(five.drops.values().all(|s| !s.contains(&3)));
        assert_eq!(pairs(&five).len(), 8);
    }
}
