//! The OpenAPI document served at `/v1/openapi.json`.
//!
//! Each handler's `#[utoipa::path]` documents its path parameters, query parameters, body and the
//! statuses only it answers (201, 404, 409, …); the routers in `api` register handlers only
//! through `utoipa_axum::routes!`, so a route cannot exist without its entry here. [`complete`]
//! then adds what follows from where a route sits rather than from what it does, the same for
//! every route: its security scheme and 401 (from the router group), 400 (every route with a
//! parameter or a body: a malformed one is refused), 413 (every route with a body: the size
//! limit), 500 and 503 (an internal error, a stopped scheduler). Every error answer carries the
//! `ErrorBody` schema.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(info(
    title = "Kiln",
    description = "Self-hosted batch compute: the REST API and the agent protocol. Errors are \
                   `{\"error\": {\"code\", \"message\", \"field\"}}` with a 4xx or 5xx status."
))]
struct ApiDoc;

/// Who may call a group of routes.
#[derive(Debug, Clone, Copy)]
enum Access {
    Public,
    /// The REST API: an API token of the role the route needs, or the admin token.
    Api,
    /// `register`: the join token, or a registered node's own credential.
    Join,
    /// The rest of the agent protocol: a node's credential.
    Node,
}

impl Access {
    /// The security schemes any one of which the group takes.
    fn schemes(self) -> &'static [&'static str] {
        match self {
            Access::Public => &[],
            Access::Api => &["api_token"],
            Access::Join => &["join_token", "node_credential"],
            Access::Node => &["node_credential"],
        }
    }
}

/// The document, built once.
pub fn openapi_doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut base = ApiDoc::openapi();
    base.merge(kiln_api::WireSchemas::openapi());
    let mut doc = to_value(base);
    for (access, group) in [
        (Access::Public, super::public_routes().into_openapi()),
        (Access::Api, super::api_routes().into_openapi()),
        (Access::Join, super::join_routes().into_openapi()),
        (Access::Node, super::agent_routes().into_openapi()),
    ] {
        let mut group = to_value(group);
        if let Some(paths) = group.get_mut("paths").and_then(Value::as_object_mut) {
            for (path, item) in paths.iter_mut() {
                for (_, op) in operations(item) {
                    complete(op, path, access);
                }
            }
        }
        merge(&mut doc, group);
    }
    widen_u32(&mut doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in schemas.values_mut() {
            one_object(schema);
        }
    }
    doc["components"]["securitySchemes"] = json!({
        "api_token": {
            "type": "http", "scheme": "bearer",
            "description": "an API token of a project and role (`kiln-token:NAME:SECRET`, from \
                            `POST /v1/tokens`), or the admin token (`DATA_DIR/admin-token`)"
        },
        "join_token": {
            "type": "http", "scheme": "bearer",
            "description": "the node join token (`DATA_DIR/agent-token`): it only registers"
        },
        "node_credential": {
            "type": "http", "scheme": "bearer",
            "description": "a node's own credential (`kiln-node:NAME:SECRET`), answered by its \
                            registration; it covers only that node and its attempts"
        },
    });
    doc
}

/// A `#[serde(flatten)]` field comes out of utoipa as `allOf: [inner, outer]`; when `inner`
/// refuses unknown fields (a request type with `deny_unknown_fields`), no object can satisfy both
/// halves. The wire form is one object, so the schema says so: the halves' properties in one
/// object, with `additionalProperties: false` if a half had it.
fn one_object(schema: &mut Value) {
    let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
        return;
    };
    if !parts
        .iter()
        .all(|p| p.get("type") == Some(&json!("object")) && p.get("properties").is_some())
    {
        return;
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut closed = false;
    for p in parts {
        if let Some(props) = p.get("properties").and_then(Value::as_object) {
            properties.extend(props.clone());
        }
        if let Some(r) = p.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
        closed |= p.get("additionalProperties") == Some(&json!(false));
    }
    let description = schema.get("description").cloned();
    *schema = json!({"type": "object", "properties": properties, "required": required});
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    if let Some(d) = description {
        schema["description"] = d;
    }
}

