//! The driver's side of the agent protocol: nodes register, heartbeat, lease dispatched
//! attempts in batches and report what happened to them. Every call runs on the driver thread
//! (through [`crate::Handle::call`]), so it sees and changes the engine between ticks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use kiln_api::{
    AttemptAssignment, AttemptEvent, AttemptEventKind, AttemptKey, CommandDto, HeartbeatRequest,
    HeartbeatResponse, InputMappingDto, OutputMappingDto, RegisterRequest, RegisterResponse,
};
use kiln_core::engine::{AttemptRef, Dispatch, Event, Node};
use kiln_core::model::{Command, Image, TaskSpec, UploadWhen};
use kiln_core::state::Outcome;

use crate::driver::{Driver, now_ms};

/// Compute-node states, with Tencent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Known (e.g. from attempts a restarted server found running on it) but not registered.
    Creating,
    Running,
    /// Missed its heartbeats: its attempts were re-queued.
    Abnormal,
    /// Draining before removal.
    Deleting,
}

/// What happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// It registered (again), saying what it still runs.
    Registered,
    /// It was silent for longer than the heartbeat timeout.
    MissedHeartbeats,
    /// It is to take no new work and leave once idle.
    Drain,
}

impl NodeState {
    /// The one transition function of a node's state; total, with no wildcard.
    pub fn on(self, event: NodeEvent) -> NodeState {
        use NodeEvent::{Drain, MissedHeartbeats, Registered};
        use NodeState::{Abnormal, Creating, Deleting, Running};
        match (self, event) {
            (Creating | Running | Abnormal, Registered) => Running,
            // A draining node that reconnects goes on draining.
            (Deleting, Registered) => Deleting,
            (Creating | Running | Abnormal | Deleting, MissedHeartbeats) => Abnormal,
            (Creating | Running | Deleting, Drain) => Deleting,
            // A lost node has nothing to drain; it comes back (if ever) as a new registration.
            (Abnormal, Drain) => Abnormal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Creating => "CREATING",
            NodeState::Running => "RUNNING",
            NodeState::Abnormal => "ABNORMAL",
            NodeState::Deleting => "DELETING",
        }
    }
}

/// One agent as the driver knows it.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub compute_env: Option<String>,
    pub slots: u32,
    pub cpus: f64,
    pub memory: u64,
    pub state: NodeState,
    pub last_seen: u64,
    /// Dispatched attempts waiting for the agent's next lease.
    outbox: VecDeque<Dispatch>,
    /// Attempts the agent must stop, delivered with the next heartbeat.
    kills: Vec<AttemptKey>,
    /// When each attempt handed to the agent was leased; dropped once it is reported ended.
    /// A leased attempt that never shows up in the agent's heartbeats was lost on the way.
    leased: HashMap<AttemptKey, u64>,
}

/// Every agent, by id.
#[derive(Debug, Default)]
pub struct Agents {
    by_id: BTreeMap<String, Agent>,
    /// The digests of nodes' credentials, by node name, as read from the store (or issued
    /// here). Only the leader serves the agent protocol, and every write of a credential
    /// (registration, revocation) runs on it, so this stays the store's until it steps down,
    /// which forgets it with the rest of its term.
    keys: HashMap<String, [u8; 32]>,
}

/// Who calls an agent route with a node credential (`kiln-node:NAME:SECRET`): the node it names
/// and the digest of the whole credential. [`Driver::authenticate`] compares the digest with
/// the one issued to that node.
#[derive(Clone)]
pub struct NodeCaller {
    name: String,
    digest: [u8; 32],
}

