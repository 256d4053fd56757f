//! Seeded simulations and property tests of the engine: random DAGs, random outcomes, random

#![allow(clippy::unwrap_used, clippy::expect_used)]

//! runner crashes (rebuilding the engine from what it asked to persist), user terminates.
//! Invariants checked on every step:
//! - no instance starts before its dependencies allow it;
//! - an instance has at most one active attempt, and a succeeded instance never runs again;
//! - `max_concurrency` and node capacity are never exceeded;
//! - every run ends with the job and every task terminal, and counts add up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kiln_core::engine::{
    Attempt, Change, Dispatch, Effect, Engine, Event, JobId, Node, Restore, TaskSnapshot,
};
use kiln_core::model::{
    Command, DepKind, Dependency, DependencyPolicy, Image, JobSpec, OnFailure, Resources, TaskSpec,
};
use kiln_core::state::{Instance, LossCause, Outcome, Reason, State};
use proptest::prelude::*;

fn task(name: &str, instances: u32, deps: Vec<Dependency>) -> TaskSpec {
    TaskSpec {
        name: name.to_string(),
        command: Command::Argv(vec!["true".into()]),
        image: Image::Host,
        instances,
        max_concurrency: 0,
        resources: Resources::default(),
        instance_type: None,
        network: None,
        compute_env: None,
        storage_profile: None,
        registry_profile: None,
        env: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        stdout: None,
        stderr: None,
        retries: 0,
        resource_retries: 3,
        timeout_ms: None,
        on_failure: OnFailure::Terminate,
        deps,
        items: None,
        on_out_of_memory: None,
    }
}

fn job(tasks: Vec<TaskSpec>, policy: DependencyPolicy) -> JobSpec {
    JobSpec {
        name: "sim".into(),
        description: None,
        priority: 50,
        tags: BTreeMap::new(),
        dependency_policy: policy,
        timeout_ms: None,
        tasks,
        project: None,
        sealed_credentials: None,
    }
}

const fn dep(task: usize) -> Dependency {
    Dependency {
        task,
        kind: DepKind::Task,
    }
}

const fn idep(task: usize) -> Dependency {
    Dependency {
        task,
        kind: DepKind::Instance,
    }
}

/// What the store would hold: the last write to every record.
/// A task row: state, reason, stop, unstarted.
type TaskRow = (State, Option<Reason>, Option<Reason>, Option<Reason>);

#[derive(Default, Clone)]
struct Persisted {
    job: Option<(State, Option<Reason>)>,
    tasks: BTreeMap<usize, TaskRow>,
    counts: BTreeMap<usize, kiln_core::engine::Counts>,
    instances: BTreeMap<(usize, u32), Instance>,
    attempts: BTreeMap<(usize, u32, u32), Attempt>,
}

impl Persisted {
    fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Job { state, reason, .. } => self.job = Some((*state, reason.clone())),
                Change::Task {
                    task,
                    state,
                    reason,
                    stop,
                    unstarted,
                    counts,
                    ..
                } => {
                    self.counts.insert(*task, counts.clone());
                    self.tasks.insert(
                        *task,
                        (*state, reason.clone(), stop.clone(), unstarted.clone()),
                    );
                }
                Change::Instance {
                    task,
                    index,
                    record,
                    ..
                } => {
                    self.instances.insert((*task, *index), record.clone());
                }
                Change::Attempt {
                    task,
                    index,
                    record,
                    ..
                } => {
                    self.attempts
                        .insert((*task, *index, record.attempt), record.clone());
                }
                // The engine makes no events.
                Change::Event(_) => {}
            }
        }
    }

    fn snapshot(&self, n_tasks: usize) -> Vec<TaskSnapshot> {
        let mut snaps = vec![TaskSnapshot::default(); n_tasks];
        for (t, (state, reason, stop, unstarted)) in &self.tasks {
            let s = &mut snaps[*t];
            s.state = Some(*state);
            s.reason = reason.clone();
            s.stop = stop.clone();
            s.unstarted = unstarted.clone();
        }
        for ((t, i), inst) in &self.instances {
            let att = self.attempts.get(&(*t, *i, inst.attempt)).cloned();
            snaps[*t].instances.push((*i, inst.clone(), att));
        }
        snaps
    }
}

