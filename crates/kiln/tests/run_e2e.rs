//! End-to-end tests of `kiln run`: scheduling semantics seen from the outside (DESIGN §3, §4,
//! §5). Each test runs the real binary on a spec in a fresh state directory, parses the
//! `-o json` summary, and checks what the instances recorded in scratch files.
//!
//! Instances append one line per event to a shared file with `>>` (O_APPEND: each short line
//! is one write, so the file's line order is the order the events happened in).

// Tests may unwrap (clippy.toml allows it in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Sandbox, counts, wait_no_procs};

/// Position of the first line equal to `words`.
fn pos(recs: &[Vec<String>], words: &[&str]) -> usize {
    recs.iter()
        .position(|r| {
            r.iter()
                .map(String::as_str)
                .take(words.len())
                .eq(words.iter().copied())
        })
        .unwrap_or_else(|| panic!("no line {words:?} in {recs:?}"))
}

#[test]
fn diamond_dag_runs_in_dependency_order() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "diamond.yaml",
        r#"
name: diamond
dag: |
  a -> b, c   # fan-out
  b, c -> d   # fan-in
tasks:
  a: &t
    env: {OUT: "@DIR@/events"}
    command: |
      echo "start $BATCH_TASK_NAME $(date +%s%N)" >> "$OUT"
      sleep 0.2
      echo "end $BATCH_TASK_NAME $(date +%s%N)" >> "$OUT"
  b: *t
  c: *t
  d: *t
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.job_state(), ("SUCCEED".into(), None), "{out}");
    for t in ["a", "b", "c", "d"] {
        assert_eq!(out.task_state(t), ("SUCCEED".into(), None), "{t}: {out}");
        assert_eq!(out.counts(t), counts(&[("SUCCEED", 1)]), "{t}");
    }
    let ev = sb.records("events");
    assert_eq!(ev.len(), 8, "each task ran exactly once: {ev:?}");
    for (up, down) in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")] {
        assert!(
            pos(&ev, &["end", up]) < pos(&ev, &["start", down]),
            "{down} started before {up} ended: {ev:?}"
        );
        // The timestamps agree with the line order.
        let t_end: u128 = ev[pos(&ev, &["end", up])][2].parse().unwrap();
        let t_start: u128 = ev[pos(&ev, &["start", down])][2].parse().unwrap();
        assert!(
            t_end <= t_start,
            "{up} end {t_end} > {down} start {t_start}"
        );
    }
}

#[test]
fn array_task_respects_max_concurrency_and_runs_every_index_once() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "array.yaml",
        r#"
name: array
tasks:
  work:
    instances: 12
    max_concurrency: 3
    env: {OUT: "@DIR@/events"}
    command: |
      echo "start $BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_NUM $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      sleep 0.3
      echo "end $BATCH_TASK_INSTANCE_INDEX" >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.task_state("work"), ("SUCCEED".into(), None));
    assert_eq!(out.counts("work"), counts(&[("SUCCEED", 12)]));
    assert_eq!(out.task("work")["instances"], 12);

    let ev = sb.records("events");
    let mut running = 0i32;
    let mut max_running = 0;
    let mut started: BTreeMap<u32, u32> = BTreeMap::new();
    for r in &ev {
        let index: u32 = r[1].parse().unwrap();
        match r[0].as_str() {
            "start" => {
                running += 1;
                max_running = max_running.max(running);
                *started.entry(index).or_default() += 1;
                assert_eq!(r[2], "12", "BATCH_TASK_INSTANCE_NUM: {r:?}");
                assert_eq!(r[3], "1", "BATCH_TASK_INSTANCE_ATTEMPT: {r:?}");
            }
            "end" => running -= 1,
            other => panic!("unexpected line {other}"),
        }
    }
    assert!(
        max_running <= 3,
        "{max_running} instances ran at once: {ev:?}"
    );
    assert_eq!(max_running, 3, "the limit is used, not undershot: {ev:?}");
    assert_eq!(
        started,
        (0..12).map(|i| (i, 1)).collect(),
        "every index once: {ev:?}"
    );
    // Dispatch is in index order: the first three to start are 0, 1, 2.
    let first: BTreeSet<u32> = ev
        .iter()
        .filter(|r| r[0] == "start")
        .take(3)
        .map(|r| r[1].parse().unwrap())
        .collect();
    assert_eq!(first, BTreeSet::from([0, 1, 2]));
}

