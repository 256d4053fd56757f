//! The journal: every change of state of a job, task, instance attempt, node and compute
//! environment, and every operation on them, as one past-tense [`Event`].
//!
//! Events of the scheduler are derived here from the engine's [`Change`]s by a [`Journal`],
//! which remembers the last state it reported of each live job, task and attempt, so that a
//! record written again unchanged (new counts, a pid) is no event. The store writes the events
//! of a batch in the batch's own transaction and numbers them; nothing here numbers them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::engine::{Change, JobId};
use crate::state::{Reason, State};

/// The project of every event until projects exist.
pub const DEFAULT_PROJECT: &str = "default";

macro_rules! kinds {
    ($($name:ident),* $(,)?) => {
        /// What happened, past tense.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $($name),*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$name => stringify!($name)),*
                }
            }
        }
    };
}

kinds!(
    JobSubmitted,
    JobQueued,
    JobReleased,
    JobDispatched,
    JobStarted,
    JobSucceeded,
    JobFailed,
    JobInterrupted,
    JobTerminated,
    JobRetried,
    JobDeleted,
    TaskQueued,
    TaskReleased,
    TaskDispatched,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskInterrupted,
    InstanceQueued,
    InstanceReleased,
    InstanceDispatched,
    InstanceStarted,
    InstanceSucceeded,
    InstanceFailed,
    InstanceInterrupted,
    InstanceTerminated,
    NodeCreated,
    NodeJoined,
    NodeLost,
    NodeDraining,
    NodeRemoved,
    ComputeEnvCreated,
    ComputeEnvUpdated,
    ComputeEnvScaled,
    ComputeEnvDeleted,
);

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type name that is none of [`EventKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which kind of record a state change is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Job,
    Task,
    Instance,
}

/// The event of `subject` entering `state`.
pub fn kind_of(subject: Subject, state: State) -> EventKind {
    use EventKind as K;
    match (subject, state) {
        (Subject::Job, State::Submitted) => K::JobSubmitted,
        (Subject::Job, State::Pending) => K::JobQueued,
        (Subject::Job, State::Runnable) => K::JobReleased,
        (Subject::Job, State::Starting) => K::JobDispatched,
        (Subject::Job, State::Running) => K::JobStarted,
        (Subject::Job, State::Succeed) => K::JobSucceeded,
        (Subject::Job, State::Failed) => K::JobFailed,
        (Subject::Job, State::FailedInterrupted) => K::JobInterrupted,
        // A task or an instance is submitted with its job.
        (Subject::Task, State::Submitted | State::Pending) => K::TaskQueued,
        (Subject::Task, State::Runnable) => K::TaskReleased,
        (Subject::Task, State::Starting) => K::TaskDispatched,
        (Subject::Task, State::Running) => K::TaskStarted,
        (Subject::Task, State::Succeed) => K::TaskSucceeded,
        (Subject::Task, State::Failed) => K::TaskFailed,
        (Subject::Task, State::FailedInterrupted) => K::TaskInterrupted,
        (Subject::Instance, State::Submitted | State::Pending) => K::InstanceQueued,
        (Subject::Instance, State::Runnable) => K::InstanceReleased,
        (Subject::Instance, State::Starting) => K::InstanceDispatched,
        (Subject::Instance, State::Running) => K::InstanceStarted,
        (Subject::Instance, State::Succeed) => K::InstanceSucceeded,
        (Subject::Instance, State::Failed) => K::InstanceFailed,
        (Subject::Instance, State::FailedInterrupted) => K::InstanceInterrupted,
    }
}

/// The event of a node entering a state (as the node registry names it), if it is one.
pub fn node_kind(state: &str) -> Option<EventKind> {
    match state {
        "CREATING" => Some(EventKind::NodeCreated),
        "RUNNING" => Some(EventKind::NodeJoined),
        "ABNORMAL" => Some(EventKind::NodeLost),
        "DELETING" => Some(EventKind::NodeDraining),
        _ => None,
    }
}

/// What an event is about, beyond its job: only the fields that apply are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_env: Option<String>,
    /// The state entered, as its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A compute environment's node count after it was scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_nodes: Option<u32>,
}

/// One event, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// ms since the epoch.
    pub at: u64,
    pub project: String,
    pub kind: EventKind,
    pub job: Option<String>,
    pub detail: Detail,
}

impl Event {
    /// An event of `kind` in the default project.
    pub fn new(kind: EventKind, at: u64, job: Option<&str>, detail: Detail) -> Self {
        Event {
            at,
            project: DEFAULT_PROJECT.to_string(),
            kind,
            job: job.map(str::to_string),
            detail,
        }
    }

    /// A job-level event with no detail (submitted, terminated, retried, deleted).
    pub fn of_job(kind: EventKind, job: &str, at: u64) -> Self {
        Event::new(kind, at, Some(job), Detail::default())
    }
}

fn reason_text(r: &Option<Reason>) -> Option<String> {
    r.as_ref().map(ToString::to_string)
}

/// What the journal last reported of an attempt: its number and state.
type AttemptSeen = (u32, State);

/// Remembers the last reported state of each live job, task and attempt, to turn batches of
/// changes into events (see the module's doc).
#[derive(Debug, Default)]
pub struct Journal {
    jobs: HashMap<JobId, State>,
    tasks: HashMap<(JobId, usize), State>,
    /// Attempts not yet ended, by instance.
    attempts: HashMap<(JobId, usize, u32), AttemptSeen>,
}

impl Journal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in what the store holds of a job reloaded into the engine: its state, its tasks'
    /// states (in task order) and its attempts not yet ended `(task, index, attempt, state)`,
    /// so that the reload itself is no event.
    pub fn seed_job(
        &mut self,
        job: &JobId,
        state: State,
        tasks: impl IntoIterator<Item = Option<State>>,
        active: impl IntoIterator<Item = (usize, u32, u32, State)>,
    ) {
        self.forget_job(job);
        self.jobs.insert(job.clone(), state);
        for (t, s) in tasks.into_iter().enumerate() {
            if let Some(s) = s {
                self.tasks.insert((job.clone(), t), s);
            }
        }
        for (t, index, attempt, s) in active {
            if !s.is_terminal() {
                self.attempts.insert((job.clone(), t, index), (attempt, s));
            }
        }
    }

    /// Forgets a job (finished and dropped, deleted, or the term ended).
    pub fn forget_job(&mut self, job: &JobId) {
        self.jobs.remove(job);
        self.tasks.retain(|(j, _), _| j != job);
        self.attempts.retain(|(j, _, _), _| j != job);
    }

    /// Forgets everything (the engine was dropped).
    pub fn clear(&mut self) {
        *self = Journal::default();
    }

    /// The events of one batch of changes, in the order of the changes. `task_name` names a
    /// task of a job; `now` dates changes that carry no time of their own.
    pub fn events(
        &mut self,
        changes: &[Change],
        now: u64,
        task_name: &dyn Fn(&JobId, usize) -> Option<String>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for c in changes {
            match c {
                Change::Job {
                    job,
                    state,
                    reason,
                    at,
                    ..
                } => {
                    if self.jobs.insert(job.clone(), *state) == Some(*state) {
                        continue;
                    }
                    let detail = Detail {
                        state: Some(state.as_str().to_string()),
                        reason: reason_text(reason),
                        ..Detail::default()
                    };
                    out.push(Event::new(
                        kind_of(Subject::Job, *state),
                        *at,
                        Some(job),
                        detail,
                    ));
                }
                Change::Task {
                    job,
                    task,
                    state,
                    reason,
                    ..
                } => {
                    if self.tasks.insert((job.clone(), *task), *state) == Some(*state) {
                        continue;
                    }
                    let detail = Detail {
                        task: task_name(job, *task),
                        state: Some(state.as_str().to_string()),
                        reason: reason_text(reason),
                        ..Detail::default()
                    };
                    out.push(Event::new(
                        kind_of(Subject::Task, *state),
                        now,
                        Some(job),
                        detail,
                    ));
                }
                // An instance's own record follows its attempts; the attempts are the events.
                Change::Instance { .. } => {}
                Change::Event(_) => {}
                Change::Attempt {
                    job,
                    task,
                    index,
                    record,
                } => {
                    let key = (job.clone(), *task, *index);
                    let seen = (record.attempt, record.state);
                    if self.attempts.get(&key) == Some(&seen) {
                        continue;
                    }
                    if record.state.is_terminal() {
                        self.attempts.remove(&key);
                    } else {
                        self.attempts.insert(key, seen);
                    }
                    let at = if record.state.is_terminal() {
                        record.ended_at.unwrap_or(now)
                    } else {
                        now.max(record.started_at)
                    };
                    let detail = Detail {
                        task: task_name(job, *task),
                        index: Some(*index),
                        attempt: Some(record.attempt),
                        node: Some(record.node.clone()),
                        state: Some(record.state.as_str().to_string()),
                        reason: reason_text(&record.reason),
                        exit_code: record.exit_code,
                        ..Detail::default()
                    };
                    out.push(Event::new(
                        kind_of(Subject::Instance, record.state),
                        at,
                        Some(job),
                        detail,
                    ));
                }
            }
        }
        out
    }
}
