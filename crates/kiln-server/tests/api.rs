//! In-process tests of the API surface: the router is called with `oneshot` (no socket) over a
//! real driver with a real SQLite store in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{ADMIN, AGENT, admin, call, server, wait_state};
use serde_json::{Value, json};

const HELLO: &str = "name: hello\ntasks:\n  a:\n    instances: 3\n    command: echo hi $BATCH_TASK_INSTANCE_INDEX\n  b:\n    depends_on: [a]\n    command: [\"true\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_run_show_list_logs_and_delete() {
    let s = server();
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", HELLO).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = wait_state(&s.app, &id, |st| st == "SUCCEED").await;
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 3);
    assert_eq!(job["tasks"][1]["name"], "b");

    let (status, list) = admin(&s.app, Method::GET, "/v1/jobs?limit=10", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id.as_str());

    let (status, page) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/a/instances?limit=2"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "2");
    assert_eq!(page["items"][1]["attempts"][0]["state"], "SUCCEED");

    let (status, text) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/a/instances/2/logs"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, Value::String("hi 2\n".into()));

    let (status, why) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/why?task=a&index=1"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(why["state"], "SUCCEED");

    let (status, err) = admin(&s.app, Method::POST, &format!("/v1/jobs/{id}/retry"), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");

    let (status, _) = admin(&s.app, Method::DELETE, &format!("/v1/jobs/{id}"), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = admin(&s.app, Method::GET, &format!("/v1/jobs/{id}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
}

/// Reads come from the store: they answer while the scheduler is busy, and a finished job
/// leaves the scheduler's memory yet reads as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_wait_for_the_scheduler_and_finished_jobs_leave_its_memory() {
    let s = server();
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", HELLO).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    wait_state(&s.app, &id, |st| st == "SUCCEED").await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while s.handle.call(|d| d.engine().jobs().len()).await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "the finished job stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Hold the driver thread for a while; every read still answers meanwhile.
    let busy = s.handle.clone();
    let held = tokio::spawn(async move {
        busy.call(|_| std::thread::sleep(Duration::from_secs(5)))
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let (status, job) = admin(&s.app, Method::GET, &format!("/v1/jobs/{id}"), "").await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"], json!({"SUCCEED": 3}));
    assert_eq!(job["tasks"][1]["counts"], json!({"SUCCEED": 1}));
    let (status, page) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/a/instances"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let (status, why) = admin(&s.app, Method::GET, &format!("/v1/jobs/{id}/why"), "").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["state"], "SUCCEED");
    let (status, _) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "reads waited for the driver: {:?}",
        start.elapsed()
    );
    held.await.unwrap();
    // Reading it did not bring it back into the scheduler.
    assert_eq!(s.handle.call(|d| d.engine().jobs().len()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_delete_rules() {
    let s = server();
    let spec = "name: long\ntasks:\n  a:\n    instances: 2\n    command: sleep 30\n";
    let (_, body) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    let id = body["id"].as_str().unwrap().to_string();
    wait_state(&s.app, &id, |st| st == "RUNNING").await;
    let (status, err) = admin(&s.app, Method::DELETE, &format!("/v1/jobs/{id}"), "").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an unfinished job cannot be deleted: {err}"
    );
    let started = Instant::now();
    let (status, _) = admin(
        &s.app,
        Method::POST,
        &format!("/v1/jobs/{id}/terminate"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let job = wait_state(&s.app, &id, |st| st == "FAILED").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(job["reason"], "TERMINATED_BY_USER");
    let (status, _) = admin(
        &s.app,
        Method::POST,
        &format!("/v1/jobs/{id}/terminate"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_only_failed_instances() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ok");
    let spec = format!(
        "name: flaky\ntasks:\n  a:\n    instances: 3\n    on_failure: interrupt\n    command: test $BATCH_TASK_INSTANCE_INDEX != 1 || test -e {}\n",
        flag.display()
    );
    let (_, body) = admin(&s.app, Method::POST, "/v1/jobs", &spec).await;
    let id = body["id"].as_str().unwrap().to_string();
    let job = wait_state(&s.app, &id, |st| st.starts_with("FAILED")).await;
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 2);
    std::fs::write(&flag, "").unwrap();
    let (status, _) = admin(&s.app, Method::POST, &format!("/v1/jobs/{id}/retry"), "").await;
    assert_eq!(status, StatusCode::OK);
    wait_state(&s.app, &id, |st| st == "SUCCEED").await;
    let (_, page) = admin(
        &s.app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/a/instances"),
        "",
    )
    .await;
    let attempts: Vec<usize> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["attempts"].as_array().unwrap().len())
        .collect();
    assert_eq!(attempts, [1, 2, 1], "only the failed instance ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_the_right_token() {
    let s = server();
    let (status, _) = call(&s.app, Method::GET, "/v1/health", None, vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let admin_routes = [
        (Method::GET, "/v1/openapi.json"),
        (Method::GET, "/v1/jobs"),
        (Method::POST, "/v1/jobs"),
        (Method::GET, "/v1/jobs/job-x"),
        (Method::DELETE, "/v1/jobs/job-x"),
        (Method::POST, "/v1/jobs/job-x/terminate"),
        (Method::POST, "/v1/jobs/job-x/retry"),
        (Method::GET, "/v1/jobs/job-x/why"),
        (Method::GET, "/v1/jobs/job-x/tasks/a/instances"),
        (Method::GET, "/v1/jobs/job-x/tasks/a/instances/0/logs"),
        (Method::GET, "/v1/nodes"),
        (Method::GET, "/v1/task-templates"),
        (Method::POST, "/v1/task-templates"),
        (Method::GET, "/v1/task-templates/t"),
        (Method::DELETE, "/v1/task-templates/t"),
        (Method::GET, "/v1/storage-profiles"),
        (Method::POST, "/v1/storage-profiles"),
        (Method::GET, "/v1/storage-profiles/p"),
        (Method::DELETE, "/v1/storage-profiles/p"),
        (Method::GET, "/v1/compute-envs"),
        (Method::POST, "/v1/compute-envs"),
        (Method::GET, "/v1/compute-envs/e"),
        (Method::DELETE, "/v1/compute-envs/e"),
        (Method::POST, "/v1/compute-envs/e/scale"),
        (Method::POST, "/v1/nodes/n/revoke"),
        (Method::POST, "/v1/join-token/rotate"),
    ];
    let agent_routes = [
        (Method::POST, "/v1/agent/register"),
        (Method::POST, "/v1/agent/heartbeat"),
        (Method::POST, "/v1/agent/lease"),
        (Method::POST, "/v1/agent/report"),
        (Method::POST, "/v1/agent/logs"),
    ];
    for (m, uri) in admin_routes.iter().chain(&agent_routes) {
        for token in [None, Some("wrong")] {
            let (status, body) = call(&s.app, m.clone(), uri, token, vec![]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {uri} with {token:?}");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    for (m, uri) in &admin_routes {
        let (status, _) = call(&s.app, m.clone(), uri, Some(AGENT), vec![]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the agent token cannot {m} {uri}"
        );
    }
    for (m, uri) in &agent_routes {
        let (status, _) = call(&s.app, m.clone(), uri, Some(ADMIN), vec![]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the admin token cannot {m} {uri}"
        );
    }
    // The join token only registers; a made-up credential of the right form is refused too.
    for (m, uri) in agent_routes.iter().skip(1) {
        let (status, _) = call(&s.app, m.clone(), uri, Some(AGENT), b"{}".to_vec()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the join token cannot {m} {uri}"
        );
    }
    let (status, _) = call(
        &s.app,
        Method::POST,
        "/v1/agent/heartbeat",
        Some("kiln-node:n:0000"),
        br#"{"node_id": "node-n"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A request and the answer it must get: method, URI, body, status, the field named.
type Case = (
    Method,
    &'static str,
    Vec<u8>,
    StatusCode,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_json_4xx_and_store_nothing() {
    let s = server();
    let big = vec![b'a'; 16 * 1024 * 1024 + 1];
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/jobs",
            b"name: [unclosed".to_vec(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::POST,
            "/v1/jobs",
            b"{\"name\": 3}".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            Method::POST,
            "/v1/jobs",
            b"name: x\ntasks: {a: {comand: echo}}".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("tasks.a.comand"),
        ),
        (
            Method::POST,
            "/v1/jobs",
            b"name: x\ntasks: {a: {command: echo, instances: 0}}".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("tasks.a.instances"),
        ),
        (
            Method::POST,
            "/v1/jobs",
            b"name: x\ndag: a -> a\ntasks: {a: {command: echo}}".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("dag"),
        ),
        (
            Method::POST,
            "/v1/jobs",
            b"name: x\ntasks: {a: {command: echo, network: vpc-a}}".to_vec(),
            StatusCode::BAD_REQUEST,
            Some("tasks.a.network"),
        ),
        (
            Method::POST,
            "/v1/jobs",
            vec![0xff, 0xfe, 0x00],
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::POST,
            "/v1/jobs",
            vec![],
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::POST,
            "/v1/jobs",
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            Method::GET,
            "/v1/jobs?limit=0",
            vec![],
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/jobs?limit=abc",
            vec![],
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::GET,
            "/v1/jobs?state=NOPE",
            vec![],
            StatusCode::BAD_REQUEST,
            Some("state"),
        ),
        (
            Method::GET,
            "/v1/jobs?bogus=1",
            vec![],
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::GET,
            "/v1/jobs/job%20x",
            vec![],
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        (
            Method::GET,
            "/v1/jobs/job-missing",
            vec![],
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::GET,
            "/v1/jobs/job-missing/tasks/a/instances/x/logs",
            vec![],
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::GET,
            "/v1/nowhere",
            vec![],
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::PUT,
            "/v1/jobs",
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
    ];
    for (m, uri, body, want, field) in cases {
        let (status, err) = call(&s.app, m.clone(), uri, Some(ADMIN), body).await;
        assert_eq!(status, want, "{m} {uri}: {err}");
        assert!(
            err["error"]["code"].is_string(),
            "{m} {uri}: JSON error body, got {err}"
        );
        assert!(err["error"]["message"].is_string());
        if let Some(f) = field {
            assert_eq!(err["error"]["field"], f, "{m} {uri}: {err}");
        }
    }
    // A node credential's form passes the router; the body is checked before the credential.
    let node = "kiln-node:x:0000";
    let agent_cases: Vec<(&str, &[u8])> = vec![
        ("/v1/agent/register", b"not json"),
        ("/v1/agent/register", b"{\"name\": \"n\"}"),
        ("/v1/agent/register", b"{\"name\": \"n\", \"compute_env\": null, \"slots\": \"two\", \"cpus\": 1, \"memory\": 1, \"version\": \"x\"}"),
        ("/v1/agent/register", b"{\"name\": \"n\", \"compute_env\": null, \"slots\": 2, \"cpus\": 1, \"memory\": 1, \"version\": \"x\", \"extra\": 1}"),
        ("/v1/agent/register", b"{\"name\": \"bad name\", \"compute_env\": null, \"slots\": 2, \"cpus\": 1, \"memory\": 1, \"version\": \"x\"}"),
        ("/v1/agent/lease", b"{\"node_id\": \"node-x\", \"max\": 0}"),
    ];
    for (uri, body) in agent_cases {
        let token = if uri.ends_with("/register") {
            AGENT
        } else {
            node
        };
        let (status, err) = call(&s.app, Method::POST, uri, Some(token), body.to_vec()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{uri} {}: {err}",
            String::from_utf8_lossy(body)
        );
        assert!(err["error"]["code"].is_string());
    }
    // With the join token, lease is refused: it only registers.
    let (status, err) = call(
        &s.app,
        Method::POST,
        "/v1/agent/lease",
        Some(AGENT),
        br#"{"node_id": "node-x", "max": 1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
    // Nothing was stored.
    let (_, list) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(list["items"], json!([]));
    let (_, nodes) = admin(&s.app, Method::GET, "/v1/nodes", "").await;
    assert_eq!(
        nodes["items"].as_array().unwrap().len(),
        1,
        "only the built-in executor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_the_routes() {
    let s = server();
    let (status, doc) = admin(&s.app, Method::GET, "/v1/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    for p in ["/v1/jobs", "/v1/jobs/{id}", "/v1/agent/lease", "/v1/nodes"] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["JobDetail"].is_object());
}

/// `GET /metrics` from an address that is not loopback (here: none known) needs the admin
/// token, and then answers Prometheus text.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_admin_token_off_loopback() {
    let s = server();
    let (status, _) = call(&s.app, Method::GET, "/metrics", None, Vec::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&s.app, Method::GET, "/metrics", Some(AGENT), Vec::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&s.app, Method::GET, "/metrics", Some(ADMIN), Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
