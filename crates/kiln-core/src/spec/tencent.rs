//! Reading Tencent BatchCompute's `Job` object (API 2017-03-12), alone or as a `SubmitJob`
//! request body `{"Job": {...}}`. Fields Kiln cannot honour become warnings naming their path;
//! unknown fields are errors.

use std::collections::BTreeMap;

use super::check::{self, Diag, Obj, index, join};
use super::native::description;
use super::value::Value;
use super::{PendingEdge, RawJob, RawTask, TaskEntry};
use crate::model::{
    Command, DependencyPolicy, MAX_INSTANCES, OnFailure, OutputMapping, RegistryLogin, Resources,
    StorageKeys, TaskCredentials, UploadWhen,
};

/// Tencent's default per-attempt `Timeout` when none is given: 86400 s.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 86_400_000;

/// True when a top-level mapping is a Tencent `Job` or `SubmitJob` body: it has `Job` or
/// `JobName`, or `Tasks` without the native `name`/`tasks`.
pub(crate) fn is_tencent(obj: &Obj<'_>) -> bool {
    obj.has("Job")
        || obj.has("JobName")
        || (obj.has("Tasks") && !obj.has("tasks") && !obj.has("name"))
}

fn ignored(d: &mut Diag, path: &str, what: &str) {
    d.warn(path, format!("ignored: {what}"));
}

/// An integer; a quoted integer (as in Tencent's own examples, `"Priority": "1"`) is accepted
/// with a warning.
fn tint(v: &Value, path: &str, min: i128, max: i128, d: &mut Diag) -> Option<i128> {
    if let Value::Str(s) = v
        && let Ok(i) = s.trim().parse::<i128>()
    {
        d.warn(path, format!("quoted number {s:?} read as the integer {i}"));
        return check::int(&Value::Int(i), path, min, max, d);
    }
    check::int(v, path, min, max, d)
}

fn tint_u32(v: &Value, path: &str, min: u32, max: u32, d: &mut Diag) -> Option<u32> {
    tint(v, path, i128::from(min), i128::from(max), d).and_then(|i| u32::try_from(i).ok())
}

/// A list of mappings at `path`, each passed to `f` with its path.
fn each_obj<'a>(v: &'a Value, path: &str, d: &mut Diag, mut f: impl FnMut(&Obj<'a>, &mut Diag)) {
    let Value::Seq(items) = v else {
        d.expected(path, "a list", v);
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if let Some(o) = Obj::new(item, &index(path, i), d) {
            f(&o, d);
        }
    }
}

pub(crate) fn read(top: &Obj<'_>, d: &mut Diag) -> RawJob {
    if top.has("Job") {
        top.check_keys(&["Job", "Placement", "ClientToken"], d);
        let project = top
            .get("Placement")
            .and_then(|p| Obj::new(p, "Placement", d))
            .and_then(|p| placement(&p, d));
        if top.has("ClientToken") {
            ignored(d, "ClientToken", "idempotency tokens are not supported");
        }
        let mut job = match top.require("Job", d).and_then(|j| Obj::new(j, "Job", d)) {
            Some(job) => read_job(&job, d),
            None => RawJob::default(),
        };
        job.project = project;
        job
    } else {
        read_job(top, d)
    }
}

/// `Placement`: its `ProjectId` names the job's project (`0`, Tencent's default project, is
/// Kiln's `default`); the rest is ignored, as Kiln places instances on its own environments.
fn placement(p: &Obj<'_>, d: &mut Diag) -> Option<String> {
    let mut project = None;
    for (key, v) in p.entries {
        let path = p.path(key);
        if key.as_str() != "ProjectId" {
            ignored(
                d,
                &path,
                "Kiln places instances on its own compute environments",
            );
            continue;
        }
        project = match v {
            Value::Int(0) => Some("default".to_string()),
            Value::Int(i) if *i > 0 => Some(i.to_string()),
            Value::Str(_) => check::name(v, &path, "project name", d),
            other => {
                d.expected(&path, "a project id or name", other);
                None
            }
        };
    }
    project
}

