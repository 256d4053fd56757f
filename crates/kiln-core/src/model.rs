//! The validated job model: what a job spec means once it has been parsed and checked.
//!
//! Every format (native YAML/JSON, Tencent `Job` JSON) converts into these types, and nothing
//! downstream ever sees a raw spec. A `JobSpec` is immutable after submission; it is stored as JSON
//! (hence the serde derives) together with its `SPEC_VERSION`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the stored `JobSpec` encoding; bump it (and add a migration) when the shape changes.
pub const SPEC_VERSION: u32 = 1;

/// Largest number of instances one task may have (Tencent's `TaskInstanceNum` upper bound).
pub const MAX_INSTANCES: u32 = 1_000_000;

/// A validated job. Tasks are kept in a topological order of the DAG: every task's
/// dependencies have smaller indexes than the task itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 0..=100, higher runs first.
    pub priority: u8,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub dependency_policy: DependencyPolicy,
    /// The job's deadline, in milliseconds from its submission (or its last retry): what still
    /// runs or waits then ends `FAILED` with `JOB_TIMED_OUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub tasks: Vec<TaskSpec>,
    /// The project the job belongs to (none: the `default` project, or the submitter's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The job's [`JobCredentials`], sealed by the server at submission (opaque here; only the
    /// server opens it, for the attempts that use it). Never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_credentials: Option<String>,
}

/// Credentials a job carries with its spec (a Tencent job's `Authentications` and
/// `Application.Docker.User/Password/Server`), by task name. Never part of the stored spec in
/// the clear: the server seals them into [`JobSpec::sealed_credentials`]. `Debug` shows no
/// secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCredentials {
    pub tasks: BTreeMap<String, TaskCredentials>,
}

impl JobCredentials {
    pub fn is_empty(&self) -> bool {
        self.tasks.values().all(TaskCredentials::is_empty)
    }

    /// Every secret value (for tests and redaction).
    pub fn secrets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for t in self.tasks.values() {
            if let Some(c) = &t.cos {
                out.push(c.secret_key.as_str());
            }
            if let Some(r) = &t.registry {
                out.push(r.password.as_str());
            }
        }
        out
    }
}

impl std::fmt::Debug for JobCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.tasks.iter()).finish()
    }
}

/// One task's credentials.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCredentials {
    /// Object storage keys (Tencent `Authentications` of `Scene: COS`) for its mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos: Option<StorageKeys>,
    /// Registry login (Tencent `Application.Docker.User/Password/Server`) for its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryLogin>,
}

impl TaskCredentials {
    pub fn is_empty(&self) -> bool {
        self.cos.is_none() && self.registry.is_none()
    }
}

impl std::fmt::Debug for TaskCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCredentials")
            .field("cos", &self.cos.as_ref().map(|c| &c.secret_id))
            .field(
                "registry",
                &self
                    .registry
                    .as_ref()
                    .map(|r| (&r.server, &r.username, "***")),
            )
            .finish()
    }
}

/// An access key pair (COS `SecretId` / `SecretKey`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageKeys {
    pub secret_id: String,
    pub secret_key: String,
}

/// A registry login; `server` absent: the registry of the image reference.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLogin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub username: String,
    pub password: String,
}

impl JobSpec {
    /// The index of the task called `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }
}

/// When a task may start, given its upstream tasks (Tencent `TaskExecutionDependOn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DependencyPolicy {
    /// Every upstream task `SUCCEED` (`PRE_TASK_SUCCEED`).
    #[default]
    Succeeded,
    /// Every upstream task finished with at least one instance `SUCCEED`
    /// (`PRE_TASK_AT_LEAST_PARTLY_SUCCEEDED`).
    PartlySucceeded,
    /// Every upstream task finished, whatever its outcome (`PRE_TASK_FINISHED`).
    Finished,
}

/// What happens to a task when one of its instances fails for good (Tencent `FailedAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop the task: pending instances never start, running ones are stopped; task `FAILED`.
    #[default]
    Terminate,
    /// Let the other instances run to the end; task `FAILED_INTERRUPTED`.
    Interrupt,
}

