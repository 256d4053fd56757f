//! Projects, API tokens and the audit log: `/v1/projects`, `/v1/tokens`, `/v1/audit`.
//!
//! Creating a token answers its secret once; the store keeps only its SHA-256 digest. Lists of
//! projects show a non-admin only its own project.

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_api::{
    AuditEntry, AuditList, ErrorBody, Project, ProjectList, ProjectSpec, TokenCreated, TokenInfo,
    TokenList, TokenRequest, code, paths,
};
use kiln_store::{DEFAULT_PROJECT, ProjectRecord, TokenRecord};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{AuditObject, BOOTSTRAP_ADMIN, Caller, Role};
use super::{ApiError, Path, Query, Shared, digest, hex, json, new_secret, on_store, valid_name};
use crate::driver::now_ms;
use crate::wire::rfc3339;

/// Longest project description, as for a job's.
const MAX_DESCRIPTION: usize = 200;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(show_project, delete_project))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(audit))
}

/// `{name}`: a project.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ProjectPath {
    /// The project's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    name: String,
}

/// `{name}`: an API token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TokenPath {
    /// The token's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    name: String,
}

fn check_name(name: &str, field: &str, what: &str) -> Result<(), ApiError> {
    if valid_name(name) && name.len() <= 60 {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "`{name}` is not a valid {what} name: 1-60 characters of A-Z a-z 0-9 . _ -"
        ))
        .field(field))
    }
}

fn project_answer(r: ProjectRecord) -> Project {
    Project {
        name: r.name,
        description: r.description,
        created_at: rfc3339(r.created_at),
    }
}

/// Every project the token may see, by name (an admin's: all of them).
#[utoipa::path(get, path = paths::PROJECTS, responses((status = 200, body = ProjectList)))]
pub(super) async fn list_projects(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<ProjectList>, ApiError> {
    let records = on_store(&st, |s| s.list_projects()).await?;
    let items = records
        .into_iter()
        .filter(|p| caller.sees(&p.name))
        .map(project_answer)
        .collect();
    Ok(axum::Json(ProjectList { items }))
}

/// Create a project (admin).
#[utoipa::path(post, path = paths::PROJECTS, request_body = ProjectSpec, responses(
    (status = 201, body = Project),
    (status = 409, description = "the name is taken", body = ErrorBody)))]
pub(super) async fn create_project(
    State(st): State<Shared>,
    b: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let spec: ProjectSpec = json(b)?;
    check_name(&spec.name, "name", "project")?;
    if spec
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::bad(format!(
            "the description is longer than {MAX_DESCRIPTION} characters"
        ))
        .field("description"));
    }
    let record = ProjectRecord {
        name: spec.name.clone(),
        description: spec.description.clone(),
        created_at: now_ms(),
    };
    let r = record.clone();
    if !on_store(&st, move |s| s.create_project(&r)).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!("project `{}` exists already", spec.name),
        )
        .field("name"));
    }
    let object = AuditObject(format!("project/{}", spec.name));
    Ok((
        StatusCode::CREATED,
        axum::Extension(object),
        axum::Json(project_answer(record)),
    )
        .into_response())
}

/// A project.
#[utoipa::path(get, path = paths::PROJECT, params(ProjectPath), responses(
    (status = 200, body = Project), (status = 404, body = ErrorBody)))]
pub(super) async fn show_project(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(ProjectPath { name }): Path<ProjectPath>,
) -> Result<axum::Json<Project>, ApiError> {
    check_name(&name, "name", "project")?;
    let n = name.clone();
    let record = on_store(&st, move |s| s.get_project(&n))
        .await?
        .filter(|p| caller.sees(&p.name))
        .ok_or_else(|| ApiError::not_found(format!("no project `{name}`")))?;
    Ok(axum::Json(project_answer(record)))
}

/// Delete a project that owns nothing any more (admin); `default` stays.
#[utoipa::path(delete, path = paths::PROJECT, params(ProjectPath), responses(
    (status = 204, description = "deleted"),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the `default` project, or one that still owns jobs, templates, profiles, environments or tokens", body = ErrorBody)))]
