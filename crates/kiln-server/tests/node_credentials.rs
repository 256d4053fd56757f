//! Per-node credentials: the join token only registers; each node's credential covers that node
//! and the attempts dispatched to it, nothing else. Two nodes, `a` and `b`, against a real
//! driver and SQLite store: `b`'s credential cannot lease, report or send output for `a`'s
//! attempt (403, and nothing changes), a revoked node is refused at its next call (401), and a
//! rotated join token registers while the old one does not, without disturbing nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use common::{AGENT, admin, call, register, server, wait_state};
use serde_json::{Value, json};

async fn agent(app: &Router, route: &str, credential: &str, body: Value) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        &format!("/v1/agent/{route}"),
        Some(credential),
        body.to_string().into_bytes(),
    )
    .await
}

/// Leases for `node` until an attempt comes (the dispatch follows the submission's tick).
async fn lease_one(app: &Router, node: &str, credential: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, lease) = agent(
            app,
            "lease",
            credential,
            json!({"node_id": format!("node-{node}"), "max": 1}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{lease}");
        if let Some(a) = lease["attempts"].as_array().and_then(|a| a.first()) {
            return a["key"].clone();
        }
        assert!(Instant::now() < deadline, "nothing was leased to {node}");
    }
}

async fn instance(app: &Router, job: &str) -> Value {
    let (status, page) = admin(
        app,
        Method::GET,
        &format!("/v1/jobs/{job}/tasks/t/instances"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"][0].clone()
}

async fn output(app: &Router, job: &str) -> Value {
    call(
        app,
        Method::GET,
        &format!("/v1/jobs/{job}/tasks/t/instances/0/logs"),
        Some(common::ADMIN),
        vec![],
    )
    .await
    .1
}

fn refused(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    assert_eq!(body["error"]["code"], "forbidden", "{what}: {body}");
}

fn log_chunk(key: &Value, data: &str) -> Value {
    let key: kiln_api::AttemptKey = serde_json::from_value(key.clone()).unwrap();
    serde_json::to_value(kiln_api::LogChunk::new(key, "stdout", 0, data.as_bytes())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_acts_only_for_its_own_attempts() {
    let s = server();
    let a = register(&s.app, "a", "pa").await;
    let b = register(&s.app, "b", "pb").await;
    assert!(a.starts_with("kiln-node:a:") && b.starts_with("kiln-node:b:"));
    assert_ne!(a, b);

    let spec = "name: j\ntasks:\n  t:\n    compute_env: pa\n    command: 'true'\n";
    let (status, job) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // Another job for b, to see that a refused batch takes none of b's own events either.
    let spec_b = "name: jb\ntasks:\n  t:\n    compute_env: pb\n    command: 'true'\n";
    let (_, job_b) = admin(&s.app, Method::POST, "/v1/jobs", spec_b).await;
    let id_b = job_b["id"].as_str().unwrap().to_string();

    // b cannot lease a's work: its credential does not name node-a.
    let (status, body) = agent(&s.app, "lease", &b, json!({"node_id": "node-a", "max": 1})).await;
    refused(status, &body, "b leasing for a");
    let (status, body) = agent(
        &s.app,
        "heartbeat",
        &b,
        json!({"node_id": "node-a", "running": []}),
    )
    .await;
    refused(status, &body, "b heartbeating as a");
    // a's attempt is still there for a.
    let key = lease_one(&s.app, "a", &a).await;
    let key_b = lease_one(&s.app, "b", &b).await;
    assert_eq!(key["job"], id.as_str());
    let before = instance(&s.app, &id).await;
    assert_eq!(before["state"], "STARTING", "{before}");

    // b reports a's attempt: as itself, as a, or mixed with its own — refused, nothing changes.
    let ended = |k: &Value| json!({"key": k, "kind": {"type": "exited", "code": 0}});
    for (node_id, events) in [
        ("node-b", json!([ended(&key)])),
        ("node-a", json!([ended(&key)])),
        ("node-b", json!([ended(&key_b), ended(&key)])),
    ] {
        let (status, body) = agent(
            &s.app,
            "report",
            &b,
            json!({"node_id": node_id, "events": events}),
        )
        .await;
        refused(
            status,
            &body,
            &format!("b reporting a's attempt as {node_id}"),
        );
    }
    assert_eq!(instance(&s.app, &id).await, before);
    assert_eq!(instance(&s.app, &id_b).await["state"], "STARTING");

    // b sends output for a's attempt: refused, nothing written.
    for node_id in ["node-b", "node-a"] {
        let (status, body) = agent(
            &s.app,
            "logs",
            &b,
            json!({"node_id": node_id, "chunks": [log_chunk(&key, "forged\n")]}),
        )
        .await;
        refused(status, &body, &format!("b writing a's output as {node_id}"));
    }
    assert_eq!(output(&s.app, &id).await, json!(""));

    // a itself does all three.
    let (status, body) = agent(
        &s.app,
        "logs",
        &a,
        json!({"node_id": "node-a", "chunks": [log_chunk(&key, "hello\n")]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = agent(
        &s.app,
        "report",
        &a,
        json!({"node_id": "node-a", "events": [ended(&key)]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_state(&s.app, &id, |st| st == "SUCCEED").await;
    assert_eq!(output(&s.app, &id).await, json!("hello\n"));
    // Its output after the end is still its own to send (the engine may have forgotten the
    // job; the store knows whose attempt it was), and still not b's.
    let (status, body) = agent(
        &s.app,
        "logs",
        &b,
        json!({"node_id": "node-b", "chunks": [log_chunk(&key, "late forgery\n")]}),
    )
    .await;
    refused(status, &body, "b writing a's output after the end");
    assert_eq!(output(&s.app, &id).await, json!("hello\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_at_its_next_call() {
    let s = server();
    let a = register(&s.app, "a", "pa").await;
    let b = register(&s.app, "b", "pb").await;
    let beat = |c: &str, n: &str| {
        let (app, c, n) = (s.app.clone(), c.to_string(), n.to_string());
        async move {
            agent(
                &app,
                "heartbeat",
                &c,
                json!({"node_id": format!("node-{n}"), "running": []}),
            )
            .await
        }
    };
    assert_eq!(beat(&b, "b").await.0, StatusCode::OK);

    // b holds an attempt when it is revoked: the attempt runs again elsewhere.
    let spec = "name: j\ntasks:\n  t:\n    compute_env: pb\n    command: 'true'\n";
    let (_, job) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    let id = job["id"].as_str().unwrap().to_string();
    let key = lease_one(&s.app, "b", &b).await;

    let (status, body) = admin(&s.app, Method::POST, "/v1/nodes/b/revoke", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"name": "b"}));

    // Every call with b's credential is refused now, registering again with it too.
    let (status, body) = beat(&b, "b").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = agent(&s.app, "lease", &b, json!({"node_id": "node-b", "max": 1})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let ended = json!({"key": key, "kind": {"type": "exited", "code": 0}});
    let (status, _) = agent(
        &s.app,
        "report",
        &b,
        json!({"node_id": "node-b", "events": [ended]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = agent(
        &s.app,
        "logs",
        &b,
        json!({"node_id": "node-b", "chunks": [log_chunk(&key, "x")]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = json!({"name": "b", "compute_env": "pa", "slots": 1, "cpus": 1.0,
                       "memory": 1u64 << 30, "version": "test"});
    let (status, _) = agent(&s.app, "register", &b, again).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // b is gone from the nodes, and what it held runs again on another node of its pool.
    let (_, nodes) = admin(&s.app, Method::GET, "/v1/nodes", "").await;
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"b"), "{nodes}");
    let c = register(&s.app, "c", "pb").await;
    let rerun = lease_one(&s.app, "c", &c).await;
    assert_eq!(rerun["job"], key["job"]);
    assert!(
        rerun["attempt"].as_u64() > key["attempt"].as_u64(),
        "{rerun}"
    );
    let first = &instance(&s.app, &id).await["attempts"][0];
    assert_eq!(first["node"], "b");
    assert_eq!(first["reason"], "NODE_LOST", "{first}");
    // a was not disturbed.
    assert_eq!(beat(&a, "a").await.0, StatusCode::OK);

    // A second revoke finds no such node; an unknown one neither.
    for name in ["b", "nobody"] {
        let (status, body) = admin(
            &s.app,
            Method::POST,
            &format!("/v1/nodes/{name}/revoke"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_join_token_registers_and_the_old_one_does_not() {
    let s = server();
    let a = register(&s.app, "a", "pa").await;
    let (status, body) = admin(&s.app, Method::POST, "/v1/join-token/rotate", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert_ne!(token, AGENT);

    let req = |name: &str| {
        json!({"name": name, "compute_env": "pa", "slots": 1, "cpus": 1.0,
               "memory": 1u64 << 30, "version": "test"})
    };
    let (status, _) = agent(&s.app, "register", AGENT, req("c")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old join token");
    let (status, body) = agent(&s.app, "register", &token, req("c")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["credential"]
            .as_str()
            .unwrap()
            .starts_with("kiln-node:c:")
    );
    // The join token only registers, the new one as the old.
    let (status, _) = agent(
        &s.app,
        "lease",
        &token,
        json!({"node_id": "node-c", "max": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A node registered before goes on, and registers again with its own credential, keeping it.
    let (status, _) = agent(
        &s.app,
        "heartbeat",
        &a,
        json!({"node_id": "node-a", "running": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = agent(&s.app, "register", &a, req("a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("credential").is_none(), "{body}");
    let (status, _) = agent(&s.app, "lease", &a, json!({"node_id": "node-a", "max": 1})).await;
    assert_eq!(status, StatusCode::OK);
    // With its credential it cannot register another name.
    let (status, body) = agent(&s.app, "register", &a, req("z")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
