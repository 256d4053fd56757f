//! Backlog scaling, the shell around [`kiln_core::scaling::plan`]: an environment with
//! `max_nodes` grows with the `RUNNABLE` instances that name it and shrinks as its nodes go
//! idle. This module reads the policy from the environment's fields, tracks since when each
//! node is idle, keeps the activities (Tencent's `DescribeComputeEnvActivities`: one per node
//! made or removed, with its cause), and applies the planner's decisions to `local` and
//! `docker` environments: a removal drains the idle node; a creation opens an activity, and the
//! provider's reconciler makes the node (the environment's target size counts open creations).
//! The `slurm` provider applies them in its own loop ([`super::slurm`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kiln_api::{ActivityInfo, ComputeEnv};
use kiln_core::scaling::{Activity as Load, Decision, NodeView, PendingView, Policy, Shape, View};
use kiln_store::ComputeEnvRecord;

use super::{NodeShape, env_of, invalid};
use crate::cluster::NodeState;
use crate::driver::{Driver, now_ms};
use crate::jobs::JobOpError;
use crate::wire::rfc3339;

/// A node idle this long is removed, unless the environment says otherwise.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 5 * 60_000;
/// Allocations on their way at once, unless the environment says otherwise.
pub const DEFAULT_MAX_PENDING: u32 = 4;
/// The most nodes an environment may have.
pub const MAX_NODES: u32 = 1000;
/// Activities kept per environment (the oldest are dropped).
const ACTIVITIES_KEPT: usize = 500;
/// A node being made that has not registered by then is given up (its activity `FAILED`).
const CREATE_GRACE_MS: u64 = 120_000;

/// Checks the scaling fields and returns the environment's policy: `None` for a fixed size
/// (`desired_nodes`). `per_allocation` is how many nodes one allocation brings.
pub fn policy_of(e: &ComputeEnv, per_allocation: u32) -> Result<Option<Policy>, JobOpError> {
    let Some(max) = e.max_nodes else {
        for (field, given) in [
            ("min_nodes", e.min_nodes.is_some()),
            ("idle_timeout", e.idle_timeout.is_some()),
            (
                "max_pending_allocations",
                e.max_pending_allocations.is_some(),
            ),
        ] {
            if given {
                return Err(invalid(
                    field,
                    format!("`{field}` is for backlog scaling: give `max_nodes` too"),
                ));
            }
        }
        return Ok(None);
    };
    if e.provider == "static" {
        return Err(invalid(
            "max_nodes",
            "a static environment's nodes are started by hand: it cannot scale with the backlog",
        ));
    }
    if e.desired_nodes > 0 {
        return Err(invalid(
            "desired_nodes",
            "give `desired_nodes` for a fixed size or `min_nodes`/`max_nodes` for backlog \
             scaling, not both",
        ));
    }
    if max == 0 || max > MAX_NODES {
        return Err(invalid(
            "max_nodes",
            format!("max_nodes must be 1 to {MAX_NODES}"),
        ));
    }
    let min = e.min_nodes.unwrap_or(0);
    if min > max {
        return Err(invalid(
            "min_nodes",
            format!("min_nodes ({min}) must not exceed max_nodes ({max})"),
        ));
    }
    if per_allocation > max {
        return Err(invalid(
            "workers_per_allocation",
            format!(
                "one allocation brings {per_allocation} nodes, more than max_nodes ({max}): \
                 none could ever be made"
            ),
        ));
    }
    let idle_timeout_ms = match &e.idle_timeout {
        None => DEFAULT_IDLE_TIMEOUT_MS,
        Some(t) => kiln_core::spec::parse_duration(t).map_err(|m| invalid("idle_timeout", m))?,
    };
    let max_pending = e.max_pending_allocations.unwrap_or(DEFAULT_MAX_PENDING);
    if max_pending == 0 {
        return Err(invalid(
            "max_pending_allocations",
            "max_pending_allocations must be at least 1",
        ));
    }
    Ok(Some(Policy {
        min_nodes: min,
        max_nodes: max,
        idle_timeout_ms,
        max_pending,
        nodes_per_allocation: per_allocation.max(1),
    }))
}

