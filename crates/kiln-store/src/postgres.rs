//! The PostgreSQL store: several servers on one database.
//!
//! Connections come from a pool (`deadpool-postgres` over `tokio-postgres`), driven by a small
//! runtime of the store's own, so that every [`Store`] method can block like SQLite's: call
//! them from plain threads (the driver's, or `spawn_blocking`), never from an async task.
//! A tick's batch is one transaction of a few array statements (`UNNEST`), whatever its size.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use kiln_core::engine::{Attempt, Change, TaskSnapshot};
use kiln_core::journal::{Detail, Event, EventKind};
use kiln_core::model::{JobSpec, SPEC_VERSION};
use kiln_core::state::{Instance, State};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row, Statement};

use crate::codec::{self, corrupt, parse_reason, parse_state, text};
use crate::{
    AuditRecord, CommandAnswer, CommandRecord, ComputeEnvRecord, EventQuery, IdempotencyRecord,
    Inbox, InstancePageItem, JobQuery, JobRow, JobView, Lease, NodeRecord, Once, ProjectRecord,
    Result, StorageProfileRecord, Store, StoreError, StoredEvent, StoredJob, TemplateRecord,
    TokenRecord, redact,
};

/// Version 1: the same records as SQLite's version 1.
const V1: &str = "
CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    priority BIGINT NOT NULL,
    spec_version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state, seq);
CREATE TABLE tasks (
    job BIGINT NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
    task BIGINT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    stop TEXT,
    unstarted TEXT,
    PRIMARY KEY (job, task)
);
CREATE TABLE instances (
    job BIGINT NOT NULL,
    task BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempt BIGINT NOT NULL,
    retries_used BIGINT NOT NULL,
    resource_retries_used BIGINT NOT NULL,
    exit_code INTEGER,
    stop TEXT,
    PRIMARY KEY (job, task, idx)
);
CREATE TABLE attempts (
    job BIGINT NOT NULL,
    task BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    node TEXT NOT NULL,
    pid BIGINT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    PRIMARY KEY (job, task, idx, attempt)
);
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    description TEXT,
    task TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE compute_envs (
    name TEXT PRIMARY KEY,
    description TEXT,
    provider TEXT NOT NULL,
    desired_nodes BIGINT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    compute_env TEXT,
    slots BIGINT NOT NULL,
    millicpus BIGINT NOT NULL,
    memory BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
";

/// Migration steps: step `i` brings a database from version `i` to `i + 1` (kept in
/// `kiln_schema`). A step, once released, never changes.
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

/// Version 8: projects (with the `default` one), API tokens (digests only), the audit log.
const V8: &str = "
CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at BIGINT NOT NULL
);
INSERT INTO projects (name, description, created_at) VALUES ('default', NULL, 0);
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    project TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE TABLE audit (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    token TEXT NOT NULL,
    project TEXT,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    result INTEGER NOT NULL
);
CREATE INDEX audit_at ON audit(at);
";

/// Version 10: the journal. Sequence numbers come from the one row of `event_seq`, taken by
/// each writing transaction until it commits, so numbers are handed out in commit order and a
/// reader that sees an event sees every event before it (a `BIGSERIAL` would not: a
/// transaction that took a smaller number may commit later).
const V10: &str = "
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    project TEXT NOT NULL,
    type TEXT NOT NULL,
    job TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX events_job ON events(job, seq);
CREATE INDEX events_at ON events(at);
CREATE TABLE event_seq (id INTEGER PRIMARY KEY, last BIGINT NOT NULL);
INSERT INTO event_seq (id, last) VALUES (1, 0);
";

/// Appends events `$1..$5` (type, at — 0 for the database's clock —, project, job, detail)
/// in order, numbered from `event_seq`; `$6` must be true for anything to be written.
fn events_cte(first: usize, guard: &str) -> String {
    let (t, a, p, j, d) = (first, first + 1, first + 2, first + 3, first + 4);
    format!(
        "ev_seq AS (UPDATE event_seq SET last = last + cardinality(${t}::text[])
                    WHERE id = 1 AND cardinality(${t}::text[]) > 0 AND {guard}
                    RETURNING last - cardinality(${t}::text[]) AS base),
         ev AS (INSERT INTO events (seq, at, project, type, job, detail)
                SELECT ev_seq.base + u.o, COALESCE(NULLIF(u.at, 0), {NOW_MS}), u.project,
                    u.type, u.job, u.detail
                FROM ev_seq, UNNEST(${t}::text[], ${a}::bigint[], ${p}::text[], ${j}::text[],
                                    ${d}::text[]) WITH ORDINALITY AS u(type, at, project, job,
                                                                       detail, o))"
    )
}

/// Events as the columns of [`events_cte`].
#[derive(Default)]
struct EventColumns {
    kind: Vec<&'static str>,
    at: Vec<i64>,
    project: Vec<String>,
    job: Vec<Option<String>>,
    detail: Vec<String>,
}

impl EventColumns {
    fn of<'e>(events: impl IntoIterator<Item = &'e Event>) -> Self {
        let mut c = EventColumns::default();
        for e in events {
            c.kind.push(e.kind.as_str());
            c.at.push(big(e.at));
            c.project.push(e.project.clone());
            c.job.push(e.job.clone());
            c.detail.push(codec::encode_detail(&e.detail));
        }
        c
    }
}

/// Writes `events` inside the transaction `c` is in.
async fn insert_events(c: &impl GenericClient, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("WITH {} SELECT 1", events_cte(1, "true")));
    let cols = EventColumns::of(events);
    let stmt = c.prepare_cached(&SQL).await.map_err(db)?;
    c.execute(
        &stmt,
        &[&cols.kind, &cols.at, &cols.project, &cols.job, &cols.detail],
    )
    .await
    .map_err(db)?;
    Ok(())
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

