#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Serde round trips of every wire type, and the exact JSON of the shapes others rely on.

use std::collections::BTreeMap;
use std::fmt::Debug;

use kiln_api::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::OpenApi;

/// Serialises, parses back, and checks both the value and the JSON survive.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let text = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&back, v, "{text}");
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

fn key(index: u32) -> AttemptKey {
    AttemptKey {
        job: "job-1".into(),
        task: "split".into(),
        index,
        attempt: 1,
    }
}

fn activity() -> ActivityInfo {
    ActivityInfo {
        activity_id: "act-1".into(),
        compute_node_id: Some("hpc-12-0".into()),
        compute_node_activity_type: "CREATE_COMPUTE_NODE".into(),
        env_id: "hpc".into(),
        cause: "200 RUNNABLE instance(s) need 100 node(s), 0 up or on their way".into(),
        activity_state: "SUCCEED".into(),
        state_reason: None,
        start_time: "2026-01-01T00:00:00Z".into(),
        end_time: Some("2026-01-01T00:00:03Z".into()),
        instance_id: Some("12".into()),
    }
}

fn env() -> ComputeEnv {
    ComputeEnv {
        name: "pool-a".into(),
        description: Some("the pool".into()),
        provider: "docker".into(),
        desired_nodes: 2,
        instance_type: None,
        resources: Some(json!({"cpus": 2, "memory": "4GiB"})),
        image: Some("alpine:3".into()),
        network: None,
        slots: Some(4),
        max_nodes: Some(8),
        idle_timeout: Some("5m".into()),
        ..ComputeEnv::default()
    }
}

#[test]
fn rest_types_round_trip() {
    round_trip(&ErrorBody::new(code::INVALID_SPEC, "bad").with_field("tasks[0].command"));
    round_trip(&ErrorBody::new(code::NOT_FOUND, "no job job-9"));
    round_trip(&SubmitResponse {
        id: "job-1".into(),
        name: "j".into(),
        state: "SUBMITTED".into(),
    });
    let summary = JobSummary {
        id: "job-1".into(),
        name: "j".into(),
        state: "FAILED".into(),
        reason: Some("UPSTREAM_FAILED split".into()),
        priority: 50,
        created_at: "2026-01-02T03:04:05Z".into(),
        updated_at: "2026-01-02T03:04:06.123Z".into(),
    };
    round_trip(&summary);
    round_trip(&JobList {
        items: vec![summary.clone()],
        next: Some("c1".into()),
    });
    round_trip(&JobList {
        items: vec![],
        next: None,
    });
    let task = TaskDetail {
        name: "split".into(),
        state: "RUNNING".into(),
        reason: None,
        instances: 4,
        counts: BTreeMap::from([("SUCCEED".into(), 3), ("RUNNING".into(), 1)]),
    };
    round_trip(&task);
    round_trip(&JobDetail {
        id: summary.id.clone(),
        name: summary.name.clone(),
        state: "RUNNING".into(),
        reason: None,
        priority: 0,
        created_at: summary.created_at.clone(),
        updated_at: summary.updated_at.clone(),
        tasks: vec![task],
    });
    let attempt = AttemptDetail {
        attempt: 1,
        state: "FAILED".into(),
        reason: Some("EXIT_CODE 3".into()),
        exit_code: Some(3),
        node: Some("node-1".into()),
        started_at: Some("2026-01-02T03:04:05Z".into()),
        ended_at: None,
        memory: Some(64 << 20),
    };
    round_trip(&attempt);
    let instance = InstanceDetail {
        index: 0,
        state: "RUNNING".into(),
        reason: None,
        attempt: 2,
        exit_code: None,
        node: Some("node-2".into()),
        attempts: vec![attempt],
    };
    round_trip(&instance);
    round_trip(&InstanceList {
        items: vec![instance],
        next: None,
    });
    round_trip(&Why {
        job: "job-1".into(),
        task: Some("merge".into()),
        index: Some(0),
        state: "PENDING".into(),
        reason: Some("WAITING_ON_DEPENDENCY split".into()),
        explanation: "merge waits for split".into(),
    });
    let template = TaskTemplate {
        name: "t".into(),
        description: None,
        task: json!({"command": "echo hi", "instances": 3, "env": {"A": "1"}}),
    };
    round_trip(&template);
    round_trip(&TemplateList {
        items: vec![template],
    });
    round_trip(&env());
    let detail = ComputeEnvDetail {
        env: env(),
        nodes: vec![NodeRef {
            id: "node-1".into(),
            name: "n1".into(),
            state: "RUNNING".into(),
            error: None,
        }],
        status: Some("1 allocation pending in Slurm (job 12 PENDING: Resources)".into()),
        state: "CREATION_FAILED".into(),
        last_error: Some(ProviderError {
            message: "no such image".into(),
            at: "2026-01-01T00:00:00Z".into(),
        }),
        creation_failures: 3,
        allocations: vec![AllocationInfo {
            job_id: "12".into(),
            state: "PENDING".into(),
            reason: Some("Resources".into()),
            workers: 1,
            registered: 0,
            submitted_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
        }],
        activities: vec![activity()],
    };
    round_trip(&detail);
    round_trip(&ActivityList {
        total_count: 1,
        items: vec![activity()],
    });
    round_trip(&ComputeEnvList {
        items: vec![detail],
    });
    round_trip(&ScaleRequest { desired_nodes: 3 });
    let node = NodeInfo {
        id: "node-1".into(),
        name: "n1".into(),
        state: "ABNORMAL".into(),
        compute_env: Some("pool-a".into()),
        slots: 4,
        cpus: 2.5,
        memory: 8 << 30,
        running: 1,
        last_seen: Some("2026-01-02T03:04:05Z".into()),
    };
    round_trip(&node);
    round_trip(&NodeList { items: vec![node] });
    round_trip(&Health {
        status: "ok".into(),
        version: "0.1.0".into(),
        role: Some("standby".into()),
    });
}

