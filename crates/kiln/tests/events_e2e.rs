//! The journal end to end: `GET /v1/events` followed as Server-Sent Events while a job runs on
//! an agent and the server is killed (`kill -9`) twice; reconnecting with `Last-Event-ID`
//! gives every event once, in order, with no gap, and the events match the job's records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_api::EventRecord;
use support::{Cluster, Db, state, wait_until};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(super::Db::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name(super::Db::Postgres)
                }
            }
        )*
    };
}

on_both_backends!(following_the_journal_through_two_kills_misses_and_repeats_nothing);

/// Follows the event stream of `url`, reconnecting after the last event it got, until `stop`.
fn follow(url: String, token: String, got: Arc<Mutex<Vec<EventRecord>>>, stop: Arc<AtomicBool>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let mut connections = 0;
    while !stop.load(Ordering::Relaxed) {
        let last = got.lock().unwrap().last().map_or(0, |e| e.seq);
        let resp = client
            .get(format!("{url}/v1/events"))
            .bearer_auth(&token)
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", last.to_string())
            .send();
        let Ok(mut resp) = resp else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        assert_eq!(resp.status(), 200);
        connections += 1;
        let mut parser = kiln_api::sse::Parser::default();
        let mut buf = [0u8; 16 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match resp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for m in parser.push(&buf[..n]) {
                        let e: EventRecord = serde_json::from_str(&m.data).unwrap();
                        assert_eq!(m.id.as_deref(), Some(e.seq.to_string().as_str()));
                        assert_eq!(m.event.as_deref(), Some(e.kind.as_str()));
                        got.lock().unwrap().push(e);
                    }
                }
            }
        }
    }
    eprintln!("the follower connected {connections} times");
}

fn following_the_journal_through_two_kills_misses_and_repeats_nothing(db: Db) {
    let mut c = Cluster::on(db);
    c.start_agent("a1", 4);
    let token = std::fs::read_to_string(c.data().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let got = Arc::new(Mutex::new(Vec::<EventRecord>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (url, token, got, stop) = (c.url(), token.clone(), got.clone(), stop.clone());
        std::thread::spawn(move || follow(url, token, got, stop))
    };
    // Instance 7 fails its first attempt, so a retry is in the records too.
    let spec = c.spec(
        "journal.yaml",
        "name: journal\ntasks:\n  work:\n    instances: 150\n    retries: 1\n    compute_env: pool\n    command: 'sleep 0.05; [ $BATCH_TASK_INSTANCE_INDEX != 7 ] || [ $BATCH_TASK_INSTANCE_ATTEMPT -gt 1 ] || exit 3'\n",
    );
    let id = c.submit(&spec);
    for at in [40, 90] {
        c.wait_job(&id, 120, |v| {
            v["tasks"][0]["counts"]["SUCCEED"].as_u64().unwrap_or(0) >= at
        });
        c.kill_server();
        c.start_server();
    }
    let job = c.wait_job(&id, 180, |v| state(v) == "SUCCEED");
    assert_eq!(job["tasks"][0]["counts"]["SUCCEED"], 150);
    wait_until(60, "the follower to see the job succeed", || {
        got.lock()
            .unwrap()
            .iter()
            .any(|e| e.kind == "JobSucceeded" && e.job.as_deref() == Some(&id))
    });
    // Whatever came after (the agent's node events, …) is no matter; give it a moment.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    // The follower's read ends with the stream; a new event or keep-alive wakes it at the
    // latest. Kill the agent to make node events that end its wait.
    c.kill_agent("a1");
    follower.join().unwrap();
    let streamed = got.lock().unwrap().clone();

    // Every number once, in order, from the first.
    let seqs: Vec<u64> = streamed.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "a gap or a repeat"
    );
    // The stream is the journal: a page read gives the same events.
    let client = reqwest::blocking::Client::new();
    let mut paged: Vec<EventRecord> = Vec::new();
    let mut after = 0;
    loop {
        let page: kiln_api::EventPage = client
            .get(format!("{}/v1/events?after={after}&limit=1000", c.url()))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n = page.items.len();
        paged.extend(page.items);
        after = page.next;
        if n < 1000 {
            break;
        }
    }
    assert_eq!(paged[..streamed.len()], streamed[..]);

    // The events match the job's final records: each ended attempt has exactly one event of
    // its end, and nothing else ended.
    let of_job: Vec<&EventRecord> = streamed
        .iter()
        .filter(|e| e.job.as_deref() == Some(&id))
        .collect();
    let mut ended: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    for e in &of_job {
        if ["InstanceSucceeded", "InstanceFailed", "InstanceInterrupted"].contains(&e.kind.as_str())
        {
            ended
                .entry((e.index.unwrap(), e.attempt.unwrap()))
                .or_default()
                .push(e.state.clone().unwrap());
        }
    }
    let mut recorded: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    for inst in c.instances(&id, "work") {
        let index = inst["index"].as_u64().unwrap() as u32;
        for a in inst["attempts"].as_array().unwrap() {
            let s = a["state"].as_str().unwrap().to_string();
            if ["SUCCEED", "FAILED", "FAILED_INTERRUPTED"].contains(&s.as_str()) {
                recorded
                    .entry((index, a["attempt"].as_u64().unwrap() as u32))
                    .or_default()
                    .push(s);
            }
        }
    }
    assert_eq!(
        ended, recorded,
        "ended attempts, as journaled and as recorded"
    );
    assert!(recorded.len() >= 151, "150 successes and a failure");
    let count = |kind: &str| of_job.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("JobSubmitted"), 1);
    assert_eq!(count("JobSucceeded"), 1);
    assert_eq!(count("TaskSucceeded"), 1);
    assert_eq!(count("InstanceSucceeded"), 150);
    assert!(count("InstanceFailed") >= 1);
    assert_eq!(
        of_job.last().map(|e| e.kind.as_str()),
        Some("JobSucceeded"),
        "nothing of the job after it succeeded"
    );
}

