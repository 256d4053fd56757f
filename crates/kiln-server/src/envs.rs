//! Compute environments: named pools of nodes with a desired size.
//!
//! Providers: `local` — the server starts `kiln agent` processes on its own host to match the
//! desired count, and drains the surplus; `docker` — the server runs node containers on the
//! Docker Engine (see [`docker`]); `slurm` — the server submits agents as Slurm jobs (see
//! [`slurm`]); `static` — operators start agents with `--compute-env NAME`, and Kiln shows
//! desired against actual. Scaling down drains a node (no new work, running instances finish)
//! before it leaves. An environment with `max_nodes` scales with its backlog instead of a fixed
//! `desired_nodes` (see [`scaling`]).

mod docker;
mod scaling;
mod slurm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kiln_api::{ActivityList, ComputeEnv, ComputeEnvDetail, NodeRef};
use kiln_core::model::Catalog;
use kiln_store::ComputeEnvRecord;

pub use docker::{
    DockerConfig, DockerError, DockerNodes, LABEL_ENV, LABEL_NODE, LABEL_SERVER, MANAGED_LABEL,
    ROLE_LABEL, host_ca_bundle, host_docker_socket, node_url, run_docker_provider, server_id,
};
pub use scaling::{Activities, policy_of};
pub use slurm::{SlurmConfig, SlurmNodes, check_slurm, run_slurm_provider};

use crate::cluster::NodeState;
use crate::driver::{Driver, now_ms};
use crate::jobs::JobOpError;

/// How the server starts agents of `local` environments.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The `kiln` binary to run (`kiln agent …`).
    pub kiln: PathBuf,
    /// The server's URL as seen from this host.
    pub server_url: String,
    /// The agent join token file.
    pub agent_token_file: PathBuf,
    /// The CA certificate file the agents check an `https://` server's certificate with
    /// (their `--ca-file`). `None`: the system's trust roots.
    pub ca_file: Option<PathBuf>,
    /// Under which each started node gets a working directory (and its log, `agent.log`).
    pub nodes_dir: PathBuf,
}

/// Agents the server started, by node name; the Docker Engine's node containers.
#[derive(Debug, Default)]
pub struct Providers {
    pub(crate) config: Option<ProviderConfig>,
    children: BTreeMap<String, Child>,
    /// Runs the node containers of `docker` environments (absent in `kiln run`).
    docker: Option<DockerNodes>,
    /// Submits the allocations of `slurm` environments (absent in `kiln run`).
    slurm: Option<SlurmNodes>,
    /// Idle clocks and activities of backlog scaling.
    pub(crate) scaling: scaling::Scaling,
}

/// What every node of an environment has (from its `instance_type` or `resources`); `None`
/// where the environment does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeShape {
    /// CPUs in thousandths.
    pub millicpus: Option<u64>,
    /// Bytes of memory.
    pub memory: Option<u64>,
}

impl NodeShape {
    /// The slots of a node that does not set them: one per whole CPU, at least one.
    pub fn default_slots(&self) -> u32 {
        self.millicpus
            .map_or(1, |m| u32::try_from(m / 1000).unwrap_or(u32::MAX).max(1))
    }
}

/// The smallest memory a node container may be given.
const MIN_NODE_MEMORY: u64 = 32 << 20;

