//! The secret values of a run appear nowhere a user or another process could read them: a
//! `kiln server` (and an agent) run jobs that use a storage profile and a Tencent job carrying
//! `Authentications` and `Application.Docker` credentials; then every API answer of the run,
//! the CLI's output, the processes' stdout and stderr, `docker inspect` of every container of
//! the run, and every file under the data and work directories (the database included: its
//! secret fields are sealed) are searched for the storage secret key and the registry password.
//!
//! To cover a new place, add what it shows to the [`Evidence`] (`api`, `text`, `files_under`,
//! `containers`); to cover a new kind of secret, add it to [`SECRETS`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
use serde_json::{Value, json};
use support::{Proc, free_port, kiln_bin, private_image, test_image, test_registry, wait_until};

/// The registry password of the Tencent job (no registry checks it: the image is local).
const REGISTRY_PASSWORD: &str = "kiln-registry-pw-5b0d7e31c4";

/// What must never be found: the storage secret key, the Tencent job's registry password, and
/// the password of the private registry (`scripts/services/registry.sh`) a task's image is
/// pulled from with a `docker-registry` profile.
fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("the storage secret key", SECRET_KEY.to_string()),
        (
            "the Tencent job's registry password",
            REGISTRY_PASSWORD.to_string(),
        ),
        ("the private registry's password", test_registry().2),
    ]
}

/// Everything the run showed, each piece with where it came from.
#[derive(Default)]
struct Evidence {
    pieces: Vec<(String, Vec<u8>)>,
}

impl Evidence {
    fn text(&mut self, from: impl Into<String>, text: impl Into<Vec<u8>>) {
        self.pieces.push((from.into(), text.into()));
    }

    /// An admin GET of the REST API; returns the answer.
    fn api(&mut self, s: &Server, path: &str) -> Value {
        let (status, body) = s.get(path);
        assert!(status < 500, "GET {path}: {status} {body}");
        self.text(format!("GET {path}"), body.to_string());
        body
    }

    /// Every file below `dir`, whatever it holds.
    fn files_under(&mut self, dir: &Path) {
        for entry in walk(dir) {
            if let Ok(bytes) = std::fs::read(&entry) {
                self.text(format!("file {}", entry.display()), bytes);
            }
        }
    }

