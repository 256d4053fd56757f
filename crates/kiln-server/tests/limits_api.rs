//! Through the API: terminating one instance, a job's deadline, and items the server cannot
//! read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{admin, server, wait_state};

async fn submit(app: &axum::Router, spec: &str) -> String {
    let (status, body) = admin(app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn instance(app: &axum::Router, id: &str, task: &str, index: u32) -> serde_json::Value {
    let (status, list) = admin(
        app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/{task}/instances?cursor={index}&limit=1"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_is_terminated_and_its_siblings_run_to_the_end() {
    let s = server();
    let id = submit(
        &s.app,
        "name: one\ntasks:\n  t: {instances: 3, on_failure: interrupt, command: 'if [ $BATCH_TASK_INSTANCE_INDEX = 1 ]; then sleep 60; fi'}\n",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while instance(&s.app, &id, "t", 1).await["state"] != "RUNNING" {
        assert!(Instant::now() < deadline, "instance 1 never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An unknown instance, task or job, a bad index.
    for (uri, want) in [
        (
            format!("/v1/jobs/{id}/tasks/t/instances/3/terminate"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/v1/jobs/{id}/tasks/nope/instances/0/terminate"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/v1/jobs/{id}/tasks/t/instances/x/terminate"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/jobs/job-none/tasks/t/instances/0/terminate".into(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, body) = admin(&s.app, Method::POST, &uri, "").await;
        assert_eq!(status, want, "{uri}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let path = format!("/v1/jobs/{id}/tasks/t/instances/1/terminate");
    let (status, body) = admin(&s.app, Method::POST, &path, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id.as_str());
    let job = wait_state(&s.app, &id, |st| st == "FAILED").await;
    assert_eq!(job["reason"], "TERMINATED_BY_USER", "{job}");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 2, "{job}");
    let one = instance(&s.app, &id, "t", 1).await;
    assert_eq!(
        (one["state"].as_str(), one["reason"].as_str()),
        (Some("FAILED"), Some("TERMINATED_BY_USER")),
        "{one}"
    );
    // Once the job has finished, nothing of it can be terminated.
    let (status, body) = admin(&s.app, Method::POST, &path, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_timeout_ends_the_job_within_two_seconds_of_its_deadline() {
    let s = server();
    let submitted = Instant::now();
    let id = submit(
        &s.app,
        "name: late\ntimeout: 2s\ndag: slow -> after\ntasks:\n  slow: {instances: 6, command: 'sleep 60'}\n  after: {command: 'true'}\n",
    )
    .await;
    let job = wait_state(&s.app, &id, |st| st == "FAILED").await;
    let took = submitted.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the job ended {took:?} after submission; its deadline was 2 s"
    );
    assert!(
        took >= Duration::from_secs(2),
        "it ended before its deadline: {took:?}"
    );
    assert_eq!(job["reason"], "JOB_TIMED_OUT", "{job}");
    for t in job["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "FAILED", "{job}");
        assert_eq!(t["reason"], "JOB_TIMED_OUT", "{job}");
    }
    // Four of the six ran (four CPUs) and were stopped; two never started. All say why.
    for i in 0..6 {
        let inst = instance(&s.app, &id, "slow", i).await;
        assert_eq!(inst["reason"], "JOB_TIMED_OUT", "{inst}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_items_from_a_local_path() {
    let s = server();
    let (status, body) = admin(
        &s.app,
        Method::POST,
        "/v1/jobs",
        "name: local\ntasks:\n  t: {command: 'true', each_line: samples.txt}\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "tasks.t.each_line", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("a path on the machine the spec was written on"),
        "{message}"
    );
    let (_, list) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing is stored"
    );
}
