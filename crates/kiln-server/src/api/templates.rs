//! Task templates (DESIGN §2 `template:`, §7 `/v1/task-templates`): create, list, show, delete,
//! and the lookup that `POST /v1/jobs` resolves `template: NAME` against.
//!
//! A template is stored as an envelope in `TemplateRecord::task_json`: the task fields as the
//! user wrote them (`task`, what `GET` answers, in the §2 form that `POST` accepts again) and the
//! [`RawTask`] they were validated into (`raw`, what submit merges). Submit reads `raw`, so a
//! template Kiln accepted is never re-validated against rules that may have changed since.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_api::{ErrorBody, TaskTemplate, TemplateList, code, paths};
use kiln_core::spec::{RawTask, SpecError, SpecErrors, Templates, parse_task_template_in};
use kiln_store::TemplateRecord;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::idempotency::Key;
use super::{ApiError, IdempotencyHeader, Path, Shared, body as body_bytes, json, on_store};
use crate::driver::now_ms;

/// Longest template description, as for a job's.
const MAX_DESCRIPTION: usize = 200;

/// What `task_json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The task fields as given (DESIGN §2 form).
    task: serde_json::Value,
    /// What they were validated into.
    raw: RawTask,
}

/// The template routes; the caller adds the admin check.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(show_template, delete_template))
}

/// `{name}`: a task template.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TemplatePath {
    /// The template's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    name: String,
}

/// Every stored template of `project` (every project's with `None`) that can be read, by
/// name, for `parse_job`. Reads the store directly; a record that does not decode is logged
/// and left out (a task naming it then gets the usual "unknown task template" error).
pub(super) async fn load(st: &Shared, project: Option<&str>) -> Result<Templates, ApiError> {
    let records = on_store(st, |s| s.list_templates()).await?;
    let mut out = Templates::new();
    for r in records {
        if project.is_some_and(|p| p != r.project) {
            continue;
        }
        match serde_json::from_str::<Stored>(&r.task_json) {
            Ok(s) => {
                out.insert(r.name, s.raw);
            }
            Err(e) => tracing::warn!("task template `{}` is unreadable, skipped: {e}", r.name),
        }
    }
    Ok(out)
}

/// 1–60 characters of `[A-Za-z0-9._-]`, as task names.
fn name_problem(s: &str) -> Option<String> {
    let n = s.chars().count();
    if n == 0 {
        return Some("must not be empty".into());
    }
    if n > 60 {
        return Some(format!("is {n} characters long; at most 60 are allowed"));
    }
    s.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("`{s}` contains {c:?}; only A-Z a-z 0-9 . _ - are allowed"))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_SPEC, message).field(field)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match name_problem(name) {
        Some(p) => Err(invalid("name", format!("invalid template name: {p}"))),
        None => Ok(()),
    }
}

/// The errors of a template's task fields, their paths under `task`.
fn under_task(e: SpecErrors) -> SpecErrors {
    SpecErrors(
        e.0.into_iter()
            .map(|e| SpecError {
                path: if e.path.is_empty() {
                    "task".into()
                } else {
                    format!("task.{}", e.path)
                },
                ..e
            })
            .collect(),
    )
}

fn answer(r: TemplateRecord) -> Result<TaskTemplate, ApiError> {
    let stored: Stored = serde_json::from_str(&r.task_json)
        .map_err(|e| ApiError::internal(format!("task template `{}`: {e}", r.name)))?;
    Ok(TaskTemplate {
        name: r.name,
        description: r.description,
        task: stored.task,
    })
}

/// Store a task template; a name in use is a conflict (delete it first).
#[utoipa::path(post, path = paths::TEMPLATES, request_body = TaskTemplate, params(IdempotencyHeader),
    responses(
        (status = 201, body = TaskTemplate),
        (status = 400, description = "a field is invalid (also a task field the schema leaves open)", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)))]
