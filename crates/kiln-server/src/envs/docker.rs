//! The `docker` provider: every node of a `docker` compute environment is a container on the
//! Docker Engine the server talks to, running `kiln agent` and joining the environment like any
//! other agent.
//!
//! A node container (`kiln-node-ENV-N`, node name `ENV-N`, as the `local` provider names its
//! nodes) runs the environment's `image` on its `network`, limited to the CPUs and memory of its
//! `instance_type` or `resources`. Nothing is pulled from a registry: the server's own kiln
//! binary (or `--node-binary`) is bind-mounted read-only at `/usr/local/bin/kiln`, so the image
//! only needs to be able to run it; the agent token file is bind-mounted read-only too (never on
//! a command line or in the environment, where `docker inspect` would show it), and so is the
//! server host's CA certificate bundle (`SSL_CERT_FILE`), without which the agent's HTTP clients
//! cannot start in an image that has none. Each node gets a working directory on the host
//! (`DATA_DIR/nodes/ENV-N`), mounted at the same path.
//!
//! The reconciler ([`run_docker_provider`]) runs on a tokio runtime, never on the driver thread:
//! each round it takes a [`Snapshot`] of the environments and nodes from the driver (one
//! `Handle::call`), lists the containers labelled as this server's nodes, decides with the pure
//! [`plan`], then acts: removes dead containers (exited, or their node `ABNORMAL` after missing
//! heartbeats) and surplus ones, drains registered surplus nodes first (through the driver), and
//! creates the missing ones. A dead node's replacement takes its name, so when it registers the
//! server finds the old attempts gone and re-queues them (`NODE_LOST`) — at the latest, the
//! heartbeat timeout does. Containers that die before their agent ever registered hold further
//! creations of their environment back, with a growing delay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType,
    NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, LogsOptions,
    RemoveContainerOptions,
};
use kiln_api::ComputeEnv;
use tokio::sync::Notify;
use tokio_stream::StreamExt;

use super::{NodeShape, check_env, env_of, invalid, node_number};
use crate::cluster::NodeState;
use crate::driver::{Driver, Handle, now_ms};
use crate::jobs::JobOpError;

// Every container or network Kiln creates carries `kiln.managed=true` and a `kiln.role`: `node`
// for node containers, `network` for networks this provider created.
pub use kiln_agent::docker::{MANAGED_LABEL, ROLE_LABEL};
use kiln_agent::docker::{managed_labels, status_of};
/// The compute environment a node container belongs to.
pub const LABEL_ENV: &str = "kiln.env";
/// The node name of a node container's agent.
pub const LABEL_NODE: &str = "kiln.node";
/// The server that owns the container or network (see [`server_id`]).
pub const LABEL_SERVER: &str = "kiln.server";

/// Where the kiln binary is mounted in a node container.
const KILN_IN_NODE: &str = "/usr/local/bin/kiln";
/// Where the agent token file is mounted in a node container.
const TOKEN_IN_NODE: &str = "/run/kiln/agent-token";
/// Where the server host's CA certificates are mounted in a node container (`SSL_CERT_FILE`).
const CA_IN_NODE: &str = "/run/kiln/ca-certificates.crt";
/// Where the CA certificate the server's own certificate is checked with is mounted in a node
/// container (the agent's `--ca-file`).
const SERVER_CA_IN_NODE: &str = "/run/kiln/server-ca.pem";
/// Node containers resolve this name to the Docker host (`host-gateway`).
const HOST_ALIAS: &str = "host.docker.internal";
/// How often the reconciler looks when nothing wakes it.
const PERIOD: Duration = Duration::from_secs(1);
/// How long a node container may run without its agent registering before it is replaced.
const STARTUP_GRACE_MS: u64 = 60_000;
/// The longest delay before another node of an environment whose nodes keep dying is created.
const BACKOFF_MAX_MS: u64 = 60_000;
/// A bound on every Docker API call.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30);

/// How node containers are made.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The kiln binary bind-mounted into node containers.
    pub kiln: PathBuf,
    /// The server's URL as node containers reach it, or why they cannot.
    pub server_url: Result<String, String>,
    /// The agent join token file (mounted read-only).
    pub agent_token_file: PathBuf,
    /// The server host's CA certificate bundle ([`host_ca_bundle`]), mounted read-only: the
    /// agent's HTTP clients need trust roots to start, and many images have none.
    pub ca_bundle: Option<PathBuf>,
    /// The CA certificate file the agents check an `https://` server's certificate with
    /// (mounted read-only; given as `--ca-file`). `None`: the image's trust roots.
    pub server_ca: Option<PathBuf>,
    /// Under which each node gets its working directory.
    pub nodes_dir: PathBuf,
    /// The engine's socket ([`host_docker_socket`]), mounted into node containers so that their
    /// agents run tasks with a Docker image as containers beside them (their working
    /// directories are at the same path inside and out, so bind mounts line up). `None`: nodes
    /// run host-image tasks only.
    pub docker_socket: Option<PathBuf>,
    /// This server's id ([`server_id`]): only containers and networks carrying it are touched.
    pub server_id: String,
}

