//! End-to-end tests of the `docker` compute-environment provider on the real Docker Engine: a
//! real `kiln server` (listening on 0.0.0.0, so node containers reach it through
//! `host.docker.internal`) starts node containers of the image `kiln-test/busybox:1`, which run
//! the server's own kiln binary, bind-mounted.
//!
//! These tests need a Docker Engine and fail loudly without one; the image is built by
//! `scripts/test-images.sh` if it is missing. Every test uses its own environment and network
//! names and checks that nothing labelled as Kiln's of its own is left behind; a test that fails
//! half-way removes its containers and network when it unwinds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use support::TEST_IMAGE as IMAGE;
use support::{Cluster, ServerOptions, env_nodes, path, state, wait_until};

/// Runs the docker CLI; returns (success, stdout, stderr).
fn docker(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("these tests need the docker CLI and a Docker Engine: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A name no other test (or test run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}x{n}x{:x}", std::process::id(), nanos % 0x10000)
}

/// Names of the containers labelled as nodes of `env` (running or not).
fn node_containers(env: &str, running_only: bool) -> BTreeSet<String> {
    let filter = format!("label=kiln.env={env}");
    let mut args = vec![
        "ps",
        "--filter",
        "label=kiln.managed=true",
        "--filter",
        &filter,
    ];
    args.extend(["--format", "{{.Names}}"]);
    if !running_only {
        args.push("-a");
    }
    let (ok, out, err) = docker(&args);
    assert!(ok, "docker ps: {err}");
    out.lines().map(str::to_string).collect()
}

fn network_exists(name: &str) -> bool {
    let filter = format!("name=^{name}$");
    let (ok, out, err) = docker(&["network", "ls", "-q", "--filter", &filter]);
    assert!(ok, "docker network ls: {err}");
    !out.trim().is_empty()
}

fn inspect(container: &str) -> Value {
    let (ok, out, err) = docker(&["inspect", container]);
    assert!(ok, "docker inspect {container}: {err}");
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// Removes what a test's environment left in Docker, whether the test passed or not.
struct Leftovers {
    env: String,
    network: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let names: Vec<String> = node_containers(&self.env, false).into_iter().collect();
        if !names.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(names.iter().map(String::as_str));
            docker(&args);
        }
        if network_exists(&self.network) {
            docker(&["network", "rm", &self.network]);
        }
    }
}

/// A server node containers can reach, and a `docker` environment of `slots`-slot nodes on a
/// network of its own, created with no nodes. Bind the guard first, so that it is dropped
/// after the server (which would otherwise make new containers as the guard removes them).
fn docker_env(slots: u32) -> (Leftovers, Cluster, String) {
    docker_env_sized(slots, "desired_nodes: 0")
}

/// [`docker_env`] with the size given as YAML (`desired_nodes: 0`, or backlog scaling fields).
fn docker_env_sized(slots: u32, size: &str) -> (Leftovers, Cluster, String) {
    docker_env_with(slots, size, ServerOptions::default())
}