/// One task of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub command: Command,
    pub image: Image,
    /// 1..=MAX_INSTANCES.
    pub instances: u32,
    /// 0 = unlimited.
    pub max_concurrency: u32,
    pub resources: Resources,
    /// The catalog name the resources came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_env: Option<String>,
    /// The storage profile of the task's mappings and redirects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_profile: Option<String>,
    /// The `docker-registry` profile its image is pulled with; `None`: the profile whose
    /// `server` is the image's registry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_profile: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Application-failure retries per instance, 0..=10.
    pub retries: u32,
    /// Node-loss / instance-creation retries, not counted in `retries`.
    pub resource_retries: u32,
    /// Per-attempt timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub on_failure: OnFailure,
    /// Upstream dependencies (indexes into `JobSpec::tasks`, always smaller than this task's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<Dependency>,
    /// The task's items (`each`, `each_line`, `each_json`): instance *i* runs over item *i*,
    /// and `instances` is their number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<TaskItems>,
    /// More memory for the next attempt after one ran out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_out_of_memory: Option<OomPolicy>,
}

impl TaskSpec {
    /// True when some dependency is per-instance (`a => b`).
    pub fn has_instance_deps(&self) -> bool {
        self.deps.iter().any(|d| d.kind == DepKind::Instance)
    }
}

/// Where a task's items come from, and (until the job is stored) the items themselves.
///
/// The list is kept apart from the spec once a job is stored (the store keeps it in chunks of
/// [`ITEM_CHUNK`] items, the engine never holds it), so it is not serialised with the spec; the
/// `digest` is, so two specs over different items are different specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskItems {
    pub source: ItemSource,
    /// FNV-1a of the items' encoded text (hex), once they are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The items, while the spec is on its way to the store; `None` when not read yet (a
    /// file or an object in remote storage) or when kept by the store.
    #[serde(skip)]
    pub list: Option<std::sync::Arc<ItemList>>,
}

/// Where items are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// `each: [...]`, in the spec itself.
    Each,
    /// `each_line: PATH_OR_URL`: one item per line of a file or an object.
    Lines(String),
    /// `each_json: PATH_OR_URL`: a JSON array.
    Json(String),
}

/// How many items one stored chunk holds.
pub const ITEM_CHUNK: u32 = 1024;

/// A task's items, compactly: each item as one line of compact JSON (a JSON text never holds a
/// raw newline), so a million items are two allocations, not a million.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemList {
    text: String,
    count: u32,
}

impl ItemList {
    /// Appends one item, given as compact JSON without a newline.
    pub(crate) fn push_json(&mut self, json: &str) {
        self.text.push_str(json);
        self.text.push('\n');
        self.count += 1;
    }

    /// The number of items.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every item's JSON text, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    /// The items in chunks of [`ITEM_CHUNK`], each as newline-terminated JSON lines (what the
    /// store keeps per chunk).
    pub fn chunks(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut n = 0;
        for (i, b) in self.text.bytes().enumerate() {
            if b == b'\n' {
                n += 1;
                if n == ITEM_CHUNK {
                    out.push(&self.text[start..=i]);
                    start = i + 1;
                    n = 0;
                }
            }
        }
        if start < self.text.len() {
            out.push(&self.text[start..]);
        }
        out
    }

    /// FNV-1a (64 bits) of the encoded items, as hex.
    pub fn digest(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// More memory after an attempt ran out of it (`on_out_of_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomPolicy {
    /// How many attempts may get more memory; these do not spend `retries`.
    pub retries: u32,
    /// The factor, in thousandths (2000 = twice the memory).
    pub factor_milli: u32,
    /// The most memory an attempt gets, in bytes; `None`: what the largest node offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// An edge of the DAG, seen from the downstream task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Index of the upstream task.
    pub task: usize,
    pub kind: DepKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepKind {
    /// `a -> b`: b starts after the whole of a (per `dependency_policy`).
    Task,
    /// `a => b`: instance i of b starts when instance i of a has succeeded.
    Instance,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Run under `/bin/sh -c`.
    Shell(String),
    /// Run as an argv vector (non-empty).
    Argv(Vec<String>),
}

/// Where to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Image {
    /// Directly on the node.
    Host,
    /// A Docker image reference.
    Docker(String),
}

/// What one instance needs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs in thousandths (1000 = one CPU).
    pub millicpus: u32,
    /// Bytes of memory; 0 = not stated (not counted when fitting).
    pub memory: u64,
    /// Bytes of disk; 0 = not stated.
    pub disk: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            millicpus: 1000,
            memory: 0,
            disk: 0,
        }
    }
}

/// Remote storage made available at a local path before an attempt starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMapping {
    /// A storage URL (`s3://`, `cos://`, `file://`).
    pub source: String,
    /// A path, relative to the working directory unless absolute.
    pub target: String,
    /// The storage profile of this mapping (over the task's `storage_profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A local path uploaded to remote storage after an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputMapping {
    pub source: String,
    pub target: String,
    pub when: UploadWhen,
    /// The storage profile of this mapping (over the task's `storage_profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UploadWhen {
    #[default]
    Success,
    Failure,
    Always,
}

