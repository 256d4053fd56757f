#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::engine::{Attempt, Change};
use kiln_core::state::{Instance, State};
use kiln_store::{JobQuery, SqliteStore, Store, StoreError, conformance};
use rusqlite::Connection;

#[test]
fn in_memory_sqlite_conforms() {
    let store = SqliteStore::in_memory().unwrap();
    conformance::run(&store);
}

#[test]
fn file_sqlite_conforms_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/kiln.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::run(&store);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.load_job("job-conform1").unwrap().is_some());
    assert_eq!(store.list_templates().unwrap().len(), 2);
}

fn pragma(path: &Path, name: &str) -> String {
    let conn = Connection::open(path).unwrap();
    conn.pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| format!("{v:?}"))
        .unwrap()
}

#[test]
fn newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x INTEGER); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::TooNew { found: 99, known }) => assert!(known < 99),
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("a newer database was opened"),
    }
    // Not rewritten: not even switched to WAL.
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(pragma(&path, "journal_mode"), r#"Text("delete")"#);
    assert_eq!(pragma(&path, "user_version"), "Integer(99)");
}

#[test]
fn concurrent_first_opens_create_the_schema_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("kiln.db"));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SqliteStore::open(&path).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        pragma(&path, "user_version"),
        format!("Integer({})", kiln_store::sqlite::SCHEMA_VERSION)
    );
}

#[test]
fn two_stores_on_one_file_read_while_the_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    let writer = SqliteStore::open(&path).unwrap();
    let reader = SqliteStore::open(&path).unwrap();
    assert_eq!(pragma(&path, "journal_mode"), r#"Text("wal")"#);
    let all = JobQuery {
        limit: 10,
        ..JobQuery::default()
    };

    // A reader sees what the other store committed.
    writer
        .insert_job("job-a", &conformance::sample_spec(), 1_000)
        .unwrap();
    assert!(reader.load_job("job-a").unwrap().is_some());
    assert_eq!(reader.list_jobs(&all).unwrap().len(), 1);
    writer.put_secret("token", "hash-1").unwrap();
    assert_eq!(
        reader.get_secret("token").unwrap().as_deref(),
        Some("hash-1")
    );

    // A write in progress blocks no reader, and is not seen until it commits.
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO secrets (name, value) VALUES ('pending', 'x');",
        )
        .unwrap();
    let start = Instant::now();
    assert_eq!(reader.get_secret("pending").unwrap(), None);
    assert_eq!(reader.list_jobs(&all).unwrap().len(), 1);
    assert!(reader.task_counts("job-a").unwrap().len() == 2);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "reads waited for the writer"
    );
    other.execute_batch("COMMIT;").unwrap();
    assert_eq!(reader.get_secret("pending").unwrap().as_deref(), Some("x"));

    // A read in progress blocks no writer, and keeps its snapshot.
    other
        .execute_batch("BEGIN; SELECT count(*) FROM jobs;")
        .unwrap();
    let start = Instant::now();
    writer
        .insert_job("job-b", &conformance::sample_spec(), 2_000)
        .unwrap();
    writer
        .apply(&[Change::Job {
            job: Arc::from("job-a"),
            state: State::Running,
            reason: None,
            at: 2_001,
            deadline: None,
        }])
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "writes waited for the reader"
    );
    let count = |c: &Connection| -> i64 {
        c.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&other), 1);
    other.execute_batch("COMMIT;").unwrap();
    assert_eq!(count(&other), 2);
    let listed = reader.list_jobs(&all).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].state, State::Running);
}

#[test]
fn delete_job_leaves_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    let store = SqliteStore::open(&path).unwrap();
    let job: Arc<str> = Arc::from("job-del");
    store
        .insert_job(&job, &conformance::sample_spec(), 1_000)
        .unwrap();
    store
        .insert_job("job-keep", &conformance::sample_spec(), 1_001)
        .unwrap();
    let mut changes = Vec::new();
    for id in [job.clone(), Arc::from("job-keep")] {
        changes.push(Change::Instance {
            job: id.clone(),
            task: 1,
            index: 2,
            record: Instance {
                state: State::Running,
                attempt: 1,
                ..Instance::fresh()
            },
        });
        changes.push(Change::Attempt {
            job: id,
            task: 1,
            index: 2,
            record: Attempt {
                attempt: 1,
                state: State::Running,
                reason: None,
                exit_code: None,
                node: "local".into(),
                pid: None,
                started_at: 1_100,
                ended_at: None,
                memory: 0,
            },
        });
    }
    store.apply(&changes).unwrap();
    assert!(store.delete_job(&job).unwrap());
    let conn = Connection::open(&path).unwrap();
    for (table, rows) in [("jobs", 1), ("tasks", 2), ("instances", 1), ("attempts", 1)] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows, "{table}");
    }
}

#[test]
fn an_older_database_is_migrated_and_keeps_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(kiln_store::sqlite::MIGRATIONS[0])
            .unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO jobs (id, name, priority, spec_version, spec, state, created_at, updated_at)
             VALUES ('job-old', 'old', 50, 0, '{}', 'SUCCEED', 1, 2);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        pragma(&path, "user_version"),
        format!("Integer({})", kiln_store::sqlite::SCHEMA_VERSION)
    );
    let row = store.job_row("job-old").unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.state), ("old", State::Succeed));
    assert!(store.delete_job("job-old").unwrap());
    // The new columns are there and usable.
    conformance::run(&store);
}
