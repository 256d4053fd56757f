//! Job spec parsing and validation: text in, a validated [`JobSpec`] (or every error) out.
//!
//! Two formats are accepted (DESIGN §2): Kiln's native format (YAML, or JSON when the first
//! non-whitespace character is `{`) and Tencent BatchCompute's `Job` object or `SubmitJob`
//! request body, detected by its keys. Documents are read into a generic value tree first and
//! then walked field by field, so that every error is reported at once, each with its path
//! (`tasks.split.instances`; Tencent paths such as `Job.Tasks[0].TaskName`).

mod build;
mod check;
mod native;
mod tencent;
mod units;
pub(crate) mod value;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{
    Catalog, Command, DepKind, DependencyPolicy, Image, InputMapping, ItemList, ItemSource,
    JobCredentials, JobSpec, OnFailure, OomPolicy, OutputMapping, Resources, TaskItems,
};

pub use units::{format_size, parse_duration, parse_size};

use check::Diag;
use value::Value;

/// Largest accepted spec document.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Where: `tasks.split.instances`, `Job.Tasks[0].TaskName`, `dag`; empty for the whole document.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Every problem found in a spec, in document order (DAG and cross-task problems last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl SpecErrors {
    fn one(message: impl Into<String>) -> Self {
        SpecErrors(vec![SpecError {
            path: String::new(),
            message: message.into(),
            hint: None,
        }])
    }
}

/// Something in a valid spec that Kiln accepts but cannot honour (e.g. a Tencent CVM setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecWarning {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Which format a spec was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Native,
    Tencent,
}

/// A successfully parsed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub spec: JobSpec,
    /// Credentials the spec gave (Tencent `Authentications`, `Application.Docker.*`), kept
    /// out of `spec`: the server seals them into it at submission.
    pub credentials: JobCredentials,
    pub warnings: Vec<SpecWarning>,
    pub format: SpecFormat,
}

/// A native task as written, every field optional; already checked field by field (types,
/// ranges, names, URLs), but not yet merged with its template nor checked against the job.
///
/// `instance_type` and `resources` are one "sizing" choice: when a task gives either, both of
/// its template's are replaced; likewise `instances` and the items (`each`, `each_line`,
/// `each_json`) are one "count" choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawTask {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<InputMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<OutputMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<RawItems>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_out_of_memory: Option<OomPolicy>,
}

/// A task's items as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawItems {
    /// `each: [...]`.
    Each(ItemList),
    /// `each_line: PATH_OR_URL`.
    Lines(String),
    /// `each_json: PATH_OR_URL`.
    Json(String),
}

impl RawTask {
    /// `self` over `base`: every field given in `self` wins, the others come from `base`.
    /// `instance_type`/`resources` move together; `template` is not followed further.
    pub fn over(self, base: &RawTask) -> RawTask {
        let base = base.clone();
        let sized = self.instance_type.is_some() || self.resources.is_some();
        let (instance_type, resources) = if sized {
            (self.instance_type, self.resources)
        } else {
            (base.instance_type, base.resources)
        };
        let counted = self.instances.is_some() || self.items.is_some();
        let (instances, items) = if counted {
            (self.instances, self.items)
        } else {
            (base.instances, base.items)
        };
        RawTask {
            command: self.command.or(base.command),
            image: self.image.or(base.image),
            instances,
            max_concurrency: self.max_concurrency.or(base.max_concurrency),
            instance_type,
            resources,
            network: self.network.or(base.network),
            compute_env: self.compute_env.or(base.compute_env),
            storage_profile: self.storage_profile.or(base.storage_profile),
            registry_profile: self.registry_profile.or(base.registry_profile),
            env: self.env.or(base.env),
            inputs: self.inputs.or(base.inputs),
            outputs: self.outputs.or(base.outputs),
            stdout: self.stdout.or(base.stdout),
            stderr: self.stderr.or(base.stderr),
            retries: self.retries.or(base.retries),
            resource_retries: self.resource_retries.or(base.resource_retries),
            timeout_ms: self.timeout_ms.or(base.timeout_ms),
            on_failure: self.on_failure.or(base.on_failure),
            depends_on: self.depends_on.or(base.depends_on),
            template: self.template,
            items,
            on_out_of_memory: self.on_out_of_memory.or(base.on_out_of_memory),
        }
    }
}

