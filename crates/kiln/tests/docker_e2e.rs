//! End-to-end tests of the Docker runtime through `kiln run`, on the machine's real Docker
//! Engine: environment and limits seen from inside the container, out-of-memory kills, missing
//! images, and VPC isolation. The image is built locally with no registry
//! (`scripts/test-images.sh`); the tests build it if it is missing and fail loudly when Docker
//! is not there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::process::Command;
use std::time::Duration;

use common::{Sandbox, counts, signal, wait_child, wait_for};

/// `docker` CLI output (trimmed), for checks from outside.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Containers (any state) and networks labelled as Kiln's whose names contain `mark`.
fn leftovers(mark: &str) -> Vec<String> {
    let mut left: Vec<String> = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=kiln.managed=true",
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .chain(
        docker(&[
            "network",
            "ls",
            "--filter",
            "label=kiln.managed=true",
            "--format",
            "{{.Name}}",
        ])
        .lines(),
    )
    .filter(|n| n.contains(mark))
    .map(str::to_string)
    .collect();
    left.sort();
    left
}

#[test]
fn a_container_gets_its_environment_limits_and_mappings() {
    let image = support::test_image();
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("shared")).unwrap();
    std::fs::write(sb.path("shared/in.txt"), "from the shared filesystem\n").unwrap();
    let spec = sb.spec(
        "boxed.yaml",
        &format!(
            r#"
name: boxed
tasks:
  probe:
    image: {image}
    instances: 2
    resources: {{cpus: 0.5, memory: 64MiB}}
    env: {{GREETING: hello}}
    inputs: [{{source: "file://@DIR@/shared/", target: /data/}}]
    outputs: [{{source: /results/, target: "file://@DIR@/results/"}}]
    stdout: "file://@DIR@/logs/"
    command: |
      echo "idx=$BATCH_TASK_INSTANCE_INDEX num=$BATCH_TASK_INSTANCE_NUM wd=$BATCH_WORK_DIR pwd=$(pwd) greet=$GREETING"
      echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
      echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)"
      echo "input=$(cat /data/in.txt)"
      if touch /data/written 2>/dev/null; then echo input=rw; else echo input=ro; fi
      echo "result $BATCH_TASK_INSTANCE_INDEX" > /results/r$BATCH_TASK_INSTANCE_INDEX.txt
"#
        ),
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.counts("probe"), counts(&[("SUCCEED", 2)]), "{out}");
    for index in [0, 1] {
        let text = std::fs::read_dir(sb.path("logs"))
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!(".probe.{index}.log"))
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .unwrap_or_else(|| panic!("no stdout log of instance {index}"));
        assert!(
            text.contains(&format!(
                "idx={index} num=2 wd=/kiln/work pwd=/kiln/work greet=hello"
            )),
            "{text}"
        );
        assert!(text.contains("mem=67108864"), "64 MiB memory limit: {text}");
        assert!(text.contains("cpu=50000"), "half a CPU: {text}");
        assert!(text.contains("input=from the shared filesystem"), "{text}");
        assert!(
            text.contains("input=ro"),
            "file:// inputs are read-only: {text}"
        );
        assert_eq!(
            std::fs::read_to_string(sb.path(&format!("results/r{index}.txt"))).unwrap(),
            format!("result {index}\n")
        );
    }
    assert!(!sb.path("shared/written").exists());
    let job = out.summary["id"].as_str().unwrap().to_string();
    assert_eq!(leftovers(&job), Vec::<String>::new(), "containers removed");
}

#[test]
fn an_instance_over_its_memory_limit_ends_out_of_memory() {
    let image = support::test_image();
    let sb = Sandbox::new();
    let spec = sb.spec(
        "oom.yaml",
        &format!(
            r#"
name: oom
tasks:
  hog:
    image: {image}
    resources: {{memory: 32MiB}}
    retries: 1
    command: dd if=/dev/zero of=/dev/null bs=256M count=1
"#
        ),
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.task_state("hog"),
        ("FAILED".into(), Some("INSTANCE_FAILED 0".into())),
        "{out}"
    );
    let failed = out.failed("hog");
    assert_eq!(failed[&0]["reason"], "OUT_OF_MEMORY", "{out}");
    assert_eq!(failed[&0]["exit_code"], 137, "{out}");
    assert_eq!(failed[&0]["attempt"], 2, "an OOM spends a retry: {out}");
}

#[test]
fn a_missing_image_fails_fast_with_image_not_found() {
    support::test_image();
    let sb = Sandbox::new();
    let spec = sb.spec(
        "missing.yaml",
        r#"
name: missing-image
tasks:
  t:
    image: kiln-test/no-such-image:0
    command: "true"
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.failed("t")[&0]["reason"],
        "IMAGE_NOT_FOUND kiln-test/no-such-image:0",
        "{out}"
    );
}

#[test]
fn host_tasks_cannot_join_a_network() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "vpc-host.yaml",
        r#"
