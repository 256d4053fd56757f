//! What the engine tells the scaling planner (the backlog of an environment, each node's load),
//! and nodes that go away at a known time (a Slurm allocation's end).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kiln_core::engine::{Engine, Event, Node};
use kiln_core::model::JobSpec;
use kiln_core::spec::{Templates, parse_job};
use kiln_core::state::Outcome;

fn spec(yaml: &str) -> Arc<JobSpec> {
    Arc::new(parse_job(yaml.as_bytes(), &Templates::new()).unwrap().spec)
}

const GIB: u64 = 1 << 30;

#[test]
fn the_backlog_counts_ready_instances_of_an_environment_within_their_concurrency() {
    let mut e = Engine::new(vec![Node::new("local", 1000, GIB)]);
    let job = spec(
        "name: b\ndag: a -> later\ntasks:\n  a: {command: 'true', instances: 10, compute_env: hpc, \
         resources: {cpus: 2, memory: 1GiB}}\n  capped: {command: 'true', instances: 50, \
         max_concurrency: 3, compute_env: hpc}\n  later: {command: 'true', instances: 7, \
         compute_env: hpc}\n  elsewhere: {command: 'true', instances: 4, compute_env: other}\n",
    );
    e.add_job("job-1".into(), job, 1, 0);
    e.schedule(0);
    let backlog = e.backlog("hpc");
    let counts: Vec<(u32, u64, u32)> = backlog
        .iter()
        .map(|b| (b.resources.millicpus, b.resources.memory, b.count))
        .collect();
    // `later` waits on `a`: not runnable yet.
    assert_eq!(counts, [(2000, GIB, 10), (1000, 0, 3)]);
    assert_eq!(e.backlog("other")[0].count, 4);
    assert!(e.backlog("nowhere").is_empty());

    // A node joins: what it takes leaves the backlog, and it carries the load.
    e.add_node(Node::new("hpc-1", 4000, 8 * GIB).in_pool(Some("hpc".into())));
    let d = e.schedule(1);
    assert_eq!(d.len(), 2, "two of a (2 CPUs each) fill it");
    let left: u32 = e.backlog("hpc").iter().map(|b| b.count).sum();
    assert_eq!(left, 8 + 3);
    let hpc = e.node_index("hpc-1").unwrap();
    assert_eq!(e.node_load()[hpc], 2);
}

#[test]
fn a_node_that_goes_away_takes_only_attempts_that_end_before_it() {
    let mut e = Engine::new(vec![]);
    let job = spec(
        "name: t\ntasks:\n  short: {command: 'true', instances: 2, timeout: 10s, compute_env: hpc}\n  \
         long: {command: 'true', instances: 1, timeout: 1h, compute_env: hpc}\n  \
         open: {command: 'true', instances: 1, compute_env: hpc}\n",
    );
    e.add_job("job-1".into(), job, 1, 0);
    // Ends at 60 s: 10 s attempts fit until 50 s, attempts without a timeout until the end.
    let node = Node::new("hpc-1", 8000, GIB)
        .in_pool(Some("hpc".into()))
        .with_end(Some(60_000));
    e.add_node(node);
    let d = e.schedule(45_000);
    let tasks: Vec<usize> = d.iter().map(|d| d.task).collect();
    assert_eq!(tasks, [0, 0, 2], "the 1 h attempt does not fit: {d:?}");
    for x in &d {
        let ev = Event::Ended {
            task: x.task,
            index: x.index,
            attempt: x.attempt,
            outcome: Outcome::Exited(0),
        };
        e.apply("job-1", ev, 46_000);
    }
    assert!(e.schedule(50_000).is_empty());
    assert_eq!(
        e.backlog("hpc")[0].count,
        1,
        "long still waits for another node"
    );
}

#[test]
fn an_attempt_waits_on_a_node_that_goes_away_only_if_it_fits_twice() {
    let mut e = Engine::new(vec![]);
    let job = spec(
        "name: q\ntasks:\n  w: {command: 'true', instances: 6, timeout: 10s, compute_env: hpc}\n",
    );
    e.add_job("job-1".into(), job, 1, 0);
    let node = Node::new("hpc-1", 1000, GIB)
        .in_pool(Some("hpc".into()))
        .with_prefetch(1)
        .with_end(Some(60_000));
    e.add_node(node);
    // At 30 s: one runs (ends by 40 s), one waits (starts by 40 s, ends by 50 s).
    assert_eq!(e.schedule(30_000).len(), 2);
    let done = |e: &mut Engine, index, at| {
        let ev = Event::Ended {
            task: 0,
            index,
            attempt: 1,
            outcome: Outcome::Exited(0),
        };
        e.apply("job-1", ev, at);
    };
    done(&mut e, 0, 44_000);
    done(&mut e, 1, 45_000);
    // At 45 s: one more may run (ends by 55 s), but none may wait (it could end at 65 s).
    assert_eq!(e.schedule(45_000).len(), 1);
}

#[test]
fn a_waiting_attempt_that_starts_before_the_one_it_waited_for_ends_is_not_free_room() {
    let mut e = Engine::new(vec![]);
    let job = spec("name: o\ntasks:\n  w: {command: 'true', instances: 5, compute_env: p}\n");
    e.add_job("job-1".into(), job, 1, 0);
    e.add_node(
        Node::new("p-1", 1000, GIB)
            .in_pool(Some("p".into()))
            .with_prefetch(1),
    );
    // 0 runs, 1 waits on the node.
    assert_eq!(e.schedule(0).len(), 2);
    // The agent starts 1 as 0 ends, and its start arrives before 0's end.
    let started = Event::Started {
        task: 0,
        index: 1,
        attempt: 1,
        pid: None,
    };
    e.apply("job-1", started, 1);
    let d = e.schedule(1);
    assert_eq!(d.len(), 1, "2 may wait behind 1: {d:?}");
    let ended = Event::Ended {
        task: 0,
        index: 0,
        attempt: 1,
        outcome: Outcome::Exited(0),
    };
    e.apply("job-1", ended, 2);
    // 1 runs, 2 waits: no room for a third.
    assert!(e.schedule(2).is_empty());
    let hpc = e.node_index("p-1").unwrap();
    assert_eq!(e.node_load()[hpc], 2);
}
