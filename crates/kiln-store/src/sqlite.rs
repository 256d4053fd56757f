//! The embedded SQLite store.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kiln_core::engine::{Attempt, Change, TaskSnapshot};
use kiln_core::journal::{Detail, Event, EventKind};
use kiln_core::model::{JobSpec, SPEC_VERSION};
use kiln_core::state::{Instance, State};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use crate::codec::{self, corrupt, parse_reason, parse_state, text};
use crate::{
    AuditRecord, CommandAnswer, CommandRecord, ComputeEnvRecord, EventQuery, IdempotencyRecord,
    InstancePageItem, JobQuery, JobRow, JobView, Lease, NodeRecord, Once, ProjectRecord, Result,
    StorageProfileRecord, Store, StoreError, StoredEvent, StoredJob, TemplateRecord, TokenRecord,
};

/// Version 1: jobs, tasks, instances, attempts, secrets, templates, compute environments,
/// nodes.
const V1: &str = "
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    spec_version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE TABLE tasks (
    job INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
    task INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    stop TEXT,
    unstarted TEXT,
    PRIMARY KEY (job, task)
) WITHOUT ROWID;
CREATE TABLE instances (
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempt INTEGER NOT NULL,
    retries_used INTEGER NOT NULL,
    resource_retries_used INTEGER NOT NULL,
    exit_code INTEGER,
    stop TEXT,
    PRIMARY KEY (job, task, idx)
) WITHOUT ROWID;
CREATE TABLE attempts (
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    node TEXT NOT NULL,
    pid INTEGER,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    PRIMARY KEY (job, task, idx, attempt)
) WITHOUT ROWID;
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    description TEXT,
    task TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE compute_envs (
    name TEXT PRIMARY KEY,
    description TEXT,
    provider TEXT NOT NULL,
    desired_nodes INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    compute_env TEXT,
    slots INTEGER NOT NULL,
    millicpus INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Migration steps: step `i` brings a database from version `i` to `i + 1`. A new table or
/// column is a new step at the end; a step, once released, never changes.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10];

/// Version 9: what each record belongs to: the project of jobs, templates and storage
/// profiles, and the projects (comma-separated) an environment serves. Records from before
/// are the `default` project's.
const V9: &str = "
ALTER TABLE jobs ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
CREATE INDEX jobs_project ON jobs(project, seq);
ALTER TABLE templates ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE storage_profiles ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE compute_envs ADD COLUMN projects TEXT NOT NULL DEFAULT 'default';
";

/// Version 8: projects (with the `default` one), API tokens of a project and role (their
/// digests only), and the audit log of state-changing calls.
const V8: &str = "
CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO projects (name, description, created_at) VALUES ('default', NULL, 0);
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    project TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    token TEXT NOT NULL,
    project TEXT,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    result INTEGER NOT NULL
);
CREATE INDEX audit_at ON audit(at);
";

/// Version 10: the journal. `seq` is the event's sequence number: one writer, and
/// `AUTOINCREMENT` never hands out a number twice, so numbers grow in commit order.
const V10: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    project TEXT NOT NULL,
    type TEXT NOT NULL,
    job TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX events_job ON events(job, seq);
CREATE INDEX events_at ON events(at);
";

/// Version 7: storage profiles (their secret fields sealed before they get here).
const V7: &str = "
CREATE TABLE storage_profiles (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 6: writes taken by a standby (terminate, retry, delete, …) for the leader to act
/// on, with the leader's answer.
const V6: &str = "
CREATE TABLE commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answered_at INTEGER,
    status INTEGER,
    message TEXT
);
CREATE INDEX commands_pending ON commands(id) WHERE answered_at IS NULL;
";

/// Version 3: the scheduler lease with its fencing epoch and the history of its terms; the
/// epoch each attempt was dispatched under, and when the store first recorded it.
const V3: &str = "
CREATE TABLE leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO leader (id, holder, url, epoch, expires_at) VALUES (1, '', '', 0, 0);
CREATE TABLE leader_terms (
    epoch INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    granted_at INTEGER NOT NULL
);
ALTER TABLE attempts ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN recorded_at INTEGER;
";

/// Version 5: job deadlines (`timeout`), the memory of instances and attempts
/// (`on_out_of_memory`), and task items, kept in chunks of `ITEM_CHUNK` newline-separated JSON
/// items.
const V5: &str = "
ALTER TABLE jobs ADD COLUMN deadline INTEGER;
ALTER TABLE instances ADD COLUMN memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN oom_retries_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN memory INTEGER NOT NULL DEFAULT 0;
CREATE TABLE task_items (
    job INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
    task INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    items TEXT NOT NULL,
    PRIMARY KEY (job, task, chunk)
) WITHOUT ROWID;
";

/// The store's clock in ms since the epoch, inside a statement.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// Version 2: what readers show of a task without the scheduler (its counts by state, and
/// why its ready instances wait).
const V2: &str = "
ALTER TABLE tasks ADD COLUMN blocked TEXT;
ALTER TABLE tasks ADD COLUMN counts TEXT;
";

/// Version 4: answers to idempotent creates (`Idempotency-Key`, `ClientToken`).
const V4: &str = "
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    resource TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE INDEX idempotency_resource ON idempotency(resource);
";

/// Schema version written to `PRAGMA user_version`: the number of steps.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Enough for every distinct statement this store prepares (rusqlite's default is 16).
const STATEMENT_CACHE: usize = 64;

/// At most this many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// SQLite in WAL mode. Writes go through one connection (tick batches commit with
/// `synchronous=NORMAL`: durable across a crash of the process; a power loss may lose the last
/// ticks, which recovery re-runs; a job's acceptance commits with `synchronous=FULL`). Reads
/// use connections of their own, so they never wait for a write, nor a write for them.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// Idle read connections (none for an in-memory database, whose reads use the writer).
    readers: Mutex<Vec<Connection>>,
    path: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Retries `f` while SQLite reports the database busy or locked, for up to 10 seconds.
