//! Backlog scaling of a `local` compute environment with real agent processes: from no node to
//! `max_nodes` as work arrives, and back to none after `idle_timeout`, each step recorded as an
//! activity with its cause.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{Cluster, env_nodes, path, state, wait_until};

/// The environment's activities, newest first.
pub fn activities(c: &Cluster, env: &str) -> Vec<Value> {
    let (status, v) = c.request(
        "GET",
        &format!("/v1/compute-envs/{env}/activities?limit=100"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

fn of_type<'a>(acts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    acts.iter()
        .filter(|a| a["compute_node_activity_type"] == kind)
        .collect()
}

#[test]
fn a_local_environment_grows_with_its_backlog_and_shrinks_when_idle() {
    let c = Cluster::new();
    let file = c.spec(
        "env.yaml",
        "name: auto\nprovider: local\nmax_nodes: 2\nidle_timeout: 3s\nslots: 1\n",
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(env_nodes(&c, "auto").is_empty(), "no work, no node");
    assert!(activities(&c, "auto").is_empty());
    let (code, _, err) = c.run(&["env", "scale", "auto", "--desired", "3"]);
    assert_eq!(code, 2, "a scaling environment has no desired size: {err}");
    assert!(err.contains("min_nodes/max_nodes"), "{err}");

    let spec = c.spec(
        "work.yaml",
        "name: work\ntasks:\n  w:\n    instances: 30\n    compute_env: auto\n    command: sleep 0.2\n",
    );
    let id = c.submit(&spec);
    let mut most = 0;
    wait_until(120, "the job to succeed", || {
        most = most.max(env_nodes(&c, "auto").len());
        assert!(most <= 2, "above max_nodes: {most}");
        state(&c.wait_job(&id, 5, |_| true)) == "SUCCEED"
    });
    assert_eq!(most, 2, "the backlog asked for both nodes");
    let used: BTreeSet<String> = c
        .instances(&id, "w")
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(used, BTreeSet::from(["auto-1".into(), "auto-2".into()]));

    // Idle for 3 s: both go, and the environment is back to none.
    wait_until(60, "the idle nodes to go", || {
        env_nodes(&c, "auto").is_empty()
    });
    let acts = activities(&c, "auto");
    let made = of_type(&acts, "CREATE_COMPUTE_NODE");
    assert_eq!(made.len(), 2, "{acts:?}");
    for a in &made {
        assert_eq!(a["activity_state"], "SUCCEED", "{a}");
        assert!(
            a["cause"]
                .as_str()
                .unwrap()
                .contains("RUNNABLE instance(s) need"),
            "{a}"
        );
    }
    let names: BTreeSet<&str> = made
        .iter()
        .filter_map(|a| a["compute_node_id"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["auto-1", "auto-2"]));
    wait_until(30, "the removals to end", || {
        let acts = activities(&c, "auto");
        let gone = of_type(&acts, "TERMINATE_COMPUTE_NODE");
        gone.len() == 2 && gone.iter().all(|a| a["activity_state"] == "SUCCEED")
    });
    let acts = activities(&c, "auto");
    for a in of_type(&acts, "TERMINATE_COMPUTE_NODE") {
        assert!(a["cause"].as_str().unwrap().starts_with("idle for"), "{a}");
    }
    // `kiln env show` lists them.
    let (code, out) = c.kiln(&["env", "show", "auto"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 to 2, with the backlog"), "{out}");
    assert!(
        out.contains("TERMINATE_COMPUTE_NODE") && out.contains("CREATE_COMPUTE_NODE"),
        "{out}"
    );

    // New work brings a node back.
    let again = c.submit(&c.spec(
        "again.yaml",
        "name: again\ntasks:\n  w: {command: 'true', compute_env: auto}\n",
    ));
    c.wait_job(&again, 60, |v| state(v) == "SUCCEED");
}

#[test]
fn min_nodes_are_kept_warm() {
    let c = Cluster::new();
    let file = c.spec(
        "env.yaml",
        "name: warm\nprovider: local\nmin_nodes: 1\nmax_nodes: 3\nidle_timeout: 1s\n",
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until(60, "the warm node", || {
        env_nodes(&c, "warm")
            .iter()
            .any(|n| n["state"] == "RUNNING")
    });
    let acts = activities(&c, "warm");
    assert!(
        acts[0]["cause"]
            .as_str()
            .unwrap()
            .starts_with("min_nodes is 1"),
        "{acts:?}"
    );
    // Idle far past its timeout, it stays.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(env_nodes(&c, "warm").len(), 1);
    assert_eq!(activities(&c, "warm").len(), 1);
}
