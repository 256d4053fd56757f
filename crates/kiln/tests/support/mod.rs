//! The cluster harness shared by the end-to-end tests of `kiln server`: a real server process
//! (and agents) on a free port, driven through the CLI client and the REST API.
//!
//! Nothing sleeps to wait: [`wait_until`] and [`Cluster::wait_job`] poll a condition with a
//! deadline.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes every `AWS_*` variable the test process has from a child's environment.
pub fn scrub_aws(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a test server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server (`KILN_TEST_PG_URL`), given as `--db`.
    Postgres,
}

impl Db {
    /// A short name for markers and directories that must differ between the two variants.
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

/// How the server process is started.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Environment of the server process (e.g. storage credentials).
    pub env: Vec<(String, String)>,
    /// The address it listens on (the port is picked free); clients always use loopback.
    pub host: String,
    /// More flags for `kiln server`.
    pub args: Vec<String>,
    /// Start the server in the cluster's directory with `--data-dir server` (relative), as a
    /// user types it.
    pub relative_data_dir: bool,
    /// The server serves HTTPS (its `--tls-cert`/`--tls-key` are in `args`) with a certificate
    /// this CA signed: clients and agents use `https://` and `--ca-file` with it.
    pub ca_file: Option<PathBuf>,
}

impl ServerOptions {
    /// The same options, with the state in `db`.
    pub fn on(mut self, db: Db) -> Self {
        if db == Db::Postgres {
            let url = kiln_store::conformance::fresh_pg_database();
            self.args.extend(["--db".to_string(), url]);
        }
        self
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            env: Vec::new(),
            host: "127.0.0.1".into(),
            args: Vec::new(),
            relative_data_dir: false,
            ca_file: None,
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub opts: ServerOptions,
    server: Option<Proc>,
    agents: Vec<(String, Proc)>,
    /// Every line the server process wrote to stderr (its log), across restarts.
    pub server_log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Cluster {
    pub fn new() -> Self {
        Self::with_options(ServerOptions::default())
    }

    pub fn with_env(env: Vec<(String, String)>) -> Self {
        Self::with_options(ServerOptions {
            env,
            ..ServerOptions::default()
        })
    }

    /// A cluster whose server keeps its state in `db`.
    pub fn on(db: Db) -> Self {
        Self::with_options(ServerOptions::default().on(db))
    }

    pub fn with_options(opts: ServerOptions) -> Self {
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            opts,
            server: None,
            agents: Vec::new(),
            server_log: Default::default(),
        };
        c.start_server();
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    pub fn url(&self) -> String {
        let scheme = if self.opts.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// `--ca-file FILE` for clients and agents of a server with TLS, else nothing.
    fn ca_args(&self) -> Vec<PathBuf> {
        match &self.opts.ca_file {
            Some(ca) => vec!["--ca-file".into(), ca.clone()],
            None => Vec::new(),
        }
    }

    /// Starts the server and waits until it says it listens.
    pub fn start_server(&mut self) {
        let mut cmd = Command::new(kiln_bin());
        // Storage settings reach the server only through `opts.env`, never from the test's own
        // environment.
        scrub_aws(&mut cmd);
        let mut child = cmd
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .args([
                "server",
                "--listen",
                &format!("{}:{}", self.opts.host, self.port),
            ])
            .current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(if self.opts.relative_data_dir {
                PathBuf::from("server")
            } else {
                self.data()
            })
            .args([
                "--heartbeat-interval",
                "1",
                "--heartbeat-timeout",
                "3",
                "--cpus",
                "1",
            ])
            .args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // The server's log goes to the test's output, which the test harness shows on failure.
        let log = std::sync::Arc::clone(&self.server_log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("the server did not start");
            if line.contains("listening on") {
                break;
            }
        }
        self.server = Some(Proc(child));
    }

    pub fn kill_server(&mut self) {
        self.server = None;
    }

    pub fn start_agent(&mut self, name: &str, slots: u32) {
        let mut cmd = Command::new(kiln_bin());
        scrub_aws(&mut cmd);
        let child = cmd
            .args(["agent", "--server", &self.url(), "--name", name])
            .args(["--compute-env", "pool", "--slots", &slots.to_string()])
            .arg("--token-file")
            .arg(self.data().join("agent-token"))
            .arg("--work-dir")
            .arg(self.dir.path().join(name))
            .args(self.ca_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.agents.push((name.to_string(), Proc(child)));
    }

    pub fn kill_agent(&mut self, name: &str) {
        self.agents.retain(|(n, _)| n != name);
    }

    /// Runs a client command against the server; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(kiln_bin())
            .args(args)
            .args(["--server", &self.url()])
            .arg("--token-file")
            .arg(self.data().join("admin-token"))
            .args(self.ca_args())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a client command against the server; returns (exit code, stdout).
    pub fn kiln(&self, args: &[&str]) -> (i32, String) {
        let (code, out, _) = self.run(args);
        (code, out)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let (code, out) = self.kiln(&a);
        assert_eq!(code, 0, "kiln {args:?}: {out}");
        serde_json::from_str(&out).unwrap()
    }

    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn submit(&self, spec: &Path) -> String {
        let v = self.json(&["submit", spec.to_str().unwrap()]);
        v["id"].as_str().unwrap().to_string()
    }

    pub fn wait_job(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, out) = self.kiln(&["job", "show", id, "-o", "json"]);
            if code == 0 {
                let v: Value = serde_json::from_str(&out).unwrap();
                if done(&v) {
                    return v;
                }
                assert!(Instant::now() < deadline, "job {id} did not get there: {v}");
            } else {
                assert!(Instant::now() < deadline, "server unreachable: {out}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every instance record of a task, following the cursors.
    pub fn instances(&self, id: &str, task: &str) -> Vec<Value> {
        let client = reqwest::blocking::Client::new();
        let token = std::fs::read_to_string(self.data().join("admin-token")).unwrap();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v1/jobs/{id}/tasks/{task}/instances?limit=1000",
                self.url()
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = client
                .get(url)
                .bearer_auth(token.trim())
                .send()
                .unwrap()
                .json()
                .unwrap();
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_string()),
                None => return out,
            }
        }
    }

    /// A raw admin request to the REST API: (status, JSON body or null).
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let token = std::fs::read_to_string(self.data().join("admin-token")).unwrap();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(token.trim());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }
}

pub fn state(v: &Value) -> &str {
    v["state"].as_str().unwrap_or("")
}

/// The nodes of one compute environment, as `kiln nodes` lists them.
pub fn env_nodes(c: &Cluster, env: &str) -> Vec<Value> {
    c.json(&["nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["compute_env"] == env)
        .cloned()
        .collect()
}

/// Polls `ok` every 100 ms until it holds; panics naming `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The image the container tests run: built locally with no registry by
/// `scripts/test-images.sh` (busybox and the libraries a bind-mounted kiln binary needs).
pub const TEST_IMAGE: &str = "kiln-test/busybox:1";

/// Makes sure a Docker Engine answers and [`TEST_IMAGE`] exists, building it (once per test
/// binary) if not; fails loudly without Docker. Returns the image's name.
pub fn test_image() -> &'static str {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("the container tests need the docker CLI: {e}"))
        };
        let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            info.status.success(),
            "the container tests need a Docker Engine, and none answers: {}",
            String::from_utf8_lossy(&info.stderr)
        );
        if docker(&["image", "inspect", TEST_IMAGE]).status.success() {
            return;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-images.sh");
        let out = Command::new(script).arg(kiln_bin()).output().unwrap();
        assert!(
            out.status.success(),
            "{script} could not build {TEST_IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TEST_IMAGE
}

/// The private registry of the test run (`scripts/services/registry.sh`): (`HOST:PORT`, user,
/// password). Fails loudly when the tests were started without it.
pub fn test_registry() -> (String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the registry tests need the private registry that \
                 scripts/test.sh starts (or scripts/with-services.sh for one test)"
            )
        })
    };
    (
        var("KILN_TEST_REGISTRY"),
        var("KILN_TEST_REGISTRY_USER"),
        var("KILN_TEST_REGISTRY_PASSWORD"),
    )
}

/// Pushes [`TEST_IMAGE`] to the private registry as `REGISTRY/kiln-test/NAME:1` and removes
/// that reference from the engine again, so that running it needs a pull with credentials.
/// The login is kept in a Docker CLI configuration of its own, removed at once. Returns the
/// reference.
pub fn private_image(name: &str) -> String {
    let (registry, user, password) = test_registry();
    let image = format!("{registry}/kiln-test/{name}:1");
    let config = tempfile::tempdir().unwrap();
    let docker = |args: &[&str], input: Option<&str>| {
        let mut child = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("the registry tests need the docker CLI: {e}"));
        if let Some(text) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&["tag", test_image(), &image], None);
    docker(
        &["login", "-u", &user, "--password-stdin", &registry],
        Some(&password),
    );
    docker(&["push", "-q", &image], None);
    docker(&["rmi", &image], None);
    image
}
