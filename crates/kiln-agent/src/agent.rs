//! `kiln agent`: a compute node that registers with a server, leases attempts, runs them on the
//! [`HostRuntime`], and reports how they went.
//!
//! One process, a handful of tokio tasks, none per attempt except the attempt's own future:
//!
//! - **heartbeat**: every `heartbeat_interval_ms`, the set of attempts this node holds; the
//!   answer stops attempts (`kill`), stops leasing (`drain`) or asks for a new registration
//!   (`unknown_node`, answered with the attempts still held, so the server can reconcile).
//! - **lease**: while slots are free and the node is not draining, one long-poll for all free
//!   slots at a time; each assignment runs as a task on the runtime.
//! - **reporter**: `Started` and end events, batched ([`ReportQueue`]) and resent until the
//!   server takes them. After a new registration, events from before it are delivered before the
//!   next lease.
//! - **log shipper**: tails the capture files of running attempts every
//!   [`LOG_TICK`], and once more when an attempt ends (before its end is reported), in
//!   batched `append_logs` requests ([`LogTails`]).
//!
//! An attempt counts as held by the node (in heartbeats and registrations) from its lease until
//! the server has taken its end report, so a report still on its way is never mistaken for a
//! lost attempt.

mod backoff;
mod logs;
mod reports;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kiln_api::{
    AttemptAssignment, AttemptEvent, AttemptEventKind, AttemptKey, Client, ClientError, CommandDto,
    HeartbeatRequest, LeaseRequest, LogAppendRequest, RegisterRequest, RegisterResponse,
    ReportRequest,
};
use kiln_core::model::{Command, Image, InputMapping, OutputMapping, Resources, UploadWhen};
use kiln_storage::{Storage, StorageConfig};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::docker::DockerRuntime;
use crate::host::{AttemptSpec, HostRuntime, KillSwitch};

pub use backoff::{BACKOFF_INITIAL, BACKOFF_MAX, Backoff};
pub use logs::{LOG_CHUNK, LOG_REQUEST_BYTES, LogBatch, LogTails, ShippedTail, chunks};
pub use reports::{REPORT_BATCH, REPORT_LINGER, ReportQueue, is_end, outcome_kind};

/// How often the capture files of running attempts are read.
pub const LOG_TICK: Duration = Duration::from_millis(200);
/// How long a request other than `lease` may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the server's `lease_wait_ms` a lease may take before it counts as failed.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How long an ended attempt waits for its last output to ship before its end is reported
/// anyway (the output keeps shipping afterwards).
pub const FINAL_LOG_WAIT: Duration = Duration::from_secs(10);
/// On the way out, how long undelivered reports are retried once every attempt has ended.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);
/// An agent whose allocation ends (`AgentConfig::end_time`) leaves this long before the end,
/// so that its leaving reaches the server before Slurm kills it.
pub const LEAVE_MARGIN: Duration = Duration::from_secs(10);
/// How long a leaving agent waits for the reports of attempts that ended already.
const LEAVE_FLUSH: Duration = Duration::from_secs(3);
/// At most this many `append_logs` requests per log round.
const LOG_REQUESTS_PER_ROUND: usize = 8;

/// How to run an agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// The server's base URL (`http://host:port` or `https://host:port`).
    pub server: String,
    /// The join token: it registers the node, which then holds a credential of its own (in
    /// memory only) for every other call.
    pub token: String,
    /// The CA certificate file an `https://` server's certificate is checked with; `None`: the
    /// system's trust roots.
    pub ca_file: Option<PathBuf>,
    /// This node's name.
    pub name: String,
    pub compute_env: Option<String>,
    /// How many attempts run at once.
    pub slots: u32,
    pub cpus: f64,
    /// Bytes.
    pub memory: u64,
    /// Attempts' working directories go under `work_dir/work`, captured output under
    /// `work_dir/logs`.
    pub work_dir: PathBuf,
    /// Between SIGTERM and SIGKILL when an attempt is stopped.
    pub kill_grace: Duration,
    /// The heartbeat interval; `None`: the server's.
    pub heartbeat: Option<Duration>,
    /// Run tasks whose image is a Docker image, if a Docker Engine answers on this node.
    pub containers: bool,
    /// When the node's allocation ends (ms since the epoch; a Slurm job's time limit). The
    /// agent takes only attempts whose `timeout` ends [`LEAVE_MARGIN`] before it, and leaves
    /// then: its attempts run again elsewhere (`NODE_LOST`).
    pub end_time: Option<u64>,
    /// Leave (rather than stop and report the attempts) when told to shut down: the node runs
    /// in an allocation that can end at any time (`scancel`, preemption).
    pub leave_on_signal: bool,
}