/// Stored task templates by name.
pub type Templates = BTreeMap<String, RawTask>;

/// Most errors reported for one spec; the rest are summed up in one last error.
pub const MAX_ERRORS: usize = 1000;

fn capped(mut errors: Vec<SpecError>) -> SpecErrors {
    if errors.len() > MAX_ERRORS {
        let more = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(SpecError {
            path: String::new(),
            message: format!("… and {more} more errors"),
            hint: None,
        });
    }
    SpecErrors(errors)
}

/// Reads bytes into a value tree, or the one error that prevents it.
fn read_document(bytes: &[u8]) -> Result<Value, SpecErrors> {
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(SpecErrors::one(format!(
            "the spec is {} bytes; at most {MAX_SPEC_BYTES} bytes are accepted",
            bytes.len()
        )));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            return Err(SpecErrors::one(format!(
                "the spec is not valid UTF-8: invalid byte at line {line}, column {column} (byte offset {})",
                e.valid_up_to()
            )));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(SpecErrors::one("the spec is empty"));
    }
    let value = if trimmed.starts_with('{') {
        serde_json::from_str::<Value>(text)
            .map_err(|e| SpecErrors::one(format!("invalid JSON: {e}")))?
    } else {
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        options.strict_booleans = true;
        options.leading_zero_numbers_as_strings = true;
        // The default budget (250k nodes) refuses jobs of ~80k tasks; allow what JSON allows
        // within MAX_SPEC_BYTES, keeping the depth and alias limits.
        if let Some(budget) = options.budget.as_mut() {
            budget.max_nodes = budget.max_nodes.max(4_000_000);
            budget.max_events = budget.max_events.max(8_000_000);
        }
        serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
            let mut message = format!("invalid YAML: {e}")
                .replace(
                    "budget breached",
                    "the document is too large or too deeply nested",
                )
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
                .replace(
                    "use from_str_multiple or from_str_multiple_with_options",
                    "a spec is a single document",
                );
            if let Some(loc) = e.location()
                && !message.contains("line")
            {
                message.push_str(&format!(" at line {}, column {}", loc.line(), loc.column()));
            }
            SpecErrors::one(message)
        })?
    };
    if matches!(value, Value::Null) {
        return Err(SpecErrors::one("the spec is empty"));
    }
    Ok(value)
}

/// Parses and validates a job spec (native YAML/JSON or Tencent JSON), reporting every error.
///
/// A task with `template: NAME` starts from `templates[NAME]`, and each field it gives replaces
/// the template's (maps and lists are replaced whole, not merged).
pub fn parse_job(bytes: &[u8], templates: &Templates) -> Result<Parsed, SpecErrors> {
    parse_job_in(bytes, templates, &Catalog::builtin())
}

/// [`parse_job`] with instance types looked up in `catalog`.
pub fn parse_job_in(
    bytes: &[u8],
    templates: &Templates,
    catalog: &Catalog,
) -> Result<Parsed, SpecErrors> {
    let value = read_document(bytes)?;
    let mut d = Diag::with_catalog(catalog);
    let Some(obj) = check::Obj::new(&value, "", &mut d) else {
        return Err(SpecErrors(d.errors));
    };
    let (mut raw, format) = if tencent::is_tencent(&obj) {
        (tencent::read(&obj, &mut d), SpecFormat::Tencent)
    } else {
        (native::read_job(&obj, &mut d), SpecFormat::Native)
    };
    let credentials = std::mem::take(&mut raw.credentials);
    let spec = build::finish(raw, templates, &mut d);
    match spec {
        Some(spec) if d.errors.is_empty() => Ok(Parsed {
            spec,
            credentials,
            warnings: d.warnings,
            format,
        }),
        _ => Err(capped(d.errors)),
    }
}

