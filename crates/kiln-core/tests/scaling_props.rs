//! Properties of the scaling planner over random environments: never above `max_nodes`, never
//! below `min_nodes`, never more allocations on their way than allowed, a node that runs work is
//! never removed, and an idle one only after its idle timeout (or above the cap).

use std::collections::BTreeSet;

use kiln_core::model::Resources;
use kiln_core::scaling::{
    Activity, Backlog, Decision, NodeView, PendingView, Policy, Shape, View, plan,
};
use proptest::prelude::*;

fn policy() -> impl Strategy<Value = Policy> {
    (0u32..6, 0u32..6, 0u64..100_000, 0u32..5, 1u32..4).prop_map(
        |(a, b, idle_timeout_ms, max_pending, per)| Policy {
            min_nodes: a.min(b),
            max_nodes: a.max(b),
            idle_timeout_ms,
            max_pending,
            nodes_per_allocation: per,
        },
    )
}

fn nodes() -> impl Strategy<Value = Vec<NodeView>> {
    prop::collection::vec(prop::option::of(0u64..200_000), 0..9).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, idle)| NodeView {
                name: format!("n{i}"),
                activity: idle.map_or(Activity::Busy, |since| Activity::Idle { since }),
            })
            .collect()
    })
}

fn pending() -> impl Strategy<Value = Vec<PendingView>> {
    prop::collection::vec((1u32..4, any::<bool>(), 0u64..200_000), 0..4).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (nodes, queued, since))| PendingView {
                id: format!("a{i}"),
                nodes,
                queued,
                since,
            })
            .collect()
    })
}

fn backlog() -> impl Strategy<Value = Vec<Backlog>> {
    prop::collection::vec((1u32..5000, 0u64..(8 << 30), 0u32..300), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(millicpus, memory, count)| Backlog {
                resources: Resources {
                    millicpus,
                    memory,
                    disk: 0,
                },
                count,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_planner_keeps_its_bounds(
        p in policy(),
        nodes in nodes(),
        pending in pending(),
        backlog in backlog(),
        now in 100_000u64..400_000,
        memory in prop::option::of(1u64..(16 << 30)),
    ) {
        let shape = Shape { millicpus: 2000, memory };
        let view = View { policy: p, shape, nodes: &nodes, pending: &pending, backlog: &backlog, now };
        let decisions = plan(&view);

        let coming: u32 = pending.iter().map(|a| a.nodes).sum();
        let before = nodes.len() as u32 + coming;
        let mut removed = BTreeSet::new();
        let mut withdrawn = BTreeSet::new();
        let mut created = 0;
        for d in &decisions {
            match d {
                Decision::Remove { node, .. } => {
                    let n = nodes.iter().find(|n| &n.name == node);
                    prop_assert!(n.is_some(), "removed an unknown node {node}");
                    let Some(n) = n else { unreachable!() };
                    let Activity::Idle { since } = n.activity else {
                        return Err(TestCaseError::fail(format!("removed busy {node}: {decisions:?}")));
                    };
                    prop_assert!(
                        now.saturating_sub(since) >= p.idle_timeout_ms || before > p.max_nodes,
                        "removed {node} before its idle timeout: {decisions:?}"
                    );
                    prop_assert!(removed.insert(node.clone()), "removed {node} twice");
                }
                Decision::Withdraw { id, .. } => {
                    let a = pending.iter().find(|a| &a.id == id);
                    prop_assert!(a.is_some_and(|a| a.queued), "withdrew {id}, not queued");
                    prop_assert!(withdrawn.insert(id.clone()), "withdrew {id} twice");
                }
                Decision::Create { allocations, .. } => {
                    prop_assert!(*allocations > 0);
                    prop_assert_eq!(created, 0, "two creates");
                    created = *allocations;
                }
            }
        }
        let gone: u32 = removed.len() as u32
            + pending.iter().filter(|a| withdrawn.contains(&a.id)).map(|a| a.nodes).sum::<u32>();
        let after_removals = before - gone;
        let after = after_removals + created * p.nodes_per_allocation;
        // Never above max_nodes: nothing is made that would go above it.
        if before <= p.max_nodes || created > 0 {
            prop_assert!(after <= p.max_nodes, "above max: {before} -> {after}: {decisions:?}");
        }
        // Never below min_nodes by removing.
        prop_assert!(after_removals >= before.min(p.min_nodes), "below min: {decisions:?}");
        // Never more allocations on their way than allowed (only new ones are capped).
        let waiting = pending.len() as u32 - withdrawn.len() as u32;
        if created > 0 {
            prop_assert!(waiting + created <= p.max_pending, "pending cap: {decisions:?}");
        }
    }

    /// Run round after round with nodes coming up and going idle: the size stays within bounds
    /// and settles at min_nodes once the work is gone.
    #[test]
    fn a_backlog_scales_up_and_back_down(p in policy(), work in 0u32..500) {
        let p = Policy { max_pending: p.max_pending.max(1), ..p };
        let shape = Shape { millicpus: 1000, memory: None };
        let mut nodes: Vec<NodeView> = Vec::new();
        let mut next = 0;
        let mut now = 0u64;
        for round in 0..60u32 {
            let backlog = if round < 20 {
                vec![Backlog { resources: Resources { millicpus: 1000, memory: 0, disk: 0 }, count: work }]
            } else {
                Vec::new()
            };
            for n in &mut nodes {
                if round == 20 {
                    n.activity = Activity::Idle { since: now };
                } else if round < 20 {
                    n.activity = Activity::Busy;
                }
            }
            let view = View { policy: p, shape, nodes: &nodes, pending: &[], backlog: &backlog, now };
            for d in plan(&view) {
                match d {
                    Decision::Remove { node, .. } => nodes.retain(|n| n.name != node),
                    Decision::Create { allocations, .. } => {
                        for _ in 0..allocations * p.nodes_per_allocation {
                            nodes.push(NodeView {
                                name: format!("n{next}"),
                                activity: Activity::Idle { since: now },
                            });
                            next += 1;
                        }
                    }
                    Decision::Withdraw { .. } => {}
                }
            }
            prop_assert!(nodes.len() as u32 <= p.max_nodes);
            now += 10_000;
        }
        // Settled: min_nodes rounded up to whole allocations, at most max.
        let floor = p.min_nodes.div_ceil(p.nodes_per_allocation) * p.nodes_per_allocation;
        if p.idle_timeout_ms <= 390_000 && floor <= p.max_nodes {
            prop_assert!(
                nodes.len() as u32 >= p.min_nodes && nodes.len() as u32 <= floor.max(p.min_nodes),
                "{} nodes left with {p:?}", nodes.len()
            );
        }
    }
}
