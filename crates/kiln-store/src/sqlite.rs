//! The embedded SQLite store.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use kiln_core::engine::{Attempt, Change, TaskSnapshot};
use kiln_core::model::{JobSpec, SPEC_VERSION};
use kiln_core::state::{Instance, Reason, State};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{JobRow, Result, Store, StoreError, StoredJob, change_key};

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
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
";

/// SQLite in WAL mode. Tick batches commit with `synchronous=NORMAL` (durable across a crash
/// of the process; a power loss may lose the last ticks, which recovery re-runs); a job's
/// acceptance commits with `synchronous=FULL`.
pub struct SqliteStore {
    conn: Connection,
    /// Job id -> row key, filled as jobs are inserted or loaded.
    seqs: HashMap<Arc<str>, i64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Self::init(Connection::open(path)?)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
        }
        Ok(SqliteStore {
            conn,
            seqs: HashMap::new(),
        })
    }

    fn seq(&mut self, id: &str) -> Result<Option<i64>> {
        if let Some(&s) = self.seqs.get(id) {
            return Ok(Some(s));
        }
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT seq FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if let Some(s) = seq {
            self.seqs.insert(Arc::from(id), s);
        }
        Ok(seq)
    }

    fn job_rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<JobRow>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
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
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, seq, name, priority, state, reason, created, updated) = row?;
            out.push(JobRow {
                state: parse_state(&state)?,
                reason: parse_reason(reason)?,
                id,
                seq: seq as u64,
                name,
                priority: priority.clamp(0, 100) as u8,
                created_at: created as u64,
                updated_at: updated as u64,
            });
        }
        Ok(out)
    }
}

const JOB_COLUMNS: &str = "id, seq, name, priority, state, reason, created_at, updated_at";

