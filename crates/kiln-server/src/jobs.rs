//! Job operations and read views for the API, run on the driver thread. Domain types are turned
//! into wire types (`kiln_api`) here and nowhere else.

use std::collections::BTreeMap;

use kiln_api::{AttemptDetail, InstanceDetail, InstanceList, JobDetail, NodeInfo, TaskDetail, Why};
use kiln_core::engine::{JobRun, Restore, TaskView};
use kiln_core::state::{Reason, State};

use crate::cluster::NodeState;
use crate::driver::{Driver, DriverError, now_ms};

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A task's view as its wire type.
pub fn task_detail(v: TaskView) -> TaskDetail {
    TaskDetail {
        name: v.name,
        state: v.state.to_string(),
        reason: text(v.reason.as_ref()),
        instances: v.instances,
        counts: v
            .counts
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn text(r: Option<&Reason>) -> Option<String> {
    r.map(ToString::to_string)
}

/// Why an operation on a job was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobOpError {
    #[error("no job `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Driver(#[from] DriverError),
}

impl From<kiln_store::StoreError> for JobOpError {
    fn from(e: kiln_store::StoreError) -> Self {
        JobOpError::Driver(DriverError::Store(e))
    }
}

impl Driver {
    /// Makes sure a stored job is in the engine (finished jobs are loaded on demand).
    pub fn ensure_loaded(&mut self, id: &str) -> Result<(), JobOpError> {
        if self.engine().job(id).is_some() {
            return Ok(());
        }
        let stored = self
            .store()
            .load_job(id)?
            .ok_or_else(|| JobOpError::NotFound(id.to_string()))?;
        let now = now_ms();
        self.engine_mut().restore_job(
            std::sync::Arc::from(id),
            stored.spec,
            stored.row.seq,
            stored.tasks,
            now,
            Restore::Reattach,
        );
        Ok(())
    }

    fn loaded(&mut self, id: &str) -> Result<&JobRun, JobOpError> {
        self.ensure_loaded(id)?;
        self.engine()
            .job(id)
            .ok_or_else(|| JobOpError::NotFound(id.to_string()))
    }

    /// `POST /v1/jobs/{id}/terminate`.
    pub fn terminate_job(&mut self, id: &str) -> Result<(), JobOpError> {
        let state = self.loaded(id)?.state();
        if state.is_terminal() {
            return Err(JobOpError::Conflict(format!(
                "job {id} already finished ({state})"
            )));
        }
        self.engine_mut().terminate(id, now_ms());
        Ok(())
    }

    /// `POST /v1/jobs/{id}/retry`.
    pub fn retry_job(&mut self, id: &str) -> Result<(), JobOpError> {
        self.ensure_loaded(id)?;
        self.engine_mut()
            .retry_job(id, now_ms())
            .map_err(|e| JobOpError::Conflict(e.to_string()))
    }

    /// `DELETE /v1/jobs/{id}`: only for finished jobs; removes records and logs.
    pub fn delete_job(&mut self, id: &str) -> Result<(), JobOpError> {
        let state = self.loaded(id)?.state();
        if !state.is_terminal() {
            return Err(JobOpError::Conflict(format!(
                "job {id} is {state}: only a finished job can be deleted (terminate it first)"
            )));
        }
        // Commit what is queued first (loading the job may have queued changes to it), so no
        // change to a deleted job is left for the end of the tick.
        self.persist()?;
        self.engine_mut().forget(id);
        self.store().delete_job(id)?;
        for dir in [
            self.logs_dir().join(id),
            self.state_dir().join("work").join(id),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// `GET /v1/jobs/{id}`.
    pub fn job_detail(&mut self, id: &str) -> Result<JobDetail, JobOpError> {
        let row = self
            .store()
            .job_row(id)?
            .ok_or_else(|| JobOpError::NotFound(id.to_string()))?;
        let run = self.loaded(id)?;
        Ok(JobDetail {
            id: id.to_string(),
            name: run.spec.name.clone(),
            state: run.state().to_string(),
            reason: text(run.reason()),
            priority: run.spec.priority,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            tasks: run.task_views().into_iter().map(task_detail).collect(),
        })
    }

    /// `GET /v1/jobs/{id}/tasks/{task}/instances`: `limit` instances from index `from`.
    pub fn instances(
        &mut self,
        id: &str,
        task: &str,
        from: u32,
        limit: u32,
    ) -> Result<InstanceList, JobOpError> {
        let run = self.loaded(id)?;
        let t = task_of(run, task)?;
        let n = run.spec.tasks[t].instances;
        let end = from.saturating_add(limit).min(n);
        let states: Vec<(u32, State, Option<Reason>)> = (from..end)
            .filter_map(|i| run.instance_state(t, i).map(|(s, r)| (i, s, r)))
            .collect();
        let mut items = Vec::with_capacity(states.len());
        for (index, state, reason) in states {
            let attempts = self.store().attempts(id, t, index)?;
            let last = attempts.last();
            items.push(InstanceDetail {
                index,
                state: state.to_string(),
                reason: text(reason.as_ref()),
                attempt: last.map_or(0, |a| a.attempt),
                exit_code: last.and_then(|a| a.exit_code),
                node: last.map(|a| a.node.clone()),
                attempts: attempts
                    .iter()
                    .map(|a| AttemptDetail {
                        attempt: a.attempt,
                        state: a.state.to_string(),
                        reason: text(a.reason.as_ref()),
                        exit_code: a.exit_code,
                        node: Some(a.node.clone()),
                        started_at: Some(rfc3339(a.started_at)),
                        ended_at: a.ended_at.map(rfc3339),
                    })
                    .collect(),
            });
        }
        Ok(InstanceList {
            items,
            next: (end < n).then(|| end.to_string()),
        })
    }

    /// The latest attempt number of an instance (0 if it never ran) and whether it is active.
    pub fn latest_attempt(
        &mut self,
        id: &str,
        task: &str,
        index: u32,
    ) -> Result<(u32, bool), JobOpError> {
        let run = self.loaded(id)?;
        let t = task_of(run, task)?;
        if index >= run.spec.tasks[t].instances {
            return Err(JobOpError::NotFound(format!(
                "{id} task {task} has no instance {index}"
            )));
        }
        if let Some(a) = run.active_attempt(t, index) {
            return Ok((a.attempt, true));
        }
        let attempts = self.store().attempts(id, t, index)?;
        Ok((attempts.last().map_or(0, |a| a.attempt), false))
    }

    /// `GET /v1/jobs/{id}/why`: the state of a job, task or instance and what it waits for.
    pub fn why(
        &mut self,
        id: &str,
        task: Option<&str>,
        index: Option<u32>,
    ) -> Result<Why, JobOpError> {
        let run = self.loaded(id)?;
        let Some(task) = task else {
            let state = run.state();
            let reason = run.reason().cloned();
            let waiting: Vec<String> = run
                .task_views()
                .into_iter()
                .filter(|v| !v.state.is_terminal())
                .map(|v| match &v.reason {
                    Some(r) => format!("{} is {} ({r})", v.name, v.state),
                    None => format!("{} is {}", v.name, v.state),
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
        let t = task_of(run, task)?;
        let (state, reason, what) = match index {
            None => {
                let v = run
                    .task_view(t)
                    .ok_or_else(|| JobOpError::NotFound(task.to_string()))?;
                (v.state, v.reason, format!("task {task}"))
            }
            Some(i) => {
                let (s, r) = run.instance_state(t, i).ok_or_else(|| {
                    JobOpError::NotFound(format!("{id} task {task} has no instance {i}"))
                })?;
                (s, r, format!("instance {task}[{i}]"))
            }
        };
        Ok(Why {
            job: id.to_string(),
            task: Some(task.to_string()),
            index,
            state: state.to_string(),
            reason: text(reason.as_ref()),
            explanation: explain(&what, state, reason.as_ref()),
        })
    }

    /// `GET /v1/nodes`: the built-in executor and every agent.
    pub fn node_infos(&self) -> Vec<NodeInfo> {
        let engine = self.engine();
        let running = |name: &str| engine.active_on(name).len() as u32;
        let mut out = Vec::new();
        for n in engine.nodes() {
            if n.name == self.local_node_name() {
                out.push(NodeInfo {
                    id: "local".into(),
                    name: n.name.clone(),
                    state: NodeState::Running.as_str().into(),
                    compute_env: None,
                    slots: (n.millicpus / 1000) as u32,
                    cpus: n.millicpus as f64 / 1000.0,
                    memory: n.memory,
                    running: running(&n.name),
                    last_seen: None,
                });
            }
        }
        for a in self.agents().list() {
            out.push(NodeInfo {
                id: a.id.clone(),
                name: a.name.clone(),
                state: a.state.as_str().into(),
                compute_env: a.compute_env.clone(),
                slots: a.slots,
                cpus: a.cpus,
                memory: a.memory,
                running: running(&a.name),
                last_seen: Some(rfc3339(a.last_seen)),
            });
        }
        out
    }
}

/// The index of `task` in a job, or NotFound naming both.
fn task_of(run: &JobRun, task: &str) -> Result<usize, JobOpError> {
    run.spec
        .task_index(task)
        .ok_or_else(|| JobOpError::NotFound(format!("{} has no task `{task}`", run.id)))
}

/// A sentence a person can act on.
fn explain(what: &str, state: State, reason: Option<&Reason>) -> String {
    let detail = match reason {
        Some(Reason::WaitingOnDependency(up)) => format!("it waits for {up} to finish"),
        Some(Reason::ConcurrencyLimit) => {
            "its task's max_concurrency is reached; it starts when another instance ends".into()
        }
        Some(Reason::NoCapacity(pool)) => format!(
            "no node of `{pool}` has room for it; it starts when capacity frees up or nodes join"
        ),
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
