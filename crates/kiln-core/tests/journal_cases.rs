//! The journal's events of whole runs of the engine, driven with a fake clock: one event per
//! change of state, none for a record written again unchanged, none for a reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kiln_core::engine::{Change, Engine, Event, JobId, Node};
use kiln_core::journal::{EventKind, Journal, Subject, kind_of};
use kiln_core::model::JobSpec;
use kiln_core::spec::{Templates, parse_job};
use kiln_core::state::{Outcome, State};

fn spec(text: &str) -> Arc<JobSpec> {
    Arc::new(parse_job(text.as_bytes(), &Templates::new()).unwrap().spec)
}

/// Takes the engine's changes into the journal, answering the kinds of the events (with the
/// instance index, if any).
fn drain(e: &mut Engine, j: &mut Journal, now: u64) -> Vec<(EventKind, Option<u32>)> {
    let changes = e.take_changes();
    let spec = e.job("j").map(|r| Arc::clone(&r.spec));
    let name = move |_: &JobId, t: usize| spec.as_ref().map(|s| s.tasks[t].name.clone());
    j.events(&changes, now, &name)
        .into_iter()
        .map(|ev| {
            assert_eq!(ev.project, "default");
            assert_eq!(ev.job.as_deref(), Some("j"));
            (ev.kind, ev.detail.index)
        })
        .collect()
}

fn report(e: &mut Engine, event: Event, now: u64) {
    e.apply("j", event, now);
}

#[test]
fn a_run_with_a_retry_is_one_event_per_change_of_state() {
    let mut e = Engine::new(vec![Node::new("n", 4000, 1 << 30)]);
    let mut j = Journal::new();
    e.add_job(
        "j".into(),
        spec("name: j\ntasks:\n  a: {command: x, instances: 2, retries: 1}\n"),
        1,
        1_000,
    );
    let d = e.schedule(1_000);
    assert_eq!(d.len(), 2);
    let first = drain(&mut e, &mut j, 1_000);
    use EventKind as K;
    assert!(
        first.contains(&(K::InstanceDispatched, Some(0))),
        "{first:?}"
    );
    assert!(
        first.contains(&(K::InstanceDispatched, Some(1))),
        "{first:?}"
    );
    // The task and the job each changed state once or more, never twice to the same state.
    let mut kinds: Vec<EventKind> = first
        .iter()
        .filter(|(_, i)| i.is_none())
        .map(|(k, _)| *k)
        .collect();
    let n = kinds.len();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), n, "{first:?}");
    for index in 0..2 {
        report(
            &mut e,
            Event::Started {
                task: 0,
                index,
                attempt: 1,
                pid: Some(7),
            },
            1_001,
        );
    }
    let started = drain(&mut e, &mut j, 1_001);
    assert_eq!(
        started
            .iter()
            .filter(|(k, _)| *k == K::InstanceStarted)
            .count(),
        2,
        "{started:?}"
    );
    // A second report of the same start changes nothing: no event.
    report(
        &mut e,
        Event::Started {
            task: 0,
            index: 0,
            attempt: 1,
            pid: Some(7),
        },
        1_002,
    );
    assert!(drain(&mut e, &mut j, 1_002).is_empty());
    report(
        &mut e,
        Event::Ended {
            task: 0,
            index: 0,
            attempt: 1,
            outcome: Outcome::Exited(0),
        },
        1_003,
    );
    report(
        &mut e,
        Event::Ended {
            task: 0,
            index: 1,
            attempt: 1,
            outcome: Outcome::Exited(3),
        },
        1_003,
    );
    let ended = drain(&mut e, &mut j, 1_003);
    assert!(
        ended.contains(&(K::InstanceSucceeded, Some(0))),
        "{ended:?}"
    );
    assert!(ended.contains(&(K::InstanceFailed, Some(1))), "{ended:?}");
    // The retry: attempt 2 of instance 1.
    e.schedule(1_004);
    let retried = drain(&mut e, &mut j, 1_004);
    assert_eq!(retried, vec![(K::InstanceDispatched, Some(1))]);
    report(
        &mut e,
        Event::Started {
            task: 0,
            index: 1,
            attempt: 2,
            pid: None,
        },
        1_005,
    );
    report(
        &mut e,
        Event::Ended {
            task: 0,
            index: 1,
            attempt: 2,
            outcome: Outcome::Exited(0),
        },
        1_006,
    );
    e.schedule(1_006);
    let last = drain(&mut e, &mut j, 1_006);
    assert!(last.contains(&(K::InstanceSucceeded, Some(1))), "{last:?}");
    assert!(last.contains(&(K::TaskSucceeded, None)), "{last:?}");
    assert_eq!(last.last(), Some(&(K::JobSucceeded, None)), "{last:?}");
    assert_eq!(
        last.iter().filter(|(k, _)| *k == K::JobSucceeded).count(),
        1
    );
}

#[test]
fn a_seeded_job_reports_only_what_changes_after_the_reload() {
    let mut j = Journal::new();
    let job: JobId = Arc::from("j");
    j.seed_job(
        &job,
        State::Running,
        [Some(State::Running)],
        [(0, 3, 1, State::Running)],
    );
    let attempt = |state: State| kiln_core::engine::Attempt {
        attempt: 1,
        state,
        reason: None,
        exit_code: Some(0).filter(|_| state == State::Succeed),
        node: "n".into(),
        pid: None,
        started_at: 5,
        ended_at: Some(9).filter(|_| state.is_terminal()),
        memory: 0,
    };
    let changes = [
        Change::Attempt {
            job: job.clone(),
            task: 0,
            index: 3,
            record: attempt(State::Running),
        },
        Change::Attempt {
            job: job.clone(),
            task: 0,
            index: 3,
            record: attempt(State::Succeed),
        },
    ];
    let events = j.events(&changes, 10, &|_, _| Some("a".into()));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::InstanceSucceeded);
    assert_eq!(events[0].at, 9, "dated by the attempt's end");
    assert_eq!(events[0].detail.exit_code, Some(0));
    assert_eq!(events[0].detail.task.as_deref(), Some("a"));
    // Forgotten: the same change is news again.
    j.forget_job(&job);
    assert_eq!(j.events(&changes, 10, &|_, _| None).len(), 2);
}

#[test]
fn every_kind_has_a_name_that_parses_back_and_is_past_tense() {
    for k in EventKind::ALL {
        assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
        let name = k.as_str();
        assert!(
            name.ends_with("ed") || name.ends_with("Lost") || name == "NodeDraining",
            "{name}"
        );
    }
    assert!("JobExploded".parse::<EventKind>().is_err());
    for s in State::ALL {
        for subject in [Subject::Job, Subject::Task, Subject::Instance] {
            let k = kind_of(subject, s);
            assert!(EventKind::ALL.contains(&k));
        }
    }
}
