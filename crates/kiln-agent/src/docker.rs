//! The Docker runtime: an attempt of a task whose image is a Docker image runs as a container
//! created through the Docker Engine API, and removed after it.
//!
//! The attempt's working directory on the node is bind-mounted at [`WORK_DIR`], so inputs are
//! staged and outputs uploaded by the same code as on the host; absolute mapping paths get a
//! directory of their own bind-mounted at that path. Output is streamed from the engine into the
//! node's capture files while the container runs (so live logs work as for host processes).
//! Limits come from the task's instance type: CPUs as a CFS quota (`NanoCpus`), memory as a hard
//! limit with no swap; a container the kernel killed for memory ends `OUT_OF_MEMORY`.
//!
//! Everything Kiln creates carries the label `kiln.managed=true` (and `kiln.role`), so that
//! nothing is left behind unnoticed: instance containers also carry their attempt's identity.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use kiln_api::RegistryAuth;
use kiln_core::model::Command;
use kiln_core::state::Outcome;
use tokio::sync::watch;

use crate::host::{AttemptPaths, AttemptSpec, KILL, LazyFile, STOP, reached};

/// Where the attempt's working directory appears inside its container.
pub const WORK_DIR: &str = "/kiln/work";
/// The label every container and network Kiln creates carries (value `true`).
pub const MANAGED_LABEL: &str = "kiln.managed";
/// `instance` for attempt containers, `node` for compute-environment node containers.
pub const ROLE_LABEL: &str = "kiln.role";

/// A bind mount of an attempt's container: `host` appears at `inside`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub host: PathBuf,
    pub inside: String,
    pub read_only: bool,
}

/// What a container attempt is made of.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    pub image: &'a str,
    pub spec: &'a AttemptSpec,
    pub paths: &'a AttemptPaths,
    /// The full environment: the task's and the `BATCH_*` variables.
    pub env: Vec<String>,
    /// Bind mounts beside the working directory's.
    pub mounts: &'a [Mount],
    /// Between SIGTERM and SIGKILL when the container is stopped.
    pub kill_grace: Duration,
    /// The runtime's root of working directories, as a label ([`WORK_ROOT_LABEL`]).
    pub work_root: &'a Path,
}

/// Labels an attempt's container with the working-directory root of the runtime that made it:
/// one per agent, so an agent that restarts finds the containers its previous process left.
pub const WORK_ROOT_LABEL: &str = "kiln.work-root";

/// Why the Docker Engine could not be used.
#[derive(Debug, thiserror::Error)]
#[error("no Docker Engine answers ({0}); is it running, and may this user use its socket?")]
pub struct Unavailable(String);

/// A connection to the node's Docker Engine, shared by every attempt on the node.
#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    /// Kiln's networks in use by attempts of this node, and by how many; a network Kiln
    /// created is removed when its count drops to zero.
    networks: Mutex<HashMap<String, usize>>,
    /// Images known to be on the engine (checked once, not before every attempt).
    images: Mutex<HashSet<String>>,
}

