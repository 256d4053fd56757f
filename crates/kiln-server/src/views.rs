//! Read views of jobs, served from the store alone: they never wait for the scheduler, and
//! reading a job (finished or not) never loads it into the engine. Any server — leader or
//! standby — answers them the same way, as of the last committed tick.
//!
//! What the engine keeps only in memory is persisted with each task record for this purpose:
//! its counts by state, and why its ready instances wait (`blocked`). An instance that was
//! never dispatched has no record; its state follows from its task's record (and, for `=>`
//! dependencies, from its upstream instances'). Every function blocks: call it off the async
//! executor's threads.

use kiln_api::{AttemptDetail, InstanceDetail, InstanceList, JobDetail, TaskDetail, Why};
use kiln_core::engine::Attempt;
use kiln_core::model::{DepKind, JobSpec};
use kiln_core::spec::format_size;
use kiln_core::state::{Instance, Reason, State};
use kiln_store::{JobView, Store, TaskRecord};

use crate::jobs::JobOpError;
use crate::wire::{rfc3339, text};

fn view_of(store: &dyn Store, id: &str) -> Result<JobView, JobOpError> {
    store
        .job_view(id)?
        .ok_or_else(|| JobOpError::NotFound(format!("no job `{id}`")))
}

fn task_of(view: &JobView, task: &str) -> Result<usize, JobOpError> {
    view.spec
        .task_index(task)
        .filter(|&t| t < view.tasks.len())
        .ok_or_else(|| JobOpError::NotFound(format!("{} has no task `{task}`", view.row.id)))
}

/// A task's wire view. Instances the scheduler has not counted yet are `PENDING`.
fn task_detail(spec: &JobSpec, t: usize, r: &TaskRecord) -> TaskDetail {
    let n = spec.tasks.get(t).map_or(0, |s| s.instances);
    let mut counts = r.counts.clone();
    let counted: u32 = counts.values().sum();
    if counted < n {
        *counts.entry(State::Pending).or_default() += n - counted;
    }
    TaskDetail {
        name: r.name.clone(),
        state: r.state.to_string(),
        reason: text(r.reason.as_ref()),
        instances: n,
        counts: counts.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
    }
}

/// `GET /v1/jobs/{id}`.
pub fn job_detail(store: &dyn Store, id: &str) -> Result<JobDetail, JobOpError> {
    let v = view_of(store, id)?;
    Ok(JobDetail {
        id: v.row.id.clone(),
        name: v.row.name.clone(),
        state: v.row.state.to_string(),
        reason: text(v.row.reason.as_ref()),
        priority: v.row.priority,
        created_at: rfc3339(v.row.created_at),
        updated_at: rfc3339(v.row.updated_at),
        tasks: v
            .tasks
            .iter()
            .enumerate()
            .map(|(t, r)| task_detail(&v.spec, t, r))
            .collect(),
    })
}

/// The states of instances `from..end` of task `t` that have records, and of the `=>`
/// upstream instances of the same indexes: one read per task involved.
struct Slice {
    /// `(index, instance, attempts)` in index order.
    records: Vec<kiln_store::InstancePageItem>,
    /// Per upstream task of a `=>` dependency, the indexes in range that succeeded.
    upstream: Vec<(usize, Vec<u32>)>,
}

fn slice(
    store: &dyn Store,
    v: &JobView,
    t: usize,
    from: u32,
    end: u32,
) -> Result<Slice, JobOpError> {
    let page = |task: usize| -> Result<Vec<kiln_store::InstancePageItem>, JobOpError> {
        let after = from.checked_sub(1);
        let mut items = store.instances_page(&v.row.id, task, after, end - from)?;
        items.retain(|(i, _, _)| *i < end);
        Ok(items)
    };
    let records = page(t)?;
    let mut upstream = Vec::new();
    for d in &v.spec.tasks[t].deps {
        if d.kind == DepKind::Instance {
            let succeeded = page(d.task)?
                .into_iter()
                .filter(|(_, inst, _)| inst.state == State::Succeed)
                .map(|(i, _, _)| i)
                .collect();
            upstream.push((d.task, succeeded));
        }
    }
    Ok(Slice { records, upstream })
}