/// utoipa writes a `u32` as `format: int32, minimum: 0` (or a given minimum), which says 2^31 and more are refused;
/// the server takes every `u32`. Say so: `format: int64` up to 4294967295.
fn widen_u32(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("format") == Some(&json!("int32"))
                && m.get("minimum").and_then(Value::as_u64).is_some()
                && !m.contains_key("maximum")
            {
                m.insert("format".into(), json!("int64"));
                m.insert("maximum".into(), json!(u32::MAX));
            }
            // A `u64`: `format: int64, minimum: 0`; the server takes all of them.
            if m.get("format") == Some(&json!("int64"))
                && m.get("minimum") == Some(&json!(0))
                && !m.contains_key("maximum")
            {
                m.remove("format");
                m.insert("maximum".into(), json!(u64::MAX));
            }
            m.values_mut().for_each(widen_u32);
        }
        Value::Array(a) => a.iter_mut().for_each(widen_u32),
        _ => {}
    }
}

fn to_value(doc: utoipa::openapi::OpenApi) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The operations of a path item, by method.
fn operations(item: &mut Value) -> impl Iterator<Item = (&String, &mut Value)> {
    item.as_object_mut().into_iter().flat_map(|m| {
        m.iter_mut().filter(|(k, _)| {
            matches!(
                k.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
            )
        })
    })
}

/// Adds the answers every route of its group gives, its security and its tag.
fn complete(op: &mut Value, path: &str, access: Access) {
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let has_body = op.get("requestBody").is_some();
    let Some(obj) = op.as_object_mut() else {
        return;
    };
    obj.insert("tags".into(), json!([tag(path)]));
    obj.insert(
        "security".into(),
        Value::Array(access.schemes().iter().map(|s| json!({ *s: [] })).collect()),
    );
    let responses = obj
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let mut add = |status: &str, description: &str| {
        if let Some(r) = responses.as_object_mut() {
            r.entry(status)
                .or_insert_with(|| error_response(description));
        }
    };
    if has_params || has_body {
        add("400", "a malformed parameter or body; `field` names it");
    }
    if has_body {
        add("413", "the body is larger than the limit");
    }
    if matches!(access, Access::Api) {
        add(
            "403",
            "the token's role may not do this; the message names the role needed",
        );
    }
    if !access.schemes().is_empty() {
        add("401", "a missing, wrong, expired or revoked bearer token");
        add("503", "the scheduler has stopped");
    }
    add(
        "500",
        "an internal error; the detail is in the server's log",
    );
    // A response needs a description; give the status's reason where the handler gave none.
    if let Some(r) = responses.as_object_mut() {
        for (status, response) in r.iter_mut() {
            let empty = response
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if empty {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("answer");
                response["description"] = Value::String(reason.into());
            }
        }
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The tag that groups an operation: the first path segment after `/v1/` (or `/`).
fn tag(path: &str) -> String {
    path.trim_start_matches("/v1/")
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("tencent")
        .trim_end_matches(".json")
        .to_string()
}

/// Adds `group`'s paths and component schemas to `doc`.
fn merge(doc: &mut Value, group: Value) {
    for key in ["paths"] {
        if let Some(from) = group.get(key).and_then(Value::as_object) {
            let into = doc[key].as_object_mut();
            if let Some(into) = into {
                for (k, v) in from {
                    match into.get_mut(k).and_then(Value::as_object_mut) {
                        Some(existing) => {
                            if let Some(v) = v.as_object() {
                                existing.extend(v.clone());
                            }
                        }
                        None => {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            } else {
                doc[key] = Value::Object(from.clone());
            }
        }
    }
    if let Some(schemas) = group
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (k, v) in schemas {
            doc["components"]["schemas"][k] = v.clone();
        }
    }
}
