//! The REST API against its OpenAPI document, on a live `kiln server`: the document passes
//! `openapi-spec-validator`, and `schemathesis run` (every phase: examples, coverage, fuzzing,
//! stateful; every check; a fixed seed and a small time budget) finds nothing, once with the
//! admin token over the REST API and once with the agent token over the agent protocol.
//!
//! The tools come from `scripts/services/python-tools.sh` (`KILN_TEST_PYTHON_TOOLS`); the test
//! fails when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Cluster;

/// The virtualenv's bin directory of the pinned Python tools.
fn tools() -> PathBuf {
    let dir = std::env::var_os("KILN_TEST_PYTHON_TOOLS").expect(
        "KILN_TEST_PYTHON_TOOLS is not set: run the tests through scripts/test.sh or \
         scripts/with-services.sh (scripts/services/python-tools.sh installs the tools)",
    );
    PathBuf::from(dir)
}

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

fn token(c: &Cluster, name: &str) -> String {
    std::fs::read_to_string(c.data().join(name))
        .unwrap()
        .trim()
        .to_string()
}

/// Processes started by the server's `local` compute environments (agents whose token file is
/// in this server's data directory): they outlive a killed server, so the test ends them.
fn kill_local_agents(c: &Cluster) {
    let marker = c.data().join("agent-token");
    let marker = marker.to_string_lossy();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "agent") && args.iter().any(|a| *a == *marker) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Ends the local agents when dropped, also when an assertion failed.
struct Reaper<'a>(&'a Cluster);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        kill_local_agents(self.0);
    }
}

/// Runs schemathesis with `token` over the operations `filter` selects.
fn schemathesis(c: &Cluster, spec: &Path, token: &str, filter: &[&str], budget: &str) {
    let out = Command::new(tools().join("schemathesis"))
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", contract_dir())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .arg("run")
        .arg(spec)
        .args(["--url", &c.url()])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--checks", "all"])
        .args(["--seed", "20260101", "--max-time", budget])
        .args(["--max-examples", "25", "--request-timeout", "30"])
        // An agent's lease request waits up to the lease wait (20 s) for work before it answers.
        .args(["--max-response-time", "25"])
        .args(["--workers", "1", "--generation-database", "none"])
        .args(filter)
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("No issues found") || stdout.contains(" passed"),
        "schemathesis ran nothing:\n{stdout}"
    );
}

#[test]
fn the_api_keeps_its_openapi_contract() {
    let c = Cluster::new();
    let _reaper = Reaper(&c);
    let (status, doc) = c.request("GET", "/v1/openapi.json", None);
    assert_eq!(status, 200);
    let spec = c.dir.path().join("openapi.json");
    std::fs::write(&spec, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let out = Command::new(tools().join("openapi-spec-validator"))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let admin = token(&c, "admin-token");
    schemathesis(
        &c,
        &spec,
        &admin,
        &["--exclude-path-regex", "^/v1/agent/"],
        "60",
    );
    // Read after the admin run, which may have rotated it.
    let join = token(&c, "agent-token");
    schemathesis(
        &c,
        &spec,
        &join,
        &["--include-path-regex", "^/v1/agent/register$"],
        "15",
    );
    // The rest of the agent protocol takes a node's own credential.
    let client = reqwest::blocking::Client::new();
    let registered: serde_json::Value = client
        .post(format!("{}/v1/agent/register", c.url()))
        .bearer_auth(&join)
        .json(
            &serde_json::json!({"name": "contract-node", "compute_env": null, "slots": 1,
                                  "cpus": 1.0, "memory": 1u64 << 30, "version": "test"}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    let credential = registered["credential"].as_str().unwrap();
    schemathesis(
        &c,
        &spec,
        credential,
        &[
            "--include-path-regex",
            "^/v1/agent/(heartbeat|lease|report|logs)$",
        ],
        "30",
    );
}