fn busy_retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrating an older schema.
    /// Inserts a job, with the record of the idempotent request that created it if one is given.
    fn insert_job_with(
        &self,
        id: &str,
        spec: &JobSpec,
        now: u64,
        once: Option<&IdempotencyRecord>,
    ) -> Result<Once<JobRow>> {
        let spec_json = codec::encode_spec(spec)?;
        let seq = self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(once) = once
                && let Some(found) = idempotency_of(&tx, &once.scope, &once.key)?
            {
                return Ok(Err(found));
            }
            if seq_of(&tx, id)?.is_some() {
                return Err(StoreError::Duplicate(id.to_string()));
            }
            tx.prepare_cached(
                "INSERT INTO jobs (id, name, priority, spec_version, spec, state, created_at,
                     updated_at, project)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'SUBMITTED', ?6, ?6, ?7)",
            )?
            .execute(params![
                id,
                spec.name,
                spec.priority,
                SPEC_VERSION,
                spec_json,
                now as i64,
                crate::project_of(spec)
            ])?;
            let seq = tx.last_insert_rowid();
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO tasks (job, task, name, state) VALUES (?1, ?2, ?3, 'SUBMITTED')",
                )?;
                for (t, task) in spec.tasks.iter().enumerate() {
                    stmt.execute(params![seq, t as i64, task.name])?;
                }
            }
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO task_items (job, task, chunk, items) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (t, c, chunk) in codec::item_chunks(spec) {
                    stmt.execute(params![seq, t as i64, c as i64, chunk])?;
                }
            }
            if let Some(once) = once {
                insert_idempotency(&tx, once)?;
            }
            let submitted = Event {
                project: crate::project_of(spec).to_string(),
                ..Event::of_job(EventKind::JobSubmitted, id, now)
            };
            insert_events(&tx, &[&submitted])?;
            tx.commit()?;
            Ok(Ok(seq))
        })?;
        let seq = match seq {
            Ok(seq) => seq,
            Err(found) => return Ok(Once::Taken(found)),
        };
        Ok(Once::Created(JobRow {
            id: id.to_string(),
            seq: seq as u64,
            name: spec.name.clone(),
            priority: spec.priority,
            state: State::Submitted,
            reason: None,
            created_at: now,
            updated_at: now,
            deadline: None,
            project: crate::project_of(spec).to_string(),
        }))
    }

    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Self::init(Connection::open(path)?, Some(path.to_path_buf()))
    }

    /// Opens an existing database for reading only — the state directory of a `kiln run`, also
    /// while that run goes on: nothing is created, migrated or written (every write fails).
    /// A database of an older schema is refused too, since it cannot be migrated here.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(StoreError::Database(format!(
                "no database at {}",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let version = check_version(&conn)?;
        if version < SCHEMA_VERSION {
            return Err(StoreError::Database(format!(
                "the database at {} has schema {version}; this Kiln reads {SCHEMA_VERSION} (a `kiln run` with this state directory upgrades it)",
                path.display()
            )));
        }
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path: Some(path.to_path_buf()),
        })
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Check the version before anything that writes to the file (switching to WAL rewrites
        // the header): a newer database is refused, never rewritten.
        check_version(&conn)?;
        // Switching to WAL needs an exclusive lock, and SQLite answers "busy" at once (without
        // its busy handler) when another connection opening the same new file holds one.
        busy_retry(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if check_version(&conn)? < SCHEMA_VERSION {
            // Holding the write lock, look again: another process may have migrated meanwhile.
            busy_retry(|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
                for step in MIGRATIONS
                    .iter()
                    .skip(usize::try_from(version).unwrap_or(0))
                {
                    tx.execute_batch(step)?;
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()
            })?;
        }
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path,
        })
    }

    /// Runs `f` on the writer connection.
    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        f(&mut lock(&self.writer))
    }

    /// Runs `f` with `synchronous=FULL` on the writer: for writes acknowledged to a user.
    fn durably<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.write(|conn| {
            conn.pragma_update(None, "synchronous", "FULL")?;
            let result = f(conn);
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            result
        })
    }

    /// Runs one statement durably; `true` if it changed a row.
    fn execute_durably(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool> {
        self.durably(|conn| Ok(conn.prepare_cached(sql)?.execute(p)? > 0))
    }

    /// Runs `f` on a read connection of its own (the writer's for an in-memory database).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            return self.write(f);
        };
        let idle = lock(&self.readers).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                c
            }
        };
        let result = f(&mut conn);
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// A job's records; with `fence`, only while that epoch holds the lease.
    fn delete_job_with(&self, id: &str, fence: Option<u64>) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(held) = fence {
                check_fence(&tx, held)?;
            }
            let Some(seq) = seq_of(&tx, id)? else {
                return Ok(false);
            };
            let project: String = tx
                .prepare_cached("SELECT project FROM jobs WHERE seq = ?1")?
                .query_row([seq], |r| r.get(0))?;
            for sql in [
                "DELETE FROM task_items WHERE job = ?1",
                "DELETE FROM attempts WHERE job = ?1",
                "DELETE FROM instances WHERE job = ?1",
                "DELETE FROM tasks WHERE job = ?1",
                "DELETE FROM jobs WHERE seq = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([seq])?;
            }
            insert_events(
                &tx,
                &[&Event {
                    project,
                    ..Event::of_job(EventKind::JobDeleted, id, now_ms(&tx)?)
                }],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// One tick's batch; with `fence`, only while that epoch holds the lease.
    fn apply_with(&self, changes: &[Change], fence: Option<u64>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let latest = codec::coalesce(changes);
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(held) = fence {
                check_fence(&tx, held)?;
            }
            let epoch = big(fence.unwrap_or(0));
            let mut seqs: HashMap<&str, i64> = HashMap::new();
            for c in latest {
                let Some(job) = codec::change_job(c) else {
                    continue;
                };
                let seq = match seqs.get(&**job) {
                    Some(&s) => s,
                    None => {
                        let s = seq_of(&tx, job)?
                            .ok_or_else(|| corrupt("change", format!("unknown job {job}")))?;
                        seqs.insert(job, s);
                        s
                    }
                };
                apply_one(&tx, seq, epoch, c)?;
            }
            insert_events(&tx, &codec::events(changes))?;
            tx.commit()?;
            Ok(())
        })
    }
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn job_rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<JobRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, Option<i64>>(8)?,
            r.get::<_, String>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, seq, name, priority, state, reason, created, updated, deadline, project) = row?;
        out.push(JobRow {
            state: parse_state(&state)?,
            reason: parse_reason(reason)?,
            id,
            seq: seq as u64,
            name,
            priority: priority.clamp(0, 100) as u8,
            created_at: created as u64,
            updated_at: updated as u64,
            deadline: deadline.map(|d| d as u64),
            project,
        });
    }
    Ok(out)
}

