//! The host runtime: each attempt runs as a process group on this machine, in a fresh working
//! directory, with the environment of a task instance.
//!
//! Hot-path notes (instance throughput is a product feature):
//! - a program name is resolved against `PATH` once and cached, so spawning never tries every
//!   `PATH` entry;
//! - stdout and stderr are read from pipes, and their capture files are created only when the
//!   first byte arrives: an instance that prints nothing creates no file;
//! - the working directory of a succeeded attempt is removed; a failed attempt's is kept for
//!   inspection.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::RegistryAuth;
use kiln_core::model::{
    Command, Image, InputMapping, OutputMapping, Resources, Stream, UploadWhen, redirect_url,
};
use kiln_core::state::Outcome;
use kiln_storage::{Location, Storage};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use crate::docker::{DockerRuntime, Launch, Mount, WORK_DIR};

/// The storage settings an attempt was given, opened as storage by profile name (in memory;
/// nothing is written anywhere).
pub fn attempt_storage(settings: &[kiln_api::StorageSettings]) -> BTreeMap<String, Arc<Storage>> {
    settings
        .iter()
        .map(|s| (s.name.clone(), Arc::new(Storage::new(storage_config(s)))))
        .collect()
}

/// How to reach the storage of one profile's settings.
pub fn storage_config(s: &kiln_api::StorageSettings) -> kiln_storage::StorageConfig {
    kiln_storage::StorageConfig {
        endpoint: s.endpoint.clone(),
        // A `cos` profile's endpoint stands in for COS itself, for `cos://` as for `s3://`.
        cos_endpoint: (s.kind == "cos").then(|| s.endpoint.clone()).flatten(),
        region: s.region.clone(),
        access_key_id: Some(s.access_key_id.clone()),
        secret_access_key: Some(s.secret_access_key.clone()),
        session_token: s.session_token.clone(),
        allow_http: s
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
        ..kiln_storage::StorageConfig::default()
    }
}

/// Everything the runtime needs to run one attempt.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    pub job_id: String,
    pub job_name: String,
    pub task_name: String,
    pub index: u32,
    pub instances: u32,
    pub attempt: u32,
    pub command: Command,
    /// `Host`: a process on this machine; `Docker`: a container from that image.
    pub image: Image,
    /// The Docker network (VPC) a container joins; `None`: the engine's default.
    pub network: Option<String>,
    /// CPU and memory limits of a container (from the task's instance type).
    pub resources: Resources,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    /// Remote storage made available in the working directory before the command runs.
    pub inputs: Vec<InputMapping>,
    /// Paths of the working directory uploaded after it ends.
    pub outputs: Vec<OutputMapping>,
    /// Where stdout / stderr are uploaded when the attempt ends (see
    /// [`kiln_core::model::redirect_url`]).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Remote storage this attempt was given, by storage profile name: held in memory only,
    /// used over the node's own for the mappings that name the profile.
    pub storage: BTreeMap<String, Arc<Storage>>,
    /// The profile of the mappings and redirects that name none (the task's, else the
    /// server's default); `None`: the node's own storage.
    pub storage_profile: Option<String>,
    /// The login its image is pulled with, held in memory only; `None`: none.
    pub registry: Option<RegistryAuth>,
}

impl AttemptSpec {
    /// The memory limit of a container, if the task states one.
    pub fn memory_limit(&self) -> Option<u64> {
        (self.resources.memory > 0).then_some(self.resources.memory)
    }
}

/// Asks a running attempt to stop. Cloned into the attempt's future; usable from any thread.
/// `stop()` sends SIGTERM to the attempt's process group and SIGKILL after the grace period;
/// `kill()` sends SIGKILL at once (also to an attempt already being stopped).
#[derive(Debug, Clone)]
pub struct KillSwitch(Arc<watch::Sender<u8>>);

pub(crate) const STOP: u8 = 1;
pub(crate) const KILL: u8 = 2;