name: vpc-host
tasks:
  t: {command: "true", network: vpc-a}
"#,
    );
    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("tasks.t.network"), "{out}");
    assert!(!sb.state_dir().exists(), "nothing stored");
}

/// Instances of one VPC reach each other by `TASK-INDEX`; an instance of another VPC reaches
/// neither the name nor the address.
#[test]
fn instances_of_one_vpc_connect_and_other_vpcs_are_isolated() {
    let image = support::test_image();
    let sb = Sandbox::new();
    let (vpc_a, vpc_b) = (format!("{}-a", sb.mark), format!("{}-b", sb.mark));
    std::fs::create_dir_all(sb.path("control")).unwrap();
    let a = sb.spec(
        "a.yaml",
        &format!(
            r#"
name: vpc-a
tasks:
  server:
    image: {image}
    network: {vpc_a}
    inputs: [{{source: "file://@DIR@/control/", target: /control/}}]
    command: |
      echo pong > index.html
      httpd -p 8080 -h /kiln/work
      until [ -e /control/done ]; do sleep 0.1; done
  client:
    image: {image}
    network: {vpc_a}
    command: |
      get() {{ printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$1" 8080; }}
      for i in $(seq 100); do
        if get server-0 | grep -q pong; then echo reached; exit 0; fi
        sleep 0.2
      done
      exit 1
"#
        ),
    );
    let mut job_a = sb.spawn(&a, "a");
    // The server's address on VPC a, read from outside.
    let mut ip = String::new();
    wait_for("the server container", Duration::from_secs(60), || {
        let name = docker(&[
            "ps",
            "--filter",
            "label=kiln.task=server",
            "--filter",
            &format!("network={vpc_a}"),
            "--format",
            "{{.Names}}",
        ]);
        if name.is_empty() {
            return false;
        }
        ip = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &name,
        ]);
        !ip.is_empty()
    });

    let sb_b = Sandbox::new();
    let b = sb_b.spec(
        "b.yaml",
        &format!(
            r#"
name: vpc-b
tasks:
  probe:
    image: {image}
    network: {vpc_b}
    env: {{SERVER_IP: "{ip}"}}
    command: |
      get() {{ printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$1" 8080; }}
      get "$SERVER_IP" | grep -q pong && exit 11
      get server-0 | grep -q pong && exit 12
      echo isolated
"#
        ),
    );
    let out_b = sb_b.run(&b, &[]);
    assert_eq!(out_b.code, 0, "VPC b reached VPC a: {out_b}");

    std::fs::write(sb.path("control/done"), "").unwrap();
    let status = wait_child(&mut job_a, Duration::from_secs(60));
    let summary = std::fs::read_to_string(sb.path("a.stdout")).unwrap();
    assert!(
        status.success(),
        "{summary}\n{}",
        std::fs::read_to_string(sb.path("a.stderr")).unwrap()
    );
    assert_eq!(
        leftovers(&sb.mark),
        Vec::<String>::new(),
        "networks and containers removed"
    );
}

/// A runner killed while a container runs: on resume the container is gone (not left running
/// or stopped) and the instance runs again as its next attempt.
#[test]
fn a_resumed_run_removes_the_containers_of_the_crashed_one() {
    let image = support::test_image();
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("control")).unwrap();
    let spec = sb.spec(
        "crash.yaml",
        &format!(
            r#"
name: crash
tasks:
  sleeper:
    image: {image}
    inputs: [{{source: "file://@DIR@/control/", target: /control/}}]
    env: {{MARK: "@MARK@"}}
    command: "[ -e /control/go ] || sleep 600"
"#
        ),
    );
    let mut first = sb.spawn(&spec, "first");
    let running = || {
        docker(&[
            "ps",
            "-q",
            "--filter",
            "label=kiln.task=sleeper",
            "--filter",
            "status=running",
        ])
    };
    let mut container = String::new();
    wait_for("the container to run", Duration::from_secs(60), || {
        container = running();
        !container.is_empty() && !container.contains('\n')
    });
    signal(first.id(), "KILL");
    let _ = first.wait();
    std::fs::write(sb.path("control/go"), "").unwrap();

    let out = sb.run(&spec, &[]);
    assert_eq!(out.code, 0, "{out}");
    let failed_attempts = out.summary["tasks"][0]["counts"].clone();
    assert_eq!(failed_attempts["SUCCEED"], 1, "{out}");
    let job = out.summary["id"].as_str().unwrap();
    assert_eq!(leftovers(job), Vec::<String>::new(), "{out}");
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("id={container}")]).is_empty(),
        "the crashed run's container {container} is removed"
    );
}