/// One named instance type of the built-in catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub resources: Resources,
}

const GIB: u64 = 1 << 30;

const fn it(name: &'static str, cpus: u32, memory_gib: u64) -> InstanceType {
    InstanceType {
        name,
        resources: Resources {
            millicpus: cpus * 1000,
            memory: memory_gib * GIB,
            disk: 0,
        },
    }
}

/// The built-in instance type catalog, modelled on BatchCompute's families.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    it("S1.SMALL1", 1, 1),
    it("S1.SMALL2", 1, 2),
    it("S1.MEDIUM2", 2, 2),
    it("S1.MEDIUM4", 2, 4),
    it("S1.LARGE8", 4, 8),
    it("S1.LARGE16", 4, 16),
    it("S1.2XLARGE16", 8, 16),
    it("S1.2XLARGE32", 8, 32),
    it("C2.LARGE8", 4, 8),
    it("C2.2XLARGE16", 8, 16),
    it("M2.LARGE32", 4, 32),
];

/// Looks up a built-in instance type by its exact name.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// The instance types a spec may name: the built-in ones, plus any a deployment adds (or
/// redefines) in its configuration. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog(std::sync::Arc<BTreeMap<String, Resources>>);

impl Catalog {
    /// The built-in catalog ([`INSTANCE_TYPES`]).
    pub fn builtin() -> Catalog {
        Catalog::with([])
    }

    /// The built-in catalog with `extra` added; an extra type of a built-in name replaces it.
    pub fn with(extra: impl IntoIterator<Item = (String, Resources)>) -> Catalog {
        let mut types: BTreeMap<String, Resources> = INSTANCE_TYPES
            .iter()
            .map(|t| (t.name.to_string(), t.resources))
            .collect();
        types.extend(extra);
        Catalog(std::sync::Arc::new(types))
    }

    /// The resources of the type `name` (exact name).
    pub fn get(&self, name: &str) -> Option<Resources> {
        self.0.get(name).copied()
    }

    /// Every type name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::builtin()
    }
}

/// Which captured stream a log object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where one attempt's stdout or stderr goes, given a task's `stdout`/`stderr` location.
///
/// Under a prefix (ending in `/`), attempt 1 writes Tencent's default name
/// `stdout.JOBID.TASK.INDEX.log` and attempt N ≥ 2 writes `stdout.JOBID.TASK.INDEX.attempt-N.log`,
/// so no attempt's log overwrites another's. A full object URL has its placeholders
/// `${BATCH_JOB_ID}`, `${BATCH_TASK_NAME}`, `${BATCH_TASK_INSTANCE_INDEX}` and
/// `${BATCH_TASK_INSTANCE_ATTEMPT}` filled in.
pub fn redirect_url(
    location: &str,
    stream: Stream,
    job: &str,
    task: &str,
    index: u32,
    attempt: u32,
) -> String {
    if location.ends_with('/') {
        let s = stream.as_str();
        if attempt <= 1 {
            format!("{location}{s}.{job}.{task}.{index}.log")
        } else {
            format!("{location}{s}.{job}.{task}.{index}.attempt-{attempt}.log")
        }
    } else {
        location
            .replace("${BATCH_JOB_ID}", job)
            .replace("${BATCH_TASK_NAME}", task)
            .replace("${BATCH_TASK_INSTANCE_INDEX}", &index.to_string())
            .replace("${BATCH_TASK_INSTANCE_ATTEMPT}", &attempt.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_names() {
        let prefix = "s3://b/logs/";
        assert_eq!(
            redirect_url(prefix, Stream::Stdout, "job-1", "t", 3, 1),
            "s3://b/logs/stdout.job-1.t.3.log"
        );
        assert_eq!(
            redirect_url(prefix, Stream::Stderr, "job-1", "t", 3, 2),
            "s3://b/logs/stderr.job-1.t.3.attempt-2.log"
        );
        assert_eq!(
            redirect_url(
                "cos://b-1.cos.ap-x.myqcloud.com/l/${BATCH_JOB_ID}-${BATCH_TASK_NAME}-${BATCH_TASK_INSTANCE_INDEX}.${BATCH_TASK_INSTANCE_ATTEMPT}.err",
                Stream::Stderr,
                "job-1",
                "t",
                0,
                4
            ),
            "cos://b-1.cos.ap-x.myqcloud.com/l/job-1-t-0.4.err"
        );
    }
}
