//! Private images: a real registry (Debian's `docker-registry` with htpasswd authentication,
//! started on loopback by `scripts/services/registry.sh`) holds images pushed by the test and
//! removed from the engine, so that every run pulls them with credentials:
//! - a `docker-registry` profile, picked by the image's registry host or named by the task
//!   (`registry_profile`), on the server's built-in executor and through `kiln run
//!   --storage-profiles`;
//! - a Tencent job's own `Application.Docker.User/Password/Server`;
//! - a wrong password or no login ends the instance `IMAGE_PULL_FAILED REF: unauthorized`, an
//!   image the registry does not have `IMAGE_NOT_FOUND REF`.
//!
//! The `docker` environment's nodes pull the same way (`docker_env_e2e.rs`), and the password
//! is searched for everywhere by `secret_leak_e2e.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use serde_json::{Value, json};
use support::{Cluster, path, private_image, state, test_registry};

/// A name no other test (or run) uses, for image repositories.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos % 0x1000000)
}

/// Two `docker-registry` profiles for the test registry: `reg` (the right login) and `stale` (a
/// wrong password, its server written as a URL). An image of the registry whose task names
/// neither is pulled with `reg`, the first by name.
fn profiles() -> Vec<Value> {
    let (registry, user, password) = test_registry();
    vec![
        json!({"name": "reg", "kind": "docker-registry", "server": registry,
               "username": user, "password": password}),
        json!({"name": "stale", "kind": "docker-registry", "server": format!("http://{registry}/"),
               "username": user, "password": format!("not-{password}")}),
    ]
}

/// (state, reason) of instance 0 of `task`, from `kiln job show -o json`'s instance list.
fn instance(c: &Cluster, id: &str, task: &str) -> (String, String) {
    let items = c.instances(id, task);
    let i: &Value = &items[0];
    (
        state(i).to_string(),
        i["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_server_pulls_private_images_with_registry_profiles_and_says_why_a_pull_is_refused() {
    let by_host = private_image(&unique("by-host"));
    let named = private_image(&unique("named"));
    let wrong = private_image(&unique("wrong"));
    let (registry, ..) = test_registry();
    let absent = format!("{registry}/kiln-test/{}:1", unique("absent"));
    let c = Cluster::new();
    // Both profiles go in through the CLI, one file each.
    for p in &profiles() {
        let file = c.spec(
            &format!("{}.json", p["name"].as_str().unwrap()),
            &p.to_string(),
        );
        let (code, out, err) = c.run(&["storage", "create", path(&file)]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let shown = c.json(&["storage", "show", "reg"]);
    assert_eq!(shown["kind"], "docker-registry", "{shown}");
    assert_eq!(shown["password"], "***", "{shown}");
    assert_eq!(shown["server"], registry.as_str(), "{shown}");

    let spec = c.spec(
        "job.yaml",
        &format!(
            "name: private\ntasks:\n  by-host: {{image: '{by_host}', command: 'echo pulled by host'}}\n  \
             named: {{image: '{named}', registry_profile: reg, command: 'echo pulled by name'}}\n  \
             wrong: {{image: '{wrong}', registry_profile: stale, command: 'true'}}\n  \
             absent: {{image: '{absent}', registry_profile: reg, command: 'true'}}\n"
        ),
    );
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 120, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    assert_eq!(state(&job), "FAILED", "{job}");
    for task in ["by-host", "named"] {
        assert_eq!(instance(&c, &id, task).0, "SUCCEED", "{task}: {job}");
    }
    let (code, out) = c.kiln(&["logs", &id, "named"]);
    assert_eq!((code, out.trim()), (0, "pulled by name"));
    assert_eq!(
        instance(&c, &id, "wrong"),
        (
            "FAILED".to_string(),
            format!("IMAGE_PULL_FAILED {wrong}: unauthorized")
        )
    );
    assert_eq!(
        instance(&c, &id, "absent"),
        ("FAILED".to_string(), format!("IMAGE_NOT_FOUND {absent}"))
    );

    // A task naming a profile that is not a registry login is refused at submission.
    let spec = c.spec(
        "misnamed.yaml",
        &format!("name: misnamed\ntasks:\n  t: {{image: '{named}', registry_profile: nope, command: 'true'}}\n"),
    );
    let (code, out, err) = c.run(&["submit", path(&spec)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("tasks.t.registry_profile"), "{err}");
    assert!(err.contains("unknown registry profile `nope`"), "{err}");
}

#[test]
fn a_tencent_job_pulls_with_its_own_application_docker_login() {
    let image = private_image(&unique("tencent"));
    let (registry, user, password) = test_registry();
    let c = Cluster::new();
    let job = json!({"Job": {"JobName": "tencent-private", "Tasks": [{
        "TaskName": "hello",
        "Application": {
            "DeliveryForm": "LOCAL",
            "Command": "echo from a private image",
            "Docker": {"Image": image, "User": user, "Password": password, "Server": registry}
        }
    }]}});
    let spec = c.spec("tencent.json", &job.to_string());
    let id = c.submit(&spec);
    let done = c.wait_job(&id, 120, |v| matches!(state(v), "SUCCEED" | "FAILED"));
    assert_eq!(state(&done), "SUCCEED", "{done}");
    let (code, out) = c.kiln(&["logs", &id, "hello"]);
    assert_eq!((code, out.trim()), (0, "from a private image"));
    // What reads show of the job's login.
    let shown = c.kiln(&["job", "show", &id, "-o", "json"]).1;
    assert!(!shown.contains(&password), "{shown}");
}

#[test]
fn kiln_run_pulls_with_its_storage_profiles_file_and_without_one_is_refused() {
    let with = private_image(&unique("run-with"));
    let without = private_image(&unique("run-without"));
    let sb = common::Sandbox::new();
    let profiles = sb.spec("profiles.json", &Value::from(profiles()).to_string());
    let spec = sb.spec(
        "job.yaml",
        &format!(
            "name: run-private\ntasks:\n  t: {{image: '{with}', command: 'echo run pulled'}}\n"
        ),
    );
    let out = sb.run(&spec, &["--storage-profiles", path(&profiles)]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.task_state("t").0, "SUCCEED", "{out}");

    let spec = sb.spec(
        "anon.yaml",
        &format!("name: run-anon\ntasks:\n  t: {{image: '{without}', command: 'true'}}\n"),
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.failed("t")[&0]["reason"],
        format!("IMAGE_PULL_FAILED {without}: unauthorized"),
        "{out}"
    );
}
