//! End-to-end tests of the `slurm` provider against the real one-host Slurm that
//! `scripts/services/slurm.sh` starts (slurmctld and slurmd on this machine): a real
//! `kiln server` submits its agents with `sbatch`, follows them with `squeue`, and they register
//! back over loopback.
//!
//! These tests need that Slurm and fail loudly without it (`KILN_TEST_SLURM_CONF`); run them
//! with `scripts/with-services.sh cargo test -p kiln --test slurm_e2e` (`KILN_SERVICES=slurm`).
//! Each test uses an environment name of its own; a test cancels what it left in Slurm when it
//! ends, passed or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use support::{Cluster, ServerOptions, env_nodes, path, state, wait_until};

/// The Slurm the test services started: (`SLURM_CONF`, partition).
fn slurm() -> (String, String) {
    let conf = std::env::var("KILN_TEST_SLURM_CONF").unwrap_or_else(|_| {
        panic!(
            "KILN_TEST_SLURM_CONF is not set: run these tests through scripts/test.sh or \
             scripts/with-services.sh, which start a one-host Slurm (scripts/services/slurm.sh)"
        )
    });
    let partition = std::env::var("KILN_TEST_SLURM_PARTITION").unwrap_or_else(|_| "batch".into());
    (conf, partition)
}

/// Runs a Slurm tool against the test cluster; its standard output.
fn slurm_tool(args: &[&str]) -> String {
    let (conf, _) = slurm();
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This environment's Slurm jobs in the queue: (job id, state).
fn queued(env: &str) -> Vec<(String, String)> {
    slurm_tool(&["squeue", "--noheader", "--format=%i|%j|%T"])
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let (id, name, st) = (f.next()?, f.next()?, f.next()?);
            name.ends_with(&format!("-{env}"))
                .then(|| (id.to_string(), st.to_string()))
        })
        .collect()
}

/// Cancels what a test's environment left in Slurm, whether the test passed or not.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for (id, _) in queued(&self.0) {
            let _ = Command::new("scancel")
                .arg(&id)
                .env("SLURM_CONF", slurm().0)
                .status();
        }
    }
}

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}x{:x}", std::process::id(), nanos % 0x100000)
}