/// One simulated world: an engine, a node, attempts in flight, and the checks.
struct Sim {
    engine: Engine,
    spec: Arc<JobSpec>,
    id: JobId,
    now: u64,
    persisted: Persisted,
    /// Attempts the runtime is running: (task, index) -> attempt.
    running: BTreeMap<(usize, u32), u32>,
    /// Attempts asked to stop.
    killed: HashSet<(usize, u32, u32)>,
    succeeded: HashSet<(usize, u32)>,
    millicpus: u64,
}

impl Sim {
    fn new(spec: JobSpec, cpus: u64) -> Self {
        let spec = Arc::new(spec);
        let id: JobId = Arc::from("job-sim");
        let mut engine = Engine::new(vec![Node::new("n1", cpus * 1000, 1 << 40)]);
        engine.add_job(id.clone(), Arc::clone(&spec), 1, 0);
        let mut sim = Sim {
            engine,
            spec,
            id,
            now: 0,
            persisted: Persisted::default(),
            running: BTreeMap::new(),
            killed: HashSet::new(),
            succeeded: HashSet::new(),
            millicpus: cpus * 1000,
        };
        sim.persist();
        sim
    }

    fn persist(&mut self) {
        let changes = self.engine.take_changes();
        self.persisted.apply(&changes);
    }

    fn task_state(&self, t: usize) -> State {
        self.engine
            .job(&self.id)
            .and_then(|j| j.task_view(t))
            .map_or(State::Submitted, |v| v.state)
    }

    fn task_succeeded_count(&self, t: usize) -> u32 {
        self.engine
            .job(&self.id)
            .and_then(|j| j.task_view(t))
            .and_then(|v| v.counts.get(&State::Succeed).copied())
            .unwrap_or(0)
    }

    /// Schedules, checking every dispatch against the rules.
    fn tick(&mut self) -> Vec<Dispatch> {
        self.now += 1;
        let ds = self.engine.schedule(self.now);
        self.persist();
        for e in self.engine.take_effects() {
            let Effect::Kill {
                task,
                index,
                attempt,
                ..
            } = e;
            self.killed.insert((task, index, attempt));
        }
        for d in &ds {
            let t = &self.spec.tasks[d.task];
            for dp in &t.deps {
                match dp.kind {
                    DepKind::Task => {
                        let up = self.task_state(dp.task);
                        let ok = match self.spec.dependency_policy {
                            DependencyPolicy::Succeeded => up == State::Succeed,
                            DependencyPolicy::PartlySucceeded => {
                                up.is_terminal() && self.task_succeeded_count(dp.task) > 0
                            }
                            DependencyPolicy::Finished => up.is_terminal(),
                        };
                        assert!(
                            ok,
                            "{}[{}] started before {} allowed it ({up})",
                            t.name, d.index, self.spec.tasks[dp.task].name
                        );
                    }
                    DepKind::Instance => assert!(
                        self.succeeded.contains(&(dp.task, d.index)),
                        "{}[{}] started before its upstream instance succeeded",
                        t.name,
                        d.index
                    ),
                }
            }
            assert!(
                !self.succeeded.contains(&(d.task, d.index)),
                "succeeded instance {}[{}] dispatched again",
                t.name,
                d.index
            );
            assert!(
                self.running.insert((d.task, d.index), d.attempt).is_none(),
                "{}[{}] dispatched while already running",
                t.name,
                d.index
            );
        }
        // Concurrency and capacity.
        let mut per_task: HashMap<usize, u32> = HashMap::new();
        for (t, _) in self.running.keys() {
            *per_task.entry(*t).or_default() += 1;
        }
        let mut cpu = 0u64;
        for (t, n) in per_task {
            let spec = &self.spec.tasks[t];
            if spec.max_concurrency > 0 {
                assert!(
                    n <= spec.max_concurrency,
                    "{} runs {n} > max_concurrency",
                    spec.name
                );
            }
            cpu += u64::from(spec.resources.millicpus) * u64::from(n);
        }
        assert!(cpu <= self.millicpus, "node over capacity: {cpu}");
        ds
    }

