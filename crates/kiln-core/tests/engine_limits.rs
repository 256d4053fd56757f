//! The engine's job deadlines (`timeout`) and memory growth after running out of it
//! (`on_out_of_memory`), driven with a fake clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kiln_core::engine::{Change, Effect, Engine, Event, Node, Restore, TaskSnapshot};
use kiln_core::model::JobSpec;
use kiln_core::spec::{Templates, parse_job};
use kiln_core::state::{Outcome, Reason, State};

const MIB: u64 = 1 << 20;

fn spec(text: &str) -> Arc<JobSpec> {
    Arc::new(parse_job(text.as_bytes(), &Templates::new()).unwrap().spec)
}

fn started(e: &mut Engine, task: usize, index: u32, attempt: u32, now: u64) {
    e.apply(
        "j",
        Event::Started {
            task,
            index,
            attempt,
            pid: None,
        },
        now,
    );
}

fn ended(e: &mut Engine, task: usize, index: u32, attempt: u32, outcome: Outcome, now: u64) {
    e.apply(
        "j",
        Event::Ended {
            task,
            index,
            attempt,
            outcome,
        },
        now,
    );
}

#[test]
fn a_job_timeout_stops_what_runs_and_fails_what_waits() {
    let spec = spec(
        "name: j\ntimeout: 10s\ndag: a -> b\ntasks:\n  a: {command: x, instances: 3}\n  b: {command: x}\n",
    );
    // One CPU: one instance of `a` runs, two wait for capacity, `b` waits on `a`.
    let mut e = Engine::new(vec![Node::new("n", 1000, 1 << 30)]);
    e.add_job("j".into(), spec, 1, 1_000);
    let d = e.schedule(1_000);
    assert_eq!(d.len(), 1);
    started(&mut e, 0, 0, 1, 1_001);
    let deadline = e.take_changes().iter().find_map(|c| match c {
        Change::Job { deadline, .. } => *deadline,
        _ => None,
    });
    assert_eq!(deadline, Some(11_000));

    assert!(e.schedule(10_999).is_empty());
    assert!(e.take_effects().is_empty());
    assert!(e.schedule(11_000).is_empty());
    let effects = e.take_effects();
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::Kill {
                task: 0,
                index: 0,
                ..
            }]
        ),
        "{effects:?}"
    );
    assert_eq!(
        e.job("j").unwrap().instance_state(0, 1),
        Some((State::Failed, Some(Reason::JobTimedOut)))
    );
    assert_eq!(e.job("j").unwrap().state(), State::Running);
    ended(&mut e, 0, 0, 1, Outcome::Stopped, 11_050);
    e.refresh(11_050);
    let job = e.job("j").unwrap();
    assert_eq!(
        (job.state(), job.reason()),
        (State::Failed, Some(&Reason::JobTimedOut))
    );
    for v in job.task_views() {
        assert_eq!(
            (v.state, v.reason.clone()),
            (State::Failed, Some(Reason::JobTimedOut)),
            "{}",
            v.name
        );
    }
    assert_eq!(
        job.instance_state(0, 0),
        Some((State::Failed, Some(Reason::JobTimedOut)))
    );

    // A retry gets the whole timeout again, from the retry.
    e.take_changes();
    e.retry_job("j", 20_000).unwrap();
    e.schedule(20_000);
    let deadline = e.take_changes().iter().rev().find_map(|c| match c {
        Change::Job { deadline, .. } => Some(*deadline),
        _ => None,
    });
    assert_eq!(deadline, Some(Some(30_000)));
    assert_eq!(e.job("j").unwrap().state(), State::Running);
}

#[test]
fn a_restored_job_keeps_its_deadline() {
    let spec = spec("name: j\ntimeout: 10s\ntasks: {a: {command: x}}\n");
    let mut e = Engine::new(vec![Node::new("n", 1000, 1 << 30)]);
    e.restore_job(
        "j".into(),
        spec,
        1,
        Some(5_000),
        vec![TaskSnapshot::default()],
        4_000,
        Restore::Interrupt,
    );
    assert_eq!(e.schedule(4_000).len(), 1);
    e.schedule(5_000);
    assert_eq!(e.take_effects().len(), 1);
}

