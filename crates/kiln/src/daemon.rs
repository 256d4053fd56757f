//! `kiln server` and `kiln agent`: the two long-running processes of a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kiln_agent::agent::{AgentConfig, run_agent};
use kiln_core::engine::Node;
use kiln_core::model::Catalog;
use kiln_server::ClusterConfig;
use kiln_server::server::{DockerOptions, ServerConfig, SlurmOptions, run_server};

use crate::exit;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub cmd: Option<crate::client::ServerCmd>,
    /// Address to serve the API on. Node containers of `docker` compute environments reach a
    /// server listening on 0.0.0.0 at http://host.docker.internal:PORT; one listening on
    /// loopback only needs --advertise-url for them.
    #[arg(long, default_value = "127.0.0.1:7878", env = "KILN_LISTEN")]
    listen: SocketAddr,
    /// The server's URL as node containers of `docker` compute environments reach it
    /// [default: derived from --listen].
    #[arg(long, env = "KILN_ADVERTISE_URL", value_name = "URL")]
    advertise_url: Option<String>,
    /// The kiln binary bind-mounted into node containers of `docker` compute environments; it
    /// must run in their image [default: this executable].
    #[arg(long, env = "KILN_NODE_BINARY", value_name = "PATH", value_parser = crate::absolute_path)]
    node_binary: Option<PathBuf>,
    /// The server's URL as the compute nodes of `slurm` compute environments reach it
    /// [default: --advertise-url, else the listen address].
    #[arg(long, env = "KILN_SLURM_ADVERTISE_URL", value_name = "URL")]
    slurm_advertise_url: Option<String>,
    /// The kiln binary allocations of `slurm` compute environments run, at a path every
    /// compute node has [default: this executable].
    #[arg(long, env = "KILN_SLURM_NODE_BINARY", value_name = "PATH", value_parser = crate::absolute_path)]
    slurm_node_binary: Option<PathBuf>,
    /// Where the database, logs, working directories and the two tokens (`admin-token`,
    /// `agent-token`) are kept.
    #[arg(long, env = "KILN_DATA_DIR", value_parser = crate::absolute_path, required = true)]
    data_dir: Option<PathBuf>,
    /// Keep state in this PostgreSQL database (`postgres://USER:PASSWORD@HOST:PORT/DB`)
    /// instead of SQLite in --data-dir; several servers may share it, one of them scheduling
    /// at a time.
    #[arg(long, env = "KILN_DB", value_name = "URL")]
    db: Option<String>,
    /// With --db: seconds the scheduler lease lasts without renewal, i.e. how soon a standby
    /// takes over when the leader dies.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    lease_ttl: f64,
    /// How long journal events are kept (`GET /v1/events`, `kiln events`): `7d`, `12h`, …;
    /// older ones are trimmed in the background.
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = event_retention)]
    event_retention: u64,
    /// CPUs of this host given to tasks that name no compute environment [default: all].
    #[arg(long)]
    cpus: Option<f64>,
    /// Seconds without a heartbeat after which a node is ABNORMAL and its instances re-run.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    heartbeat_timeout: u64,
    /// Seconds between an agent's heartbeats.
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    heartbeat_interval: u64,
    /// Seconds a stopped instance gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    kill_grace: u64,
    /// A YAML or JSON file of instance types added to the built-in catalog (or redefining
    /// one): `NAME: {cpus: 8, memory: 64GiB, disk: 200GiB}` per line.
    #[arg(long, env = "KILN_INSTANCE_TYPES", value_name = "FILE", value_parser = crate::absolute_path)]
    instance_types: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first, then any
    /// intermediates); needs --tls-key. It must name the hosts clients and nodes use in the
    /// server's URL (e.g. 127.0.0.1 for `local` environments, host.docker.internal for
    /// `docker` ones).
    #[arg(long, env = "KILN_TLS_CERT", value_name = "FILE", value_parser = crate::absolute_path, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KILN_TLS_KEY", value_name = "FILE", value_parser = crate::absolute_path, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The PEM CA certificate(s) that signed --tls-cert: the nodes this server starts (`local`,
    /// `docker` and `slurm` environments) check its certificate with it [default: their
    /// system's trust roots]. For `slurm` environments it must be at this path on the compute
    /// nodes.
    #[arg(long, env = "KILN_CA_FILE", value_name = "FILE", value_parser = crate::absolute_path)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The server's URL (http:// or https://; several, comma-separated, for servers sharing
    /// one database).
    #[arg(long, env = "KILN_SERVER", default_value = "http://127.0.0.1:7878")]
    server: String,
    /// Check an https:// server's certificate against the PEM CA certificates in FILE
    /// instead of the system's trust roots (a private CA).
    #[arg(long, env = "KILN_CA_FILE", value_name = "FILE", value_parser = crate::absolute_path)]
    ca_file: Option<PathBuf>,
    /// A file holding the join token (the server's `agent-token`).
    #[arg(long, env = "KILN_AGENT_TOKEN_FILE", value_parser = crate::absolute_path)]
    token_file: PathBuf,
    /// This node's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// The compute environment this node belongs to.
    #[arg(long)]
    compute_env: Option<String>,
    /// How many instances run at once [default: the CPU count].
    #[arg(long)]
    slots: Option<u32>,
    /// CPUs this node offers [default: what the host or container allows].
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory this node offers, e.g. 4GiB [default: the host's].
    #[arg(long, value_parser = parse_memory)]
    memory: Option<u64>,
    /// Where working directories and captured output are kept.
    #[arg(long, default_value = "kiln-agent", value_parser = crate::absolute_path)]
    work_dir: PathBuf,
    /// Seconds a stopped instance gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    kill_grace: u64,
    /// When this node's allocation ends, in seconds since the Unix epoch (a Slurm job's time
    /// limit): the agent takes only instances whose timeout ends before then, leaves just
    /// before it, and on SIGTERM leaves at once; the instances it held run again elsewhere
    /// (NODE_LOST).
    #[arg(long, value_name = "UNIX_SECONDS")]
    end_time: Option<u64>,
    /// On SIGTERM, leave at once instead of stopping the running instances: they run again
    /// elsewhere (NODE_LOST, not counted against retries). For nodes in allocations that can
    /// end at any time (scancel, preemption).
    #[arg(long)]
    leave_on_signal: bool,
}

