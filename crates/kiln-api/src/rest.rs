//! Bodies of the REST API (DESIGN §7).
//!
//! Conventions: `Option` fields are written as `null` when absent and may be omitted on input;
//! states and reasons are the text forms of `kiln_core::state::{State, Reason}`; timestamps are
//! RFC 3339 strings. Request bodies reject unknown fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Machine-readable error codes carried in [`ErrorDetail::code`].
pub mod code {
    /// The job spec (or a template / compute environment) failed validation.
    pub const INVALID_SPEC: &str = "invalid_spec";
    /// A malformed request: bad query parameter, bad JSON, wrong content type.
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const NOT_FOUND: &str = "not_found";
    /// The request conflicts with the resource's state (e.g. deleting a running job).
    pub const CONFLICT: &str = "conflict";
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The caller is known but may not do this (a node naming another node's attempt).
    pub const FORBIDDEN: &str = "forbidden";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const INTERNAL: &str = "internal";
    /// This server is a standby: another server of the same database schedules (503).
    pub const NOT_LEADER: &str = "not_leader";
}

/// The body of every error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// An error with no field.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
            },
        }
    }

    /// Names the offending field (a spec path such as `tasks[0].command`, or a query parameter).
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.error.field = Some(field.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the constants of [`code`].
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {} ({})", self.code, self.message, field),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// `201` answer of `POST /v1/jobs`. The request body is the job spec itself, in either format,
/// sent with its content type (`application/json` or `application/yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub id: String,
    pub name: String,
    pub state: String,
}

/// One job in `GET /v1/jobs`; also the answer of `POST /v1/jobs/{id}/terminate` and `/retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub priority: u8,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `GET /v1/jobs?state=&limit=&cursor=`: one page; `next` is the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobSummary>,
    pub next: Option<String>,
}

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub priority: u8,
    pub created_at: String,
    pub updated_at: String,
    pub tasks: Vec<TaskDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDetail {
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    /// Number of instances of the task.
    pub instances: u32,
    /// Instances per state name, e.g. `{"SUCCEED": 3, "RUNNING": 1}`; zero counts may be left out.
    #[serde(default)]
    pub counts: BTreeMap<String, u32>,
}

/// One task instance in `GET /v1/jobs/{id}/tasks/{task}/instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceDetail {
    /// 0-based.
    pub index: u32,
    pub state: String,
    pub reason: Option<String>,
    /// The current (latest) attempt, 1-based; 0 if never dispatched.
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub node: Option<String>,
    #[serde(default)]
    pub attempts: Vec<AttemptDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptDetail {
    /// 1-based.
    pub attempt: u32,
    pub state: String,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub node: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub ended_at: Option<String>,
    /// The memory limit the attempt ran with, in bytes (more than the task's after an attempt
    /// ran out of memory, see `on_out_of_memory`); absent when none was stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    pub items: Vec<InstanceDetail>,
    pub next: Option<String>,
}

/// One journal event (`GET /v1/events`): a change of state or an operation, past tense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventRecord {
    /// The event's sequence number: only grows, with no gap; resume after it with
    /// `?after=SEQ` or `Last-Event-ID`.
    pub seq: u64,
    /// When it happened (RFC 3339).
    pub at: String,
    /// What happened: `JobSubmitted`, `InstanceStarted`, `InstanceFailed`, `NodeLost`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_env: Option<String>,
    /// The state entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A compute environment's size after it was scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_nodes: Option<u32>,
}

/// A page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventRecord>,
    /// Pass as `after` for the next page: the last event's `seq` (or the `after` given, if
    /// there was none).
    pub next: u64,
}

/// `GET /v1/jobs/{id}/why?task=&index=`: why a job, task or instance is in its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Why {
    pub job: String,
    pub task: Option<String>,
    pub index: Option<u32>,
    pub state: String,
    pub reason: Option<String>,
    /// A sentence for people.
    pub explanation: String,
}

/// A task template: `POST /v1/task-templates` (request and `201` answer),
/// `GET /v1/task-templates/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskTemplate {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub name: String,
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// Task fields of the job spec (`command`, `instances`, `env`, …), checked by the server.
    #[schema(value_type = Object)]
    pub task: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TaskTemplate>,
}

