#![allow(clippy::unwrap_used, clippy::expect_used)]

use kiln_store::{SqliteStore, Store, conformance};

#[test]
fn in_memory_sqlite_conforms() {
    let mut store = SqliteStore::in_memory().unwrap();
    conformance::run(&mut store);
}

#[test]
fn file_sqlite_conforms_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/kiln.db");
    let mut store = SqliteStore::open(&path).unwrap();
    conformance::run(&mut store);
    drop(store);
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(store.load_job("job-conform1").unwrap().is_some());
}