pub(super) async fn create_template(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(b)?;
    let scope = format!("POST /v1/task-templates {}", caller.token);
    let key = Key::from_headers(&scope, &headers, &bytes)?;
    if let Some(k) = &key
        && let Some(stored) = k.lookup(&st).await?
    {
        return Ok(stored.into_response());
    }
    let body: TaskTemplate = json(Ok(bytes))?;
    check_name(&body.name)?;
    if let Some(d) = &body.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        return Err(invalid(
            "description",
            format!("the description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    if !body.task.is_object() {
        return Err(invalid(
            "task",
            "task must be a mapping of task fields (command, instances, env, …)",
        ));
    }
    let bytes = serde_json::to_vec(&body.task).map_err(ApiError::internal)?;
    let raw = parse_task_template_in(&bytes, &st.catalog).map_err(under_task)?;
    let task_json = serde_json::to_string(&Stored {
        task: body.task.clone(),
        raw,
    })
    .map_err(ApiError::internal)?;
    let now = now_ms();
    let record = TemplateRecord {
        name: body.name.clone(),
        description: body.description.clone(),
        task_json,
        created_at: now,
        updated_at: now,
        project: caller.project.clone(),
    };
    // Insert-if-absent in the store: of two servers creating one name at once, one gets 409.
    let created = on_store(&st, move |s| s.create_template(&record)).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!(
                "task template `{}` already exists; delete it first to replace it",
                body.name
            ),
        )
        .field("name"));
    }
    if let Some(k) = key
        && let Some(first) = k
            .remember(
                &st,
                format!("task-template/{}", body.name),
                StatusCode::CREATED,
                &body,
            )
            .await?
    {
        return Ok(first.into_response());
    }
    let object = super::auth::AuditObject(format!("task-template/{}", body.name));
    Ok((StatusCode::CREATED, Extension(object), Json(body)).into_response())
}

/// Every task template, by name.
#[utoipa::path(get, path = paths::TEMPLATES, responses((status = 200, body = TemplateList)))]
pub(super) async fn list_templates(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<TemplateList>, ApiError> {
    let records = on_store(&st, |s| s.list_templates()).await?;
    let items = records
        .into_iter()
        .filter(|r| caller.sees(&r.project))
        .map(answer)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(TemplateList { items }))
}

/// A task template.
#[utoipa::path(get, path = paths::TEMPLATE, params(TemplatePath),
    responses((status = 200, body = TaskTemplate), (status = 404, body = ErrorBody)))]
pub(super) async fn show_template(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(TemplatePath { name }): Path<TemplatePath>,
) -> Result<Json<TaskTemplate>, ApiError> {
    check_name(&name)?;
    let n = name.clone();
    let record = on_store(&st, move |s| s.get_template(&n))
        .await?
        .filter(|r| caller.sees(&r.project))
        .ok_or_else(|| ApiError::not_found(format!("no task template `{name}`")))?;
    Ok(Json(answer(record)?))
}

/// Delete a task template; jobs submitted with it keep their copy.
#[utoipa::path(delete, path = paths::TEMPLATE, params(TemplatePath),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_template(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(TemplatePath { name }): Path<TemplatePath>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let n = name.clone();
    let visible = on_store(&st, move |s| s.get_template(&n))
        .await?
        .is_some_and(|r| caller.sees(&r.project));
    let n = name.clone();
    let deleted = visible && on_store(&st, move |s| s.delete_template(&n)).await?;
    if deleted {
        super::idempotency::forget(&st, format!("task-template/{name}")).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no task template `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_task_name_rules() {
        assert!(name_problem("base-1.x_y").is_none());
        assert!(name_problem(&"a".repeat(60)).is_none());
        assert!(name_problem(&"a".repeat(61)).is_some());
        assert!(name_problem("").is_some());
        assert!(name_problem("a b").is_some());
        assert!(name_problem("a/b").is_some());
    }

    #[test]
    fn stored_envelope_round_trips() {
        let raw =
            kiln_core::spec::parse_task_template(br#"{"command": "echo hi", "timeout": "10m"}"#)
                .unwrap();
        let text = serde_json::to_string(&Stored {
            task: serde_json::json!({"command": "echo hi", "timeout": "10m"}),
            raw: raw.clone(),
        })
        .unwrap();
        let back: Stored = serde_json::from_str(&text).unwrap();
        assert_eq!(back.raw, raw);
        assert_eq!(back.task["timeout"], "10m");
    }
}
