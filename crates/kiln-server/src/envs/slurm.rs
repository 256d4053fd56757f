//! The `slurm` provider: the nodes of a `slurm` environment are `kiln agent` processes that run
//! as Slurm jobs ("allocations"), submitted with `sbatch` through Slurm's command-line tools.
//!
//! Each allocation asks for `nodes_per_allocation` nodes with `cpus_per_node` CPUs and
//! `memory_per_node` memory (plus `partition`, `account`, `qos`, `time_limit` and the extra
//! `sbatch_args`) and starts `workers_per_allocation` agents in it (with `srun` when there are
//! several), named `ENV-JOBID-K`, which join the environment like any other agent. An agent
//! knows when its allocation ends (`--end-time`, from `time_limit`): it takes only attempts whose
//! `timeout` ends before then, and leaves just before the end — or when Slurm signals it
//! (`scancel`, preemption) — handing its running attempts back as `NODE_LOST`, so they run again
//! elsewhere without spending `retries`.
//!
//! The reconciler ([`run_slurm_provider`]) runs on a tokio runtime, off the driver thread. Each
//! round it takes a snapshot of the `slurm` environments, their nodes (busy, or idle since when)
//! and their backlog from the driver, reads this server's allocations from `squeue` (jobs named
//! `kiln-SERVERID-ENV`: Slurm is the record of what was submitted, so a restarted server finds
//! its allocations again), asks [`kiln_core::scaling::plan`] what to do, and does it: `sbatch`
//! new allocations, `scancel` queued ones no longer needed, drain idle nodes (their agents exit,
//! and the allocation ends with them). An allocation that ends while its agents are still
//! registered (cancelled, timed out, failed) takes them along at once: their attempts end
//! `NODE_LOST`. A refused `sbatch` is recorded with Slurm's message (the activity, the
//! environment's `status`, `kiln why`) and the environment waits 1 s, 2 s, 4 s … up to a minute
//! before it tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kiln_api::{AllocationInfo, ComputeEnv};
use kiln_core::scaling::{Backlog, Decision, NodeView, PendingView, Policy, Shape, View};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::scaling::{ActState, Activities, Kind, planner_shape, policy_of};
use super::{NodeShape, env_of, invalid};
use crate::driver::{Driver, Handle, now_ms};
use crate::jobs::JobOpError;
use crate::wire::rfc3339;

/// How often the reconciler looks when nothing wakes it.
const PERIOD: Duration = Duration::from_secs(1);
/// A bound on every Slurm command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait before another `sbatch` of an environment whose submissions fail.
const BACKOFF_MAX_MS: u64 = 60_000;

/// How allocations are made.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    /// The kiln binary the allocations run (it must be at this path on the compute nodes).
    pub kiln: PathBuf,
    /// The server's URL as the compute nodes reach it.
    pub server_url: String,
    /// The agent join token file (at this path on the compute nodes).
    pub agent_token_file: PathBuf,
    /// The CA certificate file the agents check an `https://` server's certificate with (at
    /// this path on the compute nodes; their `--ca-file`). `None`: the nodes' trust roots.
    pub ca_file: Option<PathBuf>,
    /// Under which each agent gets its working directory, and each allocation its output
    /// (`slurm-JOBID.out`).
    pub nodes_dir: PathBuf,
    /// This server's id: its allocations are the Slurm jobs named `kiln-ID-ENV`.
    pub server_id: String,
}

/// The Slurm side of `slurm` environments: the configuration, the reconciler's wake-up, and
/// what it last saw (read by the driver for `GET /v1/compute-envs` and `kiln why`).
#[derive(Clone)]
pub struct SlurmNodes {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SlurmConfig,
    wake: Notify,
    seen: Mutex<BTreeMap<String, EnvSeen>>,
}

/// What the reconciler last saw of one environment (its status goes to [`Activities`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSeen {
    pub allocations: Vec<AllocationInfo>,
}

