//! Task templates over the API: `/v1/task-templates` and `template: NAME` in a submitted job.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, AGENT, admin, call, server, wait_state};
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "name": "base",
        "description": "greets",
        "task": {
            "command": "echo \"$GREETING from $BATCH_TASK_INSTANCE_INDEX\"",
            "env": {"GREETING": "template"},
            "timeout": "10m",
            "retries": 1
        }
    })
}

async fn post_template(app: &axum::Router, body: &Value) -> (StatusCode, Value) {
    admin(app, Method::POST, "/v1/task-templates", &body.to_string()).await
}

async fn log(app: &axum::Router, id: &str, task: &str, index: u32) -> Value {
    let (status, text) = admin(
        app,
        Method::GET,
        &format!("/v1/jobs/{id}/tasks/{task}/instances/{index}/logs"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_use_override_and_delete() {
    let s = server();
    let (status, created) = post_template(&s.app, &base()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created, base());

    // What comes back is the task as written (DESIGN §2 form), so it can be posted again.
    let (status, shown) = admin(&s.app, Method::GET, "/v1/task-templates/base", "").await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, base());

    let mut other = base();
    other["name"] = json!("another");
    other["description"] = Value::Null;
    let (status, _) = post_template(&s.app, &other).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, list) = admin(&s.app, Method::GET, "/v1/task-templates", "").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["another", "base"], "by name");

    let mut dup = base();
    dup["task"] = json!({"command": "false"});
    let (status, err) = post_template(&s.app, &dup).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "conflict");
    let (_, shown) = admin(&s.app, Method::GET, "/v1/task-templates/base", "").await;
    assert_eq!(shown, base(), "a conflict changes nothing");

    // `greet` overrides instances and env; `plain` takes the template as it is.
    let spec = "name: uses\ntasks:\n  greet:\n    template: base\n    instances: 2\n    env: {GREETING: override}\n  plain:\n    template: base\n";
    let (status, body) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = wait_state(&s.app, &id, |st| st == "SUCCEED").await;
    assert_eq!(job["tasks"][0]["name"], "greet");
    assert_eq!(job["tasks"][0]["instances"], 2);
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 2);
    assert_eq!(job["tasks"][1]["instances"], 1);
    assert_eq!(log(&s.app, &id, "greet", 1).await, "override from 1\n");
    assert_eq!(log(&s.app, &id, "plain", 0).await, "template from 0\n");

    // An unknown template is a validation error naming it; nothing is stored.
    let bad = "name: nope\ntasks:\n  x:\n    template: bsae\n    instances: 2\n";
    let (status, err) = admin(&s.app, Method::POST, "/v1/jobs", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["code"], "invalid_spec");
    assert_eq!(err["error"]["field"], "tasks.x.template");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("bsae"), "{message}");
    assert!(message.contains("did you mean `base`"), "{message}");
    let (_, jobs) = admin(&s.app, Method::GET, "/v1/jobs", "").await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");

    let (status, _) = admin(&s.app, Method::DELETE, "/v1/task-templates/base", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = admin(&s.app, Method::GET, "/v1/task-templates/base", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
    let (status, _) = admin(&s.app, Method::DELETE, "/v1/task-templates/base", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = admin(&s.app, Method::GET, "/v1/task-templates", "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Jobs keep their copy; new ones cannot use the deleted template.
    let (status, _) = admin(&s.app, Method::GET, &format!("/v1/jobs/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = admin(&s.app, Method::POST, "/v1/jobs", spec).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "tasks.greet.template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_without_command_needs_the_job_to_give_one() {
    let s = server();
    let t = json!({"name": "sized", "task": {"instances": 3, "env": {"A": "1"}}});
    let (status, _) = post_template(&s.app, &t).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = admin(
        &s.app,
        Method::POST,
        "/v1/jobs",
        "name: j\ntasks:\n  a: {template: sized}\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "tasks.a.command");
    let (status, body) = admin(
        &s.app,
        Method::POST,
        "/v1/jobs",
        "name: j\ntasks:\n  a: {template: sized, command: test \"$A\" = 1}\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let job = wait_state(&s.app, &id, |st| st == "SUCCEED").await;
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_templates_get_a_json_400_and_store_nothing() {
    let s = server();
    let long = "a".repeat(61);
    // (body, status, code, field, text the message must contain)
    let cases: Vec<(String, StatusCode, &str, Option<&str>, &str)> = vec![
        (
            "not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
            "",
        ),
        (
            json!({"name": "x"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
            "task",
        ),
        (
            json!({"name": 3, "task": {}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
            "",
        ),
        (
            json!({"name": "x", "task": {}, "extra": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
            "extra",
        ),
        (
            json!({"name": "bad name", "task": {"command": "true"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("name"),
            "bad name",
        ),
        (
            json!({"name": long, "task": {"command": "true"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("name"),
            "61 characters",
        ),
        (
            json!({"name": "", "task": {"command": "true"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("name"),
            "empty",
        ),
        (
            json!({"name": "x", "description": "d".repeat(201), "task": {"command": "true"}})
                .to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("description"),
            "200",
        ),
        (
            json!({"name": "x", "task": {"comand": "true"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.comand"),
            "did you mean `command`",
        ),
        (
            json!({"name": "x", "task": {"command": "true", "template": "y"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.template"),
            "not allowed in a task template",
        ),
        (
            json!({"name": "x", "task": {"command": "true", "depends_on": ["y"]}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.depends_on"),
            "not allowed in a task template",
        ),
        (
            json!({"name": "x", "task": {"command": "true", "instances": "two"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.instances"),
            "",
        ),
        (
            json!({"name": "x", "task": {"command": "true", "instances": 0}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.instances"),
            "",
        ),
        (
            json!({"name": "x", "task": {"command": "true", "env": ["A=1"]}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task.env"),
            "",
        ),
        (
            json!({"name": "x", "task": "echo hi"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task"),
            "mapping",
        ),
        (
            json!({"name": "x", "task": null}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_spec",
            Some("task"),
            "mapping",
        ),
    ];
    for (body, want, code, field, text) in cases {
        let (status, err) = admin(&s.app, Method::POST, "/v1/task-templates", &body).await;
        assert_eq!(status, want, "{body}: {err}");
        assert_eq!(err["error"]["code"], code, "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{body}: {message}");
        if let Some(f) = field {
            assert_eq!(err["error"]["field"], f, "{body}: {err}");
        }
    }
    let (status, err) = admin(&s.app, Method::GET, "/v1/task-templates/bad%20name", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "name");
    let (status, err) = admin(&s.app, Method::PUT, "/v1/task-templates", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{err}");
    let (_, list) = admin(&s.app, Method::GET, "/v1/task-templates", "").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_routes_need_the_admin_token_and_are_documented() {
    let s = server();
    let routes = [
        (Method::GET, "/v1/task-templates"),
        (Method::POST, "/v1/task-templates"),
        (Method::GET, "/v1/task-templates/base"),
        (Method::DELETE, "/v1/task-templates/base"),
    ];
    for (m, uri) in &routes {
        for token in [None, Some("wrong"), Some(AGENT)] {
            let body = base().to_string().into_bytes();
            let (status, err) = call(&s.app, m.clone(), uri, token, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {uri} with {token:?}");
            assert_eq!(err["error"]["code"], "unauthorized");
        }
    }
    let (_, list) = call(
        &s.app,
        Method::GET,
        "/v1/task-templates",
        Some(ADMIN),
        vec![],
    )
    .await;
    assert_eq!(list["items"], json!([]));

    let (status, doc) = admin(&s.app, Method::GET, "/v1/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let templates = &doc["paths"]["/v1/task-templates"];
    assert!(templates["get"].is_object() && templates["post"].is_object());
    let one = &doc["paths"]["/v1/task-templates/{name}"];
    assert!(one["get"].is_object() && one["delete"].is_object());
    assert!(doc["components"]["schemas"]["TaskTemplate"].is_object());
}