fn corrupt(what: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn parse_state(s: &str) -> Result<State> {
    s.parse().map_err(|e| corrupt("state", e))
}

fn parse_reason(s: Option<String>) -> Result<Option<Reason>> {
    s.map(|s| s.parse().map_err(|e| corrupt("reason", e)))
        .transpose()
}

fn text(r: &Option<Reason>) -> Option<String> {
    r.as_ref().map(ToString::to_string)
}

impl Store for SqliteStore {
    fn insert_job(&mut self, id: &str, spec: &JobSpec, now: u64) -> Result<JobRow> {
        if self.seq(id)?.is_some() {
            return Err(StoreError::Duplicate(id.to_string()));
        }
        let spec_json = serde_json::to_string(spec).map_err(|e| corrupt("spec", e))?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| -> Result<i64> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT INTO jobs (id, name, priority, spec_version, spec, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'SUBMITTED', ?6, ?6)",
                params![id, spec.name, spec.priority, SPEC_VERSION, spec_json, now as i64],
            )?;
            let seq = tx.last_insert_rowid();
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO tasks (job, task, name, state) VALUES (?1, ?2, ?3, 'SUBMITTED')",
                )?;
                for (t, task) in spec.tasks.iter().enumerate() {
                    stmt.execute(params![seq, t as i64, task.name])?;
                }
            }
            tx.commit()?;
            Ok(seq)
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let seq = result?;
        self.seqs.insert(Arc::from(id), seq);
        Ok(JobRow {
            id: id.to_string(),
            seq: seq as u64,
            name: spec.name.clone(),
            priority: spec.priority,
            state: State::Submitted,
            reason: None,
            created_at: now,
            updated_at: now,
        })
    }

    fn apply(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // Coalesce: only the last change to each record is written.
        let mut seen = HashSet::with_capacity(changes.len());
        let mut latest: Vec<&Change> = changes
            .iter()
            .rev()
            .filter(|c| seen.insert(change_key(c)))
            .collect();
        latest.reverse();
        let mut seqs = Vec::with_capacity(latest.len());
        for c in &latest {
            let job = match c {
                Change::Job { job, .. }
                | Change::Task { job, .. }
                | Change::Instance { job, .. }
                | Change::Attempt { job, .. } => job,
            };
            let seq = self
                .seq(job)?
                .ok_or_else(|| corrupt("change", format!("unknown job {job}")))?;
            seqs.push(seq);
        }
        let tx = self.conn.transaction()?;
        for (c, seq) in latest.iter().zip(seqs) {
            match c {
                Change::Job {
                    state, reason, at, ..
                } => {
                    tx.prepare_cached(
                        "UPDATE jobs SET state = ?2, reason = ?3, updated_at = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![
                        seq,
                        state.as_str(),
                        text(reason),
                        *at as i64
                    ])?;
                }
                Change::Task {
                    task,
                    state,
                    reason,
                    stop,
                    unstarted,
                    ..
                } => {
                    tx.prepare_cached(
                        "UPDATE tasks SET state = ?3, reason = ?4, stop = ?5, unstarted = ?6
                         WHERE job = ?1 AND task = ?2",
                    )?
                    .execute(params![
                        seq,
                        *task as i64,
                        state.as_str(),
                        text(reason),
                        text(stop),
                        text(unstarted)
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
                             resource_retries_used, exit_code, stop)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (job, task, idx) DO UPDATE SET state = excluded.state,
                             reason = excluded.reason, attempt = excluded.attempt,
                             retries_used = excluded.retries_used,
                             resource_retries_used = excluded.resource_retries_used,
                             exit_code = excluded.exit_code, stop = excluded.stop",
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
                        text(&i.stop)
                    ])?;
                }
                Change::Attempt {
                    task,
                    index,
                    record: a,
                    ..
                } => {
                    tx.prepare_cached(
                        "INSERT INTO attempts (job, task, idx, attempt, state, reason, exit_code,
                             node, pid, started_at, ended_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT (job, task, idx, attempt) DO UPDATE SET state = excluded.state,
                             reason = excluded.reason, exit_code = excluded.exit_code,
                             node = excluded.node, pid = excluded.pid,
                             ended_at = excluded.ended_at",
                    )?
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
                        a.ended_at.map(|t| t as i64)
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn load_job(&mut self, id: &str) -> Result<Option<StoredJob>> {
        let found: Option<(i64, String, i64)> = self
            .conn
            .query_row(
                "SELECT seq, spec, spec_version FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((seq, spec_json, spec_version)) = found else {
            return Ok(None);
        };
        if spec_version != i64::from(SPEC_VERSION) {
            return Err(corrupt(
                "spec",
                format!("job {id} has spec version {spec_version}, expected {SPEC_VERSION}"),
            ));
        }
        self.seqs.insert(Arc::from(id), seq);
        let spec: JobSpec = serde_json::from_str(&spec_json).map_err(|e| corrupt("spec", e))?;
        // The engine relies on tasks being in DAG order; never hand it a spec that is not.
        for (t, task) in spec.tasks.iter().enumerate() {
            if task.deps.iter().any(|d| d.task >= t) {
                return Err(corrupt(
                    "spec",
                    format!("job {id}: task {t} depends forward"),
                ));
            }
        }
        let row = self
            .job_rows(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE seq = ?1"),
                [seq],
            )?
            .pop()
            .ok_or_else(|| corrupt("job", id))?;
        let mut tasks = vec![TaskSnapshot::default(); spec.tasks.len()];
        {
            let mut stmt = self.conn.prepare_cached(
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
            let mut stmt = self.conn.prepare_cached(
                "SELECT a.task, a.idx, a.attempt, a.state, a.reason, a.exit_code, a.node, a.pid,
                        a.started_at, a.ended_at
                 FROM attempts a JOIN instances i
                   ON i.job = a.job AND i.task = a.task AND i.idx = a.idx AND i.attempt = a.attempt
                 WHERE a.job = ?1 AND i.state NOT IN ('SUCCEED')",
            )?;
            let rows = stmt.query_map([seq], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i32>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<u32>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })?;
            for row in rows {
                let (t, idx, attempt, state, reason, exit_code, node, pid, started, ended) = row?;
                last_attempts.insert(
                    (t, idx),
                    Attempt {
                        attempt,
                        state: parse_state(&state)?,
                        reason: parse_reason(reason)?,
                        exit_code,
                        node,
                        pid,
                        started_at: started as u64,
                        ended_at: ended.map(|e| e as u64),
                    },
                );
            }
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT task, idx, state, reason, attempt, retries_used, resource_retries_used,
                        exit_code, stop
                 FROM instances WHERE job = ?1",
            )?;
            let rows = stmt.query_map([seq], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, Option<i32>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?;
            for row in rows {
                let (t, idx, state, reason, attempt, retries, res_retries, exit_code, stop) = row?;
                let Some(snap) = usize::try_from(t).ok().and_then(|t| tasks.get_mut(t)) else {
                    return Err(corrupt("instance", format!("job {id} task {t}")));
                };
                let inst = Instance {
                    state: parse_state(&state)?,
                    reason: parse_reason(reason)?,
                    attempt,
                    retries_used: retries,
                    resource_retries_used: res_retries,
                    exit_code,
                    stop: parse_reason(stop)?,
                };
                let att = last_attempts.remove(&(t, idx));
                snap.instances.push((idx, inst, att));
            }
        }
        Ok(Some(StoredJob {
            row,
            spec: Arc::new(spec),
            tasks,
        }))
    }

    fn unfinished_jobs(&mut self) -> Result<Vec<JobRow>> {
        self.job_rows(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                 WHERE state NOT IN ('SUCCEED', 'FAILED', 'FAILED_INTERRUPTED') ORDER BY seq"
            ),
            [],
        )
    }

    fn unfinished_with_spec(&mut self, spec: &JobSpec) -> Result<Vec<JobRow>> {
        let spec_json = serde_json::to_string(spec).map_err(|e| corrupt("spec", e))?;
        self.job_rows(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                 WHERE state NOT IN ('SUCCEED', 'FAILED', 'FAILED_INTERRUPTED') AND spec = ?1
                 ORDER BY seq"
            ),
            [spec_json],
        )
    }

    fn attempts(&mut self, job: &str, task: usize, index: u32) -> Result<Vec<Attempt>> {
        let Some(seq) = self.seq(job)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT attempt, state, reason, exit_code, node, pid, started_at, ended_at
             FROM attempts WHERE job = ?1 AND task = ?2 AND idx = ?3 ORDER BY attempt",
        )?;
        let rows = stmt.query_map(params![seq, task as i64, index], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i32>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<u32>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (attempt, state, reason, exit_code, node, pid, started, ended) = row?;
            out.push(Attempt {
                attempt,
                state: parse_state(&state)?,
                reason: parse_reason(reason)?,
                exit_code,
                node,
                pid,
                started_at: started as u64,
                ended_at: ended.map(|e| e as u64),
            });
        }
        Ok(out)
    }
}