/// On a cluster the container settings travel to an agent: limits, network and the
/// out-of-memory verdict are the same as with `kiln run`.
#[test]
fn an_agent_runs_containers_with_their_limits_network_and_verdicts() {
    let image = support::test_image();
    // A deployment's own instance type sizes the container.
    let types = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(types.path(), "T1.TINY: {cpus: 0.5, memory: 48MiB}\n").unwrap();
    let mut c = support::Cluster::with_options(support::ServerOptions {
        args: vec![
            "--instance-types".into(),
            types.path().display().to_string(),
        ],
        ..support::ServerOptions::default()
    });
    c.start_agent("boxer", 2);
    let net = format!("kiln-agent-test-{}", std::process::id());
    let spec = c.spec(
        "boxed.yaml",
        &format!(
            r#"
name: boxed-on-agent
tasks:
  probe:
    image: {image}
    compute_env: pool
    network: {net}
    instance_type: T1.TINY
    command: |
      mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
      echo "$mem $(hostname) $BATCH_WORK_DIR $BATCH_NODE_ID"
      [ "$mem" = 50331648 ] && [ "$(hostname)" = probe-0 ] && [ "$BATCH_WORK_DIR" = /kiln/work ]
  hog:
    image: {image}
    compute_env: pool
    resources: {{memory: 32MiB}}
    command: dd if=/dev/zero of=/dev/null bs=256M count=1
"#
        ),
    );
    let id = c.submit(&spec);
    let job = c.wait_job(&id, 90, |v| {
        v["tasks"].as_array().is_some_and(|ts| {
            ts.iter()
                .all(|t| t["state"] == "SUCCEED" || t["state"] == "FAILED")
        })
    });
    let (code, out) = c.kiln(&["logs", &id, "probe", "0"]);
    assert_eq!(
        job["tasks"][0]["state"], "SUCCEED",
        "{job}\nprobe: {code} {out}"
    );
    assert!(
        out.contains("50331648 probe-0 /kiln/work node-boxer"),
        "{out}"
    );
    let hog = c.instances(&id, "hog");
    assert_eq!(hog[0]["reason"], "OUT_OF_MEMORY", "{hog:?}");
    assert_eq!(hog[0]["exit_code"], 137, "{hog:?}");
    assert_eq!(leftovers(&id), Vec::<String>::new());
    assert_eq!(leftovers(&net), Vec::<String>::new());

    // A type the catalog does not have is refused at submission, naming the field.
    let bad = c.spec(
        "bad.yaml",
        "name: bad\ntasks:\n  t: {command: x, instance_type: T1.TINNY}\n",
    );
    let (code, _, stderr) = c.run(&["submit", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tasks.t.instance_type") && stderr.contains("T1.TINY"),
        "{stderr}"
    );
}

/// A container past its timeout is stopped (SIGTERM, then SIGKILL after the grace period) and
/// removed; its output up to then is kept.
#[test]
fn a_container_past_its_timeout_is_stopped_and_removed() {
    let image = support::test_image();
    let sb = Sandbox::new();
    let spec = sb.spec(
        "slow.yaml",
        &format!(
            r#"
name: slow
tasks:
  slow:
    image: {image}
    timeout: 1s
    stdout: "file://@DIR@/logs/"
    command: echo started; sleep 60
"#
        ),
    );
    let out = sb.run(&spec, &["--kill-grace", "1"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.failed("slow")[&0]["reason"], "TIMED_OUT", "{out}");
    assert!(out.elapsed < Duration::from_secs(30), "{out}");
    let job = out.summary["id"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(sb.path(&format!("logs/stdout.{job}.slow.0.log"))).unwrap(),
        "started\n"
    );
    assert_eq!(leftovers(job), Vec::<String>::new());
}

/// An agent killed while its containers run: when it starts again it removes them (their
/// attempts are already counted lost by the server) and the instance runs again to success.
#[test]
fn a_restarted_agent_removes_the_containers_its_killed_process_left() {
    let image = support::test_image();
    let mut c = support::Cluster::new();
    c.start_agent("phoenix", 1);
    let control = c.dir.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    let spec = c.spec(
        "orphan.yaml",
        &format!(
            r#"
name: orphan
tasks:
  t:
    image: {image}
    compute_env: pool
    retries: 0
    inputs: [{{source: "file://{}/", target: /control/}}]
    command: "[ -e /control/go ] || sleep 600"
"#,
            control.display()
        ),
    );
    let id = c.submit(&spec);
    let filter = format!("label=kiln.job={id}");
    let mut first = String::new();
    wait_for("the container to run", Duration::from_secs(60), || {
        first = docker(&["ps", "-q", "--filter", &filter]);
        !first.is_empty()
    });
    c.kill_agent("phoenix");
    c.start_agent("phoenix", 1);
    wait_for("the orphan to be removed", Duration::from_secs(30), || {
        docker(&["ps", "-aq", "--filter", &format!("id={first}")]).is_empty()
    });
    std::fs::write(control.join("go"), "").unwrap();
    let job = c.wait_job(&id, 60, |v| support::state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 1, "{job}");
    let inst = &c.instances(&id, "t")[0];
    assert_eq!(inst["attempts"][0]["reason"], "NODE_LOST", "{inst}");
    assert_eq!(leftovers(&id), Vec::<String>::new());
}
