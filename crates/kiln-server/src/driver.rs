//! The driver: the one owner of the engine and the store. It runs a loop of ticks:
//! take every report that has arrived, let the engine decide, commit the tick's changes in one
//! transaction, and only then act (start attempts, stop attempts).
//!
//! Attempts run on a tokio runtime; their reports come back over a channel. The driver thread
//! itself never awaits, so a slow attempt can never hold up a decision.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_agent::{AttemptSpec, DockerRuntime, HostRuntime, KillSwitch, LeftoverAttempt};
use kiln_core::engine::{Dispatch, Effect, Engine, Event, JobId, JobRun, Node, Restore};
use kiln_core::model::{Catalog, JobCredentials, JobSpec};
use kiln_core::state::{LossCause, Outcome, State};
use kiln_storage::{Storage, StorageConfig};
use kiln_store::{IdempotencyRecord, Once, Store, StoreError};

use crate::cluster::{Agents, LeaseNotify};
use crate::envs::Providers;
use crate::leader::{self, LeaderConfig, Leadership};

/// How long a finished job stays in the engine's memory (for late reports of its attempts)
/// before the server forgets it; it stays in the store, where every read finds it.
pub const FORGET_FINISHED_AFTER: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch: the only clock the engine ever sees.
/// Whether the journal is on: it is, unless `KILN_JOURNAL=off` (a knob for measuring what
/// the journal costs, `bench/journal.sh`).
fn journal_enabled() -> bool {
    std::env::var("KILN_JOURNAL").map_or(true, |v| v != "off")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When a stored job's `timeout` expires: as recorded, or (for a job no scheduler has taken
/// yet) counted from its submission.
pub(crate) fn deadline_of(stored: &kiln_store::StoredJob) -> Option<u64> {
    stored.row.deadline.or_else(|| {
        stored
            .spec
            .timeout_ms
            .map(|t| stored.row.created_at.saturating_add(t))
    })
}

/// What a job's sealed credentials are bound to.
fn credentials_aad(id: &str) -> String {
    format!("job/{id}/credentials")
}

/// The name (not a valid profile name) under which an attempt is given its job's own keys.
pub const JOB_CREDENTIALS: &str = "(job credentials)";

/// A fresh job id like `job-4yn0we13`.
pub fn new_job_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("job-{tail}")
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no job `{0}` in this state directory")]
    UnknownJob(String),
    #[error("job `{id}` already finished ({state})")]
    Finished { id: String, state: State },
    /// A job carries credentials, and this runner has no key to seal them with.
    #[error("this runner keeps no secrets, so it cannot take a job that carries credentials")]
    NoKey,
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// Another server of the same database schedules; this one is a standby.
    #[error("this server is a standby; the scheduler runs on {leader}")]
    NotLeader { leader: String },
}

/// How the local runner is set up.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Holds `kiln.db` (unless `db` names another database), `logs/` and `work/`.
    pub state_dir: PathBuf,
    /// A `postgres://` URL of the database to keep state in; `None`: SQLite in `state_dir`.
    pub db: Option<String>,
    pub node: Node,
    pub kill_grace: Duration,
    pub keep_work_dirs: bool,
    /// Run tasks whose image is a Docker image on the built-in executor, if a Docker Engine
    /// answers.
    pub containers: bool,
}

/// Timings of the agent protocol.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How often agents send heartbeats.
    pub heartbeat_interval: Duration,
    /// A node silent for longer is `ABNORMAL` and its attempts re-run elsewhere.
    pub heartbeat_timeout: Duration,
    /// How long a lease request waits for work before answering empty.
    pub lease_wait: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(30),
            lease_wait: Duration::from_secs(20),
        }
    }
}

/// What a server does whenever it takes the scheduler lease ([`Driver::on_elected`]).
pub type OnElected = Box<dyn FnMut(&dyn Store) + Send>;

/// A message to the driver loop.
enum Msg {
    /// A report from the built-in executor.
    Report(JobId, Event),
    /// Work to do on the driver thread between ticks (API calls); its changes are committed
    /// in the same tick, before anything is acted on.
    Call(Box<dyn FnOnce(&mut Driver) + Send>),
}

/// The driver is gone (shut down, or failed on a store error).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct DriverGone;

/// A cheap, cloneable way for other threads (HTTP handlers) to reach the driver.
#[derive(Clone)]
pub struct Handle {
    tx: Sender<Msg>,
}

impl Handle {
    /// Runs `f` on the driver thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver) -> R + Send + 'static,
    ) -> Result<R, DriverGone> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let msg = Msg::Call(Box::new(move |d: &mut Driver| {
            let _ = reply.send(f(d));
        }));
        self.tx.send(msg).map_err(|_| DriverGone)?;
        answer.await.map_err(|_| DriverGone)
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub state: State,
    /// True when the run was stopped (Ctrl-C) before the job finished; the job can be resumed.
    pub interrupted: bool,
}

/// Where the storage profiles given to attempts come from.
enum Profiles {
    /// Nowhere: every mapping uses the node's own storage.
    None,
    /// The store's, their secrets sealed with this key (`kiln server`).
    Store(Arc<kiln_store::secrets::SecretBox>),
    /// A fixed list (`kiln run --storage-profiles`).
    Fixed(Arc<Vec<kiln_api::StorageProfileSpec>>),
}

