//! The REST API (DESIGN §7) and the agent protocol over HTTP. Handlers parse and check the
//! request, then run the operation on the driver thread through [`Handle::call`]. Every error
//! leaves as `{"error": {"code", "message", "field"}}` with a 4xx status for bad input; the
//! detail of a 500 is logged, never sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use kiln_api::{
    ErrorBody, Health, HeartbeatRequest, JobList, JobSummary, LeaseRequest, LeaseResponse,
    LogAppendRequest, LogAppendResponse, NodeList, RegisterRequest, ReportRequest, ReportResponse,
    SubmitResponse, code, paths,
};
use kiln_core::model::Catalog;
use kiln_core::spec::{MAX_SPEC_BYTES, SpecErrors};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cluster::{AgentCallError, LeaseNotify, NodeCaller};
use crate::commands::Command;
use crate::driver::{DriverGone, Handle};
use crate::jobs::JobOpError;
use crate::views;
use crate::wire::job_summary;

mod access;
pub mod auth;
mod doc;
mod envs;
mod events;
mod extract;
pub mod idempotency;
mod profiles;
mod templates;

pub use doc::openapi_doc;
use extract::{ApiPath as Path, ApiQuery as Query};
pub(crate) use profiles::{default_of as default_profile, open as open_profile, registry_of};

pub use auth::{Caller, Role};

/// The SHA-256 digest of the admin token; the token itself is never kept. (The join token's
/// digest is read from the store at each registration, so a rotation on any server of the
/// database holds at once on all of them; nodes' credentials are checked by the driver.)
#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: [u8; 32],
}

/// The name of the join token's digest in the store's secrets.
pub const JOIN_TOKEN_DIGEST: &str = "agent-token-sha256";
/// The name of the join token itself in the store's secrets, sealed with the data directory's
/// key, so that every server of a database can hand the current one to the nodes it starts.
pub const JOIN_TOKEN_SEALED: &str = "agent-token-sealed";

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A digest as stored: lowercase hex.
pub fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest read back from the store; `None` if it is not 64 hex digits.
pub(crate) fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random secret: 32 bytes from the kernel's CSPRNG, hex-encoded.
pub fn new_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(hex(&bytes))
}

/// Compares two digests in constant time.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What every handler shares.
pub struct ApiState {
    pub handle: Handle,
    /// Reads (and the writes that need no scheduler) go here directly, never through the
    /// driver thread.
    pub store: Arc<dyn kiln_store::Store>,
    /// Whether this server schedules (see `Driver::leading`).
    pub leading: Arc<std::sync::atomic::AtomicBool>,
    pub tokens: Tokens,
    /// Where attempts' output is kept (`logs/JOB/TASK/INDEX.ATTEMPT.stdout`).
    pub logs: PathBuf,
    pub lease_notify: LeaseNotify,
    pub lease_wait: Duration,
    /// The instance types specs, templates and compute environments may name.
    pub catalog: Catalog,
    /// Compute environments' activities and status (`kiln why` says what holds capacity back).
    pub activities: crate::envs::Activities,
    /// Seals secret fields (storage keys, …) before they reach the store, opens them for the
    /// attempts that need them.
    pub secrets: Arc<kiln_store::secrets::SecretBox>,
    /// This server's copy of the join token (`DATA_DIR/agent-token`), rewritten when the token
    /// is rotated; `None`: rotation is refused.
    pub join_token_file: Option<PathBuf>,
}

type Shared = Arc<ApiState>;

/// Runs `f` on the store on the blocking pool: a read (or a write that needs no scheduler)
/// that never waits for a tick.
pub(crate) async fn on_store<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&dyn kiln_store::Store) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(&st.store);
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

