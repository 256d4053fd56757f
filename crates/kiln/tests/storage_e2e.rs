//! Remote storage end to end: `kiln run` against a real S3-compatible server (s3s-fs, started
//! in-process on loopback), configured through the standard AWS environment variables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kiln_storage::testing::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};
use serde_json::Value;

fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// Runs `kiln run SPEC -o json` against the server; blocking, so call it off the runtime.
fn run(server: &str, dir: &Path, spec: &str) -> Output {
    let file = dir.join("job.yaml");
    std::fs::write(&file, spec).unwrap();
    Command::new(kiln_bin())
        .arg("run")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--cpus", "4", "-o", "json"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", server)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

async fn run_async(server: String, dir: PathBuf, spec: String) -> (i32, Value, String) {
    let out = tokio::task::spawn_blocking(move || run(&server, &dir, &spec))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET_KEY), "the secret leaked: {text}");
    }
    let summary = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), summary, stderr)
}

fn object(server: &TestServer, bucket: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(server.root().join(bucket).join(key)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_shards_merge_through_a_bucket() {
    let server = TestServer::start().await.unwrap();
    let bucket = server.create_bucket("data").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    for p in 0..4 {
        let lines: String = (0..10).map(|i| format!("part {p} line {i}\n")).collect();
        std::fs::write(bucket.join(format!("in/part-{p}.txt")), lines).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"
name: shards
dag: |
  split -> count -> merge
tasks:
  split:
    command: mkdir -p out && cat in/*.txt | split -l 10 -d -a 1 - out/shard.
    inputs: [{source: "s3://data/in/", target: in/}]
    outputs: [{source: out/, target: "s3://data/shards/"}]
  count:
    instances: 4
    command: mkdir -p out && wc -l < in/shard.$BATCH_TASK_INSTANCE_INDEX > out/count.$BATCH_TASK_INSTANCE_INDEX && echo counted $BATCH_TASK_INSTANCE_INDEX
    inputs: [{source: "s3://data/shards/", target: in/}]
    outputs: [{source: out/, target: "s3://data/counts/"}]
    stdout: "s3://data/logs/"
    stderr: "s3://data/logs/"
  merge:
    command: cat counts/* | awk '{s += $1} END {print s}' > total && test "$(cat total)" = 40
    inputs: [{source: "s3://data/counts/", target: counts/}]
    outputs: [{source: total, target: "s3://data/result/total"}]
"#;
    let (code, summary, stderr) =
        run_async(server.endpoint(), dir.path().to_path_buf(), spec.into()).await;
    assert_eq!(code, 0, "{stderr}\n{summary}");
    assert_eq!(
        object(&server, "data", "result/total").as_deref(),
        Some("40\n")
    );
    let id = summary["id"].as_str().unwrap();
    for i in 0..4 {
        let out = object(&server, "data", &format!("logs/stdout.{id}.count.{i}.log"));
        assert_eq!(out, Some(format!("counted {i}\n")));
        let err = object(&server, "data", &format!("logs/stderr.{id}.count.{i}.log"));
        assert_eq!(
            err.as_deref(),
            Some(""),
            "an empty stderr still leaves its object"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_fails_before_the_command_runs() {
    let server = TestServer::start().await.unwrap();
    server.create_bucket("data").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let spec = format!(
        "name: missing\ntasks:\n  t:\n    command: touch {}\n    inputs: [{{source: \"s3://data/missing/\", target: in/}}]\n",
        marker.display()
    );
    let (code, summary, stderr) =
        run_async(server.endpoint(), dir.path().to_path_buf(), spec).await;
    assert_eq!(code, 1, "{stderr}\n{summary}");
    let reason = summary["failed_instances"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("INPUT_MAPPING_FAILED s3://data/missing/"),
        "{reason}"
    );
    assert!(!marker.exists(), "the command must not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_leaves_its_logs_even_failed_and_timed_out_ones() {
    let server = TestServer::start().await.unwrap();
    server.create_bucket("logs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"
name: logged
tasks:
  flaky:
    retries: 1
    on_failure: interrupt
    command: echo out $BATCH_TASK_INSTANCE_ATTEMPT; echo err >&2; exit 3
    stdout: "s3://logs/l/"
    stderr: "s3://logs/l/${BATCH_JOB_ID}-${BATCH_TASK_NAME}-${BATCH_TASK_INSTANCE_INDEX}.${BATCH_TASK_INSTANCE_ATTEMPT}.err"
  slow:
    timeout: 1s
    on_failure: interrupt
    command: echo before; sleep 30
    stdout: "s3://logs/l/"
"#;
    let (code, summary, stderr) =
        run_async(server.endpoint(), dir.path().to_path_buf(), spec.into()).await;
    assert_eq!(code, 1, "{stderr}\n{summary}");
    let id = summary["id"].as_str().unwrap();
    assert_eq!(
        object(&server, "logs", &format!("l/stdout.{id}.flaky.0.log")).as_deref(),
        Some("out 1\n")
    );
    assert_eq!(
        object(
            &server,
            "logs",
            &format!("l/stdout.{id}.flaky.0.attempt-2.log")
        )
        .as_deref(),
        Some("out 2\n")
    );
    for attempt in [1, 2] {
        assert_eq!(
            object(&server, "logs", &format!("l/{id}-flaky-0.{attempt}.err")).as_deref(),
            Some("err\n")
        );
    }
    assert_eq!(
        object(&server, "logs", &format!("l/stdout.{id}.slow.0.log")).as_deref(),
        Some("before\n"),
        "a timed-out attempt's output is uploaded too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_at_upload_time_is_output_mapping_failed() {
    let mut server = TestServer::start().await.unwrap();
    server.create_bucket("out").unwrap();
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let started = dir.path().join("started");
    // The command waits for the test to stop the server, then ends well; only its upload fails.
    let spec = format!(
        "name: dead\ntasks:\n  t:\n    command: mkdir -p out && echo r > out/r && touch {} && while ! test -e {}; do sleep 0.05; done\n    outputs: [{{source: out/, target: \"s3://out/r/\"}}]\n",
        started.display(),
        go.display()
    );
    let job = tokio::spawn(run_async(endpoint, dir.path().to_path_buf(), spec));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the instance did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.stop().await;
    std::fs::write(&go, "").unwrap();
    let (code, summary, stderr) = job.await.unwrap();
    assert_eq!(code, 1, "{stderr}\n{summary}");
    let failed = &summary["failed_instances"][0];
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("OUTPUT_MAPPING_FAILED s3://out/r/"),
        "{reason}"
    );
    assert_eq!(
        failed["exit_code"], 0,
        "the command's own exit code is kept"
    );
    // The outputs stay on the node for a later retry.
    let kept: Vec<_> = walk(&dir.path().join("state/work"))
        .into_iter()
        .filter(|p| p.ends_with("out/r"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mappings_read_and_write_a_shared_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(shared.join("in")).unwrap();
    std::fs::write(shared.join("in/a.txt"), "one\ntwo\n").unwrap();
    let spec = format!(
        r#"
name: nfs
tasks:
  t:
    instances: 2
    command: mkdir -p out && wc -l < in/a.txt > out/n.$BATCH_TASK_INSTANCE_INDEX && echo done
    inputs: [{{source: "file://{root}/in/", target: in/}}]
    outputs: [{{source: out/, target: "file://{root}/out/"}}]
    stdout: "file://{root}/logs/"
"#,
        root = shared.display()
    );
    // No object storage involved: the endpoint is never contacted.
    let (code, summary, stderr) =
        run_async("http://127.0.0.1:9".into(), dir.path().to_path_buf(), spec).await;
    assert_eq!(code, 0, "{stderr}\n{summary}");
    for i in 0..2 {
        let n = std::fs::read_to_string(shared.join(format!("out/n.{i}"))).unwrap();
        assert_eq!(n.trim(), "2");
    }
    let id = summary["id"].as_str().unwrap();
    let log = std::fs::read_to_string(shared.join(format!("logs/stdout.{id}.t.1.log"))).unwrap();
    assert_eq!(log, "done\n");
    assert_eq!(
        std::fs::read_to_string(shared.join("in/a.txt")).unwrap(),
        "one\ntwo\n",
        "the source is left as it was"
    );
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_output_uploads_in_bounded_memory() {
    let server = TestServer::start().await.unwrap();
    server.create_bucket("big").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (held, go) = (dir.path().join("held"), dir.path().join("go"));
    // `big` writes and uploads 1 GiB; `hold` then keeps the runner alive so its peak memory can
    // be read after the upload.
    let spec = format!(
        r#"
name: big
dag: big -> hold
tasks:
  big:
    command: mkdir -p out && head -c 1073741824 /dev/zero > out/blob
    outputs: [{{source: out/, target: "s3://big/o/"}}]
  hold:
    command: touch {held} && while ! test -e {go}; do sleep 0.05; done
"#,
        held = held.display(),
        go = go.display()
    );
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, spec).unwrap();
    let mut child = Command::new(kiln_bin())
        .arg("run")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--cpus", "2", "-o", "json"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !held.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload did not finish"
        );
        if let Ok(Some(status)) = child.try_wait() {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                use std::io::Read;
                let _ = o.read_to_string(&mut out);
            }
            panic!("kiln ended early: {status}: {out}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let peak = peak_kib(child.id()).unwrap();
    std::fs::write(&go, "").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(server.root().join("big/o/blob"))
        .unwrap()
        .len();
    assert_eq!(size, 1 << 30);
    assert!(
        peak < 128 * 1024,
        "peak memory {peak} KiB while uploading 1 GiB"
    );
}

/// `kiln run` of a Tencent job carrying its own COS keys (`Authentications`): with only the
/// endpoint in its environment, the job's keys map its storage; the state directory keeps them
/// sealed, and the run's output never shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_run_maps_with_a_tencent_jobs_own_keys() {
    let server = TestServer::start().await.unwrap();
    let bucket = server.create_bucket("tjob").unwrap();
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    std::fs::write(bucket.join("in/words.txt"), "a\nb\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({"JobName": "keys", "Tasks": [{
        "TaskName": "count",
        "Application": {"DeliveryForm": "LOCAL", "Command": "mkdir -p out && wc -l < in/words.txt > out/n.txt"},
        "Authentications": [{"Scene": "COS", "SecretId": ACCESS_KEY, "SecretKey": SECRET_KEY}],
        "InputMappings": [{"SourcePath": "s3://tjob/in/", "DestinationPath": "in/"}],
        "OutputMappings": [{"SourcePath": "out/", "DestinationPath": "s3://tjob/out/"}]
    }]});
    let file = dir.path().join("job.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let (endpoint, state) = (server.endpoint(), dir.path().join("state"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(kiln_bin())
            .arg("run")
            .arg(&file)
            .arg("--state-dir")
            .arg(&state)
            .args(["-o", "json"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", endpoint)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(SECRET_KEY), "{text}");
    assert_eq!(object(&server, "tjob", "out/n.txt").unwrap().trim(), "2");
    for f in walk(&dir.path().join("state")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(SECRET_KEY.len())
                .any(|w| w == SECRET_KEY.as_bytes()),
            "the key is in {}",
            f.display()
        );
    }
}