/// Why the Docker side of a `docker` environment failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no Docker Engine answers: {0}")]
    Unreachable(#[source] bollard::errors::Error),
    #[error("{what}: {source}")]
    Call {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("node containers cannot reach this server: {0}")]
    NoServerUrl(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn call(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |source| DockerError::Call { what, source }
}

/// The server's URL as node containers reach it: `advertise` if given; else, for a server
/// listening on every address (`0.0.0.0`, `::`), the Docker host as node containers see it
/// (`SCHEME://host.docker.internal:PORT`, mapped to the host gateway); for one listening on a
/// specific non-loopback address, that address. A server listening on loopback only cannot be
/// reached from a container: the error says what to do instead. `scheme` is `http`, or
/// `https` for a server with TLS (whose certificate must then name the host of this URL).
pub fn node_url(
    listen: std::net::SocketAddr,
    advertise: Option<&str>,
    scheme: &str,
) -> Result<String, String> {
    if let Some(url) = advertise {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let ip = listen.ip();
    let port = listen.port();
    if ip.is_unspecified() {
        Ok(format!("{scheme}://{HOST_ALIAS}:{port}"))
    } else if ip.is_loopback() {
        Err(format!(
            "the server listens on {listen} only, which containers cannot reach; start it with \
             `--listen 0.0.0.0:{port}` (node containers then use {scheme}://{HOST_ALIAS}:{port}) \
             or give `--advertise-url`"
        ))
    } else {
        Ok(format!("{scheme}://{listen}"))
    }
}

/// The CA certificate bundle of this host: `SSL_CERT_FILE` if set, else the first of the usual
/// places (Debian, RHEL, Alpine, SUSE) that exists.
/// The Docker Engine's local socket: `DOCKER_HOST=unix://PATH`, or `/var/run/docker.sock`
/// when `DOCKER_HOST` is unset. `None` for an engine reached over TCP, or no socket.
pub fn host_docker_socket() -> Option<PathBuf> {
    let path = match std::env::var("DOCKER_HOST") {
        Ok(host) => PathBuf::from(host.strip_prefix("unix://")?),
        Err(_) => PathBuf::from(DOCKER_SOCKET),
    };
    path.exists().then_some(path)
}

/// Where node containers find the engine's socket (the default `DOCKER_HOST`).
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

pub fn host_ca_bundle() -> Option<PathBuf> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.is_file())
}

/// Reads this server's id from `DATA_DIR/server-id`, creating it on first use. It labels the
/// containers and networks the server creates, so that two servers sharing one Docker Engine
/// never touch each other's.
pub fn server_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = format!("{:016x}", fastrand::u64(..));
            std::fs::write(&path, format!("{id}\n"))?;
            Ok(id)
        }
    }
}

/// The Docker side of `docker` compute environments: a lazily connected client and the
/// reconciler's wake-up. Cheap to clone.
#[derive(Clone)]
pub struct DockerNodes {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DockerConfig,
    client: Mutex<Option<Docker>>,
    wake: Notify,
}

