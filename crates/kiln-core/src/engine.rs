//! The engine: the in-memory state of every live job and the scheduler's decisions.
//!
//! Pure: the shell feeds it events with the current time (`now`, milliseconds since the Unix
//! epoch) and takes back, as data, the [`Change`]s to persist and the [`Dispatch`]es and
//! [`Effect`]s to act on — in that order (persist, then act).
//!
//! Pending instances of a task are not materialised: a task keeps a cursor (`next_fresh`) over
//! the indexes never dispatched, and an instance gets a record only when it is first dispatched.
//! Succeeded instances are kept as one bit each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{DepKind, DependencyPolicy, Image, JobSpec, OnFailure, Resources, TaskSpec};
use crate::state::{
    Instance, InstanceEvent, LossCause, OomGrowth, Outcome, Reason, RetryPolicy, State,
};

/// A job's id, shared cheaply between the engine's records.
pub type JobId = Arc<str>;

/// One attempt of one instance, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    pub state: State,
    pub reason: Option<Reason>,
    pub exit_code: Option<i32>,
    pub node: String,
    /// The process (group) id on the node, once started.
    pub pid: Option<u32>,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    /// The memory the attempt ran with, in bytes (0: no limit stated).
    pub memory: u64,
}

/// What an instance needs of a node: its task's resources, with the memory it was given after
/// running out of it (`on_out_of_memory`).
pub fn resources_of(task: &TaskSpec, inst: &Instance) -> Resources {
    let mut r = task.resources;
    if inst.memory > 0 {
        r.memory = inst.memory;
    }
    r
}

/// A fact to persist. The store upserts each by its key; later changes to the same key win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Job {
        job: JobId,
        state: State,
        reason: Option<Reason>,
        at: u64,
        /// When the job's `timeout` expires (ms since the epoch), if it has one.
        deadline: Option<u64>,
    },
    Task {
        job: JobId,
        task: usize,
        state: State,
        reason: Option<Reason>,
        /// Why the task is being stopped (desired state), if it is.
        stop: Option<Reason>,
        /// When set, every instance never dispatched ended `FAILED` with this reason.
        unstarted: Option<Reason>,
        /// Why ready instances did not dispatch in the last scheduling pass.
        blocked: Option<Reason>,
        /// Every instance of the task (dispatched or not) counted by state, as
        /// [`JobRun::task_view`] counts them: what readers show without the engine.
        counts: Counts,
    },
    Instance {
        job: JobId,
        task: usize,
        index: u32,
        record: Instance,
    },
    Attempt {
        job: JobId,
        task: usize,
        index: u32,
        record: Attempt,
    },
    /// A journal event to write in the batch's transaction, in order (the engine makes none;
    /// the shell adds them, see [`crate::journal::Journal`]).
    Event(crate::journal::Event),
}

/// A decision to start an attempt of an instance on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub job: JobId,
    pub task: usize,
    pub index: u32,
    pub attempt: u32,
    pub node: usize,
}

/// Something the shell must do to a running attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Stop the attempt (its whole process group); it reports `Outcome::Stopped` when gone.
    Kill {
        job: JobId,
        task: usize,
        index: u32,
        attempt: u32,
    },
}

/// What a runtime reports about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started {
        task: usize,
        index: u32,
        attempt: u32,
        pid: Option<u32>,
    },
    Ended {
        task: usize,
        index: u32,
        attempt: u32,
        outcome: Outcome,
    },
}

/// A place instances run, with what it has free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// The compute environment the node belongs to; `None` for the built-in executor, which
    /// runs tasks that name no compute environment.
    pub pool: Option<String>,
    pub millicpus: u64,
    pub memory: u64,
    /// Takes work. False while the node is lost or not (yet) registered.
    pub up: bool,
    /// Takes no new work; running attempts finish.
    pub draining: bool,
    /// How many attempts may wait on the node beyond its capacity, to start the moment
    /// capacity frees (hides the round trip to a remote node). They take capacity only once
    /// they start. 0 for nodes the engine starts attempts on directly.
    pub prefetch: u32,
    /// Runs tasks whose image is a Docker image (a Docker Engine answers on the node).
    pub containers: bool,
    /// When the node goes away (ms; a Slurm allocation's end): it takes only attempts whose
    /// `timeout` ends before then, and none without one after then.
    pub ends_at: Option<u64>,
    queued: u32,
    /// What the attempts holding capacity use: may exceed the node's size for a moment (an
    /// attempt that waited on the node may report its start before the one it waited for
    /// reports its end), and is remembered exactly, so that such an overlap is not mistaken for
    /// free room.
    used_millicpus: u64,
    used_memory: u64,
}

impl Node {
    pub fn new(name: impl Into<String>, millicpus: u64, memory: u64) -> Self {
        Node {
            name: name.into(),
            pool: None,
            millicpus,
            memory,
            up: true,
            draining: false,
            prefetch: 0,
            containers: false,
            ends_at: None,
            queued: 0,
            used_millicpus: 0,
            used_memory: 0,
        }
    }

    /// The same node, in compute environment `pool`.
    pub fn in_pool(mut self, pool: Option<String>) -> Self {
        self.pool = pool;
        self
    }

    /// The same node, letting `n` attempts wait on it beyond its capacity.
    pub fn with_prefetch(mut self, n: u32) -> Self {
        self.prefetch = n;
        self
    }

    /// The same node, able (or not) to run Docker images.
    pub fn with_containers(mut self, containers: bool) -> Self {
        self.containers = containers;
        self
    }

    /// The same node, going away at `ends_at` (ms).
    pub fn with_end(mut self, ends_at: Option<u64>) -> Self {
        self.ends_at = ends_at;
        self
    }

    /// Whether this node may take an instance of `task` needing `r` now.
    fn takes(&self, task: &TaskSpec, r: &Resources, now: u64) -> bool {
        self.open_to(task, now) && self.fits(r)
    }

    /// Whether an instance of `task` needing `r` may wait on this node for capacity. On a
    /// node that goes away, it may start up to one `timeout` later (the slots it waits for are
    /// held by attempts of the same bound), so it must fit twice.
    fn queues(&self, task: &TaskSpec, r: &Resources, now: u64) -> bool {
        let waits = task.timeout_ms.unwrap_or(0);
        self.open_to(task, now.saturating_add(waits))
            && self.queued < self.prefetch
            && self.could_fit(r)
    }

    /// Whether this node is one `task` may ever run on (up or not).
    fn serves(&self, task: &TaskSpec) -> bool {
        self.pool == task.compute_env && (self.containers || task.image == Image::Host)
    }

    fn open_to(&self, task: &TaskSpec, now: u64) -> bool {
        self.up && !self.draining && self.serves(task) && self.outlasts(task, now)
    }

