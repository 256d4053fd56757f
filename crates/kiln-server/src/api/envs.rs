//! `/v1/compute-envs`: create, list, show, scale and delete compute environments.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_api::{
    ActivityList, ComputeEnv, ComputeEnvDetail, ComputeEnvList, ErrorBody, ScaleRequest, paths,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::idempotency::Key;
use super::on_store;
use super::{
    ApiError, IdempotencyHeader, Path, Query, Shared, body as body_bytes, json, valid_name,
};
use crate::envs::{MAX_DESIRED_NODES, check_env};

/// Environment `name`'s record, if the caller's project is one it serves (else 404, as for
/// none); with `change`, only the owner project's operators (or an admin) may: 403 for a
/// project it is only shared with.
async fn visible_env(
    st: &Shared,
    caller: &Caller,
    name: &str,
    change: bool,
) -> Result<kiln_store::ComputeEnvRecord, ApiError> {
    let n = name.to_string();
    let record = on_store(st, move |s| s.get_compute_env(&n))
        .await?
        .filter(|r| caller.sees_any(&r.projects))
        .ok_or_else(|| ApiError::not_found(format!("no compute environment `{name}`")))?;
    if change
        && !record
            .projects
            .first()
            .is_some_and(|owner| caller.sees(owner))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            kiln_api::code::FORBIDDEN,
            format!(
                "compute environment `{name}` is shared with project `{}`: only its owner's \
                 operators or an admin may change it",
                caller.project
            ),
        ));
    }
    Ok(record)
}

/// The projects a new environment serves: those asked (each must exist, and be the caller's
/// own unless it is an admin), else the caller's project.
async fn projects_for(
    st: &Shared,
    caller: &Caller,
    asked: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let Some(asked) = asked.filter(|a| !a.is_empty()) else {
        return Ok(vec![caller.project.clone()]);
    };
    let mut out: Vec<String> = Vec::new();
    for p in asked {
        let p = caller
            .project_for(Some(&p))
            .map_err(|e| e.field("projects"))?;
        let q = p.clone();
        if on_store(st, move |s| s.get_project(&q)).await?.is_none() {
            return Err(ApiError::not_found(format!("no project `{p}`")).field("projects"));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Every task of `spec` that names a compute environment must name one that serves
/// `project`: one that exists but serves only others is refused like an unknown name would
/// be at dispatch, before anything is stored.
pub(super) async fn check_shared(
    st: &Shared,
    spec: &kiln_core::model::JobSpec,
    project: &str,
) -> Result<(), ApiError> {
    let named: Vec<(String, String)> = spec
        .tasks
        .iter()
        .filter_map(|t| t.compute_env.clone().map(|e| (t.name.clone(), e)))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let envs = on_store(st, |s| s.list_compute_envs()).await?;
    for (task, env) in named {
        if let Some(r) = envs.iter().find(|r| r.name == env)
            && !r.projects.iter().any(|p| p == project)
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                kiln_api::code::INVALID_SPEC,
                format!("no compute environment `{env}` serves project `{project}`"),
            )
            .field(format!("tasks.{task}.compute_env")));
        }
    }
    Ok(())
}

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(create_env, list_envs))
        .routes(routes!(show_env, delete_env))
        .routes(routes!(scale_env))
        .routes(routes!(env_activities))
}

/// `{name}`: a compute environment.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EnvPath {
    /// The environment's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    name: String,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(
            ApiError::bad(format!("`{name}` is not a valid compute environment name"))
                .field("name"),
        )
    }
}

/// Create a compute environment (`provider`: `local`, `docker`, `slurm` or `static`). A
/// `docker` environment needs `image`, present on the server's Docker Engine, which must
/// answer; a `slurm` environment needs Slurm's tools on the server's host.
#[utoipa::path(post, path = paths::COMPUTE_ENVS, request_body = ComputeEnv, params(IdempotencyHeader),
    responses(
        (status = 201, body = ComputeEnvDetail),
        (status = 400, description = "a field is invalid (also one the schema cannot say: a docker environment without `image`, an unknown instance type, min_nodes above max_nodes, a bad partition name)", body = ErrorBody),
        (status = 404, description = "a project of `projects` does not exist (or is not the token's)", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)))]
