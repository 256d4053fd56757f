//! End-to-end tests of the cluster: real `kiln server` and `kiln agent` processes on loopback,
//! driven through the CLI client and the REST API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::procs_with_marker;
use support::{Cluster, Db, ServerOptions, env_nodes, path, state, wait_until};

/// Every test here runs twice: on SQLite, and with `--db` on PostgreSQL.
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
    a_job_spreads_over_two_agents,
    a_killed_agent_s_instances_run_again_elsewhere,
    a_server_killed_mid_job_loses_nothing,
    a_local_compute_environment_scales_from_zero_to_two_and_back,
    templates_are_created_listed_used_with_overrides_and_deleted,
    an_output_upload_that_failed_succeeds_on_retry_once_storage_is_back,
    a_restarted_agent_kills_what_its_killed_process_left_running,
);

fn a_job_spreads_over_two_agents(db: Db) {
    let mut c = Cluster::on(db);
    c.start_agent("alpha", 2);
    c.start_agent("beta", 2);
    let spec = c.spec(
        "spread.yaml",
        "name: spread\ntasks:\n  work:\n    instances: 16\n    compute_env: pool\n    command: sleep 0.2; echo $BATCH_NODE_ID\n",
    );
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 16);
    let nodes: std::collections::BTreeSet<String> = c
        .instances(&id, "work")
        .iter()
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["alpha", "beta"]);
    // The output of an attempt that ran on an agent is served by the server.
    let (code, out) = c.kiln(&["logs", &id, "work", "3"]);
    assert_eq!(code, 0);
    assert!(["node-alpha", "node-beta"].contains(&out.trim()), "{out}");
}

fn a_killed_agent_s_instances_run_again_elsewhere(db: Db) {
    let mut c = Cluster::on(db);
    c.start_agent("doomed", 2);
    let spec = c.spec(
        "lost.yaml",
        "name: lost\ntasks:\n  work:\n    instances: 2\n    retries: 0\n    compute_env: pool\n    command: sleep 5\n",
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 30, |v| v["tasks"][0]["counts"]["RUNNING"] == 2);
    c.kill_agent("doomed");
    c.start_agent("survivor", 2);
    let job = c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 2);
    for inst in c.instances(&id, "work") {
        let attempts = inst["attempts"].as_array().unwrap();
        assert_eq!(attempts[0]["reason"], "NODE_LOST", "{inst}");
        assert_eq!(attempts[0]["node"], "doomed");
        assert_eq!(attempts.last().unwrap()["node"], "survivor");
    }
}