/// What the scheduler counts of one node of an environment: its slots as CPUs, and its memory
/// if the environment states it.
pub fn planner_shape(slots: u32, shape: &NodeShape) -> Shape {
    Shape {
        millicpus: u64::from(slots.max(1)) * 1000,
        memory: shape.memory,
    }
}

/// `CREATE_COMPUTE_NODE` or `TERMINATE_COMPUTE_NODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Terminate,
}

/// Tencent's activity states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActState {
    Submitted,
    Processing,
    Succeed,
    Failed,
}

impl ActState {
    fn as_str(self) -> &'static str {
        match self {
            ActState::Submitted => "SUBMITTED",
            ActState::Processing => "PROCESSING",
            ActState::Succeed => "SUCCEED",
            ActState::Failed => "FAILED",
        }
    }

    fn is_open(self) -> bool {
        matches!(self, ActState::Submitted | ActState::Processing)
    }
}

/// One activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    pub id: String,
    pub env: String,
    pub node: Option<String>,
    pub kind: Kind,
    pub cause: String,
    pub state: ActState,
    pub reason: Option<String>,
    pub start: u64,
    pub end: Option<u64>,
    /// What the provider made (a Slurm job id).
    pub instance: Option<String>,
}

impl ActivityRecord {
    fn info(&self) -> ActivityInfo {
        ActivityInfo {
            activity_id: self.id.clone(),
            compute_node_id: self.node.clone(),
            compute_node_activity_type: match self.kind {
                Kind::Create => "CREATE_COMPUTE_NODE",
                Kind::Terminate => "TERMINATE_COMPUTE_NODE",
            }
            .into(),
            env_id: self.env.clone(),
            cause: self.cause.clone(),
            activity_state: self.state.as_str().into(),
            state_reason: self.reason.clone(),
            start_time: rfc3339(self.start),
            end_time: self.end.map(rfc3339),
            instance_id: self.instance.clone(),
        }
    }

    /// Ends the activity (once).
    pub fn finish(&mut self, state: ActState, reason: Option<String>, now: u64) {
        if self.state.is_open() {
            self.state = state;
            self.reason = reason;
            self.end = Some(now);
        }
    }
}

/// Every environment's activities, and what holds its capacity back (its `status`: set by the
/// provider loops, read by `GET /v1/compute-envs` and `kiln why` off the driver thread).
/// Shared by the driver, the provider loops and the HTTP handlers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Activities {
    inner: Arc<Mutex<ActivityLog>>,
}

#[derive(Debug, Default)]
struct ActivityLog {
    next: u64,
    by_env: BTreeMap<String, VecDeque<ActivityRecord>>,
    status: BTreeMap<String, String>,
    health: BTreeMap<String, Health>,
}

/// What the provider last said went wrong with an environment's nodes.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// The last provider error and when (ms since the epoch).
    pub last_error: Option<(String, u64)>,
    /// Node creations that failed, since the server started.
    pub creation_failures: u32,
    /// Nodes whose creation failed since a node last came up: name → error.
    pub failed_nodes: BTreeMap<String, String>,
}

impl Health {
    /// Whether creating nodes fails now: the latest creation failed and none came up since.
    pub fn creation_failing(&self) -> bool {
        !self.failed_nodes.is_empty()
    }
}

const PREFIX_FAILING: &str = "node creation failing: ";

impl Activities {
    fn lock(&self) -> MutexGuard<'_, ActivityLog> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new activity; returns its id.
    pub fn record(
        &self,
        env: &str,
        kind: Kind,
        node: Option<String>,
        cause: String,
        now: u64,
    ) -> String {
        let mut log = self.lock();
        log.next += 1;
        let id = format!("act-{}", log.next);
        let list = log.by_env.entry(env.to_string()).or_default();
        list.push_back(ActivityRecord {
            id: id.clone(),
            env: env.to_string(),
            node,
            kind,
            cause,
            state: match kind {
                Kind::Create => ActState::Submitted,
                Kind::Terminate => ActState::Processing,
            },
            reason: None,
            start: now,
            end: None,
            instance: None,
        });
        while list.len() > ACTIVITIES_KEPT {
            list.pop_front();
        }
        id
    }