/// How long a standby waits for the leader to answer a command it stored.
const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// Runs a write that needs the scheduler: on the leader's driver thread here, or, on a
/// standby, through the store's command inbox, answering with what the leader answered.
pub(crate) async fn act(st: &Shared, cmd: Command) -> Result<(), ApiError> {
    let here = cmd.clone();
    match st.handle.call(move |d| here.run(d)).await? {
        Err(JobOpError::Driver(crate::driver::DriverError::NotLeader { .. })) => {}
        other => return other.map_err(Into::into),
    }
    let text = serde_json::to_string(&cmd).map_err(ApiError::internal)?;
    let id = on_store(st, move |s| s.push_command(&text, crate::driver::now_ms())).await?;
    let deadline = tokio::time::Instant::now() + COMMAND_WAIT;
    loop {
        let answer = on_store(st, move |s| s.get_command(id))
            .await?
            .and_then(|c| c.answer);
        if let Some(a) = answer {
            return match a.status {
                200..=299 => Ok(()),
                404 => Err(ApiError::not_found(a.message)),
                409 => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    code::CONFLICT,
                    a.message,
                )),
                400 => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_REQUEST,
                    a.message,
                )),
                _ => Err(ApiError::internal(format!(
                    "the leader answered command {id} with {}: {}",
                    a.status, a.message
                ))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::not_leader(format!(
                "this server is a standby and no leader answered within {} s; the request \
                 is stored (command {id}) and the next leader acts on it",
                COMMAND_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl From<kiln_store::StoreError> for ApiError {
    fn from(e: kiln_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, message)
    }
    fn field(mut self, field: impl Into<String>) -> Self {
        self.body = self.body.with_field(field);
        self
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }
    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error; see the server log",
        )
    }
    /// 503: a standby refuses what needs the scheduler (clients try the next server).
    fn not_leader(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code::NOT_LEADER, message)
    }
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "missing or invalid bearer token",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<DriverGone> for ApiError {
    fn from(e: DriverGone) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL,
            e.to_string(),
        )
    }
}

impl From<JobOpError> for ApiError {
    fn from(e: JobOpError) -> Self {
        match e {
            JobOpError::NotFound(m) => ApiError::not_found(m),
            JobOpError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, code::CONFLICT, m),
            JobOpError::Invalid { field, message } => {
                ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_SPEC, message).field(field)
            }
            JobOpError::Driver(e @ crate::driver::DriverError::NotLeader { .. }) => {
                ApiError::not_leader(e.to_string())
            }
            JobOpError::Driver(e) => ApiError::internal(e),
        }
    }
}

impl From<AgentCallError> for ApiError {
    fn from(e: AgentCallError) -> Self {
        match e {
            AgentCallError::UnknownNode(_) => ApiError::not_found(e.to_string()),
            AgentCallError::Invalid(_) => ApiError::bad(e.to_string()),
            AgentCallError::Unavailable(m) => ApiError::not_leader(m),
            AgentCallError::Unauthorized(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, m)
            }
            AgentCallError::Forbidden(m) => {
                ApiError::new(StatusCode::FORBIDDEN, code::FORBIDDEN, m)
            }
        }
    }
}

impl From<SpecErrors> for ApiError {
    fn from(e: SpecErrors) -> Self {
        let first = e.0.first().map(|e| e.path.clone()).unwrap_or_default();
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_SPEC, e.to_string());
        if !first.is_empty() {
            err = err.field(first);
        }
        err
    }
}

/// A request body, or the JSON error for a too-large or unreadable one.
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} MiB", MAX_SPEC_BYTES >> 20),
            )
        } else {
            ApiError::bad(format!("cannot read the body: {e}"))
        }
    })
}

/// Parses a JSON body, naming the field of a type error where serde does.
fn json<T: DeserializeOwned>(b: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body(b)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_name(id) {
        Ok(())
    } else {
        Err(ApiError::bad(format!("`{id}` is not a valid id")).field("id"))
    }
}

/// Attempt keys from an agent: a job id and a task name as the API allows them.
fn check_keys<'a>(
    keys: impl Iterator<Item = &'a kiln_api::AttemptKey>,
    field: &str,
) -> Result<(), ApiError> {
    for k in keys {
        if check_id(&k.job).is_err() || check_task(&k.task).is_err() {
            return Err(ApiError::bad(format!("invalid attempt key {k}")).field(field));
        }
    }
    Ok(())
}