impl KillSwitch {
    pub fn new() -> Self {
        KillSwitch(Arc::new(watch::channel(0).0))
    }
    pub fn stop(&self) {
        self.0.send_if_modified(|v| {
            let changed = *v < STOP;
            *v = (*v).max(STOP);
            changed
        });
    }
    pub fn kill(&self) {
        self.0.send_replace(KILL);
    }
    fn subscribe(&self) -> watch::Receiver<u8> {
        self.0.subscribe()
    }

    /// Resolves once a stop (or kill) was asked for.
    pub async fn stopped(&self) {
        reached(&mut self.subscribe(), STOP).await;
    }
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves once the switch reaches `level`.
pub(crate) async fn reached(rx: &mut watch::Receiver<u8>, level: u8) {
    loop {
        if *rx.borrow_and_update() >= level {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Where the files of one attempt live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPaths {
    pub work_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// Runs attempts as local processes.
#[derive(Debug)]
pub struct HostRuntime {
    work_root: PathBuf,
    log_root: PathBuf,
    node_id: String,
    /// How long a stopped process group gets between SIGTERM and SIGKILL.
    kill_grace: Duration,
    keep_work_dirs: bool,
    programs: Mutex<HashMap<String, PathBuf>>,
    /// Remote storage for inputs, outputs and log redirects.
    storage: Option<Arc<Storage>>,
    /// The node's Docker Engine, for tasks whose image is a Docker image.
    docker: Option<Arc<DockerRuntime>>,
}

impl HostRuntime {
    pub fn new(work_root: PathBuf, log_root: PathBuf, node_id: impl Into<String>) -> Self {
        HostRuntime {
            work_root,
            log_root,
            node_id: node_id.into(),
            kill_grace: Duration::from_secs(5),
            keep_work_dirs: false,
            programs: Mutex::new(HashMap::new()),
            storage: None,
            docker: None,
        }
    }

    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The remote storage inputs, outputs and log redirects use, if any.
    pub fn remote_storage(&self) -> Option<Arc<Storage>> {
        self.storage.clone()
    }

    /// Remote storage for inputs, outputs and log redirects.
    pub fn with_storage(mut self, storage: Arc<Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Runs tasks whose image is a Docker image as containers of this engine.
    pub fn with_docker(mut self, docker: Option<Arc<DockerRuntime>>) -> Self {
        self.docker = docker;
        self
    }

    /// Whether this runtime runs Docker images.
    pub fn runs_containers(&self) -> bool {
        self.docker.is_some()
    }

    pub fn with_keep_work_dirs(mut self, keep: bool) -> Self {
        self.keep_work_dirs = keep;
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The files of an attempt (they may not exist: capture files are created lazily).
    pub fn paths(&self, job: &str, task: &str, index: u32, attempt: u32) -> AttemptPaths {
        let name = format!("{index}.{attempt}");
        AttemptPaths {
            work_dir: self.work_root.join(job).join(task).join(&name),
            stdout: self
                .log_root
                .join(job)
                .join(task)
                .join(format!("{name}.stdout")),
            stderr: self
                .log_root
                .join(job)
                .join(task)
                .join(format!("{name}.stderr")),
        }
    }

    /// Resolves a bare program name against `PATH` once; names with a `/` are used as given.
    fn resolve(&self, program: &str, path_var: Option<&str>) -> Option<PathBuf> {
        if program.contains('/') {
            return Some(PathBuf::from(program));
        }
        let key = format!("{}\0{program}", path_var.unwrap_or(""));
        if let Ok(cache) = self.programs.lock()
            && let Some(p) = cache.get(&key)
        {
            return Some(p.clone());
        }
        let path_var = path_var
            .map(str::to_string)
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
        let found = std::env::split_paths(&path_var)
            .map(|dir| dir.join(program))
            .find(|p| is_executable(p))?;
        if let Ok(mut cache) = self.programs.lock() {
            cache.insert(key, found.clone());
        }
        Some(found)
    }

    /// Runs one attempt to its end. `on_start` is called once the command runs (with the
    /// process id for host processes). `kill` stops it (see [`KillSwitch`]).
    pub async fn run(
        &self,
        spec: &AttemptSpec,
        kill: &KillSwitch,
        on_start: impl FnOnce(Option<u32>),
    ) -> Outcome {
        let paths = self.paths(&spec.job_id, &spec.task_name, spec.index, spec.attempt);
        let layout = Layout::new(spec, &paths);
        if let (Image::Docker(image), Some(docker)) = (&spec.image, &self.docker)
            && let Err(outcome) = docker.ensure_image(image, spec.registry.as_ref()).await
        {
            return outcome;
        }
        if let Err(e) = make_fresh_dir(&paths.work_dir) {
            return Outcome::StartFailed {
                message: format!("cannot create {}: {e}", paths.work_dir.display()),
                resource: true,
            };
        }
        if let Err(message) = self.stage_inputs(spec, &layout).await {
            return Outcome::InputFailed(message);
        }
        let outcome = match &spec.image {
            Image::Host => self.run_process(spec, &paths, kill, on_start).await,
            Image::Docker(image) => {
                self.run_container(image, spec, &paths, &layout, kill, on_start)
                    .await
            }
        };
        let outcome = match self.upload_results(spec, &paths, &layout, &outcome).await {
            Ok(()) => outcome,
            Err(message) => Outcome::OutputFailed {
                exit_code: match outcome {
                    Outcome::Exited(code) | Outcome::OutOfMemory { exit_code: code } => Some(code),
                    _ => None,
                },
                message,
            },
        };
        if outcome == Outcome::Exited(0) && !self.keep_work_dirs {
            let _ = std::fs::remove_dir_all(&paths.work_dir);
            if let Some(root) = &layout.mounts_root {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        outcome
    }

    /// Runs the command in a container of the task's image.
    async fn run_container(
        &self,
        image: &str,
        spec: &AttemptSpec,
        paths: &AttemptPaths,
        layout: &Layout,
        kill: &KillSwitch,
        on_start: impl FnOnce(Option<u32>),
    ) -> Outcome {
        let Some(docker) = &self.docker else {
            return Outcome::StartFailed {
                message: format!(
                    "node {} has no Docker Engine to run image `{image}`",
                    self.node_id
                ),
                resource: true,
            };
        };
        // Output directories at absolute paths exist before the container starts, so that
        // they are mounted as directories.
        for m in layout.mounts.iter().filter(|m| !m.read_only) {
            if !m.host.exists()
                && let Err(e) = std::fs::create_dir_all(&m.host)
            {
                return Outcome::StartFailed {
                    message: format!("cannot create {}: {e}", m.host.display()),
                    resource: true,
                };
            }
        }
        let env: Vec<String> = spec
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(
                self.batch_env(spec, Path::new(WORK_DIR))
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}")),
            )
            .collect();
        let launch = Launch {
            image,
            spec,
            paths,
            env,
            mounts: &layout.mounts,
            kill_grace: self.kill_grace,
            work_root: &self.work_root,
        };
        docker.run(launch, &mut kill.subscribe(), on_start).await
    }

    /// Runs the command as a process group on this machine.
    async fn run_process(
        &self,
        spec: &AttemptSpec,
        paths: &AttemptPaths,
        kill: &KillSwitch,
        on_start: impl FnOnce(Option<u32>),
    ) -> Outcome {
        let (program, args): (PathBuf, &[String]) = match &spec.command {
            Command::Shell(script) => (PathBuf::from("/bin/sh"), std::slice::from_ref(script)),
            Command::Argv(argv) => {
                let Some((first, rest)) = argv.split_first() else {
                    return Outcome::StartFailed {
                        message: "empty command".into(),
                        resource: false,
                    };
                };
                match self.resolve(first, spec.env.get("PATH").map(String::as_str)) {
                    Some(p) => (p, rest),
                    None => {
                        return Outcome::StartFailed {
                            message: format!("program `{first}` not found in PATH"),
                            resource: false,
                        };
                    }
                }
            }
        };
        let mut cmd = tokio::process::Command::new(&program);
        if matches!(spec.command, Command::Shell(_)) {
            cmd.arg("-c");
        }
        cmd.args(args)
            .current_dir(&paths.work_dir)
            .envs(&spec.env)
            .envs(self.batch_env(spec, &paths.work_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let resource = !matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                );
                return Outcome::StartFailed {
                    message: format!("cannot run {}: {e}", program.display()),
                    resource,
                };
            }
        };
        let pid = child.id();
        on_start(pid);
        let out = child
            .stdout
            .take()
            .map(|p| tokio::spawn(capture(p, paths.stdout.clone())));
        let err = child
            .stderr
            .take()
            .map(|p| tokio::spawn(capture(p, paths.stderr.clone())));

        let mut kill_rx = kill.subscribe();
        let timeout = async {
            match spec.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        enum End {
            Exited(std::io::Result<std::process::ExitStatus>),
            TimedOut,
            Killed,
        }
        let end = tokio::select! {
            status = child.wait() => End::Exited(status),
            () = timeout => End::TimedOut,
            () = reached(&mut kill_rx, STOP) => End::Killed,
        };
        let outcome = match end {
            End::Exited(Ok(status)) => match (status.code(), status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signaled(sig),
                (None, None) => Outcome::Exited(-1),
            },
            End::Exited(Err(e)) => Outcome::StartFailed {
                message: format!("lost track of the process: {e}"),
                resource: true,
            },
            End::TimedOut | End::Killed => {
                if let Some(pid) = pid {
                    self.stop_group(pid, &mut child, &mut kill_rx).await;
                }
                if matches!(end, End::TimedOut) {
                    Outcome::TimedOut
                } else {
                    Outcome::Stopped
                }
            }
        };
        // The instance is destroyed with its main process: nothing it left behind keeps running
        // (and holding its output pipes open).
        if let Some(pid) = pid {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        for handle in [out, err].into_iter().flatten() {
            if let Ok(Err(e)) = handle.await {
                tracing::warn!("capturing output of {}: {e}", spec.task_name);
            }
        }
        outcome
    }

    /// The storage of a mapping naming `profile` (else the attempt's profile, else this
    /// node's own).
    fn storage<'a>(
        &'a self,
        spec: &'a AttemptSpec,
        profile: Option<&str>,
    ) -> Result<&'a Storage, String> {
        match profile.or(spec.storage_profile.as_deref()) {
            Some(name) => {
                spec.storage.get(name).map(|s| &**s).ok_or_else(|| {
                    format!("storage profile `{name}` was not given to this attempt")
                })
            }
            None => self
                .storage
                .as_deref()
                .ok_or_else(|| "this node has no remote storage configured".to_string()),
        }
    }

    /// Makes every input available in the working directory. The error names the URL.
    async fn stage_inputs(&self, spec: &AttemptSpec, layout: &Layout) -> Result<(), String> {
        for (m, bound) in spec.inputs.iter().zip(&layout.bound) {
            let fail = |cause: &dyn std::fmt::Display| format!("{}: {cause}", m.source);
            if *bound {
                // Mounted into the container as it is; it must exist.
                let location = Location::parse(&m.source).map_err(|e| fail(&e))?;
                if let Location::File { path } = location
                    && !path.exists()
                {
                    return Err(fail(&"no such file or directory"));
                }
                continue;
            }
            let location = Location::parse(&m.source).map_err(|e| fail(&e))?;
            let target = layout.local(&m.target).map_err(|e| fail(&e))?;
            self.storage(spec, m.profile.as_deref())
                .map_err(|e| fail(&e))?
                .download(&location, &target)
                .await
                .map_err(|e| fail(&e))?;
        }
        Ok(())
    }

    /// Uploads the outputs due for this outcome, then stdout and stderr (always, also on
    /// failure, timeout or termination). Every upload is tried; the first error is returned.
    async fn upload_results(
        &self,
        spec: &AttemptSpec,
        paths: &AttemptPaths,
        layout: &Layout,
        outcome: &Outcome,
    ) -> Result<(), String> {
        let succeeded = *outcome == Outcome::Exited(0);
        let mut first_error = None;
        let mut note = |e: String| {
            tracing::warn!("upload of {} failed: {e}", spec.task_name);
            first_error.get_or_insert(e);
        };
        for m in &spec.outputs {
            let due = match m.when {
                UploadWhen::Success => succeeded,
                UploadWhen::Failure => !succeeded,
                UploadWhen::Always => true,
            };
            if !due {
                continue;
            }
            let fail = |cause: &dyn std::fmt::Display| format!("{}: {cause}", m.target);
            let result = async {
                let location = Location::parse(&m.target).map_err(|e| fail(&e))?;
                let source = layout.local(&m.source).map_err(|e| fail(&e))?;
                self.storage(spec, m.profile.as_deref())
                    .map_err(|e| fail(&e))?
                    .upload(&source, &location)
                    .await
                    .map_err(|e| fail(&e))
            }
            .await;
            if let Err(e) = result {
                note(e);
            }
        }
        for (stream, location, file) in [
            (Stream::Stdout, &spec.stdout, &paths.stdout),
            (Stream::Stderr, &spec.stderr, &paths.stderr),
        ] {
            let Some(location) = location else { continue };
            let url = redirect_url(
                location,
                stream,
                &spec.job_id,
                &spec.task_name,
                spec.index,
                spec.attempt,
            );
            let fail = |cause: &dyn std::fmt::Display| format!("{url}: {cause}");
            let result = async {
                let target = Location::parse(&url).map_err(|e| fail(&e))?;
                // An attempt that printed nothing still leaves its (empty) log object.
                if !file.exists() {
                    if let Some(dir) = file.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
                    }
                    std::fs::File::create(file).map_err(|e| fail(&e))?;
                }
                self.storage(spec, None)
                    .map_err(|e| fail(&e))?
                    .upload(file, &target)
                    .await
                    .map_err(|e| fail(&e))
            }
            .await;
            if let Err(e) = result {
                note(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// SIGTERM to the group, then SIGKILL once the grace period is over (or a kill arrives).
    async fn stop_group(
        &self,
        pid: u32,
        child: &mut tokio::process::Child,
        kill_rx: &mut watch::Receiver<u8>,
    ) {
        let group = Pid::from_raw(pid as i32);
        if *kill_rx.borrow() < KILL {
            let _ = killpg(group, Signal::SIGTERM);
            tokio::select! {
                _ = child.wait() => return,
                () = tokio::time::sleep(self.kill_grace) => {}
                () = reached(kill_rx, KILL) => {}
            }
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }

    fn batch_env(&self, spec: &AttemptSpec, work_dir: &Path) -> [(&'static str, String); 8] {
        [
            ("BATCH_JOB_ID", spec.job_id.clone()),
            ("BATCH_JOB_NAME", spec.job_name.clone()),
            ("BATCH_TASK_NAME", spec.task_name.clone()),
            ("BATCH_TASK_INSTANCE_NUM", spec.instances.to_string()),
            ("BATCH_TASK_INSTANCE_INDEX", spec.index.to_string()),
            ("BATCH_TASK_INSTANCE_ATTEMPT", spec.attempt.to_string()),
            ("BATCH_NODE_ID", self.node_id.clone()),
            ("BATCH_WORK_DIR", work_dir.display().to_string()),
        ]
    }

    /// After a restart: kills every process a previous runner's attempts left behind. Processes
    /// are recognised by the `BATCH_*` environment of their attempt (inherited by everything an
    /// attempt starts), never by a stored process id alone, so a recycled id is never killed by
    /// mistake and an attempt whose id was never recorded is still found. Returns how many
    /// process groups were killed.
    pub fn kill_leftovers(&self, attempts: &[LeftoverAttempt<'_>]) -> usize {
        if attempts.is_empty() {
            return 0;
        }
        let wanted: Vec<[String; 4]> = attempts
            .iter()
            .map(|a| {
                [
                    format!("BATCH_JOB_ID={}", a.job),
                    format!("BATCH_TASK_NAME={}", a.task),
                    format!("BATCH_TASK_INSTANCE_INDEX={}", a.index),
                    format!("BATCH_TASK_INSTANCE_ATTEMPT={}", a.attempt),
                ]
            })
            .collect();
        kill_groups_where(|vars| {
            wanted
                .iter()
                .any(|w| w.iter().all(|v| vars.contains(&v.as_bytes())))
        })
    }

    /// When an agent starts: kills every process group a previous process of it left, i.e.
    /// every process whose `BATCH_WORK_DIR` lies under this runtime's working directories
    /// (the server has counted those attempts lost already and runs them again). Returns how
    /// many process groups were killed.
    pub fn kill_orphans(&self) -> usize {
        let prefix = format!("BATCH_WORK_DIR={}/", self.work_root.display());
        kill_groups_where(|vars| vars.iter().any(|v| v.starts_with(prefix.as_bytes())))
    }

    /// When an agent starts: removes the containers a previous process of it left (see
    /// [`DockerRuntime::remove_orphans`]).
    pub async fn remove_orphan_containers(&self) -> usize {
        match &self.docker {
            Some(docker) => docker.remove_orphans(&self.work_root).await,
            None => 0,
        }
    }

    /// After a restart: removes the containers of attempts a previous runner left (their
    /// processes are killed by [`HostRuntime::kill_leftovers`] already; the stopped containers
    /// would otherwise stay behind). Returns how many were removed.
    pub async fn remove_leftover_containers(&self, attempts: &[LeftoverAttempt<'_>]) -> usize {
        let Some(docker) = &self.docker else {
            return 0;
        };
        let mut removed = 0;
        for a in attempts {
            if docker
                .remove_attempt(a.job, a.task, a.index, a.attempt)
                .await
            {
                removed += 1;
            }
        }
        removed
    }
}

/// SIGKILLs the process group of every process whose environment (`NAME=value` entries)
/// satisfies `ours`, except this process's own group. Returns how many groups were killed.
fn kill_groups_where(ours: impl Fn(&[&[u8]]) -> bool) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let own = nix::unistd::getpgrp();
    let mut groups = std::collections::BTreeSet::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        if ours(&vars)
            && let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
            && group != own
        {
            groups.insert(group);
        }
    }
    groups
        .into_iter()
        .filter(|&g| killpg(g, Signal::SIGKILL).is_ok())
        .count()
}

/// An attempt a previous runner may have left running.
#[derive(Debug, Clone, Copy)]
pub struct LeftoverAttempt<'a> {
    pub job: &'a str,
    pub task: &'a str,
    pub index: u32,
    pub attempt: u32,
}

/// Where the mapping paths of one attempt live on this machine. Relative paths are inside the
/// working directory. Absolute ones are refused on the host (they would reach outside the
/// instance; validation refuses them already); in a container each gets a directory of its own
/// beside the working directory, bind-mounted at that path, and `file://` inputs are not copied
/// but bind-mounted read-only from the shared filesystem.
#[derive(Debug)]
struct Layout {
    work_dir: PathBuf,
    /// `Some` for containers: the directory holding the mount directories.
    mounts_root: Option<PathBuf>,
    /// Bind mounts of a container, in the order they are mounted.
    mounts: Vec<Mount>,
    /// Per input: true when it is bind-mounted rather than downloaded.
    bound: Vec<bool>,
}

impl Layout {
    fn new(spec: &AttemptSpec, paths: &AttemptPaths) -> Layout {
        let mut layout = Layout {
            work_dir: paths.work_dir.clone(),
            mounts_root: None,
            mounts: Vec::new(),
            bound: vec![false; spec.inputs.len()],
        };
        if spec.image == Image::Host {
            return layout;
        }
        let root = paths.work_dir.with_extension(
            paths
                .work_dir
                .extension()
                .map(|e| format!("{}.mnt", e.to_string_lossy()))
                .unwrap_or_else(|| "mnt".into()),
        );
        for (i, m) in spec.inputs.iter().enumerate() {
            if let Ok(Location::File { path }) = Location::parse(&m.source) {
                let mut inside = inside_path(&m.target);
                if m.target.ends_with('/') && !m.source.ends_with('/') {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    inside = format!("{inside}/{}", name.unwrap_or_default());
                }
                layout.mounts.push(Mount {
                    host: path,
                    inside,
                    read_only: true,
                });
                layout.bound[i] = true;
            }
        }
        let absolute = spec
            .inputs
            .iter()
            .zip(&layout.bound)
            .filter(|(_, bound)| !**bound)
            .map(|(m, _)| &m.target)
            .chain(spec.outputs.iter().map(|m| &m.source))
            .filter(|p| p.starts_with('/'))
            .map(|p| normalize(p))
            .collect::<Vec<_>>();
        for inside in absolute {
            if !layout.mounts.iter().any(|m| m.inside == inside) {
                layout.mounts.push(Mount {
                    host: root.join(layout.mounts.len().to_string()),
                    inside,
                    read_only: false,
                });
            }
        }
        layout.mounts_root = Some(root);
        layout
    }

    /// The local path of mapping path `p` (a trailing `/` is kept: it means "a directory").
    fn local(&self, p: &str) -> Result<PathBuf, String> {
        if !Path::new(p).is_absolute() {
            return Ok(self.work_dir.join(p));
        }
        let inside = normalize(p);
        let Some(m) = self
            .mounts
            .iter()
            .find(|m| m.inside == inside && !m.read_only)
        else {
            return Err(format!(
                "`{p}` is absolute; on the host runtime mapping paths are relative to the working directory"
            ));
        };
        Ok(if p.ends_with('/') {
            PathBuf::from(format!("{}/", m.host.display()))
        } else {
            m.host.clone()
        })
    }
}

/// A mapping path as the container sees it.
fn inside_path(p: &str) -> String {
    if p.starts_with('/') {
        normalize(p)
    } else {
        normalize(&format!("{WORK_DIR}/{p}"))
    }
}

/// An absolute path without trailing slashes (`/` stays `/`).
fn normalize(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Creates `dir` (emptied if a previous run left it), creating parents only when needed.
fn make_fresh_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_dir_all(dir)?;
            std::fs::create_dir(dir)
        }
        Err(e) => Err(e),
    }
}

/// A capture file created only when the first byte arrives: an instance that prints nothing
/// creates no file. Local page-cache writes are short enough to do inline.
pub(crate) struct LazyFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl LazyFile {
    pub(crate) fn new(path: PathBuf) -> LazyFile {
        LazyFile { path, file: None }
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let f = match &mut self.file {
            Some(f) => f,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                self.file.insert(std::fs::File::create(&self.path)?)
            }
        };
        f.write_all(bytes)
    }
}

/// Copies a pipe into the capture file at `path`.
async fn capture(mut pipe: impl AsyncRead + Unpin, path: PathBuf) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut file = LazyFile::new(path);
    let mut total = 0u64;
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        file.write(&buf[..n])?;
        total += n as u64;
    }
    Ok(total)
}
