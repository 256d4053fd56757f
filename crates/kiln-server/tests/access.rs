//! Every REST route × every kind of caller: no token, an expired token, a revoked one,
//! another project's submitter, and project `a`'s viewer, submitter, operator and admin. Each
//! gets the status the table says, and a refused call changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use common::{ADMIN, admin, call, register, server, wait_state};
use serde_json::{Value, json};

/// The kinds of callers, in the order of each row's statuses.
const CALLERS: [&str; 8] = [
    "none",
    "expired",
    "revoked",
    "other",
    "viewer",
    "submitter",
    "operator",
    "admin",
];

async fn create_token(
    app: &Router,
    project: &str,
    role: &str,
    name: &str,
    expires: Option<&str>,
) -> String {
    let mut body = json!({"project": project, "role": role, "name": name});
    if let Some(e) = expires {
        body["expires"] = json!(e);
    }
    let (status, t) = admin(app, Method::POST, "/v1/tokens", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["project"], project);
    t["token"].as_str().unwrap().to_string()
}

/// What a refused call must leave as it was: every record a caller could change.
async fn snapshot(app: &Router) -> Value {
    let mut out = serde_json::Map::new();
    for (key, uri, fields) in [
        ("jobs", "/v1/jobs?limit=1000", &["id", "state"][..]),
        (
            "templates",
            "/v1/task-templates",
            &["name", "description"][..],
        ),
        (
            "profiles",
            "/v1/storage-profiles",
            &["name", "access_key_id"][..],
        ),
        (
            "envs",
            "/v1/compute-envs",
            &["name", "desired_nodes", "projects"][..],
        ),
        ("projects", "/v1/projects", &["name"][..]),
        ("tokens", "/v1/tokens", &["name", "state"][..]),
        ("nodes", "/v1/nodes", &["name"][..]),
    ] {
        let (status, list) = admin(app, Method::GET, uri, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {list}");
        let items: Vec<Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                Value::Object(
                    fields
                        .iter()
                        .map(|f| (f.to_string(), i[*f].clone()))
                        .collect(),
                )
            })
            .collect();
        out.insert(key.into(), Value::Array(items));
    }
    Value::Object(out)
}

/// One route: its method, and for caller `c` its URI and body.
struct Row {
    method: Method,
    route: &'static str,
    uri: Box<dyn Fn(&str) -> String>,
    body: Box<dyn Fn(&str) -> String>,
    /// The status of each caller of `CALLERS`.
    expect: [u16; 8],
}

fn row(
    method: Method,
    route: &'static str,
    uri: impl Fn(&str) -> String + 'static,
    body: impl Fn(&str) -> String + 'static,
    expect: [u16; 8],
) -> Row {
    Row {
        method,
        route,
        uri: Box::new(uri),
        body: Box::new(body),
        expect,
    }
}