/// Version 7: storage profiles (their secret fields sealed before they get here).
const V7: &str = "
CREATE TABLE storage_profiles (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
";

/// Version 6: writes taken by a standby (terminate, retry, delete, …) for the leader to act
/// on, with the leader's answer.
const V6: &str = "
CREATE TABLE commands (
    id BIGSERIAL PRIMARY KEY,
    command TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    answered_at BIGINT,
    status INTEGER,
    message TEXT
);
CREATE INDEX commands_pending ON commands(id) WHERE answered_at IS NULL;
";

/// Version 3: the scheduler lease with its fencing epoch and the history of its terms; the
/// epoch each attempt was dispatched under, and when the store first recorded it.
const V3: &str = "
CREATE TABLE leader (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO leader (id, holder, url, epoch, expires_at) VALUES (1, '', '', 0, 0);
CREATE TABLE leader_terms (
    epoch BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    granted_at BIGINT NOT NULL
);
ALTER TABLE attempts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN recorded_at BIGINT;
";

/// Version 5: job deadlines (`timeout`), the memory of instances and attempts
/// (`on_out_of_memory`), and task items, kept in chunks of `ITEM_CHUNK` newline-separated JSON
/// items.
const V5: &str = "
ALTER TABLE jobs ADD COLUMN deadline BIGINT;
ALTER TABLE instances ADD COLUMN memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN oom_retries_used BIGINT NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN memory BIGINT NOT NULL DEFAULT 0;
CREATE TABLE task_items (
    job BIGINT NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
    task BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    items TEXT NOT NULL,
    PRIMARY KEY (job, task, chunk)
);
";

/// The database's clock in ms since the epoch (the same for every server), inside a
/// statement.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

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
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE INDEX idempotency_resource ON idempotency(resource);
";

/// The schema version this build writes: the number of steps.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Connections per server.
const POOL_SIZE: usize = 16;

/// Held (per transaction) while the schema is created or migrated, so that servers starting
/// together do it once.
const MIGRATION_LOCK: i64 = 0x6b69_6c6e_0001;

fn db(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.code().is_none() {
        StoreError::Unavailable(e.to_string())
    } else {
        // The server's message, with its detail if any.
        match e.as_db_error() {
            Some(d) => StoreError::Database(format!("{}: {}", d.code().code(), d.message())),
            None => StoreError::Database(e.to_string()),
        }
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// PostgreSQL through a connection pool.
pub struct PgStore {
    pool: Pool,
    /// Drives the pool's connections; every call blocks on it.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime may block; never do that inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

type Client = deadpool_postgres::Client;

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`), creating
    /// or migrating its schema; a newer schema is refused and left alone.
    pub fn open(url: &str) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact(url))))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kiln-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _enter = rt.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .create_timeout(Some(std::time::Duration::from_secs(10)))
                .wait_timeout(Some(std::time::Duration::from_secs(30)))
                .build()
                .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        };
        let store = PgStore { pool, rt: Some(rt) };
        store.run(async {
            let mut client = store.client().await?;
            migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// Runs `f` to its end on the store's runtime, blocking the calling thread.
    /// Inserts a job, with the record of the idempotent request that created it if one is given.
    fn insert_job_with(
        &self,
        id: &str,
        spec: &JobSpec,
        now: u64,
        once: Option<&IdempotencyRecord>,
    ) -> Result<Once<JobRow>> {
        let spec_json = codec::encode_spec(spec)?;
        let seq = self.run(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            if let Some(once) = once {
                let stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO idempotency ({IDEMPOTENCY_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
                    ))
                    .await
                    .map_err(db)?;
                let (status, created) = (i32::from(once.status), big(once.created_at));
                let n = tx
                    .execute(
                        &stmt,
                        &[
                            &once.scope,
                            &once.key,
                            &once.request,
                            &once.resource,
                            &status,
                            &once.response,
                            &created,
                        ],
                    )
                    .await
                    .map_err(db)?;
                if n == 0 {
                    let stmt = tx.prepare_cached(IDEMPOTENCY_SELECT).await.map_err(db)?;
                    let row = tx
                        .query_one(&stmt, &[&once.scope, &once.key])
                        .await
                        .map_err(db)?;
                    return Ok(Err(idempotency_row(&row)?));
                }
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO jobs (id, name, priority, spec_version, spec, state, created_at,
                         updated_at, project)
                     VALUES ($1, $2, $3, $4, $5, 'SUBMITTED', $6, $6, $7)
                     ON CONFLICT (id) DO NOTHING RETURNING seq",
                )
                .await
                .map_err(db)?;
            let inserted = tx
                .query_opt(
                    &stmt,
                    &[
                        &id,
                        &spec.name,
                        &i64::from(spec.priority),
                        &i64::from(SPEC_VERSION),
                        &spec_json,
                        &big(now),
                        &crate::project_of(spec),
                    ],
                )
                .await
                .map_err(db)?;
            let Some(row) = inserted else {
                return Err(StoreError::Duplicate(id.to_string()));
            };
            let seq: i64 = row.try_get(0).map_err(db)?;
            let numbers: Vec<i64> = (0..spec.tasks.len() as i64).collect();
            let names: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO tasks (job, task, name, state)
                     SELECT $1, t, n, 'SUBMITTED' FROM UNNEST($2::bigint[], $3::text[]) AS u(t, n)",
                )
                .await
                .map_err(db)?;
            tx.execute(&stmt, &[&seq, &numbers, &names])
                .await
                .map_err(db)?;
            let chunks = codec::item_chunks(spec);
            if !chunks.is_empty() {
                let tasks: Vec<i64> = chunks.iter().map(|(t, _, _)| *t as i64).collect();
                let numbers: Vec<i64> = chunks.iter().map(|(_, c, _)| *c as i64).collect();
                let texts: Vec<&str> = chunks.iter().map(|(_, _, text)| *text).collect();
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO task_items (job, task, chunk, items)
                         SELECT $1, t, c, i FROM UNNEST($2::bigint[], $3::bigint[], $4::text[])
                             AS u(t, c, i)",
                    )
                    .await
                    .map_err(db)?;
                tx.execute(&stmt, &[&seq, &tasks, &numbers, &texts])
                    .await
                    .map_err(db)?;
            }
            let submitted = Event {
                project: crate::project_of(spec).to_string(),
                ..Event::of_job(EventKind::JobSubmitted, id, now)
            };
            insert_events(&tx, &[submitted]).await?;
            tx.commit().await.map_err(db)?;
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

    fn run<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.rt {
            Some(rt) => rt.handle().block_on(f),
            None => Err(StoreError::Unavailable("the store is closed".into())),
        }
    }

    async fn client(&self) -> Result<Client> {
        self.pool.get().await.map_err(pool_error)
    }

    /// One tick's batch; with `fence`, only while that epoch holds the lease (checked under a
    /// lock on the lease row, which a takeover waits for). One statement ([`TICK`]), so one
    /// round trip to the database and its own transaction, whatever the batch holds.
    fn apply_with(&self, changes: &[Change], fence: Option<u64>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let latest = codec::coalesce(changes);
        let mut batch = Batch::default();
        for change in latest {
            batch.push(change);
        }
        batch.events = EventColumns::of(codec::events(changes));
        batch.ids.sort_unstable();
        batch.ids.dedup();
        let held = fence.map(big);
        self.run(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&TICK).await.map_err(db)?;
            let row = c.query_one(&stmt, &batch.params(&held)).await.map_err(db)?;
            let current: i64 = row.try_get(0).map_err(db)?;
            let known: i64 = row.try_get(1).map_err(db)?;
            if let Some(held) = fence
                && current as u64 != held
            {
                return Err(StoreError::Fenced {
                    held,
                    current: current as u64,
                });
            }
            if known != batch.ids.len() as i64 {
                // Nothing was written; name the job for the message.
                let found = seqs_of(&c, &batch.ids).await?;
                let missing = batch
                    .ids
                    .iter()
                    .find(|id| !found.contains_key(**id))
                    .copied()
                    .unwrap_or_default();
                return Err(corrupt("change", format!("unknown job {missing}")));
            }
            Ok(())
        })
    }

    /// A job's records; with `fence`, only while that epoch holds the lease (checked under a
    /// lock on the lease row, as a tick).
    fn delete_job_with(&self, id: &str, fence: Option<u64>) -> Result<bool> {
        self.run(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            if let Some(held) = fence {
                let current: i64 = tx
                    .query_one("SELECT epoch FROM leader WHERE id = 1 FOR SHARE", &[])
                    .await
                    .map_err(db)?
                    .try_get(0)
                    .map_err(db)?;
                if current as u64 != held {
                    return Err(StoreError::Fenced {
                        held,
                        current: current as u64,
                    });
                }
            }
            let Some(row) = tx
                .query_opt(
                    "SELECT seq, project FROM jobs WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(db)?
            else {
                return Ok(false);
            };
            let seq: i64 = row.try_get(0).map_err(db)?;
            let project: String = row.try_get(1).map_err(db)?;
            for sql in [
                "DELETE FROM task_items WHERE job = $1",
                "DELETE FROM attempts WHERE job = $1",
                "DELETE FROM instances WHERE job = $1",
                "DELETE FROM tasks WHERE job = $1",
                "DELETE FROM jobs WHERE seq = $1",
            ] {
                let stmt = tx.prepare_cached(sql).await.map_err(db)?;
                tx.execute(&stmt, &[&seq]).await.map_err(db)?;
            }
            let deleted = Event {
                project,
                ..Event::of_job(EventKind::JobDeleted, id, 0)
            };
            insert_events(&tx, &[deleted]).await?;
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
    }

    /// Runs one statement; `true` if it changed a row.
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<bool> {
        self.run(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql).await.map_err(db)?;
            Ok(c.execute(&stmt, params).await.map_err(db)? > 0)
        })
    }

    /// One statement and the events `events` makes of its rows, in one transaction.
    fn journaled(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        events: impl FnOnce(&[Row]) -> Result<Vec<Event>>,
    ) -> Result<Vec<Row>> {
        self.run(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            let stmt = tx.prepare_cached(sql).await.map_err(db)?;
            let rows = tx.query(&stmt, params).await.map_err(db)?;
            insert_events(&tx, &events(&rows)?).await?;
            tx.commit().await.map_err(db)?;
            Ok(rows)
        })
    }

    /// Every row of one query.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.run(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(sql).await.map_err(db)?;
            c.query(&stmt, params).await.map_err(db)
        })
    }
}

/// Creates the schema, or brings an older one up to date, under an advisory lock.
async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('kiln_schema') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .get(0);
    let version: i64 = if exists {
        tx.query_opt("SELECT version FROM kiln_schema", &[])
            .await
            .map_err(db)?
            .map_or(0, |r| r.get(0))
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        // Dropping the transaction rolls it back: nothing was changed.
        return Err(StoreError::TooNew {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return tx.commit().await.map_err(db);
    }
    if !exists {
        tx.batch_execute("CREATE TABLE kiln_schema (version BIGINT NOT NULL)")
            .await
            .map_err(db)?;
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(step).await.map_err(db)?;
    }
    tx.execute("DELETE FROM kiln_schema", &[])
        .await
        .map_err(db)?;
    tx.execute(
        "INSERT INTO kiln_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}

const JOB_COLUMNS: &str =
    "id, seq, name, priority, state, reason, created_at, updated_at, deadline, project";

fn job_row(r: &Row) -> Result<JobRow> {
    Ok(JobRow {
        id: r.try_get(0).map_err(db)?,
        seq: r.try_get::<_, i64>(1).map_err(db)? as u64,
        name: r.try_get(2).map_err(db)?,
        priority: r.try_get::<_, i64>(3).map_err(db)?.clamp(0, 100) as u8,
        state: parse_state(r.try_get(4).map_err(db)?)?,
        reason: parse_reason(r.try_get(5).map_err(db)?)?,
        created_at: r.try_get::<_, i64>(6).map_err(db)? as u64,
        updated_at: r.try_get::<_, i64>(7).map_err(db)? as u64,
        deadline: r
            .try_get::<_, Option<i64>>(8)
            .map_err(db)?
            .map(|d| d as u64),
        project: r.try_get(9).map_err(db)?,
    })
}

fn job_rows(rows: Vec<Row>) -> Result<Vec<JobRow>> {
    rows.iter().map(job_row).collect()
}

/// A `u32` column kept as `BIGINT`.
fn u32_at(r: &Row, at: usize) -> Result<u32> {
    let v: i64 = r.try_get(at).map_err(db)?;
    u32::try_from(v).map_err(|e| corrupt("column", e))
}

/// The nine [`ATTEMPT_COLUMNS`] starting at `at`.
fn attempt_at(r: &Row, at: usize) -> Result<Attempt> {
    let pid: Option<i64> = r.try_get(at + 5).map_err(db)?;
    Ok(Attempt {
        attempt: u32_at(r, at)?,
        state: parse_state(r.try_get(at + 1).map_err(db)?)?,
        reason: parse_reason(r.try_get(at + 2).map_err(db)?)?,
        exit_code: r.try_get(at + 3).map_err(db)?,
        node: r.try_get(at + 4).map_err(db)?,
        pid: pid.and_then(|p| u32::try_from(p).ok()),
        started_at: r.try_get::<_, i64>(at + 6).map_err(db)? as u64,
        ended_at: r
            .try_get::<_, Option<i64>>(at + 7)
            .map_err(db)?
            .map(|t| t as u64),
        memory: r.try_get::<_, i64>(at + 8).map_err(db)? as u64,
    })
}

/// The nine [`INSTANCE_COLUMNS`] starting at `at`.
fn instance_at(r: &Row, at: usize) -> Result<Instance> {
    Ok(Instance {
        state: parse_state(r.try_get(at).map_err(db)?)?,
        reason: parse_reason(r.try_get(at + 1).map_err(db)?)?,
        attempt: u32_at(r, at + 2)?,
        retries_used: u32_at(r, at + 3)?,
        resource_retries_used: u32_at(r, at + 4)?,
        exit_code: r.try_get(at + 5).map_err(db)?,
        stop: parse_reason(r.try_get(at + 6).map_err(db)?)?,
        memory: r.try_get::<_, i64>(at + 7).map_err(db)? as u64,
        oom_retries_used: u32_at(r, at + 8)?,
    })
}

const ATTEMPT_COLUMNS: &str =
    "attempt, state, reason, exit_code, node, pid, started_at, ended_at, memory";
const INSTANCE_COLUMNS: &str = "state, reason, attempt, retries_used, resource_retries_used, \
     exit_code, stop, memory, oom_retries_used";

/// The row key of a job, looked up inside a statement (`$1` is the job id).
const JOB_SEQ: &str = "(SELECT seq FROM jobs WHERE id = $1)";

const PROJECT_COLUMNS: &str = "name, description, created_at";

fn project_row(r: &Row) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        name: r.try_get(0).map_err(db)?,
        description: r.try_get(1).map_err(db)?,
        created_at: unbig(r.try_get(2).map_err(db)?),
    })
}

const TOKEN_COLUMNS: &str = "name, digest, project, role, created_at, expires_at, revoked_at";

fn token_row(r: &Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        name: r.try_get(0).map_err(db)?,
        digest: r.try_get(1).map_err(db)?,
        project: r.try_get(2).map_err(db)?,
        role: r.try_get(3).map_err(db)?,
        created_at: unbig(r.try_get(4).map_err(db)?),
        expires_at: r.try_get::<_, Option<i64>>(5).map_err(db)?.map(unbig),
        revoked_at: r.try_get::<_, Option<i64>>(6).map_err(db)?.map(unbig),
    })
}

const AUDIT_COLUMNS: &str = "seq, at, token, project, action, object, result";

fn audit_row(r: &Row) -> Result<AuditRecord> {
    let result: i32 = r.try_get(6).map_err(db)?;
    Ok(AuditRecord {
        seq: unbig(r.try_get(0).map_err(db)?),
        at: unbig(r.try_get(1).map_err(db)?),
        token: r.try_get(2).map_err(db)?,
        project: r.try_get(3).map_err(db)?,
        action: r.try_get(4).map_err(db)?,
        object: r.try_get(5).map_err(db)?,
        result: u16::try_from(result).unwrap_or(0),
    })
}

/// A stored `BIGINT` back as the `u64` it was written from.
fn unbig(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const PROFILE_COLUMNS: &str = "name, config, created_at, project";

fn profile_row(r: &Row) -> Result<StorageProfileRecord> {
    Ok(StorageProfileRecord {
        name: r.try_get(0).map_err(db)?,
        config_json: r.try_get(1).map_err(db)?,
        project: r.try_get(3).map_err(db)?,
        created_at: r.try_get::<_, i64>(2).map_err(db)? as u64,
    })
}

const TEMPLATE_COLUMNS: &str = "name, description, task, created_at, updated_at, project";

fn template_row(r: &Row) -> Result<TemplateRecord> {
    Ok(TemplateRecord {
        name: r.try_get(0).map_err(db)?,
        description: r.try_get(1).map_err(db)?,
        task_json: r.try_get(2).map_err(db)?,
        created_at: r.try_get::<_, i64>(3).map_err(db)? as u64,
        updated_at: r.try_get::<_, i64>(4).map_err(db)? as u64,
        project: r.try_get(5).map_err(db)?,
    })
}

const ENV_COLUMNS: &str =
    "name, description, provider, desired_nodes, config, created_at, updated_at, projects";

fn env_row(r: &Row) -> Result<ComputeEnvRecord> {
    Ok(ComputeEnvRecord {
        name: r.try_get(0).map_err(db)?,
        description: r.try_get(1).map_err(db)?,
        provider: r.try_get(2).map_err(db)?,
        desired_nodes: u32_at(r, 3)?,
        config_json: r.try_get(4).map_err(db)?,
        created_at: r.try_get::<_, i64>(5).map_err(db)? as u64,
        updated_at: r.try_get::<_, i64>(6).map_err(db)? as u64,
        projects: split_projects(r.try_get(7).map_err(db)?),
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

fn node_row(r: &Row) -> Result<NodeRecord> {
    Ok(NodeRecord {
        id: r.try_get(0).map_err(db)?,
        name: r.try_get(1).map_err(db)?,
        state: r.try_get(2).map_err(db)?,
        compute_env: r.try_get(3).map_err(db)?,
        slots: u32_at(r, 4)?,
        millicpus: r.try_get::<_, i64>(5).map_err(db)? as u64,
        memory: r.try_get::<_, i64>(6).map_err(db)? as u64,
        last_seen: r.try_get::<_, i64>(7).map_err(db)? as u64,
        created_at: r.try_get::<_, i64>(8).map_err(db)? as u64,
    })
}

/// A `u64` as a `BIGINT` (saturating: ms timestamps and sizes stay far below).
const IDEMPOTENCY_COLUMNS: &str = "scope, key, request, resource, status, response, created_at";
const IDEMPOTENCY_SELECT: &str =
    "SELECT scope, key, request, resource, status, response, created_at
     FROM idempotency WHERE scope = $1 AND key = $2";

/// A stored idempotency record from its row (`IDEMPOTENCY_COLUMNS` order).
fn idempotency_row(r: &Row) -> Result<IdempotencyRecord> {
    let status: i32 = r.try_get(4).map_err(db)?;
    let created: i64 = r.try_get(6).map_err(db)?;
    Ok(IdempotencyRecord {
        scope: r.try_get(0).map_err(db)?,
        key: r.try_get(1).map_err(db)?,
        request: r.try_get(2).map_err(db)?,
        resource: r.try_get(3).map_err(db)?,
        status: u16::try_from(status).unwrap_or(0),
        response: r.try_get(5).map_err(db)?,
        created_at: u64::try_from(created).unwrap_or(0),
    })
}

const COMMAND_COLUMNS: &str = "id, command, created_at, answered_at, status, message";
const PENDING_SQL: &str = "SELECT id, command, created_at, answered_at, status, message
     FROM commands WHERE answered_at IS NULL ORDER BY id LIMIT $1";
const SUBMITTED_SQL: &str = "SELECT id, seq, name, priority, state, reason, created_at, \
     updated_at, deadline, project FROM jobs WHERE state = 'SUBMITTED' ORDER BY seq";

fn command_row(r: &Row) -> Result<CommandRecord> {
    let id: i64 = r.try_get(0).map_err(db)?;
    let created: i64 = r.try_get(2).map_err(db)?;
    let answered: Option<i64> = r.try_get(3).map_err(db)?;
    let status: Option<i32> = r.try_get(4).map_err(db)?;
    let message: Option<String> = r.try_get(5).map_err(db)?;
    Ok(CommandRecord {
        id: u64::try_from(id).unwrap_or(0),
        command: r.try_get(1).map_err(db)?,
        created_at: u64::try_from(created).unwrap_or(0),
        answer: answered.map(|at| CommandAnswer {
            status: u16::try_from(status.unwrap_or(0)).unwrap_or(0),
            message: message.unwrap_or_default(),
            at: u64::try_from(at).unwrap_or(0),
        }),
    })
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The tick's one statement: takes the lease row `FOR SHARE` (a takeover waits for it), and
/// writes every record of the batch only if the epoch is `$2`'s (any, when `$2` is null) and
/// every job named (`$1`, distinct) is stored; else nothing. Answers the epoch and how many of
/// the jobs named are stored. Jobs are named by id and joined to their row key here, so no
/// look-up goes before it. New attempts record the epoch (0 unfenced) and the database's clock.
static TICK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH fence AS (SELECT epoch FROM leader WHERE id = 1 FOR SHARE),
         known AS (SELECT count(*) AS n FROM jobs WHERE id = ANY($1::text[])),
         ok AS (SELECT 1 FROM fence, known
                WHERE ($2::bigint IS NULL OR fence.epoch = $2::bigint)
                  AND known.n = cardinality($1::text[])),
         j AS (UPDATE jobs SET state = u.state, reason = u.reason, updated_at = u.at,
                   deadline = u.deadline
               FROM UNNEST($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
                   AS u(id, state, reason, at, deadline)
               WHERE jobs.id = u.id AND EXISTS (SELECT 1 FROM ok)),
         t AS (UPDATE tasks SET state = u.state, reason = u.reason, stop = u.stop,
                   unstarted = u.unstarted, blocked = u.blocked, counts = u.counts
               FROM UNNEST($8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[],
                           $13::text[], $14::text[], $15::text[])
                   AS u(id, task, state, reason, stop, unstarted, blocked, counts)
                   JOIN jobs ON jobs.id = u.id
               WHERE tasks.job = jobs.seq AND tasks.task = u.task AND EXISTS (SELECT 1 FROM ok)),
         i AS (INSERT INTO instances (job, task, idx, state, reason, attempt, retries_used,
                   resource_retries_used, exit_code, stop, memory, oom_retries_used)
               SELECT jobs.seq, u.task, u.idx, u.state, u.reason, u.attempt, u.retries,
                   u.resource_retries, u.exit_code, u.stop, u.memory, u.oom
               FROM UNNEST($16::text[], $17::bigint[], $18::bigint[], $19::text[], $20::text[],
                           $21::bigint[], $22::bigint[], $23::bigint[], $24::int[], $25::text[],
                           $26::bigint[], $27::bigint[])
                   AS u(id, task, idx, state, reason, attempt, retries, resource_retries,
                        exit_code, stop, memory, oom)
                   JOIN jobs ON jobs.id = u.id
               WHERE EXISTS (SELECT 1 FROM ok)
               ON CONFLICT (job, task, idx) DO UPDATE SET state = excluded.state,
                   reason = excluded.reason, attempt = excluded.attempt,
                   retries_used = excluded.retries_used,
                   resource_retries_used = excluded.resource_retries_used,
                   exit_code = excluded.exit_code, stop = excluded.stop,
                   memory = excluded.memory, oom_retries_used = excluded.oom_retries_used),
         a AS (INSERT INTO attempts (job, task, idx, attempt, state, reason, exit_code, node,
                   pid, started_at, ended_at, memory, epoch, recorded_at)
               SELECT jobs.seq, u.task, u.idx, u.attempt, u.state, u.reason, u.exit_code,
                   u.node, u.pid, u.started_at, u.ended_at, u.memory,
                   COALESCE($2::bigint, 0), {NOW_MS}
               FROM UNNEST($28::text[], $29::bigint[], $30::bigint[], $31::bigint[],
                           $32::text[], $33::text[], $34::int[], $35::text[], $36::bigint[],
                           $37::bigint[], $38::bigint[], $39::bigint[])
                   AS u(id, task, idx, attempt, state, reason, exit_code, node, pid,
                        started_at, ended_at, memory)
                   JOIN jobs ON jobs.id = u.id
               WHERE EXISTS (SELECT 1 FROM ok)
               ON CONFLICT (job, task, idx, attempt) DO UPDATE SET
                   state = excluded.state, reason = excluded.reason,
                   exit_code = excluded.exit_code, node = excluded.node,
                   pid = excluded.pid, ended_at = excluded.ended_at),
         {events}
         SELECT (SELECT epoch FROM fence), (SELECT n FROM known)",
        events = events_cte(40, "EXISTS (SELECT 1 FROM ok)"),
    )
});

/// The columns of one tick's coalesced changes, one array per column and kind of record.
#[derive(Default)]
struct Batch<'a> {
    /// Every job named (sorted and deduplicated before use).
    ids: Vec<&'a str>,

    job_id: Vec<&'a str>,
    job_state: Vec<&'static str>,
    job_reason: Vec<Option<String>>,
    job_at: Vec<i64>,
    job_deadline: Vec<Option<i64>>,

    task_job: Vec<&'a str>,
    task_no: Vec<i64>,
    task_state: Vec<&'static str>,
    task_reason: Vec<Option<String>>,
    task_stop: Vec<Option<String>>,
    task_unstarted: Vec<Option<String>>,
    task_blocked: Vec<Option<String>>,
    task_counts: Vec<String>,

    inst_job: Vec<&'a str>,
    inst_task: Vec<i64>,
    inst_idx: Vec<i64>,
    inst_state: Vec<&'static str>,
    inst_reason: Vec<Option<String>>,
    inst_attempt: Vec<i64>,
    inst_retries: Vec<i64>,
    inst_resource_retries: Vec<i64>,
    inst_exit: Vec<Option<i32>>,
    inst_stop: Vec<Option<String>>,
    inst_memory: Vec<i64>,
    inst_oom: Vec<i64>,

    att_job: Vec<&'a str>,
    att_task: Vec<i64>,
    att_idx: Vec<i64>,
    att_attempt: Vec<i64>,
    att_state: Vec<&'static str>,
    att_reason: Vec<Option<String>>,
    att_exit: Vec<Option<i32>>,
    att_node: Vec<&'a str>,
    att_pid: Vec<Option<i64>>,
    att_started: Vec<i64>,
    att_ended: Vec<Option<i64>>,
    att_memory: Vec<i64>,

    events: EventColumns,
}

impl<'a> Batch<'a> {
    fn push(&mut self, c: &'a Change) {
        let Some(job) = codec::change_job(c) else {
            return;
        };
        let job: &'a str = job;
        self.ids.push(job);
        match c {
            // Taken apart, in order, by `apply_with`.
            Change::Event(_) => {}
            Change::Job {
                state,
                reason,
                at,
                deadline,
                ..
            } => {
                self.job_id.push(job);
                self.job_state.push(state.as_str());
                self.job_reason.push(text(reason));
                self.job_at.push(big(*at));
                self.job_deadline.push(deadline.map(big));
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
                self.task_blocked.push(text(blocked));
                self.task_counts.push(codec::encode_counts(counts));
                self.task_job.push(job);
                self.task_no.push(*task as i64);
                self.task_state.push(state.as_str());
                self.task_reason.push(text(reason));
                self.task_stop.push(text(stop));
                self.task_unstarted.push(text(unstarted));
            }
            Change::Instance {
                task,
                index,
                record: i,
                ..
            } => {
                self.inst_job.push(job);
                self.inst_task.push(*task as i64);
                self.inst_idx.push(i64::from(*index));
                self.inst_state.push(i.state.as_str());
                self.inst_reason.push(text(&i.reason));
                self.inst_attempt.push(i64::from(i.attempt));
                self.inst_retries.push(i64::from(i.retries_used));
                self.inst_resource_retries
                    .push(i64::from(i.resource_retries_used));
                self.inst_exit.push(i.exit_code);
                self.inst_stop.push(text(&i.stop));
                self.inst_memory.push(big(i.memory));
                self.inst_oom.push(i64::from(i.oom_retries_used));
            }
            Change::Attempt {
                task,
                index,
                record: a,
                ..
            } => {
                self.att_job.push(job);
                self.att_task.push(*task as i64);
                self.att_idx.push(i64::from(*index));
                self.att_attempt.push(i64::from(a.attempt));
                self.att_state.push(a.state.as_str());
                self.att_reason.push(text(&a.reason));
                self.att_exit.push(a.exit_code);
                self.att_node.push(&a.node);
                self.att_pid.push(a.pid.map(i64::from));
                self.att_started.push(big(a.started_at));
                self.att_ended.push(a.ended_at.map(big));
                self.att_memory.push(big(a.memory));
            }
        }
    }

    /// The parameters of [`TICK`], `held` being the epoch to check (if any).
    fn params<'p>(&'p self, held: &'p Option<i64>) -> [&'p (dyn ToSql + Sync); 44] {
        [
            &self.ids,
            held,
            &self.job_id,
            &self.job_state,
            &self.job_reason,
            &self.job_at,
            &self.job_deadline,
            &self.task_job,
            &self.task_no,
            &self.task_state,
            &self.task_reason,
            &self.task_stop,
            &self.task_unstarted,
            &self.task_blocked,
            &self.task_counts,
            &self.inst_job,
            &self.inst_task,
            &self.inst_idx,
            &self.inst_state,
            &self.inst_reason,
            &self.inst_attempt,
            &self.inst_retries,
            &self.inst_resource_retries,
            &self.inst_exit,
            &self.inst_stop,
            &self.inst_memory,
            &self.inst_oom,
            &self.att_job,
            &self.att_task,
            &self.att_idx,
            &self.att_attempt,
            &self.att_state,
            &self.att_reason,
            &self.att_exit,
            &self.att_node,
            &self.att_pid,
            &self.att_started,
            &self.att_ended,
            &self.att_memory,
            &self.events.kind,
            &self.events.at,
            &self.events.project,
            &self.events.job,
            &self.events.detail,
        ]
    }
}

/// Two prepared queries (with their parameters) in one read-only snapshot: `BEGIN`, both
/// queries and `COMMIT` are sent at once, so they cost one round trip. A failed query aborts
/// the transaction, which the `COMMIT` then ends (as a rollback): the connection goes back to
/// the pool outside any transaction.
async fn snapshot_pair(
    c: &Client,
    a: (&Statement, &[&(dyn ToSql + Sync)]),
    b: (&Statement, &[&(dyn ToSql + Sync)]),
) -> Result<(Vec<Row>, Vec<Row>)> {
    // `biased`: polled in this order, so sent in this order.
    let (begin, ra, rb, commit) = tokio::join!(
        biased;
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        c.query(a.0, a.1),
        c.query(b.0, b.1),
        c.batch_execute("COMMIT"),
    );
    begin.map_err(db)?;
    let (ra, rb) = (ra.map_err(db)?, rb.map_err(db)?);
    commit.map_err(db)?;
    Ok((ra, rb))
}

/// Job ids to row keys, for the jobs named.
async fn seqs_of(c: &impl GenericClient, ids: &[&str]) -> Result<HashMap<String, i64>> {
    let stmt = c
        .prepare_cached("SELECT id, seq FROM jobs WHERE id = ANY($1)")
        .await
        .map_err(db)?;
    let rows = c.query(&stmt, &[&ids]).await.map_err(db)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
        .collect()
}

async fn load_job_in(c: &impl GenericClient, id: &str) -> Result<Option<StoredJob>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS}, spec, spec_version FROM jobs WHERE id = $1"
        ))
        .await
        .map_err(db)?;
    let Some(r) = c.query_opt(&stmt, &[&id]).await.map_err(db)? else {
        return Ok(None);
    };
    let row = job_row(&r)?;
    let spec = codec::decode_spec(id, r.try_get(10).map_err(db)?, r.try_get(11).map_err(db)?)?;
    let seq = big(row.seq);
    let mut tasks = vec![TaskSnapshot::default(); spec.tasks.len()];
    let stmt = c
        .prepare_cached("SELECT task, state, reason, stop, unstarted FROM tasks WHERE job = $1")
        .await
        .map_err(db)?;
    for r in c.query(&stmt, &[&seq]).await.map_err(db)? {
        let t: i64 = r.try_get(0).map_err(db)?;
        let Some(snap) = usize::try_from(t).ok().and_then(|t| tasks.get_mut(t)) else {
            return Err(corrupt("task", format!("job {id} task {t}")));
        };
        snap.state = Some(parse_state(r.try_get(1).map_err(db)?)?);
        snap.reason = parse_reason(r.try_get(2).map_err(db)?)?;
        snap.stop = parse_reason(r.try_get(3).map_err(db)?)?;
        snap.unstarted = parse_reason(r.try_get(4).map_err(db)?)?;
    }
    // The last attempt of every instance that is not finished: needed to end it properly.
    let stmt = c
        .prepare_cached(
            "SELECT a.task, a.idx, a.attempt, a.state, a.reason, a.exit_code, a.node, a.pid,
                    a.started_at, a.ended_at, a.memory
             FROM attempts a JOIN instances i
               ON i.job = a.job AND i.task = a.task AND i.idx = a.idx AND i.attempt = a.attempt
             WHERE a.job = $1 AND i.state <> 'SUCCEED'",
        )
        .await
        .map_err(db)?;
    let mut last_attempts: HashMap<(i64, i64), Attempt> = HashMap::new();
    for r in c.query(&stmt, &[&seq]).await.map_err(db)? {
        let key = (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
        last_attempts.insert(key, attempt_at(&r, 2)?);
    }
    let stmt = c
        .prepare_cached(&format!(
            "SELECT task, idx, {INSTANCE_COLUMNS} FROM instances WHERE job = $1"
        ))
        .await
        .map_err(db)?;
    for r in c.query(&stmt, &[&seq]).await.map_err(db)? {
        let t: i64 = r.try_get(0).map_err(db)?;
        let idx: i64 = r.try_get(1).map_err(db)?;
        let Some(snap) = usize::try_from(t).ok().and_then(|t| tasks.get_mut(t)) else {
            return Err(corrupt("instance", format!("job {id} task {t}")));
        };
        let att = last_attempts.remove(&(t, idx));
        let index = u32::try_from(idx).map_err(|e| corrupt("instance", e))?;
        snap.instances.push((index, instance_at(&r, 2)?, att));
    }
    Ok(Some(StoredJob {
        row,
        spec: Arc::new(spec),
        tasks,
    }))
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let (status, created) = (i32::from(once.status), big(once.created_at));
        let inserted = self.execute(
            &format!(
                "INSERT INTO idempotency ({IDEMPOTENCY_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            ),
            &[
                &once.scope,
                &once.key,
                &once.request,
                &once.resource,
                &status,
                &once.response,
                &created,
            ],
        )?;
        if inserted {
            return Ok(None);
        }
        self.get_idempotency(&once.scope, &once.key)
    }

    fn get_idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        let rows = self.query(IDEMPOTENCY_SELECT, &[&scope, &key])?;
        rows.first().map(idempotency_row).transpose()
    }

    fn push_command(&self, command: &str, now: u64) -> Result<u64> {
        let rows = self.query(
            "INSERT INTO commands (command, created_at) VALUES ($1, $2) RETURNING id",
            &[&command, &big(now)],
        )?;
        let id: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Database("INSERT … RETURNING gave no row".into()))?
            .try_get(0)
            .map_err(db)?;
        Ok(u64::try_from(id).unwrap_or(0))
    }

    fn pending_commands(&self, limit: u32) -> Result<Vec<CommandRecord>> {
        self.query(PENDING_SQL, &[&i64::from(limit)])?
            .iter()
            .map(command_row)
            .collect()
    }

    fn inbox(&self, limit: u32) -> Result<Inbox> {
        self.run(async {
            let c = self.client().await?;
            let (jobs, commands) = tokio::try_join!(
                c.prepare_cached(SUBMITTED_SQL),
                c.prepare_cached(PENDING_SQL)
            )
            .map_err(db)?;
            // Both sent before either answer is awaited: one round trip.
            let limit = i64::from(limit);
            let params: [&(dyn ToSql + Sync); 1] = [&limit];
            let (jobs, commands) =
                tokio::try_join!(c.query(&jobs, &[]), c.query(&commands, &params)).map_err(db)?;
            Ok(Inbox {
                submitted: job_rows(jobs)?,
                commands: commands.iter().map(command_row).collect::<Result<_>>()?,
            })
        })
    }

    fn answer_command(&self, id: u64, answer: &CommandAnswer) -> Result<bool> {
        self.execute(
            "UPDATE commands SET answered_at = $2, status = $3, message = $4
             WHERE id = $1 AND answered_at IS NULL",
            &[
                &big(id),
                &big(answer.at),
                &i32::from(answer.status),
                &answer.message,
            ],
        )
    }

    fn get_command(&self, id: u64) -> Result<Option<CommandRecord>> {
        self.query(
            &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1"),
            &[&big(id)],
        )?
        .first()
        .map(command_row)
        .transpose()
    }

    fn purge_commands(&self, before: u64) -> Result<u64> {
        let rows = self.query(
            "DELETE FROM commands WHERE answered_at < $1 RETURNING 1",
            &[&big(before)],
        )?;
        Ok(rows.len() as u64)
    }

    fn purge_idempotency(&self, before: u64) -> Result<u64> {
        let rows = self.query(
            "DELETE FROM idempotency WHERE created_at < $1 RETURNING 1",
            &[&big(before)],
        )?;
        Ok(rows.len() as u64)
    }

    fn forget_idempotency(&self, resource: &str) -> Result<u64> {
        let rows = self.query(
            "DELETE FROM idempotency WHERE resource = $1 RETURNING 1",
            &[&resource],
        )?;
        Ok(rows.len() as u64)
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
        self.run(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(db)?;
            let epoch = match held {
                Some(epoch) => {
                    let stmt = tx
                        .prepare_cached(&format!(
                            "UPDATE leader SET expires_at = {NOW_MS} + $3
                             WHERE id = 1 AND holder = $1 AND epoch = $2
                               AND expires_at > {NOW_MS}"
                        ))
                        .await
                        .map_err(db)?;
                    let renewed = tx
                        .execute(&stmt, &[&holder, &big(epoch), &ttl])
                        .await
                        .map_err(db)?;
                    (renewed > 0).then_some(epoch)
                }
                None => {
                    // Waits for the row lock a leader's tick holds, so that tick commits (or
                    // fails) before the term changes hands.
                    let stmt = tx
                        .prepare_cached(&format!(
                            "UPDATE leader SET holder = $1, url = $2, epoch = epoch + 1,
                                 expires_at = {NOW_MS} + $3
                             WHERE id = 1 AND expires_at <= {NOW_MS} RETURNING epoch"
                        ))
                        .await
                        .map_err(db)?;
                    let taken = tx
                        .query_opt(&stmt, &[&holder, &url, &ttl])
                        .await
                        .map_err(db)?;
                    match taken {
                        Some(r) => {
                            let epoch: i64 = r.try_get(0).map_err(db)?;
                            let stmt = tx
                                .prepare_cached(&format!(
                                    "INSERT INTO leader_terms (epoch, holder, url, granted_at)
                                     VALUES ($1, $2, $3, {NOW_MS})"
                                ))
                                .await
                                .map_err(db)?;
                            tx.execute(&stmt, &[&epoch, &holder, &url])
                                .await
                                .map_err(db)?;
                            Some(epoch as u64)
                        }
                        None => None,
                    }
                }
            };
            tx.commit().await.map_err(db)?;
            Ok(epoch)
        })
    }

    fn release_lease(&self, holder: &str, epoch: u64) -> Result<()> {
        self.execute(
            &format!(
                "UPDATE leader SET expires_at = {NOW_MS} - 1
                 WHERE id = 1 AND holder = $1 AND epoch = $2"
            ),
            &[&holder, &big(epoch)],
        )?;
        Ok(())
    }

    fn lease(&self) -> Result<Lease> {
        let rows = self.query(
            &format!(
                "SELECT holder, url, epoch, expires_at, expires_at <= {NOW_MS} FROM leader
                 WHERE id = 1"
            ),
            &[],
        )?;
        let r = rows
            .first()
            .ok_or_else(|| corrupt("leader", "no lease row"))?;
        Ok(Lease {
            holder: r.try_get(0).map_err(db)?,
            url: r.try_get(1).map_err(db)?,
            epoch: r.try_get::<_, i64>(2).map_err(db)? as u64,
            expires_at: r.try_get::<_, i64>(3).map_err(db)? as u64,
            expired: r.try_get(4).map_err(db)?,
        })
    }

    fn submitted_jobs(&self) -> Result<Vec<JobRow>> {
        job_rows(self.query(SUBMITTED_SQL, &[])?)
    }

    fn load_job(&self, id: &str) -> Result<Option<StoredJob>> {
        self.run(async {
            let mut c = self.client().await?;
            // One snapshot for every query.
            let tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db)?;
            let found = load_job_in(&tx, id).await?;
            tx.commit().await.map_err(db)?;
            Ok(found)
        })
    }

    fn job_view(&self, id: &str) -> Result<Option<JobView>> {
        self.run(async {
            let c = self.client().await?;
            let job_sql =
                format!("SELECT {JOB_COLUMNS}, spec, spec_version FROM jobs WHERE id = $1");
            let tasks_sql = format!(
                "SELECT name, state, reason, stop, unstarted, blocked, counts
                 FROM tasks WHERE job = {JOB_SEQ} ORDER BY task"
            );
            let (job, tasks) =
                tokio::try_join!(c.prepare_cached(&job_sql), c.prepare_cached(&tasks_sql))
                    .map_err(db)?;
            let params: [&(dyn ToSql + Sync); 1] = [&id];
            let (job, task_rows) = snapshot_pair(&c, (&job, &params), (&tasks, &params)).await?;
            let Some(r) = job.first() else {
                return Ok(None);
            };
            let row = job_row(r)?;
            let spec =
                codec::decode_spec(id, r.try_get(10).map_err(db)?, r.try_get(11).map_err(db)?)?;
            let mut tasks = Vec::with_capacity(spec.tasks.len());
            for r in task_rows {
                tasks.push(codec::task_record(
                    r.try_get(0).map_err(db)?,
                    r.try_get(1).map_err(db)?,
                    r.try_get(2).map_err(db)?,
                    r.try_get(3).map_err(db)?,
                    r.try_get(4).map_err(db)?,
                    r.try_get(5).map_err(db)?,
                    r.try_get(6).map_err(db)?,
                )?);
            }
            Ok(Some(JobView {
                row,
                spec: Arc::new(spec),
                tasks,
            }))
        })
    }

    fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        Ok(job_rows(self.query(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            &[&id],
        )?)?
        .pop())
    }

    fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        job_rows(self.query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ({}) ORDER BY seq",
                codec::terminal_sql()
            ),
            &[],
        )?)
    }

    fn unfinished_with_spec(&self, spec: &JobSpec) -> Result<Vec<JobRow>> {
        let spec_json = codec::encode_spec(spec)?;
        job_rows(self.query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ({}) AND spec = $1
                 ORDER BY seq",
                codec::terminal_sql()
            ),
            &[&spec_json],
        )?)
    }

    fn attempts(&self, job: &str, task: usize, index: u32) -> Result<Vec<Attempt>> {
        let rows = self.query(
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts
                 WHERE job = {JOB_SEQ} AND task = $2 AND idx = $3 ORDER BY attempt"
            ),
            &[&job, &(task as i64), &i64::from(index)],
        )?;
        rows.iter().map(|r| attempt_at(r, 0)).collect()
    }

    fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>> {
        let state = q.state.map(|s| s.as_str());
        let after = q.after_seq.map(big);
        let limit = i64::from(q.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut conds = Vec::new();
        if let Some(state) = &state {
            params.push(state);
            conds.push(format!("state = ${}", params.len()));
        }
        if let Some(prefix) = &q.name_prefix {
            params.push(prefix);
            // Not LIKE: no wildcards, and case-sensitive as in every backend.
            conds.push(format!("starts_with(name, ${})", params.len()));
        }
        if let Some(project) = &q.project {
            params.push(project);
            conds.push(format!("project = ${}", params.len()));
        }
        if let Some(after) = &after {
            params.push(after);
            conds.push(format!("seq < ${}", params.len()));
        }
        params.push(&limit);
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        job_rows(self.query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs {filter} ORDER BY seq DESC LIMIT ${}",
                params.len()
            ),
            &params,
        )?)
    }

    fn item_chunk(&self, job: &str, task: usize, chunk: u32) -> Result<Option<String>> {
        let rows = self.query(
            &format!(
                "SELECT items FROM task_items WHERE job = {JOB_SEQ} AND task = $2 AND chunk = $3"
            ),
            &[&job, &(task as i64), &i64::from(chunk)],
        )?;
        rows.first().map(|r| r.try_get(0).map_err(db)).transpose()
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
        let limit = i64::from(limit);
        self.run(async {
            let c = self.client().await?;
            let instances_sql = format!(
                "SELECT idx, {INSTANCE_COLUMNS} FROM instances
                 WHERE job = {JOB_SEQ} AND task = $2 AND idx > $3 ORDER BY idx LIMIT $4"
            );
            // The attempts of the same page, in the same snapshot.
            let attempts_sql = format!(
                "SELECT idx, {ATTEMPT_COLUMNS} FROM attempts
                 WHERE job = {JOB_SEQ} AND task = $2 AND idx IN (
                     SELECT idx FROM instances
                     WHERE job = {JOB_SEQ} AND task = $2 AND idx > $3 ORDER BY idx LIMIT $4)
                 ORDER BY idx, attempt"
            );
            let (instances, attempts) = tokio::try_join!(
                c.prepare_cached(&instances_sql),
                c.prepare_cached(&attempts_sql)
            )
            .map_err(db)?;
            let params: [&(dyn ToSql + Sync); 4] = [&job, &task, &after, &limit];
            let (instance_rows, attempt_rows) =
                snapshot_pair(&c, (&instances, &params), (&attempts, &params)).await?;
            let mut page: Vec<InstancePageItem> = Vec::with_capacity(instance_rows.len());
            for r in &instance_rows {
                page.push((u32_at(r, 0)?, instance_at(r, 1)?, Vec::new()));
            }
            let mut attempts = Vec::with_capacity(attempt_rows.len());
            for r in &attempt_rows {
                attempts.push((u32_at(r, 0)?, attempt_at(r, 1)?));
            }
            codec::attach_attempts(&mut page, attempts);
            Ok(page)
        })
    }

    fn task_counts(&self, job: &str) -> Result<Vec<BTreeMap<State, u32>>> {
        let rows = self.query(
            &format!(
                "SELECT t.task, i.state, COUNT(i.idx)
                 FROM tasks t LEFT JOIN instances i ON i.job = t.job AND i.task = t.task
                 WHERE t.job = {JOB_SEQ}
                 GROUP BY t.task, i.state ORDER BY t.task"
            ),
            &[&job],
        )?;
        let mut grouped = Vec::with_capacity(rows.len());
        for r in rows {
            let n: i64 = r.try_get(2).map_err(db)?;
            grouped.push((
                r.try_get(0).map_err(db)?,
                r.try_get(1).map_err(db)?,
                u32::try_from(n).unwrap_or(u32::MAX),
            ));
        }
        codec::group_counts(job, grouped)
    }

    fn put_secret(&self, name: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )?;
        Ok(())
    }

    fn get_secret(&self, name: &str) -> Result<Option<String>> {
        let rows = self.query("SELECT value FROM secrets WHERE name = $1", &[&name])?;
        rows.first().map(|r| r.try_get(0).map_err(db)).transpose()
    }

    fn delete_secret(&self, name: &str) -> Result<bool> {
        self.execute("DELETE FROM secrets WHERE name = $1", &[&name])
    }

    fn put_template(&self, t: &TemplateRecord) -> Result<bool> {
        let rows = self.query(
            "INSERT INTO templates (name, description, task, created_at, updated_at, project)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                 task = excluded.task, updated_at = excluded.updated_at,
                 project = excluded.project
             RETURNING (xmax = 0)",
            &[
                &t.name,
                &t.description,
                &t.task_json,
                &big(t.created_at),
                &big(t.updated_at),
                &t.project,
            ],
        )?;
        inserted(&rows)
    }

    fn create_template(&self, t: &TemplateRecord) -> Result<bool> {
        self.execute(
            "INSERT INTO templates (name, description, task, created_at, updated_at, project)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO NOTHING",
            &[
                &t.name,
                &t.description,
                &t.task_json,
                &big(t.created_at),
                &big(t.updated_at),
                &t.project,
            ],
        )
    }

    fn get_template(&self, name: &str) -> Result<Option<TemplateRecord>> {
        self.query(
            &format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = $1"),
            &[&name],
        )?
        .first()
        .map(template_row)
        .transpose()
    }

    fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        self.query(
            &format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name"),
            &[],
        )?
        .iter()
        .map(template_row)
        .collect()
    }

    fn delete_template(&self, name: &str) -> Result<bool> {
        self.execute("DELETE FROM templates WHERE name = $1", &[&name])
    }

    fn create_storage_profile(&self, t: &StorageProfileRecord) -> Result<bool> {
        self.execute(
            "INSERT INTO storage_profiles (name, config, created_at, project)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[&t.name, &t.config_json, &big(t.created_at), &t.project],
        )
    }

    fn get_storage_profile(&self, name: &str) -> Result<Option<StorageProfileRecord>> {
        self.query(
            &format!("SELECT {PROFILE_COLUMNS} FROM storage_profiles WHERE name = $1"),
            &[&name],
        )?
        .first()
        .map(profile_row)
        .transpose()
    }

    fn list_storage_profiles(&self) -> Result<Vec<StorageProfileRecord>> {
        self.query(
            &format!("SELECT {PROFILE_COLUMNS} FROM storage_profiles ORDER BY name"),
            &[],
        )?
        .iter()
        .map(profile_row)
        .collect()
    }

    fn delete_storage_profile(&self, name: &str) -> Result<bool> {
        self.execute("DELETE FROM storage_profiles WHERE name = $1", &[&name])
    }

    fn put_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool> {
        let rows = self.journaled(
            "INSERT INTO compute_envs (name, description, provider, desired_nodes, config,
                 created_at, updated_at, projects)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                 provider = excluded.provider, desired_nodes = excluded.desired_nodes,
                 config = excluded.config, updated_at = excluded.updated_at,
                 projects = excluded.projects
             RETURNING (xmax = 0)",
            &[
                &e.name,
                &e.description,
                &e.provider,
                &i64::from(e.desired_nodes),
                &e.config_json,
                &big(e.created_at),
                &big(e.updated_at),
                &e.projects.join(","),
            ],
            |rows| {
                let kind = if inserted(rows)? {
                    EventKind::ComputeEnvCreated
                } else {
                    EventKind::ComputeEnvUpdated
                };
                Ok(vec![env_event(
                    kind,
                    &e.name,
                    e.updated_at,
                    Some(e.desired_nodes),
                )])
            },
        )?;
        inserted(&rows)
    }

    fn create_compute_env(&self, e: &ComputeEnvRecord) -> Result<bool> {
        let rows = self.journaled(
            "INSERT INTO compute_envs (name, description, provider, desired_nodes, config,
                 created_at, updated_at, projects)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO NOTHING RETURNING 1",
            &[
                &e.name,
                &e.description,
                &e.provider,
                &i64::from(e.desired_nodes),
                &e.config_json,
                &big(e.created_at),
                &big(e.updated_at),
                &e.projects.join(","),
            ],
            |rows| {
                Ok(if rows.is_empty() {
                    Vec::new()
                } else {
                    vec![env_event(
                        EventKind::ComputeEnvCreated,
                        &e.name,
                        e.created_at,
                        Some(e.desired_nodes),
                    )]
                })
            },
        )?;
        Ok(!rows.is_empty())
    }

    fn get_compute_env(&self, name: &str) -> Result<Option<ComputeEnvRecord>> {
        self.query(
            &format!("SELECT {ENV_COLUMNS} FROM compute_envs WHERE name = $1"),
            &[&name],
        )?
        .first()
        .map(env_row)
        .transpose()
    }

    fn list_compute_envs(&self) -> Result<Vec<ComputeEnvRecord>> {
        self.query(
            &format!("SELECT {ENV_COLUMNS} FROM compute_envs ORDER BY name"),
            &[],
        )?
        .iter()
        .map(env_row)
        .collect()
    }

    fn delete_compute_env(&self, name: &str) -> Result<bool> {
        let rows = self.journaled(
            "DELETE FROM compute_envs WHERE name = $1 RETURNING 1",
            &[&name],
            |rows| {
                Ok(if rows.is_empty() {
                    Vec::new()
                } else {
                    vec![env_event(EventKind::ComputeEnvDeleted, name, 0, None)]
                })
            },
        )?;
        Ok(!rows.is_empty())
    }

    fn set_desired_nodes(&self, name: &str, desired: u32) -> Result<bool> {
        let rows = self.journaled(
            "UPDATE compute_envs SET desired_nodes = $2 WHERE name = $1 RETURNING 1",
            &[&name, &i64::from(desired)],
            |rows| {
                Ok(if rows.is_empty() {
                    Vec::new()
                } else {
                    vec![env_event(
                        EventKind::ComputeEnvScaled,
                        name,
                        0,
                        Some(desired),
                    )]
                })
            },
        )?;
        Ok(!rows.is_empty())
    }

    fn upsert_node(&self, n: &NodeRecord) -> Result<()> {
        self.run(async {
            let mut c = self.client().await?;
            let c = c.transaction().await.map_err(db)?;
            let was = c
                .query_opt("SELECT state FROM nodes WHERE id = $1 FOR UPDATE", &[&n.id])
                .await
                .map_err(db)?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()
                .map_err(db)?;
            let stmt = c
                .prepare_cached(
                    "INSERT INTO nodes (id, name, state, compute_env, slots, millicpus, memory,
                         last_seen, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                         state = excluded.state, compute_env = excluded.compute_env,
                         slots = excluded.slots, millicpus = excluded.millicpus,
                         memory = excluded.memory, last_seen = excluded.last_seen",
                )
                .await
                .map_err(db)?;
            match c
                .execute(
                    &stmt,
                    &[
                        &n.id,
                        &n.name,
                        &n.state,
                        &n.compute_env,
                        &i64::from(n.slots),
                        &big(n.millicpus),
                        &big(n.memory),
                        &big(n.last_seen),
                        &big(n.created_at),
                    ],
                )
                .await
            {
                Ok(_) => {
                    if was.as_deref() != Some(n.state.as_str())
                        && let Some(event) = node_event(n)
                    {
                        insert_events(&c, &[event]).await?;
                    }
                    c.commit().await.map_err(db)
                }
                // The only other unique key is the name.
                Err(e) if is_unique_violation(&e) => Err(StoreError::NameTaken {
                    kind: "node",
                    name: n.name.clone(),
                }),
                Err(e) => Err(db(e)),
            }
        })
    }

    fn list_nodes(&self) -> Result<Vec<NodeRecord>> {
        self.query(
            &format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY name"),
            &[],
        )?
        .iter()
        .map(node_row)
        .collect()
    }

    fn delete_node(&self, name: &str) -> Result<bool> {
        let rows = self.journaled(
            "DELETE FROM nodes WHERE name = $1 RETURNING compute_env",
            &[&name],
            |rows| {
                let Some(row) = rows.first() else {
                    return Ok(Vec::new());
                };
                let env: Option<String> = row.try_get(0).map_err(db)?;
                Ok(vec![Event::new(
                    EventKind::NodeRemoved,
                    0,
                    None,
                    Detail {
                        node: Some(name.to_string()),
                        compute_env: env,
                        ..Detail::default()
                    },
                )])
            },
        )?;
        Ok(!rows.is_empty())
    }

    fn create_project(&self, p: &ProjectRecord) -> Result<bool> {
        self.execute(
            "INSERT INTO projects (name, description, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&p.name, &p.description, &big(p.created_at)],
        )
    }

    fn get_project(&self, name: &str) -> Result<Option<ProjectRecord>> {
        self.query(
            &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"),
            &[&name],
        )?
        .first()
        .map(project_row)
        .transpose()
    }

    fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        self.query(
            &format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"),
            &[],
        )?
        .iter()
        .map(project_row)
        .collect()
    }

    fn delete_project(&self, name: &str) -> Result<bool> {
        self.execute("DELETE FROM projects WHERE name = $1", &[&name])
    }

    fn create_token(&self, t: &TokenRecord) -> Result<bool> {
        self.execute(
            "INSERT INTO api_tokens (name, digest, project, role, created_at, expires_at,
                 revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO NOTHING",
            &[
                &t.name,
                &t.digest,
                &t.project,
                &t.role,
                &big(t.created_at),
                &t.expires_at.map(big),
                &t.revoked_at.map(big),
            ],
        )
    }

    fn get_token(&self, name: &str) -> Result<Option<TokenRecord>> {
        self.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = $1"),
            &[&name],
        )?
        .first()
        .map(token_row)
        .transpose()
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"),
            &[],
        )?
        .iter()
        .map(token_row)
        .collect()
    }

    fn revoke_token(&self, name: &str, at: u64) -> Result<bool> {
        self.execute(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            &[&name, &big(at)],
        )
    }

    fn append_audit(&self, a: &AuditRecord) -> Result<u64> {
        let rows = self.query(
            "INSERT INTO audit (at, token, project, action, object, result)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            &[
                &big(a.at),
                &a.token,
                &a.project,
                &a.action,
                &a.object,
                &i32::from(a.result),
            ],
        )?;
        let seq: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Database("INSERT … RETURNING gave no row".into()))?
            .try_get(0)
            .map_err(db)?;
        Ok(unbig(seq))
    }

    fn audit(&self, since: u64, after: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        self.query(
            &format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE at >= $1 AND seq > $2
                 ORDER BY seq LIMIT $3"
            ),
            &[&big(since), &big(after), &i64::from(limit)],
        )?
        .iter()
        .map(audit_row)
        .collect()
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let kinds: Vec<&str> = q.kinds.iter().map(|k| k.as_str()).collect();
        let rows = self.query(
            "SELECT seq, at, project, type, job, detail FROM events
             WHERE seq > $1 AND ($2::text IS NULL OR job = $2) AND ($3::text IS NULL OR project = $3)
               AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
             ORDER BY seq LIMIT $5",
            &[
                &big(q.after),
                &q.job,
                &q.project,
                &kinds,
                &i64::from(q.limit),
            ],
        )?;
        rows.iter()
            .map(|r| {
                codec::stored_event(
                    r.try_get(0).map_err(db)?,
                    r.try_get(1).map_err(db)?,
                    r.try_get(2).map_err(db)?,
                    r.try_get::<_, &str>(3).map_err(db)?,
                    r.try_get(4).map_err(db)?,
                    r.try_get::<_, &str>(5).map_err(db)?,
                )
            })
            .collect()
    }

    fn last_event_seq(&self) -> Result<u64> {
        let rows = self.query("SELECT last FROM event_seq WHERE id = 1", &[])?;
        let last: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(db)?,
            None => 0,
        };
        Ok(last.max(0) as u64)
    }

    fn purge_events(&self, before: u64, limit: u32) -> Result<u64> {
        let rows = self.query(
            "WITH old AS (SELECT seq FROM events WHERE at < $1 ORDER BY at LIMIT $2)
             DELETE FROM events WHERE seq IN (SELECT seq FROM old) RETURNING 1",
            &[&big(before), &i64::from(limit)],
        )?;
        Ok(rows.len() as u64)
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

/// The answer of an upsert's `RETURNING (xmax = 0)`: whether it inserted.
fn inserted(rows: &[Row]) -> Result<bool> {
    rows.first()
        .map(|r| r.try_get(0).map_err(db))
        .transpose()
        .map(|v| v.unwrap_or(false))
}