#[test]
fn agent_types_round_trip() {
    round_trip(&key(0));
    round_trip(&RegisterRequest {
        name: "n1".into(),
        compute_env: Some("pool-a".into()),
        slots: 4,
        cpus: 4.0,
        memory: 1 << 33,
        version: "0.1.0".into(),
        containers: true,
        running: vec![key(0), key(1)],
        ends_at: Some(1_800_000_000_000),
    });
    round_trip(&RegisterResponse {
        node_id: "node-1".into(),
        heartbeat_interval_ms: 2000,
        lease_wait_ms: 20_000,
        credential: Some("kiln-node:n1:00ff".into()),
    });
    round_trip(&RegisterResponse {
        node_id: "node-1".into(),
        heartbeat_interval_ms: 2000,
        lease_wait_ms: 20_000,
        credential: None,
    });
    round_trip(&HeartbeatRequest {
        node_id: "node-1".into(),
        running: vec![key(3)],
        leaving: true,
    });
    round_trip(&HeartbeatResponse {
        kill: vec![key(3)],
        drain: true,
        unknown_node: false,
    });
    round_trip(&LeaseRequest {
        node_id: "node-1".into(),
        max: 2,
    });
    let assignment = AttemptAssignment {
        key: key(5),
        job_name: "j".into(),
        instances: 10,
        command: CommandDto::Argv(vec!["echo".into(), "hi there".into()]),
        image: "alpine:3.20".into(),
        network: Some("vpc-a".into()),
        millicpus: 2000,
        memory: 1 << 31,
        env: BTreeMap::from([("A".into(), "1".into())]),
        timeout_ms: Some(60_000),
        inputs: vec![InputMappingDto {
            source: "s3://b/in/".into(),
            target: "in/".into(),
            profile: Some("lab".into()),
        }],
        outputs: Vec::new(),
        stdout: Some("s3://b/logs/".into()),
        stderr: None,
        storage: vec![StorageSettings {
            name: "lab".into(),
            kind: "s3".into(),
            endpoint: Some("http://10.0.0.5:9000".into()),
            region: None,
            path_style: true,
            access_key_id: "AKID".into(),
            secret_access_key: "TOPSECRET".into(),
            session_token: Some("SESSIONTOK".into()),
        }],
        storage_profile: Some("lab".into()),
        registry: Some(kiln_api::RegistryAuth {
            server: "10.0.0.5:5000".into(),
            username: "robot".into(),
            password: "REGPASSWORD".into(),
        }),
    };
    round_trip(&assignment);
    // Debug (what a log line would show) never carries the secrets.
    let shown = format!("{assignment:?}");
    assert!(shown.contains("AKID") && shown.contains("***") && shown.contains("robot"));
    assert!(!shown.contains("TOPSECRET") && !shown.contains("SESSIONTOK"));
    assert!(!shown.contains("REGPASSWORD"));
    // An assignment from a server that sends no storage reads as the node's own storage.
    let mut bare = serde_json::to_value(&assignment).unwrap();
    let obj = bare.as_object_mut().unwrap();
    obj.remove("storage");
    obj.remove("storage_profile");
    obj.remove("registry");
    let bare: AttemptAssignment = serde_json::from_value(bare).unwrap();
    assert!(bare.storage.is_empty() && bare.storage_profile.is_none());
    assert!(bare.registry.is_none());
    round_trip(&LeaseResponse {
        attempts: vec![
            assignment,
            AttemptAssignment {
                key: key(6),
                job_name: "j".into(),
                instances: 10,
                command: CommandDto::Shell("exit 3".into()),
                image: "host".into(),
                network: None,
                millicpus: 1000,
                memory: 0,
                env: BTreeMap::new(),
                timeout_ms: None,
                inputs: Vec::new(),
                outputs: Vec::new(),
                stdout: None,
                stderr: None,
                storage: Vec::new(),
                storage_profile: None,
                registry: None,
            },
        ],
    });
    let kinds = vec![
        AttemptEventKind::Started { pid: Some(42) },
        AttemptEventKind::Started { pid: None },
        AttemptEventKind::Exited { code: -1 },
        AttemptEventKind::Signaled { signal: 9 },
        AttemptEventKind::TimedOut,
        AttemptEventKind::Stopped,
        AttemptEventKind::StartFailed {
            message: "no such image".into(),
            resource: true,
        },
        AttemptEventKind::ImagePullFailed {
            message: "10.0.0.5:5000/app:1: unauthorized".into(),
        },
    ];
    for kind in &kinds {
        round_trip(&AttemptEvent {
            key: key(0),
            kind: kind.clone(),
        });
    }
    round_trip(&ReportRequest {
        node_id: "node-1".into(),
        events: kinds
            .into_iter()
            .map(|kind| AttemptEvent { key: key(0), kind })
            .collect(),
    });
    round_trip(&ReportResponse {
        accepted: 7,
        attempts: Vec::new(),
    });
    let chunk = LogChunk::new(key(0), STDERR, 1024, b"line\n\xff\x00");
    round_trip(&chunk);
    round_trip(&LogAppendRequest {
        node_id: "node-1".into(),
        chunks: vec![chunk],
    });
    round_trip(&LogAppendResponse { accepted: 1 });
}

