//! Per-node credentials with real `kiln server` and `kiln agent` processes: `kiln nodes revoke`
//! cuts a running agent off (it exits with a clear error, and what it ran runs again on
//! another node), and `kiln server rotate-join-token` replaces the join token without
//! disturbing the nodes that registered with the old one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Cluster, Db, Proc, kiln_bin, state, wait_until};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(super::Db::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name(super::Db::Postgres)
                }
            }
        )*
    };
}

on_both_backends!(
    a_revoked_agent_stops_and_its_work_runs_elsewhere,
    a_rotated_join_token_leaves_registered_nodes_alone,
);

/// An agent of the `pool` environment whose stderr the test reads.
fn agent(c: &Cluster, name: &str, token_file: &Path) -> Proc {
    let mut cmd = Command::new(kiln_bin());
    support::scrub_aws(&mut cmd);
    let child = cmd
        .args(["agent", "--server", &c.url(), "--name", name])
        .args(["--compute-env", "pool", "--slots", "1"])
        .arg("--token-file")
        .arg(token_file)
        .arg("--work-dir")
        .arg(c.dir.path().join(name))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Waits (with a deadline) for the agent to exit; its exit code and what it wrote to stderr.
fn exited(p: &mut Proc, secs: u64) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = p.0.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (status.code().unwrap_or(-1), err)
}

fn node_state(c: &Cluster, name: &str) -> Option<String> {
    c.json(&["nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .map(|n| state(n).to_string())
}

fn a_revoked_agent_stops_and_its_work_runs_elsewhere(db: Db) {
    let mut c = Cluster::on(db);
    let token = c.data().join("agent-token");
    let mut a = agent(&c, "a", &token);
    let mut b = agent(&c, "b", &token);
    wait_until(20, "both agents registered", || {
        node_state(&c, "a").as_deref() == Some("RUNNING")
            && node_state(&c, "b").as_deref() == Some("RUNNING")
    });
    // One instance each (one slot per node); long enough to be running when b is revoked.
    let spec = c.spec(
        "j.yaml",
        "name: j\ntasks:\n  t:\n    compute_env: pool\n    instances: 2\n    command: sleep 2\n",
    );
    let id = c.submit(&spec);
    wait_until(20, "an instance running on b", || {
        c.instances(&id, "t")
            .iter()
            .any(|i| i["node"] == "b" && state(i) == "RUNNING")
    });

    let revoked = c.json(&["nodes", "revoke", "b"]);
    assert_eq!(revoked["name"], "b");
    // b is refused at its next call and stops, saying why.
    let (code, err) = exited(&mut b, 20);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("no longer accepts this node's credential"),
        "{err}"
    );
    assert_eq!(node_state(&c, "b"), None);
    // What b held ran again, on a.
    let job = c.wait_job(&id, 60, |j| state(j) == "SUCCEED");
    assert_eq!(state(&job), "SUCCEED", "{job}");
    let instances = c.instances(&id, "t");
    let lost: Vec<_> = instances
        .iter()
        .flat_map(|i| i["attempts"].as_array().unwrap().clone())
        .filter(|a| a["node"] == "b")
        .collect();
    assert!(!lost.is_empty(), "{instances:?}");
    assert!(lost.iter().all(|a| a["reason"] == "NODE_LOST"), "{lost:?}");
    assert!(instances.iter().all(|i| i["node"] == "a"), "{instances:?}");
    // Revoking it again, or a node that never was: not found, exit 2.
    let (code, _, err) = c.run(&["nodes", "revoke", "b"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no node `b`"), "{err}");
    let (code, _, err) = c.run(&["nodes", "revoke", "not a name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a node name"), "{err}");
    assert!(a.0.try_wait().unwrap().is_none(), "a was not disturbed");
    c.kill_server();
}

fn a_rotated_join_token_leaves_registered_nodes_alone(db: Db) {
    let mut c = Cluster::on(db);
    let token_file = c.data().join("agent-token");
    let old = c.dir.path().join("old-token");
    std::fs::copy(&token_file, &old).unwrap();
    let mut a = agent(&c, "a", &token_file);
    wait_until(20, "a registered", || {
        node_state(&c, "a").as_deref() == Some("RUNNING")
    });

    let rotated = c.json(&["server", "rotate-join-token"]);
    let token = rotated["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    assert_ne!(std::fs::read_to_string(&old).unwrap().trim(), token);

    // The old token registers nothing.
    let mut late = agent(&c, "late", &old);
    let (code, err) = exited(&mut late, 20);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("refused the join token"), "{err}");
    // a goes on running work.
    let spec = c.spec(
        "j.yaml",
        "name: j\ntasks:\n  t:\n    compute_env: pool\n    command: echo hi\n",
    );
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 30, |j| state(j) == "SUCCEED");
    assert_eq!(state(&job), "SUCCEED", "{job}");
    assert!(a.0.try_wait().unwrap().is_none());
    // The new token registers, also after a restart of the server (it keeps the rotated one).
    c.kill_server();
    c.start_server();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let _d = agent(&c, "d", &token_file);
    wait_until(20, "d registered with the new token", || {
        node_state(&c, "d").as_deref() == Some("RUNNING")
    });
    // a came back to the restarted server with its own credential.
    wait_until(20, "a back", || {
        node_state(&c, "a").as_deref() == Some("RUNNING")
    });
    c.kill_server();
}
