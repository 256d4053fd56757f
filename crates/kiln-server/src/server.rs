//! `kiln server`: opens the data directory, makes sure the two tokens exist, restores every
//! unfinished job, serves the API on one runtime and drives the engine on the calling thread.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use kiln_core::engine::Node;
use kiln_core::model::Catalog;

use crate::api::{
    ApiState, JOIN_TOKEN_DIGEST, JOIN_TOKEN_SEALED, Tokens, digest, hex, new_secret, router,
};
use crate::driver::{ClusterConfig, Driver, DriverError, LocalConfig, StopRequest};
use crate::envs::{
    DockerConfig, DockerNodes, ProviderConfig, SlurmConfig, SlurmNodes, host_ca_bundle,
    host_docker_socket, node_url, run_docker_provider, run_slurm_provider,
};
use kiln_store::Store;
use kiln_store::secrets::SecretBox;

/// How `kiln server` is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A `postgres://` URL: state in that database (several servers may share it); `None`:
    /// SQLite in `data_dir`.
    pub db: Option<String>,
    /// With `db`: how long the scheduler lease lasts without renewal (how soon a standby
    /// takes over from a dead leader).
    pub lease_ttl: Duration,
    /// How long journal events are kept; older ones are trimmed by a task of their own
    /// ([`trim_events`]), never by the scheduler's thread.
    pub event_retention: Duration,
    /// The built-in executor's capacity (runs tasks that name no compute environment).
    pub node: Node,
    pub kill_grace: Duration,
    pub cluster: ClusterConfig,
    pub docker: DockerOptions,
    pub slurm: SlurmOptions,
    /// The instance types specs may name.
    pub catalog: Catalog,
    /// Serve HTTPS with this configuration ([`crate::tls::server_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The CA certificate file the nodes this server starts (`local`, `docker` and `slurm`
    /// environments) check its certificate with; `None`: their system's trust roots.
    pub ca_file: Option<PathBuf>,
}

/// How node containers of `docker` compute environments reach the server and get kiln.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// The server's URL as node containers reach it [default: derived from the listen address,
    /// see [`node_url`]].
    pub advertise_url: Option<String>,
    /// The kiln binary bind-mounted into node containers [default: this executable].
    pub node_binary: Option<PathBuf>,
}

/// How allocations of `slurm` compute environments reach the server and get kiln.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// The server's URL as compute nodes reach it [default: `--advertise-url`, else the
    /// listen address].
    pub advertise_url: Option<String>,
    /// The kiln binary allocations run, at a path every compute node has [default: this
    /// executable].
    pub node_binary: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "another server of this database made its admin token: copy admin-token from its data \
         directory into {0}"
    )]
    TokensElsewhere(String),
    #[error(
        "another server of this database made its join token: copy agent-token from its data \
         directory into {0}"
    )]
    JoinTokenElsewhere(String),
    #[error(transparent)]
    Secrets(#[from] kiln_store::secrets::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// A new random token: 32 bytes from the kernel's CSPRNG, hex-encoded.
fn new_token() -> Result<String, ServerError> {
    new_secret().map_err(io("cannot read", Path::new("/dev/urandom")))
}

/// Writes a token file, owner-only (0600) when it is created. An existing file is rewritten in
/// place, so that node containers that have it bind-mounted see the new content.
fn write_token_file(path: &Path, token: &str) -> Result<(), ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot write", path))?;
    writeln!(f, "{token}").map_err(io("cannot write", path))?;
    f.sync_all().map_err(io("cannot write", path))
}

/// What binds the sealed join token to its place in the store.
const JOIN_TOKEN_AAD: &str = "secret:agent-token";

fn store_err(e: kiln_store::StoreError) -> ServerError {
    ServerError::Driver(DriverError::Store(e))
}

/// Makes sure the join token exists and that `path` holds the current one. The store is its
/// record (its digest, and the token sealed with the data directory's key): a server whose
/// database already has one — made or rotated by another server of it, or by this one before a
/// restart — writes that one to `path`. Otherwise the token in `path` (or a new one) becomes
/// the record.
pub(crate) fn ensure_join_token(
    store: &dyn Store,
    secrets: &SecretBox,
    path: &Path,
    shared: bool,
) -> Result<(), ServerError> {
    if let Some(sealed) = store.get_secret(JOIN_TOKEN_SEALED).map_err(store_err)? {
        let token = secrets.open(&sealed, JOIN_TOKEN_AAD)?;
        let on_disk = std::fs::read_to_string(path).ok();
        if on_disk.as_deref().map(str::trim) != Some(token.as_str()) {
            write_token_file(path, &token)?;
        }
        store
            .put_secret(JOIN_TOKEN_DIGEST, &hex(&digest(&token)))
            .map_err(store_err)?;
        return Ok(());
    }
    let token = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) | Err(_) => {
            // A database of servers from before the token was sealed in it: they know it.
            if shared
                && store
                    .get_secret(JOIN_TOKEN_DIGEST)
                    .map_err(store_err)?
                    .is_some()
            {
                return Err(ServerError::JoinTokenElsewhere(
                    path.parent().unwrap_or(path).display().to_string(),
                ));
            }
            let token = new_token()?;
            write_token_file(path, &token)?;
            token
        }
    };
    record_join_token(store, secrets, &token)
}