impl std::fmt::Debug for DockerNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerNodes")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl DockerNodes {
    pub fn new(cfg: DockerConfig) -> Self {
        DockerNodes {
            inner: Arc::new(Inner {
                cfg,
                client: Mutex::new(None),
                wake: Notify::new(),
            }),
        }
    }

    /// The server's URL for node containers, or why there is none.
    pub fn server_url(&self) -> Result<&str, String> {
        self.inner.cfg.server_url.as_deref().map_err(Clone::clone)
    }

    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// A client of the local Docker Engine (`DOCKER_HOST` or its Unix socket), speaking the
    /// engine's API version. Connects on first use and again after a failed connection.
    async fn client(&self) -> Result<Docker, DockerError> {
        let cached = match self.inner.client.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(d) = cached {
            return Ok(d);
        }
        let docker = Docker::connect_with_local_defaults()
            .map_err(DockerError::Unreachable)?
            .with_timeout(DOCKER_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(DockerError::Unreachable)?;
        match self.inner.client.lock() {
            Ok(mut c) => *c = Some(docker.clone()),
            Err(poisoned) => *poisoned.into_inner() = Some(docker.clone()),
        }
        Ok(docker)
    }

    /// What can only be checked on the engine before a `docker` environment is accepted: the
    /// Docker Engine answers, and has the image (nothing is pulled).
    pub async fn check(&self, env: &ComputeEnv) -> Result<(), JobOpError> {
        self.server_url().map_err(|why| invalid("provider", why))?;
        let docker = self.client().await.map_err(|e| {
            invalid(
                "provider",
                format!("the docker provider needs a Docker Engine: {e}"),
            )
        })?;
        docker.ping().await.map_err(|e| {
            invalid(
                "provider",
                format!("the docker provider needs a Docker Engine, and it does not answer: {e}"),
            )
        })?;
        let image = env.image.as_deref().unwrap_or_default().trim();
        match docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(invalid(
                "image",
                format!(
                    "the Docker Engine has no image `{image}`: pull, load or build it there first \
                     (node images are never pulled)"
                ),
            )),
            Err(e) => Err(invalid(
                "image",
                format!("cannot inspect the image `{image}`: {e}"),
            )),
        }
    }

    /// The node containers of this server, in any state.
    async fn list(&self, docker: &Docker) -> Result<Vec<Observed>, DockerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{MANAGED_LABEL}=true"),
                format!("{ROLE_LABEL}=node"),
                format!("{LABEL_SERVER}={}", self.inner.cfg.server_id),
            ],
        )]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = docker
            .list_containers(Some(opts))
            .await
            .map_err(call("cannot list node containers"))?;
        Ok(list.into_iter().filter_map(Observed::of).collect())
    }

    /// Creates and starts one node container.
    async fn create(
        &self,
        docker: &Docker,
        env: &str,
        node: &str,
        spec: &NodeSpec,
    ) -> Result<(), DockerError> {
        let cfg = &self.inner.cfg;
        let url = cfg
            .server_url
            .as_deref()
            .map_err(|why| DockerError::NoServerUrl(why.clone()))?;
        let network = match spec.network.as_deref() {
            None | Some("default") => None,
            Some(n) => {
                self.ensure_network(docker, n).await?;
                Some(n.to_string())
            }
        };
        let dir = cfg.nodes_dir.join(node);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| DockerError::Io {
                path: dir.clone(),
                source,
            })?;
        let body = container_body(cfg, url, env, node, spec, &dir, network);
        let name = container_name(node);
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        docker
            .create_container(Some(opts), body)
            .await
            .map_err(call(format!("cannot create the node container {name}")))?;
        if let Err(e) = docker.start_container(&name, None).await {
            self.remove(docker, &name, node).await;
            return Err(call(format!("cannot start the node container {name}"))(e));
        }
        Ok(())
    }

    /// Creates the network `name` (labelled as this server's) unless it exists.
    async fn ensure_network(&self, docker: &Docker, name: &str) -> Result<(), DockerError> {
        match docker.inspect_network(name, None).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(call(format!("cannot inspect the network {name}"))(e)),
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some({
                let mut labels = managed_labels("network");
                labels.insert(LABEL_SERVER.to_string(), self.inner.cfg.server_id.clone());
                labels
            }),
            ..Default::default()
        };
        match docker.create_network(req).await {
            Ok(_) => {
                tracing::info!("created the Docker network {name}");
                Ok(())
            }
            // Created meanwhile by someone else.
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(call(format!("cannot create the network {name}"))(e)),
        }
    }

    /// Removes a node container (killing it if it runs) and its working directory.
    async fn remove(&self, docker: &Docker, container: &str, node: &str) {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(container, Some(opts)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                tracing::warn!("cannot remove the node container {container}: {e}");
                return;
            }
        }
        let dir = self.inner.cfg.nodes_dir.join(node);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", dir.display());
        }
    }

    /// The last lines a container wrote, for the log of a node that died.
    async fn tail(&self, docker: &Docker, container: &str) -> String {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "20".into(),
            ..Default::default()
        };
        let mut logs = std::pin::pin!(docker.logs(container, Some(opts)));
        let mut out = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&chunk.to_string());
            if out.len() > 4096 {
                break;
            }
        }
        out.trim_end().to_string()
    }

    /// Removes the networks this server created that no environment names and none of its
    /// node containers uses. A network still used by other containers stays (Docker refuses).
    async fn prune_networks(&self, docker: &Docker, keep: &BTreeSet<String>) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{MANAGED_LABEL}=true"),
                format!("{ROLE_LABEL}=network"),
                format!("{LABEL_SERVER}={}", self.inner.cfg.server_id),
            ],
        )]);
        let opts = ListNetworksOptions {
            filters: Some(filters),
        };
        let Ok(networks) = docker.list_networks(Some(opts)).await else {
            return;
        };
        for name in networks.into_iter().filter_map(|n| n.name) {
            if keep.contains(&name) {
                continue;
            }
            match docker.remove_network(&name).await {
                Ok(()) => tracing::info!("removed the Docker network {name}"),
                Err(e) => tracing::debug!("the network {name} stays: {e}"),
            }
        }
    }

    /// One round: look, decide, act.
    async fn reconcile(&self, handle: &Handle, snap: Snapshot, state: &mut LoopState) {
        let docker = match self.client().await {
            Ok(d) => d,
            Err(e) => {
                if !snap.envs.is_empty() && !state.unreachable {
                    tracing::error!("docker compute environments cannot be served: {e}");
                }
                state.unreachable = true;
                return;
            }
        };
        let observed = match self.list(&docker).await {
            Ok(o) => o,
            Err(e) => {
                if !state.unreachable {
                    tracing::error!("docker compute environments cannot be served: {e}");
                }
                state.unreachable = true;
                // Connect again next round (the engine may have been restarted).
                if let Ok(mut c) = self.inner.client.lock() {
                    *c = None;
                }
                return;
            }
        };
        if state.unreachable {
            tracing::info!("the Docker Engine answers again");
            state.unreachable = false;
        }
        let now = now_ms();
        if let Err(why) = &self.inner.cfg.server_url
            && !snap.envs.is_empty()
            && !state.no_url_logged
        {
            tracing::error!("docker compute environments get no nodes: {why}");
            state.no_url_logged = true;
        }
        let hold: BTreeSet<String> = state
            .backoff
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(env, _)| env.clone())
            .chain(
                self.inner
                    .cfg
                    .server_url
                    .is_err()
                    .then(|| snap.envs.keys().cloned())
                    .into_iter()
                    .flatten(),
            )
            .collect();
        let plan = plan(&snap, &observed, &mut state.tracked, &hold, now);
        let mut removed = false;
        for env in &plan.registered {
            state.backoff.remove(env);
            state.activities.creation_works(env);
        }
        for action in plan.actions {
            match action {
                Action::Remove {
                    container,
                    node,
                    env,
                    why,
                } => {
                    let failed = matches!(why, Why::Exited(_) | Why::NeverRegistered)
                        && !state.tracked.get(&container).is_some_and(|t| t.registered);
                    if failed {
                        let tail = self.tail(&docker, &container).await;
                        tracing::warn!(
                            "node container {container} {why} before its agent registered; \
                             its last output:\n{tail}"
                        );
                        state.failed(&env, now);
                        let last = tail.lines().rev().find(|l| !l.trim().is_empty());
                        let error = match last {
                            Some(line) => format!("node container {why}: {}", line.trim()),
                            None => format!("node container {why}"),
                        };
                        state.activities.creation_failed(&env, &node, &error, now);
                    } else if matches!(why, Why::Exited(_) | Why::Lost) {
                        tracing::warn!("node container {container} {why}: it is replaced");
                    } else {
                        tracing::info!("removing node container {container}: {why}");
                    }
                    removed = true;
                    self.remove(&docker, &container, &node).await;
                    state.tracked.remove(&container);
                }
                Action::Drain { node } => {
                    tracing::info!("draining node {node} before its container goes");
                    if handle.call(move |d| d.drain_agent(&node)).await.is_err() {
                        return;
                    }
                }
                Action::Create { env, node } => {
                    let Some(Ok(spec)) = snap.envs.get(&env).map(|e| &e.node) else {
                        continue;
                    };
                    let container = container_name(&node);
                    let at = now_ms();
                    state.tracked.insert(
                        container.clone(),
                        Tracked {
                            created_ms: at,
                            seen_ms: at,
                            registered: false,
                            draining: false,
                        },
                    );
                    match self.create(&docker, &env, &node, spec).await {
                        Ok(()) => tracing::info!("started node container {container}"),
                        Err(e) => {
                            tracing::error!("node {node} of {env}: {e}");
                            state.tracked.remove(&container);
                            state.failed(&env, now_ms());
                            state
                                .activities
                                .creation_failed(&env, &node, &e.to_string(), now_ms());
                            break;
                        }
                    }
                }
            }
        }
        // Networks outlive their environments until their last node container is gone.
        state.rounds = state.rounds.wrapping_add(1);
        if removed || state.rounds.is_multiple_of(10) {
            let mut keep: BTreeSet<String> = snap
                .envs
                .values()
                .filter_map(|e| e.node.as_ref().ok()?.network.clone())
                .collect();
            match self.list(&docker).await {
                Ok(left) => keep.extend(left.into_iter().filter_map(|o| o.network)),
                Err(_) => return,
            }
            self.prune_networks(&docker, &keep).await;
        }
    }
}