/// A task name: 1-60 of `[A-Za-z0-9._-]`, as the spec allows.
fn check_task(task: &str) -> Result<(), ApiError> {
    if valid_name(task) && task.len() <= 60 {
        Ok(())
    } else {
        Err(ApiError::bad(format!("`{task}` is not a valid task name")).field("task"))
    }
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Who calls an agent route with a node credential: the node it names, and the digest of the
/// whole credential, which the driver compares with the one issued at registration
/// ([`crate::cluster::NodeCaller`]).
fn node_caller(headers: &HeaderMap) -> Option<NodeCaller> {
    let token = bearer(headers)?;
    let (name, _) = kiln_api::parse_node_credential(token)?;
    Some(NodeCaller::new(name, digest(token)))
}

/// The agent protocol but `register`: a node credential, whose check against the stored
/// digest (and against the node and attempts a request names) is the driver's.
async fn node_only(headers: HeaderMap, mut req: Request, next: Next) -> Response {
    match node_caller(&headers) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// `register`: the join token (compared with the digest in the store, the same on every
/// server of a database), or the node's own credential when a registered node registers again
/// (it keeps its credential).
async fn join_or_node(
    State(st): State<Shared>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(caller) = node_caller(&headers) {
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    }
    let Some(given) = bearer(&headers).map(digest) else {
        return ApiError::unauthorized().into_response();
    };
    let stored = on_store(&st, |s| s.get_secret(JOIN_TOKEN_DIGEST)).await;
    match stored.map(|s| s.as_deref().and_then(unhex)) {
        Ok(Some(join)) if same(&given, &join) => next.run(req).await,
        Ok(_) => ApiError::unauthorized().into_response(),
        Err(e) => e.into_response(),
    }
}

/// The REST API: routes that take an API token (or the admin token) with the role
/// [`auth::required`] names, each documented by its `#[utoipa::path]`.
fn api_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(openapi))
        .routes(routes!(submit, list_jobs))
        .routes(routes!(show_job, delete_job))
        .routes(routes!(terminate))
        .routes(routes!(terminate_instance))
        .routes(routes!(retry))
        .routes(routes!(why))
        .routes(routes!(instances))
        .routes(routes!(logs))
        .routes(routes!(nodes))
        .routes(routes!(revoke_node))
        .routes(routes!(rotate_join_token))
        .merge(templates::routes())
        .merge(profiles::routes())
        .merge(envs::routes())
        .merge(events::routes())
        .merge(access::routes())
}

/// Registration: the join token, or a registered node's own credential.
fn join_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(register))
}

/// The rest of the agent protocol: routes that take a node's credential.
fn agent_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(heartbeat))
        .routes(routes!(lease))
        .routes(routes!(report))
        .routes(routes!(append_logs))
}

/// Routes anyone may call.
fn public_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics_text))
}

/// Metrics in the Prometheus text format: without a token from a loopback address, else with
/// the admin token.
#[utoipa::path(get, path = paths::METRICS, responses(
    (status = 200, content_type = "text/plain", body = String),
    (status = 401, body = ErrorBody)))]
async fn metrics_text(State(st): State<Shared>, req: Request) -> Response {
    let loopback = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    let admin = bearer(req.headers()).is_some_and(|t| same(&digest(t), &st.tokens.admin));
    if !loopback && !admin {
        return ApiError::unauthorized().into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// Counts every answer by route (its template, `unmatched` for none) and status.
async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    metrics::counter!(
        crate::metrics::API_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => resp.status().as_u16().to_string()
    )
    .increment(1);
    resp
}

/// Every route. Tests call it with `tower::ServiceExt::oneshot`; no socket needed.
pub fn router(state: Shared) -> Router {
    let (admin, _) = api_routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .split_for_parts();
    let (join, _) = join_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), join_or_node))
        .split_for_parts();
    let (agent, _) = agent_routes()
        .route_layer(middleware::from_fn(node_only))
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    Router::new()
        .merge(public)
        .merge(admin)
        .merge(join)
        .merge(agent)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                code::INVALID_REQUEST,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_SPEC_BYTES))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// The server is up (no token needed), and whether it schedules (`leader`) or stands by.
#[utoipa::path(get, path = paths::HEALTH, responses((status = 200, body = Health)))]
async fn health(State(st): State<Shared>) -> Json<Health> {
    let leading = st.leading.load(std::sync::atomic::Ordering::Relaxed);
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        role: Some(if leading { "leader" } else { "standby" }.into()),
    })
}

/// This document.
#[utoipa::path(get, path = paths::OPENAPI, responses((status = 200, description = "this document", content_type = "application/json", body = Object)))]
async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_doc().clone())
}

/// `{id}`: a job.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct JobPath {
    /// The job's id (`job-…`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: String,
}

/// `{id}/tasks/{task}`: a task of a job.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TaskPath {
    /// The job's id (`job-…`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: String,
    /// The task's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    task: String,
}

/// `{id}/tasks/{task}/instances/{index}`: a task instance.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct InstancePath {
    /// The job's id (`job-…`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: String,
    /// The task's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    task: String,
    /// The instance's index, from 0.
    index: u32,
}

/// Submit a job: the body is a job spec (YAML or JSON, native or Tencent format). A spec the
/// schema admits may still be refused with 400 (an unknown task in the DAG, a cycle, …): the
/// error names the field.
#[utoipa::path(post, path = paths::JOBS,
    request_body(description = "a job spec, native or Tencent format", content(
        (Object = "application/json"),
        (String = "application/yaml"),
    )),
    params(IdempotencyHeader),
    responses(
        (status = 201, description = "the job was accepted (or, for a repeated `Idempotency-Key`, the first answer again)", body = SubmitResponse),
        (status = 400, description = "the spec is invalid", body = ErrorBody),
        (status = 404, description = "the spec's `project` does not exist (or is another project than the token's)", body = ErrorBody),
        (status = 409, description = "the `Idempotency-Key` was used for a different request", body = ErrorBody),
    ))]
