//! Durable state: jobs, tasks, task instances and attempts.
//!
//! [`Store`] is the one narrow interface the shells use. Two backends sit behind it:
//! [`sqlite::SqliteStore`] (embedded; WAL mode, one writer connection, readers on their own
//! connections) and [`postgres::PgStore`] (several servers on one database; a connection pool).
//! Each scheduler tick's changes commit in one transaction. Every backend passes
//! [`conformance::run`], and neither lets a type of its driver into this interface.
//!
//! A store is shared (`Arc<dyn Store>`): the driver writes through it, HTTP handlers read
//! through it concurrently. Every method blocks; call it off an async executor's threads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kiln_core::engine::{Attempt, Change, TaskSnapshot};
use kiln_core::journal::{Event, EventKind};
use kiln_core::model::JobSpec;
use kiln_core::state::{Instance, Reason, State};

mod codec;
pub mod conformance;
pub mod postgres;
pub mod secrets;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Something went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement (the backend's message).
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached (connection refused, broken, timed out).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
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
    /// A unique name is held by another record (e.g. a node name under another node id).
    #[error("{kind} name `{name}` is taken by another {kind}")]
    NameTaken { kind: &'static str, name: String },
    /// A scheduling write by a leader whose lease another server has taken since (its epoch
    /// is stale): nothing of it was written.
    #[error("the scheduler lease moved on (this server's epoch {held}, the store's {current})")]
    Fenced { held: u64, current: u64 },
    /// `--db` names something this build cannot open.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens the store `db` names: a `postgres://` (or `postgresql://`) URL, or else SQLite at
/// `DATA_DIR/kiln.db` when `db` is `None`.
pub fn open(db: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match db {
        None => Ok(Arc::new(SqliteStore::open(&data_dir.join("kiln.db"))?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::open(url)?))
        }
        Some(other) => Err(StoreError::InvalidUrl(format!(
            "`{}`: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact(other)
        ))),
    }
}

/// A database URL with its password (if any) replaced, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

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
    /// When the job's `timeout` expires (ms since the epoch), if it has one.
    pub deadline: Option<u64>,
    /// The project it belongs to (the spec's `project`, else [`DEFAULT_PROJECT`]).
    pub project: String,
}

/// Everything needed to rebuild a job in the engine.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub row: JobRow,
    pub spec: Arc<JobSpec>,
    pub tasks: Vec<TaskSnapshot>,
}

/// A task's stored record, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub name: String,
    pub state: State,
    pub reason: Option<Reason>,
    pub stop: Option<Reason>,
    pub unstarted: Option<Reason>,
    /// Why ready instances did not dispatch in the scheduler's last pass.
    pub blocked: Option<Reason>,
    /// Every instance counted by state as the scheduler last saw it (empty until it did).
    pub counts: BTreeMap<State, u32>,
}

/// A job with its spec and its tasks' records, read in one snapshot.
#[derive(Debug, Clone)]
pub struct JobView {
    pub row: JobRow,
    pub spec: Arc<JobSpec>,
    /// In task order.
    pub tasks: Vec<TaskRecord>,
}

/// The scheduler's lease, as the store holds it: which server schedules, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holding server's id (empty: never held).
    pub holder: String,
    /// The holding server's API URL, for clients and agents to find the leader.
    pub url: String,
    /// Bumped each time the lease changes hands; every scheduling write carries it.
    pub epoch: u64,
    /// ms since the epoch by the store's clock.
    pub expires_at: u64,
    /// Whether it had expired when read (by the store's clock).
    pub expired: bool,
}

/// A page of jobs, newest first (`seq` descending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<State>,
    /// Only jobs whose name starts with this (case-sensitive, no wildcards).
    pub name_prefix: Option<String>,
    /// Only jobs of this project.
    pub project: Option<String>,
    /// Cursor: only jobs with `seq < after_seq` (pass the last `seq` of the previous page).
    pub after_seq: Option<u64>,
    /// At most this many rows (0 gives none).
    pub limit: u32,
}

/// A named task template. On replace, the stored `created_at` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    pub name: String,
    pub description: Option<String>,
    /// The raw task fields, as JSON text (opaque to the store).
    pub task_json: String,
    /// The project that owns it.
    pub project: String,
    /// ms since the epoch.
    pub created_at: u64,
    /// ms since the epoch.
    pub updated_at: u64,
}

