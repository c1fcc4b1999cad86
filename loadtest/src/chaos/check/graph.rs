//! A directed graph whose edges carry a set of types (a bit mask), for the
//! list-append checker's cycle search: strongly connected components
//! (Tarjan's algorithm, iterative so that a long history cannot overflow
//! the stack) and shortest cycles (breadth-first), both restricted to some
//! edge types and some nodes.

use std::collections::{HashMap, VecDeque};

/// A set of edge types.
pub type Mask = u8;

#[derive(Debug, Default)]
pub struct Graph {
    successors: Vec<Vec<usize>>,
    masks: HashMap<(usize, usize), Mask>,
}

impl Graph {
    pub fn new(nodes: usize) -> Self {
        Graph {
            successors: vec![Vec::new(); nodes],
            masks: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.successors.len()
    }

    /// Adds `types` to the edge `from -> to`. Self-loops are ignored: a
    /// transaction never depends on itself.
    pub fn add(&mut self, from: usize, to: usize, types: Mask) {
        if from == to || from >= self.len() || to >= self.len() {
            return;
        }
        let mask = self.masks.entry((from, to)).or_insert(0);
        if *mask == 0 {
            self.successors[from].push(to);
        }
        *mask |= types;
    }

    /// The types of the edge `from -> to` (0 when there is none).
    pub fn mask(&self, from: usize, to: usize) -> Mask {
        self.masks.get(&(from, to)).copied().unwrap_or(0)
    }

    /// The edges leaving `node`, with their types.
    pub fn edges_from(&self, node: usize) -> impl Iterator<Item = (usize, Mask)> + '_ {
        self.successors[node]
            .iter()
            .map(move |&to| (to, self.mask(node, to)))
    }

    /// Successors of `node` through an edge of one of the `allowed` types,
    /// staying inside `within`.
    fn next<'a>(
        &'a self,
        node: usize,
        allowed: Mask,
        within: &'a [bool],
    ) -> impl Iterator<Item = usize> + 'a {
        self.successors[node]
            .iter()
            .copied()
            .filter(move |&to| within[to] && self.mask(node, to) & allowed != 0)
    }

    /// The strongly connected components of more than one node, using only
    /// edges of the `allowed` types between nodes of `within`.
    pub fn components(&self, allowed: Mask, within: &[bool]) -> Vec<Vec<usize>> {
        let mut tarjan = Tarjan {
            graph: self,
            allowed,
            within,
            index: vec![None; self.len()],
            low: vec![0; self.len()],
            on_stack: vec![false; self.len()],
            stack: Vec::new(),
            calls: Vec::new(),
            counter: 0,
            found: Vec::new(),
        };
        for (root, &inside) in within.iter().enumerate() {
            if inside && tarjan.index[root].is_none() {
                tarjan.run(root);
            }
        }
        tarjan.found
    }

    /// A shortest path `from ... to` through edges of the `allowed` types
    /// inside `within`, as its nodes. With `from == to` it is a shortest
    /// cycle through `from`, given as `[from, ..., from]`.
    pub fn shortest_path(
        &self,
        from: usize,
        to: usize,
        allowed: Mask,
        within: &[bool],
    ) -> Option<Vec<usize>> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            for w in self.next(v, allowed, within) {
                if w == to {
                    let mut path = vec![to, v];
                    let mut at = v;
                    while at != from {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    return Some(path);
                }
                if w != from && !parent.contains_key(&w) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        None
    }
}

/// Tarjan's algorithm with an explicit call stack.
struct Tarjan<'a> {
    graph: &'a Graph,
    allowed: Mask,
    within: &'a [bool],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    /// The simulated recursion: a node and its successors left to visit.
    calls: Vec<(usize, Vec<usize>)>,
    counter: usize,
    found: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn enter(&mut self, v: usize) {
        self.index[v] = Some(self.counter);
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        let successors = self.graph.next(v, self.allowed, self.within).collect();
        self.calls.push((v, successors));
    }

    fn run(&mut self, root: usize) {
        self.enter(root);
        while let Some((v, pending)) = self.calls.last_mut() {
            let v = *v;
            if let Some(w) = pending.pop() {
                match self.index[w] {
                    None => self.enter(w),
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
                continue;
            }
            self.calls.pop();
            if let Some(&(parent, _)) = self.calls.last() {
                self.low[parent] = self.low[parent].min(self.low[v]);
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.found.push(component);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mask = 1;
    const B: Mask = 2;

    #[test]
    fn components_respect_edge_types_and_node_sets() {
        let mut g = Graph::new(5);
        g.add(0, 1, A);
        g.add(1, 2, A);
        g.add(2, 0, B);
        g.add(3, 4, A);
        g.add(4, 3, A | B);
        let all = vec![true; 5];
        let mut both = g.components(A | B, &all);
        both.sort();
        assert_eq!(both, vec![vec![0, 1, 2], vec![3, 4]]);
        assert_eq!(g.components(A, &all), vec![vec![3, 4]]);
        let without_4 = vec![true, true, true, true, false];
        assert_eq!(g.components(A | B, &without_4), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut g = Graph::new(n);
        for v in 0..n {
            g.add(v, (v + 1) % n, A);
        }
        let components = g.components(A, &vec![true; n]);
        assert_eq!(components.len(), 1);
        assert_eq!(components[0].len(), n);
    }

    #[test]
    fn shortest_cycle_prefers_the_short_way_round() {
        let mut g = Graph::new(4);
        g.add(0, 1, A);
        g.add(1, 2, A);
        g.add(2, 3, A);
        g.add(3, 0, A);
        g.add(1, 0, B);
        let all = vec![true; 4];
        assert_eq!(g.shortest_path(0, 0, A | B, &all), Some(vec![0, 1, 0]));
        assert_eq!(g.shortest_path(0, 0, A, &all), Some(vec![0, 1, 2, 3, 0]));
        assert_eq!(g.shortest_path(2, 1, A, &all), Some(vec![2, 3, 0, 1]));
        assert_eq!(g.shortest_path(0, 0, B, &all), None);
        g.add(2, 2, A);
        assert_eq!(g.mask(2, 2), 0);
    }
}