impl std::fmt::Debug for SlurmNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmNodes")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl SlurmNodes {
    pub fn new(cfg: SlurmConfig) -> Self {
        SlurmNodes {
            inner: Arc::new(Inner {
                cfg,
                wake: Notify::new(),
                seen: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn seen_lock(&self) -> MutexGuard<'_, BTreeMap<String, EnvSeen>> {
        self.inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// What the reconciler last saw of `env`.
    pub(crate) fn seen(&self, env: &str) -> EnvSeen {
        self.seen_lock().get(env).cloned().unwrap_or_default()
    }

    /// The Slurm job name of `env`'s allocations.
    fn job_name(&self, env: &str) -> String {
        format!("kiln-{}-{env}", self.inner.cfg.server_id)
    }

    /// What can only be checked with Slurm before a `slurm` environment is accepted: its tools
    /// answer.
    pub async fn check(&self) -> Result<(), JobOpError> {
        run(&["squeue", "--version"], None)
            .await
            .map(drop)
            .map_err(|e| {
                invalid(
                    "provider",
                    format!("the slurm provider needs Slurm's tools on the server's host: {e}"),
                )
            })
    }
}

/// Checks the `slurm` fields (and refuses them elsewhere); returns how many agents one
/// allocation brings.
pub fn check_slurm(e: &ComputeEnv) -> Result<u32, JobOpError> {
    let given = [
        ("partition", e.partition.is_some()),
        ("account", e.account.is_some()),
        ("qos", e.qos.is_some()),
        ("time_limit", e.time_limit.is_some()),
        ("nodes_per_allocation", e.nodes_per_allocation.is_some()),
        ("cpus_per_node", e.cpus_per_node.is_some()),
        ("memory_per_node", e.memory_per_node.is_some()),
        ("sbatch_args", e.sbatch_args.is_some()),
        ("workers_per_allocation", e.workers_per_allocation.is_some()),
    ];
    if e.provider != "slurm" {
        if let Some((field, _)) = given.iter().find(|(_, g)| *g) {
            return Err(invalid(
                field,
                format!("`{field}` is for the slurm provider: its nodes are Slurm jobs"),
            ));
        }
        return Ok(1);
    }
    for (field, given) in [
        ("instance_type", e.instance_type.is_some()),
        ("resources", e.resources.is_some()),
    ] {
        if given {
            return Err(invalid(
                field,
                "a slurm environment's nodes are sized by cpus_per_node and memory_per_node",
            ));
        }
    }
    for (field, v) in [
        ("partition", &e.partition),
        ("account", &e.account),
        ("qos", &e.qos),
    ] {
        if let Some(v) = v
            && (v.is_empty()
                || v.len() > 128
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b',')))
        {
            return Err(invalid(
                field,
                format!("`{v}` is not a Slurm {field} name (letters, digits, _ - . ,)"),
            ));
        }
    }
    if let Some(t) = &e.time_limit {
        let ms = kiln_core::spec::parse_duration(t).map_err(|m| invalid("time_limit", m))?;
        if ms < 60_000 {
            return Err(invalid(
                "time_limit",
                "time_limit must be at least 1m (Slurm counts in minutes)",
            ));
        }
    }
    for (field, v) in [
        ("nodes_per_allocation", e.nodes_per_allocation),
        ("cpus_per_node", e.cpus_per_node),
        ("workers_per_allocation", e.workers_per_allocation),
    ] {
        if v == Some(0) {
            return Err(invalid(field, format!("{field} must be at least 1")));
        }
    }
    if let Some(m) = &e.memory_per_node {
        let bytes =
            kiln_core::spec::parse_size(m).map_err(|msg| invalid("memory_per_node", msg))?;
        if bytes < 1 << 20 {
            return Err(invalid(
                "memory_per_node",
                "memory_per_node must be at least 1MiB",
            ));
        }
    }
    for arg in e.sbatch_args.iter().flatten() {
        if !arg.starts_with('-') {
            return Err(invalid(
                "sbatch_args",
                format!("`{arg}` is not an sbatch option: each argument starts with `-`"),
            ));
        }
        let name = arg.split('=').next().unwrap_or_default();
        if ["--parsable", "--job-name", "-J", "--output", "-o", "--wrap"].contains(&name) {
            return Err(invalid(
                "sbatch_args",
                format!("`{name}` is set by Kiln itself and cannot be given"),
            ));
        }
    }
    let nodes = e.nodes_per_allocation.unwrap_or(1);
    let workers = e.workers_per_allocation.unwrap_or(nodes);
    if workers < nodes {
        return Err(invalid(
            "workers_per_allocation",
            format!(
                "workers_per_allocation ({workers}) must be at least nodes_per_allocation \
                 ({nodes}): each Slurm node runs an agent"
            ),
        ));
    }
    Ok(workers)
}

/// How one allocation of an environment is submitted.
#[derive(Debug, Clone, PartialEq)]
struct AllocSpec {
    nodes: u32,
    workers: u32,
    cpus_per_worker: u32,
    /// Per agent, bytes.
    memory_per_worker: Option<u64>,
    slots: u32,
    memory_per_node: Option<u64>,
    time_limit_s: Option<u64>,
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    extra: Vec<String>,
}

impl AllocSpec {
    fn of(e: &ComputeEnv) -> Result<AllocSpec, JobOpError> {
        let workers = check_slurm(e)?;
        let nodes = e.nodes_per_allocation.unwrap_or(1);
        let cpus = e.cpus_per_node.unwrap_or(1);
        let cpus_per_worker = (cpus * nodes / workers).max(1);
        let memory_per_node = e
            .memory_per_node
            .as_deref()
            .map(kiln_core::spec::parse_size)
            .transpose()
            .map_err(|m| invalid("memory_per_node", m))?;
        let time_limit_s = e
            .time_limit
            .as_deref()
            .map(kiln_core::spec::parse_duration)
            .transpose()
            .map_err(|m| invalid("time_limit", m))?
            .map(|ms| ms / 1000);
        Ok(AllocSpec {
            nodes,
            workers,
            cpus_per_worker,
            memory_per_worker: memory_per_node
                .map(|m| m.saturating_mul(u64::from(nodes)) / u64::from(workers)),
            slots: e.slots.unwrap_or(cpus_per_worker),
            memory_per_node,
            time_limit_s,
            partition: e.partition.clone(),
            account: e.account.clone(),
            qos: e.qos.clone(),
            extra: e.sbatch_args.clone().unwrap_or_default(),
        })
    }

    /// What the scheduler counts of one agent.
    fn shape(&self) -> Shape {
        planner_shape(
            self.slots,
            &NodeShape {
                millicpus: None,
                memory: self.memory_per_worker,
            },
        )
    }

    /// `sbatch`'s arguments (the script comes on its standard input).
    fn sbatch_args(&self, job_name: &str, output: &str) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={job_name}"),
            format!("--output={output}"),
            format!("--nodes={}", self.nodes),
            format!("--ntasks={}", self.workers),
            format!("--cpus-per-task={}", self.cpus_per_worker),
        ];
        if let Some(m) = self.memory_per_node {
            args.push(format!("--mem={}M", m.div_ceil(1 << 20)));
        }
        if let Some(s) = self.time_limit_s {
            args.push(format!(
                "--time={}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            ));
        }
        for (flag, v) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
        ] {
            if let Some(v) = v {
                args.push(format!("--{flag}={v}"));
            }
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// Quotes a word for `/bin/sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script of an allocation of `env`: the agents, each named `ENV-JOBID-K`.
fn batch_script(cfg: &SlurmConfig, env: &str, a: &AllocSpec) -> String {
    let dir = cfg.nodes_dir.display().to_string();
    let node = |k: &str| format!("{env}-$SLURM_JOB_ID-{k}");
    let agent = |k: &str| {
        let mut cmd = format!(
            "exec {} agent --server {} --token-file {} --compute-env {} --name \"{}\" \
             --slots {} --work-dir {}/\"{}\" --leave-on-signal",
            sh_quote(&cfg.kiln.display().to_string()),
            sh_quote(&cfg.server_url),
            sh_quote(&cfg.agent_token_file.display().to_string()),
            sh_quote(env),
            node(k),
            a.slots,
            sh_quote(&dir),
            node(k),
        );
        if let Some(m) = a.memory_per_worker {
            cmd.push_str(&format!(" --memory {m}"));
        }
        if let Some(ca) = &cfg.ca_file {
            cmd.push_str(&format!(
                " --ca-file {}",
                sh_quote(&ca.display().to_string())
            ));
        }
        if a.time_limit_s.is_some() {
            cmd.push_str(" --end-time \"$KILN_END_TIME\"");
        }
        cmd
    };
    let mut s = format!("#!/bin/sh\n# Kiln: an allocation of the compute environment {env}\n");
    if let Some(limit) = a.time_limit_s {
        s.push_str(&format!(
            "KILN_END_TIME=$(( $(date +%s) + {limit} ))\nexport KILN_END_TIME\n"
        ));
    }
    if a.workers == 1 {
        s.push_str(&agent("0"));
    } else {
        s.push_str(&format!(
            "exec srun --kill-on-bad-exit=0 --ntasks={} --cpus-per-task={} sh -c {}",
            a.workers,
            a.cpus_per_worker,
            sh_quote(&agent("$SLURM_PROCID"))
        ));
    }
    s.push('\n');
    s
}

/// Why a Slurm command failed: its own words where it gave any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run {0}: {1}")]
    Spawn(String, String),
    #[error("{0} did not answer within a minute")]
    Timeout(String),
    #[error("{0}")]
    Refused(String),
}

/// Runs a Slurm tool; its standard output, or its error message.
async fn run(argv: &[&str], stdin: Option<&str>) -> Result<String, SlurmError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(SlurmError::Spawn(String::new(), "empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| SlurmError::Spawn(prog.to_string(), e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| SlurmError::Spawn(prog.to_string(), e.to_string()))?;
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| SlurmError::Timeout(prog.to_string()))?
        .map_err(|e| SlurmError::Spawn(prog.to_string(), e.to_string()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(SlurmError::Refused(slurm_message(
        prog,
        &String::from_utf8_lossy(&out.stderr),
    )))
}

/// Slurm's message from a tool's error output: its last `error:` line without the prefix
/// (`Batch job submission failed: Invalid partition name specified`).
fn slurm_message(prog: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("error:"))
        .or(lines.last())
        .map_or_else(|| format!("{prog} failed"), |l| (*l).to_string());
    match last.split_once("error:") {
        Some((_, msg)) => msg.trim().to_string(),
        None => last,
    }
}

/// One line of `squeue --format=%i|%j|%T|%r|%L`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    job_id: String,
    name: String,
    state: String,
    reason: Option<String>,
    /// Time left (ms), once it runs with a limit.
    left_ms: Option<u64>,
}

const SQUEUE_FORMAT: &str = "--format=%i|%j|%T|%r|%L";

fn parse_squeue(out: &str) -> Vec<Queued> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let job_id = f.next()?.trim().to_string();
            let name = f.next()?.trim().to_string();
            let state = f.next()?.trim().to_string();
            let reason = f
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != "None");
            let left_ms = f.next().and_then(parse_time_left);
            (!job_id.is_empty()).then(|| Queued {
                job_id,
                name,
                state,
                reason: reason.map(str::to_string),
                left_ms,
            })
        })
        .collect()
}

