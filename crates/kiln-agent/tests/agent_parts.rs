#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The agent's parts that need no server: assignment mapping, error sorting, backoff, the
//! report queue and log tailing.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_agent::agent::*;
use kiln_api::{
    AttemptAssignment, AttemptEvent, AttemptEventKind, AttemptKey, ClientError, CommandDto,
    ErrorDetail, InputMappingDto, OutputMappingDto, RegistryAuth, STDERR, STDOUT, StorageSettings,
};
use kiln_core::model::{Command, Image};
use kiln_core::state::Outcome;
use tokio::time::Instant;

fn key(index: u32) -> AttemptKey {
    AttemptKey {
        job: "job-1".into(),
        task: "split".into(),
        index,
        attempt: 1,
    }
}

fn event(index: u32) -> AttemptEvent {
    AttemptEvent {
        key: key(index),
        kind: AttemptEventKind::Exited { code: 0 },
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn assignment_becomes_attempt_spec() {
    let a = AttemptAssignment {
        key: AttemptKey {
            job: "job-7".into(),
            task: "t".into(),
            index: 3,
            attempt: 2,
        },
        job_name: "nightly".into(),
        instances: 10,
        command: CommandDto::Argv(vec!["echo".into(), "hi there".into()]),
        image: "registry.local/app:2".into(),
        network: Some("vpc-a".into()),
        millicpus: 1500,
        memory: 1 << 30,
        env: BTreeMap::from([("A".into(), "1".into())]),
        timeout_ms: Some(1500),
        inputs: vec![InputMappingDto {
            source: "s3://b/in/".into(),
            target: "in/".into(),
            profile: Some("other".into()),
        }],
        outputs: vec![OutputMappingDto {
            source: "out/".into(),
            target: "s3://b/out/".into(),
            when: "always".into(),
            profile: None,
        }],
        stdout: None,
        stderr: None,
        storage: ["lab", "other"]
            .into_iter()
            .map(|name| StorageSettings {
                name: name.into(),
                kind: "s3".into(),
                endpoint: Some("http://10.0.0.5:9000".into()),
                region: Some("eu-west-1".into()),
                path_style: true,
                access_key_id: "AKID".into(),
                secret_access_key: "TOPSECRET".into(),
                session_token: None,
            })
            .collect(),
        storage_profile: Some("lab".into()),
        registry: Some(RegistryAuth {
            server: "registry.local".into(),
            username: "robot".into(),
            password: "PA55WORD".into(),
        }),
    };
    assert!(!format!("{a:?}").contains("PA55WORD"));
    let s = attempt_spec(a.clone());
    assert_eq!(s.registry, a.registry);
    assert_eq!(
        (s.job_id.as_str(), s.job_name.as_str(), s.task_name.as_str()),
        ("job-7", "nightly", "t")
    );
    assert_eq!((s.index, s.instances, s.attempt), (3, 10, 2));
    assert_eq!(
        s.command,
        Command::Argv(vec!["echo".into(), "hi there".into()])
    );
    assert_eq!(s.env, a.env);
    assert_eq!(s.timeout, Some(ms(1500)));
    assert_eq!(s.image, Image::Docker("registry.local/app:2".into()));
    assert_eq!(s.network.as_deref(), Some("vpc-a"));
    assert_eq!(
        (s.resources.millicpus, s.memory_limit()),
        (1500, Some(1 << 30))
    );
    // The storage it was given, by profile, and which mapping uses which.
    assert_eq!(s.storage.keys().collect::<Vec<_>>(), ["lab", "other"]);
    assert_eq!(s.storage_profile.as_deref(), Some("lab"));
    assert_eq!(s.inputs[0].profile.as_deref(), Some("other"));
    assert_eq!(s.outputs[0].profile, None);
    let cfg = s.storage["lab"].config();
    assert_eq!(cfg.endpoint.as_deref(), Some("http://10.0.0.5:9000"));
    assert_eq!(cfg.secret_access_key.as_deref(), Some("TOPSECRET"));
    assert!(cfg.allow_http);

    let s = attempt_spec(AttemptAssignment {
        command: CommandDto::Shell("exit 3".into()),
        env: BTreeMap::new(),
        timeout_ms: None,
        inputs: Vec::new(),
        outputs: Vec::new(),
        stdout: None,
        stderr: None,
        storage: Vec::new(),
        storage_profile: None,
        registry: None,
        ..a
    });
    assert!(s.storage.is_empty() && s.storage_profile.is_none());
    assert_eq!(s.command, Command::Shell("exit 3".into()));
    assert!(s.env.is_empty());
    assert_eq!(s.timeout, None);
}

#[test]
fn outcomes_become_events() {
    assert_eq!(
        outcome_kind(Outcome::Exited(3)),
        AttemptEventKind::Exited { code: 3 }
    );
    assert_eq!(
        outcome_kind(Outcome::Signaled(9)),
        AttemptEventKind::Signaled { signal: 9 }
    );
    assert_eq!(outcome_kind(Outcome::TimedOut), AttemptEventKind::TimedOut);
    assert_eq!(outcome_kind(Outcome::Stopped), AttemptEventKind::Stopped);
    assert_eq!(
        outcome_kind(Outcome::StartFailed {
            message: "nope".into(),
            resource: false
        }),
        AttemptEventKind::StartFailed {
            message: "nope".into(),
            resource: false
        }
    );
    assert!(!is_end(&AttemptEventKind::Started { pid: Some(1) }));
    assert!(is_end(&AttemptEventKind::Stopped));
}

#[test]
fn errors_are_sorted() {
    let http = |status| ClientError::Http {
        status,
        error: ErrorDetail {
            code: "x".into(),
            message: "y".into(),
            field: None,
        },
    };
    assert_eq!(
        classify(&ClientError::Transport("refused".into())),
        Failure::Retry
    );
    for status in [500, 502, 503, 408, 429] {
        assert_eq!(classify(&http(status)), Failure::Retry, "{status}");
    }
    assert_eq!(classify(&http(401)), Failure::Unauthorized);
    // 403: the request named what is not this node's; the credential itself is fine.
    assert_eq!(classify(&http(403)), Failure::Rejected);
    assert_eq!(classify(&http(404)), Failure::NotFound);
    for status in [400, 409, 413, 422] {
        assert_eq!(classify(&http(status)), Failure::Rejected, "{status}");
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut b = Backoff::default();
    let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert_eq!(b.failures(), 9);
    assert_eq!(b.reset(), 9);
    assert_eq!(b.failures(), 0);
    assert_eq!(b.next_delay(), ms(100));
}

#[test]
fn reports_wait_for_company_or_a_full_batch() {
    let t0 = Instant::now();
    let mut q = ReportQueue::new(3, ms(5), Backoff::default());
    assert_eq!(q.due_at(), None);
    assert!(!q.is_due(t0 + ms(1000)));
    q.push(event(0), t0);
    assert_eq!(q.due_at(), Some(t0 + ms(5)));
    q.push(event(1), t0 + ms(2));
    assert!(!q.is_due(t0 + ms(4)));
    assert!(q.is_due(t0 + ms(5)));
    // A full batch is due at once.
    q.push(event(2), t0 + ms(3));
    assert!(q.is_due(t0 + ms(3)));
    q.push(event(3), t0 + ms(3));
    let batch = q.take_batch();
    assert_eq!(batch, vec![event(0), event(1), event(2)]);
    q.accepted();
    // The rest waits for its own linger.
    assert_eq!(q.len(), 1);
    assert_eq!(q.due_at(), Some(t0 + ms(8)));
}

#[test]
fn failed_reports_are_kept_in_order_and_retried_with_backoff() {
    let t0 = Instant::now();
    let mut q = ReportQueue::new(2, ms(5), Backoff::default());
    for i in 0..3 {
        q.push(event(i), t0);
    }
    let batch = q.take_batch();
    assert_eq!(batch, vec![event(0), event(1)]);
    // An event arrives while the batch is out.
    q.push(event(3), t0 + ms(1));
    let t1 = t0 + ms(10);
    assert_eq!(q.failed(batch, t1), ms(100));
    assert_eq!(q.len(), 4);
    assert!(!q.is_due(t1 + ms(99)));
    assert!(q.is_due(t1 + ms(100)));
    let t2 = t1 + ms(100);
    let batch = q.take_batch();
    assert_eq!(batch, vec![event(0), event(1)]);
    assert_eq!(q.failed(batch, t2), ms(200));
    assert_eq!(q.due_at(), Some(t2 + ms(200)));
    let batch = q.take_batch();
    assert_eq!(batch, vec![event(0), event(1)]);
    q.accepted();
    let batch = q.take_batch();
    assert_eq!(batch, vec![event(2), event(3)]);
    // Backoff starts over after a success.
    assert_eq!(q.failed(batch, t2), ms(100));
    assert_eq!(q.take_batch(), vec![event(2), event(3)]);
    q.accepted();
    assert!(q.is_empty());
    assert_eq!(q.due_at(), None);
}

#[test]
fn default_report_queue_batches_256() {
    let t0 = Instant::now();
    let mut q = ReportQueue::default();
    for i in 0..300 {
        q.push(event(i), t0);
    }
    assert!(q.is_due(t0));
    assert_eq!(q.take_batch().len(), REPORT_BATCH);
    assert_eq!(q.len(), 44);
    assert_eq!(q.due_at(), Some(t0 + REPORT_LINGER));
}

#[test]
fn chunks_carry_offsets() {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let cs = chunks(&key(0), STDOUT, 500, &data, 4096);
    assert_eq!(cs.len(), 3);
    assert_eq!(
        cs.iter().map(|c| c.offset).collect::<Vec<_>>(),
        [500, 4596, 8692]
    );
    let joined: Vec<u8> = cs.iter().flat_map(|c| c.data().unwrap()).collect();
    assert_eq!(joined, data);
    assert!(cs.iter().all(|c| c.stream == STDOUT && c.key == key(0)));
    assert!(chunks(&key(0), STDOUT, 0, &[], 4096).is_empty());
    // Real chunks stay within the limit.
    let big = vec![b'x'; LOG_CHUNK * 2 + 1];
    let cs = chunks(&key(0), STDERR, 0, &big, LOG_CHUNK);
    assert_eq!(
        cs.iter()
            .map(|c| c.data().unwrap().len())
            .collect::<Vec<_>>(),
        [LOG_CHUNK, LOG_CHUNK, 1]
    );
}

fn append(path: &std::path::Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

fn collected(batch: &LogBatch) -> Vec<(u32, String, u64, Vec<u8>)> {
    batch
        .chunks
        .iter()
        .map(|c| (c.key.index, c.stream.clone(), c.offset, c.data().unwrap()))
        .collect()
}

#[test]
fn tails_ship_new_output_from_acknowledged_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("0.1.stdout"), dir.path().join("0.1.stderr"));
    let mut tails = LogTails::new();
    tails.track(key(0), out.clone(), err.clone());
    // Nothing captured yet: the files do not exist.
    let batch = tails.collect(1 << 20, true);
    assert!(batch.is_empty());
    tails.commit(batch);

    append(&out, b"hello ");
    append(&err, b"oops");
    let batch = tails.collect(1 << 20, true);
    assert_eq!(
        collected(&batch),
        [
            (0, STDOUT.into(), 0, b"hello ".to_vec()),
            (0, STDERR.into(), 0, b"oops".to_vec())
        ]
    );
    // Not committed (the request failed): the same bytes again, plus what is new.
    drop(batch);
    append(&out, b"world");
    let batch = tails.collect(1 << 20, true);
    assert_eq!(
        collected(&batch),
        [
            (0, STDOUT.into(), 0, b"hello world".to_vec()),
            (0, STDERR.into(), 0, b"oops".to_vec())
        ]
    );
    assert!(tails.commit(batch).is_empty());
    assert_eq!(tails.offsets(&key(0)), Some([11, 4]));
    let batch = tails.collect(1 << 20, true);
    assert!(batch.is_empty());
    tails.commit(batch);

    // The attempt ends: the rest ships, then the attempt is done.
    append(&out, b"!");
    assert!(tails.finish(&key(0)));
    assert!(tails.has_ended());
    let mut batch = tails.collect(1 << 20, false);
    assert_eq!(collected(&batch), [(0, STDOUT.into(), 11, b"!".to_vec())]);
    let chunks = batch.take_chunks();
    assert_eq!(chunks.len(), 1);
    let done = tails.commit(batch);
    assert_eq!(
        done,
        [ShippedTail {
            key: key(0),
            files: vec![out, err]
        }]
    );
    assert!(tails.is_empty());
    assert!(!tails.finish(&key(0)));
}

#[test]
fn an_attempt_without_output_is_done_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut tails = LogTails::new();
    tails.track(key(0), dir.path().join("a"), dir.path().join("b"));
    tails.finish(&key(0));
    let batch = tails.collect(1 << 20, false);
    assert!(batch.chunks.is_empty());
    assert!(!batch.is_empty());
    assert_eq!(
        tails.commit(batch),
        [ShippedTail {
            key: key(0),
            files: vec![]
        }]
    );
}

#[test]
fn the_byte_budget_splits_rounds_and_ended_attempts_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut tails = LogTails::new();
    for i in 0..3 {
        let out = dir.path().join(format!("{i}.out"));
        append(&out, &[b'a' + i as u8; 100]);
        tails.track(key(i), out, dir.path().join(format!("{i}.err")));
    }
    tails.finish(&key(2));
    // Only the ended attempt without running_too.
    let batch = tails.collect(1000, false);
    assert_eq!(
        collected(&batch)
            .iter()
            .map(|c| (c.0, c.2, c.3.len()))
            .collect::<Vec<_>>(),
        [(2, 0, 100)]
    );
    drop(batch);
    // A budget of 150: the ended attempt first, then part of the next.
    let batch = tails.collect(150, true);
    assert!(batch.more);
    assert_eq!(
        collected(&batch)
            .iter()
            .map(|c| (c.0, c.2, c.3.len()))
            .collect::<Vec<_>>(),
        [(2, 0, 100), (0, 0, 50)]
    );
    let done = tails.commit(batch);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].key, key(2));
    // The next round starts after the attempt the budget ran out on, then comes back round.
    let batch = tails.collect(120, true);
    assert!(batch.more);
    assert_eq!(
        collected(&batch)
            .iter()
            .map(|c| (c.0, c.2, c.3.len()))
            .collect::<Vec<_>>(),
        [(1, 0, 100), (0, 50, 20)]
    );
    tails.commit(batch);
    let batch = tails.collect(1000, true);
    assert!(!batch.more);
    assert_eq!(
        collected(&batch)
            .iter()
            .map(|c| (c.0, c.2, c.3.len()))
            .collect::<Vec<_>>(),
        [(0, 70, 30)]
    );
    tails.commit(batch);
    assert_eq!(tails.offsets(&key(0)), Some([100, 0]));
    assert_eq!(tails.offsets(&key(1)), Some([100, 0]));
}