pub(super) async fn create_env(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(b)?;
    let scope = format!("POST /v1/compute-envs {}", caller.token);
    let key = Key::from_headers(&scope, &headers, &bytes)?;
    if let Some(k) = &key
        && let Some(stored) = k.lookup(&st).await?
    {
        return Ok(stored.into_response());
    }
    let mut env: ComputeEnv = json(Ok(bytes))?;
    env.projects = Some(projects_for(&st, &caller, env.projects.take()).await?);
    // Field errors first; then what only the Docker Engine can tell, off the driver thread.
    check_env(&env, &st.catalog)?;
    if env.provider == "docker"
        && let Some(docker) = st.handle.call(|d| d.docker_nodes()).await?
    {
        docker.check(&env).await?;
    }
    if env.provider == "slurm"
        && let Some(slurm) = st.handle.call(|d| d.slurm_nodes()).await?
    {
        slurm.check().await?;
    }
    let detail = st.handle.call(move |d| d.create_env(env)).await??;
    if let Some(k) = key
        && let Some(first) = k
            .remember(
                &st,
                format!("compute-env/{}", detail.env.name),
                StatusCode::CREATED,
                &detail,
            )
            .await?
    {
        return Ok(first.into_response());
    }
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// Every compute environment with its nodes.
#[utoipa::path(get, path = paths::COMPUTE_ENVS, responses((status = 200, body = ComputeEnvList)))]
pub(super) async fn list_envs(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ComputeEnvList>, ApiError> {
    let mut items = st.handle.call(|d| d.list_envs()).await??;
    items.retain(|e| caller.sees_any(e.env.projects.as_deref().unwrap_or_default()));
    Ok(Json(ComputeEnvList { items }))
}

/// A compute environment with its nodes.
#[utoipa::path(get, path = paths::COMPUTE_ENV, params(EnvPath), responses((status = 200, body = ComputeEnvDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_env(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(EnvPath { name }): Path<EnvPath>,
) -> Result<Json<ComputeEnvDetail>, ApiError> {
    check_name(&name)?;
    visible_env(&st, &caller, &name, false).await?;
    Ok(Json(st.handle.call(move |d| d.get_env(&name)).await??))
}

/// Grow or shrink the environment; shrinking drains nodes before they leave. An environment
/// that scales with its backlog (`max_nodes`) has no desired size: 409.
#[utoipa::path(post, path = paths::COMPUTE_ENV_SCALE, params(EnvPath), request_body = ScaleRequest,
    responses(
        (status = 200, body = ComputeEnvDetail),
        (status = 400, description = "desired_nodes is out of range", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the environment scales with its backlog (min_nodes/max_nodes): it has no desired size", body = ErrorBody)))]
pub(super) async fn scale_env(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(EnvPath { name }): Path<EnvPath>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<ComputeEnvDetail>, ApiError> {
    check_name(&name)?;
    visible_env(&st, &caller, &name, true).await?;
    let req: ScaleRequest = json(b)?;
    if req.desired_nodes > MAX_DESIRED_NODES {
        return Err(
            ApiError::bad(format!("desired_nodes must be at most {MAX_DESIRED_NODES}"))
                .field("desired_nodes"),
        );
    }
    Ok(Json(
        st.handle
            .call(move |d| d.scale_env(&name, req.desired_nodes))
            .await??,
    ))
}

/// Delete a compute environment; its nodes are drained and stopped.
#[utoipa::path(delete, path = paths::COMPUTE_ENV, params(EnvPath), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
pub(super) async fn delete_env(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(EnvPath { name }): Path<EnvPath>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    visible_env(&st, &caller, &name, true).await?;
    let n = name.clone();
    super::act(&st, crate::commands::Command::DeleteEnv { env: n }).await?;
    super::idempotency::forget(&st, format!("compute-env/{name}")).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ActivityQuery {
    /// Activities to skip, newest first [default 0].
    #[param(minimum = 0)]
    offset: Option<u32>,
    /// At most this many [default 20].
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// The environment's scaling activities, newest first (Tencent's
/// `DescribeComputeEnvActivities`): each node made or removed, with its cause and state.
#[utoipa::path(get, path = paths::COMPUTE_ENV_ACTIVITIES, params(EnvPath, ActivityQuery),
    responses(
        (status = 200, body = ActivityList),
        (status = 400, description = "limit is out of range", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn env_activities(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(EnvPath { name }): Path<EnvPath>,
    Query(q): Query<ActivityQuery>,
) -> Result<Json<ActivityList>, ApiError> {
    check_name(&name)?;
    visible_env(&st, &caller, &name, false).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 100").field("limit"));
    }
    let offset = q.offset.unwrap_or(0);
    Ok(Json(
        st.handle
            .call(move |d| d.env_activities(&name, offset, limit))
            .await??,
    ))
}