#[test]
fn flaky_instance_succeeds_on_its_second_attempt() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "flaky.yaml",
        r#"
name: flaky
tasks:
  work:
    instances: 3
    retries: 1
    env: {OUT: "@DIR@/attempts"}
    command: |
      echo "$BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      if [ "$BATCH_TASK_INSTANCE_INDEX" = 1 ] && [ "$BATCH_TASK_INSTANCE_ATTEMPT" = 1 ]; then
        exit 7
      fi
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.job_state(), ("SUCCEED".into(), None));
    assert_eq!(out.task_state("work"), ("SUCCEED".into(), None));
    assert_eq!(out.counts("work"), counts(&[("SUCCEED", 3)]));
    assert!(out.failed("work").is_empty(), "{out}");
    let mut attempts = sb.lines("attempts");
    attempts.sort();
    assert_eq!(attempts, ["0 1", "1 1", "1 2", "2 1"]);
}

#[test]
fn instance_that_always_fails_uses_every_retry_then_fails_the_job() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "failing.yaml",
        r#"
name: always-fails
tasks:
  work:
    retries: 2
    env: {OUT: "@DIR@/attempts"}
    command: |
      echo "$BATCH_TASK_INSTANCE_ATTEMPT" >> "$OUT"
      echo "boom on attempt $BATCH_TASK_INSTANCE_ATTEMPT" >&2
      exit 4
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.job_state(),
        ("FAILED".into(), Some("TASK_FAILED work".into()))
    );
    assert_eq!(
        out.task_state("work"),
        ("FAILED".into(), Some("INSTANCE_FAILED 0".into()))
    );
    assert_eq!(out.counts("work"), counts(&[("FAILED", 1)]));
    assert_eq!(sb.lines("attempts"), ["1", "2", "3"], "1 + 2 retries");
    let failed = out.failed("work");
    assert_eq!(failed.len(), 1, "{out}");
    let f = &failed[&0];
    assert_eq!(f["reason"], "EXIT_CODE 4");
    assert_eq!(f["exit_code"], 4);
    assert_eq!(f["attempt"], 3);
    // The summary points at the last attempt's captured stderr.
    let stderr = f["stderr"].as_str().expect("stderr path in summary");
    assert!(stderr.ends_with("0.3.stderr"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(stderr).unwrap(),
        "boom on attempt 3\n"
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "timeout.yaml",
        r#"
name: timeout
tasks:
  slow:
    timeout: 1s
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/started"}
    command: |
      echo started >> "$OUT"
      sleep 30 &
      sleep 30
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    assert_eq!(sb.lines("started"), ["started"]);
    assert_eq!(
        out.job_state(),
        ("FAILED".into(), Some("TASK_FAILED slow".into()))
    );
    assert_eq!(
        out.task_state("slow"),
        ("FAILED".into(), Some("INSTANCE_FAILED 0".into()))
    );
    let failed = out.failed("slow");
    assert_eq!(failed[&0]["reason"], "TIMED_OUT", "{out}");
    assert_eq!(failed[&0]["exit_code"], serde_json::Value::Null);
    // Both sleeps (the foreground one and the background child) are gone.
    wait_no_procs(&sb.mark, Duration::from_secs(5));
}

#[test]
fn pipelined_instances_start_before_the_upstream_task_ends() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "pipe.yaml",
        r#"
name: pipe
dag: a => b
tasks:
  a:
    instances: 4
    env: {OUT: "@DIR@/events"}
    command: |
      i=$BATCH_TASK_INSTANCE_INDEX
      echo "start a $i $(date +%s%N)" >> "$OUT"
      if [ "$i" = 3 ]; then sleep 2; else sleep 0.$((i + 1)); fi
      echo "end a $i $(date +%s%N)" >> "$OUT"
  b:
    instances: 4
    env: {OUT: "@DIR@/events"}
    command: |
      echo "start b $BATCH_TASK_INSTANCE_INDEX $(date +%s%N)" >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.counts("a"), counts(&[("SUCCEED", 4)]));
    assert_eq!(out.counts("b"), counts(&[("SUCCEED", 4)]));
    let ev = sb.records("events");
    let last_a = pos(&ev, &["end", "a", "3"]);
    for i in ["0", "1", "2", "3"] {
        assert!(
            pos(&ev, &["end", "a", i]) < pos(&ev, &["start", "b", i]),
            "b[{i}] started before a[{i}] ended: {ev:?}"
        );
    }
    for i in ["0", "1", "2"] {
        assert!(
            pos(&ev, &["start", "b", i]) < last_a,
            "b[{i}] waited for the whole of a: {ev:?}"
        );
    }
}

