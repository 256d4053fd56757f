//! Reading Kiln's native format (DESIGN §2).

use std::collections::BTreeMap;

use super::check::{self, Diag, Obj, index};
use super::value::Value;
use super::{RawItems, RawJob, RawTask, TaskEntry};
use crate::model::{
    DependencyPolicy, InputMapping, MAX_INSTANCES, OnFailure, OomPolicy, OutputMapping, UploadWhen,
};

pub(crate) const JOB_FIELDS: &[&str] = &[
    "name",
    "description",
    "priority",
    "tags",
    "dependency_policy",
    "timeout",
    "dag",
    "tasks",
    "project",
];

pub(crate) const TASK_FIELDS: &[&str] = &[
    "command",
    "image",
    "instances",
    "max_concurrency",
    "instance_type",
    "resources",
    "network",
    "compute_env",
    "storage_profile",
    "registry_profile",
    "env",
    "inputs",
    "outputs",
    "stdout",
    "stderr",
    "retries",
    "resource_retries",
    "timeout",
    "on_failure",
    "depends_on",
    "template",
    "each",
    "each_line",
    "each_json",
    "on_out_of_memory",
];

/// The ways to say how many instances a task has; at most one may be given.
const COUNT_FIELDS: &[&str] = &["instances", "each", "each_line", "each_json"];

pub(crate) const POLICIES: &[(&str, DependencyPolicy)] = &[
    ("succeeded", DependencyPolicy::Succeeded),
    ("partly_succeeded", DependencyPolicy::PartlySucceeded),
    ("finished", DependencyPolicy::Finished),
];

const ON_FAILURE: &[(&str, OnFailure)] = &[
    ("terminate", OnFailure::Terminate),
    ("interrupt", OnFailure::Interrupt),
];

const WHEN: &[(&str, UploadWhen)] = &[
    ("success", UploadWhen::Success),
    ("failure", UploadWhen::Failure),
    ("always", UploadWhen::Always),
];

/// Job description limit, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 200;

pub(crate) fn description(v: &Value, path: &str, d: &mut Diag) -> Option<String> {
    let s = check::string(v, path, d)?;
    let n = s.chars().count();
    if n > MAX_DESCRIPTION {
        d.err(
            path,
            format!("description is {n} characters long; at most {MAX_DESCRIPTION} are allowed"),
        );
        return None;
    }
    Some(s.to_string())
}

pub(crate) fn read_job(obj: &Obj<'_>, d: &mut Diag) -> RawJob {
    obj.check_keys(JOB_FIELDS, d);
    let mut job = RawJob::default();
    if let Some(v) = obj.require("name", d) {
        job.name = check::name(v, "name", "job name", d);
    }
    if let Some(v) = obj.get("description") {
        job.description = description(v, "description", d);
    }
    if let Some(v) = obj.get("priority") {
        job.priority = check::int(v, "priority", 0, 100, d).and_then(|p| u8::try_from(p).ok());
    }
    if let Some(v) = obj.get("tags")
        && let Some(tags) = Obj::new(v, "tags", d)
    {
        for (k, v) in tags.entries {
            let path = tags.path(k);
            if k.trim().is_empty() {
                d.err(&path, "tag keys must not be empty");
                continue;
            }
            if let Some(s) = check::scalar_string(v, &path, d) {
                job.tags.insert(k.clone(), s);
            }
        }
        check::check_tag_count(&job.tags, "tags", d);
    }
    if let Some(v) = obj.get("dependency_policy") {
        job.policy = check::one_of(v, "dependency_policy", POLICIES, d);
    }
    if let Some(v) = obj.get("timeout") {
        job.timeout_ms = check::job_timeout(v, "timeout", d);
    }
    if let Some(v) = obj.get("project") {
        job.project = check::name(v, "project", "project name", d);
    }
    if let Some(v) = obj.get("dag") {
        job.dag = check::string(v, "dag", d).map(str::to_string);
    }
    if let Some(v) = obj.require("tasks", d)
        && let Some(tasks) = Obj::new(v, "tasks", d)
    {
        if tasks.entries.is_empty() {
            d.err("tasks", "a job needs at least one task");
        }
        for (name, v) in tasks.entries {
            let path = tasks.path(name);
            let name_ok = match check::name_problem(name) {
                Some(p) => {
                    d.err(&path, format!("invalid task name: {p}"));
                    false
                }
                None => true,
            };
            let empty = Value::Map(Vec::new());
            let v = if matches!(v, Value::Null) { &empty } else { v };
            let (raw, command_given, instances_bad) = match Obj::new(v, &path, d) {
                Some(t) => {
                    let (raw, instances_bad) = read_task(&t, d);
                    (raw, t.has("command"), instances_bad)
                }
                None => (RawTask::default(), true, true),
            };
            job.tasks.push(TaskEntry {
                name: name.clone(),
                name_ok,
                command_path: check::join(&path, "command"),
                path,
                raw,
                command_given,
                instances_bad,
            });
        }
    }
    job
}