/// [`docker_env_sized`] with a server started with `opts` (its host is always 0.0.0.0).
fn docker_env_with(slots: u32, size: &str, opts: ServerOptions) -> (Leftovers, Cluster, String) {
    support::test_image();
    let c = Cluster::with_options(ServerOptions {
        host: "0.0.0.0".into(),
        ..opts
    });
    let env = unique("dk");
    let network = format!("kiln-test-{env}");
    let guard = Leftovers {
        env: env.clone(),
        network: network.clone(),
    };
    let file = c.spec(
        "env.yaml",
        &format!(
            "name: {env}\nprovider: docker\nimage: {IMAGE}\nnetwork: {network}\n\
             instance_type: S1.SMALL1\nslots: {slots}\n{size}\n"
        ),
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    (guard, c, env)
}

fn scale(c: &Cluster, env: &str, n: u32) {
    let (code, out, err) = c.run(&["env", "scale", env, "--desired", &n.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
}

fn running_nodes(c: &Cluster, env: &str) -> BTreeSet<String> {
    env_nodes(c, env)
        .iter()
        .filter(|n| n["state"] == "RUNNING")
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// Deletes the environment and waits until its containers and network are gone and none of
/// its nodes runs.
fn delete_and_check_clean(c: &Cluster, env: &str, network: &str) {
    let (code, out, err) = c.run(&["env", "delete", env]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until(60, "the environment's node containers to go", || {
        node_containers(env, false).is_empty()
    });
    wait_until(30, "the environment's network to go", || {
        !network_exists(network)
    });
    // A drained agent may register once more as it exits; with its container gone, such a
    // node can only end ABNORMAL.
    wait_until(30, "its nodes to stop", || running_nodes(c, env).is_empty());
}

#[test]
fn a_docker_environment_scales_from_zero_to_three_to_one_and_spreads_work() {
    let (guard, c, env) = docker_env(2);
    assert!(
        node_containers(&env, false).is_empty(),
        "no nodes asked yet"
    );

    scale(&c, &env, 3);
    let want: BTreeSet<String> = (1..=3).map(|n| format!("{env}-{n}")).collect();
    wait_until(90, "three running nodes", || {
        running_nodes(&c, &env) == want
    });
    let containers: BTreeSet<String> = want.iter().map(|n| format!("kiln-node-{n}")).collect();
    assert_eq!(node_containers(&env, true), containers);

    // A node container: the environment's image, network and instance type; the kiln binary
    // and the token mounted read-only, the token on no command line and in no variable.
    let first = inspect(&format!("kiln-node-{env}-1"));
    assert_eq!(first["Config"]["Image"], IMAGE);
    assert_eq!(first["HostConfig"]["NetworkMode"], guard.network.as_str());
    assert_eq!(first["HostConfig"]["Memory"], 1u64 << 30);
    assert_eq!(first["HostConfig"]["NanoCpus"], 1_000_000_000u64);
    let labels = &first["Config"]["Labels"];
    assert_eq!(labels["kiln.managed"], "true");
    assert_eq!(labels["kiln.role"], "node");
    assert_eq!(labels["kiln.env"], env.as_str());
    let mounts = first["Mounts"].as_array().unwrap();
    let kiln = mounts
        .iter()
        .find(|m| m["Destination"] == "/usr/local/bin/kiln")
        .expect("the kiln binary is mounted");
    assert_eq!(kiln["RW"], false);
    let token = std::fs::read_to_string(c.data().join("agent-token")).unwrap();
    assert!(
        !first.to_string().contains(token.trim()),
        "the agent token shows in docker inspect"
    );
    let node = env_nodes(&c, &env)
        .into_iter()
        .find(|n| n["name"] == format!("{env}-1").as_str())
        .unwrap();
    assert_eq!(node["memory"], 1u64 << 30, "{node}");
    assert_eq!(node["slots"], 2, "{node}");

    let spec = c.spec(
        "spread.yaml",
        &format!(
            "name: spread\ntasks:\n  work:\n    instances: 12\n    compute_env: {env}\n    \
             command: sleep 0.3; echo $BATCH_NODE_ID\n"
        ),
    );
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 120, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 12);
    let used: BTreeSet<String> = c
        .instances(&id, "work")
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert!(used.len() >= 2, "the work stayed on {used:?}");
    assert!(used.is_subset(&want), "{used:?}");
    // What an instance printed is its node's id.
    let (code, out) = c.kiln(&["logs", &id, "work", "0"]);
    assert_eq!(code, 0);
    let printed = out.trim().strip_prefix("node-").unwrap_or_default();
    assert!(want.contains(printed), "{out}");

    // Down to one: the surplus nodes drain and their containers go.
    scale(&c, &env, 1);
    wait_until(60, "one node container", || {
        node_containers(&env, false) == BTreeSet::from([format!("kiln-node-{env}-1")])
    });
    // The lowest-numbered node stays.
    let one = BTreeSet::from([format!("{env}-1")]);
    wait_until(30, "one running node", || running_nodes(&c, &env) == one);

    delete_and_check_clean(&c, &env, &guard.network);
}

#[test]
fn a_killed_node_container_s_instances_run_again_and_the_job_succeeds() {
    let (guard, c, env) = docker_env(2);
    scale(&c, &env, 2);
    let want: BTreeSet<String> = (1..=2).map(|n| format!("{env}-{n}")).collect();
    wait_until(90, "two running nodes", || running_nodes(&c, &env) == want);

    let spec = c.spec(
        "lost.yaml",
        &format!(
            "name: lost\ntasks:\n  work:\n    instances: 4\n    retries: 0\n    \
             compute_env: {env}\n    command: sleep 6\n"
        ),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 60, |v| v["tasks"][0]["counts"]["RUNNING"] == 4);
    let victim = format!("{env}-1");
    let held: BTreeSet<u64> = c
        .instances(&id, "work")
        .iter()
        .filter(|i| i["node"] == victim.as_str() && i["state"] == "RUNNING")
        .map(|i| i["index"].as_u64().unwrap())
        .collect();
    assert!(!held.is_empty(), "{victim} runs nothing");
    let (ok, _, err) = docker(&["kill", &format!("kiln-node-{victim}")]);
    assert!(ok, "docker kill: {err}");

    let job = c.wait_job(&id, 120, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 4);
    for inst in c.instances(&id, "work") {
        let attempts = inst["attempts"].as_array().unwrap();
        let index = inst["index"].as_u64().unwrap();
        if held.contains(&index) {
            assert_eq!(attempts[0]["reason"], "NODE_LOST", "{inst}");
            assert_eq!(attempts[0]["node"], victim.as_str(), "{inst}");
        }
        assert_eq!(attempts.last().unwrap()["state"], "SUCCEED", "{inst}");
    }
    // The dead container was replaced under its name, and its node is back.
    wait_until(60, "the replaced node to run", || {
        running_nodes(&c, &env) == want && node_containers(&env, true).len() == 2
    });

    delete_and_check_clean(&c, &env, &guard.network);
}

/// `POST /v1/compute-envs` with `body` is refused: 400, naming `field`, its message saying
/// `says`.
fn refused(c: &Cluster, body: Value, field: &str, says: &str) {
    let (status, answer) = c.request("POST", "/v1/compute-envs", Some(body));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], field, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{answer}");
}

#[test]
fn docker_environments_are_checked_before_anything_starts() {
    support::test_image();
    let c = Cluster::with_options(ServerOptions {
        host: "0.0.0.0".into(),
        ..ServerOptions::default()
    });
    let env = unique("bad");
    refused(
        &c,
        json!({"name": env, "provider": "docker"}),
        "image",
        "image",
    );
    refused(
        &c,
        json!({"name": env, "provider": "docker", "image": "kiln-test/none:0"}),
        "image",
        "no image",
    );
    refused(
        &c,
        json!({"name": env, "provider": "docker", "image": IMAGE, "instance_type": "S1.HUGE"}),
        "instance_type",
        "",
    );
    refused(
        &c,
        json!({"name": env, "provider": "local", "image": IMAGE}),
        "image",
        "",
    );

    // Nothing of it was stored, and the CLI says no with exit 2.
    let (status, body) = c.request("GET", &format!("/v1/compute-envs/{env}"), None);
    assert_eq!(status, 404, "{body}");
    let file = c.spec("no-image.yaml", &format!("name: {env}\nprovider: docker\n"));
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("image"), "{err}");

    // A server that listens on loopback only cannot be reached from a container.
    let local = Cluster::new();
    refused(
        &local,
        json!({"name": env, "provider": "docker", "image": IMAGE}),
        "provider",
        "--listen 0.0.0.0",
    );
    // A server whose Docker Engine does not answer says so.
    let gone = c.dir.path().join("no-docker.sock");
    let adrift = Cluster::with_options(ServerOptions {
        host: "0.0.0.0".into(),
        env: vec![("DOCKER_HOST".into(), format!("unix://{}", gone.display()))],
        ..ServerOptions::default()
    });
    refused(
        &adrift,
        json!({"name": env, "provider": "docker", "image": IMAGE}),
        "provider",
        "needs a Docker Engine",
    );
    assert!(node_containers(&env, false).is_empty());
}

#[test]
fn a_restarted_server_keeps_its_node_containers() {
    let (guard, mut c, env) = docker_env(1);
    scale(&c, &env, 1);
    let one = BTreeSet::from([format!("{env}-1")]);
    wait_until(90, "a running node", || running_nodes(&c, &env) == one);
    let container = format!("kiln-node-{env}-1");
    let before = inspect(&container)["Id"].clone();

    c.kill_server();
    c.start_server();
    // The node registers again, and the container it runs in is the same one.
    wait_until(60, "the node back", || running_nodes(&c, &env) == one);
    let spec = c.spec(
        "after.yaml",
        &format!("name: after\ntasks:\n  t:\n    compute_env: {env}\n    command: \"true\"\n"),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    assert_eq!(inspect(&container)["Id"], before, "the node was replaced");
    assert_eq!(node_containers(&env, false), BTreeSet::from([container]));

    delete_and_check_clean(&c, &env, &guard.network);
}

/// A task with a Docker image on a `docker` environment runs as a container beside its node
/// container (the node's agent uses the engine's socket), and is removed after.
#[test]
fn a_node_container_runs_containerised_tasks_beside_itself() {
    let (guard, c, env) = docker_env(2);
    scale(&c, &env, 1);
    let one = BTreeSet::from([format!("{env}-1")]);
    wait_until(90, "one running node", || running_nodes(&c, &env) == one);
    let spec = c.spec(
        "boxed.yaml",
        &format!(
            "name: boxed\ntasks:\n  t:\n    image: {IMAGE}\n    compute_env: {env}\n    \
             resources: {{cpus: 0.5, memory: 64MiB}}\n    \
             command: echo \"$(hostname) $BATCH_NODE_ID $BATCH_WORK_DIR\"\n"
        ),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 120, |v| state(v) == "SUCCEED");
    let (code, out) = c.kiln(&["logs", &id, "t", "0"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("t-0 node-{env}-1 /kiln/work"));
    let (ok, left, err) = docker(&["ps", "-aq", "--filter", &format!("label=kiln.job={id}")]);
    assert!(ok && left.trim().is_empty(), "{left}{err}");
    delete_and_check_clean(&c, &env, &guard.network);
}

/// A node's agent pulls a private image with the `docker-registry` profile the server hands
/// it over the agent protocol (the node container holds no login of its own), and a wrong
/// password ends the instance `IMAGE_PULL_FAILED … unauthorized`.
#[test]
fn a_node_container_pulls_private_images_with_the_registry_profile_it_is_given() {
    let image = support::private_image(&unique("node-private"));
    let refused = support::private_image(&unique("node-refused"));
    let (registry, user, password) = support::test_registry();
    let (guard, c, env) = docker_env(2);
    for (name, pw) in [("reg", password.clone()), ("stale", format!("x{password}"))] {
        let profile = json!({"name": name, "kind": "docker-registry", "server": registry,
                             "username": user, "password": pw});
        let file = c.spec(&format!("{name}.json"), &profile.to_string());
        let (code, out, err) = c.run(&["storage", "create", path(&file)]);
        assert_eq!(code, 0, "{out}{err}");
    }
    scale(&c, &env, 1);
    let one = BTreeSet::from([format!("{env}-1")]);
    wait_until(90, "one running node", || running_nodes(&c, &env) == one);
    let spec = c.spec(
        "private.yaml",
        &format!(
            "name: private\ntasks:\n  t:\n    image: '{image}'\n    compute_env: {env}\n    \
             command: echo \"pulled on $BATCH_NODE_ID\"\n  \
             refused:\n    image: '{refused}'\n    compute_env: {env}\n    \
             registry_profile: stale\n    command: 'true'\n"
        ),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 120, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    let (code, out) = c.kiln(&["logs", &id, "t", "0"]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("pulled on node-{env}-1").as_str())
    );
    let failed = c.instances(&id, "refused");
    assert_eq!(
        failed[0]["reason"],
        format!("IMAGE_PULL_FAILED {refused}: unauthorized"),
        "{failed:?}"
    );
    // The node container was never given the password.
    let node = inspect(&format!("kiln-node-{env}-1"));
    assert!(
        !node.to_string().contains(&password),
        "docker inspect shows the password"
    );
    delete_and_check_clean(&c, &env, &guard.network);
}

#[test]
fn a_docker_environment_grows_with_its_backlog_and_shrinks_back_to_none() {
    let (guard, c, env) = docker_env_sized(1, "max_nodes: 2\nidle_timeout: 3s");
    assert!(node_containers(&env, false).is_empty(), "no work, no node");
    let spec = c.spec(
        "backlog.yaml",
        &format!(
            "name: backlog\ntasks:\n  work:\n    instances: 16\n    compute_env: {env}\n    \
             command: sleep 0.5\n"
        ),
    );
    let id = c.submit(&spec);
    let want: BTreeSet<String> = (1..=2).map(|n| format!("{env}-{n}")).collect();
    wait_until(120, "two running nodes", || running_nodes(&c, &env) == want);
    let job = c.wait_job(&id, 180, |v| {
        assert!(node_containers(&env, false).len() <= 2, "above max_nodes");
        state(v) == "SUCCEED"
    });
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 16);
    // Idle for 3 s: both drain, and their containers go.
    wait_until(90, "the node containers to go", || {
        node_containers(&env, false).is_empty()
    });
    wait_until(30, "no running node", || running_nodes(&c, &env).is_empty());
    let (status, acts) = c.request("GET", &format!("/v1/compute-envs/{env}/activities"), None);
    assert_eq!(status, 200);
    let kinds: Vec<&str> = acts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["compute_node_activity_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "CREATE_COMPUTE_NODE")
            .count(),
        2,
        "{acts}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "TERMINATE_COMPUTE_NODE")
            .count(),
        2,
        "{acts}"
    );
    delete_and_check_clean(&c, &env, &guard.network);
}

#[test]
fn a_server_started_with_a_relative_data_dir_runs_work_on_docker_nodes() {
    // Docker bind-mounts the nodes' directories under --data-dir: a relative path given by the
    // user must reach it absolute.
    let (_guard, c, env) = docker_env_with(
        1,
        "desired_nodes: 1",
        ServerOptions {
            relative_data_dir: true,
            ..ServerOptions::default()
        },
    );
    let spec = c.spec(
        "rel.yaml",
        &format!("name: rel\ntasks:\n  t:\n    compute_env: {env}\n    command: echo hi\n"),
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 120, |v| state(v) == "SUCCEED");
    assert!(c.data().join("admin-token").exists());
}

#[test]
fn an_environment_whose_nodes_cannot_be_created_says_why() {
    support::test_image();
    let c = Cluster::with_options(ServerOptions {
        host: "0.0.0.0".into(),
        ..ServerOptions::default()
    });
    let env = unique("dkbad");
    let network = format!("kiln-test-{env}");
    let _guard = Leftovers {
        env: env.clone(),
        network: network.clone(),
    };
    // The image exists when the environment is made (that is checked), then goes.
    let image = format!("kiln-test/no-such-image-{env}:1");
    let (ok, _, err) = docker(&["tag", IMAGE, &image]);
    assert!(ok, "docker tag: {err}");
    let file = c.spec(
        "env.yaml",
        &format!(
            "name: {env}\nprovider: docker\nimage: {image}\n\
             network: {network}\ninstance_type: S1.SMALL1\nslots: 1\ndesired_nodes: 0\n"
        ),
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    docker(&["rmi", &image]);
    assert_eq!(code, 0, "{out}{err}");
    scale(&c, &env, 1);
    let mut shown = Value::Null;
    wait_until(60, "the environment to be CREATION_FAILED", || {
        shown = c.json(&["env", "show", &env]);
        shown["state"] == "CREATION_FAILED" && shown["last_error"]["message"].is_string()
    });
    let error = shown["last_error"]["message"].as_str().unwrap().to_string();
    assert!(shown["creation_failures"].as_u64().unwrap() >= 1, "{shown}");
    assert!(shown["last_error"]["at"].is_string(), "{shown}");
    let failed = shown["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "CREATION_FAILED")
        .unwrap_or_else(|| panic!("no CREATION_FAILED node: {shown}"));
    assert_eq!(failed["error"], error.as_str(), "{shown}");
    let (code, table) = c.kiln(&["env", "show", &env]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("CREATION_FAILED"), "{table}");
    assert!(table.contains(&error), "{table}");

    let spec = c.spec(
        "wait.yaml",
        &format!("name: wait\ntasks:\n  t:\n    compute_env: {env}\n    command: echo hi\n"),
    );
    let id = c.submit(&spec);
    let want = format!("NO_CAPACITY {env}: node creation failing: ");
    let mut why = String::new();
    wait_until(30, "kiln why to name the error", || {
        why = c.kiln(&["why", &id, "t", "0"]).1;
        why.contains(&want)
    });
    assert!(why.contains("no-such-image"), "{why}");
    c.run(&["env", "delete", &env]);
}

/// The split → 10 shards → merge job with `s3://` inputs, outputs and stdout, its tasks naming
/// the storage profile `lab`, for the compute environment `env` (`{ENV}`) and under `prefix`.
fn shards_job(env: &str, prefix: &str) -> String {
    let job = r#"
name: shards
dag: |
  split -> sum -> merge
tasks:
  split:
    compute_env: {ENV}
    storage_profile: lab
    command: mkdir -p out && awk '{ print > ("out/shard." ((NR - 1) % 10)) }' in/numbers.txt && echo split
    inputs: [{source: "s3://data/in/", target: in/}]
    outputs: [{source: out/, target: "s3://data/{P}/shards/"}]
    stdout: "s3://data/{P}/logs/"
  sum:
    compute_env: {ENV}
    storage_profile: lab
    instances: 10
    command: mkdir -p out && awk '{ s += $1 } END { print s }' in/shard.$BATCH_TASK_INSTANCE_INDEX > out/sum.$BATCH_TASK_INSTANCE_INDEX && echo summed $BATCH_TASK_INSTANCE_INDEX
    inputs: [{source: "s3://data/{P}/shards/", target: in/}]
    outputs: [{source: out/, target: "s3://data/{P}/sums/"}]
    stdout: "s3://data/{P}/logs/"
  merge:
    compute_env: {ENV}
    storage_profile: lab
    command: cat sums/* | awk '{ s += $1 } END { print s }' > total && echo merged
    inputs: [{source: "s3://data/{P}/sums/", target: sums/}]
    outputs: [{source: total, target: "s3://data/{P}/result/total"}]
    stdout: "s3://data/{P}/logs/"
"#;
    job.replace("{ENV}", env).replace("{P}", prefix)
}

/// An object of the bucket, read with a plain S3 client of the test server.
fn read_object(
    rt: &tokio::runtime::Runtime,
    s3: &kiln_storage::testing::TestServer,
    url: &str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object");
    let client = kiln_storage::Storage::new(s3.config());
    rt.block_on(client.download(&kiln_storage::Location::parse(url).unwrap(), &file))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    std::fs::read_to_string(file).unwrap()
}

/// The merged result and every log of the job `id` under `prefix`.
fn check_shards_result(
    rt: &tokio::runtime::Runtime,
    s3: &kiln_storage::testing::TestServer,
    prefix: &str,
    id: &str,
) {
    let total = read_object(rt, s3, &format!("s3://data/{prefix}/result/total"));
    assert_eq!(total.trim(), "5050", "{prefix}");
    let log = |task: &str, i: u32| {
        read_object(
            rt,
            s3,
            &format!("s3://data/{prefix}/logs/stdout.{id}.{task}.{i}.log"),
        )
    };
    assert_eq!(log("split", 0).trim(), "split");
    for i in 0..10 {
        assert_eq!(log("sum", i).trim(), format!("summed {i}"));
    }
    assert_eq!(log("merge", 0).trim(), "merged");
}

/// Every file under `dir` but the encrypted store and the profiles file holds no `secret`.
fn no_secret_in_files(dir: &std::path::Path, secret: &str, except: &std::path::Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && p != except
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("kiln.db"))
                && let Ok(bytes) = std::fs::read(&p)
            {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(secret),
                    "the secret key is in {}",
                    p.display()
                );
            }
        }
    }
}

/// The seed's scenario on every kind of node, with the storage endpoint and keys only in a
/// storage profile of the server: a `kiln server` started with a relative `--data-dir` and no
/// `AWS_*` settings, a `docker` environment of 2 nodes, and the split → 10 shards → merge job
/// reading and writing a real S3-compatible server (on the environment network's gateway, so
/// nodes and this host both reach it). The same job then runs on a `static` agent, on a
/// `local` environment's node and through `kiln run --storage-profiles`. The merged result and the logs are read back from the bucket;
/// the secret key is in no node container's `docker inspect` and in no file but the store.
#[test]
fn the_sharded_job_maps_s3_through_a_storage_profile_on_every_kind_of_node() {
    use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
    let (guard, mut c, env) = docker_env_with(
        2,
        "desired_nodes: 2",
        ServerOptions {
            relative_data_dir: true,
            ..ServerOptions::default()
        },
    );
    let want: BTreeSet<String> = (1..=2).map(|n| format!("{env}-{n}")).collect();
    wait_until(120, "two running nodes", || running_nodes(&c, &env) == want);

    // The S3-compatible server listens on the gateway of the environment's network: an
    // address of this host that its node containers reach.
    let (ok, gateway, err) = docker(&[
        "network",
        "inspect",
        &guard.network,
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    assert!(ok, "docker network inspect: {err}");
    let gateway = gateway.trim().to_string();
    assert!(!gateway.is_empty(), "the network has no gateway");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = rt
        .block_on(TestServer::start_on(
            s3_root.path(),
            format!("{gateway}:0").parse().unwrap(),
        ))
        .unwrap();
    let bucket = s3.create_bucket("data").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    let numbers: String = (1..=100).map(|i| format!("{i}\n")).collect();
    std::fs::write(bucket.join("in/numbers.txt"), numbers).unwrap();

    let profile = format!(
        "name: lab\nkind: s3\nendpoint: {}\nregion: {REGION}\naccess_key_id: {ACCESS_KEY}\n\
         secret_access_key: {SECRET_KEY}\n",
        s3.endpoint()
    );
    let profile_file = c.spec("lab.yaml", &profile);
    let (code, out, err) = c.run(&["storage", "create", path(&profile_file)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(SECRET_KEY) && !err.contains(SECRET_KEY));
    std::fs::remove_file(&profile_file).unwrap();

    // 1. On the docker environment's nodes.
    let spec = c.spec("shards.yaml", &shards_job(&env, "docker"));
    assert!(!std::fs::read_to_string(&spec).unwrap().contains(ACCESS_KEY));
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 180, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    let sums = c.instances(&id, "sum");
    assert_eq!(state(&job), "SUCCEED", "{job}\n{sums:?}");
    let used: BTreeSet<String> = sums
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert!(used.is_subset(&want), "{used:?}");
    check_shards_result(&rt, &s3, "docker", &id);
    for node in &want {
        let seen = inspect(&format!("kiln-node-{node}")).to_string();
        assert!(
            !seen.contains(SECRET_KEY),
            "the secret shows in docker inspect"
        );
        assert!(
            !seen.contains("AWS_"),
            "a node was given AWS_* settings: {seen}"
        );
    }

    // 2. On a static agent (of this host, with no AWS_* settings either).
    c.start_agent("static-1", 4);
    let spec = c.spec("shards-static.yaml", &shards_job("pool", "static"));
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 120, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    assert_eq!(state(&job), "SUCCEED", "{job}");
    let nodes: BTreeSet<String> = c
        .instances(&id, "sum")
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, BTreeSet::from(["static-1".to_string()]));
    check_shards_result(&rt, &s3, "static", &id);

    // 2b. On a `local` environment's node (an agent the server starts on this host).
    let local = unique("lc");
    let file = c.spec(
        "local.yaml",
        &format!("name: {local}\nprovider: local\ndesired_nodes: 1\nslots: 4\n"),
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    let spec = c.spec("shards-local.yaml", &shards_job(&local, "local"));
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 120, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    assert_eq!(state(&job), "SUCCEED", "{job}");
    check_shards_result(&rt, &s3, "local", &id);
    let (code, out, err) = c.run(&["env", "delete", &local]);
    assert_eq!(code, 0, "{out}{err}");

    // 3. Through `kiln run`, the profile given as a file (a relative path).
    let profiles = c.spec(
        "profiles.yaml",
        &format!("- {}", profile.replace('\n', "\n  ")),
    );
    let spec = c.spec("shards-run.yaml", &shards_job("pool", "run"));
    let mut run = Command::new(support::kiln_bin());
    support::scrub_aws(&mut run);
    let out = run
        .current_dir(c.dir.path())
        .args([
            "run",
            "shards-run.yaml",
            "--storage-profiles",
            "profiles.yaml",
        ])
        .args(["--state-dir", "run-state", "--cpus", "2", "-o", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    check_shards_result(&rt, &s3, "run", summary["id"].as_str().unwrap());
    assert!(spec.exists());

    // The key is in no file of the server's data directory, the nodes' and the agent's work
    // directories or `kiln run`'s state, but the encrypted store (and the profiles file).
    no_secret_in_files(c.dir.path(), SECRET_KEY, &profiles);
    let log = c.server_log.lock().unwrap().join("\n");
    assert!(
        !log.is_empty() && !log.contains(SECRET_KEY),
        "the server logged the key"
    );

    c.kill_agent("static-1");
    delete_and_check_clean(&c, &env, &guard.network);
    drop(s3);
}
