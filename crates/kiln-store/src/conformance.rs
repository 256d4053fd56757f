//! The conformance suite every [`Store`] implementation must pass.
//!
//! Call [`run`] from each backend's tests with a fresh, empty store.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::engine::{Attempt, Change};
use kiln_core::model::{Command, DependencyPolicy, Image, JobSpec, OnFailure, Resources, TaskSpec};
use kiln_core::state::{Instance, Reason, State};

use crate::{ComputeEnvRecord, JobQuery, NodeRecord, Store, StoreError, TemplateRecord};

/// A valid two-task job spec (tasks "a" and "b", three instances each), for backends' tests.
pub fn sample_spec() -> JobSpec {
    let task = |name: &str| TaskSpec {
        name: name.to_string(),
        command: Command::Argv(vec!["true".into()]),
        image: Image::Host,
        instances: 3,
        max_concurrency: 0,
        resources: Resources::default(),
        instance_type: None,
        network: None,
        compute_env: None,
        storage_profile: None,
        registry_profile: None,
        env: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        stdout: None,
        stderr: None,
        retries: 1,
        resource_retries: 3,
        timeout_ms: None,
        on_failure: OnFailure::Terminate,
        deps: Vec::new(),
        items: None,
        on_out_of_memory: None,
    };
    JobSpec {
        name: "conformance".into(),
        description: None,
        priority: 50,
        tags: BTreeMap::new(),
        dependency_policy: DependencyPolicy::Succeeded,
        timeout_ms: None,
        tasks: vec![task("a"), task("b")],
        project: None,
        sealed_credentials: None,
    }
}

/// Runs every check against `store`, which must be empty. Panics on the first failure.
pub fn run(store: &dyn Store) {
    jobs_and_changes(store);
    listing_jobs(store);
    instance_pages_and_counts(store);
    deleting_jobs(store);
    task_items(store);
    secrets(store);
    templates(store);
    compute_envs(store);
    creating_once(store);
    nodes(store);
    leases(store);
    idempotency(store);
    commands(store);
    storage_profiles(store);
    projects(store);
    tokens(store);
    audit(store);
    journal(store);
}

/// Projects: `default` is there from the start; others are created once per name, listed by
/// name, deleted.
#[allow(clippy::unwrap_used)]
fn projects(store: &dyn Store) {
    use crate::ProjectRecord;
    let default = store.get_project(crate::DEFAULT_PROJECT).unwrap().unwrap();
    assert_eq!(default.name, "default");
    assert_eq!(store.list_projects().unwrap(), vec![default.clone()]);
    let ml = ProjectRecord {
        name: "ml".into(),
        description: Some("models".into()),
        created_at: 5,
    };
    assert!(store.create_project(&ml).unwrap());
    let again = ProjectRecord {
        description: None,
        ..ml.clone()
    };
    assert!(!store.create_project(&again).unwrap(), "a taken name");
    assert_eq!(store.get_project("ml").unwrap(), Some(ml.clone()));
    assert_eq!(store.get_project("ML").unwrap(), None);
    assert_eq!(store.list_projects().unwrap(), vec![default.clone(), ml]);
    assert!(store.delete_project("ml").unwrap());
    assert!(!store.delete_project("ml").unwrap());
    assert_eq!(store.list_projects().unwrap(), vec![default]);
}

/// API tokens: created once per name, read back as stored (every call reads the database),
/// revoked once.
#[allow(clippy::unwrap_used)]
fn tokens(store: &dyn Store) {
    use crate::TokenRecord;
    assert!(store.list_tokens().unwrap().is_empty());
    assert_eq!(store.get_token("ci").unwrap(), None);
    let ci = TokenRecord {
        name: "ci".into(),
        digest: "ab".repeat(32),
        project: "default".into(),
        role: "submitter".into(),
        created_at: 10,
        expires_at: Some(1_000),
        revoked_at: None,
    };
    let ops = TokenRecord {
        name: "ops".into(),
        digest: "cd".repeat(32),
        role: "operator".into(),
        expires_at: None,
        ..ci.clone()
    };
    assert!(store.create_token(&ops).unwrap());
    assert!(store.create_token(&ci).unwrap());
    assert!(!store.create_token(&ci).unwrap(), "a taken name");
    assert_eq!(store.get_token("ci").unwrap(), Some(ci.clone()));
    assert_eq!(store.list_tokens().unwrap(), vec![ci.clone(), ops.clone()]);
    assert!(store.revoke_token("ci", 20).unwrap());
    assert!(!store.revoke_token("ci", 30).unwrap(), "revoked already");
    assert!(!store.revoke_token("nobody", 30).unwrap());
    assert_eq!(store.get_token("ci").unwrap().unwrap().revoked_at, Some(20));
    assert_eq!(store.get_token("ops").unwrap(), Some(ops));
}