    fn report(&mut self, task: usize, index: u32, outcome: Outcome) {
        let Some(attempt) = self.running.remove(&(task, index)) else {
            return;
        };
        self.now += 1;
        let ok = outcome == Outcome::Exited(0);
        let ev = Event::Ended {
            task,
            index,
            attempt,
            outcome,
        };
        self.engine.apply(&self.id, ev.clone(), self.now);
        // A report delivered twice is recorded once.
        self.engine.apply(&self.id, ev, self.now);
        if ok {
            self.succeeded.insert((task, index));
        }
        self.persist();
    }

    /// The runner dies: nothing but what was persisted survives. Attempts still running on the
    /// node are gone too (the real runner kills them on resume).
    fn crash_and_resume(&mut self) {
        let snapshot = self.persisted.snapshot(self.spec.tasks.len());
        let mut engine = Engine::new(vec![Node::new("n1", self.millicpus, 1 << 40)]);
        self.now += 1;
        engine.restore_job(
            self.id.clone(),
            Arc::clone(&self.spec),
            1,
            None,
            snapshot,
            self.now,
            Restore::Interrupt,
        );
        self.engine = engine;
        self.running.clear();
        self.killed.clear();
        self.persist();
    }

    fn job_state(&self) -> State {
        self.engine
            .job(&self.id)
            .map_or(State::Submitted, |j| j.state())
    }

    fn check_final(&self) {
        let job = self.engine.job(&self.id).expect("job");
        assert!(
            job.state().is_terminal(),
            "job not terminal: {}",
            job.state()
        );
        for v in job.task_views() {
            assert!(
                v.state.is_terminal(),
                "task {} not terminal: {}",
                v.name,
                v.state
            );
            let total: u32 = v.counts.values().sum();
            assert_eq!(
                total, v.instances,
                "counts of {} add up: {:?}",
                v.name, v.counts
            );
            assert!(
                v.counts.keys().all(|s| s.is_terminal()),
                "{}: {:?}",
                v.name,
                v.counts
            );
            if v.state == State::Succeed {
                assert_eq!(v.counts.get(&State::Succeed), Some(&v.instances));
            }
        }
        // The persisted job agrees with memory, and so do the persisted counts of its tasks
        // (what readers show without the engine).
        assert_eq!(self.persisted.job.as_ref().map(|j| j.0), Some(job.state()));
        for (t, v) in job.task_views().into_iter().enumerate() {
            assert_eq!(
                self.persisted.counts.get(&t),
                Some(&v.counts),
                "task {}",
                v.name
            );
        }
    }
}

/// Runs `sim` with outcomes drawn from `pick` until the job ends (or a step bound is hit).
fn drive(sim: &mut Sim, mut pick: impl FnMut(&Sim, usize, u32, u32) -> Outcome) {
    for _ in 0..100_000 {
        sim.tick();
        if sim.job_state().is_terminal() && sim.running.is_empty() {
            return;
        }
        let Some((&(t, i), &a)) = sim.running.iter().next() else {
            panic!("job {} stalled with nothing running", sim.job_state());
        };
        let outcome = if sim.killed.contains(&(t, i, a)) {
            Outcome::Stopped
        } else {
            pick(sim, t, i, a)
        };
        sim.report(t, i, outcome);
    }
    panic!("simulation did not end");
}