async fn submit(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(b)?;
    // Keys of different callers never meet: one token cannot replay another's answer.
    let scope = format!("POST /v1/jobs {}", caller.token);
    let key = idempotency::Key::from_headers(&scope, &headers, &bytes)?;
    if let Some(k) = &key
        && let Some(stored) = k.lookup(&st).await?
    {
        return Ok(stored.into_response());
    }
    // The project is known only once the spec is read: an admin's spec is read again with
    // only the templates of the project it names (anyone else sees only its own project's).
    let scope = caller.scope();
    let templates = templates::load(&st, scope.as_deref()).await?;
    let mut parsed = kiln_core::spec::parse_job_in(&bytes, &templates, &st.catalog)?;
    let project = caller.project_for(parsed.spec.project.as_deref())?;
    let p = project.clone();
    if on_store(&st, move |s| s.get_project(&p)).await?.is_none() {
        return Err(ApiError::not_found(format!("no project `{project}`")).field("project"));
    }
    if scope.is_none() {
        let own = templates::load(&st, Some(&project)).await?;
        parsed = kiln_core::spec::parse_job_in(&bytes, &own, &st.catalog)?;
    }
    parsed.spec.project = Some(project.clone());
    let mut records = on_store(&st, |s| s.list_storage_profiles()).await?;
    records.retain(|r| r.project == project);
    let names = |registry: bool| -> Vec<&str> {
        records
            .iter()
            .filter(|r| profiles::is_registry(r) == registry)
            .map(|r| r.name.as_str())
            .collect()
    };
    kiln_core::spec::check_profiles(&parsed.spec, &names(false), &names(true))?;
    envs::check_shared(&st, &parsed.spec, &project).await?;
    if !kiln_core::spec::unread_items(&parsed.spec).is_empty() {
        let storage = st.handle.call(|d| d.runtime().remote_storage()).await?;
        crate::items::read_items(&mut parsed.spec, None, storage.as_deref()).await?;
    }
    let name = parsed.spec.name.clone();
    let credentials = std::mem::take(&mut parsed.credentials);
    let answer = move |id: &str| SubmitResponse {
        id: id.to_string(),
        name: name.clone(),
        state: "SUBMITTED".into(),
    };
    let Some(k) = key else {
        let id = st
            .handle
            .call(move |d| d.submit_carrying(parsed.spec, &credentials))
            .await?
            .map_err(ApiError::internal)?;
        let object = auth::AuditObject(format!("job/{id}"));
        return Ok((StatusCode::CREATED, Extension(object), Json(answer(&id))).into_response());
    };
    let (k2, answer2) = (k.clone(), answer.clone());
    let created = st
        .handle
        .call(move |d| {
            d.submit_with(
                parsed.spec,
                &credentials,
                Some(&|id| k2.record(format!("job/{id}"), StatusCode::CREATED, &answer2(id))),
            )
        })
        .await?
        .map_err(ApiError::internal)?;
    match created {
        Ok(id) => {
            fault_point("submit-committed");
            let object = auth::AuditObject(format!("job/{id}"));
            Ok((StatusCode::CREATED, Extension(object), Json(answer(&id))).into_response())
        }
        // A request with the same key committed first.
        Err(record) => Ok(k.replay(Some(record))?.map_or_else(
            || ApiError::internal("an idempotency record expired at once").into_response(),
            IntoResponse::into_response,
        )),
    }
}

/// The `Idempotency-Key` header of a creating request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by `idempotency::Key::from_headers`; here for the document
pub(crate) struct IdempotencyHeader {
    /// Makes the request safe to repeat: for 24 hours, a request with the same key and the same
    /// body gets the first answer again and creates nothing; with another body, a 409.
    #[serde(rename = "Idempotency-Key")]
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// A testing knob: `KILN_TEST_ABORT_AT=POINT` makes the server abort (as if killed) when it
/// reaches `POINT`, so that tests can show what survives a crash there. Points:
/// `submit-committed` (a keyed submit is committed, its answer not yet sent).
fn fault_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("KILN_TEST_ABORT_AT").ok());
    if at.as_deref() == Some(point) {
        tracing::error!("KILN_TEST_ABORT_AT={point}: aborting");
        std::process::abort();
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state.
    #[param(
        pattern = "^(SUBMITTED|PENDING|RUNNABLE|STARTING|RUNNING|SUCCEED|FAILED|FAILED_INTERRUPTED)$"
    )]
    state: Option<String>,
    /// At most this many jobs [default: 50].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    cursor: Option<String>,
}