/// A compute environment: the body of `POST /v1/compute-envs`.
///
/// Its size is fixed (`desired_nodes`) or follows the backlog (`max_nodes`, with `min_nodes`,
/// `idle_timeout` and `max_pending_allocations`). The `slurm` provider's fields say how each
/// allocation is submitted with `sbatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeEnv {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub name: String,
    pub description: Option<String>,
    /// `local`, `static` or `docker`.
    #[schema(pattern = "^(local|static|docker)$")]
    pub provider: String,
    /// Defaults to 0 when omitted.
    #[serde(default)]
    #[schema(maximum = 1000)]
    pub desired_nodes: u32,
    /// A catalog instance type; exclusive with `resources`.
    pub instance_type: Option<String>,
    /// Explicit resources (`{"cpus": …, "memory": …}`); exclusive with `instance_type`.
    #[schema(value_type = Option<Object>)]
    pub resources: Option<serde_json::Value>,
    pub image: Option<String>,
    pub network: Option<String>,
    #[schema(minimum = 1)]
    pub slots: Option<u32>,
    /// Backlog scaling: nodes kept even without work [default 0].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_nodes: Option<u32>,
    /// Backlog scaling: at most this many nodes; setting it turns backlog scaling on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    /// Backlog scaling: a node idle this long is removed, e.g. `5m` [default 5m].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Backlog scaling: at most this many allocations (Slurm jobs, or nodes starting) on
    /// their way at once [default 4].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_allocations: Option<u32>,
    /// `slurm`: `sbatch --partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `slurm`: `sbatch --account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `slurm`: `sbatch --qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `slurm`: `sbatch --time`, e.g. `2h`; the agents stop taking work that would not end
    /// before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<String>,
    /// `slurm`: `sbatch --nodes` [default 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_per_allocation: Option<u32>,
    /// `slurm`: CPUs asked for on each node [default 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_node: Option<u32>,
    /// `slurm`: `sbatch --mem`, e.g. `4GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_node: Option<String>,
    /// `slurm`: further `sbatch` arguments, passed as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbatch_args: Option<Vec<String>>,
    /// `slurm`: agents (Kiln nodes) started in each allocation [default: one per Slurm node].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_per_allocation: Option<u32>,
    /// The projects whose jobs may run here, the owner first [default: the creator's
    /// project]. Only an admin may name other projects than its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 100)]
    pub projects: Option<Vec<String>>,
}

/// `GET /v1/compute-envs/{name}` (also the answer of create and scale): the environment and
/// its nodes, flattened into one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComputeEnvDetail {
    #[serde(flatten)]
    #[schema(inline)]
    pub env: ComputeEnv,
    #[serde(default)]
    pub nodes: Vec<NodeRef>,
    /// What holds capacity back, for people (e.g. `2 allocations pending in Slurm (job 1234
    /// PENDING: Resources)`, or the provider's last error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The environment's state, from its nodes': `RUNNING` (also with no nodes),
    /// `CREATING`, `CREATION_FAILED` (creating nodes fails now), `ABNORMAL`, `DELETING`.
    #[serde(default = "running")]
    #[schema(example = "RUNNING")]
    pub state: String,
    /// The provider's last error about this environment's nodes, if any since the server
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ProviderError>,
    /// Node creations that failed since the server started (each one backs off the next).
    #[serde(default)]
    pub creation_failures: u32,
    /// `slurm`: the environment's allocations (Slurm jobs) that have not ended.
    #[serde(default)]
    pub allocations: Vec<AllocationInfo>,
    /// The latest scaling activities, newest first (at most 20; all of them at
    /// `GET /v1/compute-envs/{name}/activities`).
    #[serde(default)]
    pub activities: Vec<ActivityInfo>,
}

/// One allocation of a `slurm` environment: a Slurm job running agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AllocationInfo {
    /// The Slurm job id.
    pub job_id: String,
    /// Slurm's state (`PENDING`, `RUNNING`, `COMPLETING`, …).
    pub state: String,
    /// Slurm's reason (`Resources`, `Priority`, …), if it gives one.
    pub reason: Option<String>,
    /// Agents the allocation starts.
    pub workers: u32,
    /// Of those, how many have registered.
    pub registered: u32,
    /// RFC 3339: when it was submitted.
    pub submitted_at: String,
    /// RFC 3339: when Slurm ends it, once it runs (its time limit).
    pub ends_at: Option<String>,
}

