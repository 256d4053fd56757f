#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `run_agent` against a scripted stand-in of the server's agent protocol on a loopback port
//! (the real server's end-to-end test lives with the server).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kiln_agent::{AgentConfig, AgentError, run_agent};
use kiln_api::*;
use tokio::sync::oneshot;

#[derive(Default)]
struct Fake {
    registers: Vec<RegisterRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    leases: Vec<LeaseRequest>,
    /// Attempts to hand out.
    work: VecDeque<AttemptAssignment>,
    /// Fail this many of the next register / report calls with 503.
    fail_registers: u32,
    fail_reports: u32,
    refuse_token: bool,
    kill: Vec<AttemptKey>,
    drain: bool,
    forget_node: bool,
    /// Accepted events, in order, and (when) each lease was granted relative to them.
    events: Vec<AttemptEvent>,
    events_at_lease: Vec<usize>,
    logs: BTreeMap<(AttemptKey, String), Vec<u8>>,
}

type S = Arc<Mutex<Fake>>;

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ErrorBody::new("internal", "try later")),
    )
        .into_response()
}

async fn register(State(s): State<S>, Json(req): Json<RegisterRequest>) -> Response {
    let mut f = s.lock().unwrap();
    if f.refuse_token {
        return (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody::new("unauthorized", "bad token")),
        )
            .into_response();
    }
    if f.fail_registers > 0 {
        f.fail_registers -= 1;
        return unavailable();
    }
    let req_name = req.name.clone();
    f.registers.push(req);
    f.forget_node = false;
    Json(RegisterResponse {
        node_id: format!("node-{}", f.registers.len()),
        heartbeat_interval_ms: 30,
        lease_wait_ms: 50,
        credential: Some(format!("kiln-node:{}:secret", req_name)),
    })
    .into_response()
}

async fn heartbeat(State(s): State<S>, Json(req): Json<HeartbeatRequest>) -> Response {
    let mut f = s.lock().unwrap();
    f.heartbeats.push(req);
    let kill = if f.forget_node {
        Vec::new()
    } else {
        std::mem::take(&mut f.kill)
    };
    Json(HeartbeatResponse {
        kill,
        drain: f.drain,
        unknown_node: f.forget_node,
    })
    .into_response()
}