/// The one owner of the engine and the store. `kiln run` drives one job with [`Driver::run`];
/// `kiln server` drives all of them with [`Driver::serve`].
pub struct Driver {
    /// The name of the built-in executor's node (attempts on it run in this process).
    local: String,
    /// The storage profiles attempts are given.
    profiles: Profiles,
    /// Seals and opens jobs' own credentials ([`JobSpec::sealed_credentials`]).
    job_key: Option<Arc<kiln_store::secrets::SecretBox>>,
    state_dir: PathBuf,
    engine: Engine,
    store: Arc<dyn Store>,
    runtime: Arc<HostRuntime>,
    rt: tokio::runtime::Runtime,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    kills: HashMap<(JobId, usize, u32, u32), KillSwitch>,
    /// Active attempts whose end should count as an interruption (we are shutting down).
    stopping: bool,
    pub(crate) agents: Agents,
    pub(crate) providers: Providers,
    last_reconcile: Instant,
    pub(crate) last_command_purge: Instant,
    /// When the server first saw each finished job still in the engine.
    finished: HashMap<JobId, Instant>,
    lease_notify: LeaseNotify,
    cluster: ClusterConfig,
    /// The instance types compute environments may name.
    pub(crate) catalog: Catalog,
    /// The built-in executor's node as configured (to start over with after stepping down).
    local_node: Node,
    /// With several servers on one database: this server's part in leadership. `None`: it
    /// always schedules.
    leadership: Option<Leadership>,
    /// Whether this server schedules now, for readers on other threads.
    leading: Arc<std::sync::atomic::AtomicBool>,
    /// Recently read chunks of task items.
    pub(crate) items: crate::items::ItemCache,
    /// Run whenever this server takes the scheduler lease (after reloading the work).
    on_elected: Option<OnElected>,
    /// Turns each batch of changes into journal events (`None`: the journal is off).
    journal: Option<kiln_core::journal::Journal>,
    /// Events of operations (terminate, retry, …) to write with the next batch, before the
    /// changes they cause.
    noted: Vec<kiln_core::journal::Event>,
    /// When the gauges of `crate::metrics` were last sampled.
    last_sample: Instant,
}