/// `GET /metrics` from loopback needs no token, passes `promtool check metrics`, and its
/// counters match the job's records.
#[test]
fn metrics_pass_promtool_and_count_what_the_job_did() {
    let mut c = Cluster::new();
    c.start_agent("m1", 2);
    let spec = c.spec(
        "metrics.yaml",
        "name: metrics\ntasks:\n  work:\n    instances: 12\n    retries: 1\n    compute_env: pool\n    command: '[ $BATCH_TASK_INSTANCE_INDEX != 3 ] || [ $BATCH_TASK_INSTANCE_ATTEMPT -gt 1 ] || exit 3'\n",
    );
    let id = c.submit(&spec);
    c.wait_job(&id, 60, |v| state(v) == "SUCCEED");
    let client = reqwest::blocking::Client::new();
    let scrape = || {
        let resp = client.get(format!("{}/metrics", c.url())).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        resp.text().unwrap()
    };
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    // The gauges are sampled every second: wait for the finished job to show.
    let mut text = scrape();
    wait_until(20, "the gauges to be sampled", || {
        text = scrape();
        value(&text, r#"kiln_nodes{state="RUNNING"}"#) == Some(2.0)
    });
    let file = c.dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus) is needed");
    assert!(
        check.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Counters against the records: 12 succeeded attempts, 1 failed.
    let mut succeeded = 0;
    let mut failed = 0;
    for inst in c.instances(&id, "work") {
        for a in inst["attempts"].as_array().unwrap() {
            match a["state"].as_str().unwrap() {
                "SUCCEED" => succeeded += 1,
                "FAILED" => failed += 1,
                _ => {}
            }
        }
    }
    assert_eq!((succeeded, failed), (12, 1));
    assert_eq!(
        value(&text, r#"kiln_events_total{type="InstanceSucceeded"}"#),
        Some(f64::from(succeeded))
    );
    assert_eq!(
        value(&text, r#"kiln_events_total{type="InstanceFailed"}"#),
        Some(f64::from(failed))
    );
    assert_eq!(
        value(&text, r#"kiln_events_total{type="JobSucceeded"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"kiln_instances{state="RUNNING"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"kiln_queue_depth{compute_env="pool"}"#),
        Some(0.0)
    );
    for series in [
        "kiln_tick_duration_seconds_count",
        "kiln_store_commit_seconds_count",
        "kiln_dispatch_latency_seconds_count",
    ] {
        assert!(
            value(&text, series).is_some_and(|n| n > 0.0),
            "{series}\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("kiln_api_requests_total{")
                && l.contains(r#"route="/v1/jobs""#)
                && l.contains(r#"method="POST""#)
                && l.contains(r#"status="201""#)
                && l.ends_with(" 1")),
        "{text}"
    );
    // With a token that is not the admin's, from loopback: still served; the token is not
    // what grants it there.
    let resp = client
        .get(format!("{}/metrics", c.url()))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}