/// The container's body: image, the agent's command line, mounts, limits, labels.
fn container_body(
    cfg: &DockerConfig,
    url: &str,
    env: &str,
    node: &str,
    spec: &NodeSpec,
    dir: &Path,
    network: Option<String>,
) -> ContainerCreateBody {
    let dir_text = dir.display().to_string();
    let mut cmd: Vec<String> = [
        "agent",
        "--server",
        url,
        "--token-file",
        TOKEN_IN_NODE,
        "--name",
        node,
        "--compute-env",
        env,
    ]
    .map(str::to_string)
    .to_vec();
    cmd.extend([
        "--slots".into(),
        spec.slots.to_string(),
        "--work-dir".into(),
        dir_text.clone(),
    ]);
    if let Some(m) = spec.shape.millicpus {
        cmd.extend(["--cpus".into(), format!("{}", m as f64 / 1000.0)]);
    }
    if let Some(m) = spec.shape.memory {
        cmd.extend(["--memory".into(), m.to_string()]);
    }
    if cfg.server_ca.is_some() {
        cmd.extend(["--ca-file".into(), SERVER_CA_IN_NODE.into()]);
    }
    let bind = |source: String, target: &str, read_only: bool| Mount {
        target: Some(target.to_string()),
        source: Some(source),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut mounts = vec![
        bind(cfg.kiln.display().to_string(), KILN_IN_NODE, true),
        bind(
            cfg.agent_token_file.display().to_string(),
            TOKEN_IN_NODE,
            true,
        ),
        bind(dir_text.clone(), &dir_text, false),
    ];
    if let Some(socket) = &cfg.docker_socket {
        mounts.push(bind(socket.display().to_string(), DOCKER_SOCKET, false));
    }
    if let Some(ca) = &cfg.server_ca {
        mounts.push(bind(ca.display().to_string(), SERVER_CA_IN_NODE, true));
    }
    let mut vars = Vec::new();
    if let Some(ca) = &cfg.ca_bundle {
        mounts.push(bind(ca.display().to_string(), CA_IN_NODE, true));
        vars.push(format!("SSL_CERT_FILE={CA_IN_NODE}"));
    }
    let mut labels = managed_labels("node");
    labels.extend([
        (LABEL_ENV.to_string(), env.to_string()),
        (LABEL_NODE.to_string(), node.to_string()),
        (LABEL_SERVER.to_string(), cfg.server_id.clone()),
    ]);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(vec![KILN_IN_NODE.to_string()]),
        cmd: Some(cmd),
        env: Some(vars),
        working_dir: Some(dir_text),
        labels: Some(labels),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: network,
            extra_hosts: Some(vec![format!("{HOST_ALIAS}:host-gateway")]),
            memory: spec.shape.memory.and_then(|m| i64::try_from(m).ok()),
            nano_cpus: spec
                .shape
                .millicpus
                .and_then(|m| i64::try_from(m.saturating_mul(1_000_000)).ok()),
            // An init process reaps the orphans of the node's task processes.
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `kiln-node-pool-1` for the node `pool-1`.
fn container_name(node: &str) -> String {
    format!("kiln-node-{node}")
}

/// The reconciler of `docker` environments. Runs until the driver is gone.
pub async fn run_docker_provider(handle: Handle, nodes: DockerNodes) {
    let Ok(activities) = handle.call(|d| d.activities()).await else {
        return;
    };
    let mut state = LoopState {
        activities,
        ..LoopState::default()
    };
    loop {
        tokio::select! {
            () = nodes.inner.wake.notified() => {}
            () = tokio::time::sleep(PERIOD) => {}
        }
        let snap = match handle.call(Driver::docker_snapshot).await {
            Ok(Ok(Some(s))) => s,
            // A standby: the leader runs the node containers.
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!("docker compute environments: cannot read the store: {e}");
                continue;
            }
            Err(_) => return,
        };
        nodes.reconcile(&handle, snap, &mut state).await;
    }
}

impl Driver {
    /// What the docker reconciler needs to know, taken on the driver thread.
    pub(crate) fn docker_snapshot(&mut self) -> Result<Option<Snapshot>, kiln_store::StoreError> {
        if !self.is_leader() {
            return Ok(None);
        }
        let records = self.store().list_compute_envs()?;
        let envs = records
            .iter()
            .filter(|r| r.provider == "docker")
            .map(|r| {
                let env = env_of(r);
                let node = check_env(&env, &self.catalog)
                    .map(|shape| NodeSpec {
                        image: env.image.clone().unwrap_or_default(),
                        network: env.network.clone(),
                        slots: env.slots.unwrap_or_else(|| shape.default_slots()),
                        shape,
                    })
                    .map_err(|e| e.to_string());
                (
                    r.name.clone(),
                    EnvPlan {
                        desired: self.env_target(r),
                        node,
                    },
                )
            })
            .collect();
        let agents = self
            .agents()
            .list()
            .map(|a| {
                (
                    a.name.clone(),
                    AgentView {
                        state: a.state,
                        last_seen: a.last_seen,
                    },
                )
            })
            .collect();
        Ok(Some(Snapshot { envs, agents }))
    }
}

// ---- the decision, pure ------------------------------------------------------------------------

/// What every node container of an environment is made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeSpec {
    image: String,
    network: Option<String>,
    shape: NodeShape,
    slots: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct EnvPlan {
    desired: u32,
    /// How its nodes are made, or why they cannot be (a stored record that no longer checks).
    node: Result<NodeSpec, String>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AgentView {
    state: NodeState,
    last_seen: u64,
}

/// The driver's view, by name: `docker` environments and every agent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    envs: BTreeMap<String, EnvPlan>,
    agents: BTreeMap<String, AgentView>,
}

/// One node container as the Docker Engine lists it.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    container: String,
    env: String,
    node: String,
    running: bool,
    /// Docker's words (`Exited (137) 2 seconds ago`).
    status: String,
    created_ms: u64,
    network: Option<String>,
}

