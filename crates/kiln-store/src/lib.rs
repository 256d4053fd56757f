//! Durable state: jobs, tasks, task instances and attempts.
//!
//! [`Store`] is the one narrow interface the shells use; [`sqlite::SqliteStore`] is the
//! embedded implementation (WAL mode, one writer, each scheduler tick's changes committed in one
//! transaction). Every backend must pass [`conformance::run`].

use std::sync::Arc;

use kiln_core::engine::{Attempt, Change, JobId, TaskSnapshot};
use kiln_core::model::JobSpec;
use kiln_core::state::{Reason, State};

pub mod conformance;
pub mod sqlite;

pub use sqlite::SqliteStore;

/// Something went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored record is corrupt ({what}): {detail}")]
    Corrupt { what: String, detail: String },
    #[error("the database was written by a newer Kiln (schema {found}, this one knows {known})")]
    TooNew { found: i64, known: i64 },
    #[error("job `{0}` exists already")]
    Duplicate(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A job as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub seq: u64,
    pub name: String,
    pub priority: u8,
    pub state: State,
    pub reason: Option<Reason>,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Everything needed to rebuild a job in the engine.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub row: JobRow,
    pub spec: Arc<JobSpec>,
    pub tasks: Vec<TaskSnapshot>,
}

/// The durable store. All writes of one scheduler tick go through one [`Store::apply`] call.
pub trait Store {
    /// Stores a newly accepted job durably (synced to disk before returning).
    fn insert_job(&mut self, id: &str, spec: &JobSpec, now: u64) -> Result<JobRow>;
    /// Persists a batch of engine changes atomically.
    fn apply(&mut self, changes: &[Change]) -> Result<()>;
    /// A job with its tasks' and instances' records, if it exists.
    fn load_job(&mut self, id: &str) -> Result<Option<StoredJob>>;
    /// Jobs not in a terminal state, oldest first.
    fn unfinished_jobs(&mut self) -> Result<Vec<JobRow>>;
    /// Unfinished jobs whose spec equals `spec`, oldest first.
    fn unfinished_with_spec(&mut self, spec: &JobSpec) -> Result<Vec<JobRow>>;
    /// Every attempt of one instance, in order.
    fn attempts(&mut self, job: &str, task: usize, index: u32) -> Result<Vec<Attempt>>;
}

/// Keys a change by the record it writes, so that a batch can be coalesced (last write wins).
pub(crate) fn change_key(c: &Change) -> (u8, &JobId, usize, u32, u32) {
    match c {
        Change::Job { job, .. } => (0, job, 0, 0, 0),
        Change::Task { job, task, .. } => (1, job, *task, 0, 0),
        Change::Instance {
            job, task, index, ..
        } => (2, job, *task, *index, 0),
        Change::Attempt {
            job,
            task,
            index,
            record,
        } => (3, job, *task, *index, record.attempt),
    }
}
