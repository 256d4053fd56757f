//! The agent protocol: JSON bodies `POST`ed under `/v1/agent/`. `register` is authorised by the
//! join token (`Authorization: Bearer TOKEN`) and answers a credential for that node alone
//! ([`RegisterResponse::credential`], `kiln-node:NAME:SECRET`); every other call carries that
//! credential, and may only name that node and the attempts dispatched to it (another node's
//! attempt is refused with 403, changing nothing).
//!
//! An agent registers once (and again after the server answers `unknown_node`), then runs three
//! loops: `heartbeat` every `heartbeat_interval_ms`, `lease` (the server holds the request up to
//! `lease_wait_ms` until it has work), and `report` / `logs` as attempts start, end and print.
//! Reports are idempotent on the server: resending a batch after a transport error is safe.
//!
//! Logs travel as JSON too ([`LogAppendRequest`]), each chunk's bytes base64-encoded in
//! `data_b64`; `offset` is the byte offset of the chunk in its stream, so the server can drop a
//! chunk it already has and notice a gap.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Names one attempt of one task instance. (It travels in answers too, so it tolerates unknown
/// fields; the request bodies around it do not.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct AttemptKey {
    /// The job id (`job-…`).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub job: String,
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,60}$")]
    pub task: String,
    /// 0-based instance index.
    pub index: u32,
    /// 1-based attempt number.
    pub attempt: u32,
}

impl fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}#{}",
            self.job, self.task, self.index, self.attempt
        )
    }
}

/// `POST /v1/agent/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The node's name; `local` is the built-in executor's.
    #[schema(pattern = r"^(?!local$)[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    pub compute_env: Option<String>,
    /// How many attempts the agent runs at once.
    #[schema(minimum = 1)]
    pub slots: u32,
    pub cpus: f64,
    /// Bytes.
    pub memory: u64,
    /// The agent's `kiln` version.
    pub version: String,
    /// A Docker Engine answers on the node: it runs tasks whose image is a Docker image.
    #[serde(default)]
    pub containers: bool,
    /// Attempts still running on this agent (after a reconnect).
    #[serde(default)]
    pub running: Vec<AttemptKey>,
    /// When the agent goes away (ms since the epoch; a Slurm allocation's end): it is given
    /// only attempts whose `timeout` ends before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<u64>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub node_id: String,
    pub heartbeat_interval_ms: u64,
    pub lease_wait_ms: u64,
    /// This node's own credential (`kiln-node:NAME:SECRET`), the bearer token of every other
    /// agent call, when it registered with the join token. Only its digest is kept by the
    /// server: it is answered once, here; a later registration of the name with the join token
    /// replaces it. Absent when the node registered again with its credential (it stays valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl fmt::Debug for RegisterResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterResponse")
            .field("node_id", &self.node_id)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("lease_wait_ms", &self.lease_wait_ms)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// The prefix of a node credential: `kiln-node:NAME:SECRET`.
pub const NODE_CREDENTIAL_PREFIX: &str = "kiln-node:";

/// The node a credential names and its secret part, if `token` has the form of a node
/// credential (`kiln-node:NAME:SECRET`).
pub fn parse_node_credential(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(NODE_CREDENTIAL_PREFIX)?;
    let (name, secret) = rest.split_once(':')?;
    (!name.is_empty() && !secret.is_empty()).then_some((name, secret))
}

/// `POST /v1/agent/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub node_id: String,
    #[serde(default)]
    pub running: Vec<AttemptKey>,
    /// The agent is going away now (its allocation ends, or it was told to stop there): the
    /// attempts it holds are lost (`NODE_LOST`, not counted against `retries`) and run again
    /// elsewhere; it kills them itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// Attempts the agent must stop (and then report `stopped`).
    #[serde(default)]
    pub kill: Vec<AttemptKey>,
    /// Take no new leases; finish what runs.
    #[serde(default)]
    pub drain: bool,
    /// The server does not know this node id: register again.
    #[serde(default)]
    pub unknown_node: bool,
}