impl Observed {
    fn of(c: bollard::models::ContainerSummary) -> Option<Observed> {
        let labels = c.labels.unwrap_or_default();
        let container = c.names?.first()?.trim_start_matches('/').to_string();
        let running = matches!(
            c.state,
            Some(
                ContainerSummaryStateEnum::RUNNING
                    | ContainerSummaryStateEnum::CREATED
                    | ContainerSummaryStateEnum::RESTARTING
                    | ContainerSummaryStateEnum::PAUSED
            )
        );
        let network = c
            .host_config
            .and_then(|h| h.network_mode)
            .filter(|n| !matches!(n.as_str(), "default" | "bridge" | "host"));
        Some(Observed {
            container,
            env: labels.get(LABEL_ENV)?.clone(),
            node: labels.get(LABEL_NODE)?.clone(),
            running,
            status: c.status.unwrap_or_default(),
            created_ms: c
                .created
                .and_then(|s| u64::try_from(s).ok())
                .map_or(0, |s| s * 1000),
            network,
        })
    }
}

/// What the reconciler remembers of a node container between rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracked {
    /// When it was created (ms; from Docker, in whole seconds, for containers found at start).
    created_ms: u64,
    /// When this reconciler first saw it: its agent's startup grace counts from here, so that
    /// the nodes found after a server restart get the time to register again.
    seen_ms: u64,
    /// Its agent has been heard from since the container was created.
    registered: bool,
    /// It is on its way out: its node was drained.
    draining: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    /// The container stopped (Docker's status).
    Exited(String),
    /// Its agent registered and then went silent: the node is `ABNORMAL`.
    Lost,
    /// Its agent did not register within the startup grace.
    NeverRegistered,
    /// More nodes than desired, and this one never registered.
    Surplus,
    /// Its node was drained.
    Drained,
    /// Its environment was deleted.
    EnvGone,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Exited(status) => write!(f, "stopped ({status})"),
            Why::Lost => f.write_str("its node missed its heartbeats"),
            Why::NeverRegistered => f.write_str("its agent did not register in time"),
            Why::Surplus => f.write_str("more nodes than desired"),
            Why::Drained => f.write_str("its node was drained"),
            Why::EnvGone => f.write_str("its compute environment was deleted"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Remove {
        container: String,
        node: String,
        env: String,
        why: Why,
    },
    Drain {
        node: String,
    },
    Create {
        env: String,
        node: String,
    },
}