/// Jobs, newest first, a page at a time.
#[utoipa::path(get, path = paths::JOBS, params(ListQuery), responses((status = 200, body = JobList)))]
async fn list_jobs(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let state = match q.state.as_deref() {
        Some(s) => Some(
            s.parse::<kiln_core::state::State>()
                .map_err(|e| ApiError::bad(e.to_string()).field("state"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 1000").field("limit"));
    }
    let after = match q.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| ApiError::bad(format!("bad cursor `{c}`")).field("cursor"))?,
        ),
        None => None,
    };
    let rows = on_store(&st, move |store| {
        store.list_jobs(&kiln_store::JobQuery {
            state,
            name_prefix: None,
            project: caller.scope(),
            after_seq: after,
            limit: limit + 1,
        })
    })
    .await?;
    let more = rows.len() > limit as usize;
    let items: Vec<JobSummary> = rows.iter().take(limit as usize).map(job_summary).collect();
    let next = more
        .then(|| rows.get(limit as usize - 1).map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(JobList { items, next }))
}

/// A job with its tasks and their instance counts.
#[utoipa::path(get, path = paths::JOB, params(JobPath), responses((status = 200, body = kiln_api::JobDetail), (status = 404, body = ErrorBody)))]
async fn show_job(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<Json<kiln_api::JobDetail>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    Ok(Json(
        on_store(&st, move |s| views::job_detail(s, &id)).await?,
    ))
}

/// Delete a finished job with its records and logs.
#[utoipa::path(delete, path = paths::JOB, params(JobPath), responses(
    (status = 204, description = "deleted"),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the job has not finished", body = ErrorBody), (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
async fn delete_job(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    let i = id.clone();
    act(&st, Command::DeleteJob { job: i }).await?;
    idempotency::forget(&st, format!("job/{id}")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Job `id`'s row, if the caller may see it: a job of a project it may not see does not
/// exist for it (404, as for no job at all).
async fn visible_job(
    st: &Shared,
    caller: &Caller,
    id: &str,
) -> Result<kiln_store::JobRow, ApiError> {
    let i = id.to_string();
    on_store(st, move |s| s.job_row(&i))
        .await?
        .filter(|row| caller.sees(&row.project))
        .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))
}

async fn summary(st: &Shared, id: String) -> Result<Json<JobSummary>, ApiError> {
    let row = on_store(st, move |s| {
        s.job_row(&id)?
            .ok_or_else(|| JobOpError::NotFound(format!("no job `{id}`")))
    })
    .await?;
    Ok(Json(job_summary(&row)))
}

/// Stop what runs; the rest ends `FAILED` with `TERMINATED_BY_USER`.
#[utoipa::path(post, path = paths::JOB_TERMINATE, params(JobPath), responses(
    (status = 200, body = JobSummary),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the job has finished", body = ErrorBody), (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
async fn terminate(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<Json<JobSummary>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    let i = id.clone();
    act(&st, Command::TerminateJob { job: i }).await?;
    summary(&st, id).await
}

/// Terminate one instance (Tencent `TerminateTaskInstance`): stopped if it runs, `FAILED`
/// with `TERMINATED_BY_USER` if it has not started.
#[utoipa::path(post, path = paths::INSTANCE_TERMINATE, params(InstancePath), responses(
    (status = 200, body = JobSummary),
    (status = 400, body = ErrorBody),
    (status = 404, description = "no such job, task or instance", body = ErrorBody),
    (status = 409, description = "the job or the instance has finished", body = ErrorBody), (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
async fn terminate_instance(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(InstancePath { id, task, index }): Path<InstancePath>,
) -> Result<Json<JobSummary>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    check_task(&task)?;
    let i = id.clone();
    act(
        &st,
        Command::TerminateInstance {
            job: i,
            task,
            index,
        },
    )
    .await?;
    summary(&st, id).await
}

/// Run again what did not succeed in a failed job, and what depends on it.
#[utoipa::path(post, path = paths::JOB_RETRY, params(JobPath), responses(
    (status = 200, body = JobSummary),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the job has not failed", body = ErrorBody), (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