async fn lease(State(s): State<S>, Json(req): Json<LeaseRequest>) -> Response {
    for _ in 0..10 {
        {
            let mut f = s.lock().unwrap();
            let current = format!("node-{}", f.registers.len());
            if !f.work.is_empty() && !f.forget_node && req.node_id == current {
                let n = (req.max as usize).min(f.work.len());
                let attempts: Vec<_> = f.work.drain(..n).collect();
                let at = f.events.len();
                f.events_at_lease.push(at);
                f.leases.push(req);
                return Json(LeaseResponse { attempts }).into_response();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Json(LeaseResponse { attempts: vec![] }).into_response()
}

async fn report(State(s): State<S>, Json(req): Json<ReportRequest>) -> Response {
    let mut f = s.lock().unwrap();
    if f.fail_reports > 0 {
        f.fail_reports -= 1;
        return unavailable();
    }
    let n = req.events.len() as u32;
    f.events.extend(req.events);
    Json(ReportResponse {
        accepted: n,
        attempts: Vec::new(),
    })
    .into_response()
}

async fn logs(State(s): State<S>, Json(req): Json<LogAppendRequest>) -> Response {
    let mut f = s.lock().unwrap();
    let n = req.chunks.len() as u32;
    for c in req.chunks {
        let data = c.data().unwrap();
        let buf = f.logs.entry((c.key.clone(), c.stream.clone())).or_default();
        let end = c.offset as usize + data.len();
        // Idempotent by offset; a gap would be a bug of the agent.
        assert!(c.offset as usize <= buf.len(), "gap in {}", c.key);
        if end > buf.len() {
            buf.truncate(c.offset as usize);
            buf.extend_from_slice(&data);
        }
    }
    Json(LogAppendResponse { accepted: n }).into_response()
}

async fn serve(fake: Fake) -> (String, S) {
    let state: S = Arc::new(Mutex::new(fake));
    let app = Router::new()
        .route(paths::AGENT_REGISTER, post(register))
        .route(paths::AGENT_HEARTBEAT, post(heartbeat))
        .route(paths::AGENT_LEASE, post(lease))
        .route(paths::AGENT_REPORT, post(report))
        .route(paths::AGENT_LOGS, post(logs))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, state)
}

fn config(server: &str, dir: &std::path::Path, slots: u32) -> AgentConfig {
    AgentConfig {
        server: server.into(),
        token: "t0k".into(),
        ca_file: None,
        name: "n1".into(),
        compute_env: None,
        slots,
        cpus: 2.0,
        memory: 1 << 30,
        work_dir: dir.to_path_buf(),
        kill_grace: Duration::from_millis(200),
        heartbeat: None,
        containers: false,
        end_time: None,
        leave_on_signal: false,
    }
}

fn key(index: u32) -> AttemptKey {
    AttemptKey {
        job: "job-1".into(),
        task: "t".into(),
        index,
        attempt: 1,
    }
}

fn shell(index: u32, script: &str) -> AttemptAssignment {
    AttemptAssignment {
        key: key(index),
        job_name: "j".into(),
        instances: 10,
        command: CommandDto::Shell(script.into()),
        image: "host".into(),
        network: None,
        millicpus: 1000,
        memory: 0,
        env: BTreeMap::from([("GREETING".into(), "hi".into())]),
        timeout_ms: None,
        inputs: Vec::new(),
        outputs: Vec::new(),
        stdout: None,
        stderr: None,
        storage: Vec::new(),
        storage_profile: None,
        registry: None,
    }
}

/// Polls `cond` until it holds, for at most 10 s.
async fn until(state: &S, what: &str, cond: impl Fn(&Fake) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cond(&state.lock().unwrap()) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let f = state.lock().unwrap();
            panic!(
                "timed out: {what}\nevents: {:?}\nleases: {:?}\nregisters: {}\nlast heartbeat: {:?}",
                f.events,
                f.leases,
                f.registers.len(),
                f.heartbeats.last()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ends(f: &Fake) -> BTreeMap<u32, AttemptEventKind> {
    f.events
        .iter()
        .filter(|e| !matches!(e.kind, AttemptEventKind::Started { .. }))
        .map(|e| (e.key.index, e.kind.clone()))
        .collect()
}

fn spawn_agent(
    cfg: AgentConfig,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), AgentError>>,
) {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(run_agent(cfg, async move {
        let _ = rx.await;
    }));
    (tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_reports_ships_logs_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake {
        fail_registers: 2,
        fail_reports: 2,
        ..Fake::default()
    };
    fake.work.extend([
        shell(0, "echo $GREETING $BATCH_TASK_INSTANCE_INDEX; echo err >&2"),
        shell(1, "exit 3"),
        shell(2, "head -c 700000 /dev/zero | tr '\\0' x"),
        shell(3, "kill -9 $$"),
        AttemptAssignment {
            command: CommandDto::Argv(vec!["no-such-program-kiln".into()]),
            ..shell(4, "")
        },
    ]);
    let (base, state) = serve(fake).await;
    let (_stop, agent) = spawn_agent(config(&base, dir.path(), 2));

    until(&state, "all ends reported", |f| ends(f).len() == 5).await;
    {
        let f = state.lock().unwrap();
        assert_eq!(f.registers.len(), 1);
        assert_eq!(f.registers[0].running, vec![]);
        assert_eq!(f.registers[0].slots, 2);
        // It leases ahead: up to twice its slots may be held (running or waiting for a slot).
        assert!(f.leases.iter().all(|l| l.max >= 1 && l.max <= 4));
        let ends = ends(&f);
        assert_eq!(ends[&0], AttemptEventKind::Exited { code: 0 });
        assert_eq!(ends[&1], AttemptEventKind::Exited { code: 3 });
        assert_eq!(ends[&2], AttemptEventKind::Exited { code: 0 });
        assert_eq!(ends[&3], AttemptEventKind::Signaled { signal: 9 });
        assert!(
            matches!(
                &ends[&4],
                AttemptEventKind::StartFailed {
                    resource: false,
                    ..
                }
            ),
            "{:?}",
            ends[&4]
        );
        // Each attempt's start comes before its end.
        for i in 0..4 {
            let pos = |started: bool| {
                f.events.iter().position(|e| {
                    e.key.index == i
                        && matches!(e.kind, AttemptEventKind::Started { .. }) == started
                })
            };
            assert!(pos(true).unwrap() < pos(false).unwrap(), "attempt {i}");
        }
        // Output is shipped before the end is reported.
        let log = |i, s: &str| f.logs.get(&(key(i), s.to_string())).cloned();
        assert_eq!(log(0, STDOUT).unwrap(), b"hi 0\n");
        assert_eq!(log(0, STDERR).unwrap(), b"err\n");
        assert_eq!(log(2, STDOUT).unwrap(), vec![b'x'; 700_000]);
        assert_eq!(log(1, STDOUT), None);
    }
    // Shipped capture files are removed.
    until(&state, "capture files removed", |_| {
        !dir.path().join("logs/job-1/t/0.1.stdout").exists()
    })
    .await;

    state.lock().unwrap().drain = true;
    let result = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_reregisters_and_reports_before_leasing_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::default();
    fake.work
        .extend([shell(0, "sleep 30"), shell(1, "sleep 30")]);
    let (base, state) = serve(fake).await;
    let (stop, agent) = spawn_agent(config(&base, dir.path(), 4));

    until(&state, "both started", |f| f.events.len() == 2).await;
    until(&state, "a heartbeat with both", |f| {
        f.heartbeats
            .last()
            .is_some_and(|h| h.running == vec![key(0), key(1)])
    })
    .await;
    // The server stops one.
    state.lock().unwrap().kill = vec![key(0)];
    until(&state, "stopped reported", |f| {
        ends(f).get(&0) == Some(&AttemptEventKind::Stopped)
    })
    .await;
    until(&state, "heartbeats without the stopped one", |f| {
        f.heartbeats
            .last()
            .is_some_and(|h| h.running == vec![key(1)])
    })
    .await;

    // The server stops the other one while reports cannot be delivered, then forgets the node:
    // the agent registers again with what it holds (the unreported end included), and delivers
    // its reports before it leases again.
    {
        let mut f = state.lock().unwrap();
        f.fail_reports = 3;
        f.kill = vec![key(1)];
    }
    until(&state, "a report refused", |f| f.fail_reports < 3).await;
    {
        let mut f = state.lock().unwrap();
        f.forget_node = true;
        f.work.push_back(shell(2, "true"));
    }
    until(&state, "registered again", |f| f.registers.len() == 2).await;
    {
        let f = state.lock().unwrap();
        assert_eq!(f.registers[1].running, vec![key(1)]);
    }
    until(&state, "the new attempt ran", |f| ends(f).len() == 3).await;
    {
        let f = state.lock().unwrap();
        let ends = ends(&f);
        assert_eq!(ends[&1], AttemptEventKind::Stopped);
        assert_eq!(ends[&2], AttemptEventKind::Exited { code: 0 });
        // The last lease came after attempt 1's end was delivered.
        let stopped_at = f
            .events
            .iter()
            .position(|e| e.key == key(1) && e.kind == AttemptEventKind::Stopped)
            .unwrap();
        assert!(*f.events_at_lease.last().unwrap() > stopped_at);
        let last_node = f.heartbeats.last().unwrap().node_id.clone();
        assert_eq!(last_node, "node-2");
    }

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_running_attempts_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::default();
    fake.work.extend([
        shell(0, "echo before; sleep 30"),
        // Ignores SIGTERM: killed after the grace period.
        shell(1, "trap '' TERM; sleep 30 & wait"),
    ]);
    let (base, state) = serve(fake).await;
    let (stop, agent) = spawn_agent(config(&base, dir.path(), 2));
    until(&state, "both started", |f| f.events.len() == 2).await;
    until(&state, "output shipped while running", |f| {
        f.logs.contains_key(&(key(0), STDOUT.to_string()))
    })
    .await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let f = state.lock().unwrap();
    let ends = ends(&f);
    assert_eq!(ends.get(&0), Some(&AttemptEventKind::Stopped));
    assert_eq!(ends.get(&1), Some(&AttemptEventKind::Stopped));
    assert_eq!(f.logs[&(key(0), STDOUT.to_string())], b"before\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_ends_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _state) = serve(Fake {
        refuse_token: true,
        ..Fake::default()
    })
    .await;
    let (_stop, agent) = spawn_agent(config(&base, dir.path(), 1));
    let result = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(AgentError::Unauthorized(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_server_is_unreachable_returns() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port (bound, then dropped).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (stop, agent) = spawn_agent(config(&base, dir.path(), 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