/// The state of an instance of task `t` that has no record (it was never dispatched), as the
/// engine would show it.
fn fresh_state(
    v: &JobView,
    t: usize,
    index: u32,
    upstream: &[(usize, Vec<u32>)],
) -> (State, Option<Reason>) {
    let task = &v.tasks[t];
    if task.state.is_terminal() || task.unstarted.is_some() {
        let why = task.unstarted.clone().or_else(|| task.reason.clone());
        return match task.state {
            State::Succeed => (State::Succeed, None),
            _ => (State::Failed, why),
        };
    }
    let deps_met = matches!(task.state, State::Runnable | State::Running);
    let spec = &v.spec.tasks[t];
    let waiting = spec.deps.iter().find_map(|d| match d.kind {
        DepKind::Task => (!deps_met).then(|| v.spec.tasks[d.task].name.clone()),
        DepKind::Instance => {
            let done = upstream
                .iter()
                .any(|(up, ok)| *up == d.task && ok.binary_search(&index).is_ok());
            (!done).then(|| format!("{}[{index}]", v.spec.tasks[d.task].name))
        }
    });
    match waiting {
        Some(up) => (State::Pending, Some(Reason::WaitingOnDependency(up))),
        None if deps_met || spec.deps.is_empty() => (State::Runnable, task.blocked.clone()),
        None => (
            State::Pending,
            Some(Reason::WaitingOnDependency(String::new())),
        ),
    }
}

/// The state of an instance with a record: its own, with the task's `blocked` as the reason
/// of a ready one.
fn recorded_state(task: &TaskRecord, inst: &Instance) -> (State, Option<Reason>) {
    match inst.state {
        State::Runnable => (
            inst.state,
            task.blocked.clone().or_else(|| inst.reason.clone()),
        ),
        s => (s, inst.reason.clone()),
    }
}

fn attempt_detail(a: &Attempt) -> AttemptDetail {
    AttemptDetail {
        attempt: a.attempt,
        state: a.state.to_string(),
        reason: text(a.reason.as_ref()),
        exit_code: a.exit_code,
        node: Some(a.node.clone()),
        started_at: Some(rfc3339(a.started_at)),
        ended_at: a.ended_at.map(rfc3339),
        memory: (a.memory > 0).then_some(a.memory),
    }
}

/// `GET /v1/jobs/{id}/tasks/{task}/instances`: `limit` instances from index `from`, every
/// index whether dispatched or not; constant memory in the task's size.
pub fn instances(
    store: &dyn Store,
    id: &str,
    task: &str,
    from: u32,
    limit: u32,
) -> Result<InstanceList, JobOpError> {
    let v = view_of(store, id)?;
    let t = task_of(&v, task)?;
    let n = v.spec.tasks[t].instances;
    let from = from.min(n);
    let end = from.saturating_add(limit).min(n);
    let s = slice(store, &v, t, from, end)?;
    let mut records = s.records.iter().peekable();
    let mut items = Vec::with_capacity((end - from) as usize);
    for index in from..end {
        let record = records.next_if(|(i, _, _)| *i == index);
        let ((state, reason), attempts) = match record {
            Some((_, inst, attempts)) => (recorded_state(&v.tasks[t], inst), &attempts[..]),
            None => (fresh_state(&v, t, index, &s.upstream), &[][..]),
        };
        let last = attempts.last();
        items.push(InstanceDetail {
            index,
            state: state.to_string(),
            reason: text(reason.as_ref()),
            attempt: last.map_or(0, |a| a.attempt),
            exit_code: last.and_then(|a| a.exit_code),
            node: last.map(|a| a.node.clone()),
            attempts: attempts.iter().map(attempt_detail).collect(),
        });
    }
    Ok(InstanceList {
        items,
        next: (end < n).then(|| end.to_string()),
    })
}

/// The latest attempt number of an instance (0 if it never ran) and whether it is active.
pub fn latest_attempt(
    store: &dyn Store,
    id: &str,
    task: &str,
    index: u32,
) -> Result<(u32, bool), JobOpError> {
    let v = view_of(store, id)?;
    let t = task_of(&v, task)?;
    if index >= v.spec.tasks[t].instances {
        return Err(JobOpError::NotFound(format!(
            "{id} task {task} has no instance {index}"
        )));
    }
    let attempts = store.attempts(id, t, index)?;
    Ok(attempts
        .last()
        .map_or((0, false), |a| (a.attempt, a.state.is_active())))
}

