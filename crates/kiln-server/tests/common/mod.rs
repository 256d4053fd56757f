//! The in-process harness shared by the API tests: a real driver with a real SQLite store in a
//! temporary directory, and the router called with `oneshot` (no socket).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kiln_core::engine::Node;
use kiln_server::api::{ApiState, JOIN_TOKEN_DIGEST, Tokens, digest, hex, router};
use kiln_server::{ClusterConfig, Driver, LocalConfig, StopRequest};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-secret";
/// The join token: it only registers (see [`register`] for a node's own credential).
pub const AGENT: &str = "agent-secret";

pub struct Server {
    pub app: Router,
    /// The driver behind the router, to look at (or hold up) the scheduler.
    pub handle: kiln_server::Handle,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterConfig {
        lease_wait: Duration::from_millis(200),
        ..ClusterConfig::default()
    };
    let cfg = LocalConfig {
        state_dir: dir.path().to_path_buf(),
        db: None,
        node: Node::new("local", 4000, 1 << 34),
        kill_grace: Duration::from_secs(1),
        keep_work_dirs: false,
        containers: false,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let join_token_file = dir.path().join("agent-token");
    let thread = std::thread::spawn(move || {
        let secrets = Arc::new(kiln_store::secrets::SecretBox::from_key(&[9; 32]));
        let mut driver = Driver::open(cfg)
            .unwrap()
            .with_cluster(cluster)
            .with_secrets(Arc::clone(&secrets));
        driver
            .store()
            .put_secret(JOIN_TOKEN_DIGEST, &hex(&digest(AGENT)))
            .unwrap();
        let state = Arc::new(ApiState {
            handle: driver.handle(),
            store: driver.shared_store(),
            leading: driver.leading(),
            tokens: Tokens {
                admin: digest(ADMIN),
            },
            logs: driver.logs_dir(),
            lease_notify: driver.lease_notify(),
            lease_wait: Duration::from_millis(200),
            catalog: kiln_core::model::Catalog::builtin(),
            activities: driver.activities(),
            secrets,
            join_token_file: Some(join_token_file),
        });
        tx.send(state).unwrap();
        let stop = move || {
            if flag.load(Ordering::SeqCst) {
                StopRequest::Force
            } else {
                StopRequest::None
            }
        };
        driver.serve(&stop).unwrap();
    });
    let state = rx.recv().unwrap();
    Server {
        handle: state.handle.clone(),
        app: router(state),
        stop,
        thread: Some(thread),
        _dir: dir,
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

pub async fn admin(app: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    call(app, method, uri, Some(ADMIN), body.as_bytes().to_vec()).await
}

/// Polls the job until `done` holds for its state (20 s at most).
pub async fn wait_state(app: &Router, id: &str, done: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, job) = admin(app, Method::GET, &format!("/v1/jobs/{id}"), "").await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if done(job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job stuck: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers a node `name` of compute environment `env` with the join token (one slot);
/// returns its own credential.
pub async fn register(app: &Router, name: &str, env: &str) -> String {
    let body = serde_json::json!({
        "name": name, "compute_env": env, "slots": 1, "cpus": 1.0,
        "memory": 1u64 << 30, "version": "test"
    });
    let (status, resp) = call(
        app,
        Method::POST,
        "/v1/agent/register",
        Some(AGENT),
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    resp["credential"].as_str().unwrap().to_string()
}