/// `POST /v1/agent/lease`: the server answers when it has work or after `lease_wait_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub node_id: String,
    /// At most this many attempts (the agent's free slots).
    #[schema(minimum = 1)]
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseResponse {
    /// Empty when the wait ran out.
    #[serde(default)]
    pub attempts: Vec<AttemptAssignment>,
}

/// One attempt the agent is to start now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptAssignment {
    pub key: AttemptKey,
    pub job_name: String,
    /// Number of instances of the task (`BATCH_TASK_INSTANCE_NUM`).
    pub instances: u32,
    pub command: CommandDto,
    /// `host`, or the Docker image to run the command in.
    #[serde(default = "host_image")]
    pub image: String,
    /// The Docker network (VPC) the container joins; `None`: the engine's default.
    #[serde(default)]
    pub network: Option<String>,
    /// CPU limit in thousandths of a CPU (containers only).
    #[serde(default)]
    pub millicpus: u32,
    /// Memory limit in bytes; 0: none (containers only).
    #[serde(default)]
    pub memory: u64,
    /// The task's `env`, with the instance's item variables (`BATCH_TASK_INSTANCE_ITEM`,
    /// `BATCH_ITEM_*`) if its task has items; the agent adds the other `BATCH_*` variables
    /// itself. Mappings, redirects and an argv command come with the item filled in.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    /// Remote storage to make available before the command runs.
    #[serde(default)]
    pub inputs: Vec<InputMappingDto>,
    /// Local paths to upload after it ends.
    #[serde(default)]
    pub outputs: Vec<OutputMappingDto>,
    /// Where stdout / stderr are uploaded when it ends (a prefix ending in `/` or an object URL).
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    /// The storage settings of the profiles this attempt's mappings use (each mapping's
    /// `profile`, else `storage_profile`): held in memory for the attempt only, never written
    /// to the node's disk or passed to the command. Empty: the node's own storage (`AWS_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageSettings>,
    /// The profile of the mappings and redirects that name none: the task's
    /// `storage_profile`, else the server's default profile; `None`: the node's own storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_profile: Option<String>,
    /// The registry login the image is pulled with (a `docker-registry` profile, or the
    /// job's own, e.g. Tencent `Application.Docker`): held in memory for the pull only.
    /// `None`: the engine pulls without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryAuth>,
}

/// A login to a container registry, for pulling one attempt's image. `Debug` hides the
/// password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryAuth {
    /// The registry's host (`HOST[:PORT]`), as the image reference names it.
    pub server: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

fn host_image() -> String {
    "host".into()
}

/// How to reach one storage profile's storage, secrets included: what an attempt is given
/// of a storage profile. `Debug` shows neither the secret key nor the session token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorageSettings {
    /// The profile's name, as mappings name it.
    pub name: String,
    /// `s3` or `cos`.
    pub kind: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`).
    #[serde(default)]
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageSettings")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl From<&crate::StorageProfileSpec> for StorageSettings {
    fn from(p: &crate::StorageProfileSpec) -> Self {
        StorageSettings {
            name: p.name.clone(),
            kind: p.kind.clone(),
            endpoint: p.endpoint.clone(),
            region: p.region.clone(),
            path_style: p.path_style(),
            access_key_id: p.access_key_id.clone(),
            secret_access_key: p.secret_access_key.clone(),
            session_token: p.session_token.clone(),
        }
    }
}

/// `source` (a storage URL) made available at `target` (a path in the working directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputMappingDto {
    pub source: String,
    pub target: String,
    /// The storage profile of this mapping (one of the assignment's `storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// `source` (a local path) uploaded to `target` (a storage URL) `when`: success|failure|always.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputMappingDto {
    pub source: String,
    pub target: String,
    pub when: String,
    /// The storage profile of this mapping (one of the assignment's `storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// What to run: `{"shell": "echo hi"}` (run by `sh -c`) or `{"argv": ["echo", "hi"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandDto {
    Shell(String),
    Argv(Vec<String>),
}