/// `GET /v1/jobs/{id}/why`: the state of a job, task or instance and what it waits for. Work
/// waiting for capacity also says what holds its environment's back (`env_status`, e.g.
/// `NO_CAPACITY hpc: 2 allocations pending in Slurm (job 1234 PENDING: Resources)`).
pub fn why(
    store: &dyn Store,
    id: &str,
    task: Option<&str>,
    index: Option<u32>,
    env_status: &dyn Fn(&str) -> Option<String>,
) -> Result<Why, JobOpError> {
    let with_status = |reason: Option<Reason>| match reason {
        Some(Reason::NoCapacity(pool)) => Some(Reason::NoCapacity(match env_status(&pool) {
            Some(status) => format!("{pool}: {status}"),
            None => pool,
        })),
        other => other,
    };
    let v = view_of(store, id)?;
    let Some(task) = task else {
        let state = v.row.state;
        let reason = v.row.reason.clone();
        let waiting: Vec<String> = v
            .tasks
            .iter()
            .filter(|r| !r.state.is_terminal())
            .map(|r| match with_status(r.reason.clone()) {
                Some(why) => format!("{} is {} ({why})", r.name, r.state),
                None => format!("{} is {}", r.name, r.state),
            })
            .collect();
        let explanation = match (&reason, waiting.is_empty()) {
            (Some(r), _) => format!("job {id} is {state}: {r}"),
            (None, true) => format!("job {id} is {state}"),
            (None, false) => format!("job {id} is {state}: {}", waiting.join("; ")),
        };
        return Ok(Why {
            job: id.to_string(),
            task: None,
            index: None,
            state: state.to_string(),
            reason: text(reason.as_ref()),
            explanation,
        });
    };
    let t = task_of(&v, task)?;
    let (state, reason, what) = match index {
        None => {
            let r = &v.tasks[t];
            (r.state, r.reason.clone(), format!("task {task}"))
        }
        Some(i) => {
            if i >= v.spec.tasks[t].instances {
                return Err(JobOpError::NotFound(format!(
                    "{id} task {task} has no instance {i}"
                )));
            }
            let s = slice(store, &v, t, i, i + 1)?;
            let what = format!("instance {task}[{i}]");
            let (state, reason) = match s.records.first() {
                Some((_, inst, attempts)) => {
                    let (state, reason) = recorded_state(&v.tasks[t], inst);
                    if reason == Some(Reason::OutOfMemory) {
                        let memory = v.spec.tasks[t].resources.memory;
                        let ran = attempts.last().map_or(memory, |a| a.memory);
                        let next = if inst.memory > 0 { inst.memory } else { memory };
                        return Ok(Why {
                            job: id.to_string(),
                            task: Some(task.to_string()),
                            index,
                            state: state.to_string(),
                            reason: text(reason.as_ref()),
                            explanation: out_of_memory(&what, state, ran, next),
                        });
                    }
                    (state, reason)
                }
                None => fresh_state(&v, t, i, &s.upstream),
            };
            (state, reason, what)
        }
    };
    let reason = with_status(reason);
    Ok(Why {
        job: id.to_string(),
        task: Some(task.to_string()),
        index,
        state: state.to_string(),
        reason: text(reason.as_ref()),
        explanation: explain(&what, state, reason.as_ref()),
    })
}

/// Why an instance that ran out of memory is where it is: `OUT_OF_MEMORY at 512MiB, retrying
/// with 1GiB`.
fn out_of_memory(what: &str, state: State, ran: u64, next: u64) -> String {
    let at = format_size(ran);
    if state == State::Runnable && next > ran {
        format!(
            "{what} is {state}: OUT_OF_MEMORY at {at}, retrying with {}",
            format_size(next)
        )
    } else if state == State::Runnable {
        format!("{what} is {state}: OUT_OF_MEMORY at {at}, retrying with the same memory")
    } else {
        format!("{what} is {state}: OUT_OF_MEMORY at {at}")
    }
}

/// A sentence a person can act on.
fn explain(what: &str, state: State, reason: Option<&Reason>) -> String {
    let detail = match reason {
        Some(Reason::WaitingOnDependency(up)) => format!("it waits for {up} to finish"),
        Some(Reason::ConcurrencyLimit) => {
            "its task's max_concurrency is reached; it starts when another instance ends".into()
        }
        Some(Reason::NoCapacity(pool)) => match pool.split_once(": ") {
            Some((pool, status)) => format!(
                "no node of `{pool}` has room for it ({status}); it starts when capacity frees \
                 up or nodes join"
            ),
            None => format!(
                "no node of `{pool}` has room for it; it starts when capacity frees up or nodes \
                 join"
            ),
        },
        Some(Reason::UpstreamFailed(up)) => format!("{up} did not succeed, so it cannot run"),
        Some(r) => r.to_string(),
        None => match state {
            State::Running | State::Starting => "it is running".into(),
            State::Succeed => "it succeeded".into(),
            _ => "nothing holds it back".into(),
        },
    };
    format!("{what} is {state}: {detail}")
}
