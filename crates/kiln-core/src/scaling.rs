//! Backlog scaling of compute environments: how many nodes to add, and which to take away.
//!
//! Pure: the shell gives a [`View`] of one environment — its [`Policy`], what one node offers,
//! its nodes (busy, or idle since when), the allocations still on their way, the `RUNNABLE`
//! instances that name it, and the time — and [`plan`] answers with [`Decision`]s, each with
//! its [`Cause`] (recorded as the environment's activities). Nothing here knows whether a node
//! is a process, a container or a Slurm job.
//!
//! Rules, in order:
//! - Never above `max_nodes`: nodes and nodes still on their way count; an allocation is only
//!   made when all its nodes fit under the cap.
//! - Never below `min_nodes`: they are made even without work, and kept warm.
//! - Scale up from the backlog: enough nodes for the runnable instances (by CPUs and by memory,
//!   whichever needs more), less what is already on its way; at most `max_pending` allocations
//!   wait at once.
//! - Scale down only idle nodes: one idle for `idle_timeout` is removed (longest idle first)
//!   while more than `min_nodes` remain; a node that runs work is never removed. Above
//!   `max_nodes` (the cap was lowered) idle nodes go at once, queued allocations first.
//! - An allocation still queued (not started) is withdrawn when there is no work for it and it
//!   has waited `idle_timeout`.

use crate::model::Resources;

/// How an environment scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min_nodes: u32,
    pub max_nodes: u32,
    /// A node idle this long is removed (never below `min_nodes`).
    pub idle_timeout_ms: u64,
    /// At most this many allocations may be on their way at once.
    pub max_pending: u32,
    /// Nodes one allocation brings (Slurm's `workers_per_allocation`; 1 elsewhere). At least 1.
    pub nodes_per_allocation: u32,
}

impl Policy {
    /// A fixed size (`desired_nodes`): that many nodes, idle or not.
    pub fn fixed(nodes: u32, nodes_per_allocation: u32) -> Self {
        Policy {
            min_nodes: nodes,
            max_nodes: nodes,
            idle_timeout_ms: u64::MAX,
            max_pending: u32::MAX,
            nodes_per_allocation,
        }
    }
}

/// What one node offers, as the scheduler counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub millicpus: u64,
    /// `None`: not stated (memory is then not counted).
    pub memory: Option<u64>,
}

impl Shape {
    fn fits(&self, r: &Resources) -> bool {
        u64::from(r.millicpus) <= self.millicpus && self.memory.is_none_or(|m| r.memory <= m)
    }
}

/// What a registered node (not draining) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Runs (or holds) at least one attempt.
    Busy,
    /// Runs nothing, since then (ms).
    Idle { since: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub activity: Activity,
}

/// An allocation whose nodes have not all registered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingView {
    pub id: String,
    /// Nodes still to come from it.
    pub nodes: u32,
    /// Still queued (not started): it can be withdrawn without losing anything.
    pub queued: bool,
    /// When it was made (ms).
    pub since: u64,
}

/// `count` runnable instances that each need `resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub resources: Resources,
    pub count: u32,
}

/// One environment as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub policy: Policy,
    pub shape: Shape,
    pub nodes: &'a [NodeView],
    pub pending: &'a [PendingView],
    pub backlog: &'a [Backlog],
    pub now: u64,
}