/// `POST /v1/agent/report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub node_id: String,
    pub events: Vec<AttemptEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    /// Events the server recorded (stale or duplicate ones are ignored, not refused).
    pub accepted: u32,
    /// Work dispatched to the node meanwhile (typically into the slots the reported ends
    /// freed), handed over here to save a lease round trip. Run them like leased ones.
    #[serde(default)]
    pub attempts: Vec<AttemptAssignment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptEvent {
    pub key: AttemptKey,
    pub kind: AttemptEventKind,
}

/// What happened to an attempt: `{"type": "exited", "code": 3}`, `{"type": "timed_out"}`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttemptEventKind {
    /// The process is running.
    Started { pid: Option<u32> },
    /// The process exited by itself with this code.
    Exited { code: i32 },
    /// The process was killed by a signal it was not sent by Kiln.
    Signaled { signal: i32 },
    /// Kiln killed it at its `timeout`.
    TimedOut,
    /// Kiln stopped it on request (a `kill` from the server, or the agent shutting down).
    Stopped,
    /// It could not be started; `resource` is true when the node lacked something (a retry
    /// elsewhere may succeed, and spends `resource_retries`), false for a bad command.
    StartFailed { message: String, resource: bool },
    /// An input could not be made available; the command never ran (`URL: cause`).
    InputMappingFailed { message: String },
    /// The command ended (exit `code`, if it exited) but outputs or logs could not be uploaded.
    OutputMappingFailed { code: Option<i32>, message: String },
    /// The container was killed for exceeding its memory limit (exit `code`, usually 137).
    OutOfMemory { code: i32 },
    /// The Docker image is not on the node and could not be pulled.
    ImageNotFound { image: String },
    /// The registry refused the pull (`REF: cause`, e.g. `REF: unauthorized`).
    ImagePullFailed { message: String },
}

/// The largest offset a log chunk may be written at (1 TiB): no attempt's output is larger.
pub const MAX_LOG_OFFSET: u64 = 1 << 40;

/// Standard output's name in [`LogChunk::stream`] and the `stream=` query parameter.
pub const STDOUT: &str = "stdout";
/// Standard error's name in [`LogChunk::stream`] and the `stream=` query parameter.
pub const STDERR: &str = "stderr";

/// A piece of an attempt's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    pub key: AttemptKey,
    /// `stdout` or `stderr`.
    #[schema(pattern = "^(stdout|stderr)$")]
    pub stream: String,
    /// Byte offset of the chunk's first byte in its stream.
    #[schema(maximum = 1099511627776_u64)]
    pub offset: u64,
    /// The bytes, base64 (standard alphabet, padded, no stray bits in the last character).
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    pub data_b64: String,
}

/// `data_b64` of a [`LogChunk`] is not valid base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64 in log chunk: {0}")]
pub struct InvalidLogData(pub String);

impl LogChunk {
    /// A chunk holding `data`, encoded.
    pub fn new(key: AttemptKey, stream: impl Into<String>, offset: u64, data: &[u8]) -> Self {
        LogChunk {
            key,
            stream: stream.into(),
            offset,
            data_b64: STANDARD.encode(data),
        }
    }

    /// The chunk's bytes, decoded.
    pub fn data(&self) -> Result<Vec<u8>, InvalidLogData> {
        STANDARD
            .decode(&self.data_b64)
            .map_err(|e| InvalidLogData(e.to_string()))
    }
}

/// `POST /v1/agent/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogAppendRequest {
    pub node_id: String,
    pub chunks: Vec<LogChunk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogAppendResponse {
    /// Chunks the server stored (chunks it already had count as accepted).
    pub accepted: u32,
}
