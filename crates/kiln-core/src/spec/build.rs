//! From a read job to a validated `JobSpec`: templates, defaults, dependencies, order.

use std::collections::BTreeMap;

use std::sync::Arc;

use super::check::{Diag, did_you_mean, index};
use super::{RawItems, RawJob, RawTask, Templates};
use crate::dag::{parse_dag, topo_order};
use crate::items::{ITEM_PLACEHOLDER, uses_item};
use crate::model::{
    Command, DepKind, Dependency, Image, ItemList, ItemSource, JobSpec, TaskItems, TaskSpec,
};

/// Where an edge was written.
#[derive(Debug, Clone)]
enum Origin {
    Dag(usize),
    Path(String),
}

pub(crate) fn finish(raw: RawJob, templates: &Templates, d: &mut Diag) -> Option<JobSpec> {
    // 1. Templates and defaults.
    let mut tasks: Vec<TaskSpec> = Vec::with_capacity(raw.tasks.len());
    let mut depends: Vec<Vec<String>> = Vec::with_capacity(raw.tasks.len());
    let mut instances_known: Vec<bool> = Vec::with_capacity(raw.tasks.len());
    for entry in &raw.tasks {
        let mut rt = entry.raw.clone();
        let mut template_ok = true;
        if let Some(tname) = &entry.raw.template {
            match templates.get(tname) {
                Some(base) => rt = rt.over(base),
                None => {
                    template_ok = false;
                    let hint =
                        did_you_mean(tname, templates.keys().map(String::as_str)).or_else(|| {
                            Some(if templates.is_empty() {
                                "no task templates exist".to_string()
                            } else {
                                format!(
                                    "known templates: {}",
                                    templates.keys().cloned().collect::<Vec<_>>().join(", ")
                                )
                            })
                        });
                    d.err_hint(
                        &format!("{}.template", entry.path),
                        format!("unknown task template `{tname}`"),
                        hint,
                    );
                }
            }
        }
        let image = rt.image.take().unwrap_or(Image::Host);
        if image == Image::Host {
            host_task_problems(&entry.path, &rt, d);
        }
        let command = match rt.command {
            Some(c) => c,
            None => {
                if !entry.command_given && template_ok {
                    d.err(&entry.command_path, "missing required field `command`");
                }
                Command::Argv(Vec::new())
            }
        };
        let resources = match &rt.instance_type {
            Some(name) => d.catalog.get(name).unwrap_or_default(),
            None => rt.resources.unwrap_or_default(),
        };
        if resources.disk > 0 {
            d.warn(
                &format!("{}.resources.disk", entry.path),
                "disk size is not enforced: instances may use more",
            );
        }
        let (items, items_known) = match rt.items.take() {
            Some(RawItems::Each(list)) => (Some(TaskItems::read(ItemSource::Each, list)), true),
            Some(RawItems::Lines(at)) => (Some(TaskItems::unread(ItemSource::Lines(at))), false),
            Some(RawItems::Json(at)) => (Some(TaskItems::unread(ItemSource::Json(at))), false),
            None => (None, true),
        };
        let instances = match items.as_ref().and_then(|i| i.list.as_ref()) {
            Some(list) => list.len(),
            None => rt.instances.unwrap_or(1),
        };
        if let Some(oom) = &rt.on_out_of_memory {
            let path = format!("{}.on_out_of_memory", entry.path);
            if image == Image::Host {
                d.err_hint(
                    &path,
                    "host tasks have no memory limit, so they cannot run out of it",
                    Some("set `image` to a Docker image, or remove `on_out_of_memory`".into()),
                );
            } else if resources.memory == 0 {
                d.err_hint(
                    &path,
                    "needs a memory limit to grow",
                    Some("set `resources.memory` or an `instance_type`".into()),
                );
            } else if let Some(max) = oom.max.filter(|&m| m < resources.memory) {
                d.err(
                    &format!("{path}.max"),
                    format!(
                        "max {} is less than the task's memory {}",
                        super::format_size(max),
                        super::format_size(resources.memory)
                    ),
                );
            }
        }
        instances_known.push(!entry.instances_bad && template_ok && items_known);
        depends.push(rt.depends_on.clone().unwrap_or_default());
        let task = TaskSpec {
            name: entry.name.clone(),
            command,
            image,
            instances,
            max_concurrency: rt.max_concurrency.unwrap_or(0),
            resources,
            instance_type: rt.instance_type,
            network: rt.network,
            compute_env: rt.compute_env,
            storage_profile: rt.storage_profile,
            registry_profile: rt.registry_profile,
            env: rt.env.unwrap_or_default(),
            inputs: rt.inputs.unwrap_or_default(),
            outputs: rt.outputs.unwrap_or_default(),
            stdout: rt.stdout,
            stderr: rt.stderr,
            retries: rt.retries.unwrap_or(0),
            resource_retries: rt.resource_retries.unwrap_or(3),
            timeout_ms: rt.timeout_ms,
            on_failure: rt.on_failure.unwrap_or_default(),
            deps: Vec::new(),
            items,
            on_out_of_memory: rt.on_out_of_memory,
        };
        item_placeholder_problems(&entry.path, &task, d);
        tasks.push(task);
    }

    // 2. Names.
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in raw.tasks.iter().enumerate() {
        if entry.name_ok {
            by_name.entry(entry.name.as_str()).or_insert(i);
        }
    }
    let names: Vec<&str> = raw.tasks.iter().map(|e| e.name.as_str()).collect();
    // Suggestions cost O(tasks) each: make only a bounded number of them.
    let mut suggestions_left: usize = if names.len() <= 10_000 { 100 } else { 0 };
    let mut unknown = |d: &mut Diag, path: &str, prefix: &str, name: &str| {
        let hint = if suggestions_left > 0 {
            suggestions_left -= 1;
            did_you_mean(name, names.iter().copied())
        } else {
            None
        };
        d.err_hint(path, format!("{prefix}unknown task `{name}`"), hint);
    };

    // 3. Edges: the DAG text, depends_on, Tencent Dependences.
    let mut edges: Vec<(usize, usize, DepKind, Origin)> = Vec::new();
    if let Some(text) = &raw.dag {
        match parse_dag(text) {
            Err(errors) => {
                for e in errors {
                    d.err("dag", e.to_string());
                }
            }
            Ok(parsed) => {
                for e in parsed {
                    let prefix = format!("line {}: ", e.line);
                    let from = by_name.get(e.from.as_str()).copied();
                    let to = by_name.get(e.to.as_str()).copied();
                    if from.is_none() {
                        unknown(d, "dag", &prefix, &e.from);
                    }
                    if to.is_none() {
                        unknown(d, "dag", &prefix, &e.to);
                    }
                    let (Some(from), Some(to)) = (from, to) else {
                        continue;
                    };
                    if e.kind == DepKind::Instance && instances_known[from] && instances_known[to] {
                        let (a, b) = (tasks[from].instances, tasks[to].instances);
                        if a != b {
                            d.err(
                                "dag",
                                format!(
                                    "{prefix}`{} => {}` needs the same instance count on both sides, but `{}` has {a} and `{}` has {b}",
                                    e.from, e.to, e.from, e.to
                                ),
                            );
                        }
                    }
                    edges.push((from, to, e.kind, Origin::Dag(e.line)));
                }
            }
        }
    }
    for (i, (entry, deps)) in raw.tasks.iter().zip(&depends).enumerate() {
        for (j, dep) in deps.iter().enumerate() {
            let path = index(&format!("{}.depends_on", entry.path), j);
            match by_name.get(dep.as_str()) {
                None => unknown(d, &path, "", dep),
                Some(&from) if from == i => d.err(&path, "a task cannot depend on itself"),
                Some(&from) => edges.push((from, i, DepKind::Task, Origin::Path(path))),
            }
        }
    }
    for e in &raw.edges {
        let from = by_name.get(e.from.as_str()).copied();
        let to = by_name.get(e.to.as_str()).copied();
        if from.is_none() {
            unknown(d, &e.from_path, "", &e.from);
        }
        if to.is_none() {
            unknown(d, &e.to_path, "", &e.to);
        }
        if let (Some(from), Some(to)) = (from, to) {
            if from == to {
                d.err(&e.to_path, "a task cannot depend on itself");
            } else {
                edges.push((from, to, DepKind::Task, Origin::Path(e.from_path.clone())));
            }
        }
    }

    // 4. Collapse duplicates (a whole-task edge beats a per-instance one) and order.
    let mut unique: BTreeMap<(usize, usize), (DepKind, Origin)> = BTreeMap::new();
    for (from, to, kind, origin) in edges {
        match unique.get_mut(&(from, to)) {
            None => {
                unique.insert((from, to), (kind, origin));
            }
            Some(existing) => {
                if existing.0 == DepKind::Instance && kind == DepKind::Task {
                    *existing = (kind, origin);
                }
            }
        }
    }
    let pairs: Vec<(usize, usize)> = unique.keys().copied().collect();
    let order = match topo_order(tasks.len(), &pairs) {
        Ok(order) => order,
        Err(cycles) => {
            for cycle in cycles {
                report_cycle(&cycle, &names, &unique, d);
            }
            return None;
        }
    };
    if !d.errors.is_empty() {
        return None;
    }

    // 5. Reorder and point dependencies at the new indexes.
    let mut position = vec![0usize; tasks.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut deps: Vec<Vec<Dependency>> = vec![Vec::new(); tasks.len()];
    for (&(from, to), (kind, _)) in &unique {
        deps[to].push(Dependency {
            task: position[from],
            kind: *kind,
        });
    }
    let mut slots: Vec<Option<TaskSpec>> = tasks.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(slots.len());
    for &old in &order {
        let mut t = slots[old].take()?;
        let mut ds = std::mem::take(&mut deps[old]);
        ds.sort_by_key(|dep| dep.task);
        ds.dedup_by_key(|dep| dep.task);
        t.deps = ds;
        ordered.push(t);
    }
    Some(JobSpec {
        name: raw.name.unwrap_or_default(),
        description: raw.description,
        priority: raw.priority.unwrap_or(50),
        tags: raw.tags,
        dependency_policy: raw.policy.unwrap_or_default(),
        timeout_ms: raw.timeout_ms,
        tasks: ordered,
        project: raw.project,
        sealed_credentials: None,
    })
}

impl TaskItems {
    /// Items known already (`each`, or read by the shell).
    pub(crate) fn read(source: ItemSource, list: ItemList) -> TaskItems {
        TaskItems {
            source,
            digest: Some(list.digest()),
            list: Some(Arc::new(list)),
        }
    }

    /// Items still to be read from a file or an object.
    fn unread(source: ItemSource) -> TaskItems {
        TaskItems {
            source,
            digest: None,
            list: None,
        }
    }
}

/// The fields of a task that may use the item placeholder, with their paths, and whether each
/// is a storage URL (`Some(true)`), a local path (`Some(false)`) or a redirect (`None`).
fn item_fields(task_path: &str, task: &TaskSpec) -> Vec<(String, String, Option<bool>)> {
    let mut out = Vec::new();
    for (i, m) in task.inputs.iter().enumerate() {
        let p = format!("{task_path}.inputs[{i}]");
        out.push((format!("{p}.source"), m.source.clone(), Some(true)));
        out.push((format!("{p}.target"), m.target.clone(), Some(false)));
    }
    for (i, m) in task.outputs.iter().enumerate() {
        let p = format!("{task_path}.outputs[{i}]");
        out.push((format!("{p}.source"), m.source.clone(), Some(false)));
        out.push((format!("{p}.target"), m.target.clone(), Some(true)));
    }
    for (key, r) in [("stdout", &task.stdout), ("stderr", &task.stderr)] {
        if let Some(r) = r {
            out.push((format!("{task_path}.{key}"), r.clone(), None));
        }
    }
    out.retain(|(_, text, _)| uses_item(text));
    out
}

/// The item placeholder in a task without items is an error; in a task whose items are known,
/// every item must make each field valid.
fn item_placeholder_problems(task_path: &str, task: &TaskSpec, d: &mut Diag) {
    let mut used: Vec<String> = item_fields(task_path, task)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    if let Command::Argv(argv) = &task.command {
        for (i, a) in argv.iter().enumerate() {
            if uses_item(a) {
                used.push(format!("{task_path}.command[{i}]"));
            }
        }
    }
    match &task.items {
        None => {
            for path in used {
                d.err_hint(
                    &path,
                    format!("`{ITEM_PLACEHOLDER}` needs items"),
                    Some("give the task `each`, `each_line` or `each_json`".into()),
                );
            }
        }
        Some(items) => {
            if let Some(list) = &items.list {
                check_items_against(task_path, task, list, d);
            }
        }
    }
}

/// Most errors reported per field for items that make it invalid.
const ITEM_ERRORS_PER_FIELD: usize = 10;

/// Checks that every item, put in place of the placeholder, leaves each field valid.
pub(crate) fn check_items_against(task_path: &str, task: &TaskSpec, list: &ItemList, d: &mut Diag) {
    let fields = item_fields(task_path, task);
    if fields.is_empty() {
        return;
    }
    let items: Vec<crate::items::Item> = list
        .iter()
        .filter_map(|line| crate::items::Item::parse(line).ok())
        .collect();
    for (path, text, kind) in fields {
        let mut found = 0;
        for (i, item) in items.iter().enumerate() {
            let value = crate::items::substitute(&text, &item.text());
            let mut probe = Diag::default();
            match kind {
                Some(true) => {
                    super::check::check_url(&value, &path, &mut probe);
                }
                Some(false) => {
                    if super::check::local_path(&value, &path, &mut probe).is_some()
                        && task.image == Image::Host
                        && value.starts_with('/')
                    {
                        probe.err(&path, format!("`{value}` is absolute; host tasks map inside their working directory"));
                    }
                }
                None => {
                    super::check::check_redirect(&value, &path, &mut probe);
                }
            }
            if let Some(e) = probe.errors.into_iter().next() {
                d.err(&path, format!("item {i} makes it invalid: {}", e.message));
                found += 1;
                if found >= ITEM_ERRORS_PER_FIELD {
                    break;
                }
            }
        }
    }
}

fn report_cycle(
    cycle: &[usize],
    names: &[&str],
    edges: &BTreeMap<(usize, usize), (DepKind, Origin)>,
    d: &mut Diag,
) {
    let Some(&first) = cycle.first() else {
        return;
    };
    let mut text: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
    text.push(names[first]);
    let mut lines: Vec<usize> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for (k, &from) in cycle.iter().enumerate() {
        let to = cycle.get(k + 1).copied().unwrap_or(first);
        match edges.get(&(from, to)).map(|(_, o)| o) {
            Some(Origin::Dag(line)) => lines.push(*line),
            Some(Origin::Path(p)) => paths.push(p.clone()),
            None => {}
        }
    }
    lines.sort_unstable();
    lines.dedup();
    let mut origins: Vec<String> = Vec::new();
    match lines.len() {
        0 => {}
        1 => origins.push(format!("dag line {}", lines[0])),
        _ => origins.push(format!(
            "dag lines {}",
            lines
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    origins.extend(paths.iter().cloned());
    let path = if !lines.is_empty() {
        "dag".to_string()
    } else {
        paths.first().cloned().unwrap_or_default()
    };
    d.err(
        &path,
        format!("cycle: {} ({})", text.join(" -> "), origins.join("; ")),
    );
}

/// What a task run directly on the host cannot have: a private network (VPCs are Docker
/// networks), or mapping paths outside its working directory (a container has its own
/// filesystem, where absolute paths are fine).
fn host_task_problems(task_path: &str, rt: &RawTask, d: &mut Diag) {
    if let Some(network) = rt.network.as_deref().filter(|n| *n != "default") {
        d.err_hint(
            &format!("{task_path}.network"),
            format!("network `{network}` needs a container: host tasks share the host's network"),
            Some("set `image` to a Docker image, or remove `network`".into()),
        );
    }
    let hint = || {
        Some("use a relative path (the working directory is BATCH_WORK_DIR), or run the task in a Docker image".to_string())
    };
    for (i, m) in rt.inputs.iter().flatten().enumerate() {
        if m.target.starts_with('/') {
            d.err_hint(
                &format!("{task_path}.inputs[{i}].target"),
                format!(
                    "`{}` is absolute; host tasks map inputs inside their working directory",
                    m.target
                ),
                hint(),
            );
        }
    }
    for (i, m) in rt.outputs.iter().flatten().enumerate() {
        if m.source.starts_with('/') {
            d.err_hint(
                &format!("{task_path}.outputs[{i}].source"),
                format!(
                    "`{}` is absolute; host tasks upload outputs from their working directory",
                    m.source
                ),
                hint(),
            );
        }
    }
}