/// Why a node is made or removed: the `Cause` of an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Fewer than `min_nodes` (counting those on their way).
    MinNodes { have: u32, min: u32 },
    /// Runnable instances need more nodes than there are (counting those on their way).
    Backlog {
        instances: u64,
        needed: u32,
        have: u32,
    },
    /// Idle for at least the idle timeout, above `min_nodes`.
    Idle { idle_ms: u64, timeout_ms: u64 },
    /// More nodes than `max_nodes` (the cap was lowered).
    AboveMax { have: u32, max: u32 },
    /// A queued allocation no work needs any more.
    NoWork { waited_ms: u64 },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::MinNodes { have, min } => {
                write!(f, "min_nodes is {min}, {have} up or on their way")
            }
            Cause::Backlog {
                instances,
                needed,
                have,
            } => write!(
                f,
                "{instances} RUNNABLE instance(s) need {needed} node(s), {have} up or on their way"
            ),
            Cause::Idle {
                idle_ms,
                timeout_ms,
            } => write!(
                f,
                "idle for {}s (idle_timeout {}s)",
                idle_ms / 1000,
                timeout_ms / 1000
            ),
            Cause::AboveMax { have, max } => write!(f, "max_nodes is {max}, {have} up"),
            Cause::NoWork { waited_ms } => write!(
                f,
                "no RUNNABLE instance needs it (queued for {}s)",
                waited_ms / 1000
            ),
        }
    }
}

/// One scaling decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Make `allocations` allocations (each of `Policy::nodes_per_allocation` nodes).
    Create { allocations: u32, cause: Cause },
    /// Drain and remove an idle node.
    Remove { node: String, cause: Cause },
    /// Withdraw a queued allocation.
    Withdraw { id: String, cause: Cause },
}

/// Nodes needed for the backlog, by CPUs and by memory, and the instances counted. Instances
/// bigger than a node are left out: no node of this shape can run them.
pub fn nodes_for(shape: Shape, backlog: &[Backlog]) -> (u32, u64) {
    let (mut cpus, mut memory, mut instances) = (0u128, 0u128, 0u64);
    for b in backlog
        .iter()
        .filter(|b| b.count > 0 && shape.fits(&b.resources))
    {
        cpus += u128::from(b.resources.millicpus) * u128::from(b.count);
        memory += u128::from(b.resources.memory) * u128::from(b.count);
        instances += u64::from(b.count);
    }
    if instances == 0 {
        return (0, 0);
    }
    let by_cpu = cpus.div_ceil(u128::from(shape.millicpus.max(1)));
    let by_memory = shape
        .memory
        .map_or(0, |m| memory.div_ceil(u128::from(m.max(1))));
    let needed = by_cpu.max(by_memory).max(1);
    (u32::try_from(needed).unwrap_or(u32::MAX), instances)
}

