//! Reading Kiln's native format (DESIGN §2).

use std::collections::BTreeMap;

use super::check::{self, Diag, Obj, index};
use super::value::Value;
use super::{RawJob, RawTask, TaskEntry};
use crate::model::{
    DependencyPolicy, InputMapping, MAX_INSTANCES, OnFailure, OutputMapping, UploadWhen,
};

pub(crate) const JOB_FIELDS: &[&str] = &[
    "name",
    "description",
    "priority",
    "tags",
    "dependency_policy",
    "dag",
    "tasks",
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
];

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
    (t, instances_bad)
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
        m.check_keys(&["source", "target"], d);
        if let Some(mapping) = check::input_mapping(&m, "source", "target", &mut targets, d) {
            out.push(mapping);
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
        m.check_keys(&["source", "target", "when"], d);
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
            });
        }
    }
    Some(out)
}