/// Why an environment request was refused.
fn invalid(field: &str, message: impl Into<String>) -> JobOpError {
    JobOpError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 60
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The most nodes an environment may ask for.
pub const MAX_DESIRED_NODES: u32 = 1000;

/// Checks a compute environment's fields before anything is stored or started, and returns the
/// shape of its nodes. Every refusal names its field.
pub fn check_env(e: &ComputeEnv, catalog: &Catalog) -> Result<NodeShape, JobOpError> {
    if !valid_name(&e.name) {
        return Err(invalid(
            "name",
            format!("invalid name `{}`: 1-60 of A-Z a-z 0-9 . _ -", e.name),
        ));
    }
    let docker = match e.provider.as_str() {
        "local" | "static" | "slurm" => false,
        "docker" => true,
        other => {
            return Err(invalid(
                "provider",
                format!("unknown provider `{other}`: expected local, docker, slurm or static"),
            ));
        }
    };
    if e.slots == Some(0) {
        return Err(invalid("slots", "slots must be at least 1"));
    }
    if e.desired_nodes > MAX_DESIRED_NODES {
        return Err(invalid(
            "desired_nodes",
            format!("desired_nodes must be at most {MAX_DESIRED_NODES}"),
        ));
    }
    let per_allocation = check_slurm(e)?;
    policy_of(e, per_allocation)?;
    let shape = node_shape(e, catalog)?;
    if !docker {
        for (field, given) in [
            ("image", e.image.is_some()),
            ("network", e.network.is_some()),
        ] {
            if given {
                return Err(invalid(
                    field,
                    format!("`{field}` is for the docker provider: its nodes are containers"),
                ));
            }
        }
        return Ok(shape);
    }
    match e.image.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(invalid(
                "image",
                "a docker compute environment needs `image`: the image its node containers \
                 run (it must be able to run the server's kiln binary)",
            ));
        }
        Some(image) if !valid_image(image) => {
            return Err(invalid(
                "image",
                format!("`{image}` is not a Docker image reference"),
            ));
        }
        Some(_) => {}
    }
    if let Some(network) = &e.network
        && !valid_network(network)
    {
        return Err(invalid(
            "network",
            format!(
                "`{network}` cannot be a node network: a Docker network name \
                 ([A-Za-z0-9][A-Za-z0-9_.-]*, not `none`) or `default`"
            ),
        ));
    }
    if let Some(memory) = shape.memory
        && memory < MIN_NODE_MEMORY
    {
        return Err(invalid(
            "resources",
            "a node container needs at least 32MiB of memory",
        ));
    }
    Ok(shape)
}

/// The node shape from `instance_type` (the catalog) or `resources` (`{cpus, memory}`).
fn node_shape(e: &ComputeEnv, catalog: &Catalog) -> Result<NodeShape, JobOpError> {
    match (&e.instance_type, &e.resources) {
        (Some(_), Some(_)) => Err(invalid(
            "resources",
            "give `instance_type` or `resources`, not both",
        )),
        (Some(name), None) => {
            let t = catalog.get(name).ok_or_else(|| {
                let known: Vec<&str> = catalog.names().collect();
                invalid(
                    "instance_type",
                    format!(
                        "unknown instance type `{name}`: known are {}",
                        known.join(", ")
                    ),
                )
            })?;
            Ok(NodeShape {
                millicpus: Some(u64::from(t.millicpus)),
                memory: Some(t.memory),
            })
        }
        (None, Some(r)) => resources_shape(r),
        (None, None) => Ok(NodeShape::default()),
    }
}

/// `{cpus: 2, memory: 4GiB}` (both optional; `disk` is accepted and not enforced).
fn resources_shape(r: &serde_json::Value) -> Result<NodeShape, JobOpError> {
    let Some(obj) = r.as_object() else {
        return Err(invalid(
            "resources",
            "resources must be a mapping like {cpus: 2, memory: 4GiB}",
        ));
    };
    let mut shape = NodeShape::default();
    for (key, v) in obj {
        match key.as_str() {
            "cpus" => {
                let cpus = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|c| c.is_finite() && *c > 0.0 && *c <= 4096.0)
                    .ok_or_else(|| invalid("resources.cpus", "cpus must be a positive number"))?;
                shape.millicpus = Some((cpus * 1000.0).round() as u64);
            }
            "memory" | "disk" => {
                let bytes = match v {
                    serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| {
                        invalid(&format!("resources.{key}"), "expected a size such as 4GiB")
                    })?,
                    serde_json::Value::String(s) => kiln_core::spec::parse_size(s)
                        .map_err(|m| invalid(&format!("resources.{key}"), m))?,
                    _ => {
                        return Err(invalid(
                            &format!("resources.{key}"),
                            "expected a size such as 4GiB",
                        ));
                    }
                };
                if key == "memory" {
                    shape.memory = Some(bytes);
                }
            }
            other => {
                return Err(invalid(
                    &format!("resources.{other}"),
                    format!("unknown field `{other}`: expected cpus, memory or disk"),
                ));
            }
        }
    }
    Ok(shape)
}