#[derive(Debug, Default)]
struct Plan {
    /// In order: removals, drains, creations.
    actions: Vec<Action>,
    /// Environments a node of which registered this round (their backoff ends).
    registered: BTreeSet<String>,
}

/// Decides one round. `tracked` is the reconciler's memory of the containers (updated here);
/// environments in `hold` get no new containers this round.
fn plan(
    snap: &Snapshot,
    observed: &[Observed],
    tracked: &mut BTreeMap<String, Tracked>,
    hold: &BTreeSet<String>,
    now: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut removes = Vec::new();
    let mut drains = Vec::new();
    tracked.retain(|name, _| observed.iter().any(|o| &o.container == name));
    let mut members: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for c in observed {
        let t = tracked.entry(c.container.clone()).or_insert(Tracked {
            created_ms: c.created_ms,
            seen_ms: now,
            registered: false,
            draining: false,
        });
        let agent = snap.agents.get(&c.node);
        let state = agent.map(|a| a.state);
        if let Some(a) = agent {
            let alive = matches!(
                a.state,
                NodeState::Running | NodeState::Deleting | NodeState::Creating
            );
            if alive && a.last_seen >= t.created_ms && !t.registered {
                t.registered = true;
                out.registered.insert(c.env.clone());
            }
            if a.state == NodeState::Deleting {
                t.draining = true;
            }
        }
        let env_exists = snap.envs.contains_key(&c.env);
        let remove = |why| Action::Remove {
            container: c.container.clone(),
            node: c.node.clone(),
            env: c.env.clone(),
            why,
        };
        let live_agent = matches!(state, Some(NodeState::Running | NodeState::Creating));
        if !c.running {
            let why = if !env_exists {
                Why::EnvGone
            } else if t.draining {
                Why::Drained
            } else {
                Why::Exited(c.status.clone())
            };
            removes.push(remove(why));
        } else if !env_exists || t.draining {
            let why = if env_exists {
                Why::Drained
            } else {
                Why::EnvGone
            };
            match state {
                // Draining: it leaves by itself once its last attempt is reported.
                Some(NodeState::Deleting) => {}
                // Registered (again): drain it first.
                _ if live_agent && t.registered => {
                    t.draining = true;
                    drains.push(Action::Drain {
                        node: c.node.clone(),
                    });
                }
                _ => removes.push(remove(why)),
            }
        } else if state == Some(NodeState::Abnormal) && t.registered {
            removes.push(remove(Why::Lost));
        } else if !t.registered && now.saturating_sub(t.seen_ms) > STARTUP_GRACE_MS {
            removes.push(remove(Why::NeverRegistered));
        } else {
            members.entry(c.env.as_str()).or_default().push(c);
        }
    }
    let mut creates = Vec::new();
    for (env, plan) in &snap.envs {
        let mut ms = members.remove(env.as_str()).unwrap_or_default();
        ms.sort_by_key(|c| node_number(&c.node, env));
        let desired = plan.desired as usize;
        if ms.len() > desired {
            for c in ms.split_off(desired) {
                let registered = tracked.get(&c.container).is_some_and(|t| t.registered);
                let live = matches!(
                    snap.agents.get(&c.node).map(|a| a.state),
                    Some(NodeState::Running | NodeState::Creating)
                );
                if registered && live {
                    if let Some(t) = tracked.get_mut(&c.container) {
                        t.draining = true;
                    }
                    drains.push(Action::Drain {
                        node: c.node.clone(),
                    });
                } else {
                    removes.push(Action::Remove {
                        container: c.container.clone(),
                        node: c.node.clone(),
                        env: env.clone(),
                        why: Why::Surplus,
                    });
                }
            }
        }
        if ms.len() >= desired || hold.contains(env) || plan.node.is_err() {
            continue;
        }
        let removed: BTreeSet<&str> = removes
            .iter()
            .filter_map(|a| match a {
                Action::Remove { container, .. } => Some(container.as_str()),
                _ => None,
            })
            .collect();
        let taken: BTreeSet<&str> = observed
            .iter()
            .map(|o| o.container.as_str())
            .filter(|c| !removed.contains(c))
            .collect();
        let mut missing = desired - ms.len();
        let mut n = 1u64;
        while missing > 0 {
            let node = format!("{env}-{n}");
            n += 1;
            if taken.contains(container_name(&node).as_str()) {
                continue;
            }
            creates.push(Action::Create {
                env: env.clone(),
                node,
            });
            missing -= 1;
        }
    }
    out.actions = removes;
    out.actions.extend(drains);
    out.actions.extend(creates);
    out
}