impl Driver {
    pub fn open(cfg: LocalConfig) -> Result<Self, DriverError> {
        let local = cfg.node.name.clone();
        let store = kiln_store::open(cfg.db.as_deref(), &cfg.state_dir)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-attempt")
            .enable_all()
            .build()
            .map_err(DriverError::Runtime)?;
        let docker = if cfg.containers {
            match rt.block_on(DockerRuntime::connect()) {
                Ok(d) => Some(Arc::new(d)),
                Err(e) => {
                    tracing::warn!("tasks with a Docker image will not run on {local}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let node = cfg.node.with_containers(docker.is_some());
        let runtime = HostRuntime::new(
            cfg.state_dir.join("work"),
            cfg.state_dir.join("logs"),
            local.clone(),
        )
        .with_kill_grace(cfg.kill_grace)
        .with_keep_work_dirs(cfg.keep_work_dirs)
        // Credentials and endpoint of remote storage come from the standard AWS variables.
        .with_storage(Arc::new(Storage::new(StorageConfig::from_env())))
        .with_docker(docker);
        let (tx, rx) = channel();
        Ok(Driver {
            profiles: Profiles::None,
            job_key: None,
            local,
            state_dir: cfg.state_dir.clone(),
            local_node: node.clone(),
            leadership: None,
            leading: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            engine: Engine::new(vec![node]),
            store,
            runtime: Arc::new(runtime),
            rt,
            tx,
            rx,
            kills: HashMap::new(),
            stopping: false,
            agents: Agents::default(),
            providers: Providers::default(),
            last_reconcile: Instant::now(),
            last_command_purge: Instant::now(),
            finished: HashMap::new(),
            lease_notify: LeaseNotify::default(),
            cluster: ClusterConfig::default(),
            catalog: Catalog::builtin(),
            items: crate::items::ItemCache::default(),
            on_elected: None,
            journal: journal_enabled().then(kiln_core::journal::Journal::new),
            noted: Vec::new(),
            last_sample: Instant::now(),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The store, to share with threads that read it (HTTP handlers).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    pub fn runtime(&self) -> &HostRuntime {
        &self.runtime
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Sets the agent protocol's timings.
    /// Instance types beyond the built-in catalog, for compute environments.
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// The store's storage profiles are given to attempts, opened with the key their secrets
    /// are sealed with (the API's).
    pub fn with_secrets(mut self, secrets: Arc<kiln_store::secrets::SecretBox>) -> Self {
        self.job_key = Some(Arc::clone(&secrets));
        self.profiles = Profiles::Store(secrets);
        self
    }

    /// The key jobs' own credentials are sealed with (`kiln run`'s, in its state directory).
    pub fn with_job_key(mut self, key: Arc<kiln_store::secrets::SecretBox>) -> Self {
        self.job_key = Some(key);
        self
    }

    /// [`Driver::attempt_profiles`], with the COS keys job `id` carries for `task` (Tencent
    /// `Authentications`) after the task's own profile and before the default: they are given
    /// as the settings named [`JOB_CREDENTIALS`], with the endpoint of the default profile if
    /// there is one, else (on the built-in executor, `local`) of this process's own storage.
    pub(crate) fn attempt_storage_of(
        &self,
        id: &str,
        job: &JobSpec,
        task: &kiln_core::model::TaskSpec,
        local: bool,
    ) -> (Vec<kiln_api::StorageSettings>, Option<String>) {
        let (mut storage, profile) = self.attempt_profiles(kiln_store::project_of(job), task);
        if task.storage_profile.is_some() {
            return (storage, profile);
        }
        let Some(keys) = self
            .job_credentials(id, job)
            .and_then(|mut c| c.tasks.remove(&task.name))
            .and_then(|t| t.cos)
        else {
            return (storage, profile);
        };
        let default = profile
            .as_deref()
            .and_then(|name| storage.iter().find(|s| s.name == name));
        let own = if local {
            self.runtime.remote_storage()
        } else {
            None
        };
        let (kind, endpoint, region, path_style) = match (default, &own) {
            (Some(d), _) => (
                d.kind.clone(),
                d.endpoint.clone(),
                d.region.clone(),
                d.path_style,
            ),
            (None, Some(own)) => {
                let c = own.config();
                (
                    "s3".to_string(),
                    c.endpoint.clone(),
                    c.region.clone(),
                    c.endpoint.is_some(),
                )
            }
            (None, None) => ("s3".to_string(), None, None, false),
        };
        storage.push(kiln_api::StorageSettings {
            name: JOB_CREDENTIALS.to_string(),
            kind,
            endpoint,
            region,
            path_style,
            access_key_id: keys.secret_id,
            secret_access_key: keys.secret_key,
            session_token: None,
        });
        (storage, Some(JOB_CREDENTIALS.to_string()))
    }

    /// The registry login an attempt of `task` (of job `id`) pulls its image with: the
    /// `docker-registry` profile the task names (`registry_profile`), else the job's own
    /// (Tencent `Application.Docker`), else the profile whose `server` is the image's
    /// registry (of several, the first by name); `None` for a host task or when there is
    /// none. Opened in memory, for this
    /// attempt only.
    pub(crate) fn attempt_registry(
        &self,
        id: &str,
        job: &JobSpec,
        task: &kiln_core::model::TaskSpec,
    ) -> Option<kiln_api::RegistryAuth> {
        let kiln_core::model::Image::Docker(image) = &task.image else {
            return None;
        };
        let host = kiln_api::image_registry(image);
        let login = |p: kiln_api::StorageProfileSpec| {
            Some(kiln_api::RegistryAuth {
                server: p
                    .server
                    .as_deref()
                    .and_then(kiln_api::registry_host)
                    .unwrap_or_else(|| host.clone()),
                username: p.username?,
                password: p.password?,
            })
        };
        if task.registry_profile.is_none()
            && let Some(r) = self
                .job_credentials(id, job)
                .and_then(|mut c| c.tasks.remove(&task.name))
                .and_then(|t| t.registry)
        {
            return Some(kiln_api::RegistryAuth {
                server: r
                    .server
                    .as_deref()
                    .and_then(kiln_api::registry_host)
                    .unwrap_or_else(|| host.clone()),
                username: r.username,
                password: r.password,
            });
        }
        let named = task.registry_profile.as_deref();
        let fits = |kind: &str, name: &str, server: Option<&str>| {
            kind == kiln_api::REGISTRY_PROFILE_KIND
                && match named {
                    Some(n) => n == name,
                    None => server.and_then(kiln_api::registry_host).as_deref() == Some(&host),
                }
        };
        match &self.profiles {
            Profiles::None => None,
            Profiles::Fixed(list) => list
                .iter()
                .filter(|p| fits(&p.kind, &p.name, p.server.as_deref()))
                .min_by(|a, b| a.name.cmp(&b.name))
                .cloned()
                .and_then(login),
            Profiles::Store(secrets) => {
                // Only the job's project's profiles: another project's login is never handed out.
                let project = kiln_store::project_of(job);
                let record = match named {
                    Some(n) => self
                        .store
                        .get_storage_profile(n)
                        .map(|r| r.filter(|r| r.project == project))
                        .map_err(|e| e.to_string()),
                    None => self
                        .store
                        .list_storage_profiles()
                        .map(|mut all| {
                            all.retain(|r| r.project == project);
                            crate::api::registry_of(&all, &host).cloned()
                        })
                        .map_err(|e| e.to_string()),
                };
                let record = match record {
                    Ok(r) => r?,
                    Err(e) => {
                        tracing::warn!("registry profiles cannot be read: {e}");
                        return None;
                    }
                };
                match crate::api::open_profile(secrets, &record) {
                    Ok(p) if p.is_registry() => login(p),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!("registry profile `{}` is unusable: {e}", record.name);
                        None
                    }
                }
            }
        }
    }

    /// The credentials `job` carries, opened (in memory). Logged (never their values) if
    /// they do not open.
    fn job_credentials(&self, id: &str, job: &JobSpec) -> Option<JobCredentials> {
        let sealed = job.sealed_credentials.as_deref()?;
        let Some(key) = &self.job_key else {
            tracing::warn!("job {id} carries credentials, but this runner has no key to open them");
            return None;
        };
        match key
            .open(sealed, &credentials_aad(id))
            .map_err(|e| e.to_string())
            .and_then(|plain| serde_json::from_str(&plain).map_err(|e| e.to_string()))
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("the credentials of job {id} cannot be opened: {e}");
                None
            }
        }
    }

    /// These storage profiles are given to attempts (`kiln run --storage-profiles`).
    pub fn with_storage_profiles(mut self, profiles: Vec<kiln_api::StorageProfileSpec>) -> Self {
        self.profiles = Profiles::Fixed(Arc::new(profiles));
        self
    }

    /// The storage settings of every profile an attempt of `task` uses, and the profile of
    /// its mappings and redirects that name none: the task's `storage_profile`, else the
    /// default profile (looked up only when such a remote mapping exists), else `None` (the
    /// node's own storage). A named profile that cannot be had is left out: the mapping naming
    /// it fails, saying so. Secrets are opened in memory, for this attempt only. Only
    /// `project`'s profiles count: another project's, default or named, are never handed out.
    pub(crate) fn attempt_profiles(
        &self,
        project: &str,
        task: &kiln_core::model::TaskSpec,
    ) -> (Vec<kiln_api::StorageSettings>, Option<String>) {
        let mut names: BTreeSet<String> = task
            .storage_profile
            .iter()
            .chain(task.inputs.iter().filter_map(|m| m.profile.as_ref()))
            .chain(task.outputs.iter().filter_map(|m| m.profile.as_ref()))
            .cloned()
            .collect();
        let remote = |url: &str| !url.starts_with("file:");
        let unnamed = task.storage_profile.is_none()
            && (task
                .inputs
                .iter()
                .any(|m| m.profile.is_none() && remote(&m.source))
                || task
                    .outputs
                    .iter()
                    .any(|m| m.profile.is_none() && remote(&m.target))
                || task.stdout.iter().chain(&task.stderr).any(|u| remote(u)));
        let mut profile = task.storage_profile.clone();
        let mut out = Vec::new();
        match &self.profiles {
            Profiles::None => {}
            Profiles::Fixed(list) => {
                if unnamed && let Some(d) = list.iter().find(|p| p.default) {
                    names.insert(d.name.clone());
                    profile = Some(d.name.clone());
                }
                out.extend(
                    list.iter()
                        .filter(|p| names.contains(&p.name))
                        .map(kiln_api::StorageSettings::from),
                );
            }
            Profiles::Store(secrets) => {
                let records = if unnamed {
                    match self.store.list_storage_profiles() {
                        Ok(mut all) => {
                            all.retain(|r| r.project == project);
                            if let Some(d) = crate::api::default_profile(&all) {
                                names.insert(d.name.clone());
                                profile = Some(d.name.clone());
                            }
                            all.into_iter()
                                .filter(|r| names.contains(&r.name))
                                .collect()
                        }
                        Err(e) => {
                            tracing::warn!("storage profiles cannot be read: {e}");
                            Vec::new()
                        }
                    }
                } else {
                    let mut found = Vec::new();
                    for name in &names {
                        match self.store.get_storage_profile(name) {
                            Ok(Some(r)) if r.project == project => found.push(r),
                            Ok(Some(_)) => {
                                tracing::warn!("storage profile `{name}` is another project's")
                            }
                            Ok(None) => tracing::warn!("storage profile `{name}` no longer exists"),
                            Err(e) => {
                                tracing::warn!("storage profile `{name}` cannot be read: {e}")
                            }
                        }
                    }
                    found
                };
                for r in &records {
                    match crate::api::open_profile(secrets, r) {
                        Ok(p) => out.push(kiln_api::StorageSettings::from(&p)),
                        Err(e) => tracing::warn!("storage profile `{}` is unusable: {e}", r.name),
                    }
                }
            }
        }
        (out, profile)
    }

    /// Shares the database with other servers: schedule only while holding the lease.
    pub fn with_leadership(mut self, cfg: LeaderConfig) -> Self {
        self.leadership = Some(Leadership::new(cfg));
        self.leading
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Runs `f` whenever this server takes the scheduler lease (`kiln server` brings its copy
    /// of the join token up to date with the database's).
    pub fn on_elected(&mut self, f: OnElected) {
        self.on_elected = Some(f);
    }

    /// Whether this server schedules now, readable from any thread.
    pub fn leading(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.leading)
    }

    /// Whether this server schedules (always, without leadership).
    pub fn is_leader(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.epoch().is_some())
    }

    /// Refuses an operation that needs the scheduler on a standby, naming the leader.
    pub(crate) fn require_leader(&self) -> Result<(), DriverError> {
        if self.is_leader() {
            return Ok(());
        }
        let leader = self
            .store
            .lease()
            .ok()
            .filter(|l| !l.expired && !l.url.is_empty())
            .map_or_else(|| "another server (none leads right now)".into(), |l| l.url);
        Err(DriverError::NotLeader { leader })
    }

    pub fn with_cluster(mut self, cluster: ClusterConfig) -> Self {
        self.cluster = cluster;
        self
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cluster
    }

    /// Holds `kiln.db`, `logs/` and `work/`.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// Where attempts' output is kept, wherever they ran: `logs/JOB/TASK/INDEX.ATTEMPT.stdout`.
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// The name of the built-in executor's node.
    pub fn local_node_name(&self) -> &str {
        &self.local
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    /// Notified whenever work was queued for an agent (lease requests wait on it).
    pub fn lease_notify(&self) -> LeaseNotify {
        Arc::clone(&self.lease_notify)
    }

    pub fn handle(&self) -> Handle {
        Handle {
            tx: self.tx.clone(),
        }
    }

    /// Stores a new job durably and starts it. Returns its id.
    pub fn submit(&mut self, spec: JobSpec) -> Result<JobId, DriverError> {
        self.submit_carrying(spec, &JobCredentials::default())
    }

    /// [`Driver::submit`] of a job carrying `credentials` (see [`Driver::submit_with`]).
    pub fn submit_carrying(
        &mut self,
        spec: JobSpec,
        credentials: &JobCredentials,
    ) -> Result<JobId, DriverError> {
        self.submit_with(spec, credentials, None)?.map_err(|r| {
            DriverError::Store(StoreError::Corrupt {
                what: "idempotency".into(),
                detail: format!("a submit without a key found `{}`", r.key),
            })
        })
    }

    /// [`Driver::submit`] of a job carrying `credentials`: they are sealed into its spec, bound
    /// to its id, in the same transaction. With `once` (a request with an idempotency key),
    /// `once(id)` is the record of its answer, stored in the job's own transaction; if the key
    /// is taken, nothing is created and the stored record comes back instead.
    pub fn submit_with(
        &mut self,
        mut spec: JobSpec,
        credentials: &JobCredentials,
        once: Option<&dyn Fn(&str) -> IdempotencyRecord>,
    ) -> Result<Result<JobId, IdempotencyRecord>, DriverError> {
        let now = now_ms();
        let plain = if credentials.is_empty() {
            None
        } else {
            let Some(key) = self.job_key.clone() else {
                return Err(DriverError::NoKey);
            };
            let plain = serde_json::to_string(credentials).map_err(|e| {
                DriverError::Store(StoreError::Corrupt {
                    what: "credentials".into(),
                    detail: e.to_string(),
                })
            })?;
            Some((key, plain))
        };
        let mut id = new_job_id();
        let mut tries = 0;
        let row = loop {
            if let Some((key, plain)) = &plain {
                spec.sealed_credentials = Some(key.seal(plain, &credentials_aad(&id)));
            }
            let inserted = match once {
                Some(record) => self.store.insert_job_once(&id, &spec, now, &record(&id)),
                None => self.store.insert_job(&id, &spec, now).map(Once::Created),
            };
            match inserted {
                Err(StoreError::Duplicate(_)) if tries < 5 => {
                    tries += 1;
                    id = new_job_id();
                }
                Ok(Once::Taken(record)) => return Ok(Err(record)),
                Ok(Once::Created(row)) => break row,
                Err(e) => return Err(e.into()),
            }
        };
        let id: JobId = Arc::from(id.as_str());
        if self.is_leader() {
            let spec = crate::items::without_item_lists(spec);
            self.engine
                .add_job(id.clone(), Arc::new(spec), row.seq, now);
            self.persist()?;
        }
        // On a standby the job waits in the store, `SUBMITTED`, for the leader to adopt it.
        Ok(Ok(id))
    }

    /// Loads an unfinished job and continues it: attempts that were running when the previous
    /// runner stopped are killed if they survived it, and run again as new attempts.
    pub fn resume(&mut self, id: &str) -> Result<JobId, DriverError> {
        self.restore(id, Restore::Interrupt)
    }

    /// Loads every unfinished job after a server restart. Attempts on agents are kept until
    /// their node reports back (or is lost); attempts of the built-in executor died with the
    /// previous process and run again.
    pub fn restore_unfinished(&mut self) -> Result<Vec<JobId>, DriverError> {
        let rows = self.store.unfinished_jobs()?;
        let mut ids = Vec::new();
        for row in rows {
            ids.push(self.restore(&row.id, Restore::Reattach)?);
        }
        let local = self.local.clone();
        self.engine.node_interrupted(&local, now_ms());
        self.expect_agents();
        if let Some(i) = self.engine.node_index(&local) {
            let mut node = self.engine.nodes()[i].clone();
            node.up = true;
            self.engine.add_node(node);
        }
        self.persist()?;
        Ok(ids)
    }

    fn restore(&mut self, id: &str, mode: Restore) -> Result<JobId, DriverError> {
        let stored = self
            .store
            .load_job(id)?
            .ok_or_else(|| DriverError::UnknownJob(id.to_string()))?;
        if stored.row.state.is_terminal() {
            return Err(DriverError::Finished {
                id: id.to_string(),
                state: stored.row.state,
            });
        }
        let mut leftovers = Vec::new();
        for (t, snap) in stored.tasks.iter().enumerate() {
            for (index, inst, att) in &snap.instances {
                let here = mode == Restore::Interrupt
                    || att.as_ref().is_some_and(|a| a.node == self.local);
                if inst.state.is_active() && here {
                    leftovers.push(LeftoverAttempt {
                        job: id,
                        task: &stored.spec.tasks[t].name,
                        index: *index,
                        attempt: inst.attempt,
                    });
                }
            }
        }
        self.runtime.kill_leftovers(&leftovers);
        if self.runtime.runs_containers() && !leftovers.is_empty() {
            let runtime = Arc::clone(&self.runtime);
            self.rt
                .block_on(async move { runtime.remove_leftover_containers(&leftovers).await });
        }
        let jid: JobId = Arc::from(id);
        let deadline = deadline_of(&stored);
        if let Some(journal) = self.journal.as_mut() {
            journal.seed_job(
                &jid,
                stored.row.state,
                stored.tasks.iter().map(|t| t.state),
                stored.tasks.iter().enumerate().flat_map(|(t, snap)| {
                    snap.instances.iter().filter_map(move |(index, _, att)| {
                        att.as_ref().map(|a| (t, *index, a.attempt, a.state))
                    })
                }),
            );
        }
        self.engine.restore_job(
            jid.clone(),
            stored.spec,
            stored.row.seq,
            deadline,
            stored.tasks,
            now_ms(),
            mode,
        );
        self.persist()?;
        Ok(jid)
    }

    /// Records an operation's event (a terminate, a retry, …) with the next batch.
    pub(crate) fn note(&mut self, kind: kiln_core::journal::EventKind, job: &str) {
        if self.journal.is_some() {
            let mut e = kiln_core::journal::Event::of_job(kind, job, now_ms());
            if let Some(p) = self.engine.job(job).and_then(|r| r.spec.project.clone()) {
                e.project = p;
            }
            self.noted.push(e);
        }
    }

    /// Records that one instance was asked to stop, with the next batch.
    pub(crate) fn note_instance_terminated(&mut self, job: &str, task: &str, index: u32) {
        if self.journal.is_some() {
            let detail = kiln_core::journal::Detail {
                task: Some(task.to_string()),
                index: Some(index),
                ..Default::default()
            };
            self.noted.push(kiln_core::journal::Event::new(
                kiln_core::journal::EventKind::InstanceTerminated,
                now_ms(),
                Some(job),
                detail,
            ));
        }
    }

    /// Forgets what the journal knew of a job gone from the engine.
    pub(crate) fn forget_journaled(&mut self, job: &str) {
        if let Some(journal) = self.journal.as_mut() {
            journal.forget_job(&JobId::from(job));
        }
    }

    /// The engine's changes, with the journal's events of them (and of the operations noted)
    /// after them, to commit in one transaction.
    fn changes_with_events(&mut self) -> Vec<kiln_core::engine::Change> {
        let changes = self.engine.take_changes();
        let Some(journal) = self.journal.as_mut() else {
            return changes;
        };
        let engine = &self.engine;
        let name = |job: &JobId, t: usize| -> Option<String> {
            engine
                .job(job)
                .and_then(|r| r.spec.tasks.get(t))
                .map(|task| task.name.clone())
        };
        let now = now_ms();
        let mut events = journal.events(&changes, now, &name);
        observe_dispatch_latency(&changes, &events, now);
        for e in &mut events {
            if let Some(p) = e
                .job
                .as_deref()
                .and_then(|j| engine.job(j))
                .and_then(|r| r.spec.project.as_deref())
            {
                e.project = p.to_string();
            }
        }
        if events.is_empty() && self.noted.is_empty() {
            return changes;
        }
        let mut all = changes;
        all.reserve(events.len() + self.noted.len());
        all.extend(self.noted.drain(..).map(kiln_core::engine::Change::Event));
        all.extend(events.into_iter().map(kiln_core::engine::Change::Event));
        all
    }

    pub(crate) fn persist(&mut self) -> Result<(), DriverError> {
        let changes = self.changes_with_events();
        if changes.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        match self.leadership.as_ref().map(Leadership::epoch) {
            None => self.store.apply(&changes)?,
            Some(Some(epoch)) => self.store.apply_fenced(&changes, epoch)?,
            // A standby's engine is empty: it has nothing to write.
            Some(None) => return Ok(()),
        }
        metrics::histogram!(crate::metrics::COMMIT_SECONDS).record(started.elapsed());
        for c in &changes {
            if let kiln_core::engine::Change::Event(e) = c {
                metrics::counter!(crate::metrics::EVENTS_TOTAL, "type" => e.kind.as_str())
                    .increment(1);
            }
        }
        Ok(())
    }

    /// Samples the gauges of [`crate::metrics`] (at most every
    /// [`crate::metrics::SAMPLE_EVERY`]): instances by state, the ready backlog per compute
    /// environment, nodes by state.
    fn sample_metrics(&mut self) {
        if self.last_sample.elapsed() < crate::metrics::SAMPLE_EVERY {
            return;
        }
        self.last_sample = Instant::now();
        let mut by_state: BTreeMap<&'static str, u64> =
            State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let mut queued: BTreeMap<String, u64> = BTreeMap::new();
        for run in self.engine.jobs() {
            for (t, view) in run.task_views().into_iter().enumerate() {
                for (state, n) in &view.counts {
                    *by_state.entry(state.as_str()).or_default() += u64::from(*n);
                }
                let env = run.spec.tasks[t]
                    .compute_env
                    .clone()
                    .unwrap_or_else(|| self.local.clone());
                *queued.entry(env).or_default() +=
                    u64::from(view.counts.get(&State::Runnable).copied().unwrap_or(0));
            }
        }
        for (state, n) in by_state {
            metrics::gauge!(crate::metrics::INSTANCES, "state" => state).set(n as f64);
        }
        for env in self.engine.nodes().iter().filter_map(|n| n.pool.clone()) {
            queued.entry(env).or_default();
        }
        for (env, n) in queued {
            metrics::gauge!(crate::metrics::QUEUE_DEPTH, "compute_env" => env).set(n as f64);
        }
        let mut nodes: BTreeMap<String, u64> = ["CREATING", "RUNNING", "ABNORMAL", "DELETING"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        for n in self.node_infos() {
            *nodes.entry(n.state).or_default() += 1;
        }
        for (state, n) in nodes {
            metrics::gauge!(crate::metrics::NODES, "state" => state).set(n as f64);
        }
    }

    /// Deletes a job's records, fenced by this server's term as every other write of the
    /// leader (a deposed leader deletes nothing). `false` if there was no such job.
    pub(crate) fn delete_stored_job(&mut self, id: &str) -> Result<bool, DriverError> {
        Ok(match self.leadership.as_ref().map(Leadership::epoch) {
            None => self.store.delete_job(id)?,
            Some(Some(epoch)) => self.store.delete_job_fenced(id, epoch)?,
            Some(None) => {
                self.require_leader()?;
                false
            }
        })
    }

    /// The leader's part after a tick: takes into the engine the jobs other servers accepted
    /// (`SUBMITTED` in the store), then acts on the commands they stored, both read at once
    /// (`Store::inbox`).
    fn take_inbox(&mut self) -> Result<(), DriverError> {
        let inbox = self.store.inbox(crate::commands::COMMANDS_PER_TICK)?;
        for row in inbox.submitted {
            if self.engine.job(&row.id).is_none() {
                self.restore(&row.id, Restore::Reattach)?;
            }
        }
        self.drain_commands(inbox.commands)
    }

    /// Looks at the lease; on election reloads the unfinished work, on losing it stops.
    fn follow_leadership(&mut self) {
        let Some(l) = self.leadership.as_mut() else {
            return;
        };
        match l.step(&*self.store) {
            None => {}
            Some(leader::Change::Elected(_)) => {
                self.leading
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = self.restore_unfinished() {
                    tracing::error!("cannot reload the unfinished work: {e}; standing by");
                    self.step_down();
                } else if let Some(f) = self.on_elected.as_mut() {
                    f(&*self.store);
                }
            }
            Some(leader::Change::Deposed) => self.step_down(),
        }
    }

    /// Stops scheduling: what runs on the built-in executor is stopped, and every in-memory
    /// trace of the term (jobs, nodes, outboxes) goes; the store keeps the truth for whoever
    /// leads next. Agents keep their attempts and report them to the next leader.
    fn step_down(&mut self) {
        if let Some(l) = self.leadership.as_mut() {
            l.lost();
        }
        self.leading
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.abandon_attempts();
        self.kills.clear();
        let _ = self.engine.take_changes();
        let _ = self.engine.take_effects();
        self.engine = Engine::new(vec![self.local_node.clone()]);
        if let Some(journal) = self.journal.as_mut() {
            journal.clear();
        }
        self.noted.clear();
        self.agents = Agents::default();
        self.finished.clear();
        self.wake_leases();
    }

    /// One tick: wait up to `wait` for messages, take every message already queued, apply
    /// them, let the engine decide, commit the tick's changes, then act on them.
    fn tick(&mut self, wait: Duration) -> Result<(), DriverError> {
        let mut msgs = Vec::new();
        if let Ok(m) = self.rx.recv_timeout(wait) {
            msgs.push(m);
        }
        msgs.extend(self.rx.try_iter());
        let tick_started = Instant::now();
        let now = now_ms();
        for msg in msgs {
            match msg {
                Msg::Report(jid, mut event) => {
                    if let Event::Ended {
                        task,
                        index,
                        attempt,
                        outcome,
                    } = &mut event
                    {
                        self.kills.remove(&(jid.clone(), *task, *index, *attempt));
                        if self.stopping && *outcome != Outcome::Exited(0) {
                            *outcome = Outcome::Lost(LossCause::Interrupted);
                        }
                    }
                    self.engine.apply(&jid, event, now);
                }
                Msg::Call(f) => f(self),
            }
        }
        let dispatches = if self.stopping {
            self.engine.refresh(now);
            Vec::new()
        } else {
            self.engine.schedule(now)
        };
        // Persist, then act. If the store refuses the tick (disk full, I/O error), nothing of
        // it is acted on: stop what runs and give up; every job stays resumable from its last
        // committed tick.
        if let Err(e) = self.persist() {
            self.abandon_attempts();
            return Err(e);
        }
        for effect in self.engine.take_effects() {
            let Effect::Kill {
                job,
                task,
                index,
                attempt,
            } = effect;
            if let Some(k) = self.kills.get(&(job.clone(), task, index, attempt)) {
                k.stop();
            } else if let Some(run) = self.engine.job(&job)
                && let Some(att) = run.active_attempt(task, index)
            {
                let key = kiln_api::AttemptKey {
                    job: job.to_string(),
                    task: run.spec.tasks[task].name.clone(),
                    index,
                    attempt,
                };
                let node = att.node.clone();
                if self.agents.kill(&node, task, key) {
                    // Never handed to the agent: it ends here.
                    let ev = Event::Ended {
                        task,
                        index,
                        attempt,
                        outcome: Outcome::Stopped,
                    };
                    self.engine.apply(&job, ev, now_ms());
                }
            }
        }
        let mut queued = false;
        for d in dispatches {
            let node = self.engine.nodes()[d.node].name.clone();
            if node == self.local {
                self.start(d);
            } else {
                queued |= self.agents.queue(&node, d);
            }
        }
        if queued {
            self.wake_leases();
        }
        self.check_heartbeats();
        self.sample_metrics();
        metrics::histogram!(crate::metrics::TICK_SECONDS).record(tick_started.elapsed());
        Ok(())
    }

    /// Runs until `job` is finished, or until `stop` says to stop (then running attempts are
    /// stopped and recorded as interrupted, and the job stays resumable). `progress` is called
    /// at most every `every` with the job's current view.
    pub fn run(
        &mut self,
        job: &JobId,
        stop: &dyn Fn() -> StopRequest,
        every: Duration,
        progress: &mut dyn FnMut(&JobRun),
    ) -> Result<RunEnd, DriverError> {
        let mut last_progress = Instant::now();
        let mut forced = false;
        loop {
            match stop() {
                StopRequest::None => {}
                StopRequest::Graceful if !self.stopping => self.begin_stop(false),
                StopRequest::Force if !forced => {
                    forced = true;
                    self.begin_stop(true);
                }
                StopRequest::Graceful | StopRequest::Force => {}
            }
            self.tick(Duration::from_millis(50))?;
            let Some(run) = self.engine.job(job) else {
                return Err(DriverError::UnknownJob(job.to_string()));
            };
            if last_progress.elapsed() >= every {
                progress(run);
                last_progress = Instant::now();
            }
            let state = run.state();
            if (state.is_terminal() || self.stopping) && self.kills.is_empty() {
                progress(run);
                return Ok(RunEnd {
                    state,
                    interrupted: !state.is_terminal(),
                });
            }
        }
    }

    /// Drives every job until `stop` asks for a shutdown; then stops the built-in executor's
    /// attempts (they run again after a restart) and returns.
    pub fn serve(&mut self, stop: &dyn Fn() -> StopRequest) -> Result<(), DriverError> {
        let result = self.serve_loop(stop);
        if let Some(l) = self.leadership.as_mut() {
            l.release(&*self.store);
        }
        result
    }

    fn serve_loop(&mut self, stop: &dyn Fn() -> StopRequest) -> Result<(), DriverError> {
        loop {
            match stop() {
                StopRequest::None => {}
                StopRequest::Graceful if !self.stopping => self.begin_stop(false),
                StopRequest::Force => self.begin_stop(true),
                StopRequest::Graceful => {}
            }
            if !self.stopping {
                self.follow_leadership();
            }
            let ticked = self.tick(Duration::from_millis(50)).and_then(|()| {
                if self.leadership.is_some() && self.is_leader() && !self.stopping {
                    self.take_inbox()?;
                }
                Ok(())
            });
            if let Err(e) = ticked {
                if self.leadership.is_none() || self.stopping {
                    return Err(e);
                }
                // Several servers: another may lead on; this one stands by until it can
                // take the lease again.
                tracing::error!("the scheduler stops on this server: {e}");
                self.step_down();
                continue;
            }
            if self.is_leader() && self.last_reconcile.elapsed() >= Duration::from_millis(500) {
                self.last_reconcile = Instant::now();
                self.scale_envs();
                self.reconcile_envs();
                self.forget_finished();
            }
            if self.stopping && self.kills.is_empty() {
                return Ok(());
            }
        }
    }

    /// Drops from the engine the jobs that finished more than [`FORGET_FINISHED_AFTER`] ago,
    /// so that the server's memory follows the work in flight, not its history.
    fn forget_finished(&mut self) {
        let now = Instant::now();
        let done: Vec<JobId> = self
            .engine
            .jobs()
            .iter()
            .filter(|j| j.state().is_terminal())
            .map(|j| j.id.clone())
            .collect();
        let mut still = HashMap::with_capacity(done.len());
        let mut gone = std::collections::HashSet::new();
        for id in done {
            let since = self.finished.get(&id).copied().unwrap_or(now);
            if now.duration_since(since) >= FORGET_FINISHED_AFTER {
                gone.insert(id);
            } else {
                still.insert(id, since);
            }
        }
        if !gone.is_empty() {
            if let Some(journal) = self.journal.as_mut() {
                for id in &gone {
                    journal.forget_job(id);
                }
            }
            self.engine.forget_all(&gone);
        }
        self.finished = still;
    }

    /// Kills every attempt at once and waits (bounded) for them to go, without recording
    /// anything: used when the store cannot be written.
    fn abandon_attempts(&mut self) {
        for k in self.kills.values() {
            k.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.kills.is_empty() && Instant::now() < deadline {
            if let Ok(Msg::Report(
                job,
                Event::Ended {
                    task,
                    index,
                    attempt,
                    ..
                },
            )) = self.rx.recv_timeout(Duration::from_millis(50))
            {
                self.kills.remove(&(job, task, index, attempt));
            }
        }
    }

    fn begin_stop(&mut self, force: bool) {
        self.stopping = true;
        for k in self.kills.values() {
            if force { k.kill() } else { k.stop() }
        }
    }

    /// Starts one dispatched attempt on the runtime.
    fn start(&mut self, d: Dispatch) {
        let task = match self.attempt_task(&d) {
            Ok(task) => task,
            Err(message) => {
                let ev = Event::Ended {
                    task: d.task,
                    index: d.index,
                    attempt: d.attempt,
                    outcome: Outcome::StartFailed {
                        message,
                        resource: false,
                    },
                };
                self.engine.apply(&d.job, ev, now_ms());
                return;
            }
        };
        let Some(run) = self.engine.job(&d.job) else {
            return;
        };
        let task = &task;
        let (storage, storage_profile) = self.attempt_storage_of(&d.job, &run.spec, task, true);
        let spec = AttemptSpec {
            job_id: d.job.to_string(),
            job_name: run.spec.name.clone(),
            task_name: task.name.clone(),
            index: d.index,
            instances: task.instances,
            attempt: d.attempt,
            command: task.command.clone(),
            image: task.image.clone(),
            network: task.network.clone().filter(|n| n != "default"),
            resources: task.resources,
            env: task.env.clone(),
            timeout: task.timeout_ms.map(Duration::from_millis),
            inputs: task.inputs.clone(),
            outputs: task.outputs.clone(),
            stdout: task.stdout.clone(),
            stderr: task.stderr.clone(),
            storage: kiln_agent::attempt_storage(&storage),
            storage_profile,
            registry: self.attempt_registry(&d.job, &run.spec, task),
        };
        let kill = KillSwitch::new();
        self.kills
            .insert((d.job.clone(), d.task, d.index, d.attempt), kill.clone());
        let tx = self.tx.clone();
        let runtime = Arc::clone(&self.runtime);
        let (job, t, index, attempt) = (d.job, d.task, d.index, d.attempt);
        self.rt.spawn(async move {
            let started_tx = tx.clone();
            let started_job = job.clone();
            let outcome = runtime
                .run(&spec, &kill, move |pid| {
                    let _ = started_tx.send(Msg::Report(
                        started_job,
                        Event::Started {
                            task: t,
                            index,
                            attempt,
                            pid,
                        },
                    ));
                })
                .await;
            let _ = tx.send(Msg::Report(
                job,
                Event::Ended {
                    task: t,
                    index,
                    attempt,
                    outcome,
                },
            ));
        });
    }
}

/// What the user asked of a running `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    None,
    /// Stop running attempts (SIGTERM, then SIGKILL after the grace period).
    Graceful,
    /// Stop them now.
    Force,
}

/// Records, for each attempt whose start is journaled in this batch, the time from its
/// dispatch to its start.
fn observe_dispatch_latency(
    changes: &[kiln_core::engine::Change],
    events: &[kiln_core::journal::Event],
    now: u64,
) {
    use kiln_core::journal::EventKind;
    let started: std::collections::HashSet<(&str, u32, u32)> = events
        .iter()
        .filter(|e| e.kind == EventKind::InstanceStarted)
        .filter_map(|e| Some((e.job.as_deref()?, e.detail.index?, e.detail.attempt?)))
        .collect();
    if started.is_empty() {
        return;
    }
    for c in changes {
        if let kiln_core::engine::Change::Attempt {
            job, index, record, ..
        } = c
            && record.state == State::Running
            && started.contains(&(&**job, *index, record.attempt))
        {
            let ms = now.saturating_sub(record.started_at);
            metrics::histogram!(crate::metrics::DISPATCH_SECONDS).record(Duration::from_millis(ms));
        }
    }
}