fn seq_of(conn: &Connection, id: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM jobs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

const JOB_COLUMNS: &str =
    "id, seq, name, priority, state, reason, created_at, updated_at, deadline, project";

/// The schema version of the database, refusing one newer than this build knows.
fn check_version(conn: &Connection) -> Result<i64> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// `(attempt, state, reason, exit_code, node, pid, started_at, ended_at, memory)` as stored.
type RawAttempt = (
    u32,
    String,
    Option<String>,
    Option<i32>,
    String,
    Option<u32>,
    i64,
    Option<i64>,
    i64,
);

/// The attempt columns [`raw_attempt`] reads, in order (`{p}` is a table prefix, e.g. `a.`).
fn attempt_columns(p: &str) -> String {
    format!(
        "{p}attempt, {p}state, {p}reason, {p}exit_code, {p}node, {p}pid, {p}started_at, \
         {p}ended_at, {p}memory"
    )
}

/// Reads the nine attempt columns of [`attempt_columns`] starting at column `at`.
fn raw_attempt(r: &Row<'_>, at: usize) -> rusqlite::Result<RawAttempt> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
        r.get(at + 8)?,
    ))
}

fn attempt_from(raw: RawAttempt) -> Result<Attempt> {
    let (attempt, state, reason, exit_code, node, pid, started, ended, memory) = raw;
    Ok(Attempt {
        attempt,
        state: parse_state(&state)?,
        reason: parse_reason(reason)?,
        exit_code,
        node,
        pid,
        started_at: started as u64,
        ended_at: ended.map(|e| e as u64),
        memory: memory as u64,
    })
}

/// `(state, reason, attempt, retries_used, resource_retries_used, exit_code, stop, memory,
/// oom_retries_used)` as stored.
type RawInstance = (
    String,
    Option<String>,
    u32,
    u32,
    u32,
    Option<i32>,
    Option<String>,
    i64,
    u32,
);

/// The instance columns [`raw_instance`] reads, in order.
const INSTANCE_COLUMNS: &str = "state, reason, attempt, retries_used, resource_retries_used, \
     exit_code, stop, memory, oom_retries_used";

/// Reads the nine [`INSTANCE_COLUMNS`] starting at column `at`.
fn raw_instance(r: &Row<'_>, at: usize) -> rusqlite::Result<RawInstance> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
        r.get(at + 8)?,
    ))
}

fn instance_from(raw: RawInstance) -> Result<Instance> {
    let (state, reason, attempt, retries_used, resource_retries_used, exit_code, stop, memory, oom) =
        raw;
    Ok(Instance {
        state: parse_state(&state)?,
        reason: parse_reason(reason)?,
        attempt,
        retries_used,
        resource_retries_used,
        exit_code,
        stop: parse_reason(stop)?,
        memory: memory as u64,
        oom_retries_used: oom,
    })
}

/// The row key of a job, looked up inside a statement (`?1` is the job id).
const JOB_SEQ: &str = "(SELECT seq FROM jobs WHERE id = ?1)";

const PROJECT_COLUMNS: &str = "name, description, created_at";

fn project_row(r: &Row<'_>) -> rusqlite::Result<ProjectRecord> {
    Ok(ProjectRecord {
        name: r.get(0)?,
        description: r.get(1)?,
        created_at: r.get::<_, i64>(2)? as u64,
    })
}

const TOKEN_COLUMNS: &str = "name, digest, project, role, created_at, expires_at, revoked_at";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        name: r.get(0)?,
        digest: r.get(1)?,
        project: r.get(2)?,
        role: r.get(3)?,
        created_at: r.get::<_, i64>(4)? as u64,
        expires_at: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
    })
}

const AUDIT_COLUMNS: &str = "seq, at, token, project, action, object, result";

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get::<_, i64>(0)? as u64,
        at: r.get::<_, i64>(1)? as u64,
        token: r.get(2)?,
        project: r.get(3)?,
        action: r.get(4)?,
        object: r.get(5)?,
        result: r.get(6)?,
    })
}

const PROFILE_COLUMNS: &str = "name, config, created_at, project";

fn profile_row(r: &Row<'_>) -> rusqlite::Result<StorageProfileRecord> {
    Ok(StorageProfileRecord {
        name: r.get(0)?,
        config_json: r.get(1)?,
        created_at: r.get::<_, i64>(2)? as u64,
        project: r.get(3)?,
    })
}

const TEMPLATE_COLUMNS: &str = "name, description, task, created_at, updated_at, project";

fn template_row(r: &Row<'_>) -> rusqlite::Result<TemplateRecord> {
    Ok(TemplateRecord {
        name: r.get(0)?,
        description: r.get(1)?,
        task_json: r.get(2)?,
        created_at: r.get::<_, i64>(3)? as u64,
        updated_at: r.get::<_, i64>(4)? as u64,
        project: r.get(5)?,
    })
}

const ENV_COLUMNS: &str =
    "name, description, provider, desired_nodes, config, created_at, updated_at, projects";

fn env_row(r: &Row<'_>) -> rusqlite::Result<ComputeEnvRecord> {
    Ok(ComputeEnvRecord {
        name: r.get(0)?,
        description: r.get(1)?,
        provider: r.get(2)?,
        desired_nodes: r.get(3)?,
        config_json: r.get(4)?,
        created_at: r.get::<_, i64>(5)? as u64,
        updated_at: r.get::<_, i64>(6)? as u64,
        projects: split_projects(&r.get::<_, String>(7)?),
    })
}

/// An environment's stored projects (comma-separated) as a list.
fn split_projects(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

const NODE_COLUMNS: &str =
    "id, name, state, compute_env, slots, millicpus, memory, last_seen, created_at";

fn node_row(r: &Row<'_>) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        compute_env: r.get(3)?,
        slots: r.get(4)?,
        millicpus: r.get::<_, i64>(5)? as u64,
        memory: r.get::<_, i64>(6)? as u64,
        last_seen: r.get::<_, i64>(7)? as u64,
        created_at: r.get::<_, i64>(8)? as u64,
    })
}

/// Every row of a parameterless query, mapped by `f`.
const IDEMPOTENCY_COLUMNS: &str = "scope, key, request, resource, status, response, created_at";