/// Decides one round for one environment: withdrawals and removals first, then at most one
/// `Create`.
pub fn plan(view: &View<'_>) -> Vec<Decision> {
    let p = view.policy;
    let per = p.nodes_per_allocation.max(1);
    let now = view.now;
    let mut out = Vec::new();
    let mut pending: Vec<&PendingView> = view.pending.iter().collect();
    let mut up = u32::try_from(view.nodes.len()).unwrap_or(u32::MAX);
    let coming = |pending: &[&PendingView]| pending.iter().map(|a| a.nodes).sum::<u32>();
    let total = |up: u32, pending: &[&PendingView]| up.saturating_add(coming(pending));
    let (needed, instances) = nodes_for(view.shape, view.backlog);

    // Above the cap: withdraw queued allocations, newest first, then remove idle nodes at once.
    let mut queued: Vec<&PendingView> = pending.iter().copied().filter(|a| a.queued).collect();
    queued.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| b.id.cmp(&a.id)));
    for a in &queued {
        let have = total(up, &pending);
        if have <= p.max_nodes {
            break;
        }
        if have.saturating_sub(a.nodes) < p.min_nodes {
            continue;
        }
        out.push(Decision::Withdraw {
            id: a.id.clone(),
            cause: Cause::AboveMax {
                have,
                max: p.max_nodes,
            },
        });
        pending.retain(|x| x.id != a.id);
    }
    let mut idle: Vec<(&NodeView, u64)> = view
        .nodes
        .iter()
        .filter_map(|n| match n.activity {
            Activity::Idle { since } => Some((n, since)),
            Activity::Busy => None,
        })
        .collect();
    // Longest idle first; among equals, the highest name (the newest node) first.
    idle.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.name.cmp(&a.0.name)));
    let mut idle = idle.into_iter().peekable();
    while let Some((n, _)) = idle.peek() {
        let have = total(up, &pending);
        if have <= p.max_nodes {
            break;
        }
        out.push(Decision::Remove {
            node: n.name.clone(),
            cause: Cause::AboveMax {
                have,
                max: p.max_nodes,
            },
        });
        up -= 1;
        idle.next();
    }

    // Idle timeout: above min_nodes only.
    for (n, since) in idle {
        let idle_ms = now.saturating_sub(since);
        if idle_ms < p.idle_timeout_ms || total(up, &pending) <= p.min_nodes {
            continue;
        }
        out.push(Decision::Remove {
            node: n.name.clone(),
            cause: Cause::Idle {
                idle_ms,
                timeout_ms: p.idle_timeout_ms,
            },
        });
        up -= 1;
    }

    // Queued allocations no work needs (and not needed for min_nodes).
    if needed == 0 {
        for a in &queued {
            if !pending.iter().any(|x| x.id == a.id) {
                continue;
            }
            let waited_ms = now.saturating_sub(a.since);
            let after = total(up, &pending).saturating_sub(a.nodes);
            if waited_ms < p.idle_timeout_ms || after < p.min_nodes {
                continue;
            }
            out.push(Decision::Withdraw {
                id: a.id.clone(),
                cause: Cause::NoWork { waited_ms },
            });
            pending.retain(|x| x.id != a.id);
        }
    }

    // Scale up: for min_nodes, then for the backlog; whole allocations under the cap only.
    let have = total(up, &pending);
    let for_min = p.min_nodes.saturating_sub(have);
    let for_backlog = needed.saturating_sub(coming(&pending));
    let want = for_min.max(for_backlog);
    let room = p.max_nodes.saturating_sub(have) / per;
    let slots = p
        .max_pending
        .saturating_sub(u32::try_from(pending.len()).unwrap_or(u32::MAX));
    let allocations = want.div_ceil(per).min(room).min(slots);
    if allocations > 0 {
        let cause = if for_backlog >= for_min {
            Cause::Backlog {
                instances,
                needed,
                have,
            }
        } else {
            Cause::MinNodes {
                have,
                min: p.min_nodes,
            }
        };
        out.push(Decision::Create { allocations, cause });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn policy(min: u32, max: u32) -> Policy {
        Policy {
            min_nodes: min,
            max_nodes: max,
            idle_timeout_ms: 30 * S,
            max_pending: 10,
            nodes_per_allocation: 1,
        }
    }

    const SHAPE: Shape = Shape {
        millicpus: 2000,
        memory: Some(4 << 30),
    };

    fn work(count: u32, cpus: u32, memory: u64) -> Backlog {
        Backlog {
            resources: Resources {
                millicpus: cpus * 1000,
                memory,
                disk: 0,
            },
            count,
        }
    }

    fn busy(name: &str) -> NodeView {
        NodeView {
            name: name.into(),
            activity: Activity::Busy,
        }
    }

    fn idle(name: &str, since: u64) -> NodeView {
        NodeView {
            name: name.into(),
            activity: Activity::Idle { since },
        }
    }

    fn queued(id: &str, nodes: u32, since: u64) -> PendingView {
        PendingView {
            id: id.into(),
            nodes,
            queued: true,
            since,
        }
    }

    fn run(
        p: Policy,
        nodes: &[NodeView],
        pending: &[PendingView],
        backlog: &[Backlog],
        now: u64,
    ) -> Vec<Decision> {
        plan(&View {
            policy: p,
            shape: SHAPE,
            nodes,
            pending,
            backlog,
            now,
        })
    }

    fn creates(d: &[Decision]) -> u32 {
        d.iter()
            .map(|d| match d {
                Decision::Create { allocations, .. } => *allocations,
                _ => 0,
            })
            .sum()
    }

    fn removed(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Remove { node, .. } => Some(node.as_str()),
                Decision::Withdraw { id, .. } => Some(id.as_str()),
                Decision::Create { .. } => None,
            })
            .collect()
    }

    /// (what, policy, nodes, pending, backlog, now) → (allocations made, what is removed).
    type Case<'a> = (
        &'a str,
        Policy,
        Vec<NodeView>,
        Vec<PendingView>,
        Vec<Backlog>,
        u64,
        u32,
        Vec<&'a str>,
    );

    #[test]
    fn decisions_table() {
        let slow = |n| Policy {
            max_pending: n,
            ..policy(0, 10)
        };
        let pairs = |n| Policy {
            nodes_per_allocation: 2,
            ..policy(0, n)
        };
        let cases: Vec<Case> = vec![
            (
                "nothing to do",
                policy(0, 4),
                vec![],
                vec![],
                vec![],
                0,
                0,
                vec![],
            ),
            (
                "min nodes warm",
                policy(2, 4),
                vec![],
                vec![],
                vec![],
                0,
                2,
                vec![],
            ),
            (
                "backlog by cpus: 9 one-cpu instances on two-cpu nodes",
                policy(0, 10),
                vec![],
                vec![],
                vec![work(9, 1, 0)],
                0,
                5,
                vec![],
            ),
            (
                "backlog by memory: 3 instances of 3GiB on 4GiB nodes",
                policy(0, 10),
                vec![],
                vec![],
                vec![work(3, 1, 3 << 30)],
                0,
                3,
                vec![],
            ),
            (
                "capped by max_nodes",
                policy(0, 2),
                vec![],
                vec![],
                vec![work(200, 1, 0)],
                0,
                2,
                vec![],
            ),
            (
                "nodes on their way count against the backlog",
                policy(0, 10),
                vec![busy("a")],
                vec![queued("p", 3, 0)],
                vec![work(8, 1, 0)],
                0,
                1,
                vec![],
            ),
            (
                "pending cap",
                slow(2),
                vec![],
                vec![queued("p", 1, 0)],
                vec![work(20, 1, 0)],
                0,
                1,
                vec![],
            ),
            (
                "instances bigger than a node are not counted",
                policy(0, 10),
                vec![],
                vec![],
                vec![work(5, 8, 0)],
                0,
                0,
                vec![],
            ),
            (
                "an idle node goes after its timeout",
                policy(0, 4),
                vec![busy("a"), idle("b", 0)],
                vec![],
                vec![],
                30 * S,
                0,
                vec!["b"],
            ),
            (
                "not before",
                policy(0, 4),
                vec![idle("b", 0)],
                vec![],
                vec![],
                29 * S,
                0,
                vec![],
            ),
            (
                "not below min_nodes, longest idle first",
                policy(1, 4),
                vec![idle("a", 5 * S), idle("b", 0)],
                vec![],
                vec![],
                90 * S,
                0,
                vec!["b"],
            ),
            (
                "busy nodes stay even above max",
                policy(0, 1),
                vec![busy("a"), busy("b"), idle("c", 99 * S)],
                vec![],
                vec![],
                100 * S,
                0,
                vec!["c"],
            ),
            (
                "above max: queued allocations go first",
                policy(0, 2),
                vec![busy("a"), idle("b", 99 * S)],
                vec![queued("p", 1, 0)],
                vec![],
                100 * S,
                0,
                vec!["p"],
            ),
            (
                "a queued allocation no work needs is withdrawn after the timeout",
                policy(0, 4),
                vec![],
                vec![queued("p", 1, 0)],
                vec![],
                30 * S,
                0,
                vec!["p"],
            ),
            (
                "but kept while work needs it",
                policy(0, 4),
                vec![],
                vec![queued("p", 1, 0)],
                vec![work(1, 1, 0)],
                30 * S,
                0,
                vec![],
            ),
            (
                "and kept for min_nodes",
                policy(1, 4),
                vec![],
                vec![queued("p", 1, 0)],
                vec![],
                30 * S,
                0,
                vec![],
            ),
            (
                "whole allocations only: 5 nodes under a cap of 5 make 2 pairs",
                pairs(5),
                vec![],
                vec![],
                vec![work(40, 1, 0)],
                0,
                2,
                vec![],
            ),
            (
                "a pair that does not fit under the cap is not made",
                pairs(5),
                vec![busy("a"), busy("b"), busy("c"), busy("d")],
                vec![],
                vec![work(40, 1, 0)],
                0,
                0,
                vec![],
            ),
            (
                "fixed size ignores idleness",
                Policy::fixed(2, 1),
                vec![idle("a", 0), idle("b", 0)],
                vec![],
                vec![],
                u64::MAX / 2,
                0,
                vec![],
            ),
        ];
        for (what, p, nodes, pending, backlog, now, made, gone) in cases {
            let d = run(p, &nodes, &pending, &backlog, now);
            assert_eq!(creates(&d), made, "{what}: {d:?}");
            assert_eq!(removed(&d), gone, "{what}: {d:?}");
        }
    }

    #[test]
    fn causes_read_as_sentences() {
        let d = run(policy(0, 2), &[], &[], &[work(200, 1, 0)], 0);
        assert_eq!(
            d,
            [Decision::Create {
                allocations: 2,
                cause: Cause::Backlog {
                    instances: 200,
                    needed: 100,
                    have: 0
                }
            }]
        );
        let Decision::Create { cause, .. } = &d[0] else {
            unreachable!()
        };
        assert_eq!(
            cause.to_string(),
            "200 RUNNABLE instance(s) need 100 node(s), 0 up or on their way"
        );
        let d = run(policy(0, 2), &[idle("a", 0)], &[], &[], 45 * S);
        assert_eq!(
            d,
            [Decision::Remove {
                node: "a".into(),
                cause: Cause::Idle {
                    idle_ms: 45 * S,
                    timeout_ms: 30 * S
                }
            }]
        );
        assert_eq!(
            Cause::Idle {
                idle_ms: 45 * S,
                timeout_ms: 30 * S
            }
            .to_string(),
            "idle for 45s (idle_timeout 30s)"
        );
    }
}