/// The answer to a create request sent with an idempotency key (`Idempotency-Key`, Tencent's
/// `ClientToken`): the same key with the same request gets this answer again instead of a second
/// create. Keyed by (`scope`, `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Which operation (and, with projects, whose): keys of different scopes never meet.
    pub scope: String,
    pub key: String,
    /// SHA-256 (hex) of the request, to tell a repeat from a different request under one key.
    pub request: String,
    /// What the create made (`job/ID`, `task-template/NAME`, …): deleting it forgets the
    /// answer, which would otherwise name something gone.
    pub resource: String,
    /// The answer's status and body, as first sent.
    pub status: u16,
    pub response: String,
    /// ms since the epoch.
    pub created_at: u64,
}

/// What an idempotent create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// It created the record (and stored the idempotency record with it).
    Created(T),
    /// The key was taken: nothing was written; this is the stored record.
    Taken(IdempotencyRecord),
}

/// A write a standby took for the leader to act on (terminate, retry, delete, …), as
/// [`Store::push_command`] stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// Increasing in the order commands were stored.
    pub id: u64,
    /// What to do, as JSON text (opaque to the store).
    pub command: String,
    /// ms since the epoch.
    pub created_at: u64,
    /// The leader's answer, once it acted.
    pub answer: Option<CommandAnswer>,
}

/// What [`Store::inbox`] found for the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbox {
    /// As [`Store::submitted_jobs`].
    pub submitted: Vec<JobRow>,
    /// As [`Store::pending_commands`].
    pub commands: Vec<CommandRecord>,
}

/// What the leader answered to a command: an HTTP status and, unless it succeeded, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAnswer {
    pub status: u16,
    pub message: String,
    /// ms since the epoch.
    pub at: u64,
}

/// A compute environment. On replace, the stored `created_at` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeEnvRecord {
    pub name: String,
    pub description: Option<String>,
    pub provider: String,
    pub desired_nodes: u32,
    /// instance_type / resources / image / network / slots, as JSON text (opaque to the store).
    pub config_json: String,
    /// The projects whose tasks may run on it (at least one; the first made it).
    pub projects: Vec<String>,
    /// ms since the epoch.
    pub created_at: u64,
    /// ms since the epoch.
    pub updated_at: u64,
}

/// A storage profile (DESIGN §9 storage profiles). Its secret fields are sealed by
/// [`secrets::SecretBox`] inside `config_json` before the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProfileRecord {
    pub name: String,
    /// kind, endpoint, region, keys (sealed), default, … as JSON text (opaque to the store).
    pub config_json: String,
    /// The project that owns it.
    pub project: String,
    /// ms since the epoch.
    pub created_at: u64,
}

/// A compute node. Keyed by `id`; `name` is unique too. On update, the stored `created_at` is
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    pub name: String,
    /// `CREATING`, `RUNNING`, `ABNORMAL`, `DELETING`, … (opaque to the store).
    pub state: String,
    pub compute_env: Option<String>,
    pub slots: u32,
    pub millicpus: u64,
    /// Bytes.
    pub memory: u64,
    /// ms since the epoch.
    pub last_seen: u64,
    /// ms since the epoch.
    pub created_at: u64,
}

/// The project of a spec: its own, else [`DEFAULT_PROJECT`].
pub fn project_of(spec: &JobSpec) -> &str {
    spec.project.as_deref().unwrap_or(DEFAULT_PROJECT)
}

/// The project every database has, created by the schema itself; it cannot be deleted.
pub const DEFAULT_PROJECT: &str = "default";

/// A project: a namespace that owns jobs, templates, profiles and environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub name: String,
    pub description: Option<String>,
    /// ms since the epoch (0 for the `default` project the schema made).
    pub created_at: u64,
}

/// An API token of one project and role. Only the digest of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Unique; also part of the token's text, so a call finds its record without a scan.
    pub name: String,
    /// SHA-256 of the whole token, lowercase hex.
    pub digest: String,
    pub project: String,
    /// `viewer`, `submitter`, `operator`, `admin` (opaque to the store).
    pub role: String,
    /// ms since the epoch.
    pub created_at: u64,
    /// ms since the epoch; none: never expires.
    pub expires_at: Option<u64>,
    /// ms since the epoch, once revoked.
    pub revoked_at: Option<u64>,
}

