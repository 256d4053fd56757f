//! Compute environments: named pools of nodes with a desired size.
//!
//! Providers: `local` — the server starts `kiln agent` processes on its own host to match the
//! desired count, and drains the surplus; `static` — operators start agents with
//! `--compute-env NAME`, and Kiln shows desired against actual. Scaling down drains a node (no
//! new work, running instances finish) before it leaves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kiln_api::{ComputeEnv, ComputeEnvDetail, NodeRef};
use kiln_store::{ComputeEnvRecord, Store};

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
    /// Under which each started node gets a working directory (and its log, `agent.log`).
    pub nodes_dir: PathBuf,
}

/// Agents the server started, by node name.
#[derive(Debug, Default)]
pub struct Providers {
    pub(crate) config: Option<ProviderConfig>,
    children: BTreeMap<String, Child>,
}

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

/// The parts of [`ComputeEnv`] kept as JSON beside the record.
fn config_json(e: &ComputeEnv) -> String {
    serde_json::json!({
        "instance_type": e.instance_type,
        "resources": e.resources,
        "image": e.image,
        "network": e.network,
        "slots": e.slots,
    })
    .to_string()
}

fn env_of(r: &ComputeEnvRecord) -> ComputeEnv {
    let cfg: serde_json::Value = serde_json::from_str(&r.config_json).unwrap_or_default();
    let s = |k: &str| cfg.get(k).and_then(|v| v.as_str()).map(str::to_string);
    ComputeEnv {
        name: r.name.clone(),
        description: r.description.clone(),
        provider: r.provider.clone(),
        desired_nodes: r.desired_nodes,
        instance_type: s("instance_type"),
        resources: cfg.get("resources").filter(|v| !v.is_null()).cloned(),
        image: s("image"),
        network: s("network"),
        slots: cfg
            .get("slots")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

impl Driver {
    /// Where `local` environments' agents are started from; without it they cannot be.
    pub fn set_provider(&mut self, cfg: ProviderConfig) {
        self.providers.config = Some(cfg);
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
            })
            .collect();
        ComputeEnvDetail {
            env: env_of(r),
            nodes,
        }
    }

    /// `POST /v1/compute-envs`.
    pub fn create_env(&mut self, e: ComputeEnv) -> Result<ComputeEnvDetail, JobOpError> {
        if !valid_name(&e.name) {
            return Err(invalid(
                "name",
                format!("invalid name `{}`: 1-60 of A-Z a-z 0-9 . _ -", e.name),
            ));
        }
        match e.provider.as_str() {
            "local" | "static" => {}
            "docker" => {
                return Err(invalid(
                    "provider",
                    "the docker provider is not available yet; use local or static",
                ));
            }
            other => {
                return Err(invalid(
                    "provider",
                    format!("unknown provider `{other}`: expected local or static"),
                ));
            }
        }
        if e.slots == Some(0) {
            return Err(invalid("slots", "slots must be at least 1"));
        }
        if e.image.is_some() || e.network.is_some() {
            return Err(invalid(
                "image",
                "node images and networks need the docker provider, which is not available yet",
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
        };
        self.store().put_compute_env(&record)?;
        self.reconcile_envs();
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
        if !self.store().set_desired_nodes(name, desired)? {
            return Err(JobOpError::NotFound(format!(
                "no compute environment `{name}`"
            )));
        }
        self.reconcile_envs();
        self.get_env(name)
    }

    /// `DELETE /v1/compute-envs/{name}`: its nodes are drained and leave; the record goes now.
    pub fn delete_env(&mut self, name: &str) -> Result<(), JobOpError> {
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
        Ok(())
    }

    /// Live members of an environment: registered (or expected back) and not draining.
    fn env_members(&self, env: &str) -> Vec<String> {
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
            let desired = env.desired_nodes as usize;
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
        Command::new(&cfg.kiln)
            .arg("agent")
            .arg("--server")
            .arg(&cfg.server_url)
            .arg("--token-file")
            .arg(&cfg.agent_token_file)
            .args(["--name", name, "--compute-env", env])
            .args(["--slots", &slots.to_string()])
            .arg("--work-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
    }
}

/// `pool-3` → 3 (names not of that form sort last).
fn node_number(name: &str, env: &str) -> u64 {
    name.strip_prefix(env)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}
