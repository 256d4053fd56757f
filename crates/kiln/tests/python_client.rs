//! The Python client (`clients/python`): its generated part is what `regenerate.sh` makes from
//! this build's OpenAPI document (a stale client fails here), it installs with pip, and its
//! tests pass against a live `kiln server`.
//!
//! The tools come from `scripts/services/python-tools.sh` (`KILN_TEST_PYTHON_TOOLS`); the test
//! fails when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Cluster, kiln_bin};

fn tools() -> PathBuf {
    PathBuf::from(std::env::var_os("KILN_TEST_PYTHON_TOOLS").expect(
        "KILN_TEST_PYTHON_TOOLS is not set: run the tests through scripts/test.sh or \
         scripts/with-services.sh (scripts/services/python-tools.sh installs the tools)",
    ))
}

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python")
}

/// Every file under `dir` (relative path → bytes), caches left out.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_generated_client_is_current() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("kiln_client");
    run(Command::new(client_dir().join("regenerate.sh"))
        .arg(&fresh)
        .env("KILN", kiln_bin())
        .env("KILN_TEST_PYTHON_TOOLS", tools()));
    let (want, have) = (tree(&fresh), tree(&client_dir().join("kiln_client")));
    let differ: Vec<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|k| want.get(*k) != have.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "clients/python/kiln_client is stale (run clients/python/regenerate.sh): {differ:?}"
    );
}

#[test]
fn the_client_installs_and_works_against_a_live_server() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    // A copy, so that the build leaves nothing in the repository.
    let src = tmp.path().join("src");
    run(Command::new("cp").arg("-r").arg(client_dir()).arg(&src));
    run(Command::new(tools().join("python"))
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(["--no-deps", "--no-build-isolation", "--target"])
        .arg(&site)
        .arg(&src));
    let c = Cluster::new();
    let token = std::fs::read_to_string(c.data().join("admin-token")).unwrap();
    let out = run(Command::new(tools().join("python"))
        .arg(client_dir().join("tests/test_live.py"))
        .env("PYTHONPATH", &site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("KILN_URL", c.url())
        .env("KILN_TOKEN", token.trim())
        .current_dir(tmp.path()));
    assert!(out.contains("4 passed, 0 failed"), "{out}");
}