/// The tasks whose items are still to be read (`each_line`, `each_json`): task index, where
/// to read them from (a path or a storage URL), and the field, for errors.
pub fn unread_items(spec: &JobSpec) -> Vec<(usize, String, String)> {
    spec.tasks
        .iter()
        .enumerate()
        .filter_map(|(t, task)| {
            let items = task.items.as_ref().filter(|i| i.list.is_none())?;
            let (key, at) = match &items.source {
                ItemSource::Lines(at) => ("each_line", at),
                ItemSource::Json(at) => ("each_json", at),
                ItemSource::Each => return None,
            };
            Some((t, at.clone(), format!("tasks.{}.{key}", task.name)))
        })
        .collect()
}

/// Gives the tasks of [`unread_items`] their items, from the bytes the shell read: sets each
/// one's instance count, checks every item against the task (the fields using
/// `${BATCH_TASK_INSTANCE_ITEM}`), and checks again that `a => b` joins equal counts.
pub fn attach_items(spec: &mut JobSpec, read: Vec<(usize, Vec<u8>)>) -> Result<(), SpecErrors> {
    let mut d = Diag::default();
    let unread = unread_items(spec);
    for (t, bytes) in read {
        let Some((_, at, path)) = unread.iter().find(|(u, _, _)| *u == t) else {
            continue;
        };
        let task = &mut spec.tasks[t];
        let Some(source) = task.items.as_ref().map(|i| i.source.clone()) else {
            continue;
        };
        let parsed = match &source {
            ItemSource::Lines(_) => crate::items::from_lines(&bytes),
            ItemSource::Json(_) => crate::items::from_json(&bytes),
            ItemSource::Each => continue,
        };
        match parsed {
            Err(errors) => {
                for e in errors {
                    d.err(path, format!("{at}: {e}"));
                }
            }
            Ok(list) => {
                task.instances = list.len();
                build::check_items_against(&format!("tasks.{}", task.name), task, &list, &mut d);
                task.items = Some(TaskItems::read(source, list));
            }
        }
    }
    for task in &spec.tasks {
        for dep in task.deps.iter().filter(|d| d.kind == DepKind::Instance) {
            let up = &spec.tasks[dep.task];
            if up.instances != task.instances {
                d.err(
                    "dag",
                    format!(
                        "`{} => {}` needs the same instance count on both sides, but `{}` has {} and `{}` has {}",
                        up.name, task.name, up.name, up.instances, task.name, task.instances
                    ),
                );
            }
        }
    }
    if d.errors.is_empty() {
        Ok(())
    } else {
        Err(capped(d.errors))
    }
}

/// Parses a task template: a mapping of native task fields (paths are relative to the task).
/// `template` and `depends_on` are not allowed in a template.
/// Every profile `spec` names that is not among those known: a task's `storage_profile` and a
/// mapping's `profile` must be in `storage` (object storage profiles), a task's
/// `registry_profile` in `registry` (`docker-registry` profiles); as errors naming the field,
/// with the closest known name as a hint.
pub fn check_profiles(
    spec: &JobSpec,
    storage: &[&str],
    registry: &[&str],
) -> Result<(), SpecErrors> {
    let mut errors = Vec::new();
    let mut check = |name: &Option<String>, path: String, known: &[&str], what: &str| {
        if let Some(name) = name
            && !known.contains(&name.as_str())
        {
            let hint = match check::suggest(name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => format!(
                    "no {what} profiles are defined where this job runs (on a server: `kiln \
                     storage create FILE`; with `kiln run`: `--storage-profiles FILE`)"
                ),
                None => format!("known {what} profiles: {}", known.join(", ")),
            };
            errors.push(SpecError {
                path,
                message: format!("unknown {what} profile `{name}`"),
                hint: Some(hint),
            });
        }
    };
    for t in &spec.tasks {
        let at = format!("tasks.{}", t.name);
        check(
            &t.storage_profile,
            format!("{at}.storage_profile"),
            storage,
            "storage",
        );
        check(
            &t.registry_profile,
            format!("{at}.registry_profile"),
            registry,
            "registry",
        );
        for (i, m) in t.inputs.iter().enumerate() {
            check(
                &m.profile,
                format!("{at}.inputs[{i}].profile"),
                storage,
                "storage",
            );
        }
        for (i, m) in t.outputs.iter().enumerate() {
            check(
                &m.profile,
                format!("{at}.outputs[{i}].profile"),
                storage,
                "storage",
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errors))
    }
}

