//! The OpenAPI document is the API's contract: every route is in it, with every path parameter,
//! its constraints and every status it can answer. schemathesis checks the server against it
//! (crates/kiln/tests/openapi_contract.rs); these tests check the document's own completeness
//! and that no route can bypass it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::http::{Method, StatusCode};
use common::{ADMIN, AGENT, call, server};
use kiln_server::api::openapi_doc;
use serde_json::Value;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Every operation: (path, method, operation).
fn operations() -> Vec<(String, String, Value)> {
    let doc = openapi_doc();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Routes are added only with `OpenApiRouter::routes(routes!(handler, …))`, which takes the path
/// and the methods from the handler's `#[utoipa::path]`: a route added any other way would be
/// missing from the document.
#[test]
fn routes_are_added_only_through_their_documentation() {
    let mut files = Vec::new();
    rs_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut offenders = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for bypass in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                if line.contains(bypass) {
                    offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes added without their OpenAPI annotation; annotate the handler with \
         #[utoipa::path(method, path = paths::X, params(…), responses(…))] and register it with \
         .routes(routes!(handler)):\n{}",
        offenders.join("\n")
    );
}

/// What every operation must say.
#[test]
fn every_operation_is_complete() {
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, method, op) in operations() {
        let at = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        if id.is_empty() || !ids.insert(id.clone()) {
            problems.push(format!("{at}: missing or repeated operationId `{id}`"));
        }
        if op["summary"].as_str().unwrap_or_default().is_empty() {
            problems.push(format!("{at}: no doc comment (summary)"));
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        // Every `{name}` in the path is a required path parameter with a constraint.
        for seg in path.split('/') {
            let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                continue;
            };
            match params
                .iter()
                .find(|p| p["name"] == name && p["in"] == "path")
            {
                None => problems.push(format!("{at}: path parameter `{name}` not declared")),
                Some(p) => {
                    let s = &p["schema"];
                    if p["required"] != true {
                        problems.push(format!("{at}: path parameter `{name}` not required"));
                    }
                    if s["pattern"].is_null() && s["maximum"].is_null() {
                        problems.push(format!(
                            "{at}: path parameter `{name}` has no pattern or range"
                        ));
                    }
                }
            }
        }
        let responses = op["responses"].as_object().unwrap();
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{at}: no success status"));
        }
        let mut want = vec!["500"];
        if !params.is_empty() || !op["requestBody"].is_null() {
            want.push("400");
        }
        if !op["requestBody"].is_null() {
            want.push("413");
        }
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            want.push("401");
        }
        for status in want {
            if !responses.contains_key(status) {
                problems.push(format!("{at}: status {status} not documented"));
            }
        }
        for (status, r) in responses {
            if (status.starts_with('4') || status.starts_with('5'))
                && r.pointer("/content/application~1json/schema/$ref")
                    != Some(&Value::from("#/components/schemas/ErrorBody"))
            {
                problems.push(format!("{at}: {status} is not an ErrorBody"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A value that fits a path parameter's schema.
fn sample(param: &Value) -> String {
    if param["schema"]["type"] == "integer" {
        "0".into()
    } else {
        "x".into()
    }
}

/// Every documented operation is routed: with its token and valid path parameters it reaches
/// its handler (which may still answer 404 for a job that does not exist, but not with the
/// router's `no such route`, nor 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let s = server();
    for (path, method, op) in operations() {
        let mut uri = path.clone();
        for p in op["parameters"].as_array().cloned().unwrap_or_default() {
            if p["in"] == "path" {
                uri = uri.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), &sample(&p));
            }
        }
        let token = match op["security"].pointer("/0").and_then(Value::as_object) {
            Some(o) if o.contains_key("join_token") => Some(AGENT),
            // A credential of the right form reaches the handler (which then refuses it).
            Some(o) if o.contains_key("node_credential") => Some("kiln-node:n:0000"),
            Some(_) => Some(ADMIN),
            None => None,
        };
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = call(&s.app, m, &uri, token, b"{}".to_vec()).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {body}"
        );
        assert_ne!(
            body["error"]["message"], "no such route",
            "{method} {uri} is documented but not routed"
        );
    }
}