    /// Changes the activity `id` of `env`, if it is still kept.
    pub fn update(&self, env: &str, id: &str, f: impl FnOnce(&mut ActivityRecord)) {
        if let Some(a) = self
            .lock()
            .by_env
            .get_mut(env)
            .and_then(|l| l.iter_mut().find(|a| a.id == id))
        {
            f(a);
        }
    }

    /// Changes every activity of `env` that `select` picks.
    pub fn update_all(
        &self,
        env: &str,
        select: impl Fn(&ActivityRecord) -> bool,
        f: impl Fn(&mut ActivityRecord),
    ) {
        if let Some(list) = self.lock().by_env.get_mut(env) {
            list.iter_mut().filter(|a| select(a)).for_each(f);
        }
    }

    /// Open creations of `env` not tied to a provider's allocation: (id, since).
    fn open_creations(&self, env: &str) -> Vec<(String, u64)> {
        self.lock().by_env.get(env).map_or_else(Vec::new, |l| {
            l.iter()
                .filter(|a| a.kind == Kind::Create && a.state.is_open() && a.instance.is_none())
                .map(|a| (a.id.clone(), a.start))
                .collect()
        })
    }

    /// A new node of `env` registered: the oldest open creation (of `local` and `docker`
    /// environments) made it.
    pub fn node_joined(&self, env: &str, node: &str, now: u64) {
        if let Some(a) = self.lock().by_env.get_mut(env).and_then(|l| {
            l.iter_mut().find(|a| {
                a.kind == Kind::Create
                    && a.state.is_open()
                    && a.instance.is_none()
                    && a.node.is_none()
            })
        }) {
            a.node = Some(node.to_string());
            a.finish(ActState::Succeed, None, now);
        }
    }

    /// Newest first: `(total, page)`.
    pub fn page(&self, env: &str, offset: usize, limit: usize) -> (usize, Vec<ActivityInfo>) {
        let log = self.lock();
        let Some(list) = log.by_env.get(env) else {
            return (0, Vec::new());
        };
        let page = list
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(ActivityRecord::info)
            .collect();
        (list.len(), page)
    }

    /// Drops the activities and status of a deleted environment.
    pub fn forget(&self, env: &str) {
        let mut log = self.lock();
        log.by_env.remove(env);
        log.status.remove(env);
        log.health.remove(env);
    }

    /// Creating `node` of `env` failed with `error`: counted, kept as the last error, and what
    /// holds the environment back (`kiln why`: `NO_CAPACITY env: node creation failing: …`).
    pub fn creation_failed(&self, env: &str, node: &str, error: &str, now: u64) {
        let mut log = self.lock();
        let h = log.health.entry(env.to_string()).or_default();
        h.creation_failures = h.creation_failures.saturating_add(1);
        h.last_error = Some((error.to_string(), now));
        h.failed_nodes.insert(node.to_string(), error.to_string());
        log.status
            .insert(env.to_string(), format!("{PREFIX_FAILING}{error}"));
    }

    /// A node of `env` came up: creation works again (the last error and the count stay).
    pub fn creation_works(&self, env: &str) {
        let mut log = self.lock();
        if let Some(h) = log.health.get_mut(env) {
            h.failed_nodes.clear();
        }
        if log
            .status
            .get(env)
            .is_some_and(|s| s.starts_with(PREFIX_FAILING))
        {
            log.status.remove(env);
        }
    }

    /// What the provider said went wrong with `env`'s nodes.
    pub fn health(&self, env: &str) -> Health {
        self.lock().health.get(env).cloned().unwrap_or_default()
    }

    /// Says what holds `env`'s capacity back (`None`: nothing).
    pub fn set_status(&self, env: &str, status: Option<String>) {
        let mut log = self.lock();
        match status {
            Some(s) => log.status.insert(env.to_string(), s),
            None => log.status.remove(env),
        };
    }

    /// What holds `env`'s capacity back, for people.
    pub fn status(&self, env: &str) -> Option<String> {
        self.lock().status.get(env).cloned()
    }
}