const JOB_FIELDS: &[&str] = &[
    "JobName",
    "JobDescription",
    "Priority",
    "Tasks",
    "Dependences",
    "Notifications",
    "TaskExecutionDependOn",
    "StateIfCreateCvmFailed",
    "Tags",
];

const POLICIES: &[(&str, DependencyPolicy)] = &[
    ("PRE_TASK_SUCCEED", DependencyPolicy::Succeeded),
    (
        "PRE_TASK_AT_LEAST_PARTLY_SUCCEEDED",
        DependencyPolicy::PartlySucceeded,
    ),
    (
        "PRE_TASK_AT_LEAST_PARTLY_SUCCEED",
        DependencyPolicy::PartlySucceeded,
    ),
    ("PRE_TASK_FINISHED", DependencyPolicy::Finished),
];

fn read_job(job: &Obj<'_>, d: &mut Diag) -> RawJob {
    job.check_keys(JOB_FIELDS, d);
    let mut out = RawJob::default();
    if let Some(v) = job.require("JobName", d) {
        out.name = check::name(v, &job.path("JobName"), "job name", d);
    }
    if let Some(v) = job.get("JobDescription") {
        out.description = description(v, &job.path("JobDescription"), d);
    }
    if let Some(v) = job.get("Priority") {
        out.priority = tint(v, &job.path("Priority"), 0, 100, d).and_then(|p| u8::try_from(p).ok());
    }
    if let Some(v) = job.get("TaskExecutionDependOn") {
        out.policy = check::one_of(v, &job.path("TaskExecutionDependOn"), POLICIES, d);
    }
    if job.has("Notifications") {
        ignored(
            d,
            &job.path("Notifications"),
            "event notifications are not sent",
        );
    }
    if job.has("StateIfCreateCvmFailed") {
        ignored(
            d,
            &job.path("StateIfCreateCvmFailed"),
            "Kiln retries instance creation up to `resource_retries` times",
        );
    }
    if let Some(v) = job.get("Tags") {
        let path = job.path("Tags");
        let mut tags = BTreeMap::new();
        each_obj(v, &path, d, |t, d| {
            t.check_keys(&["Key", "Value"], d);
            let key = t
                .require("Key", d)
                .and_then(|k| check::string(k, &t.path("Key"), d));
            let value = t
                .require("Value", d)
                .and_then(|v| check::scalar_string(v, &t.path("Value"), d));
            if let Some(k) = key {
                if k.trim().is_empty() {
                    d.err(&t.path("Key"), "tag keys must not be empty");
                } else if let Some(v) = value {
                    tags.insert(k.to_string(), v);
                }
            }
        });
        check::check_tag_count(&tags, &path, d);
        out.tags = tags;
    }
    if let Some(v) = job.require("Tasks", d) {
        let path = job.path("Tasks");
        if matches!(v, Value::Seq(items) if items.is_empty()) {
            d.err(&path, "a job needs at least one task");
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        each_obj(v, &path, d, |t, d| {
            let (entry, credentials) = read_task(t, d);
            if entry.name_ok && !credentials.is_empty() {
                out.credentials
                    .tasks
                    .insert(entry.name.clone(), credentials);
            }
            if entry.name_ok {
                let name_path = t.path("TaskName");
                if let Some(first) = seen.get(&entry.name) {
                    d.err(
                        &name_path,
                        format!("duplicate task name `{}` (also at {first})", entry.name),
                    );
                    return;
                }
                seen.insert(entry.name.clone(), name_path);
            }
            out.tasks.push(entry);
        });
    }
    if let Some(v) = job.get("Dependences") {
        let path = job.path("Dependences");
        each_obj(v, &path, d, |e, d| {
            e.check_keys(&["StartTask", "EndTask"], d);
            let from = e
                .require("StartTask", d)
                .and_then(|s| check::string(s, &e.path("StartTask"), d));
            let to = e
                .require("EndTask", d)
                .and_then(|s| check::string(s, &e.path("EndTask"), d));
            if let (Some(from), Some(to)) = (from, to) {
                out.edges.push(PendingEdge {
                    from: from.to_string(),
                    to: to.to_string(),
                    from_path: e.path("StartTask"),
                    to_path: e.path("EndTask"),
                });
            }
        });
    }
    out
}

const TASK_FIELDS: &[&str] = &[
    "TaskName",
    "TaskInstanceNum",
    "Application",
    "ComputeEnv",
    "EnvId",
    "RedirectInfo",
    "RedirectLocalInfo",
    "InputMappings",
    "OutputMappings",
    "OutputMappingConfigs",
    "EnvVars",
    "Authentications",
    "FailedAction",
    "MaxRetryCount",
    "Timeout",
    "MaxConcurrentNum",
    "RestartComputeNode",
    "ResourceMaxRetryCount",
    "ResourceRequired",
];

const ENV_DATA_IGNORED: &[&str] = &[
    "ImageId",
    "SystemDisk",
    "DataDisks",
    "VirtualPrivateCloud",
    "InternetAccessible",
    "InstanceName",
    "LoginSettings",
    "SecurityGroupIds",
    "EnhancedService",
    "InstanceChargeType",
    "InstanceMarketOptions",
    "InstanceTypes",
    "InstanceTypeOptions",
    "Zones",
    "VirtualPrivateClouds",
];

fn read_task(t: &Obj<'_>, d: &mut Diag) -> (TaskEntry, TaskCredentials) {
    t.check_keys(TASK_FIELDS, d);
    let mut raw = RawTask::default();
    let mut credentials = TaskCredentials::default();
    let (name, name_ok) = match t.require("TaskName", d) {
        Some(v) => match check::name(v, &t.path("TaskName"), "task name", d) {
            Some(n) => (n, true),
            None => (
                check::scalar_string(v, "", &mut Diag::default()).unwrap_or_default(),
                false,
            ),
        },
        None => (String::new(), false),
    };
    let mut instances_bad = false;
    if let Some(v) = t.get("TaskInstanceNum") {
        raw.instances = tint_u32(v, &t.path("TaskInstanceNum"), 1, MAX_INSTANCES, d);
        instances_bad = raw.instances.is_none();
    }
    let mut command_given = true;
    if let Some(app) = t
        .require("Application", d)
        .and_then(|a| Obj::new(a, &t.path("Application"), d))
    {
        app.check_keys(&["Command", "DeliveryForm", "PackagePath", "Docker"], d);
        command_given = app.has("Command");
        if let Some(v) = app.get("Command") {
            let p = app.path("Command");
            raw.command = check::string(v, &p, d).and_then(|s| {
                if s.trim().is_empty() {
                    d.err(&p, "command must not be empty");
                    None
                } else {
                    Some(Command::Shell(s.to_string()))
                }
            });
        }
        if let Some(v) = app.get("DeliveryForm") {
            let p = app.path("DeliveryForm");
            if let Some(form) = check::one_of(v, &p, &[("LOCAL", false), ("PACKAGE", true)], d)
                && form
            {
                ignored(
                    d,
                    &p,
                    "PACKAGE delivery: the package is not downloaded; the command runs as given",
                );
            }
        }
        if app.has("PackagePath") {
            ignored(d, &app.path("PackagePath"), "packages are not downloaded");
        }
        if let Some(docker) = app
            .get("Docker")
            .and_then(|v| Obj::new(v, &app.path("Docker"), d))
        {
            let unsupported = ["MaxRetryCount", "DelayOnRetry", "DockerRunOption"];
            let mut known = vec!["Image", "User", "Password", "Server"];
            known.extend(unsupported);
            docker.check_keys(&known, d);
            if let Some(v) = docker.require("Image", d) {
                raw.image = check::image(v, &docker.path("Image"), d);
            }
            credentials.registry = read_registry_login(&docker, d);
            for k in unsupported {
                if docker.has(k) {
                    ignored(
                        d,
                        &docker.path(k),
                        "images are pulled without Docker options or pull retries of their own",
                    );
                }
            }
        }
    }
    if t.has("ComputeEnv") && t.has("EnvId") {
        d.err(
            &t.path("EnvId"),
            "give either `ComputeEnv` or `EnvId`, not both",
        );
    }
    let mut resources_path = None;
    if let Some(env) = t
        .get("ComputeEnv")
        .and_then(|v| Obj::new(v, &t.path("ComputeEnv"), d))
    {
        env.check_keys(
            &["EnvType", "EnvData", "MountDataDisks", "AgentRunningMode"],
            d,
        );
        if let Some(v) = env.get("EnvType") {
            let p = env.path("EnvType");
            if let Some(s) = check::string(v, &p, d)
                && s != "MANAGED"
            {
                ignored(
                    d,
                    &p,
                    "every task without EnvId runs on a fresh instance (MANAGED)",
                );
            }
        }
        for k in ["MountDataDisks", "AgentRunningMode"] {
            if env.has(k) {
                ignored(d, &env.path(k), "CVM settings do not apply to Kiln nodes");
            }
        }
        if let Some(data) = env
            .get("EnvData")
            .and_then(|v| Obj::new(v, &env.path("EnvData"), d))
        {
            let mut known = vec!["InstanceType"];
            known.extend(ENV_DATA_IGNORED);
            data.check_keys(&known, d);
            if let Some(v) = data.get("InstanceType") {
                let p = data.path("InstanceType");
                raw.instance_type =
                    check::string(v, &p, d).and_then(|s| check::instance_type(s, &p, d));
                resources_path = Some(p);
            }
            for k in ENV_DATA_IGNORED {
                if data.has(k) {
                    ignored(d, &data.path(k), "CVM settings do not apply to Kiln nodes");
                }
            }
        }
    }
    if let Some(v) = t.get("EnvId") {
        raw.compute_env = check::name(v, &t.path("EnvId"), "compute environment id", d);
    }
    if let Some(rr) = t
        .get("ResourceRequired")
        .and_then(|v| Obj::new(v, &t.path("ResourceRequired"), d))
    {
        rr.check_keys(&["Cpu", "Memory"], d);
        if let Some(p) = &resources_path {
            d.err(
                &t.path("ResourceRequired"),
                format!("give either `ResourceRequired` or `{p}`, not both"),
            );
        }
        let mut r = Resources::default();
        let n = d.errors.len();
        if let Some(v) = rr.get("Cpu") {
            r.millicpus = check::cpus(v, &rr.path("Cpu"), d).unwrap_or(r.millicpus);
        }
        if let Some(v) = rr.get("Memory") {
            r.memory = tint(v, &rr.path("Memory"), 0, i128::from(u64::MAX >> 20), d)
                .and_then(|mib| u64::try_from(mib).ok())
                .map_or(0, |mib| mib << 20);
        }
        if d.errors.len() == n {
            raw.resources = Some(r);
        }
    }
    if let Some(v) = t.get("RedirectInfo") {
        read_redirect(v, &t.path("RedirectInfo"), &mut raw, d);
    }
    for (k, why) in [
        (
            "RedirectLocalInfo",
            "local copies of stdout/stderr are not kept",
        ),
        ("OutputMappingConfigs", "upload tuning is Kiln's own"),
        ("RestartComputeNode", "nodes are not restarted"),
    ] {
        if t.has(k) {
            ignored(d, &t.path(k), why);
        }
    }
    if let Some(v) = t.get("Authentications") {
        credentials.cos = read_authentications(v, &t.path("Authentications"), d);
    }
    if let Some(v) = t.get("InputMappings") {
        let path = t.path("InputMappings");
        let mut out = Vec::new();
        let mut targets: BTreeMap<String, String> = BTreeMap::new();
        each_obj(v, &path, d, |m, d| {
            m.check_keys(
                &["SourcePath", "DestinationPath", "MountOptionParameter"],
                d,
            );
            if m.has("MountOptionParameter") {
                ignored(
                    d,
                    &m.path("MountOptionParameter"),
                    "mount options are not supported",
                );
            }
            if let Some(mapping) =
                check::input_mapping(m, "SourcePath", "DestinationPath", &mut targets, d)
            {
                out.push(mapping);
            }
        });
        raw.inputs = Some(out);
    }
    if let Some(v) = t.get("OutputMappings") {
        let path = t.path("OutputMappings");
        let mut out = Vec::new();
        each_obj(v, &path, d, |m, d| {
            m.check_keys(&["SourcePath", "DestinationPath", "OutputMappingOption"], d);
            if m.has("OutputMappingOption") {
                ignored(
                    d,
                    &m.path("OutputMappingOption"),
                    "outputs are uploaded after a successful attempt",
                );
            }
            let source = m.require("SourcePath", d).and_then(|s| {
                let sp = m.path("SourcePath");
                let st = check::string(s, &sp, d)?;
                check::local_path(st, &sp, d)?;
                Some(st.to_string())
            });
            let target = m
                .require("DestinationPath", d)
                .and_then(|t| check::url(t, &m.path("DestinationPath"), d));
            if let (Some(source), Some(target)) = (source, target) {
                out.push(OutputMapping {
                    source,
                    target,
                    when: UploadWhen::Success,
                    profile: None,
                });
            }
        });
        raw.outputs = Some(out);
    }
    if let Some(v) = t.get("EnvVars") {
        let path = t.path("EnvVars");
        let mut env = BTreeMap::new();
        each_obj(v, &path, d, |e, d| {
            e.check_keys(&["Name", "Value"], d);
            let name = e
                .require("Name", d)
                .and_then(|n| check::string(n, &e.path("Name"), d));
            let value = e.get("Value").map_or(Some(String::new()), |v| {
                check::scalar_string(v, &e.path("Value"), d)
            });
            if let Some(n) = name {
                if let Some(p) = check::env_name_problem(n) {
                    d.err(&e.path("Name"), p);
                } else if env.contains_key(n) {
                    d.err(
                        &e.path("Name"),
                        format!("environment variable `{n}` is set twice"),
                    );
                } else if let Some(v) = value {
                    env.insert(n.to_string(), v);
                }
            }
        });
        raw.env = Some(env);
    }
    if let Some(v) = t.get("FailedAction") {
        let p = t.path("FailedAction");
        let choices = [
            ("TERMINATE", (OnFailure::Terminate, false)),
            ("INTERRUPT", (OnFailure::Interrupt, false)),
            ("FAST_INTERRUPT", (OnFailure::Interrupt, true)),
        ];
        if let Some((action, fast)) = check::one_of(v, &p, &choices, d) {
            if fast {
                d.warn(&p, "FAST_INTERRUPT is treated as INTERRUPT");
            }
            raw.on_failure = Some(action);
        }
    }
    if let Some(v) = t.get("MaxRetryCount") {
        raw.retries = tint_u32(v, &t.path("MaxRetryCount"), 0, 10, d);
    }
    if let Some(v) = t.get("ResourceMaxRetryCount") {
        raw.resource_retries = tint_u32(v, &t.path("ResourceMaxRetryCount"), 0, 100, d);
    }
    if let Some(v) = t.get("MaxConcurrentNum") {
        raw.max_concurrency = tint_u32(v, &t.path("MaxConcurrentNum"), 0, MAX_INSTANCES, d);
    }
    match t.get("Timeout") {
        Some(v) => {
            let p = t.path("Timeout");
            let max = i128::from(check::MAX_TIMEOUT_MS / 1000);
            raw.timeout_ms = tint(v, &p, 1, max, d)
                .and_then(|s| u64::try_from(s).ok())
                .map(|s| s * 1000);
        }
        None => raw.timeout_ms = Some(DEFAULT_TIMEOUT_MS),
    }
    let entry = TaskEntry {
        name,
        name_ok,
        command_path: join(&t.path("Application"), "Command"),
        path: t.path.clone(),
        raw,
        command_given,
        instances_bad,
    };
    (entry, credentials)
}

/// A credential field: a non-empty string. Errors never repeat the value, which may be a
/// secret.
fn secret_field(o: &Obj<'_>, key: &str, d: &mut Diag) -> Option<String> {
    let path = o.path(key);
    match o.require(key, d)? {
        Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Str(_) => {
            d.err(&path, "must not be empty");
            None
        }
        _ => {
            d.err(&path, "expected a string");
            None
        }
    }
}

/// `Authentications`: at most one `{Scene: COS, SecretId, SecretKey}`, the keys of the task's
/// `cos://` (and `s3://`) mappings.
fn read_authentications(v: &Value, path: &str, d: &mut Diag) -> Option<StorageKeys> {
    let mut found: Option<(StorageKeys, String)> = None;
    each_obj(v, path, d, |a, d| {
        a.check_keys(&["Scene", "SecretId", "SecretKey"], d);
        let scene_ok = a.require("Scene", d).is_some_and(|s| {
            let p = a.path("Scene");
            match check::string(s, &p, d) {
                Some("COS") => true,
                Some(_) => {
                    d.err(&p, "unsupported scene; expected `COS`");
                    false
                }
                None => false,
            }
        });
        let id = secret_field(a, "SecretId", d);
        let key = secret_field(a, "SecretKey", d);
        if let (true, Some(secret_id), Some(secret_key)) = (scene_ok, id, key) {
            if let Some((_, first)) = &found {
                d.err(
                    &a.path("Scene"),
                    format!("a second COS authentication (the first is at {first}); give one"),
                );
            } else {
                found = Some((
                    StorageKeys {
                        secret_id,
                        secret_key,
                    },
                    a.path.clone(),
                ));
            }
        }
    });
    found.map(|(k, _)| k)
}

/// `Application.Docker.User/Password/Server`: the login for the task's image.
fn read_registry_login(docker: &Obj<'_>, d: &mut Diag) -> Option<RegistryLogin> {
    let server = docker.get("Server").and_then(|v| {
        let p = docker.path("Server");
        let s = check::string(v, &p, d)?.trim();
        if s.is_empty() || s.contains(char::is_whitespace) || s.contains('@') {
            d.err(
                &p,
                "expected a registry host, e.g. `ccr.ccs.tencentyun.com`",
            );
            return None;
        }
        Some(s.to_string())
    });
    match (docker.has("User"), docker.has("Password")) {
        (false, false) => {
            if server.is_some() {
                ignored(
                    d,
                    &docker.path("Server"),
                    "no `User` and `Password` to log in with",
                );
            }
            None
        }
        (true, false) | (false, true) => {
            let missing = if docker.has("User") {
                "Password"
            } else {
                "User"
            };
            d.err(
                &docker.path(missing),
                "`User` and `Password` go together; give both",
            );
            None
        }
        (true, true) => {
            let username = secret_field(docker, "User", d)?;
            let password = secret_field(docker, "Password", d)?;
            Some(RegistryLogin {
                server,
                username,
                password,
            })
        }
    }
}

fn read_redirect(v: &Value, path: &str, raw: &mut RawTask, d: &mut Diag) {
    let Some(r) = Obj::new(v, path, d) else {
        return;
    };
    r.check_keys(
        &[
            "StdoutRedirectPath",
            "StderrRedirectPath",
            "StdoutRedirectFileName",
            "StderrRedirectFileName",
        ],
        d,
    );
    for (stream, slot) in [("Stdout", &mut raw.stdout), ("Stderr", &mut raw.stderr)] {
        let dir_key = format!("{stream}RedirectPath");
        let file_key = format!("{stream}RedirectFileName");
        let dir = r
            .get(&dir_key)
            .and_then(|v| check::string(v, &r.path(&dir_key), d));
        let file = r
            .get(&file_key)
            .and_then(|v| check::string(v, &r.path(&file_key), d));
        match (dir, file) {
            (None, None) => {}
            (None, Some(_)) => d.err(
                &r.path(&file_key),
                format!("`{file_key}` needs `{dir_key}`"),
            ),
            (Some(dir), file) => {
                let Some(dir) = check::check_url(dir, &r.path(&dir_key), d) else {
                    continue;
                };
                let mut prefix = dir;
                if !prefix.ends_with('/') {
                    prefix.push('/');
                }
                *slot = match file {
                    Some(f) if !f.is_empty() => {
                        check::check_redirect(&format!("{prefix}{f}"), &r.path(&file_key), d)
                    }
                    _ => check::check_redirect(&prefix, &r.path(&dir_key), d),
                };
            }
        }
    }
}
