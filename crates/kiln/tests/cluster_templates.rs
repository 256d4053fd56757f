//! Task templates end to end: a real `kiln server` on loopback, driven by `kiln template …` and
//! `kiln submit`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `kiln server` process, killed when dropped.
struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `kiln` client command did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Server {
    /// Starts a server and waits until it says it listens.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(kiln_bin())
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("server"))
            .args(["--cpus", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Server { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("the server did not start");
            if line.contains("listening on") {
                return server;
            }
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs a client command against the server.
    fn kiln(&self, args: &[&str]) -> Run {
        let out = Command::new(kiln_bin())
            .args(args)
            .args(["--server", &format!("http://127.0.0.1:{}", self.port)])
            .arg("--token-file")
            .arg(self.dir.path().join("server").join("admin-token"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command with `-o json` that must succeed; its output.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let r = self.kiln(&a);
        assert_eq!(r.code, 0, "kiln {args:?}: {}{}", r.stdout, r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn template_create_list_submit_with_override_and_delete() {
    let s = Server::start();
    let base = s.file(
        "base.yaml",
        "name: base\ndescription: greets\ntask:\n  command: echo \"$GREETING from $BATCH_TASK_INSTANCE_INDEX\"\n  env: {GREETING: template}\n  timeout: 10m\n",
    );
    let r = s.kiln(&["template", "create", path(&base)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("template base created"), "{}", r.stdout);

    let list = s.json(&["template", "list"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["name"], "base");
    assert_eq!(items[0]["description"], "greets");
    assert_eq!(
        items[0]["task"]["command"],
        "echo \"$GREETING from $BATCH_TASK_INSTANCE_INDEX\""
    );
    assert_eq!(items[0]["task"]["timeout"], "10m", "the task as written");
    let table = s.kiln(&["template", "list"]);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("echo \"$GREETING"),
        "{}",
        table.stdout
    );

    // Creating it again is refused (exit 2, invalid input) and changes nothing.
    let again = s.file("again.yaml", "name: base\ntask:\n  command: \"false\"\n");
    let r = s.kiln(&["template", "create", path(&again)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);

    let job = s.file(
        "job.yaml",
        "name: uses\ntasks:\n  greet:\n    template: base\n    instances: 2\n    env: {GREETING: override}\n",
    );
    let done = s.json(&["submit", path(&job), "--wait"]);
    assert_eq!(done["state"], "SUCCEED", "{done}");
    assert_eq!(done["tasks"][0]["instances"], 2);
    let id = done["id"].as_str().unwrap();
    let r = s.kiln(&["logs", id, "greet", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "override from 1\n");

    // A template the server does not know: exit 2, naming the field.
    let bad = s.file(
        "bad.yaml",
        "name: bad\ntasks:\n  x:\n    template: missing\n",
    );
    let r = s.kiln(&["submit", path(&bad)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("tasks.x.template"), "{}", r.stderr);
    assert!(r.stderr.contains("missing"), "{}", r.stderr);

    let r = s.kiln(&["template", "delete", "base"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = s.kiln(&["template", "show", "base"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let list = s.json(&["template", "list"]);
    assert_eq!(list["items"], serde_json::json!([]));
}
