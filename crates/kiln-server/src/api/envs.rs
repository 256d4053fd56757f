//! `/v1/compute-envs`: create, list, show, scale and delete compute environments.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use kiln_api::{ComputeEnv, ComputeEnvDetail, ComputeEnvList, ErrorBody, ScaleRequest, paths};

use super::{ApiError, Shared, json, valid_name};
use crate::envs::check_env;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(paths::COMPUTE_ENVS, post(create_env).get(list_envs))
        .route(paths::COMPUTE_ENV, get(show_env).delete(delete_env))
        .route(paths::COMPUTE_ENV_SCALE, post(scale_env))
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

/// Create a compute environment (`provider`: `local`, `docker` or `static`). A `docker`
/// environment needs `image`, present on the server's Docker Engine, which must answer.
#[utoipa::path(post, path = "/v1/compute-envs", request_body = ComputeEnv,
    responses((status = 201, body = ComputeEnvDetail), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_env(
    State(st): State<Shared>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ComputeEnvDetail>), ApiError> {
    let env: ComputeEnv = json(b)?;
    // Field errors first; then what only the Docker Engine can tell, off the driver thread.
    check_env(&env, &st.catalog)?;
    if env.provider == "docker"
        && let Some(docker) = st.handle.call(|d| d.docker_nodes()).await?
    {
        docker.check(&env).await?;
    }
    let detail = st.handle.call(move |d| d.create_env(env)).await??;
    Ok((StatusCode::CREATED, Json(detail)))
}

#[utoipa::path(get, path = "/v1/compute-envs", responses((status = 200, body = ComputeEnvList)))]
pub(super) async fn list_envs(State(st): State<Shared>) -> Result<Json<ComputeEnvList>, ApiError> {
    let items = st.handle.call(|d| d.list_envs()).await??;
    Ok(Json(ComputeEnvList { items }))
}

#[utoipa::path(get, path = "/v1/compute-envs/{name}", responses((status = 200, body = ComputeEnvDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_env(
    State(st): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<ComputeEnvDetail>, ApiError> {
    check_name(&name)?;
    Ok(Json(st.handle.call(move |d| d.get_env(&name)).await??))
}

/// Grow or shrink the environment; shrinking drains nodes before they leave.
#[utoipa::path(post, path = "/v1/compute-envs/{name}/scale", request_body = ScaleRequest,
    responses((status = 200, body = ComputeEnvDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn scale_env(
    State(st): State<Shared>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<ComputeEnvDetail>, ApiError> {
    check_name(&name)?;
    let req: ScaleRequest = json(b)?;
    if req.desired_nodes > 1000 {
        return Err(ApiError::bad("desired_nodes must be at most 1000").field("desired_nodes"));
    }
    Ok(Json(
        st.handle
            .call(move |d| d.scale_env(&name, req.desired_nodes))
            .await??,
    ))
}

#[utoipa::path(delete, path = "/v1/compute-envs/{name}", responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_env(
    State(st): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    st.handle.call(move |d| d.delete_env(&name)).await??;
    Ok(StatusCode::NO_CONTENT)
}