#[test]
fn diamond_succeeds_in_dependency_order() {
    let spec = job(
        vec![
            task("a", 2, vec![]),
            task("b", 3, vec![dep(0)]),
            task("c", 1, vec![dep(0)]),
            task("d", 1, vec![dep(1), dep(2)]),
        ],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 2);
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    assert_eq!(sim.job_state(), State::Succeed);
}

#[test]
fn instances_dispatch_in_index_order_within_concurrency() {
    let mut t = task("a", 10, vec![]);
    t.max_concurrency = 3;
    let mut sim = Sim::new(job(vec![t], DependencyPolicy::Succeeded), 8);
    let first = sim.tick();
    assert_eq!(first.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1, 2]);
    let run = sim.engine.job("job-sim").expect("job");
    assert_eq!(
        run.instance_state(0, 5),
        Some((State::Runnable, Some(Reason::ConcurrencyLimit)))
    );
    sim.report(0, 1, Outcome::Exited(0));
    let next = sim.tick();
    assert_eq!(next.iter().map(|d| d.index).collect::<Vec<_>>(), [3]);
}

#[test]
fn retry_runs_lowest_index_first_and_counts_attempts() {
    let mut t = task("a", 3, vec![]);
    t.retries = 1;
    let mut sim = Sim::new(job(vec![t], DependencyPolicy::Succeeded), 1);
    assert_eq!(sim.tick()[0].index, 0);
    sim.report(0, 0, Outcome::Exited(7));
    let d = sim.tick();
    assert_eq!(
        (d[0].index, d[0].attempt),
        (0, 2),
        "the retry of 0 goes before 1"
    );
    sim.report(0, 0, Outcome::Exited(7));
    sim.tick();
    let run = sim.engine.job("job-sim").expect("job");
    assert_eq!(
        run.instance_state(0, 0),
        Some((State::Failed, Some(Reason::ExitCode(7))))
    );
    // on_failure: terminate — the task stops; the running sibling is asked to stop.
    assert!(!sim.killed.is_empty() || sim.running.is_empty());
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    let run = sim.engine.job("job-sim").expect("job");
    assert_eq!(run.task_view(0).map(|v| v.state), Some(State::Failed));
    assert_eq!(
        run.task_view(0).and_then(|v| v.reason),
        Some(Reason::InstanceFailed(0))
    );
}