pub(super) async fn delete_project(
    State(st): State<Shared>,
    Path(ProjectPath { name }): Path<ProjectPath>,
) -> Result<StatusCode, ApiError> {
    check_name(&name, "name", "project")?;
    if name == DEFAULT_PROJECT {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            "the `default` project cannot be deleted",
        ));
    }
    let n = name.clone();
    let owned = on_store(&st, move |s| -> Result<Option<&'static str>, ApiError> {
        if s.get_project(&n)?.is_none() {
            return Err(ApiError::not_found(format!("no project `{n}`")));
        }
        let jobs = s.list_jobs(&kiln_store::JobQuery {
            project: Some(n.clone()),
            limit: 1,
            ..Default::default()
        })?;
        if !jobs.is_empty() {
            return Ok(Some("jobs"));
        }
        if s.list_templates()?.iter().any(|t| t.project == n) {
            return Ok(Some("task templates"));
        }
        if s.list_storage_profiles()?.iter().any(|p| p.project == n) {
            return Ok(Some("storage profiles"));
        }
        if s.list_compute_envs()?
            .iter()
            .any(|e| e.projects.contains(&n))
        {
            return Ok(Some("compute environments"));
        }
        if s.list_tokens()?
            .iter()
            .any(|t| t.project == n && t.revoked_at.is_none())
        {
            return Ok(Some("tokens that are not revoked"));
        }
        Ok(None)
    })
    .await?;
    if let Some(what) = owned {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!("project `{name}` still has {what}; delete or move them first"),
        ));
    }
    let n = name.clone();
    if on_store(&st, move |s| s.delete_project(&n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no project `{name}`")))
    }
}

fn token_state(r: &TokenRecord, now: u64) -> &'static str {
    if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn token_answer(r: &TokenRecord, now: u64) -> TokenInfo {
    TokenInfo {
        name: r.name.clone(),
        project: r.project.clone(),
        role: r.role.clone(),
        state: token_state(r, now).into(),
        created_at: rfc3339(r.created_at),
        expires_at: r.expires_at.map(rfc3339),
        revoked_at: r.revoked_at.map(rfc3339),
    }
}

/// Create an API token of a project and role (admin). Its secret is in this answer only.
#[utoipa::path(post, path = paths::TOKENS, request_body = TokenRequest, responses(
    (status = 201, body = TokenCreated),
    (status = 404, description = "no such project", body = ErrorBody),
    (status = 409, description = "the name is taken", body = ErrorBody)))]
pub(super) async fn create_token(
    State(st): State<Shared>,
    b: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let req: TokenRequest = json(b)?;
    check_name(&req.project, "project", "project")?;
    let Some(role) = Role::parse(&req.role) else {
        return Err(ApiError::bad(format!(
            "role must be viewer, submitter, operator or admin, not `{}`",
            req.role
        ))
        .field("role"));
    };
    let name = match &req.name {
        Some(n) => {
            check_name(n, "name", "token")?;
            if n == BOOTSTRAP_ADMIN || n == "-" {
                return Err(ApiError::bad(format!(
                    "`{n}` names the data directory's admin token; choose another name"
                ))
                .field("name"));
            }
            n.clone()
        }
        None => format!("tok-{}", &new_secret().map_err(ApiError::internal)?[..8]),
    };
    let now = now_ms();
    let expires_at = match &req.expires {
        None => None,
        Some(text) => {
            let ms = kiln_core::spec::parse_duration(text)
                .map_err(|e| ApiError::bad(e).field("expires"))?;
            if ms == 0 {
                return Err(ApiError::bad("expires must be longer than 0").field("expires"));
            }
            Some(now.saturating_add(ms))
        }
    };
    let token = format!(
        "{}{name}:{}",
        kiln_api::API_TOKEN_PREFIX,
        new_secret().map_err(ApiError::internal)?
    );
    let record = TokenRecord {
        name: name.clone(),
        digest: hex(&digest(&token)),
        project: req.project.clone(),
        role: role.as_str().into(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let project = req.project.clone();
    let created = on_store(&st, move |s| -> Result<Option<bool>, ApiError> {
        if s.get_project(&project)?.is_none() {
            return Ok(None);
        }
        Ok(Some(s.create_token(&record)?))
    })
    .await?;
    match created {
        None => {
            return Err(
                ApiError::not_found(format!("no project `{}`", req.project)).field("project")
            );
        }
        Some(false) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                code::CONFLICT,
                format!("a token named `{name}` exists already"),
            )
            .field("name"));
        }
        Some(true) => {}
    }
    let answer = TokenCreated {
        name: name.clone(),
        token,
        project: req.project,
        role: role.as_str().into(),
        expires_at: expires_at.map(rfc3339),
    };
    Ok((
        StatusCode::CREATED,
        axum::Extension(AuditObject(format!("token/{name}"))),
        axum::Json(answer),
    )
        .into_response())
}