/// A scaling activity, in the shape of Tencent's `DescribeComputeEnvActivities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActivityInfo {
    pub activity_id: String,
    /// The node made or removed (absent while a node being made has not registered).
    pub compute_node_id: Option<String>,
    /// `CREATE_COMPUTE_NODE` or `TERMINATE_COMPUTE_NODE`.
    pub compute_node_activity_type: String,
    pub env_id: String,
    /// Why the scaler did it.
    pub cause: String,
    /// `SUBMITTED`, `PROCESSING`, `SUCCEED` or `FAILED`.
    pub activity_state: String,
    /// Why it is in that state (e.g. Slurm's refusal).
    pub state_reason: Option<String>,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339, once it ended.
    pub end_time: Option<String>,
    /// What the provider made: the Slurm job id, the container or the process id.
    pub instance_id: Option<String>,
}

/// `GET /v1/compute-envs/{name}/activities?offset=&limit=`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActivityList {
    pub total_count: u32,
    pub items: Vec<ActivityInfo>,
}

/// `GET /v1/compute-envs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComputeEnvList {
    pub items: Vec<ComputeEnvDetail>,
}

fn running() -> String {
    "RUNNING".into()
}

/// A provider's error and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderError {
    pub message: String,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeRef {
    /// Empty for a node whose creation failed (it never registered).
    pub id: String,
    pub name: String,
    /// `CREATING`, `CREATION_FAILED`, `RUNNING`, `ABNORMAL` or `DELETING`.
    pub state: String,
    /// Why its creation failed (`CREATION_FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/compute-envs/{name}/scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    #[schema(maximum = 1000)]
    pub desired_nodes: u32,
}

/// One node in `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    /// `CREATING`, `RUNNING`, `ABNORMAL`, `DELETING`, …
    pub state: String,
    pub compute_env: Option<String>,
    pub slots: u32,
    pub cpus: f64,
    /// Bytes.
    pub memory: u64,
    /// Attempts running on the node now.
    pub running: u32,
    /// RFC 3339 time of the last heartbeat.
    pub last_seen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    pub items: Vec<NodeInfo>,
}

/// `POST /v1/nodes/{name}/revoke`: the node's credential is gone; its next call is refused
/// (401), and the attempts it held run again elsewhere (`NODE_LOST`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeRevoked {
    /// The node that was revoked.
    pub name: String,
}

/// `POST /v1/join-token/rotate`: the new join token, answered once. Nodes registered before
/// keep their credentials; new registrations need this token.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JoinToken {
    pub token: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `GET /v1/health` (no token needed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
    /// `leader` (this server schedules) or `standby` (another server of its database does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A storage profile as created: the body of `POST /v1/storage-profiles`, and one item of a
/// `kiln run --storage-profiles` file. Of kind `s3` or `cos` it reaches object storage
/// (`access_key_id`, `secret_access_key`, …); of kind `docker-registry`, a container registry
/// (`server`, `username`, `password`). `secret_access_key`, `session_token` and `password` are
/// write-only: no answer, log line or error carries them (reads show `***`).
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageProfileSpec {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub name: String,
    /// `s3` (AWS S3 or an S3-compatible server), `cos` (Tencent Cloud COS), or
    /// `docker-registry` (a container registry's login).
    #[schema(pattern = "^(s3|cos|docker-registry)$", example = "s3")]
    pub kind: String,
    /// The service's URL, e.g. `http://10.0.0.5:9000`; absent: AWS S3 / COS itself.
    #[serde(default)]
    #[schema(pattern = r"^https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/.*)?$")]
    pub endpoint: Option<String>,
    /// The region to sign with; `us-east-1` when absent.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub region: Option<String>,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`); default true when `endpoint` is given.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Required for `s3` and `cos`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(min_length = 1)]
    pub access_key_id: String,
    /// Required for `s3` and `cos`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(write_only, min_length = 1)]
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only, min_length = 1)]
    pub session_token: Option<String>,
    /// The profile of mappings that name none (at most one profile is the default; not for
    /// `docker-registry`, which is picked by `server`).
    #[serde(default)]
    pub default: bool,
    /// `docker-registry`: the registry's host as image references name it (`HOST[:PORT]`,
    /// e.g. `ccr.ccs.tencentyun.com`, `10.0.0.5:5000`; `docker.io` for Docker Hub). Images of
    /// that registry are pulled with this login unless their task names another
    /// (`registry_profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(/.*)?$")]
    pub server: Option<String>,
    /// `docker-registry`: the login's user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub username: Option<String>,
    /// `docker-registry`: the login's password or access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only, min_length = 1)]
    pub password: Option<String>,
}

