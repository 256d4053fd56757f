//! End-to-end tests of stopping `kiln run` part-way and resuming: after `kill -9` (a crash)
//! and after Ctrl-C (SIGINT). The stored state is read back with `kiln_store` to learn what
//! had durably succeeded, or was running, at the moment the runner died.

// Tests may unwrap (clippy.toml allows it in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Sandbox, counts, signal, wait_child, wait_for, wait_no_procs};
use kiln_core::state::State;
use kiln_store::{SqliteStore, Store};

/// `start|end INDEX ATTEMPT` lines, as (kind, index, attempt).
fn events(sb: &Sandbox, name: &str) -> Vec<(String, u32, u32)> {
    sb.records(name)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].parse().unwrap()))
        .collect()
}

/// The one job of a state directory: (id, instances SUCCEED, active instances -> attempt).
fn stored(db: &std::path::Path) -> (String, BTreeSet<u32>, BTreeMap<u32, u32>) {
    let store = SqliteStore::open(db).expect("open store");
    let rows = store.unfinished_jobs().expect("list");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let job = store.load_job(&rows[0].id).expect("load").expect("job");
    let mut succeeded = BTreeSet::new();
    let mut active = BTreeMap::new();
    for (index, inst, _) in &job.tasks[0].instances {
        if inst.state == State::Succeed {
            succeeded.insert(*index);
        } else if inst.state.is_active() {
            active.insert(*index, inst.attempt);
        }
    }
    (rows[0].id.clone(), succeeded, active)
}

#[test]
fn resume_after_kill_9_reruns_only_what_had_not_succeeded() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "resume.yaml",
        r#"
name: resume
tasks:
  work:
    instances: 20
    max_concurrency: 2
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo "start $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      sleep 0.3
      echo "end $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
"#,
    );
    let mut child = sb.spawn(&spec, "first");
    // The job is stored before anything runs: once an instance has ended, the store exists.
    wait_for("an instance to end", Duration::from_secs(30), || {
        sb.lines("log").iter().any(|l| l.starts_with("end"))
    });
    let db = sb.state_dir().join("kiln.db");
    wait_for(
        "3 instances to be stored SUCCEED",
        Duration::from_secs(30),
        || stored(&db).1.len() >= 3,
    );
    child.kill().expect("SIGKILL kiln");
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // What the store says at the moment of the crash.
    let (job_id, succeeded_before, active_before) = stored(&db);
    assert!(
        succeeded_before.len() >= 3,
        "some succeeded: {succeeded_before:?}"
    );
    assert!(succeeded_before.len() < 20, "not all: {succeeded_before:?}");
    assert!(
        !active_before.is_empty(),
        "something was running at the kill"
    );

    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("resuming"), "{out}");
    assert_eq!(
        out.summary["id"],
        job_id.as_str(),
        "the same job was resumed"
    );
    assert_eq!(out.job_state(), ("SUCCEED".into(), None));
    assert_eq!(out.counts("work"), counts(&[("SUCCEED", 20)]));

    let ev = events(&sb, "log");
    for index in 0..20u32 {
        let starts: Vec<u32> = ev
            .iter()
            .filter(|(k, i, _)| k == "start" && *i == index)
            .map(|e| e.2)
            .collect();
        let ends: Vec<u32> = ev
            .iter()
            .filter(|(k, i, _)| k == "end" && *i == index)
            .map(|e| e.2)
            .collect();
        if succeeded_before.contains(&index) {
            assert_eq!(
                starts,
                [1],
                "[{index}] succeeded before the kill: never again"
            );
            assert_eq!(ends, [1], "[{index}]");
        } else if let Some(&attempt) = active_before.get(&index) {
            // Killed with the runner (or finished unseen): runs again as the next attempt,
            // which is the one that succeeds.
            assert_eq!(attempt, 1, "[{index}]");
            assert!(
                starts.contains(&2),
                "[{index}] ran again as attempt 2: {starts:?}"
            );
            assert!(starts.iter().all(|a| *a <= 2), "[{index}] {starts:?}");
            assert_eq!(
                ends.iter().filter(|a| **a == 2).count(),
                1,
                "[{index}] succeeded once as attempt 2: {ends:?}"
            );
        } else {
            assert_eq!(starts, [1], "[{index}] dispatched after the resume, once");
            assert_eq!(ends, [1], "[{index}]");
        }
    }
    // The store keeps the interrupted attempt 1 of a re-run instance.
    let store = SqliteStore::open(&sb.state_dir().join("kiln.db")).expect("open store");
    for &index in active_before.keys() {
        let attempts = store.attempts(&job_id, 0, index).expect("attempts");
        let got: Vec<_> = attempts
            .iter()
            .map(|a| {
                (
                    a.attempt,
                    a.state.as_str(),
                    a.reason.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "FAILED", Some("INTERRUPTED".to_string())),
                (2, "SUCCEED", None)
            ],
            "[{index}]"
        );
    }
    drop(store);
    wait_no_procs(&sb.mark, Duration::from_secs(5));

    // A finished job cannot be resumed.
    let out = common::kiln()
        .args(["run", "--resume", &job_id, "--state-dir"])
        .arg(sb.state_dir())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already finished"), "{stderr}");
    assert!(stderr.contains(&job_id), "{stderr}");

    // Nor can an unknown one.
    let out = common::kiln()
        .args(["run", "--resume", "job-nosuchjb", "--state-dir"])
        .arg(sb.state_dir())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("job-nosuchjb"));
}

