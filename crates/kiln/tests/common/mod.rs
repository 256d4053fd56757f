//! Shared helpers for the end-to-end tests of the `kiln` binary.
//!
//! Every test gets a [`Sandbox`]: a fresh temporary directory holding the state directory
//! (`state/`, passed as `--state-dir`), the spec files and the scratch files the test's
//! instances write (passed to them through `env:`). Specs are written with two placeholders:
//! `@DIR@` (the sandbox directory) and `@MARK@` (a marker unique to the sandbox, put into the
//! instances' environment as `KILN_TEST_MARKER` so that their processes can be found in /proc).
//!
//! Nothing sleeps to wait: [`wait_for`] polls a condition with a deadline.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The `kiln` binary under test.
pub fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// `kiln` as an assert_cmd command.
pub fn kiln() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("kiln").expect("the kiln binary is built")
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Process ids of live (non-zombie) processes whose environment holds
/// `KILN_TEST_MARKER=<mark>`: every process an instance started, children included.
pub fn procs_with_marker(mark: &str) -> Vec<u32> {
    let want = format!("KILN_TEST_MARKER={mark}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            // A zombie has an empty environ, so anything found here is still alive.
            pids.push(pid);
        }
    }
    pids
}

/// Waits until no process carries the marker (the instance processes are all gone).
pub fn wait_no_procs(mark: &str, timeout: Duration) {
    wait_for(&format!("no process with marker {mark}"), timeout, || {
        procs_with_marker(mark).is_empty()
    });
}

/// What one `kiln run -o json` did.
#[derive(Debug)]
pub struct RunOutput {
    pub code: i32,
    /// The parsed `-o json` summary (`Value::Null` when stdout was not JSON).
    pub summary: Value,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunOutput {
    /// The summary's entry for task `name`.
    pub fn task(&self, name: &str) -> &Value {
        self.summary["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .unwrap_or_else(|| panic!("no task `{name}` in summary:\n{self}"))
    }

    /// (state, reason) of task `name`.
    pub fn task_state(&self, name: &str) -> (String, Option<String>) {
        let t = self.task(name);
        (
            t["state"].as_str().unwrap_or_default().to_string(),
            t["reason"].as_str().map(str::to_string),
        )
    }

    /// Instance counts by state of task `name`.
    pub fn counts(&self, name: &str) -> BTreeMap<String, u64> {
        self.task(name)["counts"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (state, reason) of the job.
    pub fn job_state(&self) -> (String, Option<String>) {
        (
            self.summary["state"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            self.summary["reason"].as_str().map(str::to_string),
        )
    }

    /// The summary's failed instances of task `name`, by index.
    pub fn failed(&self, name: &str) -> BTreeMap<u64, Value> {
        self.summary["failed_instances"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|f| f["task"] == name)
                    .map(|f| (f["index"].as_u64().expect("index"), f.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Display for RunOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// `counts` literal: `counts(&[("SUCCEED", 3)])`.
pub fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A fresh directory per test: state dir, spec files, scratch files.
pub struct Sandbox {
    pub dir: TempDir,
    pub mark: String,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kiln-e2e-")
            .tempdir()
            .expect("temp dir");
        let mark = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kiln-e2e")
            .to_string();
        Sandbox { dir, mark }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `--state-dir` of this sandbox (not created by the test).
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes a spec, replacing `@DIR@` and `@MARK@`.
    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let text = text
            .replace("@DIR@", &self.dir.path().display().to_string())
            .replace("@MARK@", &self.mark);
        let path = self.path(name);
        std::fs::write(&path, text).expect("write spec");
        path
    }

    /// Lines of a scratch file (empty if it does not exist yet).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Lines of a scratch file split into words.
    pub fn records(&self, name: &str) -> Vec<Vec<String>> {
        self.lines(name)
            .iter()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// `kiln run SPEC --state-dir STATE -o json --cpus 16 [extra]`, to the end.
    ///
    /// `--cpus 16`: an instance asks for 1 CPU by default, so on a 2-core machine only two
    /// would run at once; the tests want their concurrency limits to be what limits them.
    pub fn run(&self, spec: &Path, extra: &[&str]) -> RunOutput {
        let started = Instant::now();
        let out = kiln()
            .arg("run")
            .arg(spec)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["-o", "json", "--cpus", "16"])
            .args(extra)
            .timeout(Duration::from_secs(120))
            .output()
            .expect("run kiln");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        RunOutput {
            code: out.status.code().unwrap_or(-1),
            summary: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Starts `kiln run SPEC --state-dir STATE -o json --cpus 16` in the background; stdout and stderr
    /// go to files in the sandbox (`NAME.stdout`, `NAME.stderr`).
    pub fn spawn(&self, spec: &Path, name: &str) -> Child {
        let stdout = std::fs::File::create(self.path(&format!("{name}.stdout"))).expect("stdout");
        let stderr = std::fs::File::create(self.path(&format!("{name}.stderr"))).expect("stderr");
        std::process::Command::new(kiln_bin())
            .arg("run")
            .arg(spec)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["-o", "json", "--cpus", "16"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn kiln")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Never leave instance processes behind, even when a test fails half-way.
        for pid in procs_with_marker(&self.mark) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Waits for a child to exit, with a deadline; kills it and panics when the deadline passes.
pub fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kiln did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal to a process with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}