impl AgentConfig {
    /// When this agent leaves (ms since the epoch), if its allocation ends.
    pub fn leaves_at(&self) -> Option<u64> {
        self.end_time
            .map(|end| end.saturating_sub(LEAVE_MARGIN.as_millis() as u64))
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("name", &self.name)
            .field("compute_env", &self.compute_env)
            .field("slots", &self.slots)
            .field("cpus", &self.cpus)
            .field("memory", &self.memory)
            .field("work_dir", &self.work_dir)
            .field("kill_grace", &self.kill_grace)
            .field("heartbeat", &self.heartbeat)
            .field("containers", &self.containers)
            .field("end_time", &self.end_time)
            .field("leave_on_signal", &self.leave_on_signal)
            .finish()
    }
}

/// Why an agent stopped other than by a clean shutdown or drain.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server answered 401 to the registration: the join token is wrong (or was rotated).
    #[error("the server refused the join token: {0}")]
    Unauthorized(String),
    /// The server answered 401 to a call with this node's credential. The agent does not
    /// register again with the join token on its own: a node that was cut off stays off.
    #[error(
        "the server no longer accepts this node's credential: the node was revoked \
         (`kiln nodes revoke`), another agent registered under its name, or the server lost its \
         records; start the agent again to register with the join token ({0})"
    )]
    Revoked(String),
    /// The server refused the registration for good (a 4xx other than 401/403).
    #[error("the server refused to register this node: {0}")]
    Rejected(String),
    /// The agent stopped before the server took these reports (the server finds the attempts
    /// lost when the node stops answering).
    #[error("{0} attempt report(s) could not be delivered before the agent stopped")]
    Unreported(u64),
}

/// How a failed call is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server could not be reached or had trouble (transport, timeout, 5xx, 408, 429):
    /// try again after a backoff.
    Retry,
    /// 404: the server may have forgotten this node (ask with a heartbeat) or lack the route.
    NotFound,
    /// 401: the token or credential is wrong, or was revoked.
    Unauthorized,
    /// Any other 4xx (403: the request named what is not this node's; or an unusable URL):
    /// sending the same again cannot succeed.
    Rejected,
}

/// Sorts a client error into how it is handled.
pub fn classify(error: &ClientError) -> Failure {
    match error {
        ClientError::Transport(_) | ClientError::Tls(_) | ClientError::Decode(_) => Failure::Retry,
        ClientError::InvalidUrl(_) | ClientError::CaFile(_) => Failure::Rejected,
        ClientError::Http { status, .. } => match status {
            401 => Failure::Unauthorized,
            404 => Failure::NotFound,
            408 | 429 | 500.. => Failure::Retry,
            _ => Failure::Rejected,
        },
    }
}

/// The attempt to run for an assignment.
pub fn attempt_spec(a: AttemptAssignment) -> AttemptSpec {
    let storage = crate::host::attempt_storage(&a.storage);
    AttemptSpec {
        job_id: a.key.job,
        job_name: a.job_name,
        task_name: a.key.task,
        index: a.key.index,
        instances: a.instances,
        attempt: a.key.attempt,
        command: match a.command {
            CommandDto::Shell(script) => Command::Shell(script),
            CommandDto::Argv(argv) => Command::Argv(argv),
        },
        image: match a.image.as_str() {
            "host" => Image::Host,
            image => Image::Docker(image.to_string()),
        },
        network: a.network,
        resources: Resources {
            millicpus: a.millicpus,
            memory: a.memory,
            disk: 0,
        },
        env: a.env,
        timeout: a.timeout_ms.map(Duration::from_millis),
        inputs: a
            .inputs
            .into_iter()
            .map(|m| InputMapping {
                source: m.source,
                target: m.target,
                profile: m.profile,
            })
            .collect(),
        outputs: a
            .outputs
            .into_iter()
            .map(|m| OutputMapping {
                source: m.source,
                target: m.target,
                when: match m.when.as_str() {
                    "failure" => UploadWhen::Failure,
                    "always" => UploadWhen::Always,
                    _ => UploadWhen::Success,
                },
                profile: m.profile,
            })
            .collect(),
        stdout: a.stdout,
        stderr: a.stderr,
        storage,
        storage_profile: a.storage_profile,
        registry: a.registry,
    }
}

/// What the agent knows from its latest registration.
#[derive(Debug, Clone)]
struct Session {
    node_id: String,
    /// Calls with this node's credential.
    client: Client,
    heartbeat: Duration,
    lease_wait: Duration,
    runtime: Arc<HostRuntime>,
    /// Leasing waits until this many reports have been settled (those from before the latest
    /// registration).
    reports_before_lease: u64,
}