async fn retry(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<Json<JobSummary>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    let i = id.clone();
    // Names the finish this retry is for, so that it runs once even if a leader acts on it
    // and dies before it answers (the next leader acts on it again).
    let finished_at = on_store(&st, move |s| s.job_row(&i))
        .await?
        .filter(|row| row.state.is_terminal())
        .map(|row| row.updated_at);
    let i = id.clone();
    act(
        &st,
        Command::RetryJob {
            job: i,
            finished_at,
        },
    )
    .await?;
    summary(&st, id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WhyQuery {
    /// Ask about this task instead of the whole job.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    task: Option<String>,
    /// Ask about this instance of `task` (needs `task`).
    index: Option<u32>,
}

/// Why a job, task or instance is in its state (`index` needs `task`: 400 without it).
#[utoipa::path(get, path = paths::JOB_WHY, params(JobPath, WhyQuery), responses(
    (status = 200, body = kiln_api::Why),
    (status = 404, body = ErrorBody)))]
async fn why(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(JobPath { id }): Path<JobPath>,
    Query(q): Query<WhyQuery>,
) -> Result<Json<kiln_api::Why>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    if q.index.is_some() && q.task.is_none() {
        return Err(ApiError::bad("index needs task").field("index"));
    }
    let activities = st.activities.clone();
    Ok(Json(
        on_store(&st, move |s| {
            let status = |env: &str| activities.status(env);
            views::why(s, &id, q.task.as_deref(), q.index, &status)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// `next` of the previous page.
    #[param(pattern = "^[0-9]{1,9}$")]
    cursor: Option<String>,
    /// At most this many instances [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A task's instances in index order, a page at a time, each with its attempts.
#[utoipa::path(get, path = paths::INSTANCES, params(TaskPath, PageQuery), responses(
    (status = 200, body = kiln_api::InstanceList),
    (status = 404, body = ErrorBody)))]
async fn instances(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(TaskPath { id, task }): Path<TaskPath>,
    Query(q): Query<PageQuery>,
) -> Result<Json<kiln_api::InstanceList>, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    check_task(&task)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 1000").field("limit"));
    }
    let from = match q.cursor.as_deref() {
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| ApiError::bad(format!("bad cursor `{c}`")).field("cursor"))?,
        None => 0,
    };
    Ok(Json(
        on_store(&st, move |s| views::instances(s, &id, &task, from, limit)).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// Which output [default: stdout].
    #[param(pattern = "^(stdout|stderr)$")]
    stream: Option<String>,
    /// Stream the output until the attempt ends.
    follow: Option<bool>,
    /// This attempt's output instead of the latest's.
    attempt: Option<u32>,
}

/// The output of an instance's latest attempt (or `attempt=N`); `follow=true` streams it until
/// the attempt ends.
#[utoipa::path(get, path = paths::LOGS, params(InstancePath, LogQuery), responses(
    (status = 200, content_type = "text/plain", body = String),
    (status = 404, body = ErrorBody)))]