/// Reads one native task; also says whether `instances` was given but invalid.
pub(crate) fn read_task(obj: &Obj<'_>, d: &mut Diag) -> (RawTask, bool) {
    obj.check_keys(TASK_FIELDS, d);
    let p = |k: &str| obj.path(k);
    let mut t = RawTask::default();
    if let Some(v) = obj.get("command") {
        t.command = check::command(v, &p("command"), d);
    } else if obj.has("command") {
        d.err(&p("command"), "command must not be empty");
    }
    if let Some(v) = obj.get("image") {
        t.image = check::image(v, &p("image"), d);
    }
    let mut instances_bad = false;
    if let Some(v) = obj.get("instances") {
        t.instances = check::int_u32(v, &p("instances"), 1, MAX_INSTANCES, d);
        instances_bad = t.instances.is_none();
    }
    if let Some(v) = obj.get("max_concurrency") {
        t.max_concurrency = check::int_u32(v, &p("max_concurrency"), 0, MAX_INSTANCES, d);
    }
    if let Some(v) = obj.get("instance_type") {
        t.instance_type = check::string(v, &p("instance_type"), d)
            .and_then(|s| check::instance_type(s, &p("instance_type"), d));
    }
    if let Some(v) = obj.get("resources") {
        t.resources = check::resources(v, &p("resources"), d);
        if obj.get("instance_type").is_some() {
            d.err_hint(
                &p("resources"),
                "give either `instance_type` or `resources`, not both",
                None,
            );
        }
    }
    if let Some(v) = obj.get("network") {
        t.network = check::name(v, &p("network"), "network name", d);
    }
    if let Some(v) = obj.get("compute_env") {
        t.compute_env = check::name(v, &p("compute_env"), "compute environment name", d);
    }
    if let Some(v) = obj.get("storage_profile") {
        t.storage_profile = check::name(v, &p("storage_profile"), "storage profile name", d);
    }
    if let Some(v) = obj.get("registry_profile") {
        t.registry_profile = check::name(v, &p("registry_profile"), "registry profile name", d);
    }
    if let Some(v) = obj.get("env")
        && let Some(env) = Obj::new(v, &p("env"), d)
    {
        let mut out = BTreeMap::new();
        for (k, v) in env.entries {
            if let Some(val) = check::env_entry(k, v, &env.path(k), d) {
                out.insert(k.clone(), val);
            }
        }
        t.env = Some(out);
    }
    if let Some(v) = obj.get("inputs") {
        t.inputs = inputs(v, &p("inputs"), d);
    }
    if let Some(v) = obj.get("outputs") {
        t.outputs = outputs(v, &p("outputs"), d);
    }
    if let Some(v) = obj.get("stdout") {
        t.stdout = check::redirect(v, &p("stdout"), d);
    }
    if let Some(v) = obj.get("stderr") {
        t.stderr = check::redirect(v, &p("stderr"), d);
    }
    if let Some(v) = obj.get("retries") {
        t.retries = check::int_u32(v, &p("retries"), 0, 10, d);
    }
    if let Some(v) = obj.get("resource_retries") {
        t.resource_retries = check::int_u32(v, &p("resource_retries"), 0, 100, d);
    }
    if let Some(v) = obj.get("timeout") {
        t.timeout_ms = check::timeout(v, &p("timeout"), d);
    }
    if let Some(v) = obj.get("on_failure") {
        t.on_failure = check::one_of(v, &p("on_failure"), ON_FAILURE, d);
    }
    if let Some(v) = obj.get("depends_on") {
        let path = p("depends_on");
        let items: Vec<(String, &Value)> = match v {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, it)| (index(&path, i), it))
                .collect(),
            single @ Value::Str(_) => vec![(path.clone(), single)],
            other => {
                d.expected(&path, "a list of task names", other);
                Vec::new()
            }
        };
        let names: Vec<String> = items
            .into_iter()
            .filter_map(|(ip, it)| check::string(it, &ip, d).map(str::to_string))
            .collect();
        t.depends_on = Some(names);
    }
    if let Some(v) = obj.get("template") {
        t.template = check::name(v, &p("template"), "template name", d);
    }
    let counts: Vec<&str> = COUNT_FIELDS
        .iter()
        .copied()
        .filter(|k| obj.get(k).is_some())
        .collect();
    if let [first, second, ..] = counts[..] {
        d.err_hint(
            &p(second),
            format!("give only one of `{first}` and `{second}`"),
            Some("items set the instance count: one instance per item".into()),
        );
        instances_bad = true;
    }
    if let Some(v) = obj.get("each") {
        t.items = each(v, &p("each"), d).map(RawItems::Each);
        instances_bad |= t.items.is_none();
    }
    if let Some(v) = obj.get("each_line") {
        t.items = items_location(v, &p("each_line"), d).map(RawItems::Lines);
        instances_bad |= t.items.is_none();
    }
    if let Some(v) = obj.get("each_json") {
        t.items = items_location(v, &p("each_json"), d).map(RawItems::Json);
        instances_bad |= t.items.is_none();
    }
    if let Some(v) = obj.get("on_out_of_memory") {
        t.on_out_of_memory = on_out_of_memory(v, &p("on_out_of_memory"), d);
    }
    (t, instances_bad)
}

