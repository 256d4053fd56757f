//! A submit with an `Idempotency-Key` survives a server killed between the commit and the
//! answer: the client's retry, to the restarted server, gets the job that was created, and
//! there is one job.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Cluster, ServerOptions};

const JOB: &str = "name: crash-once\ntasks:\n  a:\n    command: \"true\"\n";

fn submit(c: &Cluster, key: &str) -> reqwest::Result<(u16, serde_json::Value)> {
    let token = std::fs::read_to_string(c.data().join("admin-token")).unwrap();
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v1/jobs", c.url()))
        .bearer_auth(token.trim())
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/yaml")
        .body(JOB)
        .send()?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().unwrap_or_default()))
}

#[test]
fn a_retried_submit_after_a_crash_gets_the_same_job() {
    let mut c = Cluster::with_options(ServerOptions {
        env: vec![("KILN_TEST_ABORT_AT".into(), "submit-committed".into())],
        ..ServerOptions::default()
    });
    // The server commits the job, then dies before it answers.
    assert!(
        submit(&c, "crash-1").is_err(),
        "the server should have died before answering"
    );
    c.kill_server();
    c.opts.env.clear();
    c.start_server();

    let (status, answer) = submit(&c, "crash-1").unwrap();
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let (status, again) = submit(&c, "crash-1").unwrap();
    assert_eq!((status, &again["id"]), (201, &answer["id"]));

    let (_, list) = c.request("GET", "/v1/jobs", None);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [id.as_str()],
        "one job, the one the first request created"
    );
    c.wait_job(&id, 30, |j| j["state"] == "SUCCEED");
}