/// Slurm's `[DAYS-][HOURS:]MINUTES:SECONDS` (`UNLIMITED`, `NOT_SET`, … → `None`).
fn parse_time_left(s: &str) -> Option<u64> {
    let s = s.trim();
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some((days * 86_400 + secs) * 1000)
}

/// `JobState` and `Reason` of `scontrol show job -o`.
fn parse_scontrol(out: &str) -> (Option<String>, Option<String>) {
    let field = |key: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
            .filter(|v| !v.is_empty() && v != "None")
    };
    (field("JobState="), field("Reason="))
}

/// The allocation's job id from one of its agents' names (`ENV-JOBID-K`).
fn job_of<'a>(env: &str, node: &'a str) -> Option<&'a str> {
    node.strip_prefix(env)?
        .strip_prefix('-')?
        .split_once('-')
        .map(|(job, _)| job)
        .filter(|job| !job.is_empty() && job.bytes().all(|b| b.is_ascii_digit()))
}

// ---- the reconciler ---------------------------------------------------------------------------

/// One `slurm` environment as the driver sees it.
#[derive(Debug, Clone)]
pub(crate) struct EnvSnap {
    spec: Result<AllocSpec, String>,
    policy: Policy,
    nodes: Vec<NodeView>,
    /// Every agent of the environment, whatever its state.
    agents: BTreeSet<String>,
    backlog: Vec<Backlog>,
}

