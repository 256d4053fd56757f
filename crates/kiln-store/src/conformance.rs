//! The conformance suite every [`Store`] implementation must pass.
//!
//! Call [`run`] from each backend's tests with a fresh, empty store.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::engine::{Attempt, Change};
use kiln_core::model::{Command, DependencyPolicy, Image, JobSpec, OnFailure, Resources, TaskSpec};
use kiln_core::state::{Instance, Reason, State};

use crate::{Store, StoreError};

fn spec() -> JobSpec {
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
    };
    JobSpec {
        name: "conformance".into(),
        description: None,
        priority: 50,
        tags: BTreeMap::new(),
        dependency_policy: DependencyPolicy::Succeeded,
        tasks: vec![task("a"), task("b")],
    }
}

/// Runs every check against `store`, which must be empty. Panics on the first failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub fn run(store: &mut dyn Store) {
    let spec = spec();
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
    };
    let changes = vec![
        Change::Job {
            job: job.clone(),
            state: State::Running,
            reason: None,
            at: 1_200,
        },
        Change::Task {
            job: job.clone(),
            task: 0,
            state: State::Running,
            reason: None,
            stop: None,
            unstarted: None,
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
    assert_eq!(*loaded.spec, spec);
    assert_eq!(loaded.row.state, State::Running);
    assert_eq!(loaded.tasks.len(), 2);
    assert_eq!(loaded.tasks[0].state, Some(State::Running));
    assert_eq!(loaded.tasks[1].state, Some(State::Submitted));
    let mut insts = loaded.tasks[0].instances.clone();
    insts.sort_by_key(|(i, _, _)| *i);
    assert_eq!(insts.len(), 2);
    assert_eq!(insts[0].1.state, State::Succeed);
    assert_eq!(insts[1].1, running);
    assert_eq!(insts[1].2, Some(att(2, State::Running, None)));

    let attempts = store.attempts(&job, 0, 1).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].reason, Some(Reason::ExitCode(3)));

    store
        .apply(&[Change::Job {
            job: job.clone(),
            state: State::Succeed,
            reason: None,
            at: 2_000,
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
            }])
            .is_err()
    );
}
