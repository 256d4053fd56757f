//! Job operations (terminate, retry, delete), run on the driver thread. Reads of jobs are in
//! `views`, served from the store.

use kiln_api::NodeInfo;
use kiln_core::engine::Restore;
use kiln_core::journal::EventKind;

use crate::cluster::NodeState;
use crate::driver::{Driver, DriverError, now_ms};
use crate::wire::rfc3339;

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
    /// Loads a stored job into the engine unless it is there (a finished job, to retry it).
    fn ensure_loaded(&mut self, id: &str) -> Result<(), JobOpError> {
        if self.engine().job(id).is_some() {
            return Ok(());
        }
        let stored = self
            .store()
            .load_job(id)?
            .ok_or_else(|| JobOpError::NotFound(format!("no job `{id}`")))?;
        let now = now_ms();
        let deadline = crate::driver::deadline_of(&stored);
        self.engine_mut().restore_job(
            std::sync::Arc::from(id),
            stored.spec,
            stored.row.seq,
            deadline,
            stored.tasks,
            now,
            Restore::Reattach,
        );
        Ok(())
    }

    /// The stored state of a job, or NotFound.
    fn stored_state(&self, id: &str) -> Result<kiln_core::state::State, JobOpError> {
        if let Some(run) = self.engine().job(id) {
            return Ok(run.state());
        }
        Ok(self
            .store()
            .job_row(id)?
            .ok_or_else(|| JobOpError::NotFound(format!("no job `{id}`")))?
            .state)
    }

    /// `POST /v1/jobs/{id}/terminate`. Committed before it returns.
    pub fn terminate_job(&mut self, id: &str) -> Result<(), JobOpError> {
        self.require_leader()?;
        let state = self.stored_state(id)?;
        if state.is_terminal() || self.engine().job(id).is_none() {
            return Err(JobOpError::Conflict(format!(
                "job {id} already finished ({state})"
            )));
        }
        self.note(EventKind::JobTerminated, id);
        self.engine_mut().terminate(id, now_ms());
        self.engine_mut().refresh(now_ms());
        self.persist()?;
        Ok(())
    }

    /// `POST /v1/jobs/{id}/tasks/{task}/instances/{index}/terminate`: stops the instance if it
    /// runs, ends it `FAILED` (`TERMINATED_BY_USER`) if it has not started. Committed before it
    /// returns.
    pub fn terminate_instance(
        &mut self,
        id: &str,
        task: &str,
        index: u32,
    ) -> Result<(), JobOpError> {
        self.require_leader()?;
        let state = self.stored_state(id)?;
        let Some(run) = self.engine().job(id).filter(|_| !state.is_terminal()) else {
            return Err(JobOpError::Conflict(format!(
                "job {id} already finished ({state})"
            )));
        };
        let t = run
            .spec
            .task_index(task)
            .ok_or_else(|| JobOpError::NotFound(format!("{id} has no task `{task}`")))?;
        let Some((instance, _)) = run.instance_state(t, index) else {
            return Err(JobOpError::NotFound(format!(
                "{id} task {task} has no instance {index}"
            )));
        };
        let now = now_ms();
        if instance.is_terminal() || !self.engine_mut().terminate_instance(id, t, index, now) {
            return Err(JobOpError::Conflict(format!(
                "instance {task}[{index}] of {id} already finished ({instance})"
            )));
        }
        self.note_instance_terminated(id, task, index);
        self.engine_mut().refresh(now);
        self.persist()?;
        Ok(())
    }

    /// `POST /v1/jobs/{id}/retry`. Committed before it returns. With `finished_at` (the
    /// job's `updated_at` when the retry was asked for), a job stored as changed since was
    /// retried already for this request: nothing more is done.
    pub fn retry_job(&mut self, id: &str, finished_at: Option<u64>) -> Result<(), JobOpError> {
        self.require_leader()?;
        if let Some(at) = finished_at
            && let Some(row) = self.store().job_row(id)?
            && row.updated_at != at
        {
            tracing::info!(
                "job {id} was retried already (changed at {}, asked at {at})",
                row.updated_at
            );
            return Ok(());
        }
        self.ensure_loaded(id)?;
        self.engine_mut()
            .retry_job(id, now_ms())
            .map_err(|e| JobOpError::Conflict(e.to_string()))?;
        self.note(EventKind::JobRetried, id);
        self.persist()?;
        Ok(())
    }

    /// `DELETE /v1/jobs/{id}`: only for finished jobs; removes records and logs.
    pub fn delete_job(&mut self, id: &str) -> Result<(), JobOpError> {
        self.require_leader()?;
        let state = self.stored_state(id)?;
        if !state.is_terminal() {
            return Err(JobOpError::Conflict(format!(
                "job {id} is {state}: only a finished job can be deleted (terminate it first)"
            )));
        }
        // Commit what is queued first, so no change to a deleted job is left for the end of
        // the tick.
        self.persist()?;
        self.engine_mut().forget(id);
        self.forget_journaled(id);
        self.items.forget(id);
        self.delete_stored_job(id)?;
        for dir in [
            self.logs_dir().join(id),
            self.state_dir().join("work").join(id),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// `GET /v1/nodes`: the built-in executor and every agent.
    pub fn node_infos(&self) -> Vec<NodeInfo> {
        if !self.is_leader() {
            // A standby knows the nodes as the leader recorded them.
            return self
                .store()
                .list_nodes()
                .unwrap_or_default()
                .into_iter()
                .map(|n| NodeInfo {
                    id: n.id,
                    name: n.name,
                    state: n.state,
                    compute_env: n.compute_env,
                    slots: n.slots,
                    cpus: n.millicpus as f64 / 1000.0,
                    memory: n.memory,
                    running: 0,
                    last_seen: Some(rfc3339(n.last_seen)),
                })
                .collect();
        }
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