/// The state of a compute environment as a whole, from its nodes' states (Tencent's names:
/// `CREATING`, `CREATION_FAILED`, `RUNNING`, `ABNORMAL`, `DELETING`) and whether node creation
/// is failing now (the latest attempt failed and no node came up since).
///
/// In order: any running node makes it `RUNNING`, unless creations fail and nothing runs; an
/// abnormal node (and none running) `ABNORMAL`; nodes on their way `CREATING`; only draining
/// nodes `DELETING`; no nodes at all `RUNNING` (an empty environment is healthy).
pub fn env_state<'a>(
    nodes: impl IntoIterator<Item = &'a str>,
    creation_failing: bool,
) -> &'static str {
    let states: Vec<&str> = nodes.into_iter().collect();
    let has = |s: &str| states.contains(&s);
    if has("RUNNING") {
        "RUNNING"
    } else if creation_failing || has("CREATION_FAILED") {
        "CREATION_FAILED"
    } else if has("ABNORMAL") {
        "ABNORMAL"
    } else if has("CREATING") {
        "CREATING"
    } else if has("DELETING") {
        "DELETING"
    } else {
        "RUNNING"
    }
}

#[cfg(test)]
mod env_state_tests {
    use super::env_state;

    #[test]
    fn an_environment_s_state_follows_its_nodes() {
        assert_eq!(env_state([], false), "RUNNING");
        assert_eq!(env_state([], true), "CREATION_FAILED");
        assert_eq!(env_state(["RUNNING", "CREATION_FAILED"], true), "RUNNING");
        assert_eq!(env_state(["ABNORMAL", "CREATING"], false), "ABNORMAL");
        assert_eq!(env_state(["CREATING"], false), "CREATING");
        assert_eq!(env_state(["DELETING"], false), "DELETING");
    }
}
