//! Storage profiles over the API: `/v1/storage-profiles`. Secret fields are write-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{admin, server};
use serde_json::{Value, json};

const SECRET: &str = "wJalrXUtnFEMI-profile-secret-1f9c";
const TOKEN: &str = "session-token-7d1e0b";

fn lab() -> Value {
    json!({
        "name": "lab",
        "kind": "s3",
        "endpoint": "http://127.0.0.1:9000",
        "access_key_id": "AKIDLAB",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "default": true
    })
}

fn no_secret(v: &Value) {
    let text = v.to_string();
    assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_show_delete_never_answer_a_secret() {
    let s = server();
    let (status, created) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &lab().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    no_secret(&created);
    assert_eq!(created["secret_access_key"], "***");
    assert_eq!(created["session_token"], "***");
    assert_eq!(created["path_style"], true, "an endpoint means path-style");
    assert_eq!(created["default"], true);
    assert_eq!(created["access_key_id"], "AKIDLAB");

    let (status, shown) = admin(&s.app, Method::GET, "/v1/storage-profiles/lab", "").await;
    assert_eq!(status, StatusCode::OK);
    no_secret(&shown);
    assert_eq!(shown, created);

    let cos = json!({"name": "cos-a", "kind": "cos", "region": "ap-guangzhou",
        "access_key_id": "AKIDCOS", "secret_access_key": SECRET});
    let (status, c) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &cos.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["path_style"], false);
    assert_eq!(c["session_token"], Value::Null);

    let (status, list) = admin(&s.app, Method::GET, "/v1/storage-profiles", "").await;
    assert_eq!(status, StatusCode::OK);
    no_secret(&list);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cos-a", "lab"]);

    // The name is taken; a second default conflicts, naming the field.
    let (status, e) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &lab().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    no_secret(&e);
    let mut second = lab();
    second["name"] = json!("lab2");
    let (status, e) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &second.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["field"], "default");

    let (status, _) = admin(&s.app, Method::DELETE, "/v1/storage-profiles/lab", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = admin(&s.app, Method::GET, "/v1/storage-profiles/lab", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (status, _) = admin(&s.app, Method::DELETE, "/v1/storage-profiles/lab", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_stores_nothing() {
    let s = server();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "s3", "access_key_id": "a", "secret_access_key": SECRET}),
            "name",
        ),
        (
            json!({"name": "a b", "kind": "s3", "access_key_id": "a", "secret_access_key": SECRET}),
            "name",
        ),
        (
            json!({"name": "p", "kind": "gcs", "access_key_id": "a", "secret_access_key": SECRET}),
            "kind",
        ),
        (
            json!({"name": "p", "kind": "s3", "endpoint": "10.0.0.5:9000", "access_key_id": "a", "secret_access_key": SECRET}),
            "endpoint",
        ),
        (
            json!({"name": "p", "kind": "s3", "access_key_id": "a"}),
            "secret_access_key",
        ),
        (
            json!({"name": "p", "kind": "s3", "access_key_id": "a", "secret_access_key": 12345}),
            "secret_access_key",
        ),
        (
            json!({"name": "p", "kind": "s3", "access_key_id": "a", "secret_access_key": SECRET, "path_style": "yes"}),
            "path_style",
        ),
        (
            json!({"name": "p", "kind": "s3", "access_key_id": "a", "secret_access_key": SECRET, "bucket": "b"}),
            "bucket",
        ),
        // A registry login takes its own fields, and only those.
        (
            json!({"name": "r", "kind": "docker-registry", "username": "u", "password": SECRET}),
            "server",
        ),
        (
            json!({"name": "r", "kind": "docker-registry", "server": "r.example:port", "username": "u", "password": SECRET}),
            "server",
        ),
        (
            json!({"name": "r", "kind": "docker-registry", "server": "r.example", "username": "u"}),
            "password",
        ),
        (
            json!({"name": "r", "kind": "docker-registry", "server": "r.example", "username": "u", "password": SECRET, "secret_access_key": SECRET}),
            "secret_access_key",
        ),
        (
            json!({"name": "r", "kind": "docker-registry", "server": "r.example", "username": "u", "password": SECRET, "default": true}),
            "default",
        ),
        (
            json!({"name": "p", "kind": "s3", "access_key_id": "a", "secret_access_key": SECRET, "password": SECRET}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (status, e) = admin(
            &s.app,
            Method::POST,
            "/v1/storage-profiles",
            &body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(e["error"]["field"], field, "{body}: {e}");
        no_secret(&e);
        assert!(!e.to_string().contains("12345"), "{e}");
    }
    let (status, e) = admin(&s.app, Method::POST, "/v1/storage-profiles", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (_, list) = admin(&s.app, Method::GET, "/v1/storage-profiles", "").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_naming_unknown_profiles_are_refused_naming_the_field() {
    let s = server();
    let (status, _) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &lab().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let ccr = json!({"name": "ccr", "kind": "docker-registry", "server": "r.example",
                     "username": "robot", "password": SECRET});
    let (status, _) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &ccr.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let cases = [
        (
            "name: j\ntasks:\n  a:\n    command: 'true'\n    storage_profile: lba\n",
            "tasks.a.storage_profile",
            "did you mean `lab`",
        ),
        (
            "name: j\ntasks:\n  a:\n    command: 'true'\n    inputs:\n      - {source: 's3://bucket/in/', target: in/, profile: nope}\n",
            "tasks.a.inputs[0].profile",
            "known storage profiles: lab",
        ),
        // A registry login is no storage profile, and the other way round.
        (
            "name: j\ntasks:\n  a:\n    command: 'true'\n    storage_profile: ccr\n",
            "tasks.a.storage_profile",
            "unknown storage profile `ccr`",
        ),
        (
            "name: j\ntasks:\n  a:\n    command: 'true'\n    image: r.example/app:1\n    registry_profile: lab\n",
            "tasks.a.registry_profile",
            "known registry profiles: ccr",
        ),
        (
            "name: j\ntasks:\n  a:\n    command: 'true'\n    storage_profile: lab\n    outputs:\n      - {source: out/, target: 's3://bucket/out/', profile: other}\n",
            "tasks.a.outputs[0].profile",
            "unknown storage profile `other`",
        ),
    ];
    for (spec, field, says) in cases {
        let (status, err) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        no_secret(&err);
    }
    let (_, jobs) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(jobs["items"], serde_json::json!([]), "nothing stored");

    // Known names are accepted, and kept on the job's tasks.
    let ok = "name: j\ntasks:\n  a:\n    command: 'true'\n    storage_profile: lab\n    inputs:\n      - {source: 'file:///nonexistent-kiln-profile-test/', target: in/, profile: lab}\n";
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", ok).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The built-in executor maps `s3://` inputs, outputs and stdout with the profile the task
/// names, though this process has no `AWS_*` settings: the profile's endpoint and keys are
/// what reach the S3-compatible server. No answer of the run carries the secret key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_executor_maps_with_the_profile_the_task_names() {
    use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
    use kiln_storage::{Location, Storage};
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} must not be set for this test"
        );
    }
    let s3 = TestServer::start().await.unwrap();
    let bucket = s3.create_bucket("profile-e2e").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    std::fs::write(bucket.join("in/words.txt"), "alpha\nbeta\ngamma\n").unwrap();

    let s = server();
    let profile = json!({
        "name": "lab", "kind": "s3", "endpoint": s3.endpoint(), "region": REGION,
        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY
    });
    let (status, created) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &profile.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let spec = "name: mapped\ntasks:\n  count:\n    command: \"mkdir -p out && wc -l < in/words.txt > out/count.txt && echo counted\"\n    storage_profile: lab\n    inputs: [{source: 's3://profile-e2e/in/', target: in/}]\n    outputs: [{source: out/, target: 's3://profile-e2e/out/'}]\n    stdout: 's3://profile-e2e/logs/'\n";
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = common::wait_state(&s.app, &id, |st| st == "SUCCEED" || st == "FAILED").await;
    let (_, instances) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/count/instances"),
        "",
    )
    .await;
    assert_eq!(job["state"], "SUCCEED", "{job}\n{instances}");

    // Read back with a plain S3 client of the test server.
    let client = Storage::new(s3.config());
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("count.txt");
    client
        .download(
            &Location::parse("s3://profile-e2e/out/count.txt").unwrap(),
            &got,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "3");
    let log = dir.path().join("stdout.log");
    client
        .download(
            &Location::parse(&format!("s3://profile-e2e/logs/stdout.{id}.count.0.log")).unwrap(),
            &log,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "counted");

    // Without the profile the same mappings go to this process's own (absent) settings.
    let bare = spec.replace("    storage_profile: lab\n", "");
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", &bare).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bare_id = body["id"].as_str().unwrap().to_string();
    let failed = common::wait_state(&s.app, &bare_id, |st| st == "SUCCEED" || st == "FAILED").await;
    assert_eq!(failed["state"], "FAILED", "{failed}");

    // No answer of the run carries the secret.
    let mut answers = vec![created.to_string(), job.to_string(), instances.to_string()];
    for uri in [
        "/v1/storage-profiles".to_string(),
        "/v1/storage-profiles/lab".to_string(),
        "/v1/jobs".to_string(),
        format!("/v1/jobs/{id}/why"),
        format!("/v1/jobs/{id}/tasks/count/instances/0/logs"),
        "/v1/nodes".to_string(),
    ] {
        let (_, v) = admin(&s.app, Method::GET, &uri, "").await;
        answers.push(v.to_string());
    }
    for a in &answers {
        assert!(!a.contains(SECRET_KEY), "{a}");
    }
}

