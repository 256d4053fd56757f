//! `kiln jobs`, `kiln job show`, `kiln logs` and `kiln why` with `--state-dir`: a `kiln run`
//! job's records read from its state directory, with no server, after the run and while it
//! goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Sandbox, kiln, wait_child, wait_for};
use serde_json::Value;

/// `kiln ARGS --state-dir STATE` → (exit code, stdout, stderr).
fn read(sb: &Sandbox, args: &[&str]) -> (i32, String, String) {
    let out = kiln()
        .args(args)
        .arg("--state-dir")
        .arg(sb.state_dir())
        .env_remove("KILN_SERVER")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (code, stdout, stderr) = read(sb, &all);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[test]
fn a_finished_run_is_read_from_its_state_directory() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "done.yaml",
        "name: done\ntasks:\n  hello: {instances: 2, command: 'echo hello $BATCH_TASK_INSTANCE_INDEX; echo oops >&2'}\n  bad: {command: 'exit 3'}\n",
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    let id = out.summary["id"].as_str().unwrap().to_string();

    let list = json(&sb, &["jobs"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (items[0]["id"].as_str(), items[0]["state"].as_str()),
        (Some(id.as_str()), Some("FAILED"))
    );

    let job = json(&sb, &["job", "show", &id]);
    assert_eq!(job["state"], "FAILED", "{job}");
    assert_eq!(job["reason"], "TASK_FAILED bad", "{job}");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 2, "{job}");

    let (code, stdout, _) = read(&sb, &["logs", &id, "hello", "1"]);
    assert_eq!((code, stdout.as_str()), (0, "hello 1\n"));
    let (code, stdout, _) = read(&sb, &["logs", &id, "hello", "0", "--stderr"]);
    assert_eq!((code, stdout.as_str()), (0, "oops\n"));

    let (code, stdout, _) = read(&sb, &["why", &id, "bad", "0"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "instance bad[0] is FAILED: EXIT_CODE 3");

    // Unknown things are input errors; an empty directory is not a state directory.
    let (code, _, stderr) = read(&sb, &["job", "show", "job-none"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = read(&sb, &["why", &id, "nope"]);
    assert_eq!(code, 2, "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let out = kiln()
        .args(["jobs", "--state-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the state directory"));
    assert!(
        !empty.path().join("kiln.db").exists(),
        "reading created nothing"
    );
}

#[test]
fn a_running_run_is_read_while_it_goes_on() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "slow.yaml",
        r#"
name: slow
tasks:
  wait:
    env: {GO: "@DIR@/go"}
    command: |
      echo started
      while [ ! -e "$GO" ]; do sleep 0.05; done
      echo finished
"#,
    );
    let mut child = sb.spawn(&spec, "run");
    let mut id = String::new();
    wait_for(
        "the run's job to be readable",
        Duration::from_secs(60),
        || {
            let (code, stdout, _) = read(&sb, &["jobs", "-o", "json"]);
            let Ok(list) = serde_json::from_str::<Value>(&stdout) else {
                return false;
            };
            match list["items"][0]["id"].as_str() {
                Some(found) if code == 0 => {
                    id = found.to_string();
                    true
                }
                _ => false,
            }
        },
    );
    wait_for("the instance to print", Duration::from_secs(60), || {
        read(&sb, &["logs", &id, "wait"]).1 == "started\n"
    });
    wait_for(
        "the instance to be RUNNING",
        Duration::from_secs(60),
        || json(&sb, &["why", &id, "wait", "0"])["state"] == "RUNNING",
    );
    let job = json(&sb, &["job", "show", &id]);
    assert_eq!(job["state"], "RUNNING", "{job}");

    // `logs -f` follows the attempt until it ends.
    let follow = std::process::Command::new(common::kiln_bin())
        .args(["logs", &id, "wait", "-f", "--state-dir"])
        .arg(sb.state_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(sb.path("go"), "").unwrap();
    let status = wait_child(&mut child, Duration::from_secs(60));
    assert!(status.success(), "the run failed");
    let out = follow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\nfinished\n");
    let job = json(&sb, &["job", "show", &id]);
    assert_eq!(job["state"], "SUCCEED", "{job}");
}