#[test]
fn error_body_shape() {
    let v = serde_json::to_value(
        ErrorBody::new("invalid_spec", "tasks[0]: unknown field").with_field("tasks[0]"),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": "invalid_spec", "message": "tasks[0]: unknown field", "field": "tasks[0]"}})
    );
    let v = serde_json::to_value(ErrorBody::new("not_found", "no job")).unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": "not_found", "message": "no job", "field": null}})
    );
    // A body without `field` parses.
    let b: ErrorBody =
        serde_json::from_value(json!({"error": {"code": "internal", "message": "x"}})).unwrap();
    assert_eq!(b.error.field, None);
}

#[test]
fn command_shape() {
    assert_eq!(
        serde_json::to_value(CommandDto::Shell("echo hi".into())).unwrap(),
        json!({"shell": "echo hi"})
    );
    assert_eq!(
        serde_json::to_value(CommandDto::Argv(vec!["echo".into(), "hi".into()])).unwrap(),
        json!({"argv": ["echo", "hi"]})
    );
    assert!(serde_json::from_value::<CommandDto>(json!({"exec": "x"})).is_err());
    assert!(serde_json::from_value::<CommandDto>(json!("echo hi")).is_err());
}

#[test]
fn attempt_event_kind_tags() {
    let cases = [
        (
            AttemptEventKind::Started { pid: Some(42) },
            json!({"type": "started", "pid": 42}),
        ),
        (
            AttemptEventKind::Started { pid: None },
            json!({"type": "started", "pid": null}),
        ),
        (
            AttemptEventKind::Exited { code: 3 },
            json!({"type": "exited", "code": 3}),
        ),
        (
            AttemptEventKind::Signaled { signal: 15 },
            json!({"type": "signaled", "signal": 15}),
        ),
        (AttemptEventKind::TimedOut, json!({"type": "timed_out"})),
        (AttemptEventKind::Stopped, json!({"type": "stopped"})),
        (
            AttemptEventKind::StartFailed {
                message: "no sh".into(),
                resource: false,
            },
            json!({"type": "start_failed", "message": "no sh", "resource": false}),
        ),
    ];
    for (kind, expected) in cases {
        assert_eq!(serde_json::to_value(&kind).unwrap(), expected);
        assert_eq!(
            serde_json::from_value::<AttemptEventKind>(expected).unwrap(),
            kind
        );
    }
    // `pid` may be left out.
    assert_eq!(
        serde_json::from_value::<AttemptEventKind>(json!({"type": "started"})).unwrap(),
        AttemptEventKind::Started { pid: None }
    );
    let event = AttemptEvent {
        key: key(2),
        kind: AttemptEventKind::Exited { code: 0 },
    };
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({"key": {"job": "job-1", "task": "split", "index": 2, "attempt": 1}, "kind": {"type": "exited", "code": 0}})
    );
}

