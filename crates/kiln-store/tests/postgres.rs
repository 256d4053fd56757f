//! The PostgreSQL store against a real server (`KILN_TEST_PG_URL`, started by
//! `scripts/services/postgres.sh`); each test has a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kiln_core::engine::{Attempt, Change};
use kiln_core::state::{Instance, State};
use kiln_store::conformance::{self, fresh_pg_database};
use kiln_store::postgres::{MIGRATIONS, SCHEMA_VERSION};
use kiln_store::{PgStore, Store, StoreError};

/// Runs one SQL query on `url` and returns the first column of each row as text.
fn sql(url: &str, query: &str) -> Vec<Option<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let mut out = Vec::new();
        for msg in client.simple_query(query).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
                out.push(r.get(0).map(str::to_string));
            }
        }
        drop(client);
        let _ = conn.await;
        out
    })
}

fn one(url: &str, query: &str) -> String {
    sql(url, query)[0].clone().unwrap_or_default()
}

#[test]
fn postgres_conforms_and_survives_reopen() {
    let url = fresh_pg_database();
    let store = PgStore::open(&url).unwrap();
    conformance::run(&store);
    drop(store);
    let store = PgStore::open(&url).unwrap();
    assert!(store.load_job("job-conform1").unwrap().is_some());
    assert_eq!(store.list_templates().unwrap().len(), 2);
}

#[test]
fn newer_schema_is_refused_and_left_alone() {
    let url = fresh_pg_database();
    sql(
        &url,
        "CREATE TABLE kiln_schema (version BIGINT NOT NULL); INSERT INTO kiln_schema VALUES (99)",
    );
    match PgStore::open(&url) {
        Err(StoreError::TooNew { found: 99, known }) => assert!(known < 99),
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("a newer database was opened"),
    }
    assert_eq!(one(&url, "SELECT version FROM kiln_schema"), "99");
    assert_eq!(
        one(
            &url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "1",
        "nothing but kiln_schema"
    );
}

#[test]
fn concurrent_first_opens_create_the_schema_once() {
    let url = Arc::new(fresh_pg_database());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        one(&url, "SELECT version FROM kiln_schema"),
        SCHEMA_VERSION.to_string()
    );
    assert_eq!(one(&url, "SELECT count(*) FROM kiln_schema"), "1");
}

#[test]
fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    match kiln_store::open(Some("mysql://x@y/z"), std::path::Path::new("/nonexistent")) {
        Err(StoreError::InvalidUrl(m)) => assert!(m.contains("postgres://"), "{m}"),
        other => panic!("expected InvalidUrl, got {:?}", other.err()),
    }
    // Nothing listens on port 1; the password never shows in the message.
    match PgStore::open("postgres://kiln:hunter2@127.0.0.1:1/kiln") {
        Err(e @ StoreError::Unavailable(_)) => assert!(!e.to_string().contains("hunter2"), "{e}"),
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(_) => panic!("opened a database on port 1"),
    }
}

#[test]
fn a_tick_of_thousands_of_changes_commits_at_once() {
    let url = fresh_pg_database();
    let store = PgStore::open(&url).unwrap();
    let job: Arc<str> = Arc::from("job-big");
    let mut spec = conformance::sample_spec();
    spec.tasks[0].instances = 5_000;
    store.insert_job(&job, &spec, 1).unwrap();
    let mut changes = Vec::new();
    for index in 0..5_000 {
        changes.push(Change::Instance {
            job: job.clone(),
            task: 0,
            index,
            record: Instance {
                state: State::Succeed,
                attempt: 1,
                exit_code: Some(0),
                ..Instance::fresh()
            },
        });
        changes.push(Change::Attempt {
            job: job.clone(),
            task: 0,
            index,
            record: Attempt {
                attempt: 1,
                state: State::Succeed,
                reason: None,
                exit_code: Some(0),
                node: "n".into(),
                pid: None,
                started_at: 2,
                ended_at: Some(3),
                memory: 0,
            },
        });
    }
    store.apply(&changes).unwrap();
    assert_eq!(
        store.task_counts(&job).unwrap()[0].get(&State::Succeed),
        Some(&5_000)
    );
    assert_eq!(one(&url, "SELECT count(*) FROM attempts"), "5000");
    assert!(store.delete_job(&job).unwrap());
    for table in ["jobs", "tasks", "instances", "attempts"] {
        assert_eq!(one(&url, &format!("SELECT count(*) FROM {table}")), "0");
    }
}

#[test]
fn an_older_schema_is_migrated_and_keeps_its_jobs() {
    let url = fresh_pg_database();
    sql(
        &url,
        &format!(
            "{} CREATE TABLE kiln_schema (version BIGINT NOT NULL); INSERT INTO kiln_schema VALUES (1);
             INSERT INTO jobs (id, name, priority, spec_version, spec, state, created_at, updated_at)
             VALUES ('job-old', 'old', 50, 0, '{{}}', 'SUCCEED', 1, 2);",
            MIGRATIONS[0]
        ),
    );
    let store = PgStore::open(&url).unwrap();
    assert_eq!(
        one(&url, "SELECT version FROM kiln_schema"),
        SCHEMA_VERSION.to_string()
    );
    let row = store.job_row("job-old").unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.state), ("old", State::Succeed));
    assert!(store.delete_job("job-old").unwrap());
    conformance::run(&store);
}

#[test]
fn two_servers_creating_one_template_or_environment_make_it_once() {
    let url = fresh_pg_database();
    let stores: Vec<PgStore> = (0..2).map(|_| PgStore::open(&url).unwrap()).collect();
    for round in 0..5 {
        let name = format!("race-{round}");
        let won: Vec<(bool, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = &stores[i % 2];
                    let name = &name;
                    s.spawn(move || {
                        let t = kiln_store::TemplateRecord {
                            name: name.clone(),
                            description: Some(format!("racer-{i}")),
                            task_json: "{}".into(),
                            created_at: 1,
                            updated_at: 1,
                            project: "default".into(),
                        };
                        let e = kiln_store::ComputeEnvRecord {
                            name: name.clone(),
                            description: Some(format!("racer-{i}")),
                            provider: "local".into(),
                            desired_nodes: 0,
                            config_json: "{}".into(),
                            created_at: 1,
                            updated_at: 1,
                            projects: vec!["default".into()],
                        };
                        (
                            store.create_template(&t).unwrap(),
                            store.create_compute_env(&e).unwrap(),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| w.0).count(), 1, "{won:?}");
        assert_eq!(won.iter().filter(|w| w.1).count(), 1, "{won:?}");
    }
    assert_eq!(one(&url, "SELECT count(*) FROM templates"), "5");
    assert_eq!(one(&url, "SELECT count(*) FROM compute_envs"), "5");
}