enum LogMsg {
    Track {
        key: AttemptKey,
        stdout: PathBuf,
        stderr: PathBuf,
    },
    Finish {
        key: AttemptKey,
        shipped: oneshot::Sender<()>,
    },
}

/// State shared by the agent's tasks.
struct Shared {
    cfg: AgentConfig,
    /// Calls with the join token (registration only).
    join: Client,
    session: watch::Sender<Session>,
    /// Attempts the node holds: `Some` while its process may run, `None` once it ended and its
    /// end report waits for the server.
    held: Mutex<BTreeMap<AttemptKey, Option<KillSwitch>>>,
    /// Attempts held by the node: running, or leased ahead and waiting for a slot. The agent
    /// leases up to twice its slots, so that a freed slot starts the next attempt at once.
    live: watch::Sender<usize>,
    /// One permit per slot: an attempt runs only while it holds one.
    slots: Arc<tokio::sync::Semaphore>,
    storage: Arc<Storage>,
    docker: Option<Arc<DockerRuntime>>,
    draining: watch::Sender<bool>,
    /// Stop leasing and wind down.
    stopping: watch::Sender<bool>,
    reports: mpsc::UnboundedSender<AttemptEvent>,
    /// Reports queued so far, and reports settled (accepted, or refused for good) so far.
    submitted: AtomicU64,
    settled: watch::Sender<u64>,
    logs: mpsc::UnboundedSender<LogMsg>,
    /// Wakes the heartbeat loop early.
    beat_now: Notify,
    fatal: Mutex<Option<AgentError>>,
    fatal_notify: Notify,
    /// The lease loop found the node drained and idle.
    drained: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn node_id(&self) -> String {
        self.session.borrow().node_id.clone()
    }

    /// A client sending this node's credential.
    fn client(&self) -> Client {
        self.session.borrow().client.clone()
    }

    fn held_keys(&self) -> Vec<AttemptKey> {
        lock(&self.held).keys().cloned().collect()
    }

    fn report(&self, key: AttemptKey, kind: AttemptEventKind) {
        self.submitted.fetch_add(1, Ordering::SeqCst);
        if self.reports.send(AttemptEvent { key, kind }).is_err() {
            tracing::error!("the reporter is gone; a report is lost");
        }
    }

    /// The server took (or refused for good) these events.
    fn settled(&self, events: &[AttemptEvent]) {
        {
            let mut held = lock(&self.held);
            for e in events.iter().filter(|e| is_end(&e.kind)) {
                if let Some(None) = held.get(&e.key) {
                    held.remove(&e.key);
                }
            }
        }
        let n = events.len() as u64;
        self.settled.send_modify(|s| *s += n);
    }

    fn unsettled(&self) -> u64 {
        self.submitted
            .load(Ordering::SeqCst)
            .saturating_sub(*self.settled.borrow())
    }

    fn stop_attempt(&self, key: &AttemptKey) {
        if let Some(Some(kill)) = lock(&self.held).get(key) {
            tracing::info!("stopping {key} as the server asks");
            kill.stop();
        }
    }

    fn stop_all(&self) {
        for kill in lock(&self.held).values().flatten() {
            kill.stop();
        }
    }

    fn fail(&self, error: AgentError) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some(error);
        }
        self.fatal_notify.notify_one();
    }
}