impl DockerRuntime {
    /// Connects to the engine of `DOCKER_HOST` (or the local socket), agreeing on an API version
    /// both speak.
    pub async fn connect() -> Result<DockerRuntime, Unavailable> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| Unavailable(e.to_string()))?
            .with_timeout(Duration::from_secs(120));
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| Unavailable("no answer within 10 s".into()))?
            .map_err(|e| Unavailable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        Ok(DockerRuntime {
            docker,
            networks: Mutex::new(HashMap::new()),
            images: Mutex::new(HashSet::new()),
        })
    }

    /// The name of an attempt's container: unique per attempt, readable in `docker ps`.
    pub fn container_name(job: &str, task: &str, index: u32, attempt: u32) -> String {
        format!("kiln-{job}-{task}-{index}-{attempt}")
    }

    /// Removes every attempt container made by a runtime with working-directory root
    /// `work_root` (a previous process of this agent, killed before it could clean up: what
    /// those attempts do is lost to the server already, which runs them again). Returns how
    /// many were removed.
    pub async fn remove_orphans(&self, work_root: &Path) -> usize {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{ROLE_LABEL}=instance"),
                format!("{WORK_ROOT_LABEL}={}", work_root.display()),
            ],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(found) = self.docker.list_containers(Some(options)).await else {
            return 0;
        };
        let mut removed = 0;
        for id in found.into_iter().filter_map(|c| c.id) {
            if self.force_remove(&id).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes the container of an attempt, running or not; true if there was one.
    pub async fn remove_attempt(&self, job: &str, task: &str, index: u32, attempt: u32) -> bool {
        let name = Self::container_name(job, task, index, attempt);
        self.force_remove(&name).await.is_ok()
    }

    /// Removes a container (by name or id), killing it first if it runs.
    async fn force_remove(&self, container: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        self.docker.remove_container(container, Some(options)).await
    }

    /// Runs one attempt as a container, removes it, and says how it ended.
    pub(crate) async fn run(
        &self,
        launch: Launch<'_>,
        kill_rx: &mut watch::Receiver<u8>,
        on_start: impl FnOnce(Option<u32>),
    ) -> Outcome {
        let spec = launch.spec;
        let name = Self::container_name(&spec.job_id, &spec.task_name, spec.index, spec.attempt);
        let network = spec.network.as_deref();
        if let Some(net) = network
            && let Err(e) = self.acquire_network(net).await
        {
            return start_failed(format!("cannot create network `{net}`: {e}"), true);
        }
        let outcome = self.run_container(&name, launch, kill_rx, on_start).await;
        if let Err(e) = self.force_remove(&name).await
            && !is_status(&e, 404)
        {
            tracing::warn!("cannot remove container {name}: {e}");
        }
        if let Some(net) = network {
            self.release_network(net).await;
        }
        outcome
    }

    async fn run_container(
        &self,
        name: &str,
        launch: Launch<'_>,
        kill_rx: &mut watch::Receiver<u8>,
        on_start: impl FnOnce(Option<u32>),
    ) -> Outcome {
        let (spec, paths, image) = (launch.spec, launch.paths, launch.image);
        let kill_grace = launch.kill_grace;
        let body = container_body(launch);
        if let Err(outcome) = self.create(name, image, spec.registry.as_ref(), body).await {
            return outcome;
        }
        if let Err(e) = self.docker.start_container(name, None).await {
            return start_failed(format!("cannot start container {name}: {e}"), true);
        }
        on_start(None);
        let logs = tokio::spawn(capture_logs(
            self.docker.clone(),
            name.to_string(),
            paths.stdout.clone(),
            paths.stderr.clone(),
        ));

        let timeout = async {
            match spec.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        enum End {
            Exited(Result<i64, String>),
            TimedOut,
            Stopped,
        }
        let end = {
            let wait = self.wait(name);
            tokio::pin!(wait);
            tokio::select! {
                code = &mut wait => End::Exited(code),
                () = timeout => End::TimedOut,
                () = reached(kill_rx, STOP) => End::Stopped,
            }
        };
        let outcome = match end {
            End::Exited(Ok(code)) => {
                let code = i32::try_from(code).unwrap_or(-1);
                if self.oom_killed(name, code, spec.memory_limit()).await {
                    Outcome::OutOfMemory { exit_code: code }
                } else {
                    Outcome::Exited(code)
                }
            }
            End::Exited(Err(e)) => {
                start_failed(format!("lost track of container {name}: {e}"), true)
            }
            End::TimedOut | End::Stopped => {
                self.stop(name, kill_rx, kill_grace).await;
                if matches!(end, End::TimedOut) {
                    Outcome::TimedOut
                } else {
                    Outcome::Stopped
                }
            }
        };
        match logs.await {
            Ok(Err(e)) => tracing::warn!("capturing output of {name}: {e}"),
            Err(e) => tracing::warn!("capturing output of {name}: {e}"),
            Ok(Ok(())) => {}
        }
        outcome
    }

    /// Makes sure the engine has `image`, pulling it if not (with `auth`, if given): checked
    /// before inputs are staged, so that a missing image fails the attempt before any
    /// download.
    pub(crate) async fn ensure_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), Outcome> {
        let known = self.images.lock().is_ok_and(|i| i.contains(image));
        if known {
            return Ok(());
        }
        if self.docker.inspect_image(image).await.is_err() {
            self.pull(image, auth).await?;
        }
        if let Ok(mut images) = self.images.lock() {
            images.insert(image.to_string());
        }
        Ok(())
    }

    /// Creates the container, pulling its image first if the engine does not have it.
    async fn create(
        &self,
        name: &str,
        image: &str,
        auth: Option<&RegistryAuth>,
        body: ContainerCreateBody,
    ) -> Result<(), Outcome> {
        let options = || CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        for round in 0..3 {
            match self
                .docker
                .create_container(Some(options()), body.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_status(&e, 404) && round == 0 && is_missing_image(&e) => {
                    if let Ok(mut images) = self.images.lock() {
                        images.remove(image);
                    }
                    self.pull(image, auth).await?;
                }
                Err(e) if is_status(&e, 404) && is_missing_image(&e) => {
                    return Err(Outcome::ImageNotFound(image.to_string()));
                }
                // A container of this attempt left by a runner that crashed: replace it.
                Err(e) if is_status(&e, 409) => {
                    let _ = self.force_remove(name).await;
                }
                Err(e) => {
                    // A bad request (say, a bad command) is the task's fault, not the node's.
                    let resource = !is_status(&e, 400);
                    return Err(start_failed(
                        format!("cannot create container {name}: {}", engine_message(&e)),
                        resource,
                    ));
                }
            }
        }
        Err(start_failed(
            format!("cannot create container {name}: name still in use"),
            true,
        ))
    }

    /// Pulls `image` from its registry, logged in with `auth` if given (the engine gets it in
    /// the request's `X-Registry-Auth` header, never stored). Fails fast when the engine can
    /// reach no registry. A refusal for credentials is [`Outcome::ImagePullFailed`]; any other
    /// failure (no such image, no registry) is [`Outcome::ImageNotFound`].
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), Outcome> {
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let mut progress = self.docker.create_image(Some(options), None, credentials);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                let why = engine_message(&e);
                tracing::info!("image {image} cannot be pulled: {why}");
                return Err(if refused_for_credentials(&why) {
                    Outcome::ImagePullFailed(format!("{image}: unauthorized"))
                } else {
                    Outcome::ImageNotFound(image.to_string())
                });
            }
        }
        Ok(())
    }

    /// The container's exit code once it stops.
    async fn wait(&self, name: &str) -> Result<i64, String> {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut stream = self.docker.wait_container(name, Some(options));
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // A non-zero exit arrives as this error; it is an exit, not a failure.
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the engine closed the wait".into()),
        }
    }

    /// Whether the kernel killed the container for memory: the engine says so, or it died of
    /// SIGKILL (137) under a memory limit without Kiln stopping it.
    async fn oom_killed(&self, name: &str, code: i32, memory_limit: Option<u64>) -> bool {
        let flagged = self
            .docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        flagged || (code == 137 && memory_limit.is_some())
    }

    /// SIGTERM, then SIGKILL after the grace period (or at once when a kill arrives).
    async fn stop(&self, name: &str, kill_rx: &mut watch::Receiver<u8>, grace: Duration) {
        if *kill_rx.borrow() < KILL {
            let options = StopContainerOptions {
                t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
                ..Default::default()
            };
            let stop = self.docker.stop_container(name, Some(options));
            // A stop that failed (say, it outlasted the client's timeout) falls through to a kill.
            tokio::select! {
                r = stop => if r.is_ok() { return },
                () = reached(kill_rx, KILL) => {}
            }
        }
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        let _ = self.docker.kill_container(name, Some(options)).await;
        let _ = self.wait(name).await;
    }

    /// Makes sure network `name` exists (creating it, labelled as Kiln's, if not) and counts
    /// this attempt as a user.
    async fn acquire_network(&self, name: &str) -> Result<(), String> {
        let first = {
            let mut nets = self.networks.lock().map_err(|e| e.to_string())?;
            let n = nets.entry(name.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(());
        }
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(managed_labels("network")),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Another node on this engine created it meanwhile.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => {
                self.release_network(name).await;
                Err(engine_message(&e))
            }
        }
    }

    /// Counts one user of network `name` less; removes it once unused if it is Kiln's.
    async fn release_network(&self, name: &str) {
        let last = match self.networks.lock() {
            Ok(mut nets) => match nets.get_mut(name) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    nets.remove(name);
                    true
                }
                None => false,
            },
            Err(_) => false,
        };
        if !last {
            return;
        }
        let ours = self
            .docker
            .inspect_network(name, None)
            .await
            .ok()
            .and_then(|n| n.labels)
            .is_some_and(|l| l.get(MANAGED_LABEL).is_some_and(|v| v == "true"));
        if ours {
            // Refused while another node's containers still use it: then that node removes it.
            let _ = self.docker.remove_network(name).await;
        }
    }
}