fn none(_: &str) -> String {
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_its_role_and_project_say() {
    let s = server();
    let app = &s.app;
    for p in ["a", "b"] {
        let (status, body) = admin(
            app,
            Method::POST,
            "/v1/projects",
            &json!({"name": p}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut tokens: Vec<Option<String>> = vec![None];
    let expired = create_token(app, "a", "admin", "t-expired", Some("1ms")).await;
    let revoked = create_token(app, "a", "admin", "t-revoked", None).await;
    let (status, _) = admin(app, Method::POST, "/v1/tokens/t-revoked/revoke", "").await;
    assert_eq!(status, StatusCode::OK);
    tokens.push(Some(expired.clone()));
    tokens.push(Some(revoked));
    tokens.push(Some(
        create_token(app, "b", "submitter", "t-other", None).await,
    ));
    for role in ["viewer", "submitter", "operator", "admin"] {
        tokens.push(Some(
            create_token(app, "a", role, &format!("t-{role}"), None).await,
        ));
    }
    let a_admin = tokens[7].clone().unwrap();
    // The expired token is refused once its millisecond is over.
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(app, Method::GET, "/v1/jobs", Some(&expired), Vec::new())
        .await
        .0
        != StatusCode::UNAUTHORIZED
    {
        assert!(Instant::now() < deadline, "the expired token still works");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Project `a`'s objects, one of each kind per caller (so that an allowed delete of one
    // leaves the others' in place), made by project `a`'s admin.
    let mut jobs = std::collections::BTreeMap::new();
    for c in CALLERS {
        let spec = json!({"name": format!("job-{c}"), "project": "a",
            "tasks": {"t": {"command": "echo hi"}}});
        let (status, job) = call(
            app,
            Method::POST,
            "/v1/jobs",
            Some(&a_admin),
            spec.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        jobs.insert(c, job["id"].as_str().unwrap().to_string());
        let tpl = json!({"name": format!("tpl-{c}"), "task": {"command": "true"}});
        let (status, body) = call(
            app,
            Method::POST,
            "/v1/task-templates",
            Some(&a_admin),
            tpl.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let prof = json!({"name": format!("prof-{c}"), "kind": "s3", "access_key_id": "AK",
            "secret_access_key": "SK-never-shown"});
        let (status, body) = call(
            app,
            Method::POST,
            "/v1/storage-profiles",
            Some(&a_admin),
            prof.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let env = json!({"name": format!("env-{c}"), "provider": "static", "desired_nodes": 0});
        let (status, body) = call(
            app,
            Method::POST,
            "/v1/compute-envs",
            Some(&a_admin),
            env.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["projects"], json!(["a"]), "{body}");
        let (status, body) = admin(
            app,
            Method::POST,
            "/v1/projects",
            &json!({"name": format!("p-{c}")}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        create_token(app, "a", "viewer", &format!("tok-{c}"), None).await;
        register(app, &format!("node-{c}"), &format!("env-{c}")).await;
    }
    for id in jobs.values() {
        wait_state(app, id, |s| s == "SUCCEED").await;
    }
    let job = move |c: &str| jobs[c].clone();
    let (j1, j2, j3, j4, j5, j6, j7) = (
        job.clone(),
        job.clone(),
        job.clone(),
        job.clone(),
        job.clone(),
        job.clone(),
        job.clone(),
    );

    const U: u16 = 401;
    const F: u16 = 403;
    const N: u16 = 404;
    let table = vec![
        row(
            Method::GET,
            "/v1/openapi.json",
            |_| "/v1/openapi.json".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/v1/jobs",
            |_| "/v1/jobs".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/jobs",
            |_| "/v1/jobs".into(),
            |c| {
                json!({"name": format!("new-{c}"), "project": "a", "tasks": {"t": {"command": "true"}}}).to_string()
            },
            [U, U, U, N, F, 201, 201, 201],
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}",
            move |c| format!("/v1/jobs/{}", j1(c)),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/jobs/{id}/terminate",
            move |c| format!("/v1/jobs/{}/terminate", j2(c)),
            none,
            [U, U, U, N, F, 409, 409, 409],
        ),
        row(
            Method::POST,
            "/v1/jobs/{id}/retry",
            move |c| format!("/v1/jobs/{}/retry", j3(c)),
            none,
            [U, U, U, N, F, 409, 409, 409],
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}/why",
            move |c| format!("/v1/jobs/{}/why", j4(c)),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}/tasks/{task}/instances",
            move |c| format!("/v1/jobs/{}/tasks/t/instances", j5(c)),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/v1/jobs/{id}/tasks/{task}/instances/{index}/logs",
            move |c| format!("/v1/jobs/{}/tasks/t/instances/0/logs", j6(c)),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/jobs/{id}/tasks/{task}/instances/{index}/terminate",
            move |c| format!("/v1/jobs/{}/tasks/t/instances/0/terminate", j7(c)),
            none,
            [U, U, U, N, F, 409, 409, 409],
        ),
        row(
            Method::DELETE,
            "/v1/jobs/{id}",
            move |c| format!("/v1/jobs/{}", job(c)),
            none,
            [U, U, U, N, F, 204, 204, 204],
        ),
        row(
            Method::GET,
            "/v1/task-templates",
            |_| "/v1/task-templates".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/task-templates",
            |_| "/v1/task-templates".into(),
            |c| json!({"name": format!("tpl-new-{c}"), "task": {"command": "true"}}).to_string(),
            [U, U, U, F, F, F, 201, 201],
        ),
        row(
            Method::GET,
            "/v1/task-templates/{name}",
            |c| format!("/v1/task-templates/tpl-{c}"),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::DELETE,
            "/v1/task-templates/{name}",
            |c| format!("/v1/task-templates/tpl-{c}"),
            none,
            [U, U, U, F, F, F, 204, 204],
        ),
        row(
            Method::GET,
            "/v1/storage-profiles",
            |_| "/v1/storage-profiles".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/storage-profiles",
            |_| "/v1/storage-profiles".into(),
            |c| {
                json!({"name": format!("prof-new-{c}"), "kind": "s3", "access_key_id": "AK", "secret_access_key": "SK"}).to_string()
            },
            [U, U, U, F, F, F, 201, 201],
        ),
        row(
            Method::GET,
            "/v1/storage-profiles/{name}",
            |c| format!("/v1/storage-profiles/prof-{c}"),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::DELETE,
            "/v1/storage-profiles/{name}",
            |c| format!("/v1/storage-profiles/prof-{c}"),
            none,
            [U, U, U, F, F, F, 204, 204],
        ),
        row(
            Method::GET,
            "/v1/compute-envs",
            |_| "/v1/compute-envs".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/compute-envs",
            |_| "/v1/compute-envs".into(),
            |c| {
                json!({"name": format!("env-new-{c}"), "provider": "static", "desired_nodes": 0})
                    .to_string()
            },
            [U, U, U, F, F, F, 201, 201],
        ),
        row(
            Method::GET,
            "/v1/compute-envs/{name}",
            |c| format!("/v1/compute-envs/env-{c}"),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/v1/compute-envs/{name}/activities",
            |c| format!("/v1/compute-envs/env-{c}/activities"),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/compute-envs/{name}/scale",
            |c| format!("/v1/compute-envs/env-{c}/scale"),
            |_| json!({"desired_nodes": 1}).to_string(),
            [U, U, U, F, F, F, 200, 200],
        ),
        row(
            Method::DELETE,
            "/v1/compute-envs/{name}",
            |c| format!("/v1/compute-envs/env-{c}"),
            none,
            [U, U, U, F, F, F, 204, 204],
        ),
        row(
            Method::GET,
            "/v1/nodes",
            |_| "/v1/nodes".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/nodes/{name}/revoke",
            |c| format!("/v1/nodes/node-{c}/revoke"),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
        row(
            Method::POST,
            "/v1/join-token/rotate",
            |_| "/v1/join-token/rotate".into(),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
        row(
            Method::GET,
            "/v1/projects",
            |_| "/v1/projects".into(),
            none,
            [U, U, U, 200, 200, 200, 200, 200],
        ),
        row(
            Method::POST,
            "/v1/projects",
            |_| "/v1/projects".into(),
            |c| json!({"name": format!("p-new-{c}")}).to_string(),
            [U, U, U, F, F, F, F, 201],
        ),
        row(
            Method::GET,
            "/v1/projects/{name}",
            |_| "/v1/projects/a".into(),
            none,
            [U, U, U, N, 200, 200, 200, 200],
        ),
        row(
            Method::DELETE,
            "/v1/projects/{name}",
            |c| format!("/v1/projects/p-{c}"),
            none,
            [U, U, U, F, F, F, F, 204],
        ),
        row(
            Method::GET,
            "/v1/tokens",
            |_| "/v1/tokens".into(),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
        row(
            Method::POST,
            "/v1/tokens",
            |_| "/v1/tokens".into(),
            |c| {
                json!({"name": format!("tok-new-{c}"), "project": "a", "role": "viewer"})
                    .to_string()
            },
            [U, U, U, F, F, F, F, 201],
        ),
        row(
            Method::POST,
            "/v1/tokens/{name}/revoke",
            |c| format!("/v1/tokens/tok-{c}/revoke"),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
        row(
            Method::GET,
            "/v1/audit",
            |_| "/v1/audit".into(),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
        row(
            Method::GET,
            "/v1/events",
            |_| "/v1/events".into(),
            none,
            [U, U, U, F, F, F, F, 200],
        ),
    ];

    // The table covers every route of the document that takes an API token.
    let doc = kiln_server::api::openapi_doc();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"].to_string().contains("api_token") {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let covered: BTreeSet<String> = table
        .iter()
        .map(|r| format!("{} {}", r.method, r.route))
        .collect();
    assert_eq!(
        covered, documented,
        "the table and the document's routes differ"
    );

    let mut failures = Vec::new();
    for r in &table {
        for (i, c) in CALLERS.iter().enumerate() {
            let before = snapshot(app).await;
            let uri = (r.uri)(c);
            let (status, body) = call(
                app,
                r.method.clone(),
                &uri,
                tokens[i].as_deref(),
                (r.body)(c).into_bytes(),
            )
            .await;
            let want = r.expect[i];
            if status.as_u16() != want {
                failures.push(format!(
                    "{} {uri} as {c}: {status} (want {want}): {body}",
                    r.method
                ));
                continue;
            }
            // A job just submitted runs on: let it finish, so the next snapshot holds still.
            if status == StatusCode::CREATED
                && let Some(id) = body["id"].as_str().filter(|i| i.starts_with("job-"))
            {
                wait_state(app, id, |s| s == "SUCCEED").await;
            }
            if want == 403 {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert_eq!(body["error"]["code"], "forbidden", "{body}");
                assert!(
                    message.contains("role"),
                    "a 403 names the role needed: {body}"
                );
            }
            if want >= 400 && want != 409 {
                let after = snapshot(app).await;
                if before != after {
                    failures.push(format!(
                        "{} {uri} as {c} was refused ({status}) but changed:\n{before}\n{after}",
                        r.method
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Lists show a project's token its own objects only.
    let other = tokens[3].as_deref();
    for uri in [
        "/v1/jobs",
        "/v1/task-templates",
        "/v1/storage-profiles",
        "/v1/compute-envs",
        "/v1/nodes",
    ] {
        let (status, list) = call(app, Method::GET, uri, other, Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list["items"],
            json!([]),
            "{uri} shows project b another project's: {list}"
        );
    }
    let (_, projects) = call(app, Method::GET, "/v1/projects", other, Vec::new()).await;
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
    assert_eq!(projects["items"][0]["name"], "b");

    // Every state-changing call was audited, refused ones included; no secret is in the log.
    let (status, audit) = admin(app, Method::GET, "/v1/audit?limit=1000", "").await;
    assert_eq!(status, StatusCode::OK);
    let items = audit["items"].as_array().unwrap();
    assert!(
        items.iter().any(|e| e["token"] == "t-submitter"
            && e["action"] == "DELETE /v1/jobs/{id}"
            && e["result"] == 204),
        "{audit}"
    );
    assert!(
        items.iter().any(|e| e["token"] == "t-viewer"
            && e["action"] == "POST /v1/jobs"
            && e["result"] == 403)
    );
    assert!(
        items
            .iter()
            .any(|e| e["token"] == "-" && e["result"] == 401)
    );
    assert!(items.iter().any(|e| e["token"] == "t-admin"
        && e["action"] == "POST /v1/jobs"
        && e["object"].as_str().unwrap().starts_with("job/job-")));
    let text = audit.to_string();
    for secret in tokens.iter().flatten().chain([&ADMIN.to_string()]) {
        assert!(
            !text.contains(secret.as_str()),
            "the audit log holds a token"
        );
    }
    assert!(!text.contains("SK-never-shown"));
}

/// A revoked token is refused on its very next call, and so is one that expired: no cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_holds_at_once() {
    let s = server();
    let app = &s.app;
    let t = create_token(app, "default", "viewer", "ci", None).await;
    assert_eq!(
        call(app, Method::GET, "/v1/jobs", Some(&t), Vec::new())
            .await
            .0,
        StatusCode::OK
    );
    let (status, info) = admin(app, Method::POST, "/v1/tokens/ci/revoke", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["state"], "revoked");
    let (status, body) = call(app, Method::GET, "/v1/jobs", Some(&t), Vec::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    let (_, list) = admin(app, Method::GET, "/v1/tokens", "").await;
    assert!(!list.to_string().contains(&t), "a list shows no secret");
    // A token of a project that does not exist, a bad role, a taken name.
    for (body, status, field) in [
        (json!({"project": "nope", "role": "viewer"}), 404, "project"),
        (json!({"project": "default", "role": "root"}), 400, "role"),
        (
            json!({"project": "default", "role": "viewer", "name": "ci"}),
            409,
            "name",
        ),
        (
            json!({"project": "default", "role": "viewer", "expires": "soon"}),
            400,
            "expires",
        ),
    ] {
        let (got, answer) = admin(app, Method::POST, "/v1/tokens", &body.to_string()).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
}