impl NodeCaller {
    pub fn new(name: &str, digest: [u8; 32]) -> Self {
        NodeCaller {
            name: name.to_string(),
            digest,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for NodeCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCaller")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The name in the store's secrets of the digest of a node's credential.
pub(crate) fn credential_secret(node: &str) -> String {
    format!("node-credential:{node}")
}

impl Agents {
    pub fn list(&self) -> impl Iterator<Item = &Agent> {
        self.by_id.values()
    }

    fn by_name(&self, name: &str) -> Option<&Agent> {
        self.by_id.values().find(|a| a.name == name)
    }

    fn by_name_mut(&mut self, name: &str) -> Option<&mut Agent> {
        self.by_id.values_mut().find(|a| a.name == name)
    }

    /// Queues a dispatch for the agent called `node`. False if there is no such agent.
    pub(crate) fn queue(&mut self, node: &str, d: Dispatch) -> bool {
        match self.by_name_mut(node) {
            Some(a) => {
                a.outbox.push_back(d);
                true
            }
            None => false,
        }
    }

    /// Queues a kill for the agent called `node` of attempt `key` (of the job's task number
    /// `task`). Returns true when the attempt was still in the outbox: it never reached the
    /// agent, so it is simply dropped (and the caller reports it stopped).
    pub(crate) fn kill(&mut self, node: &str, task: usize, key: AttemptKey) -> bool {
        let Some(a) = self.by_name_mut(node) else {
            return false;
        };
        let before = a.outbox.len();
        a.outbox.retain(|d| {
            !(*d.job == *key.job
                && d.task == task
                && d.index == key.index
                && d.attempt == key.attempt)
        });
        if a.outbox.len() == before {
            a.kills.push(key);
            false
        } else {
            true
        }
    }
}

/// A protocol request the driver cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentCallError {
    #[error("unknown node `{0}`: register first")]
    UnknownNode(String),
    #[error("invalid registration: {0}")]
    Invalid(String),
    /// This server is a standby (the message names the leader), or cannot commit right now:
    /// try another server, or again later.
    #[error("{0}")]
    Unavailable(String),
    /// The node credential is not (or no longer) the one issued to its node (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid, but the request names another node or another node's attempt
    /// (403); nothing was changed.
    #[error("{0}")]
    Forbidden(String),
}

impl From<crate::driver::DriverError> for AgentCallError {
    fn from(e: crate::driver::DriverError) -> Self {
        AgentCallError::Unavailable(e.to_string())
    }
}

impl Driver {
    fn key_to_ref(&self, key: &AttemptKey) -> Option<AttemptRef> {
        let run = self.engine().job(&key.job)?;
        let task = run.spec.task_index(&key.task)?;
        Some((run.id.clone(), task, key.index, key.attempt))
    }

    fn ref_to_key(&self, r: &AttemptRef) -> Option<AttemptKey> {
        let run = self.engine().job(&r.0)?;
        Some(AttemptKey {
            job: r.0.to_string(),
            task: run.spec.tasks.get(r.1)?.name.clone(),
            index: r.2,
            attempt: r.3,
        })
    }

    /// Checks a node credential: it must be the one last issued to its node (compared in
    /// constant time with the digest kept in the store). A revoked credential, or one replaced
    /// by a newer registration of the node, is refused.
    pub fn authenticate(&mut self, caller: &NodeCaller) -> Result<(), AgentCallError> {
        let known = match self.agents.keys.get(&caller.name) {
            Some(d) => Some(*d),
            None => {
                let stored = self
                    .store()
                    .get_secret(&credential_secret(&caller.name))
                    .map_err(|e| AgentCallError::Unavailable(e.to_string()))?
                    .as_deref()
                    .and_then(crate::api::unhex);
                if let Some(d) = stored {
                    self.agents.keys.insert(caller.name.clone(), d);
                }
                stored
            }
        };
        match known {
            Some(d) if crate::api::same(&d, &caller.digest) => Ok(()),
            _ => Err(AgentCallError::Unauthorized(format!(
                "the credential of node `{}` is not valid: the node was revoked, registered \
                 again elsewhere, or is unknown to this database; register with the join token",
                caller.name
            ))),
        }
    }

    /// A valid credential whose node is the one `node_id` names.
    fn authenticate_for(
        &mut self,
        caller: &NodeCaller,
        node_id: &str,
    ) -> Result<(), AgentCallError> {
        self.authenticate(caller)?;
        if node_id == format!("node-{}", caller.name) {
            Ok(())
        } else {
            Err(AgentCallError::Forbidden(format!(
                "the credential is node `{}`'s, not `{node_id}`'s",
                caller.name
            )))
        }
    }

    /// Refuses (403) an attempt that was dispatched to another node than `node`. One the engine
    /// does not hold (finished and forgotten, or never run) is looked up in the store when
    /// `stored` says so; otherwise it passes, since a report about it changes nothing.
    fn check_owner(
        &self,
        node: &str,
        key: &AttemptKey,
        stored: bool,
    ) -> Result<(), AgentCallError> {
        let forbidden = |owner: &str| {
            AgentCallError::Forbidden(format!(
                "attempt {key} was dispatched to node `{owner}`, not to `{node}`; nothing was changed"
            ))
        };
        if let Some(run) = self.engine().job(&key.job)
            && let Some(task) = run.spec.task_index(&key.task)
            && let Some((_, Some(att))) = run.instance_record(task, key.index)
            && att.attempt == key.attempt
        {
            return if att.node == node {
                Ok(())
            } else {
                Err(forbidden(&att.node))
            };
        }
        if !stored {
            return Ok(());
        }
        let unavailable = |e: kiln_store::StoreError| AgentCallError::Unavailable(e.to_string());
        let task = match self.engine().job(&key.job) {
            Some(run) => run.spec.task_index(&key.task),
            None => self
                .store()
                .job_view(&key.job)
                .map_err(unavailable)?
                .and_then(|v| v.spec.task_index(&key.task)),
        };
        let owner = match task {
            Some(t) => self
                .store()
                .attempts(&key.job, t, key.index)
                .map_err(unavailable)?
                .into_iter()
                .find(|a| a.attempt == key.attempt)
                .map(|a| a.node),
            None => None,
        };
        match owner {
            Some(owner) if owner == node => Ok(()),
            Some(owner) => Err(forbidden(&owner)),
            None => Err(AgentCallError::Forbidden(format!(
                "no attempt {key} was dispatched to node `{node}`; nothing was written"
            ))),
        }
    }

    /// Before a node's output is written: its credential, its node, and that every chunk is of
    /// an attempt dispatched to it.
    pub fn check_log_keys(
        &mut self,
        caller: &NodeCaller,
        node_id: &str,
        keys: &[AttemptKey],
    ) -> Result<(), AgentCallError> {
        self.require_leader()?;
        self.authenticate_for(caller, node_id)?;
        let mut seen = std::collections::BTreeSet::new();
        for key in keys {
            if seen.insert(key) {
                self.check_owner(&caller.name, key, true)?;
            }
        }
        Ok(())
    }

    /// A node that left for good needs no credential any more (names of Slurm allocations are
    /// never reused, so theirs would pile up).
    fn forget_credential(&mut self, name: &str) {
        self.agents.keys.remove(name);
        if let Err(e) = self.store().delete_secret(&credential_secret(name)) {
            tracing::warn!("cannot forget the credential of node {name}: {e}");
        }
    }

    /// Cuts a node off (`kiln nodes revoke`): its credential is deleted, so its next call is
    /// refused, and the attempts it held end `NODE_LOST` and run again elsewhere.
    pub fn revoke_node(&mut self, name: &str) -> Result<(), crate::jobs::JobOpError> {
        self.require_leader()?;
        let had_key = self.store().delete_secret(&credential_secret(name))?;
        self.agents.keys.remove(name);
        let known = self.agents.by_name(name).is_some();
        if !had_key && !known {
            return Err(crate::jobs::JobOpError::NotFound(format!(
                "no node `{name}`"
            )));
        }
        tracing::warn!("node {name} was revoked: its credential is no longer accepted");
        self.node_gone(name, "it was revoked");
        self.persist()?;
        self.wake_leases();
        Ok(())
    }

    /// An agent registers (or registers again after a reconnect, with what it still runs):
    /// with the join token (`caller` is `None`) it is issued a new credential, replacing the
    /// one the name had; with its own credential it keeps that one.
    pub fn register_agent(
        &mut self,
        req: RegisterRequest,
        caller: Option<&NodeCaller>,
    ) -> Result<RegisterResponse, AgentCallError> {
        self.require_leader()?;
        if let Some(caller) = caller {
            self.authenticate(caller)?;
            if caller.name != req.name {
                return Err(AgentCallError::Forbidden(format!(
                    "the credential is node `{}`'s; it cannot register `{}`",
                    caller.name, req.name
                )));
            }
        }
        if req.slots == 0 {
            return Err(AgentCallError::Invalid("slots must be at least 1".into()));
        }
        if req.name.is_empty() || req.name == self.local_node_name() {
            return Err(AgentCallError::Invalid(format!(
                "the node name `{}` is reserved or empty",
                req.name
            )));
        }
        let now = now_ms();
        let id = match self.agents.by_name(&req.name) {
            Some(a) => a.id.clone(),
            None => format!("node-{}", req.name),
        };
        let node = Node::new(
            req.name.clone(),
            u64::from(req.slots) * 1000,
            req.memory.max(1),
        )
        .in_pool(req.compute_env.clone())
        // As many again may wait on the agent, so that a freed slot starts new work at once
        // instead of after a round trip to the server.
        .with_prefetch(req.slots)
        .with_containers(req.containers)
        .with_end(req.ends_at);
        self.engine_mut().add_node(node);
        let running: Vec<AttemptRef> = req
            .running
            .iter()
            .filter_map(|k| self.key_to_ref(k))
            .collect();
        let unknown: Vec<AttemptKey> = req
            .running
            .iter()
            .filter(|k| self.key_to_ref(k).is_none())
            .cloned()
            .collect();
        let stale = self.engine_mut().reconcile_node(&req.name, &running, now);
        let mut kills: Vec<AttemptKey> = stale.iter().filter_map(|r| self.ref_to_key(r)).collect();
        kills.extend(unknown);
        let previous = self.agents.by_id.remove(&id);
        // Kills decided while the node was away (a terminate right after a failover, before
        // the agent was back) still go to it.
        if let Some(p) = &previous {
            for k in &p.kills {
                if !kills.contains(k) {
                    kills.push(k.clone());
                }
            }
        }
        let state = previous
            .as_ref()
            .map_or(NodeState::Creating, |p| p.state)
            .on(NodeEvent::Registered);
        if state == NodeState::Deleting {
            self.engine_mut().set_draining(&req.name, true);
        }
        if previous.is_none()
            && let Some(env) = &req.compute_env
        {
            self.providers
                .scaling
                .activities
                .node_joined(env, &req.name, now);
        }
        let outbox = previous.map(|p| p.outbox).unwrap_or_default();
        // A registration with the join token gets a credential of its own, durable before it
        // is answered so that every server of the database takes it.
        let credential = match caller {
            Some(_) => None,
            None => {
                let secret = crate::api::new_secret().map_err(|e| {
                    AgentCallError::Unavailable(format!("cannot draw a credential: {e}"))
                })?;
                let credential =
                    format!("{}{}:{secret}", kiln_api::NODE_CREDENTIAL_PREFIX, req.name);
                let d = crate::api::digest(&credential);
                self.store()
                    .put_secret(&credential_secret(&req.name), &crate::api::hex(&d))
                    .map_err(|e| AgentCallError::Unavailable(e.to_string()))?;
                self.agents.keys.insert(req.name.clone(), d);
                Some(credential)
            }
        };
        self.agents.by_id.insert(
            id.clone(),
            Agent {
                id: id.clone(),
                name: req.name,
                compute_env: req.compute_env,
                slots: req.slots,
                cpus: req.cpus,
                memory: req.memory,
                state,
                last_seen: now,
                outbox,
                kills,
                leased: HashMap::new(),
            },
        );
        self.save_node(&id);
        // What the reconciliation decided is durable before the agent hears of it.
        self.persist()?;
        self.wake_leases();
        Ok(RegisterResponse {
            node_id: id,
            heartbeat_interval_ms: self.config().heartbeat_interval.as_millis() as u64,
            lease_wait_ms: self.config().lease_wait.as_millis() as u64,
            credential,
        })
    }

    /// A heartbeat: the agent is alive and runs these attempts.
    pub fn heartbeat(
        &mut self,
        caller: &NodeCaller,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, AgentCallError> {
        self.require_leader()?;
        self.authenticate_for(caller, &req.node_id)?;
        Ok(self.heartbeat_leading(req))
    }

    fn heartbeat_leading(&mut self, req: &HeartbeatRequest) -> HeartbeatResponse {
        let now = now_ms();
        let Some(agent) = self.agents.by_id.get_mut(&req.node_id) else {
            return HeartbeatResponse {
                kill: Vec::new(),
                drain: false,
                unknown_node: true,
            };
        };
        if agent.state == NodeState::Abnormal || agent.state == NodeState::Creating {
            // It was declared lost meanwhile: it must register again so that what it still
            // runs is reconciled.
            return HeartbeatResponse {
                kill: Vec::new(),
                drain: false,
                unknown_node: true,
            };
        }
        agent.last_seen = now;
        if req.leaving {
            let name = agent.name.clone();
            self.node_gone(&name, "its agent left");
            self.forget_credential(&name);
            return HeartbeatResponse {
                kill: Vec::new(),
                drain: true,
                unknown_node: false,
            };
        }
        let drain = agent.state == NodeState::Deleting;
        let kill = std::mem::take(&mut agent.kills);
        if drain && kill.is_empty() {
            let name = agent.name.clone();
            if self.engine().active_on(&name).is_empty() {
                // Drained: it leaves now (the agent exits on `drain` with nothing running).
                self.agents.by_id.remove(&req.node_id);
                self.engine_mut().node_lost(&name, now);
                if let Err(e) = self.store().delete_node(&name) {
                    tracing::warn!("cannot forget node {name}: {e}");
                }
                self.forget_credential(&name);
                return HeartbeatResponse {
                    kill,
                    drain,
                    unknown_node: false,
                };
            }
        }
        // Attempts leased to the agent that it does not run although it has had two heartbeat
        // intervals to start them: the lease answer was lost (or the attempt ended unreported).
        let grace = 2 * self.cluster_heartbeat_ms();
        let agent = self.agents.by_id.get_mut(&req.node_id);
        let missing: Vec<AttemptKey> = agent
            .map(|a| {
                let gone: Vec<AttemptKey> = a
                    .leased
                    .iter()
                    .filter(|(k, at)| !req.running.contains(k) && now.saturating_sub(**at) > grace)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &gone {
                    a.leased.remove(k);
                }
                // What it runs is accounted for: restart the clock of those still leased.
                for k in &req.running {
                    if let Some(at) = a.leased.get_mut(k) {
                        *at = now;
                    }
                }
                gone
            })
            .unwrap_or_default();
        for key in missing {
            if let Some((job, task, index, attempt)) = self.key_to_ref(&key) {
                tracing::warn!("node {} does not run {key}: re-queued", req.node_id);
                let ev = Event::Ended {
                    task,
                    index,
                    attempt,
                    outcome: Outcome::Lost(kiln_core::state::LossCause::NodeLost),
                };
                self.engine_mut().apply(&job, ev, now);
            }
        }
        HeartbeatResponse {
            kill,
            drain,
            unknown_node: false,
        }
    }

    /// Hands an agent up to `max` of the attempts dispatched to it. Empty when there are none
    /// yet (the HTTP layer long-polls by waiting for [`Driver::lease_notify`] and asking again).
    pub fn lease(
        &mut self,
        caller: &NodeCaller,
        node_id: &str,
        max: u32,
    ) -> Result<Vec<AttemptAssignment>, AgentCallError> {
        self.require_leader()?;
        self.authenticate_for(caller, node_id)?;
        let now = now_ms();
        let agent = self
            .agents
            .by_id
            .get_mut(node_id)
            .filter(|a| a.state == NodeState::Running || a.state == NodeState::Deleting)
            .ok_or_else(|| AgentCallError::UnknownNode(node_id.to_string()))?;
        agent.last_seen = now;
        let n = (max as usize).min(agent.outbox.len());
        let taken: Vec<Dispatch> = agent.outbox.drain(..n).collect();
        let mut out: Vec<AttemptAssignment> = Vec::with_capacity(taken.len());
        for d in &taken {
            match self.attempt_task(d) {
                Ok(task) => out.extend(self.assignment(d, &task)),
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
                    self.engine_mut().apply(&d.job, ev, now);
                }
            }
        }
        if let Some(agent) = self.agents.by_id.get_mut(node_id) {
            for a in &out {
                agent.leased.insert(a.key.clone(), now);
            }
        }
        Ok(out)
    }

    /// What an agent needs to run the dispatched attempt of `task` (as [`Driver::attempt_task`]
    /// made it).
    fn assignment(&self, d: &Dispatch, task: &TaskSpec) -> Option<AttemptAssignment> {
        let run = self.engine().job(&d.job)?;
        let (storage, storage_profile) = self.attempt_storage_of(&d.job, &run.spec, task, false);
        Some(AttemptAssignment {
            key: AttemptKey {
                job: d.job.to_string(),
                task: task.name.clone(),
                index: d.index,
                attempt: d.attempt,
            },
            job_name: run.spec.name.clone(),
            instances: task.instances,
            command: match &task.command {
                Command::Shell(s) => CommandDto::Shell(s.clone()),
                Command::Argv(a) => CommandDto::Argv(a.clone()),
            },
            image: match &task.image {
                Image::Host => "host".into(),
                Image::Docker(image) => image.clone(),
            },
            network: task.network.clone().filter(|n| n != "default"),
            millicpus: task.resources.millicpus,
            memory: task.resources.memory,
            env: task.env.clone(),
            timeout_ms: task.timeout_ms,
            inputs: task
                .inputs
                .iter()
                .map(|m| InputMappingDto {
                    source: m.source.clone(),
                    target: m.target.clone(),
                    profile: m.profile.clone(),
                })
                .collect(),
            outputs: task
                .outputs
                .iter()
                .map(|m| OutputMappingDto {
                    source: m.source.clone(),
                    target: m.target.clone(),
                    when: match m.when {
                        UploadWhen::Success => "success",
                        UploadWhen::Failure => "failure",
                        UploadWhen::Always => "always",
                    }
                    .into(),
                    profile: m.profile.clone(),
                })
                .collect(),
            stdout: task.stdout.clone(),
            stderr: task.stderr.clone(),
            storage,
            storage_profile,
            registry: self.attempt_registry(&d.job, &run.spec, task),
        })
    }

    /// Reports from an agent. Returns how many were taken (duplicates and stale attempts are
    /// taken too, and change nothing).
    pub fn agent_report(
        &mut self,
        caller: &NodeCaller,
        node_id: &str,
        events: Vec<AttemptEvent>,
    ) -> Result<u32, AgentCallError> {
        self.require_leader()?;
        self.authenticate_for(caller, node_id)?;
        // All or nothing: one event about another node's attempt refuses the whole report.
        for ev in &events {
            self.check_owner(&caller.name, &ev.key, false)?;
        }
        let now = now_ms();
        let agent = self
            .agents
            .by_id
            .get_mut(node_id)
            .ok_or_else(|| AgentCallError::UnknownNode(node_id.to_string()))?;
        agent.last_seen = now;
        let mut taken = 0;
        for ev in events {
            taken += 1;
            if !matches!(ev.kind, AttemptEventKind::Started { .. })
                && let Some(a) = self.agents.by_id.get_mut(node_id)
            {
                a.leased.remove(&ev.key);
            }
            let Some((job, task, index, attempt)) = self.key_to_ref(&ev.key) else {
                continue;
            };
            let event = match ev.kind {
                AttemptEventKind::Started { pid } => Event::Started {
                    task,
                    index,
                    attempt,
                    pid,
                },
                other => Event::Ended {
                    task,
                    index,
                    attempt,
                    outcome: outcome_of(other),
                },
            };
            self.engine_mut().apply(&job, event, now);
        }
        // Taken means recorded: a report the agent hears was accepted survives any server.
        self.persist()?;
        Ok(taken)
    }

    /// Declares lost every agent whose last sign of life is older than the heartbeat timeout:
    /// its attempts are re-queued (`NODE_LOST`). Called every tick.
    pub(crate) fn check_heartbeats(&mut self) {
        let now = now_ms();
        let timeout = self.config().heartbeat_timeout.as_millis() as u64;
        let lost: Vec<String> = self
            .agents
            .by_id
            .values()
            .filter(|a| {
                matches!(
                    a.state,
                    NodeState::Running | NodeState::Deleting | NodeState::Creating
                ) && now.saturating_sub(a.last_seen) > timeout
            })
            .map(|a| a.name.clone())
            .collect();
        for name in lost {
            tracing::warn!("node {name} missed its heartbeats: its attempts are re-queued");
            self.engine_mut().node_lost(&name, now);
            if let Some(a) = self.agents.by_name_mut(&name) {
                a.state = a.state.on(NodeEvent::MissedHeartbeats);
                a.outbox.clear();
                a.kills.clear();
                let id = a.id.clone();
                self.save_node(&id);
            }
        }
    }

    /// After a server restart: every node that had attempts running is known but not yet
    /// registered; it gets one heartbeat timeout to come back before its attempts re-run.
    pub(crate) fn expect_agents(&mut self) {
        let now = now_ms();
        let local = self.local_node_name().to_string();
        let names: Vec<String> = self
            .engine()
            .nodes()
            .iter()
            .filter(|n| n.name != local)
            .map(|n| n.name.clone())
            .collect();
        let stored = self.store().list_nodes().unwrap_or_default();
        let mut expected: Vec<(String, Option<String>)> =
            names.into_iter().map(|n| (n, None)).collect();
        for n in stored {
            if n.state != NodeState::Abnormal.as_str() {
                expected.retain(|(name, _)| *name != n.name);
                expected.push((n.name, n.compute_env));
            }
        }
        for (name, compute_env) in expected {
            let id = format!("node-{name}");
            self.agents.by_id.entry(id.clone()).or_insert(Agent {
                id,
                name,
                compute_env,
                slots: 0,
                cpus: 0.0,
                memory: 0,
                state: NodeState::Creating,
                last_seen: now,
                outbox: VecDeque::new(),
                kills: Vec::new(),
                leased: HashMap::new(),
            });
        }
    }

    /// Writes an agent's record to the store (so a restarted server knows whom to expect).
    fn save_node(&mut self, id: &str) {
        let Some(a) = self.agents.by_id.get(id) else {
            return;
        };
        let record = kiln_store::NodeRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            state: a.state.as_str().to_string(),
            compute_env: a.compute_env.clone(),
            slots: a.slots,
            millicpus: (a.cpus * 1000.0) as u64,
            memory: a.memory,
            last_seen: a.last_seen,
            created_at: a.last_seen,
        };
        if let Err(e) = self.store().upsert_node(&record) {
            tracing::warn!("cannot record node {}: {e}", record.name);
        }
    }

    /// A node is gone for good (its agent left, its Slurm allocation ended): the attempts it
    /// held end `NODE_LOST` and run again elsewhere, and it is forgotten.
    pub fn node_gone(&mut self, name: &str, why: &str) {
        let Some(id) = self.agents.by_name(name).map(|a| a.id.clone()) else {
            return;
        };
        let lost = self.engine().active_on(name).len();
        if lost > 0 {
            tracing::warn!("node {name} is gone ({why}): its {lost} attempt(s) run again");
        } else {
            tracing::info!("node {name} is gone ({why})");
        }
        self.engine_mut().node_lost(name, now_ms());
        self.agents.by_id.remove(&id);
        if let Err(e) = self.store().delete_node(name) {
            tracing::warn!("cannot forget node {name}: {e}");
        }
    }

    /// Marks a node for removal: it takes no new work, finishes what runs, then is told to
    /// stop (`drain`).
    pub fn drain_agent(&mut self, name: &str) -> bool {
        let Some(a) = self.agents.by_name_mut(name) else {
            return false;
        };
        a.state = a.state.on(NodeEvent::Drain);
        let draining = a.state == NodeState::Deleting;
        let id = a.id.clone();
        self.save_node(&id);
        draining && self.engine_mut().set_draining(name, true)
    }

    fn cluster_heartbeat_ms(&self) -> u64 {
        self.config().heartbeat_interval.as_millis() as u64
    }

    /// Wakes every lease request waiting for work.
    pub(crate) fn wake_leases(&self) {
        self.lease_notify().notify_waiters();
    }
}

fn outcome_of(kind: AttemptEventKind) -> Outcome {
    match kind {
        AttemptEventKind::Started { .. } => Outcome::Exited(0),
        AttemptEventKind::Exited { code } => Outcome::Exited(code),
        AttemptEventKind::Signaled { signal } => Outcome::Signaled(signal),
        AttemptEventKind::TimedOut => Outcome::TimedOut,
        AttemptEventKind::Stopped => Outcome::Stopped,
        AttemptEventKind::StartFailed { message, resource } => {
            Outcome::StartFailed { message, resource }
        }
        AttemptEventKind::InputMappingFailed { message } => Outcome::InputFailed(message),
        AttemptEventKind::OutputMappingFailed { code, message } => Outcome::OutputFailed {
            exit_code: code,
            message,
        },
        AttemptEventKind::OutOfMemory { code } => Outcome::OutOfMemory { exit_code: code },
        AttemptEventKind::ImageNotFound { image } => Outcome::ImageNotFound(image),
        AttemptEventKind::ImagePullFailed { message } => Outcome::ImagePullFailed(message),
    }
}

/// Shared between the driver and the HTTP layer: notified whenever new work was queued for
/// some agent.
pub type LeaseNotify = Arc<tokio::sync::Notify>;

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch(task: usize, index: u32) -> Dispatch {
        Dispatch {
            job: Arc::from("job-1"),
            task,
            index,
            attempt: 1,
            node: 1,
        }
    }