/// `kiln.managed=true`, `kiln.role=ROLE`.
pub fn managed_labels(role: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ROLE_LABEL.to_string(), role.to_string()),
    ])
}

fn container_body(launch: Launch<'_>) -> ContainerCreateBody {
    let Launch {
        image,
        spec,
        paths,
        env,
        mounts,
        work_root,
        ..
    } = launch;
    // The command replaces the image's entrypoint: what the task says is what runs.
    let (entrypoint, cmd) = match &spec.command {
        Command::Shell(script) => (
            vec!["/bin/sh".to_string(), "-c".into()],
            vec![script.clone()],
        ),
        Command::Argv(argv) => match argv.split_first() {
            Some((first, rest)) => (vec![first.clone()], rest.to_vec()),
            None => (Vec::new(), Vec::new()),
        },
    };
    let mut binds = vec![format!("{}:{WORK_DIR}", paths.work_dir.display())];
    binds.extend(mounts.iter().map(|m| {
        let mode = if m.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", m.host.display(), m.inside)
    }));
    let mut labels = managed_labels("instance");
    labels.extend([
        ("kiln.job".to_string(), spec.job_id.clone()),
        ("kiln.task".to_string(), spec.task_name.clone()),
        ("kiln.index".to_string(), spec.index.to_string()),
        ("kiln.attempt".to_string(), spec.attempt.to_string()),
        (WORK_ROOT_LABEL.to_string(), work_root.display().to_string()),
    ]);
    let hostname = hostname(&spec.task_name, spec.index);
    let memory = spec.memory_limit().and_then(|m| i64::try_from(m).ok());
    let host_config = HostConfig {
        binds: Some(binds),
        memory,
        // No swap: a container over its memory is killed, not slowed to a crawl.
        memory_swap: memory,
        nano_cpus: (spec.resources.millicpus > 0)
            .then(|| i64::from(spec.resources.millicpus) * 1_000_000),
        network_mode: spec.network.clone(),
        ..Default::default()
    };
    // On a VPC, instances find each other by `TASK-INDEX`.
    let networking_config = spec.network.as_ref().map(|net| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            net.clone(),
            EndpointSettings {
                aliases: Some(vec![hostname.clone()]),
                ..Default::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(entrypoint),
        cmd: Some(cmd),
        env: Some(env),
        working_dir: Some(WORK_DIR.into()),
        hostname: Some(hostname),
        labels: Some(labels),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// `TASK-INDEX` as a valid host name (lower case letters, digits and `-`, at most 63).
fn hostname(task: &str, index: u32) -> String {
    let mut h: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let suffix = format!("-{index}");
    h.truncate(63 - suffix.len());
    let h = h.trim_matches('-');
    format!("{}{suffix}", if h.is_empty() { "task" } else { h })
}

/// Streams the container's stdout and stderr into the capture files until it ends.
async fn capture_logs(
    docker: Docker,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
) -> std::io::Result<()> {
    use bollard::container::LogOutput;
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut out = LazyFile::new(stdout);
    let mut err = LazyFile::new(stderr);
    let mut stream = docker.logs(&name, Some(options));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                out.write(&message)?;
            }
            Ok(LogOutput::StdErr { message }) => err.write(&message)?,
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
    Ok(())
}

fn start_failed(message: String, resource: bool) -> Outcome {
    Outcome::StartFailed { message, resource }
}

/// The HTTP status of an error response of the engine (`None` for other errors).
pub fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn is_status(e: &DockerError, status: u16) -> bool {
    status_of(e) == Some(status)
}

/// Whether the engine's message for a failed pull says the registry refused the credentials
/// (none, or wrong ones), as registries answer with `401 Unauthorized` or `403 denied`.
/// Docker Hub's `pull access denied … may require 'docker login'` is what it also answers for
/// a repository that does not exist, so it stays "not found".
pub(crate) fn refused_for_credentials(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    if m.contains("pull access denied") {
        return false;
    }
    [
        "unauthorized",
        "no basic auth credentials",
        "authentication required",
        "denied:",
    ]
    .iter()
    .any(|s| m.contains(s))
}

fn is_missing_image(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { message, .. } if message.contains("image"))
}

/// The engine's own message for an error response (without Rust debug noise).
fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{hostname, refused_for_credentials};

    #[test]
    fn pulls_refused_for_credentials_are_told_apart() {
        for refused in [
            "Head \"http://127.0.0.1:5000/v2/app/manifests/1\": no basic auth credentials",
            "unauthorized: authentication required",
            "Get \"https://r.example/v2/\": unauthorized: incorrect username or password",
            "denied: requested access to the resource is denied",
        ] {
            assert!(refused_for_credentials(refused), "{refused}");
        }
        for other in [
            "manifest for 127.0.0.1:5000/app:9 not found: manifest unknown: manifest unknown",
            "pull access denied for nosuch, repository does not exist or may require 'docker login'",
            "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
        ] {
            assert!(!refused_for_credentials(other), "{other}");
        }
    }

    #[test]
    fn host_names_are_valid() {
        assert_eq!(hostname("split", 3), "split-3");
        assert_eq!(hostname("Render_Frames.v2", 10), "render-frames-v2-10");
        assert_eq!(hostname("___", 0), "task-0");
        assert!(hostname(&"x".repeat(100), 123_456).len() <= 63);
    }
}