#[test]
fn on_failure_terminate_stops_the_siblings() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "terminate.yaml",
        r#"
name: terminate
tasks:
  t:
    instances: 6
    max_concurrency: 4
    on_failure: terminate
    env: {KILN_TEST_MARKER: "@MARK@", OUT: "@DIR@/started"}
    command: |
      echo "$BATCH_TASK_INSTANCE_INDEX" >> "$OUT"
      if [ "$BATCH_TASK_INSTANCE_INDEX" = 2 ]; then sleep 0.5; exit 5; fi
      sleep 30
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    assert_eq!(
        out.job_state(),
        ("FAILED".into(), Some("TASK_FAILED t".into()))
    );
    assert_eq!(
        out.task_state("t"),
        ("FAILED".into(), Some("INSTANCE_FAILED 2".into()))
    );
    assert_eq!(out.counts("t"), counts(&[("FAILED", 6)]));
    let failed = out.failed("t");
    assert_eq!(failed[&2]["reason"], "EXIT_CODE 5", "{out}");
    for i in [0, 1, 3] {
        assert_eq!(failed[&i]["reason"], "SIBLING_FAILED 2", "[{i}] {out}");
    }
    for i in [4, 5] {
        if let Some(f) = failed.get(&i) {
            assert_eq!(f["reason"], "SIBLING_FAILED 2", "[{i}] {out}");
        }
    }
    let mut started = sb.lines("started");
    started.sort();
    assert_eq!(
        started,
        ["0", "1", "2", "3"],
        "indexes 4 and 5 never started"
    );
    wait_no_procs(&sb.mark, Duration::from_secs(5));
}

#[test]
fn on_failure_interrupt_lets_the_siblings_finish() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "interrupt.yaml",
        r#"
name: interrupt
tasks:
  t:
    instances: 4
    on_failure: interrupt
    env: {OUT: "@DIR@/done"}
    command: |
      if [ "$BATCH_TASK_INSTANCE_INDEX" = 0 ]; then sleep 0.1; exit 4; fi
      sleep 0.6
      echo "$BATCH_TASK_INSTANCE_INDEX" >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.job_state(),
        ("FAILED_INTERRUPTED".into(), Some("TASK_FAILED t".into())),
        "{out}"
    );
    assert_eq!(
        out.task_state("t"),
        (
            "FAILED_INTERRUPTED".into(),
            Some("INSTANCE_FAILED 0".into())
        )
    );
    assert_eq!(out.counts("t"), counts(&[("FAILED", 1), ("SUCCEED", 3)]));
    let failed = out.failed("t");
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[&0]["reason"], "EXIT_CODE 4");
    let mut done = sb.lines("done");
    done.sort();
    assert_eq!(done, ["1", "2", "3"]);
}

const DEPENDENCY_SPEC: &str = r#"
name: deps
@POLICY@
dag: up -> down
tasks:
  up:
    command: exit 3
  down:
    env: {OUT: "@DIR@/down"}
    command: echo ran >> "$OUT"
"#;

#[test]
fn dependency_policy_finished_runs_downstream_of_a_failure() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "finished.yaml",
        &DEPENDENCY_SPEC.replace("@POLICY@", "dependency_policy: finished"),
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "the job still failed: {out}");
    assert_eq!(
        out.job_state(),
        ("FAILED".into(), Some("TASK_FAILED up".into()))
    );
    assert_eq!(
        out.task_state("up"),
        ("FAILED".into(), Some("INSTANCE_FAILED 0".into()))
    );
    assert_eq!(out.task_state("down"), ("SUCCEED".into(), None));
    assert_eq!(sb.lines("down"), ["ran"]);
}