impl std::fmt::Debug for StorageProfileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageProfileSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("default", &self.default)
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The profile kinds [`StorageProfileSpec::kind`] accepts.
pub const STORAGE_PROFILE_KINDS: &[&str] = &["s3", "cos", REGISTRY_PROFILE_KIND];
/// The kind of a registry login's profile.
pub const REGISTRY_PROFILE_KIND: &str = "docker-registry";

/// A field of a storage profile that is invalid, and why (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileProblem {
    pub field: String,
    pub message: String,
}

impl StorageProfileSpec {
    /// Reads a profile from JSON, naming the field of each problem without echoing any value
    /// (a secret may be among them).
    pub fn from_value(v: &serde_json::Value) -> Result<StorageProfileSpec, ProfileProblem> {
        let bad = |field: &str, message: String| ProfileProblem {
            field: field.to_string(),
            message,
        };
        let obj = v.as_object().ok_or_else(|| {
            bad(
                "",
                "a storage profile must be a mapping of name, kind, and the fields of its kind \
                 (s3, cos: endpoint, region, path_style, access_key_id, secret_access_key, \
                 session_token, default; docker-registry: server, username, password)"
                    .into(),
            )
        })?;
        const FIELDS: &[&str] = &[
            "name",
            "kind",
            "endpoint",
            "region",
            "path_style",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "default",
            "server",
            "username",
            "password",
        ];
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field `{k}`; expected one of {}", FIELDS.join(", ")),
            ));
        }
        let text = |field: &str, required: bool| -> Result<Option<String>, ProfileProblem> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) if required => {
                    Err(bad(field, format!("`{field}` is required")))
                }
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if s.is_empty() => {
                    Err(bad(field, format!("`{field}` must not be empty")))
                }
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(field, format!("`{field}` must be a string"))),
            }
        };
        let flag = |field: &str| -> Result<Option<bool>, ProfileProblem> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(bad(field, format!("`{field}` must be true or false"))),
            }
        };
        let name = text("name", true)?.unwrap_or_default();
        let n = name.chars().count();
        if n > 60
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad(
                "name",
                format!(
                    "`{name}` is not a valid profile name: 1-60 characters of A-Z a-z 0-9 . _ -"
                ),
            ));
        }
        let kind = text("kind", true)?.unwrap_or_default();
        if !STORAGE_PROFILE_KINDS.contains(&kind.as_str()) {
            return Err(bad(
                "kind",
                format!("unknown kind `{kind}`; expected `s3`, `cos` or `docker-registry`"),
            ));
        }
        let (own, other): (&[&str], &[&str]) = if kind == REGISTRY_PROFILE_KIND {
            (
                &["server", "username", "password"],
                &[
                    "endpoint",
                    "region",
                    "path_style",
                    "access_key_id",
                    "secret_access_key",
                    "session_token",
                ],
            )
        } else {
            (
                &["access_key_id", "secret_access_key"],
                &["server", "username", "password"],
            )
        };
        if let Some(f) = other
            .iter()
            .find(|f| obj.get(**f).is_some_and(|v| !v.is_null()))
        {
            return Err(bad(
                f,
                format!(
                    "`{f}` is not a field of a `{kind}` profile; it takes {}",
                    own.join(", ")
                ),
            ));
        }
        if kind == REGISTRY_PROFILE_KIND {
            if flag("default")? == Some(true) {
                return Err(bad(
                    "default",
                    "a docker-registry profile cannot be the default: it is used for the \
                     images of its `server`, or by tasks naming it (`registry_profile`)"
                        .into(),
                ));
            }
            let server = text("server", true)?.unwrap_or_default();
            if registry_host(&server).is_none() {
                return Err(bad(
                    "server",
                    format!(
                        "`{server}` is not a registry host; expected HOST[:PORT], e.g. \
                         ccr.ccs.tencentyun.com or 10.0.0.5:5000"
                    ),
                ));
            }
            return Ok(StorageProfileSpec {
                name,
                kind,
                endpoint: None,
                region: None,
                path_style: None,
                access_key_id: String::new(),
                secret_access_key: String::new(),
                session_token: None,
                default: false,
                server: Some(server),
                username: text("username", true)?,
                password: text("password", true)?,
            });
        }
        let endpoint = text("endpoint", false)?;
        if let Some(e) = &endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| !valid_authority(r.split('/').next().unwrap_or_default())) {
                return Err(bad(
                    "endpoint",
                    format!("`{e}` is not a URL; expected e.g. http://10.0.0.5:9000"),
                ));
            }
        }
        Ok(StorageProfileSpec {
            name,
            kind,
            region: text("region", false)?,
            path_style: flag("path_style")?,
            endpoint,
            access_key_id: text("access_key_id", true)?.unwrap_or_default(),
            secret_access_key: text("secret_access_key", true)?.unwrap_or_default(),
            session_token: text("session_token", false)?,
            default: flag("default")?.unwrap_or(false),
            server: None,
            username: None,
            password: None,
        })
    }

    /// Whether this is a registry login (`docker-registry`) rather than object storage.
    pub fn is_registry(&self) -> bool {
        self.kind == REGISTRY_PROFILE_KIND
    }

    /// Path-style requests: as given, else true when an endpoint is given.
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }
}