/// A server and a `slurm` environment with `fields` (YAML lines) in the test partition. Bind
/// the guard first, so that it cancels after the server is gone.
fn slurm_env(fields: &str) -> (Leftovers, Cluster, String) {
    let (conf, partition) = slurm();
    let c = Cluster::with_options(ServerOptions {
        env: vec![("SLURM_CONF".into(), conf)],
        ..ServerOptions::default()
    });
    let env = unique("hpc");
    let guard = Leftovers(env.clone());
    let file = c.spec(
        "env.yaml",
        &format!("name: {env}\nprovider: slurm\npartition: {partition}\n{fields}"),
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    (guard, c, env)
}

fn activities(c: &Cluster, env: &str) -> Vec<Value> {
    let (status, v) = c.request(
        "GET",
        &format!("/v1/compute-envs/{env}/activities?limit=100"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// What the allocations' agents wrote (`DATA_DIR/nodes/slurm-JOBID.out`), for a failure.
fn agent_logs(c: &Cluster) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(c.data().join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("slurm-") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.push_str(&format!("--- {}\n{text}", e.path().display()));
        }
    }
    out
}

fn attempts(c: &Cluster, id: &str, task: &str) -> Vec<Value> {
    c.instances(id, task)
        .iter()
        .flat_map(|i| i["attempts"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn a_backlog_brings_two_allocations_and_idleness_ends_them() {
    let (_guard, c, env) = slurm_env(
        "max_nodes: 2\nidle_timeout: 5s\ncpus_per_node: 1\nslots: 2\nmax_pending_allocations: 2\n",
    );
    assert!(queued(&env).is_empty(), "no work, no allocation");
    let spec = c.spec(
        "work.yaml",
        &format!(
            "name: many\ntasks:\n  w:\n    instances: 200\n    compute_env: {env}\n    \
             command: sleep 0.05\n"
        ),
    );
    let id = c.submit(&spec);
    wait_until(60, "two allocations in squeue", || queued(&env).len() == 2);
    let job = c.wait_job(&id, 300, |v| {
        assert!(queued(&env).len() <= 2, "above max_nodes");
        assert!(env_nodes(&c, &env).len() <= 2, "above max_nodes");
        state(v) == "SUCCEED"
    });
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 200);
    let used: BTreeSet<String> = c
        .instances(&id, "w")
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert!(!used.is_empty() && used.len() <= 2, "{used:?}");
    // Each node is `ENV-JOBID-0`, an agent of one allocation.
    for n in &used {
        assert!(
            n.starts_with(&format!("{env}-")) && n.ends_with("-0"),
            "{n}"
        );
    }
    let made: Vec<Value> = activities(&c, &env)
        .into_iter()
        .filter(|a| a["compute_node_activity_type"] == "CREATE_COMPUTE_NODE")
        .collect();
    assert_eq!(made.len(), 2, "{made:?}");
    for a in &made {
        assert!(a["instance_id"].as_str().is_some(), "the Slurm job id: {a}");
        assert!(a["cause"].as_str().unwrap().contains("RUNNABLE"), "{a}");
    }

    // Idle for 5 s: the agents leave, the allocations end, the environment is back to none.
    wait_until(90, "squeue to empty", || queued(&env).is_empty());
    wait_until(30, "no nodes", || env_nodes(&c, &env).is_empty());
    wait_until(30, "no allocations listed", || {
        c.json(&["env", "show", &env])["allocations"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    wait_until(30, "the removals to end", || {
        let acts = activities(&c, &env);
        let gone: Vec<&Value> = acts
            .iter()
            .filter(|a| a["compute_node_activity_type"] == "TERMINATE_COMPUTE_NODE")
            .collect();
        gone.len() >= 2 && gone.iter().all(|a| a["activity_state"] == "SUCCEED")
    });
}

#[test]
fn a_cancelled_allocation_s_instances_run_again_and_the_job_succeeds() {
    let (_guard, c, env) = slurm_env("max_nodes: 1\nidle_timeout: 5s\ncpus_per_node: 2\n");
    let spec = c.spec(
        "work.yaml",
        &format!(
            "name: lost\ntasks:\n  w:\n    instances: 4\n    retries: 0\n    \
             compute_env: {env}\n    command: sleep 4\n"
        ),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 120, |v| v["tasks"][0]["counts"]["RUNNING"] == 2);
    let first = queued(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    let (job, _) = &first[0];
    slurm_tool(&["scancel", job]);
    let done = c.wait_job(&id, 240, |v| {
        state(v) != "RUNNING" && state(v) != "RUNNABLE"
    });
    let all = attempts(&c, &id, "w");
    assert_eq!(
        state(&done),
        "SUCCEED",
        "{done}\n{all:#?}\n{}",
        agent_logs(&c)
    );
    assert!(
        all.iter().any(|a| a["reason"] == "NODE_LOST"),
        "the cancelled allocation's instances end NODE_LOST: {all:?}"
    );
    // A new allocation took over.
    let nodes: BTreeSet<&str> = all.iter().filter_map(|a| a["node"].as_str()).collect();
    assert!(nodes.len() >= 2, "{nodes:?}");
}

#[test]
fn a_short_time_limit_stops_leasing_in_time_and_the_allocation_is_replaced() {
    // 1 minute: the agent leaves 10 s before the end and takes only instances whose 15 s
    // timeout ends before it; the 12 instances of 5 s need two allocations.
    let (_guard, c, env) =
        slurm_env("max_nodes: 1\nidle_timeout: 5s\ntime_limit: 1m\ncpus_per_node: 1\nslots: 1\n");
    let spec = c.spec(
        "work.yaml",
        &format!(
            "name: timed\ntasks:\n  w:\n    instances: 12\n    retries: 0\n    \
             resource_retries: 0\n    timeout: 15s\n    compute_env: {env}\n    command: sleep 5\n"
        ),
    );
    let id = c.submit(&spec);
    let done = c.wait_job(&id, 400, |v| state(v) == "SUCCEED" || state(v) == "FAILED");
    let all = attempts(&c, &id, "w");
    assert_eq!(
        state(&done),
        "SUCCEED",
        "{done}\n{all:#?}\n{}",
        agent_logs(&c)
    );
    assert_eq!(
        all.len(),
        12,
        "every instance ran once, none was cut off: {all:?}"
    );
    let nodes: BTreeSet<&str> = all.iter().filter_map(|a| a["node"].as_str()).collect();
    assert!(
        nodes.len() >= 2,
        "one allocation replaced the other: {nodes:?}"
    );
}

#[test]
fn a_bad_partition_shows_slurm_s_error_in_env_show_and_why() {
    let (_guard, c, env) = slurm_env("max_nodes: 1\nsbatch_args: [\"--partition=nope\"]\n");
    let spec = c.spec(
        "work.yaml",
        &format!("name: stuck\ntasks:\n  w: {{command: 'true', compute_env: {env}}}\n"),
    );
    let id = c.submit(&spec);
    let slurm_says = "Invalid partition name specified";
    wait_until(60, "the refusal in env show", || {
        c.json(&["env", "show", &env])["status"]
            .as_str()
            .is_some_and(|s| s.contains(slurm_says))
    });
    let (code, out) = c.kiln(&["env", "show", &env]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "status:        sbatch refused: Batch job submission failed: {slurm_says}"
        )),
        "{out}"
    );
    assert!(out.contains("FAILED"), "the failed activity: {out}");
    let (code, out) = c.kiln(&["why", &id, "w", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("NO_CAPACITY {env}: sbatch refused")) && out.contains(slurm_says),
        "{out}"
    );
    let (code, _) = c.kiln(&["job", "terminate", &id]);
    assert_eq!(code, 0);
}