    fn agents_with_outbox(outbox: Vec<Dispatch>) -> Agents {
        let mut agents = Agents::default();
        agents.by_id.insert(
            "node-a".into(),
            Agent {
                id: "node-a".into(),
                name: "a".into(),
                compute_env: None,
                slots: 4,
                cpus: 4.0,
                memory: 1 << 30,
                state: NodeState::Running,
                last_seen: 0,
                outbox: outbox.into(),
                kills: Vec::new(),
                leased: HashMap::new(),
            },
        );
        agents
    }

    fn key(task: &str, index: u32) -> AttemptKey {
        AttemptKey {
            job: "job-1".into(),
            task: task.into(),
            index,
            attempt: 1,
        }
    }

    #[test]
    fn node_states_follow_one_transition_function() {
        use NodeEvent::{Drain, MissedHeartbeats, Registered};
        use NodeState::{Abnormal, Creating, Deleting, Running};
        for (from, event, to) in [
            (Creating, Registered, Running),
            (Abnormal, Registered, Running),
            (Running, Registered, Running),
            (Deleting, Registered, Deleting),
            (Running, MissedHeartbeats, Abnormal),
            (Deleting, MissedHeartbeats, Abnormal),
            (Creating, MissedHeartbeats, Abnormal),
            (Running, Drain, Deleting),
            (Abnormal, Drain, Abnormal),
        ] {
            assert_eq!(from.on(event), to, "{from:?} on {event:?}");
        }
    }

    /// Killing instance 0 of one task drops that task's queued dispatch only, never the
    /// queued dispatch of instance 0 of another task of the same job on the same node (which
    /// would then stay STARTING for ever).
    #[test]
    fn a_kill_drops_only_the_queued_dispatch_of_its_own_task() {
        let mut agents = agents_with_outbox(vec![dispatch(0, 0), dispatch(1, 0)]);
        assert!(agents.kill("a", 1, key("second", 0)));
        let a = agents
            .by_name("a")
            .map(|a| a.outbox.clone())
            .unwrap_or_default();
        assert_eq!(a, [dispatch(0, 0)]);
        assert!(agents.by_name("a").is_some_and(|a| a.kills.is_empty()));
        // Not queued any more: the kill goes to the agent.
        assert!(!agents.kill("a", 1, key("second", 0)));
        assert!(
            agents
                .by_name("a")
                .is_some_and(|a| a.kills == [key("second", 0)])
        );
        assert!(!agents.kill("nobody", 0, key("first", 0)));
    }
}