/// Audit records: appended in order, read from a time and after a sequence number, paged.
#[allow(clippy::unwrap_used)]
fn audit(store: &dyn Store) {
    use crate::AuditRecord;
    assert!(store.audit(0, 0, 10).unwrap().is_empty());
    let record = |at: u64, action: &str| AuditRecord {
        seq: 0,
        at,
        token: "ci".into(),
        project: Some("default".into()),
        action: action.into(),
        object: "job/job-1".into(),
        result: 201,
    };
    let a = store.append_audit(&record(100, "POST /v1/jobs")).unwrap();
    let b = store
        .append_audit(&AuditRecord {
            project: None,
            result: 404,
            ..record(200, "DELETE /v1/jobs/{id}")
        })
        .unwrap();
    let c = store.append_audit(&record(300, "POST /v1/jobs")).unwrap();
    assert!(a < b && b < c, "{a} {b} {c}");
    let all = store.audit(0, 0, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [a, b, c]);
    assert_eq!(
        all[1],
        AuditRecord {
            seq: b,
            project: None,
            result: 404,
            ..record(200, "DELETE /v1/jobs/{id}")
        }
    );
    let since: Vec<u64> = store
        .audit(200, 0, 10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(since, [b, c]);
    let page: Vec<u64> = store
        .audit(0, a, 1)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(page, [b]);
    assert!(store.audit(301, 0, 10).unwrap().is_empty());
}

/// The journal: events written with the writes they describe, numbered in commit order with
/// no gap, read back in order and filtered; a refused tick writes none; trimmed from the
/// front by age.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn journal(store: &dyn Store) {
    use crate::EventQuery;
    use kiln_core::journal::{Detail, Event, EventKind};
    let base = store.last_event_seq().unwrap();
    let all = |after: u64| {
        store
            .events(&EventQuery {
                after,
                limit: 1000,
                ..EventQuery::default()
            })
            .unwrap()
    };
    assert!(all(base).is_empty(), "nothing after the newest");

    store.insert_job("job-ev", &sample_spec(), 10).unwrap();
    let job: kiln_core::engine::JobId = Arc::from("job-ev");
    let detail = Detail {
        task: Some("a".into()),
        index: Some(2),
        attempt: Some(1),
        node: Some("local".into()),
        state: Some("RUNNING".into()),
        ..Detail::default()
    };
    let started = Event::new(
        EventKind::InstanceStarted,
        30,
        Some("job-ev"),
        detail.clone(),
    );
    store
        .apply(&[
            Change::Job {
                job: job.clone(),
                state: State::Running,
                reason: None,
                at: 20,
                deadline: None,
            },
            Change::Event(Event::of_job(EventKind::JobStarted, "job-ev", 20)),
            Change::Event(started.clone()),
        ])
        .unwrap();
    // Events alone (no record) are written too.
    store
        .apply(&[Change::Event(Event::of_job(
            EventKind::JobTerminated,
            "job-ev",
            40,
        ))])
        .unwrap();
    let got = all(base);
    let kinds: Vec<EventKind> = got.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::JobSubmitted,
            EventKind::JobStarted,
            EventKind::InstanceStarted,
            EventKind::JobTerminated
        ]
    );
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (base + 1..=base + 4).collect::<Vec<_>>(), "no gap");
    assert_eq!(got[0].event.at, 10);
    assert_eq!(got[0].event.project, "default");
    assert_eq!(got[2].event, started, "read back as written");
    assert_eq!(store.last_event_seq().unwrap(), base + 4);

    // Resuming after any event gives exactly the rest.
    assert_eq!(all(base + 2), got[2..].to_vec());
    // Pages.
    let page = store
        .events(&EventQuery {
            after: base,
            limit: 2,
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(page, got[..2].to_vec());
    // Filters: by job, by kind, by project.
    let by_kind = store
        .events(&EventQuery {
            after: base,
            kinds: vec![EventKind::InstanceStarted, EventKind::JobTerminated],
            limit: 10,
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(by_kind, vec![got[2].clone(), got[3].clone()]);
    let other_job = store
        .events(&EventQuery {
            after: base,
            job: Some("job-none".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .unwrap();
    assert!(other_job.is_empty());
    let this_job = store
        .events(&EventQuery {
            after: base,
            job: Some("job-ev".into()),
            project: Some("default".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .unwrap();
    assert_eq!(this_job, got);
    let other_project = store
        .events(&EventQuery {
            after: base,
            project: Some("other".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .unwrap();
    assert!(other_project.is_empty());

    // A tick the fence refuses writes no event; a refused batch naming an unknown job
    // neither.
    let epoch = store.lease().unwrap().epoch;
    let refused = store.apply_fenced(
        &[Change::Event(Event::of_job(
            EventKind::JobStarted,
            "job-ev",
            50,
        ))],
        epoch + 7,
    );
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let unknown = store.apply(&[
        Change::Job {
            job: Arc::from("job-unknown"),
            state: State::Running,
            reason: None,
            at: 1,
            deadline: None,
        },
        Change::Event(Event::of_job(EventKind::JobStarted, "job-unknown", 50)),
    ]);
    assert!(unknown.is_err());
    assert_eq!(store.last_event_seq().unwrap(), base + 4);

    // Nodes: a new state is an event, the same state again is none, removal is one.
    let node = NodeRecord {
        id: "node-ev".into(),
        name: "ev-1".into(),
        state: "CREATING".into(),
        compute_env: Some("pool".into()),
        slots: 1,
        millicpus: 1000,
        memory: 1 << 30,
        last_seen: 60,
        created_at: 60,
    };
    store.upsert_node(&node).unwrap();
    store.upsert_node(&node).unwrap();
    let running = NodeRecord {
        state: "RUNNING".into(),
        last_seen: 61,
        ..node.clone()
    };
    store.upsert_node(&running).unwrap();
    store
        .upsert_node(&NodeRecord {
            last_seen: 62,
            ..running.clone()
        })
        .unwrap();
    store
        .upsert_node(&NodeRecord {
            state: "ABNORMAL".into(),
            last_seen: 63,
            ..running
        })
        .unwrap();
    assert!(store.delete_node("ev-1").unwrap());
    assert!(!store.delete_node("ev-1").unwrap());
    // Compute environments: created, replaced, scaled, deleted; nothing for what did not
    // happen.
    let env = ComputeEnvRecord {
        name: "ev-pool".into(),
        description: None,
        provider: "local".into(),
        desired_nodes: 1,
        config_json: "{}".into(),
        created_at: 70,
        updated_at: 70,
        projects: vec!["default".into()],
    };
    assert!(store.create_compute_env(&env).unwrap());
    assert!(!store.create_compute_env(&env).unwrap());
    assert!(!store.put_compute_env(&env).unwrap());
    assert!(store.set_desired_nodes("ev-pool", 3).unwrap());
    assert!(!store.set_desired_nodes("ev-none", 3).unwrap());
    assert!(store.delete_compute_env("ev-pool").unwrap());
    assert!(!store.delete_compute_env("ev-pool").unwrap());
    assert!(store.delete_job("job-ev").unwrap());
    let rest = all(base + 4);
    let kinds: Vec<EventKind> = rest.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::NodeCreated,
            EventKind::NodeJoined,
            EventKind::NodeLost,
            EventKind::NodeRemoved,
            EventKind::ComputeEnvCreated,
            EventKind::ComputeEnvUpdated,
            EventKind::ComputeEnvScaled,
            EventKind::ComputeEnvDeleted,
            EventKind::JobDeleted,
        ]
    );
    assert_eq!(rest[0].event.detail.node.as_deref(), Some("ev-1"));
    assert_eq!(rest[3].event.detail.compute_env.as_deref(), Some("pool"));
    assert_eq!(rest[6].event.detail.desired_nodes, Some(3));
    assert_eq!(rest[8].event.job.as_deref(), Some("job-ev"));
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (base + 5..=base + 13).collect::<Vec<_>>(), "no gap");

    // Retention: only what is older than the cutoff goes, oldest first, in batches.
    assert_eq!(store.purge_events(35, 1).unwrap(), 1, "one at a time");
    while store.purge_events(35, 1).unwrap() == 1 {}
    let left = all(0);
    assert!(left.iter().all(|e| e.event.at >= 35), "{left:?}");
    assert_eq!(
        left.iter().find(|e| e.seq > base).map(|e| e.seq),
        Some(base + 4),
        "JobTerminated (at 40) and what came after stay"
    );
    assert_eq!(
        store.last_event_seq().unwrap(),
        base + 13,
        "trimming keeps the numbering"
    );
}

/// Storage profiles: created once per name, listed by name, read back as stored, deleted.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn storage_profiles(store: &dyn Store) {
    use crate::StorageProfileRecord;
    assert!(store.list_storage_profiles().unwrap().is_empty());
    assert_eq!(store.get_storage_profile("lab").unwrap(), None);
    let lab = StorageProfileRecord {
        name: "lab".into(),
        config_json: r#"{"kind":"s3","secret_access_key":"xc1:00"}"#.into(),
        created_at: 1_700_000_000_123,
        project: "default".into(),
    };
    assert!(store.create_storage_profile(&lab).unwrap());
    let again = StorageProfileRecord {
        config_json: "{}".into(),
        ..lab.clone()
    };
    assert!(
        !store.create_storage_profile(&again).unwrap(),
        "the name is taken"
    );
    let cos = StorageProfileRecord {
        name: "cos-a".into(),
        config_json: r#"{"kind":"cos"}"#.into(),
        created_at: 5,
        project: "ml".into(),
    };
    assert!(store.create_storage_profile(&cos).unwrap());
    assert_eq!(store.get_storage_profile("lab").unwrap(), Some(lab.clone()));
    assert_eq!(store.get_storage_profile("Lab").unwrap(), None);
    assert_eq!(
        store.list_storage_profiles().unwrap(),
        vec![cos.clone(), lab.clone()]
    );
    assert!(store.delete_storage_profile("lab").unwrap());
    assert!(!store.delete_storage_profile("lab").unwrap());
    assert_eq!(store.list_storage_profiles().unwrap(), vec![cos]);
    assert!(store.delete_storage_profile("cos-a").unwrap());
}

/// Commands a standby stores for the leader: in order, answered once, purged when old.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn commands(store: &dyn Store) {
    assert!(store.pending_commands(10).unwrap().is_empty());
    assert_eq!(store.get_command(12345).unwrap(), None);
    let a = store.push_command(r#"{"op":"a"}"#, 100).unwrap();
    let b = store.push_command(r#"{"op":"b"}"#, 101).unwrap();
    let c = store.push_command(r#"{"op":"c"}"#, 102).unwrap();
    assert!(a < b && b < c, "{a} {b} {c}");
    let pending = store.pending_commands(10).unwrap();
    assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [a, b, c]);
    assert_eq!(
        pending[1],
        crate::CommandRecord {
            id: b,
            command: r#"{"op":"b"}"#.into(),
            created_at: 101,
            answer: None,
        }
    );
    assert_eq!(store.pending_commands(2).unwrap().len(), 2);

    let answer = crate::CommandAnswer {
        status: 409,
        message: "job x already finished".into(),
        at: 200,
    };
    assert!(store.answer_command(b, &answer).unwrap());
    // Answered once: a second answer (a deposed leader's, say) changes nothing.
    let late = crate::CommandAnswer {
        status: 200,
        message: String::new(),
        at: 201,
    };
    assert!(!store.answer_command(b, &late).unwrap());
    assert!(!store.answer_command(999_999, &late).unwrap());
    assert_eq!(
        store.get_command(b).unwrap().and_then(|r| r.answer),
        Some(answer)
    );
    assert_eq!(
        store
            .pending_commands(10)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        [a, c]
    );
    assert!(store.answer_command(a, &late).unwrap());
    // Only answered commands are purged, and only those answered before the limit.
    assert_eq!(store.purge_commands(201).unwrap(), 1);
    assert_eq!(store.get_command(b).unwrap(), None);
    assert!(store.get_command(a).unwrap().is_some());
    assert_eq!(store.purge_commands(1_000).unwrap(), 1);
    assert_eq!(store.pending_commands(10).unwrap().len(), 1);
    assert!(store.answer_command(c, &late).unwrap());
    assert_eq!(store.purge_commands(1_000).unwrap(), 1);
    // Ids are never reused.
    assert!(store.push_command("{}", 300).unwrap() > c);
    let d = store.pending_commands(1).unwrap()[0].id;
    assert!(store.answer_command(d, &late).unwrap());
    assert_eq!(store.purge_commands(1_000).unwrap(), 1);
}

/// The job "job-conform1" is stored, changed, loaded and finished.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn jobs_and_changes(store: &dyn Store) {
    let spec = sample_spec();
    let job: Arc<str> = Arc::from("job-conform1");
    let row = store.insert_job(&job, &spec, 1_000).unwrap();
    assert_eq!(row.state, State::Submitted);
    assert!(matches!(
        store.insert_job(&job, &spec, 1_001),
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
    assert_eq!(store.unfinished_with_spec(&spec).unwrap().len(), 1);
    let mut other = spec.clone();
    other.name = "other".into();
    assert!(store.unfinished_with_spec(&other).unwrap().is_empty());

    let running = Instance {
        state: State::Running,
        attempt: 2,
        retries_used: 1,
        memory: 128 << 20,
        oom_retries_used: 1,
        ..Instance::fresh()
    };
    let att = |n: u32, state: State, reason: Option<Reason>| Attempt {
        attempt: n,
        state,
        reason,
        exit_code: None,
        node: "local".into(),
        pid: Some(42),
        started_at: 1_100,
        ended_at: None,
        memory: u64::from(n) << 26,
    };
    let changes = vec![
        Change::Job {
            job: job.clone(),
            state: State::Running,
            reason: None,
            at: 1_200,
            deadline: Some(9_000),
        },
        Change::Task {
            job: job.clone(),
            task: 0,
            state: State::Running,
            reason: None,
            stop: None,
            unstarted: None,
            blocked: Some(Reason::ConcurrencyLimit),
            counts: BTreeMap::from([
                (State::Running, 1),
                (State::Succeed, 1),
                (State::Runnable, 1),
            ]),
        },
        Change::Attempt {
            job: job.clone(),
            task: 0,
            index: 1,
            record: att(1, State::Failed, Some(Reason::ExitCode(3))),
        },
        // Two writes of one record in a batch: the last one wins.
        Change::Instance {
            job: job.clone(),
            task: 0,
            index: 1,
            record: Instance::fresh(),
        },
        Change::Instance {
            job: job.clone(),
            task: 0,
            index: 1,
            record: running.clone(),
        },
        Change::Attempt {
            job: job.clone(),
            task: 0,
            index: 1,
            record: att(2, State::Running, None),
        },
        Change::Instance {
            job: job.clone(),
            task: 0,
            index: 0,
            record: Instance {
                state: State::Succeed,
                attempt: 1,
                exit_code: Some(0),
                ..Instance::fresh()
            },
        },
    ];
    store.apply(&changes).unwrap();
    // Applying the same batch again changes nothing (reports delivered twice count once).
    store.apply(&changes).unwrap();

    let loaded = store.load_job(&job).unwrap().expect("job stored");
    assert_eq!(store.job_row(&job).unwrap().as_ref(), Some(&loaded.row));
    assert!(store.job_row("job-missing").unwrap().is_none());
    assert_eq!(*loaded.spec, spec);
    assert_eq!(loaded.row.state, State::Running);
    assert_eq!(loaded.row.deadline, Some(9_000));
    assert_eq!(loaded.tasks.len(), 2);
    assert_eq!(loaded.tasks[0].state, Some(State::Running));
    assert_eq!(loaded.tasks[1].state, Some(State::Submitted));
    let mut insts = loaded.tasks[0].instances.clone();
    insts.sort_by_key(|(i, _, _)| *i);
    assert_eq!(insts.len(), 2);
    assert_eq!(insts[0].1.state, State::Succeed);
    assert_eq!(insts[1].1, running);
    assert_eq!(insts[1].2, Some(att(2, State::Running, None)));

    let view = store.job_view(&job).unwrap().expect("job stored");
    assert_eq!(view.row, loaded.row);
    assert_eq!(*view.spec, spec);
    assert_eq!(view.tasks.len(), 2);
    let (a, b) = (&view.tasks[0], &view.tasks[1]);
    assert_eq!((a.name.as_str(), a.state), ("a", State::Running));
    assert_eq!(a.blocked, Some(Reason::ConcurrencyLimit));
    assert_eq!(
        a.counts,
        BTreeMap::from([
            (State::Running, 1),
            (State::Succeed, 1),
            (State::Runnable, 1)
        ])
    );
    assert_eq!((b.name.as_str(), b.state), ("b", State::Submitted));
    assert!(b.counts.is_empty() && b.blocked.is_none() && b.stop.is_none());
    assert!(store.job_view("job-missing").unwrap().is_none());

    let attempts = store.attempts(&job, 0, 1).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].reason, Some(Reason::ExitCode(3)));

    store
        .apply(&[Change::Job {
            job: job.clone(),
            state: State::Succeed,
            reason: None,
            at: 2_000,
            deadline: None,
        }])
        .unwrap();
    assert!(store.unfinished_jobs().unwrap().is_empty());
    assert!(store.load_job("job-missing").unwrap().is_none());
    assert!(
        store
            .apply(&[Change::Job {
                job: Arc::from("job-missing"),
                state: State::Failed,
                reason: None,
                at: 1,
                deadline: None,
            }])
            .is_err()
    );
}

/// A task's items are stored with its job, in chunks, and deleted with it.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn task_items(store: &dyn Store) {
    let mut spec = sample_spec();
    let text: String = (0..2500).map(|i| format!("item-{i}\n")).collect();
    let list = kiln_core::items::from_lines(text.as_bytes()).unwrap();
    spec.tasks[1].instances = list.len();
    spec.tasks[1].items = Some(kiln_core::model::TaskItems {
        source: kiln_core::model::ItemSource::Each,
        digest: Some(list.digest()),
        list: Some(Arc::new(list)),
    });
    store.insert_job("job-items1", &spec, 7_000).unwrap();
    assert!(store.item_chunk("job-items1", 0, 0).unwrap().is_none());
    let chunks: Vec<String> = (0..3)
        .map(|c| {
            store
                .item_chunk("job-items1", 1, c)
                .unwrap()
                .expect("chunk stored")
        })
        .collect();
    assert_eq!(chunks[0].lines().count(), 1024);
    assert_eq!(chunks[1].lines().next(), Some("\"item-1024\""));
    assert_eq!(chunks[2].lines().last(), Some("\"item-2499\""));
    assert!(store.item_chunk("job-items1", 1, 3).unwrap().is_none());
    // The stored spec has the digest, not the items.
    let loaded = store.load_job("job-items1").unwrap().unwrap();
    let items = loaded.spec.tasks[1].items.as_ref().unwrap();
    assert!(items.list.is_none() && items.digest.is_some());
    assert!(store.delete_job("job-items1").unwrap());
    assert!(store.item_chunk("job-items1", 1, 0).unwrap().is_none());
}

fn named(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        ..sample_spec()
    }
}

fn attempt(n: u32, state: State, node: &str) -> Attempt {
    Attempt {
        attempt: n,
        state,
        reason: (state == State::Failed).then_some(Reason::ExitCode(1)),
        exit_code: (state == State::Failed).then_some(1),
        node: node.into(),
        pid: Some(100 + n),
        started_at: 5_000 + u64::from(n),
        ended_at: state.is_terminal().then_some(6_000 + u64::from(n)),
        memory: 0,
    }
}

fn instance(state: State, attempt: u32) -> Instance {
    Instance {
        state,
        attempt,
        retries_used: attempt.saturating_sub(1),
        ..Instance::fresh()
    }
}

/// Every change that materialises instance `index` of `task` with `attempts` attempts, the last
/// one in `state` (earlier ones failed).
fn materialise(
    job: &Arc<str>,
    task: usize,
    index: u32,
    state: State,
    attempts: u32,
) -> Vec<Change> {
    let mut changes = vec![Change::Instance {
        job: job.clone(),
        task,
        index,
        record: instance(state, attempts),
    }];
    for n in 1..=attempts {
        let s = if n == attempts { state } else { State::Failed };
        changes.push(Change::Attempt {
            job: job.clone(),
            task,
            index,
            record: attempt(n, s, &format!("node-{task}-{index}")),
        });
    }
    changes
}

fn ids(rows: &[crate::JobRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

/// `list_jobs`: newest first, filters, the cursor. "job-conform1" (SUCCEED) is already stored.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn listing_jobs(store: &dyn Store) {
    for (id, name, at) in [
        ("job-list1", "alpha-1", 3_001),
        ("job-list2", "beta", 3_002),
        ("job-list3", "alpha-2", 3_003),
        ("job-list4", "Alpha-3", 3_004),
        ("job-list5", "a_b%", 3_005),
    ] {
        store.insert_job(id, &named(name), at).unwrap();
    }
    store
        .apply(&[Change::Job {
            job: Arc::from("job-list2"),
            state: State::Running,
            reason: None,
            at: 3_100,
            deadline: None,
        }])
        .unwrap();
    let q = |limit: u32| JobQuery {
        limit,
        ..JobQuery::default()
    };
    let all = store.list_jobs(&q(100)).unwrap();
    assert_eq!(
        ids(&all),
        [
            "job-list5",
            "job-list4",
            "job-list3",
            "job-list2",
            "job-list1",
            "job-conform1"
        ]
    );
    assert!(
        all.windows(2).all(|w| w[0].seq > w[1].seq),
        "seq descending"
    );
    let beta = &all[3];
    assert_eq!((beta.name.as_str(), beta.state), ("beta", State::Running));
    assert_eq!((beta.created_at, beta.updated_at), (3_002, 3_100));
    assert_eq!(beta.priority, 50);
    assert!(store.list_jobs(&q(0)).unwrap().is_empty());

    // Paging with the cursor walks the whole list once.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(&JobQuery {
                after_seq: after,
                ..q(2)
            })
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let by_state = |state| JobQuery {
        state: Some(state),
        ..q(100)
    };
    assert_eq!(
        ids(&store.list_jobs(&by_state(State::Running)).unwrap()),
        ["job-list2"]
    );
    assert_eq!(
        ids(&store.list_jobs(&by_state(State::Succeed)).unwrap()),
        ["job-conform1"]
    );
    assert!(
        store
            .list_jobs(&by_state(State::Failed))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_jobs(&by_state(State::Submitted)).unwrap().len(),
        4
    );

    let by_prefix = |prefix: &str| JobQuery {
        name_prefix: Some(prefix.into()),
        ..q(100)
    };
    // Case-sensitive; no wildcards.
    assert_eq!(
        ids(&store.list_jobs(&by_prefix("alpha")).unwrap()),
        ["job-list3", "job-list1"]
    );
    assert_eq!(
        ids(&store.list_jobs(&by_prefix("Alpha")).unwrap()),
        ["job-list4"]
    );
    assert_eq!(
        ids(&store.list_jobs(&by_prefix("a_")).unwrap()),
        ["job-list5"]
    );
    assert_eq!(
        ids(&store.list_jobs(&by_prefix("a_b%")).unwrap()),
        ["job-list5"]
    );
    assert!(store.list_jobs(&by_prefix("alpha%")).unwrap().is_empty());
    assert!(store.list_jobs(&by_prefix("alpha-1-")).unwrap().is_empty());
    assert_eq!(store.list_jobs(&by_prefix("")).unwrap(), all);

    // Filters combine with each other and with the cursor.
    let list3 = all[2].seq;
    let combined = JobQuery {
        state: Some(State::Submitted),
        name_prefix: Some("alpha".into()),
        project: None,
        after_seq: Some(list3),
        limit: 10,
    };
    assert_eq!(ids(&store.list_jobs(&combined).unwrap()), ["job-list1"]);
    let first = JobQuery {
        after_seq: Some(all[all.len() - 1].seq),
        ..q(10)
    };
    assert!(store.list_jobs(&first).unwrap().is_empty());
    let huge = JobQuery {
        after_seq: Some(u64::MAX),
        ..q(1)
    };
    assert_eq!(ids(&store.list_jobs(&huge).unwrap()), ["job-list5"]);

    // Jobs belong to their spec's project (else `default`), and lists filter by it.
    assert!(all.iter().all(|j| j.project == crate::DEFAULT_PROJECT));
    let ml = JobSpec {
        project: Some("ml".into()),
        ..sample_spec()
    };
    let row = store.insert_job("job-list-ml", &ml, 500).unwrap();
    assert_eq!(row.project, "ml");
    assert_eq!(store.job_row("job-list-ml").unwrap().unwrap().project, "ml");
    let of = |project: &str| JobQuery {
        project: Some(project.into()),
        ..q(100)
    };
    assert_eq!(ids(&store.list_jobs(&of("ml")).unwrap()), ["job-list-ml"]);
    assert_eq!(store.list_jobs(&of("default")).unwrap(), all);
    assert!(store.list_jobs(&of("nobody")).unwrap().is_empty());
    assert!(store.delete_job("job-list-ml").unwrap());
}

/// `instances_page` and `task_counts` on "job-pages".
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn instance_pages_and_counts(store: &dyn Store) {
    let job: Arc<str> = Arc::from("job-pages");
    let mut spec = named("pages");
    spec.tasks[0].instances = 10;
    store.insert_job(&job, &spec, 4_000).unwrap();
    assert_eq!(store.task_counts(&job).unwrap(), vec![BTreeMap::new(); 2]);
    assert!(store.instances_page(&job, 0, None, 10).unwrap().is_empty());

    // Task 0: indexes 0..=3, 5, 7 (4, 6, 8, 9 never dispatched). Task 1: index 1.
    let mut changes = Vec::new();
    for (index, state, attempts) in [
        (7, State::Running, 1),
        (0, State::Succeed, 1),
        (2, State::Failed, 3),
        (1, State::Succeed, 2),
        (3, State::Starting, 0),
        (5, State::Running, 2),
    ] {
        changes.extend(materialise(&job, 0, index, state, attempts));
    }
    changes.extend(materialise(&job, 1, 1, State::Failed, 4));
    store.apply(&changes).unwrap();

    let expect = |index: u32| -> (u32, Instance, Vec<Attempt>) {
        let (state, attempts) = match index {
            0 => (State::Succeed, 1),
            1 => (State::Succeed, 2),
            2 => (State::Failed, 3),
            3 => (State::Starting, 0),
            5 => (State::Running, 2),
            7 => (State::Running, 1),
            _ => unreachable!(),
        };
        let list = (1..=attempts)
            .map(|n| {
                let s = if n == attempts { state } else { State::Failed };
                attempt(n, s, &format!("node-0-{index}"))
            })
            .collect();
        (index, instance(state, attempts), list)
    };
    let page = store.instances_page(&job, 0, None, 4).unwrap();
    assert_eq!(page, [0, 1, 2, 3].map(expect));
    let page = store.instances_page(&job, 0, Some(3), 4).unwrap();
    assert_eq!(page, [5, 7].map(expect));
    let page = store.instances_page(&job, 0, Some(1), 2).unwrap();
    assert_eq!(page, [2, 3].map(expect));
    let page = store.instances_page(&job, 0, Some(4), 1).unwrap();
    assert_eq!(page, [5].map(expect));
    assert!(
        store
            .instances_page(&job, 0, Some(7), 4)
            .unwrap()
            .is_empty()
    );
    assert!(store.instances_page(&job, 0, None, 0).unwrap().is_empty());
    assert!(
        store
            .instances_page(&job, 0, Some(u32::MAX), 4)
            .unwrap()
            .is_empty()
    );
    for (index, _, attempts) in store.instances_page(&job, 0, None, 100).unwrap() {
        assert_eq!(attempts, store.attempts(&job, 0, index).unwrap());
    }
    // Task 1 is its own list; other jobs' instances with the same indexes do not leak in.
    let task1 = store.instances_page(&job, 1, None, 10).unwrap();
    assert_eq!(task1.len(), 1);
    assert_eq!(task1[0].0, 1);
    assert_eq!(task1[0].2.len(), 4);
    assert!(task1[0].2.iter().all(|a| a.node == "node-1-1"));
    assert!(store.instances_page(&job, 2, None, 10).unwrap().is_empty());
    assert!(
        store
            .instances_page("job-missing", 0, None, 10)
            .unwrap()
            .is_empty()
    );
    let other = store.instances_page("job-conform1", 0, None, 10).unwrap();
    assert_eq!(other.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(other[1].2.len(), 2);

    let counts = store.task_counts(&job).unwrap();
    assert_eq!(
        counts,
        vec![
            BTreeMap::from([
                (State::Starting, 1),
                (State::Running, 2),
                (State::Succeed, 2),
                (State::Failed, 1),
            ]),
            BTreeMap::from([(State::Failed, 1)]),
        ]
    );
    assert_eq!(
        store.task_counts("job-conform1").unwrap(),
        vec![
            BTreeMap::from([(State::Running, 1), (State::Succeed, 1)]),
            BTreeMap::new(),
        ]
    );
    assert!(store.task_counts("job-missing").unwrap().is_empty());
}

/// `delete_job` removes everything of one job and nothing else; the id can be used again.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn deleting_jobs(store: &dyn Store) {
    let job: Arc<str> = Arc::from("job-pages");
    let others_before = store.instances_page("job-conform1", 0, None, 10).unwrap();
    assert!(store.delete_job(&job).unwrap());
    assert!(!store.delete_job(&job).unwrap());
    assert!(!store.delete_job("job-missing").unwrap());
    assert!(store.load_job(&job).unwrap().is_none());
    assert!(store.attempts(&job, 0, 2).unwrap().is_empty());
    assert!(store.instances_page(&job, 0, None, 10).unwrap().is_empty());
    assert!(store.task_counts(&job).unwrap().is_empty());
    let listed = store
        .list_jobs(&JobQuery {
            limit: 100,
            ..JobQuery::default()
        })
        .unwrap();
    assert!(listed.iter().all(|r| r.id != *job));
    assert_eq!(listed.len(), 6);
    assert_eq!(
        store.instances_page("job-conform1", 0, None, 10).unwrap(),
        others_before
    );

    // The same id again is a new job with nothing left over from the old one.
    let row = store
        .insert_job(&job, &named("pages-again"), 7_000)
        .unwrap();
    assert!(row.seq > listed[0].seq);
    assert_eq!(store.task_counts(&job).unwrap(), vec![BTreeMap::new(); 2]);
    assert!(store.attempts(&job, 0, 2).unwrap().is_empty());
    store
        .apply(&materialise(&job, 1, 0, State::Running, 1))
        .unwrap();
    let loaded = store.load_job(&job).unwrap().expect("job stored again");
    assert_eq!(loaded.row.name, "pages-again");
    assert!(loaded.tasks[0].instances.is_empty());
    assert_eq!(loaded.tasks[1].instances.len(), 1);
    assert_eq!(
        store.task_counts(&job).unwrap(),
        vec![BTreeMap::new(), BTreeMap::from([(State::Running, 1)])]
    );
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn secrets(store: &dyn Store) {
    assert_eq!(store.get_secret("token").unwrap(), None);
    store.put_secret("token", "hash-1").unwrap();
    store.put_secret("agent-token", "hash-a").unwrap();
    assert_eq!(
        store.get_secret("token").unwrap().as_deref(),
        Some("hash-1")
    );
    store.put_secret("token", "hash-2").unwrap();
    assert_eq!(
        store.get_secret("token").unwrap().as_deref(),
        Some("hash-2")
    );
    assert_eq!(
        store.get_secret("agent-token").unwrap().as_deref(),
        Some("hash-a")
    );
    assert_eq!(store.get_secret("Token").unwrap(), None);
    // Deleting one leaves the others (a revoked node's credential digest).
    assert!(store.delete_secret("token").unwrap());
    assert!(!store.delete_secret("token").unwrap());
    assert_eq!(store.get_secret("token").unwrap(), None);
    assert_eq!(
        store.get_secret("agent-token").unwrap().as_deref(),
        Some("hash-a")
    );
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn templates(store: &dyn Store) {
    let tpl = |name: &str, description: Option<&str>, task: &str, at: u64| TemplateRecord {
        name: name.into(),
        description: description.map(Into::into),
        task_json: task.into(),
        created_at: at,
        updated_at: at,
        project: if name == "tpl-a" { "ml" } else { "default" }.into(),
    };
    assert_eq!(store.get_template("tpl-b").unwrap(), None);
    assert!(store.list_templates().unwrap().is_empty());
    let b = tpl("tpl-b", Some("first"), r#"{"command":"true"}"#, 10);
    let a = tpl("tpl-a", None, "{}", 11);
    assert!(store.put_template(&b).unwrap());
    assert!(store.put_template(&a).unwrap());
    assert_eq!(store.get_template("tpl-b").unwrap(), Some(b.clone()));
    assert_eq!(store.get_template("tpl-a").unwrap(), Some(a.clone()));
    assert_eq!(store.list_templates().unwrap(), [a.clone(), b.clone()]);

    // Replacing keeps created_at.
    let b2 = tpl("tpl-b", None, r#"{"command":"false"}"#, 20);
    assert!(!store.put_template(&b2).unwrap());
    let stored = store.get_template("tpl-b").unwrap().expect("template");
    assert_eq!(
        stored,
        TemplateRecord {
            created_at: 10,
            ..b2
        }
    );

    assert!(store.delete_template("tpl-a").unwrap());
    assert!(!store.delete_template("tpl-a").unwrap());
    assert_eq!(store.get_template("tpl-a").unwrap(), None);
    assert_eq!(store.list_templates().unwrap(), [stored]);
    assert!(store.put_template(&a).unwrap());
    assert_eq!(store.list_templates().unwrap().len(), 2);
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn compute_envs(store: &dyn Store) {
    let env = |name: &str, provider: &str, desired: u32, at: u64| ComputeEnvRecord {
        name: name.into(),
        description: Some(format!("{name} machines")),
        provider: provider.into(),
        desired_nodes: desired,
        config_json: r#"{"slots":4}"#.into(),
        created_at: at,
        updated_at: at,
        projects: if name == "gpu" {
            vec!["ml".into(), "default".into()]
        } else {
            vec!["default".into()]
        },
    };
    assert_eq!(store.get_compute_env("gpu").unwrap(), None);
    assert!(store.list_compute_envs().unwrap().is_empty());
    let gpu = env("gpu", "docker", 2, 100);
    let cpu = env("cpu", "static", 0, 101);
    assert!(store.put_compute_env(&gpu).unwrap());
    assert!(store.put_compute_env(&cpu).unwrap());
    assert_eq!(store.get_compute_env("gpu").unwrap(), Some(gpu.clone()));
    assert_eq!(
        store.list_compute_envs().unwrap(),
        [cpu.clone(), gpu.clone()]
    );

    let gpu2 = ComputeEnvRecord {
        description: None,
        provider: "local".into(),
        config_json: "{}".into(),
        ..env("gpu", "local", 5, 200)
    };
    assert!(!store.put_compute_env(&gpu2).unwrap());
    let stored = store.get_compute_env("gpu").unwrap().expect("env");
    assert_eq!(
        stored,
        ComputeEnvRecord {
            created_at: 100,
            ..gpu2
        }
    );

    assert!(store.set_desired_nodes("gpu", 7).unwrap());
    assert!(!store.set_desired_nodes("missing", 7).unwrap());
    let scaled = store.get_compute_env("gpu").unwrap().expect("env");
    assert_eq!(
        scaled,
        ComputeEnvRecord {
            desired_nodes: 7,
            ..stored
        }
    );
    assert_eq!(store.get_compute_env("cpu").unwrap(), Some(cpu.clone()));

    assert!(store.delete_compute_env("cpu").unwrap());
    assert!(!store.delete_compute_env("cpu").unwrap());
    assert_eq!(store.list_compute_envs().unwrap(), [scaled]);
}

/// `create_template` / `create_compute_env` write only under a free name, and of several
/// creating one name at once exactly one wins (what two servers on one database rely on).
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn creating_once(store: &dyn Store) {
    let tpl = |description: &str| TemplateRecord {
        name: "tpl-once".into(),
        description: Some(description.into()),
        task_json: "{}".into(),
        created_at: 5,
        updated_at: 5,
        project: "default".into(),
    };
    assert!(store.create_template(&tpl("first")).unwrap());
    assert!(!store.create_template(&tpl("second")).unwrap());
    assert_eq!(store.get_template("tpl-once").unwrap(), Some(tpl("first")));
    assert!(store.delete_template("tpl-once").unwrap());

    let env = |description: &str| ComputeEnvRecord {
        name: "env-once".into(),
        description: Some(description.into()),
        provider: "local".into(),
        desired_nodes: 1,
        config_json: "{}".into(),
        created_at: 5,
        updated_at: 5,
        projects: vec!["default".into()],
    };
    assert!(store.create_compute_env(&env("first")).unwrap());
    assert!(!store.create_compute_env(&env("second")).unwrap());
    assert_eq!(
        store.get_compute_env("env-once").unwrap(),
        Some(env("first"))
    );
    assert!(store.delete_compute_env("env-once").unwrap());

    // A race: eight creators of one name, each with its own description.
    for round in 0..3 {
        type Won = Vec<(String, bool)>;
        let (templates, envs): (Won, Won) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    s.spawn(move || {
                        let d = format!("racer-{round}-{i}");
                        let t = store.create_template(&tpl(&d)).unwrap();
                        let e = store.create_compute_env(&env(&d)).unwrap();
                        ((d.clone(), t), (d, e))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).unzip()
        });
        let winner = |won: &[(String, bool)]| -> String {
            let winners: Vec<&String> = won.iter().filter(|(_, w)| *w).map(|(d, _)| d).collect();
            assert_eq!(winners.len(), 1, "exactly one creator wins: {won:?}");
            winners[0].clone()
        };
        let t = winner(&templates);
        assert_eq!(store.get_template("tpl-once").unwrap(), Some(tpl(&t)));
        let e = winner(&envs);
        assert_eq!(store.get_compute_env("env-once").unwrap(), Some(env(&e)));
        assert!(store.delete_template("tpl-once").unwrap());
        assert!(store.delete_compute_env("env-once").unwrap());
    }
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn nodes(store: &dyn Store) {
    let node = |id: &str, name: &str, at: u64| NodeRecord {
        id: id.into(),
        name: name.into(),
        state: "CREATING".into(),
        compute_env: Some("gpu".into()),
        slots: 4,
        millicpus: 16_000,
        memory: 64 << 30,
        last_seen: at,
        created_at: at,
    };
    assert!(store.list_nodes().unwrap().is_empty());
    let one = node("node-1", "host-b", 1_000);
    let two = NodeRecord {
        compute_env: None,
        ..node("node-2", "host-a", 1_001)
    };
    store.upsert_node(&one).unwrap();
    store.upsert_node(&two).unwrap();
    assert_eq!(store.list_nodes().unwrap(), [two.clone(), one.clone()]);

    // An update keeps created_at; the name may change.
    let one2 = NodeRecord {
        name: "host-c".into(),
        state: "ABNORMAL".into(),
        slots: 8,
        millicpus: u64::from(u32::MAX) * 4,
        memory: u64::MAX >> 2,
        ..node("node-1", "host-c", 2_000)
    };
    store.upsert_node(&one2).unwrap();
    let one2 = NodeRecord {
        created_at: 1_000,
        ..one2
    };
    assert_eq!(store.list_nodes().unwrap(), [two.clone(), one2.clone()]);

    // A name held by another node is refused, and changes nothing.
    let clash = node("node-3", "host-a", 3_000);
    assert!(matches!(
        store.upsert_node(&clash),
        Err(StoreError::NameTaken { .. })
    ));
    assert_eq!(store.list_nodes().unwrap(), [two.clone(), one2.clone()]);

    assert!(store.delete_node("host-a").unwrap());
    assert!(!store.delete_node("host-a").unwrap());
    assert!(!store.delete_node("host-b").unwrap());
    assert_eq!(store.list_nodes().unwrap(), [one2]);
    // The freed name can be taken now.
    store.upsert_node(&clash).unwrap();
    assert_eq!(store.list_nodes().unwrap().len(), 2);
}

/// The scheduler lease: terms, renewals, expiry, release, and fenced writes.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn leases(store: &dyn Store) {
    let free = store.lease().unwrap();
    assert_eq!((free.holder.as_str(), free.epoch), ("", 0));
    assert!(free.expired);
    let long = 60_000;
    assert_eq!(
        store.claim_lease("a", "http://a", long, None).unwrap(),
        Some(1)
    );
    let held = store.lease().unwrap();
    assert_eq!(
        (
            held.holder.as_str(),
            held.url.as_str(),
            held.epoch,
            held.expired
        ),
        ("a", "http://a", 1, false)
    );
    // Held: nobody else takes it, nor renews a's term.
    assert_eq!(
        store.claim_lease("b", "http://b", long, None).unwrap(),
        None
    );
    assert_eq!(
        store.claim_lease("b", "http://b", long, Some(1)).unwrap(),
        None
    );
    assert_eq!(
        store.claim_lease("a", "http://a", long, Some(1)).unwrap(),
        Some(1)
    );

    // A leader's writes go through while its term lasts; a stale epoch writes nothing.
    let job: Arc<str> = Arc::from("job-fenced");
    store.insert_job(&job, &named("fenced"), 9_000).unwrap();
    assert_eq!(
        ids(&store.submitted_jobs().unwrap()).last().copied(),
        Some("job-fenced")
    );
    let running = |at| Change::Job {
        job: job.clone(),
        state: State::Running,
        reason: None,
        at,
        deadline: None,
    };
    store.apply_fenced(&[running(9_001)], 1).unwrap();
    assert!(
        ids(&store.submitted_jobs().unwrap())
            .iter()
            .all(|&i| i != "job-fenced")
    );
    let failed = Change::Job {
        job: job.clone(),
        state: State::Failed,
        reason: None,
        at: 9_002,
        deadline: None,
    };
    assert!(matches!(
        store.apply_fenced(std::slice::from_ref(&failed), 0),
        Err(StoreError::Fenced {
            held: 0,
            current: 1
        })
    ));
    assert_eq!(
        store.job_row(&job).unwrap().expect("job").state,
        State::Running
    );

    // A term that runs out can be taken by another, as the next epoch; the old one is over.
    assert_eq!(
        store.claim_lease("a", "http://a", 1, Some(1)).unwrap(),
        Some(1)
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(store.lease().unwrap().expired);
    assert_eq!(
        store.claim_lease("b", "http://b", long, None).unwrap(),
        Some(2)
    );
    assert_eq!(
        store.claim_lease("a", "http://a", long, Some(1)).unwrap(),
        None
    );
    assert!(matches!(
        store.apply_fenced(std::slice::from_ref(&failed), 1),
        Err(StoreError::Fenced {
            held: 1,
            current: 2
        })
    ));
    store.apply_fenced(&[failed], 2).unwrap();
    assert_eq!(
        store.job_row(&job).unwrap().expect("job").state,
        State::Failed
    );

    // A released term ends at once; the next taker gets the next epoch.
    store.release_lease("a", 2).unwrap();
    assert!(!store.lease().unwrap().expired, "only the holder releases");
    store.release_lease("b", 2).unwrap();
    assert!(store.lease().unwrap().expired);
    assert_eq!(
        store.claim_lease("a", "http://a2", long, None).unwrap(),
        Some(3)
    );
    assert_eq!(store.lease().unwrap().url, "http://a2");
    // Deleting a job is fenced like a tick: a past term deletes nothing.
    assert!(matches!(
        store.delete_job_fenced(&job, 2),
        Err(StoreError::Fenced {
            held: 2,
            current: 3
        })
    ));
    assert!(store.job_row(&job).unwrap().is_some());
    assert!(store.delete_job_fenced(&job, 3).unwrap());
    assert!(store.job_row(&job).unwrap().is_none());
    assert!(!store.delete_job_fenced(&job, 3).unwrap());
    store.release_lease("a", 3).unwrap();
}

/// An idempotent create stores its answer with the job in one transaction; the same key finds
/// it and writes nothing; old records are purged.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn idempotency(store: &dyn Store) {
    use crate::{IdempotencyRecord, Once};
    let once = IdempotencyRecord {
        scope: "POST /v1/jobs".into(),
        key: "key-1".into(),
        request: "ab12".into(),
        resource: "job/job-once1".into(),
        status: 201,
        response: r#"{"id":"job-once1"}"#.into(),
        created_at: 5_000,
    };
    assert_eq!(store.get_idempotency(&once.scope, &once.key).unwrap(), None);
    let spec = named("once");
    let Once::Created(row) = store
        .insert_job_once("job-once1", &spec, 5_000, &once)
        .unwrap()
    else {
        panic!("the first create must create");
    };
    assert_eq!(row.id, "job-once1");
    assert_eq!(
        store.get_idempotency(&once.scope, &once.key).unwrap(),
        Some(once.clone())
    );
    // The same key again: the stored answer, and no second job.
    let again = store
        .insert_job_once("job-once2", &spec, 6_000, &once)
        .unwrap();
    assert_eq!(again, Once::Taken(once.clone()));
    assert!(store.job_row("job-once2").unwrap().is_none());
    // A job id taken refuses the create, and its key is not kept either.
    let other = IdempotencyRecord {
        key: "key-2".into(),
        ..once.clone()
    };
    assert!(matches!(
        store.insert_job_once("job-once1", &spec, 6_000, &other),
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.get_idempotency(&other.scope, &other.key).unwrap(),
        None
    );
    // The same key in another scope is another key.
    let scoped = IdempotencyRecord {
        scope: "POST /v1/task-templates".into(),
        created_at: 9_000,
        ..once.clone()
    };
    assert_eq!(store.put_idempotency(&scoped).unwrap(), None);
    assert_eq!(
        store.put_idempotency(&scoped).unwrap(),
        Some(scoped.clone())
    );
    assert_eq!(store.purge_idempotency(9_000).unwrap(), 1);
    assert_eq!(store.get_idempotency(&once.scope, &once.key).unwrap(), None);
    assert_eq!(
        store.get_idempotency(&scoped.scope, &scoped.key).unwrap(),
        Some(scoped.clone())
    );
    assert_eq!(store.forget_idempotency("job/job-once1").unwrap(), 1);
    assert_eq!(
        store.get_idempotency(&scoped.scope, &scoped.key).unwrap(),
        None
    );
}

/// A new, empty PostgreSQL database on the test server named by `KILN_TEST_PG_URL` (started
/// by `scripts/services/postgres.sh`); returns its URL. Panics when the variable is missing or
/// the server does not answer: tests that need PostgreSQL fail, they are never skipped.
#[allow(clippy::expect_used)]
pub fn fresh_pg_database() -> String {
    let base = std::env::var("KILN_TEST_PG_URL").expect(
        "KILN_TEST_PG_URL is not set: run the tests through scripts/test.sh or \
         scripts/with-services.sh, which start PostgreSQL",
    );
    let name = format!(
        "kiln_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .expect("the test PostgreSQL server answers");
        let conn = tokio::spawn(conn);
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            client
                .batch_execute(&sql)
                .await
                .expect("a test database is created");
        }
        drop(client);
        let _ = conn.await;
    });
    // Same server and credentials, other database.
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("KILN_TEST_PG_URL has no database part: {base}"),
    }
}

static NEXT_DB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