/// One state-changing API call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing in the order records were stored (assigned by the store; ignored on append).
    pub seq: u64,
    /// ms since the epoch.
    pub at: u64,
    /// The name of the token that called (`admin` for the bootstrap token).
    pub token: String,
    /// The caller's project (none for the bootstrap token).
    pub project: Option<String>,
    /// What was asked, e.g. `POST /v1/jobs`.
    pub action: String,
    /// What it was about, e.g. `job/job-4yn0we13` (empty if nothing was named).
    pub object: String,
    /// The HTTP status answered.
    pub result: u16,
}

/// A journal event as stored, with its sequence number: numbers only grow, in the order the
/// events were committed, with no gap but those retention trimmed from the front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: Event,
}

/// Which events [`Store::events`] reads: those after `after`, in sequence order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with `seq > after`.
    pub after: u64,
    /// Only this job's.
    pub job: Option<String>,
    /// Only these kinds (any, if empty).
    pub kinds: Vec<EventKind>,
    /// Only this project's.
    pub project: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// One materialised instance with all its attempts in order, as listed by
/// [`Store::instances_page`].
pub type InstancePageItem = (u32, Instance, Vec<Attempt>);

/// The durable store. All writes of one scheduler tick go through one [`Store::apply`] call.
pub trait Store: Send + Sync {
    /// Which backend this is (`sqlite`, `postgres`), for logs.
    fn backend(&self) -> &'static str;
    /// Stores a newly accepted job durably (synced to disk before returning), with the item
    /// lists its tasks carry, in chunks of [`kiln_core::model::ITEM_CHUNK`].
    fn insert_job(&self, id: &str, spec: &JobSpec, now: u64) -> Result<JobRow>;
    /// Persists a batch of engine changes atomically.
    fn apply(&self, changes: &[Change]) -> Result<()>;
    /// Like [`Store::apply`], by the leader of `epoch`: refused with [`StoreError::Fenced`]
    /// (writing nothing) unless `epoch` is still the lease's, checked in the same
    /// transaction. Attempts first written here record `epoch`.
    fn apply_fenced(&self, changes: &[Change], epoch: u64) -> Result<()>;

    /// Takes or renews the scheduler lease for `holder` for `ttl_ms` by the store's clock.
    /// With `held: Some(epoch)` it renews that term, and answers `None` if the term is over
    /// (expired, or taken by another). With `None` it takes the lease if it is free or
    /// expired, as a new term with the next epoch (recorded in the terms history). Returns
    /// the epoch held.
    fn claim_lease(
        &self,
        holder: &str,
        url: &str,
        ttl_ms: u64,
        held: Option<u64>,
    ) -> Result<Option<u64>>;
    /// Ends `holder`'s term `epoch` now (a clean shutdown), so another server may take over
    /// at once. Nothing if the term is already over.
    fn release_lease(&self, holder: &str, epoch: u64) -> Result<()>;
    /// The lease as stored.
    fn lease(&self) -> Result<Lease>;
    /// Jobs accepted but not yet taken by a scheduler (`SUBMITTED`), oldest first: what a
    /// leader adopts from submissions taken by other servers.
    fn submitted_jobs(&self) -> Result<Vec<JobRow>>;
    /// A job with its tasks' and instances' records, if it exists.
    fn load_job(&self, id: &str) -> Result<Option<StoredJob>>;
    /// A job with its spec and task records (no instances), if it exists.
    fn job_view(&self, id: &str) -> Result<Option<JobView>>;
    /// A job's row alone (no tasks or instances), if it exists.
    fn job_row(&self, id: &str) -> Result<Option<JobRow>>;
    /// Jobs not in a terminal state, oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<JobRow>>;
    /// Unfinished jobs whose spec equals `spec`, oldest first.
    fn unfinished_with_spec(&self, spec: &JobSpec) -> Result<Vec<JobRow>>;
    /// Every attempt of one instance, in order.
    fn attempts(&self, job: &str, task: usize, index: u32) -> Result<Vec<Attempt>>;
    /// Chunk `chunk` of a task's items (items `chunk * ITEM_CHUNK ..`), as newline-separated
    /// JSON, as [`Store::insert_job`] stored them from the spec's item lists.
    fn item_chunk(&self, job: &str, task: usize, chunk: u32) -> Result<Option<String>>;

