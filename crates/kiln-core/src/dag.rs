//! The DAG text syntax (DESIGN §3) and topological ordering.
//!
//! ```text
//! # comments start with `#`
//! split -> resize -> merge     # whole-task chain
//! split -> index, thumbs       # fan-out
//! index, thumbs -> publish     # fan-in
//! render => encode -> publish  # per-instance edge, then a whole-task edge
//! ```
//!
//! [`parse_dag`] only checks what the text alone can tell (syntax, names, self-edges); whether
//! the names exist, instance counts and cycles are checked against the job by the spec module.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt;

use crate::model::DepKind;

/// One edge of the DAG text: `from -> to` (`Task`) or `from => to` (`Instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: DepKind,
    /// 1-based line number in the DAG text.
    pub line: usize,
}

/// A problem in one line of the DAG text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagSyntaxError {
    /// 1-based line number in the DAG text.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DagSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DagSyntaxError {}

/// Checks a task name as written in the DAG: 1–60 characters of `[A-Za-z0-9._-]`.
fn name_error(name: &str) -> Option<String> {
    if name.chars().count() > 60 {
        return Some(format!("task name `{name}` is longer than 60 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "bad task name `{name}`: {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"
        ));
    }
    None
}

/// Splits a line into sides separated by `->` / `=>`.
fn split_arrows(line: &str) -> (Vec<&str>, Vec<DepKind>) {
    let mut sides = Vec::new();
    let mut kinds = Vec::new();
    let mut rest = line;
    loop {
        let next = [("->", DepKind::Task), ("=>", DepKind::Instance)]
            .into_iter()
            .filter_map(|(arrow, kind)| rest.find(arrow).map(|at| (at, kind)))
            .min_by_key(|(at, _)| *at);
        match next {
            Some((at, kind)) => {
                sides.push(&rest[..at]);
                kinds.push(kind);
                rest = &rest[at + 2..];
            }
            None => {
                sides.push(rest);
                return (sides, kinds);
            }
        }
    }
}

/// Parses DAG text into edges, or returns every syntax error (with its line).
///
/// Blank lines and `#` comments are ignored. Each other line is a chain `SIDE (ARROW SIDE)+`
/// where a side is a comma-separated list of task names and an arrow is `->` (whole task) or
/// `=>` (per instance); consecutive sides are joined by every pair of their names. Self-edges
/// (`a -> a`) are errors. Duplicate edges are returned as written (callers collapse them).
pub fn parse_dag(text: &str) -> Result<Vec<Edge>, Vec<DagSyntaxError>> {
    let mut edges = Vec::new();
    let mut errors = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw_line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut err = |message: String| {
            errors.push(DagSyntaxError {
                line: line_no,
                message,
            })
        };
        let (sides, kinds) = split_arrows(line);
        if kinds.is_empty() {
            err(format!(
                "`{line}` has no arrow; write an edge such as `a -> b` or `a => b`"
            ));
            continue;
        }
        let mut parsed: Vec<Vec<&str>> = Vec::new();
        let mut ok = true;
        for (s, side) in sides.iter().enumerate() {
            let side = side.trim();
            if side.is_empty() {
                let message = if s == 0 {
                    "an arrow with nothing before it".to_string()
                } else if s == sides.len() - 1 {
                    "dangling arrow: nothing after the last arrow".to_string()
                } else {
                    "two arrows with nothing between them".to_string()
                };
                err(message);
                ok = false;
                continue;
            }
            let mut names = Vec::new();
            for name in side.split(',').map(str::trim) {
                if name.is_empty() {
                    err(format!("empty task name in the list `{side}`"));
                    ok = false;
                } else if let Some(m) = name_error(name) {
                    err(m);
                    ok = false;
                } else {
                    names.push(name);
                }
            }
            parsed.push(names);
        }
        if !ok {
            continue;
        }
        for (w, kind) in parsed.windows(2).zip(kinds) {
            for from in &w[0] {
                for to in &w[1] {
                    if from == to {
                        err(format!("self-edge: `{from}` cannot depend on itself"));
                        continue;
                    }
                    edges.push(Edge {
                        from: (*from).to_string(),
                        to: (*to).to_string(),
                        kind,
                        line: line_no,
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(edges)
    } else {
        Err(errors)
    }
}

/// Orders nodes `0..n` so that every edge `(from, to)` has `from` before `to`, keeping the
/// original order where the edges allow it (Kahn's algorithm, lowest index first).
///
/// Duplicate edges are fine. Edges naming a node `>= n` are ignored. On a cycle, returns one
/// cycle per strongly connected component that has one, each as its nodes in order starting
/// at its lowest index (the edge back to the first node is implied), sorted by that index.
pub fn topo_order(n: usize, edges: &[(usize, usize)]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &(from, to) in edges {
        if from < n && to < n {
            succ[from].insert(to);
        }
    }
    let mut indegree = vec![0usize; n];
    for s in &succ {
        for &t in s {
            indegree[t] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &t in &succ[i] {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push(Reverse(t));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycles(&succ))
}

/// One cycle per non-trivial strongly connected component (iterative Tarjan, then a BFS
/// from the component's lowest node back to itself).
fn find_cycles(succ: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    let n = succ.len();
    const UNSEEN: usize = usize::MAX;
    let mut idx = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut comp = vec![UNSEEN; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    let mut counter = 0usize;
    let adj: Vec<Vec<usize>> = succ.iter().map(|s| s.iter().copied().collect()).collect();
    for root in 0..n {
        if idx[root] != UNSEEN {
            continue;
        }
        // (node, next child position)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        idx[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, pos)) = call.last() {
            if let Some(&w) = adj[v].get(pos) {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                if idx[w] == UNSEEN {
                    idx[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(idx[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == idx[v] {
                    let mut members = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = comps.len();
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comps.push(members);
                }
            }
        }
    }
    let mut cycles = Vec::new();
    for (c, members) in comps.iter().enumerate() {
        let Some(&start) = members.iter().min() else {
            continue;
        };
        let self_loop = succ[start].contains(&start);
        if members.len() < 2 && !self_loop {
            continue;
        }
        if self_loop {
            cycles.push(vec![start]);
            continue;
        }
        // Shortest path start -> ... -> start inside the component.
        let mut prev = vec![UNSEEN; n];
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'bfs: while let Some(v) = queue.pop_front() {
            for &w in &adj[v] {
                if comp[w] != c {
                    continue;
                }
                if w == start {
                    last = Some(v);
                    break 'bfs;
                }
                if prev[w] == UNSEEN {
                    prev[w] = v;
                    queue.push_back(w);
                }
            }
        }
        if let Some(mut v) = last {
            let mut path = vec![v];
            while v != start {
                v = prev[v];
                path.push(v);
            }
            path.reverse();
            cycles.push(path);
        }
    }
    cycles.sort();
    cycles
}