    /// `docker inspect` of every container labelled `kiln.managed` whose labels name `job`.
    fn containers(&mut self, job: &str) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            "label=kiln.managed=true",
            "--filter",
            &format!("label=kiln.job={job}"),
        ]);
        for id in ids.split_whitespace() {
            self.text(format!("docker inspect {id}"), docker(&["inspect", id]));
        }
    }

    fn assert_clean(&self) {
        let mut found = Vec::new();
        let secrets = secrets();
        for (from, bytes) in &self.pieces {
            for (what, secret) in &secrets {
                if contains(bytes, secret.as_bytes()) {
                    found.push(format!("{what} in {from}"));
                }
            }
        }
        assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `kiln server` whose stdout and stderr go to files (read at the end).
struct Server {
    url: String,
    data: PathBuf,
    token: String,
    _proc: Proc,
}

impl Server {
    fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None)
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn submit(&self, body: &str) -> String {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/yaml")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap();
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    fn wait_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (_, v) = self.get(&format!("/v1/jobs/{id}"));
            if matches!(v["state"].as_str(), Some("SUCCEED" | "FAILED")) {
                return v;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CLI against this server: (exit code, stdout + stderr).
    fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(kiln_bin())
            .args(args)
            .args(["--server", &self.url])
            .arg("--token-file")
            .arg(self.data.join("admin-token"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }
}

/// Environment of the processes: no credentials at all (nor the test's own registry login);
/// only the endpoint a job's own keys (Tencent `Authentications`) are used with.
fn clean_env(cmd: &mut Command, endpoint: &str) {
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        // The test's own knowledge of the private registry's login.
        "KILN_TEST_REGISTRY_USER",
        "KILN_TEST_REGISTRY_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION);
}

fn start_server(dir: &Path, endpoint: &str) -> Server {
    let port = free_port();
    let data = dir.join("data");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = Command::new(kiln_bin());
    clean_env(&mut cmd, endpoint);
    let child = cmd
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .args(["--heartbeat-interval", "1", "--cpus", "2"])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(File::create(logs.join("server.out")).unwrap())
        .stderr(File::create(logs.join("server.err")).unwrap())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let url = format!("http://127.0.0.1:{port}");
    wait_until(30, "the server to listen", || {
        data.join("admin-token").exists()
            && reqwest::blocking::get(format!("{url}/v1/health"))
                .is_ok_and(|r| r.status().is_success())
    });
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        url,
        data,
        token,
        _proc: proc,
    }
}

fn start_agent(dir: &Path, s: &Server, endpoint: &str) -> Proc {
    let logs = dir.join("logs");
    let mut cmd = Command::new(kiln_bin());
    clean_env(&mut cmd, endpoint);
    let child = cmd
        .args(["agent", "--server", &s.url, "--name", "static-1"])
        .args(["--compute-env", "pool", "--slots", "1"])
        .arg("--token-file")
        .arg(s.data.join("agent-token"))
        .arg("--work-dir")
        .arg(dir.join("agent-work"))
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(File::create(logs.join("agent.out")).unwrap())
        .stderr(File::create(logs.join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    Proc(child)
}

#[test]
fn no_secret_is_found_in_any_answer_output_container_or_file_of_a_run() {
    let image = test_image();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s3 = rt.block_on(TestServer::start()).unwrap();
    let bucket = s3.create_bucket("leak-test").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    std::fs::write(bucket.join("in/words.txt"), "alpha\nbeta\ngamma\n").unwrap();
    let endpoint = s3.endpoint();

    let dir = tempfile::tempdir().unwrap();
    let s = start_server(dir.path(), &endpoint);
    let agent = start_agent(dir.path(), &s, &endpoint);
    let mut ev = Evidence::default();

    // A storage profile holding the key.
    let profile = json!({
        "name": "lab", "kind": "s3", "endpoint": endpoint, "region": REGION,
        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY
    });
    let (status, created) = s.request(reqwest::Method::POST, "/v1/storage-profiles", Some(profile));
    assert_eq!(status, 201, "{created}");
    ev.text("POST /v1/storage-profiles", created.to_string());
    // A registry login, for the images of the private registry.
    let (registry, user, password) = test_registry();
    let login = json!({"name": "private", "kind": "docker-registry", "server": registry,
                       "username": user, "password": password});
    let (status, created) = s.request(reqwest::Method::POST, "/v1/storage-profiles", Some(login));
    assert_eq!(status, 201, "{created}");
    ev.text("POST /v1/storage-profiles (registry)", created.to_string());
    let private = private_image("leak-private");

    // A native job: a task mapping through the profile on the built-in executor, and one on
    // the agent, which is given the profile's settings over the agent protocol.
    let native = s.submit(
        &("name: profiled\ntasks:\n  count:\n    command: \"mkdir -p out && wc -l < in/words.txt > out/count.txt && env && echo counted\"\n    storage_profile: lab\n    inputs: [{source: 's3://leak-test/in/', target: in/}]\n    outputs: [{source: out/, target: 's3://leak-test/native/'}]\n    stdout: 's3://leak-test/logs/'\n  remote:\n    compute_env: pool\n    command: \"mkdir -p out && cp in/words.txt out/ && env && echo on the agent\"\n    storage_profile: lab\n    inputs: [{source: 's3://leak-test/in/', target: in/}]\n    outputs: [{source: out/, target: 's3://leak-test/agent/'}]\n    stdout: 's3://leak-test/alogs/'\n".to_string()
            // In a container of an image pulled with the registry login; it sleeps so that
            // its container can be inspected.
            + &format!(
                "  pulled:\n    image: '{private}'\n    command: \"env && sleep 3 && echo pulled\"\n"
            )),
    );

    // A Tencent job carrying its own keys and a registry login, in a container of the
    // built-in executor; it sleeps so that its container can be inspected.
    let tencent = json!({"Job": {"JobName": "tencent-keys", "Tasks": [{
        "TaskName": "fetch",
        "Application": {
            "DeliveryForm": "LOCAL",
            "Command": "mkdir -p out && wc -l < in/words.txt > out/count.txt && env && sleep 3 && echo fetched",
            "Docker": {"Image": image, "User": "robot", "Password": REGISTRY_PASSWORD,
                       "Server": "registry.kiln.invalid"}
        },
        "Authentications": [{"Scene": "COS", "SecretId": ACCESS_KEY, "SecretKey": SECRET_KEY}],
        "InputMappings": [{"SourcePath": "s3://leak-test/in/", "DestinationPath": "in/"}],
        "OutputMappings": [{"SourcePath": "out/", "DestinationPath": "s3://leak-test/tencent/"}],
        "RedirectInfo": {"StdoutRedirectPath": "s3://leak-test/tlogs/"}
    }]}});
    let tencent = s.submit(&tencent.to_string());

    // Inspect the containers of both jobs while they run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut unseen = vec![tencent.clone(), native.clone()];
    while !unseen.is_empty() && Instant::now() < deadline {
        unseen.retain(|job| {
            let running = !docker(&[
                "ps",
                "-q",
                "--filter",
                "label=kiln.managed=true",
                "--filter",
                &format!("label=kiln.job={job}"),
            ])
            .trim()
            .is_empty();
            if running {
                ev.containers(job);
            }
            !running
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(unseen.is_empty(), "the containers of {unseen:?} never ran");
    // Node containers of the server, if any.
    for id in docker(&["ps", "-aq", "--filter", "label=kiln.role=node"]).split_whitespace() {
        ev.text(format!("docker inspect {id}"), docker(&["inspect", id]));
    }

    let native_job = s.wait_done(&native);
    let tencent_job = s.wait_done(&tencent);
    let mut answers = Vec::new();
    for (id, tasks) in [
        (&native, &["count", "remote", "pulled"][..]),
        (&tencent, &["fetch"][..]),
    ] {
        answers.push(ev.api(&s, &format!("/v1/jobs/{id}")));
        ev.api(&s, &format!("/v1/jobs/{id}/why"));
        for t in tasks {
            let page = ev.api(&s, &format!("/v1/jobs/{id}/tasks/{t}/instances"));
            answers.push(page);
            ev.api(&s, &format!("/v1/jobs/{id}/tasks/{t}/instances/0/logs"));
            for args in [
                vec!["logs", id.as_str(), t],
                vec!["logs", id.as_str(), t, "--stderr"],
            ] {
                let (_, out) = s.cli(&args);
                ev.text(format!("kiln {}", args.join(" ")), out);
            }
        }
        for args in [
            vec!["job", "show", id.as_str()],
            vec!["job", "show", id.as_str(), "-o", "json"],
            vec!["why", id.as_str()],
        ] {
            let (_, out) = s.cli(&args);
            ev.text(format!("kiln {}", args.join(" ")), out);
        }
    }
    assert_eq!(native_job["state"], "SUCCEED", "{answers:#?}");
    assert_eq!(tencent_job["state"], "SUCCEED", "{answers:#?}");
    // The Tencent job's keys, not the server's (it has none), reached the bucket.
    assert_eq!(
        std::fs::read_to_string(bucket.join("tencent/count.txt"))
            .unwrap()
            .trim(),
        "3"
    );
    assert!(
        bucket.join("agent/words.txt").exists(),
        "the agent's output"
    );
    ev.files_under(&bucket.join("alogs"));
    let logs: Vec<PathBuf> = walk(&bucket.join("tlogs"));
    assert_eq!(logs.len(), 1, "{logs:?}");
    ev.files_under(&bucket.join("logs"));
    ev.files_under(&bucket.join("tlogs"));

    for path in [
        "/v1/jobs",
        "/v1/storage-profiles",
        "/v1/storage-profiles/lab",
        "/v1/nodes",
        "/v1/compute-envs",
        "/v1/task-templates",
    ] {
        ev.api(&s, path);
    }
    for args in [
        vec!["jobs"],
        vec!["storage", "list"],
        vec!["storage", "show", "lab"],
        vec!["storage", "show", "lab", "-o", "json"],
        vec!["nodes"],
    ] {
        let (_, out) = s.cli(&args);
        ev.text(format!("kiln {}", args.join(" ")), out);
    }

    // Stop the processes so that their output is complete.
    drop(agent);
    drop(s);
    ev.files_under(&dir.path().join("logs"));
    ev.files_under(&dir.path().join("data"));
    ev.files_under(&dir.path().join("agent-work"));
    assert!(
        ev.pieces
            .iter()
            .any(|(from, _)| from.ends_with("server.err")),
        "the server's output was collected"
    );
    ev.assert_clean();
}