    /// Whether an attempt of `task` started now ends (by its `timeout`) before the node does.
    fn outlasts(&self, task: &TaskSpec, now: u64) -> bool {
        self.ends_at
            .is_none_or(|end| now.saturating_add(task.timeout_ms.unwrap_or(0)) < end)
    }

    fn fits(&self, r: &Resources) -> bool {
        self.used_millicpus.saturating_add(u64::from(r.millicpus)) <= self.millicpus
            && self.used_memory.saturating_add(r.memory) <= self.memory
    }

    /// Whether an instance needing `r` could ever fit here.
    pub fn could_fit(&self, r: &Resources) -> bool {
        u64::from(r.millicpus) <= self.millicpus && r.memory <= self.memory
    }

    fn take(&mut self, r: &Resources) {
        self.used_millicpus = self.used_millicpus.saturating_add(u64::from(r.millicpus));
        self.used_memory = self.used_memory.saturating_add(r.memory);
    }

    fn give(&mut self, r: &Resources) {
        self.used_millicpus = self.used_millicpus.saturating_sub(u64::from(r.millicpus));
        self.used_memory = self.used_memory.saturating_sub(r.memory);
    }
}

/// What to do with attempts that were active when a job's records were written last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The runner that ran them is gone (`kiln run` restarted): end them `INTERRUPTED` and run
    /// them again.
    Interrupt,
    /// They may still run on their nodes (a server restarted, its agents did not): keep them
    /// active on their node until it reports back ([`Engine::reconcile_node`]) or is lost.
    Reattach,
}

/// A key of one attempt: job, task index, instance index, attempt number.
pub type AttemptRef = (JobId, usize, u32, u32);

/// Why a retry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no job `{0}` is loaded")]
    UnknownJob(String),
    #[error("only a FAILED or FAILED_INTERRUPTED job can be retried; this one is {0}")]
    NotFailed(State),
}

/// Stored records of one task, to rebuild its in-memory state after a restart.
#[derive(Debug, Clone, Default)]
pub struct TaskSnapshot {
    pub state: Option<State>,
    pub reason: Option<Reason>,
    pub stop: Option<Reason>,
    pub unstarted: Option<Reason>,
    /// Every materialised instance, with its last attempt if it has one.
    pub instances: Vec<(u32, Instance, Option<Attempt>)>,
}

/// Counts of a task's instances by state.
pub type Counts = BTreeMap<State, u32>;

/// The engine: every live job, the nodes, and the output queues.
#[derive(Debug, Default)]
pub struct Engine {
    jobs: Vec<JobRun>,
    nodes: Vec<Node>,
    changes: Vec<Change>,
    effects: Vec<Effect>,
}