fn oom_job(extra: &str) -> Arc<JobSpec> {
    spec(&format!(
        "name: j\ntasks:\n  a: {{command: x, image: busybox, resources: {{cpus: 0.1, memory: 64MiB}}, {extra}}}\n"
    ))
}

/// The memory of every attempt recorded so far, in order.
fn attempt_memory(changes: &[Change]) -> Vec<(u32, u32, u64)> {
    let mut v: Vec<(u32, u32, u64)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Attempt { index, record, .. } => Some((*index, record.attempt, record.memory)),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn out_of_memory_runs_again_with_more_memory_without_spending_retries() {
    let node = Node::new("n", 4000, 192 * MIB).with_containers(true);
    let mut e = Engine::new(vec![node]);
    e.add_job(
        "j".into(),
        oom_job("instances: 2, retries: 1, on_out_of_memory: {retries: 2, factor: 2}"),
        1,
        0,
    );
    assert_eq!(e.schedule(0).len(), 2);
    started(&mut e, 0, 0, 1, 1);
    started(&mut e, 0, 1, 1, 1);
    ended(&mut e, 0, 0, 1, Outcome::OutOfMemory { exit_code: 137 }, 2);
    assert_eq!(
        e.job("j").unwrap().instance_state(0, 0),
        Some((State::Runnable, Some(Reason::OutOfMemory)))
    );
    // 64MiB are in use by instance 1, 128MiB are free: instance 0 gets 128MiB.
    let d = e.schedule(3);
    assert_eq!((d.len(), d[0].index, d[0].attempt), (1, 0, 2));
    // Capacity is held by the grown memory: nothing else fits now.
    ended(&mut e, 0, 0, 2, Outcome::OutOfMemory { exit_code: 137 }, 4);
    // 256MiB would exceed the node's 192MiB: the cap is what the node offers.
    let d = e.schedule(5);
    assert!(d.is_empty(), "192MiB do not fit beside instance 1's 64MiB");
    ended(&mut e, 0, 1, 1, Outcome::Exited(0), 6);
    let d = e.schedule(7);
    assert_eq!((d.len(), d[0].attempt), (1, 3));
    ended(&mut e, 0, 0, 3, Outcome::Exited(0), 8);
    e.refresh(9);
    let changes = e.take_changes();
    assert_eq!(
        attempt_memory(&changes)
            .into_iter()
            .filter(|(i, _, _)| *i == 0)
            .collect::<Vec<_>>(),
        [(0, 1, 64 * MIB), (0, 2, 128 * MIB), (0, 3, 192 * MIB)]
    );
    let last = changes.iter().rev().find_map(|c| match c {
        Change::Instance {
            index: 0, record, ..
        } => Some(record.clone()),
        _ => None,
    });
    let last = last.unwrap();
    assert_eq!(
        (last.state, last.retries_used, last.oom_retries_used),
        (State::Succeed, 0, 2)
    );
    assert_eq!(e.job("j").unwrap().state(), State::Succeed);
}

#[test]
fn out_of_memory_at_the_maximum_is_an_ordinary_failure() {
    let node = Node::new("n", 4000, 1 << 30).with_containers(true);
    let mut e = Engine::new(vec![node]);
    e.add_job(
        "j".into(),
        oom_job("instances: 1, on_out_of_memory: {retries: 5, max: 100MiB}"),
        1,
        0,
    );
    e.schedule(0);
    ended(&mut e, 0, 0, 1, Outcome::OutOfMemory { exit_code: 137 }, 1);
    e.schedule(2);
    ended(&mut e, 0, 0, 2, Outcome::OutOfMemory { exit_code: 137 }, 3);
    e.refresh(4);
    assert_eq!(
        e.job("j").unwrap().instance_state(0, 0),
        Some((State::Failed, Some(Reason::OutOfMemory)))
    );
    let mem: Vec<u64> = attempt_memory(&e.take_changes())
        .into_iter()
        .map(|(_, _, m)| m)
        .collect();
    assert_eq!(mem, [64 * MIB, 100 * MIB]);
}