/// What the Slurm reconciler needs from the driver, taken on the driver thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlurmSnapshot {
    envs: BTreeMap<String, EnvSnap>,
}

impl Driver {
    /// What the Slurm reconciler needs, taken on the driver thread; `None` on a server that
    /// stands by (only the leader submits allocations).
    pub(crate) fn slurm_snapshot(
        &mut self,
    ) -> Result<Option<SlurmSnapshot>, kiln_store::StoreError> {
        if !self.is_leader() {
            return Ok(None);
        }
        let now = now_ms();
        let records = self.store().list_compute_envs()?;
        let mut envs = BTreeMap::new();
        for r in records.iter().filter(|r| r.provider == "slurm") {
            let env = env_of(r);
            let spec = AllocSpec::of(&env).map_err(|e| e.to_string());
            let per = spec.as_ref().map_or(1, |s| s.workers);
            let policy = match policy_of(&env, per) {
                Ok(Some(p)) => p,
                Ok(None) => Policy::fixed(r.desired_nodes, per),
                Err(_) => Policy::fixed(0, 1),
            };
            let nodes = self.node_views(&r.name, now);
            let agents = self
                .agents()
                .list()
                .filter(|a| a.compute_env.as_deref() == Some(r.name.as_str()))
                .map(|a| a.name.clone())
                .collect();
            let backlog = self.engine().backlog(&r.name);
            envs.insert(
                r.name.clone(),
                EnvSnap {
                    spec,
                    policy,
                    nodes,
                    agents,
                    backlog,
                },
            );
        }
        Ok(Some(SlurmSnapshot { envs }))
    }
}

/// One allocation the reconciler follows.
#[derive(Debug, Clone)]
struct Alloc {
    env: String,
    workers: u32,
    submitted_at: u64,
    state: String,
    reason: Option<String>,
    left_ms: Option<u64>,
    /// Its agents that have registered so far.
    registered: BTreeSet<String>,
    /// Its creation activity.
    activity: Option<String>,
    /// The reconciler withdrew it, or drained its agents.
    ending: bool,
}

#[derive(Debug, Default)]
struct LoopState {
    allocs: BTreeMap<String, Alloc>,
    /// Environments whose `sbatch` failed: (failures, no new one before).
    backoff: BTreeMap<String, (u32, u64)>,
    /// The last refusal per environment, until a submission succeeds.
    refused: BTreeMap<String, String>,
    /// Environments whose last `squeue` failed (logged once).
    unreachable: bool,
}