/// A plausible image reference: `name[:tag][@digest]`, with a registry host if any.
fn valid_image(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '.', '/', ':'])
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_uppercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
}

/// A Docker network a node container can join: `default` (Docker's default bridge) or a
/// network name; `none` would leave it unable to reach the server.
fn valid_network(s: &str) -> bool {
    s != "none"
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The parts of [`ComputeEnv`] kept as JSON beside the record: every field but those the
/// record has columns for.
fn config_json(e: &ComputeEnv) -> String {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        for column in [
            "name",
            "description",
            "provider",
            "desired_nodes",
            "projects",
        ] {
            obj.remove(column);
        }
    }
    v.to_string()
}

fn env_of(r: &ComputeEnvRecord) -> ComputeEnv {
    let mut cfg: serde_json::Value = serde_json::from_str(&r.config_json).unwrap_or_default();
    if let Some(obj) = cfg.as_object_mut() {
        obj.insert("name".into(), r.name.clone().into());
        obj.insert("provider".into(), r.provider.clone().into());
    }
    let env: ComputeEnv = serde_json::from_value(cfg).unwrap_or_default();
    ComputeEnv {
        name: r.name.clone(),
        description: r.description.clone(),
        provider: r.provider.clone(),
        desired_nodes: r.desired_nodes,
        projects: Some(r.projects.clone()),
        ..env
    }
}

impl Driver {
    /// Where `local` environments' agents are started from; without it they cannot be.
    pub fn set_provider(&mut self, cfg: ProviderConfig) {
        self.providers.config = Some(cfg);
    }

    /// Lets this driver accept `docker` environments, whose node containers `nodes` runs
    /// (with [`run_docker_provider`] on a runtime, off the driver thread).
    pub fn set_docker(&mut self, nodes: DockerNodes) {
        self.providers.docker = Some(nodes);
    }

    /// Lets this driver accept `slurm` environments, whose allocations `nodes` submits (with
    /// [`run_slurm_provider`] on a runtime, off the driver thread).
    pub fn set_slurm(&mut self, nodes: SlurmNodes) {
        self.providers.slurm = Some(nodes);
    }

    /// The Slurm side of `slurm` environments, if this driver has one.
    pub fn slurm_nodes(&self) -> Option<SlurmNodes> {
        self.providers.slurm.clone()
    }

    /// The activities of every environment (shared with the provider loops).
    pub fn activities(&self) -> Activities {
        self.providers.scaling.activities.clone()
    }

    /// The Docker side of `docker` environments, if this driver has one.
    pub fn docker_nodes(&self) -> Option<DockerNodes> {
        self.providers.docker.clone()
    }

    /// Asks the docker and slurm providers to reconcile now rather than at their next period.
    fn wake_docker(&self) {
        if let Some(d) = &self.providers.docker {
            d.wake();
        }
        if let Some(s) = &self.providers.slurm {
            s.wake();
        }
    }

    fn env_detail(&self, r: &ComputeEnvRecord) -> ComputeEnvDetail {
        let nodes = self
            .agents()
            .list()
            .filter(|a| a.compute_env.as_deref() == Some(r.name.as_str()))
            .map(|a| NodeRef {
                id: a.id.clone(),
                name: a.name.clone(),
                state: a.state.as_str().to_string(),
                error: None,
            })
            .collect::<Vec<_>>();
        let health = self.providers.scaling.activities.health(&r.name);
        let mut nodes = nodes;
        for (name, error) in &health.failed_nodes {
            if !nodes.iter().any(|n| &n.name == name) {
                nodes.push(NodeRef {
                    id: String::new(),
                    name: name.clone(),
                    state: "CREATION_FAILED".into(),
                    error: Some(error.clone()),
                });
            }
        }
        let state = kiln_core::scaling::env_state(
            nodes.iter().map(|n| n.state.as_str()),
            health.creation_failing(),
        )
        .to_string();
        let seen = self
            .providers
            .slurm
            .as_ref()
            .filter(|_| r.provider == "slurm")
            .map(|s| s.seen(&r.name))
            .unwrap_or_default();
        ComputeEnvDetail {
            env: env_of(r),
            nodes,
            status: self.providers.scaling.activities.status(&r.name),
            state,
            last_error: health
                .last_error
                .map(|(message, at)| kiln_api::rest::ProviderError {
                    message,
                    at: crate::wire::rfc3339(at),
                }),
            creation_failures: health.creation_failures,
            allocations: seen.allocations,
            activities: self.providers.scaling.activities.page(&r.name, 0, 20).1,
        }
    }