pub fn parse_task_template(bytes: &[u8]) -> Result<RawTask, SpecErrors> {
    parse_task_template_in(bytes, &Catalog::builtin())
}

/// [`parse_task_template`] with instance types looked up in `catalog`.
pub fn parse_task_template_in(bytes: &[u8], catalog: &Catalog) -> Result<RawTask, SpecErrors> {
    let value = read_document(bytes)?;
    let mut d = Diag::with_catalog(catalog);
    let Some(obj) = check::Obj::new(&value, "", &mut d) else {
        return Err(SpecErrors(d.errors));
    };
    for key in ["template", "depends_on"] {
        if obj.has(key) {
            d.err(key, format!("`{key}` is not allowed in a task template"));
        }
    }
    let (raw, _) = native::read_task(&obj, &mut d);
    if d.errors.is_empty() {
        Ok(raw)
    } else {
        Err(capped(d.errors))
    }
}

/// Parses a deployment's instance types: a mapping `NAME: {cpus, memory, disk}` (YAML or
/// JSON), e.g. `G1.LARGE: {cpus: 8, memory: 64GiB}`. Returns the catalog of the built-in types
/// plus these (a built-in name is redefined).
pub fn parse_instance_types(bytes: &[u8]) -> Result<Catalog, SpecErrors> {
    let value = read_document(bytes)?;
    let mut d = Diag::default();
    let Some(obj) = check::Obj::new(&value, "", &mut d) else {
        return Err(SpecErrors(d.errors));
    };
    let mut types = Vec::new();
    for (name, v) in obj.entries {
        if let Some(problem) = check::name_problem(name) {
            d.err(name, format!("instance type name {problem}"));
            continue;
        }
        if let Some(r) = check::resources(v, name, &mut d) {
            types.push((name.to_string(), r));
        }
    }
    if d.errors.is_empty() {
        Ok(Catalog::with(types))
    } else {
        Err(capped(d.errors))
    }
}

/// The job-level result of reading either format, before templates, defaults and the DAG.
#[derive(Debug, Default)]
pub(crate) struct RawJob {
    pub name: Option<String>,
    pub description: Option<String>,
    pub priority: Option<u8>,
    pub tags: BTreeMap<String, String>,
    pub policy: Option<DependencyPolicy>,
    /// The job's `timeout`, in milliseconds.
    pub timeout_ms: Option<u64>,
    pub dag: Option<String>,
    /// Whole-task edges given outside the DAG text (Tencent `Dependences`).
    pub edges: Vec<PendingEdge>,
    pub tasks: Vec<TaskEntry>,
    /// Credentials given with the tasks (Tencent format), by task name.
    pub credentials: JobCredentials,
    /// `project` (Tencent `Placement.ProjectId`).
    pub project: Option<String>,
}

#[derive(Debug)]
pub(crate) struct PendingEdge {
    pub from: String,
    pub to: String,
    pub from_path: String,
    pub to_path: String,
}

/// One task as read, with the paths its later checks report at.
#[derive(Debug)]
pub(crate) struct TaskEntry {
    pub name: String,
    /// False when the name itself was invalid (already reported).
    pub name_ok: bool,
    /// Prefix of the task's field paths (`tasks.split`, `Tasks[0]`).
    pub path: String,
    pub raw: RawTask,
    /// Path of the command field (`tasks.split.command`, `Tasks[0].Application.Command`).
    pub command_path: String,
    /// True when the command field was written (even if invalid: then it is already reported).
    pub command_given: bool,
    /// True when the instance count was written but invalid (already reported).
    pub instances_bad: bool,
}