#[test]
fn log_chunk_bytes() {
    let chunk = LogChunk::new(key(0), STDOUT, 0, b"hi\n");
    assert_eq!(chunk.data_b64, "aGkK");
    assert_eq!(chunk.data().unwrap(), b"hi\n");
    let bad = LogChunk {
        data_b64: "not base64!".into(),
        ..chunk
    };
    assert!(bad.data().is_err());
}

#[test]
fn request_bodies_reject_unknown_fields() {
    let cases = [
        serde_json::from_value::<RegisterRequest>(json!({
            "name": "n", "slots": 1, "cpus": 1.0, "memory": 1, "version": "v", "extra": 1
        }))
        .is_err(),
        serde_json::from_value::<HeartbeatRequest>(json!({"node_id": "n", "runing": []})).is_err(),
        serde_json::from_value::<LeaseRequest>(json!({"node_id": "n", "max": 1, "x": 0})).is_err(),
        serde_json::from_value::<ReportRequest>(json!({"node_id": "n", "events": [], "x": 0}))
            .is_err(),
        serde_json::from_value::<LogAppendRequest>(json!({"node_id": "n", "chunks": [], "x": 0}))
            .is_err(),
        serde_json::from_value::<ScaleRequest>(json!({"desired_nodes": 1, "x": 0})).is_err(),
        serde_json::from_value::<TaskTemplate>(json!({"name": "t", "task": {}, "x": 0})).is_err(),
        serde_json::from_value::<ComputeEnv>(
            json!({"name": "e", "provider": "local", "nodes": []}),
        )
        .is_err(),
    ];
    assert_eq!(cases, [true; 8]);
    // Optional and defaulted fields may be left out.
    let r: RegisterRequest = serde_json::from_value(
        json!({"name": "n", "slots": 1, "cpus": 1.0, "memory": 1, "version": "v"}),
    )
    .unwrap();
    assert_eq!((r.compute_env, r.running.len()), (None, 0));
    let e: ComputeEnv = serde_json::from_value(json!({"name": "e", "provider": "local"})).unwrap();
    assert_eq!((e.desired_nodes, e.slots), (0, None));
}

#[test]
fn compute_env_detail_is_flat() {
    let detail = ComputeEnvDetail {
        env: env(),
        nodes: vec![NodeRef {
            id: "node-1".into(),
            name: "n1".into(),
            state: "RUNNING".into(),
            error: None,
        }],
        status: None,
        state: "RUNNING".into(),
        last_error: None,
        creation_failures: 0,
        allocations: Vec::new(),
        activities: Vec::new(),
    };
    let v = serde_json::to_value(&detail).unwrap();
    assert_eq!(v["name"], "pool-a");
    assert_eq!(v["desired_nodes"], 2);
    assert_eq!(v["nodes"][0]["id"], "node-1");
    assert!(v.get("env").is_none());
    assert_eq!(
        serde_json::from_value::<ComputeEnvDetail>(v).unwrap(),
        detail
    );
}

#[test]
fn openapi_has_every_schema() {
    let doc = serde_json::to_value(WireSchemas::openapi()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "JobDetail",
        "InstanceList",
        "ComputeEnvDetail",
        "ActivityList",
        "NodeList",
        "Health",
        "RegisterRequest",
        "AttemptKey",
        "LeaseResponse",
        "StorageSettings",
        "RegistryAuth",
        "CommandDto",
        "AttemptEventKind",
        "LogAppendRequest",
        "LogAppendResponse",
        "NodeRevoked",
        "JoinToken",
    ] {
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    assert_eq!(schemas.len(), 56);
}