async fn logs(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(InstancePath { id, task, index }): Path<InstancePath>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    visible_job(&st, &caller, &id).await?;
    check_task(&task)?;
    let stream = match q.stream.as_deref().unwrap_or("stdout") {
        s @ ("stdout" | "stderr") => s.to_string(),
        other => {
            return Err(
                ApiError::bad(format!("stream must be stdout or stderr, not `{other}`"))
                    .field("stream"),
            );
        }
    };
    let (i, t) = (id.clone(), task.clone());
    let (latest, _) = on_store(&st, move |s| views::latest_attempt(s, &i, &t, index)).await?;
    let attempt = q.attempt.unwrap_or(latest);
    let path = st
        .logs
        .join(&id)
        .join(&task)
        .join(format!("{index}.{attempt}.{stream}"));
    let follow = q.follow.unwrap_or(false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let reader = Arc::clone(&st);
    tokio::spawn(async move {
        let mut offset = 0u64;
        loop {
            let chunk = read_from(&path, offset).await;
            let empty = chunk.is_empty();
            if !empty {
                offset += chunk.len() as u64;
                if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return;
                }
                continue;
            }
            if !follow {
                return;
            }
            let (i, t) = (id.clone(), task.clone());
            let still = on_store(&reader, move |s| views::latest_attempt(s, &i, &t, index))
                .await
                .is_ok_and(|(a, active)| active && a == attempt);
            if !still {
                // One last read for what was written before the end was recorded.
                let rest = read_from(&path, offset).await;
                if !rest.is_empty() {
                    let _ = tx.send(Ok(Bytes::from(rest))).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// Up to 256 KiB of a file from `offset`; empty if there is nothing (yet).
async fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = vec![0u8; 256 * 1024];
    match f.read(&mut buf).await {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(_) => Vec::new(),
    }
}

/// The built-in executor and every agent.
#[utoipa::path(get, path = paths::NODES, responses((status = 200, body = NodeList)))]
async fn nodes(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<NodeList>, ApiError> {
    let mut items = st.handle.call(|d| d.node_infos()).await?;
    if caller.role != Role::Admin {
        // The nodes of the environments the caller's project may use, and no others.
        let envs = on_store(&st, |s| s.list_compute_envs()).await?;
        items.retain(|n| {
            n.compute_env
                .as_ref()
                .and_then(|e| envs.iter().find(|r| &r.name == e))
                .is_some_and(|r| caller.sees_any(&r.projects))
        });
    }
    Ok(Json(NodeList { items }))
}

/// Cut a node off: its credential is removed, so its next call is refused (401), and the
/// attempts it held run again elsewhere (`NODE_LOST`). It may join again only through the join
/// token (rotate it too if the node's copy is not to be trusted).
#[utoipa::path(post, path = paths::NODE_REVOKE, params(NodePath), responses(
    (status = 200, body = kiln_api::NodeRevoked),
    (status = 404, description = "no node of that name", body = ErrorBody),
    (status = 503, description = "a standby, while no server leads: the request is stored, and the next leader acts on it", body = ErrorBody)))]
async fn revoke_node(
    State(st): State<Shared>,
    Path(NodePath { name }): Path<NodePath>,
) -> Result<Json<kiln_api::NodeRevoked>, ApiError> {
    if !valid_name(&name) {
        return Err(ApiError::bad(format!("`{name}` is not a valid node name")).field("name"));
    }
    act(&st, Command::RevokeNode { node: name.clone() }).await?;
    Ok(Json(kiln_api::NodeRevoked { name }))
}

/// `{name}`: a node.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct NodePath {
    /// The node's name.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    name: String,
}

/// Replace the join token: the new one is answered once and written to this server's
/// `DATA_DIR/agent-token`; the old one registers nothing any more. Registered nodes keep their
/// credentials.
#[utoipa::path(post, path = paths::JOIN_TOKEN_ROTATE, responses((status = 200, body = kiln_api::JoinToken)))]
async fn rotate_join_token(
    State(st): State<Shared>,
) -> Result<Json<kiln_api::JoinToken>, ApiError> {
    let Some(file) = st.join_token_file.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            "this server keeps no join token file",
        ));
    };
    let secrets = Arc::clone(&st.secrets);
    let token = on_store(&st, move |s| {
        crate::server::rotate_join_token(s, &secrets, &file).map_err(ApiError::internal)
    })
    .await?;
    tracing::info!("the join token was replaced");
    Ok(Json(kiln_api::JoinToken { token }))
}