/// The reconciler of `slurm` environments. Runs until the driver is gone.
pub async fn run_slurm_provider(handle: Handle, nodes: SlurmNodes, activities: Activities) {
    let mut state = LoopState::default();
    loop {
        tokio::select! {
            () = nodes.inner.wake.notified() => {}
            () = tokio::time::sleep(PERIOD) => {}
        }
        let snap = match handle.call(Driver::slurm_snapshot).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!("slurm compute environments: cannot read the store: {e}");
                continue;
            }
            Err(_) => return,
        };
        if snap.envs.is_empty() && state.allocs.is_empty() {
            continue;
        }
        if nodes
            .reconcile(&handle, &snap, &activities, &mut state)
            .await
            .is_err()
        {
            return;
        }
    }
}

impl SlurmNodes {
    /// One round: look, decide, act. `Err` when the driver is gone.
    async fn reconcile(
        &self,
        handle: &Handle,
        snap: &SlurmSnapshot,
        activities: &Activities,
        state: &mut LoopState,
    ) -> Result<(), crate::driver::DriverGone> {
        let prefix = format!("kiln-{}-", self.inner.cfg.server_id);
        let queue = match run(&["squeue", "--me", "--noheader", SQUEUE_FORMAT], None).await {
            Ok(out) => {
                if state.unreachable {
                    tracing::info!("Slurm answers again");
                    state.unreachable = false;
                }
                parse_squeue(&out)
            }
            Err(e) => {
                if !state.unreachable {
                    tracing::error!("slurm compute environments cannot be served: squeue: {e}");
                    state.unreachable = true;
                }
                for env in snap.envs.keys() {
                    activities.set_status(env, Some(format!("Slurm does not answer: {e}")));
                }
                return Ok(());
            }
        };
        let now = now_ms();
        let mut queued: BTreeMap<String, Queued> = BTreeMap::new();
        for q in queue {
            if let Some(env) = q.name.strip_prefix(&prefix) {
                let env = env.to_string();
                // Found after a restart: follow it again.
                let a = state
                    .allocs
                    .entry(q.job_id.clone())
                    .or_insert_with(|| Alloc {
                        env,
                        workers: snap
                            .envs
                            .get(q.name.strip_prefix(&prefix).unwrap_or_default())
                            .and_then(|e| e.spec.as_ref().ok())
                            .map_or(1, |s| s.workers),
                        submitted_at: now,
                        state: String::new(),
                        reason: None,
                        left_ms: None,
                        registered: BTreeSet::new(),
                        activity: None,
                        ending: false,
                    });
                a.state = q.state.clone();
                a.reason = q.reason.clone();
                a.left_ms = q.left_ms;
                queued.insert(q.job_id.clone(), q);
            }
        }
        // Allocations gone from the queue have ended: read why, and take their agents along.
        let ended: Vec<String> = state
            .allocs
            .keys()
            .filter(|id| !queued.contains_key(*id))
            .cloned()
            .collect();
        for id in ended {
            let Some(a) = state.allocs.remove(&id) else {
                continue;
            };
            let (final_state, reason) =
                match run(&["scontrol", "show", "job", "--oneliner", &id], None).await {
                    Ok(out) => parse_scontrol(&out),
                    Err(_) => (None, None),
                };
            let final_state = final_state.unwrap_or_else(|| "ENDED".into());
            let how = match &reason {
                Some(r) => format!("Slurm job {id} ended {final_state} ({r})"),
                None => format!("Slurm job {id} ended {final_state}"),
            };
            tracing::info!("{}: {how}", a.env);
            let env_agents = snap.envs.get(&a.env).map(|e| &e.agents);
            let left: Vec<String> = env_agents
                .into_iter()
                .flatten()
                .filter(|n| job_of(&a.env, n) == Some(id.as_str()))
                .cloned()
                .collect();
            if let Some(act) = &a.activity {
                let failed = a.registered.is_empty();
                activities.update(&a.env, act, |r| {
                    let (st, why) = if failed {
                        (ActState::Failed, Some(how.clone()))
                    } else {
                        (ActState::Succeed, None)
                    };
                    r.finish(st, why, now);
                });
            }
            if !a.ending && !a.registered.is_empty() {
                activities.record(
                    &a.env,
                    Kind::Terminate,
                    Some(a.registered.iter().cloned().collect::<Vec<_>>().join(",")),
                    how.clone(),
                    now,
                );
            }
            let env = a.env.clone();
            activities.update_all(
                &env,
                |r| {
                    r.kind == Kind::Terminate
                        && r.node.as_deref().and_then(|n| job_of(&env, n)) == Some(id.as_str())
                },
                |r| r.finish(ActState::Succeed, None, now),
            );
            if !left.is_empty() {
                let why = how.clone();
                handle
                    .call(move |d| {
                        for n in &left {
                            d.node_gone(n, &why);
                        }
                    })
                    .await?;
            }
        }
        // Registrations.
        for (id, a) in &mut state.allocs {
            if let Some(e) = snap.envs.get(&a.env) {
                for n in e
                    .agents
                    .iter()
                    .filter(|n| job_of(&a.env, n) == Some(id.as_str()))
                {
                    a.registered.insert(n.clone());
                }
            }
            if a.registered.len() as u32 >= a.workers
                && let Some(act) = &a.activity
            {
                let names = a.registered.iter().cloned().collect::<Vec<_>>().join(",");
                activities.update(&a.env, act, |r| {
                    if r.node.is_none() {
                        r.node = Some(names);
                    }
                    r.finish(ActState::Succeed, None, now);
                });
            }
        }
        // Allocations of deleted environments go.
        let orphans: Vec<String> = state
            .allocs
            .iter()
            .filter(|(_, a)| !snap.envs.contains_key(&a.env) && !a.ending)
            .map(|(id, _)| id.clone())
            .collect();
        for id in orphans {
            tracing::info!("cancelling Slurm job {id}: its compute environment was deleted");
            if let Err(e) = run(&["scancel", &id], None).await {
                tracing::warn!("scancel {id}: {e}");
            }
            if let Some(a) = state.allocs.get_mut(&id) {
                a.ending = true;
            }
        }

        for (env, e) in &snap.envs {
            self.plan_env(handle, env, e, activities, state, now)
                .await?;
        }
        // What people see.
        let mut seen = self.seen_lock();
        seen.retain(|env, _| snap.envs.contains_key(env));
        for env in snap.envs.keys() {
            let mine: Vec<(&String, &Alloc)> =
                state.allocs.iter().filter(|(_, a)| &a.env == env).collect();
            let allocations = mine
                .iter()
                .map(|(id, a)| AllocationInfo {
                    job_id: (*id).clone(),
                    state: a.state.clone(),
                    reason: a.reason.clone(),
                    workers: a.workers,
                    registered: a.registered.len() as u32,
                    submitted_at: rfc3339(a.submitted_at),
                    ends_at: a.left_ms.map(|l| rfc3339(now + l)),
                })
                .collect();
            activities.set_status(env, status_of(state.refused.get(env), &mine));
            seen.insert(env.clone(), EnvSeen { allocations });
        }
        Ok(())
    }