/// Makes `token` the join token of the database: its digest (what registrations are checked
/// against) and its sealed copy.
fn record_join_token(
    store: &dyn Store,
    secrets: &SecretBox,
    token: &str,
) -> Result<(), ServerError> {
    store
        .put_secret(JOIN_TOKEN_SEALED, &secrets.seal(token, JOIN_TOKEN_AAD))
        .map_err(store_err)?;
    store
        .put_secret(JOIN_TOKEN_DIGEST, &hex(&digest(token)))
        .map_err(store_err)
}

/// `kiln server rotate-join-token`: a new join token replaces the old one in the store (so the
/// old one registers nothing more, on any server of the database) and in `path`. Returns it.
pub(crate) fn rotate_join_token(
    store: &dyn Store,
    secrets: &SecretBox,
    path: &Path,
) -> Result<String, ServerError> {
    let token = new_token()?;
    record_join_token(store, secrets, &token)?;
    write_token_file(path, &token)?;
    Ok(token)
}

/// Reads the token in `path`, creating it (owner-only, 0600) if it does not exist, and stores
/// its digest under `name`. Returns the digest.
fn ensure_token(
    driver: &mut Driver,
    path: &Path,
    name: &str,
    shared: bool,
) -> Result<[u8; 32], ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let token = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) | Err(_) => {
            // Servers of one database share the tokens: a new one must be given them.
            let known = driver
                .store()
                .get_secret(name)
                .map_err(|e| ServerError::Driver(DriverError::Store(e)))?;
            if shared && known.is_some() {
                return Err(ServerError::TokensElsewhere(
                    path.parent().unwrap_or(path).display().to_string(),
                ));
            }
            let token = new_token()?;
            let _ = std::fs::remove_file(path);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("cannot create", path))?;
            writeln!(f, "{token}").map_err(io("cannot write", path))?;
            token
        }
    };
    let d = digest(&token);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    driver
        .store()
        .put_secret(name, &hex)
        .map_err(|e| ServerError::Driver(DriverError::Store(e)))?;
    Ok(d)
}