    /// Jobs matching `q`, newest first (`seq` descending).
    fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>>;
    /// Removes a job with its tasks, instances and attempts, atomically. `false` if absent.
    /// Whether the job may be deleted (finished, not held by an engine) is the caller's call.
    fn delete_job(&self, id: &str) -> Result<bool>;
    /// [`Store::delete_job`] by the leader of `epoch`: refused with [`StoreError::Fenced`]
    /// (deleting nothing) unless `epoch` is still the lease's, as [`Store::apply_fenced`].
    fn delete_job_fenced(&self, id: &str, epoch: u64) -> Result<bool>;
    /// Materialised instances of one task with index `> after`, in index order, at most
    /// `limit`, each with all its attempts in order. Empty for an unknown job or task.
    fn instances_page(
        &self,
        job: &str,
        task: usize,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<InstancePageItem>>;
    /// Per task (in task order), the number of materialised instances in each state (states
    /// with none are absent; never-dispatched instances are not counted). Empty for an unknown
    /// job.
    fn task_counts(&self, job: &str) -> Result<Vec<BTreeMap<State, u32>>>;

    /// [`Store::insert_job`] and `once` in one transaction: either both are stored or neither.
    /// If `once`'s key is stored already, nothing is written and that record is returned.
    fn insert_job_once(
        &self,
        id: &str,
        spec: &JobSpec,
        now: u64,
        once: &IdempotencyRecord,
    ) -> Result<Once<JobRow>>;
    /// Stores `once`, durably, unless its key is stored already (then returns that record).
    fn put_idempotency(&self, once: &IdempotencyRecord) -> Result<Option<IdempotencyRecord>>;
    /// The record stored under (`scope`, `key`), if any.
    fn get_idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>>;
    /// Removes every record created before `before` (ms since the epoch); returns how many.
    fn purge_idempotency(&self, before: u64) -> Result<u64>;
    /// Removes the records of creates that made `resource`; returns how many.
    fn forget_idempotency(&self, resource: &str) -> Result<u64>;

    /// Stores a command for the leader, durably; returns its id.
    fn push_command(&self, command: &str, now: u64) -> Result<u64>;
    /// Commands not answered yet, oldest first, at most `limit`.
    fn pending_commands(&self, limit: u32) -> Result<Vec<CommandRecord>>;
    /// What a leader takes in after each tick: [`Store::submitted_jobs`] and
    /// [`Store::pending_commands`]`(limit)`, read together (in one round trip where the
    /// backend is remote).
    fn inbox(&self, limit: u32) -> Result<Inbox> {
        Ok(Inbox {
            submitted: self.submitted_jobs()?,
            commands: self.pending_commands(limit)?,
        })
    }
    /// Records the leader's answer to a command; `false` if it is absent or answered already
    /// (then nothing changes).
    fn answer_command(&self, id: u64, answer: &CommandAnswer) -> Result<bool>;
    /// The command stored under `id`, if any.
    fn get_command(&self, id: u64) -> Result<Option<CommandRecord>>;
    /// Removes the commands answered before `before` (ms since the epoch); returns how many.
    fn purge_commands(&self, before: u64) -> Result<u64>;

    /// Stores (or replaces) a secret, durably.
    fn put_secret(&self, name: &str, value: &str) -> Result<()>;
    fn get_secret(&self, name: &str) -> Result<Option<String>>;
    /// Removes a secret, durably; `false` if there was none of that name.
    fn delete_secret(&self, name: &str) -> Result<bool>;

    /// Stores a template, durably; `true` if created, `false` if it replaced one.
    fn put_template(&self, t: &TemplateRecord) -> Result<bool>;
    /// Stores a template, durably, only if no template has its name: `true` if created,
    /// `false` (nothing written) if the name is taken. Atomic: of servers creating one name at
    /// once, exactly one gets `true`.
    fn create_template(&self, t: &TemplateRecord) -> Result<bool>;
    fn get_template(&self, name: &str) -> Result<Option<TemplateRecord>>;
    /// Every template, by name.
    fn list_templates(&self) -> Result<Vec<TemplateRecord>>;
    /// `false` if absent.
    fn delete_template(&self, name: &str) -> Result<bool>;

    /// Stores a compute environment, durably; `true` if created, `false` if it replaced one.
    /// Stores a storage profile if its name is free; `false` (nothing written) if taken.
    fn create_storage_profile(&self, p: &StorageProfileRecord) -> Result<bool>;
    fn get_storage_profile(&self, name: &str) -> Result<Option<StorageProfileRecord>>;
    /// Every storage profile, by name.
    fn list_storage_profiles(&self) -> Result<Vec<StorageProfileRecord>>;
    /// `false` if there was none of that name.
    fn delete_storage_profile(&self, name: &str) -> Result<bool>;

    fn put_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool>;
    /// Stores a compute environment, durably, only if none has its name: `true` if created,
    /// `false` (nothing written) if the name is taken. Atomic, as [`Store::create_template`].
    fn create_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool>;
    fn get_compute_env(&self, name: &str) -> Result<Option<ComputeEnvRecord>>;
    /// Every compute environment, by name.
    fn list_compute_envs(&self) -> Result<Vec<ComputeEnvRecord>>;
    /// `false` if absent. Nodes naming it are left alone.
    fn delete_compute_env(&self, name: &str) -> Result<bool>;
    /// Sets `desired_nodes` (nothing else, `updated_at` included); `false` if absent.
    fn set_desired_nodes(&self, name: &str, desired: u32) -> Result<bool>;

    /// Inserts a node or updates the one with the same `id` (keeping its `created_at`).
    /// [`StoreError::NameTaken`] if another node has that name.
    fn upsert_node(&self, n: &NodeRecord) -> Result<()>;
    /// Every node, by name.
    fn list_nodes(&self) -> Result<Vec<NodeRecord>>;
    /// Removes the node with this name; `false` if absent.
    fn delete_node(&self, name: &str) -> Result<bool>;

    /// Stores a project if its name is free; `false` (nothing written) if taken.
    fn create_project(&self, p: &ProjectRecord) -> Result<bool>;
    fn get_project(&self, name: &str) -> Result<Option<ProjectRecord>>;
    /// Every project (`default` included), by name.
    fn list_projects(&self) -> Result<Vec<ProjectRecord>>;
    /// `false` if absent. Whether it may go (not `default`, nothing in it) is the caller's call.
    fn delete_project(&self, name: &str) -> Result<bool>;

    /// Stores a token if its name is free; `false` (nothing written) if taken.
    fn create_token(&self, t: &TokenRecord) -> Result<bool>;
    /// Read from the database on every call (never cached), so a revocation holds at once.
    fn get_token(&self, name: &str) -> Result<Option<TokenRecord>>;
    /// Every token, revoked ones included, by name.
    fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked at `at`; `false` if absent or revoked already (nothing changes).
    fn revoke_token(&self, name: &str, at: u64) -> Result<bool>;

    /// Appends an audit record, durably; returns its `seq`.
    fn append_audit(&self, a: &AuditRecord) -> Result<u64>;
    /// Audit records with `at >= since` and `seq > after`, oldest first, at most `limit`.
    fn audit(&self, since: u64, after: u64, limit: u32) -> Result<Vec<AuditRecord>>;

    /// Journal events matching `q`, in sequence order. Besides the events a batch of
    /// [`Store::apply`] carries ([`Change::Event`]), the store journals in the same
    /// transaction what its own writes do: a job inserted (`JobSubmitted`) or deleted
    /// (`JobDeleted`), a node's state changed or removed, a compute environment created,
    /// replaced, scaled or deleted.
    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>>;
    /// The sequence number of the newest event (0: none yet).
    fn last_event_seq(&self) -> Result<u64>;
    /// Removes at most `limit` of the oldest events dated before `before` (ms since the
    /// epoch); returns how many. Small batches, so a long trim never holds the writer.
    fn purge_events(&self, before: u64, limit: u32) -> Result<u64>;
}