/// The driver's side of scaling: since when each node is idle, and the activities.
#[derive(Debug, Default)]
pub struct Scaling {
    pub(crate) activities: Activities,
    idle_since: BTreeMap<String, u64>,
}

impl Driver {
    /// The scaling policy of a stored environment (`None`: fixed size, or a record that no
    /// longer checks).
    fn stored_policy(r: &ComputeEnvRecord) -> Option<Policy> {
        policy_of(&env_of(r), 1).ok().flatten()
    }

    /// How many nodes a `local` or `docker` environment should have now: `desired_nodes`, or
    /// under backlog scaling its live nodes plus those being made.
    pub(crate) fn env_target(&self, r: &ComputeEnvRecord) -> u32 {
        if Self::stored_policy(r).is_none() {
            return r.desired_nodes;
        }
        let live = self.env_members(&r.name).len();
        let coming = self
            .providers
            .scaling
            .activities
            .open_creations(&r.name)
            .len();
        u32::try_from(live + coming).unwrap_or(u32::MAX)
    }

    /// The registered nodes of `env` that take work, busy or idle (since when). Updates the
    /// idle clocks of every node seen.
    pub(crate) fn node_views(&mut self, env: &str, now: u64) -> Vec<NodeView> {
        let load = self.engine().node_load();
        let mut out = Vec::new();
        let names: Vec<String> = self
            .agents()
            .list()
            .filter(|a| a.compute_env.as_deref() == Some(env) && a.state == NodeState::Running)
            .map(|a| a.name.clone())
            .collect();
        for name in names {
            let busy = self
                .engine()
                .node_index(&name)
                .and_then(|i| load.get(i))
                .is_some_and(|n| *n > 0);
            let idle = &mut self.providers.scaling.idle_since;
            let activity = if busy {
                idle.remove(&name);
                Load::Busy
            } else {
                Load::Idle {
                    since: *idle.entry(name.clone()).or_insert(now),
                }
            };
            out.push(NodeView { name, activity });
        }
        out
    }