fn idempotency_of(conn: &Connection, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency WHERE scope = ?1 AND key = ?2"
        ))?
        .query_row([scope, key], |r| {
            Ok(IdempotencyRecord {
                scope: r.get(0)?,
                key: r.get(1)?,
                request: r.get(2)?,
                resource: r.get(3)?,
                status: r.get::<_, i64>(4)?.clamp(0, 999) as u16,
                response: r.get(5)?,
                created_at: r.get::<_, i64>(6)? as u64,
            })
        })
        .optional()?)
}

fn insert_idempotency(conn: &Connection, r: &IdempotencyRecord) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO idempotency ({IDEMPOTENCY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        r.scope,
        r.key,
        r.request,
        r.resource,
        i64::from(r.status),
        r.response,
        r.created_at as i64
    ])?;
    Ok(())
}

const COMMAND_COLUMNS: &str = "id, command, created_at, answered_at, status, message";

fn command_row(r: &Row<'_>) -> rusqlite::Result<CommandRecord> {
    let answered: Option<i64> = r.get(3)?;
    let status: Option<i64> = r.get(4)?;
    let message: Option<String> = r.get(5)?;
    Ok(CommandRecord {
        id: r.get::<_, i64>(0)? as u64,
        command: r.get(1)?,
        created_at: r.get::<_, i64>(2)? as u64,
        answer: answered.map(|at| CommandAnswer {
            status: u16::try_from(status.unwrap_or(0)).unwrap_or(0),
            message: message.unwrap_or_default(),
            at: at as u64,
        }),
    })
}

fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], f)?;
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn insert_job(&self, id: &str, spec: &JobSpec, now: u64) -> Result<JobRow> {
        match self.insert_job_with(id, spec, now, None)? {
            Once::Created(row) => Ok(row),
            Once::Taken(r) => Err(StoreError::Corrupt {
                what: "idempotency".into(),
                detail: format!("no key was given, yet `{}` was found", r.key),
            }),
        }
    }

    fn insert_job_once(
        &self,
        id: &str,
        spec: &JobSpec,
        now: u64,
        once: &IdempotencyRecord,
    ) -> Result<Once<JobRow>> {
        self.insert_job_with(id, spec, now, Some(once))
    }

    fn put_idempotency(&self, once: &IdempotencyRecord) -> Result<Option<IdempotencyRecord>> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(found) = idempotency_of(&tx, &once.scope, &once.key)? {
                return Ok(Some(found));
            }
            insert_idempotency(&tx, once)?;
            tx.commit()?;
            Ok(None)
        })
    }

    fn get_idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        self.read(|conn| idempotency_of(conn, scope, key))
    }

    fn push_command(&self, command: &str, now: u64) -> Result<u64> {
        self.durably(|conn| {
            conn.prepare_cached("INSERT INTO commands (command, created_at) VALUES (?1, ?2)")?
                .execute(params![command, now as i64])?;
            Ok(conn.last_insert_rowid() as u64)
        })
    }

    fn pending_commands(&self, limit: u32) -> Result<Vec<CommandRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE answered_at IS NULL
                 ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([i64::from(limit)], command_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn answer_command(&self, id: u64, answer: &CommandAnswer) -> Result<bool> {
        self.execute_durably(
            "UPDATE commands SET answered_at = ?2, status = ?3, message = ?4
             WHERE id = ?1 AND answered_at IS NULL",
            params![
                id as i64,
                answer.at as i64,
                i64::from(answer.status),
                answer.message
            ],
        )
    }

    fn get_command(&self, id: u64) -> Result<Option<CommandRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1"
                ))?
                .query_row([id as i64], command_row)
                .optional()?)
        })
    }

    fn purge_commands(&self, before: u64) -> Result<u64> {
        self.write(|conn| {
            Ok(conn
                .prepare_cached("DELETE FROM commands WHERE answered_at < ?1")?
                .execute([before as i64])? as u64)
        })
    }

    fn purge_idempotency(&self, before: u64) -> Result<u64> {
        self.write(|conn| {
            Ok(conn
                .prepare_cached("DELETE FROM idempotency WHERE created_at < ?1")?
                .execute([before as i64])? as u64)
        })
    }

    fn forget_idempotency(&self, resource: &str) -> Result<u64> {
        self.durably(|conn| {
            Ok(conn
                .prepare_cached("DELETE FROM idempotency WHERE resource = ?1")?
                .execute([resource])? as u64)
        })
    }

    fn apply(&self, changes: &[Change]) -> Result<()> {
        self.apply_with(changes, None)
    }

    fn apply_fenced(&self, changes: &[Change], epoch: u64) -> Result<()> {
        self.apply_with(changes, Some(epoch))
    }

    fn claim_lease(
        &self,
        holder: &str,
        url: &str,
        ttl_ms: u64,
        held: Option<u64>,
    ) -> Result<Option<u64>> {
        let ttl = big(ttl_ms);
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let epoch = match held {
                Some(epoch) => {
                    let renewed = tx
                        .prepare_cached(&format!(
                            "UPDATE leader SET expires_at = {NOW_MS} + ?3
                             WHERE id = 1 AND holder = ?1 AND epoch = ?2 AND expires_at > {NOW_MS}"
                        ))?
                        .execute(params![holder, big(epoch), ttl])?;
                    (renewed > 0).then_some(epoch)
                }
                None => {
                    let taken: Option<i64> = tx
                        .prepare_cached(&format!(
                            "UPDATE leader SET holder = ?1, url = ?2, epoch = epoch + 1,
                                 expires_at = {NOW_MS} + ?3
                             WHERE id = 1 AND expires_at <= {NOW_MS} RETURNING epoch"
                        ))?
                        .query_row(params![holder, url, ttl], |r| r.get(0))
                        .optional()?;
                    if let Some(epoch) = taken {
                        tx.prepare_cached(&format!(
                            "INSERT INTO leader_terms (epoch, holder, url, granted_at)
                             VALUES (?1, ?2, ?3, {NOW_MS})"
                        ))?
                        .execute(params![epoch, holder, url])?;
                    }
                    taken.map(|e| e as u64)
                }
            };
            tx.commit()?;
            Ok(epoch)
        })
    }

    fn release_lease(&self, holder: &str, epoch: u64) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(&format!(
                "UPDATE leader SET expires_at = {NOW_MS} - 1 WHERE id = 1 AND holder = ?1 AND epoch = ?2"
            ))?
            .execute(params![holder, big(epoch)])?;
            Ok(())
        })
    }

    fn lease(&self) -> Result<Lease> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT holder, url, epoch, expires_at, expires_at <= {NOW_MS} FROM leader
                     WHERE id = 1"
                ))?
                .query_row([], |r| {
                    Ok(Lease {
                        holder: r.get(0)?,
                        url: r.get(1)?,
                        epoch: r.get::<_, i64>(2)? as u64,
                        expires_at: r.get::<_, i64>(3)? as u64,
                        expired: r.get(4)?,
                    })
                })?)
        })
    }

    fn submitted_jobs(&self) -> Result<Vec<JobRow>> {
        self.read(|conn| {
            job_rows(
                conn,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'SUBMITTED' ORDER BY seq"),
                [],
            )
        })
    }

    fn job_view(&self, id: &str) -> Result<Option<JobView>> {
        self.read(|conn| {
            let tx = conn.transaction()?;
            let found: Option<(i64, String, i64)> = tx
                .prepare_cached("SELECT seq, spec, spec_version FROM jobs WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((seq, spec_json, spec_version)) = found else {
                return Ok(None);
            };
            let spec = codec::decode_spec(id, &spec_json, spec_version)?;
            let row = job_rows(
                &tx,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE seq = ?1"),
                [seq],
            )?
            .pop()
            .ok_or_else(|| corrupt("job", id))?;
            let mut tasks = Vec::with_capacity(spec.tasks.len());
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT name, state, reason, stop, unstarted, blocked, counts
                     FROM tasks WHERE job = ?1 ORDER BY task",
                )?;
                let rows = stmt.query_map([seq], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?;
                for row in rows {
                    let (name, state, reason, stop, unstarted, blocked, counts) = row?;
                    tasks.push(codec::task_record(
                        name,
                        &state,
                        reason,
                        stop,
                        unstarted,
                        blocked,
                        counts.as_deref(),
                    )?);
                }
            }
            tx.commit()?;
            Ok(Some(JobView {
                row,
                spec: Arc::new(spec),
                tasks,
            }))
        })
    }

    fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        self.read(|conn| {
            Ok(job_rows(
                conn,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
            )?
            .pop())
        })
    }

    fn load_job(&self, id: &str) -> Result<Option<StoredJob>> {
        // One read transaction: every query sees the same snapshot.
        self.read(|conn| {
            let tx = conn.transaction()?;
            let found = load_job_in(&tx, id)?;
            tx.commit()?;
            Ok(found)
        })
    }

    fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        self.read(|conn| {
            job_rows(
                conn,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ({}) ORDER BY seq",
                    codec::terminal_sql()
                ),
                [],
            )
        })
    }

    fn unfinished_with_spec(&self, spec: &JobSpec) -> Result<Vec<JobRow>> {
        let spec_json = codec::encode_spec(spec)?;
        self.read(|conn| {
            job_rows(
                conn,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ({}) AND spec = ?1
                     ORDER BY seq",
                    codec::terminal_sql()
                ),
                [spec_json],
            )
        })
    }

    fn attempts(&self, job: &str, task: usize, index: u32) -> Result<Vec<Attempt>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM attempts WHERE job = {JOB_SEQ} AND task = ?2 AND idx = ?3
                 ORDER BY attempt",
                attempt_columns("")
            ))?;
            let rows = stmt.query_map(params![job, task as i64, index], |r| raw_attempt(r, 0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(attempt_from(row?)?);
            }
            Ok(out)
        })
    }

    fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>> {
        // One statement per combination of filters, so that each can use its index (`jobs_state`
        // is `(state, seq)`; `seq` is the rowid) and stay in the statement cache.
        let mut conds = Vec::new();
        let mut values = Vec::new();
        if let Some(state) = q.state {
            values.push(Value::Text(state.as_str().to_string()));
            conds.push(format!("state = ?{}", values.len()));
        }
        if let Some(prefix) = &q.name_prefix {
            values.push(Value::Text(prefix.clone()));
            let n = values.len();
            // Not LIKE: no wildcards, and case-sensitive as in every backend.
            conds.push(format!("substr(name, 1, length(?{n})) = ?{n}"));
        }
        if let Some(project) = &q.project {
            values.push(Value::Text(project.clone()));
            conds.push(format!("project = ?{}", values.len()));
        }
        if let Some(after) = q.after_seq {
            values.push(Value::Integer(i64::try_from(after).unwrap_or(i64::MAX)));
            conds.push(format!("seq < ?{}", values.len()));
        }
        values.push(Value::Integer(i64::from(q.limit)));
        let limit = values.len();
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        self.read(|conn| {
            job_rows(
                conn,
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs {filter} ORDER BY seq DESC LIMIT ?{limit}"
                ),
                params_from_iter(values),
            )
        })
    }

    fn item_chunk(&self, job: &str, task: usize, chunk: u32) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT items FROM task_items WHERE job = {JOB_SEQ} AND task = ?2 AND chunk = ?3"
                ))?
                .query_row(params![job, task as i64, chunk], |r| r.get(0))
                .optional()?)
        })
    }

    fn delete_job(&self, id: &str) -> Result<bool> {
        self.delete_job_with(id, None)
    }

    fn delete_job_fenced(&self, id: &str, epoch: u64) -> Result<bool> {
        self.delete_job_with(id, Some(epoch))
    }

    fn instances_page(
        &self,
        job: &str,
        task: usize,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<InstancePageItem>> {
        let Ok(task) = i64::try_from(task) else {
            return Ok(Vec::new());
        };
        let after = after.map_or(-1, i64::from);
        self.read(|conn| {
            // One read transaction: both queries see the same snapshot.
            let tx = conn.transaction()?;
            let page = instances_page_in(&tx, job, task, after, limit)?;
            tx.commit()?;
            Ok(page)
        })
    }

    fn task_counts(&self, job: &str) -> Result<Vec<BTreeMap<State, u32>>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT t.task, i.state, COUNT(i.idx)
                 FROM tasks t LEFT JOIN instances i ON i.job = t.job AND i.task = t.task
                 WHERE t.job = {JOB_SEQ}
                 GROUP BY t.task, i.state ORDER BY t.task"
            ))?;
            let rows = stmt.query_map([job], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })?;
            let mut grouped = Vec::new();
            for row in rows {
                grouped.push(row?);
            }
            codec::group_counts(job, grouped)
        })
    }

    fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        self.execute_durably(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [name, value],
        )?;
        Ok(())
    }

    fn get_secret(&self, name: &str) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?)
        })
    }

    fn delete_secret(&self, name: &str) -> Result<bool> {
        self.execute_durably("DELETE FROM secrets WHERE name = ?1", [name])
    }

    fn put_template(&self, t: &TemplateRecord) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("SELECT 1 FROM templates WHERE name = ?1")?
                .exists([&t.name])?;
            tx.prepare_cached(
                "INSERT INTO templates (name, description, task, created_at, updated_at, project)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                     task = excluded.task, updated_at = excluded.updated_at",
            )?
            .execute(params![
                t.name,
                t.description,
                t.task_json,
                t.created_at as i64,
                t.updated_at as i64,
                t.project
            ])?;
            tx.commit()?;
            Ok(!existed)
        })
    }

    fn create_template(&self, t: &TemplateRecord) -> Result<bool> {
        self.execute_durably(
            "INSERT INTO templates (name, description, task, created_at, updated_at, project)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO NOTHING",
            params![
                t.name,
                t.description,
                t.task_json,
                t.created_at as i64,
                t.updated_at as i64,
                t.project
            ],
        )
    }

    fn get_template(&self, name: &str) -> Result<Option<TemplateRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = ?1"
                ))?
                .query_row([name], template_row)
                .optional()?)
        })
    }

    fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name"),
                template_row,
            )
        })
    }

    fn delete_template(&self, name: &str) -> Result<bool> {
        self.execute_durably("DELETE FROM templates WHERE name = ?1", [name])
    }

    fn create_storage_profile(&self, t: &StorageProfileRecord) -> Result<bool> {
        self.execute_durably(
            "INSERT INTO storage_profiles (name, config, created_at, project)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![t.name, t.config_json, t.created_at as i64, t.project],
        )
    }

    fn get_storage_profile(&self, name: &str) -> Result<Option<StorageProfileRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS} FROM storage_profiles WHERE name = ?1"
                ))?
                .query_row([name], profile_row)
                .optional()?)
        })
    }

    fn list_storage_profiles(&self) -> Result<Vec<StorageProfileRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {PROFILE_COLUMNS} FROM storage_profiles ORDER BY name"),
                profile_row,
            )
        })
    }

    fn delete_storage_profile(&self, name: &str) -> Result<bool> {
        self.execute_durably("DELETE FROM storage_profiles WHERE name = ?1", [name])
    }

    fn put_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("SELECT 1 FROM compute_envs WHERE name = ?1")?
                .exists([&e.name])?;
            tx.prepare_cached(
                "INSERT INTO compute_envs (name, description, provider, desired_nodes, config,
                     created_at, updated_at, projects)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                     provider = excluded.provider, desired_nodes = excluded.desired_nodes,
                     config = excluded.config, updated_at = excluded.updated_at,
                     projects = excluded.projects",
            )?
            .execute(params![
                e.name,
                e.description,
                e.provider,
                e.desired_nodes,
                e.config_json,
                e.created_at as i64,
                e.updated_at as i64,
                e.projects.join(",")
            ])?;
            let kind = if existed {
                EventKind::ComputeEnvUpdated
            } else {
                EventKind::ComputeEnvCreated
            };
            let event = env_event(kind, &e.name, e.updated_at, Some(e.desired_nodes));
            insert_events(&tx, &[&event])?;
            tx.commit()?;
            Ok(!existed)
        })
    }

    fn create_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached(
                    "INSERT INTO compute_envs (name, description, provider, desired_nodes,
                         config, created_at, updated_at, projects)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![
                    e.name,
                    e.description,
                    e.provider,
                    e.desired_nodes,
                    e.config_json,
                    e.created_at as i64,
                    e.updated_at as i64,
                    e.projects.join(",")
                ])?;
            if n > 0 {
                let event = env_event(
                    EventKind::ComputeEnvCreated,
                    &e.name,
                    e.created_at,
                    Some(e.desired_nodes),
                );
                insert_events(&tx, &[&event])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn get_compute_env(&self, name: &str) -> Result<Option<ComputeEnvRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {ENV_COLUMNS} FROM compute_envs WHERE name = ?1"
                ))?
                .query_row([name], env_row)
                .optional()?)
        })
    }

    fn list_compute_envs(&self) -> Result<Vec<ComputeEnvRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {ENV_COLUMNS} FROM compute_envs ORDER BY name"),
                env_row,
            )
        })
    }

    fn delete_compute_env(&self, name: &str) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached("DELETE FROM compute_envs WHERE name = ?1")?
                .execute([name])?;
            if n > 0 {
                let event = env_event(EventKind::ComputeEnvDeleted, name, now_ms(&tx)?, None);
                insert_events(&tx, &[&event])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn set_desired_nodes(&self, name: &str, desired: u32) -> Result<bool> {
        self.durably(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached("UPDATE compute_envs SET desired_nodes = ?2 WHERE name = ?1")?
                .execute(params![name, desired])?;
            if n > 0 {
                let at = now_ms(&tx)?;
                let event = env_event(EventKind::ComputeEnvScaled, name, at, Some(desired));
                insert_events(&tx, &[&event])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn upsert_node(&self, n: &NodeRecord) -> Result<()> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder: Option<String> = tx
                .prepare_cached("SELECT id FROM nodes WHERE name = ?1")?
                .query_row([&n.name], |r| r.get(0))
                .optional()?;
            let was: Option<String> = tx
                .prepare_cached("SELECT state FROM nodes WHERE id = ?1")?
                .query_row([&n.id], |r| r.get(0))
                .optional()?;
            if holder.is_some_and(|id| id != n.id) {
                return Err(StoreError::NameTaken {
                    kind: "node",
                    name: n.name.clone(),
                });
            }
            tx.prepare_cached(
                "INSERT INTO nodes (id, name, state, compute_env, slots, millicpus, memory,
                     last_seen, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state,
                     compute_env = excluded.compute_env, slots = excluded.slots,
                     millicpus = excluded.millicpus, memory = excluded.memory,
                     last_seen = excluded.last_seen",
            )?
            .execute(params![
                n.id,
                n.name,
                n.state,
                n.compute_env,
                n.slots,
                n.millicpus as i64,
                n.memory as i64,
                n.last_seen as i64,
                n.created_at as i64
            ])?;
            if was.as_deref() != Some(n.state.as_str())
                && let Some(event) = node_event(n)
            {
                insert_events(&tx, &[&event])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn list_nodes(&self) -> Result<Vec<NodeRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY name"),
                node_row,
            )
        })
    }

    fn delete_node(&self, name: &str) -> Result<bool> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let env: Option<Option<String>> = tx
                .prepare_cached("SELECT compute_env FROM nodes WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            let Some(env) = env else {
                return Ok(false);
            };
            tx.prepare_cached("DELETE FROM nodes WHERE name = ?1")?
                .execute([name])?;
            let event = Event::new(
                EventKind::NodeRemoved,
                now_ms(&tx)?,
                None,
                Detail {
                    node: Some(name.to_string()),
                    compute_env: env,
                    ..Detail::default()
                },
            );
            insert_events(&tx, &[&event])?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn create_project(&self, p: &ProjectRecord) -> Result<bool> {
        self.execute_durably(
            "INSERT INTO projects (name, description, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![p.name, p.description, p.created_at as i64],
        )
    }

    fn get_project(&self, name: &str) -> Result<Option<ProjectRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?1"
                ))?
                .query_row([name], project_row)
                .optional()?)
        })
    }

    fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"),
                project_row,
            )
        })
    }

    fn delete_project(&self, name: &str) -> Result<bool> {
        self.execute_durably("DELETE FROM projects WHERE name = ?1", [name])
    }

    fn create_token(&self, t: &TokenRecord) -> Result<bool> {
        self.execute_durably(
            "INSERT INTO api_tokens (name, digest, project, role, created_at, expires_at,
                 revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO NOTHING",
            params![
                t.name,
                t.digest,
                t.project,
                t.role,
                t.created_at as i64,
                t.expires_at.map(|v| v as i64),
                t.revoked_at.map(|v| v as i64)
            ],
        )
    }

    fn get_token(&self, name: &str) -> Result<Option<TokenRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = ?1"
                ))?
                .query_row([name], token_row)
                .optional()?)
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|conn| {
            all_rows(
                conn,
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"),
                token_row,
            )
        })
    }

    fn revoke_token(&self, name: &str, at: u64) -> Result<bool> {
        self.execute_durably(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, at as i64],
        )
    }

    fn append_audit(&self, a: &AuditRecord) -> Result<u64> {
        self.durably(|conn| {
            let seq: i64 = conn
                .prepare_cached(
                    "INSERT INTO audit (at, token, project, action, object, result)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
                )?
                .query_row(
                    params![
                        a.at as i64,
                        a.token,
                        a.project,
                        a.action,
                        a.object,
                        a.result
                    ],
                    |r| r.get(0),
                )?;
            Ok(seq as u64)
        })
    }

    fn audit(&self, since: u64, after: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE at >= ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    i64::try_from(since).unwrap_or(i64::MAX),
                    i64::try_from(after).unwrap_or(i64::MAX),
                    limit
                ],
                audit_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let kinds: Vec<&str> = q.kinds.iter().map(|k| k.as_str()).collect();
        let kinds_json = serde_json::to_string(&kinds).unwrap_or_else(|_| "[]".into());
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, project, type, job, detail FROM events
                 WHERE seq > ?1 AND (?2 IS NULL OR job = ?2) AND (?3 IS NULL OR project = ?3)
                   AND (?4 = '[]' OR type IN (SELECT value FROM json_each(?4)))
                 ORDER BY seq LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![big(q.after), q.job, q.project, kinds_json, q.limit],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, project, kind, job, detail) = row?;
                out.push(codec::stored_event(seq, at, project, &kind, job, &detail)?);
            }
            Ok(out)
        })
    }

    fn last_event_seq(&self) -> Result<u64> {
        self.read(|conn| {
            let seq: Option<i64> = conn
                .prepare_cached("SELECT max(seq) FROM events")?
                .query_row([], |r| r.get(0))?;
            Ok(seq.unwrap_or(0).max(0) as u64)
        })
    }

    fn purge_events(&self, before: u64, limit: u32) -> Result<u64> {
        self.write(|conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM events WHERE seq IN
                         (SELECT seq FROM events WHERE at < ?1 ORDER BY at LIMIT ?2)",
                )?
                .execute(params![big(before), limit])?;
            Ok(n as u64)
        })
    }
}