/// Runs a compute node until `shutdown` resolves, the server drains it, or the token is refused.
///
/// On shutdown, leasing stops, running attempts are stopped (SIGTERM, SIGKILL after
/// `kill_grace`), their outcomes and output are shipped, and it returns. After a drain it
/// returns once the last attempt has ended and been reported.
pub async fn run_agent(
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    if cfg.slots == 0 {
        return Err(AgentError::Config("slots must be at least 1".into()));
    }
    let join = Client::with_ca_file(&cfg.server, Some(cfg.token.clone()), cfg.ca_file.as_deref())
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let work_root = cfg.work_dir.join("work");
    let log_root = cfg.work_dir.join("logs");
    for dir in [&work_root, &log_root] {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    tokio::pin!(shutdown);

    let docker = if cfg.containers {
        match DockerRuntime::connect().await {
            Ok(d) => Some(Arc::new(d)),
            Err(e) => {
                tracing::warn!("tasks with a Docker image will not run here: {e}");
                None
            }
        }
    } else {
        None
    };
    let (stopping, _) = watch::channel(false);
    let first = tokio::select! {
        r = register(&join, &cfg, docker.is_some(), Vec::new(), &stopping, false) => r?,
        () = &mut shutdown => return Ok(()),
    };
    let Some(first) = first else {
        return Ok(());
    };
    tracing::info!(
        "registered with {} as {} ({} slot(s))",
        join.base_url(),
        first.node_id,
        cfg.slots
    );
    let Some(credential) = first.credential.clone() else {
        return Err(AgentError::Rejected(
            "the server answered the registration without a credential for this node".into(),
        ));
    };
    let client = join.with_token(Some(credential));
    // Credentials and endpoint of remote storage come from the standard AWS variables.
    let storage = Arc::new(Storage::new(StorageConfig::from_env()));
    let runtime = Arc::new(
        HostRuntime::new(work_root, log_root, first.node_id.clone())
            .with_kill_grace(cfg.kill_grace)
            .with_storage(Arc::clone(&storage))
            .with_docker(docker.clone()),
    );
    // A previous process of this agent may have left processes or containers running; the
    // server has already counted their attempts lost (it saw us register with nothing running).
    let groups = runtime.kill_orphans();
    let containers = runtime.remove_orphan_containers().await;
    if groups + containers > 0 {
        tracing::info!(
            "killed {groups} process group(s) and removed {containers} container(s) a previous run of this agent left"
        );
    }
    let session = Session {
        node_id: first.node_id,
        client,
        heartbeat: Duration::from_millis(first.heartbeat_interval_ms.max(1)),
        lease_wait: Duration::from_millis(first.lease_wait_ms),
        runtime,
        reports_before_lease: 0,
    };
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (logs_tx, logs_rx) = mpsc::unbounded_channel();
    let slot_count = cfg.slots as usize;
    let shared = Arc::new(Shared {
        cfg,
        join,
        session: watch::channel(session).0,
        held: Mutex::new(BTreeMap::new()),
        live: watch::channel(0).0,
        slots: Arc::new(tokio::sync::Semaphore::new(slot_count)),
        storage,
        docker,
        draining: watch::channel(false).0,
        stopping,
        reports: reports_tx,
        submitted: AtomicU64::new(0),
        settled: watch::channel(0).0,
        logs: logs_tx,
        beat_now: Notify::new(),
        fatal: Mutex::new(None),
        fatal_notify: Notify::new(),
        drained: Notify::new(),
    });

    let tasks: Vec<JoinHandle<()>> = vec![
        tokio::spawn(reporter(Arc::clone(&shared), reports_rx)),
        tokio::spawn(log_shipper(Arc::clone(&shared), logs_rx)),
        tokio::spawn(heartbeat_loop(Arc::clone(&shared))),
        tokio::spawn(lease_loop(Arc::clone(&shared))),
    ];

    let fatal_now = |shared: &Shared| lock(&shared.fatal).take();
    let leaves_at = shared.cfg.leaves_at();
    let end = async {
        match leaves_at {
            Some(at) => {
                let left = at.saturating_sub(epoch_ms());
                tokio::time::sleep(Duration::from_millis(left)).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let leave_on_signal = shared.cfg.leave_on_signal;
    let leave = tokio::select! {
        () = &mut shutdown => {
            if leave_on_signal {
                tracing::info!("told to stop: leaving");
            } else {
                tracing::info!("shutting down: stopping running attempts");
            }
            leave_on_signal
        }
        () = end => {
            tracing::info!("the allocation ends: leaving");
            true
        }
        () = shared.drained.notified() => {
            tracing::info!("drained: no attempt runs");
            false
        }
        () = shared.fatal_notify.notified() => false,
    };
    if leave {
        return leave_now(&shared, tasks).await;
    }
    shared.stopping.send_replace(true);
    shared.stop_all();

    // Wait for every attempt to end (a refused token ends the wait: nothing can be reported).
    let mut live = shared.live.subscribe();
    let mut result = Ok(());
    if let Some(e) = fatal_now(&shared) {
        result = Err(e);
    } else {
        tokio::select! {
            _ = live.wait_for(|n| *n == 0) => {}
            () = shared.fatal_notify.notified() => {}
        }
        if let Some(e) = fatal_now(&shared) {
            result = Err(e);
        }
    }
    if result.is_ok() {
        // Deliver what is left.
        let target = shared.submitted.load(Ordering::SeqCst);
        let mut settled = shared.settled.subscribe();
        tokio::select! {
            _ = tokio::time::timeout(SHUTDOWN_FLUSH, settled.wait_for(|s| *s >= target)) => {}
            () = shared.fatal_notify.notified() => {}
        }
        if let Some(e) = fatal_now(&shared) {
            result = Err(e);
        } else if shared.unsettled() > 0 {
            result = Err(AgentError::Unreported(shared.unsettled()));
        }
    }
    if result.is_err() {
        // Nothing of ours may outlive the agent.
        for kill in lock(&shared.held).values().flatten() {
            kill.kill();
        }
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, live.wait_for(|n| *n == 0)).await;
    }
    for task in &tasks {
        task.abort();
    }
    result
}

/// Milliseconds since the Unix epoch.
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Leaves the cluster at once: tells the server (which ends the attempts held here `NODE_LOST`,
/// to run again elsewhere), then kills them. Nothing more is reported.
async fn leave_now(shared: &Arc<Shared>, tasks: Vec<JoinHandle<()>>) -> Result<(), AgentError> {
    shared.stopping.send_replace(true);
    // What ended already is reported first, so that it is not handed back as lost.
    let target = shared.submitted.load(Ordering::SeqCst);
    let mut settled = shared.settled.subscribe();
    let _ = tokio::time::timeout(LEAVE_FLUSH, settled.wait_for(|s| *s >= target)).await;
    let held = shared.held_keys();
    let req = HeartbeatRequest {
        node_id: shared.node_id(),
        running: held.clone(),
        leaving: true,
    };
    match timed(Duration::from_secs(5), shared.client().heartbeat(&req)).await {
        Ok(_) => tracing::info!(
            "left the server; {} attempt(s) run again elsewhere",
            held.len()
        ),
        Err(e) => tracing::warn!(
            "could not tell the server that this node leaves ({e}); it finds out when the \
             heartbeats stop"
        ),
    }
    for task in &tasks {
        task.abort();
    }
    for kill in lock(&shared.held).values().flatten() {
        kill.kill();
    }
    let mut live = shared.live.subscribe();
    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, live.wait_for(|n| *n == 0)).await;
    Ok(())
}

/// Registers, retrying transport errors and 5xx forever. `None` when `stopping` was set first.
/// `client` sends the join token, or (`with_credential`) this node's own credential.
async fn register(
    client: &Client,
    cfg: &AgentConfig,
    containers: bool,
    running: Vec<AttemptKey>,
    stopping: &watch::Sender<bool>,
    with_credential: bool,
) -> Result<Option<RegisterResponse>, AgentError> {
    let req = RegisterRequest {
        name: cfg.name.clone(),
        compute_env: cfg.compute_env.clone(),
        slots: cfg.slots,
        cpus: cfg.cpus,
        memory: cfg.memory,
        version: env!("CARGO_PKG_VERSION").to_string(),
        containers,
        running,
        ends_at: cfg.leaves_at(),
    };
    let mut retrier = backoff::Retrier::new("registering with the server");
    let mut stop = stopping.subscribe();
    loop {
        // An agent on its way out (drained, or asked to stop) does not come back as a node.
        if *stop.borrow_and_update() {
            return Ok(None);
        }
        let error = match timed(REQUEST_TIMEOUT, client.register(&req)).await {
            Ok(resp) => {
                retrier.succeeded();
                return Ok(Some(resp));
            }
            Err(e) => e,
        };
        match classify(&error) {
            Failure::Unauthorized if with_credential => {
                return Err(AgentError::Revoked(error.to_string()));
            }
            Failure::Unauthorized => return Err(AgentError::Unauthorized(error.to_string())),
            Failure::Rejected | Failure::NotFound => {
                return Err(AgentError::Rejected(error.to_string()));
            }
            Failure::Retry => {}
        }
        let delay = retrier.failed(&error);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
    }
}

/// A call with a deadline; running out of time is a transport error.
async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Transport(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut retrier = backoff::Retrier::new("heartbeat");
    let mut now = false;
    loop {
        if !now {
            let interval = shared
                .cfg
                .heartbeat
                .unwrap_or_else(|| shared.session.borrow().heartbeat);
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shared.beat_now.notified() => {}
            }
        }
        now = false;
        let req = HeartbeatRequest {
            node_id: shared.node_id(),
            running: shared.held_keys(),
            leaving: false,
        };
        let resp = match timed(REQUEST_TIMEOUT, shared.client().heartbeat(&req)).await {
            Ok(resp) => {
                retrier.succeeded();
                resp
            }
            Err(e) => {
                if classify(&e) == Failure::Unauthorized {
                    if *shared.draining.borrow() && *shared.live.borrow() == 0 {
                        // Drained, and the server has let the node go with its credential.
                        shared.drained.notify_one();
                    } else {
                        shared.fail(AgentError::Revoked(e.to_string()));
                    }
                    return;
                }
                retrier.failed(&e);
                continue;
            }
        };
        if resp.unknown_node && *shared.draining.borrow() && *shared.live.borrow() == 0 {
            // Drained, and the server has let the node go: it does not come back.
            shared.drained.notify_one();
            return;
        }
        if resp.unknown_node {
            tracing::warn!(
                "the server does not know node {}: registering again",
                req.node_id
            );
            if !reregister(&shared).await {
                return;
            }
            // Learn at once what the server wants stopped.
            now = true;
            continue;
        }
        for key in &resp.kill {
            shared.stop_attempt(key);
        }
        let was = shared.draining.send_replace(resp.drain);
        if resp.drain && !was {
            tracing::info!("the server drains this node: no new work is taken");
        } else if !resp.drain && was {
            tracing::info!("the server no longer drains this node");
        }
    }
}

/// Registers again with the attempts held; false when the agent must stop.
async fn reregister(shared: &Arc<Shared>) -> bool {
    let running = shared.held_keys();
    let containers = shared.docker.is_some();
    // With this node's credential, which it keeps: in-flight calls that carry it stay valid.
    match register(
        &shared.client(),
        &shared.cfg,
        containers,
        running,
        &shared.stopping,
        true,
    )
    .await
    {
        Ok(Some(resp)) => {
            // Reports queued before now go out before the next lease.
            let before = shared.submitted.load(Ordering::SeqCst);
            shared.session.send_modify(|s| {
                if s.node_id != resp.node_id {
                    let root = &shared.cfg.work_dir;
                    s.runtime = Arc::new(
                        HostRuntime::new(root.join("work"), root.join("logs"), &resp.node_id)
                            .with_kill_grace(shared.cfg.kill_grace)
                            .with_storage(Arc::clone(&shared.storage))
                            .with_docker(shared.docker.clone()),
                    );
                }
                tracing::info!("registered again as {}", resp.node_id);
                if let Some(credential) = resp.credential {
                    s.client = shared.join.with_token(Some(credential));
                }
                s.node_id = resp.node_id;
                s.heartbeat = Duration::from_millis(resp.heartbeat_interval_ms.max(1));
                s.lease_wait = Duration::from_millis(resp.lease_wait_ms);
                s.reports_before_lease = before;
            });
            true
        }
        Ok(None) => true,
        Err(e) => {
            shared.fail(e);
            false
        }
    }
}

async fn lease_loop(shared: Arc<Shared>) {
    let mut stop = shared.stopping.subscribe();
    let mut draining = shared.draining.subscribe();
    let mut live = shared.live.subscribe();
    let mut settled = shared.settled.subscribe();
    let mut session = shared.session.subscribe();
    // Lease ahead: as many attempts again as there are slots may wait here for one.
    let slots = 2 * shared.cfg.slots as usize;
    let mut retrier = backoff::Retrier::new("leasing work");
    loop {
        // Wait for a free slot (or, drained, for the last attempt to end).
        let free = loop {
            if *stop.borrow_and_update() {
                return;
            }
            let n = *live.borrow_and_update();
            if *draining.borrow_and_update() {
                if n == 0 {
                    shared.drained.notify_one();
                    return;
                }
            } else if n < slots {
                break slots - n;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = draining.changed() => {}
                _ = live.changed() => {}
            }
        };
        // After a new registration, older reports first.
        let before = session.borrow_and_update().reports_before_lease;
        if *settled.borrow_and_update() < before {
            tokio::select! {
                _ = settled.wait_for(|s| *s >= before) => {}
                _ = session.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let (node_id, lease_wait, client) = {
            let s = session.borrow();
            (s.node_id.clone(), s.lease_wait, s.client.clone())
        };
        let req = LeaseRequest {
            node_id,
            max: u32::try_from(free).unwrap_or(u32::MAX),
        };
        let resp = tokio::select! {
            r = timed(lease_wait + LEASE_MARGIN, client.lease(&req)) => r,
            // An answer dropped here is recovered by the server as for a lost connection.
            _ = stop.wait_for(|s| *s) => return,
            // A draining node is given no more work: stop waiting for it.
            _ = draining.wait_for(|d| *d) => continue,
        };
        let resp = match resp {
            Ok(resp) => {
                retrier.succeeded();
                resp
            }
            Err(e) => {
                match classify(&e) {
                    Failure::Unauthorized => {
                        shared.fail(AgentError::Revoked(e.to_string()));
                        return;
                    }
                    Failure::NotFound => shared.beat_now.notify_one(),
                    Failure::Retry | Failure::Rejected => {}
                }
                let delay = retrier.failed(&e);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
        };
        if resp.attempts.len() > free {
            tracing::warn!(
                "the server leased {} attempts for {free} free slot(s); running them all",
                resp.attempts.len()
            );
        }
        for assignment in resp.attempts {
            start(&shared, assignment);
        }
    }
}

/// Starts one leased attempt in its own task.
fn start(shared: &Arc<Shared>, assignment: AttemptAssignment) {
    let key = assignment.key.clone();
    let kill = KillSwitch::new();
    {
        let mut held = lock(&shared.held);
        if held.contains_key(&key) {
            tracing::warn!("{key} was leased again while this node holds it; ignored");
            return;
        }
        held.insert(key.clone(), Some(kill.clone()));
    }
    if *shared.stopping.borrow() {
        // Leased as the agent stops: it is stopped at once and reported `stopped`.
        kill.stop();
    }
    shared.live.send_modify(|n| *n += 1);
    let runtime = Arc::clone(&shared.session.borrow().runtime);
    tokio::spawn(run_attempt(Arc::clone(shared), runtime, assignment, kill));
}

/// Frees the attempt's slot however its task ends.
struct SlotGuard(Arc<Shared>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn run_attempt(
    shared: Arc<Shared>,
    runtime: Arc<HostRuntime>,
    assignment: AttemptAssignment,
    kill: KillSwitch,
) {
    let slot = SlotGuard(Arc::clone(&shared));
    let key = assignment.key.clone();
    let spec = attempt_spec(assignment);
    let paths = runtime.paths(&spec.job_id, &spec.task_name, spec.index, spec.attempt);
    let _ = shared.logs.send(LogMsg::Track {
        key: key.clone(),
        stdout: paths.stdout,
        stderr: paths.stderr,
    });
    // Wait for a slot; an attempt stopped while it waits never runs.
    let permit = tokio::select! {
        p = Arc::clone(&shared.slots).acquire_owned() => p.ok(),
        () = kill.stopped() => None,
    };
    let outcome = match permit {
        Some(_permit) => {
            runtime
                .run(&spec, &kill, |pid| {
                    shared.report(key.clone(), AttemptEventKind::Started { pid });
                })
                .await
        }
        None => kiln_core::state::Outcome::Stopped,
    };
    let (shipped, wait) = oneshot::channel();
    if shared
        .logs
        .send(LogMsg::Finish {
            key: key.clone(),
            shipped,
        })
        .is_ok()
        && tokio::time::timeout(FINAL_LOG_WAIT, wait).await.is_err()
    {
        tracing::warn!("the output of {key} is not shipped yet; reporting its end anyway");
    }
    // In an allocation, a task killed by SIGTERM or SIGKILL (or a shell that exited 143 or 137
    // because its child was) most likely died with the allocation (`scancel`, the time limit:
    // Slurm signals every process of the job): hold its end a moment, and if the agent is leaving meanwhile, the attempt is handed back with the rest
    // (`NODE_LOST`) instead of counting as the task's failure.
    let killed = matches!(
        outcome,
        kiln_core::state::Outcome::Signaled(libc_sig::TERM | libc_sig::KILL)
    ) || matches!(outcome, kiln_core::state::Outcome::Exited(code)
        if code == 128 + libc_sig::TERM || code == 128 + libc_sig::KILL);
    if shared.cfg.leave_on_signal && killed {
        let mut stopping = shared.stopping.subscribe();
        let left = tokio::time::timeout(SIGNAL_HOLD, stopping.wait_for(|s| *s)).await;
        if left.is_ok() {
            return;
        }
    }
    if let Some(entry) = lock(&shared.held).get_mut(&key) {
        *entry = None;
    }
    shared.report(key, outcome_kind(outcome));
    drop(slot);
}

/// The signal numbers an allocation's end sends.
mod libc_sig {
    pub const TERM: i32 = 15;
    pub const KILL: i32 = 9;
}

/// How long the end of an attempt killed by a signal waits for the agent to leave (with
/// `AgentConfig::leave_on_signal`).
const SIGNAL_HOLD: Duration = Duration::from_secs(3);

async fn reporter(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<AttemptEvent>) {
    let mut queue = ReportQueue::default();
    let mut failures = 0u32;
    loop {
        let due = queue.due_at();
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => {
                    queue.push(event, Instant::now());
                    while let Ok(event) = rx.try_recv() {
                        queue.push(event, Instant::now());
                    }
                }
                None => return,
            },
            () = sleep_until(due) => {}
        }
        if !queue.is_due(Instant::now()) {
            continue;
        }
        let req = ReportRequest {
            node_id: shared.node_id(),
            events: queue.take_batch(),
        };
        let error = match timed(REQUEST_TIMEOUT, shared.client().report(&req)).await {
            Ok(resp) => {
                // Work the server handed over with the answer runs like leased work.
                for assignment in resp.attempts {
                    start(&shared, assignment);
                }
                None
            }
            // A 2xx we cannot read was still taken.
            Err(ClientError::Decode(_)) => None,
            Err(e) => Some(e),
        };
        let Some(error) = error else {
            queue.accepted();
            if failures > 0 {
                tracing::info!("reports are delivered again after {failures} failure(s)");
                failures = 0;
            }
            shared.settled(&req.events);
            continue;
        };
        match classify(&error) {
            Failure::Unauthorized => {
                shared.fail(AgentError::Revoked(error.to_string()));
                return;
            }
            Failure::Rejected => {
                tracing::error!(
                    "the server refused {} report(s) for good: {error}; they are dropped",
                    req.events.len()
                );
                queue.accepted();
                shared.settled(&req.events);
                continue;
            }
            Failure::NotFound => shared.beat_now.notify_one(),
            Failure::Retry => {}
        }
        failures += 1;
        let n = req.events.len();
        let delay = queue.failed(req.events, Instant::now());
        if failures == 1 {
            tracing::warn!("sending {n} report(s) failed: {error}; they are kept and resent");
        } else {
            tracing::debug!("sending reports failed again: {error}; next try in {delay:?}");
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn log_shipper(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<LogMsg>) {
    let mut tails = LogTails::new();
    let mut waiting: BTreeMap<AttemptKey, oneshot::Sender<()>> = BTreeMap::new();
    let mut backoff = Backoff::default();
    let mut retry_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(LOG_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A tick ships everything new; an ended attempt ships at once (only the ended ones).
        let mut running_too = false;
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                let mut msg = Some(msg);
                while let Some(m) = msg.take().or_else(|| rx.try_recv().ok()) {
                    match m {
                        LogMsg::Track { key, stdout, stderr } => tails.track(key, stdout, stderr),
                        LogMsg::Finish { key, shipped } => {
                            if tails.finish(&key) {
                                waiting.insert(key, shipped);
                            } else {
                                let _ = shipped.send(());
                            }
                        }
                    }
                }
                if !tails.has_ended() {
                    continue;
                }
            }
            _ = tick.tick() => running_too = true,
            () = sleep_until(retry_at) => {
                retry_at = None;
                running_too = true;
            }
        }
        if tails.is_empty() || retry_at.is_some_and(|at| at > Instant::now()) {
            continue;
        }
        retry_at = None;
        for _ in 0..LOG_REQUESTS_PER_ROUND {
            let mut batch = tails.collect(LOG_REQUEST_BYTES, running_too);
            if batch.is_empty() {
                break;
            }
            let more = batch.more;
            let mut keep_files = false;
            let chunks = batch.take_chunks();
            if !chunks.is_empty() {
                let req = LogAppendRequest {
                    node_id: shared.node_id(),
                    chunks,
                };
                match timed(REQUEST_TIMEOUT, shared.client().append_logs(&req)).await {
                    // A 2xx we cannot read was still taken.
                    Ok(_) | Err(ClientError::Decode(_)) => {
                        if backoff.reset() > 0 {
                            tracing::info!("output is shipped again");
                        }
                    }
                    Err(e) => match classify(&e) {
                        Failure::Unauthorized => {
                            shared.fail(AgentError::Revoked(e.to_string()));
                            return;
                        }
                        Failure::Rejected | Failure::NotFound => {
                            tracing::warn!(
                                "the server refused {} log chunk(s): {e}; they are dropped",
                                req.chunks.len()
                            );
                            keep_files = true;
                        }
                        Failure::Retry => {
                            let delay = backoff.next_delay();
                            if backoff.failures() == 1 {
                                tracing::warn!("shipping output failed: {e}; retrying");
                            }
                            retry_at = Some(Instant::now() + delay);
                            if *shared.stopping.borrow() {
                                // On the way out, do not hold ends back for output.
                                for (_, tx) in std::mem::take(&mut waiting) {
                                    let _ = tx.send(());
                                }
                            }
                            break;
                        }
                    },
                }
            }
            for done in tails.commit(batch) {
                if !keep_files {
                    for file in &done.files {
                        let _ = std::fs::remove_file(file);
                    }
                }
                if let Some(tx) = waiting.remove(&done.key) {
                    let _ = tx.send(());
                }
            }
            if !more {
                break;
            }
        }
    }
}