#[test]
fn interrupt_lets_siblings_finish_and_downstream_fails_upstream() {
    let mut a = task("a", 4, vec![]);
    a.on_failure = OnFailure::Interrupt;
    let spec = job(
        vec![a, task("b", 1, vec![dep(0)])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 4);
    drive(&mut sim, |_, _, i, _| {
        if i == 1 {
            Outcome::Exited(1)
        } else {
            Outcome::Exited(0)
        }
    });
    sim.check_final();
    let run = sim.engine.job("job-sim").expect("job");
    let views = run.task_views();
    assert_eq!(views[0].state, State::FailedInterrupted);
    assert_eq!(views[0].counts.get(&State::Succeed), Some(&3));
    assert_eq!(views[1].state, State::Failed);
    assert_eq!(views[1].reason, Some(Reason::UpstreamFailed("a".into())));
    assert_eq!(run.state(), State::FailedInterrupted);
}

#[test]
fn finished_policy_runs_downstream_after_failure() {
    let spec = job(
        vec![task("a", 1, vec![]), task("b", 1, vec![dep(0)])],
        DependencyPolicy::Finished,
    );
    let mut sim = Sim::new(spec, 1);
    drive(&mut sim, |_, t, _, _| {
        if t == 0 {
            Outcome::Exited(2)
        } else {
            Outcome::Exited(0)
        }
    });
    sim.check_final();
    let views = sim.engine.job("job-sim").expect("job").task_views();
    assert_eq!(
        (views[0].state, views[1].state),
        (State::Failed, State::Succeed)
    );
}

#[test]
fn per_instance_dependency_flows_before_upstream_ends() {
    let spec = job(
        vec![task("a", 3, vec![]), task("b", 3, vec![idep(0)])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 2);
    sim.tick(); // a[0], a[1]
    sim.report(0, 0, Outcome::Exited(0));
    let d = sim.tick();
    let started: Vec<(usize, u32)> = d.iter().map(|d| (d.task, d.index)).collect();
    assert!(
        started.contains(&(0, 2)) || started.contains(&(1, 0)),
        "{started:?}"
    );
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
}

#[test]
fn node_loss_requeues_without_spending_retries() {
    let spec = job(vec![task("a", 1, vec![])], DependencyPolicy::Succeeded);
    let mut sim = Sim::new(spec, 1);
    let mut losses = 0;
    drive(&mut sim, |_, _, _, _| {
        losses += 1;
        if losses <= 2 {
            Outcome::Lost(LossCause::NodeLost)
        } else {
            Outcome::Exited(0)
        }
    });
    sim.check_final();
    assert_eq!(sim.job_state(), State::Succeed);
}

#[test]
fn terminate_stops_everything() {
    let spec = job(
        vec![task("a", 5, vec![]), task("b", 1, vec![dep(0)])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 2);
    sim.tick();
    assert!(sim.engine.terminate("job-sim", 5));
    sim.persist();
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    let run = sim.engine.job("job-sim").expect("job");
    assert_eq!(run.state(), State::Failed);
    assert_eq!(run.reason(), Some(&Reason::TerminatedByUser));
}

#[test]
fn crash_mid_run_resumes_without_rerunning_successes() {
    let mut t = task("a", 6, vec![]);
    t.retries = 0;
    let spec = job(
        vec![t, task("b", 2, vec![dep(0)])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 2);
    sim.tick();
    sim.report(0, 0, Outcome::Exited(0));
    sim.tick(); // a[1] running, a[2] dispatched
    let was_running: Vec<(usize, u32)> = sim.running.keys().copied().collect();
    sim.crash_and_resume();
    let d = sim.tick();
    for (t, i) in was_running {
        let again = d.iter().find(|d| (d.task, d.index) == (t, i));
        if let Some(again) = again {
            assert_eq!(
                again.attempt, 2,
                "interrupted attempt runs again as attempt 2"
            );
        }
    }
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    assert_eq!(sim.job_state(), State::Succeed);
}

#[test]
fn large_task_is_cheap_in_memory_until_dispatched() {
    let spec = job(
        vec![task("a", 1_000_000, vec![])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 2);
    let d = sim.tick();
    assert_eq!(d.len(), 2);
    let v = sim
        .engine
        .job("job-sim")
        .expect("job")
        .task_view(0)
        .expect("task");
    assert_eq!(v.counts.get(&State::Runnable), Some(&999_998));
    assert_eq!(
        sim.persisted.instances.len(),
        2,
        "only dispatched instances get records"
    );
}

#[test]
fn tasks_run_only_on_their_compute_environment() {
    let mut t = task("a", 2, vec![]);
    t.compute_env = Some("gpu".into());
    let mut sim = Sim::new(
        job(vec![t, task("b", 1, vec![])], DependencyPolicy::Succeeded),
        4,
    );
    let d = sim.tick();
    assert_eq!(
        d.iter().map(|d| d.task).collect::<Vec<_>>(),
        [1],
        "only b fits the built-in node"
    );
    let run = sim.engine.job("job-sim").unwrap();
    assert_eq!(
        run.instance_state(0, 0),
        Some((State::Runnable, Some(Reason::NoCapacity("gpu".into()))))
    );
    let i = sim
        .engine
        .add_node(Node::new("g1", 1000, 1 << 30).in_pool(Some("gpu".into())));
    let d = sim.tick();
    assert_eq!(
        d.iter().map(|d| (d.task, d.node)).collect::<Vec<_>>(),
        [(0, i)]
    );
}

#[test]
fn lost_node_requeues_its_attempts_without_spending_retries() {
    let spec = job(vec![task("a", 2, vec![])], DependencyPolicy::Succeeded);
    let mut sim = Sim::new(spec, 2);
    sim.engine.add_node(Node::new("n2", 2000, 1 << 40));
    assert_eq!(sim.tick().len(), 2);
    let lost: Vec<_> = sim.engine.active_on("n1");
    assert!(sim.engine.node_lost("n1", 10));
    for (_, t, i, _) in &lost {
        sim.running.remove(&(*t, *i));
    }
    sim.persist();
    let d = sim.tick();
    assert!(
        d.iter().all(|d| d.node == 1),
        "nothing goes to the lost node"
    );
    let run = sim.engine.job("job-sim").unwrap();
    for (_, t, i, _) in &lost {
        assert!(matches!(
            run.instance_state(*t, *i),
            Some((State::Starting, _))
        ));
    }
    let attempt = sim
        .persisted
        .attempts
        .values()
        .find(|a| a.reason == Some(Reason::NodeLost));
    assert!(attempt.is_some(), "the lost attempt is recorded NODE_LOST");
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    assert_eq!(sim.job_state(), State::Succeed);
}

#[test]
fn reattached_attempts_survive_a_restart_and_are_reconciled() {
    let spec = job(vec![task("a", 3, vec![])], DependencyPolicy::Succeeded);
    let mut sim = Sim::new(spec, 3);
    sim.tick();
    let snapshot = sim.persisted.snapshot(1);
    let mut engine = Engine::new(vec![]);
    engine.restore_job(
        sim.id.clone(),
        Arc::clone(&sim.spec),
        1,
        None,
        snapshot,
        5,
        Restore::Reattach,
    );
    // Nothing is re-run while the node has not reported back.
    assert!(engine.schedule(6).is_empty());
    assert_eq!(engine.active_on("n1").len(), 3);
    // The node comes back running attempts 0 and 1 (plus one the engine knows nothing of).
    engine.add_node(Node::new("n1", 3000, 1 << 40));
    let id = sim.id.clone();
    let stray = (Arc::from("job-other"), 0, 0, 1);
    let kills = engine.reconcile_node(
        "n1",
        &[(id.clone(), 0, 0, 1), (id.clone(), 0, 1, 1), stray.clone()],
        7,
    );
    assert_eq!(kills, [stray]);
    // Attempt 2 was lost with the node and is queued again as attempt 2.
    let d = engine.schedule(8);
    assert_eq!(
        d.iter().map(|d| (d.index, d.attempt)).collect::<Vec<_>>(),
        [(2, 2)]
    );
    engine.apply(
        &id,
        Event::Ended {
            task: 0,
            index: 0,
            attempt: 1,
            outcome: Outcome::Exited(0),
        },
        9,
    );
    let run = engine.job(&id).unwrap();
    assert_eq!(run.instance_state(0, 0), Some((State::Succeed, None)));
}

#[test]
fn retry_reruns_only_what_did_not_succeed() {
    let mut a = task("a", 4, vec![]);
    a.on_failure = OnFailure::Interrupt;
    let spec = job(
        vec![a, task("b", 1, vec![dep(0)])],
        DependencyPolicy::Succeeded,
    );
    let mut sim = Sim::new(spec, 4);
    drive(&mut sim, |_, _, i, _| {
        if i == 2 {
            Outcome::Exited(1)
        } else {
            Outcome::Exited(0)
        }
    });
    assert_eq!(sim.job_state(), State::FailedInterrupted);
    let before: HashSet<_> = sim.succeeded.clone();
    assert!(sim.engine.retry_job("job-sim", sim.now).is_ok());
    sim.persist();
    let d = sim.tick();
    assert_eq!(
        d.iter()
            .map(|d| (d.task, d.index, d.attempt))
            .collect::<Vec<_>>(),
        [(0, 2, 2)]
    );
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    assert_eq!(sim.job_state(), State::Succeed);
    assert!(before.iter().all(|k| sim.succeeded.contains(k)));
    assert_eq!(
        sim.engine.retry_job("job-sim", sim.now),
        Err(kiln_core::engine::RetryError::NotFailed(State::Succeed))
    );
}

#[test]
fn terminating_one_instance_fails_only_it() {
    let mut t = task("a", 4, vec![]);
    t.on_failure = OnFailure::Terminate;
    let mut sim = Sim::new(job(vec![t], DependencyPolicy::Succeeded), 1);
    sim.tick(); // a[0] runs
    assert!(sim.engine.terminate_instance("job-sim", 0, 2, sim.now)); // not started yet
    assert!(sim.engine.terminate_instance("job-sim", 0, 0, sim.now)); // running: killed
    sim.persist();
    drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
    sim.check_final();
    let run = sim.engine.job("job-sim").unwrap();
    let v = run.task_view(0).unwrap();
    assert_eq!(
        (v.counts.get(&State::Succeed), v.counts.get(&State::Failed)),
        (Some(&2), Some(&2))
    );
    assert_eq!(
        run.instance_state(0, 2),
        Some((State::Failed, Some(Reason::TerminatedByUser)))
    );
    assert_eq!(v.reason, Some(Reason::TerminatedByUser));
}

/// A random job: up to 6 tasks, each depending on some earlier ones (whole-task or, for equal
/// instance counts, per-instance), random policies, budgets and concurrency caps.
fn arb_job() -> impl Strategy<Value = JobSpec> {
    (
        1usize..=6,
        prop::sample::select(vec![
            DependencyPolicy::Succeeded,
            DependencyPolicy::PartlySucceeded,
            DependencyPolicy::Finished,
        ]),
        prop::collection::vec(
            (1u32..=4, 0u32..=2, 0u32..=3, any::<bool>(), any::<u64>()),
            6,
        ),
    )
        .prop_map(|(n, policy, params)| {
            let mut tasks: Vec<TaskSpec> = Vec::new();
            for (t, &(instances, retries, maxc, interrupt, bits)) in
                params.iter().enumerate().take(n)
            {
                let mut deps = Vec::new();
                for (u, up) in tasks.iter().enumerate() {
                    if bits >> (u * 2) & 1 == 1 {
                        let per_instance =
                            bits >> (u * 2 + 1) & 1 == 1 && up.instances == instances;
                        deps.push(if per_instance { idep(u) } else { dep(u) });
                    }
                }
                let mut ts = task(&format!("t{t}"), instances, deps);
                ts.retries = retries;
                ts.max_concurrency = maxc;
                ts.on_failure = if interrupt {
                    OnFailure::Interrupt
                } else {
                    OnFailure::Terminate
                };
                tasks.push(ts);
            }
            job(tasks, policy)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random DAGs, random exits, node losses, crashes and terminates: every run ends with every
    /// task terminal, and no dispatch ever breaks a rule (checked inside `Sim::tick`).
    #[test]
    fn random_runs_always_end_and_respect_dependencies(
        spec in arb_job(),
        cpus in 1u64..=4,
        seed in any::<u64>(),
        crash_every in prop::option::of(3u32..20),
        lose_node_every in prop::option::of(3u32..20),
        terminate_at in prop::option::of(1u32..40),
    ) {
        let mut sim = Sim::new(spec, cpus);
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut step = 0u32;
        for _ in 0..10_000 {
            step += 1;
            if let Some(k) = crash_every && step.is_multiple_of(k) {
                sim.crash_and_resume();
            }
            if let Some(k) = lose_node_every && step.is_multiple_of(k) {
                sim.engine.node_lost("n1", sim.now);
                sim.running.clear();
                sim.engine.add_node(Node::new("n1", sim.millicpus, 1 << 40));
                sim.persist();
            }
            if terminate_at == Some(step) {
                sim.engine.terminate("job-sim", sim.now);
                sim.persist();
            }
            sim.tick();
            if sim.job_state().is_terminal() && sim.running.is_empty() {
                break;
            }
            let keys: Vec<_> = sim.running.keys().copied().collect();
            prop_assert!(!keys.is_empty(), "stalled in {}", sim.job_state());
            let (t, i) = keys[(next() % keys.len() as u64) as usize];
            let a = sim.running[&(t, i)];
            let outcome = if sim.killed.contains(&(t, i, a)) {
                Outcome::Stopped
            } else {
                match next() % 10 {
                    0..=5 => Outcome::Exited(0),
                    6 | 7 => Outcome::Exited(1),
                    8 => Outcome::TimedOut,
                    _ => Outcome::Lost(LossCause::NodeLost),
                }
            };
            sim.report(t, i, outcome);
        }
        sim.check_final();
        // A failed run retried with nothing failing any more ends SUCCEED, without re-running
        // anything that had succeeded (checked by `Sim::tick`).
        if terminate_at.is_none() && sim.engine.retry_job("job-sim", sim.now).is_ok() {
            sim.persist();
            drive(&mut sim, |_, _, _, _| Outcome::Exited(0));
            sim.check_final();
            prop_assert_eq!(sim.job_state(), State::Succeed);
        }
    }
}

#[test]
fn prefetched_attempts_wait_on_their_node_and_take_capacity_when_they_start() {
    let spec = Arc::new(job(vec![task("a", 5, vec![])], DependencyPolicy::Succeeded));
    let id: JobId = Arc::from("job-prefetch");
    let mut engine = Engine::new(vec![Node::new("n1", 1000, 1 << 30).with_prefetch(1)]);
    engine.add_job(id.clone(), Arc::clone(&spec), 1, 0);
    let d = engine.schedule(1);
    assert_eq!(
        d.iter().map(|d| d.index).collect::<Vec<_>>(),
        [0, 1],
        "one runs, one waits"
    );
    assert!(engine.schedule(2).is_empty(), "the prefetch window is full");
    let ended = |i: u32| Event::Ended {
        task: 0,
        index: i,
        attempt: 1,
        outcome: Outcome::Exited(0),
    };
    let started = |i: u32| Event::Started {
        task: 0,
        index: i,
        attempt: 1,
        pid: None,
    };
    engine.apply(&id, started(0), 3);
    engine.apply(&id, ended(0), 4);
    engine.apply(&id, started(1), 5); // the waiting one takes the freed capacity
    let d = engine.schedule(6);
    assert_eq!(
        d.iter().map(|d| d.index).collect::<Vec<_>>(),
        [2],
        "one more may wait"
    );
    engine.apply(&id, ended(1), 7);
    engine.apply(&id, started(2), 8);
    engine.apply(&id, ended(2), 9);
    let d = engine.schedule(10);
    assert_eq!(d.iter().map(|d| d.index).collect::<Vec<_>>(), [3, 4]);
    // A waiting attempt that is stopped before it starts gives back its place, not capacity.
    assert!(engine.terminate_instance("job-prefetch", 0, 4, 11));
    engine.apply(
        &id,
        Event::Ended {
            task: 0,
            index: 4,
            attempt: 1,
            outcome: Outcome::Stopped,
        },
        12,
    );
    engine.apply(&id, started(3), 13);
    engine.apply(&id, ended(3), 14);
    engine.schedule(15);
    let run = engine.job("job-prefetch").unwrap();
    assert_eq!(run.state(), State::Failed);
    assert_eq!(
        run.task_view(0).unwrap().counts.get(&State::Succeed),
        Some(&4)
    );
}