/// A `kind: cos` profile whose `endpoint` stands in for COS: `cos://BUCKET-APPID.cos.REGION
/// .myqcloud.com/…` inputs, outputs and stdout, parsed as for COS itself, reach the
/// S3-compatible server with the bucket `BUCKET-APPID`; what the job wrote is read back with
/// a plain S3 client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cos_mappings_go_through_a_cos_profile_with_an_endpoint() {
    use kiln_storage::testing::{ACCESS_KEY, SECRET_KEY, TestServer};
    use kiln_storage::{Location, Storage};
    let s3 = TestServer::start().await.unwrap();
    let bucket = s3.create_bucket("media-1250000000").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    std::fs::write(bucket.join("in/words.txt"), "alpha\nbeta\n").unwrap();

    let s = server();
    let profile = json!({
        "name": "tencent", "kind": "cos", "endpoint": s3.endpoint(),
        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY
    });
    let (status, created) = admin(
        &s.app,
        Method::POST,
        "/v1/storage-profiles",
        &profile.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let cos = "cos://media-1250000000.cos.ap-guangzhou.myqcloud.com";
    let spec = format!(
        "name: cos-mapped\ntasks:\n  count:\n    command: \"mkdir -p out && wc -l < in/words.txt > out/count.txt && echo counted\"\n    storage_profile: tencent\n    inputs: [{{source: '{cos}/in/', target: in/}}]\n    outputs: [{{source: out/, target: '{cos}/out/'}}]\n    stdout: '{cos}/logs/'\n"
    );
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", &spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = common::wait_state(&s.app, &id, |st| st == "SUCCEED" || st == "FAILED").await;
    let (_, instances) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/count/instances"),
        "",
    )
    .await;
    assert_eq!(job["state"], "SUCCEED", "{job}\n{instances}");
    no_secret(&instances);

    // The bucket is `BUCKET-APPID`, as COS names it; a plain S3 client reads it back.
    let client = Storage::new(s3.config());
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("count.txt");
    client
        .download(
            &Location::parse("s3://media-1250000000/out/count.txt").unwrap(),
            &got,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "2");
    let log = dir.path().join("stdout.log");
    client
        .download(
            &Location::parse(&format!(
                "s3://media-1250000000/logs/stdout.{id}.count.0.log"
            ))
            .unwrap(),
            &log,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "counted");
}