/// Runs the server until `stop` asks for a shutdown.
pub fn run_server(
    cfg: ServerConfig,
    stop: &dyn Fn() -> StopRequest,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(io("cannot create", &cfg.data_dir))?;
    let mut driver = Driver::open(LocalConfig {
        state_dir: cfg.data_dir.clone(),
        db: cfg.db.clone(),
        node: cfg.node.clone(),
        kill_grace: cfg.kill_grace,
        keep_work_dirs: false,
        containers: true,
    })?
    .with_cluster(cfg.cluster.clone())
    .with_catalog(cfg.catalog.clone());
    let tokens = Tokens {
        admin: ensure_token(
            &mut driver,
            &cfg.data_dir.join("admin-token"),
            "admin-token-sha256",
            cfg.db.is_some(),
        )?,
    };
    if cfg.db.is_none() {
        let restored = driver.restore_unfinished()?;
        if !restored.is_empty() {
            tracing::info!("restored {} unfinished jobs", restored.len());
        }
    }
    // Secret fields are sealed with the data directory's key (also with --db postgres).
    let secrets =
        kiln_store::secrets::SecretBox::for_store(&cfg.data_dir, &*driver.shared_store())?;
    let secrets = Arc::new(secrets);
    let join_token_file = cfg.data_dir.join("agent-token");
    ensure_join_token(driver.store(), &secrets, &join_token_file, cfg.db.is_some())?;
    {
        // A server that takes the lease hands the nodes it starts the database's join token,
        // which another server may have rotated meanwhile.
        let (secrets, path) = (Arc::clone(&secrets), join_token_file.clone());
        driver.on_elected(Box::new(move |store: &dyn Store| {
            if let Err(e) = ensure_join_token(store, &secrets, &path, true) {
                tracing::warn!("cannot bring {} up to date: {e}", path.display());
            }
        }));
    }
    driver = driver.with_secrets(Arc::clone(&secrets));
    let state = Arc::new(ApiState {
        secrets,
        handle: driver.handle(),
        store: driver.shared_store(),
        leading: driver.leading(),
        tokens,
        logs: driver.logs_dir(),
        lease_notify: driver.lease_notify(),
        lease_wait: cfg.cluster.lease_wait,
        catalog: cfg.catalog.clone(),
        activities: driver.activities(),
        join_token_file: Some(join_token_file),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kiln-http")
        .enable_all()
        .build()
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    if cfg.tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr} without TLS: tokens and secrets cross the network in clear; \
             give --tls-cert and --tls-key to serve HTTPS"
        );
    }
    // Agents of `local` compute environments are this binary, started against this address.
    let reachable = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    if cfg.db.is_some() {
        // Several servers may share the database: schedule while holding its lease (the
        // unfinished work is reloaded on taking it).
        let server_id =
            crate::envs::server_id(&cfg.data_dir).map_err(io("cannot read", &cfg.data_dir))?;
        let url = cfg
            .docker
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{reachable}"));
        driver = driver.with_leadership(crate::LeaderConfig {
            server_id,
            url,
            ttl: cfg.lease_ttl,
        });
    }
    match std::env::current_exe() {
        Ok(kiln) => driver.set_provider(ProviderConfig {
            kiln,
            server_url: format!("{scheme}://{reachable}"),
            agent_token_file: cfg.data_dir.join("agent-token"),
            ca_file: cfg.ca_file.clone(),
            nodes_dir: cfg.data_dir.join("nodes"),
        }),
        Err(e) => tracing::warn!("local compute environments cannot start agents: {e}"),
    }
    // Allocations of `slurm` environments run this binary, from the data directory's paths (a
    // filesystem the compute nodes share), against the address they can reach.
    let slurm_binary = cfg
        .slurm
        .node_binary
        .clone()
        .map_or_else(std::env::current_exe, Ok);
    match (slurm_binary, crate::envs::server_id(&cfg.data_dir)) {
        (Ok(kiln), Ok(server_id)) => {
            let nodes = SlurmNodes::new(SlurmConfig {
                kiln,
                server_url: cfg
                    .slurm
                    .advertise_url
                    .clone()
                    .or_else(|| cfg.docker.advertise_url.clone())
                    .unwrap_or_else(|| format!("{scheme}://{reachable}")),
                agent_token_file: cfg.data_dir.join("agent-token"),
                ca_file: cfg.ca_file.clone(),
                nodes_dir: cfg.data_dir.join("nodes"),
                server_id,
            });
            driver.set_slurm(nodes.clone());
            rt.spawn(run_slurm_provider(
                driver.handle(),
                nodes,
                driver.activities(),
            ));
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("slurm compute environments cannot be served: {e}");
        }
    }
    // Node containers of `docker` environments: the same binary, mounted, against the address
    // they can reach. The reconciler talks to the Docker Engine on the HTTP runtime.
    let node_binary = cfg
        .docker
        .node_binary
        .clone()
        .map_or_else(std::env::current_exe, Ok);
    match (node_binary, crate::envs::server_id(&cfg.data_dir)) {
        (Ok(kiln), Ok(server_id)) => {
            let nodes = DockerNodes::new(DockerConfig {
                kiln,
                server_url: node_url(addr, cfg.docker.advertise_url.as_deref(), scheme),
                agent_token_file: cfg.data_dir.join("agent-token"),
                ca_bundle: host_ca_bundle(),
                server_ca: cfg.ca_file.clone(),
                nodes_dir: cfg.data_dir.join("nodes"),
                docker_socket: host_docker_socket(),
                server_id,
            });
            driver.set_docker(nodes.clone());
            rt.spawn(run_docker_provider(driver.handle(), nodes));
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("docker compute environments cannot be served: {e}");
        }
    }
    rt.spawn(trim_events(driver.shared_store(), cfg.event_retention));
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    crate::metrics::handle();
    // The peer's address reaches handlers (`/metrics` answers loopback without a token).
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async {
        let _ = shutdown_rx.await;
    };
    let http = match &cfg.tls {
        Some(tls) => {
            let _guard = rt.enter();
            let listener = crate::tls::TlsListener::new(listener, Arc::clone(tls))
                .map_err(|source| ServerError::Listen { addr, source })?
                // Nothing to set on a TLS stream; this gives handlers the peer's address.
                .tap_io(|_| {});
            rt.spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!("HTTPS server failed: {e}");
                }
            })
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                // Small request/response round trips stall on Nagle's algorithm without this.
                let _ = tcp.set_nodelay(true);
            });
            rt.spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!("HTTP server failed: {e}");
                }
            })
        }
    };
    on_ready(addr);
    let result = driver.serve(stop);
    let _ = shutdown_tx.send(());
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), http).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(ServerError::from)
}

/// Events removed per store call when trimming: small, so that the writer (SQLite's one
/// connection) is never held long.
const TRIM_BATCH: u32 = 2_000;

/// Trims journal events older than `retention`, every minute, in small batches on the
/// blocking pool, so that the scheduler's commits interleave with it.
pub async fn trim_events(store: Arc<dyn Store>, retention: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let before = crate::driver::now_ms().saturating_sub(retention.as_millis() as u64);
        loop {
            let store = Arc::clone(&store);
            let trimmed =
                tokio::task::spawn_blocking(move || store.purge_events(before, TRIM_BATCH)).await;
            match trimmed {
                Ok(Ok(n)) if n == u64::from(TRIM_BATCH) => tokio::task::yield_now().await,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!("cannot trim the journal: {e}");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}