/// A storage profile as read back: its secret fields are `***`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageProfile {
    pub name: String,
    pub kind: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    /// `s3`, `cos`: the key's id; absent for `docker-registry`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key_id: String,
    /// `s3`, `cos`: always `***`; absent for `docker-registry`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_access_key: String,
    /// `***` when the profile has one.
    pub session_token: Option<String>,
    pub default: bool,
    /// `docker-registry`: the registry's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `docker-registry`: the login's user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `docker-registry`: always `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl StorageProfile {
    /// What reads show of `spec`.
    pub fn redacted(spec: &StorageProfileSpec, created_at: String) -> StorageProfile {
        StorageProfile {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            endpoint: spec.endpoint.clone(),
            region: spec.region.clone(),
            path_style: spec.path_style(),
            access_key_id: spec.access_key_id.clone(),
            secret_access_key: if spec.is_registry() {
                String::new()
            } else {
                "***".into()
            },
            session_token: spec.session_token.as_ref().map(|_| "***".into()),
            default: spec.default,
            server: spec.server.clone(),
            username: spec.username.clone(),
            password: spec.password.as_ref().map(|_| "***".into()),
            created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageProfileList {
    pub items: Vec<StorageProfile>,
}

/// Whether `authority` is `HOST[:PORT]`: a DNS name or IPv4 address, or an IPv6 address in
/// brackets, and a port that fits 16 bits.
fn valid_authority(authority: &str) -> bool {
    let (host_ok, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return false;
        };
        let port = match rest {
            "" => None,
            r => match r.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        let ok = !addr.is_empty()
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        (ok, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        (ok, port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok())
}

/// Docker Hub's registry host, as [`registry_host`] and [`image_registry`] name it.
pub const DOCKER_HUB: &str = "docker.io";

/// The registry host a `docker-registry` profile's `server` names, lower-cased, without a
/// scheme or path (`https://index.docker.io/v1/` → `docker.io`); `None` if it is not one.
pub fn registry_host(server: &str) -> Option<String> {
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !valid_authority(&host) {
        return None;
    }
    Some(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    })
}

/// The registry host of a Docker image reference, as the engine reads it: the first part of
/// the name when it has a `.` or `:` or is `localhost` (`10.0.0.5:5000/app:1` →
/// `10.0.0.5:5000`), else Docker Hub (`busybox:1.36`, `team/app` → `docker.io`).
pub fn image_registry(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            registry_host(first).unwrap_or_else(|| first.to_ascii_lowercase())
        }
        _ => DOCKER_HUB.to_string(),
    }
}

#[cfg(test)]
mod registry_tests {
    use super::{image_registry, registry_host};

    #[test]
    fn registry_hosts_are_read_as_docker_reads_them() {
        assert_eq!(image_registry("busybox:1.36"), "docker.io");
        assert_eq!(image_registry("team/app@sha256:00"), "docker.io");
        assert_eq!(
            image_registry("127.0.0.1:5000/kiln/app:1"),
            "127.0.0.1:5000"
        );
        assert_eq!(image_registry("localhost/app"), "localhost");
        assert_eq!(
            image_registry("CCR.ccs.tencentyun.com/demo/render:1.0"),
            "ccr.ccs.tencentyun.com"
        );
        assert_eq!(
            registry_host("https://index.docker.io/v1/").as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            registry_host("10.0.0.5:5000").as_deref(),
            Some("10.0.0.5:5000")
        );
        assert_eq!(
            registry_host("http://r.example:443/").as_deref(),
            Some("r.example:443")
        );
        assert_eq!(registry_host("[::1]:5000").as_deref(), Some("[::1]:5000"));
        for bad in [
            "",
            "a b",
            "r.example:port",
            "r.example:123456",
            "https://",
            "[::1",
            "[]",
        ] {
            assert_eq!(registry_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn endpoints_must_have_a_host() {
        for good in [
            "r.example",
            "10.0.0.5:9000",
            "[::1]:9000",
            "[fe80::1]",
            "s3_local",
        ] {
            assert!(super::valid_authority(good), "{good}");
        }
        for bad in [
            "",
            ":9000",
            "[",
            "[::1",
            "[::1]9000",
            "a b",
            "h:99999",
            "h:",
            "[zz]",
        ] {
            assert!(!super::valid_authority(bad), "{bad}");
        }
    }
}

/// The prefix of an API token: `kiln-token:NAME:SECRET`.
pub const API_TOKEN_PREFIX: &str = "kiln-token:";

/// The token name and secret part, if `token` has the form of an API token
/// (`kiln-token:NAME:SECRET`).
pub fn parse_api_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_TOKEN_PREFIX)?;
    let (name, secret) = rest.split_once(':')?;
    (!name.is_empty() && !secret.is_empty()).then_some((name, secret))
}

/// The body of `POST /v1/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: Option<String>,
}

/// A project: it owns jobs, templates, storage profiles and environments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub name: String,
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    pub items: Vec<Project>,
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The project the token acts in.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub project: String,
    /// `viewer`, `submitter`, `operator` or `admin`.
    #[schema(pattern = "^(viewer|submitter|operator|admin)$")]
    pub role: String,
    /// Unique among tokens [default: a new `tok-…` name].
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub name: Option<String>,
    /// How long the token works, e.g. `30d`, `12h` [default: until revoked].
    #[serde(default)]
    #[schema(pattern = "^[0-9][0-9a-z. ]{0,30}$", example = "30d")]
    pub expires: Option<String>,
}

/// `POST /v1/tokens`: the new token, answered once (only its digest is kept).
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub name: String,
    /// `kiln-token:NAME:SECRET`: the bearer token. Shown only here.
    pub token: String,
    pub project: String,
    pub role: String,
    /// RFC 3339; absent: until revoked.
    pub expires_at: Option<String>,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("project", &self.project)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub project: String,
    pub role: String,
    /// `active`, `expired` or `revoked`.
    #[schema(pattern = "^(active|expired|revoked)$")]
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent: until revoked.
    pub expires_at: Option<String>,
    /// RFC 3339, once revoked.
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenInfo>,
}

/// One state-changing API call, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339.
    pub at: String,
    /// The name of the token that called (`admin`: the data directory's admin token; `-`: no
    /// valid token).
    pub token: String,
    /// The caller's project.
    pub project: Option<String>,
    /// The method and route, e.g. `POST /v1/jobs/{id}/terminate`.
    pub action: String,
    /// What it was about, e.g. `job/job-4yn0we13` or the request's path.
    pub object: String,
    /// The HTTP status answered.
    pub result: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
    /// The `cursor` of the next page, if there may be one.
    pub next: Option<String>,
}
