//! `Idempotency-Key` on the creating routes: the same key and body give the first answer and
//! create nothing more; another body under the key is a 409; a malformed key is a 400.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, admin, server};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn post(app: &axum::Router, uri: &str, key: &str, body: &str) -> (StatusCode, Value, bool) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), replayed)
}

const JOB: &str = "name: once\ntasks:\n  a:\n    command: \"true\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_submit_creates_one_job() {
    let s = server();
    let (status, first, replayed) = post(&s.app, "/v1/jobs", "retry-1", JOB).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!replayed);
    let (status, again, replayed) = post(&s.app, "/v1/jobs", "retry-1", JOB).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(replayed);
    assert_eq!(again, first, "the first answer again");
    let (_, list) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    let other = "name: other\ntasks:\n  a:\n    command: \"true\"\n";
    let (status, err, _) = post(&s.app, "/v1/jobs", "retry-1", other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["field"], "Idempotency-Key");
    let (status, _, _) = post(&s.app, "/v1/jobs", "retry-2", other).await;
    assert_eq!(status, StatusCode::CREATED, "a new key is a new job");
    let (status, err, _) = post(&s.app, "/v1/jobs", "has space", JOB).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (_, list) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_template_and_environment_creates_answer_as_the_first() {
    let s = server();
    let t = r#"{"name": "base", "description": null, "task": {"command": "true"}}"#;
    let (status, first, _) = post(&s.app, "/v1/task-templates", "t-1", t).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again, replayed) = post(&s.app, "/v1/task-templates", "t-1", t).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first);
    // Without the key the name is taken.
    let (status, _) = admin(&s.app, Method::POST, "/v1/task-templates", t).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Once it is deleted, its answer is forgotten: the key creates it anew.
    let (status, _) = admin(&s.app, Method::DELETE, "/v1/task-templates/base", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, replayed) = post(&s.app, "/v1/task-templates", "t-1", t).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));

    let e = r#"{"name": "pool", "provider": "static", "desired_nodes": 0}"#;
    let (status, first, _) = post(&s.app, "/v1/compute-envs", "e-1", e).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again, replayed) = post(&s.app, "/v1/compute-envs", "e-1", e).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first);
    let (status, _, _) = post(&s.app, "/v1/compute-envs", "e-1", t).await;
    assert_eq!(status, StatusCode::CONFLICT, "another body under the key");
}