/// A node joins (or comes back). With the join token it is given a new credential
/// (`credential`; one it had before stops working); with its own credential it keeps it
/// (`credential` is absent).
#[utoipa::path(post, path = paths::AGENT_REGISTER, request_body = RegisterRequest, responses((status = 200, body = kiln_api::RegisterResponse), (status = 403, description = "the node credential is another node's", body = ErrorBody), (status = 503, description = "a standby: another server schedules", body = ErrorBody)))]
async fn register(
    State(st): State<Shared>,
    caller: Option<Extension<NodeCaller>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<kiln_api::RegisterResponse>, ApiError> {
    let req: RegisterRequest = json(b)?;
    if !valid_name(&req.name) {
        return Err(
            ApiError::bad(format!("`{}` is not a valid node name", req.name)).field("name"),
        );
    }
    check_keys(req.running.iter(), "running")?;
    let caller = caller.map(|Extension(c)| c);
    Ok(Json(
        st.handle
            .call(move |d| d.register_agent(req, caller.as_ref()))
            .await??,
    ))
}

/// A node is alive and says what it runs.
#[utoipa::path(post, path = paths::AGENT_HEARTBEAT, request_body = HeartbeatRequest, responses((status = 200, body = kiln_api::HeartbeatResponse), (status = 403, description = "`node_id` is not the credential's node", body = ErrorBody), (status = 503, description = "a standby: another server schedules", body = ErrorBody)))]
async fn heartbeat(
    State(st): State<Shared>,
    Extension(caller): Extension<NodeCaller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<kiln_api::HeartbeatResponse>, ApiError> {
    let req: HeartbeatRequest = json(b)?;
    check_keys(req.running.iter(), "running")?;
    Ok(Json(
        st.handle
            .call(move |d| d.heartbeat(&caller, &req))
            .await??,
    ))
}

/// Hands out work dispatched to the node; waits up to the lease wait for some to arrive.
#[utoipa::path(post, path = paths::AGENT_LEASE, request_body = LeaseRequest, responses((status = 200, body = LeaseResponse), (status = 403, description = "`node_id` is not the credential's node", body = ErrorBody), (status = 404, description = "unknown node", body = ErrorBody), (status = 503, description = "a standby: another server schedules", body = ErrorBody)))]
async fn lease(
    State(st): State<Shared>,
    Extension(caller): Extension<NodeCaller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let req: LeaseRequest = json(b)?;
    if req.max == 0 {
        return Err(ApiError::bad("max must be at least 1").field("max"));
    }
    let deadline = tokio::time::Instant::now() + st.lease_wait;
    loop {
        // Subscribe before asking, so that work queued in between is not missed.
        let notified = st.lease_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (node, max, who) = (req.node_id.clone(), req.max, caller.clone());
        let attempts = st.handle.call(move |d| d.lease(&who, &node, max)).await??;
        if !attempts.is_empty() {
            return Ok(Json(LeaseResponse { attempts }));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(Json(LeaseResponse { attempts }));
        }
    }
}

/// What a node's attempts did. Every event must be about an attempt dispatched to the node:
/// one about another node's attempt refuses the whole request (403), changing nothing.
#[utoipa::path(post, path = paths::AGENT_REPORT, request_body = ReportRequest, responses((status = 200, body = ReportResponse), (status = 403, description = "`node_id` is not the credential's node, or an event is about another node's attempt", body = ErrorBody), (status = 404, description = "unknown node", body = ErrorBody), (status = 503, description = "a standby: another server schedules", body = ErrorBody)))]
async fn report(
    State(st): State<Shared>,
    Extension(caller): Extension<NodeCaller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportResponse>, ApiError> {
    let req: ReportRequest = json(b)?;
    check_keys(req.events.iter().map(|e| &e.key), "events")?;
    let node = req.node_id.clone();
    let who = caller.clone();
    let accepted = st
        .handle
        .call(move |d| d.agent_report(&who, &req.node_id, req.events))
        .await??;
    // The tick that applied the reports has dispatched into the slots they freed; hand that
    // work over now rather than on the agent's next lease.
    let attempts = st
        .handle
        .call(move |d| d.lease(&caller, &node, u32::MAX))
        .await?
        .unwrap_or_default();
    Ok(Json(ReportResponse { accepted, attempts }))
}

/// Output of attempts running on an agent, written at its offsets into the server's copy. Every
/// chunk must be of an attempt dispatched to the node: one of another node's attempt refuses
/// the whole request (403), writing nothing.
#[utoipa::path(post, path = paths::AGENT_LOGS, request_body = LogAppendRequest, responses((status = 200, body = LogAppendResponse), (status = 403, description = "`node_id` is not the credential's node, or a chunk is of another node's attempt", body = ErrorBody), (status = 503, description = "a standby: another server schedules", body = ErrorBody)))]
async fn append_logs(
    State(st): State<Shared>,
    Extension(caller): Extension<NodeCaller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<LogAppendResponse>, ApiError> {
    let req: LogAppendRequest = json(b)?;
    let mut writes = Vec::with_capacity(req.chunks.len());
    check_keys(req.chunks.iter().map(|c| &c.key), "chunks")?;
    for chunk in &req.chunks {
        let k = &chunk.key;
        if chunk.stream != "stdout" && chunk.stream != "stderr" {
            return Err(ApiError::bad("stream must be stdout or stderr").field("chunks"));
        }
        if chunk.offset > kiln_api::MAX_LOG_OFFSET {
            return Err(ApiError::bad("offset is beyond the largest log").field("chunks"));
        }
        let data = chunk
            .data()
            .map_err(|e| ApiError::bad(e.to_string()).field("chunks"))?;
        let path = st
            .logs
            .join(&k.job)
            .join(&k.task)
            .join(format!("{}.{}.{}", k.index, k.attempt, chunk.stream));
        writes.push((path, chunk.offset, data));
    }
    let keys: Vec<kiln_api::AttemptKey> = req.chunks.iter().map(|c| c.key.clone()).collect();
    let node = req.node_id.clone();
    st.handle
        .call(move |d| d.check_log_keys(&caller, &node, &keys))
        .await??;
    let accepted = writes.len() as u32;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        for (path, offset, data) in writes {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            f.write_all_at(&data, offset)?;
        }
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(LogAppendResponse { accepted }))
}
