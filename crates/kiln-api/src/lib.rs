//! Kiln's wire types and a typed HTTP client.
//!
//! This crate is the contract between `kiln server`, `kiln agent` and the `kiln` CLI:
//!
//! - [`rest`]: the request and response bodies of the REST API (DESIGN §7), including the error
//!   body every 4xx/5xx answer carries.
//! - [`agent`]: the agent protocol under `/v1/agent/` (register, heartbeat, lease, report, logs).
//! - [`paths`]: every route, once as an axum route template (`/v1/jobs/{id}`) and once as a
//!   function that fills it in with percent-encoded segments (for the client).
//! - [`Client`]: an async client for every route above.
//!
//! Wire types are not domain types: states and reasons travel as their text forms
//! (`"RUNNING"`, `"EXIT_CODE 3"`), timestamps as RFC 3339 strings, and the job spec as the raw
//! bytes the user wrote (either format). The server converts from `kiln-core` types; this crate
//! does not depend on `kiln-core`.
//!
//! Every DTO derives `utoipa::ToSchema`; [`WireSchemas`] collects them all so the server can merge
//! them into the document it serves at `/v1/openapi.json`.

pub mod agent;
mod client;
pub mod paths;
pub mod rest;
pub mod sse;

pub use agent::*;
pub use client::{CONNECT_TIMEOUT, Client, ClientError, REQUEST_TIMEOUT, read_ca_file};
pub use rest::*;

/// An OpenAPI document holding the schema of every wire type (components only, no paths).
///
/// The server merges it into its own document:
/// `ApiDoc::openapi().merge_from(kiln_api::WireSchemas::openapi())` (with `utoipa::OpenApi` in scope).
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    rest::ErrorBody,
    rest::ErrorDetail,
    rest::SubmitResponse,
    rest::JobSummary,
    rest::JobList,
    rest::JobDetail,
    rest::TaskDetail,
    rest::InstanceDetail,
    rest::AttemptDetail,
    rest::InstanceList,
    rest::Why,
    rest::TaskTemplate,
    rest::TemplateList,
    rest::ComputeEnv,
    rest::ComputeEnvDetail,
    rest::ComputeEnvList,
    rest::AllocationInfo,
    rest::ActivityInfo,
    rest::ActivityList,
    rest::NodeRef,
    rest::ProviderError,
    rest::ScaleRequest,
    rest::NodeInfo,
    rest::NodeList,
    rest::NodeRevoked,
    rest::JoinToken,
    rest::Health,
    rest::ProjectSpec,
    rest::Project,
    rest::ProjectList,
    rest::TokenRequest,
    rest::TokenCreated,
    rest::TokenInfo,
    rest::TokenList,
    rest::AuditEntry,
    rest::AuditList,
    agent::RegisterRequest,
    agent::RegisterResponse,
    agent::AttemptKey,
    agent::HeartbeatRequest,
    agent::HeartbeatResponse,
    agent::LeaseRequest,
    agent::LeaseResponse,
    agent::AttemptAssignment,
    agent::StorageSettings,
    agent::RegistryAuth,
    agent::InputMappingDto,
    agent::OutputMappingDto,
    agent::CommandDto,
    agent::ReportRequest,
    agent::ReportResponse,
    agent::AttemptEvent,
    agent::AttemptEventKind,
    agent::LogChunk,
    agent::LogAppendRequest,
    agent::LogAppendResponse,
)))]
pub struct WireSchemas;