#[test]
fn ctrl_c_stops_the_instances_and_a_second_run_resumes() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "ctrlc.yaml",
        r#"
name: ctrlc
tasks:
  nap:
    instances: 3
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo "start $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      if [ "$BATCH_TASK_INSTANCE_ATTEMPT" = 1 ]; then sleep 30; fi
      echo "end $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
  after:
    depends_on: [nap]
    command: "true"
"#,
    );
    let mut child = sb.spawn(&spec, "first");
    wait_for("3 instances to start", Duration::from_secs(30), || {
        sb.lines("log").len() >= 3
    });
    let sent = Instant::now();
    signal(child.id(), "INT");
    let status = wait_child(&mut child, Duration::from_secs(15));
    let stopped_in = sent.elapsed();
    let stderr = std::fs::read_to_string(sb.path("first.stderr")).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stopped_in < Duration::from_secs(4),
        "took {stopped_in:?} to stop: {stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    wait_no_procs(&sb.mark, Duration::from_secs(5));
    // The interrupted run's summary shows an unfinished job.
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("first.stdout")).unwrap())
            .expect("json summary");
    let state = first["state"].as_str().unwrap();
    assert!(
        !matches!(state, "SUCCEED" | "FAILED" | "FAILED_INTERRUPTED"),
        "job is unfinished: {first}"
    );
    assert!(
        sb.lines("log").iter().all(|l| l.starts_with("start")),
        "nothing ended"
    );

    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("resuming"), "{out}");
    assert_eq!(out.summary["id"], first["id"], "the same job");
    assert_eq!(out.job_state(), ("SUCCEED".into(), None));
    assert_eq!(out.counts("nap"), counts(&[("SUCCEED", 3)]));
    assert_eq!(out.task_state("after"), ("SUCCEED".into(), None));
    let mut ends: Vec<String> = sb
        .lines("log")
        .into_iter()
        .filter(|l| l.starts_with("end"))
        .collect();
    ends.sort();
    assert_eq!(ends, ["end 0 2", "end 1 2", "end 2 2"]);
}

#[test]
fn fresh_starts_a_new_job_instead_of_resuming() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "fresh.yaml",
        r#"
name: fresh
tasks:
  nap:
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo "start $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      if [ "$BATCH_TASK_INSTANCE_ATTEMPT" = 1 ]; then sleep 30; fi
"#,
    );
    let mut child = sb.spawn(&spec, "first");
    wait_for("the instance to start", Duration::from_secs(30), || {
        !sb.lines("log").is_empty()
    });
    signal(child.id(), "INT");
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(15)).code(),
        Some(130)
    );
    // --fresh submits a new job: attempt 1 again, so it sleeps; stop it the same way.
    let mut child = std::process::Command::new(common::kiln_bin())
        .arg("run")
        .arg(&spec)
        .arg("--state-dir")
        .arg(sb.state_dir())
        .args(["--fresh", "-o", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(
        "the fresh job's instance to start",
        Duration::from_secs(30),
        || sb.lines("log").len() >= 2,
    );
    signal(child.id(), "INT");
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(15)).code(),
        Some(130)
    );
    assert_eq!(sb.lines("log"), ["start 1", "start 1"]);
    wait_no_procs(&sb.mark, Duration::from_secs(5));
}