/// Of defaults created at once, exactly one is kept: the others are answered 409 and are not
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_profile_is_the_default() {
    let s = server();
    let posts = (0..6).map(|i| {
        let mut p = lab();
        p["name"] = json!(format!("lab{i}"));
        let app = s.app.clone();
        tokio::spawn(async move {
            admin(&app, Method::POST, "/v1/storage-profiles", &p.to_string())
                .await
                .0
        })
    });
    let mut created = 0;
    for p in posts.collect::<Vec<_>>() {
        match p.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    let (_, list) = admin(&s.app, Method::GET, "/v1/storage-profiles", "").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["default"], true);
}

/// A task that names no profile maps `s3://` with the server's default profile; a mapping's
/// own `profile` still wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_naming_no_profile_use_the_default_profile() {
    use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
    let s3 = TestServer::start().await.unwrap();
    let bucket = s3.create_bucket("default-e2e").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    std::fs::write(bucket.join("in/words.txt"), "alpha\nbeta\n").unwrap();

    let s = server();
    let good = json!({
        "name": "lab", "kind": "s3", "endpoint": s3.endpoint(), "region": REGION,
        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "default": true
    });
    let wrong = json!({
        "name": "wrong", "kind": "s3", "endpoint": s3.endpoint(), "region": REGION,
        "access_key_id": ACCESS_KEY, "secret_access_key": "not-the-key"
    });
    for p in [good, wrong] {
        let (status, body) =
            admin(&s.app, Method::POST, "/v1/storage-profiles", &p.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let spec = "name: d\ntasks:\n  count:\n    command: \"mkdir -p out && wc -l < in/words.txt > out/count.txt\"\n    inputs: [{source: 's3://default-e2e/in/', target: in/}]\n    outputs: [{source: out/, target: 's3://default-e2e/out/'}]\n";
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = common::wait_state(&s.app, &id, |st| st == "SUCCEED" || st == "FAILED").await;
    assert_eq!(job["state"], "SUCCEED", "{job}");
    assert_eq!(
        std::fs::read_to_string(bucket.join("out/count.txt"))
            .unwrap()
            .trim(),
        "2"
    );

    let overridden = spec.replace("target: in/}", "target: in/, profile: wrong}");
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", &overridden).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = common::wait_state(&s.app, &id, |st| st == "SUCCEED" || st == "FAILED").await;
    assert_eq!(job["state"], "FAILED", "{job}");
}

/// What an agent is handed: the settings of exactly the profiles its attempt uses (the task's,
/// a mapping's own, and the default one for a task that names none), and which one serves the
/// mappings that name none. Profiles the attempt does not use are not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_is_handed_the_profiles_its_attempt_uses() {
    let s = server();
    let profile = |name: &str, secret: &str, default: bool| {
        json!({"name": name, "kind": "s3", "endpoint": "http://10.0.0.5:9000",
               "access_key_id": format!("AKID-{name}"), "secret_access_key": secret,
               "default": default})
    };
    for p in [
        profile("dflt", "secret-of-dflt", true),
        profile("lab", "secret-of-lab", false),
        profile("cold", "secret-of-cold", false),
        profile("unused", "secret-of-unused", false),
    ] {
        let (status, body) =
            admin(&s.app, Method::POST, "/v1/storage-profiles", &p.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, reg) = common::call(
        &s.app,
        Method::POST,
        "/v1/agent/register",
        Some(common::AGENT),
        json!({"name": "n1", "compute_env": "pool", "slots": 4, "cpus": 4.0,
               "memory": 1u64 << 32, "version": "test"})
        .to_string()
        .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reg}");
    let node_id = reg["node_id"].as_str().unwrap().to_string();
    let credential = reg["credential"].as_str().unwrap().to_string();
    let spec = "name: j\ntasks:\n  named:\n    compute_env: pool\n    command: 'true'\n    storage_profile: lab\n    inputs: [{source: 's3://bkt/in/', target: in/, profile: cold}]\n    stdout: 's3://bkt/logs/'\n  unnamed:\n    compute_env: pool\n    command: 'true'\n    inputs: [{source: 's3://bkt/in/', target: in/}]\n  local:\n    compute_env: pool\n    command: 'true'\n";
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut got = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "leased {got:?}");
        let (status, lease) = common::call(
            &s.app,
            Method::POST,
            "/v1/agent/lease",
            Some(&credential),
            json!({"node_id": node_id, "max": 4})
                .to_string()
                .into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{lease}");
        for a in lease["attempts"].as_array().unwrap() {
            got.insert(a["key"]["task"].as_str().unwrap().to_string(), a.clone());
        }
    }
    let names = |a: &Value| -> Vec<String> {
        a["storage"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let named = &got["named"];
    assert_eq!(names(named), ["cold", "lab"], "{named}");
    assert_eq!(named["storage_profile"], "lab");
    assert_eq!(named["inputs"][0]["profile"], "cold");
    let lab = named["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "lab")
        .unwrap();
    assert_eq!(lab["secret_access_key"], "secret-of-lab");
    assert_eq!(lab["endpoint"], "http://10.0.0.5:9000");
    assert_eq!(lab["path_style"], true);
    let unnamed = &got["unnamed"];
    assert_eq!(names(unnamed), ["dflt"], "{unnamed}");
    assert_eq!(unnamed["storage_profile"], "dflt");
    let local = &got["local"];
    assert_eq!(names(local), Vec::<String>::new(), "{local}");
    assert!(local.get("storage_profile").is_none(), "{local}");
    for a in got.values() {
        assert!(!a.to_string().contains("secret-of-unused"), "{a}");
    }
}