/// The event of a node entering its recorded state, if that state is one.
fn node_event(n: &NodeRecord) -> Option<Event> {
    let kind = kiln_core::journal::node_kind(&n.state)?;
    Some(Event::new(
        kind,
        n.last_seen,
        None,
        Detail {
            node: Some(n.name.clone()),
            compute_env: n.compute_env.clone(),
            state: Some(n.state.clone()),
            ..Detail::default()
        },
    ))
}

/// Appends journal events, in order, inside the caller's transaction.
fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[&Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (at, project, type, job, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        stmt.execute(params![
            big(e.at),
            e.project,
            e.kind.as_str(),
            e.job,
            codec::encode_detail(&e.detail)
        ])?;
    }
    Ok(())
}

/// The store's clock (ms since the epoch), for events of writes that carry no time.
fn now_ms(tx: &rusqlite::Transaction<'_>) -> Result<u64> {
    let t: i64 = tx
        .prepare_cached(&format!("SELECT {NOW_MS}"))?
        .query_row([], |r| r.get(0))?;
    Ok(t.max(0) as u64)
}

fn env_event(kind: EventKind, name: &str, at: u64, desired: Option<u32>) -> Event {
    Event::new(
        kind,
        at,
        None,
        Detail {
            compute_env: Some(name.to_string()),
            desired_nodes: desired,
            ..Detail::default()
        },
    )
}

