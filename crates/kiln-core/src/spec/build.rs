//! From a read job to a validated `JobSpec`: templates, defaults, dependencies, order.

use std::collections::BTreeMap;

use super::check::{Diag, did_you_mean, index};
use super::{RawJob, RawTask, Templates};
use crate::dag::{parse_dag, topo_order};
use crate::model::{Command, DepKind, Dependency, Image, JobSpec, TaskSpec};

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
        instances_known.push(!entry.instances_bad && template_ok);
        depends.push(rt.depends_on.clone().unwrap_or_default());
        tasks.push(TaskSpec {
            name: entry.name.clone(),
            command,
            image,
            instances: rt.instances.unwrap_or(1),
            max_concurrency: rt.max_concurrency.unwrap_or(0),
            resources,
            instance_type: rt.instance_type,
            network: rt.network,
            compute_env: rt.compute_env,
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
        });
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
        tasks: ordered,
    })
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