    /// `GET /v1/compute-envs/{name}/activities`: newest first.
    pub fn env_activities(
        &mut self,
        name: &str,
        offset: u32,
        limit: u32,
    ) -> Result<ActivityList, JobOpError> {
        if self.store().get_compute_env(name)?.is_none() {
            return Err(JobOpError::NotFound(format!(
                "no compute environment `{name}`"
            )));
        }
        let (total, items) =
            self.providers
                .scaling
                .activities
                .page(name, offset as usize, limit as usize);
        Ok(ActivityList {
            total_count: u32::try_from(total).unwrap_or(u32::MAX),
            items,
        })
    }

    /// `POST /v1/compute-envs`.
    pub fn create_env(&mut self, e: ComputeEnv) -> Result<ComputeEnvDetail, JobOpError> {
        check_env(&e, &self.catalog)?;
        if e.provider == "docker" {
            let nodes = self.providers.docker.as_ref().ok_or_else(|| {
                invalid(
                    "provider",
                    "this server does not run docker compute environments",
                )
            })?;
            if let Err(why) = nodes.server_url() {
                return Err(invalid("provider", why));
            }
        }
        if e.provider == "slurm" && self.providers.slurm.is_none() {
            return Err(invalid(
                "provider",
                "this server does not run slurm compute environments",
            ));
        }
        if self.store().get_compute_env(&e.name)?.is_some() {
            return Err(JobOpError::Conflict(format!(
                "compute environment `{}` exists already",
                e.name
            )));
        }
        let now = now_ms();
        let record = ComputeEnvRecord {
            name: e.name.clone(),
            description: e.description.clone(),
            provider: e.provider.clone(),
            desired_nodes: e.desired_nodes,
            config_json: config_json(&e),
            created_at: now,
            updated_at: now,
            projects: e
                .projects
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| vec![kiln_store::DEFAULT_PROJECT.to_string()]),
        };
        // The check above is for the common case; this insert-if-absent decides a race with
        // another server creating the same name.
        if !self.store().create_compute_env(&record)? {
            return Err(JobOpError::Conflict(format!(
                "compute environment `{}` exists already",
                e.name
            )));
        }
        self.reconcile_envs();
        self.wake_docker();
        Ok(self.env_detail(&record))
    }

    pub fn list_envs(&mut self) -> Result<Vec<ComputeEnvDetail>, JobOpError> {
        let records = self.store().list_compute_envs()?;
        Ok(records.iter().map(|r| self.env_detail(r)).collect())
    }

    pub fn get_env(&mut self, name: &str) -> Result<ComputeEnvDetail, JobOpError> {
        let r = self
            .store()
            .get_compute_env(name)?
            .ok_or_else(|| JobOpError::NotFound(format!("no compute environment `{name}`")))?;
        Ok(self.env_detail(&r))
    }

    /// `POST /v1/compute-envs/{name}/scale`.
    pub fn scale_env(&mut self, name: &str, desired: u32) -> Result<ComputeEnvDetail, JobOpError> {
        if let Some(r) = self.store().get_compute_env(name)?
            && env_of(&r).max_nodes.is_some()
        {
            return Err(JobOpError::Conflict(format!(
                "`{name}` scales with its backlog (min_nodes/max_nodes): it has no desired size; \
                 change min_nodes/max_nodes instead"
            )));
        }
        if !self.store().set_desired_nodes(name, desired)? {
            return Err(JobOpError::NotFound(format!(
                "no compute environment `{name}`"
            )));
        }
        self.reconcile_envs();
        self.wake_docker();
        self.get_env(name)
    }

    /// `DELETE /v1/compute-envs/{name}`: its nodes are drained and leave; the record goes now.
    pub fn delete_env(&mut self, name: &str) -> Result<(), JobOpError> {
        // Its nodes are drained by the leader, which knows them.
        self.require_leader()?;
        if !self.store().set_desired_nodes(name, 0)? {
            return Err(JobOpError::NotFound(format!(
                "no compute environment `{name}`"
            )));
        }
        let members: Vec<String> = self.env_members(name);
        for m in members {
            self.drain_agent(&m);
        }
        self.store().delete_compute_env(name)?;
        self.providers.scaling.activities.forget(name);
        self.wake_docker();
        Ok(())
    }

    /// Live members of an environment: registered (or expected back) and not draining.
    pub(crate) fn env_members(&self, env: &str) -> Vec<String> {
        self.agents()
            .list()
            .filter(|a| a.compute_env.as_deref() == Some(env))
            .filter(|a| matches!(a.state, NodeState::Running | NodeState::Creating))
            .map(|a| a.name.clone())
            .collect()
    }

    /// Brings every `local` environment to its desired size: starts agents for the missing
    /// nodes, drains the surplus (highest-numbered first). Also reaps agents that exited.
    pub(crate) fn reconcile_envs(&mut self) {
        // A standby starts no agents: the leader sizes every environment.
        if !self.is_leader() {
            return;
        }
        let exited: Vec<String> = self
            .providers
            .children
            .iter_mut()
            .filter_map(|(name, child)| match child.try_wait() {
                Ok(Some(_)) | Err(_) => Some(name.clone()),
                Ok(None) => None,
            })
            .collect();
        for name in exited {
            self.providers.children.remove(&name);
        }
        let Ok(envs) = self.store().list_compute_envs() else {
            return;
        };
        for env in envs.iter().filter(|e| e.provider == "local") {
            let mut members = self.env_members(&env.name);
            // Started but not registered yet.
            for name in self.providers.children.keys() {
                if name.starts_with(&format!("{}-", env.name)) && !members.contains(name) {
                    let draining = self
                        .agents()
                        .list()
                        .any(|a| &a.name == name && a.state == NodeState::Deleting);
                    if !draining {
                        members.push(name.clone());
                    }
                }
            }
            let desired = self.env_target(env) as usize;
            if members.len() > desired {
                members.sort_by_key(|m| node_number(m, &env.name));
                for m in members.split_off(desired) {
                    self.drain_agent(&m);
                    if let Some(mut child) = self
                        .providers
                        .children
                        .remove(&m)
                        .filter(|_| !self.agents().list().any(|a| a.name == m))
                    {
                        // Never registered: nothing to drain, just stop it.
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            }
            let mut n = 1;
            while members.len() < desired {
                let name = format!("{}-{n}", env.name);
                n += 1;
                let taken = members.contains(&name)
                    || self.agents().list().any(|a| a.name == name)
                    || self.providers.children.contains_key(&name);
                if taken {
                    continue;
                }
                let slots = env_of(env).slots.unwrap_or(1);
                match self.spawn_agent(&name, &env.name, slots) {
                    Ok(child) => {
                        self.providers.children.insert(name.clone(), child);
                        members.push(name);
                    }
                    Err(e) => {
                        tracing::error!("cannot start node {name} of {}: {e}", env.name);
                        break;
                    }
                }
            }
        }
    }

    fn spawn_agent(&self, name: &str, env: &str, slots: u32) -> std::io::Result<Child> {
        let Some(cfg) = &self.providers.config else {
            return Err(std::io::Error::other(
                "this server cannot start local agents (no provider configuration)",
            ));
        };
        let dir = cfg.nodes_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let mut cmd = Command::new(&cfg.kiln);
        cmd.arg("agent")
            .arg("--server")
            .arg(&cfg.server_url)
            .arg("--token-file")
            .arg(&cfg.agent_token_file)
            .args(["--name", name, "--compute-env", env])
            .args(["--slots", &slots.to_string()])
            .arg("--work-dir")
            .arg(&dir);
        if let Some(ca) = &cfg.ca_file {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
    }
}

/// `pool-3` → 3 (names not of that form sort last).
pub(crate) fn node_number(name: &str, env: &str) -> u64 {
    name.strip_prefix(env)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(v: serde_json::Value) -> ComputeEnv {
        serde_json::from_value(v).unwrap()
    }

    fn refused_field(v: serde_json::Value) -> String {
        match check_env(&env(v), &Catalog::builtin()) {
            Err(JobOpError::Invalid { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn docker_environments_need_an_image_and_a_joinable_network() {
        assert_eq!(
            refused_field(serde_json::json!({"name": "d", "provider": "docker"})),
            "image"
        );
        assert_eq!(
            refused_field(serde_json::json!({"name": "d", "provider": "docker", "image": " "})),
            "image"
        );
        assert_eq!(
            refused_field(serde_json::json!({"name": "d", "provider": "docker", "image": "a b"})),
            "image"
        );
        for network in ["none", "-x", "a b"] {
            let v = serde_json::json!({
                "name": "d", "provider": "docker", "image": "busybox", "network": network
            });
            assert_eq!(refused_field(v), "network", "{network}");
        }
        let ok = env(serde_json::json!({
            "name": "d", "provider": "docker", "image": "registry.lan:5000/team/img:1",
            "network": "default"
        }));
        assert_eq!(
            check_env(&ok, &Catalog::builtin()).unwrap(),
            NodeShape::default()
        );
    }

    #[test]
    fn images_and_networks_are_only_for_docker() {
        for field in ["image", "network"] {
            let v = serde_json::json!({"name": "l", "provider": "local", field: "x"});
            assert_eq!(refused_field(v), field);
        }
        assert_eq!(
            refused_field(serde_json::json!({"name": "l", "provider": "kubernetes"})),
            "provider"
        );
    }

    #[test]
    fn node_shapes_come_from_the_catalog_or_resources() {
        let shape = |v| check_env(&env(v), &Catalog::builtin()).unwrap();
        let s = shape(serde_json::json!({
            "name": "d", "provider": "docker", "image": "i", "instance_type": "S1.MEDIUM4"
        }));
        assert_eq!(s.millicpus, Some(2000));
        assert_eq!(s.memory, Some(4 << 30));
        assert_eq!(s.default_slots(), 2);
        let s = shape(serde_json::json!({
            "name": "d", "provider": "docker", "image": "i",
            "resources": {"cpus": 0.5, "memory": "512MiB", "disk": "10GiB"}
        }));
        assert_eq!(s.millicpus, Some(500));
        assert_eq!(s.memory, Some(512 << 20));
        assert_eq!(s.default_slots(), 1);
        assert_eq!(
            refused_field(serde_json::json!({
                "name": "d", "provider": "docker", "image": "i",
                "instance_type": "S1.SMALL1", "resources": {"cpus": 1}
            })),
            "resources"
        );
        assert_eq!(
            refused_field(serde_json::json!({
                "name": "d", "provider": "docker", "image": "i", "instance_type": "S9"
            })),
            "instance_type"
        );
        assert_eq!(
            refused_field(serde_json::json!({
                "name": "d", "provider": "docker", "image": "i", "resources": {"gpus": 1}
            })),
            "resources.gpus"
        );
        assert_eq!(
            refused_field(serde_json::json!({
                "name": "d", "provider": "docker", "image": "i", "resources": {"cpus": 0}
            })),
            "resources.cpus"
        );
        assert_eq!(
            refused_field(serde_json::json!({
                "name": "d", "provider": "docker", "image": "i", "resources": {"memory": "1MiB"}
            })),
            "resources"
        );
    }
}