/// Writes one (coalesced) change of a tick.
/// [`StoreError::Fenced`] unless `held` is the lease's epoch (inside a write transaction, so
/// no takeover commits meanwhile).
fn check_fence(tx: &rusqlite::Transaction<'_>, held: u64) -> Result<()> {
    let current: i64 = tx
        .prepare_cached("SELECT epoch FROM leader WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    if current as u64 != held {
        return Err(StoreError::Fenced {
            held,
            current: current as u64,
        });
    }
    Ok(())
}

fn apply_one(tx: &rusqlite::Transaction<'_>, seq: i64, epoch: i64, c: &Change) -> Result<()> {
    match c {
        Change::Job {
            state,
            reason,
            at,
            deadline,
            ..
        } => {
            tx.prepare_cached(
                "UPDATE jobs SET state = ?2, reason = ?3, updated_at = ?4, deadline = ?5
                 WHERE seq = ?1",
            )?
            .execute(params![
                seq,
                state.as_str(),
                text(reason),
                *at as i64,
                deadline.map(big)
            ])?;
        }
        Change::Task {
            task,
            state,
            reason,
            stop,
            unstarted,
            blocked,
            counts,
            ..
        } => {
            tx.prepare_cached(
                "UPDATE tasks SET state = ?3, reason = ?4, stop = ?5, unstarted = ?6,
                     blocked = ?7, counts = ?8
                 WHERE job = ?1 AND task = ?2",
            )?
            .execute(params![
                seq,
                *task as i64,
                state.as_str(),
                text(reason),
                text(stop),
                text(unstarted),
                text(blocked),
                codec::encode_counts(counts)
            ])?;
        }
        Change::Instance {
            task,
            index,
            record: i,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO instances (job, task, idx, state, reason, attempt, retries_used,
                     resource_retries_used, exit_code, stop, memory, oom_retries_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (job, task, idx) DO UPDATE SET state = excluded.state,
                     reason = excluded.reason, attempt = excluded.attempt,
                     retries_used = excluded.retries_used,
                     resource_retries_used = excluded.resource_retries_used,
                     exit_code = excluded.exit_code, stop = excluded.stop,
                     memory = excluded.memory, oom_retries_used = excluded.oom_retries_used",
            )?
            .execute(params![
                seq,
                *task as i64,
                index,
                i.state.as_str(),
                text(&i.reason),
                i.attempt,
                i.retries_used,
                i.resource_retries_used,
                i.exit_code,
                text(&i.stop),
                big(i.memory),
                i.oom_retries_used
            ])?;
        }
        // Written apart, in order, after the records (`insert_events`).
        Change::Event(_) => {}
        Change::Attempt {
            task,
            index,
            record: a,
            ..
        } => {
            tx.prepare_cached(&format!(
                "INSERT INTO attempts (job, task, idx, attempt, state, reason, exit_code,
                     node, pid, started_at, ended_at, epoch, memory, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW_MS})
                 ON CONFLICT (job, task, idx, attempt) DO UPDATE SET state = excluded.state,
                     reason = excluded.reason, exit_code = excluded.exit_code,
                     node = excluded.node, pid = excluded.pid,
                     ended_at = excluded.ended_at"
            ))?
            .execute(params![
                seq,
                *task as i64,
                index,
                a.attempt,
                a.state.as_str(),
                text(&a.reason),
                a.exit_code,
                a.node,
                a.pid,
                a.started_at as i64,
                a.ended_at.map(|t| t as i64),
                epoch,
                big(a.memory)
            ])?;
        }
    }
    Ok(())
}