fn a_server_killed_mid_job_loses_nothing(db: Db) {
    let mut c = Cluster::on(db);
    c.start_agent("a1", 4);
    c.start_agent("a2", 4);
    let spec = c.spec(
        "five-hundred.yaml",
        "name: five-hundred\ntasks:\n  work:\n    instances: 500\n    compute_env: pool\n    command: sleep 0.02\n",
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 60, |v| {
        v["tasks"][0]["counts"]["SUCCEED"].as_u64().unwrap_or(0) >= 100
    });
    c.kill_server();
    c.start_server();
    let job = c.wait_job(&id, 120, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 500);
    let instances = c.instances(&id, "work");
    assert_eq!(instances.len(), 500);
    let succeeded: usize = instances
        .iter()
        .map(|i| {
            i["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["state"] == "SUCCEED")
                .count()
        })
        .sum();
    assert_eq!(succeeded, 500, "exactly one succeeded attempt per instance");
}

fn a_local_compute_environment_scales_from_zero_to_two_and_back(db: Db) {
    let c = Cluster::on(db);
    let env = c.spec(
        "elastic.yaml",
        "name: elastic\nprovider: local\ndesired_nodes: 0\nslots: 2\n",
    );
    let (code, out) = c.kiln(&["env", "create", env.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let spec = c.spec(
        "elastic-job.yaml",
        "name: elastic-job\ntasks:\n  work:\n    instances: 4\n    compute_env: elastic\n    command: sleep 0.3\n",
    );
    let id = c.submit(&spec);
    // With no nodes, the work waits, and says why.
    wait_until(30, "NO_CAPACITY", || {
        let why = c.json(&["why", &id, "work", "0"]);
        why["state"] == "RUNNABLE" && why["reason"] == "NO_CAPACITY elastic"
    });
    let (code, out) = c.kiln(&["env", "scale", "elastic", "--desired", "2"]);
    assert_eq!(code, 0, "{out}");
    wait_until(60, "two running nodes", || {
        env_nodes(&c, "elastic")
            .iter()
            .filter(|n| n["state"] == "RUNNING")
            .count()
            == 2
    });
    let job = c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 4);
    let shown = c.json(&["env", "show", "elastic"]);
    assert_eq!(shown["desired_nodes"], 2);
    assert_eq!(shown["nodes"].as_array().unwrap().len(), 2);
    let (code, out) = c.kiln(&["env", "scale", "elastic", "--desired", "0"]);
    assert_eq!(code, 0, "{out}");
    wait_until(60, "the nodes to drain and leave", || {
        env_nodes(&c, "elastic").is_empty()
    });
}

fn templates_are_created_listed_used_with_overrides_and_deleted(db: Db) {
    let c = Cluster::on(db);
    let base = c.spec(
        "base.yaml",
        "name: base\ndescription: greets\ntask:\n  command: echo \"$GREETING from $BATCH_TASK_INSTANCE_INDEX\"\n  env: {GREETING: template}\n  timeout: 10m\n",
    );
    let (code, out, err) = c.run(&["template", "create", path(&base)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("template base created"), "{out}");

    let list = c.json(&["template", "list"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["name"], "base");
    assert_eq!(items[0]["description"], "greets");
    assert_eq!(
        items[0]["task"]["command"],
        "echo \"$GREETING from $BATCH_TASK_INSTANCE_INDEX\""
    );
    assert_eq!(items[0]["task"]["timeout"], "10m", "the task as written");
    let (code, table) = c.kiln(&["template", "list"]);
    assert_eq!(code, 0);
    assert!(table.contains("echo \"$GREETING"), "{table}");

    // Creating it again is refused (exit 2, invalid input) and changes nothing.
    let again = c.spec("again.yaml", "name: base\ntask:\n  command: \"false\"\n");
    let (code, out, err) = c.run(&["template", "create", path(&again)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("already exists"), "{err}");

    let job = c.spec(
        "job.yaml",
        "name: uses\ntasks:\n  greet:\n    template: base\n    instances: 2\n    env: {GREETING: override}\n",
    );
    let done = c.json(&["submit", path(&job), "--wait"]);
    assert_eq!(done["state"], "SUCCEED", "{done}");
    assert_eq!(done["tasks"][0]["instances"], 2);
    let id = done["id"].as_str().unwrap();
    let (code, out, err) = c.run(&["logs", id, "greet", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "override from 1\n");

    // A template the server does not know: exit 2, naming the field.
    let bad = c.spec(
        "bad.yaml",
        "name: bad\ntasks:\n  x:\n    template: missing\n",
    );
    let (code, out, err) = c.run(&["submit", path(&bad)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("tasks.x.template"), "{err}");
    assert!(err.contains("missing"), "{err}");

    let (code, out, err) = c.run(&["template", "delete", "base"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = c.run(&["template", "show", "base"]);
    assert_eq!(code, 2, "{out}{err}");
    let list = c.json(&["template", "list"]);
    assert_eq!(list["items"], serde_json::json!([]));
}

fn an_output_upload_that_failed_succeeds_on_retry_once_storage_is_back(db: Db) {
    use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut s3 = rt.block_on(TestServer::start()).unwrap();
    s3.create_bucket("out").unwrap();
    let (root, addr) = (s3.root().to_path_buf(), s3.addr());
    let c = Cluster::with_options(ServerOptions {
        env: [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", s3.endpoint()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec(),
        ..ServerOptions::default().on(db)
    });
    let (started, go) = (c.dir.path().join("started"), c.dir.path().join("go"));
    let spec = c.spec(
        "upload.yaml",
        &format!(
            "name: upload\ntasks:\n  t:\n    command: mkdir -p out && echo $BATCH_TASK_INSTANCE_ATTEMPT > out/r && touch {} && while ! test -e {}; do sleep 0.05; done\n    outputs: [{{source: out/, target: \"s3://out/r/\"}}]\n",
            started.display(),
            go.display()
        ),
    );
    let id = c.submit(&spec);
    wait_until(30, "the instance to start", || started.exists());
    rt.block_on(s3.stop());
    std::fs::write(&go, "").unwrap();
    c.wait_job(&id, 60, |v| state(v) == "FAILED");
    let inst = &c.instances(&id, "t")[0];
    let reason = inst["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("OUTPUT_MAPPING_FAILED s3://out/r/"),
        "{reason}"
    );
    assert_eq!(inst["exit_code"], 0, "the command's exit code is kept");
    // Storage is back: a retry runs the instance again and its upload goes through.
    let _s3 = rt.block_on(TestServer::start_on(&root, addr)).unwrap();
    let (code, out) = c.kiln(&["job", "retry", &id]);
    assert_eq!(code, 0, "{out}");
    c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    let object = std::fs::read_to_string(root.join("out/r/r")).unwrap();
    assert_eq!(object.trim(), "2", "uploaded by the second attempt");
}

/// An agent killed while its instance runs: when it starts again it kills the process group its
/// previous process left (the server ran that attempt again already), so nothing runs twice.
fn a_restarted_agent_kills_what_its_killed_process_left_running(db: Db) {
    // Both backends' variants run at once in one test process: each needs a marker of its own.
    let mark = format!("orphan-{}-{}", std::process::id(), db.name());
    let mut c = Cluster::on(db);
    c.start_agent("phoenix", 1);
    let spec = c.spec(
        "orphan.yaml",
        &format!(
            "name: orphan\ntasks:\n  t:\n    compute_env: pool\n    env: {{KILN_TEST_MARKER: \"{mark}\"}}\n    \
             command: '[ \"$BATCH_TASK_INSTANCE_ATTEMPT\" = 1 ] && sleep 600; true'\n"
        ),
    );
    let id = c.submit(&spec);
    wait_until(30, "the first attempt's process", || {
        !procs_with_marker(&mark).is_empty()
    });
    c.kill_agent("phoenix");
    c.start_agent("phoenix", 1);
    let job = c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 1, "{job}");
    wait_until(10, "no process of the killed agent's attempt", || {
        procs_with_marker(&mark).is_empty()
    });
}