/// Sends the process's log (what the server and agents report with `tracing`) to stderr, at the
/// level `KILN_LOG` names (`error`, `warn`, `info`, `debug`, `trace`; default `info`).
fn init_logging() {
    let level = std::env::var("KILN_LOG")
        .ok()
        .and_then(|l| l.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn parse_memory(s: &str) -> Result<u64, String> {
    match kiln_core::spec::parse_size(s)? {
        0 => Err("memory must be more than 0 bytes".into()),
        n => Ok(n),
    }
}

/// The `--ca-file` given (an empty value is none), checked to hold CA certificates; the error
/// is printed.
fn ca_file(arg: &Option<PathBuf>) -> Result<Option<PathBuf>, ()> {
    let ca_file = arg.clone().filter(|p| !p.as_os_str().is_empty());
    if let Some(ca) = &ca_file
        && let Err(e) = kiln_api::read_ca_file(ca)
    {
        eprintln!("error: --ca-file: {e}");
        return Err(());
    }
    Ok(ca_file)
}

fn cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

pub fn server(args: ServerArgs) -> u8 {
    if let Some(cmd) = args.cmd {
        return crate::client::block_on(crate::client::server_cmd(cmd));
    }
    let Some(data_dir) = args.data_dir.clone() else {
        eprintln!("error: --data-dir is needed (or KILN_DATA_DIR)");
        return exit::INVALID;
    };
    init_logging();
    let cpus = args.cpus.unwrap_or_else(cpus);
    if !(cpus.is_finite() && cpus > 0.0) {
        eprintln!("error: --cpus must be a positive number");
        return exit::INVALID;
    }
    if args.heartbeat_interval == 0 || args.heartbeat_timeout <= args.heartbeat_interval {
        eprintln!("error: --heartbeat-timeout must be longer than --heartbeat-interval (> 0)");
        return exit::INVALID;
    }
    if !(args.lease_ttl.is_finite() && (0.2..=600.0).contains(&args.lease_ttl)) {
        eprintln!("error: --lease-ttl must be between 0.2 and 600 seconds");
        return exit::INVALID;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match kiln_server::tls::server_config(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INVALID;
            }
        },
        (None, None) => None,
        _ => {
            eprintln!("error: --tls-cert and --tls-key go together");
            return exit::INVALID;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    for (flag, url) in [
        ("--advertise-url", &args.advertise_url),
        ("--slurm-advertise-url", &args.slurm_advertise_url),
    ] {
        if let Some(url) = url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                eprintln!("error: {flag} must be an http:// or https:// URL");
                return exit::INVALID;
            }
            if !url.starts_with(&format!("{scheme}://")) {
                eprintln!(
                    "error: {flag} {url}: this server serves {scheme}:// (TLS is {}), so nodes \
                     must use a {scheme}:// URL",
                    if tls.is_some() {
                        "on: --tls-cert"
                    } else {
                        "off: no --tls-cert"
                    }
                );
                return exit::INVALID;
            }
        }
    }
    let Ok(ca_file) = ca_file(&args.ca_file) else {
        return exit::INVALID;
    };
    let catalog = match &args.instance_types {
        None => Catalog::builtin(),
        Some(file) => {
            let parsed = std::fs::read(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|bytes| {
                    kiln_core::spec::parse_instance_types(&bytes).map_err(|errors| {
                        errors
                            .0
                            .iter()
                            .map(|e| format!("\n  {e}"))
                            .collect::<String>()
                    })
                });
            match parsed {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: --instance-types {}: {e}", file.display());
                    return exit::INVALID;
                }
            }
        }
    };
    let cfg = ServerConfig {
        listen: args.listen,
        catalog,
        data_dir: data_dir.clone(),
        db: args.db,
        lease_ttl: Duration::from_secs_f64(args.lease_ttl),
        event_retention: Duration::from_millis(args.event_retention),
        node: Node::new(
            "local",
            (cpus * 1000.0).round() as u64,
            crate::run::host_memory(),
        ),
        kill_grace: Duration::from_secs(args.kill_grace),
        cluster: ClusterConfig {
            heartbeat_interval: Duration::from_secs(args.heartbeat_interval),
            heartbeat_timeout: Duration::from_secs(args.heartbeat_timeout),
            ..ClusterConfig::default()
        },
        docker: DockerOptions {
            advertise_url: args.advertise_url,
            node_binary: args.node_binary,
        },
        slurm: SlurmOptions {
            advertise_url: args.slurm_advertise_url,
            node_binary: args.slurm_node_binary,
        },
        tls,
        ca_file,
    };
    let stop = crate::signals::stop_requests(
        "stopping: built-in instances get SIGTERM and run again after a restart (Ctrl-C again: now)",
    );
    let data_dir = data_dir.display().to_string();
    let result = run_server(cfg, &stop, |addr| {
        eprintln!("kiln server listening on {scheme}://{addr}");
        eprintln!("  admin token: {data_dir}/admin-token  (kiln --token-file / KILN_TOKEN)");
        eprintln!(
            "  join token:  {data_dir}/agent-token  (kiln agent --token-file; it only registers, \
             each node then holds a credential of its own)"
        );
    });
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

pub fn agent(args: AgentArgs) -> u8 {
    init_logging();
    let token = match std::fs::read_to_string(&args.token_file) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) => {
            eprintln!("error: {} is empty", args.token_file.display());
            return exit::INVALID;
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.token_file.display());
            return exit::INVALID;
        }
    };
    let Ok(ca_file) = ca_file(&args.ca_file) else {
        return exit::INVALID;
    };
    let cpus = match args.cpus {
        Some(c) if c.is_finite() && c > 0.0 => c,
        Some(_) => {
            eprintln!("error: --cpus must be a positive number");
            return exit::INVALID;
        }
        None => cpus(),
    };
    let slots = args.slots.unwrap_or(cpus as u32).max(1);
    let cfg = AgentConfig {
        server: args.server,
        token,
        ca_file,
        name: args.name.unwrap_or_else(host_name),
        compute_env: args.compute_env,
        slots,
        cpus,
        memory: args.memory.unwrap_or_else(crate::run::host_memory),
        work_dir: args.work_dir,
        kill_grace: Duration::from_secs(args.kill_grace),
        heartbeat: None,
        // Tasks with a Docker image run here if a Docker Engine answers.
        containers: true,
        end_time: args.end_time.map(|s| s.saturating_mul(1000)),
        leave_on_signal: args.leave_on_signal,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return exit::FAILED;
        }
    };
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    };
    eprintln!("kiln agent {} joining {}", cfg.name, cfg.server);
    match rt.block_on(run_agent(cfg, shutdown)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// `--event-retention`: a duration of at least a minute, in ms.
fn event_retention(s: &str) -> Result<u64, String> {
    let ms = kiln_core::spec::parse_duration(s)?;
    if ms < 60_000 {
        return Err(format!("`{s}` is shorter than a minute"));
    }
    Ok(ms)
}