fn load_job_in(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<StoredJob>> {
    let found: Option<(i64, String, i64)> = tx
        .prepare_cached("SELECT seq, spec, spec_version FROM jobs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((seq, spec_json, spec_version)) = found else {
        return Ok(None);
    };
    let spec = codec::decode_spec(id, &spec_json, spec_version)?;
    let row = job_rows(
        tx,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE seq = ?1"),
        [seq],
    )?
    .pop()
    .ok_or_else(|| corrupt("job", id))?;
    let mut tasks = vec![TaskSnapshot::default(); spec.tasks.len()];
    {
        let mut stmt = tx.prepare_cached(
            "SELECT task, state, reason, stop, unstarted FROM tasks WHERE job = ?1",
        )?;
        let rows = stmt.query_map([seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (t, state, reason, stop, unstarted) = row?;
            let Some(snap) = usize::try_from(t).ok().and_then(|t| tasks.get_mut(t)) else {
                return Err(corrupt("task", format!("job {id} task {t}")));
            };
            snap.state = Some(parse_state(&state)?);
            snap.reason = parse_reason(reason)?;
            snap.stop = parse_reason(stop)?;
            snap.unstarted = parse_reason(unstarted)?;
        }
    }
    // The last attempt of every instance that is not finished: needed to end it properly.
    let mut last_attempts: HashMap<(i64, u32), Attempt> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT a.task, a.idx, {}
             FROM attempts a JOIN instances i
               ON i.job = a.job AND i.task = a.task AND i.idx = a.idx AND i.attempt = a.attempt
             WHERE a.job = ?1 AND i.state NOT IN ('SUCCEED')",
            attempt_columns("a.")
        ))?;
        let rows = stmt.query_map([seq], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, raw_attempt(r, 2)?))
        })?;
        for row in rows {
            let (t, idx, raw) = row?;
            last_attempts.insert((t, idx), attempt_from(raw)?);
        }
    }
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT task, idx, {INSTANCE_COLUMNS} FROM instances WHERE job = ?1"
        ))?;
        let rows = stmt.query_map([seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                raw_instance(r, 2)?,
            ))
        })?;
        for row in rows {
            let (t, idx, raw) = row?;
            let Some(snap) = usize::try_from(t).ok().and_then(|t| tasks.get_mut(t)) else {
                return Err(corrupt("instance", format!("job {id} task {t}")));
            };
            let att = last_attempts.remove(&(t, idx));
            snap.instances.push((idx, instance_from(raw)?, att));
        }
    }
    Ok(Some(StoredJob {
        row,
        spec: Arc::new(spec),
        tasks,
    }))
}

fn instances_page_in(
    tx: &rusqlite::Transaction<'_>,
    job: &str,
    task: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<InstancePageItem>> {
    let mut page: Vec<InstancePageItem> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT idx, {INSTANCE_COLUMNS}
             FROM instances WHERE job = {JOB_SEQ} AND task = ?2 AND idx > ?3
             ORDER BY idx LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![job, task, after, limit], |r| {
            Ok((r.get::<_, u32>(0)?, raw_instance(r, 1)?))
        })?;
        for row in rows {
            let (idx, raw) = row?;
            page.push((idx, instance_from(raw)?, Vec::new()));
        }
    }
    let Some(last) = page.last().map(|(i, _, _)| *i) else {
        return Ok(page);
    };
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT idx, {} FROM attempts WHERE job = {JOB_SEQ} AND task = ?2 AND idx > ?3 AND idx <= ?4
         ORDER BY idx, attempt",
        attempt_columns("")
    ))?;
    let rows = stmt.query_map(params![job, task, after, last], |r| {
        Ok((r.get::<_, u32>(0)?, raw_attempt(r, 1)?))
    })?;
    let mut attempts = Vec::new();
    for row in rows {
        let (idx, raw) = row?;
        attempts.push((idx, attempt_from(raw)?));
    }
    codec::attach_attempts(&mut page, attempts);
    Ok(page)
}