/// Every API token, revoked and expired ones included (admin); never a secret.
#[utoipa::path(get, path = paths::TOKENS, responses((status = 200, body = TokenList)))]
pub(super) async fn list_tokens(
    State(st): State<Shared>,
) -> Result<axum::Json<TokenList>, ApiError> {
    let now = now_ms();
    let records = on_store(&st, |s| s.list_tokens()).await?;
    let items = records.iter().map(|r| token_answer(r, now)).collect();
    Ok(axum::Json(TokenList { items }))
}

/// Revoke a token (admin): its next call, on any server, is refused with 401.
#[utoipa::path(post, path = paths::TOKEN_REVOKE, params(TokenPath), responses(
    (status = 200, body = TokenInfo),
    (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(st): State<Shared>,
    Path(TokenPath { name }): Path<TokenPath>,
) -> Result<axum::Json<TokenInfo>, ApiError> {
    check_name(&name, "name", "token")?;
    let now = now_ms();
    let n = name.clone();
    let record = on_store(&st, move |s| -> Result<Option<TokenRecord>, ApiError> {
        s.revoke_token(&n, now)?;
        Ok(s.get_token(&n)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no token `{name}`")))?;
    Ok(axum::Json(token_answer(&record, now)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only calls from then on: RFC 3339 (`2026-01-02T03:04:05Z`) or a duration back from now
    /// (`1h`, `7d`).
    #[param(pattern = "^[0-9][0-9A-Za-z:.+ -]{0,40}$")]
    since: Option<String>,
    /// `next` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    cursor: Option<String>,
    /// At most this many records [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// When `since` is, in ms since the epoch: an RFC 3339 time or a duration back from `now`.
fn since_ms(text: &str, now: u64) -> Result<u64, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(u64::try_from(t.as_millisecond()).unwrap_or(0));
    }
    kiln_core::spec::parse_duration(text)
        .map(|d| now.saturating_sub(d))
        .map_err(|e| format!("since must be an RFC 3339 time or a duration: {e}"))
}

/// The audit log of state-changing calls, oldest first, a page at a time (admin).
#[utoipa::path(get, path = paths::AUDIT, params(AuditQuery), responses((status = 200, body = AuditList)))]
pub(super) async fn audit(
    State(st): State<Shared>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditList>, ApiError> {
    let since = match q.since.as_deref() {
        Some(s) => since_ms(s, now_ms()).map_err(|e| ApiError::bad(e).field("since"))?,
        None => 0,
    };
    let after = match q.cursor.as_deref() {
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::bad(format!("bad cursor `{c}`")).field("cursor"))?,
        None => 0,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 1000").field("limit"));
    }
    let rows = on_store(&st, move |s| s.audit(since, after, limit + 1)).await?;
    let more = rows.len() > limit as usize;
    let items: Vec<AuditEntry> = rows
        .iter()
        .take(limit as usize)
        .map(|r| AuditEntry {
            seq: r.seq,
            at: rfc3339(r.at),
            token: r.token.clone(),
            project: r.project.clone(),
            action: r.action.clone(),
            object: r.object.clone(),
            result: r.result,
        })
        .collect();
    let next = more
        .then(|| items.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(axum::Json(AuditList { items, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_back() {
        assert_eq!(since_ms("1h", 10_000_000), Ok(10_000_000 - 3_600_000));
        assert_eq!(since_ms("2026-01-01T00:00:00Z", 0), Ok(1_767_225_600_000));
        assert!(since_ms("yesterday", 0).is_err());
    }
}