/// `each: [...]`: strings, numbers, booleans, lists or objects.
fn each(v: &Value, path: &str, d: &mut Diag) -> Option<crate::model::ItemList> {
    let Value::Seq(items) = v else {
        d.expected(path, "a list of items", v);
        return None;
    };
    match crate::items::from_values(items, |i| index(path, i)) {
        Ok(list) => Some(list),
        Err(errors) => {
            for (label, message) in errors {
                d.err(if label.is_empty() { path } else { &label }, message);
            }
            None
        }
    }
}

/// Where `each_line` / `each_json` read from: a storage URL, or a path of this machine.
fn items_location(v: &Value, path: &str, d: &mut Diag) -> Option<String> {
    let s = check::string(v, path, d)?;
    if s.trim().is_empty() {
        d.err(
            path,
            "expected a file path or a storage URL, got an empty string",
        );
        return None;
    }
    if s.contains('\0') {
        d.err(path, "path must not contain NUL characters");
        return None;
    }
    if s.contains("://") {
        return check::url(v, path, d);
    }
    Some(s.to_string())
}

/// Most attempts `on_out_of_memory` may give more memory.
const MAX_OOM_RETRIES: u32 = 10;
/// Largest growth factor.
const MAX_OOM_FACTOR: f64 = 16.0;

/// `on_out_of_memory: {retries, factor, max}`.
fn on_out_of_memory(v: &Value, path: &str, d: &mut Diag) -> Option<OomPolicy> {
    let obj = Obj::new(v, path, d)?;
    obj.check_keys(&["retries", "factor", "max"], d);
    let n = d.errors.len();
    let mut policy = OomPolicy {
        retries: 1,
        factor_milli: 2000,
        max: None,
    };
    if let Some(r) = obj.get("retries") {
        policy.retries =
            check::int_u32(r, &obj.path("retries"), 1, MAX_OOM_RETRIES, d).unwrap_or(1);
    }
    if let Some(f) = obj.get("factor") {
        let fp = obj.path("factor");
        let factor = match f {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            other => {
                d.expected(&fp, "a number such as 1.5 or 2", other);
                None
            }
        };
        if let Some(x) = factor {
            if x > 1.0 && x <= MAX_OOM_FACTOR {
                policy.factor_milli = (x * 1000.0).round() as u32;
            } else {
                d.err(
                    &fp,
                    format!("factor must be greater than 1 and at most {MAX_OOM_FACTOR}, got {x}"),
                );
            }
        }
    }
    if let Some(m) = obj.get("max") {
        let mp = obj.path("max");
        match check::size(m, &mp, d) {
            Some(0) => d.err(&mp, "max must be greater than zero"),
            Some(bytes) => policy.max = Some(bytes),
            None => {}
        }
    }
    (d.errors.len() == n).then_some(policy)
}

/// Input mappings `[{source, target}]`; two inputs may not share a target.
pub(crate) fn inputs(v: &Value, path: &str, d: &mut Diag) -> Option<Vec<InputMapping>> {
    let Value::Seq(items) = v else {
        d.expected(path, "a list of {source, target} mappings", v);
        return None;
    };
    let mut out = Vec::new();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        let Some(m) = Obj::new(item, &ip, d) else {
            continue;
        };
        m.check_keys(&["source", "target", "profile"], d);
        let profile = m
            .get("profile")
            .map(|v| check::name(v, &m.path("profile"), "storage profile name", d));
        if let Some(mapping) = check::input_mapping(&m, "source", "target", &mut targets, d) {
            out.push(InputMapping {
                profile: profile.flatten(),
                ..mapping
            });
        }
    }
    Some(out)
}

/// Output mappings `[{source, target, when}]`.
pub(crate) fn outputs(v: &Value, path: &str, d: &mut Diag) -> Option<Vec<OutputMapping>> {
    let Value::Seq(items) = v else {
        d.expected(path, "a list of {source, target, when} mappings", v);
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        let Some(m) = Obj::new(item, &ip, d) else {
            continue;
        };
        m.check_keys(&["source", "target", "when", "profile"], d);
        let profile = m
            .get("profile")
            .and_then(|v| check::name(v, &m.path("profile"), "storage profile name", d));
        let source = m.require("source", d).and_then(|s| {
            let sp = m.path("source");
            let st = check::string(s, &sp, d)?;
            check::local_path(st, &sp, d)?;
            Some(st.to_string())
        });
        let target = m
            .require("target", d)
            .and_then(|t| check::url(t, &m.path("target"), d));
        let when = match m.get("when") {
            Some(w) => check::one_of(w, &m.path("when"), WHEN, d),
            None => Some(UploadWhen::Success),
        };
        if let (Some(source), Some(target), Some(when)) = (source, target, when) {
            out.push(OutputMapping {
                source,
                target,
                when,
                profile,
            });
        }
    }
    Some(out)
}