/// The reconciler's memory between rounds.
#[derive(Debug, Default)]
struct LoopState {
    tracked: BTreeMap<String, Tracked>,
    /// Environments whose containers died before registering: no new ones until `until`.
    backoff: BTreeMap<String, Backoff>,
    unreachable: bool,
    no_url_logged: bool,
    rounds: u64,
    /// Where node creation failures are told (`kiln env show`, `kiln why`).
    activities: crate::envs::scaling::Activities,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: u64,
}

impl LoopState {
    /// A node of `env` failed to come up: wait 1 s, 2 s, 4 s … (at most a minute) before the
    /// next one.
    fn failed(&mut self, env: &str, now: u64) {
        let b = self.backoff.entry(env.to_string()).or_insert(Backoff {
            failures: 0,
            until: now,
        });
        b.failures = b.failures.saturating_add(1);
        let delay = 1000u64
            .saturating_mul(1 << b.failures.min(16).saturating_sub(1))
            .min(BACKOFF_MAX_MS);
        b.until = now + delay;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec() -> NodeSpec {
        NodeSpec {
            image: "img".into(),
            network: None,
            shape: NodeShape::default(),
            slots: 1,
        }
    }

    fn snap(envs: &[(&str, u32)], agents: &[(&str, NodeState, u64)]) -> Snapshot {
        Snapshot {
            envs: envs
                .iter()
                .map(|(n, d)| {
                    (
                        n.to_string(),
                        EnvPlan {
                            desired: *d,
                            node: Ok(spec()),
                        },
                    )
                })
                .collect(),
            agents: agents
                .iter()
                .map(|(n, s, seen)| {
                    (
                        n.to_string(),
                        AgentView {
                            state: *s,
                            last_seen: *seen,
                        },
                    )
                })
                .collect(),
        }
    }

    fn running(node: &str, created_ms: u64) -> Observed {
        Observed {
            container: container_name(node),
            env: node.rsplit_once('-').unwrap().0.to_string(),
            node: node.into(),
            running: true,
            status: "Up".into(),
            created_ms,
            network: None,
        }
    }

    fn exited(node: &str, created_ms: u64) -> Observed {
        Observed {
            running: false,
            status: "Exited (137)".into(),
            ..running(node, created_ms)
        }
    }

    fn create(node: &str) -> Action {
        Action::Create {
            env: node.rsplit_once('-').unwrap().0.to_string(),
            node: node.into(),
        }
    }

    fn remove(node: &str, why: Why) -> Action {
        Action::Remove {
            container: container_name(node),
            node: node.into(),
            env: node.rsplit_once('-').unwrap().0.to_string(),
            why,
        }
    }

    fn drain(node: &str) -> Action {
        Action::Drain { node: node.into() }
    }

    fn run(
        snap: &Snapshot,
        observed: &[Observed],
        tracked: &mut BTreeMap<String, Tracked>,
    ) -> Vec<Action> {
        plan(snap, observed, tracked, &BTreeSet::new(), 10_000).actions
    }

    #[test]
    fn an_empty_environment_grows_to_its_desired_size() {
        let mut t = BTreeMap::new();
        let got = run(&snap(&[("pool", 3)], &[]), &[], &mut t);
        assert_eq!(got, [create("pool-1"), create("pool-2"), create("pool-3")]);
    }

    #[test]
    fn starting_containers_count_and_new_ones_take_free_numbers() {
        let mut t = BTreeMap::new();
        let got = run(
            &snap(&[("pool", 3)], &[]),
            &[running("pool-2", 9_000)],
            &mut t,
        );
        assert_eq!(got, [create("pool-1"), create("pool-3")]);
    }

    #[test]
    fn held_environments_get_no_new_containers() {
        let mut t = BTreeMap::new();
        let hold = BTreeSet::from(["pool".to_string()]);
        let p = plan(&snap(&[("pool", 2)], &[]), &[], &mut t, &hold, 0);
        assert!(p.actions.is_empty());
    }

    #[test]
    fn registered_surplus_is_drained_highest_first_and_unregistered_surplus_removed() {
        let mut t = BTreeMap::new();
        let s = snap(
            &[("pool", 1)],
            &[
                ("pool-1", NodeState::Running, 9_500),
                ("pool-3", NodeState::Running, 9_500),
            ],
        );
        let obs = [
            running("pool-1", 9_000),
            running("pool-2", 9_000),
            running("pool-3", 9_000),
        ];
        let got = run(&s, &obs, &mut t);
        assert_eq!(
            got,
            [remove("pool-2", Why::Surplus), drain("pool-3")],
            "pool-2 never registered; pool-3 did and is drained first"
        );
        assert!(t[&container_name("pool-3")].draining);
        // Draining: left alone, and not counted as a member (no replacement is created).
        let s = snap(
            &[("pool", 1)],
            &[
                ("pool-1", NodeState::Running, 9_500),
                ("pool-3", NodeState::Deleting, 9_800),
            ],
        );
        let got = run(
            &s,
            &[running("pool-1", 9_000), running("pool-3", 9_000)],
            &mut t,
        );
        assert!(got.is_empty(), "{got:?}");
        // Drained: its agent left the server and its container stopped; it is removed.
        let s = snap(&[("pool", 1)], &[("pool-1", NodeState::Running, 9_900)]);
        let got = run(
            &s,
            &[running("pool-1", 9_000), exited("pool-3", 9_000)],
            &mut t,
        );
        assert_eq!(got, [remove("pool-3", Why::Drained)]);
    }

    #[test]
    fn a_dead_container_is_replaced_under_the_same_name() {
        let mut t = BTreeMap::new();
        let s = snap(
            &[("pool", 2)],
            &[
                ("pool-1", NodeState::Running, 9_500),
                ("pool-2", NodeState::Running, 9_500),
            ],
        );
        let obs = [running("pool-1", 9_000), running("pool-2", 9_000)];
        assert!(run(&s, &obs, &mut t).is_empty());
        let obs = [running("pool-1", 9_000), exited("pool-2", 9_000)];
        let got = run(&s, &obs, &mut t);
        assert_eq!(
            got,
            [
                remove("pool-2", Why::Exited("Exited (137)".into())),
                create("pool-2")
            ]
        );
    }

    #[test]
    fn a_registered_node_gone_abnormal_is_replaced_but_a_fresh_replacement_is_not() {
        let mut t = BTreeMap::new();
        let alive = snap(&[("pool", 1)], &[("pool-1", NodeState::Running, 9_500)]);
        assert!(run(&alive, &[running("pool-1", 9_000)], &mut t).is_empty());
        let lost = snap(&[("pool", 1)], &[("pool-1", NodeState::Abnormal, 9_500)]);
        let got = run(&lost, &[running("pool-1", 9_000)], &mut t);
        assert_eq!(got, [remove("pool-1", Why::Lost), create("pool-1")]);
        // The replacement, created after the old agent's last heartbeat, is starting.
        let mut t = BTreeMap::new();
        let got = run(&lost, &[running("pool-1", 9_800)], &mut t);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn a_container_whose_agent_never_registers_is_replaced_after_the_grace() {
        let mut t = BTreeMap::new();
        let s = snap(&[("pool", 1)], &[]);
        // Found long after it was created (a server restart): the grace starts now.
        let obs = [running("pool-1", 1_000)];
        let p = plan(&s, &obs, &mut t, &BTreeSet::new(), 5_000);
        assert!(p.actions.is_empty());
        let p = plan(&s, &obs, &mut t, &BTreeSet::new(), 5_000 + STARTUP_GRACE_MS);
        assert!(p.actions.is_empty());
        let p = plan(&s, &obs, &mut t, &BTreeSet::new(), 6_000 + STARTUP_GRACE_MS);
        assert_eq!(
            p.actions,
            [remove("pool-1", Why::NeverRegistered), create("pool-1")]
        );
    }

    #[test]
    fn a_deleted_environment_s_nodes_are_drained_then_removed() {
        let mut t = BTreeMap::new();
        let s = snap(
            &[],
            &[
                ("pool-1", NodeState::Running, 9_500),
                ("pool-2", NodeState::Deleting, 9_500),
            ],
        );
        let obs = [
            running("pool-1", 9_000),
            running("pool-2", 9_000),
            running("pool-3", 9_000),
        ];
        let got = run(&s, &obs, &mut t);
        assert_eq!(got, [remove("pool-3", Why::EnvGone), drain("pool-1")]);
        let got = run(&snap(&[], &[]), &[exited("pool-1", 9_000)], &mut t);
        assert_eq!(got, [remove("pool-1", Why::EnvGone)]);
    }

    #[test]
    fn scaling_to_zero_drains_everything() {
        let mut t = BTreeMap::new();
        let s = snap(
            &[("pool", 0)],
            &[
                ("pool-1", NodeState::Running, 9_500),
                ("pool-2", NodeState::Running, 9_500),
            ],
        );
        let got = run(
            &s,
            &[running("pool-1", 9_000), running("pool-2", 9_000)],
            &mut t,
        );
        assert_eq!(got, [drain("pool-1"), drain("pool-2")]);
    }

    #[test]
    fn node_urls_follow_the_listen_address() {
        let url = |listen: &str, adv| node_url(listen.parse().unwrap(), adv, "http");
        assert_eq!(
            url("0.0.0.0:7878", None).unwrap(),
            "http://host.docker.internal:7878"
        );
        assert_eq!(
            url("[::]:7878", None).unwrap(),
            "http://host.docker.internal:7878"
        );
        assert_eq!(url("10.0.0.5:80", None).unwrap(), "http://10.0.0.5:80");
        assert!(
            url("127.0.0.1:7878", None)
                .unwrap_err()
                .contains("--listen 0.0.0.0:7878")
        );
        assert_eq!(
            url("127.0.0.1:7878", Some("http://kiln.lan:7878/")).unwrap(),
            "http://kiln.lan:7878"
        );
        assert_eq!(
            node_url("0.0.0.0:7443".parse().unwrap(), None, "https").unwrap(),
            "https://host.docker.internal:7443"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let mut s = LoopState::default();
        s.failed("pool", 0);
        assert_eq!(s.backoff["pool"].until, 1_000);
        s.failed("pool", 0);
        assert_eq!(s.backoff["pool"].until, 2_000);
        for _ in 0..20 {
            s.failed("pool", 0);
        }
        assert_eq!(s.backoff["pool"].until, BACKOFF_MAX_MS);
    }
}