    /// Plans one environment and acts on it.
    async fn plan_env(
        &self,
        handle: &Handle,
        env: &str,
        e: &EnvSnap,
        activities: &Activities,
        state: &mut LoopState,
        now: u64,
    ) -> Result<(), crate::driver::DriverGone> {
        let spec = match &e.spec {
            Ok(s) => s,
            Err(why) => {
                state.refused.insert(env.to_string(), why.clone());
                return Ok(());
            }
        };
        let pending: Vec<PendingView> = state
            .allocs
            .iter()
            .filter(|(_, a)| a.env == env && !a.ending)
            .filter(|(_, a)| (a.registered.len() as u32) < a.workers)
            .map(|(id, a)| PendingView {
                id: id.clone(),
                nodes: a.workers - a.registered.len() as u32,
                queued: a.state == "PENDING",
                since: a.submitted_at,
            })
            .collect();
        let view = View {
            policy: e.policy,
            shape: spec.shape(),
            nodes: &e.nodes,
            pending: &pending,
            backlog: &e.backlog,
            now,
        };
        for d in kiln_core::scaling::plan(&view) {
            match d {
                Decision::Remove { node, cause } => {
                    tracing::info!("{env}: removing idle node {node}: {cause}");
                    if let Some(a) = job_of(env, &node).and_then(|j| state.allocs.get_mut(j)) {
                        a.ending = true;
                    }
                    activities.record(
                        env,
                        Kind::Terminate,
                        Some(node.clone()),
                        cause.to_string(),
                        now,
                    );
                    handle.call(move |d| d.drain_agent(&node)).await?;
                }
                Decision::Withdraw { id, cause } => {
                    tracing::info!("{env}: cancelling queued Slurm job {id}: {cause}");
                    if let Err(err) = run(&["scancel", &id], None).await {
                        tracing::warn!("scancel {id}: {err}");
                        continue;
                    }
                    if let Some(a) = state.allocs.get_mut(&id) {
                        a.ending = true;
                    }
                    let act = activities.record(env, Kind::Terminate, None, cause.to_string(), now);
                    activities.update(env, &act, |r| r.instance = Some(id.clone()));
                }
                Decision::Create { allocations, cause } => {
                    if state
                        .backoff
                        .get(env)
                        .is_some_and(|(_, until)| *until > now)
                    {
                        continue;
                    }
                    for _ in 0..allocations {
                        let act =
                            activities.record(env, Kind::Create, None, cause.to_string(), now);
                        match self.submit(env, spec).await {
                            Ok(id) => {
                                tracing::info!("{env}: submitted Slurm job {id}: {cause}");
                                activities.update(env, &act, |r| r.instance = Some(id.clone()));
                                state.backoff.remove(env);
                                state.refused.remove(env);
                                state.allocs.insert(
                                    id,
                                    Alloc {
                                        env: env.to_string(),
                                        workers: spec.workers,
                                        submitted_at: now,
                                        state: "PENDING".into(),
                                        reason: None,
                                        left_ms: None,
                                        registered: BTreeSet::new(),
                                        activity: Some(act),
                                        ending: false,
                                    },
                                );
                            }
                            Err(err) => {
                                let msg = err.to_string();
                                tracing::error!("{env}: sbatch refused: {msg}");
                                activities.update(env, &act, |r| {
                                    r.finish(ActState::Failed, Some(msg.clone()), now);
                                });
                                state.refused.insert(env.to_string(), msg);
                                let b = state.backoff.entry(env.to_string()).or_insert((0, now));
                                b.0 = b.0.saturating_add(1);
                                b.1 = now
                                    + 1000u64
                                        .saturating_mul(1 << b.0.min(16).saturating_sub(1))
                                        .min(BACKOFF_MAX_MS);
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Submits one allocation of `env`; its Slurm job id.
    async fn submit(&self, env: &str, spec: &AllocSpec) -> Result<String, SlurmError> {
        let cfg = &self.inner.cfg;
        tokio::fs::create_dir_all(&cfg.nodes_dir)
            .await
            .map_err(|e| SlurmError::Spawn("sbatch".into(), e.to_string()))?;
        let output = cfg.nodes_dir.join("slurm-%j.out").display().to_string();
        let args = spec.sbatch_args(&self.job_name(env), &output);
        let mut argv: Vec<&str> = vec!["sbatch"];
        argv.extend(args.iter().map(String::as_str));
        let out = run(&argv, Some(&batch_script(cfg, env, spec))).await?;
        let id = out.trim().split(';').next().unwrap_or_default().trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return Err(SlurmError::Refused(format!(
                "sbatch answered `{}` instead of a job id",
                out.trim()
            )));
        }
        Ok(id.to_string())
    }
}

/// `2 allocations pending in Slurm (job 1234 PENDING: Resources)`, or Slurm's refusal.
fn status_of(refused: Option<&String>, allocs: &[(&String, &Alloc)]) -> Option<String> {
    if let Some(msg) = refused {
        return Some(format!("sbatch refused: {msg}"));
    }
    let waiting: Vec<&(&String, &Alloc)> = allocs
        .iter()
        .filter(|(_, a)| !a.ending && (a.registered.len() as u32) < a.workers)
        .collect();
    let (id, first) = waiting.first()?;
    let n = waiting.len();
    let what = match &first.reason {
        Some(r) => format!("job {id} {}: {r}", first.state),
        None => format!("job {id} {}", first.state),
    };
    Some(format!(
        "{n} allocation{} pending in Slurm ({what})",
        if n == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(v: serde_json::Value) -> ComputeEnv {
        serde_json::from_value(v).unwrap()
    }

    fn cfg() -> SlurmConfig {
        SlurmConfig {
            kiln: "/opt/kiln/bin/kiln".into(),
            server_url: "http://head:7878".into(),
            agent_token_file: "/shared/kiln/agent-token".into(),
            ca_file: None,
            nodes_dir: "/shared/kiln/nodes".into(),
            server_id: "abc".into(),
        }
    }

    #[test]
    fn an_allocation_asks_slurm_for_what_the_environment_says() {
        let e = env(serde_json::json!({
            "name": "hpc", "provider": "slurm", "partition": "batch", "account": "lab",
            "qos": "normal", "time_limit": "1h30m", "nodes_per_allocation": 2,
            "cpus_per_node": 8, "memory_per_node": "16GiB", "workers_per_allocation": 4,
            "sbatch_args": ["--constraint=avx2"]
        }));
        let a = AllocSpec::of(&e).unwrap();
        assert_eq!((a.workers, a.cpus_per_worker, a.slots), (4, 4, 4));
        assert_eq!(a.memory_per_worker, Some(8 << 30));
        assert_eq!(
            a.sbatch_args("kiln-abc-hpc", "/out/slurm-%j.out"),
            [
                "--parsable",
                "--job-name=kiln-abc-hpc",
                "--output=/out/slurm-%j.out",
                "--nodes=2",
                "--ntasks=4",
                "--cpus-per-task=4",
                "--mem=16384M",
                "--time=1:30:00",
                "--partition=batch",
                "--account=lab",
                "--qos=normal",
                "--constraint=avx2",
            ]
        );
        let script = batch_script(&cfg(), "hpc", &a);
        assert!(
            script.contains("KILN_END_TIME=$(( $(date +%s) + 5400 ))"),
            "{script}"
        );
        assert!(
            script.contains("exec srun --kill-on-bad-exit=0 --ntasks=4"),
            "{script}"
        );
        assert!(
            script.contains("hpc-$SLURM_JOB_ID-$SLURM_PROCID"),
            "{script}"
        );
        assert!(!script.contains("agent-token\n"), "{script}");
        let single = AllocSpec::of(&env(
            serde_json::json!({"name": "hpc", "provider": "slurm"}),
        ))
        .unwrap();
        let script = batch_script(&cfg(), "hpc", &single);
        assert!(
            script.contains(
                "exec '/opt/kiln/bin/kiln' agent --server 'http://head:7878' --token-file \
                 '/shared/kiln/agent-token' --compute-env 'hpc' --name \"hpc-$SLURM_JOB_ID-0\""
            ),
            "{script}"
        );
        assert!(
            !script.contains("srun") && !script.contains("--end-time"),
            "{script}"
        );
        assert!(!script.contains("--ca-file"), "{script}");
        let tls = SlurmConfig {
            server_url: "https://head:7443".into(),
            ca_file: Some("/shared/kiln/ca.pem".into()),
            ..cfg()
        };
        let script = batch_script(&tls, "hpc", &single);
        assert!(
            script.contains("--server 'https://head:7443'")
                && script.contains(" --ca-file '/shared/kiln/ca.pem'"),
            "{script}"
        );
    }

    #[test]
    fn slurm_fields_are_checked_by_name() {
        use serde_json::json;
        let refused = |v: serde_json::Value| match check_slurm(&env(v)) {
            Err(JobOpError::Invalid { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        };
        for (v, field) in [
            (
                json!({"name": "l", "provider": "local", "partition": "batch"}),
                "partition",
            ),
            (
                json!({"name": "s", "provider": "slurm", "partition": "a b"}),
                "partition",
            ),
            (
                json!({"name": "s", "provider": "slurm", "time_limit": "30s"}),
                "time_limit",
            ),
            (
                json!({"name": "s", "provider": "slurm", "cpus_per_node": 0}),
                "cpus_per_node",
            ),
            (
                json!({"name": "s", "provider": "slurm", "memory_per_node": "lots"}),
                "memory_per_node",
            ),
            (
                json!({"name": "s", "provider": "slurm", "sbatch_args": ["batch"]}),
                "sbatch_args",
            ),
            (
                json!({"name": "s", "provider": "slurm", "sbatch_args": ["--job-name=x"]}),
                "sbatch_args",
            ),
            (
                json!({"name": "s", "provider": "slurm", "nodes_per_allocation": 2, "workers_per_allocation": 1}),
                "workers_per_allocation",
            ),
            (
                json!({"name": "s", "provider": "slurm", "instance_type": "S1.SMALL1"}),
                "instance_type",
            ),
        ] {
            assert_eq!(refused(v.clone()), field, "{v}");
        }
    }

    #[test]
    fn slurm_s_words_are_read() {
        let q = parse_squeue(
            "12|kiln-abc-hpc|PENDING|Resources|1:00\n13|kiln-abc-hpc|RUNNING|None|1-02:03:04\n\
             14|other|RUNNING|None|UNLIMITED\n",
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].reason.as_deref(), Some("Resources"));
        assert_eq!(q[0].left_ms, Some(60_000));
        assert_eq!(q[1].reason, None);
        assert_eq!(q[1].left_ms, Some((86_400 + 2 * 3600 + 3 * 60 + 4) * 1000));
        assert_eq!(q[2].left_ms, None);
        assert_eq!(
            parse_scontrol("JobId=12 JobName=x JobState=CANCELLED Reason=None Dependency=(null)"),
            (Some("CANCELLED".into()), None)
        );
        assert_eq!(
            slurm_message(
                "sbatch",
                "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job \
                 submission failed: Invalid partition name specified\n"
            ),
            "Batch job submission failed: Invalid partition name specified"
        );
        assert_eq!(job_of("hpc-a", "hpc-a-1234-0"), Some("1234"));
        assert_eq!(job_of("hpc", "hpc-a-1234-0"), None);
    }

    #[test]
    fn the_status_says_what_holds_capacity_back() {
        let a = Alloc {
            env: "hpc".into(),
            workers: 1,
            submitted_at: 0,
            state: "PENDING".into(),
            reason: Some("Resources".into()),
            left_ms: None,
            registered: BTreeSet::new(),
            activity: None,
            ending: false,
        };
        let (i, j) = ("1234".to_string(), "1235".to_string());
        assert_eq!(
            status_of(None, &[(&i, &a), (&j, &a)]).unwrap(),
            "2 allocations pending in Slurm (job 1234 PENDING: Resources)"
        );
        let refused = "Batch job submission failed: Invalid partition name specified".to_string();
        assert_eq!(
            status_of(Some(&refused), &[]).unwrap(),
            "sbatch refused: Batch job submission failed: Invalid partition name specified"
        );
        assert_eq!(status_of(None, &[]), None);
    }
}