#[test]
fn default_dependency_policy_fails_downstream_without_running_it() {
    let sb = Sandbox::new();
    let spec = sb.spec("succeeded.yaml", &DEPENDENCY_SPEC.replace("@POLICY@", ""));
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.job_state(),
        ("FAILED".into(), Some("TASK_FAILED up".into()))
    );
    assert_eq!(
        out.task_state("up"),
        ("FAILED".into(), Some("INSTANCE_FAILED 0".into()))
    );
    assert_eq!(
        out.task_state("down"),
        ("FAILED".into(), Some("UPSTREAM_FAILED up".into()))
    );
    assert_eq!(out.counts("down"), counts(&[("FAILED", 1)]));
    assert!(
        out.failed("down").is_empty(),
        "down never got an attempt: {out}"
    );
    assert!(sb.lines("down").is_empty(), "down never ran");
}

#[test]
fn dependency_policy_partly_succeeded_needs_one_upstream_success() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "partly.yaml",
        r#"
name: partly
dependency_policy: partly_succeeded
dag: |
  up -> down
  none -> never
tasks:
  up:
    instances: 3
    on_failure: interrupt
    command: test "$BATCH_TASK_INSTANCE_INDEX" != 1
  down:
    env: {OUT: "@DIR@/down"}
    command: echo ran >> "$OUT"
  none:
    command: exit 1
  never:
    command: "true"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.counts("up"), counts(&[("FAILED", 1), ("SUCCEED", 2)]));
    assert_eq!(out.task_state("down"), ("SUCCEED".into(), None));
    assert_eq!(sb.lines("down"), ["ran"]);
    assert_eq!(
        out.task_state("never"),
        ("FAILED".into(), Some("UPSTREAM_FAILED none".into()))
    );
}

#[test]
fn pipelined_downstream_instance_of_a_failed_upstream_instance_never_runs() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "pipe-fail.yaml",
        r#"
name: pipe-fail
dag: a => b
tasks:
  a:
    instances: 3
    on_failure: interrupt
    command: test "$BATCH_TASK_INSTANCE_INDEX" != 1
  b:
    instances: 3
    env: {OUT: "@DIR@/b"}
    command: echo "$BATCH_TASK_INSTANCE_INDEX" >> "$OUT"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.task_state("a"),
        (
            "FAILED_INTERRUPTED".into(),
            Some("INSTANCE_FAILED 1".into())
        )
    );
    assert_eq!(
        out.task_state("b"),
        ("FAILED".into(), Some("UPSTREAM_FAILED a".into()))
    );
    assert_eq!(out.counts("b"), counts(&[("FAILED", 1), ("SUCCEED", 2)]));
    let mut ran = sb.lines("b");
    ran.sort();
    assert_eq!(ran, ["0", "2"], "b[1] never ran");
}

#[test]
fn instance_sees_its_environment_and_a_fresh_work_dir_per_attempt() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "env.yaml",
        r#"
name: env-check
tasks:
  show:
    instances: 2
    retries: 1
    env: {OUT: "@DIR@/env", GREETING: "hi there"}
    command: |
      echo "$BATCH_TASK_INSTANCE_INDEX $BATCH_TASK_INSTANCE_ATTEMPT job=$BATCH_JOB_ID name=$BATCH_JOB_NAME task=$BATCH_TASK_NAME num=$BATCH_TASK_INSTANCE_NUM node=$BATCH_NODE_ID wd=$BATCH_WORK_DIR pwd=$(pwd) files=$(ls -A | wc -l) greeting=$GREETING" >> "$OUT"
      touch leftover
      # Instance 1 fails once: its second attempt must not see the first one's file.
      [ "$BATCH_TASK_INSTANCE_INDEX$BATCH_TASK_INSTANCE_ATTEMPT" != 11 ]
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    let job = out.summary["id"].as_str().unwrap().to_string();
    let work = sb.state_dir().join("work").join(&job).join("show");
    let mut lines = sb.lines("env");
    lines.sort();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, (index, attempt)) in lines.iter().zip([(0, 1), (1, 1), (1, 2)]) {
        let wd = work.join(format!("{index}.{attempt}"));
        let want = format!(
            "{index} {attempt} job={job} name=env-check task=show num=2 node=local wd={wd} pwd={wd} files=0 greeting=hi there",
            wd = wd.display()
        );
        assert_eq!(line, &want);
    }
    // A failed attempt's work dir is kept for inspection; succeeded ones are removed.
    assert!(work.join("1.1/leftover").exists());
    assert!(!work.join("0.1").exists());
    assert!(!work.join("1.2").exists());
}