    /// One scaling round for the `local` and `docker` environments with backlog scaling.
    pub(crate) fn scale_envs(&mut self) {
        let Ok(envs) = self.store().list_compute_envs() else {
            return;
        };
        let now = now_ms();
        let known: Vec<String> = self.agents().list().map(|a| a.name.clone()).collect();
        self.providers
            .scaling
            .idle_since
            .retain(|n, _| known.contains(n));
        for r in envs
            .iter()
            .filter(|r| matches!(r.provider.as_str(), "local" | "docker"))
        {
            let Some(policy) = Self::stored_policy(r) else {
                continue;
            };
            let env = env_of(r);
            let Ok(shape) = super::check_env(&env, &self.catalog) else {
                continue;
            };
            let activities = self.providers.scaling.activities.clone();
            // Removals end when the node has left; creations that never registered fail.
            activities.update_all(
                &r.name,
                |a| a.state.is_open() && a.instance.is_none(),
                |a| match a.kind {
                    Kind::Terminate if a.node.as_ref().is_some_and(|n| !known.contains(n)) => {
                        a.finish(ActState::Succeed, None, now);
                    }
                    Kind::Create if now.saturating_sub(a.start) > CREATE_GRACE_MS => a.finish(
                        ActState::Failed,
                        Some("the node did not register in time".into()),
                        now,
                    ),
                    Kind::Terminate | Kind::Create => {}
                },
            );
            let nodes = self.node_views(&r.name, now);
            let pending: Vec<PendingView> = activities
                .open_creations(&r.name)
                .into_iter()
                .map(|(id, since)| PendingView {
                    id,
                    nodes: 1,
                    queued: false,
                    since,
                })
                .collect();
            let backlog = self.engine().backlog(&r.name);
            let slots = env.slots.unwrap_or_else(|| shape.default_slots());
            let view = View {
                policy,
                shape: planner_shape(slots, &shape),
                nodes: &nodes,
                pending: &pending,
                backlog: &backlog,
                now,
            };
            for d in kiln_core::scaling::plan(&view) {
                match d {
                    Decision::Remove { node, cause } => {
                        tracing::info!("{}: removing idle node {node}: {cause}", r.name);
                        self.drain_agent(&node);
                        activities.record(
                            &r.name,
                            Kind::Terminate,
                            Some(node),
                            cause.to_string(),
                            now,
                        );
                    }
                    Decision::Create { allocations, cause } => {
                        tracing::info!("{}: making {allocations} node(s): {cause}", r.name);
                        for _ in 0..allocations {
                            activities.record(&r.name, Kind::Create, None, cause.to_string(), now);
                        }
                    }
                    // Nodes being made here cannot be withdrawn (the planner never asks).
                    Decision::Withdraw { .. } => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(v: serde_json::Value) -> ComputeEnv {
        serde_json::from_value(v).unwrap()
    }

    fn refused(v: serde_json::Value) -> String {
        match policy_of(&env(v), 1) {
            Err(JobOpError::Invalid { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn policies_come_from_the_scaling_fields() {
        let p = policy_of(
            &env(serde_json::json!({
                "name": "p", "provider": "local", "min_nodes": 1, "max_nodes": 3,
                "idle_timeout": "30s", "max_pending_allocations": 2
            })),
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.min_nodes, p.max_nodes, p.idle_timeout_ms, p.max_pending),
            (1, 3, 30_000, 2)
        );
        let fixed = env(serde_json::json!({"name": "p", "provider": "local", "desired_nodes": 2}));
        assert_eq!(policy_of(&fixed, 1).unwrap(), None);
        let defaults = policy_of(
            &env(serde_json::json!({"name": "p", "provider": "docker", "max_nodes": 2})),
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(defaults.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT_MS);
        assert_eq!(defaults.max_pending, DEFAULT_MAX_PENDING);
    }

    #[test]
    fn bad_scaling_fields_are_refused_by_name() {
        use serde_json::json;
        for (v, field) in [
            (
                json!({"name": "p", "provider": "local", "min_nodes": 1}),
                "min_nodes",
            ),
            (
                json!({"name": "p", "provider": "local", "idle_timeout": "1m"}),
                "idle_timeout",
            ),
            (
                json!({"name": "p", "provider": "local", "max_nodes": 2, "desired_nodes": 1}),
                "desired_nodes",
            ),
            (
                json!({"name": "p", "provider": "local", "max_nodes": 0}),
                "max_nodes",
            ),
            (
                json!({"name": "p", "provider": "static", "max_nodes": 2}),
                "max_nodes",
            ),
            (
                json!({"name": "p", "provider": "local", "max_nodes": 2, "min_nodes": 3}),
                "min_nodes",
            ),
            (
                json!({"name": "p", "provider": "local", "max_nodes": 2, "idle_timeout": "soon"}),
                "idle_timeout",
            ),
            (
                json!({"name": "p", "provider": "local", "max_nodes": 2, "max_pending_allocations": 0}),
                "max_pending_allocations",
            ),
        ] {
            assert_eq!(refused(v.clone()), field, "{v}");
        }
        let pairs = env(json!({"name": "p", "provider": "slurm", "max_nodes": 1}));
        assert!(matches!(
            policy_of(&pairs, 2),
            Err(JobOpError::Invalid { field, .. }) if field == "workers_per_allocation"
        ));
    }

    #[test]
    fn activities_are_listed_newest_first_and_creations_end_when_a_node_joins() {
        let a = Activities::default();
        let first = a.record("p", Kind::Create, None, "min_nodes".into(), 1_000);
        a.record("p", Kind::Create, None, "backlog".into(), 2_000);
        a.node_joined("p", "p-1", 3_000);
        let (total, page) = a.page("p", 0, 10);
        assert_eq!(total, 2);
        assert_eq!(page[0].activity_state, "SUBMITTED");
        assert_eq!(page[1].activity_id, first);
        assert_eq!(page[1].compute_node_id.as_deref(), Some("p-1"));
        assert_eq!(page[1].activity_state, "SUCCEED");
        assert_eq!(page[1].compute_node_activity_type, "CREATE_COMPUTE_NODE");
        assert_eq!(a.open_creations("p").len(), 1);
        assert_eq!(a.page("p", 1, 10).1.len(), 1);
        a.forget("p");
        assert_eq!(a.page("p", 0, 10).0, 0);
    }
}