impl Engine {
    pub fn new(nodes: Vec<Node>) -> Self {
        Engine {
            nodes,
            ..Engine::default()
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Starts a newly submitted job.
    pub fn add_job(&mut self, id: JobId, spec: Arc<JobSpec>, seq: u64, now: u64) {
        let deadline = spec.timeout_ms.map(|t| now.saturating_add(t));
        let mut job = JobRun::new(id, spec, seq, deadline);
        job.activate(&[], now, &mut self.changes);
        self.jobs.push(job);
    }

    /// Rebuilds a job from its stored records. Instances that were active when the previous
    /// runner stopped are ended as interrupted and queued again (their next attempt gets a new
    /// number); nothing that succeeded runs again. `deadline` is the stored one (see
    /// [`Change::Job`]).
    #[allow(clippy::too_many_arguments)]
    pub fn restore_job(
        &mut self,
        id: JobId,
        spec: Arc<JobSpec>,
        seq: u64,
        deadline: Option<u64>,
        snapshot: Vec<TaskSnapshot>,
        now: u64,
        mode: Restore,
    ) {
        let mut job = JobRun::new(id, spec, seq, deadline);
        job.activate(&snapshot, now, &mut self.changes);
        let mut active = Vec::new();
        for (t, task) in job.tasks.iter().enumerate() {
            for (&index, slot) in &task.live {
                if slot.inst.state.is_active() {
                    let node = slot
                        .att
                        .as_ref()
                        .map(|a| a.node.clone())
                        .unwrap_or_default();
                    active.push((t, index, slot.inst.attempt, node));
                }
            }
        }
        active.sort_unstable();
        let pos = self.jobs.len();
        self.jobs.push(job);
        for (task, index, attempt, node) in active {
            match mode {
                Restore::Interrupt => {
                    let ev = Event::Ended {
                        task,
                        index,
                        attempt,
                        outcome: Outcome::Lost(LossCause::Interrupted),
                    };
                    self.apply_at(pos, ev, now);
                }
                Restore::Reattach => {
                    let n = self.node_or_placeholder(&node);
                    if let Some(slot) = self.jobs[pos].tasks[task].live.get_mut(&index) {
                        slot.node = Some(n);
                    }
                }
            }
        }
        self.recompute_capacity();
        self.jobs[pos].refresh(now, &mut self.changes);
    }

    /// The index of node `name`, creating a placeholder (down, no capacity) if it is unknown.
    fn node_or_placeholder(&mut self, name: &str) -> usize {
        if let Some(i) = self.node_index(name) {
            return i;
        }
        let mut node = Node::new(name, 0, 0);
        node.up = false;
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Sets every node's free capacity from the attempts active on it.
    fn recompute_capacity(&mut self) {
        for n in &mut self.nodes {
            n.used_millicpus = 0;
            n.used_memory = 0;
            n.queued = 0;
        }
        for job in &self.jobs {
            for (t, task) in job.tasks.iter().enumerate() {
                for slot in task.live.values() {
                    if slot.inst.state.is_active()
                        && let Some(n) = slot.node.and_then(|n| self.nodes.get_mut(n))
                    {
                        if slot.queued {
                            n.queued += 1;
                        } else {
                            n.take(&resources_of(&job.spec.tasks[t], &slot.inst));
                        }
                    }
                }
            }
        }
    }

    /// Adds a node, or brings a known one (same name) back up with new capacity and pool.
    pub fn add_node(&mut self, node: Node) -> usize {
        let i = match self.node_index(&node.name) {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.recompute_capacity();
        i
    }

    /// Stops (or resumes) giving a node new work. Returns false for an unknown node.
    pub fn set_draining(&mut self, name: &str, draining: bool) -> bool {
        match self.node_index(name) {
            Some(i) => {
                self.nodes[i].draining = draining;
                true
            }
            None => false,
        }
    }

    /// The attempts active on a node.
    pub fn active_on(&self, name: &str) -> Vec<AttemptRef> {
        let Some(n) = self.node_index(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for job in &self.jobs {
            for (t, task) in job.tasks.iter().enumerate() {
                for (&i, slot) in &task.live {
                    if slot.inst.state.is_active() && slot.node == Some(n) {
                        out.push((job.id.clone(), t, i, slot.inst.attempt));
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// A node is lost (missed heartbeats, killed): it takes no work until it registers again,
    /// and every attempt active on it ends `NODE_LOST` (re-queued under `resource_retries`).
    pub fn node_lost(&mut self, name: &str, now: u64) -> bool {
        self.node_down(name, LossCause::NodeLost, now)
    }

    /// The runner of a node's attempts was restarted (the server's built-in executor after a
    /// server restart): its attempts end `INTERRUPTED` and run again, spending no budget.
    pub fn node_interrupted(&mut self, name: &str, now: u64) -> bool {
        self.node_down(name, LossCause::Interrupted, now)
    }

    fn node_down(&mut self, name: &str, cause: LossCause, now: u64) -> bool {
        let Some(n) = self.node_index(name) else {
            return false;
        };
        self.nodes[n].up = false;
        for (job, task, index, attempt) in self.active_on(name) {
            let ev = Event::Ended {
                task,
                index,
                attempt,
                outcome: Outcome::Lost(cause),
            };
            self.apply(&job, ev, now);
        }
        true
    }

    /// A node (re)connected and says which attempts it runs. Attempts the engine has active on
    /// it that it does not run are lost; attempts it runs that the engine does not have active
    /// there are returned, to be killed (they ended meanwhile, or were re-run elsewhere).
    pub fn reconcile_node(
        &mut self,
        name: &str,
        running: &[AttemptRef],
        now: u64,
    ) -> Vec<AttemptRef> {
        let expected = self.active_on(name);
        for key in &expected {
            if !running.contains(key) {
                let (job, task, index, attempt) = key.clone();
                let ev = Event::Ended {
                    task,
                    index,
                    attempt,
                    outcome: Outcome::Lost(LossCause::NodeLost),
                };
                self.apply(&job, ev, now);
            }
        }
        running
            .iter()
            .filter(|k| !expected.contains(k))
            .cloned()
            .collect()
    }

    /// A user's retry of a failed job: every task that did not succeed runs again — only its
    /// instances that did not succeed, each as a new attempt with fresh retry budgets — and so
    /// do the tasks waiting on it, in DAG order.
    pub fn retry_job(&mut self, id: &str, now: u64) -> Result<(), RetryError> {
        let pos = self
            .position(id)
            .ok_or_else(|| RetryError::UnknownJob(id.to_string()))?;
        let job = &mut self.jobs[pos];
        if !matches!(job.state, State::Failed | State::FailedInterrupted) {
            return Err(RetryError::NotFailed(job.state));
        }
        job.retry(now, &mut self.changes);
        Ok(())
    }

    /// A user's terminate of one instance: stopped if it runs, `FAILED` with
    /// `TERMINATED_BY_USER` if it has not started. Returns false if there is no such
    /// unfinished instance.
    pub fn terminate_instance(&mut self, id: &str, task: usize, index: u32, now: u64) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        let job = &mut self.jobs[pos];
        let mut out = Out {
            changes: &mut self.changes,
            effects: &mut self.effects,
            nodes: &mut self.nodes,
        };
        let done = job.terminate_instance(task, index, now, &mut out);
        job.refresh(now, out.changes);
        done
    }

    pub fn job(&self, id: &str) -> Option<&JobRun> {
        self.jobs.iter().find(|j| &*j.id == id)
    }

    pub fn jobs(&self) -> &[JobRun] {
        &self.jobs
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.jobs.iter().position(|j| &*j.id == id)
    }

    /// Applies a runtime report. Reports for unknown jobs, instances or stale attempts are
    /// ignored, so a report delivered twice is recorded once.
    pub fn apply(&mut self, job: &str, event: Event, now: u64) {
        if let Some(pos) = self.position(job) {
            self.apply_at(pos, event, now);
        }
    }

    fn apply_at(&mut self, pos: usize, event: Event, now: u64) {
        let job = &mut self.jobs[pos];
        let mut out = Out {
            changes: &mut self.changes,
            effects: &mut self.effects,
            nodes: &mut self.nodes,
        };
        match event {
            Event::Started {
                task,
                index,
                attempt,
                pid,
            } => job.started(task, index, attempt, pid, &mut out),
            Event::Ended {
                task,
                index,
                attempt,
                outcome,
            } => job.ended(task, index, attempt, outcome, now, &mut out),
        }
    }

    /// A user's terminate: everything that runs is stopped, everything else ends `FAILED`
    /// with `TERMINATED_BY_USER`. Returns false for an unknown job.
    pub fn terminate(&mut self, job: &str, now: u64) -> bool {
        let Some(pos) = self.position(job) else {
            return false;
        };
        let job = &mut self.jobs[pos];
        let mut out = Out {
            changes: &mut self.changes,
            effects: &mut self.effects,
            nodes: &mut self.nodes,
        };
        for t in 0..job.tasks.len() {
            if !job.tasks[t].state.is_terminal() {
                job.stop_task(t, Reason::TerminatedByUser, now, &mut out);
            }
        }
        job.refresh(now, out.changes);
        true
    }

    /// Drops one job from memory (its records stay in the store until deleted there).
    pub fn forget(&mut self, id: &str) {
        self.jobs.retain(|j| &*j.id != id);
    }

    /// Drops every job in `ids` from memory at once.
    pub fn forget_all(&mut self, ids: &std::collections::HashSet<JobId>) {
        self.jobs.retain(|j| !ids.contains(&j.id));
    }

    /// The scheduler: places ready instances on nodes with room, highest job priority first,
    /// then oldest job, then deepest task in the DAG (file order among equals), then lowest
    /// instance index. Records why ready work
    /// stays `RUNNABLE`, and refreshes task and job states.
    pub fn schedule(&mut self, now: u64) -> Vec<Dispatch> {
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        order.sort_by_key(|&j| {
            let job = &self.jobs[j];
            (std::cmp::Reverse(job.spec.priority), job.seq)
        });
        self.check_deadlines(now);
        let mut dispatches = Vec::new();
        for j in order {
            let job = &mut self.jobs[j];
            for i in 0..job.sched_order.len() {
                let t = job.sched_order[i];
                job.schedule_task(t, &mut self.nodes, now, &mut self.changes, &mut dispatches);
            }
            job.refresh(now, &mut self.changes);
        }
        dispatches
    }

    /// Recomputes task and job states without scheduling (when nothing may be dispatched).
    pub fn refresh(&mut self, now: u64) {
        self.check_deadlines(now);
        for job in &mut self.jobs {
            job.refresh(now, &mut self.changes);
        }
    }

    /// The instances of unfinished jobs that wait for capacity in compute environment `pool`:
    /// ready to run (dependencies met, not stopped), within their task's `max_concurrency`, not
    /// dispatched yet — by the resources they need.
    pub fn backlog(&self, pool: &str) -> Vec<crate::scaling::Backlog> {
        let mut out = Vec::new();
        for job in &self.jobs {
            for (t, task) in job.tasks.iter().enumerate() {
                let spec = &job.spec.tasks[t];
                if spec.compute_env.as_deref() != Some(pool) || task.state.is_terminal() {
                    continue;
                }
                let count = task.n_ready();
                let count = match spec.max_concurrency {
                    0 => count,
                    cap => count.min(cap.saturating_sub(task.n_active)),
                };
                if count > 0 {
                    out.push(crate::scaling::Backlog {
                        resources: spec.resources,
                        count,
                    });
                }
            }
        }
        out
    }

    /// How many attempts are active on each node, by node index (waiting ones included).
    pub fn node_load(&self) -> Vec<u32> {
        let mut load = vec![0u32; self.nodes.len()];
        for job in &self.jobs {
            for task in &job.tasks {
                for slot in task.live.values() {
                    if slot.inst.state.is_active()
                        && let Some(n) = slot.node.and_then(|n| load.get_mut(n))
                    {
                        *n += 1;
                    }
                }
            }
        }
        load
    }

    /// Ends every unfinished job whose `timeout` has expired: what runs is stopped, what
    /// waits ends `FAILED`, all with `JOB_TIMED_OUT`.
    fn check_deadlines(&mut self, now: u64) {
        for job in &mut self.jobs {
            if job.deadline.is_some_and(|d| now >= d) && !job.state.is_terminal() {
                let mut out = Out {
                    changes: &mut self.changes,
                    effects: &mut self.effects,
                    nodes: &mut self.nodes,
                };
                // Downstream tasks first, so that each ends for the deadline rather than for
                // its upstream task's end.
                for t in (0..job.tasks.len()).rev() {
                    if !job.tasks[t].state.is_terminal() {
                        job.stop_task(t, Reason::JobTimedOut, now, &mut out);
                    }
                }
                job.refresh(now, out.changes);
            }
        }
    }

    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }
}

/// Where the engine's outputs go while a job is being changed.
struct Out<'a> {
    changes: &'a mut Vec<Change>,
    effects: &'a mut Vec<Effect>,
    nodes: &'a mut Vec<Node>,
}

/// One materialised instance and its current attempt.
#[derive(Debug, Clone)]
struct Slot {
    inst: Instance,
    att: Option<Attempt>,
    /// The node whose capacity the active attempt holds (not persisted: after a restart an
    /// active attempt holds none).
    node: Option<usize>,
    /// Dispatched to wait on its node (prefetch): holds no capacity until it starts.
    queued: bool,
}

/// A fixed-size bit set over instance indexes.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u32) -> Self {
        Bits(vec![0; (n as usize).div_ceil(64)])
    }
    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }
}

#[derive(Debug, Clone)]
struct TaskRun {
    state: State,
    reason: Option<Reason>,
    n: u32,
    policy: RetryPolicy,
    /// Whole-task dependencies are satisfied.
    deps_met: bool,
    /// Some dependency is per-instance (`=>`): fresh instances become ready one by one.
    instance_deps: bool,
    /// Indexes at and above this were never dispatched (tasks without per-instance deps).
    next_fresh: u32,
    /// Indexes ready to dispatch besides the fresh cursor: retries, and fresh instances of
    /// tasks with per-instance dependencies.
    ready: BTreeSet<u32>,
    /// Materialised instances that have not succeeded.
    live: HashMap<u32, Slot>,
    succeeded: Bits,
    n_succeeded: u32,
    n_failed: u32,
    n_active: u32,
    /// The first instance that failed for good on its own account.
    first_failure: Option<u32>,
    stop: Option<Reason>,
    unstarted: Option<Reason>,
    /// Why ready work did not dispatch in the last scheduling pass.
    blocked: Option<Reason>,
    /// Some instance changed since the task record was last persisted (its counts may have).
    dirty: bool,
    /// The counts and `blocked` of the task record last persisted.
    shown: (Counts, Option<Reason>),
}

impl TaskRun {
    fn next_ready(&self) -> Option<u32> {
        if self.stop.is_some() || !self.deps_met {
            return None;
        }
        let fresh = (!self.instance_deps && self.unstarted.is_none() && self.next_fresh < self.n)
            .then_some(self.next_fresh);
        match (self.ready.first().copied(), fresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many instances could be dispatched now, capacity permitting.
    fn n_ready(&self) -> u32 {
        if self.stop.is_some() || !self.deps_met {
            return 0;
        }
        let fresh = if !self.instance_deps && self.unstarted.is_none() {
            self.n.saturating_sub(self.next_fresh)
        } else {
            0
        };
        fresh.saturating_add(u32::try_from(self.ready.len()).unwrap_or(u32::MAX))
    }

    fn is_done(&self) -> bool {
        self.n_succeeded + self.n_failed == self.n
            || (self.unstarted.is_some() && self.n_active == 0 && self.ready.is_empty())
    }

    /// Indexes that never got a record and never will (the task closed them).
    fn n_unstarted_failed(&self) -> u32 {
        if self.unstarted.is_some() {
            self.n - self.n_succeeded - self.n_failed - self.n_active - self.ready.len() as u32
        } else {
            0
        }
    }
}

/// One live job.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: JobId,
    pub spec: Arc<JobSpec>,
    /// Submission order, for tie-breaks between jobs of equal priority.
    pub seq: u64,
    state: State,
    reason: Option<Reason>,
    tasks: Vec<TaskRun>,
    /// For each task, the tasks that depend on it and how.
    downstream: Vec<Vec<(usize, DepKind)>>,
    /// The order in which tasks get capacity: deepest in the DAG first (so that work already
    /// flowing — a `=>` pipeline, the tail of a chain — drains before new work starts), then
    /// file order.
    sched_order: Vec<usize>,
    /// When the job's `timeout` expires.
    deadline: Option<u64>,
}

/// A read-only view of a task, for progress and summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub name: String,
    pub state: State,
    pub reason: Option<Reason>,
    pub instances: u32,
    pub counts: Counts,
}

impl JobRun {
    fn new(id: JobId, spec: Arc<JobSpec>, seq: u64, deadline: Option<u64>) -> Self {
        let mut downstream = vec![Vec::new(); spec.tasks.len()];
        let tasks = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(t, ts)| {
                for d in &ts.deps {
                    downstream[d.task].push((t, d.kind));
                }
                TaskRun {
                    state: State::Submitted,
                    reason: None,
                    n: ts.instances,
                    policy: RetryPolicy {
                        retries: ts.retries,
                        resource_retries: ts.resource_retries,
                        oom: ts.on_out_of_memory.map(|o| OomGrowth {
                            retries: o.retries,
                            factor_milli: o.factor_milli,
                            base: ts.resources.memory,
                            cap: o.max.unwrap_or(u64::MAX),
                        }),
                    },
                    deps_met: false,
                    instance_deps: ts.has_instance_deps(),
                    next_fresh: 0,
                    ready: BTreeSet::new(),
                    live: HashMap::new(),
                    succeeded: Bits::new(ts.instances),
                    n_succeeded: 0,
                    n_failed: 0,
                    n_active: 0,
                    first_failure: None,
                    stop: None,
                    unstarted: None,
                    blocked: None,
                    dirty: false,
                    shown: (Counts::new(), None),
                }
            })
            .collect();
        // Tasks are in topological order, so one pass computes every depth.
        let mut depth = vec![0usize; spec.tasks.len()];
        for (t, ts) in spec.tasks.iter().enumerate() {
            depth[t] = ts.deps.iter().map(|d| depth[d.task] + 1).max().unwrap_or(0);
        }
        let mut sched_order: Vec<usize> = (0..spec.tasks.len()).collect();
        sched_order.sort_by_key(|&t| (std::cmp::Reverse(depth[t]), t));
        JobRun {
            id,
            spec,
            seq,
            state: State::Submitted,
            reason: None,
            tasks,
            downstream,
            sched_order,
            deadline,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }

    /// Loads stored records (none for a new job) and evaluates dependencies in DAG order.
    fn activate(&mut self, snapshot: &[TaskSnapshot], now: u64, changes: &mut Vec<Change>) {
        for (t, snap) in snapshot.iter().enumerate().take(self.tasks.len()) {
            let task = &mut self.tasks[t];
            task.stop = snap.stop.clone();
            task.unstarted = snap.unstarted.clone();
            for (index, inst, att) in &snap.instances {
                let index = *index;
                if index >= task.n {
                    continue;
                }
                task.next_fresh = task.next_fresh.max(index + 1);
                match inst.state {
                    State::Succeed => {
                        task.succeeded.set(index);
                        task.n_succeeded += 1;
                    }
                    st => {
                        if st.is_terminal() {
                            task.n_failed += 1;
                            if inst.stop.is_none() && task.first_failure.is_none_or(|f| index < f) {
                                task.first_failure = Some(index);
                            }
                        } else if st.is_active() {
                            task.n_active += 1;
                        } else {
                            task.ready.insert(index);
                        }
                        task.live.insert(
                            index,
                            Slot {
                                inst: inst.clone(),
                                att: att.clone(),
                                node: None,
                                queued: inst.state == State::Starting,
                            },
                        );
                    }
                }
            }
            if let Some(st) = snap.state.filter(|s| s.is_terminal()) {
                task.state = st;
                task.reason = snap.reason.clone();
            }
        }
        self.evaluate_all(now, changes);
    }

    /// Evaluates the dependencies of every unfinished task in DAG order, then refreshes states.
    /// Used when tasks (re)start from stored or reset records: nothing runs yet, so there is
    /// nothing to kill and no capacity to give back.
    fn evaluate_all(&mut self, now: u64, changes: &mut Vec<Change>) {
        let mut no_effects = Vec::new();
        let mut no_nodes = Vec::new();
        let mut out = Out {
            changes,
            effects: &mut no_effects,
            nodes: &mut no_nodes,
        };
        for t in 0..self.tasks.len() {
            if !self.tasks[t].state.is_terminal() {
                self.evaluate_deps(t, now, &mut out);
            }
        }
        self.refresh(now, out.changes);
    }

    /// Puts every task that did not succeed back to work (see [`Engine::retry_job`]).
    fn retry(&mut self, now: u64, changes: &mut Vec<Change>) {
        // A retried job gets its whole `timeout` again.
        self.deadline = self.spec.timeout_ms.map(|t| now.saturating_add(t));
        for t in 0..self.tasks.len() {
            let task = &mut self.tasks[t];
            if task.state == State::Succeed {
                continue;
            }
            task.state = State::Pending;
            task.reason = None;
            task.stop = None;
            task.unstarted = None;
            task.first_failure = None;
            task.blocked = None;
            task.deps_met = false;
            task.n_failed = 0;
            let mut failed: Vec<u32> = task
                .live
                .iter()
                .filter(|(_, s)| s.inst.state.is_terminal())
                .map(|(&i, _)| i)
                .collect();
            failed.sort_unstable();
            for i in failed {
                if let Some(slot) = task.live.get_mut(&i)
                    && let Ok(next) = slot.inst.transition(&InstanceEvent::Retry, task.policy)
                {
                    slot.inst = next;
                    task.ready.insert(i);
                }
            }
            // Fresh instances of per-instance tasks are offered again once dependencies are met.
            if task.instance_deps {
                task.ready.retain(|i| task.live.contains_key(i));
            }
            self.persist_task(t, changes);
            let ready: Vec<u32> = self.tasks[t].ready.iter().copied().collect();
            for i in ready {
                self.push_slot(t, i, changes, false);
            }
        }
        self.evaluate_all(now, changes);
    }

    /// Terminates one instance (see [`Engine::terminate_instance`]).
    fn terminate_instance(&mut self, t: usize, index: u32, now: u64, out: &mut Out<'_>) -> bool {
        let Some(task) = self.tasks.get_mut(t) else {
            return false;
        };
        if index >= task.n || task.succeeded.get(index) || task.state.is_terminal() {
            return false;
        }
        let policy = task.policy;
        let stop = InstanceEvent::Stop(Reason::TerminatedByUser);
        let slot = task.live.entry(index).or_insert_with(|| Slot {
            inst: Instance::fresh(),
            att: None,
            node: None,
            queued: false,
        });
        let was_active = slot.inst.state.is_active();
        let Ok(next) = slot.inst.transition(&stop, policy) else {
            return false;
        };
        slot.inst = next;
        if was_active {
            out.effects.push(Effect::Kill {
                job: self.id.clone(),
                task: t,
                index,
                attempt: slot.inst.attempt,
            });
        } else {
            task.ready.remove(&index);
            task.n_failed += 1;
        }
        self.push_slot(t, index, out.changes, false);
        self.check_task_done(t, now, out);
        true
    }

    /// Checks whether task `t` may start, must wait, or can never start.
    fn evaluate_deps(&mut self, t: usize, now: u64, out: &mut Out<'_>) {
        let policy = self.spec.dependency_policy;
        let spec = Arc::clone(&self.spec);
        let deps = &spec.tasks[t].deps;
        let mut met = true;
        let mut impossible = None;
        let mut all_upstream_done = true;
        for d in deps {
            let up = &self.tasks[d.task];
            let done = up.state.is_terminal();
            all_upstream_done &= done;
            if d.kind == DepKind::Instance {
                continue;
            }
            let (ok, never) = match policy {
                DependencyPolicy::Succeeded => (
                    up.state == State::Succeed,
                    done && up.state != State::Succeed,
                ),
                DependencyPolicy::PartlySucceeded => {
                    (done && up.n_succeeded > 0, done && up.n_succeeded == 0)
                }
                DependencyPolicy::Finished => (done, false),
            };
            met &= ok;
            if never && impossible.is_none() {
                impossible = Some(spec.tasks[d.task].name.clone());
            }
        }
        if let Some(up) = impossible {
            self.stop_task(t, Reason::UpstreamFailed(up), now, out);
            return;
        }
        let task = &mut self.tasks[t];
        if met && !task.deps_met {
            task.deps_met = true;
            if task.instance_deps {
                for i in 0..task.n {
                    self.offer_instance(t, i);
                }
            }
        }
        let task = &self.tasks[t];
        if task.deps_met && task.instance_deps && all_upstream_done && task.unstarted.is_none() {
            // No instance that is not ready yet can ever become ready.
            let up = deps
                .iter()
                .filter(|d| d.kind == DepKind::Instance)
                .find(|d| self.tasks[d.task].n_succeeded < self.tasks[d.task].n)
                .map(|d| spec.tasks[d.task].name.clone());
            if let Some(up) = up {
                self.tasks[t].unstarted = Some(Reason::UpstreamFailed(up));
                self.persist_task(t, out.changes);
            }
        }
    }

    /// Makes fresh instance `i` of a task with per-instance deps ready if every per-instance
    /// upstream has succeeded at `i`.
    fn offer_instance(&mut self, t: usize, i: u32) {
        let task = &self.tasks[t];
        // (A closed task, `unstarted`, still takes offers: when it closed, every upstream had
        // ended, so the only offers are those replayed while rebuilding after a restart.)
        if !task.deps_met
            || task.stop.is_some()
            || task.succeeded.get(i)
            || task.live.contains_key(&i)
            || task.ready.contains(&i)
        {
            return;
        }
        let ok = self.spec.tasks[t]
            .deps
            .iter()
            .filter(|d| d.kind == DepKind::Instance)
            .all(|d| self.tasks[d.task].succeeded.get(i));
        if ok {
            self.tasks[t].ready.insert(i);
        }
    }

    fn persist_task(&mut self, t: usize, changes: &mut Vec<Change>) {
        let counts = self.counts(t);
        let task = &mut self.tasks[t];
        task.dirty = false;
        task.shown = (counts.clone(), task.blocked.clone());
        changes.push(Change::Task {
            job: self.id.clone(),
            task: t,
            state: task.state,
            reason: task.reason.clone(),
            stop: task.stop.clone(),
            unstarted: task.unstarted.clone(),
            blocked: task.blocked.clone(),
            counts,
        });
    }

    fn push_slot(&mut self, t: usize, index: u32, changes: &mut Vec<Change>, with_attempt: bool) {
        self.tasks[t].dirty = true;
        if let Some(slot) = self.tasks[t].live.get(&index) {
            changes.push(Change::Instance {
                job: self.id.clone(),
                task: t,
                index,
                record: slot.inst.clone(),
            });
            if with_attempt && let Some(att) = &slot.att {
                changes.push(Change::Attempt {
                    job: self.id.clone(),
                    task: t,
                    index,
                    record: att.clone(),
                });
            }
        }
    }

    /// Stops a task: nothing more starts, active instances are killed, the rest fail.
    fn stop_task(&mut self, t: usize, reason: Reason, now: u64, out: &mut Out<'_>) {
        let task = &mut self.tasks[t];
        if task.stop.is_some() || task.state.is_terminal() {
            return;
        }
        task.stop = Some(reason.clone());
        task.unstarted = Some(reason.clone());
        let ready: Vec<u32> = std::mem::take(&mut task.ready).into_iter().collect();
        let active: Vec<u32> = task
            .live
            .iter()
            .filter(|(_, s)| s.inst.state.is_active())
            .map(|(&i, _)| i)
            .collect();
        let stop = InstanceEvent::Stop(reason.clone());
        let policy = task.policy;
        for i in ready {
            if let Some(slot) = task.live.get_mut(&i)
                && let Ok(next) = slot.inst.transition(&stop, policy)
            {
                slot.inst = next;
                task.n_failed += 1;
            }
            // A ready index with no record is a fresh instance: it counts as unstarted.
        }
        for &i in &active {
            if let Some(slot) = task.live.get_mut(&i)
                && let Ok(next) = slot.inst.transition(&stop, policy)
            {
                slot.inst = next;
                out.effects.push(Effect::Kill {
                    job: self.id.clone(),
                    task: t,
                    index: i,
                    attempt: slot.inst.attempt,
                });
            }
        }
        let mut touched: Vec<u32> = self.tasks[t]
            .live
            .iter()
            .filter(|(_, s)| s.inst.stop.as_ref() == Some(&reason))
            .map(|(&i, _)| i)
            .collect();
        touched.sort_unstable();
        for i in touched {
            self.push_slot(t, i, out.changes, false);
        }
        self.persist_task(t, out.changes);
        self.check_task_done(t, now, out);
    }

    fn schedule_task(
        &mut self,
        t: usize,
        nodes: &mut [Node],
        now: u64,
        changes: &mut Vec<Change>,
        dispatches: &mut Vec<Dispatch>,
    ) {
        let spec = &self.spec.tasks[t];
        let task = &mut self.tasks[t];
        task.blocked = None;
        while let Some(index) = task.next_ready() {
            if spec.max_concurrency > 0 && task.n_active >= spec.max_concurrency {
                task.blocked = Some(Reason::ConcurrencyLimit);
                return;
            }
            let needs = task
                .live
                .get(&index)
                .map_or(spec.resources, |s| resources_of(spec, &s.inst));
            let placed = nodes
                .iter()
                .position(|n| n.takes(spec, &needs, now))
                .map(|n| (n, false))
                .or_else(|| {
                    nodes
                        .iter()
                        .position(|n| n.queues(spec, &needs, now))
                        .map(|n| (n, true))
                });
            let Some((node, queued)) = placed else {
                let pool = spec.compute_env.as_deref().unwrap_or("local");
                task.blocked = Some(Reason::NoCapacity(pool.to_string()));
                return;
            };
            if queued {
                nodes[node].queued += 1;
            } else {
                nodes[node].take(&needs);
            }
            if index == task.next_fresh && !task.instance_deps {
                task.next_fresh += 1;
                // Skip instances terminated by a user before they were ever dispatched.
                while task.next_fresh < task.n
                    && task
                        .live
                        .get(&task.next_fresh)
                        .is_some_and(|s| s.inst.state.is_terminal())
                {
                    task.next_fresh += 1;
                }
            }
            task.ready.remove(&index);
            let slot = task.live.entry(index).or_insert_with(|| Slot {
                inst: Instance::fresh(),
                att: None,
                node: None,
                queued: false,
            });
            let Ok(next) = slot.inst.transition(&InstanceEvent::Dispatch, task.policy) else {
                // Not runnable after all (cannot happen for a ready index); leave it be.
                if queued {
                    nodes[node].queued -= 1;
                } else {
                    nodes[node].give(&needs);
                }
                continue;
            };
            slot.inst = next;
            slot.node = Some(node);
            slot.queued = queued;
            slot.att = Some(Attempt {
                attempt: slot.inst.attempt,
                state: State::Starting,
                reason: None,
                exit_code: None,
                node: nodes[node].name.clone(),
                pid: None,
                started_at: now,
                ended_at: None,
                memory: needs.memory,
            });
            task.n_active += 1;
            task.dirty = true;
            dispatches.push(Dispatch {
                job: self.id.clone(),
                task: t,
                index,
                attempt: slot.inst.attempt,
                node,
            });
            let (inst, att) = (slot.inst.clone(), slot.att.clone());
            changes.push(Change::Instance {
                job: self.id.clone(),
                task: t,
                index,
                record: inst,
            });
            if let Some(record) = att {
                changes.push(Change::Attempt {
                    job: self.id.clone(),
                    task: t,
                    index,
                    record,
                });
            }
        }
    }

    fn started(&mut self, t: usize, index: u32, attempt: u32, pid: Option<u32>, out: &mut Out<'_>) {
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        let policy = task.policy;
        let Some(slot) = task.live.get_mut(&index) else {
            return;
        };
        if slot.inst.attempt != attempt {
            return;
        }
        let Ok(next) = slot.inst.transition(&InstanceEvent::Started, policy) else {
            return;
        };
        slot.inst = next;
        if slot.queued {
            slot.queued = false;
            if let Some(n) = slot.node.and_then(|n| out.nodes.get_mut(n)) {
                n.queued = n.queued.saturating_sub(1);
                n.take(&resources_of(&self.spec.tasks[t], &slot.inst));
            }
        }
        if let Some(att) = &mut slot.att {
            att.state = State::Running;
            att.pid = pid;
        }
        self.push_slot(t, index, out.changes, true);
    }

    fn ended(
        &mut self,
        t: usize,
        index: u32,
        attempt: u32,
        outcome: Outcome,
        now: u64,
        out: &mut Out<'_>,
    ) {
        let Some(task) = self.tasks.get_mut(t) else {
            return;
        };
        let mut policy = task.policy;
        let spec = &self.spec.tasks[t];
        if let Some(g) = &mut policy.oom {
            // Never more than some node that may run the task offers.
            let offered = out
                .nodes
                .iter()
                .filter(|n| n.serves(spec))
                .map(|n| n.memory)
                .max();
            if let Some(m) = offered {
                g.cap = g.cap.min(m);
            }
        }
        let Some(slot) = task.live.get_mut(&index) else {
            return;
        };
        if slot.inst.attempt != attempt {
            return;
        }
        // What the attempt holds of its node, before the end may change the memory.
        let held = resources_of(spec, &slot.inst);
        let ev = InstanceEvent::Ended(outcome);
        let Ok(next) = slot.inst.transition(&ev, policy) else {
            return;
        };
        let own_failure = next.state == State::Failed && slot.inst.stop.is_none();
        slot.inst = next;
        if let Some(node) = slot.node.take()
            && let Some(n) = out.nodes.get_mut(node)
        {
            if std::mem::take(&mut slot.queued) {
                n.queued = n.queued.saturating_sub(1);
            } else {
                n.give(&held);
            }
        }
        if let Some(att) = &mut slot.att {
            att.state = if slot.inst.state == State::Succeed {
                State::Succeed
            } else {
                State::Failed
            };
            att.reason = slot.inst.reason.clone();
            att.exit_code = slot.inst.exit_code;
            att.ended_at = Some(now);
        }
        task.n_active -= 1;
        let state = slot.inst.state;
        self.push_slot(t, index, out.changes, true);
        let task = &mut self.tasks[t];
        match state {
            State::Succeed => {
                task.live.remove(&index);
                task.succeeded.set(index);
                task.n_succeeded += 1;
                let downstream = self.downstream[t].clone();
                for (d, kind) in downstream {
                    if kind == DepKind::Instance {
                        self.offer_instance(d, index);
                    }
                }
            }
            State::Runnable => {
                if task.stop.is_none() {
                    task.ready.insert(index);
                }
            }
            _ => {
                task.n_failed += 1;
                if own_failure {
                    if task.first_failure.is_none() {
                        task.first_failure = Some(index);
                    }
                    if self.spec.tasks[t].on_failure == OnFailure::Terminate {
                        self.stop_task(t, Reason::SiblingFailed(index), now, out);
                    }
                }
            }
        }
        self.check_task_done(t, now, out);
    }

    /// Ends the task if every instance is terminal, and lets its downstream tasks know.
    fn check_task_done(&mut self, t: usize, now: u64, out: &mut Out<'_>) {
        let task = &mut self.tasks[t];
        if task.state.is_terminal() || !task.is_done() {
            return;
        }
        let (state, reason) = if task.n_succeeded == task.n {
            (State::Succeed, None)
        } else if let Some(first) = task.first_failure {
            match self.spec.tasks[t].on_failure {
                OnFailure::Terminate => (State::Failed, Some(Reason::InstanceFailed(first))),
                OnFailure::Interrupt => (
                    State::FailedInterrupted,
                    Some(Reason::InstanceFailed(first)),
                ),
            }
        } else {
            let why = task
                .stop
                .clone()
                .or_else(|| task.unstarted.clone())
                .unwrap_or(Reason::TerminatedByUser);
            (State::Failed, Some(why))
        };
        task.state = state;
        task.reason = reason;
        task.ready.clear();
        self.persist_task(t, out.changes);
        let downstream = self.downstream[t].clone();
        for (d, _) in downstream {
            if !self.tasks[d].state.is_terminal() {
                self.evaluate_deps(d, now, out);
                self.check_task_done(d, now, out);
            }
        }
    }

    /// Recomputes the states of unfinished tasks and of the job, persisting any that changed.
    fn refresh(&mut self, now: u64, changes: &mut Vec<Change>) {
        for t in 0..self.tasks.len() {
            let task = &self.tasks[t];
            if task.state.is_terminal() {
                self.persist_if_shown_changed(t, changes);
                continue;
            }
            let (state, reason) = if task.n_active > 0 {
                (State::Running, None)
            } else if task.next_ready().is_some() {
                (State::Runnable, task.blocked.clone())
            } else {
                let deps = &self.spec.tasks[t].deps;
                let waiting = deps
                    .iter()
                    .find(|d| !self.tasks[d.task].state.is_terminal())
                    .or(deps.first())
                    .map(|d| self.spec.tasks[d.task].name.clone())
                    .unwrap_or_default();
                (State::Pending, Some(Reason::WaitingOnDependency(waiting)))
            };
            if state != task.state || reason != task.reason {
                let task = &mut self.tasks[t];
                task.state = state;
                task.reason = reason;
                self.persist_task(t, changes);
            } else {
                self.persist_if_shown_changed(t, changes);
            }
        }
        let (state, reason) = self.derive_job_state();
        if state != self.state || reason != self.reason {
            self.state = state;
            self.reason = reason.clone();
            changes.push(Change::Job {
                job: self.id.clone(),
                state,
                reason,
                at: now,
                deadline: self.deadline,
            });
        }
    }

    /// Persists task `t` again if its counts or `blocked` differ from its last record.
    fn persist_if_shown_changed(&mut self, t: usize, changes: &mut Vec<Change>) {
        let task = &self.tasks[t];
        if !task.dirty && task.blocked == task.shown.1 {
            return;
        }
        let counts = self.counts(t);
        let task = &mut self.tasks[t];
        task.dirty = false;
        if counts != task.shown.0 || task.blocked != task.shown.1 {
            self.persist_task(t, changes);
        }
    }

    fn derive_job_state(&self) -> (State, Option<Reason>) {
        let states = || self.tasks.iter().map(|t| t.state);
        if !states().all(State::is_terminal) {
            let state = if states().any(|s| s.is_active()) {
                State::Running
            } else if states().any(|s| s == State::Runnable) {
                State::Runnable
            } else {
                State::Pending
            };
            return (state, None);
        }
        if states().all(|s| s == State::Succeed) {
            return (State::Succeed, None);
        }
        let own = |t: &&TaskRun| !matches!(t.reason, Some(Reason::UpstreamFailed(_)));
        let failed_own = self
            .tasks
            .iter()
            .enumerate()
            .find(|(_, t)| t.state == State::Failed && own(t));
        let interrupted = self
            .tasks
            .iter()
            .enumerate()
            .find(|(_, t)| t.state == State::FailedInterrupted);
        match (failed_own, interrupted) {
            (Some((_, t)), _)
                if matches!(
                    t.reason,
                    Some(Reason::TerminatedByUser | Reason::JobTimedOut)
                ) =>
            {
                (State::Failed, t.reason.clone())
            }
            (Some((i, _)), _) => (
                State::Failed,
                Some(Reason::TaskFailed(self.spec.tasks[i].name.clone())),
            ),
            (None, Some((i, _))) => (
                State::FailedInterrupted,
                Some(Reason::TaskFailed(self.spec.tasks[i].name.clone())),
            ),
            (None, None) => (State::Failed, None),
        }
    }

    /// A view of task `t`, with its instances counted by state.
    pub fn task_view(&self, t: usize) -> Option<TaskView> {
        let task = self.tasks.get(t)?;
        Some(TaskView {
            name: self.spec.tasks[t].name.clone(),
            state: task.state,
            reason: task.reason.clone(),
            instances: task.n,
            counts: self.counts(t),
        })
    }

    /// Every instance of task `t` (an unknown task has none) counted by state.
    fn counts(&self, t: usize) -> Counts {
        let mut counts = Counts::new();
        let Some(task) = self.tasks.get(t) else {
            return counts;
        };
        let mut add = |s: State, n: u32| {
            if n > 0 {
                *counts.entry(s).or_default() += n;
            }
        };
        add(State::Succeed, task.n_succeeded);
        let mut materialised_unfinished = 0;
        for slot in task.live.values() {
            add(slot.inst.state, 1);
            if !slot.inst.state.is_terminal() {
                materialised_unfinished += 1;
            }
        }
        let unstarted_failed = task.n_unstarted_failed();
        add(State::Failed, unstarted_failed);
        let fresh_ready = task
            .ready
            .iter()
            .filter(|i| !task.live.contains_key(i))
            .count() as u32;
        let fresh_cursor = if task.deps_met && !task.instance_deps && task.unstarted.is_none() {
            task.n - task.next_fresh
        } else {
            0
        };
        add(State::Runnable, fresh_ready + fresh_cursor);
        let accounted = task.n_succeeded
            + task.n_failed
            + materialised_unfinished
            + unstarted_failed
            + fresh_ready
            + fresh_cursor;
        add(State::Pending, task.n.saturating_sub(accounted));
        counts
    }

    pub fn task_views(&self) -> Vec<TaskView> {
        (0..self.tasks.len())
            .filter_map(|t| self.task_view(t))
            .collect()
    }

    /// The state and reason of one instance, materialised or not.
    pub fn instance_state(&self, t: usize, index: u32) -> Option<(State, Option<Reason>)> {
        let task = self.tasks.get(t)?;
        if index >= task.n {
            return None;
        }
        if task.succeeded.get(index) {
            return Some((State::Succeed, None));
        }
        if let Some(slot) = task.live.get(&index) {
            let reason = match slot.inst.state {
                State::Runnable => task.blocked.clone().or(slot.inst.reason.clone()),
                _ => slot.inst.reason.clone(),
            };
            return Some((slot.inst.state, reason));
        }
        if task.ready.contains(&index)
            || (task.next_ready().is_some() && index >= task.next_fresh && !task.instance_deps)
        {
            return Some((State::Runnable, task.blocked.clone()));
        }
        if let Some(r) = &task.unstarted {
            return Some((State::Failed, Some(r.clone())));
        }
        let waiting = self.spec.tasks[t]
            .deps
            .iter()
            .find(|d| match d.kind {
                DepKind::Task => !task.deps_met,
                DepKind::Instance => !self.tasks[d.task].succeeded.get(index),
            })
            .map(|d| match d.kind {
                DepKind::Task => self.spec.tasks[d.task].name.clone(),
                DepKind::Instance => format!("{}[{index}]", self.spec.tasks[d.task].name),
            })
            .unwrap_or_default();
        Some((State::Pending, Some(Reason::WaitingOnDependency(waiting))))
    }

    /// The materialised instances of task `t` that ended `FAILED` (index order), with their
    /// records and last attempts.
    pub fn failed_instances(&self, t: usize) -> Vec<(u32, Instance, Option<Attempt>)> {
        let Some(task) = self.tasks.get(t) else {
            return Vec::new();
        };
        let mut v: Vec<_> = task
            .live
            .iter()
            .filter(|(_, s)| s.inst.state.is_terminal())
            .map(|(&i, s)| (i, s.inst.clone(), s.att.clone()))
            .collect();
        v.sort_by_key(|(i, _, _)| *i);
        v
    }

    /// The record of a materialised instance that has not succeeded, with its last attempt.
    pub fn instance_record(&self, t: usize, index: u32) -> Option<(&Instance, Option<&Attempt>)> {
        let slot = self.tasks.get(t)?.live.get(&index)?;
        Some((&slot.inst, slot.att.as_ref()))
    }

    /// The attempt currently active for an instance, if any.
    pub fn active_attempt(&self, t: usize, index: u32) -> Option<&Attempt> {
        let slot = self.tasks.get(t)?.live.get(&index)?;
        slot.inst
            .state
            .is_active()
            .then_some(slot.att.as_ref())
            .flatten()
    }
}