#[test]
fn second_ctrl_c_kills_instances_that_ignore_sigterm() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "stubborn.yaml",
        r#"
name: stubborn
tasks:
  nap:
    instances: 2
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      trap '' TERM
      echo started >> "$OUT"
      sleep 30
"#,
    );
    let mut child = std::process::Command::new(common::kiln_bin())
        .arg("run")
        .arg(&spec)
        .arg("--state-dir")
        .arg(sb.state_dir())
        .args(["--kill-grace", "60", "--cpus", "4", "-o", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(sb.path("run.stderr")).unwrap())
        .spawn()
        .expect("spawn");
    wait_for("2 instances to start", Duration::from_secs(30), || {
        sb.lines("log").len() >= 2
    });
    signal(child.id(), "INT");
    wait_for("the stop notice", Duration::from_secs(10), || {
        std::fs::read_to_string(sb.path("run.stderr"))
            .unwrap_or_default()
            .contains("stopping")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the grace period is 60 s"
    );
    let sent = Instant::now();
    signal(child.id(), "INT");
    let status = wait_child(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    wait_no_procs(&sb.mark, Duration::from_secs(5));
}

#[test]
fn sigterm_stops_like_ctrl_c() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "term.yaml",
        r#"
name: term
tasks:
  nap:
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo started >> "$OUT"
      sleep 30
"#,
    );
    let mut child = sb.spawn(&spec, "run");
    wait_for("the instance to start", Duration::from_secs(30), || {
        !sb.lines("log").is_empty()
    });
    signal(child.id(), "TERM");
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(10)).code(),
        Some(130)
    );
    wait_no_procs(&sb.mark, Duration::from_secs(5));
}

#[test]

fn interrupted_run_does_not_report_running() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "stale.yaml",
        r#"
name: stale
tasks:
  nap:
    instances: 2
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo started >> "$OUT"
      sleep 30
"#,
    );
    let mut child = sb.spawn(&spec, "run");
    wait_for("2 instances to start", Duration::from_secs(30), || {
        sb.lines("log").len() >= 2
    });
    signal(child.id(), "INT");
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(10)).code(),
        Some(130)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("run.stdout")).unwrap()).unwrap();
    // Both instances are RUNNABLE (reason INTERRUPTED), waiting for a resume.
    assert_eq!(
        summary["tasks"][0]["counts"],
        serde_json::json!({"RUNNABLE": 2}),
        "{summary}"
    );
    assert_ne!(summary["tasks"][0]["state"], "RUNNING", "{summary}");
    assert_ne!(summary["state"], "RUNNING", "{summary}");
    let store = SqliteStore::open(&sb.state_dir().join("kiln.db")).unwrap();
    let row = store.unfinished_jobs().unwrap().remove(0);
    assert_ne!(row.state, State::Running, "stored job state");
    let job = store.load_job(&row.id).unwrap().unwrap();
    assert_ne!(
        job.tasks[0].state,
        Some(State::Running),
        "stored task state"
    );
}

#[test]

fn resume_after_kill_9_kills_attempts_started_just_before_the_crash() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "orphans.yaml",
        r#"
name: orphans
tasks:
  nap:
    instances: 100
    resources: {cpus: 0.1}
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/log"}
    command: |
      echo "start $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      if [ "$BATCH_TASK_INSTANCE_ATTEMPT" = 1 ]; then sleep 30; fi
"#,
    );
    let mut child = sb.spawn(&spec, "first");
    // Kill the runner the moment the first instance runs: the driver persists each attempt's
    // pid one tick after spawning it, so (with 100 instances dispatched at once) some
    // attempts are stored STARTING without a pid.
    wait_for("an instance to start", Duration::from_secs(30), || {
        !sb.lines("log").is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("resuming"), "{out}");
    // Every attempt 1 (sleep 30) must be gone once the resumed run is over: otherwise attempt 1
    // and attempt 2 of the same instance ran at the same time.
    let survivors = common::procs_with_marker(&sb.mark);
    assert!(
        survivors.is_empty(),
        "attempt-1 processes still running: {survivors:?}"
    );
}
